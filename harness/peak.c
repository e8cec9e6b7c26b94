/* peak.c — measuring the roofline (see peak.h): the arithmetic loops' choice and timing, the
 * read and triad loops. */
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

static const attn_flop_kernel flop_kernel_portable = {
    "portable", "multiply + add, baseline vectors", ATTN_ROOFLINE_FMA, 0, 32, PORTABLE_ACC,
    fma_portable};

/* Every loop this build has, each for its roofline. */
static const attn_flop_kernel *const flop_kernels[] = {
#if ATTN_ARCH_X86
    &attn_flop_kernel_avx512, &attn_flop_kernel_avx2, &attn_flop_kernel_avx512_bf16,
    &attn_flop_kernel_amx,
#endif
    &flop_kernel_portable,
};

const attn_flop_kernel *attn_peak_kernel(attn_roofline r)
{
    if (r == ATTN_ROOFLINE_FMA) { /* the widest float32 FMA the CPU has, else the portable loop */
        const attn_flop_kernel *k = attn_peak_kernel(ATTN_ROOFLINE_FMA512);
        k = k ? k : attn_peak_kernel(ATTN_ROOFLINE_FMA256);
        return k ? k : &flop_kernel_portable;
    }
    const uint32_t isa = attn_cpu_get()->isa_detected;
    for (size_t i = 0; i < sizeof flop_kernels / sizeof flop_kernels[0]; i++)
        if (flop_kernels[i]->roofline == r && (flop_kernels[i]->isa & ~isa) == 0)
            return flop_kernels[i];
    return NULL;
}

typedef struct flop_job {
    const attn_flop_kernel *kernel;
    int64_t iters;
    float sink[ATTN_MAX_THREADS];
    double flops[ATTN_MAX_THREADS]; /* done by each worker in the last run */
} flop_job;

static void flop_worker(void *ctx, int w, int workers)
{
    (void)workers;
    flop_job *job = ctx;
    job->flops[w] = job->kernel->run(job->iters, &job->sink[w]);
    attn_cpu_clean_upper_state(); /* the loops after it are baseline code */
}

