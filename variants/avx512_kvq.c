/* avx512_kvq.c — the avx512 variant on quantized K/V (int8, q4): the algorithm is kvq.h's.
 *
 * Registers: a block of 16 keys; its scores are 16 dot products along head_dim (one zmm
 * accumulator per key, K dequantized 16 values at a time: vpmovsxbd + vcvtdq2ps for int8, a
 * vpermps table lookup per nibble for q4) summed by sum16's transpose tree into one zmm of 16
 * scores. One row's V pass keeps 128 values of head_dim in zmm accumulators across the
 * block's keys, each key's weight broadcast (times its int8 row scale or q4 block scale).
 * Decode walks each row of the block key after key, front to back. The chunk's rows take each
 * key block in turn, so a GQA group reads each K/V row once from memory.
 *
 * Built twice: here as attn_avx512_kvq_rows, and by avx512_vnni_kvq.c with KVQ_VNNI 1 as
 * attn_avx512_vnni_kvq_rows, with avx512_kvq_vnni.h's integer paths for head_dim % 64 == 0. */
#pragma GCC diagnostic push /* tile_rows.h's finish_row (not inline) is the tile paths', not ours */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "avx512_common.h"
#pragma GCC diagnostic pop
#include "kvq.h"

#include <string.h>

#ifndef KVQ_VNNI
#define KVQ_VNNI 0 /* 1: built again by avx512_vnni_kvq.c, with the VNNI paths */
#endif

#define KB 16 /* keys per block: one zmm of scores */
/* How far ahead the K and V rows are prefetched (4 blocks). On Zen 5 (D1 int8 and q4, single
 * thread, in one process against the same build) the prefetch changed nothing: none, 128 keys
 * ahead, or hints T1 or NTA all ran within 3% (D1 int8 0.53, q4 0.62 of a plain read of the
 * same K/V). int8 takes about its in-cache compute time plus the read's (14.9 ns a key against
 * 6.3 + 8.0), q4 about its compute time (7.1 against 6.3 + 4.4): in cache int8 reads ~42 GB/s,
 * q4 ~23 (0.57 and 0.19 of an in-cache read), so their compute per key bounds them. */
#define PREFETCH_KEYS 64

/* 16 int8 values widened to float (n < 16: the first n, zeros after; no byte beyond read). */
static inline __m512 int8x16(const int8_t *x, __mmask16 m)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, x)));
}
/* The 32 values of a q4 block's 16 bytes: the low nibbles (even elements) and the high ones,
 * as floats q in [-8, 7]. vpermps reads the low 4 bits of each index only, so a table lookup
 * of the byte is the low nibble's value (no mask, no subtract, no int-to-float conversion). */
static inline void q4x32(const uint8_t *x, __m512 *even, __m512 *odd)
{
    const __m512 values = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)x));
    *even = _mm512_permutexvar_ps(b, values);
    *odd = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), values);
}

/* The q4 scales of keys j0 + n (n < 16, the first `n_keys`; the others 0) widened, one vector
 * of 16 keys per block: out[blk·16 + n]. */
static inline void q4_scales(const char *base, int64_t seq, int64_t j0, int64_t n_keys,
                             int64_t nb, float *out)
{
    if (n_keys == KB && nb >= 2 && seq <= INT32_MAX / KB) {
        /* a whole block: per head_dim block, one gather of 32-bit words over the 16 keys, the
         * wanted half the low one of the pair (blk, blk+1) for blk 0 and the high one of
         * (blk-1, blk) after, so no byte outside the keys' scales is read (the scalar loop
         * below took a quarter of the q4 decode time) */
        const __m512i off = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                                                 11, 12, 13, 14, 15),
                                               _mm512_set1_epi32((int32_t)seq));
        const char *row0 = base + j0 * seq;
        for (int64_t blk = 0; blk < nb; blk++) {
            __m512i w = _mm512_i32gather_epi32(off, row0 + (blk ? 2 * blk - 2 : 0), 1);
            if (blk)
                w = _mm512_srli_epi32(w, 16);
            _mm512_storeu_ps(out + blk * KB, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w)));
        }
        return;
    }
    for (int n = 0; n < KB; n++) {
        const uint16_t *row = (const uint16_t *)(base + (j0 + n) * seq);
        for (int64_t blk = 0; blk < nb; blk++)
            out[blk * KB + n] = n < n_keys ? _cvtsh_ss(row[blk]) : 0.0f;
    }
}
/* The rows of one key block, shared by the chunk's rows: K, V and (int8) the row scales of
 * keys j0 + n; keys past the block's end point at key j0 (read, never counted). */
