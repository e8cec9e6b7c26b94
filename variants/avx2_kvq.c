/* avx2_kvq.c — the avx2 variant on quantized K/V (int8, q4): the algorithm is kvq.h's, with
 * blocks of 8 keys (one ymm of scores); a chunk of a single row (decode MHA) takes blocks of
 * 16, the next block scored before the current one's V pass (single_row).
 *
 * Registers: the rows of a group (GQA heads, query rows; decode MHA: one) go in tiles of up to
 * 4 that share each dequantized value. Scores (dot_tile): int8 two keys side by side, each 8
 * values widened once (vpmovsxbd + vcvtdq2ps) for the tile's rows and each Q load serving both
 * keys; q4 key after key on the raw nibbles (vpmovzxbd, and/shift, vcvtdq2ps), the offset 8
 * taken off the summed scores at once; each key's sums wait for one vhaddps tree per row; a
 * single row's q4 scores in integers instead (q4_scores_int: Q in two int16 digits, vpmaddwd
 * on the nibbles as words, one vcvtdq2ps per head_dim block, the scales widened in key order). V: a
 * single row 64 values of head_dim at a time in registers across the block's keys, a tile 16
 * at a time with its 2 accumulators per row. The options of current models (soft cap, ALiBi)
 * go through the scalar attn_logit_log2 on the 8 scores: decode rarely has them, and they cost
 * one tanh per key. On Zen 4 the 4-row tiles are bound by the FMA pipes (vpmaddwd shares them,
 * and integer products at float32's error need Q in two int16 digits: no fewer multiplies). */
#include "exp2_poly.h"
#include "kvq.h"
#include "kvq_qint.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define KB 8 /* keys per block: one ymm of scores */
#define PREFETCH_KEYS 64

/* Lanes whose bit is set in `bits`. */
static inline __m256 bits_mask(unsigned bits)
{
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_castsi256_ps(
        _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)bits), bit), bit));
}

/* int32 lanes 0 <= i < 2^23 as the floats i - off, exactly: i's bits or'ed into 2^23's are the
 * float 2^23 + i, less 2^23 + off (for q4's nibbles less 8: vpor in place of vcvtdq2ps, one
 * FP-pipe instruction fewer). */
static inline __m256 small_ps(__m256i i, float off)
{
    const __m256 big = _mm256_castsi256_ps(_mm256_or_si256(i, _mm256_set1_epi32(0x4B000000)));
    return _mm256_sub_ps(big, _mm256_set1_ps(8388608.0f + off));
}

/* 8 int8 values widened (n < 8: the first n, zeros after; no byte beyond read). */
static inline __m256 int8x8(const int8_t *x, int64_t n)
{
    int64_t bits = 0;
    if (n >= 8)
        memcpy(&bits, x, 8); /* one 8-byte load */
    else
        for (int64_t i = 0; i < n; i++)
            bits |= (int64_t)(uint8_t)x[i] << 8 * i;
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bits)));
}
/* The 16 values of 8 bytes of a q4 block: low nibbles (even elements) and high ones. */
static inline void q4x16(const uint8_t *x, __m256 *even, __m256 *odd)
{
    int64_t bits;
    memcpy(&bits, x, 8);
    const __m256i b = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bits));
    *even = small_ps(_mm256_and_si256(b, _mm256_set1_epi32(15)), 8.0f);
    *odd = small_ps(_mm256_srli_epi32(b, 4), 8.0f);
}

/* One ymm of 8 sums (lane n = Σ of a[n]'s lanes). */
static inline __m256 sum8(const __m256 a[8])
{
    const __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    const __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(h0, h1, 0x20), _mm256_permute2f128_ps(h0, h1, 0x31));
}
static inline float hmax8(__m256 x)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
}
static inline float hsum8(__m256 x)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

/* 2^x (exp2_poly.h) for x <= 0 or NaN; lanes outside keep and x < ATTN_EXP2_MIN give 0. 2^n is
 * added to the exponent field (an n near -126 may land in the subnormals, with weights below
 * 2^-125 of the row max's). */
static inline __m256 exp2_ps(__m256 x, __m256 keep)
{
    const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(x, n);
    __m256 y = _mm256_set1_ps(ATTN_EXP2_C5);
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(ATTN_EXP2_C4));
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(ATTN_EXP2_C3));
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(ATTN_EXP2_C2));
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(ATTN_EXP2_C1));
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(ATTN_EXP2_C0));
    const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
    const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(ATTN_EXP2_MIN), _CMP_LT_OQ);
    return _mm256_and_ps(_mm256_andnot_ps(tiny, y), keep);
}

static inline void prefetch_rows(const kvq_group *x, int64_t j, int64_t n)
{
    const int64_t bytes = x->q4 ? x->d / 2 : x->d;
    for (int64_t jj = j; jj < j + n; jj++)
        for (int64_t c = 0; c < bytes; c += 64) {
            _mm_prefetch(x->k + jj * x->k_seq + c, _MM_HINT_T0);
            _mm_prefetch(x->v + jj * x->v_seq + c, _MM_HINT_T0);
        }
}

/* One key block: key n's K and V rows at k + n·k_seq, v + n·v_seq, n < count (no per-key
 * pointer array: 16 stores a block); only keys below count are ever read. */
typedef struct kvq_block {
    const char *k, *v;
    int64_t k_seq, v_seq, count;
    __m256 ks, vs;          /* int8: the row scales */
    const float *ksc, *vsc; /* q4: block scales, [blk·8 + n] (a single row's K: [n·nb + blk]) */
} kvq_block;
static inline const void *kb_k(const kvq_block *kb, int n) { return kb->k + n * kb->k_seq; }
static inline const void *kb_v(const kvq_block *kb, int n) { return kb->v + n * kb->v_seq; }

