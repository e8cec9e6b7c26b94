/* neon.c — streaming (online softmax) attention for AArch64 Advanced SIMD, float32.
 *
 * Algorithm: the FlashAttention recurrence of streaming.c. A query tile of bq rows (flattened
 * over the query heads of a GQA group, row r = head·rows + i) walks the keys in blocks of bk.
 * Each key block is packed once and then used by every 8-row micro-tile of the query tile, so
 * it is read from memory once per query tile for all heads of the group. Per micro-tile and
 * key block:
 *   1. scores   S[8][8·panels] = Q·Kᵀ, 8×8 register tiles; the epilogue multiplies by
 *               scale·log2(e), applies the soft cap and ALiBi (vector tanh, one exp), adds
 *               mask·log2(e), and *selects* -inf for masked keys (never adds -inf, so a NaN
 *               in a masked key's K row stays out of the row);
 *   2. softmax  per row: block max; when it rises, the accumulator row and the running sum are
 *               rescaled by 2^(m - m'); P = 2^(S - m) with the shared polynomial (exp2_poly.h);
 *   3. P·V      acc[8][dpad] += P·V in 8×8 register tiles.
 * Rows are normalised once, when the query tile is done. Key blocks past the largest key limit
 * of a micro-tile (causal, kv_lens) are skipped. The tile and block loop is packed_stream.h's
 * (shared with sve.c and sve_bf16.c); this file packs and computes one micro-tile.
 *
 * Registers (32 × 128-bit): score tile 16 accumulators (8 query rows × 8 keys) + 8 K vectors
 * (4 dims × 8 keys) + 1 Q vector = 25; P·V tile 16 accumulators (8 rows × 8 dims) + 8 P vectors
 * (8 rows × 4 keys) + 2 V vectors = 26.
 *
 * Layout (workspace, dpad = d rounded up to 8, zero padded so tails need no branches):
 *   qp   [bq][dpad]            the query tile, rows past the tile zero
 *   acc  [bq][dpad]            unnormalised output rows
 *   kp   [bk/8][dpad][8]       K block as panels of 8 keys, transposed (8 keys per dim)
 *   vp   [dpad/8][bk][8]       V block as chunks of 8 dims, key-major within a chunk
 *   s    [8][bk]               scores, then weights, of one micro-tile
 *   m, l [bq]                  running max (log2 domain) and sum
 * 0 × NaN is NaN, so a key block whose V holds a NaN or an infinity goes through a per-row P·V
 * that touches only the keys each row attends to. Memory is independent of Lk.
 *
 * run_partial (the harness's key split for decode on several threads): the same loop over a
 * key range, writing each row's max (natural units), sum and unnormalised row.
 *
 * Quantized K/V (int8, q4; kvq.h) go to neon_kvq.c, which reads them in place and dequantizes
 * them in registers. */
#include "variant.h"

#include "kvq.h"
#include "neon_common.h"
#include "packed_stream.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { P_BQ, P_BK };
enum {
    MR = STREAM_MR, /* query rows per micro-tile */
    NR = 8,         /* keys per panel, dims per V chunk */
};

static const attn_param_info neon_params[] = {
    [P_BQ] = {"bq", "query rows per tile (multiple of the 8-row micro-tile)", 8, 512, 8},
    [P_BK] = {"bk", "keys per packed K/V block (multiple of the 8-key panel)", 8, 4096, 8},
};

static int64_t round_up8(int64_t x) { return (x + 7) & ~(int64_t)7; }

/* Defaults (NEON family). The packed K and V block (2·bk·dpad floats) is reused by every
 * micro-tile of the query tile: keep it in half of L2. The query tile and its accumulators
 * (2·bq·dpad floats) take a quarter of L2. A micro-tile's Q rows, K panel and score rows stay
 * in L1. */
