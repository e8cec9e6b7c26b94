/* avx2.c — x86 AVX2 + FMA attention: streaming online softmax over packed K/V blocks with
 * register-blocked micro-kernels (8-wide ymm, compiled with -mavx2 -mfma -mf16c only).
 *
 * Algorithm (FlashAttention-2 style, per (batch, kv head) group of the task):
 *   The group's query rows are flattened over its query heads (attn_group_rows), so one packed
 *   K/V block serves every head of a GQA group. A tile of bq such rows is packed once into
 *   Q panels; the keys go by blocks of bk:
 *     1. pack the block once per tile: Kᵀ into panels of NR keys, V row-major with head_dim
 *        padded to dp (a multiple of 8) with zeros, so no micro-kernel has an edge case;
 *     2. per micro tile of MR rows: S = Q·Kᵀ (6×16 micro-kernel), epilogue in registers:
 *        × scale·log2(e), additive mask (·log2 e), key limits by select (never -inf + NaN),
 *        running per-row vector max; interior blocks (every key visible, no mask) take a
 *        mask-free epilogue; blocks past every row's key limit are skipped (causal);
 *     3. per row: new max m', the accumulator and sum rescaled by 2^(m-m') only when the max
 *        rises, P = 2^(S - m') in place (exp2_poly.h), l += ΣP;
 *     4. O_acc += P·V (6×16 micro-kernel over d).
 *   Each row is normalised once at the end (a row that saw no key gives zeros).
 *   Full-row mode (full_row=1): a tile's scores against all its keys are kept (bq × Lk floats,
 *   meant for L2), one exact softmax per row, then P·V — no rescaling, but Lk-sized workspace.
 *   Decode path (at most DECODE_MAX_ROWS rows in a group, e.g. Lq = 1): avx2_decode.c.
 *   run_partial: the same over a key range, leaving unnormalised (max, sum, acc) per row.
 *
 * Half inputs (bf16, f16 Q/K/V; compute stays float32, widening is exact, so the result is bit
 * for bit the float32 run on the widened inputs): bf16 widens as a 16-bit left shift, f16 with
 * F16C (vcvtph2ps). The tiled path widens while it packs (Q panels, Kᵀ panels through the
 * same 8×8 register transposes, V panels), so its micro-kernels are the float32 ones unchanged.
 * A row tail of d % 8 halves goes through a 32-bit masked load of its pairs (load8_tail: AVX2
 * has no 16-bit masked load), so nothing past a row is read.
 *
 * Micro-kernels and registers (16 ymm):
 *   Q·Kᵀ 6×16: 12 accumulators, 2 K loads (panel [d][16]) and 1 Q broadcast (panel [d][6]) at a
 *   time, 12 FMAs per d step.  P·V 6×16: 12 accumulators (O_acc tile), 6 P broadcasts from the
 *   score rows, 2 V loads, 12 FMAs per key; an 6×8 version covers dp % 16 == 8.
 *
 * Layout: head_dim contiguous, any element strides for batch/head/seq (stride 0 included).
 *
 * NaN: masked scores are replaced by select, so a NaN in a K row reaches only the rows that
 * attend to it. Only a mask entry of -inf excludes a key (compared unordered: a NaN entry is a
 * NaN score, as in every variant, not an exclusion). A V row with a NaN or infinity would make
 * 0·V = NaN for a masked key inside the P·V micro-kernel, so a block whose packed V is not all
 * finite skips zero weights row by row (as naive does).
 *
 * Workspace per task (floats, each part 64-byte aligned; the same for every dtype), independent
 * of Lk in streaming mode:
 * Q panels bqp·d + K panel bk·d + V panel bk·dp + scores bqp·bk + O_acc bqp·dp + 12·bqp,
 * with bqp = max(round_up(bq, MR), DECODE_MAX_ROWS), dp = round_up(d, 8): 665 KB at the
 * defaults bq=192, bk=256 for d=128 on a 2 MiB L2. In full-row mode the scores are
 * bqp·round_up(Lk, 16). */
#include "avx2_common.h"
#include "kvq.h"

#include <stdio.h>

