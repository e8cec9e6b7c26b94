/* sve.c — streaming (online softmax) attention for AArch64 SVE, float32, written once for any
 * vector length (VL = svcntw() floats, 4 to 64, read at run time; nothing assumes more of it
 * than the architecture does: a multiple of 128 bits).
 *
 * Algorithm: neon.c's, with its register tiles widened to the vector: a query tile of bq rows
 * (flattened over the query heads of a GQA group) walks the keys in blocks of bk; each key
 * block is packed once and used by every 8-row micro-tile. Per micro-tile and key block:
 *   1. scores   S[8][2·VL] per panel = Q·Kᵀ, 8 rows × 2 vectors of keys; FMLA (indexed) takes
 *               4 dims of a query row from one LD1RQW (128 bits, replicated to every segment,
 *               so the lane index means the same dim at any VL); the epilogue scales, adds the
 *               mask and *selects* -inf for masked keys, with predicates from WHILELT;
 *   2. softmax  per row as in neon.c, with the shared polynomial (exp2_poly.h);
 *   3. P·V      acc[8][2·VL dims] += P·V, 8 rows × 2 vectors of dims (1 vector when the last
 *               chunk of d fits in one), the dim tail predicated.
 * Registers (32 scalable Z): score tile 16 accumulators + 8 K vectors + 1 Q = 25; P·V tile
 * 16 accumulators + 8 V vectors (4 keys) + 1 P (a row's 4 weights, one LD1RQW) = 25. neon.c's
 * budget with VL/128 times the work per instruction. FMLA (indexed) takes its indexed operand
 * from z0-z7 only, so one Q or P vector is live at a time.
 *
 * Layout (workspace; PW = 2·VL keys per panel and dims per V chunk, bkp = bk rounded up to
 * PW, dpad = d rounded up to 8). The workspace is sized for the largest VL (2048 bits, PW = 128)
 * so its size does not depend on the thread that asks for it:
 *   qp   [bq][dpad]               the query tile, rows past the tile zero
 *   acc  [bq][dpad]               unnormalised output rows
 *   kp   [bkp/PW][dpad][PW]       K block as panels of PW keys, transposed, zero padded
 *   vp   [ceil(d/PW)][bkp][PW]    V block as chunks of PW dims, key-major, zero padded
 *   s    [8][bkp]                 scores, then weights, of one micro-tile
 *   m, l [bq]                     running max (log2 domain) and sum
 * A key block whose V holds a NaN or an infinity goes through the per-row P·V of
 * packed_stream.h, whose loop over query tiles and key blocks this file shares with neon.c. */
#include "sve_common.h"

#include <arm_sve.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Defaults: neon.c's rules (the same cache reasoning; the tiles only grow with VL). */
static const attn_default_rule sve_defaults[] = {
    /*          fact          div per_d lk dm min max  max_half fixed */
    [P_BQ]   = {ATTN_FACT_L2,  4, 8,    0, 8, 8,  128, 0,       0,
                "packed Q and accumulators: 2 x dpad floats per row"},
    [P_BK]   = {ATTN_FACT_L2,  2, 8,    0, 8, 32, 512, 0,       0,
                "packed K and V: 2 x dpad floats per key"},
};

/* Float counts of the workspace parts, for the largest VL; false when a size overflows. */
typedef struct sve_layout {
    size_t qp, acc, kp, vp, s, m, l, total;
} sve_layout;

static bool sve_layout_of(const attn_problem *p, const int32_t *v, sve_layout *w)
{
    const size_t bq = (size_t)v[P_BQ], dpad = (size_t)round_up(p->head_dim, 8);
    const size_t bk_max = (size_t)round_up(v[P_BK], 8) + MAX_PANEL; /* >= bk rounded to PW */
    memset(w, 0, sizeof *w);
    if (__builtin_mul_overflow(bq, dpad, &w->qp) || __builtin_mul_overflow(bk_max, dpad, &w->kp) ||
        __builtin_mul_overflow(bk_max, dpad + MAX_PANEL, &w->vp))
        return false;
    w->acc = w->qp;
    w->s = MR * bk_max;
    w->m = w->l = bq;
    const size_t parts[] = {w->qp, w->acc, w->kp, w->vp, w->s, w->m, w->l};
    return attn_stream_sum_parts(parts, sizeof parts / sizeof parts[0], &w->total);
}