static const attn_default_rule neon_defaults[] = {
    /*          fact          div per_d lk dm min max  max_half fixed */
    [P_BQ]   = {ATTN_FACT_L2,  4, 8,    0, 8, 8,  128, 0,       0,
                "packed Q and accumulators: 2 x dpad floats per row"},
    [P_BK]   = {ATTN_FACT_L2,  2, 8,    0, 8, 32, 512, 0,       0,
                "packed K and V: 2 x dpad floats per key"},
};

/* Float counts of the workspace parts; false when a size does not fit in size_t. */
typedef struct neon_layout {
    size_t qp, acc, kp, vp, s, m, l, total;
} neon_layout;

static bool neon_layout_of(const attn_problem *p, const int32_t *v, neon_layout *w)
{
    const size_t bq = (size_t)v[P_BQ], bk = (size_t)v[P_BK];
    const size_t dpad = (size_t)round_up8(p->head_dim);
    memset(w, 0, sizeof *w);
    if (__builtin_mul_overflow(bq, dpad, &w->qp) || __builtin_mul_overflow(bk, dpad, &w->kp))
        return false;
    w->acc = w->qp;
    w->vp = w->kp;
    w->s = MR * bk;
    w->m = w->l = bq;
    const size_t parts[] = {w->qp, w->acc, w->kp, w->vp, w->s, w->m, w->l};
    return attn_stream_sum_parts(parts, sizeof parts / sizeof parts[0], &w->total);
}

static size_t neon_workspace(const attn_problem *p, const int32_t *v)
{
    if (attn_kv_quantized(p)) /* quantized K/V: neon_kvq.c */
        return attn_kvq_workspace(p);
    neon_layout w;
    size_t bytes;
    if (!neon_layout_of(p, v, &w) || __builtin_mul_overflow(w.total, sizeof(float), &bytes))
        return SIZE_MAX;
    return bytes;
}

/* tanh(x), the vector form of attn_tanh_model (exp2_poly.h): the odd Taylor series below
 * ATTN_TANH_SMALL, else sign(x)·(1 - e)/(1 + e) with e = 2^(-2|x|·log2(e)) (0 for huge |x|:
 * ±1 exactly). NaN stays NaN. */
static inline float32x4_t tanh_f32x4(float32x4_t x)
{
    const float32x4_t a = vabsq_f32(x), one = vdupq_n_f32(1.0f);
    const float32x4_t e = exp2_nonpos_f32x4(vmulq_n_f32(a, -2.0f * ATTN_LOG2E));
    const float32x4_t big = vdivq_f32(vsubq_f32(one, e), vaddq_f32(one, e));
    const float32x4_t x2 = vmulq_f32(x, x);
    float32x4_t y = vdupq_n_f32(ATTN_TANH_C11);
    y = vfmaq_f32(vdupq_n_f32(ATTN_TANH_C9), y, x2);
    y = vfmaq_f32(vdupq_n_f32(ATTN_TANH_C7), y, x2);
    y = vfmaq_f32(vdupq_n_f32(ATTN_TANH_C5), y, x2);
    y = vfmaq_f32(vdupq_n_f32(ATTN_TANH_C3), y, x2);
    const float32x4_t small = vfmaq_f32(x, vmulq_f32(y, x2), x);
    /* big >= 0 takes x's sign bit; the Taylor lanes where |x| is small */
    const float32x4_t big_signed = vbslq_f32(vdupq_n_u32(0x80000000u), x, big);
    return vbslq_f32(vcltq_f32(a, vdupq_n_f32(ATTN_TANH_SMALL)), small, big_signed);
}

/* The options of current models on two vectors of one row's scores in log2 units (keys j..j+8):
 * the soft cap cl·tanh(s / cl), then the ALiBi bias slope·log2(e)·(j - i'), j - i' formed in
 * integers for the panel and the lane added exactly (|j - i'| < 2^24). */
