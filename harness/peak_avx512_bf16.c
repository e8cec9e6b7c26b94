/* peak_avx512_bf16.c — the bf16 dot-product peak loop, VDPBF16PS zmm (compiled with the
 * avx512_bf16 flags only). One instruction multiplies 16 pairs of bf16 and adds both products
 * of a pair to one float32 lane: 32 multiply-adds, counted as 64 FLOPs (the FLOPs the
 * avx512_bf16 variant counts for the same products). 24 independent accumulators cover latency
 * (5-6 cycles) × 2 pipes and with the two operands use 26 of the 32 zmm registers. The operands
 * (bf16 1.0 and 2^-20) keep every sum normal and finite. */
#include "peak.h"

#include <immintrin.h>

enum { ACC = 24 };

static double dot_avx512_bf16(int64_t iters, float *sink)
{
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80); /* bf16 1.0 */
    const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3580); /* bf16 2^-20 */
    __m512 acc[ACC];
    for (int k = 0; k < ACC; k++)
        acc[k] = _mm512_set1_ps((float)k);
    for (int64_t it = 0; it < iters; it++)
#pragma GCC unroll 32 /* the accumulators stay in registers: no loop interchange through memory */
        for (int k = 0; k < ACC; k++)
            acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
    __m512 s = acc[0];
    for (int k = 1; k < ACC; k++)
        s = _mm512_add_ps(s, acc[k]);
    *sink = _mm512_reduce_add_ps(s);
    return 2.0 * 32 * ACC * (double)iters;
}

const attn_flop_kernel attn_flop_kernel_avx512_bf16 = {
    "avx512_bf16", "vdpbf16ps zmm", ATTN_ROOFLINE_BF16_DOT,
    ATTN_ISA_AVX512BF16 | ATTN_ISA_AVX512F | ATTN_ISA_AVX512BW | ATTN_ISA_AVX512VL |
        ATTN_ISA_AVX512DQ,
    512, ACC, dot_avx512_bf16};
