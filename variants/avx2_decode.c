/* avx2_decode.c — the avx2 variant's decode path (avx2.c sends it each group of at most
 * DECODE_MAX_ROWS rows, e.g. Lq = 1; compiled with -mavx2 -mfma -mf16c only, its helpers shared
 * with avx2.c in avx2_common.h).
 *
 * Algorithm: no packing; K and V rows are read straight from memory, 8 keys per dot-product
 * step, so K/V stream at memory speed. The rows of a group (the query heads of a GQA group, or
 * Lq = 4 draft tokens) go in tiles of up to DEC_R = 4 that share each K and V vector load: scores
 * DEC_KS keys side by side (R·2 accumulators, each Q vector loaded once for both keys), P·V with
 * R·cols accumulators per pass over DEC_PV_KEYS keys held in L1 (the same FMAs as one row at a
 * time, a quarter of the K/V loads; a GQA-4 tile in L2 ran 1.8x (f32) and 1.4x (bf16) faster
 * on Zen 4 than the former re-read of the block per row). The tiles prefetch K and V
 * DEC_PF_BYTES of rows ahead into L2 (the one-row bk-key blocks of paged K/V too: each page
 * starts a stream the hardware prefetchers must find again), one prefetch per line beside the
 * loads (with R rows' FMAs per byte the hardware prefetchers alone fell behind: D2 f32 1.5x
 * faster with it). The
 * model options (window, ALiBi, soft cap) go through the tiles' own copies, with each row's
 * slope, i' and band start and the prefill's epilogue; a group of one row (D1) keeps the
 * one-row loops. The online softmax per block and the rows' end are the tiled path's
 * (avx2_common.h).
 *
 * One row with contiguous K/V (D1) walks all its keys at once, not in bk-key blocks: turns of
 * DEC_TURN keys whose V rows (each whole, key after key) alternate with the next turn's K rows
 * every DEC_PIECE_BYTES, no software prefetch (decode_row_turns). The bk-key blocks (scores of
 * bk keys, then P·V in passes of 64 columns over every key) streamed D1 at 0.74-0.82 of a
 * plain read, turns of 16 keys at 0.93-1.09, and ran 1.15-1.3x faster in cache (Zen 4). Paged
 * K/V keep the bk-key blocks below.
 *
 * Half inputs (bf16, f16; compute stays float32, bit for bit the float32 run on the widened
 * inputs): K and V are read in place and widened in the loads (a copy of the loops per dtype,
 * chosen once per block), moving half the bytes of float32; a group of one row (D1) reads bf16
 * rows in an even/odd column order (load8_dec: one ALU op per 8 columns). K is read key by key
 * through one load instruction, which the hardware prefetchers follow (D1 on Zen 4: f32 1.5x
 * faster than 8 keys read column by column with prefetch); half Q rows are widened once into
 * the workspace's Q panels. */
#include "avx2_common.h"

enum {
    DEC_R = 4,            /* decode rows sharing each load of a K or V vector */
    DEC_KS = 2,           /* keys scored side by side in a decode tile, sharing each Q load */
    DEC_PF_BYTES = 32768, /* how far ahead (bytes of K or V rows) decode prefetches, into L2 */
    DEC_TURN = 64,        /* keys per softmax step of the one-row path (contiguous K/V) */
    DEC_PIECE_BYTES = 2048, /* bytes of rows per alternation of its K and V reads (>= 8 keys) */
    DEC_PV_KEYS = 16,     /* keys per round of a tile's P·V passes (at most 32: bits of `all`) */
};

/* ---- prefetch ----------------------------------------------------------------------------- */

/* Software prefetch into L2 of the line holding element c of `row` (a decode tile's K and V
 * rows pf_keys() keys ahead, from attn_kv_rows_ahead: through the page table when paged). */
ALWAYS_INLINE void prefetch_row(const void *row, int64_t c, attn_dtype dt)
{
    _mm_prefetch((const char *)row + c * (dt == ATTN_F32 ? 4 : 2), _MM_HINT_T1);
}

/* Software prefetch into L2 of a whole row of d dt elements, one per line: once per key,
 * outside the FMA loops (a prefetch branch inside them made GCC spill accumulators there). */
ALWAYS_INLINE void prefetch_whole_row(const void *row, int64_t d, attn_dtype dt)
{
    const int64_t bytes = d * (dt == ATTN_F32 ? 4 : 2);
    for (int64_t b = 0; b < bytes; b += 64)
        _mm_prefetch((const char *)row + b, _MM_HINT_T1);
}

/* Keys ahead that decode prefetches: DEC_PF_BYTES of rows, so half rows prefetch as far
 * ahead in time as float32 ones (64 keys at d = 128 for float32, 128 for bf16/f16). */
ALWAYS_INLINE int64_t pf_keys(int64_t d, attn_dtype dt)
{
    return max64(8, DEC_PF_BYTES / (d * (dt == ATTN_F32 ? 4 : 2)) / 8 * 8);
}

/* ---- bf16 column order -------------------------------------------------------------------- */

/* Decode's bf16 column order: a 32-byte load holds 16 bf16 columns [c, c + 16) as 8 pairs, and
 * one ALU op widens each half of them (shift left 16: the even columns; mask the high
 * half: the odd ones) where vpmovzxwd + shift took two per 8 columns and capped the decode
 * loops' rate. So within each whole 16 columns of [0, d16) (d16 = d rounded down to 16) the
 * widened Q rows, the K/V vectors and the accumulators hold the even columns, then the odd
 * ones; the columns from d16 on (and every column of f32 and f16) stay in order. */

/* load8 in decode's column order for a vector c below d16 (a multiple of 8); odd says
 * c % 16 == 8, a constant at the calls in the loops, so each compiles to one ALU op (and the
 * two halves' loads of the same 32 bytes to one load). */
ALWAYS_INLINE __m256 load8_ord(const void *row, int64_t c, bool odd, attn_dtype dt)
{
    if (dt != ATTN_BF16)
        return load8(row, c, dt);
    const __m256i x = _mm256_loadu_si256(
        (const __m256i *)(const void *)((const uint16_t *)row + c - (odd ? 8 : 0)));
    return _mm256_castsi256_ps(odd ? _mm256_and_si256(x, _mm256_set1_epi32((int)0xffff0000u))
                                   : _mm256_slli_epi32(x, 16));
}

/* The same for any vector c with c + 8 <= d. */
ALWAYS_INLINE __m256 load8_dec(const void *row, int64_t c, bool odd, int64_t d16, attn_dtype dt)
{
    return dt == ATTN_BF16 && c < d16 ? load8_ord(row, c, odd, dt) : load8(row, c, dt);
}

