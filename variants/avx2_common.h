/* avx2_common.h — AVX2 + FMA helpers shared by the avx2 variant's two files: avx2.c (the tiled
 * path, the entry points) and avx2_decode.c (the decode path): the workspace, 8-lane exp2 and
 * tanh, the options' score epilogue, band masks, the loads that widen half inputs, the online
 * softmax's row steps and the row store. Include it only from a file compiled with the avx2
 * ISA flags (meson.build: -mavx2 -mfma -mf16c). */
#ifndef ATTN_AVX2_COMMON_H
#define ATTN_AVX2_COMMON_H

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "avx2_common.h needs the avx2 ISA flags (see meson.build)"
#endif

#include "exp2_poly.h"
#include "variant.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

enum { DECODE_MAX_ROWS = 8 }; /* groups with at most this many rows take the decode path */

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ---- workspace ---------------------------------------------------------------------------- */

/* A task's workspace (avx2.c lays it out: workspace_layout). The decode path uses the Q panels
 * (its half Q rows, widened), DEC_R score rows and its rows' state, not the K/V panels. */
typedef struct workspace {
    float *q_panel;  /* [bqp/MR][d][MR] */
    float *k_panel;  /* [bk/NR][d][NR] */
    float *v_panel;  /* [bk][dp] */
    float *scores;   /* [bqp][s_ld]: S, then P in place */
    float *acc;      /* [bqp][dp] unnormalised O */
    float *max_vec;  /* [bqp][8] running vector max of the scores */
    float *run_max;  /* [bqp] row max in log2 units */
    float *run_sum;  /* [bqp] */
    int64_t *limit;  /* [bqp] key limit of each row */
    int64_t *first;  /* [bqp] first key of each row (the sliding window's left edge) */
    float *slope, *pos; /* [bqp] ALiBi slope·log2(e) and i' of each row */
    int64_t s_ld;
} workspace;

/* ---- vector helpers ----------------------------------------------------------------------- */

/* 2^x for x <= 0 or NaN (exp2_poly.h): p(f)·2^n with n added to the exponent field. x below
 * ATTN_EXP2_MIN (and -inf) gives 0; NaN stays NaN (its exponent field is all ones and
 * cvtps(NaN) << 23 adds nothing). */
ALWAYS_INLINE __m256 exp2_nonpos(__m256 x)
{
    const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(x, n);
    __m256 p = _mm256_set1_ps(ATTN_EXP2_C5);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_EXP2_C4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_EXP2_C3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_EXP2_C2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_EXP2_C1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_EXP2_C0));
    const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    const __m256 r = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
    const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(ATTN_EXP2_MIN), _CMP_LT_OQ);
    return _mm256_andnot_ps(tiny, r);
}

/* tanh(x) for 8 lanes, as tanh_ps of avx512_common.h (exp2_poly.h's two halves): the Taylor
 * series below ATTN_TANH_SMALL, else sign(x)·(1 - e)/(1 + e) with e = 2^(-2|x|·log2(e)). */
ALWAYS_INLINE __m256 tanh8(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_andnot_ps(sign, x);
    const __m256 e = exp2_nonpos(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f * ATTN_LOG2E)));
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 big = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
    const __m256 x2 = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(ATTN_TANH_C11);
    y = _mm256_fmadd_ps(y, x2, _mm256_set1_ps(ATTN_TANH_C9));
    y = _mm256_fmadd_ps(y, x2, _mm256_set1_ps(ATTN_TANH_C7));
    y = _mm256_fmadd_ps(y, x2, _mm256_set1_ps(ATTN_TANH_C5));
    y = _mm256_fmadd_ps(y, x2, _mm256_set1_ps(ATTN_TANH_C3));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(y, x2), x, x);
    const __m256 is_small = _mm256_cmp_ps(a, _mm256_set1_ps(ATTN_TANH_SMALL), _CMP_LT_OQ);
    return _mm256_blendv_ps(_mm256_or_ps(big, _mm256_and_ps(x, sign)), small, is_small);
}

/* The options' epilogue of scores in log2 units (keys along the lanes, from key `key`): the
 * soft cap cl·tanh(s / cl) (cl = c·log2(e)), then the ALiBi bias slope·(key + lane - i'), the
 * difference exact in float. */
typedef struct score_opts {
    bool softcap, alibi;
    __m256 cl, inv_cl;
} score_opts;

