/* avx512_bf16.c — x86 AVX512_BF16 attention: bf16 products on VDPBF16PS, softmax in float32.
 *
 * Arithmetic (prefill; the decode path's P·V is described below). VDPBF16PS (_mm512_dpbf16_ps)
 * adds to each float32 lane the products of one PAIR of adjacent bf16 elements of its two
 * operands: acc[i] += a[2i]·b[2i] + a[2i+1]·b[2i+1]. The
 * products of two bf16 values are exact in float32; only the accumulation rounds. So:
 *   Q·Kᵀ  pairs run along head_dim: a 32-bit lane holds (x[2p], x[2p+1]); an odd d is padded
 *         with a zero element;
 *   P·V   pairs run along keys: a lane of P holds (p[j], p[j+1]) of one query, a lane of the
 *         packed V holds (V[j][c], V[j+1][c]).
 * Float32 inputs are rounded to bf16 on the fly (round to nearest even, _mm512_cvtne2ps_pbh);
 * bf16 inputs are read as stored. The softmax (scale, masks, max, 2^x with exp2_poly.h) runs in
 * float32 on the float32 scores; the weights P are then rounded to bf16 for the P·V product,
 * and the running sum l adds the ROUNDED weights, so each output row is exactly the
 * l-normalised combination of V rows with the weights that were used (a convex combination):
 * rounding P perturbs each weight by at most 2^-9 relative, which moves O by at most
 * 2^-9·max|V - O| and in practice (independent roundings) by a few 1e-3 normwise. That, plus
 * float32 accumulation, is the whole error against the oracle run on bf16-rounded inputs.
 * VDPBF16PS also treats bf16 subnormal inputs as zero and flushes subnormal results (values
 * under 2^-126, far below the tolerance).
 *
 * Prefill (rows per group > dec). The query rows of a task group are flattened over the query
 * heads of the GQA group (attn_group_rows_of). A block of bq rows is split into tiles of 32;
 * each tile's Q is packed once as pairs transposed, QP[p][32]. The keys are walked in blocks of
 * bk; K and V are packed once per group (reused by every block of query rows, every tile and
 * every query head of the group: a tile is packed the first time a block needs it), or, when
 * the group's packed K/V would pass PACK_ONCE_MAX_BYTES, once per key block and block of query
 * rows; in tiles of 8 keys:
 *   KP[tile][p][8]    the 8 keys' pairs p side by side (one 32-byte line per p),
 *   VP[tile][4][d]    for key pair i of the tile, (V[2i][c], V[2i+1][c]) for every c.
 * Keys past the block's end are packed as zeros. Per 32-query × 8-key tile:
 *   scores  S[8][32] = per pair p: 2 loads of QP[p], 8 broadcasts of KP[p][j], 16 VDPBF16PS
 *           into 16 accumulators (no other instruction in the loop);
 *   softmax on the 16 score registers, vertically (vectors run along queries): ·scale·log2(e)
 *           (+ mask·log2(e)), causal / key-length / -inf exclusion as a select (never an add,
 *           so a NaN in an excluded key stays out), tile max, lazy running max: a row's max m
 *           moves only when a tile max exceeds m + LAZY_MAX_BITS (log2 units), so weights stay
 *           <= 2^8 and the accumulator is rescaled a few times per row, not at every rise;
 *           2^x; rounding of P to bf16 pairs (one vcvtne2ps2bf16 + one vpermw per 2 keys);
 *   P·V     Oᵀ[c][32] += per key pair i: P[i] · broadcast VP[i][c]. Two key tiles at a time
 *           (pv_tile2): 4 head-dim elements × 32 queries = 8 accumulators, 16 P registers, 64
 *           VDPBF16PS per 8 Oᵀ loads and stores; a tile runs alone (pv_tile: 8 elements, 8 P
 *           registers) when the running max moves before its pair arrives, or at the end.
 * K is packed by an 8 × 16 transpose of 32-bit pairs in registers (24 two-source permutes per
 * 8 keys × 16 pairs), not by scatters (Zen 4 runs a scatter element by element).
 * A tile that every row sees in full skips the selects. An excluded key has weight 0, but
 * 0·NaN is NaN, and a pair cannot be masked per key: a tile with excluded keys whose packed V
 * holds a non-finite value (found while packing) runs P·V one key at a time (VDPBF16PS with
 * the pair's other V half zeroed, blended into the query lanes that see the key). Key tiles
 * past every row's limit (causal upper triangle, padding) are neither packed nor computed.
 *
 * Decode (rows per group <= dec, e.g. Lq = 1): vectors run along head_dim, and the path is
 * memory-bound, so it is built to read each K/V byte once with as few instructions as possible.
 * Per block of 16 keys: bf16 K and V rows are read straight from memory (masked tail loads;
 * half the bytes of float32); float32 rows are rounded once into 16-row buffers shared by all
 * the rows of the group, or, for one row (D1), rounded as they are loaded. The rows go in tiles of up to DEC_R = 4 (the query heads of a GQA
 * group, or Lq = 4 draft tokens), each K and V load serving the tile. Per tile: 16 dot products
 * per row with VDPBF16PS (32 head-dim elements each; a tile of several rows takes two keys side
 * by side), a transpose-add tree per row to one vector of 16 scores, softmax on that vector,
 * P rounded to bf16; then o += p_j·V[j] over the counted keys j (excluded keys are skipped, so
 * a NaN there stays out; rows of a tile that count different keys take V one row at a time).
 * One row (D1) needs no pairing of keys: each V load of 32 bf16 is widened exactly into
 * its 16 even and 16 odd elements (a shift and a mask) and multiplied by the rounded p_j with
 * float32 FMAs into a parity-split accumulator, unsplit once per row at the end. A tile of 2-4
 * rows does 2-4 times the arithmetic per byte, so it takes P·V on VDPBF16PS over key pairs
 * instead (half the instructions): the pair vectors are the 16-bit interleaves of two V rows
 * (vpunpcklwd / vpunpckhwd, one shuffle each), so these rows' accumulators are in that
 * interleaved order, unsplit at the end like the parity one (decode_unsplit); an excluded key
 * of a pair is loaded as zeros. A block of 16 keys that every row of the tile counts (the
 * common case) goes through decode_pv_full, up to 16 accumulators per pass and no per-pair
 * tests. The Q·K of such a tile keeps Q in registers when d <= 128, and contiguous bf16 rows
 * are addressed as base + key · stride (no page-table helper per block). Measured in cache
 * (Zen 4, D2 bf16 at Lk = 512, alternated) these took the tile from 22.6 to about 31 GB/s of
 * K/V; the three phases (Q·K with its transpose-add tree, softmax, P·V) add up, each at about
 * 1.4-1.7x its VDPBF16PS count.
 * The numbers are those of VDPBF16PS (bf16 products are exact in float32, float32 accumulation),
 * at half the instruction cost here: measured on D1 (H=32, Lq=1, Lk=8192, d=128), 1.53x the
 * float32 avx512 speed against 1.41x for V packed into key pairs + VDPBF16PS, and 1.35x for
 * VDPBF16PS with the weight in one half of the pair (even/odd elements, V unpacked). K rows are
 * read one after another (dots16), in 256-bit halves and plain loads for whole chunks
 * (load_stream_epi16: on Zen 5 masked or 512-bit loads that miss the caches stream far slower); a
 * head_dim of 128 has its own copy of the path with every mask a constant (D1 f32 0.47 -> 0.62
 * of a plain read with the rows still buffered, Zen 5; one row of bf16 keeps the generic copy,
 * see decode_group). One row takes no software
 * prefetch: on Zen 4 the earlier
 * column-by-column reads needed a prefetch 8 blocks ahead, which now only slows the stream (D1
 * bf16, interleaved: about 1.6x slower with it). A tile of several rows does that many times the
 * work per byte and leaves too few loads in flight for the hardware prefetchers, so it prefetches
 * bf16 K and V DEC_PF_KEYS keys ahead into L2, one prefetch beside each load (as avx512.c's
 * float32 tiles; D2 and D3 bf16 ran 1.6-1.9x faster with it, alternated).
 *
 * run_partial: the same paths over a key range, writing each row's lazy max (natural units),
 * sum and unnormalised row (the contract in variant.h).
 *
 * Throughput note: on this Emerald Rapids machine VDPBF16PS zmm retires about one per two
 * cycles (~60 GFLOP/s per core, half the float32 FMA rate), so the prefill here is slower than
 * the float32 avx512 variant (about 0.55x at B=1 H=4 L=2048 d=128); on CPUs with full-rate
 * VDPBF16PS (AMD Zen 4) it does 2x the FMA work per instruction. The two products are ~85% of
 * the prefill's cycles (perf), the softmax and packing the rest.
 *
 * Register budget (32 zmm): scores 16 accumulators + 2 QP + 1 broadcast; P·V 16 accumulators
 * + 8 P + broadcasts; decode dots R·2 accumulators + R·4 Q (d <= 128) + 2 K, decode P·V up
 * to 16 accumulators (one row: 128 head-dim elements split by parity; 3-4 rows: 64 each per
 * pass of a full block, 32 otherwise; 2 rows twice that) + 2 V + R P.
 *
 * Layout: head_dim contiguous (the contract); any batch/head/seq strides. Workspace (64-byte
 * aligned): packed QP, Oᵀ, per-row m, l, key limits and mask offsets, the packed K/V block and
 * the decode buffers; it depends on bq, bk (capped at Lk), dec and d, and grows with Lk (4·d
 * bytes per key) only up to PACK_ONCE_MAX_BYTES (packed once per group). */
