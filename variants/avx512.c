/* avx512.c — x86 AVX-512 attention: online softmax with register-blocked micro-kernels.
 *
 * Algorithm (mode 0, streaming). The query rows of a task group are flattened over the query
 * heads of the GQA group (attn_group_rows_of), so K and V are read once for the whole group and
 * never copied per query head. A block of bq rows is split into tiles of 32 rows; each tile's Q
 * is packed transposed once, QT[d][32] (two vectors of 16 queries per head-dim element). The
 * key range of the block is walked in blocks of bk keys (outermost, so a K/V block stays in L2
 * while every tile of the block sweeps it), and each tile walks its key block in tiles of 8 keys:
 *
 *   scores    S[8 keys][32 queries] = K·Qᵀ: per head-dim element c, 2 vector loads of QT[c] and 8
 *             broadcasts of K[j][c] straight from the K rows (no K packing), 16 FMAs;
 *   epilogue  on the 16 score registers, one sweep: ·scale·log2(e) (+ mask·log2(e)), causal /
 *             key-length / -inf mask as a select (never an add, so a NaN in a masked key stays
 *             out), tile max, the lazy max test, 2^x with the shared polynomial (exp2_poly.h),
 *             running sum. Vectors run along queries, so max and sum are vertical ops between
 *             registers: no horizontal reduction anywhere in the hot loop;
 *   P·V       Oᵀ[c][32] += Σ_j P[j] · V[j][c]: P stays in the 16 score registers, V[j][c] is
 *             broadcast from the V rows (no V packing), Oᵀ is a per-row accumulator in the
 *             workspace, 4 head-dim elements (8 accumulators) at a time.
 *
 * Lazy max: a row's running max m moves only when a tile's max exceeds m + LAZY_MAX_BITS (in
 * log2 units), so weights are bounded by 2^LAZY_MAX_BITS and the accumulator is rescaled
 * (Oᵀ·2^(m-m'), l·2^(m-m')) a few times per row instead of at every rise. Inputs of 2^x below
 * ATTN_EXP2_MIN give 0: weights under 2^-126 of m, at most 2^-118 of the true max. Each row is
 * normalised once at the end (1/l; l = 0 gives a zero row).
 *
 * Mask-free fast path: a key tile that every row of the tile sees in full (8 keys under every
 * row's key limit, no additive mask) skips the masks. Other tiles (causal diagonal, kv_lens
 * edge, partial tiles, additive mask) select -inf for excluded pairs and use merge-masked FMAs
 * in P·V, so a NaN in an excluded K or V row reaches no row that excludes it. Key tiles past
 * every row's limit (causal upper triangle, padding) are skipped.
 *
 * Mode 1 (full row): a tile of 32 rows against all its keys, scores kept in the workspace
 * (32 × Lk floats, L2-sized for short sequences), one exact max, one exp pass, then P·V with
 * 8 head-dim elements × 32 queries of Oᵀ in registers over all keys. Measured on Sapphire
 * Rapids: within 3% of mode 0 at Lq = Lk = 256, 30% behind at 2048 (the lazy max already makes
 * mode 0's rescaling nearly free), so mode 0 is the default and mode 1 a tunable.
 *
 * Decode path (rows per group <= dec, e.g. Lq = 1, GQA heads × a few query rows): vectors run
 * along head_dim instead, K and V are read straight from their rows (no packing), and the rows
 * go in tiles of DEC_R = 4 (the query heads of a GQA group, or Lq = 4 draft tokens), each K and
 * V vector loaded once for the tile. Per block of 16 keys and tile: the keys' dot products one
 * key after another (each K row front to back, through a key loop that is not unrolled, so one
 * load instruction walks K in address order; a tile of several rows takes DEC_KS keys side by
 * side, so each Q vector is loaded once for them; with head_dim a multiple of 16, two keys per
 * vector, dec_scores_pairs), a transpose-add tree per row to one vector of 16
 * scores, softmax on that vector (one horizontal max per row and block), then
 * o += Σ p_j · V[j] with the tile's accumulators in registers across the block. Rows of a tile
 * that see different keys (causal edge, mask) take V row by row, so a NaN V row never meets
 * a row that excludes it. Measured on Zen 4 (D1, interleaved): the former order, 16 K rows read
 * column by column with software prefetch, ran at half the rate; prefetch on top of the
 * in-order reads only slows them (the hardware prefetchers follow the stream); float32 K/V
 * are loaded in 256-bit halves (load16_stream). Tiles of several rows (GQA, D2; Lq = 4, D4) do
 * R times the FMAs per byte and prefetch K and V DEC_PF_BYTES ahead (dec_scores; float32, each
 * prefetch kept right after its load: prefetch_row_after), as every
 * tile of paged K/V does (through the page table; one row DEC_PF_KEYS keys ahead).
 *
 * run_partial (the harness's key split for decode on several threads): the same three paths
 * over a key range, writing each row's lazy max (natural units), sum and unnormalised row.
 *
 * Half inputs (bf16, f16 Q/K/V; compute stays float32, and widening is exact, so the result is
 * bit for bit the float32 run on the widened inputs). bf16 widens as a 16-bit left shift, f16
 * with F16C (vcvtph2ps). The float32 hot loops are the same code for every dtype:
 *   mode 0    each K/V block (bk keys, or fewer) is widened once into a float32 block in the
 *             workspace, and the tiles' broadcasts read it there: bk·d·2 conversions per
 *             bq·bk·d·4 flops, about 1/bq of the work; Qᵀ is widened while it is packed;
 *   mode 1    the group's keys are widened once (lazily, as far as the tiles reach);
 *   decode    K and V are read in place, widened in the loads (a copy of the path per dtype,
 *             chosen outside the loop), so it moves half the bytes of float32; the Q rows are
 *             widened once into the workspace (float32 ones copied there, zero-padded).
 *
 * Register budget (32 zmm): streaming scores 16 accumulators + 2 Q + 1 broadcast (2 loads and
 * 8 broadcasts per 16 FMAs); P·V 16 P + 8 Oᵀ accumulators + broadcasts (8 chains of 8 FMAs per
 * 4 head-dim elements; 6 or 8 elements spill or lose, measured); full-row P·V 16 accumulators +
 * 2 P + broadcasts; decode dots DEC_R accumulators + 1 K (+ Q from L1), decode P·V up to 16
 * accumulators (DEC_R rows × 4 vectors, or 1-2 rows × 8) + 1 V + weight broadcasts. Mask registers: per-key valid masks live in a small stack array.
 *
 * Layout: head_dim contiguous (the contract); any batch/head/seq strides, [B,H,L,d] or
 * [B,L,H,d]; Q/K/V rows need no alignment. Workspace (64-byte aligned) holds the packed Qᵀ,
 * Oᵀ and per-row m, l, key limits, and for half inputs the widened K/V block (2·min(bk, Lk)·d
 * floats; mode 1: 2·Lk·d) and decode Q rows (dec·d, again with each run of 8 twice: 2·dec·d,
 * and their pointers); it depends on bq, bk, d and dec, never on Lk beyond min(bk, Lk) in
 * mode 0. */
/* Over 900 lines, on purpose: the streaming, full-row and decode paths are one kernel built
 * with AVX-512 flags, sharing its tile helpers inline; what it shares with avx512_bf16.c and
 * amx_bf16.c is in avx512_common.h and tile_rows.h already. */
#include "avx512_common.h"
#include "kvq.h"
#include "tile_rows.h"

#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { P_MODE, P_BQ, P_BK, P_DEC };

enum {
    TILE_Q = 32,      /* query rows per micro-tile: two vectors of 16 */
    TILE_K = 8,       /* keys per micro-tile */
    NQV = TILE_Q / 16, /* query vectors per micro-tile */
    PV_C = 4,         /* head-dim elements per step of the streaming P·V kernel */
    FULL_C = 8,       /* head-dim elements per pass of the full-row P·V kernel */
    DEC_K = 16,       /* keys per block of the decode path */
    DEC_V = 8,        /* head-dim vectors of a decode row kept in registers (128 floats) */
    DEC_R = 4,        /* decode rows sharing each load of a K or V vector */
    DEC_KS = 4,       /* keys a float32 decode tile scores side by side, sharing Q loads */
    DEC_PF_BYTES = 32768, /* how far ahead along K and V a decode tile of several rows prefetches
                           * (64 float32 keys of d = 128, 128 half ones) */
    DEC_PF_KEYS = 64,     /* keys ahead that one paged decode row prefetches */
};
_Static_assert((int)NQV == (int)TILE_OPT_V && (int)TILE_K == (int)TILE_OPT_K,
               "tile_options_apply's tile");

static const attn_param_info avx512_params[] = {
    [P_MODE] = {"mode", "0 = streaming online softmax, 1 = full-row softmax (scores in workspace)",
                0, 1, 1},
    [P_BQ] = {"bq", "query rows per block sharing each K/V block (mode 0)", TILE_Q, 4096, TILE_Q},
    [P_BK] = {"bk", "keys per K/V block (mode 0)", TILE_K, 1 << 20, TILE_K},
    [P_DEC] = TILE_DEC_PARAM,
};

