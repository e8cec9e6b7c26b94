/* avx512_kvq.c — the avx512 variant on quantized K/V (int8, q4): the algorithm is kvq.h's.
 *
 * Registers: a block of 16 keys; its scores are 16 dot products along head_dim (one zmm
 * accumulator per key, K dequantized 16 values at a time: vpmovsxbd + vcvtdq2ps for int8,
 * vpmovzxbd + and/shift + subtract 8 for the two nibbles of q4) summed by sum16's transpose
 * tree into one zmm of 16 scores. The V pass walks head_dim in zmm chunks, the accumulator of
 * the chunk in a register across the block's keys, each key's weight broadcast (already
 * multiplied by its int8 row scale or q4 block scale). The chunk's rows take each key block in
 * turn, so a GQA group reads each K/V row once from memory. */
#pragma GCC diagnostic push /* tile_rows.h's finish_row (not inline) is the tile paths', not ours */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "avx512_common.h"
#pragma GCC diagnostic pop
#include "kvq.h"

#include <string.h>

#define KB 16 /* keys per block: one zmm of scores */
#define PREFETCH_KEYS 64 /* how far ahead the K and V rows are prefetched (4 blocks) */

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
    for (int n = 0; n < KB; n++) {
        const uint16_t *row = (const uint16_t *)(base + (j0 + n) * seq);
        for (int64_t blk = 0; blk < nb; blk++)
            out[blk * KB + n] = n < n_keys ? _cvtsh_ss(row[blk]) : 0.0f;
    }
}
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

/* The rows of one key block, shared by the chunk's rows: K, V and (int8) the row scales of
 * keys j0 + n; keys past the block's end point at key j0 (read, never counted). */
typedef struct kvq_block {
    const void *k[KB], *v[KB];
    __m512 ks, vs; /* int8: the 16 keys' row scales */
    const float *ksc, *vsc; /* q4: the 16 keys' block scales, [blk·16 + n] */
    bool wide;     /* k[n], v[n] are float32 rows, scales applied (widen_block) */
} kvq_block;

static inline void kvq_block_of(const kvq_group *x, int64_t j0, int64_t n, kvq_block *kb)
{
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
    const int64_t nb = x->d / ATTN_Q4_BLOCK;
    for (int64_t blk = 0; blk < nb; blk++) {
        const __m512 qe = _mm512_loadu_ps(q + 32 * blk), qo = _mm512_loadu_ps(q + 32 * blk + 16);
        for (int n = 0; n < KB; n++) {
            __m512 e, o;
            q4x32((const uint8_t *)kb->k[n] + 16 * blk, &e, &o);
            const __m512 part = _mm512_fmadd_ps(qo, o, _mm512_mul_ps(qe, e));
            a[n] = _mm512_fmadd_ps(part, _mm512_set1_ps(kb->ksc[blk * KB + n]), a[n]);
        }
    }
    return sum16(a);
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
        int64_t c = 0;
        if (keys == 0xffff) /* a whole block: no test per key, whole chunks unmasked */
            for (; c + 16 <= x->d; c += 16) {
                __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(o + c), cv);
                for (int n = 0; n < KB; n++)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(w[n]),
                                          int8x16((const int8_t *)kb->v[n] + c, 0xffff), acc);
                _mm512_storeu_ps(o + c, acc);
            }
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
} kvq_row;

/* Row rw's weights of the block's keys j0 + n into w[n]; updates its max and sum. Returns the
 * keys that count (0: none) and the accumulator's correction in *corr. */
static inline __mmask16 row_block(const kvq_group *x, const kvq_block *kb,
                                  const tile_options *opts, kvq_row *rw, const float *q,
                                  int64_t j0, float *w, float *corr)
{
    const int64_t lo = rw->first > j0 ? rw->first - j0 : 0, hi = rw->lim - j0;
    __mmask16 valid = (__mmask16)(tail_mask16(hi) & ~tail_mask16(lo));
    if (!valid)
        return 0;
    __m512 s = dot_block(x, kb, q);
    s = row_options_apply(opts, rw->slope2, rw->pos, j0, s);
    if (rw->mask) {
        const __m512 mv = _mm512_maskz_loadu_ps(valid, rw->mask + j0);
        valid = _mm512_mask_cmp_ps_mask(valid, mv, _mm512_set1_ps(-INFINITY), _CMP_NEQ_UQ);
        s = _mm512_fmadd_ps(mv, _mm512_set1_ps(ATTN_LOG2E), s);
    }
    if (!valid)
        return 0;
    if (_mm512_mask_cmp_ps_mask(valid, s, s, _CMP_UNORD_Q)) /* a NaN score: a NaN row */
        rw->l = NAN;
    const float bm = _mm512_mask_reduce_max_ps(valid, s);
    const float m_new = fmaxf(rw->m, bm);
    if (m_new == -INFINITY || isnan(m_new))
        return 0;
    *corr = attn_exp2_nonpos(rw->m - m_new);
    const __m512 pv = exp2_ps(_mm512_sub_ps(s, _mm512_set1_ps(m_new)), valid);
    rw->l = rw->l * *corr + _mm512_mask_reduce_add_ps(valid, pv);
    rw->m = m_new;
    _mm512_storeu_ps(w, x->q4 || kb->wide ? pv : _mm512_mul_ps(pv, kb->vs));
    return valid;
}