/* Over 900 lines, on purpose: the prefill and decode paths are one kernel built with
 * AVX512_BF16 flags, sharing its loads, row helpers and workspace inline; the pair packing is in
 * avx512_bf16_pack.h, what it shares with avx512.c and amx_bf16.c in avx512_common.h and
 * tile_rows.h. */
#include "avx512_bf16_pack.h"
#include "avx512_common.h"
#include "tile_rows.h"

#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { P_BQ, P_BK, P_DEC };

enum {
    TILE_Q = 32,          /* query rows per micro-tile: two vectors of 16 */
    TILE_K = PACK_TILE_K, /* keys per micro-tile */
    NQV = TILE_Q / 16,    /* query vectors per micro-tile */
    KPAIRS = TILE_K / 2,  /* key pairs per micro-tile */
    PV_C = 8,             /* head-dim elements per step of the P·V kernel over one key tile */
    PV2_C = 4,            /* the same over two key tiles (16 keys) */
    DEC_K = 16,           /* keys per block of the decode path */
    DEC_C = 4,            /* 32-element chunks of a decode row in registers (128 floats) */
    DEC_R = 4,            /* decode rows sharing each load of a K or V vector */
    DEC_ACC = 16,         /* P·V accumulators of a decode tile's pass over V */
    DEC_PF_KEYS = 64,     /* keys ahead that a decode tile of several rows prefetches K, V */
};

static const attn_param_info bf16_params[] = {
    [P_BQ] = {"bq", "query rows per block sharing each packed K/V block", TILE_Q, 4096, TILE_Q},
    [P_BK] = {"bk", "keys per packed K/V block", TILE_K, 1 << 16, TILE_K},
    [P_DEC] = TILE_DEC_PARAM,
};

/* ---- workspace ---------------------------------------------------------------------------- */

typedef struct ws_layout {
    size_t qp, ot, kp, vp, vbad, done;                      /* prefill */
    int64_t packed_keys; /* keys the K/V buffers hold: the group's (packed once) or a block's */
    bool pack_once;
    row_parts rows;  /* m, l, limits, mask offsets (prefill); window, ALiBi (both paths) */
    size_t dq, dk, dv, dec_o, dec_t, dec_l, dec_m, dec_lim; /* decode */
    size_t total;
} ws_layout;

/* Keys per packed block: bk, or the keys there are when fewer (the block's buffers stay small
 * for short sequences whatever bk says). */
static int64_t block_keys(const attn_problem *p, const int32_t *v)
{
    const int64_t all = round_up(p->len_kv, TILE_K);
    return v[P_BK] < all ? v[P_BK] : all;
}

/* Packed K/V bytes up to which a group's keys are packed once for all its query blocks. Beyond
 * it (2^22 keys·d: 32768 keys at d = 128), each block of query rows repacks each key block, as
 * reading the packed bf16 again costs less than reading the source and converting it, but the
 * workspace should not grow without bound with Lk. */
#define PACK_ONCE_MAX_BYTES ((int64_t)16 << 20)

/* Whether the prefill packs every key of a group (rounded up to a tile) once, for all its
 * blocks of query rows: when the group has more than one block and they fit
 * PACK_ONCE_MAX_BYTES (4·d bytes per key); else one block of keys is repacked per block. */
static bool packs_once(const attn_problem *p, const int32_t *v)
{
    const int64_t group_rows = p->heads_q / p->heads_kv;
    return p->len_q > v[P_BQ] / group_rows && /* more than one block of rows */
           round_up(p->len_kv, TILE_K) <= PACK_ONCE_MAX_BYTES / (4 * round_up(p->head_dim, 2));
}

static bool layout_of(const attn_problem *p, const int32_t *v, ws_layout *w)
{
    memset(w, 0, sizeof *w);
    const size_t d = (size_t)p->head_dim, dp = (d + 1) / 2;
    w->pack_once = packs_once(p, v);
    w->packed_keys = w->pack_once ? round_up(p->len_kv, TILE_K) : block_keys(p, v);
    const size_t bq = (size_t)v[P_BQ], bk = (size_t)w->packed_keys, dec = (size_t)v[P_DEC];
    const size_t d32 = (size_t)round_up(p->head_dim, 32);
    size_t bq_d, bq_dp, bk_d, bk_dp, dec_d32;
    if (__builtin_mul_overflow(bq, d, &bq_d) || __builtin_mul_overflow(bq, dp, &bq_dp) ||
        __builtin_mul_overflow(bk, d, &bk_d) || __builtin_mul_overflow(bk, dp, &bk_dp) ||
        __builtin_mul_overflow(dec, d32, &dec_d32))
        return false;
    return add_part(&w->qp, &w->total, bq_dp, sizeof(uint32_t)) &&
           add_part(&w->ot, &w->total, bq_d, sizeof(float)) &&
           add_row_parts(&w->rows, &w->total, bq, dec) &&
           add_part(&w->kp, &w->total, bk_dp, sizeof(uint32_t)) &&
           add_part(&w->vp, &w->total, bk_d, sizeof(uint16_t)) &&
           add_part(&w->vbad, &w->total, bk / TILE_K, sizeof(bool)) &&
           add_part(&w->done, &w->total, bk / TILE_K, sizeof(bool)) &&
           add_part(&w->dq, &w->total, dec_d32, sizeof(uint16_t)) &&
           add_part(&w->dk, &w->total, DEC_K * d32, sizeof(uint16_t)) &&
           add_part(&w->dv, &w->total, DEC_K * d32, sizeof(uint16_t)) &&
           add_part(&w->dec_o, &w->total, dec_d32, sizeof(float)) &&
           add_part(&w->dec_t, &w->total, d32, sizeof(float)) &&
           add_part(&w->dec_l, &w->total, dec * 16, sizeof(float)) &&
           add_part(&w->dec_m, &w->total, dec, sizeof(float)) &&
           add_part(&w->dec_lim, &w->total, dec, sizeof(int64_t));
}

static size_t bf16_workspace(const attn_problem *p, const int32_t *v)
{
    ws_layout w;
    return layout_of(p, v, &w) ? w.total : SIZE_MAX;
}

/* Defaults (AVX-512 family). A quarter of L2 for the packed K/V block (2·d bf16 per key),
 * another quarter at most for the query block's QP and Oᵀ (6·d bytes per row). A large bq
 * amortises the packing of each K/V block over more rows. */
static const attn_default_rule bf16_defaults[] = {
    /*          fact           div per_d lk dm  min  max      max_half fixed */
    [P_BQ]   = {ATTN_FACT_L2,   4, 6,    0, 1,  32,  256,     0,       0,
                "QP bf16 pairs and O^T floats: 6 x d bytes per row"},
    [P_BK]   = {ATTN_FACT_L2,   4, 4,    0, 1,  8,   1 << 16, 0,       0,
                "packed K and V: 2 x d bf16 per key"},
    [P_DEC]  = TILE_DEC_DEFAULT,
};

static bool bf16_valid(const attn_problem *p, const int32_t *v, char *why, size_t why_len)
{
    ws_layout w;
    if (!layout_of(p, v, &w)) {
        snprintf(why, why_len, "workspace size overflows");
        return false;
    }
    return true;
}

/* ---- vector helpers ----------------------------------------------------------------------- */

/* Two weight vectors (keys j, j+1) rounded to bf16 pairs; l += the rounded weights, as one
 * VDPBF16PS with the pair (1, 1): the products are the weights exactly, summed in float32 as
 * P·V sums them (one instruction in place of a widening and two adds). */
static inline __m512bh round_weights(__m512 even, __m512 odd, __m512 *l)
{
    const __m512bh x = (__m512bh)interleave_halves((__m512i)_mm512_cvtne2ps_pbh(odd, even));
    *l = _mm512_dpbf16_ps(*l, x, (__m512bh)_mm512_set1_epi32(0x3f803f80)); /* bf16 (1, 1) */
    return x;
}

/* ---- prefill micro-kernels ---------------------------------------------------------------- */

typedef struct run_ctx {
    const attn_task *t;
    attn_dtype dt;
    int64_t b, hkv, d, dp; /* dp = pairs per row, (d + 1) / 2 */
    const char *k, *v;     /* K and V row 0 of the group's kv head */
    int64_t k_seq, v_seq;  /* bytes from one K (V) row to the next */
    const float *mask;     /* additive mask or NULL */
    __m512 c;              /* scale·log2(e) */
    tile_options opts;     /* soft cap, ALiBi (avx512_common.h) */
} run_ctx;

/* One 32-row tile of a query block. */
typedef struct tile_ctx {
    const uint32_t *qp;   /* QP [dp][32] */
    float *ot;            /* Oᵀ accumulator [d][32] */
    float *m, *l;         /* running max (log2 units) and sum [32] */
    tile_band band;       /* limits, window, mask offsets, ALiBi of each row (avx512_common.h) */
    int64_t lim_min;      /* smallest key limit of the tile's real rows */
    int64_t first_min, first_max; /* smallest and largest first key over rows that see a key */
} tile_ctx;

