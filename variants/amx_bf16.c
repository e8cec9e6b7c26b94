/* amx_bf16.c — x86 AMX attention: both products on bf16 tiles (TDPBF16PS), softmax in AVX-512.
 *
 * Inputs: float32 or bfloat16 Q, K, V; float32 inputs are rounded to bf16 (nearest even,
 * vcvtne2ps2bf16) as they are packed, so the variant computes from bf16 Q, K, V whatever the
 * input type (compute_dtype = ATTN_BF16). Scores, the softmax, the sums and O are float32; the
 * weights P are rounded to bf16 for P·V, and each row's sum adds the rounded weights, so O is an
 * exact convex combination of the rounded weights up to float32 sums.
 *
 * Tiles. One configuration for everything: eight 16-row × 64-byte tiles, tmm0-3 float32
 * accumulators (C), tmm4-5 the A operand (16 rows × 32 bf16), tmm6-7 the B operand (16 rows of
 * bf16 pairs × 16 columns). Each product runs in 2×2 steps: 2 A loads, 2 B loads, 4 TDPBF16PS
 * (16×16×32 each), every load issued right before its first multiply (tiles are not renamed,
 * so the next step's loads wait only for their register's last reader).
 *
 *   S = Q·Kᵀ   a step: 32 rows × 32 keys × 32 head-dim elements; A = packed Q rows; B = K packed
 *              per 16-key tile and 32-element head-dim chunk in the "VNNI" pair layout
 *              Kp[r][j] = (K[j][32c + 2r], K[j][32c + 2r + 1]). The C tiles are zeroed at the
 *              first step of a 32-key pair and stored (tilestored) to S[32][kc] at its last.
 *   O += P·V   a step: 32 rows × 32 columns × 32 keys; C = O tiles loaded from the float32 O of
 *              the query block at a column pair's first step, stored at its last; A = P[32][kc]
 *              in bf16, straight from the softmax's row-major output; B = V packed per 32-key
 *              chunk and 16 columns as key pairs Vp[r][c] = (V[2r][c], V[2r + 1][c]).
 *   d that is not a multiple of 32 is zero-padded in Q, K and V (dpad = d rounded up to 32);
 *   key counts are padded to 32 with zero keys and zero weights.
 *
 * Loop order. The query rows of a task group are flattened over the query heads of the GQA
 * group (attn_group_rows_of) and cut into blocks of bq rows; a block's Q is packed to bf16 once.
 * The keys are walked in K/V blocks of bk keys, packed once per query block (K by a 16×16
 * dword transpose of 16 key rows, V by interleaving key pairs with vpermw) and reused by every
 * 32-row tile of the block, i.e. by every query head of the group. Each tile walks the block in
 * chunks of kc <= 128 keys, software pipelined: while the vector units run the softmax of chunk
 * i, the AMX steps of P·V for chunk i-1 and then of the scores of chunk i+1 are issued between
 * its rows (spread evenly over the 32 rows), so the tile unit and the vector units overlap.
 * S and P are double-buffered. Measured on this Emerald Rapids guest (P1, one thread, A/B in
 * one process): the pipelining with the cheaper softmax below ran 15-18% faster than the three
 * phases back to back.
 *
 * Softmax. Along the rows here: a row of a chunk is kc/16 <= 8 zmm, kept in registers. Lazy
 * max as in avx512.c: the running max m (log2 units) moves only when a chunk max exceeds it by
 * 2^8 (one compare and kortest per row; the horizontal max only then); the row's sum moves at
 * once, its O is rescaled in memory after the in-flight P·V of the previous chunk has landed
 * (a pending factor per row). A fast path for chunks that every row sees in full without an
 * additive mask or an option: the max on the raw scores (scale·log2(e) > 0 keeps the order)
 * and one FMA s·c - m per vector; problems without options take it exactly as before they
 * existed. Otherwise (row_masked) the scores are scaled, then soft-capped and ALiBi-biased
 * (row_options_apply of avx512_common.h, shared with avx512.c and avx512_bf16.c), and pairs
 * outside the row's band [first, limit) or masked are selected to -inf (a select, so an
 * excluded pair's NaN score stays out). 2^x: vreduceps gives f = x - floor(x), a degree-4 polynomial
 * (relative error 3e-6, far under bf16's 2^-9, instead of exp2_poly.h's degree 5), vscalefps
 * applies floor(x); below ATTN_EXP2_MIN and excluded lanes give 0. P goes to bf16 two vectors
 * at a time (vcvtne2ps2bf16) and the row sum takes the rounded weights with one vdpbf16ps
 * against ones per 32 weights.
 *
 * NaN/Inf. AMX multiplies a weight of 0 with its V row anyway, and 0·NaN = NaN, so an excluded
 * key with a non-finite V element would reach rows that do not attend to it. Packing flags each
 * 32-key chunk whose bf16 V holds a NaN or an Inf; for chunks with excluded pairs such 32 keys
 * are left out of the AMX product and added in scalar code over the nonzero (or NaN) weights
 * only. K needs no care: an excluded pair's score is replaced, never used. Keys past every
 * row's limit (kv_lens, causal upper triangle, run_partial's range) or before every row's
 * window are never packed, and each tile starts its chunks at its own rows' first key (on the
 * 32-key grid of the packed block), so the work of a sliding window follows its band, not Lk;
 * only chunks that cut a row's band are masked.
 *
 * Decode path (rows per group <= dec, e.g. Lq = 1): a 32-row tile would waste most of its work
 * and packing would not be reused, so vectors run along head_dim instead: per block of 16 keys,
 * K rounded to bf16 rows and V widened from bf16 once (for every row of the group), per row 16
 * dot products with vdpbf16ps, a transpose-add to one vector of 16 scores, the options
 * (row_options_apply) and the row's band on it, the lazy max, weights rounded to bf16, O += w·V
 * over the valid keys only (registers, 128 columns at a time); key blocks before every row's
 * window are skipped.
 *
 * run_partial: the same paths over a key range, writing each row's lazy max (natural units),
 * the sum of its weights and its unnormalised O row.
 *
 * Threads. The tile configuration is per thread: each run / run_partial call loads it
 * (ldtilecfg) first and releases the tiles (tilerelease) before returning. The process needs
 * the kernel's permission for tile data (arch_prctl, requested in runtime/cpu_x86.c; without it
 * ATTN_ISA_AMX is not set and this variant is not offered).
 *
 * Testing without AMX: compiled a second time with -DATTN_AMX_EMULATE, the tile intrinsics
 * map to a software model of the instructions (amx_emulate.h, per the ISA reference's
 * pseudocode, faults included); that object is the test-only variant amx_bf16_emu, which needs
 * AVX-512 BF16 only and which the conformance runner and test_api_pages run like any other
 * (variant_list_tests.h). It runs every line of this file but the tile instructions.
 *
 * Layout: head_dim contiguous; any batch/head/seq strides (0 included); rows need no alignment.
 * Workspace (64-byte aligned): packed Q [bq][dpad] bf16, O [bq][dpad] float32, per row m, a
 * 16-lane sum, key limit, mask offset, first key (window), ALiBi slope and position, packed K
 * and V of one block (2·bk·dpad bf16), S [2][32][kc] float32, P [2][32][kc] bf16, and the
 * decode path's 16-key K and V rows. It never grows with Lk.
 *
 * Accuracy (normwise, against the float64 oracle on the bf16-rounded inputs): the weight
 * rounding dominates; measured over ~5000 conformance cases, at most 4.3e-3 without
 * cancellation in O (||O*|| within 3x of the weighted sum of |V|), 6.3e-3 within 5x. Declared
 * 8e-3 (about 2 bf16 unit roundoffs); the conformance floor covers stronger cancellation. */
