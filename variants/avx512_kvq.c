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

typedef struct kvq_group {
    const char *k, *v;      /* key 0 of the group's K and V, bytes */
    int64_t k_seq, v_seq;   /* bytes from one key to the next */
    const char *ks, *vs;    /* key 0's scales */
    int64_t ks_seq, vs_seq; /* bytes from one key's scales to the next's */
    int64_t d;
    bool q4;
} kvq_group;

static kvq_group group_of(const attn_task *t, int64_t b, int64_t hkv)
{
    const attn_problem *p = t->problem;
    const bool q4 = p->kv_dtype == ATTN_Q4;
    const int64_t ssize = q4 ? 2 : 4;
    return (kvq_group){
        .k = attn_row(t, 'k', b, hkv, 0), .v = attn_row(t, 'v', b, hkv, 0),
        .k_seq = q4 ? p->k.seq / 2 : p->k.seq, .v_seq = q4 ? p->v.seq / 2 : p->v.seq,
        .ks = attn_kv_scale_row(p, 'k', p->k_scale, b, hkv, 0),
        .vs = attn_kv_scale_row(p, 'v', p->v_scale, b, hkv, 0),
        .ks_seq = p->k_scale_strides.seq * ssize, .vs_seq = p->v_scale_strides.seq * ssize,
        .d = p->head_dim, .q4 = q4};
}

/* 16 int8 values widened to float (n < 16: the first n, zeros after; no byte beyond read). */
static inline __m512 int8x16(const int8_t *x, __mmask16 m)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, x)));
}
/* The 32 values of a q4 block's 16 bytes: the low nibbles (even elements) and the high ones. */
static inline void q4x32(const uint8_t *x, __m512 *even, __m512 *odd)
{
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)x));
    const __m512i eight = _mm512_set1_epi32(8);
    *even = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(b, _mm512_set1_epi32(15)), eight));
    *odd = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(b, 4), eight));
}
static inline float f16_at(const char *base, int64_t i)
{
    uint16_t h;
    memcpy(&h, base + 2 * i, 2);
    return _cvtsh_ss(h);
}

/* Σ q·k of one key as 16 partial sums (int8: without the row scale). */
static inline __m512 dot_key(const kvq_group *x, const float *q, int64_t j)
{
    __m512 acc = _mm512_setzero_ps();
    if (!x->q4) {
        const int8_t *k = (const int8_t *)(x->k + j * x->k_seq);
        int64_t c = 0;
        for (; c + 16 <= x->d; c += 16)
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), int8x16(k + c, 0xffff), acc);
        if (c < x->d) /* q is zero-padded to 16 */
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), int8x16(k + c, tail_mask16(x->d - c)),
                                  acc);
        return acc;
    }
    const uint8_t *k = (const uint8_t *)(x->k + j * x->k_seq);
    const char *sc = x->ks + j * x->ks_seq;
    for (int64_t blk = 0; blk < x->d / ATTN_Q4_BLOCK; blk++) {
        __m512 e, o;
        q4x32(k + 16 * blk, &e, &o);
        __m512 part = _mm512_mul_ps(_mm512_loadu_ps(q + 32 * blk), e);
        part = _mm512_fmadd_ps(_mm512_loadu_ps(q + 32 * blk + 16), o, part);
        acc = _mm512_fmadd_ps(part, _mm512_set1_ps(f16_at(sc, blk)), acc);
    }
    return acc;
}

/* o += Σ_{keys n < nv} w[n]·V[j0 + idx[n]] over head_dim, o scaled by corr first. */
static inline void accumulate_v(const kvq_group *x, float *o, float corr, int64_t j0,
                                const int *idx, int nv, const float *w)
{
    const __m512 cv = _mm512_set1_ps(corr);
    if (!x->q4) {
        for (int64_t c = 0; c < x->d; c += 16) {
            const __mmask16 m = tail_mask16(x->d - c);
            __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(o + c), cv);
            for (int n = 0; n < nv; n++) {
                const int8_t *v = (const int8_t *)(x->v + (j0 + idx[n]) * x->v_seq);
                acc = _mm512_fmadd_ps(_mm512_set1_ps(w[n]), int8x16(v + c, m), acc);
            }
            _mm512_storeu_ps(o + c, acc);
        }
        return;
    }
    for (int64_t blk = 0; blk < x->d / ATTN_Q4_BLOCK; blk++) {
        __m512 ae = _mm512_mul_ps(_mm512_loadu_ps(o + 32 * blk), cv);
        __m512 ao = _mm512_mul_ps(_mm512_loadu_ps(o + 32 * blk + 16), cv);
        for (int n = 0; n < nv; n++) {
            const int64_t j = j0 + idx[n];
            __m512 e, od;
            q4x32((const uint8_t *)(x->v + j * x->v_seq) + 16 * blk, &e, &od);
            const __m512 ws = _mm512_set1_ps(w[n] * f16_at(x->vs + j * x->vs_seq, blk));
            ae = _mm512_fmadd_ps(ws, e, ae);
            ao = _mm512_fmadd_ps(ws, od, ao);
        }
        _mm512_storeu_ps(o + 32 * blk, ae);
        _mm512_storeu_ps(o + 32 * blk + 16, ao);
    }
}