/* S[k][j] = Σ_p QP[p][16k..16k+15] · KP[p][j]. */
static inline void qk_tile(const uint32_t *restrict qp, const uint32_t *restrict kt, int64_t dp,
                           __m512 s[NQV][TILE_K])
{
    for (int k = 0; k < NQV; k++)
        for (int j = 0; j < TILE_K; j++)
            s[k][j] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int64_t p = 0; p < dp; p++) {
        __m512bh q[NQV];
        for (int k = 0; k < NQV; k++)
            q[k] = (__m512bh)_mm512_load_si512(qp + p * TILE_Q + 16 * k);
        for (int j = 0; j < TILE_K; j++) {
            const __m512bh kb = (__m512bh)_mm512_set1_epi32((int)kt[p * TILE_K + j]);
            for (int k = 0; k < NQV; k++)
                s[k][j] = _mm512_dpbf16_ps(s[k][j], q[k], kb);
        }
    }
}

/* Oᵀ[c][32] += Σ_i P[k][i] · VP[i][c], every pair counted. Not inlined: its 16 accumulators
 * and 8 weight vectors fit the 32 zmm registers only without the caller's live values (inlined
 * into key_tile, GCC 12 spilled accumulators inside the loop: 28 stack moves per 64 VDPBF16PS,
 * and the loop took 1.5x the time of the Q·Kᵀ loop, which does as many). */
static __attribute__((noinline)) void pv_tile(float *restrict ot, const uint32_t *restrict vt,
                                              int64_t d, const __m512bh pp[NQV][KPAIRS])
{
    int64_t c = 0;
    for (; c + PV_C <= d; c += PV_C) {
        __m512 acc[NQV][PV_C];
        for (int e = 0; e < PV_C; e++)
            for (int k = 0; k < NQV; k++)
                acc[k][e] = _mm512_load_ps(ot + (c + e) * TILE_Q + 16 * k);
        for (int i = 0; i < KPAIRS; i++)
            for (int e = 0; e < PV_C; e++) {
                const __m512bh vb = (__m512bh)_mm512_set1_epi32((int)vt[i * d + c + e]);
                for (int k = 0; k < NQV; k++)
                    acc[k][e] = _mm512_dpbf16_ps(acc[k][e], pp[k][i], vb);
            }
        for (int e = 0; e < PV_C; e++)
            for (int k = 0; k < NQV; k++)
                _mm512_store_ps(ot + (c + e) * TILE_Q + 16 * k, acc[k][e]);
    }
    for (; c < d; c++) {
        __m512 acc[NQV];
        for (int k = 0; k < NQV; k++)
            acc[k] = _mm512_load_ps(ot + c * TILE_Q + 16 * k);
        for (int i = 0; i < KPAIRS; i++) {
            const __m512bh vb = (__m512bh)_mm512_set1_epi32((int)vt[i * d + c]);
            for (int k = 0; k < NQV; k++)
                acc[k] = _mm512_dpbf16_ps(acc[k], pp[k][i], vb);
        }
        for (int k = 0; k < NQV; k++)
            _mm512_store_ps(ot + c * TILE_Q + 16 * k, acc[k]);
    }
}

/* Oᵀ[c][32] += P·V over two key tiles at once (16 keys: pp0 with vt0, then pp1 with vt1), every
 * pair counted: each pass over Oᵀ does twice the products of pv_tile's, for half the loads and
 * stores of Oᵀ per VDPBF16PS (8 accumulators + 16 weight vectors). */
static __attribute__((noinline)) void pv_tile2(float *restrict ot, const uint32_t *restrict vt0,
                                               const uint32_t *restrict vt1, int64_t d,
                                               const __m512bh pp0[NQV][KPAIRS],
                                               const __m512bh pp1[NQV][KPAIRS])
{
    __m512bh pp[2][NQV][KPAIRS];
    for (int k = 0; k < NQV; k++)
        for (int i = 0; i < KPAIRS; i++) {
            pp[0][k][i] = pp0[k][i];
            pp[1][k][i] = pp1[k][i];
        }
    const uint32_t *const vts[2] = {vt0, vt1};
    int64_t c = 0;
    for (; c + PV2_C <= d; c += PV2_C) {
        __m512 acc[NQV][PV2_C];
        for (int e = 0; e < PV2_C; e++)
            for (int k = 0; k < NQV; k++)
                acc[k][e] = _mm512_load_ps(ot + (c + e) * TILE_Q + 16 * k);
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < KPAIRS; i++)
                for (int e = 0; e < PV2_C; e++) {
                    const __m512bh vb = (__m512bh)_mm512_set1_epi32((int)vts[h][i * d + c + e]);
                    for (int k = 0; k < NQV; k++)
                        acc[k][e] = _mm512_dpbf16_ps(acc[k][e], pp[h][k][i], vb);
                }
        for (int e = 0; e < PV2_C; e++)
            for (int k = 0; k < NQV; k++)
                _mm512_store_ps(ot + (c + e) * TILE_Q + 16 * k, acc[k][e]);
    }
    for (; c < d; c++) {
        __m512 acc[NQV];
        for (int k = 0; k < NQV; k++)
            acc[k] = _mm512_load_ps(ot + c * TILE_Q + 16 * k);
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < KPAIRS; i++) {
                const __m512bh vb = (__m512bh)_mm512_set1_epi32((int)vts[h][i * d + c]);
                for (int k = 0; k < NQV; k++)
                    acc[k] = _mm512_dpbf16_ps(acc[k], pp[h][k][i], vb);
            }
        for (int k = 0; k < NQV; k++)
            _mm512_store_ps(ot + c * TILE_Q + 16 * k, acc[k]);
    }
}

/* The same, one key at a time: key j of pair i counts only in the query lanes of vm[k][j], and
 * the pair's other V half is zeroed, so an excluded key's non-finite V adds nothing. */
static void pv_tile_by_key(float *restrict ot, const uint32_t *restrict vt, int64_t d,
                           const __m512bh pp[NQV][KPAIRS], const __mmask16 vm[NQV][TILE_K])
{
    for (int64_t c = 0; c < d; c++) {
        __m512 acc[NQV];
        for (int k = 0; k < NQV; k++)
            acc[k] = _mm512_load_ps(ot + c * TILE_Q + 16 * k);
        for (int i = 0; i < KPAIRS; i++)
            for (int h = 0; h < 2; h++) {
                const uint32_t half = vt[i * d + c] & (h ? 0xffff0000u : 0x0000ffffu);
                const __m512bh vb = (__m512bh)_mm512_set1_epi32((int)half);
                /* A blend, not _mm512_mask_dpbf16_ps: GCC 12 moves that one's mask with kmovb,
                 * dropping query lanes 8-15 (seen in the generated code). */
                for (int k = 0; k < NQV; k++)
                    acc[k] = _mm512_mask_mov_ps(acc[k], vm[k][2 * i + h],
                                                _mm512_dpbf16_ps(acc[k], pp[k][i], vb));
            }
        for (int k = 0; k < NQV; k++)
            _mm512_store_ps(ot + c * TILE_Q + 16 * k, acc[k]);
    }
}

/* A key tile's weights whose P·V has not run yet: it runs together with the next tile's
 * (pv_tile2), or alone before the running max moves (the Oᵀ rescale must not reach it). */
typedef struct pending_pv {
    const uint32_t *vt;
    __m512bh pp[NQV][KPAIRS];
    bool active;
} pending_pv;

static inline void flush_pending(const run_ctx *x, const tile_ctx *tc, pending_pv *pend)
{
    if (pend->active)
        pv_tile(tc->ot, pend->vt, x->d, pend->pp);
    pend->active = false;
}

/* exp2_ps (avx512_common.h) with the degree-3 polynomial of exp2_poly.h: the weights are
 * rounded to bf16 next, whose half-ulp (2^-9) dwarfs its 1e-4 relative error; two FMAs fewer
 * per vector of weights. */
static inline __m512 exp2_weights(__m512 x, __mmask16 keep)
{
    keep = _mm512_mask_cmp_ps_mask(keep, x, _mm512_set1_ps(ATTN_EXP2_MIN), _CMP_NLT_UQ);
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 y = _mm512_set1_ps(ATTN_EXP2_BF16_C3);
    y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(ATTN_EXP2_BF16_C2));
    y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(ATTN_EXP2_BF16_C1));
    y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(ATTN_EXP2_C0));
    return _mm512_maskz_scalef_ps(keep, y, n);
}

/* tile_max_passes (avx512_common.h) on unscaled scores s: their max times c (> 0). */
static inline __mmask16 tile_max_scaled(const __m512 s[TILE_K], __m512 c, __m512 m, __m512 *tmax)
{
    __m512 t = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < TILE_K; j++)
        t = _mm512_max_ps(s[j], t); /* a NaN skipped, as in tile_max_passes */
    t = _mm512_mul_ps(t, c);
    *tmax = t;
    return _mm512_cmp_ps_mask(t, _mm512_add_ps(m, _mm512_set1_ps(LAZY_MAX_BITS)), _CMP_GT_OQ);
}

/* One 32-row × 8-key tile: scores, softmax update, P·V. `fast`: every pair counts.
 * `v_bad`: the tile's packed V holds an inf or NaN. A tile whose pairs all count leaves its
 * P·V pending, to run with the next such tile's. */