enum {
    MR = 6,  /* query rows of a micro tile */
    NR = 16, /* keys of a Q·Kᵀ micro tile, head_dim columns of a P·V micro tile */
};

enum { P_BQ, P_BK, P_FULL_ROW };

static const attn_param_info avx2_params[] = {
    [P_BQ] = {"bq", "query rows per tile (over the heads of a GQA group)", MR, 384, MR},
    [P_BK] = {"bk", "keys per packed K/V block", NR, 1024, NR},
    [P_FULL_ROW] = {"full_row", "1: whole score rows per tile and one exact softmax", 0, 1, 1},
};

/* ---- workspace ---------------------------------------------------------------------------- */

/* Float offsets of the parts; total floats, or -1 on overflow. */
enum { PARTS = 12 };
static int64_t workspace_layout(const attn_problem *p, const int32_t *v, int64_t off[PARTS],
                                int64_t *s_ld)
{
    const int64_t d = p->head_dim, dp = round_up(d, 8), bk = v[P_BK];
    const int64_t bqp = max64(round_up(v[P_BQ], MR), DECODE_MAX_ROWS);
    *s_ld = v[P_FULL_ROW] ? max64(round_up(p->len_kv, NR), bk) : bk;
    int64_t size[PARTS] = {bqp * d, bk * d, bk * dp, 0, bqp * dp, bqp * 8, bqp, bqp, 2 * bqp,
                           2 * bqp, bqp, bqp};
    if (__builtin_mul_overflow(bqp, *s_ld, &size[3]))
        return -1;
    int64_t total = 0;
    for (int i = 0; i < PARTS; i++) {
        off[i] = total;
        if (__builtin_add_overflow(total, round_up(size[i], 16), &total))
            return -1;
    }
    return total;
}

static size_t avx2_workspace_size(const attn_problem *p, const int32_t *v)
{
    if (attn_kv_quantized(p)) /* quantized K/V: avx2_kvq.c */
        return attn_kvq_workspace(p);
    int64_t off[PARTS], s_ld, total = workspace_layout(p, v, off, &s_ld);
    if (total < 0 || total > INT64_MAX / (int64_t)sizeof(float))
        return SIZE_MAX;
    return (size_t)total * sizeof(float);
}

static workspace workspace_of(const attn_task *t)
{
    int64_t off[PARTS], s_ld;
    workspace_layout(t->problem, t->params, off, &s_ld);
    float *base = t->workspace;
    return (workspace){.q_panel = base + off[0], .k_panel = base + off[1],
                       .v_panel = base + off[2], .scores = base + off[3], .acc = base + off[4],
                       .max_vec = base + off[5], .run_max = base + off[6],
                       .run_sum = base + off[7], .limit = (int64_t *)(void *)(base + off[8]),
                       .first = (int64_t *)(void *)(base + off[9]), .slope = base + off[10],
                       .pos = base + off[11], .s_ld = s_ld};
}

/* ---- packing ------------------------------------------------------------------------------ */

/* Q rows of one micro tile (MR row pointers of dt elements; NULL = padding row) into [d][MR],
 * widened. */
static void pack_q(float *restrict panel, const void *const rows[MR], int64_t d, attn_dtype dt)
{
    for (int r = 0; r < MR; r++) {
        if (!rows[r] || dt == ATTN_F32)
            for (int64_t c = 0; c < d; c++)
                panel[c * MR + r] = rows[r] ? ((const float *)rows[r])[c] : 0.0f;
        else
            for (int64_t c = 0; c < d; c++)
                panel[c * MR + r] = elem(rows[r], c, dt);
    }
}

/* 8×8 transpose of the ymm rows in place. */
ALWAYS_INLINE void transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

/* Keys [0, nk) of a block (row j at k + j·ld, dt elements) into Kᵀ panels [nkp/NR][d][NR],
 * widened, keys past nk zero. Full 8×8 squares go through registers. */