#include "avx2_kvq_scales.h"

/* Every field set (no zero initialisation first: a rep stosq per block). */
static inline void kvq_block_of(const kvq_group *x, int64_t j0, int64_t n, kvq_block *kb)
{
    kb->k = x->k + j0 * x->k_seq;
    kb->v = x->v + j0 * x->v_seq;
    kb->k_seq = x->k_seq;
    kb->v_seq = x->v_seq;
    kb->count = n;
    kb->ks = x->q4 ? _mm256_setzero_ps() : row_scales(x->ks, x->ks_seq, j0, n);
    kb->vs = x->q4 ? _mm256_setzero_ps() : row_scales(x->vs, x->vs_seq, j0, n);
    kb->ksc = kb->vsc = NULL;
}

/* V rows of a block over NC (a constant once inlined) chunks of 8 from c0, the accumulators in
 * registers across the keys, walked one after another in address order; int8 (w: weights
 * times the row scales). c0 + 8·NC <= d. */
static inline __attribute__((always_inline)) void int8_v_rows(const kvq_block *kb, int64_t c0,
                                                              int NC, float *o, __m256 cv,
                                                              unsigned keys, const float *w)
{
    __m256 acc[8];
    for (int c = 0; c < NC; c++)
        acc[c] = _mm256_mul_ps(_mm256_loadu_ps(o + c0 + 8 * c), cv);
#pragma GCC unroll 1
    for (int n = 0; n < KB; n++) {
        if (!(keys >> n & 1))
            continue;
        const int8_t *vn = (const int8_t *)kb_v(kb, n) + c0;
        const __m256 wn = _mm256_set1_ps(w[n]);
        for (int c = 0; c < NC; c++)
            acc[c] = _mm256_fmadd_ps(wn, int8x8(vn + 8 * c, 8), acc[c]);
    }
    for (int c = 0; c < NC; c++)
        _mm256_storeu_ps(o + c0 + 8 * c, acc[c]);
}

static inline void accumulate_v(const kvq_group *x, const kvq_block *kb, float *o, float corr,
                                unsigned keys, const float *w)
{
    const __m256 cv = _mm256_set1_ps(corr);
    if (!x->q4) {
        int64_t c0 = 0; /* 64 values at a time in registers, then the rest as before */
        for (; c0 + 64 <= x->d; c0 += 64)
            int8_v_rows(kb, c0, 8, o, cv, keys, w);
        for (int64_t c = c0; c < x->d; c += 8) {
            __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(o + c), cv);
            const int64_t left = x->d - c;
            for (int n = 0; n < KB; n++)
                if (keys >> n & 1)
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(w[n]),
                                          int8x8((const int8_t *)kb_v(kb, n) + c, left), acc);
            _mm256_storeu_ps(o + c, acc);
        }
        return;
    }
    const int64_t nb = x->d / ATTN_Q4_BLOCK;
    const __m256 wv = _mm256_loadu_ps(w);
    for (int64_t blk = 0; blk < nb; blk++) {
        float *ob = o + 32 * blk;
        __m256 a0 = _mm256_mul_ps(_mm256_loadu_ps(ob), cv);
        __m256 a1 = _mm256_mul_ps(_mm256_loadu_ps(ob + 8), cv);
        __m256 a2 = _mm256_mul_ps(_mm256_loadu_ps(ob + 16), cv);
        __m256 a3 = _mm256_mul_ps(_mm256_loadu_ps(ob + 24), cv);
        float ws[KB];
        _mm256_storeu_ps(ws, _mm256_mul_ps(wv, _mm256_loadu_ps(kb->vsc + blk * KB)));
        for (int n = 0; n < KB; n++) {
            if (!(keys >> n & 1))
                continue;
            const uint8_t *vr = (const uint8_t *)kb_v(kb, n) + 16 * blk;
            __m256 e0, o0, e1, o1;
            q4x16(vr, &e0, &o0);
            q4x16(vr + 8, &e1, &o1);
            const __m256 wn = _mm256_set1_ps(ws[n]);
            a0 = _mm256_fmadd_ps(wn, e0, a0);
            a1 = _mm256_fmadd_ps(wn, e1, a1);
            a2 = _mm256_fmadd_ps(wn, o0, a2);
            a3 = _mm256_fmadd_ps(wn, o1, a3);
        }
        _mm256_storeu_ps(ob, a0);
        _mm256_storeu_ps(ob + 8, a1);
        _mm256_storeu_ps(ob + 16, a2);
        _mm256_storeu_ps(ob + 24, a3);
    }
}

typedef struct kvq_row {
    int64_t h, i, first, lim;
    attn_row_opts ro;
    bool options;
    float m, l; /* running max (log2 units), sum */
    const float *mask;
} kvq_row;

/* The keys j0 + n of a block within row rw's range [first, lim), as bits n. */
static inline unsigned range_keys(const kvq_row *rw, int64_t j0)
{
    const int64_t lo = rw->first > j0 ? rw->first - j0 : 0, hi = rw->lim - j0;
    if (hi <= 0 || lo >= KB)
        return 0;
    return (hi >= KB ? 0xffu : (1u << hi) - 1) & ~((1u << lo) - 1);
}

/* Row rw's weights of the block's keys j0 + n into w[n] (int8: times V's row scale) from its
 * scores sc (log2 units); updates its max and sum. Returns the keys that count (0: none, w
 * untouched) and the accumulator's correction. */