/* One chunk's rows: what each needs across key blocks. */
typedef struct kvq_row {
    int64_t h, i, first, lim;
    float slope2, pos; /* ALiBi slope·log2(e); the query's position i' */
    float m, l;        /* running max (log2 units), sum */
    const float *mask;
} kvq_row;

/* Row r's weights of keys [j0, j0 + 16) into w (the valid ones, compacted, indices in idx);
 * updates its max and sum; returns how many keys count and the correction of the
 * accumulator. */
static inline int row_block(const kvq_group *x, const tile_options *opts, kvq_row *rw,
                            const float *q, int64_t j0, int *idx, float *w, float *corr)
{
    const int64_t lo = rw->first > j0 ? rw->first - j0 : 0, hi = rw->lim - j0;
    __mmask16 valid = (__mmask16)(tail_mask16(hi) & ~tail_mask16(lo));
    if (!valid)
        return 0;
    __m512 a[KB];
    for (int n = 0; n < KB; n++)
        a[n] = valid >> n & 1 ? dot_key(x, q, j0 + n) : _mm512_setzero_ps();
    __m512 s = sum16(a);
    if (!x->q4) { /* the int8 row scales of the 16 keys */
        float ks[KB];
        for (int n = 0; n < KB; n++)
            memcpy(&ks[n], x->ks + (valid >> n & 1 ? j0 + n : j0 + lo) * x->ks_seq, 4);
        s = _mm512_mul_ps(s, _mm512_loadu_ps(ks));
    }
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
    float p[KB];
    _mm512_storeu_ps(p, pv);
    int nv = 0;
    for (int n = 0; n < KB; n++)
        if (valid >> n & 1) {
            float vs = 1.0f;
            if (!x->q4)
                memcpy(&vs, x->vs + (j0 + n) * x->vs_seq, 4);
            idx[nv] = n;
            w[nv++] = p[n] * vs;
        }
    return nv;
}

/* Row r's final values: normalised into O, or its partials (natural-unit max). Undoes q4's
 * permutation of head_dim. */
static void row_store(const attn_task *t, const kvq_group *x, const kvq_row *rw, const float *o,
                      int64_t b, const attn_partial *part, int64_t prow)
{
    const attn_problem *p = t->problem;
    const float ln2 = 0.69314718055994530942f, m = rw->m * ln2;
    float *dst;
    float norm = 1.0f;
    if (part) {
        part->max[prow] = rw->m == -INFINITY ? -INFINITY : m;
        part->sum[prow] = rw->l;
        dst = part->acc + prow * x->d;
    } else {
        norm = attn_row_norm(m, rw->l, p->sinks ? p->sinks[rw->h] : -INFINITY);
        dst = attn_o_row(t, b, rw->h, rw->i);
    }
    const bool empty = rw->l == 0.0f; /* no key: zeros, whatever o holds */
    for (int64_t c = 0; c < x->d; c++) {
        const int64_t at = x->q4 ? c / 32 * 32 + (c % 2) * 16 + c % 32 / 2 : c;
        dst[c] = empty ? 0.0f : o[at] * norm;
    }
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
    int idx[KB];
    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const attn_group_rows gr = attn_group_rows_of(t, g);
        const kvq_group x = group_of(t, gr.b, gr.hkv);
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
                for (int64_t c = 0; c < d; c++) {
                    const int64_t at = x.q4 ? c / 32 * 32 + (c % 2) * 16 + c % 32 / 2 : c;
                    qr[at] = q[c] * c2;
                }
                memset(qr + d, 0, (size_t)(dpad - d) * sizeof *qr);
                memset(orow, 0, (size_t)dpad * sizeof *orow);
            }
            for (int64_t j0 = first; j0 < last; j0 += KB)
                for (int r = 0; r < R; r++) {
                    float corr = 1.0f;
                    const int nv = row_block(&x, &opts, &rows[r], qw + r * dpad, j0, idx, w, &corr);
                    if (nv)
                        accumulate_v(&x, ow + r * dpad, corr, j0, idx, nv, w);
                }
            for (int r = 0; r < R; r++)
                row_store(t, &x, &rows[r], ow + r * dpad, gr.b, part,
                          (g - t->group_begin) * gr.count + r0 + r);
        }
    }
    return ATTN_OK;
}