ALWAYS_INLINE __m256 apply_options(const score_opts *o, __m256 s, int64_t key, float slope,
                                   float pos)
{
    if (!o) /* a constant NULL at the call: the plain kernel, nothing of this compiled in */
        return s;
    if (o->softcap)
        s = _mm256_mul_ps(o->cl, tanh8(_mm256_mul_ps(s, o->inv_cl)));
    if (o->alibi) {
        const __m256 j = _mm256_add_ps(_mm256_set1_ps((float)key),
                                       _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7));
        s = _mm256_fmadd_ps(_mm256_set1_ps(slope), _mm256_sub_ps(j, _mm256_set1_ps(pos)), s);
    }
    return s;
}

static inline score_opts score_opts_of(const attn_problem *p)
{
    const float cl = p->softcap * ATTN_LOG2E;
    return (score_opts){.softcap = p->softcap != 0.0f, .alibi = p->alibi_slopes != NULL,
                        .cl = _mm256_set1_ps(cl),
                        .inv_cl = _mm256_set1_ps(cl != 0.0f ? 1.0f / cl : 0.0f)};
}

/* Sum of the 8 lanes. */
ALWAYS_INLINE float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Largest non-NaN lane (-inf when none): max(x, m) returns m when x is NaN. */
ALWAYS_INLINE float hmax(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_max_ps(_mm_movehl_ps(s, s), s);
    s = _mm_max_ss(_mm_movehdup_ps(s), s);
    return _mm_cvtss_f32(s);
}

/* Lanes l with l < n (n clamped to [0, 8]) all ones. */
ALWAYS_INLINE __m256i lanes_below(int64_t n)
{
    const int32_t k = (int32_t)(n < 0 ? 0 : n > 8 ? 8 : n);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Keys [key, key + 8) of a row's band [first, limit) as a lane mask. */
ALWAYS_INLINE __m256 band_lanes(int64_t key, int64_t first, int64_t limit)
{
    return _mm256_castsi256_ps(
        _mm256_andnot_si256(lanes_below(first - key), lanes_below(limit - key)));
}

/* ---- loads that widen half inputs --------------------------------------------------------- */

/* Element c of a row of dt elements, as float32 (exact). */
ALWAYS_INLINE float elem(const void *row, int64_t c, attn_dtype dt)
{
    if (dt == ATTN_F32)
        return ((const float *)row)[c];
    const uint16_t x = ((const uint16_t *)row)[c];
    return dt == ATTN_BF16 ? attn_bf16_to_f32(x) : attn_f16_to_f32(x);
}

/* Eight halves widened: bf16 is the top half of a float32, f16 converts with F16C. */
ALWAYS_INLINE __m256 widen8(__m128i h, attn_dtype dt)
{
    if (dt == ATTN_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* Elements [c, c + 8) of a row of dt elements, as float32. Inlined with a constant dt, so
 * each dtype gets its own copy of the loop that calls it. */
ALWAYS_INLINE __m256 load8(const void *row, int64_t c, attn_dtype dt)
{
    if (dt == ATTN_F32)
        return _mm256_loadu_ps((const float *)row + c);
    return widen8(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + c)), dt);
}

/* Elements [c, c + n), 0 < n < 8, lanes past n zero, nothing past them read; `tail` is
 * lanes_below(n). AVX2 has no 16-bit masked load: half rows take their whole pairs with a
 * 32-bit masked load and an odd last element by a blend of its broadcast (no call, so the
 * loops around keep their accumulators in registers; a memcpy here spilled them). */
ALWAYS_INLINE __m256 load8_tail(const void *row, int64_t c, int64_t n, __m256i tail,
                                attn_dtype dt)
{
    if (dt == ATTN_F32)
        return _mm256_maskload_ps((const float *)row + c, tail);
    const uint16_t *x = (const uint16_t *)row + c;
    const __m128i pairs = _mm_cmpgt_epi32(_mm_set1_epi32((int)(n / 2)), _mm_setr_epi32(0, 1, 2, 3));
    __m128i h = _mm_maskload_epi32((const int *)(const void *)x, pairs);
    if (n & 1) {
        const __m128i last = _mm_cmpeq_epi16(_mm_set1_epi16((short)(n - 1)),
                                             _mm_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7));
        h = _mm_blendv_epi8(h, _mm_set1_epi16((short)x[n - 1]), last);
    }
    return widen8(h, dt);
}

/* Row j of a tensor of dt elements with row stride ld (elements) from row 0 at base. */
ALWAYS_INLINE const void *row_at(const void *base, int64_t j, int64_t ld, attn_dtype dt)
{
    return (const char *)base + j * ld * (dt == ATTN_F32 ? 4 : 2);
}

/* ---- online softmax and rows -------------------------------------------------------------- */

/* P = 2^(S - m) in place over n (a multiple of 8) scores; returns ΣP. m = -inf (no finite
 * score yet) is taken as 0 so that masked -inf stays 0 and a NaN score stays NaN. */