/* ---- workspace ---------------------------------------------------------------------------- */

/* Bytes of each part, rounded to 64 so every part stays aligned. */
typedef struct ws_layout {
    size_t qt, ot, scores, masks, full, dec_o, dec_l, dec_m, dec_lim;
    row_parts rows;             /* m, l, limits, mask offsets, window, ALiBi (tile_rows.h) */
    size_t kv, dec_q, dec_qp, total; /* widened K/V keys (half inputs); decode Q rows (padded)
                                      * and their pointers */
    size_t kv_keys;          /* keys the widened K (then V) block holds */
} ws_layout;

/* Rows of one streaming block: bq, or 32 in full-row mode. */
static bool layout_of(const attn_problem *p, const int32_t *v, ws_layout *w)
{
    memset(w, 0, sizeof *w);
    const size_t d = (size_t)p->head_dim;
    const size_t rows = v[P_MODE] == 1 ? TILE_Q : (size_t)v[P_BQ];
    const size_t keys = v[P_MODE] == 1 ? (size_t)round_up(p->len_kv, TILE_K) : 0;
    const size_t dec = (size_t)v[P_DEC], dpad = (size_t)round_up(p->head_dim, 16);
    /* Half inputs: K and V widened to float32 per key block (mode 0: bk keys, or fewer when Lk
     * is shorter; mode 1: every key of the group), and the decode rows' Q. Paged K/V: the same
     * block, copied a page run at a time (float32), so the tiles read one stride. */
    const bool half = p->dtype != ATTN_F32 || p->page_size;
    const size_t lk = (size_t)round_up(p->len_kv, TILE_K);
    w->kv_keys = !half ? 0 : v[P_MODE] == 1 ? lk : (size_t)v[P_BK] < lk ? (size_t)v[P_BK] : lk;
    size_t rd, kq, kvd, dq;
    if (__builtin_mul_overflow(rows, d, &rd) || __builtin_mul_overflow(keys, (size_t)TILE_Q, &kq) ||
        __builtin_mul_overflow(w->kv_keys, 2 * d, &kvd) ||
        __builtin_mul_overflow(dec, 3 * dpad, &dq))
        return false;
    return add_part(&w->qt, &w->total, rd, sizeof(float)) &&
           add_part(&w->ot, &w->total, v[P_MODE] == 1 ? 0 : rd, sizeof(float)) &&
           add_row_parts(&w->rows, &w->total, rows, dec) &&
           add_part(&w->scores, &w->total, kq, sizeof(float)) &&
           add_part(&w->masks, &w->total, keys * NQV, sizeof(__mmask16)) &&
           add_part(&w->full, &w->total, keys / TILE_K, sizeof(bool)) &&
           add_part(&w->dec_o, &w->total, dec * dpad, sizeof(float)) &&
           add_part(&w->dec_l, &w->total, dec * 16, sizeof(float)) &&
           add_part(&w->dec_m, &w->total, dec, sizeof(float)) &&
           add_part(&w->dec_lim, &w->total, dec, sizeof(int64_t)) &&
           add_part(&w->kv, &w->total, kvd, sizeof(float)) &&
           add_part(&w->dec_q, &w->total, dq, sizeof(float)) &&
           add_part(&w->dec_qp, &w->total, dec, sizeof(const float *));
}

static size_t avx512_workspace(const attn_problem *p, const int32_t *v)
{
    if (attn_kv_quantized(p)) /* quantized K/V: avx512_kvq.c */
        return attn_kvq_workspace(p);
    ws_layout w;
    return layout_of(p, v, &w) ? w.total : SIZE_MAX;
}

/* Defaults (AVX-512 family). K/V block: a quarter of L2 for bk keys of K and V, so every
 * tile of the query block rereads it from L2; the query block's packed Qᵀ and Oᵀ take another
 * quarter at most. Measured: bq from 128 to 1024 within noise of each other, all ahead of a
 * single 32-row tile (K/V streamed from L3 per tile) by about 5%. Half inputs widen each K/V
 * block once per block of rows; 8 tiles instead of 4 halve that cost (P1: 3-5% behind float32
 * inputs at 4 tiles, level at 8). */
static const attn_default_rule avx512_defaults[] = {
    /*          fact           div per_d lk dm  min  max      max_half fixed */
    [P_MODE] = {ATTN_FACT_NONE, 0, 0,    0, 0,  0,   0,       0,       0,
                "streaming; mode 1 was 30% behind at Lk 2048"},
    [P_BQ]   = {ATTN_FACT_L2,   4, 8,    0, 1,  32,  128,     256,     0,
                "Q^T and O^T: 2 x d floats per row"},
    [P_BK]   = {ATTN_FACT_L2,   4, 8,    0, 1,  8,   1 << 20, 0,       0,
                "K and V: 2 x d floats per key"},
    [P_DEC]  = TILE_DEC_DEFAULT,
};

/* Mode 1 keeps 32 × Lk scores per thread; past this it stops being a cache-resident block and
 * only costs memory, so it is refused (mode 0 handles any Lk in fixed memory). */
#define FULL_ROW_MAX_BYTES ((size_t)1 << 30)

static bool avx512_valid(const attn_problem *p, const int32_t *v, char *why, size_t why_len)
{
    ws_layout w;
    if (!layout_of(p, v, &w)) {
        snprintf(why, why_len, "workspace size overflows");
        return false;
    }
    if (v[P_MODE] == 1 && w.total > FULL_ROW_MAX_BYTES) {
        snprintf(why, why_len, "mode=1 would keep %zu bytes of scores (and of widened K/V for "
                 "half inputs) per thread (len_kv %lld); use mode=0", w.total,
                 (long long)p->len_kv);
        return false;
    }
    /* Register tiles are fixed at compile time (TILE_Q × TILE_K, PV_C): nothing to check. */
    return true;
}

/* ---- vector helpers ----------------------------------------------------------------------- */

/* Max that skips NaN in `x` (vmaxps returns its second operand when either is NaN). */
static inline __m512 max_skip_nan(__m512 x, __m512 running) { return _mm512_max_ps(x, running); }

/* Lanes [0, n) for n >= 1 (every caller here has a lane or more): tail_mask16 without its
 * n <= 0 test, which the decode loops (a mask per 16 head-dim elements of each key) would pay
 * for nothing. */
static inline __mmask16 tail_mask(int64_t n)
{
    return n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
}

/* Elements [c, c + 16) of a row of dt elements as float32, lanes outside m zero (and not read):
 * bf16 is the top half of a float32, f16 widens with F16C; both exact. Inlined with a constant
 * dt, each dtype gets its own copy of the loop that calls it. */
static inline __attribute__((always_inline)) __m512 load16(const void *row, int64_t c,
                                                            __mmask16 m, attn_dtype dt)
{
    if (dt == ATTN_F32)
        return _mm512_maskz_loadu_ps(m, (const float *)row + c);
    const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + c);
    if (dt == ATTN_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* Word indices that put 16 bf16 (words 0-15) in the top halves of 16 dwords (load16_stream). */
static inline __m512i bf16_spread(void)
{
    return _mm512_set_epi16(15, 0, 14, 0, 13, 0, 12, 0, 11, 0, 10, 0, 9, 0, 8, 0, 7, 0, 6, 0, 5,
                            0, 4, 0, 3, 0, 2, 0, 1, 0, 0, 0);
}

/* load16 for the decode paths' K and V streams (through load16_stream): float32 as two 256-bit
 * loads joined, bf16 spread by a word permute; why halves, see avx512_common.h's stream loads. */
static inline __attribute__((always_inline)) __m512
load16_stream_masked(const void *row, int64_t c, __mmask16 m, attn_dtype dt)
{
    if (dt == ATTN_BF16) { /* one word permute that zeroes the low halves (D1 bf16 +4% in
                            * cache, Zen 4, over zero-extend and shift) */
        const __m512i h =
            _mm512_castsi256_si512(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + c));
        return _mm512_castsi512_ps(
            _mm512_maskz_permutexvar_epi16(0xAAAAAAAAu, bf16_spread(), h));
    }
    if (dt != ATTN_F32)
        return load16(row, c, m, dt);
    const float *x = (const float *)row + c;
    const __m256 lo = _mm256_maskz_loadu_ps((__mmask8)m, x);
    const __m256 hi = _mm256_maskz_loadu_ps((__mmask8)(m >> 8), x + 8);
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}

/* avx512_common.h's stream-load rule (plain loads for whole vectors on Zen 5; with a tail, d =
 * 72, D1 f32 0.41 -> 0.85 of the read, bf16 0.75) as a branch around load16_stream_masked's
 * whole load and widening: built on avx512_common.h's loads instead (a test inside each
 * load), D1 float32 at d = 80 ran 1.08-1.12x slower here (Zen 5, both builds alternated in one
 * process; GCC 12 laid the one-row function's blocks out differently). */