/* Over 900 lines, on purpose: the packing, the software-pipelined tile loop and the softmax
 * between its AMX steps work on one tile configuration and one schedule (above); apart, each
 * would have to know the others' buffers and step order. */
#include "avx512_common.h"
#include "tile_rows.h"

#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#ifdef ATTN_AMX_EMULATE
#include "amx_emulate.h" /* the tile intrinsics, in software: the test-only amx_bf16_emu */
#endif

enum { P_BQ, P_BK, P_KC, P_DEC };

enum {
    TQ = 32,           /* query rows per tile: two AMX row tiles */
    DCH = 32,          /* head-dim elements per K step of Q·Kᵀ; dpad is a multiple */
    KCH = 32,          /* keys per K step of P·V; kc and bk are multiples */
    KC_MAX = 128,      /* a chunk's score row is at most 8 zmm registers */
    DEC_K = 16,        /* keys per block of the decode path */
    DEC_MAX = 32,      /* largest dec: decode rows fit one tile's workspace */
    TILE_ELEMS = 512,  /* bf16 elements of one 16 × 64-byte operand tile */
};

static const attn_param_info amx_params[] = {
    [P_BQ] = {"bq", "query rows per block sharing each packed K/V block", TQ, 4096, TQ},
    [P_BK] = {"bk", "keys per packed K/V block", KCH, 1 << 16, KCH},
    [P_KC] = {"kc", "keys per score chunk of a 32-row tile (scores, softmax, P.V)", KCH, KC_MAX,
              KCH},
    [P_DEC] = {"dec", "rows per group (query heads per group x query rows) up to which the "
                      "AVX-512 decode path runs instead of AMX; 0 = never", 0, DEC_MAX, 1},
};

/* ---- workspace ---------------------------------------------------------------------------- */

typedef struct ws_layout {
    size_t qp, o, m, l, lim, moff, first, slope, pos, kp, vp, vbad, s, p, dec_k, dec_v, total;
} ws_layout;

static bool layout_of(const attn_problem *p, const int32_t *v, ws_layout *w)
{
    memset(w, 0, sizeof *w);
    const size_t dpad = (size_t)round_up(p->head_dim, DCH);
    const size_t bq = (size_t)v[P_BQ], bk = (size_t)v[P_BK], kc = (size_t)v[P_KC];
    size_t qd, kd;
    if (__builtin_mul_overflow(bq, dpad, &qd) || __builtin_mul_overflow(bk, dpad, &kd))
        return false;
    return add_part(&w->qp, &w->total, qd, sizeof(uint16_t)) &&
           add_part(&w->o, &w->total, qd, sizeof(float)) &&
           add_part(&w->m, &w->total, bq, sizeof(float)) &&
           add_part(&w->l, &w->total, bq * 16, sizeof(float)) &&
           add_part(&w->lim, &w->total, bq, sizeof(int64_t)) &&
           add_part(&w->moff, &w->total, bq, sizeof(int64_t)) &&
           add_part(&w->first, &w->total, bq, sizeof(int64_t)) &&
           add_part(&w->slope, &w->total, bq, sizeof(float)) &&
           add_part(&w->pos, &w->total, bq, sizeof(float)) &&
           add_part(&w->kp, &w->total, kd, sizeof(uint16_t)) &&
           add_part(&w->vp, &w->total, kd, sizeof(uint16_t)) &&
           add_part(&w->vbad, &w->total, bk / KCH, sizeof(bool)) &&
           add_part(&w->s, &w->total, 2 * TQ * kc, sizeof(float)) &&
           add_part(&w->p, &w->total, 2 * TQ * kc, sizeof(uint16_t)) &&
           add_part(&w->dec_k, &w->total, v[P_DEC] ? DEC_K * dpad : 0, sizeof(uint16_t)) &&
           add_part(&w->dec_v, &w->total, v[P_DEC] ? DEC_K * dpad : 0, sizeof(float));
}

static size_t amx_workspace(const attn_problem *p, const int32_t *v)
{
    ws_layout w;
    return layout_of(p, v, &w) ? w.total : SIZE_MAX;
}

/* Defaults (AVX-512 family). A quarter of L2 for the packed K/V block (2·bk·dpad bf16), half
 * for the query block's packed Q and float32 O (6·bq·dpad bytes), so tiles reread the K/V block
 * from L2 and K/V are packed Lq/bq times. Measured (P1, P2 on a 2 MB L2): bq = 1024 3-5% ahead
 * of 512. */
static const attn_default_rule amx_defaults[] = {
    /*          fact           div per_d lk dm   min  max   max_half fixed */
    [P_BQ]   = {ATTN_FACT_L2,   2, 6,    0, DCH, TQ,  1024, 0,       0,
                "packed Q bf16 and O floats: 6 x dpad bytes per row"},
    [P_BK]   = {ATTN_FACT_L2,   4, 4,    0, DCH, KCH, 4096, 0,       0,
                "packed K and V: 2 x dpad bf16 per key"},
    [P_KC]   = {ATTN_FACT_NONE, 0, 0,    0, 0,   0,   0,    0,       KC_MAX,
                "the longest score chunk that stays in 8 zmm registers"},
    [P_DEC]  = {ATTN_FACT_NONE, 0, 0,    0, 0,   0,   0,    0,       8,
                "up to 8 rows a 32-row AMX tile wastes most of its work; decode packs nothing"},
};

static bool amx_valid(const attn_problem *p, const int32_t *v, char *why, size_t why_len)
{
    ws_layout w;
    if (!layout_of(p, v, &w)) {
        snprintf(why, why_len, "workspace size overflows");
        return false;
    }
    return true;
}

/* ---- tiles -------------------------------------------------------------------------------- */

