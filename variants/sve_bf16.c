/* sve_bf16.c — streaming (online softmax) attention for AArch64 SVE with BF16: Q·Kᵀ and P·V on
 * BFDOT (bf16 pairs into float32), softmax in float32; any vector length (VL = svcntw() floats).
 *
 * Arithmetic. BFDOT adds to each float32 lane the products of one PAIR of adjacent bf16
 * elements: acc[i] += a[2i]·b[2i] + a[2i+1]·b[2i+1]; the indexed form takes b's pair from the
 * same 128-bit segment of the other operand (pair 0-3), as FMLA (indexed) does for a float. So:
 *   Q·Kᵀ  pairs run along head_dim: a lane of a K panel holds (K[j][2p], K[j][2p+1]) of key j;
 *         one LD1RQW of a query row gives 4 pairs (8 dims) to every segment;
 *   P·V   pairs run along keys: a lane of a V chunk holds (V[2i][c], V[2i+1][c]) of dim c; one
 *         LD1RQW of a weight row gives 4 pairs (8 keys).
 * Float32 inputs are rounded to bf16 (nearest even: BFCVT and BFCVTNT, or half.h's scalar
 * rounding when K is transposed); bf16 inputs are read as stored. Scores are scaled, masked and
 * exponentiated in float32 (sve.c's epilogue and softmax); the weights P are then rounded to
 * bf16 and the running sum l adds the ROUNDED weights, so an output row is the l-normalised
 * combination of the V rows with the weights that were used (avx512_bf16.c's argument: the
 * rounding of P moves O by at most 2^-9·max|V - O|). BFDOT's products of bf16 values are exact;
 * it flushes subnormal bf16 inputs and float32 results to zero (under 2^-126, far below the
 * tolerance); without FEAT_EBF16 its pair sum rounds to odd.
 *
 * Tiles: sve.c's, with twice the dims (scores) or keys (P·V) per instruction:
 *   scores  S[8][2·VL] per panel: per 8 dims, 8 K vectors (4 pairs × 2 vectors of keys), per row
 *           one LD1RQW of Q and 8 BFDOT (indexed); 16 accumulators + 8 K + 1 Q = 25 registers;
 *   P·V     acc[8][2·VL dims] per chunk: per 8 keys, 8 V vectors (4 key pairs × 2 vectors of
 *           dims), per row one LD1RQW of P and 8 BFDOT; 25 registers likewise.
 * BFDOT (indexed) takes its indexed operand from z0-z7 only: one Q or P vector is live at a
 * time. The loop over query tiles and key blocks is packed_stream.h's.
 *
 * Layout (workspace, 32-bit words; PW = 2·VL, bkp = bk rounded up to PW, dpad = d rounded up
 * to 8, dp2 = dpad / 2; sized for the largest VL, 2048 bits, PW = 128):
 *   qp   [bq][dp2]              the query tile as bf16 pairs, rows past the tile zero
 *   acc  [bq][dpad]             unnormalised output rows, float32
 *   kp   [bkp/PW][dp2][PW]      K block as panels of PW keys, pairs along d, zero padded
 *   vp   [ceil(d/PW)][bkp/2][PW] V block as chunks of PW dims, pairs along keys, zero padded
 *   s    [8][bkp]               scores, then the rounded weights (float32), of one micro-tile
 *   pb   [8][bkp/2]             the same weights as bf16 pairs
 *   m, l [bq]                   running max (log2 domain) and sum
 *   vrow [dpad]                 a V row as float32, for the non-finite path
 * A key block whose rounded V holds a NaN or an infinity goes through the per-row P·V of
 * packed_stream.h (with V rounded to bf16 there too). */
#include "sve_common.h"

