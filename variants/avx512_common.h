/* avx512_common.h — AVX-512 vector helpers shared by the x86 tile variants (avx512.c,
 * avx512_bf16.c, amx_bf16.c). Include it only from a file compiled with the avx512 ISA flags
 * (meson.build: -mavx512f -mavx512bw -mavx512vl -mavx512dq); the bf16 conversions need
 * -mavx512bf16 as well and exist only where it is on. */
#ifndef ATTN_AVX512_COMMON_H
#define ATTN_AVX512_COMMON_H

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__)
#error "avx512_common.h needs the avx512 ISA flags (see meson.build)"
#endif

#include "exp2_poly.h"
#include "tile_rows.h"
#include "variant.h"

#include <immintrin.h>
#include <math.h>

/* How far (in log2 units) a row's tile (chunk, block) max may exceed its running max before its
 * accumulator is rescaled: weights stay <= 2^8, far from float overflow even summed over 2^31
 * keys, and the accumulator is rescaled a few times per row instead of at every rise. */
#define LAZY_MAX_BITS 8.0f

/* The `dec` parameter of the 32-row tile variants (avx512.c, avx512_bf16.c) and its default
 * rule (variant.h): up to 16 rows, a zmm's lanes, a 32-row tile idles, so the decode path, whose
 * vectors run along head_dim and which streams K/V from their rows, takes them. */
#define TILE_DEC_PARAM                                                                        \
    {"dec", "rows per group (heads per group x query rows) up to which the decode path runs; " \
            "0 = never", 0, 64, 1}
#define TILE_DEC_DEFAULT                                                                      \
    {ATTN_FACT_NONE, 0, 0, 0, 0, 0, 0, 0, 16,                                                 \
     "up to 16 rows (a zmm's lanes) the 32-row tile idles; decode streams K/V"}

/* Lanes [0, n) of 16 (of 32) set; n <= 0 gives none. */
static inline __mmask16 tail_mask16(int64_t n)
{
    return n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}
static inline __mmask32 tail_mask32(int64_t n)
{
    return n >= 32 ? 0xffffffffu : n <= 0 ? 0 : (__mmask32)((1u << n) - 1);
}

/* K/V stream loads, one rule for the decode paths: a 512-bit value from two 256-bit loads,
 * plain where the mask is all ones, masked otherwise (avx512_bf16.c through these; avx512.c's
 * load16_stream and the q4 path's load_chunk in avx512_kvq_vnni.h follow the same rule in forms
 * of their own, for the reasons beside them). On Zen 5 a masked load that misses the caches
 * streams ~2.5x slower than a plain one even under a mask of every lane (D1 from memory,
 * fraction of a plain read of the same K/V: f32 0.39 -> 0.95-1.00, bf16 0.32 -> 1.00-1.07, q4
 * 0.26 -> 0.62), and a stream of 512-bit loads is slower than one of 256-bit halves (D1 f32
 * 0.57 -> 0.92; on Zen 4 15-20%, 2 x 128 MiB read by blocks of 1 to 16 rows); the join costs
 * one shuffle per 64 bytes, far from the stream's limit. The test on the mask folds away where
 * the mask is a constant; where it is not, it costs a branch per load (avx512.c's one-row path
 * at d = 128: 0.53-0.62 of a read through it, 0.67-0.80 with the constant), so hot loops keep
 * a copy for whole vectors. */

/* 32 16-bit lanes at p (lanes outside m zero, not read). */
static inline __attribute__((always_inline)) __m512i load_stream_epi16(const void *p, __mmask32 m)
{
    const uint16_t *x = p;
    __m256i lo, hi;
    if (m == 0xffffffffu) {
        lo = _mm256_loadu_si256((const __m256i *)x);
        hi = _mm256_loadu_si256((const __m256i *)(x + 16));
    } else {
        lo = _mm256_maskz_loadu_epi16((__mmask16)m, x);
        hi = _mm256_maskz_loadu_epi16((__mmask16)(m >> 16), x + 16);
    }
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* 16 floats at p (lanes outside m zero, not read). */
static inline __attribute__((always_inline)) __m512 load_stream_ps(const float *p, __mmask16 m)
{
    __m256 lo, hi;
    if (m == 0xffff) {
        lo = _mm256_loadu_ps(p);
        hi = _mm256_loadu_ps(p + 8);
    } else {
        lo = _mm256_maskz_loadu_ps((__mmask8)m, p);
        hi = _mm256_maskz_loadu_ps((__mmask8)(m >> 8), p + 8);
    }
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}

/* 2^x for x <= LAZY_MAX_BITS or NaN (exp2_poly.h): round-to-nearest range reduction,
 * degree-5 polynomial, vscalefps for 2^n. Lanes outside `keep`, and x < ATTN_EXP2_MIN, give 0;
 * NaN stays NaN (the compare is unordered-true). */
static inline __m512 exp2_ps(__m512 x, __mmask16 keep)
{
    keep = _mm512_mask_cmp_ps_mask(keep, x, _mm512_set1_ps(ATTN_EXP2_MIN), _CMP_NLT_UQ);
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 y = _mm512_set1_ps(ATTN_EXP2_C5);
    y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(ATTN_EXP2_C4));
    y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(ATTN_EXP2_C3));
    y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(ATTN_EXP2_C2));
    y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(ATTN_EXP2_C1));
    y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(ATTN_EXP2_C0));
    return _mm512_maskz_scalef_ps(keep, y, n);
}