static inline float exp_row(float *s, int64_t n, float m)
{
    const __m256 vm = _mm256_set1_ps(m == -INFINITY ? 0.0f : m);
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256 p0 = exp2_nonpos(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        const __m256 p1 = exp2_nonpos(_mm256_sub_ps(_mm256_loadu_ps(s + j + 8), vm));
        _mm256_storeu_ps(s + j, p0);
        _mm256_storeu_ps(s + j + 8, p1);
        sum0 = _mm256_add_ps(sum0, p0);
        sum1 = _mm256_add_ps(sum1, p1);
    }
    for (; j < n; j += 8) {
        const __m256 p0 = exp2_nonpos(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(s + j, p0);
        sum0 = _mm256_add_ps(sum0, p0);
    }
    return hsum(_mm256_add_ps(sum0, sum1));
}

static inline void scale_row(float *a, int64_t dp, float factor)
{
    const __m256 f = _mm256_set1_ps(factor);
    for (int64_t c = 0; c < dp; c += 8)
        _mm256_store_ps(a + c, _mm256_mul_ps(_mm256_load_ps(a + c), f));
}

/* One online-softmax step of a row: a block of n scores s (log2 units; n a multiple of 8) whose
 * max is m_blk joins the row's running max and sum. When the block raises the max, the
 * accumulator (dp floats) and the sum are rescaled by 2^(old max - new max) (0 when the old max
 * is -inf); the scores become the block's weights 2^(s - max), and their sum joins the sum. */
static inline void online_softmax_step(float *s, int64_t n, float m_blk, float *run_max,
                                       float *run_sum, float *acc, int64_t dp)
{
    if (m_blk > *run_max) {
        const float alpha = attn_exp2_nonpos(*run_max - m_blk);
        scale_row(acc, dp, alpha);
        *run_sum *= alpha;
        *run_max = m_blk;
    }
    *run_sum += exp_row(s, n, *run_max);
}

/* O row = acc · inv over d columns (inv = attn_row_norm: 1/l, the sink in l); l = 0 (no key
 * seen) gives zeros. */
static inline void store_row(float *o, const float *acc, float l, float norm, int64_t d)
{
    const __m256 inv = _mm256_set1_ps(norm);
    const bool none = l == 0.0f;
    int64_t c = 0;
    for (; c + 8 <= d; c += 8)
        _mm256_storeu_ps(o + c, none ? _mm256_setzero_ps()
                                     : _mm256_mul_ps(_mm256_load_ps(acc + c), inv));
    if (c < d)
        _mm256_maskstore_ps(o + c, lanes_below(d - c),
                            none ? _mm256_setzero_ps()
                                 : _mm256_mul_ps(_mm256_load_ps(acc + c), inv));
}

/* Query head and index of flattened row r of the group. */
static inline void row_of(const attn_group_rows *gr, const attn_task *t, int64_t r,
                          int64_t *h, int64_t *i)
{
    *h = gr->first_head + r / gr->rows;
    *i = t->row_begin + r % gr->rows;
}

/* What a run computes: keys [key_begin, key_end) of each row, and where the rows go: O
 * (normalised) or, for run_partial, the unnormalised partials at row index part_row0 + r. */
typedef struct key_range {
    int64_t key_begin, key_end;
    const attn_partial *part;
    int64_t part_row0;
} key_range;

/* Row r of a group done: O row = acc / l, or its partials (max back in natural units). */
static inline void finish_row(const attn_task *t, const attn_group_rows *gr,
                              const key_range *kr, int64_t r, const float *acc, float l,
                              float m_log2)
{
    const int64_t d = t->problem->head_dim;
    if (kr->part) {
        const int64_t row = kr->part_row0 + r;
        kr->part->max[row] = m_log2 == -INFINITY ? -INFINITY : m_log2 / ATTN_LOG2E;
        kr->part->sum[row] = l;
        memcpy(kr->part->acc + row * d, acc, (size_t)d * sizeof *acc);
        return;
    }
    int64_t h, i;
    row_of(gr, t, r, &h, &i);
    const attn_problem *p = t->problem;
    store_row(attn_o_row(t, gr->b, h, i), acc, l,
              attn_row_norm(m_log2 / ATTN_LOG2E, l, p->sinks ? p->sinks[h] : -INFINITY), d);
}

/* The decode path (avx2_decode.c) for one group of at most DECODE_MAX_ROWS rows: keys
 * [kr->key_begin, kr->key_end) in blocks of bk, read in place; the rows go to O or partials. */
void attn_avx2_decode_group(const attn_task *t, const workspace *ws, const attn_group_rows *gr,
                            const key_range *kr, int64_t bk, float scale_log2e);

#endif