static inline unsigned row_block(const kvq_group *x, const kvq_block *kb, kvq_row *rw,
                                 __m256 sc, int64_t j0, float *w, float *corr)
{
    unsigned valid = range_keys(rw, j0);
    if (!valid)
        return 0;
    float s[KB];
    _mm256_storeu_ps(s, sc);
    if (rw->options || rw->mask)
        valid = kvq_row_logits(&rw->ro, rw->options, rw->mask, s, KB, j0, valid);
    if (!valid)
        return 0;
    const __m256 keep = bits_mask(valid), sv = _mm256_loadu_ps(s);
    if (_mm256_movemask_ps(_mm256_and_ps(keep, _mm256_cmp_ps(sv, sv, _CMP_UNORD_Q))))
        rw->l = NAN; /* a NaN score: a NaN row */
    const float bm = hmax8(_mm256_blendv_ps(_mm256_set1_ps(-INFINITY), sv, keep));
    const float m_new = bm > rw->m ? bm : rw->m; /* a NaN bm leaves m (as fmaxf) */
    if (m_new == -INFINITY)
        return 0;
    /* 2^(m - m_new) by the vector polynomial (m = -inf: 0), not libm's ldexpf; most blocks
     * keep the max */
    *corr = m_new == rw->m ? 1.0f
                           : _mm256_cvtss_f32(exp2_ps(_mm256_set1_ps(rw->m - m_new), bits_mask(1)));
    const __m256 pv = exp2_ps(_mm256_sub_ps(sv, _mm256_set1_ps(m_new)), keep);
    rw->l = rw->l * *corr + hsum8(pv);
    rw->m = m_new;
    _mm256_storeu_ps(w, x->q4 ? pv : _mm256_mul_ps(pv, kb->vs));
    return valid;
}

/* The 8 int8 values at x (all 8: n >= 8) or the first n of them, widened. */
static inline __m256 int8x8_full(const int8_t *x)
{
    int64_t bits;
    memcpy(&bits, x, 8);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bits)));
}
/* The 16 nibbles of 8 q4 bytes as stored (0..15, not less 8): low ones (even elements), high. */
static inline void q4raw16(const uint8_t *x, __m256 *even, __m256 *odd)
{
    int64_t bits;
    memcpy(&bits, x, 8);
    const __m256i b = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bits));
    *even = _mm256_cvtepi32_ps(_mm256_and_si256(b, _mm256_set1_epi32(15)));
    *odd = _mm256_cvtepi32_ps(_mm256_srli_epi32(b, 4));
}

/* The scores of a tile's NT rows (1..4, a constant once inlined; Q rows q + r·dpad) against
 * the block's keys (those outside `keys` may come out as anything: their lanes are not read).
 * int8: keys in pairs, each pair's two rows of K walked front to back side by side (adjacent
 * in memory), 8 values widened once for the NT rows and each Q load serving both keys, one
 * chain per (row, key, chunk of 8 per step: 2 for NT <= 2), so 4 to 8 FMA chains. q4: key
 * after key, raw nibbles (0..15) widened once for the NT rows, each block's 4 products per row
 * summed, times the key's block scale; the nibbles' offset 8 comes off the summed scores at
 * once: 8 · Σ_blk scale[blk] · (the row's Q summed over blk), qsum[r·nb + blk] (a float
 * rounding of magnitude near 8 · |q|, as the offset's subtraction per value had). Each key's
 * NT sums wait in sums until one vhaddps tree per row. */
static inline __attribute__((always_inline)) void dot_tile(const kvq_group *x,
                                                           const kvq_block *kb, const float *q,
                                                           const float *qsum, int64_t dpad,
                                                           int NT, unsigned keys, __m256 *scores)
{
    __m256 sums[4][KB];
    const int64_t d = x->d, nb = d / ATTN_Q4_BLOCK;
    if (!x->q4) {
        const int CH = NT <= 2 ? 2 : 1; /* chunks of 8 per step */
#pragma GCC unroll 1
        for (int n = 0; n < KB; n += 2) {
            __m256 a[4][2][2];
            for (int r = 0; r < NT; r++)
                for (int k = 0; k < 2; k++)
                    a[r][k][0] = a[r][k][1] = _mm256_setzero_ps();
            if (keys >> n & 3) {
                const int8_t *k0 = kb_k(kb, n), *k1 = kb_k(kb, n + 1 < kb->count ? n + 1 : n);
                int64_t c = 0;
                for (; c + 8 * CH <= d; c += 8 * CH)
                    for (int h = 0; h < CH; h++) {
                        const __m256 v0 = int8x8_full(k0 + c + 8 * h);
                        const __m256 v1 = int8x8_full(k1 + c + 8 * h);
                        for (int r = 0; r < NT; r++) {
                            __m256 qv = _mm256_loadu_ps(q + r * dpad + c + 8 * h);
                            __asm__("" : "+x"(qv)); /* one load for both keys' FMAs, not two */
                            a[r][0][h] = _mm256_fmadd_ps(qv, v0, a[r][0][h]);
                            a[r][1][h] = _mm256_fmadd_ps(qv, v1, a[r][1][h]);
                        }
                    }
                for (; c < d; c += 8) { /* q is zero-padded to 16 */
                    const __m256 v0 = int8x8(k0 + c, d - c), v1 = int8x8(k1 + c, d - c);
                    for (int r = 0; r < NT; r++) {
                        const __m256 qv = _mm256_loadu_ps(q + r * dpad + c);
                        a[r][0][0] = _mm256_fmadd_ps(qv, v0, a[r][0][0]);
                        a[r][1][0] = _mm256_fmadd_ps(qv, v1, a[r][1][0]);
                    }
                }
            }
            for (int r = 0; r < NT; r++) {
                sums[r][n] = _mm256_add_ps(a[r][0][0], a[r][0][1]);
                sums[r][n + 1] = _mm256_add_ps(a[r][1][0], a[r][1][1]);
            }
        }
        for (int r = 0; r < NT; r++)
            scores[r] = _mm256_mul_ps(sum8(sums[r]), kb->ks);
        return;
    }
#pragma GCC unroll 1
    for (int n = 0; n < KB; n++) {
        __m256 a0[4];
        for (int r = 0; r < NT; r++)
            a0[r] = _mm256_setzero_ps();
        if (keys >> n & 1) {
            const uint8_t *kn = kb_k(kb, n);
            for (int64_t blk = 0; blk < nb; blk++) { /* Q's block: even elements, then odd */
                __m256 e0, o0, e1, o1;
                q4raw16(kn + 16 * blk, &e0, &o0);
                q4raw16(kn + 16 * blk + 8, &e1, &o1);
                const __m256 sc = _mm256_set1_ps(kb->ksc[blk * KB + n]);
                for (int r = 0; r < NT; r++) {
                    const float *qb = q + r * dpad + 32 * blk;
                    __m256 part = _mm256_mul_ps(_mm256_loadu_ps(qb), e0);
                    part = _mm256_fmadd_ps(_mm256_loadu_ps(qb + 8), e1, part);
                    part = _mm256_fmadd_ps(_mm256_loadu_ps(qb + 16), o0, part);
                    part = _mm256_fmadd_ps(_mm256_loadu_ps(qb + 24), o1, part);
                    a0[r] = _mm256_fmadd_ps(part, sc, a0[r]);
                }
            }
        }
        for (int r = 0; r < NT; r++)
            sums[r][n] = a0[r];
    }
    for (int r = 0; r < NT; r++) {
        __m256 off = _mm256_setzero_ps();
        for (int64_t blk = 0; blk < nb; blk++)
            off = _mm256_fmadd_ps(_mm256_loadu_ps(kb->ksc + blk * KB),
                                  _mm256_set1_ps(qsum[r * nb + blk]), off);
        scores[r] = _mm256_fnmadd_ps(off, _mm256_set1_ps(8.0f), sum8(sums[r]));
    }
}