ALWAYS_INLINE void pack_k_dt(float *restrict panel, const void *k, int64_t ld, int64_t nk,
                             int64_t nkp, int64_t d, attn_dtype dt)
{
    for (int64_t j8 = 0; j8 < nkp; j8 += 8) {
        float *dst = panel + (j8 / NR) * d * NR + j8 % NR;
        const int64_t keys = min64(8, nk - j8);
        int64_t c = 0;
        if (keys == 8)
            for (; c + 8 <= d; c += 8) {
                __m256 r[8];
                for (int jj = 0; jj < 8; jj++)
                    r[jj] = load8(row_at(k, j8 + jj, ld, dt), c, dt);
                transpose8(r);
                for (int cc = 0; cc < 8; cc++)
                    _mm256_store_ps(dst + (c + cc) * NR, r[cc]);
            }
        for (; c < d; c++)
            for (int64_t jj = 0; jj < 8; jj++)
                dst[c * NR + jj] = jj < keys ? elem(row_at(k, j8 + jj, ld, dt), c, dt) : 0.0f;
    }
}

static void pack_k(float *restrict panel, const void *k, int64_t ld, int64_t nk, int64_t nkp,
                   int64_t d, attn_dtype dt)
{
    switch (dt) {
    case ATTN_F32: pack_k_dt(panel, k, ld, nk, nkp, d, ATTN_F32); break;
    case ATTN_BF16: pack_k_dt(panel, k, ld, nk, nkp, d, ATTN_BF16); break;
    case ATTN_F16: pack_k_dt(panel, k, ld, nk, nkp, d, ATTN_F16); break;
    }
}

/* Keys [0, nk) of a V block (dt elements) into [nkp][dp], widened and zero padded. Returns true
 * when every value is finite (x - x is 0 exactly for finite x, NaN otherwise). */
ALWAYS_INLINE bool pack_v_dt(float *restrict panel, const void *v, int64_t ld, int64_t nk,
                             int64_t nkp, int64_t d, int64_t dp, attn_dtype dt)
{
    __m256 bad = _mm256_setzero_ps();
    const __m256i tail = lanes_below(d % 8);
    for (int64_t j = 0; j < nkp; j++) {
        float *dst = panel + j * dp;
        if (j >= nk) {
            memset(dst, 0, (size_t)dp * sizeof *dst);
            continue;
        }
        const void *src = row_at(v, j, ld, dt);
        int64_t c = 0;
        for (; c + 8 <= d; c += 8) {
            const __m256 x = load8(src, c, dt);
            bad = _mm256_or_ps(bad, _mm256_sub_ps(x, x));
            _mm256_store_ps(dst + c, x);
        }
        if (c < d) {
            const __m256 x = load8_tail(src, c, d - c, tail, dt);
            bad = _mm256_or_ps(bad, _mm256_sub_ps(x, x));
            _mm256_store_ps(dst + c, x);
        }
    }
    return _mm256_movemask_ps(_mm256_cmp_ps(bad, bad, _CMP_UNORD_Q)) == 0;
}

static bool pack_v(float *restrict panel, const void *v, int64_t ld, int64_t nk, int64_t nkp,
                   int64_t d, int64_t dp, attn_dtype dt)
{
    switch (dt) {
    case ATTN_BF16: return pack_v_dt(panel, v, ld, nk, nkp, d, dp, ATTN_BF16);
    case ATTN_F16: return pack_v_dt(panel, v, ld, nk, nkp, d, dp, ATTN_F16);
    default: return pack_v_dt(panel, v, ld, nk, nkp, d, dp, ATTN_F32);
    }
}

/* ---- micro-kernels ------------------------------------------------------------------------ */