static inline void logit_opts_f32x4(const micro_rows *rows, int r, int64_t j, float32x4_t *lo,
                                    float32x4_t *hi)
{
    if (rows->cap_log2 != 0.0f) {
        *lo = vmulq_n_f32(tanh_f32x4(vmulq_n_f32(*lo, rows->inv_cap_log2)), rows->cap_log2);
        *hi = vmulq_n_f32(tanh_f32x4(vmulq_n_f32(*hi, rows->inv_cap_log2)), rows->cap_log2);
    }
    const attn_row_opts *ro = &rows->ro[r];
    if (ro->slope != 0.0f) {
        static const float lane[NR] = {0, 1, 2, 3, 4, 5, 6, 7};
        const float32x4_t rel = vdupq_n_f32((float)(j - ro->pos));
        const float slope = ro->slope * ATTN_LOG2E;
        *lo = vfmaq_n_f32(*lo, vaddq_f32(rel, vld1q_f32(lane)), slope);
        *hi = vfmaq_n_f32(*hi, vaddq_f32(rel, vld1q_f32(lane + 4)), slope);
    }
}

/* S[r][0..8) for one 8-key panel starting at key j (absolute), in the log2 domain.
 * qp: 8 packed query rows (stride dpad); kpanel: [dpad][8]. */
static inline void score_tile_8x8(const float *restrict qp, const float *restrict kpanel,
                                  int64_t dpad, int64_t j, const micro_rows *rows,
                                  float scale_log2e, float *restrict s, int64_t lds)
{
    float32x4_t acc[2 * MR];
    for (int r = 0; r < 2 * MR; r++)
        acc[r] = vdupq_n_f32(0.0f);
    for (int64_t c = 0; c < dpad; c += 4) {
        const float *k = kpanel + c * NR;
        const float32x4_t k0l = vld1q_f32(k), k0h = vld1q_f32(k + 4);
        const float32x4_t k1l = vld1q_f32(k + 8), k1h = vld1q_f32(k + 12);
        const float32x4_t k2l = vld1q_f32(k + 16), k2h = vld1q_f32(k + 20);
        const float32x4_t k3l = vld1q_f32(k + 24), k3h = vld1q_f32(k + 28);
        for (int r = 0; r < MR; r++) {
            const float32x4_t q = vld1q_f32(qp + r * dpad + c);
            acc[2 * r] = vfmaq_laneq_f32(acc[2 * r], k0l, q, 0);
            acc[2 * r + 1] = vfmaq_laneq_f32(acc[2 * r + 1], k0h, q, 0);
            acc[2 * r] = vfmaq_laneq_f32(acc[2 * r], k1l, q, 1);
            acc[2 * r + 1] = vfmaq_laneq_f32(acc[2 * r + 1], k1h, q, 1);
            acc[2 * r] = vfmaq_laneq_f32(acc[2 * r], k2l, q, 2);
            acc[2 * r + 1] = vfmaq_laneq_f32(acc[2 * r + 1], k2h, q, 2);
            acc[2 * r] = vfmaq_laneq_f32(acc[2 * r], k3l, q, 3);
            acc[2 * r + 1] = vfmaq_laneq_f32(acc[2 * r + 1], k3h, q, 3);
        }
    }

    /* Epilogue: scale, mask, and select -inf for keys the row does not see. */
    static const uint32_t lane_index[NR] = {0, 1, 2, 3, 4, 5, 6, 7};
    const uint32x4_t idx_lo = vld1q_u32(lane_index), idx_hi = vld1q_u32(lane_index + 4);
    const float32x4_t minus_inf = vdupq_n_f32(-INFINITY), log2e = vdupq_n_f32(ATTN_LOG2E);
    const float32x4_t sl2e = vdupq_n_f32(scale_log2e);
    for (int r = 0; r < MR; r++) {
        float *out = s + r * lds;
        const int64_t visible = rows->limit[r] - j; /* keys of this panel the row may see */
        if (visible <= 0 || rows->first[r] >= j + NR) {
            vst1q_f32(out, minus_inf);
            vst1q_f32(out + 4, minus_inf);
            continue;
        }
        const uint32_t n = visible < NR ? (uint32_t)visible : NR;
        uint32x4_t out_lo = vcgeq_u32(idx_lo, vdupq_n_u32(n));
        uint32x4_t out_hi = vcgeq_u32(idx_hi, vdupq_n_u32(n));
        const int64_t before = rows->first[r] - j; /* keys before the window's left edge */
        if (before > 0) {
            out_lo = vorrq_u32(out_lo, vcltq_u32(idx_lo, vdupq_n_u32((uint32_t)before)));
            out_hi = vorrq_u32(out_hi, vcltq_u32(idx_hi, vdupq_n_u32((uint32_t)before)));
        }
        float32x4_t s_lo = vmulq_f32(acc[2 * r], sl2e), s_hi = vmulq_f32(acc[2 * r + 1], sl2e);
        if (rows->opts)
            logit_opts_f32x4(rows, r, j, &s_lo, &s_hi);
        if (rows->mask[r]) {
            /* The mask row ends at Lk >= limit: a partial panel reads only its visible keys. */
            float tail[NR];
            const float *mk = rows->mask[r] + j;
            if (n < NR) {
                for (uint32_t e = 0; e < NR; e++)
                    tail[e] = e < n ? mk[e] : 0.0f;
                mk = tail;
            }
            const float32x4_t m_lo = vld1q_f32(mk), m_hi = vld1q_f32(mk + 4);
            out_lo = vorrq_u32(out_lo, vceqq_f32(m_lo, minus_inf));
            out_hi = vorrq_u32(out_hi, vceqq_f32(m_hi, minus_inf));
            s_lo = vfmaq_f32(s_lo, m_lo, log2e);
            s_hi = vfmaq_f32(s_hi, m_hi, log2e);
        }
        vst1q_f32(out, vbslq_f32(out_lo, minus_inf, s_lo));
        vst1q_f32(out + 4, vbslq_f32(out_hi, minus_inf, s_hi));
    }
}