/* tanh(x) for 16 lanes, a few ulp (tests/test_exp2.c measures it): the odd Taylor series to
 * x^11 where |x| < ATTN_TANH_SMALL (its next term is below 2^-26 relative there), else
 * sign(x)·(1 - e)/(1 + e) with e = 2^(-2|x|·log2(e)) from exp2_ps, whose 0 for huge |x| gives
 * ±1 exactly; the reciprocal is vrcp14ps refined by one Newton step. NaN stays NaN. */
static inline __m512 tanh_ps(__m512 x)
{
    const __m512 a = _mm512_abs_ps(x);
    const __m512 e = exp2_ps(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f * ATTN_LOG2E)), 0xffff);
    const __m512 den = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
    __m512 inv = _mm512_rcp14_ps(den);
    inv = _mm512_mul_ps(inv, _mm512_fnmadd_ps(den, inv, _mm512_set1_ps(2.0f)));
    const __m512 big = _mm512_mul_ps(_mm512_sub_ps(_mm512_set1_ps(1.0f), e), inv);
    const __m512 x2 = _mm512_mul_ps(x, x);
    __m512 y = _mm512_set1_ps(ATTN_TANH_C11);
    y = _mm512_fmadd_ps(y, x2, _mm512_set1_ps(ATTN_TANH_C9));
    y = _mm512_fmadd_ps(y, x2, _mm512_set1_ps(ATTN_TANH_C7));
    y = _mm512_fmadd_ps(y, x2, _mm512_set1_ps(ATTN_TANH_C5));
    y = _mm512_fmadd_ps(y, x2, _mm512_set1_ps(ATTN_TANH_C3));
    const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(y, x2), x, x);
    /* the sign of x onto |tanh|: x's sign bit or'ed into big (>= 0) */
    const __m512 big_signed = _mm512_or_ps(big, _mm512_and_ps(x, _mm512_set1_ps(-0.0f)));
    return _mm512_mask_mov_ps(big_signed,
                              _mm512_cmp_ps_mask(a, _mm512_set1_ps(ATTN_TANH_SMALL), _CMP_LT_OQ),
                              small);
}

/* Soft-capping of scores in log2 units: s = c·tanh(s_nat / c) in natural units is
 * cl·tanh(s / cl) with cl = c·log2(e); inv_cl = 1/cl. */
static inline __m512 softcap_ps(__m512 s, __m512 cl, __m512 inv_cl)
{
    return _mm512_mul_ps(cl, tanh_ps(_mm512_mul_ps(s, inv_cl)));
}

/* The options of current models (attn.h) in the x86 tile variants' score epilogue, on scores
 * in log2 units (scale·log2(e) applied) and before any mask: the soft cap, then the ALiBi bias
 * slope·(j - i') with j - i' exact in float. */
typedef struct tile_options {
    bool softcap, alibi;
    __m512 cl, inv_cl; /* softcap·log2(e) and its inverse */
} tile_options;

static inline tile_options tile_options_of(const attn_problem *p)
{
    const float cl = p->softcap * ATTN_LOG2E;
    return (tile_options){.softcap = p->softcap != 0.0f, .alibi = p->alibi_slopes != NULL,
                          .cl = _mm512_set1_ps(cl),
                          .inv_cl = _mm512_set1_ps(cl != 0.0f ? 1.0f / cl : 0.0f)};
}