static inline __attribute__((always_inline)) __m512 load16_stream(const void *row, int64_t c,
                                                                   __mmask16 m, attn_dtype dt)
{
    if (m == 0xffff) /* a constant mask: the same load, unmasked */
        return load16_stream_masked(row, c, 0xffff, dt);
    return load16_stream_masked(row, c, m, dt);
}

/* Software prefetch into L2 of the line holding element c of `row`: the decode tiles of
 * several rows (GQA) read K and V rows DEC_PF_BYTES ahead of their loads (rows from
 * attn_kv_rows_ahead, through the page table when paged). */
static inline __attribute__((always_inline)) void prefetch_row(const void *row, int64_t c,
                                                               attn_dtype dt)
{
    _mm_prefetch((const char *)row + c * (dt == ATTN_F32 ? 4 : 2), _MM_HINT_T1);
}

/* prefetch_row pinned after the load of x (a float32 tile's K or V vector): an asm statement
 * that takes x as an operand in and out, so the compiler keeps each load before the prefetch
 * that follows it and the FMAs that use x after it, instead of gathering the prefetches of a
 * step together. Measured on Zen 4, single thread, alternated with the base binary, as
 * fractions of a plain read of the same K/V (--read-ref, medians of 7-9 runs), for the first
 * form of the pin (an asm with a memory clobber): D3 0.81-0.83 -> 0.89-0.92, D4 0.73 ->
 * 0.76-0.77, D2 0.70-0.745 -> 0.75-0.76, in cache unchanged; the same asm without the clobber
 * (and no operand) changed nothing (D3), nor did moving the prefetches among the FMAs. The
 * clobber made GCC 12 reload the tile's row pointers from the stack around every prefetch (16
 * more loads per 16 FMAs in dec_scores_pairs); tied to x instead, the emitted order is the same
 * (each load, its prefetches, the next load) with the pointers in registers: on Zen 5 D2 f32 in
 * cache (Lk = 512) 1.08-1.12x, D4 1.02-1.06x, streaming D3 0.71 -> 0.75, D4 0.66 -> 0.68 of the
 * read (medians of 5, alternated in one binary; a shared machine, the read at 10-12 GB/s).
 * Half K/V keep prefetch_row: pinned with the clobber, D2/D3 bf16 (FMA-bound) ran 2-4% slower
 * (Zen 4). */
static inline __attribute__((always_inline)) void prefetch_row_after(__m512 *x, const void *row,
                                                                     int64_t c, attn_dtype dt)
{
    __asm__ volatile("prefetcht1 %1"
                     : "+v"(*x)
                     : "m"(*((const char *)row + c * (dt == ATTN_F32 ? 4 : 2))));
}

/* Rows [0, n) of a tensor (row j at src + j·seq elements of dt) widened (float32: copied)
 * into dst[n][d]. */
static void widen_rows(float *restrict dst, const void *src, int64_t seq, int64_t n, int64_t d,
                       attn_dtype dt)
{
    for (int64_t j = 0; j < n; j++) {
        const char *row = (const char *)src + j * seq * (dt == ATTN_F32 ? 4 : 2);
        for (int64_t c = 0; c < d; c += 16) {
            const __mmask16 m = tail_mask(d - c);
            const __m512 x = dt == ATTN_BF16  ? load16(row, c, m, ATTN_BF16)
                             : dt == ATTN_F16 ? load16(row, c, m, ATTN_F16)
                                              : load16(row, c, m, ATTN_F32);
            _mm512_mask_storeu_ps(dst + j * d + c, m, x);
        }
    }
}

/* ---- the streaming micro-kernels --------------------------------------------------------- */

/* Rows of one 32-row tile and what the epilogue needs of them. */
typedef struct tile_ctx {
    const float *qt;      /* packed Qᵀ [d][32] */
    float *ot;            /* Oᵀ accumulator [d][32] */
    float *m, *l;         /* running max (log2 units) and sum [32] */
    tile_band band;       /* limits, window, mask offsets, ALiBi of each row (avx512_common.h) */
    int64_t lim_min;      /* smallest key limit of the tile's rows */
    int64_t first_min, first_max; /* smallest and largest first key over rows with keys */
} tile_ctx;

typedef struct run_ctx {
    const attn_task *t;
    const float *k, *v;   /* K and V of the group's kv head, key j at (j - key0)·k_seq: the
                           * rows themselves (float32), or a widened block in the workspace */
    int64_t key0, k_seq, v_seq, d;
    int64_t b, hkv;       /* the group's sequence and kv head */
    float *kv_buf;        /* half or paged inputs: the workspace block K then V are widened
                           * (or copied) into */
    int64_t kv_keys;      /* keys kv_buf holds */
    const float *mask;    /* additive mask or NULL */
    __m512 c;             /* scale·log2(e) */
    tile_options opts;    /* soft cap, ALiBi (avx512_common.h) */
} run_ctx;

/* S[k][j] = Σ_c QT[c][16k..16k+15] · K[j][c] for the 8 key rows kr. */
static inline void qk_tile(const float *restrict qt, const float *const kr[TILE_K], int64_t d,
                           __m512 s[NQV][TILE_K])
{
    for (int j = 0; j < TILE_K; j++)
        for (int k = 0; k < NQV; k++)
            s[k][j] = _mm512_setzero_ps();
    /* Unrolled by 4: measured +1-5% (loop overhead shares the issue width with 26 uops). */
#pragma GCC unroll 4
    for (int64_t c = 0; c < d; c++) {
        __m512 q[NQV];
        for (int k = 0; k < NQV; k++)
            q[k] = _mm512_load_ps(qt + c * TILE_Q + 16 * k);
        for (int j = 0; j < TILE_K; j++) {
            const __m512 kb = _mm512_set1_ps(kr[j][c]);
            for (int k = 0; k < NQV; k++)
                s[k][j] = _mm512_fmadd_ps(q[k], kb, s[k][j]);
        }
    }
}

/* OT[c][32] += Σ_j P[k][j] · V[j][c]; with `masked`, lane-masked by vm (excluded pairs add
 * nothing, not 0·V). */
static inline void pv_tile(float *restrict ot, const float *const vr[TILE_K], int64_t d,
                           const __m512 p[NQV][TILE_K], const __mmask16 vm[NQV][TILE_K],
                           bool masked)
{
    int64_t c = 0;
    for (; c + PV_C <= d; c += PV_C) {
        __m512 acc[NQV][PV_C];
        for (int e = 0; e < PV_C; e++)
            for (int k = 0; k < NQV; k++)
                acc[k][e] = _mm512_load_ps(ot + (c + e) * TILE_Q + 16 * k);
        for (int j = 0; j < TILE_K; j++)
            for (int e = 0; e < PV_C; e++) {
                const __m512 vb = _mm512_set1_ps(vr[j][c + e]);
                for (int k = 0; k < NQV; k++)
                    acc[k][e] = masked ? _mm512_mask3_fmadd_ps(p[k][j], vb, acc[k][e], vm[k][j])
                                       : _mm512_fmadd_ps(p[k][j], vb, acc[k][e]);
            }
        for (int e = 0; e < PV_C; e++)
            for (int k = 0; k < NQV; k++)
                _mm512_store_ps(ot + (c + e) * TILE_Q + 16 * k, acc[k][e]);
    }
    for (; c < d; c++) {
        __m512 acc[NQV];
        for (int k = 0; k < NQV; k++)
            acc[k] = _mm512_load_ps(ot + c * TILE_Q + 16 * k);
        for (int j = 0; j < TILE_K; j++) {
            const __m512 vb = _mm512_set1_ps(vr[j][c]);
            for (int k = 0; k < NQV; k++)
                acc[k] = masked ? _mm512_mask3_fmadd_ps(p[k][j], vb, acc[k], vm[k][j])
                                : _mm512_fmadd_ps(p[k][j], vb, acc[k]);
        }
        for (int k = 0; k < NQV; k++)
            _mm512_store_ps(ot + c * TILE_Q + 16 * k, acc[k]);
    }
}

/* One 32-row × 8-key tile: scores, softmax update, P·V. `fast`: every pair counts. */
static inline void key_tile(const run_ctx *x, const tile_ctx *tc, int64_t j0, int nk, bool fast,
                            __m512 m[NQV], __m512 l[NQV])
{
    const float *kr[TILE_K], *vr[TILE_K];
    for (int j = 0; j < TILE_K; j++) {
        const int64_t jj = j0 + (j < nk ? j : 0) - x->key0; /* past nk: a valid row, excluded */
        kr[j] = x->k + jj * x->k_seq;
        vr[j] = x->v + jj * x->v_seq;
    }
    __m512 s[NQV][TILE_K];
    __mmask16 vm[NQV][TILE_K];
    qk_tile(tc->qt, kr, x->d, s);
    tile_scores(&x->opts, x->c, x->mask, &tc->band, j0, nk, fast, s, vm);
    for (int k = 0; k < NQV; k++) {
        __m512 tmax;
        const __mmask16 need = tile_max_passes(s[k], m[k], &tmax);
        if (need)
            m[k] = raise_max_lanes(tc->ot + 16 * k, TILE_Q, x->d, m[k], tmax, need, &l[k]);
        for (int j = 0; j < TILE_K; j++) {
            s[k][j] = exp2_ps(_mm512_sub_ps(s[k][j], m[k]), fast ? 0xffff : vm[k][j]);
            l[k] = _mm512_add_ps(l[k], s[k][j]);
        }
    }
    if (fast)
        pv_tile(tc->ot, vr, x->d, s, vm, false);
    else
        pv_tile(tc->ot, vr, x->d, s, vm, true);
}