typedef struct kvq_block {
    const void *k[KB], *v[KB];
    __m512 ks, vs; /* int8: the 16 keys' row scales */
    const float *ksc, *vsc; /* q4: the 16 keys' block scales, [blk·16 + n] */
    bool wide;     /* k[n], v[n] are float32 rows, scales applied (widen_block) */
    int64_t j0, n; /* the block's first key, its keys */
} kvq_block;

typedef struct kvq_qdigits kvq_qdigits;
#if KVQ_VNNI
#include "avx512_kvq_vnni.h" /* the VNNI paths */
#endif

/* Prefetches K and V rows [j, j + n): PREFETCH_KEYS ahead of the block being computed (decode
 * reads each row once, from memory; V's chunk loop walks 16 rows at once). */
static inline void prefetch_rows(const kvq_group *x, int64_t j, int64_t n)
{
    const int64_t bytes = x->q4 ? x->d / 2 : x->d;
    for (int64_t jj = j; jj < j + n; jj++)
        for (int64_t c = 0; c < bytes; c += 64) {
            _mm_prefetch(x->k + jj * x->k_seq + c, _MM_HINT_T0);
            _mm_prefetch(x->v + jj * x->v_seq + c, _MM_HINT_T0);
        }
}


static inline void kvq_block_of(const kvq_group *x, int64_t j0, int64_t n, kvq_block *kb)
{
    kb->j0 = j0;
    kb->n = n;
    if (n == KB) { /* a whole block: the row addresses as vectors (no loop over keys) */
        const __m512i k0 = _mm512_set1_epi64((int64_t)(uintptr_t)(x->k + j0 * x->k_seq));
        const __m512i v0 = _mm512_set1_epi64((int64_t)(uintptr_t)(x->v + j0 * x->v_seq));
        for (int h = 0; h < 2; h++) {
            _mm512_storeu_si512(&kb->k[8 * h],
                                _mm512_add_epi64(k0, _mm512_loadu_si512(x->k_step + 8 * h)));
            _mm512_storeu_si512(&kb->v[8 * h],
                                _mm512_add_epi64(v0, _mm512_loadu_si512(x->v_step + 8 * h)));
        }
        if (!x->q4 && x->ks_seq == 4 && x->vs_seq == 4) { /* contiguous row scales */
            kb->ks = _mm512_loadu_ps(x->ks + j0 * 4);
            kb->vs = _mm512_loadu_ps(x->vs + j0 * 4);
            return;
        }
        if (x->q4) {
            kb->ks = kb->vs = _mm512_setzero_ps();
            return;
        }
    }
    float ks[KB] = {0}, vs[KB] = {0};
    for (int i = 0; i < KB; i++) {
        const int64_t j = j0 + (i < n ? i : 0);
        kb->k[i] = x->k + j * x->k_seq;
        kb->v[i] = x->v + j * x->v_seq;
        if (!x->q4) {
            memcpy(&ks[i], x->ks + j * x->ks_seq, 4);
            memcpy(&vs[i], x->vs + j * x->vs_seq, 4);
        }
    }
    kb->ks = _mm512_loadu_ps(ks);
    kb->vs = _mm512_loadu_ps(vs);
}

/* Scores of the block's 16 keys against q (log2 units before the int8 row scale, q4 scales
 * included): the 16 accumulators live in registers along head_dim, then sum16. */
static inline __m512 dot_block(const kvq_group *x, const kvq_block *kb, const float *q)
{
    __m512 a[KB];
    for (int n = 0; n < KB; n++)
        a[n] = _mm512_setzero_ps();
    if (kb->wide) { /* float32 rows padded to 16 with zeros, as q is */
        for (int64_t c = 0; c < x->d; c += 16) {
            const __m512 qv = _mm512_loadu_ps(q + c);
            for (int n = 0; n < KB; n++)
                a[n] = _mm512_fmadd_ps(qv, _mm512_loadu_ps((const float *)kb->k[n] + c), a[n]);
        }
        return sum16(a);
    }
    if (!x->q4) { /* key by key: each row read from start to end, as it streams in */
        for (int n = 0; n < KB; n++) {
            const int8_t *k = kb->k[n];
            int64_t c = 0;
            for (; c + 16 <= x->d; c += 16)
                a[n] = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), int8x16(k + c, 0xffff), a[n]);
            if (c < x->d) /* q is zero-padded to 16 */
                a[n] = _mm512_fmadd_ps(_mm512_loadu_ps(q + c),
                                       int8x16(k + c, tail_mask16(x->d - c)), a[n]);
        }
        return _mm512_mul_ps(sum16(a), kb->ks);
    }
    /* key after key, each row front to back, through a loop that is not unrolled: one load
     * instruction walks K in address order, which the hardware prefetchers follow (the 16 rows
     * read block by block ran D1 at half the rate) */
    const int64_t nb = x->d / ATTN_Q4_BLOCK;