/* acc[8][c0..c0+8) += P[8][0..nkeys) · V[0..nkeys)[c0..c0+8); nkeys a multiple of 4.
 * vchunk: [keys][8] (one 8-dim chunk of the packed V block). */
static inline void pv_tile_8x8(const float *restrict p, int64_t ldp, const float *restrict vchunk,
                               int64_t nkeys, float *restrict acc, int64_t ldacc)
{
    float32x4_t o[2 * MR];
    for (int r = 0; r < MR; r++) {
        o[2 * r] = vld1q_f32(acc + r * ldacc);
        o[2 * r + 1] = vld1q_f32(acc + r * ldacc + 4);
    }
    for (int64_t j = 0; j < nkeys; j += 4) {
        float32x4_t w[MR];
        for (int r = 0; r < MR; r++)
            w[r] = vld1q_f32(p + r * ldp + j);
        const float *v = vchunk + j * NR;
#define ATTN_NEON_PV_KEY(lane)                                                                    \
    do {                                                                                          \
        const float32x4_t v_lo = vld1q_f32(v + (lane) * NR);                                      \
        const float32x4_t v_hi = vld1q_f32(v + (lane) * NR + 4);                                  \
        for (int r = 0; r < MR; r++) {                                                            \
            o[2 * r] = vfmaq_laneq_f32(o[2 * r], v_lo, w[r], lane);                               \
            o[2 * r + 1] = vfmaq_laneq_f32(o[2 * r + 1], v_hi, w[r], lane);                       \
        }                                                                                         \
    } while (0)
        /* vfmaq_laneq_f32 needs a constant lane: one expansion per key of the 4. */
        ATTN_NEON_PV_KEY(0);
        ATTN_NEON_PV_KEY(1);
        ATTN_NEON_PV_KEY(2);
        ATTN_NEON_PV_KEY(3);
#undef ATTN_NEON_PV_KEY
    }
    for (int r = 0; r < MR; r++) {
        vst1q_f32(acc + r * ldacc, o[2 * r]);
        vst1q_f32(acc + r * ldacc + 4, o[2 * r + 1]);
    }
}