/* The ldtilecfg operand (palette 1): every tile 16 rows × 64 bytes. */
typedef struct tile_config {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static void tiles_begin(void)
{
    _Alignas(64) tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
}

/* One chunk of keys of a 32-row tile: what its two products and its softmax step need. */
typedef struct chunk {
    int64_t j0;            /* first key */
    int nk, nch;           /* keys; 32-key steps (keys rounded up to 32) */
    bool fast;             /* every row sees every key, no additive mask */
    float *s;              /* scores [32][kc] */
    uint16_t *p;           /* weights [32][kc], bf16 */
    const uint16_t *kp;    /* packed K: nch·2 key tiles of dpad/32 operand tiles */
    const uint16_t *vp;    /* packed V: nch chunks of dpad/16 operand tiles */
    const bool *bad;       /* [nch]: the 32 keys hold a non-finite V */
} chunk;

/* The tile's operands and accumulators. */
typedef struct tile_ops {
    const uint16_t *qp;    /* packed Q of the 32 rows, row stride dpad */
    float *o;              /* O of the 32 rows, row stride dpad */
    int64_t dpad;
    int kc;
} tile_ops;

static inline int qk_steps(const tile_ops *to, const chunk *c)
{
    return c->nch * (int)(to->dpad / DCH);
}
static inline int pv_steps(const tile_ops *to, const chunk *c)
{
    return c->nch * (int)(to->dpad / 32);
}

/* Step s of S = Q·Kᵀ: 32 keys (a pair of key tiles) × 32 head-dim elements, 4 TDPBF16PS. The
 * accumulators are zeroed at the pair's first step and stored to S at its last. */
static inline void qk_step(const tile_ops *to, const chunk *c, int s)
{
    const int64_t dch = to->dpad / DCH, qs = to->dpad * 2, ss = to->kc * 4;
    const int pair = (int)(s / dch), k = (int)(s % dch);
    const uint16_t *kt = c->kp + (size_t)(2 * pair * dch + k) * TILE_ELEMS;
    if (k == 0) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    /* Each load right before its first use: the next step's loads wait only for the last
     * reader of their register (tiles are not renamed), so they overlap the multiplies. */
    _tile_loadd(4, to->qp + DCH * k, qs);
    _tile_loadd(6, kt, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_loadd(7, kt + dch * TILE_ELEMS, 64);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(5, to->qp + 16 * to->dpad + DCH * k, qs);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
    if (k == dch - 1) {
        float *sp = c->s + KCH * pair;
        _tile_stored(0, sp, ss);
        _tile_stored(1, sp + 16, ss);
        _tile_stored(2, sp + 16 * to->kc, ss);
        _tile_stored(3, sp + 16 * to->kc + 16, ss);
    }
}

/* Step s of O += P·V: 32 head-dim columns × 32 keys, 4 TDPBF16PS. The O tiles are loaded at a
 * column pair's first step and stored at its last. Chunks with a non-finite V are left out
 * when the chunk has excluded pairs (pv_scalar adds them). */
static inline void pv_step(const tile_ops *to, const chunk *c, int s)
{
    const int64_t dpad = to->dpad, os = dpad * 4, ps = to->kc * 2;
    const int col = 32 * (s / c->nch), ch = s % c->nch;
    float *o = to->o + col;
    if (ch == 0) {
        _tile_loadd(0, o, os);
        _tile_loadd(1, o + 16, os);
        _tile_loadd(2, o + 16 * dpad, os);
        _tile_loadd(3, o + 16 * dpad + 16, os);
    }
    if (c->fast || !c->bad[ch]) {
        const uint16_t *v = c->vp + (size_t)(ch * (dpad / 16) + col / 16) * TILE_ELEMS;
        _tile_loadd(4, c->p + KCH * ch, ps);
        _tile_loadd(6, v, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, v + TILE_ELEMS, 64);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, c->p + 16 * to->kc + KCH * ch, ps);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    if (ch == c->nch - 1) {
        _tile_stored(0, o, os);
        _tile_stored(1, o + 16, os);
        _tile_stored(2, o + 16 * dpad, os);
        _tile_stored(3, o + 16 * dpad + 16, os);
    }
}

/* The AMX work interleaved into a softmax pass: first P·V of the previous chunk, then the
 * scores of the next one, spread evenly over the pass's 32 rows. */
typedef struct amx_queue {
    const tile_ops *to;
    const chunk *pv, *qk; /* either may be NULL */
    int n_pv, total, done;
} amx_queue;

static amx_queue queue_of(const tile_ops *to, const chunk *pv, const chunk *qk)
{
    const int n_pv = pv ? pv_steps(to, pv) : 0;
    return (amx_queue){.to = to, .pv = pv, .qk = qk, .n_pv = n_pv,
                       .total = n_pv + (qk ? qk_steps(to, qk) : 0)};
}

/* Issues the steps due after `rows` of the pass's 32 rows. */
static inline void queue_run(amx_queue *q, int rows)
{
    const int until = rows >= TQ ? q->total : q->total * rows / TQ;
    for (; q->done < until; q->done++) {
        if (q->done < q->n_pv)
            pv_step(q->to, q->pv, q->done);
        else
            qk_step(q->to, q->qk, q->done - q->n_pv);
    }
}

/* ---- vector helpers ----------------------------------------------------------------------- */

/* 2^x for x <= LAZY_MAX_BITS or NaN; lanes outside keep, and x < ATTN_EXP2_MIN, give 0 (as
 * exp2_poly.h's), NaN stays NaN. The weights are rounded to bf16 (relative 2^-9) right after,
 * so this is cheaper than exp2_poly.h's float32 version: f = x - floor(x) in [0, 1) in one
 * vreduceps, a degree-4 polynomial, vscalefps by floor(x) (it floors its exponent operand).
 * The coefficients are an iteratively reweighted least-squares fit of the relative error of 2^f
 * on [0, 1], c0 fixed to 1: max relative error 3.0e-6 (2^-18.4) with float FMA Horner. */
#define EXP2_D4_C1 0x1.62d6c8p-1f
#define EXP2_D4_C2 0x1.ee23fcp-3f
#define EXP2_D4_C3 0x1.abfb46p-5f
#define EXP2_D4_C4 0x1.b7f006p-7f

static inline __m512 exp2_d4_ps(__m512 x, __mmask16 keep)
{
    keep = _mm512_mask_cmp_ps_mask(keep, x, _mm512_set1_ps(ATTN_EXP2_MIN), _CMP_NLT_UQ);
    const __m512 f = _mm512_reduce_ps(x, _MM_FROUND_TO_NEG_INF);
    __m512 y = _mm512_set1_ps(EXP2_D4_C4);
    y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(EXP2_D4_C3));
    y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(EXP2_D4_C2));
    y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(EXP2_D4_C1));
    y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(keep, y, x);
}

/* r[i] holds row i of a 16×16 matrix of dwords; afterwards r[i] holds column i. */
static inline void transpose16_epi32(__m512i r[16])
{
    __m512i t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* per 128-bit lane L of u[4i + e]: column 4L + e of rows 4i..4i+3 */
    __m512i u[16];
    for (int i = 0; i < 4; i++) {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int e = 0; e < 4; e++) {
        const __m512i ab_lo = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x44);
        const __m512i ab_hi = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xee);
        const __m512i cd_lo = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x44);
        const __m512i cd_hi = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xee);
        r[e] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0x88);
        r[4 + e] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0xdd);
        r[8 + e] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0x88);
        r[12 + e] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0xdd);
    }
}