attn_status attn_avx512_kvq_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                                 const attn_partial *part)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, dpad = attn_kvq_dpad(p);
    const float c2 = t->scale * ATTN_LOG2E;
    const tile_options opts = tile_options_of(p);
    float *ws = (float *)(((uintptr_t)t->workspace + 63) & ~(uintptr_t)63);
    float *qw = ws, *ow = qw + KVQ_ROWS * dpad, *w = ow + KVQ_ROWS * dpad;
    float *ksc = w + 16 * KVQ_ROWS, *vsc = ksc + dpad; /* q4: a key block's scales */
    float *kw = vsc + dpad, *vw = kw + KB * dpad;       /* a key block widened (R > 1) */
    const int64_t nb = d / ATTN_Q4_BLOCK;
    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const attn_group_rows gr = attn_group_rows_of(t, g);
        const kvq_group x = attn_kvq_group_of(t, gr.b, gr.hkv);
        for (int64_t r0 = 0; r0 < gr.count; r0 += KVQ_ROWS) {
            const int R = (int)(gr.count - r0 < KVQ_ROWS ? gr.count - r0 : KVQ_ROWS);
            kvq_row rows[KVQ_ROWS];
            int64_t first = INT64_MAX, last = 0;
            for (int r = 0; r < R; r++) {
                kvq_row *rw = &rows[r];
                rw->h = gr.first_head + (r0 + r) / gr.rows;
                rw->i = t->row_begin + (r0 + r) % gr.rows;
                rw->first = attn_key_start(p, rw->i);
                rw->first = rw->first > key_begin ? rw->first : key_begin;
                rw->lim = attn_key_limit(p, gr.b, rw->i);
                rw->lim = rw->lim < key_end ? rw->lim : key_end;
                rw->slope2 = p->alibi_slopes ? p->alibi_slopes[rw->h] * ATTN_LOG2E : 0.0f;
                rw->pos = (float)(rw->i + p->len_kv - p->len_q);
                rw->m = -INFINITY;
                rw->l = 0.0f;
                rw->mask = attn_mask_row(p, rw->i);
                if (rw->lim > rw->first) {
                    first = rw->first < first ? rw->first : first;
                    last = rw->lim > last ? rw->lim : last;
                }
                /* Q·scale·log2(e), zero-padded; q4: even elements then odd per block */
                float *qr = qw + r * dpad, *orow = ow + r * dpad;
                const float *q = attn_row_f32(t, 'q', gr.b, rw->h, rw->i, orow);
                attn_kvq_pack_q(qr, q, d, dpad, c2, x.q4);
                memset(orow, 0, (size_t)dpad * sizeof *orow);
            }
            for (int64_t j0 = first; j0 < last; j0 += KB) {
                const int64_t ahead = j0 + PREFETCH_KEYS, n = last - j0 < KB ? last - j0 : KB;
                if (ahead < last)
                    prefetch_rows(&x, ahead, last - ahead < KB ? last - ahead : KB);
                kvq_block kb = {.ksc = NULL, .vsc = NULL, .wide = false};
                kvq_block_of(&x, j0, n, &kb);
                if (x.q4) { /* the block's scales, once for all rows */
                    q4_scales(x.ks, x.ks_seq, j0, n, nb, ksc);
                    q4_scales(x.vs, x.vs_seq, j0, n, nb, vsc);
                    kb.ksc = ksc;
                    kb.vsc = vsc;
                }
                if (R > 1)
                    widen_block(&x, &kb, dpad, kw, vw);
                for (int r = 0; r < R; r++) {
                    float corr = 1.0f;
                    const __mmask16 keys =
                        row_block(&x, &kb, &opts, &rows[r], qw + r * dpad, j0, w, &corr);
                    if (keys)
                        accumulate_v(&x, &kb, ow + r * dpad, corr, keys, w);
                }
            }
            for (int r = 0; r < R; r++)
                attn_kvq_store_row(t, &x, gr.b, rows[r].h, rows[r].i, rows[r].m, rows[r].l,
                                   ow + r * dpad, part, (g - t->group_begin) * gr.count + r0 + r);
        }
    }
    return ATTN_OK;
}