#include <arm_sve.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Defaults: sve.c's rules with the bytes of the bf16 parts. */
static const attn_default_rule sve_bf16_defaults[] = {
    /*          fact          div per_d lk dm min max  max_half fixed */
    [P_BQ]   = {ATTN_FACT_L2,  4, 6,    0, 8, 8,  128, 0,       0,
                "packed Q (bf16) and accumulators: 1.5 x dpad floats per row"},
    [P_BK]   = {ATTN_FACT_L2,  2, 4,    0, 8, 32, 512, 0,       0,
                "packed K and V as bf16: 2 x dpad halves per key"},
};

/* 32-bit word counts of the workspace parts, for the largest VL; false on overflow. */
typedef struct sve_bf16_layout {
    size_t qp, acc, kp, vp, s, pb, m, l, vrow, total;
} sve_bf16_layout;

static bool layout_of(const attn_problem *p, const int32_t *v, sve_bf16_layout *w)
{
    const size_t bq = (size_t)v[P_BQ], dpad = (size_t)round_up(p->head_dim, 8), dp2 = dpad / 2;
    const size_t bk_max = (size_t)round_up(v[P_BK], 8) + MAX_PANEL; /* >= bk rounded to PW */
    memset(w, 0, sizeof *w);
    if (__builtin_mul_overflow(bq, dp2, &w->qp) || __builtin_mul_overflow(bq, dpad, &w->acc) ||
        __builtin_mul_overflow(bk_max, dp2, &w->kp) ||
        __builtin_mul_overflow(bk_max / 2 + 1, dpad + MAX_PANEL, &w->vp))
        return false;
    w->s = MR * bk_max;
    w->pb = MR * (bk_max / 2 + 1);
    w->m = w->l = bq;
    w->vrow = dpad;
    const size_t parts[] = {w->qp, w->acc, w->kp, w->vp, w->s, w->pb, w->m, w->l, w->vrow};
    return attn_stream_sum_parts(parts, sizeof parts / sizeof parts[0], &w->total);
}

static size_t sve_bf16_workspace(const attn_problem *p, const int32_t *v)
{
    sve_bf16_layout w;
    size_t bytes;
    if (!layout_of(p, v, &w) || __builtin_mul_overflow(w.total, sizeof(uint32_t), &bytes))
        return SIZE_MAX;
    return bytes;
}

/* Elements [c, c + VL) of a row of problem->dtype as float32 (exact), lanes past d zero. */
static inline svfloat32_t load_f32(const attn_task *t, const void *row, int64_t c, int64_t d)
{
    const svbool_t pg = svwhilelt_b32_s64(c, d);
    if (t->problem->dtype == ATTN_BF16) {
        const svuint32_t bits = svld1uh_u32(pg, (const uint16_t *)row + c);
        return svreinterpret_f32_u32(svlsl_n_u32_x(svptrue_b32(), bits, 16));
    }
    return svld1_f32(pg, (const float *)row + c);
}

/* One element of a row of problem->dtype as bf16 bits (rounded from float32). */
static inline uint32_t bf16_at(const attn_task *t, const void *row, int64_t c)
{
    if (t->problem->dtype == ATTN_BF16)
        return ((const uint16_t *)row)[c];
    return attn_f32_to_bf16(((const float *)row)[c]);
}

/* Pairs (lo[i], hi[i]) of two float32 vectors rounded to bf16: lane i of the result. */
static inline svuint32_t pair_bf16(svfloat32_t lo, svfloat32_t hi)
{
    const svbool_t all = svptrue_b32();
    return svreinterpret_u32_bf16(svcvtnt_bf16_f32_x(svcvt_bf16_f32_x(all, lo), all, hi));
}

/* A vector of bf16 pairs from packed 32-bit words. */
static inline svbfloat16_t load_pairs(const uint32_t *x)
{
    return svreinterpret_bf16_u32(svld1_u32(svptrue_b32(), x));
}

/* S[r][0..2·VL) for the panel of keys starting at key j (absolute); keys from j1 on are -inf.
 * qp: 8 rows of query pairs (stride dp2); kpanel: [dp2][2·VL] pairs. */