/* ---- contexts ----------------------------------------------------------------------------- */

typedef struct run_ctx {
    const attn_task *t;
    attn_dtype dt;
    size_t esize;           /* bytes per input element */
    const char *k, *v;      /* row 0 of the group's K and V head */
    int64_t k_seq, v_seq;   /* row strides in bytes */
    int64_t b, hkv;         /* the group's sequence and kv head (paged K/V: kv_row) */
    int64_t d, dpad;
    const float *mask;
    float c;                /* scale·log2(e) */
    tile_options opts;      /* soft cap and ALiBi (avx512_common.h) */
    bool plain;             /* no soft cap, no ALiBi: chunks every row sees whole run row_fast */
} run_ctx;

/* Key j's row of K or V ('k', 'v'): at its stride from row 0, or through the block table when
 * K/V are paged. */
static inline const char *kv_row(const run_ctx *x, char tensor, int64_t j)
{
    if (x->t->problem->page_size)
        return attn_row(x->t, tensor, x->b, x->hkv, j);
    return tensor == 'k' ? x->k + j * x->k_seq : x->v + j * x->v_seq;
}

/* The workspace of one query block, and the tile being processed. */
typedef struct block_ctx {
    uint16_t *qp, *kp, *vp, *pbuf;
    float *o, *m, *l, *s;
    int64_t *lim, *moff, *first; /* per row: key limit, mask offset, first key (window) */
    float *slope, *pos;          /* per row: ALiBi slope·log2(e) and i' (block_alibi) */
    bool *vbad;
    int kc;
} block_ctx;

/* ---- packing ------------------------------------------------------------------------------ */

/* K rows [kb0, kb0 + nb) into Kp, zero keys up to a multiple of 32: per 16-key tile and
 * 32-element head-dim chunk, Kp[r][j] = dword (pair r) of key j. */
static void pack_k(const run_ctx *x, int64_t kb0, int64_t nb, uint16_t *kp)
{
    const int64_t dch = x->dpad / DCH, ntiles = round_up(nb, KCH) / 16;
    for (int64_t kt = 0; kt < ntiles; kt++)
        for (int64_t c = 0; c < dch; c++) {
            __m512i r[16];
            for (int j = 0; j < 16; j++) {
                const int64_t key = kt * 16 + j;
                r[j] = key < nb ? load_bf16x32(kv_row(x, 'k', kb0 + key) +
                                                   (size_t)(DCH * c) * x->esize,
                                               x->d - DCH * c, x->dt)
                                : _mm512_setzero_si512();
            }
            transpose16_epi32(r);
            uint16_t *dst = kp + (size_t)(kt * dch + c) * TILE_ELEMS;
            for (int i = 0; i < 16; i++)
                _mm512_store_si512(dst + 32 * i, r[i]);
        }
}

/* V rows [kb0, kb0 + nb) into Vp, zero keys up to a multiple of 32: per 32-key chunk and 16
 * columns, Vp[r][c][e] = V[2r + e][c]. vbad[chunk]: the chunk's bf16 V holds a NaN or an Inf. */
static void pack_v(const run_ctx *x, int64_t kb0, int64_t nb, uint16_t *vp, bool *vbad)
{
    const int64_t dt = x->dpad / 16, nch = round_up(nb, KCH) / KCH;
    /* [a0..a15, b0..b15] -> [a0, b0, a1, b1, ...] */
    _Alignas(64) uint16_t idx[32];
    for (int i = 0; i < 16; i++) {
        idx[2 * i] = (uint16_t)i;
        idx[2 * i + 1] = (uint16_t)(16 + i);
    }
    const __m512i perm = _mm512_load_si512(idx);
    const __m512i absmask = _mm512_set1_epi16(0x7fff), inf = _mm512_set1_epi16(0x7f80);
    for (int64_t ch = 0; ch < nch; ch++) {
        __mmask32 bad = 0;
        for (int r = 0; r < 16; r++) {
            const int64_t ka = ch * KCH + 2 * r, kb = ka + 1;
            const char *ra = ka < nb ? kv_row(x, 'v', kb0 + ka) : NULL;
            const char *rb = kb < nb ? kv_row(x, 'v', kb0 + kb) : NULL;
            for (int64_t t = 0; t < dt; t++) {
                const int64_t n = x->d - 16 * t;
                const size_t off = (size_t)(16 * t) * x->esize;
                const __m256i zero = _mm256_setzero_si256();
                const __m256i a = ka < nb ? load_bf16x16(ra + off, n, x->dt) : zero;
                const __m256i b = kb < nb ? load_bf16x16(rb + off, n, x->dt) : zero;
                const __m512i ab = _mm512_permutexvar_epi16(
                    perm, _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1));
                bad |= _mm512_cmpge_epu16_mask(_mm512_and_si512(ab, absmask), inf);
                _mm512_store_si512(vp + (size_t)(ch * dt + t) * TILE_ELEMS + 32 * r, ab);
            }
        }
        vbad[ch] = bad != 0;
    }
}

/* ---- rows of a block ---------------------------------------------------------------------- */

/* Packs Q (bf16, zero-padded to dpad and to whole tiles), key limits, first keys (window),
 * ALiBi and mask offsets; clears O, m and the sums. Returns the largest key limit. */
static int64_t setup_rows(const run_ctx *x, const block_rows *br, int64_t tiles,
                          const block_ctx *bc)
{
    const int64_t dpad = x->dpad, dch = dpad / DCH;
    memset(bc->o, 0, (size_t)(tiles * TQ * dpad) * sizeof(float));
    for (int64_t r = 0; r < tiles * TQ; r++) {
        uint16_t *q = bc->qp + r * dpad;
        bc->m[r] = -INFINITY;
        _mm512_store_ps(bc->l + 16 * r, _mm512_setzero_ps());
        if (r >= br->n) {
            memset(q, 0, (size_t)dpad * sizeof *q);
            continue;
        }
        const char *src = attn_row(br->t, 'q', br->gr.b, row_head(br, r), row_index(br, r));
        for (int64_t c = 0; c < dch; c++)
            _mm512_store_si512(q + DCH * c, load_bf16x32(src + (size_t)(DCH * c) * x->esize,
                                                         x->d - DCH * c, x->dt));
    }
    if (x->opts.alibi)
        block_alibi(br, tiles * TQ, bc->slope, bc->pos);
    return block_limits(br, tiles * TQ, bc->lim, bc->first, bc->moff);
}

/* Row r of the tile needs its O scaled by `corr` once the P·V in flight has landed. */
typedef struct pending {
    float corr[TQ];
    uint32_t rows; /* bit r: corr[r] is due */
} pending;

