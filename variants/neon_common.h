/* neon_common.h — vector helpers shared by the neon variant's files (neon.c, neon_kvq.c). */
#ifndef ATTN_NEON_COMMON_H
#define ATTN_NEON_COMMON_H

#include "exp2_poly.h"

#include <arm_neon.h>

/* 2^x for x <= 0 (or NaN), the vector form of attn_exp2_nonpos: n = round(x), f = x - n,
 * 2^f by the degree-5 polynomial, 2^n added to the exponent field; x < ATTN_EXP2_MIN → 0
 * (which also covers -inf). NaN converts to n = 0 and stays NaN. */
static inline float32x4_t exp2_nonpos_f32x4(float32x4_t x)
{
    const float32x4_t n = vrndnq_f32(x), f = vsubq_f32(x, n);
    float32x4_t p = vdupq_n_f32(ATTN_EXP2_C5);
    p = vfmaq_f32(vdupq_n_f32(ATTN_EXP2_C4), p, f);
    p = vfmaq_f32(vdupq_n_f32(ATTN_EXP2_C3), p, f);
    p = vfmaq_f32(vdupq_n_f32(ATTN_EXP2_C2), p, f);
    p = vfmaq_f32(vdupq_n_f32(ATTN_EXP2_C1), p, f);
    p = vfmaq_f32(vdupq_n_f32(ATTN_EXP2_C0), p, f);
    const int32x4_t exponent = vshlq_n_s32(vcvtq_s32_f32(n), 23);
    const float32x4_t r = vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(p), exponent));
    const uint32x4_t underflow = vcltq_f32(x, vdupq_n_f32(ATTN_EXP2_MIN));
    return vbslq_f32(underflow, vdupq_n_f32(0.0f), r);
}

#endif
