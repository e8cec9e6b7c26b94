/* peak.c — measuring the roofline (see peak.h): FMA kernel choice and timing, the triad. */
#include "peak.h"
#include "error.h"

#include "attn_config.h"
#include "cpu.h"
#include "threads.h"
#include "topology.h"

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    REPEATS = 5,                  /* timed repetitions; the best counts */
    FMA_TARGET_MS = 40,           /* length of one timed FMA repetition */
    PORTABLE_ACC = 32,            /* portable loop: chains of scalar floats the compiler vectorises */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Multiply + add for CPUs without a flagged FMA loop (2 FLOPs per element, like an FMA). */
static double fma_portable(int64_t iters, float *sink)
{
    float acc[PORTABLE_ACC];
    for (int k = 0; k < PORTABLE_ACC; k++)
        acc[k] = (float)k;
    for (int64_t it = 0; it < iters; it++)
        for (int k = 0; k < PORTABLE_ACC; k++)
            acc[k] = acc[k] * 0.999999f + 1e-6f;
    float s = 0;
    for (int k = 0; k < PORTABLE_ACC; k++)
        s += acc[k];
    *sink = s;
    return 2.0 * PORTABLE_ACC * (double)iters;
}

static const attn_fma_kernel fma_kernel_portable = {"portable", 32, PORTABLE_ACC, fma_portable};

/* The widest loop the CPU can run (detected ISA: the machine's peak, whatever is disabled). */
static const attn_fma_kernel *pick_fma_kernel(void)
{
#if ATTN_ARCH_X86
    const uint32_t isa = attn_cpu_get()->isa_detected;
    if (isa & ATTN_ISA_AVX512F)
        return &attn_fma_kernel_avx512;
    if ((isa & ATTN_ISA_AVX2) && (isa & ATTN_ISA_FMA))
        return &attn_fma_kernel_avx2;
#endif
    return &fma_kernel_portable;
}

typedef struct fma_job {
    const attn_fma_kernel *kernel;
    int64_t iters;
    float sink[ATTN_MAX_THREADS];
    double flops[ATTN_MAX_THREADS]; /* done by each worker in the last run */
} fma_job;

static void fma_worker(void *ctx, int w, int workers)
{
    (void)workers;
    fma_job *job = ctx;
    job->flops[w] = job->kernel->run(job->iters, &job->sink[w]);
    attn_cpu_clean_upper_state(); /* the triad after it is baseline code */
}

/* Best GFLOP/s of `workers` threads each running the FMA loop; 0 if the pool was busy. */
static double time_fma(fma_job *job, int workers)
{
    double best = 0;
    for (int r = 0; r < REPEATS; r++) {
        const double t0 = now();
        if (!attn_parallel_run(workers, fma_worker, job))
            return 0;
        const double t = now() - t0;
        double flops = 0;
        for (int w = 0; w < workers; w++)
            flops += job->flops[w];
        const double rate = flops / t * 1e-9;
        best = rate > best ? rate : best;
    }
    return best;
}

typedef struct triad_job {
    float *a, *b, *c;
    size_t n;
    bool init;
} triad_job;

static void triad_worker(void *ctx, int w, int workers)
{
    triad_job *job = ctx;
    const size_t i0 = job->n * (size_t)w / (size_t)workers;
    const size_t i1 = job->n * (size_t)(w + 1) / (size_t)workers;
    float *restrict a = job->a;
    const float *restrict b = job->b, *restrict c = job->c;
    if (job->init) { /* first touch by the thread that will use the pages */
        for (size_t i = i0; i < i1; i++) {
            job->a[i] = 0.0f;
            job->b[i] = 1.0f;
            job->c[i] = 2.0f;
        }
        return;
    }
    const float s = 3.0f;
    for (size_t i = i0; i < i1; i++)
        a[i] = b[i] + s * c[i];
}

/* Best GB/s (ATTN_TRIAD_BYTES_PER_ELEMENT per element) of the triad on `workers` threads; 0 if the pool was busy. */
static double time_triad(triad_job *job, int workers)
{
    double best = 0;
    for (int r = 0; r < REPEATS; r++) {
        const double t0 = now();
        if (!attn_parallel_run(workers, triad_worker, job) && workers > 1)
            return 0;
        const double rate = ATTN_TRIAD_BYTES_PER_ELEMENT * (double)job->n / (now() - t0) * 1e-9;
        best = rate > best ? rate : best;
    }
    return best;
}