/* Moves row rb's running max to m_new (log2 units): the sum now, O later (pending). */
static float raise_max(const block_ctx *bc, int64_t rb, int r, float m_new, pending *pd)
{
    const float m = bc->m[rb];
    const float corr = m == -INFINITY ? 0.0f : exp2f(m - m_new);
    _mm512_store_ps(bc->l + 16 * rb,
                    _mm512_mul_ps(_mm512_load_ps(bc->l + 16 * rb), _mm512_set1_ps(corr)));
    pd->corr[r] = pd->rows & (1u << r) ? pd->corr[r] * corr : corr;
    pd->rows |= 1u << r;
    bc->m[rb] = m_new;
    return m_new;
}

static void apply_pending(const run_ctx *x, const tile_ops *to, pending *pd)
{
    for (uint32_t bits = pd->rows; bits; bits &= bits - 1) {
        const int r = __builtin_ctz(bits);
        const __m512 corr = _mm512_set1_ps(pd->corr[r]);
        float *o = to->o + r * x->dpad;
        for (int64_t c = 0; c < x->dpad; c += 16)
            _mm512_store_ps(o + c, _mm512_mul_ps(_mm512_load_ps(o + c), corr));
    }
    pd->rows = 0;
}

/* Weights of one row from its scores in log2 units xv[0..nv) (excluded lanes -inf, vm their
 * masks) after the lazy max test on their max `tmax`: P in bf16 (pairs of vectors, zeros up to
 * nv32), the sum of the rounded weights (vdpbf16ps with ones) added to the row's sum. */
static inline void row_weights(const block_ctx *bc, int64_t rb, int r, __m512 *xv,
                               const __mmask16 *vm, int nv, int nv32, __m512 tmax,
                               uint16_t *prow, pending *pd)
{
    float m = bc->m[rb];
    if (_mm512_cmp_ps_mask(tmax, _mm512_set1_ps(m + LAZY_MAX_BITS), _CMP_GT_OQ))
        m = raise_max(bc, rb, r, _mm512_reduce_max_ps(tmax), pd);
    const __m512 mv = _mm512_set1_ps(m);
    const __m512bh ones = (__m512bh)_mm512_set1_epi16(0x3f80);
    __m512 sum = _mm512_setzero_ps();
    for (int v = 0; v < KC_MAX / 16; v += 2)
        if (v < nv32) {
            const __m512 p0 =
                v < nv ? exp2_d4_ps(_mm512_sub_ps(xv[v], mv), vm[v]) : _mm512_setzero_ps();
            const __m512 p1 = v + 1 < nv ? exp2_d4_ps(_mm512_sub_ps(xv[v + 1], mv), vm[v + 1])
                                         : _mm512_setzero_ps();
            const __m512i pb = to_bf16x32(p0, p1);
            _mm512_storeu_si512(prow + 16 * v, pb);
            sum = _mm512_dpbf16_ps(sum, (__m512bh)pb, ones);
        }
    _mm512_store_ps(bc->l + 16 * rb, _mm512_add_ps(_mm512_load_ps(bc->l + 16 * rb), sum));
}

/* A row of a fast chunk: nv (even, a constant after inlining) full vectors, no masks. The max
 * is taken on the raw scores (scale·log2(e) > 0 keeps the order), so one FMA per vector forms
 * s·c - m. */
static inline void row_fast(const block_ctx *bc, int64_t rb, int r, const float *srow,
                            uint16_t *prow, __m512 c, const int nv, pending *pd)
{
    __m512 s[KC_MAX / 16];
    __m512 smax = _mm512_set1_ps(-INFINITY);
    for (int v = 0; v < nv; v++) {
        s[v] = _mm512_load_ps(srow + 16 * v);
        smax = _mm512_max_ps(s[v], smax); /* NaN skipped: vmaxps returns the second operand */
    }
    float m = bc->m[rb];
    if (_mm512_cmp_ps_mask(_mm512_mul_ps(smax, c), _mm512_set1_ps(m + LAZY_MAX_BITS), _CMP_GT_OQ))
        m = raise_max(bc, rb, r, _mm512_reduce_max_ps(_mm512_mul_ps(smax, c)), pd);
    const __m512 mv = _mm512_set1_ps(m);
    const __m512bh ones = (__m512bh)_mm512_set1_epi16(0x3f80);
    __m512 sum = _mm512_setzero_ps();
    for (int v = 0; v < nv; v += 2) {
        const __m512 p0 = exp2_d4_ps(_mm512_fmsub_ps(s[v], c, mv), 0xffff);
        const __m512 p1 = exp2_d4_ps(_mm512_fmsub_ps(s[v + 1], c, mv), 0xffff);
        const __m512i pb = to_bf16x32(p0, p1);
        _mm512_storeu_si512(prow + 16 * v, pb);
        sum = _mm512_dpbf16_ps(sum, (__m512bh)pb, ones);
    }
    _mm512_store_ps(bc->l + 16 * rb, _mm512_add_ps(_mm512_load_ps(bc->l + 16 * rb), sum));
}

/* A row of a chunk with excluded pairs, an additive mask or the options (any nk <= kc): the
 * scores scaled, soft-capped and biased (row_options_apply, as the other x86 tile variants do),
 * then the keys outside the row's band [first, lim) and those masked by -inf excluded. */
static inline void row_masked(const run_ctx *x, const block_ctx *bc, const chunk *ck, int64_t rb,
                              int r, const float *srow, uint16_t *prow, pending *pd)
{
    const int nk = ck->nk, nv = (nk + 15) / 16, nv32 = 2 * ck->nch;
    const int64_t seen = bc->lim[rb] - ck->j0, skip = bc->first[rb] - ck->j0;
    if (seen <= 0 || skip >= nk) { /* the row sees no key of the chunk */
        for (int v = 0; v < nv32; v += 2)
            _mm512_storeu_si512(prow + 16 * v, _mm512_setzero_si512());
        return;
    }
    const __m512 c = _mm512_set1_ps(x->c), ninf = _mm512_set1_ps(-INFINITY);
    const float *mrow = x->mask ? x->mask + bc->moff[rb] + ck->j0 : NULL;
    __m512 xv[KC_MAX / 16];
    __mmask16 vm[KC_MAX / 16];
    __m512 tmax = ninf;
    for (int v = 0; v < KC_MAX / 16; v++) {
        xv[v] = ninf;
        vm[v] = 0;
        if (v >= nv)
            continue;
        __mmask16 valid = tail_mask16((seen < nk ? seen : nk) - 16 * v);
        if (skip > 16 * v) /* the window's left edge */
            valid &= (__mmask16)~tail_mask16(skip - 16 * v);
        __m512 s = _mm512_mul_ps(_mm512_load_ps(srow + 16 * v), c);
        if (valid)
            s = row_options_apply(&x->opts, bc->slope[rb], bc->pos[rb], ck->j0 + 16 * v, s);
        if (mrow && valid) {
            const __m512 mk = _mm512_maskz_loadu_ps(valid, mrow + 16 * v);
            valid = _mm512_mask_cmp_ps_mask(valid, mk, ninf, _CMP_NEQ_UQ);
            s = _mm512_fmadd_ps(mk, _mm512_set1_ps(ATTN_LOG2E), s);
        }
        vm[v] = valid;
        xv[v] = _mm512_mask_mov_ps(ninf, valid, s);
        tmax = _mm512_max_ps(xv[v], tmax);
    }
    row_weights(bc, rb, r, xv, vm, nv, nv32, tmax, prow, pd);
}