static size_t sve_workspace(const attn_problem *p, const int32_t *v)
{
    sve_layout w;
    size_t bytes;
    if (!sve_layout_of(p, v, &w) || __builtin_mul_overflow(w.total, sizeof(float), &bytes))
        return SIZE_MAX;
    return bytes;
}

/* S[r][0..2·VL) for the panel of keys starting at key j (absolute), in the log2 domain; keys
 * from j1 (the block's end) on are -inf: a panel may be wider than the block (PW > bk).
 * qp: 8 packed query rows (stride dpad); kpanel: [dpad][2·VL]. */
static inline void score_tile(const float *restrict qp, const float *restrict kpanel, int64_t dpad,
                              int64_t j, int64_t j1, const micro_rows *rows, float scale_log2e,
                              float *restrict s, int64_t lds)
{
    const svbool_t all = svptrue_b32();
    const int64_t vl = (int64_t)svcntw(), pw = 2 * vl;
    SVE_ROWS(SVE_ZERO)
    for (int64_t c = 0; c < dpad; c += 4) {
        const float *k = kpanel + c * pw;
        const svfloat32_t k0l = svld1_f32(all, k), k0h = svld1_f32(all, k + vl);
        const svfloat32_t k1l = svld1_f32(all, k + pw), k1h = svld1_f32(all, k + pw + vl);
        const svfloat32_t k2l = svld1_f32(all, k + 2 * pw), k2h = svld1_f32(all, k + 2 * pw + vl);
        const svfloat32_t k3l = svld1_f32(all, k + 3 * pw), k3h = svld1_f32(all, k + 3 * pw + vl);
#define SVE_FMA(r)                                                                                \
    {                                                                                             \
        const svfloat32_t q = svld1rq_f32(all, qp + (r) * dpad + c);                              \
        lo##r = svmla_lane_f32(lo##r, k0l, q, 0);                                                 \
        hi##r = svmla_lane_f32(hi##r, k0h, q, 0);                                                 \
        lo##r = svmla_lane_f32(lo##r, k1l, q, 1);                                                 \
        hi##r = svmla_lane_f32(hi##r, k1h, q, 1);                                                 \
        lo##r = svmla_lane_f32(lo##r, k2l, q, 2);                                                 \
        hi##r = svmla_lane_f32(hi##r, k2h, q, 2);                                                 \
        lo##r = svmla_lane_f32(lo##r, k3l, q, 3);                                                 \
        hi##r = svmla_lane_f32(hi##r, k3h, q, 3);                                                 \
    }
        SVE_ROWS(SVE_FMA)
#undef SVE_FMA
    }
    SVE_ROWS(SVE_STORE)
}

/* acc[8][c0..c0+2·VL) += P[8][0..nkeys) · V[0..nkeys)[c0..c0+2·VL), dims c0.. < d only;
 * nkeys a multiple of 4. vchunk: [keys][2·VL]. two = false: the chunk's dims fit in one
 * vector (its second predicate would be empty), so half the FMLAs are left out. */
