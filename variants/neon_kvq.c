/* neon_kvq.c — the neon variant on quantized K/V (int8, q4): the algorithm is kvq.h's, with
 * blocks of 8 keys (two q registers of scores).
 *
 * Dequantizing in registers, 16 values per step:
 *   int8  one 16-byte load, sxtl/sxtl2 to int16, sxtl/sxtl2 to int32, scvtf: 4 float vectors;
 *   q4    one 16-byte load holds a block of 32: eor 0x88 turns each nibble (q + 8) into q's
 *         4-bit two's complement, so shl #4 (low nibbles, the even elements) and and 0xf0 (high
 *         nibbles, the odd ones) give q·16 as int8, exactly; then as int8. The 1/16 is folded
 *         into the block scales (a power of two: exact).
 * Scores: the block's 8 dot products accumulate along head_dim in 8 vectors (each Q chunk
 * loaded once for the 8 keys), then a faddp tree gives two vectors of 4 scores; the int8 row
 * scale multiplies the score, the q4 block scale each block's partial dot product. The V pass
 * walks head_dim in chunks of 16 (int8) or one q4 block of 32 with the chunk's accumulators in
 * registers across the block's keys, each key's weight (softmax weight times the V row or
 * block scale) applied by fmla. The options of current models (soft cap, ALiBi) and the
 * additive mask go through the scalar attn_logit_log2 on the 8 scores, as neon.c's epilogue.
 *
 * A chunk of several rows (the query heads of a GQA group, or several query rows) widens each
 * key block of K and V to float32 once (q4 block scales applied; 2 · 8 · dpad floats, in L1)
 * and runs every row on that, so the dequantization is paid once per key, not once per row
 * (break-even at 2 rows, by instruction count; ahead from 3). No software
 * prefetch: each K and V row is read front to back, streams the hardware prefetchers follow. */
#include "kvq.h"
#include "neon_common.h"

#include <math.h>
#include <string.h>

#define KB 8 /* keys per block: two vectors of scores */

/* 16 int8 values as 4 float vectors. */
static inline void int8x16_to_f32(int8x16_t x, float32x4_t out[4])
{
    const int16x8_t lo = vmovl_s8(vget_low_s8(x)), hi = vmovl_high_s8(x);
    out[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    out[1] = vcvtq_f32_s32(vmovl_high_s16(lo));
    out[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    out[3] = vcvtq_f32_s32(vmovl_high_s16(hi));
}

/* 16 int8 values at x, of which the first n count (n < 16: zeros after; no byte beyond read). */
static inline int8x16_t load_int8x16(const int8_t *x, int64_t n)
{
    if (n >= 16)
        return vld1q_s8(x);
    int8_t buf[16] = {0};
    memcpy(buf, x, (size_t)n);
    return vld1q_s8(buf);
}

/* A q4 block's 16 bytes as its 32 values times 16: even elements (low nibbles), odd ones. */
static inline void q4x32(const uint8_t *x, int8x16_t *even, int8x16_t *odd)
{
    const uint8x16_t b = veorq_u8(vld1q_u8(x), vdupq_n_u8(0x88));
    *even = vreinterpretq_s8_u8(vshlq_n_u8(b, 4));
    *odd = vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0xf0)));
}

/* The rows of one key block; keys past its end point at key j0 (read, never counted). */
typedef struct kvq_block {
    const void *k[KB], *v[KB];
    float ks[KB], vs[KB];   /* int8: the row scales */
    const float *ksc, *vsc; /* q4: block scales / 16, [blk·8 + n] */
    bool wide;              /* k[n], v[n] are float32 rows of dpad (widen_block) */
} kvq_block;

static inline void kvq_block_of(const kvq_group *x, int64_t j0, int64_t n, kvq_block *kb)
{
    for (int i = 0; i < KB; i++) {
        const int64_t j = j0 + (i < n ? i : 0);
        kb->k[i] = x->k + j * x->k_seq;
        kb->v[i] = x->v + j * x->v_seq;
        kb->ks[i] = kb->vs[i] = 0.0f;
        if (!x->q4 && i < n) {
            memcpy(&kb->ks[i], x->ks + j * x->ks_seq, 4);
            memcpy(&kb->vs[i], x->vs + j * x->vs_seq, 4);
        }
    }
}