/* Place of column c in decode's bf16 order (in order from d16 on). */
static int64_t dec_col(int64_t c, int64_t d16)
{
    if (c >= d16)
        return c;
    const int64_t k = c & 15;
    return (c & ~(int64_t)15) + (k & 1 ? 8 : 0) + k / 2;
}

/* ---- one row at a time -------------------------------------------------------------------- */

/* One decode row's band start and options. */
typedef struct dec_row {
    int64_t first;
    float slope, pos;
    const score_opts *opts;
} dec_row;

/* Scores of one query row (float32) against keys [j0, j0 + nk) read in place and widened in
 * the loads, 8 keys per step (lanes past nk read key j0 + nk - 1 again and are masked).
 * Returns the block max. */
ALWAYS_INLINE float decode_scores_dt(const attn_task *t, const attn_group_rows *gr,
                                     const float *q, const float *mask, int64_t j0, int64_t nk,
                                     float *s, float scale_log2e, const dec_row *dr,
                                     attn_dtype dt, bool prefetch)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim;
    const __m256i dtail = lanes_below(d % 8);
    const int64_t es = dt == ATTN_F32 ? 4 : 2;
    const __m256 cs = _mm256_set1_ps(scale_log2e), log2e = _mm256_set1_ps(ATTN_LOG2E);
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    __m256 vmax = neg_inf;
    for (int64_t j = 0; j < nk; j += 8) {
        /* One key after another, each row front to back, through one (not unrolled) loop: a
         * single load instruction walks K in address order and the hardware prefetchers
         * follow it (8 rows read column by column, with software prefetch, read D1 at half
         * the memory rate on Zen 4). Per-key partial vectors go through a stack array to one
         * transpose-add per 8 keys. */
        __m256 acc[8];
        const void *krow[8], *kpf[8]; /* one page lookup per run of keys; past nk: key j's row */
        attn_kv_rows(t, 'k', gr->b, gr->hkv, j0 + j, (int)min64(nk - j, 8), 8, krow);
        if (prefetch) /* paged K/V (decode_scores) */
            attn_kv_rows_ahead(t, 'k', gr->b, gr->hkv, j0 + j + pf_keys(d, dt), p->len_kv, 8, krow,
                               kpf);
#pragma GCC unroll 1
        for (int x = 0; x < 8; x++) {
            const void *k = krow[x];
            /* four chains: a key's 16 FMAs (d = 128) in 4 cycles of latency each, not 8 */
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
            int64_t c = 0;
            for (; c + 32 <= d; c += 32) {
                if (prefetch) /* one prefetch per line */
                    for (int64_t pc = c; pc < c + 32; pc += 64 / es)
                        prefetch_row(kpf[x], pc, dt);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), load8_ord(k, c, false, dt), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 8), load8_ord(k, c + 8, true, dt), a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 16), load8_ord(k, c + 16, false, dt), a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 24), load8_ord(k, c + 24, true, dt), a3);
            }
            a0 = _mm256_add_ps(a0, a2);
            a1 = _mm256_add_ps(a1, a3);
            if (c + 16 <= d) {
                if (prefetch)
                    prefetch_row(kpf[x], c, dt);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), load8_ord(k, c, false, dt), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 8), load8_ord(k, c + 8, true, dt), a1);
                c += 16;
            }
            if (c + 8 <= d) {
                if (prefetch && c * es % 64 == 0)
                    prefetch_row(kpf[x], c, dt);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), load8(k, c, dt), a0);
                c += 8;
            }
            if (c < d)
                a1 = _mm256_fmadd_ps(_mm256_maskload_ps(q + c, dtail),
                                     load8_tail(k, c, d - c, dtail, dt), a1);
            acc[x] = _mm256_add_ps(a0, a1);
        }
        /* Transpose-reduce the 8 accumulators into one vector of 8 dot products. */
        const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
        const __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]), t3 = _mm256_hadd_ps(acc[6], acc[7]);
        const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
        const __m256 dot = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                         _mm256_permute2f128_ps(u0, u1, 0x31));
        __m256 valid = band_lanes(j0 + j, dr->first, j0 + nk);
        __m256 sv = apply_options(dr->opts, _mm256_mul_ps(dot, cs), j0 + j, dr->slope, dr->pos);
        if (mask) {
            const __m256 m = _mm256_maskload_ps(mask + j0 + j, _mm256_castps_si256(valid));
            valid = _mm256_and_ps(valid, _mm256_cmp_ps(m, neg_inf, _CMP_NEQ_UQ));
            sv = _mm256_fmadd_ps(m, log2e, sv);
        }
        sv = _mm256_blendv_ps(neg_inf, sv, valid);
        _mm256_storeu_ps(s + j, sv);
        vmax = _mm256_max_ps(sv, vmax);
    }
    return hmax(vmax);
}

static float decode_scores(const attn_task *t, const attn_group_rows *gr, const float *q,
                           const float *mask, int64_t j0, int64_t nk, float *s,
                           float scale_log2e, const dec_row *dr)
{
    /* Literals: a copy per dtype; these bk-key blocks serve paged K/V, so they prefetch. */
#define SCORES(dt) decode_scores_dt(t, gr, q, mask, j0, nk, s, scale_log2e, dr, dt, true)
    switch (t->problem->dtype) {
    case ATTN_BF16: return SCORES(ATTN_BF16);
    case ATTN_F16: return SCORES(ATTN_F16);
    default: return SCORES(ATTN_F32);
    }
#undef SCORES
}

/* acc[0, dp) += Σ_j P[j]·V[j] over keys read in place and widened in the loads; zero weights
 * (masked keys) are skipped, so they never meet a NaN in V. Eight accumulators cover 64
 * columns per pass. With prefetch (paged), each pass's columns pf_keys() keys ahead. */