static inline void key_tile(const run_ctx *x, const tile_ctx *tc, const uint32_t *kt,
                            const uint32_t *vt, bool v_bad, int64_t j0, int nk, bool fast,
                            __m512 m[NQV], __m512 l[NQV], pending_pv *pend)
{
    __m512 s[NQV][TILE_K];
    __mmask16 vm[NQV][TILE_K];
    qk_tile(tc->qp, kt, x->dp, s);
    /* `raw`: no options and every pair counts, so the scores stay unscaled: the tile max is
     * scaled once (c > 0: max(c·s) = c·max(s), rounding is monotonic) and each weight's
     * exponent is one FMA, c·s - m, in place of a multiply and a subtract. */
    const bool raw = fast && !x->opts.softcap && !x->opts.alibi;
    if (!raw)
        tile_scores(&x->opts, x->c, x->mask, &tc->band, j0, nk, fast, s, vm);
    __m512bh pp[NQV][KPAIRS];
    for (int k = 0; k < NQV; k++) {
        __m512 tmax;
        const __mmask16 need =
            raw ? tile_max_scaled(s[k], x->c, m[k], &tmax) : tile_max_passes(s[k], m[k], &tmax);
        if (need) {
            flush_pending(x, tc, pend);
            m[k] = raise_max_lanes(tc->ot + 16 * k, TILE_Q, x->d, m[k], tmax, need, &l[k]);
        }
        for (int i = 0; i < KPAIRS; i++) {
            const __m512 xe = raw ? _mm512_fmsub_ps(s[k][2 * i], x->c, m[k])
                                  : _mm512_sub_ps(s[k][2 * i], m[k]);
            const __m512 xo = raw ? _mm512_fmsub_ps(s[k][2 * i + 1], x->c, m[k])
                                  : _mm512_sub_ps(s[k][2 * i + 1], m[k]);
            const __m512 pe = exp2_weights(xe, fast ? 0xffff : vm[k][2 * i]);
            const __m512 po = exp2_weights(xo, fast ? 0xffff : vm[k][2 * i + 1]);
            pp[k][i] = round_weights(pe, po, &l[k]);
        }
    }
    if (!fast && v_bad) {
        flush_pending(x, tc, pend);
        pv_tile_by_key(tc->ot, vt, x->d, pp, vm);
    } else if (pend->active) { /* excluded pairs have weight exactly 0 and finite V */
        pv_tile2(tc->ot, pend->vt, vt, x->d, pend->pp, pp);
        pend->active = false;
    } else {
        pend->vt = vt;
        memcpy(pend->pp, pp, sizeof pp);
        pend->active = true;
    }
}

/* ---- packing ------------------------------------------------------------------------------ */

static inline const char *row_of(const run_ctx *x, char tensor, int64_t j)
{
    if (x->t->problem->page_size) /* paged K/V: through the block table */
        return attn_row(x->t, tensor, x->b, x->hkv, j);
    return tensor == 'k' ? x->k + j * x->k_seq : x->v + j * x->v_seq;
}

/* The packed K/V tiles of a group: tile t holds keys base + 8t .. base + 8t + 7 (up to end).
 * Packed once (`done` non-NULL: every key of the group fits): a tile is packed the first time a
 * block of query rows needs it and reused by the later blocks; else base moves to each key
 * block and its tiles are packed again for each block of query rows. */
typedef struct packed_kv {
    uint32_t *kp, *vp;
    bool *bad;  /* the tile's V holds an inf or NaN */
    bool *done; /* the tile is packed (NULL: per block) */
    int64_t base, end;
} packed_kv;

/* Packs the tiles of keys [k0, k1) that are not packed yet (k0 - base a multiple of TILE_K).
 * A tile packed once holds its keys up to the group's end, past k1: a later block of rows whose
 * limit is further on (causal) finds it whole; keys past a row's limit are excluded as always. */
static void pack_keys(const run_ctx *x, packed_kv *pk, int64_t k0, int64_t k1)
{
    if (!pk->done)
        pk->base = pk->end = k0;
    for (int64_t j0 = k0; j0 < k1; j0 += TILE_K) {
        const int64_t tile = (j0 - pk->base) / TILE_K;
        if (pk->done && pk->done[tile])
            continue;
        const int64_t end = pk->done ? pk->end : k1;
        const int nk = end - j0 < TILE_K ? (int)(end - j0) : TILE_K;
        const char *krows[TILE_K], *vrows[TILE_K];
        for (int j = 0; j < TILE_K; j++) {
            krows[j] = j < nk ? row_of(x, 'k', j0 + j) : NULL;
            vrows[j] = j < nk ? row_of(x, 'v', j0 + j) : NULL;
        }
        pk->bad[tile] = pack_kv_tile(krows, vrows, x->dt, x->d, pk->kp + tile * x->dp * TILE_K,
                                     pk->vp + tile * KPAIRS * x->d);
        if (pk->done)
            pk->done[tile] = true;
    }
}

/* ---- prefill: rows of a block ------------------------------------------------------------- */

/* Packs QP, key limits and mask offsets of `tiles` tiles (padding lanes: zeros, limit 0).
 * Returns the largest key limit. */
static int64_t setup_rows(const block_rows *br, const run_ctx *x, int64_t tiles, uint32_t *qp,
                          int64_t *lim, int64_t *first, float *slope, float *pos, int64_t *moff)
{
    const int64_t d = x->d, dp = x->dp, es = x->dt == ATTN_F32 ? 4 : 2;
    const __m512i idx32 = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32(TILE_Q));
    for (int64_t r = 0; r < tiles * TILE_Q; r++) {
        uint32_t *col = qp + (r / TILE_Q) * TILE_Q * dp + r % TILE_Q;
        if (r >= br->n) {
            for (int64_t q = 0; q < dp; q++)
                col[q * TILE_Q] = 0;
            continue;
        }
        const char *q = attn_row(br->t, 'q', br->gr.b, row_head(br, r), row_index(br, r));
        for (int64_t c0 = 0; c0 < d; c0 += 32)
            _mm512_mask_i32scatter_epi32(col + (c0 / 2) * TILE_Q, tail_mask16(dp - c0 / 2), idx32,
                                         load_bf16x32(q + c0 * es, d - c0, x->dt), 4);
    }
    if (x->opts.alibi)
        block_alibi(br, tiles * TILE_Q, slope, pos);
    return block_limits(br, tiles * TILE_Q, lim, first, moff);
}

/* Keys [j_begin, j_end) of the packed block starting at k0, for one tile; j_begin - k0 is a
 * multiple of TILE_K (packed tiles). */
static void sweep_tile(const run_ctx *x, const tile_ctx *tc, const uint32_t *kp,
                       const uint32_t *vp, const bool *bad, int64_t k0, int64_t j_begin,
                       int64_t j_end)
{
    __m512 m[NQV], l[NQV];
    for (int k = 0; k < NQV; k++) {
        m[k] = _mm512_load_ps(tc->m + 16 * k);
        l[k] = _mm512_load_ps(tc->l + 16 * k);
    }
    pending_pv pend = {.active = false};
    for (int64_t j0 = j_begin, tile = (j_begin - k0) / TILE_K; j0 < j_end; j0 += TILE_K, tile++) {
        const int nk = j_end - j0 < TILE_K ? (int)(j_end - j0) : TILE_K;
        const bool fast = !x->mask && nk == TILE_K && j0 + TILE_K <= tc->lim_min &&
                          j0 >= tc->first_max;
        key_tile(x, tc, kp + tile * x->dp * TILE_K, vp + tile * KPAIRS * x->d, bad[tile], j0,
                 nk, fast, m, l, &pend);
    }
    flush_pending(x, tc, &pend);
    for (int k = 0; k < NQV; k++) {
        _mm512_store_ps(tc->m + 16 * k, m[k]);
        _mm512_store_ps(tc->l + 16 * k, l[k]);
    }
}

static void prefill_group(const run_ctx *x, const ws_layout *w, const attn_group_rows *gr,
                          const key_range *kr)
{
    const attn_task *t = x->t;
    const int64_t bq = t->params[P_BQ], bk = block_keys(t->problem, t->params), d = x->d;
    const int64_t dp = x->dp;
    char *ws = t->workspace;
    uint32_t *qp = (uint32_t *)(ws + w->qp);
    packed_kv pk = {.kp = (uint32_t *)(ws + w->kp), .vp = (uint32_t *)(ws + w->vp),
                    .bad = (bool *)(ws + w->vbad), .base = kr->begin, .end = kr->end};
    if (w->pack_once && kr->end - kr->begin <= w->packed_keys) {
        pk.done = (bool *)(ws + w->done);
        memset(pk.done, 0, (size_t)(w->packed_keys / TILE_K));
    }
    float *ot = (float *)(ws + w->ot);
    const row_arrays ra = row_arrays_of(ws, &w->rows);
    float *m = ra.m, *l = ra.l, *slope = ra.slope, *pos = ra.pos;
    int64_t *lim = ra.lim, *moff = ra.moff, *first = ra.first;

    for (int64_t r0 = 0; r0 < gr->count; r0 += bq) {
        const block_rows br = block_of(t, kr, gr, r0, bq);
        const int64_t tiles = (br.n + TILE_Q - 1) / TILE_Q;
        int64_t lim_max = setup_rows(&br, x, tiles, qp, lim, first, slope, pos, moff);
        lim_max = lim_max < kr->end ? lim_max : kr->end;
        reset_rows(ot, tiles * TILE_Q * d, m, l, tiles * TILE_Q);
        /* Key blocks before every row's window are skipped whole (blocks start at a multiple
         * of TILE_K from kr->begin, the packed tiles' grid). */
        int64_t first_min, first_max;
        first_range(first, lim, tiles * TILE_Q, &first_min, &first_max);
        const int64_t k_start = first_min > kr->begin && first_min < lim_max
                                    ? kr->begin + (first_min - kr->begin) / TILE_K * TILE_K
                                    : kr->begin;
        for (int64_t k0 = k_start; k0 < lim_max; k0 += bk) {
            const int64_t k1 = k0 + bk < lim_max ? k0 + bk : lim_max;
            pack_keys(x, &pk, k0, k1);
            const int64_t t0 = (k0 - pk.base) / TILE_K; /* the block's first tile */
            const uint32_t *kp = pk.kp + t0 * dp * TILE_K, *vp = pk.vp + t0 * KPAIRS * d;
            const bool *bad = pk.bad + t0;
            for (int64_t tile = 0; tile < tiles; tile++) {
                const int64_t real = br.n - tile * TILE_Q < TILE_Q ? br.n - tile * TILE_Q : TILE_Q;
                tile_ctx tc = {.qp = qp + tile * TILE_Q * dp, .ot = ot + tile * TILE_Q * d,
                               .m = m + tile * TILE_Q, .l = l + tile * TILE_Q,
                               .band = tile_band_at(&ra, tile * TILE_Q)};
                int64_t tile_max;
                limit_range(tc.band.lim, real, &tc.lim_min, &tile_max);
                first_range(tc.band.first, tc.band.lim, real, &tc.first_min, &tc.first_max);
                const int64_t end = tile_max < k1 ? tile_max : k1;
                const int64_t begin = tc.first_min > k0 && tc.first_min < end
                                          ? k0 + (tc.first_min - k0) / TILE_K * TILE_K
                                          : k0;
                if (end > begin)
                    sweep_tile(x, &tc, kp, vp, bad, k0, begin, end);
            }
        }
        for (int64_t r = 0; r < br.n; r++)
            finish_row(&br, r, ot + (r / TILE_Q) * TILE_Q * d + r % TILE_Q, TILE_Q, l[r], m[r]);
    }
}