/* Packs keys [j0, j1) of K as [panels][dpad][8] (zero padded) and of V as [dpad/8][bk][8].
 * Returns false when the V block holds a NaN or an infinity. */
static bool pack_kv_block(void *ctx, const attn_task *t, int64_t b, int64_t hkv, int64_t j0,
                          int64_t j1)
{
    const stream_f32_ctx *cx = ctx;
    const int64_t bk = cx->bkp;
    float *restrict kp = cx->kp, *restrict vp = cx->vp;
    const int64_t d = t->problem->head_dim, dpad = round_up8(d), nkeys = round_up8(j1 - j0);
    float32x4_t vmax = vdupq_n_f32(0.0f); /* max |v|; FMAX keeps a NaN */
    bool tail_finite = true;
    for (int64_t jj = 0; jj < nkeys; jj++) {
        float *kcol = kp + (jj / NR) * dpad * NR + jj % NR;
        float *vrow = vp + jj * NR; /* chunk c/8 of key jj is at vrow + c·bk */
        if (j0 + jj >= j1) {
            attn_stream_pack_k_col(kcol, NR, NULL, d, dpad);
            for (int64_t c = 0; c < dpad; c += NR)
                memset(vrow + c * bk, 0, NR * sizeof(float));
            continue;
        }
        const float *k = attn_k_row(t, b, hkv, j0 + jj), *v = attn_v_row(t, b, hkv, j0 + jj);
        attn_stream_pack_k_col(kcol, NR, k, d, dpad);
        int64_t c = 0;
        for (; c + NR <= d; c += NR) {
            const float32x4_t lo = vld1q_f32(v + c), hi = vld1q_f32(v + c + 4);
            vmax = vmaxq_f32(vmax, vmaxq_f32(vabsq_f32(lo), vabsq_f32(hi)));
            vst1q_f32(vrow + c * bk, lo);
            vst1q_f32(vrow + c * bk + 4, hi);
        }
        if (c < d) {
            float *chunk = vrow + c * bk;
            for (int64_t e = 0; e < NR; e++) {
                chunk[e] = c + e < d ? v[c + e] : 0.0f;
                tail_finite &= fabsf(chunk[e]) <= FLT_MAX; /* false for inf and NaN */
            }
        }
    }
    return vmaxvq_f32(vmax) <= FLT_MAX && tail_finite;
}

/* Softmax step of one micro-tile row over `n` scores (a multiple of 8): updates the running
 * max m and sum l (rescaling the accumulator row when m rises) and overwrites the scores with
 * their weights 2^(s - m). */
static inline void softmax_row(float *restrict s, int64_t n, float *restrict m, float *restrict l,
                               float *restrict acc, int64_t dpad)
{
    float32x4_t mx = vdupq_n_f32(-INFINITY);
    for (int64_t j = 0; j < n; j += 4)
        mx = vmaxq_f32(mx, vld1q_f32(s + j)); /* FMAX: a NaN score makes the max NaN */
    const float block_max = vmaxvq_f32(mx);
    if (block_max > *m || isnan(block_max)) {
        if (*m != -INFINITY) { /* acc and l are still 0 otherwise */
            const float32x4_t alpha = exp2_nonpos_f32x4(vdupq_n_f32(*m - block_max));
            for (int64_t c = 0; c < dpad; c += 4)
                vst1q_f32(acc + c, vmulq_f32(vld1q_f32(acc + c), alpha));
            *l *= vgetq_lane_f32(alpha, 0);
        }
        *m = block_max;
    }
    /* With no key seen yet (m = -inf) every score is -inf: subtract 0 so 2^(-inf) gives 0
     * rather than 2^(-inf + inf) = NaN. */
    const float32x4_t shift = vdupq_n_f32(*m == -INFINITY ? 0.0f : *m);
    float32x4_t sum0 = vdupq_n_f32(0.0f), sum1 = vdupq_n_f32(0.0f);
    for (int64_t j = 0; j < n; j += 8) {
        const float32x4_t p0 = exp2_nonpos_f32x4(vsubq_f32(vld1q_f32(s + j), shift));
        const float32x4_t p1 = exp2_nonpos_f32x4(vsubq_f32(vld1q_f32(s + j + 4), shift));
        vst1q_f32(s + j, p0);
        vst1q_f32(s + j + 4, p1);
        sum0 = vaddq_f32(sum0, p0);
        sum1 = vaddq_f32(sum1, p1);
    }
    *l += vaddvq_f32(vaddq_f32(sum0, sum1));
}

