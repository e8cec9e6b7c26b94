/* threads.c — the worker pool behind threads.h: a run bumps a generation counter and wakes the
 * workers, the caller works as worker 0 and then waits until every other worker of the run has
 * finished.
 *
 * Both waits spin for up to SPIN_NS before sleeping on a condition variable: a sleeping thread
 * takes some 5-10 µs to wake (a futex round trip through the scheduler, more in a VM), which a
 * small problem pays twice per call; a run that follows within SPIN_NS (the next layer, the next
 * decode step, a benchmark's next repetition) starts and ends at cache-line speed instead. A run
 * with more threads than cores does not spin: there a spinning thread would hold a core that
 * another thread of the run needs. */
#include "threads.h"

#include "attn.h"
#include "topology.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a waiting thread spins before it sleeps (ns): short next to OpenMP runtimes' usual
 * spin (GOMP spins some 300 000 iterations before blocking) so that an idle pool gives its
 * cores back almost at once. */
enum { SPIN_NS = 50000 };

static struct {
    pthread_mutex_t busy;   /* held by the run in progress (trylock: never wait on it) */
    pthread_mutex_t lock;   /* guards everything below */
    pthread_cond_t wake, done;
    int started;            /* pool threads running: they are workers 1..started */
    _Atomic uint64_t generation; /* bumped by each run (under lock; read while spinning) */
    attn_parallel_fn fn;
    void *ctx;
    int workers;            /* of the current run */
    bool spin;              /* the current run's threads fit on the cores: waits spin first */
    _Atomic int pending;    /* pool workers of the current run still working */
    int caller_core;        /* the core the caller ran on when it started the run; -1: unknown */
    /* The generation a new thread has already seen: threads are started inside a run, before
     * its generation is bumped, so they must not take that bump for an old one. */
    uint64_t created_at[ATTN_MAX_THREADS];
} pool = {
    .busy = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER,
};

/* The core of pool worker w (>= 1): the (w-1)-th core other than the caller's, so that the
 * caller (worker 0, never bound by the library) and the pool do not share a core. */
static int worker_core(int w, int caller_core)
{
    const int cores = attn_topology_get()->cores;
    if (caller_core < 0 || caller_core >= cores || cores < 2)
        return w % (cores > 0 ? cores : 1);
    const int k = (w - 1) % (cores - 1);
    return k >= caller_core ? k + 1 : k;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* What the two waits wait for: a run after generation `seen`; the end of the current run. */
static bool new_run(uint64_t seen)
{
    return atomic_load_explicit(&pool.generation, memory_order_acquire) != seen;
}

static bool run_done(uint64_t unused)
{
    (void)unused;
    return atomic_load_explicit(&pool.pending, memory_order_acquire) == 0;
}

/* Spins until ready(arg) or SPIN_NS have passed (the lock is not held). */
static void spin_until(bool (*ready)(uint64_t), uint64_t arg)
{
    const int64_t start = now_ns();
    for (unsigned i = 1; !ready(arg); i++) {
        cpu_relax();
        if (i % 64 == 0 && now_ns() - start > SPIN_NS)
            return;
    }
}

static void *worker_main(void *arg)
{
    const int me = (int)(intptr_t)arg;
    int bound_core = -1;
    pthread_mutex_lock(&pool.lock);
    uint64_t seen = pool.created_at[me];
    /* Spin before sleeping only after taking part in a run that allowed it: a thread left out of
     * a run would spin on a core that a worker of the run needs. */
    bool spin = false;
    for (;;) {
        if (pool.generation == seen && spin) { /* outside the lock */
            pthread_mutex_unlock(&pool.lock);
            spin_until(new_run, seen);
            pthread_mutex_lock(&pool.lock);
        }
        while (pool.generation == seen)
            pthread_cond_wait(&pool.wake, &pool.lock);
        seen = pool.generation;
        spin = me < pool.workers && pool.spin;
        if (me >= pool.workers)
            continue; /* not part of this run */
        attn_parallel_fn fn = pool.fn;
        void *ctx = pool.ctx;
        const int workers = pool.workers, core = worker_core(me, pool.caller_core);
        pthread_mutex_unlock(&pool.lock);
        /* rebinding is a system call: only when the caller has moved to another core */
        if (core != bound_core && attn_topology_bind_thread_to_core(core))
            bound_core = core; /* best effort: an unbound worker still computes */
        fn(ctx, me, workers);
        pthread_mutex_lock(&pool.lock);
        if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1)
            pthread_cond_signal(&pool.done);
    }
    return NULL;
}

/* In a child after fork() only the forking thread exists: forget the pool's threads. */
static void reset_after_fork(void)
{
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.started = 0;
    pool.pending = 0;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(NULL, NULL, reset_after_fork); }

/* Starts pool threads until there are `count`; false when the OS refuses one. Called with
 * pool.busy held, so no run is in flight. */
static bool grow(int count)
{
    while (pool.started < count) {
        pthread_t th;
        pthread_attr_t attr;
        if (pthread_attr_init(&attr) != 0)
            return false;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pool.created_at[pool.started + 1] = pool.generation;
        int rc = pthread_create(&th, &attr, worker_main, (void *)(intptr_t)(pool.started + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0)
            return false;
        pool.started++;
    }
    return true;
}

static void run_all_here(int workers, attn_parallel_fn fn, void *ctx)
{
    for (int w = 0; w < workers; w++)
        fn(ctx, w, workers);
}

/* ATTN_SERIAL=1: every worker's share runs on the calling thread, in order. The split does not
 * change, so neither do the results. For environments whose threads cannot be trusted (here,
 * qemu-user 7.2 hangs in an aarch64 guest's first pthread_create, whatever the program) and for
 * users who must keep the library to one thread. */
bool attn_parallel_serial(void)
{
    const char *env = getenv("ATTN_SERIAL");
    return env && !strcmp(env, "1");
}

bool attn_parallel_run(int workers, attn_parallel_fn fn, void *ctx)
{
    if (workers > 1 && attn_parallel_serial()) {
        run_all_here(workers, fn, ctx);
        return false;
    }
    if (workers <= 1) {
        run_all_here(workers, fn, ctx);
        return workers == 1;
    }
    if (workers > ATTN_MAX_THREADS || pthread_mutex_trylock(&pool.busy) != 0) {
        run_all_here(workers, fn, ctx);
        return false;
    }
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&pool.lock);
    const bool grown = grow(workers - 1);
    if (!grown) {
        pthread_mutex_unlock(&pool.lock);
        pthread_mutex_unlock(&pool.busy);
        run_all_here(workers, fn, ctx);
        return false;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.workers = workers;
    const bool spin = workers <= attn_topology_get()->cores;
    pool.spin = spin;
    pool.pending = workers - 1;
    pool.caller_core = attn_topology_core_of_cpu(sched_getcpu());
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    fn(ctx, 0, workers);

    if (spin)
        spin_until(run_done, 0);
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
    return true;
}