/* ---- decode: vectors along head_dim -------------------------------------------------------- */

/* 32 elements from c of a K or V row (lanes outside m zero, not read) as bf16: bf16 rows as
 * stored; float32 ones (f32: the one-row path reads them in place, the pointer addressing
 * floats) rounded to nearest even. avx512_common.h's stream loads: 256-bit halves, plain for a
 * whole chunk and, float32, for each whole 16 of a tail chunk (D1 f32 at head_dim 80, Zen 5,
 * alternated: 0.60 -> 0.85 of a plain read over the tail's two masked 512-bit loads). */
static inline __attribute__((always_inline)) __m512i load_row32(const uint16_t *row, int64_t c,
                                                                __mmask32 m, bool f32)
{
    if (!f32)
        return load_stream_epi16(row + c, m);
    const float *f = (const float *)(const void *)row + c;
    if (m == 0xffffffffu) /* one test for both halves: theirs fold away */
        return to_bf16x32(load_stream_ps(f, 0xffff), load_stream_ps(f + 16, 0xffff));
    return to_bf16x32(load_stream_ps(f, (__mmask16)m),
                      load_stream_ps(f + 16, (__mmask16)(m >> 16)));
}

/* Software prefetch into L2 of the lines of 32 elements from c of a row (two for float32). */
static inline __attribute__((always_inline)) void prefetch_row32(const void *row, int64_t c,
                                                                 bool f32)
{
    _mm_prefetch((const char *)row + (f32 ? 4 : 2) * c, _MM_HINT_T1);
    if (f32)
        _mm_prefetch((const char *)row + 4 * c + 64, _MM_HINT_T1);
}

/* One 32-element chunk c of dots16's keys j .. j + ks - 1 (lanes tm of it) against the R rows. */
static inline __attribute__((always_inline)) void
dots_chunk(__m512 acc[DEC_R][2], const uint16_t *const q[DEC_R], int R, int ks,
           const uint16_t *const kr[2], const void *const kp[2], int64_t c, __mmask32 tm, bool pf,
           bool f32)
{
    __m512bh k[2];
    for (int u = 0; u < ks; u++) {
        k[u] = (__m512bh)load_row32(kr[u], c, tm, f32);
        if (pf) /* one line per load */
            prefetch_row32(kp[u], c, f32);
    }
    for (int r = 0; r < R; r++) {
        const __m512bh qv = (__m512bh)_mm512_load_si512(q[r] + c);
        for (int u = 0; u < ks; u++)
            acc[r][u] = _mm512_dpbf16_ps(acc[r][u], qv, k[u]);
    }
}

/* Dot products of R bf16 rows q[r] (zero-padded to a multiple of 32) with 16 bf16 key rows:
 * out[r] lane j = q_r · k_j. Keys are read one after another, each row front to back, through
 * one load instruction (the key loop is not unrolled): the hardware prefetchers follow it, where
 * 16 rows read column by column left them behind. Each K load serves the R rows of the tile (the
 * query heads of a GQA group, or the draft tokens of one head), so K is read from memory and
 * from L1 once per tile, not per row. The per-key vectors go through a stack array to one
 * transpose-add tree per row. */
static inline __attribute__((always_inline)) void dots16(const uint16_t *const q[DEC_R], int R,
                                                         const uint16_t *const kr[DEC_K],
                                                         const void *const kp[DEC_K],
                                                         int64_t d, bool pf, bool f32,
                                                         __m512 out[DEC_R])
{
    __m512 part[DEC_R][DEC_K];
    /* A tile of several rows scores two keys side by side: each Q load serves both, and each
     * row has two independent VDPBF16PS chains. Whole chunks take no mask (a tail chunk after
     * them does), so the loop holds no mask arithmetic. */
    const int ks = R > 1 ? 2 : 1;
    const __mmask32 tail = tail_mask32(d % 32);
    if (R > 1 && d <= 32 * DEC_C) { /* Q held in registers: one load per K chunk, not R + 1 */
        __m512bh qv[DEC_R][DEC_C];
        for (int r = 0; r < R; r++)
            for (int v = 0; v < DEC_C; v++)
                qv[r][v] = (__m512bh)_mm512_load_si512(q[r] + (32 * v < d ? 32 * v : 0));
#pragma GCC unroll 1
        for (int j = 0; j < DEC_K; j += 2) {
            __m512 acc[DEC_R][2];
            for (int r = 0; r < R; r++)
                acc[r][0] = acc[r][1] = _mm512_setzero_ps();
            for (int v = 0; v < DEC_C; v++) {
                if (32 * v >= d)
                    break;
                const __mmask32 tm = 32 * v + 32 <= d ? 0xffffffffu : tail;
                for (int u = 0; u < 2; u++) {
                    const __m512bh k = (__m512bh)load_stream_epi16(kr[j + u] + 32 * v, tm);
                    if (pf)
                        _mm_prefetch((const char *)kp[j + u] + 64 * v, _MM_HINT_T1);
                    for (int r = 0; r < R; r++)
                        acc[r][u] = _mm512_dpbf16_ps(acc[r][u], qv[r][v], k);
                }
            }
            for (int r = 0; r < R; r++)
                for (int u = 0; u < 2; u++)
                    part[r][j + u] = acc[r][u];
        }
        for (int r = 0; r < R; r++)
            out[r] = sum16(part[r]);
        return;
    }
#pragma GCC unroll 1
    for (int j = 0; j < DEC_K; j += ks) {
        __m512 acc[DEC_R][2];
        for (int r = 0; r < R; r++)
            for (int u = 0; u < ks; u++)
                acc[r][u] = _mm512_setzero_ps();
        int64_t c = 0;
        for (; c + 32 <= d; c += 32)
            dots_chunk(acc, q, R, ks, kr + j, kp + j, c, 0xffffffffu, pf, f32);
        if (c < d)
            dots_chunk(acc, q, R, ks, kr + j, kp + j, c, tail, pf, f32);
        for (int r = 0; r < R; r++)
            for (int u = 0; u < ks; u++)
                part[r][j + u] = acc[r][u];
    }
    for (int r = 0; r < R; r++)
        out[r] = sum16(part[r]);
}

/* o_r = o_r·corr_r + Σ_{j in valid} p_rj·V[j] for R rows, with o split by parity: chunk v of 32
 * head-dim elements holds their 16 even elements, then their 16 odd ones. V is read straight
 * from its rows, 32 bf16 per load, and widened exactly in place once for the R rows (even
 * elements: the 32-bit lane shifted left by 16; odd ones: the lane with its low half cleared);
 * p_rj is the bf16-rounded weight, so each product is exact and this is the VDPBF16PS
 * arithmetic (float32 accumulation) on float32 FMAs, which run twice as fast as VDPBF16PS here;
 * excluded keys are skipped outright. */
static inline __attribute__((always_inline)) void
decode_pv_keys(__m512 acc[DEC_ACC], int R, const __mmask32 tm[DEC_C], int chunks,
               const uint16_t *const vr[DEC_K], const void *const vp[DEC_K], int64_t c0,
               const float (*pw)[DEC_K], __mmask16 valid, bool pf, bool f32)
{
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    for (unsigned bits = valid; bits; bits &= bits - 1) {
        const int j = __builtin_ctz(bits);
        __m512 pj[DEC_R];
        for (int r = 0; r < R; r++)
            pj[r] = _mm512_set1_ps(pw[r][j]);
        for (int v = 0; v < chunks; v++) {
            const __m512i x = load_row32(vr[j], c0 + 32 * v, tm[v], f32);
            if (pf)
                prefetch_row32(vp[j], c0 + 32 * v, f32);
            const __m512 even = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
            const __m512 odd = _mm512_castsi512_ps(_mm512_and_si512(x, hi));
            for (int r = 0; r < R; r++) {
                __m512 *a = acc + 2 * (r * chunks + v);
                a[0] = _mm512_fmadd_ps(pj[r], even, a[0]);
                a[1] = _mm512_fmadd_ps(pj[r], odd, a[1]);
            }
        }
    }
}

