/* exp2_poly.h — the 2^x used by every SIMD softmax, described once so all ISAs agree.
 *
 * The kernels fold scale·log2(e) into the score epilogue, so after max subtraction the softmax
 * needs 2^x for x <= 0 only. Range reduction with one constant: n = round(x), f = x - n in
 * [-0.5, 0.5]; 2^x = p(f)·2^n with p a degree-5 polynomial (Horner, FMA). 2^n is applied with
 * vscalefps (AVX-512) or by adding n to the exponent field (AVX2, NEON). Inputs below
 * ATTN_EXP2_MIN give 0: their weight is under 2^-126 of the row maximum's, far below float
 * resolution of the sum (which is >= 1).
 *
 * Coefficients: an iteratively reweighted least-squares (near-minimax) fit of the relative
 * error of 2^f on [-0.5, 0.5] with c0 fixed to 1, rounded to float. tests/test_exp2.c measures
 * the float FMA Horner evaluation against exp2() in double over [-126, 0] and fails above
 * 3 ulp; the figures it prints are in docs/ARCHITECTURE.md. */
#ifndef ATTN_EXP2_POLY_H
#define ATTN_EXP2_POLY_H

#include <math.h>

#define ATTN_EXP2_C0 1.0f /* exact, so 2^0 = 1 and values just below 0 stay just below 1 */
#define ATTN_EXP2_C1 0x1.62e42ap-1f
#define ATTN_EXP2_C2 0x1.ebf9bcp-3f
#define ATTN_EXP2_C3 0x1.c6b752p-5f
#define ATTN_EXP2_C4 0x1.3cea88p-7f
#define ATTN_EXP2_C5 0x1.5bba0cp-10f
#define ATTN_EXP2_MIN (-126.0f)
#define ATTN_LOG2E 1.44269504088896340736f

/* Scalar model of the vector code, for tails and for the accuracy test. x <= 0 or NaN. */
static inline float attn_exp2_nonpos(float x)
{
    if (isnan(x))
        return x;
    if (x < ATTN_EXP2_MIN)
        return 0.0f;
    const float n = nearbyintf(x), f = x - n;
    float p = ATTN_EXP2_C5;
    p = fmaf(p, f, ATTN_EXP2_C4);
    p = fmaf(p, f, ATTN_EXP2_C3);
    p = fmaf(p, f, ATTN_EXP2_C2);
    p = fmaf(p, f, ATTN_EXP2_C1);
    p = fmaf(p, f, ATTN_EXP2_C0);
    return ldexpf(p, (int)n);
}

/* 2^x for weights that are rounded to bf16 next (the bf16 kernels' P): a degree-3 polynomial on
 * the same range reduction, relative error at most 1.02e-4 (2^-13.3; tests/test_exp2.c), a
 * twentieth of the half-ulp (2^-9) of the bf16 rounding that follows. Same fit, degree 3. */
#define ATTN_EXP2_BF16_C1 0x1.62f5f8p-1f
#define ATTN_EXP2_BF16_C2 0x1.f00b94p-3f
#define ATTN_EXP2_BF16_C3 0x1.c2a0aep-5f

/* Scalar model of the vector code. x <= 0 or NaN. */
static inline float attn_exp2_bf16_nonpos(float x)
{
    if (isnan(x))
        return x;
    if (x < ATTN_EXP2_MIN)
        return 0.0f;
    const float n = nearbyintf(x), f = x - n;
    float p = ATTN_EXP2_BF16_C3;
    p = fmaf(p, f, ATTN_EXP2_BF16_C2);
    p = fmaf(p, f, ATTN_EXP2_BF16_C1);
    p = fmaf(p, f, ATTN_EXP2_C0);
    return ldexpf(p, (int)n);
}

/* tanh for the soft cap of logits (attn.h's softcap): the odd Taylor series to x^11 below
 * ATTN_TANH_SMALL, where the first term left out (21844/6081075·x^13) is under 2^-26 of
 * tanh(x); above it (1 - e)/(1 + e) with e = 2^(-2|x|·log2(e)) from the exp2 polynomial, where
 * 1 - e >= 0.5 keeps the cancellation to about one bit. Scalar model of the vector code, for
 * the accuracy test (tests/test_exp2.c: 4.03 ulp, relative error 2.7e-7 at most). */
#define ATTN_TANH_SMALL 0.35f
#define ATTN_TANH_C3 (-1.0f / 3.0f)
#define ATTN_TANH_C5 (2.0f / 15.0f)
#define ATTN_TANH_C7 (-17.0f / 315.0f)
#define ATTN_TANH_C9 (62.0f / 2835.0f)
#define ATTN_TANH_C11 (-1382.0f / 155925.0f)

static inline float attn_tanh_model(float x)
{
    const float a = fabsf(x);
    if (a < ATTN_TANH_SMALL) {
        const float x2 = x * x;
        float y = ATTN_TANH_C11;
        y = fmaf(y, x2, ATTN_TANH_C9);
        y = fmaf(y, x2, ATTN_TANH_C7);
        y = fmaf(y, x2, ATTN_TANH_C5);
        y = fmaf(y, x2, ATTN_TANH_C3);
        return fmaf(y * x2, x, x);
    }
    const float e = attn_exp2_nonpos(a * (-2.0f * ATTN_LOG2E));
    return copysignf((1.0f - e) / (1.0f + e), x);
}

#endif