static inline __attribute__((always_inline)) void
pv_tile(const float *restrict p, int64_t ldp, const float *restrict vchunk, int64_t nkeys,
        float *restrict acc, int64_t ldacc, int64_t dims, bool two)
{
    const svbool_t all = svptrue_b32();
    const int64_t vl = (int64_t)svcntw(), cw = 2 * vl;
    const svbool_t pg_lo = svwhilelt_b32_s64(0, dims), pg_hi = svwhilelt_b32_s64(vl, dims);
    SVE_ROWS(SVE_LOAD)
    for (int64_t j = 0; j < nkeys; j += 4) {
        /* V rows of the 4 keys, then per row its 4 weights (one LD1RQW) times each: the score
         * tile's shape, so one weight vector is live at a time (FMLA's indexed operand must be
         * one of z0-z7). */
        const float *v = vchunk + j * cw;
        const svfloat32_t v0l = svld1_f32(all, v), v1l = svld1_f32(all, v + cw);
        const svfloat32_t v2l = svld1_f32(all, v + 2 * cw), v3l = svld1_f32(all, v + 3 * cw);
        const svfloat32_t v0h = two ? svld1_f32(all, v + vl) : v0l;
        const svfloat32_t v1h = two ? svld1_f32(all, v + cw + vl) : v1l;
        const svfloat32_t v2h = two ? svld1_f32(all, v + 2 * cw + vl) : v2l;
        const svfloat32_t v3h = two ? svld1_f32(all, v + 3 * cw + vl) : v3l;
#define SVE_PV(r)                                                                                 \
    {                                                                                             \
        const svfloat32_t w = svld1rq_f32(all, p + (r) * ldp + j);                                \
        lo##r = svmla_lane_f32(lo##r, v0l, w, 0);                                                 \
        lo##r = svmla_lane_f32(lo##r, v1l, w, 1);                                                 \
        lo##r = svmla_lane_f32(lo##r, v2l, w, 2);                                                 \
        lo##r = svmla_lane_f32(lo##r, v3l, w, 3);                                                 \
        if (two) {                                                                                \
            hi##r = svmla_lane_f32(hi##r, v0h, w, 0);                                             \
            hi##r = svmla_lane_f32(hi##r, v1h, w, 1);                                             \
            hi##r = svmla_lane_f32(hi##r, v2h, w, 2);                                             \
            hi##r = svmla_lane_f32(hi##r, v3h, w, 3);                                             \
        }                                                                                         \
    }
        SVE_ROWS(SVE_PV)
#undef SVE_PV
    }
    SVE_ROWS(SVE_SAVE)
}

/* Packs keys [j0, j1) of K as [panels][dpad][PW] and of V as [chunks][bkp][PW], zero padded to
 * whole panels. Returns false when the V block holds a NaN or an infinity. */
static bool pack_kv_block(void *ctx, const attn_task *t, int64_t b, int64_t hkv, int64_t j0,
                          int64_t j1)
{
    const stream_f32_ctx *cx = ctx;
    const int64_t bkp = cx->bkp;
    float *restrict kp = cx->kp, *restrict vp = cx->vp;
    const svbool_t all = svptrue_b32();
    const int64_t vl = (int64_t)svcntw(), pw = 2 * vl;
    const int64_t d = t->problem->head_dim, dpad = round_up(d, 8), nkeys = round_up(j1 - j0, pw);
    svfloat32_t vmax = svdup_n_f32(0.0f); /* max |v|; FMAX keeps a NaN */
    for (int64_t jj = 0; jj < nkeys; jj++) {
        float *kcol = kp + (jj / pw) * dpad * pw + jj % pw;
        float *vrow = vp + jj * pw; /* chunk c/PW of key jj is at vrow + c·bkp */
        if (j0 + jj >= j1) {
            attn_stream_pack_k_col(kcol, pw, NULL, d, dpad);
            for (int64_t c = 0; c < d; c += pw) {
                svst1_f32(all, vrow + c * bkp, svdup_n_f32(0.0f));
                svst1_f32(all, vrow + c * bkp + vl, svdup_n_f32(0.0f));
            }
            continue;
        }
        const float *k = attn_k_row(t, b, hkv, j0 + jj), *v = attn_v_row(t, b, hkv, j0 + jj);
        attn_stream_pack_k_col(kcol, pw, k, d, dpad);
        for (int64_t c = 0; c < d; c += pw) {
            /* Inactive lanes load as zero: the chunk's tail past d is padded by the load. */
            const svfloat32_t lo = svld1_f32(svwhilelt_b32_s64(c, d), v + c);
            const svfloat32_t hi = svld1_f32(svwhilelt_b32_s64(c + vl, d), v + c + vl);
            vmax = svmax_f32_x(all, vmax, svmax_f32_x(all, svabs_f32_x(all, lo),
                                                      svabs_f32_x(all, hi)));
            svst1_f32(all, vrow + c * bkp, lo);
            svst1_f32(all, vrow + c * bkp + vl, hi);
        }
    }
    return svmaxv_f32(all, vmax) <= FLT_MAX; /* false for inf and NaN */
}