/* The softmax step of a tile (rows rt.. of the block) on one chunk, S to P, with the queued
 * AMX work issued between its rows. */
static void softmax_chunk(const run_ctx *x, const block_ctx *bc, int64_t rt, const chunk *ck,
                          amx_queue *q, pending *pd)
{
    const int kc = bc->kc, nv = ck->nk / 16;
    const __m512 c = _mm512_set1_ps(x->c);
    for (int r = 0; r < TQ; r++) {
        queue_run(q, r);
        const float *srow = ck->s + r * kc;
        uint16_t *prow = ck->p + r * kc;
        if (!ck->fast)
            row_masked(x, bc, ck, rt + r, r, srow, prow, pd);
        else if (nv == 8)
            row_fast(bc, rt + r, r, srow, prow, c, 8, pd);
        else if (nv == 6)
            row_fast(bc, rt + r, r, srow, prow, c, 6, pd);
        else if (nv == 4)
            row_fast(bc, rt + r, r, srow, prow, c, 4, pd);
        else
            row_fast(bc, rt + r, r, srow, prow, c, 2, pd);
    }
    queue_run(q, TQ);
}

/* The 32-key steps that P·V left out (non-finite V in a chunk with excluded pairs): O row +=
 * weight·V over the nonzero (or NaN) weights only, so no row sees a key it excludes. */
static void pv_scalar(const run_ctx *x, const tile_ops *to, const chunk *ck)
{
    if (ck->fast)
        return;
    for (int ch = 0; ch < ck->nch; ch++) {
        if (!ck->bad[ch])
            continue;
        const uint16_t *vp = ck->vp + (size_t)(ch * (x->dpad / 16)) * TILE_ELEMS;
        for (int r = 0; r < TQ; r++) {
            float *o = to->o + r * x->dpad;
            for (int e = 0; e < KCH; e++) {
                const float w = attn_bf16_to_f32(ck->p[r * to->kc + KCH * ch + e]);
                if (w == 0.0f)
                    continue;
                for (int64_t col = 0; col < x->d; col++)
                    o[col] += w * attn_bf16_to_f32(vp[(size_t)(col / 16) * TILE_ELEMS +
                                                      (e / 2) * 32 + 2 * (col % 16) + e % 2]);
            }
        }
    }
}

/* The keys a tile walks in the packed block at kb0: [begin, end), begin - kb0 a multiple of 32;
 * its rows' smallest key limit and largest first key (every row sees [first_max, lim_min)). */
typedef struct tile_span {
    int64_t kb0, begin, end, lim_min, first_max;
} tile_span;

/* Chunk i of a tile's keys: S and P buffers alternate. A chunk is fast (row_fast) when every
 * row sees each of its keys whole, with no additive mask and no option. */
static chunk *chunk_of(const run_ctx *x, const block_ctx *bc, const tile_span *sp, int64_t i,
                       chunk *c)
{
    const int kc = bc->kc;
    const int64_t dpad = x->dpad, j0 = sp->begin + i * kc, rel = j0 - sp->kb0; /* 32·n */
    c->j0 = j0;
    c->nk = (int)(sp->end - j0 < kc ? sp->end - j0 : kc);
    c->nch = (int)round_up(c->nk, KCH) / KCH;
    c->fast = x->plain && !x->mask && c->nk % KCH == 0 && j0 >= sp->first_max &&
              j0 + c->nk <= sp->lim_min;
    c->s = bc->s + (i % 2) * TQ * kc;
    c->p = bc->pbuf + (i % 2) * TQ * kc;
    c->kp = bc->kp + (size_t)(rel / 16 * (dpad / DCH)) * TILE_ELEMS;
    c->vp = bc->vp + (size_t)(rel / KCH * (dpad / 16)) * TILE_ELEMS;
    c->bad = bc->vbad + rel / KCH;
    return c;
}

/* One tile (rows rt.. of the block) over its span of the packed block, chunk by chunk,
 * software pipelined: while the softmax of chunk i runs on the vector units, the AMX unit adds
 * P·V of chunk i-1 and computes the scores of chunk i+1 (S and P double-buffered). A row whose max moves in chunk i has its O rescaled once chunk
 * i-1's P·V has landed. */
static void tile_keys(const run_ctx *x, const block_ctx *bc, int64_t rt, const tile_span *sp)
{
    const int64_t dpad = x->dpad, n = (sp->end - sp->begin + bc->kc - 1) / bc->kc;
    const tile_ops to = {.qp = bc->qp + rt * dpad, .o = bc->o + rt * dpad, .dpad = dpad,
                         .kc = bc->kc};
    chunk ck[3];
    pending pd = {.rows = 0};
    amx_queue q = queue_of(&to, NULL, chunk_of(x, bc, sp, 0, &ck[0]));
    queue_run(&q, TQ);
    for (int64_t i = 0; i < n; i++) {
        const chunk *prev = i > 0 ? &ck[(i - 1) % 3] : NULL;
        const chunk *next = i + 1 < n ? chunk_of(x, bc, sp, i + 1, &ck[(i + 1) % 3]) : NULL;
        q = queue_of(&to, prev, next);
        softmax_chunk(x, bc, rt, &ck[i % 3], &q, &pd);
        if (prev)
            pv_scalar(x, &to, prev);
        apply_pending(x, &to, &pd);
    }
    q = queue_of(&to, &ck[(n - 1) % 3], NULL);
    queue_run(&q, TQ);
    pv_scalar(x, &to, &ck[(n - 1) % 3]);
}

/* Every row of the block done: its O row, or its partials (finish_row). */
static void finish_rows(const run_ctx *x, const block_rows *br, const block_ctx *bc)
{
    for (int64_t r = 0; r < br->n; r++)
        finish_row(br, r, bc->o + r * x->dpad, 1,
                   _mm512_reduce_add_ps(_mm512_load_ps(bc->l + 16 * r)), bc->m[r]);
}

/* ---- decode path: vectors along head_dim ---------------------------------------------------- */