/* Keys [j_begin, j_end) for one tile. */
static void sweep_tile(const run_ctx *x, const tile_ctx *tc, int64_t j_begin, int64_t j_end)
{
    __m512 m[NQV], l[NQV];
    for (int k = 0; k < NQV; k++) {
        m[k] = _mm512_load_ps(tc->m + 16 * k);
        l[k] = _mm512_load_ps(tc->l + 16 * k);
    }
    int64_t j0 = j_begin;
    /* A sliding window's leading edge: tiles some row of the tile starts inside. */
    for (; j0 < j_end && j0 < tc->first_max; j0 += TILE_K)
        key_tile(x, tc, j0, j_end - j0 < TILE_K ? (int)(j_end - j0) : TILE_K, false, m, l);
    if (!x->mask)
        for (; j0 + TILE_K <= j_end && j0 + TILE_K <= tc->lim_min; j0 += TILE_K)
            key_tile(x, tc, j0, TILE_K, true, m, l);
    for (; j0 < j_end; j0 += TILE_K) {
        const int nk = j_end - j0 < TILE_K ? (int)(j_end - j0) : TILE_K;
        key_tile(x, tc, j0, nk, false, m, l);
    }
    for (int k = 0; k < NQV; k++) {
        _mm512_store_ps(tc->m + 16 * k, m[k]);
        _mm512_store_ps(tc->l + 16 * k, l[k]);
    }
}

/* ---- rows of a block: packing, limits, output --------------------------------------------- */

/* Packs Qᵀ, key limits and mask offsets of `tiles` tiles; padding lanes get zeros and limit 0.
 * Returns the largest key limit. */
static int64_t setup_rows(const block_rows *br, int64_t tiles, float *qt, int64_t *lim,
                          int64_t *first, float *slope, float *pos, int64_t *moff)
{
    const attn_problem *p = br->t->problem;
    const int64_t d = p->head_dim;
    for (int64_t r = 0; r < tiles * TILE_Q; r++) {
        float *col = qt + (r / TILE_Q) * TILE_Q * d + r % TILE_Q;
        if (r >= br->n) {
            for (int64_t c = 0; c < d; c++)
                col[c * TILE_Q] = 0.0f;
            continue;
        }
        const void *q = attn_row(br->t, 'q', br->gr.b, row_head(br, r), row_index(br, r));
        if (p->dtype == ATTN_F32)
            for (int64_t c = 0; c < d; c++)
                col[c * TILE_Q] = ((const float *)q)[c];
        else if (p->dtype == ATTN_BF16)
            for (int64_t c = 0; c < d; c++)
                col[c * TILE_Q] = attn_bf16_to_f32(((const uint16_t *)q)[c]);
        else
            for (int64_t c = 0; c < d; c++)
                col[c * TILE_Q] = attn_f16_to_f32(((const uint16_t *)q)[c]);
    }
    if (p->alibi_slopes)
        block_alibi(br, tiles * TILE_Q, slope, pos);
    return block_limits(br, tiles * TILE_Q, lim, first, moff);
}

/* Every row of a block from its Oᵀ column, l and m. */
static void store_rows(const block_rows *br, const float *ot, const float *l, const float *m)
{
    const int64_t d = br->t->problem->head_dim;
    for (int64_t r = 0; r < br->n; r++)
        finish_row(br, r, ot + (r / TILE_Q) * TILE_Q * d + r % TILE_Q, TILE_Q, l[r], m[r]);
}

static run_ctx run_ctx_of(const attn_task *t, const ws_layout *w, const attn_group_rows *gr)
{
    const attn_problem *p = t->problem;
    run_ctx x = {.t = t, .k = attn_k_row(t, gr->b, gr->hkv, 0),
                 .v = attn_v_row(t, gr->b, gr->hkv, 0), .k_seq = p->k.seq, .v_seq = p->v.seq,
                 .d = p->head_dim, .mask = p->mask, .c = _mm512_set1_ps(t->scale * ATTN_LOG2E),
                 .opts = tile_options_of(p)};
    if (p->dtype != ATTN_F32 || p->page_size) {
        x.b = gr->b;
        x.hkv = gr->hkv;
        x.kv_buf = (float *)((char *)t->workspace + w->kv);
        x.kv_keys = (int64_t)w->kv_keys;
        x.k = x.kv_buf;
        x.v = x.kv_buf + x.kv_keys * x.d;
        x.k_seq = x.v_seq = x.d;
    }
    return x;
}

/* Half or paged inputs: keys [j0, j1) of K and V widened into the workspace block, which holds
 * keys from key0 on (j1 - key0 <= kv_keys), a page run at a time. */
static void widen_keys(run_ctx *x, int64_t key0, int64_t j0, int64_t j1)
{
    const attn_problem *p = x->t->problem;
    for (int64_t j = j0, n; j < j1; j += n) {
        n = attn_kv_run(p, j, j1 - j);
        widen_rows(x->kv_buf + (j - key0) * x->d, attn_row(x->t, 'k', x->b, x->hkv, j),
                   p->k.seq, n, x->d, p->dtype);
        widen_rows(x->kv_buf + (x->kv_keys + j - key0) * x->d,
                   attn_row(x->t, 'v', x->b, x->hkv, j), p->v.seq, n, x->d, p->dtype);
    }
    x->key0 = key0;
}

/* Mode 0 on one group: blocks of bq rows, K/V blocks of bk keys outermost within a block. */
static void streaming_group(const attn_task *t, const ws_layout *w, const attn_group_rows *gr,
                            const key_range *kr)
{
    const int64_t bq = t->params[P_BQ], bk = t->params[P_BK], d = t->problem->head_dim;
    char *ws = t->workspace;
    float *qt = (float *)(ws + w->qt), *ot = (float *)(ws + w->ot);
    const row_arrays ra = row_arrays_of(ws, &w->rows);
    float *m = ra.m, *l = ra.l, *slope = ra.slope, *pos = ra.pos;
    int64_t *lim = ra.lim, *moff = ra.moff, *first = ra.first;
    run_ctx x = run_ctx_of(t, w, gr);

    for (int64_t r0 = 0; r0 < gr->count; r0 += bq) {
        const block_rows br = block_of(t, kr, gr, r0, bq);
        const int64_t tiles = (br.n + TILE_Q - 1) / TILE_Q;
        int64_t lim_max = setup_rows(&br, tiles, qt, lim, first, slope, pos, moff);
        lim_max = lim_max < kr->end ? lim_max : kr->end;
        reset_rows(ot, tiles * TILE_Q * d, m, l, tiles * TILE_Q);
        /* Key blocks before every row's window are skipped whole, as are those past every
         * row's limit. */
        int64_t first_min, first_max;
        first_range(first, lim, tiles * TILE_Q, &first_min, &first_max);
        for (int64_t k0 = first_min > kr->begin ? first_min : kr->begin; k0 < lim_max;
             k0 += bk) {
            /* Half inputs: the K/V block widened once for every tile of the block (bq/32 of
             * them), so the tiles' broadcasts read float32 as for float32 inputs. */
            if (x.kv_buf)
                widen_keys(&x, k0, k0, k0 + bk < lim_max ? k0 + bk : lim_max);
            for (int64_t tile = 0; tile < tiles; tile++) {
                tile_ctx tc = {.qt = qt + tile * TILE_Q * d, .ot = ot + tile * TILE_Q * d,
                               .m = m + tile * TILE_Q, .l = l + tile * TILE_Q,
                               .band = tile_band_at(&ra, tile * TILE_Q)};
                int64_t k1;
                limit_range(tc.band.lim, TILE_Q, &tc.lim_min, &k1);
                first_range(tc.band.first, tc.band.lim, TILE_Q, &tc.first_min, &tc.first_max);
                k1 = k1 < lim_max ? k1 : lim_max;
                k1 = k0 + bk < k1 ? k0 + bk : k1;
                const int64_t j_begin = tc.first_min > k0 ? tc.first_min : k0;
                if (k1 > j_begin)
                    sweep_tile(&x, &tc, j_begin, k1);
            }
        }
        store_rows(&br, ot, l, m);
    }
}

/* ---- mode 1: full row --------------------------------------------------------------------- */