/* The q4 scales of keys j0 + n (the first n_keys; the others 0), widened and divided by 16:
 * out[blk·8 + n]. */
static inline void q4_scales(const char *base, int64_t seq, int64_t j0, int64_t n_keys,
                             int64_t nb, float *out)
{
    for (int n = 0; n < KB; n++) {
        const uint16_t *row = (const uint16_t *)(base + (j0 + n) * seq);
        int64_t blk = 0;
        if (n < n_keys)
            for (; blk + 4 <= nb; blk += 4) {
                const float32x4_t s = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(row + blk)));
                const float32x4_t s16 = vmulq_n_f32(s, 1.0f / 16);
                for (int e = 0; e < 4; e++)
                    out[(blk + e) * KB + n] = s16[e];
            }
        for (; blk < nb; blk++)
            out[blk * KB + n] = n < n_keys ? attn_f16_to_f32(row[blk]) / 16 : 0.0f;
    }
}

/* Lane n of the result: the sum of a[n]'s lanes (scores of keys 0-3, 4-7). */
static inline void sum8(const float32x4_t a[KB], float32x4_t *s0, float32x4_t *s1)
{
    *s0 = vpaddq_f32(vpaddq_f32(a[0], a[1]), vpaddq_f32(a[2], a[3]));
    *s1 = vpaddq_f32(vpaddq_f32(a[4], a[5]), vpaddq_f32(a[6], a[7]));
}

/* a[n] += q[0..16) · K[n][c..c + 16) for the block's 8 int8 keys, of whose chunk n_values count
 * (16, or the tail's; q is zero-padded). Inlined with n_values 16, it has no branch, and the 8
 * accumulators stay in registers. */
static inline __attribute__((always_inline)) void
dot_int8_chunk(float32x4_t a[KB], const float *q, const kvq_block *kb, int64_t c, int64_t n_values)
{
    const float32x4_t q0 = vld1q_f32(q), q1 = vld1q_f32(q + 4);
    const float32x4_t q2 = vld1q_f32(q + 8), q3 = vld1q_f32(q + 12);
    for (int n = 0; n < KB; n++) {
        float32x4_t k[4];
        int8x16_to_f32(load_int8x16((const int8_t *)kb->k[n] + c, n_values), k);
        a[n] = vfmaq_f32(a[n], q0, k[0]);
        a[n] = vfmaq_f32(a[n], q1, k[1]);
        a[n] = vfmaq_f32(a[n], q2, k[2]);
        a[n] = vfmaq_f32(a[n], q3, k[3]);
    }
}

/* Scores of the block's 8 keys against q (log2 units; q is zero-padded to dpad). */
static inline void dot_block(const kvq_group *x, const kvq_block *kb, const float *q,
                             int64_t dpad, float32x4_t *s0, float32x4_t *s1)
{
    float32x4_t a[KB];
    for (int n = 0; n < KB; n++)
        a[n] = vdupq_n_f32(0.0f);
    if (kb->wide || !x->q4) {
        if (kb->wide) /* float32 rows (q4: block scales applied) */
            for (int64_t c = 0; c < dpad; c += 4) {
                const float32x4_t qv = vld1q_f32(q + c);
                for (int n = 0; n < KB; n++)
                    a[n] = vfmaq_f32(a[n], qv, vld1q_f32((const float *)kb->k[n] + c));
            }
        else {
            int64_t c = 0;
            for (; c + 16 <= x->d; c += 16) /* whole chunks: no tail test in the loop */
                dot_int8_chunk(a, q + c, kb, c, 16);
            if (c < x->d)
                dot_int8_chunk(a, q + c, kb, c, x->d - c);
        }
        sum8(a, s0, s1);
        if (x->q4)
            return;
        *s0 = vmulq_f32(*s0, vld1q_f32(kb->ks));
        *s1 = vmulq_f32(*s1, vld1q_f32(kb->ks + 4));
        return;
    }
    const int64_t nb = x->d / ATTN_Q4_BLOCK;
    for (int64_t blk = 0; blk < nb; blk++) {
        const float *qb = q + 32 * blk; /* even elements 0-15, then odd */
        float32x4_t qv[8];
        for (int e = 0; e < 8; e++)
            qv[e] = vld1q_f32(qb + 4 * e);
#pragma GCC unroll 8 /* 8 keys: no loop counter, addresses folded */
        for (int n = 0; n < KB; n++) {
            int8x16_t even, odd;
            q4x32((const uint8_t *)kb->k[n] + 16 * blk, &even, &odd);
            float32x4_t ke[4], ko[4];
            int8x16_to_f32(even, ke);
            int8x16_to_f32(odd, ko);
            float32x4_t part = vmulq_f32(qv[0], ke[0]);
            for (int e = 1; e < 4; e++)
                part = vfmaq_f32(part, qv[e], ke[e]);
            for (int e = 0; e < 4; e++)
                part = vfmaq_f32(part, qv[4 + e], ko[e]);
            a[n] = vfmaq_n_f32(a[n], part, kb->ksc[blk * KB + n]);
        }
    }
    sum8(a, s0, s1);
}

