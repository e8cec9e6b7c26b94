/* peak.h — the measured roofline of this machine: the arithmetic peak of each kind of
 * instruction the variants are built on (attn_roofline), one core and all cores, and memory
 * bandwidth (read-only K/V-like streams, and a STREAM-like triad), one thread and all threads.
 *
 * Arithmetic: one throughput loop per roofline, in an ISA-flagged file, with independent
 * accumulator chains — more than latency × pipes, so the loop is throughput-bound:
 *   fma512   vfmadd ps zmm          peak_avx512.c       2 FLOPs per lane
 *   fma256   vfmadd ps ymm          peak_avx2.c         2 FLOPs per lane
 *   bf16_dot vdpbf16ps zmm          peak_avx512_bf16.c  4 FLOPs per float32 lane (2 products)
 *   amx_bf16 tdpbf16ps 16×16×32     peak_amx.c          2·16·16·32 FLOPs per instruction
 *   fma      the widest of fma512 and fma256; a portable multiply + add loop (2 FLOPs per
 *            element) where neither exists — the roofline of portable C and of BLAS.
 * A loop runs where the CPU has its instructions (detected ISA, ignoring ATTN_DISABLE_ISA: this
 * is the machine's peak, not a variant's); elsewhere its figures are 0. AMX also needs the
 * kernel's permission, which detection asks for (cpu_x86.c): no permission, no amx bit.
 *
 * Read: two arrays read in turn, 512 bytes (one d = 128 float32 row) of the first, then the same
 * row of the second — the pattern of a decode kernel reading K and V — counting every byte
 * read, summed as 32-bit integers (any bytes, no slow values). It reuses the triad's b and c
 * arrays; attn_peak_read_once runs it over the caller's arrays.
 *
 * Triad: a[i] = b[i] + s·c[i] over three float arrays of `triad_array_bytes` each (by default
 * 4× the L3 size, at least 64 MiB, at most 1/4 of RAM for all three), plain stores. Bytes
 * counted per element: 4 × 4 = 16 — b[i] and c[i] read, a[i] written, and a[i]'s line read
 * first (write-allocate), which plain stores do cost: on this project's reference machine the
 * same loop with non-temporal stores (no write-allocate) moves 12 bytes per element at the rate
 * the plain loop reaches when counted as 16. STREAM itself counts 12 (GB/s × 3/4).
 *
 * Each figure is the best of several timed repetitions (noise only ever slows a run down). All
 * cores: one worker per core through the thread pool (threads.h), each bound to its core; the
 * calling thread is bound to core 0 during the measurement and restored afterwards. */
#ifndef ATTN_PEAK_H
#define ATTN_PEAK_H

#include "attn.h"
#include "variant.h"

enum { ATTN_TRIAD_BYTES_PER_ELEMENT = 16, ATTN_READ_ROW_BYTES = 512 };

typedef struct attn_peak {
    /* GFLOP/s of each roofline (index attn_roofline); 0 where the CPU lacks its instructions */
    double gflops_per_core[ATTN_ROOFLINE_COUNT];
    double gflops_all_cores[ATTN_ROOFLINE_COUNT];
    double read_gbs_1t, read_gbs_all;   /* two interleaved read-only streams */
    double triad_gbs_1t, triad_gbs_all;
    int cores;                  /* threads used for the *_all figures */
    const char *fma_kernel;     /* the loop behind the fma roofline: "avx512", "avx2", "portable" */
    int vector_bits;            /* its vector width */
    int accumulators;
    int64_t triad_array_bytes;  /* per array */
    int triad_bytes_per_element;/* ATTN_TRIAD_BYTES_PER_ELEMENT */
} attn_peak;

/* Measures everything (a few seconds). triad_array_bytes = 0 picks the default size. */
attn_status attn_peak_measure(attn_peak *out, int64_t triad_array_bytes, attn_error *err);

/* One timed pass of the read loop over the caller's arrays: a row of k, the same row of v, and
 * so on, over bytes / ATTN_READ_ROW_BYTES rows of each (a trailing part row is not read), the
 * rows split over `threads` workers of the pool (as a kernel's run: the caller is worker 0,
 * unbound). GB/s of the bytes read; 0 when the pool was busy and threads > 1, or nothing to
 * read. `run --read-ref` times it between a decode kernel's runs, over the problem's own K and
 * V: the bandwidth of those pages, on those threads, in the same minute. */
double attn_peak_read_once(const void *k, const void *v, size_t bytes, int threads);

/* The default triad array size on this machine. */
int64_t attn_peak_default_triad_bytes(void);

/* A throughput loop, one per ISA file: `iters` iterations over every accumulator; returns the
 * FLOPs it performed and writes a sum of the accumulators to *sink so the compiler cannot drop
 * the work. */
typedef struct attn_flop_kernel {
    const char *name;           /* "avx512", "avx2", "avx512_bf16", "amx", "portable" */
    const char *instruction;    /* what the loop issues, for people */
    attn_roofline roofline;     /* the one it measures (fma: the portable loop only) */
    uint32_t isa;               /* attn_isa_bit mask the CPU must have */
    int vector_bits, accumulators;
    double (*run)(int64_t iters, float *sink);
} attn_flop_kernel;

/* The loop that measures roofline r on this CPU (detected ISA), or NULL when it has none. */
const attn_flop_kernel *attn_peak_kernel(attn_roofline r);

extern const attn_flop_kernel attn_flop_kernel_avx512;
extern const attn_flop_kernel attn_flop_kernel_avx2;
extern const attn_flop_kernel attn_flop_kernel_avx512_bf16;
extern const attn_flop_kernel attn_flop_kernel_amx;

#endif