/* One tile of 32 rows against keys [kbeg, kend): scores into S[key - kbeg][32] with per-key
 * lane masks, exact max, one exp pass, then P·V with Oᵀ in registers. Writes the unnormalised
 * Oᵀ to ot_out and the tile's max and sum to tc->m, tc->l. */
static void full_row_tile(const run_ctx *x, tile_ctx *tc, float *S, __mmask16 *masks, bool *full,
                          int64_t kbeg, int64_t kend, float *ot_out)
{
    const int64_t d = x->d;
    __m512 m[NQV];
    for (int k = 0; k < NQV; k++)
        m[k] = _mm512_set1_ps(-INFINITY);
    for (int64_t j0 = kbeg; j0 < kend; j0 += TILE_K) {
        const int nk = kend - j0 < TILE_K ? (int)(kend - j0) : TILE_K;
        const bool fast = !x->mask && nk == TILE_K && j0 + TILE_K <= tc->lim_min &&
                          j0 >= tc->first_max;
        const float *kr[TILE_K];
        for (int j = 0; j < TILE_K; j++)
            kr[j] = x->k + (j0 + (j < nk ? j : 0) - x->key0) * x->k_seq;
        __m512 s[NQV][TILE_K];
        __mmask16 vm[NQV][TILE_K];
        qk_tile(tc->qt, kr, d, s);
        tile_scores(&x->opts, x->c, x->mask, &tc->band, j0, nk, fast, s, vm);
        full[(j0 - kbeg) / TILE_K] = fast;
        for (int j = 0; j < nk; j++)
            for (int k = 0; k < NQV; k++) {
                m[k] = max_skip_nan(s[k][j], m[k]);
                _mm512_store_ps(S + (j0 + j - kbeg) * TILE_Q + 16 * k, s[k][j]);
                masks[(j0 + j - kbeg) * NQV + k] = fast ? 0xffff : vm[k][j];
            }
    }
    /* A row with no finite score keeps m = -inf; use 0 so its -inf scores give 2^-inf = 0. */
    __m512 l[NQV];
    for (int k = 0; k < NQV; k++) {
        _mm512_store_ps(tc->m + 16 * k, m[k]);
        m[k] = _mm512_mask_mov_ps(m[k], _mm512_cmp_ps_mask(m[k], _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ),
                                  _mm512_setzero_ps());
        l[k] = _mm512_setzero_ps();
    }
    for (int64_t j = kbeg; j < kend; j++)
        for (int k = 0; k < NQV; k++) {
            float *sp = S + (j - kbeg) * TILE_Q + 16 * k;
            const __m512 pj = exp2_ps(_mm512_sub_ps(_mm512_load_ps(sp), m[k]), masks[(j - kbeg) * NQV + k]);
            l[k] = _mm512_add_ps(l[k], pj);
            _mm512_store_ps(sp, pj);
        }
    for (int k = 0; k < NQV; k++)
        _mm512_store_ps(tc->l + 16 * k, l[k]);
    /* Oᵀ[c][32] for FULL_C elements at a time, accumulated over every key in registers. */
    int64_t c = 0;
    for (; c < d; c += FULL_C) {
        const int nc = d - c < FULL_C ? (int)(d - c) : FULL_C;
        __m512 acc[NQV][FULL_C];
        for (int e = 0; e < FULL_C; e++)
            for (int k = 0; k < NQV; k++)
                acc[k][e] = _mm512_setzero_ps();
        if (nc == FULL_C) {
            for (int64_t j0 = kbeg; j0 < kend; j0 += TILE_K) {
                const int64_t j1 = kend - j0 < TILE_K ? kend : j0 + TILE_K;
                if (j1 - j0 == TILE_K && full[(j0 - kbeg) / TILE_K]) {
                    /* Every pair of the key tile counts: plain FMAs, no masks to load. */
                    for (int64_t j = j0; j < j1; j++) {
                        const float *vj = x->v + (j - x->key0) * x->v_seq + c;
                        __m512 pj[NQV];
                        for (int k = 0; k < NQV; k++)
                            pj[k] = _mm512_load_ps(S + (j - kbeg) * TILE_Q + 16 * k);
                        for (int e = 0; e < FULL_C; e++) {
                            const __m512 vb = _mm512_set1_ps(vj[e]);
                            for (int k = 0; k < NQV; k++)
                                acc[k][e] = _mm512_fmadd_ps(pj[k], vb, acc[k][e]);
                        }
                    }
                    continue;
                }
                for (int64_t j = j0; j < j1; j++) {
                    const float *vj = x->v + (j - x->key0) * x->v_seq + c;
                    for (int e = 0; e < FULL_C; e++) {
                        const __m512 vb = _mm512_set1_ps(vj[e]);
                        for (int k = 0; k < NQV; k++)
                            acc[k][e] = _mm512_mask3_fmadd_ps(
                                _mm512_load_ps(S + (j - kbeg) * TILE_Q + 16 * k), vb, acc[k][e],
                                masks[(j - kbeg) * NQV + k]);
                    }
                }
            }
        } else {
            for (int64_t j = kbeg; j < kend; j++) {
                const float *vj = x->v + (j - x->key0) * x->v_seq + c;
                for (int e = 0; e < nc; e++) {
                    const __m512 vb = _mm512_set1_ps(vj[e]);
                    for (int k = 0; k < NQV; k++)
                        acc[k][e] = _mm512_mask3_fmadd_ps(_mm512_load_ps(S + (j - kbeg) * TILE_Q + 16 * k),
                                                          vb, acc[k][e], masks[(j - kbeg) * NQV + k]);
                }
            }
        }
        for (int e = 0; e < nc; e++)
            for (int k = 0; k < NQV; k++)
                _mm512_store_ps(ot_out + (c + e) * TILE_Q + 16 * k, acc[k][e]);
    }
}

static void full_row_group(const attn_task *t, const ws_layout *w, const attn_group_rows *gr,
                           const key_range *kr)
{
    char *ws = t->workspace;
    float *qt = (float *)(ws + w->qt), *S = (float *)(ws + w->scores);
    const row_arrays ra = row_arrays_of(ws, &w->rows);
    float *m = ra.m, *l = ra.l, *slope = ra.slope, *pos = ra.pos;
    int64_t *lim = ra.lim, *moff = ra.moff, *first = ra.first;
    __mmask16 *masks = (__mmask16 *)(ws + w->masks);
    bool *full = (bool *)(ws + w->full);
    run_ctx x = run_ctx_of(t, w, gr);
    int64_t widened = kr->begin; /* half inputs: keys [kr->begin, widened) are in kv_buf */
    /* Oᵀ of the tile reuses the packed Qᵀ: Q is consumed before P·V writes it. */
    for (int64_t r0 = 0; r0 < gr->count; r0 += TILE_Q) {
        const block_rows br = block_of(t, kr, gr, r0, TILE_Q);
        int64_t kend = setup_rows(&br, 1, qt, lim, first, slope, pos, moff);
        kend = kend < kr->end ? kend : kr->end;
        /* Half inputs: every key of the group is widened once, as the first tile that sees
         * it needs it (mode 1 keeps Lk-sized buffers anyway). */
        if (x.kv_buf && kend > widened) {
            widen_keys(&x, kr->begin, widened, kend);
            widened = kend;
        }
        tile_ctx tc = {.qt = qt, .m = m, .l = l, .band = tile_band_at(&ra, 0)};
        int64_t lim_max;
        limit_range(lim, TILE_Q, &tc.lim_min, &lim_max);
        first_range(first, lim, TILE_Q, &tc.first_min, &tc.first_max);
        /* keys before every row's window are not scored at all */
        kend = kend > kr->begin ? kend : kr->begin;
        const int64_t kbeg = tc.first_min > kr->begin ? (tc.first_min < kend ? tc.first_min : kend)
                                                      : kr->begin;
        full_row_tile(&x, &tc, S, masks, full, kbeg, kend, qt);
        store_rows(&br, qt, l, m);
    }
}

/* ---- decode path: vectors along head_dim ------------------------------------------------- */