/* o = o·corr + Σ_{keys n in `keys`} w[n]·V[n] over head_dim (w: the softmax weights, times the
 * int8 row scale of V; q4 applies its block scales here). Keys outside `keys` are never read
 * into o: a NaN in a V row the row excludes must not reach it. */
static inline void accumulate_v(const kvq_group *x, const kvq_block *kb, float *o,
                                int64_t dpad, float corr, unsigned keys, const float *w)
{
    const bool all = keys == (1u << KB) - 1;
    if (kb->wide) {
        const float *v[KB]; /* the rows and weights in registers across the loop */
        for (int n = 0; n < KB; n++)
            v[n] = kb->v[n];
        const float32x4_t w0 = vld1q_f32(w), w1 = vld1q_f32(w + 4);
        if (all) /* fmla by lane needs a constant lane: the 8 keys written out */
            for (int64_t c = 0; c < dpad; c += 4) {
                float32x4_t acc = vmulq_n_f32(vld1q_f32(o + c), corr);
                acc = vfmaq_laneq_f32(acc, vld1q_f32(v[0] + c), w0, 0);
                acc = vfmaq_laneq_f32(acc, vld1q_f32(v[1] + c), w0, 1);
                acc = vfmaq_laneq_f32(acc, vld1q_f32(v[2] + c), w0, 2);
                acc = vfmaq_laneq_f32(acc, vld1q_f32(v[3] + c), w0, 3);
                acc = vfmaq_laneq_f32(acc, vld1q_f32(v[4] + c), w1, 0);
                acc = vfmaq_laneq_f32(acc, vld1q_f32(v[5] + c), w1, 1);
                acc = vfmaq_laneq_f32(acc, vld1q_f32(v[6] + c), w1, 2);
                acc = vfmaq_laneq_f32(acc, vld1q_f32(v[7] + c), w1, 3);
                vst1q_f32(o + c, acc);
            }
        else
            for (int64_t c = 0; c < dpad; c += 4) {
                float32x4_t acc = vmulq_n_f32(vld1q_f32(o + c), corr);
                for (int n = 0; n < KB; n++)
                    if (keys >> n & 1)
                        acc = vfmaq_n_f32(acc, vld1q_f32(v[n] + c), w[n]);
                vst1q_f32(o + c, acc);
            }
        return;
    }
    if (!x->q4) {
        for (int64_t c = 0; c < x->d; c += 16) {
            float32x4_t acc[4];
            for (int e = 0; e < 4; e++)
                acc[e] = vmulq_n_f32(vld1q_f32(o + c + 4 * e), corr);
            for (int n = 0; n < KB; n++) {
                if (!all && !(keys >> n & 1))
                    continue;
                float32x4_t v[4];
                int8x16_to_f32(load_int8x16((const int8_t *)kb->v[n] + c, x->d - c), v);
                for (int e = 0; e < 4; e++)
                    acc[e] = vfmaq_n_f32(acc[e], v[e], w[n]);
            }
            for (int e = 0; e < 4; e++)
                vst1q_f32(o + c + 4 * e, acc[e]);
        }
        return;
    }
    const int64_t nb = x->d / ATTN_Q4_BLOCK;
    const float32x4_t w0 = vld1q_f32(w), w1 = vld1q_f32(w + 4);
    for (int64_t blk = 0; blk < nb; blk++) {
        float *ob = o + 32 * blk; /* even elements 0-15, then odd */
        float32x4_t acc[8];
        for (int e = 0; e < 8; e++)
            acc[e] = vmulq_n_f32(vld1q_f32(ob + 4 * e), corr);
        float ws[KB]; /* the weights times the block's V scales */
        vst1q_f32(ws, vmulq_f32(w0, vld1q_f32(kb->vsc + blk * KB)));
        vst1q_f32(ws + 4, vmulq_f32(w1, vld1q_f32(kb->vsc + blk * KB + 4)));
#pragma GCC unroll 8
        for (int n = 0; n < KB; n++) {
            if (!all && !(keys >> n & 1))
                continue;
            int8x16_t even, odd;
            q4x32((const uint8_t *)kb->v[n] + 16 * blk, &even, &odd);
            float32x4_t ve[4], vo[4];
            int8x16_to_f32(even, ve);
            int8x16_to_f32(odd, vo);
            for (int e = 0; e < 4; e++) {
                acc[e] = vfmaq_n_f32(acc[e], ve[e], ws[n]);
                acc[4 + e] = vfmaq_n_f32(acc[4 + e], vo[e], ws[n]);
            }
        }
        for (int e = 0; e < 8; e++)
            vst1q_f32(ob + 4 * e, acc[e]);
    }
}