static inline void score_tile(const uint32_t *restrict qp, const uint32_t *restrict kpanel,
                              int64_t dp2, int64_t j, int64_t j1, const micro_rows *rows,
                              float scale_log2e, float *restrict s, int64_t lds)
{
    const svbool_t all = svptrue_b32();
    const int64_t vl = (int64_t)svcntw(), pw = 2 * vl;
    SVE_ROWS(SVE_ZERO)
    for (int64_t c = 0; c < dp2; c += 4) {
        const uint32_t *k = kpanel + c * pw;
        const svbfloat16_t k0l = load_pairs(k), k0h = load_pairs(k + vl);
        const svbfloat16_t k1l = load_pairs(k + pw), k1h = load_pairs(k + pw + vl);
        const svbfloat16_t k2l = load_pairs(k + 2 * pw), k2h = load_pairs(k + 2 * pw + vl);
        const svbfloat16_t k3l = load_pairs(k + 3 * pw), k3h = load_pairs(k + 3 * pw + vl);
#define SVE_DOT(r)                                                                                \
    {                                                                                             \
        const svbfloat16_t q = svreinterpret_bf16_u32(svld1rq_u32(all, qp + (r) * dp2 + c));      \
        lo##r = svbfdot_lane_f32(lo##r, k0l, q, 0);                                               \
        hi##r = svbfdot_lane_f32(hi##r, k0h, q, 0);                                               \
        lo##r = svbfdot_lane_f32(lo##r, k1l, q, 1);                                               \
        hi##r = svbfdot_lane_f32(hi##r, k1h, q, 1);                                               \
        lo##r = svbfdot_lane_f32(lo##r, k2l, q, 2);                                               \
        hi##r = svbfdot_lane_f32(hi##r, k2h, q, 2);                                               \
        lo##r = svbfdot_lane_f32(lo##r, k3l, q, 3);                                               \
        hi##r = svbfdot_lane_f32(hi##r, k3h, q, 3);                                               \
    }
        SVE_ROWS(SVE_DOT)
#undef SVE_DOT
    }
    SVE_ROWS(SVE_STORE)
}

/* acc[8][c0..c0+2·VL) += P[8][0..nkeys) · V[0..nkeys)[c0..c0+2·VL), dims c0.. < d only;
 * nkeys a multiple of 8. p: weight pairs (row stride ldp pairs); vchunk: [keys/2][2·VL] pairs.
 * two = false: the chunk's dims fit in one vector, half the BFDOTs are left out. */
static inline __attribute__((always_inline)) void
pv_tile(const uint32_t *restrict p, int64_t ldp, const uint32_t *restrict vchunk, int64_t nkeys,
        float *restrict acc, int64_t ldacc, int64_t dims, bool two)
{
    const svbool_t all = svptrue_b32();
    const int64_t vl = (int64_t)svcntw(), cw = 2 * vl;
    const svbool_t pg_lo = svwhilelt_b32_s64(0, dims), pg_hi = svwhilelt_b32_s64(vl, dims);
    SVE_ROWS(SVE_LOAD)
    for (int64_t i = 0; i < nkeys / 2; i += 4) { /* 4 key pairs: 8 keys */
        const uint32_t *v = vchunk + i * cw;
        const svbfloat16_t v0l = load_pairs(v), v1l = load_pairs(v + cw);
        const svbfloat16_t v2l = load_pairs(v + 2 * cw), v3l = load_pairs(v + 3 * cw);
        const svbfloat16_t v0h = two ? load_pairs(v + vl) : v0l;
        const svbfloat16_t v1h = two ? load_pairs(v + cw + vl) : v1l;
        const svbfloat16_t v2h = two ? load_pairs(v + 2 * cw + vl) : v2l;
        const svbfloat16_t v3h = two ? load_pairs(v + 3 * cw + vl) : v3l;
#define SVE_PV(r)                                                                                 \
    {                                                                                             \
        const svbfloat16_t w = svreinterpret_bf16_u32(svld1rq_u32(all, p + (r) * ldp + i));       \
        lo##r = svbfdot_lane_f32(lo##r, v0l, w, 0);                                               \
        lo##r = svbfdot_lane_f32(lo##r, v1l, w, 1);                                               \
        lo##r = svbfdot_lane_f32(lo##r, v2l, w, 2);                                               \
        lo##r = svbfdot_lane_f32(lo##r, v3l, w, 3);                                               \
        if (two) {                                                                                \
            hi##r = svbfdot_lane_f32(hi##r, v0h, w, 0);                                           \
            hi##r = svbfdot_lane_f32(hi##r, v1h, w, 1);                                           \
            hi##r = svbfdot_lane_f32(hi##r, v2h, w, 2);                                           \
            hi##r = svbfdot_lane_f32(hi##r, v3h, w, 3);                                           \
        }                                                                                         \
    }
        SVE_ROWS(SVE_PV)
#undef SVE_PV
    }
    SVE_ROWS(SVE_SAVE)
}