/* Scores of R query rows (float32, padded to 16) against 16 key rows of dt elements: out[r]
 * lane j = q_r · k_j. One row (D1) walks the keys one after another, each row front to back,
 * through a key loop that is not unrolled: one load instruction walks K in address order, which
 * the hardware prefetchers follow (16 keys read column by column, or 16 unrolled copies of the
 * loop, halved the D1 rate). A tile of R > 1 rows loads each K vector once for the R rows and
 * takes DEC_KS keys side by side, so each Q vector is loaded once for them (half a load per
 * FMA instead of 1.25 at R = 4; +5% on a GQA tile in L2, Zen 4), and since its FMAs per byte
 * leave too few loads in flight for the hardware prefetchers, it prefetches K (here) and V
 * (dec_pv) DEC_PF_BYTES ahead into L2 (the rows kp, vp, through the page table when paged),
 * one prefetch beside each load: D2 and D4 f32 on Zen 4 ran 1.4x faster with both, bf16 and
 * f16 D2 1.2x (with the distance in bytes; 2% slower in cache), while bursts of prefetches
 * per block or the prefetch in the one-row path were slower; float32 tiles pin each prefetch
 * right after its load (prefetch_row_after). The hardware prefetchers follow
 * one ascending walk per 4 KiB page, and a tile reads several rows of a page side by side (a
 * plain read of 8 rows of 512 bytes, 32 bytes of each in turn, ran at 7 GB/s, of 2 rows at 6,
 * in address order at 22; Zen 4). Not kept (D2 f32/bf16, Zen 4): _MM_HINT_T2 (as T1), T0 and
 * NTA (2x slower), one prefetch per 128 or 256 bytes (2x slower: no adjacent-line fill),
 * prefetches in address order or spread one per load (no change), an in-order tile without
 * prefetch (one key at a time, V rows whole: 1.25x slower in cache, streaming no faster);
 * streaming D2 takes about its in-cache time plus the memory time. Paged K/V (`paged`) prefetch in every tile, one row
 * and half inputs too: each page of a head starts a new address stream that the hardware prefetchers must
 * find again (D1 at page size 64 took 1.6x the contiguous time without it, about 1.0x with it;
 * prefetching only each page's first rows, a block before its edge, left 1.15x). The
 * per-key partial vectors go through a small stack array to one transpose-add tree per row and
 * block. */
static inline __attribute__((always_inline)) void dec_scores(const float *const q[DEC_R], int R,
                                                              const void *const kr[DEC_K],
                                                              const void *const kp[DEC_K],
                                                              int64_t d, attn_dtype dt,
                                                              bool paged, bool full,
                                                              __m512 out[DEC_R])
{
    __m512 part[DEC_R][DEC_K];
    /* Constants once inlined with a constant R: tiles of several rows score DEC_KS keys side
     * by side and prefetch; one row keeps the in-order key loop. */
    const bool tile = R > 1, pf = tile || paged;
    const int ks = tile ? DEC_KS : 1;
#pragma GCC unroll 1
    for (int j = 0; j < DEC_K; j += ks) {
        __m512 a[DEC_R][DEC_KS];
        for (int r = 0; r < R; r++)
            for (int u = 0; u < ks; u++)
                a[r][u] = _mm512_setzero_ps();
        for (int64_t c = 0; c < d; c += 16) {
            const __mmask16 tm = full ? 0xffff : tail_mask(d - c);
            __m512 kv[DEC_KS];
            for (int u = 0; u < ks; u++) {
                kv[u] = load16_stream(kr[j + u], c, tm, dt);
                if (pf)
                    prefetch_row(kp[j + u], c, dt);
            }
            for (int r = 0; r < R; r++) {
                const __m512 qv = _mm512_load_ps(q[r] + c);
                for (int u = 0; u < ks; u++)
                    a[r][u] = _mm512_fmadd_ps(qv, kv[u], a[r][u]);
            }
        }
        for (int r = 0; r < R; r++)
            for (int u = 0; u < ks; u++)
                part[r][j + u] = a[r][u];
    }
    for (int r = 0; r < R; r++)
        out[r] = sum16(part[r]);
}

/* Eight float32 elements [c, c + 8) of a K row of dt, widened: the low or high half of a
 * dec_scores_pairs vector. */
static inline __attribute__((always_inline)) __m512 load_key_pair(const void *a, const void *b,
                                                                 int64_t c, attn_dtype dt)
{
    if (dt == ATTN_F32) {
        const __m256 lo = _mm256_loadu_ps((const float *)a + c);
        return _mm512_insertf32x8(_mm512_castps256_ps512(lo), _mm256_loadu_ps((const float *)b + c),
                                  1);
    }
    const __m256i h = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)((const uint16_t *)a + c))),
        _mm_loadu_si128((const __m128i *)((const uint16_t *)b + c)), 1);
    if (dt == ATTN_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* dec_scores for a tile of R > 1 rows and head_dim a multiple of 16, with two keys per vector:
 * lanes 0-7 take eight elements of key a, lanes 8-15 the same elements of key b = a + 4, against
 * the row's Q with each run of eight elements written twice (qd, stride 2 per element pair), so
 * each (row, key) sum spans 8 lanes and the transpose-add tree per row and block takes 14
 * shuffles and 7 adds instead of sum16's 30 and 15 (sum16 took about 15% of dec_scores' time in
 * isolation, 4 rows x 16 keys from L2, Zen 4: 68% of the FMA peak with it, 80% without).
 * Pair slot i (0..7) holds keys a = i % 4 + 8·(i / 4) and a + 4, so the tree leaves key j in
 * lane j. Same FMAs, K bytes and prefetches (one per 64 bytes of each row) as dec_scores.
 * Not kept (#15, Zen 4, in cache): bf16 K as 256 bits of each key joined, even elements widened
 * by a shift and odd ones by an and, against Q split even/odd (half the shuffle and shift ops):
 * D2/D4 1.01x; bf16 V the same way in dec_pv: 1.006x. Without the V pass D2 bf16 ran 1.66x
 * faster in cache, so P·V is ~40% of the tile and Q·K with the softmax ~60%. */
static inline __attribute__((always_inline)) void
dec_scores_pairs(const float *const qd[DEC_R], int R, const void *const kr[DEC_K],
                 const void *const kp[DEC_K], int64_t d, attn_dtype dt, __m512 out[DEC_R])
{
    enum { PAIRS = 4 }; /* pair slots side by side: 4 rows x 4 accumulators */
    __m512 part[DEC_R][DEC_K / 2];
    const int64_t line = dt == ATTN_F32 ? 16 : 32; /* elements per 64 bytes */
#pragma GCC unroll 1
    for (int i0 = 0; i0 < DEC_K / 2; i0 += PAIRS) {
        const int a0 = 8 * (i0 / 4); /* keys a0 .. a0 + 3 and a0 + 4 .. a0 + 7 */
        __m512 acc[DEC_R][PAIRS];
        for (int r = 0; r < R; r++)
            for (int u = 0; u < PAIRS; u++)
                acc[r][u] = _mm512_setzero_ps();
        for (int64_t c = 0; c < d; c += 8) {
            __m512 kv[PAIRS];
            for (int u = 0; u < PAIRS; u++) {
                kv[u] = load_key_pair(kr[a0 + u], kr[a0 + u + 4], c, dt);
                if (c % line == 0 && dt == ATTN_F32) { /* after this pair's load (above) */
                    prefetch_row_after(&kv[u], kp[a0 + u], c, dt);
                    prefetch_row_after(&kv[u], kp[a0 + u + 4], c, dt);
                } else if (c % line == 0) {
                    prefetch_row(kp[a0 + u], c, dt);
                    prefetch_row(kp[a0 + u + 4], c, dt);
                }
            }
            for (int r = 0; r < R; r++) {
                const __m512 qv = _mm512_load_ps(qd[r] + 2 * c);
                for (int u = 0; u < PAIRS; u++)
                    acc[r][u] = _mm512_fmadd_ps(qv, kv[u], acc[r][u]);
            }
        }
        for (int r = 0; r < R; r++)
            for (int u = 0; u < PAIRS; u++)
                part[r][i0 + u] = acc[r][u];
    }
    for (int r = 0; r < R; r++) {
        const __m512 *pr = part[r];
        __m512 b[4], c[2];
        for (int i = 0; i < 4; i++) /* per 128-bit block: slots (2i, 2i+1, 2i, 2i+1) */
            b[i] = _mm512_add_ps(_mm512_unpacklo_ps(pr[2 * i], pr[2 * i + 1]),
                                 _mm512_unpackhi_ps(pr[2 * i], pr[2 * i + 1]));
        for (int i = 0; i < 2; i++) { /* per 128-bit block: slots 4i .. 4i + 3 */
            const __m512d x = _mm512_castps_pd(b[2 * i]), y = _mm512_castps_pd(b[2 * i + 1]);
            c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                                 _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
        }
        /* blocks 0+1 (keys a) and 2+3 (keys b) of each: keys 0-3, 4-7 from c[0], 8-15 from c[1] */
        out[r] = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88),
                               _mm512_shuffle_f32x4(c[0], c[1], 0xdd));
    }
}

/* For R rows: o_r[0..d) (workspace rows padded to 16) = o_r·corr_r + Σ_{j in keys} w_r[j]·V[j],
 * V rows of dt elements widened as they are loaded, each V vector loaded once for the R rows.
 * The R·DEC_PV(R) accumulators stay in registers across the block's keys. */