/* 8 values of q4 bytes x as floats: the low nibbles (high: 0) or the high ones (1). */
static inline __m256 q4x8(const uint8_t *x, int high)
{
    int64_t bits;
    memcpy(&bits, x, 8);
    const __m256i b = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bits));
    const __m256i nib = high ? _mm256_srli_epi32(b, 4) : _mm256_and_si256(b, _mm256_set1_epi32(15));
    return small_ps(nib, 8.0f);
}

/* o_r = o_r·corr[r] + Σ_{n in keys} w[r·KB + n]·V[n] for a tile's NT rows (a constant once
 * inlined; accumulators o + r·dpad): head_dim 16 values at a time, the 2·NT accumulators in
 * registers across the block's keys, each key's 16 values widened once. A weight of a key
 * its row does not count is 0, and the widened values are integers (the scales are in the
 * weights), so such a key adds exactly 0. int8: w = weight · row scale; q4: ws[(r·nb + blk)·KB
 * + n] = weight · block scale. */
static inline __attribute__((always_inline)) void v_tile(const kvq_group *x, const kvq_block *kb,
                                                         int NT, float *o, int64_t dpad,
                                                         const float *corr, unsigned keys,
                                                         const float *w)
{
    const int64_t d = x->d, nb = d / ATTN_Q4_BLOCK;
    /* chunk c0 of 16: int8 values c0..c0+15; q4 block c0/32, its even (c0 % 32 == 0) or odd
     * half, at the same place of the permuted accumulator */
    for (int64_t c0 = 0; c0 + 16 <= d; c0 += 16) {
        const int64_t blk = c0 / 32;
        const int high = (int)(c0 / 16 % 2);
        const float *wc = x->q4 ? w + blk * KB : w;
        const int64_t wr = x->q4 ? nb * KB : KB; /* from one row's weights to the next's */
        __m256 a0[4], a1[4];
        for (int r = 0; r < NT; r++) {
            const __m256 cv = _mm256_set1_ps(corr[r]);
            a0[r] = _mm256_mul_ps(_mm256_loadu_ps(o + r * dpad + c0), cv);
            a1[r] = _mm256_mul_ps(_mm256_loadu_ps(o + r * dpad + c0 + 8), cv);
        }
#pragma GCC unroll 1
        for (int n = 0; n < KB; n++) {
            if (!(keys >> n & 1))
                continue;
            __m256 v0, v1;
            if (x->q4) {
                const uint8_t *vn = (const uint8_t *)kb_v(kb, n) + 16 * blk;
                v0 = q4x8(vn, high);
                v1 = q4x8(vn + 8, high);
            } else {
                const int8_t *vn = (const int8_t *)kb_v(kb, n) + c0;
                v0 = int8x8(vn, 8);
                v1 = int8x8(vn + 8, 8);
            }
            for (int r = 0; r < NT; r++) {
                const __m256 wn = _mm256_set1_ps(wc[r * wr + n]);
                a0[r] = _mm256_fmadd_ps(wn, v0, a0[r]);
                a1[r] = _mm256_fmadd_ps(wn, v1, a1[r]);
            }
        }
        for (int r = 0; r < NT; r++) {
            _mm256_storeu_ps(o + r * dpad + c0, a0[r]);
            _mm256_storeu_ps(o + r * dpad + c0 + 8, a1[r]);
        }
    }
    for (int64_t c = d / 16 * 16; c < d; c += 8) { /* int8's last values (q4: d % 32 == 0) */
        __m256 a[4];
        for (int r = 0; r < NT; r++)
            a[r] = _mm256_mul_ps(_mm256_loadu_ps(o + r * dpad + c), _mm256_set1_ps(corr[r]));
        for (int n = 0; n < KB; n++) {
            if (!(keys >> n & 1))
                continue;
            const __m256 v0 = int8x8((const int8_t *)kb_v(kb, n) + c, d - c);
            for (int r = 0; r < NT; r++)
                a[r] = _mm256_fmadd_ps(_mm256_set1_ps(w[r * KB + n]), v0, a[r]);
        }
        for (int r = 0; r < NT; r++)
            _mm256_storeu_ps(o + r * dpad + c, a[r]);
    }
}