/* The workspace parts and constants of one task, for the driver's callbacks (ctx). */
typedef struct sve_bf16_ctx {
    uint32_t *qp, *kp, *vp, *pb;
    float *acc, *s, *run_max, *run_sum, *vrow;
    int64_t dpad, bkp;
    float scale_log2e;
} sve_bf16_ctx;

static void pack_q_row(void *ctx, const attn_task *t, int64_t r, const void *src)
{
    const sve_bf16_ctx *cx = ctx;
    const int64_t d = t->problem->head_dim, dp2 = cx->dpad / 2;
    uint32_t *dst = cx->qp + r * dp2;
    for (int64_t c = 0; c < dp2; c++) {
        const uint32_t even = src && 2 * c < d ? bf16_at(t, src, 2 * c) : 0;
        const uint32_t odd = src && 2 * c + 1 < d ? bf16_at(t, src, 2 * c + 1) : 0;
        dst[c] = even | odd << 16;
    }
}

/* Packs keys [j0, j1) of K as [panels][dp2][PW] and of V as [chunks][bkp/2][PW] bf16 pairs, zero
 * padded to whole panels. Returns false when the rounded V block has a NaN or an infinity. */
static bool pack_kv(void *ctx, const attn_task *t, int64_t b, int64_t hkv, int64_t j0, int64_t j1)
{
    const sve_bf16_ctx *cx = ctx;
    const svbool_t all = svptrue_b32();
    const int64_t vl = (int64_t)svcntw(), pw = 2 * vl, bkp = cx->bkp;
    const int64_t d = t->problem->head_dim, dp2 = cx->dpad / 2, nkeys = round_up(j1 - j0, pw);
    for (int64_t jj = 0; jj < nkeys; jj++) {
        uint32_t *kcol = cx->kp + (jj / pw) * dp2 * pw + jj % pw;
        const void *k = j0 + jj < j1 ? attn_row(t, 'k', b, hkv, j0 + jj) : NULL;
        for (int64_t c = 0; c < dp2; c++) {
            const uint32_t even = k && 2 * c < d ? bf16_at(t, k, 2 * c) : 0;
            const uint32_t odd = k && 2 * c + 1 < d ? bf16_at(t, k, 2 * c + 1) : 0;
            kcol[c * pw] = even | odd << 16;
        }
    }
    svfloat32_t vmax = svdup_n_f32(0.0f); /* max |v| of the rounded values; FMAX keeps a NaN */
    const svuint32_t high_half = svdup_n_u32(0xffff0000u);
    for (int64_t i = 0; i < nkeys / 2; i++) {
        const int64_t j = j0 + 2 * i;
        const void *v0 = j < j1 ? attn_row(t, 'v', b, hkv, j) : NULL;
        const void *v1 = j + 1 < j1 ? attn_row(t, 'v', b, hkv, j + 1) : NULL;
        uint32_t *vrow = cx->vp + i * pw; /* chunk c/PW of pair i is at vrow + c·bkp/2 */
        for (int64_t c = 0; c < d; c += pw) {
            for (int64_t half = 0; half < 2; half++) {
                const int64_t e = c + half * vl;
                const svfloat32_t a = v0 ? load_f32(t, v0, e, d) : svdup_n_f32(0.0f);
                const svfloat32_t z = v1 ? load_f32(t, v1, e, d) : svdup_n_f32(0.0f);
                const svuint32_t pair = pair_bf16(a, z);
                const svfloat32_t even = svreinterpret_f32_u32(svlsl_n_u32_x(all, pair, 16));
                const svfloat32_t odd = svreinterpret_f32_u32(svand_u32_x(all, pair, high_half));
                vmax = svmax_f32_x(all, vmax, svmax_f32_x(all, svabs_f32_x(all, even),
                                                          svabs_f32_x(all, odd)));
                svst1_u32(all, vrow + c * (bkp / 2) + half * vl, pair);
            }
        }
    }
    return svmaxv_f32(all, vmax) <= FLT_MAX; /* false for inf and NaN */
}