/* decode_pv_keys for a tile of R >= 2 rows, on VDPBF16PS: keys go in pairs (2i, 2i+1), and one
 * VDPBF16PS per row, chunk and half adds p_r,2i·V[2i][e] + p_r,2i+1·V[2i+1][e] for 16 elements
 * e, half the instructions of the float32 FMAs (which the one-row path keeps: memory-bound, it
 * measured faster on them). The pair vectors are the 16-bit interleaves of the two V rows
 * (vpunpcklwd / vpunpckhwd, one shuffle each): per 128-bit block b of a 32-element chunk, the
 * low vector holds elements 8b .. 8b + 3 of both rows, the high one 8b + 4 .. 8b + 7, so the
 * accumulators of these rows are in that order (decode_unsplit undoes it). An excluded key of a
 * pair is loaded as zeros (weight 0 too), so its NaN stays out. */
static inline __attribute__((always_inline)) void
decode_pv_pairs(__m512 acc[DEC_ACC], int R, const __mmask32 tm[DEC_C], int chunks,
                const uint16_t *const vr[DEC_K], const void *const vp[DEC_K], int64_t c0,
                const uint32_t (*pp)[DEC_K / 2], __mmask16 valid, bool pf)
{
    /* A block of 16 counted keys (the common case) goes without per-pair tests. */
    const bool full = valid == 0xffff;
#pragma GCC unroll 8
    for (int i = 0; i < DEC_K / 2; i++) {
        const unsigned two = full ? 3u : (valid >> 2 * i) & 3u;
        if (!two)
            continue;
        const __mmask32 z0 = two & 1u ? 0xffffffffu : 0, z1 = two & 2u ? 0xffffffffu : 0;
        __m512bh pj[DEC_R];
        for (int r = 0; r < R; r++)
            pj[r] = (__m512bh)_mm512_set1_epi32((int)pp[r][i]);
        for (int v = 0; v < chunks; v++) {
            const __m512i x0 = load_stream_epi16(vr[2 * i] + c0 + 32 * v, tm[v] & z0);
            const __m512i x1 = load_stream_epi16(vr[2 * i + 1] + c0 + 32 * v, tm[v] & z1);
            if (pf) {
                _mm_prefetch((const char *)vp[2 * i] + 2 * (c0 + 32 * v), _MM_HINT_T1);
                _mm_prefetch((const char *)vp[2 * i + 1] + 2 * (c0 + 32 * v), _MM_HINT_T1);
            }
            const __m512bh lo = (__m512bh)_mm512_unpacklo_epi16(x0, x1);
            const __m512bh hi = (__m512bh)_mm512_unpackhi_epi16(x0, x1);
            for (int r = 0; r < R; r++) {
                __m512 *a = acc + 2 * (r * chunks + v);
                a[0] = _mm512_dpbf16_ps(a[0], pj[r], lo);
                a[1] = _mm512_dpbf16_ps(a[1], pj[r], hi);
            }
        }
    }
}

/* Chunks per pass over V (R rows × chunks × 2 halves accumulators): one row takes d <= 128 in
 * one pass (16), a tile of 3 or 4 rows passes of 32 elements, 2 rows of 64 (8; inlined here, 16
 * measured slower: GCC kept them on the stack); the later passes read the block's V from L1.
 * A block that every row counts in full takes decode_pv_full instead. pairs: the R >= 2 layout
 * (decode_pv_pairs), else the one-row parity layout (decode_pv_keys); a row keeps one layout
 * for all its key blocks. */
static inline __attribute__((always_inline)) void decode_pv(float *const o[DEC_R], int R,
                                                            bool pairs,
                                                            const uint16_t *const vr[DEC_K],
                                                            const void *const vp[DEC_K],
                                                            const float (*pw)[DEC_K],
                                                            const uint32_t (*pp)[DEC_K / 2],
                                                            __mmask16 valid, int64_t d,
                                                            const __m512 corr[DEC_R], bool pf,
                                                            bool f32)
{
    const int cpass = !pairs || R == 1 ? DEC_C : R == 2 ? DEC_C / 2 : DEC_C / 4;
    for (int64_t c0 = 0; c0 < d; c0 += 32 * cpass) {
        const int nc = (int)((d - c0 + 31) / 32 < cpass ? (d - c0 + 31) / 32 : cpass);
        __m512 acc[DEC_ACC]; /* row r, chunk v, half h at 2·(r·cpass + v) + h */
        __mmask32 tm[DEC_C];
        for (int v = 0; v < cpass; v++) {
            tm[v] = tail_mask32(d - c0 - 32 * v);
            for (int r = 0; r < R; r++)
                for (int h = 0; h < 2; h++)
                    acc[2 * (r * cpass + v) + h] =
                        v < nc ? _mm512_mul_ps(_mm512_load_ps(o[r] + c0 + 32 * v + 16 * h), corr[r])
                               : _mm512_setzero_ps();
        }
        /* Every pass takes cpass chunks, a constant, so the accumulators stay in registers; a
         * chunk past d (tm 0) loads zeros and is not stored. */
        if (pairs && valid == 0xffff) /* a constant: the compiler drops the per-pair tests */
            decode_pv_pairs(acc, R, tm, cpass, vr, vp, c0, pp, 0xffff, pf);
        else if (pairs)
            decode_pv_pairs(acc, R, tm, cpass, vr, vp, c0, pp, valid, pf);
        else
            decode_pv_keys(acc, R, tm, cpass, vr, vp, c0, pw, valid, pf, f32);
        for (int r = 0; r < R; r++) /* constant bounds: acc is indexed by constants only */
            for (int v = 0; v < cpass; v++)
                for (int h = 0; h < 2 && v < nc; h++)
                    _mm512_store_ps(o[r] + c0 + 32 * v + 16 * h, acc[2 * (r * cpass + v) + h]);
    }
}

/* decode_pv of a tile of R >= 2 rows on a block of 16 counted keys (the common case), in
 * passes of up to DEC_ACC accumulators (R = 3, 4: 64 head-dim elements; R = 2: 128), so each
 * weight pair is broadcast once per pass (half the broadcasts of 8-accumulator passes). Not
 * inlined, one function per R, and the key-pair loop not unrolled: inlined into decode_group, or
 * unrolled, GCC kept accumulators or hoisted broadcasts on the stack. */
static inline __attribute__((always_inline)) void
decode_pv_full(float *const o[DEC_R], int R, const uint16_t *const vr[DEC_K],
               const void *const vp[DEC_K], const uint32_t (*pp)[DEC_K / 2], int64_t d,
               const __m512 corr[DEC_R], bool pf)
{
    enum { CMAX = DEC_ACC / 4 }; /* chunks per pass for 2 rows */
    const int cp = DEC_ACC / (2 * R) < CMAX ? DEC_ACC / (2 * R) : CMAX;
    for (int64_t c0 = 0; c0 < d; c0 += 32 * cp) {
        __m512 acc[DEC_R][CMAX][2];
        __mmask32 tm[CMAX];
        for (int v = 0; v < cp; v++) {
            tm[v] = tail_mask32(d - c0 - 32 * v);
            for (int r = 0; r < R; r++)
                for (int h = 0; h < 2; h++)
                    acc[r][v][h] =
                        c0 + 32 * v < d
                            ? _mm512_mul_ps(_mm512_load_ps(o[r] + c0 + 32 * v + 16 * h), corr[r])
                            : _mm512_setzero_ps();
        }
#pragma GCC unroll 1
        for (int i = 0; i < DEC_K / 2; i++) {
            __m512bh pj[DEC_R];
            for (int r = 0; r < R; r++)
                pj[r] = (__m512bh)_mm512_set1_epi32((int)pp[r][i]);
            for (int v = 0; v < cp; v++) {
                const int64_t c = c0 + 32 * v;
                const __m512i x0 = load_stream_epi16(vr[2 * i] + c, tm[v]);
                const __m512i x1 = load_stream_epi16(vr[2 * i + 1] + c, tm[v]);
                if (pf) {
                    _mm_prefetch((const char *)vp[2 * i] + 2 * c, _MM_HINT_T1);
                    _mm_prefetch((const char *)vp[2 * i + 1] + 2 * c, _MM_HINT_T1);
                }
                const __m512bh lo = (__m512bh)_mm512_unpacklo_epi16(x0, x1);
                const __m512bh hi = (__m512bh)_mm512_unpackhi_epi16(x0, x1);
                for (int r = 0; r < R; r++) {
                    acc[r][v][0] = _mm512_dpbf16_ps(acc[r][v][0], pj[r], lo);
                    acc[r][v][1] = _mm512_dpbf16_ps(acc[r][v][1], pj[r], hi);
                }
            }
        }
        for (int v = 0; v < cp; v++)
            for (int r = 0; r < R; r++)
                for (int h = 0; h < 2; h++)
                    if (c0 + 32 * v < d)
                        _mm512_store_ps(o[r] + c0 + 32 * v + 16 * h, acc[r][v][h]);
    }
}