static inline __attribute__((always_inline)) void dec_pv(float *const o[DEC_R], int R,
                                                          const void *const vr[DEC_K],
                                                          const void *const vp[DEC_K],
                                                          const float (*w)[DEC_K], uint32_t keys,
                                                          int64_t d,
                                                          const __m512 corr[DEC_R],
                                                          attn_dtype dt, bool paged, bool full)
{
    enum { MAXV = 8 };
    const int cv = R <= 2 ? 8 : 4; /* head-dim vectors per pass: at most 16 accumulators */
    for (int64_t c0 = 0; c0 < d; c0 += 16 * cv) {
        __m512 acc[DEC_R][MAXV];
        const int nv = (int)((d - c0 + 15) / 16 < cv ? (d - c0 + 15) / 16 : cv);
        for (int r = 0; r < R; r++)
            for (int v = 0; v < cv; v++)
                acc[r][v] = v < nv ? _mm512_mul_ps(_mm512_load_ps(o[r] + c0 + 16 * v), corr[r])
                                   : _mm512_setzero_ps();
        for (uint32_t bits = keys; bits; bits &= bits - 1) {
            const int j = __builtin_ctz(bits);
            for (int v = 0; v < cv; v++) {
                if (v >= nv)
                    break;
                __m512 x = load16_stream(
                    vr[j], c0 + 16 * v, full ? 0xffff : tail_mask(d - c0 - 16 * v), dt);
                if (R > 1 && !paged && dt == ATTN_F32)
                    prefetch_row_after(&x, vp[j], c0 + 16 * v, dt);
                else if (R > 1 || paged)
                    prefetch_row(vp[j], c0 + 16 * v, dt);
                for (int r = 0; r < R; r++)
                    acc[r][v] = _mm512_fmadd_ps(_mm512_set1_ps(w[r][j]), x, acc[r][v]);
            }
        }
        for (int r = 0; r < R; r++)
            for (int v = 0; v < cv; v++)
                if (v < nv)
                    _mm512_store_ps(o[r] + c0 + 16 * v, acc[r][v]);
    }
}

/* State of the decode rows of one group: accumulators, sums, maxima, limits, Q rows. */
typedef struct dec_rows {
    const attn_problem *p;
    const block_rows *br;
    float *o, *lv, *mrow;
    const int64_t *lim;
    const float *const *q; /* float32 Q row of each row (padded to 16) */
    const float *qd;       /* the Q rows for dec_scores_pairs (row r at qd + r·2·dpad) */
    int64_t dpad, kend;
    __m512 c;              /* scale·log2(e) */
    const float *mask;
    const int64_t *first;  /* each row's first key (sliding window) */
    const run_ctx *rc;     /* the options (soft cap, ALiBi) */
    const float *slope, *pos; /* ALiBi of each row (block_alibi) */
} dec_rows;

/* Rows [r0, r0 + R) on the key block at j0 (kr, vr: its K and V rows, nk of them real; kp, vp:
 * the rows DEC_PF_KEYS keys later, which float32 tiles of several rows prefetch). */
static inline __attribute__((always_inline)) void dec_tile(const dec_rows *x, int64_t r0, int R,
                                                            int64_t j0, int nk,
                                                            const void *const kr[DEC_K],
                                                            const void *const vr[DEC_K],
                                                            const void *const kp[DEC_K],
                                                            const void *const vp[DEC_K],
                                                            int64_t d, attn_dtype dt, bool paged,
                                                            bool full)
{
    const float *q[DEC_R];
    float *o[DEC_R];
    __m512 s[DEC_R], corr[DEC_R];
    __mmask16 valid[DEC_R];
    float w[DEC_R][DEC_K];
    for (int r = 0; r < R; r++) {
        q[r] = x->q[r0 + r];
        o[r] = x->o + (r0 + r) * x->dpad;
    }
    if (R > 1 && full) {
        const float *qd[DEC_R];
        for (int r = 0; r < R; r++)
            qd[r] = x->qd + (r0 + r) * 2 * x->dpad;
        dec_scores_pairs(qd, R, kr, kp, d, dt, s);
    } else {
        dec_scores(q, R, kr, kp, d, dt, paged, full, s);
    }
    uint32_t any = 0, all = 0xffff;
    for (int r = 0; r < R; r++) {
        const int64_t lim = x->lim[r0 + r] < x->kend ? x->lim[r0 + r] : x->kend;
        const int64_t left = lim - j0 < nk ? lim - j0 : nk, skip = x->first[r0 + r] - j0;
        valid[r] = left > 0 ? tail_mask(left) : 0;
        if (skip > 0) /* the window's left edge: keys before it drop out */
            valid[r] &= (__mmask16)~tail_mask16(skip);
        __m512 l = _mm512_load_ps(x->lv + 16 * (r0 + r));
        __m512 pv = _mm512_mul_ps(s[r], x->c);
        pv = row_options_apply(&x->rc->opts, x->slope[r0 + r], x->pos[r0 + r], j0, pv);
        const int64_t i = row_index(x->br, r0 + r);
        corr[r] = _mm512_set1_ps(1.0f);
        if (valid[r])
            valid[r] = decode_weights(&pv, valid[r], x->mask ? attn_mask_row(x->p, i) + j0 : NULL,
                                      &x->mrow[r0 + r], &l, &corr[r]);
        if (valid[r])
            _mm512_store_ps(x->lv + 16 * (r0 + r), _mm512_add_ps(l, pv));
        _mm512_storeu_ps(w[r], pv);
        any |= valid[r];
        all &= valid[r];
    }
    if (any == all) { /* every row sees the same keys: one pass over V for the tile */
        if (any)
            dec_pv(o, R, vr, vp, w, any, d, corr, dt, paged, full);
        return;
    }
    /* Rows that see different keys (causal edge, mask): a NaN in a V row must not reach a
     * row that excludes it through a 0 weight, so each row takes its own keys. */
    for (int r = 0; r < R; r++)
        if (valid[r])
            dec_pv(&o[r], 1, vr, vp, &w[r], valid[r], d, &corr[r], dt, paged, full);
}

/* All n rows of a group, in tiles of DEC_R and one of n % DEC_R, on the key block at j0. With
 * `full` (head_dim a multiple of 16, the common case; a copy of the tiles of its own) the K and
 * V loads take no tail mask: +3% (f32) to +6% (half) on D2 in cache, Zen 4. */
static inline __attribute__((always_inline)) void
dec_tiles(const dec_rows *x, int64_t n, int64_t j0, int nk, const void *const kr[DEC_K],
          const void *const vr[DEC_K], const void *const kp[DEC_K], const void *const vp[DEC_K],
          int64_t d, attn_dtype dt, bool paged, bool full)
{
    int64_t r0 = 0;
    for (; r0 + DEC_R <= n; r0 += DEC_R)
        dec_tile(x, r0, DEC_R, j0, nk, kr, vr, kp, vp, d, dt, paged, full);
    switch (n - r0) { /* a constant R per call, so the tiles' arrays stay in registers */
    case 3: dec_tile(x, r0, 3, j0, nk, kr, vr, kp, vp, d, dt, paged, full); break;
    case 2: dec_tile(x, r0, 2, j0, nk, kr, vr, kp, vp, d, dt, paged, full); break;
    case 1: dec_tile(x, r0, 1, j0, nk, kr, vr, kp, vp, d, dt, paged, full); break;
    default: break;
    }
}

/* The decode path for inputs of type dt (a constant once inlined into decode_group): K and V
 * are read in place and widened in the loads, so half inputs move half the bytes. */