/* Softmax step of one micro-tile row over `n` scores (a multiple of 2·VL): updates the running
 * max m and sum l (rescaling the accumulator row when m rises), writes the weights 2^(s - m)
 * rounded to bf16 as pairs to pb and as float32 back to s, and adds the rounded ones to l. */
static inline void softmax_row(float *restrict s, uint32_t *restrict pb, int64_t n,
                               float *restrict m, float *restrict l, float *restrict acc,
                               int64_t d)
{
    const svbool_t all = svptrue_b32();
    const int64_t vl = (int64_t)svcntw();
    const float shift = softmax_raise_max(s, n, m, l, acc, d);
    svfloat32_t sum = svdup_n_f32(0.0f);
    for (int64_t j = 0; j < n; j += 2 * vl) {
        const svfloat32_t w0 =
            exp2_nonpos_sve(all, svsub_n_f32_x(all, svld1_f32(all, s + j), shift));
        const svfloat32_t w1 =
            exp2_nonpos_sve(all, svsub_n_f32_x(all, svld1_f32(all, s + j + vl), shift));
        /* BFCVT writes the even halves of its lanes: the rounded weight's bits << 16. */
        const svuint32_t r0 = svreinterpret_u32_bf16(svcvt_bf16_f32_x(all, w0));
        const svuint32_t r1 = svreinterpret_u32_bf16(svcvt_bf16_f32_x(all, w1));
        const svfloat32_t w0r = svreinterpret_f32_u32(svlsl_n_u32_x(all, r0, 16));
        const svfloat32_t w1r = svreinterpret_f32_u32(svlsl_n_u32_x(all, r1, 16));
        svst1_f32(all, s + j, w0r);
        svst1_f32(all, s + j + vl, w1r);
        /* The even halves of (r0, r1) in order: the 2·VL weights as bf16, i.e. VL pairs. */
        const svbfloat16_t both =
            svuzp1_bf16(svreinterpret_bf16_u32(r0), svreinterpret_bf16_u32(r1));
        svst1_u32(all, pb + j / 2, svreinterpret_u32_bf16(both));
        sum = svadd_f32_x(all, sum, svadd_f32_x(all, w0r, w1r));
    }
    *l += svaddv_f32(all, sum);
}

