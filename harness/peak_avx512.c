/* peak_avx512.c — the FMA peak loop at 512 bits (compiled with the avx512 flags only).
 * 16 independent zmm accumulators, each acc = acc·m + a per iteration: 16 chains cover FMA
 * latency (4 cycles) × 2 FMA pipes with room to spare, and with the two constants use 18 of the
 * 32 zmm registers. m slightly below 1 keeps every value normal and finite. */
#include "peak.h"

#include <immintrin.h>

enum { ACC = 16 };

static double fma_avx512(int64_t iters, float *sink)
{
    const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-6f);
    __m512 acc[ACC];
    for (int k = 0; k < ACC; k++)
        acc[k] = _mm512_set1_ps((float)k);
    for (int64_t it = 0; it < iters; it++)
#pragma GCC unroll 32 /* the accumulators stay in registers: no loop interchange through memory */
        for (int k = 0; k < ACC; k++)
            acc[k] = _mm512_fmadd_ps(acc[k], m, a);
    __m512 s = acc[0];
    for (int k = 1; k < ACC; k++)
        s = _mm512_add_ps(s, acc[k]);
    *sink = _mm512_reduce_add_ps(s);
    return 2.0 * 16 * ACC * (double)iters;
}

const attn_flop_kernel attn_flop_kernel_avx512 = {
    "avx512", "vfmadd ps zmm", ATTN_ROOFLINE_FMA512,
    ATTN_ISA_AVX512F | ATTN_ISA_AVX512BW | ATTN_ISA_AVX512VL | ATTN_ISA_AVX512DQ, 512, ACC,
    fma_avx512};