#pragma GCC unroll 1
    for (int n = 0; n < KB; n++) {
        const uint8_t *kn = kb->k[n];
        __m512 acc = _mm512_setzero_ps();
        for (int64_t blk = 0; blk < nb; blk++) {
            __m512 e, o;
            q4x32(kn + 16 * blk, &e, &o);
            const __m512 part = _mm512_fmadd_ps(_mm512_loadu_ps(q + 32 * blk + 16), o,
                                                _mm512_mul_ps(_mm512_loadu_ps(q + 32 * blk), e));
            acc = _mm512_fmadd_ps(part, _mm512_set1_ps(kb->ksc[blk * KB + n]), acc);
        }
        a[n] = acc;
    }
    return sum16(a);
}

/* int8 V of one block of keys for 128 values of head_dim from c0: the 8 accumulators in
 * registers across the keys, walked one after another through a loop that is not unrolled,
 * each row in address order (the 16 rows read chunk by chunk were slower, as for K). */
static inline void int8_v_rows(const kvq_block *kb, int64_t c0, float *o, __m512 cv,
                               __mmask16 keys, const float *w)
{
    __m512 acc[8];
    for (int c = 0; c < 8; c++)
        acc[c] = _mm512_mul_ps(_mm512_loadu_ps(o + c0 + 16 * c), cv);
#pragma GCC unroll 1
    for (int n = 0; n < KB; n++) {
        if (!(keys >> n & 1))
            continue;
        const int8_t *vn = (const int8_t *)kb->v[n] + c0;
        const __m512 wn = _mm512_set1_ps(w[n]);
        for (int c = 0; c < 8; c++)
            acc[c] = _mm512_fmadd_ps(wn, int8x16(vn + 16 * c, 0xffff), acc[c]);
    }
    for (int c = 0; c < 8; c++)
        _mm512_storeu_ps(o + c0 + 16 * c, acc[c]);
}

/* q4 V of one block of keys for NB (a constant once inlined) head_dim blocks from blk0: the
 * 2·NB accumulators in registers across the keys, walked one after another through a loop that
 * is not unrolled, each row front to back (in address order, as dot_block's K). */
static inline __attribute__((always_inline)) void q4_v_rows(const kvq_group *x,
                                                            const kvq_block *kb, int64_t blk0,
                                                            int NB, float *o, __m512 cv,
                                                            __mmask16 keys, const float *w)
{
    __m512 acc[2 * 4];
    for (int b = 0; b < 2 * NB; b++)
        acc[b] = _mm512_mul_ps(_mm512_loadu_ps(o + 32 * blk0 + 16 * b), cv);
#pragma GCC unroll 1
    for (int n = 0; n < KB; n++) {
        if (!(keys >> n & 1))
            continue;
        const uint8_t *vn = (const uint8_t *)kb->v[n] + 16 * blk0;
        /* the key's NB block scales straight from its float16 row, times its weight (a
         * gather per block over the 16 keys took a fifth of the q4 decode time) */
        const char *sn = x->vs + (kb->j0 + n) * x->vs_seq + 2 * blk0;
        float ws4[4];
        _mm_storeu_ps(ws4, _mm_mul_ps(_mm_cvtph_ps(_mm_maskz_loadu_epi16((__mmask8)((1u << NB) - 1),
                                                                         sn)),
                                      _mm_set1_ps(w[n])));
        for (int b = 0; b < NB; b++) {
            __m512 e, od;
            q4x32(vn + 16 * b, &e, &od);
            const __m512 ws = _mm512_set1_ps(ws4[b]);
            acc[2 * b] = _mm512_fmadd_ps(ws, e, acc[2 * b]);
            acc[2 * b + 1] = _mm512_fmadd_ps(ws, od, acc[2 * b + 1]);
        }
    }
    for (int b = 0; b < 2 * NB; b++)
        _mm512_storeu_ps(o + 32 * blk0 + 16 * b, acc[b]);
}