/* A tile of NT rows (a constant once inlined) over the block of keys j0: the shared scores,
 * each row's softmax step, the shared V pass. w: KB · 4 weights; ws (q4): 4 · d / 4. */
static inline __attribute__((always_inline)) void tile_block(const kvq_group *x,
                                                             const kvq_block *kb, kvq_row *rows,
                                                             int NT, const float *q,
                                                             const float *qsum, float *o,
                                                             int64_t dpad, int64_t j0, float *w,
                                                             float *ws)
{
    unsigned seen = 0;
    for (int r = 0; r < NT; r++)
        seen |= range_keys(&rows[r], j0);
    if (!seen)
        return;
    __m256 sc[4];
    dot_tile(x, kb, q, qsum, dpad, NT, seen, sc);
    float corr[4];
    unsigned counted = 0;
    for (int r = 0; r < NT; r++) {
        corr[r] = 1.0f;
        const unsigned keys = row_block(x, kb, &rows[r], sc[r], j0, w + KB * r, &corr[r]);
        /* a key the row does not count weighs exactly 0 (not 0 · a scale that is not finite) */
        _mm256_storeu_ps(w + KB * r,
                         keys ? _mm256_and_ps(_mm256_loadu_ps(w + KB * r), bits_mask(keys))
                              : _mm256_setzero_ps());
        counted |= keys;
    }
    if (!counted)
        return;
    if (NT == 1) { /* one row: 64 values of head_dim in registers at a time */
        accumulate_v(x, kb, o, corr[0], counted, w);
        return;
    }
    if (!x->q4) {
        v_tile(x, kb, NT, o, dpad, corr, counted, w);
        return;
    }
    const int64_t nb = x->d / ATTN_Q4_BLOCK;
    for (int r = 0; r < NT; r++)
        for (int64_t blk = 0; blk < nb; blk++)
            _mm256_storeu_ps(ws + (r * nb + blk) * KB,
                             _mm256_mul_ps(_mm256_loadu_ps(w + KB * r),
                                           _mm256_loadu_ps(kb->vsc + blk * KB)));
    v_tile(x, kb, NT, o, dpad, corr, counted, ws);
}

/* A single row (decode MHA) walks its keys in blocks of KB1 = 16, two halves of KB: one
 * softmax step and one V pass per 16 keys (the per-block work — the horizontal max and sum,
 * the exp2 polynomial, the accumulators' loads and stores — was most of a single row's time
 * at 8 keys), and block j+1 is scored between block j's softmax and its V pass, so the
 * softmax's latency overlaps independent products. */
#define KB1 (2 * KB)

/* The q4 scores of a block's keys (those in `keys`; the others come out as anything) against
 * a single row's integer Q: per key and head_dim block, its 16 bytes zero-extended to words
 * (low nibble: element 2i, high: 2i+1, the packed order's even then odd halves), vpmaddwd
 * with both digits, 256·hi + lo in int32, one vcvtdq2ps and one FMA with the block scale,
 * broadcast from the keys' scales widened in key order (kb->ksc[n·nb + blk],
 * q4_scales_by_key: no transposes); the nibbles' offset 8 comes off the 8 summed scores at
 * once (8 · Σ_blk scale · qi->off[blk]). NB: nb, a constant once inlined (4: head_dim 128),
 * or 0 for nbv. */
static inline __attribute__((always_inline)) __m256
q4_scores_int_nb(const kvq_block *kb, const q4_qint *qi, unsigned keys, int NB, int64_t nbv)
{
    const int64_t nb = NB ? NB : nbv;
    const __m256i low4 = _mm256_set1_epi16(15);
    __m256 sums[KB];
#pragma GCC unroll 1
    for (int n = 0; n < KB; n++) {
        __m256 acc = _mm256_setzero_ps();
        if (keys >> n & 1) {
            const uint8_t *kn = kb_k(kb, n);
            const float *sk = kb->ksc + n * nb;
            for (int64_t blk = 0; blk < nb; blk++) {
                const __m256i w =
                    _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(kn + 16 * blk)));
                const __m256i ev = _mm256_and_si256(w, low4), od = _mm256_srli_epi16(w, 4);
                const __m256i *dg = (const __m256i *)(qi->dig + 64 * blk);
                const __m256i hi =
                    _mm256_add_epi32(_mm256_madd_epi16(ev, _mm256_loadu_si256(dg)),
                                     _mm256_madd_epi16(od, _mm256_loadu_si256(dg + 1)));
                const __m256i lo =
                    _mm256_add_epi32(_mm256_madd_epi16(ev, _mm256_loadu_si256(dg + 2)),
                                     _mm256_madd_epi16(od, _mm256_loadu_si256(dg + 3)));
                const __m256 c =
                    _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_slli_epi32(hi, 8), lo));
                acc = _mm256_fmadd_ps(c, _mm256_set1_ps(sk[blk]), acc);
            }
        }
        sums[n] = acc;
    }
    return _mm256_mul_ps(_mm256_fnmadd_ps(q4_key_offsets(kb->ksc, qi->off, NB, nb),
                                          _mm256_set1_ps(8.0f), sum8(sums)),
                         _mm256_set1_ps(qi->unit));
}
static inline __m256 q4_scores_int(const kvq_group *x, const kvq_block *kb, const q4_qint *qi,
                                   unsigned keys)
{
    const int64_t nb = x->d / ATTN_Q4_BLOCK;
    return nb == 4 ? q4_scores_int_nb(kb, qi, keys, 4, 4) : q4_scores_int_nb(kb, qi, keys, 0, nb);
}

