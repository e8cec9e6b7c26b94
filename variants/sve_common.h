/* sve_common.h — what the SVE packed-stream variants (sve.c, sve_bf16.c) share: their tunables,
 * the 2^x vector polynomial, the score epilogue of one row's panel, the running-max step of the
 * softmax, and the macros that spell out the 8 rows of a micro-tile. Include it only from a file
 * compiled with SVE flags (meson.build: -march=armv8.2-a+sve...); the loop over query tiles and
 * key blocks is packed_stream.h's. */
#ifndef ATTN_SVE_COMMON_H
#define ATTN_SVE_COMMON_H

#if !defined(__ARM_FEATURE_SVE)
#error "sve_common.h needs the SVE ISA flags (see meson.build)"
#endif

#include "exp2_poly.h"
#include "packed_stream.h"
#include "variant.h"

#include <arm_sve.h>
#include <math.h>

enum { P_BQ, P_BK };
enum {
    MR = STREAM_MR,    /* query rows per micro-tile */
    MAX_PANEL = 128,   /* 2 vectors of floats at the largest VL, 2048 bits */
};

static const attn_param_info sve_stream_params[] = {
    [P_BQ] = {"bq", "query rows per tile (multiple of the 8-row micro-tile)", 8, 512, 8},
    [P_BK] = {"bk", "keys per packed K/V block (rounded up to 2 vectors of keys inside)", 8, 4096,
              8},
};

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* 2^x for x <= 0 (or NaN): neon.c's exp2_nonpos_f32x4 on a whole vector. */
static inline svfloat32_t exp2_nonpos_sve(svbool_t all, svfloat32_t x)
{
    const svfloat32_t n = svrintn_f32_x(all, x), f = svsub_f32_x(all, x, n);
    svfloat32_t p = svdup_n_f32(ATTN_EXP2_C5);
    p = svmad_n_f32_x(all, p, f, ATTN_EXP2_C4); /* p·f + c4 */
    p = svmad_n_f32_x(all, p, f, ATTN_EXP2_C3);
    p = svmad_n_f32_x(all, p, f, ATTN_EXP2_C2);
    p = svmad_n_f32_x(all, p, f, ATTN_EXP2_C1);
    p = svmad_n_f32_x(all, p, f, ATTN_EXP2_C0);
    const svint32_t exponent = svlsl_n_s32_x(all, svcvt_s32_f32_x(all, n), 23);
    const svfloat32_t r =
        svreinterpret_f32_s32(svadd_s32_x(all, svreinterpret_s32_f32(p), exponent));
    const svbool_t underflow = svcmplt_n_f32(all, x, ATTN_EXP2_MIN);
    return svsel_f32(underflow, svdup_n_f32(0.0f), r);
}

/* tanh(x), the vector form of attn_tanh_model (exp2_poly.h): the odd Taylor series below
 * ATTN_TANH_SMALL, else sign(x)·(1 - e)/(1 + e) with e = 2^(-2|x|·log2(e)) (0 for huge |x|:
 * ±1 exactly). NaN stays NaN. */
static inline svfloat32_t tanh_sve(svbool_t all, svfloat32_t x)
{
    const svfloat32_t a = svabs_f32_x(all, x);
    const svfloat32_t e = exp2_nonpos_sve(all, svmul_n_f32_x(all, a, -2.0f * ATTN_LOG2E));
    const svfloat32_t big = svdiv_f32_x(all, svsubr_n_f32_x(all, e, 1.0f),
                                        svadd_n_f32_x(all, e, 1.0f));
    const svfloat32_t x2 = svmul_f32_x(all, x, x);
    svfloat32_t y = svdup_n_f32(ATTN_TANH_C11);
    y = svmad_n_f32_x(all, y, x2, ATTN_TANH_C9); /* y·x2 + c9 */
    y = svmad_n_f32_x(all, y, x2, ATTN_TANH_C7);
    y = svmad_n_f32_x(all, y, x2, ATTN_TANH_C5);
    y = svmad_n_f32_x(all, y, x2, ATTN_TANH_C3);
    const svfloat32_t small = svmla_f32_x(all, x, svmul_f32_x(all, y, x2), x);
    /* big >= 0 takes x's sign bit; the Taylor lanes where |x| is small */
    const svuint32_t sign = svand_n_u32_x(all, svreinterpret_u32_f32(x), 0x80000000u);
    const svfloat32_t big_signed =
        svreinterpret_f32_u32(svorr_u32_x(all, svreinterpret_u32_f32(big), sign));
    return svsel_f32(svcmplt_n_f32(all, a, ATTN_TANH_SMALL), small, big_signed);
}

/* Writes one row's panel of scores (lo: keys j..j+VL, hi: the next VL) in the log2 domain:
 * scaled, the options applied (ro NULL: none; cap_log2 and inv_cap_log2 from micro_rows), the
 * mask added, -inf selected for the keys the row does not see (`visible` from j on, less the
 * `before` keys ahead of its window). */