/* o = o·corr + Σ_{keys n in `keys`} w[n]·V[n] over head_dim (w: the softmax weights, times
 * the int8 row scale of V; q4 applies its block scales here). */
static inline void accumulate_v(const kvq_group *x, const kvq_block *kb, float *o, float corr,
                                __mmask16 keys, const float *w)
{
    const __m512 cv = _mm512_set1_ps(corr);
    if (kb->wide) {
        for (int64_t c = 0; c < x->d; c += 16) {
            __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(o + c), cv);
            for (int n = 0; n < KB; n++)
                if (keys >> n & 1)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(w[n]),
                                          _mm512_loadu_ps((const float *)kb->v[n] + c), acc);
            _mm512_storeu_ps(o + c, acc);
        }
        return;
    }
    if (!x->q4) {
        int64_t c = 0; /* 128 values at a time, rows in address order, then the rest */
        for (; c + 128 <= x->d; c += 128)
            int8_v_rows(kb, c, o, cv, keys, w);
        for (; c < x->d; c += 16) {
            const __mmask16 m = tail_mask16(x->d - c);
            __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(o + c), cv);
            for (int n = 0; n < KB; n++)
                if (keys >> n & 1)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(w[n]),
                                          int8x16((const int8_t *)kb->v[n] + c, m), acc);
            _mm512_storeu_ps(o + c, acc);
        }
        return;
    }
    const int64_t nb = x->d / ATTN_Q4_BLOCK;
    if (!kb->wide) { /* rows in address order, 4 head_dim blocks (128 values) at a time */
        int64_t blk = 0;
        for (; blk + 4 <= nb; blk += 4)
            q4_v_rows(x, kb, blk, 4, o, cv, keys, w);
        for (; blk < nb; blk++)
            q4_v_rows(x, kb, blk, 1, o, cv, keys, w);
        return;
    }
    const __m512 wv = _mm512_loadu_ps(w);
    for (int64_t blk = 0; blk < nb; blk++) {
        __m512 ae = _mm512_mul_ps(_mm512_loadu_ps(o + 32 * blk), cv);
        __m512 ao = _mm512_mul_ps(_mm512_loadu_ps(o + 32 * blk + 16), cv);
        float ws[KB]; /* the weights times the block's V scales */
        _mm512_storeu_ps(ws, _mm512_mul_ps(wv, _mm512_loadu_ps(kb->vsc + blk * KB)));
        for (int n = 0; n < KB; n++) {
            if (keys != 0xffff && !(keys >> n & 1))
                continue;
            __m512 e, od;
            q4x32((const uint8_t *)kb->v[n] + 16 * blk, &e, &od);
            ae = _mm512_fmadd_ps(_mm512_set1_ps(ws[n]), e, ae);
            ao = _mm512_fmadd_ps(_mm512_set1_ps(ws[n]), od, ao);
        }
        _mm512_storeu_ps(o + 32 * blk, ae);
        _mm512_storeu_ps(o + 32 * blk + 16, ao);
    }
}

/* The block's K and V widened to float32 rows of dpad (zero-padded; q4 in its permuted order)
 * with their scales applied, into kw and vw; kb then points at them. */