/* The block's K and V widened to float32 rows of dpad (zero-padded; q4 in its permuted order,
 * its block scales applied; int8's row scales stay in kb), into kw and vw; kb then points at
 * them. */
static void widen_block(const kvq_group *x, kvq_block *kb, int64_t dpad, float *kw,
                        float *vw)
{
    const int64_t nb = x->d / ATTN_Q4_BLOCK;
    for (int n = 0; n < KB; n++) {
        float *rows[2] = {kw + n * dpad, vw + n * dpad};
        const void *src[2] = {kb->k[n], kb->v[n]};
        for (int t = 0; t < 2; t++) {
            float32x4_t f[8];
            if (!x->q4) { /* the row scales stay apart: on the score, on the weight */
                for (int64_t c = 0; c < dpad; c += 16) { /* dpad - d < 16: a tail at most */
                    const int64_t left = x->d - c < 16 ? x->d - c : 16;
                    int8x16_to_f32(load_int8x16((const int8_t *)src[t] + c, left), f);
                    for (int e = 0; e < 4; e++)
                        vst1q_f32(rows[t] + c + 4 * e, f[e]);
                }
                continue;
            }
            const float *sc = t ? kb->vsc : kb->ksc;
            for (int64_t blk = 0; blk < nb; blk++) {
                int8x16_t even, odd;
                q4x32((const uint8_t *)src[t] + 16 * blk, &even, &odd);
                int8x16_to_f32(even, f);
                int8x16_to_f32(odd, f + 4);
                for (int e = 0; e < 8; e++)
                    vst1q_f32(rows[t] + 32 * blk + 4 * e, vmulq_n_f32(f[e], sc[blk * KB + n]));
            }
            memset(rows[t] + x->d, 0, (size_t)(dpad - x->d) * sizeof(float));
        }
        kb->k[n] = rows[0];
        kb->v[n] = rows[1];
    }
    kb->wide = true;
}

/* One chunk's rows: what each needs across key blocks. */
typedef struct kvq_row {
    int64_t h, i, first, lim;
    attn_row_opts ro;
    bool options;
    float m, l; /* running max (log2 units), sum */
    const float *mask;
} kvq_row;

/* Lanes of keys 0-3 (and 4-7) whose bit is set in `bits`. */
static inline void bits_mask(unsigned bits, uint32x4_t *lo, uint32x4_t *hi)
{
    static const uint32_t bit[KB] = {1, 2, 4, 8, 16, 32, 64, 128};
    *lo = vtstq_u32(vdupq_n_u32(bits), vld1q_u32(bit));
    *hi = vtstq_u32(vdupq_n_u32(bits), vld1q_u32(bit + 4));
}