int64_t attn_peak_default_triad_bytes(void)
{
    const attn_topology *t = attn_topology_get();
    int64_t l3 = t->cache[2].bytes * (t->cache[2].instances > 0 ? t->cache[2].instances : 1);
    if (l3 <= 0)
        l3 = attn_cpu_get()->machine.l3_bytes;
    int64_t bytes = 4 * l3;
    const int64_t floor_bytes = 64ll << 20;
    bytes = bytes > floor_bytes ? bytes : floor_bytes;
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) {
        const int64_t cap = (int64_t)pages * page / 4 / 3;
        bytes = bytes < cap ? bytes : cap;
    }
    return bytes & ~(int64_t)63;
}

static attn_status measure(attn_peak *out, int64_t triad_bytes, attn_error *err)
{
    const attn_fma_kernel *kernel = pick_fma_kernel();
    const int cores = attn_topology_get()->cores;
    out->cores = cores < ATTN_MAX_THREADS ? cores : ATTN_MAX_THREADS;
    out->fma_kernel = kernel->name;
    out->vector_bits = kernel->vector_bits;
    out->accumulators = kernel->accumulators;

    /* Calibrate the FMA loop to about FMA_TARGET_MS per repetition. */
    fma_job *job = calloc(1, sizeof *job);
    if (!job)
        return attn_fail(err, ATTN_ERR_NOMEM, "peak: out of memory");
    job->kernel = kernel;
    job->iters = 1 << 14;
    for (;;) {
        const double t0 = now();
        kernel->run(job->iters, &job->sink[0]);
        attn_cpu_clean_upper_state();
        const double t = now() - t0;
        if (t > FMA_TARGET_MS * 1e-3 / 4 || job->iters > (1ll << 40)) {
            job->iters = (int64_t)((double)job->iters * FMA_TARGET_MS * 1e-3 / t) + 1;
            break;
        }
        job->iters *= 2;
    }
    out->fma_gflops_per_core = time_fma(job, 1);
    out->fma_gflops_all_cores = time_fma(job, out->cores);
    free(job);
    if (out->fma_gflops_all_cores == 0)
        return attn_fail(err, ATTN_ERR_INVALID, "peak: the thread pool is busy (another run)");

    if (triad_bytes <= 0)
        triad_bytes = attn_peak_default_triad_bytes();
    out->triad_array_bytes = triad_bytes & ~(int64_t)63;
    out->triad_bytes_per_element = ATTN_TRIAD_BYTES_PER_ELEMENT;
    triad_job tj = {.n = (size_t)out->triad_array_bytes / sizeof(float), .init = true};
    tj.a = aligned_alloc(64, (size_t)out->triad_array_bytes);
    tj.b = aligned_alloc(64, (size_t)out->triad_array_bytes);
    tj.c = aligned_alloc(64, (size_t)out->triad_array_bytes);
    attn_status s = ATTN_OK;
    if (!tj.a || !tj.b || !tj.c || tj.n == 0) {
        s = attn_fail(err, ATTN_ERR_NOMEM, "peak: cannot allocate 3 triad arrays of %lld bytes",
                 (long long)out->triad_array_bytes);
    } else {
        attn_parallel_run(out->cores, triad_worker, &tj);
        tj.init = false;
        out->triad_gbs_1t = time_triad(&tj, 1);
        out->triad_gbs_all = time_triad(&tj, out->cores);
        if (out->triad_gbs_all == 0)
            s = attn_fail(err, ATTN_ERR_INVALID, "peak: the thread pool is busy (another run)");
        /* the result must look used, or the stores could be dropped as dead */
        volatile float keep = tj.a[tj.n / 2];
        (void)keep;
    }
    free(tj.a);
    free(tj.b);
    free(tj.c);
    return s;
}

attn_status attn_peak_measure(attn_peak *out, int64_t triad_array_bytes, attn_error *err)
{
    memset(out, 0, sizeof *out);
    /* Bind the caller to core 0 (worker 0 of every parallel run) and give it back its CPUs. */
    cpu_set_t saved;
    const bool have_saved = pthread_getaffinity_np(pthread_self(), sizeof saved, &saved) == 0;
    attn_topology_bind_thread_to_core(0);
    attn_status s = measure(out, triad_array_bytes, err);
    if (have_saved)
        pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
    return s;
}