/* A single row's block of keys j0 (its keys up to last): both halves' rows and (q4) scales
 * widened into ksc, vsc (16 · d/32 floats each), and its scores against q (half 1 past the
 * row's keys: a copy of half 0, scored as no key). */
typedef struct row_block16_t {
    kvq_block kb[2];
    unsigned seen; /* the keys of the row's range, as bits n (half h: bits 8h..8h+7) */
    __m256 sc[2];
} row_block16_t;

static inline void single_scores(const kvq_group *x, const kvq_row *rw, const float *q,
                                 const float *qsum, const q4_qint *qi, int64_t dpad, int64_t j0,
                                 int64_t last, float *ksc, float *vsc, row_block16_t *b)
{
    const int64_t n = last - j0 < KB1 ? last - j0 : KB1, n0 = n < KB ? n : KB, nb = x->d / ATTN_Q4_BLOCK;
    b->seen = range_keys(rw, j0) | range_keys(rw, j0 + KB) << KB;
    kvq_block_of(x, j0, n0, &b->kb[0]);
    if (n > KB)
        kvq_block_of(x, j0 + KB, n - KB, &b->kb[1]);
    if (x->q4)
        for (int h = 0; h < 2; h++) {
            if (qi) /* key order, for q4_scores_int */
                q4_scales_by_key(x->ks, x->ks_seq, j0 + KB * h, h ? n - n0 : n0, nb,
                                 ksc + h * nb * KB);
            else
                q4_scales(x->ks, x->ks_seq, j0 + KB * h, h ? n - n0 : n0, nb, ksc + h * nb * KB);
            q4_scales(x->vs, x->vs_seq, j0 + KB * h, h ? n - n0 : n0, nb, vsc + h * nb * KB);
            b->kb[h].ksc = ksc + h * nb * KB;
            b->kb[h].vsc = vsc + h * nb * KB;
        }
    if (n <= KB) {
        b->kb[1] = b->kb[0];
        if (x->q4) { /* the zeros q4_scales wrote for no key */
            b->kb[1].ksc = ksc + nb * KB;
            b->kb[1].vsc = vsc + nb * KB;
        }
    }
    if (!b->seen)
        return;
    if (qi) {
        b->sc[0] = q4_scores_int(x, &b->kb[0], qi, b->seen & 0xffu);
        b->sc[1] = b->seen >> KB ? q4_scores_int(x, &b->kb[1], qi, b->seen >> KB)
                                 : _mm256_setzero_ps();
        return;
    }
    dot_tile(x, &b->kb[0], q, qsum, dpad, 1, b->seen & 0xffu, &b->sc[0]);
    if (b->seen >> KB)
        dot_tile(x, &b->kb[1], q, qsum, dpad, 1, b->seen >> KB, &b->sc[1]);
    else
        b->sc[1] = _mm256_setzero_ps();
}

/* row_block on 16 keys: the weights into w[0..15] (int8: times V's row scales). */
static inline unsigned row_block16(const kvq_group *x, const row_block16_t *b, kvq_row *rw,
                                   int64_t j0, float *w, float *corr)
{
    unsigned valid = b->seen;
    if (!valid)
        return 0;
    __m256 s0 = b->sc[0], s1 = b->sc[1];
    if (rw->options || rw->mask) {
        float s[KB1];
        _mm256_storeu_ps(s, s0);
        _mm256_storeu_ps(s + KB, s1);
        valid = kvq_row_logits(&rw->ro, rw->options, rw->mask, s, KB1, j0, valid);
        if (!valid)
            return 0;
        s0 = _mm256_loadu_ps(s);
        s1 = _mm256_loadu_ps(s + KB);
    }
    const __m256 keep0 = bits_mask(valid & 0xffu), keep1 = bits_mask(valid >> KB);
    if (_mm256_movemask_ps(_mm256_or_ps(_mm256_and_ps(keep0, _mm256_cmp_ps(s0, s0, _CMP_UNORD_Q)),
                                        _mm256_and_ps(keep1, _mm256_cmp_ps(s1, s1, _CMP_UNORD_Q)))))
        rw->l = NAN; /* a NaN score: a NaN row */
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const float bm = hmax8(_mm256_max_ps(_mm256_blendv_ps(ninf, s0, keep0),
                                         _mm256_blendv_ps(ninf, s1, keep1)));
    const float m_new = bm > rw->m ? bm : rw->m; /* a NaN bm leaves m (as fmaxf) */
    if (m_new == -INFINITY)
        return 0;
    *corr = m_new == rw->m ? 1.0f
                           : _mm256_cvtss_f32(exp2_ps(_mm256_set1_ps(rw->m - m_new), bits_mask(1)));
    const __m256 mv = _mm256_set1_ps(m_new);
    const __m256 p0 = exp2_ps(_mm256_sub_ps(s0, mv), keep0);
    const __m256 p1 = exp2_ps(_mm256_sub_ps(s1, mv), keep1);
    rw->l = rw->l * *corr + hsum8(_mm256_add_ps(p0, p1));
    rw->m = m_new;
    _mm256_storeu_ps(w, x->q4 ? p0 : _mm256_mul_ps(p0, b->kb[0].vs));
    _mm256_storeu_ps(w + KB, x->q4 ? p1 : _mm256_mul_ps(p1, b->kb[1].vs));
    return valid;
}