/* Softmax step of one micro-tile row over `n` scores (a multiple of VL): updates the running
 * max m and sum l (rescaling the accumulator row when m rises) and overwrites the scores with
 * their weights 2^(s - m). */
static inline void softmax_row(float *restrict s, int64_t n, float *restrict m, float *restrict l,
                               float *restrict acc, int64_t d)
{
    const svbool_t all = svptrue_b32();
    const int64_t vl = (int64_t)svcntw();
    const float shift = softmax_raise_max(s, n, m, l, acc, d);
    svfloat32_t sum = svdup_n_f32(0.0f);
    for (int64_t j = 0; j < n; j += vl) {
        const svfloat32_t w =
            exp2_nonpos_sve(all, svsub_n_f32_x(all, svld1_f32(all, s + j), shift));
        svst1_f32(all, s + j, w);
        sum = svadd_f32_x(all, sum, w);
    }
    *l += svaddv_f32(all, sum);
}

static void sve_micro_tile(void *ctx, const attn_task *t, const micro_step *st)
{
    const stream_f32_ctx *c = ctx;
    const int64_t vl = (int64_t)svcntw(), pw = 2 * vl, d = t->problem->head_dim;
    const int64_t dpad = c->dpad, bkp = c->bkp, nkeys = round_up(st->end - st->j0, pw);
    float *acc = c->acc + st->m0 * dpad;
    for (int64_t jp = 0; jp < nkeys; jp += pw)
        score_tile(c->qp + st->m0 * dpad, c->kp + jp * dpad, dpad, st->j0 + jp, st->j1, st->rows,
                   c->scale_log2e, c->s + jp, bkp);
    for (int r = 0; r < MR; r++)
        softmax_row(c->s + r * bkp, nkeys, &c->run_max[st->m0 + r], &c->run_sum[st->m0 + r],
                    acc + r * dpad, d);
    if (!st->v_finite) {
        attn_stream_pv_nonfinite(t, st, c->s, bkp, acc, dpad, false, NULL);
        return;
    }
    for (int64_t ch = 0; ch < d; ch += pw) {
        if (d - ch > vl)
            pv_tile(c->s, bkp, c->vp + ch * bkp, nkeys, acc + ch, dpad, d - ch, true);
        else
            pv_tile(c->s, bkp, c->vp + ch * bkp, nkeys, acc + ch, dpad, d - ch, false);
    }
}

static const stream_ops sve_ops = {attn_stream_f32_pack_q_row, pack_kv_block,
                                   sve_micro_tile};

static attn_status sve_run(const attn_task *t)
{
    sve_layout w;
    if (!sve_layout_of(t->problem, t->params, &w)) /* workspace_size() succeeded: it cannot */
        return ATTN_ERR_OVERFLOW;
    const int64_t bk = t->params[P_BK];
    stream_f32_ctx c = {.qp = t->workspace, .dpad = round_up(t->problem->head_dim, 8),
                 .bkp = round_up(bk, 2 * (int64_t)svcntw()),
                 .scale_log2e = t->scale * ATTN_LOG2E};
    c.acc = c.qp + w.qp;
    c.kp = c.acc + w.acc;
    c.vp = c.kp + w.kp;
    c.s = c.vp + w.vp;
    c.run_max = c.s + w.s;
    c.run_sum = c.run_max + w.m;
    attn_stream_run(t, 0, t->problem->len_kv, NULL, t->params[P_BQ], bk, c.dpad, c.acc,
                    c.run_max, c.run_sum, &sve_ops, &c);
    return ATTN_OK;
}

const attn_variant attn_variant_sve = {
    .name = "sve",
    .description = "online softmax, 8 x 2-vector FMLA micro-kernels for any vector length, "
                   "packed K/V blocks (AArch64 SVE)",
    .isa = ATTN_ISA_SVE,
    .roofline = ATTN_ROOFLINE_FMA,
    .tolerance = 1e-5,
    ATTN_PARAMS(sve_stream_params, sve_defaults),
    .vector_bits = 0, /* scalable: this CPU's SVE vector length (variant.h) */
    .params_valid = NULL,
    .workspace_size = sve_workspace,
    .run = sve_run,
    .features = ATTN_FEATURE_ALL,
};