typedef void decode_pv_full_fn(float *const o[DEC_R], const uint16_t *const vr[DEC_K],
                               const void *const vp[DEC_K], const uint32_t (*pp)[DEC_K / 2],
                               int64_t d, const __m512 corr[DEC_R], bool pf);
#define DECODE_PV_FULL(R)                                                                      \
    static __attribute__((noinline)) void decode_pv_full##R(                                   \
        float *const o[DEC_R], const uint16_t *const vr[DEC_K], const void *const vp[DEC_K],   \
        const uint32_t (*pp)[DEC_K / 2], int64_t d, const __m512 corr[DEC_R], bool pf)         \
    {                                                                                          \
        decode_pv_full(o, R, vr, vp, pp, d, corr, pf);                                         \
    }
/* The same with head_dim 128 a constant: every mask a constant, every load a plain one. */
#define DECODE_PV_FULL_128(R)                                                                  \
    static __attribute__((noinline)) void decode_pv_full##R##_128(                             \
        float *const o[DEC_R], const uint16_t *const vr[DEC_K], const void *const vp[DEC_K],   \
        const uint32_t (*pp)[DEC_K / 2], int64_t d, const __m512 corr[DEC_R], bool pf)         \
    {                                                                                          \
        (void)d;                                                                               \
        decode_pv_full(o, R, vr, vp, pp, 128, corr, pf);                                       \
    }
DECODE_PV_FULL(2)
DECODE_PV_FULL(3)
DECODE_PV_FULL(4)
DECODE_PV_FULL_128(2)
DECODE_PV_FULL_128(3)
DECODE_PV_FULL_128(4)
#undef DECODE_PV_FULL
#undef DECODE_PV_FULL_128
static decode_pv_full_fn *const decode_pv_full_of[2][DEC_R + 1] = {
    {NULL, NULL, decode_pv_full2, decode_pv_full3, decode_pv_full4},
    {NULL, NULL, decode_pv_full2_128, decode_pv_full3_128, decode_pv_full4_128}};

/* A row's accumulator back in head-dim order (t holds d rounded up to 32): from the one-row
 * parity layout (16 even elements of a chunk, then its 16 odd ones) or, pairs, from
 * decode_pv_pairs' (per 128-bit block b: elements 8b .. 8b + 3 in the low vector, 8b + 4 ..
 * 8b + 7 in the high one). */