static void widen_block(const kvq_group *x, kvq_block *kb, int64_t dpad, float *kw, float *vw)
{
    float ks[KB], vs[KB];
    _mm512_storeu_ps(ks, kb->ks);
    _mm512_storeu_ps(vs, kb->vs);
    const int64_t nb = x->d / ATTN_Q4_BLOCK;
    for (int n = 0; n < KB; n++) {
        float *kr = kw + n * dpad, *vr = vw + n * dpad;
        if (!x->q4)
            for (int64_t c = 0; c < dpad; c += 16) {
                const __mmask16 m = tail_mask16(x->d - c);
                _mm512_storeu_ps(kr + c, _mm512_mul_ps(int8x16((const int8_t *)kb->k[n] + c, m),
                                                       _mm512_set1_ps(ks[n])));
                _mm512_storeu_ps(vr + c, _mm512_mul_ps(int8x16((const int8_t *)kb->v[n] + c, m),
                                                       _mm512_set1_ps(vs[n])));
            }
        else
            for (int64_t blk = 0; blk < nb; blk++) {
                __m512 e, o;
                const __m512 sk = _mm512_set1_ps(kb->ksc[blk * KB + n]);
                const __m512 sv = _mm512_set1_ps(kb->vsc[blk * KB + n]);
                q4x32((const uint8_t *)kb->k[n] + 16 * blk, &e, &o);
                _mm512_storeu_ps(kr + 32 * blk, _mm512_mul_ps(e, sk));
                _mm512_storeu_ps(kr + 32 * blk + 16, _mm512_mul_ps(o, sk));
                q4x32((const uint8_t *)kb->v[n] + 16 * blk, &e, &o);
                _mm512_storeu_ps(vr + 32 * blk, _mm512_mul_ps(e, sv));
                _mm512_storeu_ps(vr + 32 * blk + 16, _mm512_mul_ps(o, sv));
            }
        kb->k[n] = kr;
        kb->v[n] = vr;
    }
    kb->wide = true;
}

/* One chunk's rows: what each needs across key blocks. */
typedef struct kvq_row {
    int64_t h, i, first, lim;
    float slope2, pos; /* ALiBi slope·log2(e); the query's position i' */
    float m, l;        /* running max (log2 units), sum */
    const float *mask;
    const kvq_qdigits *qd; /* VNNI: Q's digits (head_dim % 64 == 0); or NULL */
} kvq_row;

/* Row rw's keys of the block from j0 that count, in *valid, and their scores s in log2 units
 * with the options and mask applied (scored: VNNI's, else dot_block's). */
static inline __m512 row_scores(const kvq_group *x, const kvq_block *kb, const tile_options *opts,
                                kvq_row *rw, const float *q, int64_t j0,
                                const __m512 *scored, __mmask16 *valid)
{
    const int64_t lo = rw->first > j0 ? rw->first - j0 : 0, hi = rw->lim - j0;
    *valid = (__mmask16)(tail_mask16(hi) & ~tail_mask16(lo));
    if (!*valid)
        return _mm512_setzero_ps();
    __m512 s = scored ? *scored : dot_block(x, kb, q);
    s = row_options_apply(opts, rw->slope2, rw->pos, j0, s);
    if (rw->mask) {
        const __m512 mv = _mm512_maskz_loadu_ps(*valid, rw->mask + j0);
        *valid = _mm512_mask_cmp_ps_mask(*valid, mv, _mm512_set1_ps(-INFINITY), _CMP_NEQ_UQ);
        s = _mm512_fmadd_ps(mv, _mm512_set1_ps(ATTN_LOG2E), s);
    }
    if (_mm512_mask_cmp_ps_mask(*valid, s, s, _CMP_UNORD_Q)) /* a NaN score: a NaN row */
        rw->l = NAN;
    return s;
}

/* Row rw's weights of the block's keys j0 + n into w[n]; updates its max and sum. Returns the
 * keys that count (0: none) and the accumulator's correction in *corr. */
static inline __mmask16 row_block(const kvq_group *x, const kvq_block *kb,
                                  const tile_options *opts, kvq_row *rw, const float *q,
                                  int64_t j0, float *w, float *corr, const __m512 *scored)
{
    __mmask16 valid;
    const __m512 s = row_scores(x, kb, opts, rw, q, j0, scored, &valid);
    if (!valid)
        return 0;
    const float bm = _mm512_mask_reduce_max_ps(valid, s);
    const float m_new = bm > rw->m ? bm : rw->m; /* rw->m is never NaN: fmaxf without a call */
    if (m_new == -INFINITY || isnan(m_new))
        return 0;
    *corr = attn_exp2_nonpos(rw->m - m_new);
    const __m512 pv = exp2_ps(_mm512_sub_ps(s, _mm512_set1_ps(m_new)), valid);
    rw->l = rw->l * *corr + _mm512_mask_reduce_add_ps(valid, pv);
    rw->m = m_new;
    _mm512_storeu_ps(w, x->q4 || kb->wide ? pv : _mm512_mul_ps(pv, kb->vs));
    return valid;
}

/* A chunk's R rows over keys [first, last) in float32 (the path without VNNI, and VNNI's for
 * head_dim % 64 != 0): one row dequantizes in registers, several widen each block once. q4s:
 * a block's K and V scales (2 · dpad floats); wide: its K and V widened (2 · 16 · dpad). */