static inline void store_score_row(svfloat32_t lo, svfloat32_t hi, int64_t visible,
                                   int64_t before, const attn_row_opts *ro, float cap_log2,
                                   float inv_cap_log2, int64_t j, const float *mask,
                                   float scale_log2e, float *out)
{
    const svbool_t all = svptrue_b32();
    const int64_t vl = (int64_t)svcntw();
    const svfloat32_t minus_inf = svdup_n_f32(-INFINITY);
    if (visible <= 0) {
        svst1_f32(all, out, minus_inf);
        svst1_f32(all, out + vl, minus_inf);
        return;
    }
    svbool_t see_lo = svwhilelt_b32_s64(0, visible), see_hi = svwhilelt_b32_s64(vl, visible);
    if (before > 0) { /* keys before the window's left edge drop out */
        see_lo = svbic_b_z(all, see_lo, svwhilelt_b32_s64(0, before));
        see_hi = svbic_b_z(all, see_hi, svwhilelt_b32_s64(vl, before));
    }
    lo = svmul_n_f32_x(all, lo, scale_log2e);
    hi = svmul_n_f32_x(all, hi, scale_log2e);
    if (ro && cap_log2 != 0.0f) { /* cl·tanh(s / cl) */
        lo = svmul_n_f32_x(all, tanh_sve(all, svmul_n_f32_x(all, lo, inv_cap_log2)), cap_log2);
        hi = svmul_n_f32_x(all, tanh_sve(all, svmul_n_f32_x(all, hi, inv_cap_log2)), cap_log2);
    }
    if (ro && ro->slope != 0.0f) {
        /* slope·log2(e)·(j - i'): j - i' in integers for the panel, the lane added exactly
         * (|j - i'| < 2^24) */
        const svfloat32_t rel = svadd_n_f32_x(all, svcvt_f32_s32_x(all, svindex_s32(0, 1)),
                                              (float)(j - ro->pos));
        const float slope = ro->slope * ATTN_LOG2E;
        lo = svmla_n_f32_x(all, lo, rel, slope);
        hi = svmla_n_f32_x(all, hi, svadd_n_f32_x(all, rel, (float)vl), slope);
    }
    if (mask) {
        /* Predicated loads read only the visible keys (the mask row ends at Lk >= limit). */
        const svfloat32_t m_lo = svld1_f32(see_lo, mask), m_hi = svld1_f32(see_hi, mask + vl);
        see_lo = svcmpne_n_f32(see_lo, m_lo, -INFINITY); /* NaN compares unequal: kept */
        see_hi = svcmpne_n_f32(see_hi, m_hi, -INFINITY);
        lo = svmla_n_f32_x(all, lo, m_lo, ATTN_LOG2E);
        hi = svmla_n_f32_x(all, hi, m_hi, ATTN_LOG2E);
    }
    svst1_f32(all, out, svsel_f32(see_lo, lo, minus_inf));
    svst1_f32(all, out + vl, svsel_f32(see_hi, hi, minus_inf));
}

/* The running-max step of a micro-tile row's softmax over `n` scores s (a multiple of VL): when
 * the block max passes *m (or is NaN), the accumulator row acc[0..d) and *l are rescaled and *m
 * moves to it. Returns what to subtract from the scores before 2^x: *m, or 0 while no key is
 * seen (every score -inf: 2^(-inf) gives 0 rather than 2^(-inf + inf) = NaN). */
static inline float softmax_raise_max(const float *restrict s, int64_t n, float *restrict m,
                                      float *restrict l, float *restrict acc, int64_t d)
{
    const svbool_t all = svptrue_b32();
    const int64_t vl = (int64_t)svcntw();
    svfloat32_t mx = svdup_n_f32(-INFINITY);
    for (int64_t j = 0; j < n; j += vl)
        mx = svmax_f32_x(all, mx, svld1_f32(all, s + j)); /* FMAX: a NaN score makes it NaN */
    const float block_max = svmaxv_f32(all, mx);
    if (block_max > *m || isnan(block_max)) {
        if (*m != -INFINITY) { /* acc and l are still 0 otherwise */
            const float alpha = attn_exp2_nonpos(*m - block_max); /* the vector code's model */
            for (int64_t c = 0; c < d; c += vl) {
                const svbool_t pg = svwhilelt_b32_s64(c, d);
                svst1_f32(pg, acc + c, svmul_n_f32_x(pg, svld1_f32(pg, acc + c), alpha));
            }
            *l *= alpha;
        }
        *m = block_max;
    }
    return *m == -INFINITY ? 0.0f : *m;
}

/* Sizeless SVE types cannot form arrays: the 8 rows of a tile are spelled out by this list, and
 * each row r has two accumulators lo##r, hi##r (2·VL keys or dims). */
#define SVE_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* A score tile's accumulators, zeroed; then stored through store_score_row for the panel from
 * key j (block end j1; locals rows, scale_log2e, s, lds of the score tile). */
#define SVE_ZERO(r) svfloat32_t lo##r = svdup_n_f32(0.0f), hi##r = lo##r;
#define SVE_STORE(r)                                                                              \
    store_score_row(lo##r, hi##r, (rows->limit[r] < j1 ? rows->limit[r] : j1) - j,               \
                    rows->first[r] - j, rows->opts ? &rows->ro[r] : NULL, rows->cap_log2,         \
                    rows->inv_cap_log2, j, rows->mask[r] ? rows->mask[r] + j : NULL, scale_log2e, \
                    s + (r) * lds);

/* A P·V tile's accumulators: rows of acc (stride ldacc) loaded and stored under the dim
 * predicates pg_lo, pg_hi (two: the second vector is in use). */
#define SVE_LOAD(r)                                                                               \
    svfloat32_t lo##r = svld1_f32(pg_lo, acc + (r) * ldacc);                                      \
    svfloat32_t hi##r = two ? svld1_f32(pg_hi, acc + (r) * ldacc + vl) : svdup_n_f32(0.0f);
#define SVE_SAVE(r)                                                                               \
    svst1_f32(pg_lo, acc + (r) * ldacc, lo##r);                                                   \
    if (two)                                                                                      \
        svst1_f32(pg_hi, acc + (r) * ldacc + vl, hi##r);

#endif