static void decode_unsplit(const float *o, float *t, int64_t d, bool pairs)
{
    static const int32_t parity[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
    static const int32_t block[16] = {0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23};
    const __m512i ilo = _mm512_loadu_si512(pairs ? block : parity);
    const __m512i ihi = _mm512_add_epi32(ilo, _mm512_set1_epi32(8));
    for (int64_t c = 0; c < d; c += 32) {
        const __m512 e = _mm512_load_ps(o + c), od = _mm512_load_ps(o + c + 16);
        _mm512_store_ps(t + c, _mm512_permutex2var_ps(e, ilo, od));
        _mm512_store_ps(t + c + 16, _mm512_permutex2var_ps(e, ihi, od));
    }
}

/* State of the decode rows of one group: accumulators, sums, maxima, limits, Q rows. */
typedef struct dec_rows {
    const run_ctx *x;
    const block_rows *br;
    const uint16_t *dq;      /* bf16 Q rows, d32 apart */
    float *o, *lv, *mrow;
    const int64_t *lim, *first;
    const float *slope, *pos; /* ALiBi of each row (block_alibi) */
    int64_t d32;
    bool pf;                  /* tiles of several rows prefetch K and V (bf16 inputs) */
    bool pf1;                 /* one-row tiles too (bf16 inputs, paged) */
} dec_rows;

/* Rows [r0, r0 + R) on the key block at j0 (kr, vr: its K and V rows, nk of them real; kp,
 * vp: the rows DEC_PF_KEYS keys later, which tiles of several rows prefetch when y->pf). */
static inline __attribute__((always_inline)) void dec_tile(const dec_rows *y, int64_t r0, int R,
                                                           int64_t j0, int nk,
                                                           const uint16_t *const kr[DEC_K],
                                                           const uint16_t *const vr[DEC_K],
                                                           const void *const kp[DEC_K],
                                                           const void *const vp[DEC_K],
                                                           int64_t d, bool f32)
{
    const run_ctx *x = y->x;
    const uint16_t *q[DEC_R];
    float *o[DEC_R];
    __m512 s[DEC_R], corr[DEC_R];
    __mmask16 valid[DEC_R];
    float pw[DEC_R][DEC_K];
    uint32_t pp[DEC_R][DEC_K / 2]; /* the weights as bf16 pairs (2i, 2i+1) */
    for (int r = 0; r < R; r++) {
        q[r] = y->dq + (r0 + r) * y->d32;
        o[r] = y->o + (r0 + r) * y->d32;
    }
    const bool pf = R > 1 ? y->pf : y->pf1;
    dots16(q, R, kr, kp, d, pf, f32, s);
    unsigned any = 0, all = 0xffff;
    for (int r = 0; r < R; r++) {
        const int64_t rr = r0 + r, left = y->lim[rr] - j0, skip = y->first[rr] - j0;
        valid[r] = left > 0 ? tail_mask16(left < nk ? left : nk) : 0;
        if (skip > 0) /* the window's left edge: keys before it drop out */
            valid[r] &= (__mmask16)~tail_mask16(skip);
        corr[r] = _mm512_set1_ps(1.0f);
        __m512 pf = _mm512_mul_ps(s[r], x->c), pr = _mm512_setzero_ps();
        if (valid[r]) {
            pf = row_options_apply(&x->opts, y->slope[rr], y->pos[rr], j0, pf);
            __m512 l = _mm512_load_ps(y->lv + 16 * rr);
            const float *mask = x->mask ? attn_mask_row(x->t->problem, row_index(y->br, rr)) + j0
                                        : NULL;
            valid[r] = decode_weights(&pf, valid[r], mask, &y->mrow[rr], &l, &corr[r]);
            if (valid[r]) {
                const __m256bh rounded = _mm512_cvtneps_pbh(pf);
                pr = _mm512_cvtpbh_ps(rounded);
                _mm512_store_ps(y->lv + 16 * rr, _mm512_add_ps(l, pr));
                if (R > 1) /* the pairs; one row takes the float32 weights */
                    _mm256_storeu_si256((__m256i *)pp[r], (__m256i)rounded);
            }
        }
        if (R == 1)
            _mm512_storeu_ps(pw[r], pr);
        else if (!valid[r]) /* no keys: zero weights (decode_pv_pairs reads them) */
            _mm256_storeu_si256((__m256i *)pp[r], _mm256_setzero_si256());
        any |= valid[r];
        all &= valid[r];
    }
    if (any == all) { /* every row sees the same keys: one pass over V for the tile */
        if (R > 1 && any == 0xffff)
            decode_pv_full_of[d == 128][R](o, vr, vp, pp, d, corr, pf);
        else if (any)
            decode_pv(o, R, R > 1, vr, vp, pw, pp, (__mmask16)any, d, corr, pf, f32);
        return;
    }
    /* Rows that see different keys (causal edge, mask): a NaN in a V row must not reach a
     * row that excludes it through a 0 weight, so each row takes its own keys. */
    for (int r = 0; r < R; r++)
        if (valid[r])
            decode_pv(&o[r], 1, true, vr, vp, &pw[r], &pp[r], valid[r], d, &corr[r], false, false);
}

/* decode_group with head_dim d128 ? 128 (a constant) : x->d. */
static inline __attribute__((always_inline)) void
decode_group_d(const run_ctx *x, const ws_layout *w, const attn_group_rows *gr,
               const key_range *kr, const next_keys *nx, bool d128)
{
    const attn_task *t = x->t;
    const int64_t d = d128 ? 128 : x->d, d32 = round_up(d, 32), n = gr->count;
    const int64_t es = x->dt == ATTN_F32 ? 4 : 2;
    char *ws = t->workspace;
    uint16_t *dq = (uint16_t *)(ws + w->dq), *dk = (uint16_t *)(ws + w->dk);
    uint16_t *dv = (uint16_t *)(ws + w->dv);
    float *o = (float *)(ws + w->dec_o), *lv = (float *)(ws + w->dec_l);
    float *mrow = (float *)(ws + w->dec_m), *tmp = (float *)(ws + w->dec_t);
    const row_arrays ra = row_arrays_of(ws, &w->rows);
    int64_t *lim = (int64_t *)(ws + w->dec_lim), *first = ra.first;
    float *slope = ra.slope, *pos = ra.pos;
    const block_rows br = block_of(t, kr, gr, 0, n);
    int64_t kend = block_limits(&br, n, lim, first, NULL);
    if (x->opts.alibi)
        block_alibi(&br, n, slope, pos);
    int64_t first_min, first_max; /* key blocks before every row's window are skipped */
    first_range(first, lim, n, &first_min, &first_max);
    for (int64_t r = 0; r < n; r++) {
        const char *q = attn_row(t, 'q', gr->b, row_head(&br, r), row_index(&br, r));
        for (int64_t c0 = 0; c0 < d; c0 += 32)
            _mm512_store_si512(dq + r * d32 + c0, load_bf16x32(q + c0 * es, d - c0, x->dt));
        mrow[r] = -INFINITY;
        memset(o + r * d32, 0, (size_t)d32 * sizeof *o);
        _mm512_store_ps(lv + 16 * r, _mm512_setzero_ps());
    }
    kend = kend < kr->end ? kend : kr->end;
    const bool paged = t->problem->page_size != 0;
    /* One row of float32 K/V (D1) reads them in place, each load rounded as it comes, as the
     * bf16 rows are: no round trip through dk, dv (D1 f32 on Zen 5, alternated: in cache 37 -> 28
     * us; from memory 0.61 -> 0.92 of a plain read of the same K/V with the 256-bit loads of
     * load_row32, 0.57 with 512-bit ones). Several rows round once for them all. */
    const bool direct = x->dt == ATTN_F32 && n == 1;
    const dec_rows y = {.x = x, .br = &br, .dq = dq, .o = o, .lv = lv, .mrow = mrow,
                        .lim = lim, .first = first, .slope = slope, .pos = pos, .d32 = d32,
                        .pf = x->dt == ATTN_BF16,
                        .pf1 = paged && (x->dt == ATTN_BF16 || direct)};
    const int64_t next_len = nx->end - nx->begin; /* <= 0: no next group */
    const char *next_k = next_len > 0 ? attn_row(t, 'k', nx->b, nx->hkv, nx->begin) : NULL;
    const char *next_v = next_len > 0 ? attn_row(t, 'v', nx->b, nx->hkv, nx->begin) : NULL;
    for (int64_t j0 = first_min > kr->begin ? first_min : kr->begin; j0 < kend; j0 += DEC_K) {
        const int nk = kend - j0 < DEC_K ? (int)(kend - j0) : DEC_K;
        /* K and V rows: bf16 read in place; float32 rounded once into dk, dv (zero-padded to a
         * multiple of 32) for every row of the group. Keys past nk: any row, never counted. */
        const uint16_t *krow[DEC_K], *vrow[DEC_K];
        const void *ksrc[DEC_K], *vsrc[DEC_K]; /* one page lookup per run of keys */
        const void *kpf[DEC_K], *vpf[DEC_K];   /* the rows DEC_PF_KEYS keys later */
        if (!paged && x->dt == ATTN_BF16) { /* rows one stride apart: no lookups */
            for (int j = 0; j < DEC_K; j++) {
                const int64_t i = j < nk ? j0 + j : j0, a = j0 + DEC_PF_KEYS + j;
                krow[j] = (const uint16_t *)(x->k + i * x->k_seq);
                vrow[j] = (const uint16_t *)(x->v + i * x->v_seq);
                /* past the group's end: the next group's first keys, or this row */
                kpf[j] = a < kend              ? x->k + a * x->k_seq
                         : a - kend < next_len ? next_k + (a - kend) * x->k_seq
                                               : (const void *)krow[j];
                vpf[j] = a < kend              ? x->v + a * x->v_seq
                         : a - kend < next_len ? next_v + (a - kend) * x->v_seq
                                               : (const void *)vrow[j];
            }
        } else {
        attn_kv_rows(x->t, 'k', x->b, x->hkv, j0, nk, DEC_K, ksrc);
        attn_kv_rows(x->t, 'v', x->b, x->hkv, j0, nk, DEC_K, vsrc);
        /* The rows DEC_PF_KEYS keys later, through the page table: prefetched by the tiles
         * (bf16: several rows, or paged one row) or, paged float32, while rounding. Paged,
         * each page starts a stream the hardware prefetchers must find again. */
        if ((y.pf && n > 1) || paged) {
            const int64_t ahead = j0 + DEC_PF_KEYS;
            kv_rows_ahead_next(x->t, 'k', x->b, x->hkv, ahead, kend, nx, DEC_K, ksrc, kpf);
            kv_rows_ahead_next(x->t, 'v', x->b, x->hkv, ahead, kend, nx, DEC_K, vsrc, vpf);
        }
        for (int j = 0; j < DEC_K; j++) {
            const char *kj = ksrc[j], *vj = vsrc[j];
            if (x->dt == ATTN_BF16 || direct) { /* rows read in place */
                krow[j] = (const uint16_t *)kj;
                vrow[j] = (const uint16_t *)vj;
                continue;
            }
            if (j >= nk) {
                krow[j] = dk;
                vrow[j] = dv;
                continue;
            }
            for (int64_t c0 = 0; c0 < d; c0 += 32) {
                if (paged)
                    for (int64_t c = c0; c < c0 + 32 && c < d; c += 16) { /* a line each */
                        _mm_prefetch((const char *)kpf[j] + 4 * c, _MM_HINT_T1);
                        _mm_prefetch((const char *)vpf[j] + 4 * c, _MM_HINT_T1);
                    }
                const __mmask32 tm = tail_mask32(d - c0);
                _mm512_store_si512(dk + j * d32 + c0,
                                   load_row32((const uint16_t *)(const void *)kj, c0, tm, true));
                _mm512_store_si512(dv + j * d32 + c0,
                                   load_row32((const uint16_t *)(const void *)vj, c0, tm, true));
            }
            krow[j] = dk + j * d32;
            vrow[j] = dv + j * d32;
        }
        }
        if (direct) {
            dec_tile(&y, 0, 1, j0, nk, krow, vrow, kpf, vpf, d, true);
            continue;
        }
        int64_t r0 = 0;
        for (; r0 + DEC_R <= n; r0 += DEC_R)
            dec_tile(&y, r0, DEC_R, j0, nk, krow, vrow, kpf, vpf, d, false);
        switch (n - r0) { /* a constant R per call, so the tiles' arrays stay in registers */
        case 3: dec_tile(&y, r0, 3, j0, nk, krow, vrow, kpf, vpf, d, false); break;
        case 2: dec_tile(&y, r0, 2, j0, nk, krow, vrow, kpf, vpf, d, false); break;
        case 1: dec_tile(&y, r0, 1, j0, nk, krow, vrow, kpf, vpf, d, false); break;
        default: break;
        }
    }
    for (int64_t r = 0; r < n; r++) {
        const bool alone = n % DEC_R == 1 && r == n - 1; /* a tile of one row: parity layout */
        decode_unsplit(o + r * d32, tmp, d, !alone);
        finish_row(&br, r, tmp, 1, _mm512_reduce_add_ps(_mm512_load_ps(lv + 16 * r)), mrow[r]);
    }
}

/* Head dim 128 (the common one) gets its own copy, in which every mask is a constant: no branch
 * per K/V load (load_row32) and no mask arithmetic in the loops. Not for one row of bf16
 * (D1 bf16, Zen 5, alternated: 0.74 of a plain read through that copy, 0.87 through the
 * generic one, though faster in cache). */
static void decode_group(const run_ctx *x, const ws_layout *w, const attn_group_rows *gr,
                         const key_range *kr, const next_keys *nx)
{
    if (x->d == 128 && !(x->dt == ATTN_BF16 && gr->count == 1))
        decode_group_d(x, w, gr, kr, nx, true);
    else
        decode_group_d(x, w, gr, kr, nx, false);
}

/* ---- entry ------------------------------------------------------------------------------- */

static attn_status bf16_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                             const attn_partial *part)
{
    const attn_problem *p = t->problem;
    ws_layout w;
    if (!layout_of(p, t->params, &w))
        return ATTN_ERR_OVERFLOW;
    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const attn_group_rows gr = attn_group_rows_of(t, g);
        if (gr.count <= 0)
            continue;
        const key_range kr = key_range_of(t, g, &gr, key_begin, key_end, part);
        const int64_t es = p->dtype == ATTN_F32 ? 4 : 2;
        const run_ctx x = {.t = t, .dt = p->dtype, .b = gr.b, .hkv = gr.hkv, .d = p->head_dim,
                           .dp = (p->head_dim + 1) / 2, .k = attn_row(t, 'k', gr.b, gr.hkv, 0),
                           .v = attn_row(t, 'v', gr.b, gr.hkv, 0), .k_seq = p->k.seq * es,
                           .v_seq = p->v.seq * es, .mask = p->mask,
                           .c = _mm512_set1_ps(t->scale * ATTN_LOG2E),
                           .opts = tile_options_of(p)};
        if (gr.count <= t->params[P_DEC]) {
            const next_keys nx = next_keys_of(t, g, key_begin, key_end);
            decode_group(&x, &w, &gr, &kr, &nx);
        } else
            prefill_group(&x, &w, &gr, &kr);
    }
    return ATTN_OK;
}

const attn_variant attn_variant_avx512_bf16 = {
    .name = "avx512_bf16",
    .description = "AVX512_BF16 VDPBF16PS for Q.K^T and P.V (Q, K, V, P rounded to bf16, "
                   "float32 accumulation and softmax): 32x8 tiles, packed K/V blocks, lazy max; "
                   "decode path",
    .isa = ATTN_ISA_AVX2 | ATTN_ISA_FMA | ATTN_ISA_AVX512F | ATTN_ISA_AVX512BW |
           ATTN_ISA_AVX512VL | ATTN_ISA_AVX512DQ | ATTN_ISA_AVX512BF16,
    .tolerance = 1e-2,
    .dtypes = 1u << ATTN_F32 | 1u << ATTN_BF16,
    .compute_dtype = ATTN_BF16,
    .roofline = ATTN_ROOFLINE_BF16_DOT,
    ATTN_PARAMS(bf16_params, bf16_defaults),
    .vector_bits = 512,
    .params_valid = bf16_valid,
    .workspace_size = bf16_workspace,
    .run_partial = bf16_rows,
    .features = ATTN_FEATURE_ALL,
};