/* A tile of rows along the lanes (TILE_OPT_V vectors of 16) against TILE_OPT_K keys from j0:
 * slope and pos hold each row's slope·log2(e) and i' (block_alibi). */
enum { TILE_OPT_V = 2, TILE_OPT_K = 8 };
static inline void tile_options_apply(const tile_options *o, const float *slope, const float *pos,
                                      int64_t j0, __m512 s[TILE_OPT_V][TILE_OPT_K])
{
    if (o->softcap)
        for (int k = 0; k < TILE_OPT_V; k++)
            for (int j = 0; j < TILE_OPT_K; j++)
                s[k][j] = softcap_ps(s[k][j], o->cl, o->inv_cl);
    if (o->alibi)
        for (int k = 0; k < TILE_OPT_V; k++) {
            const __m512 sl = _mm512_loadu_ps(slope + 16 * k), ps = _mm512_loadu_ps(pos + 16 * k);
            for (int j = 0; j < TILE_OPT_K; j++)
                s[k][j] = _mm512_fmadd_ps(
                    sl, _mm512_sub_ps(_mm512_set1_ps((float)(j0 + j)), ps), s[k][j]);
        }
}

/* The masked part of the epilogue: the additive mask (NULL: none) added, excluded pairs set to
 * -inf, and vm narrowed to the pairs that count: keys j0 + j, j < nk, in each row's band
 * [first, limit) and not masked by -inf. The mask is gathered only for lanes still counted.
 * Kept out of line: only edge tiles take it, and inlined into avx512.c's key tile it cost P1
 * 1-4% (the fast path's code around it laid out worse; alternated runs, Zen 4). */
static __attribute__((noinline)) void tile_band_masked(const tile_band *b, const float *mask,
                                                       int64_t j0, int nk,
                                                       __m512 s[TILE_OPT_V][TILE_OPT_K],
                                                       __mmask16 vm[TILE_OPT_V][TILE_OPT_K])
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int k = 0; k < TILE_OPT_V; k++) {
        int32_t rel[16], relf[16]; /* the band of row r in the tile, 0..TILE_OPT_K */
        for (int r = 0; r < 16; r++) {
            const int64_t n = b->lim[16 * k + r] - j0, f = b->first[16 * k + r] - j0;
            rel[r] = n < 0 ? 0 : n > nk ? nk : (int32_t)n;
            relf[r] = f < 0 ? 0 : f > TILE_OPT_K ? TILE_OPT_K : (int32_t)f;
        }
        const __m512i relv = _mm512_loadu_si512(rel), relfv = _mm512_loadu_si512(relf);
        for (int j = 0; j < TILE_OPT_K; j++) {
            const __m512i jv = _mm512_set1_epi32(j);
            __mmask16 valid =
                _mm512_mask_cmple_epi32_mask(_mm512_cmpgt_epi32_mask(relv, jv), relfv, jv);
            __m512 sc = s[k][j];
            if (mask && valid) {
                const float *col = mask + j0 + j;
                const __m512i off_lo = _mm512_loadu_si512(b->moff + 16 * k);
                const __m512i off_hi = _mm512_loadu_si512(b->moff + 16 * k + 8);
                const __m256 lo = _mm512_mask_i64gather_ps(_mm256_setzero_ps(), (__mmask8)valid,
                                                           off_lo, col, 4);
                const __m256 hi = _mm512_mask_i64gather_ps(
                    _mm256_setzero_ps(), (__mmask8)(valid >> 8), off_hi, col, 4);
                const __m512 mv = _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
                valid = _mm512_mask_cmp_ps_mask(valid, mv, ninf, _CMP_NEQ_UQ);
                sc = _mm512_fmadd_ps(mv, _mm512_set1_ps(ATTN_LOG2E), sc);
            }
            s[k][j] = _mm512_mask_mov_ps(ninf, valid, sc);
            vm[k][j] = valid;
        }
    }
}

/* The score epilogue of one key tile from j0 (nk keys): raw scores ·c (scale·log2(e)), the
 * options, then unless `fast` (every pair counts) the band and mask, with vm the pairs that
 * count; with `fast`, vm is left as it is (unread: every lane counts). */