ALWAYS_INLINE void decode_pv_dt(const attn_task *t, const attn_group_rows *gr, const float *s,
                                int64_t j0, int64_t nk, float *acc, int64_t d, attn_dtype dt,
                                bool prefetch)
{
    const int64_t ld = t->problem->v.seq, es = dt == ATTN_F32 ? 4 : 2;
    const void *v = attn_row(t, 'v', gr->b, gr->hkv, j0);
    const __m256i dtail = lanes_below(d % 8);
    const int64_t d16 = dt == ATTN_BF16 ? d & ~(int64_t)15 : 0, d64 = d & ~(int64_t)63;
    const void *vpf[8];
    /* Whole passes of 64 columns: a fixed set of 8 accumulators, no column test in the loop
     * (in decode's bf16 order, as c0 + 64 <= d16). */
    for (int64_t c0 = 0; c0 < d64; c0 += 64) {
        __m256 a[8];
        for (int x = 0; x < 8; x++)
            a[x] = _mm256_load_ps(acc + c0 + 8 * x);
        for (int64_t j = 0; j < nk; j++) {
            if (prefetch && j % 8 == 0)
                attn_kv_rows_ahead(t, 'v', gr->b, gr->hkv, j0 + j + pf_keys(d, dt),
                                   t->problem->len_kv, 8, &v, vpf);
            if (prefetch)
                for (int64_t c = c0; c < c0 + 64; c += 64 / es) /* one prefetch per line */
                    prefetch_row(vpf[j % 8], c, dt);
            if (s[j] == 0.0f)
                continue;
            const __m256 w = _mm256_broadcast_ss(s + j);
            /* element c0 of row j: constant offsets below, as the float32 loop had */
            const void *vj = (const char *)row_at(v, j, ld, dt) + c0 * es;
            for (int x = 0; x < 8; x++)
                a[x] = _mm256_fmadd_ps(w, load8_ord(vj, 8 * x, x & 1, dt), a[x]);
        }
        for (int x = 0; x < 8; x++)
            _mm256_store_ps(acc + c0 + 8 * x, a[x]);
    }
    if (d64 == d)
        return;
    /* The last d % 64 columns (fewer than 8 vectors, the last one maybe partial). */
    const int64_t c0 = d64;
    const int nv = (int)((d - c0 + 7) / 8);
    const bool tail = c0 + 8 * nv > d;
    __m256 a[8];
    for (int x = 0; x < nv; x++)
        a[x] = _mm256_load_ps(acc + c0 + 8 * x);
    for (int64_t j = 0; j < nk; j++) {
        if (prefetch && j % 8 == 0)
            attn_kv_rows_ahead(t, 'v', gr->b, gr->hkv, j0 + j + pf_keys(d, dt), t->problem->len_kv,
                               8, &v, vpf);
        if (prefetch)
            for (int64_t c = c0; c < c0 + 8 * nv; c += 64 / es)
                prefetch_row(vpf[j % 8], c, dt);
        if (s[j] == 0.0f)
            continue;
        const __m256 w = _mm256_broadcast_ss(s + j);
        const void *vj = row_at(v, j, ld, dt);
        for (int x = 0; x < nv - 1; x++)
            a[x] = _mm256_fmadd_ps(w, load8_dec(vj, c0 + 8 * x, x & 1, d16, dt), a[x]);
        const int64_t cl = c0 + 8 * (nv - 1);
        const __m256 last = tail ? load8_tail(vj, cl, d - cl, dtail, dt)
                                 : load8_dec(vj, cl, (nv - 1) & 1, d16, dt);
        a[nv - 1] = _mm256_fmadd_ps(w, last, a[nv - 1]);
    }
    for (int x = 0; x < nv; x++)
        _mm256_store_ps(acc + c0 + 8 * x, a[x]);
}

/* The same for float32 rows through the former loop (passes of up to 64 columns, the vector
 * count tested per key; GCC keeps its accumulators on the stack): in bk-key blocks it streamed
 * D1 faster than decode_pv_dt's fixed passes (Zen 4: 12.7 against 15.1 ms, alternated, min of
 * 6), which run float32 in cache faster; the one-row turns (decode_row_turns) now take
 * contiguous D1, this paged rows. */
ALWAYS_INLINE void decode_pv_f32(const attn_task *t, const attn_group_rows *gr, const float *s,
                                 int64_t j0, int64_t nk, float *acc, int64_t d, bool prefetch)
{
    const attn_dtype dt = ATTN_F32;
    const int64_t ld = t->problem->v.seq, es = 4;
    const void *v = attn_row(t, 'v', gr->b, gr->hkv, j0);
    const __m256i dtail = lanes_below(d % 8);
    for (int64_t c0 = 0; c0 < d; c0 += 64) {
        const int nv = (int)min64(8, (d - c0 + 7) / 8);
        const bool tail = c0 + 8 * nv > d; /* the last vector is partial */
        __m256 a[8];
        for (int x = 0; x < nv; x++)
            a[x] = _mm256_load_ps(acc + c0 + 8 * x);
        const void *vpf[8];
        for (int64_t j = 0; j < nk; j++) {
            if (prefetch && j % 8 == 0)
                attn_kv_rows_ahead(t, 'v', gr->b, gr->hkv, j0 + j + pf_keys(d, dt),
                                   t->problem->len_kv, 8, &v, vpf);
            if (prefetch)
                for (int64_t c = c0; c < c0 + 8 * nv; c += 64 / es) /* one prefetch per line */
                    prefetch_row(vpf[j % 8], c, dt);
            if (s[j] == 0.0f)
                continue;
            const __m256 w = _mm256_broadcast_ss(s + j);
            /* element c0 of row j: constant offsets below, as the float32 loop had */
            const void *vj = (const char *)row_at(v, j, ld, dt) + c0 * es;
            if (nv == 8 && !tail) {
                for (int x = 0; x < 8; x++)
                    a[x] = _mm256_fmadd_ps(w, load8(vj, 8 * x, dt), a[x]);
            } else {
                for (int x = 0; x < nv - 1; x++)
                    a[x] = _mm256_fmadd_ps(w, load8(vj, 8 * x, dt), a[x]);
                const int64_t cl = 8 * (nv - 1);
                const __m256 last = tail ? load8_tail(vj, cl, d - c0 - cl, dtail, dt)
                                         : load8(vj, cl, dt);
                a[nv - 1] = _mm256_fmadd_ps(w, last, a[nv - 1]);
            }
        }
        for (int x = 0; x < nv; x++)
            _mm256_store_ps(acc + c0 + 8 * x, a[x]);
    }
}


/* decode_pv_dt a page run of keys at a time (one run unless K/V are paged). */
static void decode_pv(const attn_task *t, const attn_group_rows *gr, const float *s, int64_t j0,
                      int64_t nk, float *acc, int64_t d)
{
    for (int64_t off = 0, n; off < nk; off += n) {
        n = attn_kv_run(t->problem, j0 + off, nk - off);
        /* Literals: a copy per dtype; paged K/V, so with prefetch (decode_scores). */
        switch (t->problem->dtype) {
        case ATTN_BF16: decode_pv_dt(t, gr, s + off, j0 + off, n, acc, d, ATTN_BF16, true); break;
        case ATTN_F16: decode_pv_dt(t, gr, s + off, j0 + off, n, acc, d, ATTN_F16, true); break;
        default: decode_pv_f32(t, gr, s + off, j0 + off, n, acc, d, true); break;
        }
    }
}