/* n (clamped to 0..16) elements of a row rounded to bf16 and widened back to float. */
static inline __m512 load_bf16_as_f32(const void *src, int64_t n, attn_dtype dt)
{
    const __m256i h = load_bf16x16(src, n, dt);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Rows [j0, j0 + nk) of V as float rows of dpad (bf16 values, zeros past d and nk). */
static void widen_rows(const run_ctx *x, int64_t j0, int nk, float *dst)
{
    for (int j = 0; j < DEC_K; j++)
        for (int64_t c = 0; c < x->dpad; c += 16)
            _mm512_store_ps(dst + j * x->dpad + c,
                            j < nk ? load_bf16_as_f32(kv_row(x, 'v', j0 + j) +
                                                          (size_t)c * x->esize,
                                                      x->d - c, x->dt)
                                   : _mm512_setzero_ps());
}

/* Rows [j0, j0 + nk) of K as bf16 rows of dpad (zeros past d and nk). */
static void bf16_rows(const run_ctx *x, int64_t j0, int nk, uint16_t *dst)
{
    for (int j = 0; j < DEC_K; j++)
        for (int64_t c = 0; c < x->dpad; c += DCH)
            _mm512_store_si512(dst + j * x->dpad + c,
                               j < nk ? load_bf16x32(kv_row(x, 'k', j0 + j) +
                                                         (size_t)c * x->esize,
                                                     x->d - c, x->dt)
                                      : _mm512_setzero_si512());
}

/* o[0..dpad) (float, in the workspace) += Σ over the keys in `keys` of w[j]·vf[j]: 128
 * columns at a time in registers. */
static inline void decode_pv(float *o, const float *vf, const float *w, uint32_t keys,
                             int64_t dpad)
{
    enum { NV = 8 };
    for (int64_t c0 = 0; c0 < dpad; c0 += 16 * NV) {
        const int nv = (int)((dpad - c0) / 16 < NV ? (dpad - c0) / 16 : NV);
        __m512 acc[NV];
        for (int v = 0; v < NV; v++)
            acc[v] = v < nv ? _mm512_load_ps(o + c0 + 16 * v) : _mm512_setzero_ps();
        for (uint32_t bits = keys; bits; bits &= bits - 1) {
            const int j = __builtin_ctz(bits);
            const __m512 wj = _mm512_set1_ps(w[j]);
            for (int v = 0; v < NV; v++)
                if (v < nv)
                    acc[v] = _mm512_fmadd_ps(wj, _mm512_load_ps(vf + j * dpad + c0 + 16 * v),
                                             acc[v]);
        }
        for (int v = 0; v < nv; v++)
            _mm512_store_ps(o + c0 + 16 * v, acc[v]);
    }
}

/* A group of few rows (decode): per block of 16 keys, read K and V once (rounded to bf16: K
 * kept in bf16, V widened) and for each row 16 dot products along head_dim (vdpbf16ps, exact
 * products, float sums), the options (row_options_apply), the lazy-max softmax on one vector
 * of 16 scores, weights rounded to bf16, O += weight·V over the valid keys only. Blocks before
 * every row's window are skipped. */
static void decode_rows(const run_ctx *x, const block_ctx *bc, const block_rows *br,
                        const key_range *kr, uint16_t *kb, float *vf)
{
    const int64_t dpad = x->dpad, n = br->n;
    int64_t kend = setup_rows(x, br, 1, bc);
    kend = kend < kr->end ? kend : kr->end;
    int64_t first_min, first_max;
    first_range(bc->first, bc->lim, n, &first_min, &first_max);
    const int64_t kstart = first_min > kr->begin && first_min < kend ? first_min : kr->begin;
    const __m512 cv = _mm512_set1_ps(x->c), ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t j0 = kstart; j0 < kend; j0 += DEC_K) {
        const int nk = (int)(kend - j0 < DEC_K ? kend - j0 : DEC_K);
        /* the next block's K and V rows into L1: measured 1.3x on Lq = 1, Lk = 8192 (the
         * hardware prefetchers alone left this loop at ~6 GB/s) */
        const int64_t row_bytes = x->d * (int64_t)x->esize;
        for (int64_t j = j0 + DEC_K; j < j0 + 2 * DEC_K && j < kend; j++)
            for (int64_t b = 0; b < row_bytes; b += 64) {
                _mm_prefetch(kv_row(x, 'k', j) + b, _MM_HINT_T0);
                _mm_prefetch(kv_row(x, 'v', j) + b, _MM_HINT_T0);
            }
        bf16_rows(x, j0, nk, kb);
        widen_rows(x, j0, nk, vf);
        for (int64_t r = 0; r < n; r++) {
            const int64_t seen = (bc->lim[r] < kend ? bc->lim[r] : kend) - j0,
                          skip = bc->first[r] - j0;
            if (seen <= 0 || skip >= nk)
                continue;
            __mmask16 valid = tail_mask16(seen < nk ? seen : nk);
            if (skip > 0) /* the window's left edge */
                valid &= (__mmask16)~tail_mask16(skip);
            __m512 acc[DEC_K];
            for (int j = 0; j < DEC_K; j++)
                acc[j] = _mm512_setzero_ps();
            for (int64_t c = 0; c < dpad; c += DCH) {
                const __m512bh q = (__m512bh)_mm512_load_si512(bc->qp + r * dpad + c);
                for (int j = 0; j < DEC_K; j++)
                    acc[j] = _mm512_dpbf16_ps(acc[j], q,
                                              (__m512bh)_mm512_load_si512(kb + j * dpad + c));
            }
            __m512 s = row_options_apply(&x->opts, bc->slope[r], bc->pos[r], j0,
                                         _mm512_mul_ps(sum16(acc), cv));
            if (x->mask) {
                const __m512 mk = _mm512_maskz_loadu_ps(valid, x->mask + bc->moff[r] + j0);
                valid = _mm512_mask_cmp_ps_mask(valid, mk, ninf, _CMP_NEQ_UQ);
                s = _mm512_fmadd_ps(mk, _mm512_set1_ps(ATTN_LOG2E), s);
            }
            if (!valid)
                continue;
            s = _mm512_mask_mov_ps(ninf, valid, s);
            /* the largest valid score that is not NaN (a NaN reaches the sum and O below) */
            const float bmax =
                _mm512_mask_reduce_max_ps(_mm512_mask_cmp_ps_mask(valid, s, s, _CMP_ORD_Q), s);
            float *o = bc->o + r * dpad;
            if (bmax > bc->m[r] + LAZY_MAX_BITS) {
                pending pd = {.rows = 0}; /* O at once: nothing is in flight here */
                raise_max(bc, r, 0, bmax, &pd);
                const __m512 corr = _mm512_set1_ps(pd.corr[0]);
                for (int64_t c = 0; c < dpad; c += 16)
                    _mm512_store_ps(o + c, _mm512_mul_ps(_mm512_load_ps(o + c), corr));
            }
            __m512 p = exp2_d4_ps(_mm512_sub_ps(s, _mm512_set1_ps(bc->m[r])), valid);
            p = _mm512_castsi512_ps(_mm512_slli_epi32( /* rounded to bf16 like AMX's weights */
                _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(p)), 16));
            _mm512_store_ps(bc->l + 16 * r, _mm512_add_ps(_mm512_load_ps(bc->l + 16 * r), p));
            _Alignas(64) float pw[DEC_K];
            _mm512_store_ps(pw, p);
            decode_pv(o, vf, pw, valid, dpad);
        }
    }
    finish_rows(x, br, bc);
}