/* int8_v_rows over a 16-key block (both halves, keys as bits n of `keys`). */
static inline __attribute__((always_inline)) void int8_v_rows16(const kvq_block kb[2], int64_t c0,
                                                                int NC, float *o, __m256 cv,
                                                                unsigned keys, const float *w)
{
    __m256 acc[8];
    for (int c = 0; c < NC; c++)
        acc[c] = _mm256_mul_ps(_mm256_loadu_ps(o + c0 + 8 * c), cv);
    for (int h = 0; h < 2; h++) {
#pragma GCC unroll 1
        for (int n = 0; n < KB; n++) {
            if (!(keys >> (KB * h + n) & 1))
                continue;
            const int8_t *vn = (const int8_t *)kb_v(&kb[h], n) + c0;
            const __m256 wn = _mm256_set1_ps(w[KB * h + n]);
            for (int c = 0; c < NC; c++)
                acc[c] = _mm256_fmadd_ps(wn, int8x8_full(vn + 8 * c), acc[c]);
        }
    }
    for (int c = 0; c < NC; c++)
        _mm256_storeu_ps(o + c0 + 8 * c, acc[c]);
}

/* single_v's q4 part on NB (1 or 2, a constant once inlined) head_dim blocks from blk0: 4·NB
 * accumulators in registers across the 16 keys (two blocks: 8 FMA chains, each key's 32 bytes
 * in one pass). wv0, wv1: the keys' weights, 0 for keys not counted. */
static inline __attribute__((always_inline)) void q4_v_blocks(const kvq_block kb[2], float *o,
                                                              __m256 cv, unsigned keys,
                                                              __m256 wv0, __m256 wv1,
                                                              int64_t blk0, int NB)
{
    __m256 a[2][4], ws0[2], ws1[2];
    float ws[2][KB1];
    for (int b = 0; b < NB; b++) {
        for (int c = 0; c < 4; c++)
            a[b][c] = _mm256_mul_ps(_mm256_loadu_ps(o + 32 * (blk0 + b) + 8 * c), cv);
        ws0[b] = _mm256_mul_ps(wv0, _mm256_loadu_ps(kb[0].vsc + (blk0 + b) * KB));
        ws1[b] = _mm256_mul_ps(wv1, _mm256_loadu_ps(kb[1].vsc + (blk0 + b) * KB));
        _mm256_storeu_ps(ws[b], ws0[b]);
        _mm256_storeu_ps(ws[b] + KB, ws1[b]);
    }
    for (int h = 0; h < 2; h++) {
#pragma GCC unroll 1
        for (int n = 0; n < KB; n++) {
            if (!(keys >> (KB * h + n) & 1))
                continue;
            const uint8_t *vr = (const uint8_t *)kb_v(&kb[h], n) + 16 * blk0;
            for (int b = 0; b < NB; b++) {
                __m256 e0, o0, e1, o1;
                q4raw16(vr + 16 * b, &e0, &o0);
                q4raw16(vr + 16 * b + 8, &e1, &o1);
                const __m256 wn = _mm256_set1_ps(ws[b][KB * h + n]);
                a[b][0] = _mm256_fmadd_ps(wn, e0, a[b][0]);
                a[b][1] = _mm256_fmadd_ps(wn, e1, a[b][1]);
                a[b][2] = _mm256_fmadd_ps(wn, o0, a[b][2]);
                a[b][3] = _mm256_fmadd_ps(wn, o1, a[b][3]);
            }
        }
    }
    for (int b = 0; b < NB; b++) {
        const __m256 off = _mm256_set1_ps(8.0f * hsum8(_mm256_add_ps(ws0[b], ws1[b])));
        for (int c = 0; c < 4; c++)
            _mm256_storeu_ps(o + 32 * (blk0 + b) + 8 * c, _mm256_sub_ps(a[b][c], off));
    }
}

/* o = o·corr + Σ_{n in keys} w[n]·V[n] over a 16-key block. q4: the raw nibbles (0..15), the
 * offset 8 taken off each head_dim block once as 8·Σ_n ws[n] (ws: weight · block scale, keys
 * not counted as 0). */
static inline __attribute__((always_inline)) void single_v(const kvq_group *x,
                                                           const kvq_block kb[2], float *o,
                                                           float corr, unsigned keys,
                                                           const float *w)
{
    const __m256 cv = _mm256_set1_ps(corr);
    if (!x->q4) {
        int64_t c0 = 0;
        for (; c0 + 64 <= x->d; c0 += 64)
            int8_v_rows16(kb, c0, 8, o, cv, keys, w);
        for (int64_t c = c0; c < x->d; c += 8) {
            __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(o + c), cv);
            const int64_t left = x->d - c;
            for (int n = 0; n < KB1; n++)
                if (keys >> n & 1)
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(w[n]),
                                          int8x8((const int8_t *)kb_v(&kb[n / KB], n % KB) + c, left),
                                          acc);
            _mm256_storeu_ps(o + c, acc);
        }
        return;
    }
    const int64_t nb = x->d / ATTN_Q4_BLOCK;
    const __m256 wv0 = _mm256_and_ps(_mm256_loadu_ps(w), bits_mask(keys & 0xffu));
    const __m256 wv1 = _mm256_and_ps(_mm256_loadu_ps(w + KB), bits_mask(keys >> KB));
    int64_t blk = 0;
    for (; blk + 2 <= nb; blk += 2)
        q4_v_blocks(kb, o, cv, keys, wv0, wv1, blk, 2);
    if (blk < nb)
        q4_v_blocks(kb, o, cv, keys, wv0, wv1, blk, 1);
}

/* A chunk of one row over its keys [first, last): ksc, vsc hold two blocks' q4 scales each
 * (the block being finished and the next, scored ahead). */