/* ---- one row in turns (contiguous K/V) ---------------------------------------------------- */

/* acc[c, d) += w·V_j[c, d) through acc itself (aligned loads and stores; c a multiple of 8),
 * widened V in decode's bf16 column order. */
ALWAYS_INLINE void pv_into_acc(const void *vj, __m256 w, float *acc, int64_t c, int64_t d,
                               int64_t d16, __m256i dtail, attn_dtype dt)
{
    for (; c + 16 <= d16; c += 16) { /* whole 16s of bf16 (of every dtype when d16 = d & ~15) */
        _mm256_store_ps(acc + c, _mm256_fmadd_ps(w, load8_ord(vj, c, false, dt),
                                                 _mm256_load_ps(acc + c)));
        _mm256_store_ps(acc + c + 8, _mm256_fmadd_ps(w, load8_ord(vj, c + 8, true, dt),
                                                     _mm256_load_ps(acc + c + 8)));
    }
    for (; c + 8 <= d; c += 8) /* in order from d16 on */
        _mm256_store_ps(acc + c, _mm256_fmadd_ps(w, load8(vj, c, dt), _mm256_load_ps(acc + c)));
    if (c < d)
        _mm256_store_ps(acc + c, _mm256_fmadd_ps(w, load8_tail(vj, c, d - c, dtail, dt),
                                                 _mm256_load_ps(acc + c)));
}

/* acc[0, dp) += Σ_j P[j]·V[j] over keys [j0, j0 + nk) of contiguous V (a piece of a turn),
 * each row read whole, front to back, key after key: its first 8·NV columns (NV = 16 or 8) into
 * accumulators held across the keys (16: GCC keeps most in registers and the rest in
 * L1, 17 live vectors with the weight being one more than AVX2 has), the columns past them
 * through acc itself (pv_into_acc, one L1 load and store per vector); zero weights (masked
 * keys) are skipped, so they never meet a NaN in V. (Rows read in passes of columns, each
 * row's halves far apart in time, streamed D1 at 0.6-0.8 of a plain read on Zen 4.) */
ALWAYS_INLINE void decode_pv_turn_nv(const attn_task *t, const attn_group_rows *gr,
                                     const float *s, int64_t j0, int64_t nk, float *acc,
                                     int64_t d, attn_dtype dt, int NV, bool rest)
{
    const int64_t ld = t->problem->v.seq;
    const int64_t d16 = d & ~(int64_t)15; /* bf16's even/odd order below it (load8_ord) */
    const __m256i dtail = lanes_below(d % 8);
    const void *v = attn_row(t, 'v', gr->b, gr->hkv, j0);
    __m256 a[16];
    for (int x = 0; x < NV; x++)
        a[x] = _mm256_load_ps(acc + 8 * x);
    for (int64_t j = 0; j < nk; j++) {
        if (s[j] == 0.0f)
            continue;
        const __m256 w = _mm256_broadcast_ss(s + j);
        const void *vj = row_at(v, j, ld, dt);
        for (int x = 0; x < NV; x++) /* in decode's bf16 column order (8·NV <= d16) */
            a[x] = _mm256_fmadd_ps(w, load8_ord(vj, 8 * x, x & 1, dt), a[x]);
        if (rest) /* d > 8·NV; a constant, so d = 128 and 64 keep no code for it */
            pv_into_acc(vj, w, acc, 8 * NV, d, d16, dtail, dt);
    }
    for (int x = 0; x < NV; x++)
        _mm256_store_ps(acc + 8 * x, a[x]);
}

/* decode_pv_turn_nv with the most accumulators head_dim fills (fewer than 64 columns: one pass
 * of decode_pv_dt, whole rows too). */
ALWAYS_INLINE void decode_pv_turn(const attn_task *t, const attn_group_rows *gr, const float *s,
                                  int64_t j0, int64_t nk, float *acc, int64_t d, attn_dtype dt)
{
    if (d >= 128) /* d = 128 has its own copy (decode_row_turns_dt) */
        decode_pv_turn_nv(t, gr, s, j0, nk, acc, d, dt, 16, true);
    else if (d == 64)
        decode_pv_turn_nv(t, gr, s, j0, nk, acc, d, dt, 8, false);
    else if (d > 64)
        decode_pv_turn_nv(t, gr, s, j0, nk, acc, d, dt, 8, true);
    else
        decode_pv_dt(t, gr, s, j0, nk, acc, d, dt, false);
}

/* One row (a group of one row, D1) with contiguous K/V on all its keys [j0, j0 + nk): turns of T
 * keys (at most a scores row), each one online softmax step, then its P·V (decode_pv_turn) in
 * pieces of P keys (DEC_PIECE_BYTES of rows, at least 8 keys) with the next turn's scores (K rows
 * front to back) between them, so K and V alternate every P rows (8 bf16 rows at d = 128). Zen 3,
 * D1 from memory, alternated in one process, against turns of 16 keys scored then weighted (the
 * former path): bf16 0.74-0.75x the time, f16 0.77x, f32 0.76-0.84x at d = 64, 0.84x at 80, 0.85x
 * at 96, 0.99x at 128; bf16 0.97x at d = 256, 0.94x at 64; in L3 0.89-1.0x. Turns of 8 keys (a
 * softmax step per 8) gained 0.82-0.88x from memory but ran 1.15x slower in L3; of alternations of
 * 1 to 32 KiB per stream, 4 KiB was the slowest; pieces of 8 keys of 128-byte rows cost 1.06-1.10x
 * in L3, of 16 keys 0.97x. Paged D1 f32 (page size 64, Zen 4) streamed 5% slower in turns than in
 * the bk-key blocks. */
