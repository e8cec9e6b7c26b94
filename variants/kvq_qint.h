/* kvq_qint.h — a packed Q row (attn_kvq_pack_q) as integers, for q4 scores whose products are
 * integer (avx2_kvq.c's single row): plain C, no ISA flags. */
#ifndef ATTN_KVQ_QINT_H
#define ATTN_KVQ_QINT_H

#include "variant.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* A single row's Q for q4 scores in integers: each value of the packed row qr (attn_kvq_pack_q's
 * order) as unit·(256·hi + lo), hi in [-2^14, 2^14] and lo in [-128, 128] (two int16 digits:
 * one alone, 2^-16 of the row's largest value, is coarser than float32's products), so a
 * head_dim block's 32 nibbles times Q are vpmaddwd products summed in int32 (|sum| < 2^31)
 * and converted once, where the float path converted every 8 values (vcvtdq2ps). Per
 * head_dim block: dig holds hi of its 32 values, then lo; off the sum of 256·hi + lo over it
 * (for the nibbles' offset 8, as qsum in dot_tile). False (the float path then) for a row
 * with a value not finite, or all below 2^-100 (unit could underflow). */
typedef struct q4_qint {
    int16_t *dig;
    float *off;
    float unit;
} q4_qint;

static inline bool q4_qint_of(const float *qr, int64_t d, q4_qint *qi)
{
    float amax = 0.0f;
    bool finite = true;
    for (int64_t c = 0; c < d; c++) {
        finite = finite && isfinite(qr[c]);
        amax = fabsf(qr[c]) > amax ? fabsf(qr[c]) : amax;
    }
    if (!finite || amax < 0x1p-100f)
        return false;
    int e;
    frexpf(amax, &e); /* amax < 2^e; powers of two below, so the scalings are exact */
    const float s_hi = ldexpf(1.0f, e - 14), to_hi = ldexpf(1.0f, 14 - e), to_lo = 256.0f * to_hi;
    for (int64_t blk = 0; blk < d / ATTN_Q4_BLOCK; blk++) {
        int32_t sum = 0; /* |sum| <= 32 · (2^22 + 128) */
        for (int j = 0; j < ATTN_Q4_BLOCK; j++) {
            const float v = qr[blk * ATTN_Q4_BLOCK + j], hi = nearbyintf(v * to_hi);
            const float lo = nearbyintf((v - hi * s_hi) * to_lo); /* v - hi·s_hi: exact */
            qi->dig[blk * 64 + j] = (int16_t)hi;
            qi->dig[blk * 64 + 32 + j] = (int16_t)lo;
            sum += 256 * (int32_t)hi + (int32_t)lo;
        }
        qi->off[blk] = (float)sum;
    }
    qi->unit = s_hi / 256.0f;
    return true;
}

#endif