static void float_rows(const kvq_group *x, const tile_options *opts, kvq_row *rows, int R,
                       int64_t first, int64_t last, const float *qw, float *ow, int64_t dpad,
                       float *w, float *q4s, float *wide)
{
    const int64_t nb = x->d / ATTN_Q4_BLOCK;
    float *ksc = q4s, *vsc = q4s + dpad, *kw = wide, *vw = wide + KB * dpad;
    for (int64_t j0 = first; j0 < last; j0 += KB) {
        const int64_t ahead = j0 + PREFETCH_KEYS, n = last - j0 < KB ? last - j0 : KB;
        if (ahead < last)
            prefetch_rows(x, ahead, last - ahead < KB ? last - ahead : KB);
        kvq_block kb = {.ksc = NULL, .vsc = NULL, .wide = false};
        kvq_block_of(x, j0, n, &kb);
        if (x->q4) { /* the block's scales, once for all rows (one row's V reads its own) */
            q4_scales(x->ks, x->ks_seq, j0, n, nb, ksc);
            if (R > 1)
                q4_scales(x->vs, x->vs_seq, j0, n, nb, vsc);
            kb.ksc = ksc;
            kb.vsc = vsc;
        }
        if (R > 1)
            widen_block(x, &kb, dpad, kw, vw);
        for (int r = 0; r < R; r++) {
            float corr = 1.0f;
            const __mmask16 keys =
                row_block(x, &kb, opts, &rows[r], qw + r * dpad, j0, w, &corr, NULL);
            if (keys)
                accumulate_v(x, &kb, ow + r * dpad, corr, keys, w);
        }
    }
}

#if KVQ_VNNI
/* The scores of a block's R rows (VNNI, in tiles of up to 4 rows sharing each K load). */
static inline void vnni_scores(const kvq_group *x, const kvq_block *kb, int R,
                               const kvq_qdigits *qds, __m512 *sc)
{
    for (int t0 = 0; t0 < R; t0 += 4) {
        const int T = R - t0 < 4 ? R - t0 : 4;
        if (x->q4)
            dot_tile_vnni_q4(x, kb, &qds[t0], T, sc + t0);
        else
            dot_tile_vnni(kb, x->d, &qds[t0], T, sc + t0);
    }
}

/* The blocks of up to 2·KB keys from j0 (before last) and one row's scores of them: the
 * number of blocks (0 past last). */
static inline int vnni_pair_of(const kvq_group *x, const kvq_qdigits *qd, int64_t j0,
                               int64_t last, kvq_block *kb, __m512 *sc)
{
    int nb = 0;
    for (int64_t j = j0; j < last && nb < 2; j += KB, nb++) {
        kvq_block_of(x, j, last - j < KB ? last - j : KB, &kb[nb]);
        vnni_scores(x, &kb[nb], 1, qd, &sc[nb]);
    }
    return nb;
}

/* One row (decode MHA) with VNNI: as vnni_rows, but the softmax takes two blocks (32 keys) at
 * once, one max, correction and sum for both, and V one pass over both (v_q4_row2,
 * accumulate_v_vnni over 32 keys); else
 * the second block's V runs with correction 1 after the first's, or with the pair's when the
 * first has no key. Steps of 4 blocks (64 keys: one weight quantization and V epilogue per
 * 64) ran q4 D1 1.1x faster with K/V in L2 (Lk <= 2048) but 1.3-1.5x slower from L3 and
 * memory (Lk 4096, 8192; Zen 4), whatever the prefetch distance or hint: not kept. */