ALWAYS_INLINE void decode_row_turns_dt(const attn_task *t, const workspace *ws,
                                       const attn_group_rows *gr, int64_t r, const float *q,
                                       const float *mask, int64_t j0, int64_t nk,
                                       float scale_log2e, const dec_row *dr, attn_dtype dt,
                                       bool d128)
{
    const int64_t d = t->problem->head_dim, dp = round_up(d, 8), end = j0 + nk;
    const int64_t T = min64(DEC_TURN, ws->s_ld); /* multiples of 8, as the pieces */
    const int64_t row_bytes = d * (dt == ATTN_F32 ? 4 : 2);
    const int64_t P = max64(8, min64(T, DEC_PIECE_BYTES / row_bytes / 8 * 8));
    float *s = ws->scores, *s_next = ws->scores + ws->s_ld, *acc = ws->acc + r * dp;
    float run_max = ws->run_max[r], run_sum = ws->run_sum[r], m_blk = -INFINITY;
    for (int64_t i = 0; i < min64(T, nk); i += P) /* the first turn's scores */
        m_blk = fmaxf(m_blk, decode_scores_dt(t, gr, q, mask, j0 + i, min64(P, nk - i),
                                              s + i, scale_log2e, dr, dt, false));
    for (int64_t js = j0; js < end; js += T) {
        const int64_t ns = min64(T, end - js), next = js + T, nn = min64(T, end - next);
        online_softmax_step(s, round_up(ns, 8), m_blk, &run_max, &run_sum, acc, dp);
        m_blk = -INFINITY;
        for (int64_t i = 0; i < ns; i += P) {
            const int64_t n = min64(P, ns - i);
            if (d128) /* its own copy: in cache 1.05-1.2x faster than beside the others */
                decode_pv_turn_nv(t, gr, s + i, js + i, n, acc, 128, dt, 16, false);
            else
                decode_pv_turn(t, gr, s + i, js + i, n, acc, d, dt);
            if (i < nn) /* the next turn's keys: none past the last turn (nn <= 0) */
                m_blk = fmaxf(m_blk, decode_scores_dt(t, gr, q, mask, next + i,
                                                      min64(P, nn - i), s_next + i,
                                                      scale_log2e, dr, dt, false));
        }
        float *const done = s;
        s = s_next;
        s_next = done;
    }
    ws->run_max[r] = run_max;
    ws->run_sum[r] = run_sum;
}

/* A copy per dtype, each register-allocated alone. */
#define DECODE_ROW_TURNS_OF(name, dt, d128)                                                     \
    static __attribute__((noinline)) void name(const attn_task *t, const workspace *ws,         \
                                               const attn_group_rows *gr, int64_t r,            \
                                               const float *q, const float *mask, int64_t j0,   \
                                               int64_t nk, float scale_log2e, const dec_row *dr)\
    {                                                                                           \
        decode_row_turns_dt(t, ws, gr, r, q, mask, j0, nk, scale_log2e, dr, dt, d128);          \
    }
DECODE_ROW_TURNS_OF(decode_row_turns_f32, ATTN_F32, false)
DECODE_ROW_TURNS_OF(decode_row_turns_bf16, ATTN_BF16, false)
DECODE_ROW_TURNS_OF(decode_row_turns_f16, ATTN_F16, false)
DECODE_ROW_TURNS_OF(decode_row_turns_f32_d128, ATTN_F32, true)
DECODE_ROW_TURNS_OF(decode_row_turns_bf16_d128, ATTN_BF16, true)
DECODE_ROW_TURNS_OF(decode_row_turns_f16_d128, ATTN_F16, true)

typedef void decode_row_turns_fn(const attn_task *, const workspace *, const attn_group_rows *,
                                 int64_t, const float *, const float *, int64_t, int64_t, float,
                                 const dec_row *);

static void decode_row_turns(const attn_task *t, const workspace *ws, const attn_group_rows *gr,
                             int64_t r, const float *q, const float *mask, int64_t j0,
                             int64_t nk, float scale_log2e, const dec_row *dr)
{
    static decode_row_turns_fn *const fns[2][3] = { /* [d = 128][f32, bf16, f16] */
        {decode_row_turns_f32, decode_row_turns_bf16, decode_row_turns_f16},
        {decode_row_turns_f32_d128, decode_row_turns_bf16_d128, decode_row_turns_f16_d128}};
    const attn_dtype dt = t->problem->dtype;
    fns[t->problem->head_dim == 128][dt == ATTN_BF16 ? 1 : dt == ATTN_F16 ? 2 : 0](
        t, ws, gr, r, q, mask, j0, nk, scale_log2e, dr);
}

/* ---- tiles of rows ------------------------------------------------------------------------ */

/* A decode tile's model options: the epilogue, and per row (each may be another head, or
 * another query position) its band start, ALiBi slope (log2 units) and position i'. */
typedef struct dec_tile_opts {
    const score_opts *opts;
    int64_t first[DEC_R];
    float slope[DEC_R], pos[DEC_R];
} dec_tile_opts;

/* Vector c of DEC_KS keys' K rows into R rows' accumulators a, each Q vector loaded once for
 * the keys. */
ALWAYS_INLINE void qk_tile_step(int R, const void *const k[DEC_KS],
                                const float *const q[DEC_R], int64_t c, attn_dtype dt,
                                __m256 a[DEC_R][DEC_KS])
{
    __m256 kv[DEC_KS];
    for (int u = 0; u < DEC_KS; u++) {
        kv[u] = load8(k[u], c, dt);
        __asm__("" : "+x"(kv[u])); /* in a register too: GCC folded it into every row's FMA */
    }
    for (int r = 0; r < R; r++) {
        __m256 qv = _mm256_loadu_ps(q[r] + c);
        /* in a register: folded into each key's FMA, Q was loaded DEC_KS times (1.25 loads per
         * FMA at R = 4, more than Zen 4's two a cycle) */
        __asm__("" : "+x"(qv));
        for (int u = 0; u < DEC_KS; u++)
            a[r][u] = _mm256_fmadd_ps(qv, kv[u], a[r][u]);
    }
}

/* The same for a tile of R >= 2 rows of a group (the query heads of a GQA group, or a few
 * query rows): each K vector is loaded once for the R rows and each Q vector once for DEC_KS
 * keys side by side (their rows read front to back), so a GQA group reads K once from memory
 * at one load per 1.33 FMAs instead of one re-read of the block per row at two loads per FMA.
 * Row r's scores go to s[r] (keys past nkr[r] are -inf, and with options o keys before the
 * row's band start too); its block max to bmax[r]. o is a constant NULL in the plain copies,
 * so their epilogue has nothing of the options compiled in. */