/* One group: blocks of bq rows; per block, K/V blocks of bk keys packed once, then every tile
 * of the block over the K/V block in chunks of kc keys. */
static void group_rows(const attn_task *t, const ws_layout *w, const attn_group_rows *gr,
                       const key_range *kr)
{
    const attn_problem *p = t->problem;
    const int64_t bq = t->params[P_BQ], bk = t->params[P_BK];
    char *ws = t->workspace;
    const size_t esize = p->dtype == ATTN_F32 ? 4 : 2;
    const run_ctx x = {.t = t, .dt = p->dtype, .esize = esize,
                       .k = attn_row(t, 'k', gr->b, gr->hkv, 0),
                       .v = attn_row(t, 'v', gr->b, gr->hkv, 0),
                       .k_seq = p->k.seq * (int64_t)esize, .v_seq = p->v.seq * (int64_t)esize,
                       .b = gr->b, .hkv = gr->hkv,
                       .d = p->head_dim, .dpad = round_up(p->head_dim, DCH), .mask = p->mask,
                       .c = t->scale * ATTN_LOG2E, .opts = tile_options_of(p),
                       .plain = p->softcap == 0.0f && !p->alibi_slopes};
    const block_ctx bc = {.qp = (uint16_t *)(ws + w->qp), .kp = (uint16_t *)(ws + w->kp),
                          .vp = (uint16_t *)(ws + w->vp), .pbuf = (uint16_t *)(ws + w->p),
                          .o = (float *)(ws + w->o), .m = (float *)(ws + w->m),
                          .l = (float *)(ws + w->l), .s = (float *)(ws + w->s),
                          .lim = (int64_t *)(ws + w->lim), .moff = (int64_t *)(ws + w->moff),
                          .first = (int64_t *)(ws + w->first), .slope = (float *)(ws + w->slope),
                          .pos = (float *)(ws + w->pos), .vbad = (bool *)(ws + w->vbad),
                          .kc = t->params[P_KC]};
    if (gr->count <= t->params[P_DEC]) {
        const block_rows br = block_of(t, kr, gr, 0, gr->count);
        decode_rows(&x, &bc, &br, kr, (uint16_t *)(ws + w->dec_k), (float *)(ws + w->dec_v));
        return;
    }
    for (int64_t r0 = 0; r0 < gr->count; r0 += bq) {
        const block_rows br = block_of(t, kr, gr, r0, bq);
        const int64_t tiles = (br.n + TQ - 1) / TQ;
        int64_t kend = setup_rows(&x, &br, tiles, &bc);
        kend = kend < kr->end ? kend : kr->end;
        /* keys before every row's window are never packed; a tile starts at its own rows'
         * first key (on the block's 32-key grid), so a band costs its width, not Lk */
        int64_t first_min, first_max;
        first_range(bc.first, bc.lim, tiles * TQ, &first_min, &first_max);
        const int64_t kstart = first_min > kr->begin && first_min < kend ? first_min : kr->begin;
        for (int64_t kb0 = kstart; kb0 < kend; kb0 += bk) {
            const int64_t nb = kend - kb0 < bk ? kend - kb0 : bk;
            pack_k(&x, kb0, nb, bc.kp);
            pack_v(&x, kb0, nb, bc.vp, bc.vbad);
            for (int64_t tile = 0; tile < tiles; tile++) {
                const int64_t rt = tile * TQ;
                tile_span sp = {.kb0 = kb0};
                int64_t lim_max, first_lo;
                limit_range(bc.lim + rt, TQ, &sp.lim_min, &lim_max);
                first_range(bc.first + rt, bc.lim + rt, TQ, &first_lo, &sp.first_max);
                sp.end = lim_max < kb0 + nb ? lim_max : kb0 + nb;
                sp.begin = first_lo > kb0 ? kb0 + (first_lo - kb0) / KCH * KCH : kb0;
                if (first_lo < sp.end && sp.begin < sp.end) /* a row of the tile sees a key */
                    tile_keys(&x, &bc, rt, &sp);
            }
        }
        finish_rows(&x, &br, &bc);
    }
}

/* ---- entry -------------------------------------------------------------------------------- */

/* What the kernel's vector code needs besides the tiles. */
#define AMX_HOST_ISA                                                                          \
    (ATTN_ISA_AVX512F | ATTN_ISA_AVX512BW | ATTN_ISA_AVX512VL | ATTN_ISA_AVX512DQ |           \
     ATTN_ISA_AVX512BF16 | ATTN_ISA_AVX2 | ATTN_ISA_FMA)

static attn_status amx_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                            const attn_partial *part)
{
    ws_layout w;
    if (!layout_of(t->problem, t->params, &w))
        return ATTN_ERR_OVERFLOW;
    tiles_begin(); /* per thread: this call may run on any worker of the pool */
    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const attn_group_rows gr = attn_group_rows_of(t, g);
        if (gr.count <= 0)
            continue;
        const key_range kr = key_range_of(t, g, &gr, key_begin, key_end, part);
        group_rows(t, &w, &gr, &kr);
    }
    _tile_release();
    return ATTN_OK;
}

#ifndef ATTN_AMX_EMULATE
const attn_variant attn_variant_amx_bf16 = {
    .name = "amx_bf16",
    .description = "AMX bf16 tiles for Q.K^T and P.V (f32 inputs rounded to bf16), AVX-512 "
                   "online softmax with lazy max; K/V packed once per query block",
    .isa = ATTN_ISA_AMX | AMX_HOST_ISA,
#else
/* The same kernel on emulated tiles (amx_emulate.h), built into the test programs alone
 * (variant_list_tests.h): it needs AVX-512 BF16 only, and as a reference the planner never
 * picks it. */
const attn_variant attn_variant_amx_bf16_emu = {
    .name = "amx_bf16_emu",
    .description = "amx_bf16 with its tile instructions emulated in AVX-512 (tests only)",
    .isa = AMX_HOST_ISA,
    .reference_only = true,
#endif
    .tolerance = 8e-3,
    .dtypes = 1u << ATTN_F32 | 1u << ATTN_BF16,
    .compute_dtype = ATTN_BF16,
    .roofline = ATTN_ROOFLINE_AMX_BF16,
    ATTN_PARAMS(amx_params, amx_defaults),
    .vector_bits = 512,
    .params_valid = amx_valid,
    .workspace_size = amx_workspace,
    .run_partial = amx_rows,
    .features = ATTN_FEATURE_ALL,
};