static inline __attribute__((always_inline)) void
decode_group_dt(const attn_task *t, const ws_layout *w, const attn_group_rows *gr,
                const key_range *kr, const next_keys *nx, attn_dtype dt, bool paged, bool one)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, dpad = round_up(d, 16), n = gr->count;
    char *ws = t->workspace;
    float *o = (float *)(ws + w->dec_o), *lv = (float *)(ws + w->dec_l);
    float *mrow = (float *)(ws + w->dec_m), *qw = (float *)(ws + w->dec_q);
    const row_arrays ra = row_arrays_of(ws, &w->rows);
    int64_t *lim = (int64_t *)(ws + w->dec_lim), *first = ra.first;
    float *slope = ra.slope, *pos = ra.pos;
    const float **qrow = (const float **)(ws + w->dec_qp);
    const block_rows br = block_of(t, kr, gr, 0, n);
    const run_ctx rc = run_ctx_of(t, w, gr);
    int64_t kend = block_limits(&br, n, lim, first, NULL);
    kend = kend < kr->end ? kend : kr->end;
    if (p->alibi_slopes)
        block_alibi(&br, n, slope, pos);
    int64_t first_min, first_max; /* key blocks before every row's window are skipped */
    first_range(first, lim, n, &first_min, &first_max);
    for (int64_t r = 0; r < n; r++) { /* Q rows widened (or copied, padded) once */
        const void *q = attn_row(t, 'q', gr->b, row_head(&br, r), row_index(&br, r));
        for (int64_t c = 0; c < dpad; c += 16)
            _mm512_store_ps(qw + r * dpad + c, load16(q, c, tail_mask16(d - c), dt));
        qrow[r] = qw + r * dpad;
        for (int64_t c = 0; c < dpad; c += 8) { /* each run of 8 twice, for dec_scores_pairs */
            const __m256 h = _mm256_load_ps(qrow[r] + c);
            _mm512_store_ps(qw + n * dpad + r * 2 * dpad + 2 * c,
                            _mm512_insertf32x8(_mm512_castps256_ps512(h), h, 1));
        }
        mrow[r] = -INFINITY;
        memset(o + r * dpad, 0, (size_t)dpad * sizeof *o);
        _mm512_store_ps(lv + 16 * r, _mm512_setzero_ps());
    }
    const dec_rows x = {.p = p, .br = &br, .o = o, .lv = lv, .mrow = mrow, .lim = lim,
                        .q = qrow, .qd = qw + n * dpad, .dpad = dpad, .kend = kend, .c = rc.c, .mask = rc.mask,
                        .first = first, .rc = &rc, .slope = slope, .pos = pos};
    /* Tiles of several rows prefetch a distance in bytes, so half rows go as far ahead as
     * float32 ones (D2 bf16 and f16 1.2x faster than at 64 keys, Zen 4), and at least a block;
     * one paged row, 64 keys (paged D1 bf16 ran 1.2x slower at 128). Past the group's last
     * key the prefetches go to the next group's first keys (next_keys): D3 1.03-1.07x, D4
     * 1.03x, f32 and half alike (same process, alternated, Zen 4). */
    const int64_t row_bytes = d * (dt == ATTN_F32 ? 4 : 2),
                  pf_bytes = DEC_PF_BYTES / row_bytes > DEC_K ? DEC_PF_BYTES / row_bytes : DEC_K,
                  pf_keys = n > 1 ? pf_bytes : DEC_PF_KEYS;
    for (int64_t j0 = first_min > kr->begin ? first_min : kr->begin; j0 < kend; j0 += DEC_K) {
        const int nk = kend - j0 < DEC_K ? (int)(kend - j0) : DEC_K;
        const void *krow[DEC_K], *vrow[DEC_K]; /* past nk: key j0's row, excluded */
        attn_kv_rows(t, 'k', gr->b, gr->hkv, j0, nk, DEC_K, krow);
        attn_kv_rows(t, 'v', gr->b, gr->hkv, j0, nk, DEC_K, vrow);
        const void *kpf[DEC_K], *vpf[DEC_K]; /* read by float32 tiles of several rows; paged, by all */
        if (n > 1 || paged) {
            kv_rows_ahead_next(t, 'k', gr->b, gr->hkv, j0 + pf_keys, kend, nx, DEC_K, krow, kpf);
            kv_rows_ahead_next(t, 'v', gr->b, gr->hkv, j0 + pf_keys, kend, nx, DEC_K, vrow, vpf);
        }
        if (one) { /* n == 1: the one-row copy holds no tile code */
            if (d % 16 == 0) /* no tail: no mask, no branch per load (load16_stream) */
                dec_tile(&x, 0, 1, j0, nk, krow, vrow, kpf, vpf, d, dt, paged, true);
            else
                dec_tile(&x, 0, 1, j0, nk, krow, vrow, kpf, vpf, d, dt, paged, false);
            continue;
        }
        if (d % 16 == 0)
            dec_tiles(&x, n, j0, nk, krow, vrow, kpf, vpf, d, dt, paged, true);
        else
            dec_tiles(&x, n, j0, nk, krow, vrow, kpf, vpf, d, dt, paged, false);
    }
    for (int64_t r = 0; r < n; r++)
        finish_row(&br, r, o + r * dpad, 1, _mm512_reduce_add_ps(_mm512_load_ps(lv + 16 * r)),
                   mrow[r]);
}

/* One function per dtype, paging and one row or several (not inlined into one), so each copy
 * is register-allocated alone: the one-row path (D1) shares no function with the tiles (paged
 * bf16 D1 ran 12% slower in cache once the tiles of its copy grew). */
#define DECODE_GROUP_OF(name, dt, paged, one)                                                  \
    static __attribute__((noinline)) void name(const attn_task *t, const ws_layout *w,         \
                                               const attn_group_rows *gr, const key_range *kr, \
                                               const next_keys *nx)                            \
    {                                                                                          \
        decode_group_dt(t, w, gr, kr, nx, dt, paged, one);                                     \
    }
/* paged: every tile prefetches (contiguous, only tiles of several rows). Literals per copy, so
 * contiguous K/V keep their one-row loop free of prefetches. */
DECODE_GROUP_OF(decode_group_f32, ATTN_F32, false, false)
DECODE_GROUP_OF(decode_group_f32_paged, ATTN_F32, true, false)
DECODE_GROUP_OF(decode_group_bf16, ATTN_BF16, false, false)
DECODE_GROUP_OF(decode_group_bf16_paged, ATTN_BF16, true, false)
DECODE_GROUP_OF(decode_group_f16, ATTN_F16, false, false)
DECODE_GROUP_OF(decode_group_f16_paged, ATTN_F16, true, false)
DECODE_GROUP_OF(decode_row_f32, ATTN_F32, false, true)
DECODE_GROUP_OF(decode_row_f32_paged, ATTN_F32, true, true)
DECODE_GROUP_OF(decode_row_bf16, ATTN_BF16, false, true)
DECODE_GROUP_OF(decode_row_bf16_paged, ATTN_BF16, true, true)
DECODE_GROUP_OF(decode_row_f16, ATTN_F16, false, true)
DECODE_GROUP_OF(decode_row_f16_paged, ATTN_F16, true, true)

typedef void decode_fn(const attn_task *, const ws_layout *, const attn_group_rows *,
                       const key_range *, const next_keys *);

static void decode_group(const attn_task *t, const ws_layout *w, const attn_group_rows *gr,
                         const key_range *kr, const next_keys *nx)
{
    /* [dtype][paged][one row] */
    static decode_fn *const fns[3][2][2] = {
        [ATTN_F32] = {{decode_group_f32, decode_row_f32},
                      {decode_group_f32_paged, decode_row_f32_paged}},
        [ATTN_BF16] = {{decode_group_bf16, decode_row_bf16},
                       {decode_group_bf16_paged, decode_row_bf16_paged}},
        [ATTN_F16] = {{decode_group_f16, decode_row_f16},
                      {decode_group_f16_paged, decode_row_f16_paged}},
    };
    fns[t->problem->dtype][t->problem->page_size != 0][gr->count == 1](t, w, gr, kr, nx);
}

/* ---- entry ------------------------------------------------------------------------------- */

/* Whether int8 and q4 K/V may take the VNNI build of avx512_kvq.c (avx512_vnni_kvq.c): the CPU has
 * AVX512_VNNI and ATTN_DISABLE_ISA leaves it on. Set once at CPU detection (limit_isa), before
 * any run. */
static bool kvq_vnni;

static void avx512_limit_isa(uint32_t isa) { kvq_vnni = isa & ATTN_ISA_AVX512VNNI; }

static attn_status avx512_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                               const attn_partial *part)
{
    if (attn_kv_quantized(t->problem)) /* int8, q4 K/V: avx512_kvq.c */
        return kvq_vnni ? attn_avx512_vnni_kvq_rows(t, key_begin, key_end, part)
                   : attn_avx512_kvq_rows(t, key_begin, key_end, part);
    ws_layout w;
    if (!layout_of(t->problem, t->params, &w))
        return ATTN_ERR_OVERFLOW;
    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const attn_group_rows gr = attn_group_rows_of(t, g);
        if (gr.count <= 0)
            continue;
        const key_range kr = key_range_of(t, g, &gr, key_begin, key_end, part);
        if (gr.count <= t->params[P_DEC]) {
            const next_keys nx = next_keys_of(t, g, key_begin, key_end);
            decode_group(t, &w, &gr, &kr, &nx);
        } else if (t->params[P_MODE] == 1)
            full_row_group(t, &w, &gr, &kr);
        else
            streaming_group(t, &w, &gr, &kr);
    }
    return ATTN_OK;
}

const attn_variant attn_variant_avx512 = {
    .name = "avx512",
    .description = "AVX-512 online softmax: 32x8 register tiles, vertical epilogue, lazy max; "
                   "full-row and decode paths",
    .isa = ATTN_ISA_AVX2 | ATTN_ISA_FMA | ATTN_ISA_AVX512F | ATTN_ISA_AVX512BW |
           ATTN_ISA_AVX512VL | ATTN_ISA_AVX512DQ | ATTN_ISA_F16C,
    .tolerance = 1e-5,
    .dtypes = 1u << ATTN_F32 | 1u << ATTN_BF16 | 1u << ATTN_F16,
    .kv_dtypes = 1u << ATTN_INT8 | 1u << ATTN_Q4,
    .compute_dtype = ATTN_F32,
    .roofline = ATTN_ROOFLINE_FMA512,
    ATTN_PARAMS(avx512_params, avx512_defaults),
    .vector_bits = 512,
    .params_valid = avx512_valid,
    .workspace_size = avx512_workspace,
    .run_partial = avx512_rows,
    .features = ATTN_FEATURE_ALL,
    .limit_isa = avx512_limit_isa,
};