ALWAYS_INLINE void decode_scores_tile_dt(const attn_task *t, const attn_group_rows *gr, int R,
                                         const float *const q[DEC_R],
                                         const float *const mask[DEC_R],
                                         const int64_t nkr[DEC_R], int64_t j0, int64_t nk,
                                         float *const s[DEC_R], float scale_log2e,
                                         const dec_tile_opts *o, float bmax[DEC_R],
                                         attn_dtype dt)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim;
    const __m256i dtail = lanes_below(d % 8);
    const __m256 cs = _mm256_set1_ps(scale_log2e), log2e = _mm256_set1_ps(ATTN_LOG2E);
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    for (int64_t j = 0; j < nk; j += 8) {
        __m256 part[DEC_R][8];
        const void *krow[8], *kpf[8]; /* the keys' rows, and those pf_keys() keys later */
        attn_kv_rows(t, 'k', gr->b, gr->hkv, j0 + j, (int)min64(nk - j, 8), 8, krow);
        attn_kv_rows_ahead(t, 'k', gr->b, gr->hkv, j0 + j + pf_keys(d, dt), p->len_kv, 8, krow, kpf);
#pragma GCC unroll 1
        for (int x = 0; x < 8; x += DEC_KS) {
            const void *const *k = krow + x;
            for (int u = 0; u < DEC_KS; u++)
                prefetch_whole_row(kpf[x + u], d, dt);
            __m256 a[DEC_R][DEC_KS];
            for (int r = 0; r < R; r++)
                for (int u = 0; u < DEC_KS; u++)
                    a[r][u] = _mm256_setzero_ps();
            int64_t c = 0;
            /* by 8 (unrolled by 2, GCC spilled an accumulator into the FMA chain); the tiles
             * read bf16 in order (decode's even/odd order is the one-row loops') */
            for (; c + 16 <= d; c += 8)
                qk_tile_step(R, k, q, c, dt, a);
            if (c + 8 <= d) {
                qk_tile_step(R, k, q, c, dt, a);
                c += 8;
            }
            if (c < d) {
                __m256 kv[DEC_KS];
                for (int u = 0; u < DEC_KS; u++)
                    kv[u] = load8_tail(k[u], c, d - c, dtail, dt);
                for (int r = 0; r < R; r++) {
                    const __m256 qv = _mm256_maskload_ps(q[r] + c, dtail);
                    for (int u = 0; u < DEC_KS; u++)
                        a[r][u] = _mm256_fmadd_ps(qv, kv[u], a[r][u]);
                }
            }
            for (int r = 0; r < R; r++)
                for (int u = 0; u < DEC_KS; u++)
                    part[r][x + u] = a[r][u];
        }
        for (int r = 0; r < R; r++) {
            const __m256 *acc = part[r];
            const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
            const __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]), t3 = _mm256_hadd_ps(acc[6], acc[7]);
            const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
            const __m256 dot = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                             _mm256_permute2f128_ps(u0, u1, 0x31));
            __m256 valid, sv = _mm256_mul_ps(dot, cs);
            if (o) { /* the prefill's epilogue: soft cap, ALiBi, the window's left edge */
                valid = band_lanes(j0 + j, o->first[r], j0 + nkr[r]);
                sv = apply_options(o->opts, sv, j0 + j, o->slope[r], o->pos[r]);
            } else {
                valid = _mm256_castsi256_ps(lanes_below(nkr[r] - j));
            }
            if (mask[r]) {
                const __m256 m =
                    _mm256_maskload_ps(mask[r] + j0 + j, _mm256_castps_si256(valid));
                valid = _mm256_and_ps(valid, _mm256_cmp_ps(m, neg_inf, _CMP_NEQ_UQ));
                sv = o ? _mm256_fmadd_ps(m, log2e, sv)
                       : _mm256_fmadd_ps(dot, cs, _mm256_mul_ps(m, log2e));
            }
            sv = _mm256_blendv_ps(neg_inf, sv, valid);
            _mm256_storeu_ps(s[r] + j, sv);
        }
    }
    /* The block max from the stored scores, not in registers across the loop above: with the
     * R running maxima live there, GCC spilled accumulators of the FMA loops. */
    for (int r = 0; r < R; r++) {
        __m256 m = neg_inf;
        for (int64_t j = 0; j < nk; j += 8)
            m = _mm256_max_ps(_mm256_loadu_ps(s[r] + j), m);
        bmax[r] = hmax(m);
    }
}

/* One pass of decode_pv_tile_dt: keys [j0, j0 + n) of the run at v, nv of the pass's cv
 * vectors from column c0 (the last partial when tail), each V vector loaded once for the R rows,
 * the R weights in registers for the key's vectors: 0.75 loads per FMA at R = 4 instead of
 * 1.25 with the weight as the FMA's memory operand (Zen 4 issues two 256-bit loads per cycle,
 * as many as FMAs). checked (a constant): some weight of the keys is 0, and such a key is
 * skipped for its row (bit j of `all`: every row counts key j); unchecked, the loop has no
 * test. */