/* Best GFLOP/s of `workers` threads each running the loop; 0 if the pool was busy. */
static double time_flops(flop_job *job, int workers)
{
    double best = 0;
    for (int r = 0; r < REPEATS; r++) {
        const double t0 = now();
        if (!attn_parallel_run(workers, flop_worker, job))
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

/* Times one loop on 1 thread and on `cores` threads; false if the pool was busy. */
static bool measure_flops(flop_job *job, const attn_flop_kernel *kernel, int cores,
                          double *per_core, double *all_cores)
{
    /* Calibrate the loop to about FMA_TARGET_MS per repetition. */
    job->kernel = kernel;
    job->iters = 1 << 10;
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
    *per_core = time_flops(job, 1);
    *all_cores = time_flops(job, cores);
    return *all_cores > 0;
}

/* The memory loops, over the same three arrays. */
typedef enum stream_mode { STREAM_INIT, STREAM_TRIAD, STREAM_READ } stream_mode;

typedef struct stream_job {
    float *a, *b, *c;
    size_t n;
    stream_mode mode;
    float sink[ATTN_MAX_THREADS];
} stream_job;

enum { READ_ROW_WORDS = ATTN_READ_ROW_BYTES / 4, READ_LANES = 32 };

/* The read loop reads any bytes (K and V of every stored type) as 32-bit words: integer sums,
 * which no value slows down (float adds of arbitrary bits would meet subnormals). */
typedef uint32_t read_word __attribute__((may_alias));

/* K/V-like reading: a row of k, then the same row of v, and so on. The 32 lanes are independent
 * sums (chains short enough that the adds never limit the loads), in baseline code the compiler
 * vectorises: every CPU reads memory with it, nothing here needs an ISA. Wider loads do not
 * raise the ceiling: on a Zen 4, one thread read memory as fast with 128- and 256-bit loads as
 * here, and about 17% slower with 512-bit ones. */
static uint32_t read_rows(const read_word *restrict k, const read_word *restrict v, size_t rows)
{
    uint32_t acc[READ_LANES] = {0};
    for (size_t r = 0; r < rows; r++, k += READ_ROW_WORDS, v += READ_ROW_WORDS) {
        for (int i = 0; i < READ_ROW_WORDS; i += READ_LANES)
            for (int l = 0; l < READ_LANES; l++)
                acc[l] += k[i + l];
        for (int i = 0; i < READ_ROW_WORDS; i += READ_LANES)
            for (int l = 0; l < READ_LANES; l++)
                acc[l] += v[i + l];
    }
    uint32_t s = 0;
    for (int l = 0; l < READ_LANES; l++)
        s += acc[l];
    return s;
}

/* Worker w's share of `rows` rows of k and v (contiguous, as a static split). */
static uint32_t read_share(const void *k, const void *v, size_t rows, int w, int workers)
{
    const size_t r0 = rows * (size_t)w / (size_t)workers;
    const size_t r1 = rows * (size_t)(w + 1) / (size_t)workers;
    const size_t skip = r0 * ATTN_READ_ROW_BYTES;
    return read_rows((const read_word *)((const char *)k + skip),
                     (const read_word *)((const char *)v + skip), r1 - r0);
}

static void stream_worker(void *ctx, int w, int workers)
{
    stream_job *job = ctx;
    if (job->mode == STREAM_READ) {
        job->sink[w] = (float)read_share(job->b, job->c, job->n * sizeof(float) /
                                         ATTN_READ_ROW_BYTES, w, workers);
        return;
    }
    const size_t i0 = job->n * (size_t)w / (size_t)workers;
    const size_t i1 = job->n * (size_t)(w + 1) / (size_t)workers;
    float *restrict a = job->a;
    const float *restrict b = job->b, *restrict c = job->c;
    if (job->mode == STREAM_INIT) { /* first touch by the thread that will use the pages */
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

/* Bytes one pass of the job's loop counts. */
static double stream_bytes(const stream_job *job)
{
    if (job->mode == STREAM_READ)
        return 2.0 * (double)(job->n * sizeof(float) / ATTN_READ_ROW_BYTES) * ATTN_READ_ROW_BYTES;
    return ATTN_TRIAD_BYTES_PER_ELEMENT * (double)job->n;
}

/* Best GB/s of the job's loop on `workers` threads; 0 if the pool was busy. */
static double time_stream(stream_job *job, stream_mode mode, int workers)
{
    job->mode = mode;
    double best = 0;
    for (int r = 0; r < REPEATS; r++) {
        const double t0 = now();
        if (!attn_parallel_run(workers, stream_worker, job) && workers > 1)
            return 0;
        const double rate = stream_bytes(job) / (now() - t0) * 1e-9;
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
    const int cores = attn_topology_get()->cores;
    out->cores = cores < ATTN_MAX_THREADS ? cores : ATTN_MAX_THREADS;
    const attn_flop_kernel *widest = attn_peak_kernel(ATTN_ROOFLINE_FMA);
    out->fma_kernel = widest->name;
    out->vector_bits = widest->vector_bits;
    out->accumulators = widest->accumulators;

    flop_job *job = calloc(1, sizeof *job);
    if (!job)
        return attn_fail(err, ATTN_ERR_NOMEM, "peak: out of memory");
    bool ok = true;
    for (int r = 0; r < ATTN_ROOFLINE_COUNT && ok; r++) {
        const attn_flop_kernel *k = attn_peak_kernel((attn_roofline)r);
        if (!k || (int)k->roofline != r) /* none here; or fma as fma512/fma256, copied below */
            continue;
        ok = measure_flops(job, k, out->cores, &out->gflops_per_core[r], &out->gflops_all_cores[r]);
    }
    free(job);
    if (!ok)
        return attn_fail(err, ATTN_ERR_INVALID, "peak: the thread pool is busy (another run)");
    if (widest->roofline != ATTN_ROOFLINE_FMA) { /* fma is then the widest width's figures */
        out->gflops_per_core[ATTN_ROOFLINE_FMA] = out->gflops_per_core[widest->roofline];
        out->gflops_all_cores[ATTN_ROOFLINE_FMA] = out->gflops_all_cores[widest->roofline];
    }

    if (triad_bytes <= 0)
        triad_bytes = attn_peak_default_triad_bytes();
    out->triad_array_bytes = triad_bytes & ~(int64_t)(ATTN_READ_ROW_BYTES - 1);
    out->triad_bytes_per_element = ATTN_TRIAD_BYTES_PER_ELEMENT;
    stream_job *sj = calloc(1, sizeof *sj);
    attn_status s = ATTN_OK;
    if (sj) {
        sj->n = (size_t)out->triad_array_bytes / sizeof(float);
        sj->a = aligned_alloc(64, (size_t)out->triad_array_bytes);
        sj->b = aligned_alloc(64, (size_t)out->triad_array_bytes);
        sj->c = aligned_alloc(64, (size_t)out->triad_array_bytes);
    }
    if (!sj || !sj->a || !sj->b || !sj->c || sj->n == 0) {
        s = attn_fail(err, ATTN_ERR_NOMEM, "peak: cannot allocate 3 triad arrays of %lld bytes",
                      (long long)out->triad_array_bytes);
    } else {
        sj->mode = STREAM_INIT;
        attn_parallel_run(out->cores, stream_worker, sj);
        out->triad_gbs_1t = time_stream(sj, STREAM_TRIAD, 1);
        out->triad_gbs_all = time_stream(sj, STREAM_TRIAD, out->cores);
        out->read_gbs_1t = time_stream(sj, STREAM_READ, 1);
        out->read_gbs_all = time_stream(sj, STREAM_READ, out->cores);
        if (out->triad_gbs_all == 0 || out->read_gbs_all == 0)
            s = attn_fail(err, ATTN_ERR_INVALID, "peak: the thread pool is busy (another run)");
        /* the results must look used, or the loops could be dropped as dead */
        volatile float keep = sj->a[sj->n / 2] + sj->sink[0];
        (void)keep;
    }
    if (sj) {
        free(sj->a);
        free(sj->b);
        free(sj->c);
        free(sj);
    }
    return s;
}

attn_status attn_peak_measure(attn_peak *out, int64_t triad_array_bytes, attn_error *err)
{
    memset(out, 0, sizeof *out);
    if (attn_parallel_serial())
        return attn_fail(err, ATTN_ERR_INVALID, "ATTN_SERIAL=1 keeps every run on the "
                         "calling thread, so the all-core figures cannot be measured; unset it");
    /* Bind the caller to core 0 (worker 0 of every parallel run) and give it back its CPUs. */
    cpu_set_t saved;
    const bool have_saved = pthread_getaffinity_np(pthread_self(), sizeof saved, &saved) == 0;
    attn_topology_bind_thread_to_core(0);
    attn_status s = measure(out, triad_array_bytes, err);
    if (have_saved)
        pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
    return s;
}

/* attn_peak_read_once: the read loop over the caller's arrays. */
typedef struct read_job {
    const void *k, *v;
    size_t rows;
    uint32_t sink[ATTN_MAX_THREADS];
} read_job;

static void read_worker(void *ctx, int w, int workers)
{
    read_job *job = ctx;
    job->sink[w] = read_share(job->k, job->v, job->rows, w, workers);
}

double attn_peak_read_once(const void *k, const void *v, size_t bytes, int threads)
{
    read_job job = {.k = k, .v = v, .rows = bytes / ATTN_READ_ROW_BYTES};
    threads = threads < 1 ? 1 : threads > ATTN_MAX_THREADS ? ATTN_MAX_THREADS : threads;
    if (job.rows == 0)
        return 0;
    const double t0 = now();
    if (!attn_parallel_run(threads, read_worker, &job) && threads > 1)
        return 0;
    const double seconds = now() - t0;
    volatile uint32_t keep = job.sink[0]; /* the sums must look used */
    (void)keep;
    return 2.0 * (double)job.rows * ATTN_READ_ROW_BYTES / seconds * 1e-9;
}