static void neon_micro_tile(void *ctx, const attn_task *t, const micro_step *st)
{
    const stream_f32_ctx *c = ctx;
    const int64_t dpad = c->dpad, bk = c->bkp, nkeys = round_up8(st->end - st->j0);
    float *acc = c->acc + st->m0 * dpad;
    for (int64_t jp = 0; jp < nkeys; jp += NR)
        score_tile_8x8(c->qp + st->m0 * dpad, c->kp + jp * dpad, dpad, st->j0 + jp, st->rows,
                       c->scale_log2e, c->s + jp, bk);
    for (int r = 0; r < MR; r++)
        softmax_row(c->s + r * bk, nkeys, &c->run_max[st->m0 + r], &c->run_sum[st->m0 + r],
                    acc + r * dpad, dpad);
    if (st->v_finite)
        for (int64_t ch = 0; ch < dpad; ch += NR)
            pv_tile_8x8(c->s, bk, c->vp + ch * bk, nkeys, acc + ch, dpad);
    else
        attn_stream_pv_nonfinite(t, st, c->s, bk, acc, dpad, false, NULL);
}

static const stream_ops neon_ops = {attn_stream_f32_pack_q_row, pack_kv_block,
                                    neon_micro_tile};

/* run_partial, and run with part NULL over every key (variant.h). */
static attn_status neon_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                             const attn_partial *part)
{
    if (attn_kv_quantized(t->problem)) /* int8, q4 K/V: neon_kvq.c */
        return attn_neon_kvq_rows(t, key_begin, key_end, part);
    neon_layout w;
    if (!neon_layout_of(t->problem, t->params, &w)) /* workspace_size() succeeded: it cannot */
        return ATTN_ERR_OVERFLOW;
    stream_f32_ctx c = {.qp = t->workspace, .dpad = round_up8(t->problem->head_dim),
                  .bkp = t->params[P_BK], .scale_log2e = t->scale * ATTN_LOG2E};
    c.acc = c.qp + w.qp;
    c.kp = c.acc + w.acc;
    c.vp = c.kp + w.kp;
    c.s = c.vp + w.vp;
    c.run_max = c.s + w.s;
    c.run_sum = c.run_max + w.m;
    attn_stream_run(t, key_begin, key_end, part, t->params[P_BQ], c.bkp, c.dpad, c.acc, c.run_max,
                    c.run_sum, &neon_ops, &c);
    return ATTN_OK;
}

const attn_variant attn_variant_neon = {
    .name = "neon",
    .description = "online softmax, 8x8 vfmaq micro-kernels, packed K/V blocks (AArch64 NEON)",
    .isa = ATTN_ISA_NEON,
    .roofline = ATTN_ROOFLINE_FMA,
    .tolerance = 1e-5,
    .kv_dtypes = 1u << ATTN_INT8 | 1u << ATTN_Q4,
    ATTN_PARAMS(neon_params, neon_defaults),
    .vector_bits = 128,
    .params_valid = NULL,
    .workspace_size = neon_workspace,
    .run_partial = neon_rows,
    .features = ATTN_FEATURE_ALL,
};
