/* peak_avx2.c — the FMA peak loop at 256 bits (compiled with the avx2 flags only).
 * 12 independent ymm accumulators, acc = acc·m + a: 12 chains cover FMA latency (4-5 cycles) ×
 * 2 FMA pipes, and with the two constants use 14 of the 16 ymm registers. */
#include "peak.h"

#include <immintrin.h>

enum { ACC = 12 };

static double fma_avx2(int64_t iters, float *sink)
{
    const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-6f);
    __m256 acc[ACC];
    for (int k = 0; k < ACC; k++)
        acc[k] = _mm256_set1_ps((float)k);
    for (int64_t it = 0; it < iters; it++)
#pragma GCC unroll 32 /* the accumulators stay in registers: no loop interchange through memory */
        for (int k = 0; k < ACC; k++)
            acc[k] = _mm256_fmadd_ps(acc[k], m, a);
    __m256 s = acc[0];
    for (int k = 1; k < ACC; k++)
        s = _mm256_add_ps(s, acc[k]);
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    *sink = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
    return 2.0 * 8 * ACC * (double)iters;
}

const attn_flop_kernel attn_flop_kernel_avx2 = {
    "avx2", "vfmadd ps ymm", ATTN_ROOFLINE_FMA256, ATTN_ISA_AVX2 | ATTN_ISA_FMA, 256, ACC,
    fma_avx2};