static inline void tile_scores(const tile_options *o, __m512 c, const float *mask,
                               const tile_band *b, int64_t j0, int nk, bool fast,
                               __m512 s[TILE_OPT_V][TILE_OPT_K],
                               __mmask16 vm[TILE_OPT_V][TILE_OPT_K])
{
    for (int k = 0; k < TILE_OPT_V; k++)
        for (int j = 0; j < TILE_OPT_K; j++)
            s[k][j] = _mm512_mul_ps(s[k][j], c);
    tile_options_apply(o, b->slope, b->pos, j0, s);
    if (!fast)
        tile_band_masked(b, mask, j0, nk, s, vm);
}

/* The lazy max test of one vector of 16 rows against a key tile's scores s: *tmax = their max
 * (a NaN skipped: vmaxps returns its second operand when either is NaN); returns the lanes
 * where it passes the running max m by more than LAZY_MAX_BITS (raise_max_lanes moves them). */
static inline __mmask16 tile_max_passes(const __m512 s[TILE_OPT_K], __m512 m, __m512 *tmax)
{
    __m512 t = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < TILE_OPT_K; j++)
        t = _mm512_max_ps(s[j], t);
    *tmax = t;
    return _mm512_cmp_ps_mask(t, _mm512_add_ps(m, _mm512_set1_ps(LAZY_MAX_BITS)), _CMP_GT_OQ);
}

/* The same for one row along the keys: 16 scores of keys j0 .. j0 + 15 (the decode paths). */
static inline __m512 row_options_apply(const tile_options *o, float slope, float pos, int64_t j0,
                                       __m512 s)
{
    if (o->softcap)
        s = softcap_ps(s, o->cl, o->inv_cl);
    if (o->alibi) {
        const __m512 j = _mm512_add_ps(_mm512_set1_ps((float)j0),
                                       _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                                      13, 14, 15));
        s = _mm512_fmadd_ps(_mm512_set1_ps(slope), _mm512_sub_ps(j, _mm512_set1_ps(pos)), s);
    }
    return s;
}

/* One vector of 16 sums from 16 vectors (lane j = Σ of a[j]'s lanes): a transpose-add tree
 * (pairs, quads, then the four 128-bit blocks). */
static inline __m512 sum16(const __m512 a[16])
{
    __m512 b[8], c[4], e[2];
    for (int i = 0; i < 8; i++) /* per 128-bit block: keys (2i, 2i+1, 2i, 2i+1) */
        b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; i++) { /* per 128-bit block: keys 4i..4i+3 */
        const __m512d x = _mm512_castps_pd(b[2 * i]), y = _mm512_castps_pd(b[2 * i + 1]);
        c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    for (int i = 0; i < 2; i++) /* blocks (0, 2 | 0, 2) + (1, 3 | 1, 3) of c[2i], c[2i+1] */
        e[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(e[0], e[1], 0x88),
                         _mm512_shuffle_f32x4(e[0], e[1], 0xdd));
}

/* Lazy max of a tile of rows in vertical layout: the lanes `need` of one vector of 16 rows
 * whose tile max tmax passed m + LAZY_MAX_BITS move their max m to tmax, their sum *l and their
 * accumulator columns ot[c·stride] (c < d) by 2^(m - m_new). Returns the new max. */
static inline __m512 raise_max_lanes(float *ot, int64_t stride, int64_t d, __m512 m, __m512 tmax,
                                     __mmask16 need, __m512 *l)
{
    const __m512 m_new = _mm512_mask_mov_ps(m, need, tmax);
    /* m = -inf lanes get corr 0: their l and Oᵀ are still 0 (or NaN, which stays NaN). */
    const __m512 corr = _mm512_mask_mov_ps(_mm512_set1_ps(1.0f), need,
                                           exp2_ps(_mm512_sub_ps(m, m_new), need));
    *l = _mm512_mul_ps(*l, corr);
    for (int64_t c = 0; c < d; c++)
        _mm512_store_ps(ot + c * stride, _mm512_mul_ps(_mm512_load_ps(ot + c * stride), corr));
    return m_new;
}

/* The decode paths' softmax step for one row on a block of 16 scores s (log2 units, scale
 * applied), lanes `valid` counted: the additive mask row `mask` (NULL: none; its -inf lanes drop
 * out), then the lazy max on the valid lanes that are not NaN (a NaN reaches l and O through the
 * weights): when the block max passes *m + LAZY_MAX_BITS, *m moves to it, the row's 16-lane sum
 * *l is rescaled and *corr is the factor for its accumulator (1 otherwise). *s becomes the
 * weights 2^(s - m), 0 outside the returned valid lanes; none left: nothing else changed. */