static void micro_tile(void *ctx, const attn_task *t, const micro_step *st)
{
    const sve_bf16_ctx *cx = ctx;
    const int64_t vl = (int64_t)svcntw(), pw = 2 * vl, d = t->problem->head_dim;
    const int64_t dpad = cx->dpad, dp2 = dpad / 2, bkp = cx->bkp;
    const int64_t nkeys = round_up(st->end - st->j0, pw);
    float *acc = cx->acc + st->m0 * dpad;
    for (int64_t jp = 0; jp < nkeys; jp += pw)
        score_tile(cx->qp + st->m0 * dp2, cx->kp + jp * dp2, dp2, st->j0 + jp, st->j1, st->rows,
                   cx->scale_log2e, cx->s + jp, bkp);
    for (int r = 0; r < MR; r++)
        softmax_row(cx->s + r * bkp, cx->pb + r * (bkp / 2), nkeys, &cx->run_max[st->m0 + r],
                    &cx->run_sum[st->m0 + r], acc + r * dpad, d);
    if (!st->v_finite) {
        attn_stream_pv_nonfinite(t, st, cx->s, bkp, acc, dpad, true, cx->vrow);
        return;
    }
    for (int64_t ch = 0; ch < d; ch += pw) {
        const uint32_t *vchunk = cx->vp + ch * (bkp / 2);
        if (d - ch > vl)
            pv_tile(cx->pb, bkp / 2, vchunk, nkeys, acc + ch, dpad, d - ch, true);
        else
            pv_tile(cx->pb, bkp / 2, vchunk, nkeys, acc + ch, dpad, d - ch, false);
    }
}

static const stream_ops sve_bf16_ops = {pack_q_row, pack_kv, micro_tile};

static attn_status sve_bf16_run(const attn_task *t)
{
    sve_bf16_layout w;
    if (!layout_of(t->problem, t->params, &w)) /* workspace_size() succeeded: it cannot */
        return ATTN_ERR_OVERFLOW;
    const int64_t bk = t->params[P_BK];
    uint32_t *base = t->workspace;
    sve_bf16_ctx c = {.qp = base, .dpad = round_up(t->problem->head_dim, 8),
                      .bkp = round_up(bk, 2 * (int64_t)svcntw()),
                      .scale_log2e = t->scale * ATTN_LOG2E};
    c.acc = (float *)(base + w.qp);
    c.kp = base + w.qp + w.acc;
    c.vp = c.kp + w.kp;
    c.s = (float *)(c.vp + w.vp);
    c.pb = c.vp + w.vp + w.s;
    c.run_max = (float *)(c.pb + w.pb);
    c.run_sum = c.run_max + w.m;
    c.vrow = c.run_sum + w.l;
    attn_stream_run(t, 0, t->problem->len_kv, NULL, t->params[P_BQ], bk, c.dpad, c.acc,
                    c.run_max, c.run_sum, &sve_bf16_ops, &c);
    return ATTN_OK;
}

const attn_variant attn_variant_sve_bf16 = {
    .name = "sve_bf16",
    .description = "SVE BFDOT for Q.K^T and P.V (Q, K, V, P rounded to bf16, float32 accumulation "
                   "and softmax): 8 x 2-vector micro-kernels for any vector length, packed K/V "
                   "blocks (AArch64 SVE + BF16)",
    .isa = ATTN_ISA_SVE | ATTN_ISA_ARM_BF16 | ATTN_ISA_SVE_BF16,
    .tolerance = 1e-2,
    .dtypes = 1u << ATTN_F32 | 1u << ATTN_BF16,
    .compute_dtype = ATTN_BF16,
    .roofline = ATTN_ROOFLINE_BF16_DOT,
    ATTN_PARAMS(sve_stream_params, sve_bf16_defaults),
    .vector_bits = 0, /* scalable: this CPU's SVE vector length (variant.h) */
    .params_valid = NULL,
    .workspace_size = sve_bf16_workspace,
    .run = sve_bf16_run,
    /* packed_stream.h's driver: the window's first block, the sink in the final norm, paged K/V
     * rows through attn_row; sve_common.h's score store: soft cap, ALiBi, the window's edge. */
    .features = ATTN_FEATURE_ALL,
};
