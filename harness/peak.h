/* peak.h — the measured roofline of this machine: float32 FMA throughput (one core and all
 * cores) and memory bandwidth (a STREAM-like triad, one thread and all threads).
 *
 * FMA: independent accumulator chains — more than FMA latency × FMA ports, so the loop is
 * throughput-bound — at the widest vector the CPU has (detected ISA, ignoring ATTN_DISABLE_ISA:
 * this is the machine's peak, not a variant's). The loops live in ISA-flagged files
 * (peak_avx512.c, peak_avx2.c) and are picked by the detected ISA; other CPUs get a portable
 * loop (multiply + add, two FLOPs per element).
 *
 * Triad: a[i] = b[i] + s·c[i] over three float arrays of `triad_array_bytes` each (by default
 * 4× the L3 size, at least 64 MiB, at most 1/4 of RAM for all three), plain stores. Bytes
 * counted per element: 4 × 4 = 16 — b[i] and c[i] read, a[i] written, and a[i]'s line read
 * first (write-allocate), which plain stores do cost: on this project's reference machine the
 * same loop with non-temporal stores (no write-allocate) moves 12 bytes per element at the rate
 * the plain loop reaches when counted as 16. That is the traffic the memory carries, the figure
 * to hold a decode kernel's K/V reads against. STREAM itself counts 12 (GB/s × 3/4).
 *
 * Each figure is the best of several timed repetitions (noise only ever slows a run down). All
 * cores: one worker per core through the thread pool (threads.h), each bound to its core; the
 * calling thread is bound to core 0 during the measurement and restored afterwards. */
#ifndef ATTN_PEAK_H
#define ATTN_PEAK_H

#include "attn.h"

enum { ATTN_TRIAD_BYTES_PER_ELEMENT = 16 };

typedef struct attn_peak {
    double fma_gflops_per_core;
    double fma_gflops_all_cores;
    double triad_gbs_1t;
    double triad_gbs_all;
    int cores;                  /* threads used for the *_all figures */
    const char *fma_kernel;     /* "avx512", "avx2" or "portable" */
    int vector_bits;
    int accumulators;
    int64_t triad_array_bytes;  /* per array */
    int triad_bytes_per_element;/* ATTN_TRIAD_BYTES_PER_ELEMENT */
} attn_peak;

/* Measures everything (a few seconds). triad_array_bytes = 0 picks the default size. */
attn_status attn_peak_measure(attn_peak *out, int64_t triad_array_bytes, attn_error *err);

/* The default triad array size on this machine. */
int64_t attn_peak_default_triad_bytes(void);

/* FMA loops, one per ISA file: `iters` iterations over every accumulator; each returns the
 * FLOPs it performed (2 per FMA lane) and writes a sum of the accumulators to *sink so the
 * compiler cannot drop the work. */
typedef struct attn_fma_kernel {
    const char *name;
    int vector_bits, accumulators;
    double (*run)(int64_t iters, float *sink);
} attn_fma_kernel;

extern const attn_fma_kernel attn_fma_kernel_avx512;
extern const attn_fma_kernel attn_fma_kernel_avx2;

#endif