static inline __attribute__((always_inline)) __mmask16
decode_weights(__m512 *s, __mmask16 valid, const float *mask, float *m, __m512 *l, __m512 *corr)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    if (mask) {
        const __m512 mv = _mm512_maskz_loadu_ps(valid, mask);
        valid = _mm512_mask_cmp_ps_mask(valid, mv, ninf, _CMP_NEQ_UQ);
        *s = _mm512_fmadd_ps(mv, _mm512_set1_ps(ATTN_LOG2E), *s);
    }
    if (!valid)
        return 0;
    const __m512 x = _mm512_mask_mov_ps(ninf, valid, *s);
    *corr = _mm512_set1_ps(1.0f);
    /* The lazy test on the vector: only a block with a score past *m + LAZY_MAX_BITS (a row's
     * first blocks) takes the horizontal max, a chain of shuffles that every block would wait
     * on otherwise. Ordered compares, so NaN lanes never move *m. */
    if (_mm512_mask_cmp_ps_mask(valid, x, _mm512_set1_ps(*m + LAZY_MAX_BITS), _CMP_GT_OQ)) {
        const float bmax =
            _mm512_mask_reduce_max_ps(_mm512_mask_cmp_ps_mask(valid, x, x, _CMP_ORD_Q), x);
        *corr = exp2_ps(_mm512_set1_ps(*m - bmax), 0xffff);
        *l = _mm512_mul_ps(*l, *corr);
        *m = bmax;
    }
    *s = exp2_ps(_mm512_sub_ps(x, _mm512_set1_ps(*m)), valid);
    return valid;
}

/* The keys the task's next group reads first (end <= begin: no next group). A decode group
 * prefetches a distance ahead of its reads; in its last blocks that distance runs past its end,
 * and there it prefetches these instead, so the next group does not start cold (each group's
 * first 32 KiB of K and of V would otherwise wait on memory with no prefetch in flight: all of
 * D3's shortest sequences). */
typedef struct next_keys {
    int64_t b, hkv, begin, end;
} next_keys;

static inline next_keys next_keys_of(const attn_task *t, int64_t g, int64_t key_begin,
                                     int64_t key_end)
{
    if (g + 1 >= t->group_end)
        return (next_keys){0};
    const attn_group_rows gr = attn_group_rows_of(t, g + 1);
    const int64_t lim = attn_key_limit(t->problem, gr.b, t->row_end - 1); /* the last row's */
    return (next_keys){.b = gr.b, .hkv = gr.hkv, .begin = key_begin,
                       .end = lim < key_end ? lim : key_end};
}

/* attn_kv_rows_ahead for the rows from key j of (b, h) on, continued past `end` into the next
 * group's keys (nx). */
static inline __attribute__((always_inline)) void
kv_rows_ahead_next(const attn_task *t, char tensor, int64_t b, int64_t h, int64_t j, int64_t end,
                   const next_keys *nx, int count, const void *const near[], const void **rows)
{
    if (j < end || nx->end <= nx->begin)
        attn_kv_rows_ahead(t, tensor, b, h, j, end, count, near, rows);
    else
        attn_kv_rows_ahead(t, tensor, nx->b, nx->hkv, nx->begin + (j - end), nx->end, count,
                           near, rows);
}

#ifdef __AVX512BF16__
/* Two float vectors as 32 bf16 (lo first), rounded to nearest even. */
static inline __m512i to_bf16x32(__m512 lo, __m512 hi)
{
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* n (clamped to 0..32) elements of a row of dt (float32 or bf16) as 32 bf16, zeros past n:
 * bf16 as stored, float32 rounded to nearest even. Read as 32-bit lanes, lane p holds the
 * pair (x[2p], x[2p+1]). */
static inline __m512i load_bf16x32(const void *src, int64_t n, attn_dtype dt)
{
    if (dt == ATTN_BF16)
        return _mm512_maskz_loadu_epi16(tail_mask32(n), src);
    const float *f = src;
    return to_bf16x32(_mm512_maskz_loadu_ps(tail_mask16(n), f),
                      _mm512_maskz_loadu_ps(tail_mask16(n - 16), f + 16));
}

/* n (clamped to 0..16) elements of a row of dt as 16 bf16, zeros past n. */
static inline __m256i load_bf16x16(const void *src, int64_t n, attn_dtype dt)
{
    if (dt == ATTN_BF16)
        return _mm256_maskz_loadu_epi16(tail_mask16(n), src);
    return (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(tail_mask16(n), src));
}
#endif

#endif