/* acc[r][0..1] = Σ_c Q[r][c]·K[j][c] for the MR rows of a Q panel and the NR keys of a K panel. */
ALWAYS_INLINE void qk_6x16(const float *restrict qp, const float *restrict kp, int64_t d,
                           __m256 acc[MR][2])
{
    for (int r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t c = 0; c < d; c++) {
        const __m256 k0 = _mm256_load_ps(kp + c * NR), k1 = _mm256_load_ps(kp + c * NR + 8);
        for (int r = 0; r < MR; r++) {
            const __m256 q = _mm256_broadcast_ss(qp + c * MR + r);
            acc[r][0] = _mm256_fmadd_ps(q, k0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(q, k1, acc[r][1]);
        }
    }
}

/* A[r][c0 .. c0 + 8·nv) += Σ_j P[r][j]·V[j][c0 ..] over keys [0, nk), nv = 1 or 2. */
ALWAYS_INLINE void pv_6xn(const float *const prow[MR], const float *restrict vp, int64_t dp,
                          int64_t nk, float *const arow[MR], int64_t c0, int nv)
{
    __m256 acc[MR][2];
    for (int r = 0; r < MR; r++)
        for (int x = 0; x < nv; x++)
            acc[r][x] = _mm256_load_ps(arow[r] + c0 + 8 * x);
    for (int64_t j = 0; j < nk; j++) {
        __m256 v[2];
        for (int x = 0; x < nv; x++)
            v[x] = _mm256_load_ps(vp + j * dp + c0 + 8 * x);
        for (int r = 0; r < MR; r++) {
            const __m256 w = _mm256_broadcast_ss(prow[r] + j);
            for (int x = 0; x < nv; x++)
                acc[r][x] = _mm256_fmadd_ps(w, v[x], acc[r][x]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int x = 0; x < nv; x++)
            _mm256_store_ps(arow[r] + c0 + 8 * x, acc[r][x]);
}

/* O_acc[r] += P[r]·V for one micro tile and one block. */
static void pv_tile(const float *const prow[MR], const float *restrict vp, int64_t dp,
                    int64_t nk, float *const arow[MR])
{
    int64_t c0 = 0;
    for (; c0 + 16 <= dp; c0 += 16)
        pv_6xn(prow, vp, dp, nk, arow, c0, 2);
    if (c0 < dp)
        pv_6xn(prow, vp, dp, nk, arow, c0, 1);
}

/* The same sum row by row, skipping zero weights: used when the V block is not all finite,
 * so a masked key's 0·NaN never reaches a row. */
static void pv_rows_skip_zero(const float *p, int64_t nk, const float *vp, int64_t dp,
                              float *acc)
{
    for (int64_t j = 0; j < nk; j++) {
        if (p[j] == 0.0f)
            continue;
        const __m256 w = _mm256_broadcast_ss(p + j);
        for (int64_t c = 0; c < dp; c += 8)
            _mm256_store_ps(acc + c, _mm256_fmadd_ps(w, _mm256_load_ps(vp + j * dp + c),
                                                     _mm256_load_ps(acc + c)));
    }
}

/* ---- score epilogue ----------------------------------------------------------------------- */

typedef struct tile_rows {
    int64_t key0;           /* key index of panel column 0 */
    float *srow[MR];        /* score rows, at panel column 0 */
    float *mrow[MR];        /* running vector max of each row */
    const float *mask[MR];  /* additive mask rows (NULL: none), at key0 */
    int64_t limit[MR];      /* key limits */
    int64_t first[MR];      /* first keys (sliding window) */
    float slope[MR], pos[MR]; /* ALiBi */
} tile_rows;

/* Q·Kᵀ of one micro tile against nkp keys (a multiple of NR), scaled into log2 units and
 * stored; `interior` means every key is visible to every row and there is no mask. */
ALWAYS_INLINE void score_tile(const float *restrict qp, const float *restrict kp, int64_t d,
                              int64_t nkp, const tile_rows *tr, float scale_log2e,
                              bool interior, const score_opts *opts)
{
    const __m256 cs = _mm256_set1_ps(scale_log2e), log2e = _mm256_set1_ps(ATTN_LOG2E);
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    for (int64_t jb = 0; jb < nkp; jb += NR) {
        __m256 acc[MR][2];
        qk_6x16(qp, kp + jb * d, d, acc);
        for (int r = 0; r < MR; r++) {
            __m256 s[2];
            for (int x = 0; x < 2; x++) {
                const int64_t key = tr->key0 + jb + 8 * x;
                s[x] = apply_options(opts, _mm256_mul_ps(acc[r][x], cs), key, tr->slope[r],
                                     tr->pos[r]);
                if (interior)
                    continue;
                __m256 valid = band_lanes(key, tr->first[r], tr->limit[r]);
                if (tr->mask[r]) {
                    const __m256 m = _mm256_maskload_ps(tr->mask[r] + jb + 8 * x,
                                                        _mm256_castps_si256(valid));
                    valid = _mm256_and_ps(valid, _mm256_cmp_ps(m, neg_inf, _CMP_NEQ_UQ));
                    s[x] = _mm256_fmadd_ps(m, log2e, s[x]);
                }
                s[x] = _mm256_blendv_ps(neg_inf, s[x], valid);
            }
            _mm256_storeu_ps(tr->srow[r] + jb, s[0]);
            _mm256_storeu_ps(tr->srow[r] + jb + 8, s[1]);
            const __m256 m = _mm256_load_ps(tr->mrow[r]);
            _mm256_store_ps(tr->mrow[r], _mm256_max_ps(s[0], _mm256_max_ps(s[1], m)));
        }
    }
}

/* ---- tiled path --------------------------------------------------------------------------- */

typedef struct tile_ctx {
    const attn_task *t;
    const workspace *ws;
    const key_range *kr;
    attn_group_rows gr;
    int64_t d, dp, bk, r0, nr, micro_tiles, tile_keys;
    int64_t tile_first; /* smallest first key of the rows that see a key */
    float scale_log2e;
    score_opts opts;
    bool full_row; /* score columns at key - key_begin (else at block column) */
} tile_ctx;

/* Per-micro-tile view: score/max rows, masks, limits; the range of limits. */
static void micro_tile_rows(const tile_ctx *c, int64_t mt, int64_t j0, tile_rows *tr,
                            int64_t *lim_min, int64_t *lim_max, int64_t *first_max)
{
    const attn_problem *p = c->t->problem;
    const workspace *ws = c->ws;
    tr->key0 = j0;
    *lim_min = INT64_MAX;
    *lim_max = 0;
    *first_max = 0;
    for (int r = 0; r < MR; r++) {
        const int64_t row = mt * MR + r; /* within the tile */
        tr->srow[r] = ws->scores + row * ws->s_ld + (c->full_row ? j0 - c->kr->key_begin : 0);
        tr->mrow[r] = ws->max_vec + row * 8;
        tr->limit[r] = ws->limit[row];
        tr->first[r] = ws->first[row];
        tr->slope[r] = ws->slope[row];
        tr->pos[r] = ws->pos[row];
        *first_max = max64(*first_max, tr->first[r]);
        tr->mask[r] = NULL;
        if (p->mask) {
            int64_t h, i;
            row_of(&c->gr, c->t, c->r0 + min64(row, c->nr - 1), &h, &i);
            tr->mask[r] = attn_mask_row(p, i) + j0;
        }
        *lim_min = min64(*lim_min, tr->limit[r]);
        *lim_max = max64(*lim_max, tr->limit[r]);
    }
}

/* Largest key limit of the rows of micro tile mt. */
static int64_t micro_tile_limit(const tile_ctx *c, int64_t mt)
{
    int64_t lim_max = 0;
    for (int r = 0; r < MR; r++)
        lim_max = max64(lim_max, c->ws->limit[mt * MR + r]);
    return lim_max;
}

/* Panel columns (a multiple of NR) micro tile mt uses in the block [j0, j0 + nk): none past its
 * rows' key limits, so a causal diagonal block costs only the keys below the diagonal. */
static int64_t micro_tile_keys(const tile_ctx *c, int64_t mt, int64_t j0, int64_t nk)
{
    const int64_t lim_max = micro_tile_limit(c, mt);
    return lim_max <= j0 ? 0 : min64(round_up(nk, NR), round_up(lim_max - j0, NR));
}

/* Scores of every live micro tile against one packed K block [j0, j0 + nk). */
static void score_block(const tile_ctx *c, int64_t j0, int64_t nk)
{
    const bool has_mask = c->t->problem->mask != NULL;
    for (int64_t mt = 0; mt < c->micro_tiles; mt++) {
        const int64_t nkp = micro_tile_keys(c, mt, j0, nk);
        if (nkp == 0)
            continue; /* every row of the micro tile is past its key limit (causal) */
        tile_rows tr;
        int64_t lim_min, lim_max, first_max;
        micro_tile_rows(c, mt, j0, &tr, &lim_min, &lim_max, &first_max);
        const float *qp = c->ws->q_panel + mt * MR * c->d;
        const bool interior = !has_mask && lim_min >= j0 + nkp && first_max <= j0;
        /* Four copies of the tile, each with its flags constant: the options' epilogue inside
         * the 6x16 loop cost P1 1.6x when compiled in for problems without options. */
        if (c->opts.softcap || c->opts.alibi) {
            if (interior)
                score_tile(qp, c->ws->k_panel, c->d, nkp, &tr, c->scale_log2e, true, &c->opts);
            else
                score_tile(qp, c->ws->k_panel, c->d, nkp, &tr, c->scale_log2e, false, &c->opts);
        } else if (interior) {
            score_tile(qp, c->ws->k_panel, c->d, nkp, &tr, c->scale_log2e, true, NULL);
        } else {
            score_tile(qp, c->ws->k_panel, c->d, nkp, &tr, c->scale_log2e, false, NULL);
        }
    }
}

/* O_acc += P·V of every live micro tile for one packed V block. */
static void pv_block(const tile_ctx *c, int64_t j0, int64_t nk, bool v_finite)
{
    const workspace *ws = c->ws;
    const int64_t col = c->full_row ? j0 - c->kr->key_begin : 0;
    for (int64_t mt = 0; mt < c->micro_tiles; mt++) {
        const int64_t nkp = micro_tile_keys(c, mt, j0, nk);
        if (nkp == 0)
            continue;
        const float *prow[MR];
        float *arow[MR];
        for (int r = 0; r < MR; r++) {
            prow[r] = ws->scores + (mt * MR + r) * ws->s_ld + col;
            arow[r] = ws->acc + (mt * MR + r) * c->dp;
        }
        if (v_finite) {
            pv_tile(prow, ws->v_panel, c->dp, nkp, arow);
        } else {
            for (int r = 0; r < MR; r++)
                pv_rows_skip_zero(prow[r], nkp, ws->v_panel, c->dp, arow[r]);
        }
    }
}

/* Streaming update of each row after a block's scores: rescale on a rising max, P in place. */
static void softmax_block(const tile_ctx *c, int64_t j0, int64_t nk)
{
    const workspace *ws = c->ws;
    for (int64_t row = 0; row < c->micro_tiles * MR; row++) {
        const int64_t nkp = micro_tile_keys(c, row / MR, j0, nk);
        if (nkp == 0)
            continue; /* the micro tile skipped this block */
        float *mv = ws->max_vec + row * 8;
        const float m_blk = hmax(_mm256_load_ps(mv));
        _mm256_store_ps(mv, _mm256_set1_ps(-INFINITY));
        online_softmax_step(ws->scores + row * ws->s_ld, nkp, m_blk, &ws->run_max[row],
                            &ws->run_sum[row], ws->acc + row * c->dp, c->dp);
    }
}

/* Keys of block j0 packed: K (as Kᵀ panels) and V for the group. Paged K/V: a K block that
 * crosses a page edge is gathered into the V panel first (free until pack_block_v fills it;
 * its bk·dp floats hold bk rows of d elements), so the 8×8 transposes read one stride; V rows
 * are packed a page run at a time. */
static void pack_block_k(const tile_ctx *c, int64_t j0, int64_t nk)
{
    const attn_task *t = c->t;
    const attn_problem *p = t->problem;
    const void *k = attn_row(t, 'k', c->gr.b, c->gr.hkv, j0);
    int64_t ld = p->k.seq;
    if (attn_kv_run(p, j0, nk) < nk) {
        attn_kv_gather(t, 'k', c->gr.b, c->gr.hkv, j0, j0 + nk, c->ws->v_panel);
        k = c->ws->v_panel;
        ld = c->d;
    }
    pack_k(c->ws->k_panel, k, ld, nk, round_up(nk, NR), c->d, p->dtype);
}

static bool pack_block_v(const tile_ctx *c, int64_t j0, int64_t nk)
{
    const attn_task *t = c->t;
    const attn_problem *p = t->problem;
    bool finite = true;
    for (int64_t off = 0, run; off < nk; off += run) {
        run = attn_kv_run(p, j0 + off, nk - off);
        const int64_t padded = off + run < nk ? run : round_up(nk, NR) - off;
        finite &= pack_v(c->ws->v_panel + off * c->dp, attn_row(t, 'v', c->gr.b, c->gr.hkv,
                         j0 + off), p->v.seq, run, padded, c->d, c->dp, p->dtype);
    }
    return finite;
}

static void run_tile(tile_ctx *c)
{
    const attn_task *t = c->t;
    const attn_problem *p = t->problem;
    const workspace *ws = c->ws;
    const int64_t rows_p = c->micro_tiles * MR;

    /* Row state, limits (padding rows copy the last real row) and Q panels. */
    c->tile_keys = 0;
    c->tile_first = INT64_MAX;
    c->opts = score_opts_of(p);
    for (int64_t row = 0; row < rows_p; row++) {
        int64_t h, i;
        row_of(&c->gr, t, c->r0 + min64(row, c->nr - 1), &h, &i);
        ws->limit[row] = max64(min64(attn_key_limit(p, c->gr.b, i), c->kr->key_end), 0);
        ws->first[row] = attn_key_start(p, i);
        ws->slope[row] = p->alibi_slopes ? p->alibi_slopes[h] * ATTN_LOG2E : 0.0f;
        ws->pos[row] = (float)(i + p->len_kv - p->len_q);
        if (ws->limit[row] > ws->first[row])
            c->tile_first = min64(c->tile_first, ws->first[row]);
        c->tile_keys = max64(c->tile_keys, ws->limit[row]);
        ws->run_max[row] = -INFINITY;
        ws->run_sum[row] = 0.0f;
        _mm256_store_ps(ws->max_vec + row * 8, _mm256_set1_ps(-INFINITY));
        memset(ws->acc + row * c->dp, 0, (size_t)c->dp * sizeof(float));
    }
    for (int64_t mt = 0; mt < c->micro_tiles; mt++) {
        const void *qrow[MR];
        for (int r = 0; r < MR; r++) {
            const int64_t row = mt * MR + r;
            int64_t h, i;
            row_of(&c->gr, t, c->r0 + row, &h, &i);
            qrow[r] = row < c->nr ? attn_row(t, 'q', c->gr.b, h, i) : NULL;
        }
        pack_q(ws->q_panel + mt * MR * c->d, qrow, c->d, p->dtype);
    }

    if (!c->full_row) {
        /* key blocks before every row's window are skipped whole */
        for (int64_t j0 = max64(c->kr->key_begin, c->tile_first); j0 < c->tile_keys;
             j0 += c->bk) {
            const int64_t nk = min64(c->bk, c->tile_keys - j0);
            pack_block_k(c, j0, nk);
            const bool v_finite = pack_block_v(c, j0, nk);
            score_block(c, j0, nk);
            softmax_block(c, j0, nk);
            pv_block(c, j0, nk, v_finite);
        }
    } else {
        for (int64_t j0 = c->kr->key_begin; j0 < c->tile_keys; j0 += c->bk) {
            const int64_t nk = min64(c->bk, c->tile_keys - j0);
            pack_block_k(c, j0, nk);
            score_block(c, j0, nk);
        }
        /* One exact softmax per row over the columns its micro tile wrote. */
        for (int64_t row = 0; row < rows_p; row++) {
            const int64_t end =
                round_up(max64(micro_tile_limit(c, row / MR) - c->kr->key_begin, 0), NR);
            const float m = hmax(_mm256_load_ps(ws->max_vec + row * 8));
            ws->run_max[row] = m;
            ws->run_sum[row] = exp_row(ws->scores + row * ws->s_ld, end, m);
        }
        for (int64_t j0 = c->kr->key_begin; j0 < c->tile_keys; j0 += c->bk) {
            const int64_t nk = min64(c->bk, c->tile_keys - j0);
            const bool v_finite = pack_block_v(c, j0, nk);
            pv_block(c, j0, nk, v_finite);
        }
    }

    for (int64_t row = 0; row < c->nr; row++)
        finish_row(t, &c->gr, c->kr, c->r0 + row, ws->acc + row * c->dp, ws->run_sum[row],
                   ws->run_max[row]);
}

/* ---- entry points ------------------------------------------------------------------------- */

/* run_partial, and run with part NULL over every key (variant.h). */
static attn_status avx2_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                             const attn_partial *part)
{
    if (attn_kv_quantized(t->problem)) /* int8, q4 K/V: avx2_kvq.c */
        return attn_avx2_kvq_rows(t, key_begin, key_end, part);
    const attn_problem *p = t->problem;
    const workspace ws = workspace_of(t);
    const float scale_log2e = t->scale * ATTN_LOG2E;
    const int64_t bq = t->params[P_BQ], bk = t->params[P_BK];
    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const attn_group_rows gr = attn_group_rows_of(t, g);
        const key_range kr = {.key_begin = key_begin, .key_end = key_end, .part = part,
                              .part_row0 = (g - t->group_begin) * gr.count};
        if (gr.count <= DECODE_MAX_ROWS) {
            attn_avx2_decode_group(t, &ws, &gr, &kr, bk, scale_log2e);
            continue;
        }
        for (int64_t r0 = 0; r0 < gr.count; r0 += bq) {
            tile_ctx c = {.t = t, .ws = &ws, .kr = &kr, .gr = gr, .d = p->head_dim,
                          .dp = round_up(p->head_dim, 8), .bk = bk, .r0 = r0,
                          .nr = min64(bq, gr.count - r0), .scale_log2e = scale_log2e,
                          .full_row = t->params[P_FULL_ROW] != 0};
            c.micro_tiles = (c.nr + MR - 1) / MR;
            run_tile(&c);
        }
    }
    return ATTN_OK;
}

/* Defaults (AVX2 family). Each tile re-reads the packed K/V block, so large tiles first:
 * bq=192 reads K/V a sixth as often as bq=32. The K and V panels take an eighth of L2, the
 * tile's Q panels and O_acc a quarter, the scores (bq·bk floats, at most 192 KiB) the rest of
 * half of L2 — the whole workspace stays in L2 (1 MiB: bq=192 bk=128 at d=128, 192/256 at
 * d=64; 2 MiB: 192/256 at d=128). */
static const attn_default_rule avx2_defaults[] = {
    /*             fact           div per_d lk dm min max  max_half fixed */
    [P_BQ]      = {ATTN_FACT_L2,   4, 8,    0, 8, 48, 192, 0,       0,
                   "Q panels and O_acc: 2 x dp floats per row"},
    [P_BK]      = {ATTN_FACT_L2,   8, 8,    0, 8, 64, 256, 0,       0,
                   "K and V panels: 2 x dp floats per key"},
    [P_FULL_ROW] = {ATTN_FACT_NONE, 0, 0,   0, 0, 0,  0,   0,       0,
                   "streaming; full rows need Lk-sized workspace"},
};

static bool avx2_params_valid(const attn_problem *p, const int32_t *v, char *why, size_t len)
{
    if (avx2_workspace_size(p, v) == SIZE_MAX) {
        snprintf(why, len, "full_row=1 needs bq x len_kv scores, which overflow");
        return false;
    }
    return true;
}

const attn_variant attn_variant_avx2 = {
    .name = "avx2",
    .description = "AVX2+FMA streaming softmax, packed K/V blocks, 6x16 micro-kernels",
    .isa = ATTN_ISA_AVX2 | ATTN_ISA_FMA | ATTN_ISA_F16C,
    .tolerance = 1e-5,
    .dtypes = 1u << ATTN_F32 | 1u << ATTN_BF16 | 1u << ATTN_F16,
    .kv_dtypes = 1u << ATTN_INT8 | 1u << ATTN_Q4,
    .compute_dtype = ATTN_F32,
    .roofline = ATTN_ROOFLINE_FMA256,
    ATTN_PARAMS(avx2_params, avx2_defaults),
    .vector_bits = 256,
    .params_valid = avx2_params_valid,
    .workspace_size = avx2_workspace_size,
    .run_partial = avx2_rows,
    .features = ATTN_FEATURE_ALL,
};