static void vnni_row1(const kvq_group *x, const tile_options *opts, kvq_row *rw,
                      const kvq_qdigits *qd, int64_t first, int64_t last, float *o, float *w)
{
    kvq_block kb[2] = {{.wide = false}, {.wide = false}}, kn[2] = {{.wide = false}, {.wide = false}};
    __m512 sc[2], next[2];
    int nb = vnni_pair_of(x, qd, first, last, kb, sc);
    for (int64_t j0 = first; j0 < last; j0 += 2 * KB) {
        for (int64_t ahead = j0 + PREFETCH_KEYS; ahead < j0 + PREFETCH_KEYS + 2 * KB && ahead < last;
             ahead += KB)
            prefetch_rows(x, ahead, last - ahead < KB ? last - ahead : KB);
        __mmask16 keys[2] = {0, 0};
        __m512 s[2], top = _mm512_set1_ps(-INFINITY);
        for (int h = 0; h < nb; h++) {
            s[h] = row_scores(x, &kb[h], opts, rw, NULL, j0 + h * KB, &sc[h], &keys[h]);
            top = _mm512_mask_max_ps(top, keys[h], top, s[h]);
        }
        float corr = 1.0f;
        if (keys[0] | keys[1]) {
            const float bm = _mm512_reduce_max_ps(top);
            const float m_new = bm > rw->m ? bm : rw->m;
            if (m_new == -INFINITY || isnan(m_new))
                keys[0] = keys[1] = 0;
            else {
                corr = attn_exp2_nonpos(rw->m - m_new);
                __m512 sum = _mm512_setzero_ps();
                for (int h = 0; h < nb; h++) {
                    const __m512 pv = exp2_ps(_mm512_sub_ps(s[h], _mm512_set1_ps(m_new)), keys[h]);
                    sum = _mm512_add_ps(sum, pv);
                    _mm512_storeu_ps(w + KB * h, x->q4 ? pv : _mm512_mul_ps(pv, kb[h].vs));
                }
                rw->l = rw->l * corr + _mm512_reduce_add_ps(sum);
                rw->m = m_new;
            }
        }
        const int nn = j0 + 2 * KB < last ? vnni_pair_of(x, qd, j0 + 2 * KB, last, kn, next) : 0;
        bool pair_done = false;
        if (nb == 2 && (keys[0] | keys[1])) {
            const void *vrows[2 * KB];
            memcpy(vrows, kb[0].v, sizeof kb[0].v);
            memcpy(vrows + KB, kb[1].v, sizeof kb[1].v);
            pair_done = x->q4 ? v_q4_row2(x, kb, vrows, o, corr, keys, w)
                              : accumulate_v_vnni(vrows, x->d, o, corr,
                                                  keys[0] | (uint32_t)keys[1] << 16, w, 2);
        }
        for (int h = 0; h < (pair_done ? 0 : nb); h++) {
            if (!keys[h])
                continue;
            float c = h == 0 || !keys[0] ? corr : 1.0f;
            const bool done = x->q4 ? v_q4_tile(x, &kb[h], 1, o, 0, &c, &keys[h], w + KB * h)
                                    : accumulate_v_vnni(kb[h].v, x->d, o, c, keys[h], w + KB * h, 1);
            if (!done) /* a weight not finite: float32 V */
                accumulate_v(x, &kb[h], o, c, keys[h], w + KB * h);
        }
        kb[0] = kn[0];
        kb[1] = kn[1];
        sc[0] = next[0];
        sc[1] = next[1];
        nb = nn;
    }
}

/* A chunk's R rows over keys [first, last) with VNNI (head_dim % 64 == 0): block j+1 is scored
 * between block j's softmax and its V pass, so the softmax's latency (reductions, exp2, the V
 * weights) overlaps independent integer work instead of stalling the core. V in tiles of up
 * to 4 rows sharing each V load; a weight that is not finite takes the float32 path. */
static void vnni_rows(const kvq_group *x, const tile_options *opts, kvq_row *rows, int R,
                      const kvq_qdigits *qds, int64_t first, int64_t last, float *ow,
                      int64_t dpad, float *w)
{
    __m512 sc[KVQ_ROWS], next[KVQ_ROWS];
    kvq_block kb = {.wide = false}, kn = {.wide = false};
    if (first >= last)
        return;
    kvq_block_of(x, first, last - first < KB ? last - first : KB, &kb);
    vnni_scores(x, &kb, R, qds, sc);
    for (int64_t j0 = first; j0 < last; j0 += KB) {
        const int64_t ahead = j0 + PREFETCH_KEYS;
        if (ahead < last)
            prefetch_rows(x, ahead, last - ahead < KB ? last - ahead : KB);
        float corr[KVQ_ROWS];
        __mmask16 keys[KVQ_ROWS];
        for (int r = 0; r < R; r++) {
            corr[r] = 1.0f;
            keys[r] = row_block(x, &kb, opts, &rows[r], NULL, j0, w + 16 * r, &corr[r], &sc[r]);
        }
        const int64_t j1 = j0 + KB;
        if (j1 < last) {
            kvq_block_of(x, j1, last - j1 < KB ? last - j1 : KB, &kn);
            vnni_scores(x, &kn, R, qds, next);
        }
        for (int t0 = 0; t0 < R; t0 += 4) {
            const int T = R - t0 < 4 ? R - t0 : 4;
            bool done;
            if (T == 1)
                done = !keys[t0] ||
                       (x->q4 ? v_q4_tile(x, &kb, 1, ow + t0 * dpad, dpad, &corr[t0], &keys[t0],
                                          w + 16 * t0)
                              : accumulate_v_vnni(kb.v, x->d, ow + t0 * dpad, corr[t0], keys[t0],
                                                  w + 16 * t0, 1));
            else
                done = x->q4 ? v_q4_tile(x, &kb, T, ow + t0 * dpad, dpad, &corr[t0], &keys[t0],
                                         w + 16 * t0)
                             : v_tile_vnni(kb.v, x->d, T, ow + t0 * dpad, dpad, &corr[t0],
                                           &keys[t0], w + 16 * t0);
            if (done)
                continue;
            for (int t = t0; t < t0 + T; t++) /* a weight not finite: float32 V */
                if (keys[t])
                    accumulate_v(x, &kb, ow + t * dpad, corr[t], keys[t], w + 16 * t);
        }
        kb = kn;
        memcpy(sc, next, (size_t)R * sizeof *sc);
    }
}
#endif