ALWAYS_INLINE void pv_tile_pass(int R, int cv, const void *v, int64_t ld, int64_t j0, int n,
                                float *const s[DEC_R], float *const acc[DEC_R], int64_t c0,
                                int nv, bool tail, int64_t d, unsigned all, bool checked,
                                const void *const vpf[DEC_PV_KEYS], attn_dtype dt)
{
    enum { MAXC = 6 };
    const __m256i dtail = lanes_below(d % 8);
    __m256 a[DEC_R][MAXC];
    for (int r = 0; r < R; r++)
        for (int x = 0; x < cv; x++)
            a[r][x] = x < nv ? _mm256_load_ps(acc[r] + c0 + 8 * x) : _mm256_setzero_ps();
    for (int j = 0; j < n; j++) {
        const void *vj = row_at(v, j0 + j, ld, dt);
        const bool every = !checked || (all >> j & 1);
        __m256 wv[DEC_R];
        for (int r = 0; r < R; r++)
            wv[r] = _mm256_broadcast_ss(s[r] + j0 + j);
        for (int x = 0; x < cv; x++) {
            if (x >= nv)
                break;
            const int64_t c = c0 + 8 * x;
            const __m256 xv = tail && x == nv - 1 ? load8_tail(vj, c, d - c, dtail, dt)
                                                  : load8(vj, c, dt);
            if (c * (dt == ATTN_F32 ? 4 : 2) % 64 == 0) /* one prefetch per line */
                prefetch_row(vpf[j], c, dt);
            for (int r = 0; r < R; r++)
                if (every || s[r][j0 + j] != 0.0f)
                    a[r][x] = _mm256_fmadd_ps(wv[r], xv, a[r][x]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int x = 0; x < cv; x++)
            if (x < nv)
                _mm256_store_ps(acc[r] + c0 + 8 * x, a[r][x]);
}

/* acc_r[0, dp) += Σ_j s_r[j]·V[j] for a tile of R >= 2 rows, keys [0, nk) of the run at v (key
 * jv of group gr, whose rows pf_keys() keys later it prefetches): keys by DEC_PV_KEYS (8 KiB of
 * float32 rows, in L1 while the passes over head_dim take them), DEC_PV_COLS[R] vectors of each
 * row's accumulator in registers per pass. A key whose weight is 0 for a row (masked, or past its
 * limit) is skipped for that row, so a NaN in V never reaches a row that excludes it.
 * 16 keys rather than 8 halve the accumulator loads and stores and the pass setups per key: in
 * cache (Zen 4, D2) f32 1.02-1.04x, bf16 1.07-1.11x, f16 1.12-1.15x faster; 32 keys ran 0.9x.
 * Tried on Zen 4 and dropped (D2 f32): V read whole, key after key, for one row at a time (the
 * other rows re-reading it from L1; one load per FMA) streamed at 0.56 of the read against 0.70
 * and ran 0.85-0.9x in cache; the V prefetch as whole rows per round instead of one line per
 * vector streamed at 0.53, none at all at 0.35; V vectors in registers and the weights broadcast
 * per row (3 columns at R = 4, 12 chains) ran 0.88x in cache. This tile is bound by its FMAs
 * (D2 f32 ~33 GB/s of K/V in cache, ~57% of the FMA peak, against a ~28-30 GB/s read). */
static const int DEC_PV_COLS[DEC_R + 1] = {0, 8, 6, 3, 2}; /* R·cols + 1 + R ymm <= 16 */
ALWAYS_INLINE void decode_pv_tile_dt(const attn_task *t, const attn_group_rows *gr, int64_t jv,
                                     const void *v, int64_t ld, int R, float *const s[DEC_R],
                                     int64_t nk, float *const acc[DEC_R], int64_t d,
                                     attn_dtype dt)
{
    const int cv = DEC_PV_COLS[R];
    const int64_t dwhole = d - d % (8 * cv); /* columns in whole passes */
    for (int64_t j0 = 0; j0 < nk; j0 += DEC_PV_KEYS) {
        const int n = (int)min64(nk - j0, DEC_PV_KEYS);
        const void *vpf[DEC_PV_KEYS]; /* rows pf_keys() keys later, through the page table */
        attn_kv_rows_ahead(t, 'v', gr->b, gr->hkv, jv + j0 + pf_keys(d, dt), t->problem->len_kv,
                           DEC_PV_KEYS, &v, vpf);
        /* Once per DEC_PV_KEYS keys, not per pass: which keys every row counts. */
        unsigned all = 0;
        for (int j = 0; j < n; j++) {
            bool nz = true;
            for (int r = 0; r < R; r++)
                nz &= s[r][j0 + j] != 0.0f;
            all |= (unsigned)nz << j;
        }
        const bool checked = all != (1u << n) - 1;
        for (int64_t c0 = 0; c0 < dwhole; c0 += 8 * cv) {
            if (checked)
                pv_tile_pass(R, cv, v, ld, j0, n, s, acc, c0, cv, false, d, all, true, vpf, dt);
            else
                pv_tile_pass(R, cv, v, ld, j0, n, s, acc, c0, cv, false, d, all, false, vpf, dt);
        }
        if (dwhole < d) { /* the last columns: fewer than cv vectors, the last maybe partial */
            const int nv = (int)((d - dwhole + 7) / 8);
            pv_tile_pass(R, cv, v, ld, j0, n, s, acc, dwhole, nv, dwhole + 8 * nv > d, d, all,
                         true, vpf, dt);
        }
    }
}

/* One block of keys for rows [r0, r0 + R) of a group (R >= 2, a constant once inlined): their
 * scores, the running max, sum and accumulator rescale of each row, then P·V. opts (model
 * options: window, ALiBi, soft cap) is a constant: NULL in the plain copies. */
ALWAYS_INLINE void decode_tile_dt(const attn_task *t, const workspace *ws,
                                  const attn_group_rows *gr, int64_t r0, int R, int64_t j0,
                                  int64_t bk, float scale_log2e, const score_opts *opts,
                                  attn_dtype dt)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, dp = round_up(d, 8);
    const float *q[DEC_R], *mask[DEC_R];
    float *s[DEC_R], *acc[DEC_R], bmax[DEC_R];
    int64_t nkr[DEC_R], nk = 0;
    for (int r = 0; r < R; r++) {
        int64_t h, i;
        row_of(gr, t, r0 + r, &h, &i);
        q[r] = dt == ATTN_F32 ? attn_q_row(t, gr->b, h, i) : ws->q_panel + (r0 + r) * d;
        mask[r] = attn_mask_row(p, i);
        s[r] = ws->scores + r * ws->s_ld;
        acc[r] = ws->acc + (r0 + r) * dp;
        nkr[r] = min64(bk, ws->limit[r0 + r] - j0);
        nk = max64(nk, nkr[r]);
    }
    dec_tile_opts o;
    if (opts) {
        /* The block starts at the first key some row's band holds (a window's band skips
         * whole blocks before it, and the keys of its edge block before it); none: skip. */
        int64_t lo = INT64_MAX;
        for (int r = 0; r < R; r++) {
            o.first[r] = ws->first[r0 + r];
            o.slope[r] = ws->slope[r0 + r];
            o.pos[r] = ws->pos[r0 + r];
            if (nkr[r] > 0 && o.first[r] < j0 + nkr[r])
                lo = min64(lo, o.first[r]);
        }
        if (lo == INT64_MAX)
            return;
        const int64_t skip = max64(lo - j0, 0);
        j0 += skip;
        nk -= skip;
        for (int r = 0; r < R; r++)
            nkr[r] -= skip;
        o.opts = opts;
    }
    if (nk <= 0)
        return;
    decode_scores_tile_dt(t, gr, R, q, mask, nkr, j0, nk, s, scale_log2e, opts ? &o : NULL,
                          bmax, dt);
    for (int r = 0; r < R; r++)
        online_softmax_step(s[r], round_up(nk, 8), bmax[r], &ws->run_max[r0 + r],
                            &ws->run_sum[r0 + r], acc[r], dp);
    for (int64_t off = 0, n; off < nk; off += n) { /* a page run at a time */
        n = attn_kv_run(p, j0 + off, nk - off);
        float *so[DEC_R];
        for (int r = 0; r < R; r++)
            so[r] = s[r] + off;
        decode_pv_tile_dt(t, gr, j0 + off, attn_row(t, 'v', gr->b, gr->hkv, j0 + off), p->v.seq,
                          R, so, n, acc, d, dt);
    }
}

/* Rows [r0, r0 + R) of a group on one block, R in 2..DEC_R: one copy per R, dtype and options
 * (OPTS: NULL, or the argument opts), so each tile's arrays stay in registers and the plain
 * copies have nothing of the options in their loops (as the prefill's four copies). */
#define DECODE_TILE_OF(name, dt, OPTS)                                                           \
    static __attribute__((noinline)) void name(const attn_task *t, const workspace *ws,          \
                                               const attn_group_rows *gr, int64_t r0, int R,     \
                                               int64_t j0, int64_t bk, float scale_log2e,        \
                                               const score_opts *opts)                           \
    {                                                                                            \
        (void)opts;                                                                              \
        switch (R) {                                                                             \
        case 2: decode_tile_dt(t, ws, gr, r0, 2, j0, bk, scale_log2e, OPTS, dt); break;          \
        case 3: decode_tile_dt(t, ws, gr, r0, 3, j0, bk, scale_log2e, OPTS, dt); break;          \
        default: decode_tile_dt(t, ws, gr, r0, 4, j0, bk, scale_log2e, OPTS, dt); break;         \
        }                                                                                        \
    }
DECODE_TILE_OF(decode_tile_f32, ATTN_F32, NULL)
DECODE_TILE_OF(decode_tile_bf16, ATTN_BF16, NULL)
DECODE_TILE_OF(decode_tile_f16, ATTN_F16, NULL)
DECODE_TILE_OF(decode_tile_f32_opts, ATTN_F32, opts)
DECODE_TILE_OF(decode_tile_bf16_opts, ATTN_BF16, opts)
DECODE_TILE_OF(decode_tile_f16_opts, ATTN_F16, opts)

typedef void decode_tile_fn(const attn_task *, const workspace *, const attn_group_rows *,
                            int64_t, int, int64_t, int64_t, float, const score_opts *);

/* opts NULL: no model options (the plain copies). */
static void decode_tile(const attn_task *t, const workspace *ws, const attn_group_rows *gr,
                        int64_t r0, int R, int64_t j0, int64_t bk, float scale_log2e,
                        const score_opts *opts)
{
    decode_tile_fn *fn;
    switch (t->problem->dtype) {
    case ATTN_BF16: fn = opts ? decode_tile_bf16_opts : decode_tile_bf16; break;
    case ATTN_F16: fn = opts ? decode_tile_f16_opts : decode_tile_f16; break;
    default: fn = opts ? decode_tile_f32_opts : decode_tile_f32; break;
    }
    fn(t, ws, gr, r0, R, j0, bk, scale_log2e, opts);
}

/* ---- a group ------------------------------------------------------------------------------ */

void attn_avx2_decode_group(const attn_task *t, const workspace *ws, const attn_group_rows *gr,
                            const key_range *kr, int64_t bk, float scale_log2e)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, dp = round_up(d, 8);
    int64_t keys = 0;
    /* decode's bf16 column order (load8_dec) in the one-row loops, a group of one row; the
     * tiles read in order: by 16 for the pairs, their Q·K loop spilled (in cache, D2 bf16 13.6
     * against 16 GB/s for f16 by 8) */
    const int64_t d16 = p->dtype == ATTN_BF16 && gr->count == 1 ? d & ~(int64_t)15 : 0;
    const score_opts opts = score_opts_of(p);
    const bool options = opts.softcap || opts.alibi || p->window_left >= 0;
    for (int64_t r = 0; r < gr->count; r++) {
        int64_t h, i;
        row_of(gr, t, r, &h, &i);
        if (p->dtype != ATTN_F32) { /* half Q rows widened once into the (unused) Q panels, */
            const void *q = attn_row(t, 'q', gr->b, h, i); /* in decode's column order */
            for (int64_t c = 0; c < d; c++)
                ws->q_panel[r * d + dec_col(c, d16)] = elem(q, c, p->dtype);
        }
        ws->limit[r] = max64(min64(attn_key_limit(p, gr->b, i), kr->key_end), 0);
        ws->first[r] = attn_key_start(p, i);
        ws->slope[r] = p->alibi_slopes ? p->alibi_slopes[h] * ATTN_LOG2E : 0.0f;
        ws->pos[r] = (float)(i + p->len_kv - p->len_q);
        keys = max64(keys, ws->limit[r]);
        ws->run_max[r] = -INFINITY;
        ws->run_sum[r] = 0.0f;
        memset(ws->acc + r * dp, 0, (size_t)dp * sizeof(float));
    }
    if (gr->count == 1) { /* one row: on contiguous K/V all its keys, paged in bk-key blocks */
        int64_t h, i;
        row_of(gr, t, 0, &h, &i);
        const dec_row dr = {.first = ws->first[0], .opts = &opts, .slope = ws->slope[0],
                            .pos = ws->pos[0]};
        const float *q = p->dtype == ATTN_F32 ? attn_q_row(t, gr->b, h, i) : ws->q_panel;
        const float *mask = attn_mask_row(p, i);
        const int64_t first = max64(kr->key_begin, ws->first[0]);
        if (p->page_size == 0 && ws->limit[0] > first)
            decode_row_turns(t, ws, gr, 0, q, mask, first, ws->limit[0] - first, scale_log2e, &dr);
        for (int64_t j0 = kr->key_begin; p->page_size > 0 && j0 < keys; j0 += bk) {
            const int64_t nk = min64(bk, ws->limit[0] - j0);
            if (nk <= 0 || j0 + nk <= ws->first[0]) /* past the limit, or before the window */
                continue;
            const float m_blk = decode_scores(t, gr, q, mask, j0, nk, ws->scores, scale_log2e, &dr);
            online_softmax_step(ws->scores, round_up(nk, 8), m_blk, &ws->run_max[0],
                                &ws->run_sum[0], ws->acc, dp);
            decode_pv(t, gr, ws->scores, j0, nk, ws->acc, d);
        }
    }
    /* Tiles of up to DEC_R rows share each K and V load; rows 4 + 1 go as 3 + 2 (no row alone). */
    for (int64_t j0 = kr->key_begin; gr->count >= 2 && j0 < keys; j0 += bk)
        for (int64_t r = 0, R; r < gr->count; r += R) {
            const int64_t left = gr->count - r;
            R = left == 5 ? 3 : min64(left, DEC_R);
            decode_tile(t, ws, gr, r, (int)R, j0, bk, scale_log2e, options ? &opts : NULL);
        }
    for (int64_t r = 0; r < gr->count; r++) {
        float *acc = ws->acc + r * dp;
        if (d16 > 0) { /* back from decode's column order, through the (now free) Q panel */
            float *row = ws->q_panel + r * d;
            for (int64_t c = 0; c < d16; c++)
                row[c] = acc[dec_col(c, d16)];
            memcpy(acc, row, (size_t)d16 * sizeof *acc);
        }
        finish_row(t, gr, kr, r, acc, ws->run_sum[r], ws->run_max[r]);
    }
}