/* Row rw's weights of the block's keys j0 + n into w[n]; updates its max and sum. Returns the
 * keys that count (0: none) and the accumulator's correction in *corr. */
static inline unsigned row_block(const kvq_group *x, const kvq_block *kb, kvq_row *rw,
                                 const float *q, int64_t dpad, int64_t j0, float *w, float *corr)
{
    const int64_t lo = rw->first > j0 ? rw->first - j0 : 0, hi = rw->lim - j0;
    if (hi <= 0 || lo >= KB)
        return 0;
    unsigned valid = (hi >= KB ? 0xffu : (1u << hi) - 1) & ~((1u << lo) - 1);
    float32x4_t s0, s1;
    dot_block(x, kb, q, dpad, &s0, &s1);
    if (rw->options || rw->mask) {
        float s[KB];
        vst1q_f32(s, s0);
        vst1q_f32(s + 4, s1);
        valid = kvq_row_logits(&rw->ro, rw->options, rw->mask, s, KB, j0, valid);
        s0 = vld1q_f32(s);
        s1 = vld1q_f32(s + 4);
    }
    if (!valid)
        return 0;
    uint32x4_t k0, k1;
    bits_mask(valid, &k0, &k1);
    const float32x4_t minus_inf = vdupq_n_f32(-INFINITY);
    /* FMAXV keeps a NaN: a NaN score among the keys makes the row NaN */
    const float bm =
        vmaxvq_f32(vmaxq_f32(vbslq_f32(k0, s0, minus_inf), vbslq_f32(k1, s1, minus_inf)));
    if (isnan(bm)) {
        rw->l = NAN;
        return 0;
    }
    const float m_new = fmaxf(rw->m, bm);
    if (m_new == -INFINITY)
        return 0;
    *corr = attn_exp2_nonpos(rw->m - m_new);
    const float32x4_t mv = vdupq_n_f32(m_new), zero = vdupq_n_f32(0.0f);
    const float32x4_t p0 = vbslq_f32(k0, exp2_nonpos_f32x4(vsubq_f32(s0, mv)), zero);
    const float32x4_t p1 = vbslq_f32(k1, exp2_nonpos_f32x4(vsubq_f32(s1, mv)), zero);
    rw->l = rw->l * *corr + vaddvq_f32(vaddq_f32(p0, p1));
    rw->m = m_new;
    if (x->q4) {
        vst1q_f32(w, p0);
        vst1q_f32(w + 4, p1);
    } else {
        vst1q_f32(w, vmulq_f32(p0, vld1q_f32(kb->vs)));
        vst1q_f32(w + 4, vmulq_f32(p1, vld1q_f32(kb->vs + 4)));
    }
    return valid;
}

attn_status attn_neon_kvq_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                               const attn_partial *part)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, dpad = attn_kvq_dpad(p), nb = d / ATTN_Q4_BLOCK;
    const float c2 = t->scale * ATTN_LOG2E;
    float *ws = (float *)(((uintptr_t)t->workspace + 63) & ~(uintptr_t)63);
    float *qw = ws, *ow = qw + KVQ_ROWS * dpad, *w = ow + KVQ_ROWS * dpad;
    float *ksc = w + 16 * KVQ_ROWS, *vsc = ksc + dpad; /* q4: a key block's scales */
    float *kw = vsc + dpad, *vw = kw + KB * dpad;       /* a key block widened (R > 1) */
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
            }
            for (int64_t j0 = first; j0 < last; j0 += KB) {
                const int64_t n = last - j0 < KB ? last - j0 : KB;
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
                    const unsigned keys =
                        row_block(&x, &kb, &rows[r], qw + r * dpad, dpad, j0, w, &corr);
                    if (keys)
                        accumulate_v(&x, &kb, ow + r * dpad, dpad, corr, keys, w);
                }
            }
            for (int r = 0; r < R; r++)
                attn_kvq_store_row(t, &x, gr.b, rows[r].h, rows[r].i, rows[r].m, rows[r].l,
                                   ow + r * dpad, part, (g - t->group_begin) * gr.count + r0 + r);
        }
    }
    return ATTN_OK;
}