#ifndef KVQ_ENTRY
#define KVQ_ENTRY attn_avx512_kvq_rows
#endif
attn_status KVQ_ENTRY(const attn_task *t, int64_t key_begin, int64_t key_end,
                      const attn_partial *part)
{
    const attn_problem *p = t->problem;
    const int64_t dpad = attn_kvq_dpad(p);
    const float c2 = t->scale * ATTN_LOG2E;
    const tile_options opts = tile_options_of(p);
    float *ws = (float *)(((uintptr_t)t->workspace + 63) & ~(uintptr_t)63);
    float *qw = ws, *ow = qw + KVQ_ROWS * dpad, *w = ow + KVQ_ROWS * dpad;
    float *q4s = w + 16 * KVQ_ROWS;  /* q4: a key block's K and V scales (2 · dpad) */
    float *wide = q4s + 2 * dpad;    /* a key block widened (R > 1; 2 · KB · dpad) */
#if KVQ_VNNI
    const int64_t d = p->head_dim;
    int8_t *planes = (int8_t *)(wide + 2 * KB * dpad); /* 4·dpad bytes per row; init4 after */
    kvq_qdigits qds[KVQ_ROWS];
    for (int r = 0; r < KVQ_ROWS; r++) {
        qds[r].init4 = (int32_t *)(wide + 2 * KB * dpad + KVQ_ROWS * dpad + r * dpad);
        for (int k = 0; k < 3; k++) { /* int8: planes of d; q4: low and high planes of d/2 */
            qds[r].g[k] = planes + r * 4 * dpad + k * dpad;
            qds[r].gh[k] = planes + r * 4 * dpad + k * dpad + dpad / 2;
        }
    }
#endif
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
                rw->slope2 = p->alibi_slopes ? p->alibi_slopes[rw->h] * ATTN_LOG2E : 0.0f;
                rw->pos = (float)(rw->i + p->len_kv - p->len_q);
                rw->m = -INFINITY;
                rw->l = 0.0f;
                rw->mask = attn_mask_row(p, rw->i);
                float *qr = qw + r * dpad;
                attn_kvq_row_q(t, gr.b, rw->h, rw->i, qr, ow + r * dpad, dpad, c2, x.q4);
                rw->qd = NULL;
#if KVQ_VNNI
                if (d % 64 == 0) {
                    qdigits_of(qr, d, x.q4, &qds[r]);
                    rw->qd = &qds[r];
                }
#endif
            }
#if KVQ_VNNI
            if (rows[0].qd && R == 1)
                vnni_row1(&x, &opts, rows, qds, first, last, ow, w);
            else if (rows[0].qd)
                vnni_rows(&x, &opts, rows, R, qds, first, last, ow, dpad, w);
            else
#endif
                float_rows(&x, &opts, rows, R, first, last, qw, ow, dpad, w, q4s, wide);
            for (int r = 0; r < R; r++)
                attn_kvq_store_row(t, &x, gr.b, rows[r].h, rows[r].i, rows[r].m, rows[r].l,
                                   ow + r * dpad, part, (g - t->group_begin) * gr.count + r0 + r);
        }
    }
    return ATTN_OK;
}