/* Out of line, single_v inlined in it (single_v called out of line cost int8 D1 5%). */
static __attribute__((noinline)) void single_row(const kvq_group *x, kvq_row *rw, const float *q,
                                                 const float *qsum, const q4_qint *qi, float *o,
                                                 int64_t dpad, int64_t first, int64_t last,
                                                 float *w, float *ksc, float *vsc)
{
    const int64_t half = x->d / ATTN_Q4_BLOCK * KB1; /* one block's q4 scales */
    row_block16_t b[2];
    int cur = 0;
    if (first < last)
        single_scores(x, rw, q, qsum, qi, dpad, first, last, ksc, vsc, &b[0]);
    for (int64_t j0 = first; j0 < last; j0 += KB1, cur ^= 1) {
        const int64_t ahead = j0 + PREFETCH_KEYS;
        if (ahead < last)
            prefetch_rows(x, ahead, last - ahead < KB1 ? last - ahead : KB1);
        float corr = 1.0f;
        const unsigned keys = row_block16(x, &b[cur], rw, j0, w, &corr);
        if (j0 + KB1 < last) /* the next block's scores, independent of this softmax */
            single_scores(x, rw, q, qsum, qi, dpad, j0 + KB1, last, ksc + (cur ^ 1) * half,
                          vsc + (cur ^ 1) * half, &b[cur ^ 1]);
        if (keys)
            single_v(x, b[cur].kb, o, corr, keys, w);
    }
}

attn_status attn_avx2_kvq_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                               const attn_partial *part)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, dpad = attn_kvq_dpad(p), nb = d / ATTN_Q4_BLOCK;
    const float c2 = t->scale * ATTN_LOG2E;
    float *ws = (float *)(((uintptr_t)t->workspace + 63) & ~(uintptr_t)63);
    float *qw = ws, *ow = qw + KVQ_ROWS * dpad, *w = ow + KVQ_ROWS * dpad;
    float *ksc = w + 16 * KVQ_ROWS, *vsc = ksc + dpad;
    float *wide = vsc + dpad; /* q4 tiles: their weights times V's block scales (d floats) */
    float *qsum = wide + dpad; /* q4: per chunk row its Q summed per head_dim block (nb floats) */
    float *qoff = qsum + dpad; /* q4 single row: q4_qint's off (nb floats) */
    int16_t *qdig = (int16_t *)(qoff + dpad); /* and its digits (2·dpad int16, dpad floats) */
    const bool options = p->softcap != 0.0f || p->alibi_slopes;
    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const attn_group_rows gr = attn_group_rows_of(t, g);
        const kvq_group x = attn_kvq_group_of(t, gr.b, gr.hkv);
        for (int64_t r0 = 0; r0 < gr.count; r0 += KVQ_ROWS) {
            const int R = (int)(gr.count - r0 < KVQ_ROWS ? gr.count - r0 : KVQ_ROWS);
            kvq_row rows[KVQ_ROWS];
            int64_t first = INT64_MAX, last = 0;
            for (int r = 0; r < R; r++) {
                kvq_row *rw = &rows[r];
                attn_kvq_row_place(t, &gr, r0 + r, key_begin, key_end, &rw->h, &rw->i, &rw->first,
                                   &rw->lim, &first, &last);
                rw->ro = attn_row_opts_of(p, rw->h, rw->i);
                rw->options = options;
                rw->m = -INFINITY;
                rw->l = 0.0f;
                rw->mask = attn_mask_row(p, rw->i);
                float *qr = qw + r * dpad;
                attn_kvq_row_q(t, gr.b, rw->h, rw->i, qr, ow + r * dpad, dpad, c2, x.q4);
                for (int64_t blk = 0; x.q4 && blk < nb; blk++) {
                    float sum = 0.0f;
                    for (int c = 0; c < ATTN_Q4_BLOCK; c++)
                        sum += qr[blk * ATTN_Q4_BLOCK + c];
                    qsum[r * nb + blk] = sum;
                }
            }
            if (R == 1) { /* one row: blocks of 16 keys */
                q4_qint qi = {.dig = qdig, .off = qoff};
                const bool int_q = x.q4 && q4_qint_of(qw, d, &qi);
                single_row(&x, &rows[0], qw, qsum, int_q ? &qi : NULL, ow, dpad, first, last, w,
                           ksc, vsc);
            }
            for (int64_t j0 = first; R > 1 && j0 < last; j0 += KB) {
                const int64_t ahead = j0 + PREFETCH_KEYS, n = last - j0 < KB ? last - j0 : KB;
                if (ahead < last)
                    prefetch_rows(&x, ahead, last - ahead < KB ? last - ahead : KB);
                kvq_block kb;
                kvq_block_of(&x, j0, n, &kb);
                if (x.q4) {
                    q4_scales(x.ks, x.ks_seq, j0, n, nb, ksc);
                    q4_scales(x.vs, x.vs_seq, j0, n, nb, vsc);
                    kb.ksc = ksc;
                    kb.vsc = vsc;
                }
                for (int t0 = 0; t0 < R; t0 += 4) { /* tiles of up to 4 rows */
                    const int T = R - t0 < 4 ? R - t0 : 4;
                    float *q = qw + t0 * dpad, *o = ow + t0 * dpad;
                    const float *qs = qsum + t0 * nb;
                    if (T == 4)
                        tile_block(&x, &kb, &rows[t0], 4, q, qs, o, dpad, j0, w, wide);
                    else if (T == 3)
                        tile_block(&x, &kb, &rows[t0], 3, q, qs, o, dpad, j0, w, wide);
                    else if (T == 2)
                        tile_block(&x, &kb, &rows[t0], 2, q, qs, o, dpad, j0, w, wide);
                    else
                        tile_block(&x, &kb, &rows[t0], 1, q, qs, o, dpad, j0, w, wide);
                }
            }
            for (int r = 0; r < R; r++)
                attn_kvq_store_row(t, &x, gr.b, rows[r].h, rows[r].i, rows[r].m, rows[r].l,
                                   ow + r * dpad, part, (g - t->group_begin) * gr.count + r0 + r);
        }
    }
    return ATTN_OK;
}
