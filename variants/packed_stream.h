/* packed_stream.h — the loop shared by the packed-block online-softmax variants (neon.c, sve.c,
 * sve_bf16.c): query tiles of bq rows (flattened over the query heads of a GQA group), key
 * blocks of bk packed once per query tile, 8-row micro-tiles, and the rows normalised once at
 * the end. The variant supplies what depends on its ISA and types: packing a query row, packing
 * a K/V block, and the work of one micro-tile on one key block (scores, softmax, P·V). Plain C
 * (no ISA flags): each variant includes it and passes its own static functions, which the
 * compiler calls directly (the driver is inlined with a constant table of them).
 *
 * The variant's workspace holds (the driver touches only acc, run_max and run_sum):
 *   acc        [bq][dpad]  unnormalised output rows, float32
 *   run_max    [bq]        running max (log2 domain)
 *   run_sum    [bq]        running sum
 * plus whatever its functions pack into (through ctx). */
#ifndef ATTN_PACKED_STREAM_H
#define ATTN_PACKED_STREAM_H

#include "exp2_poly.h"
#include "variant.h"

#include <math.h>
#include <string.h>

enum { STREAM_MR = 8 /* query rows per micro-tile */ };

/* What the kernels need to know of the 8 rows of a micro-tile for one key block. */
typedef struct micro_rows {
    int64_t limit[STREAM_MR];     /* keys [first, limit) before the additive mask; 0: padding */
    int64_t first[STREAM_MR];     /* the sliding window's left edge (0 without one) */
    const float *mask[STREAM_MR]; /* additive mask row, or NULL */
    int64_t key_end;              /* largest limit of the 8 rows */
    int nrows;                    /* rows of the micro-tile inside the query tile */
    bool opts;                    /* soft cap or ALiBi: ro[] applies (attn_logit_log2) */
    float cap_log2, inv_cap_log2; /* softcap·log2(e) and its inverse (0: no cap), for vectors */
    attn_row_opts ro[STREAM_MR];
} micro_rows;

/* One micro-tile on one key block, as the driver hands it to the variant. */
typedef struct micro_step {
    const attn_group_rows *gr;
    const micro_rows *rows;
    int64_t m0;       /* first row of the micro-tile in the query tile */
    int64_t j0, j1;   /* the key block */
    int64_t end;      /* min(j1, rows->key_end) > j0: the keys some row of the tile sees */
    bool v_finite;    /* the packed V block holds no NaN or infinity */
} micro_step;

typedef struct stream_ops {
    /* Writes query row r of the tile (d elements of problem->dtype at src) into the packed Q,
     * zero padded; src NULL: a padding row, all zeros. */
    void (*pack_q_row)(void *ctx, const attn_task *t, int64_t r, const void *src);
    /* Packs keys [j0, j1) of (b, hkv); returns false when the V block has a NaN or infinity. */
    bool (*pack_kv)(void *ctx, const attn_task *t, int64_t b, int64_t hkv, int64_t j0,
                    int64_t j1);
    /* Scores, softmax (updating run_max, run_sum and rescaling acc rows m0..m0+8) and P·V. */
    void (*micro_tile)(void *ctx, const attn_task *t, const micro_step *step);
} stream_ops;

/* Row i's key limit and first key within a run over keys [key_begin, key_end). */
static inline int64_t attn_stream_limit(const attn_problem *p, int64_t b, int64_t i,
                                        int64_t key_end)
{
    const int64_t lim = attn_key_limit(p, b, i);
    return lim < key_end ? lim : key_end;
}
static inline int64_t attn_stream_first(const attn_problem *p, int64_t i, int64_t key_begin)
{
    const int64_t first = attn_key_start(p, i);
    return first > key_begin ? first : key_begin;
}

/* Runs the task over keys [key_begin, key_end): rows normalised into O (part NULL, every key),
 * or run_partial's unnormalised partials (variant.h: natural-unit max, sum, accumulator). */
static inline __attribute__((always_inline)) void
attn_stream_run(const attn_task *t, int64_t key_begin, int64_t key_end,
                const attn_partial *part, int64_t bq, int64_t bk, int64_t dpad,
                float *restrict acc, float *restrict run_max, float *restrict run_sum,
                const stream_ops *ops, void *ctx)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim;
    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const attn_group_rows gr = attn_group_rows_of(t, g);
        for (int64_t r0 = 0; r0 < gr.count; r0 += bq) {
            const int64_t nr = gr.count - r0 < bq ? gr.count - r0 : bq;
            const int64_t nr8 = (nr + STREAM_MR - 1) / STREAM_MR * STREAM_MR;
            int64_t tile_keys = 0; /* keys any row of the tile may see */
            int64_t tile_first = INT64_MAX; /* and the first of them */
            for (int64_t r = 0; r < nr8; r++) {
                const void *src = NULL;
                if (r < nr) {
                    const int64_t h = gr.first_head + (r0 + r) / gr.rows;
                    const int64_t i = t->row_begin + (r0 + r) % gr.rows;
                    const int64_t lim = attn_stream_limit(p, gr.b, i, key_end);
                    const int64_t first = attn_stream_first(p, i, key_begin);
                    tile_keys = lim > tile_keys ? lim : tile_keys;
                    if (lim > first)
                        tile_first = first < tile_first ? first : tile_first;
                    src = attn_row(t, 'q', gr.b, h, i);
                }
                ops->pack_q_row(ctx, t, r, src);
                run_max[r] = -INFINITY;
                run_sum[r] = 0.0f;
            }
            memset(acc, 0, (size_t)(nr8 * dpad) * sizeof(float));
            const float cap_log2 = p->softcap * ATTN_LOG2E;
            const float inv_cap_log2 = cap_log2 != 0.0f ? 1.0f / cap_log2 : 0.0f;

            /* key blocks before every row's window are skipped whole */
            for (int64_t j0 = tile_first < tile_keys ? tile_first : tile_keys; j0 < tile_keys;
                 j0 += bk) {
                const int64_t j1 = j0 + bk < tile_keys ? j0 + bk : tile_keys;
                const bool v_finite = ops->pack_kv(ctx, t, gr.b, gr.hkv, j0, j1);
                for (int64_t m0 = 0; m0 < nr8; m0 += STREAM_MR) {
                    micro_rows rows = {.key_end = 0, .nrows = 0,
                                       .opts = p->softcap != 0.0f || p->alibi_slopes,
                                       .cap_log2 = cap_log2, .inv_cap_log2 = inv_cap_log2};
                    for (int r = 0; r < STREAM_MR; r++) {
                        rows.limit[r] = 0;
                        rows.first[r] = 0;
                        rows.mask[r] = NULL;
                        if (m0 + r >= nr)
                            continue;
                        const int64_t i = t->row_begin + (r0 + m0 + r) % gr.rows;
                        rows.limit[r] = attn_stream_limit(p, gr.b, i, key_end);
                        rows.first[r] = attn_stream_first(p, i, key_begin);
                        rows.mask[r] = attn_mask_row(p, i);
                        rows.ro[r] = attn_row_opts_of(p, gr.first_head + (r0 + m0 + r) / gr.rows,
                                                      i);
                        rows.key_end = rows.limit[r] > rows.key_end ? rows.limit[r] : rows.key_end;
                        rows.nrows = r + 1;
                    }
                    const int64_t end = j1 < rows.key_end ? j1 : rows.key_end;
                    if (end <= j0)
                        continue; /* every key of the block is masked for these rows */
                    const micro_step step = {.gr = &gr, .rows = &rows, .m0 = m0, .j0 = j0,
                                             .j1 = j1, .end = end, .v_finite = v_finite};
                    ops->micro_tile(ctx, t, &step);
                }
            }

            for (int64_t r = 0; r < nr; r++) {
                const int64_t h = gr.first_head + (r0 + r) / gr.rows;
                const int64_t i = t->row_begin + (r0 + r) % gr.rows;
                const float *restrict a = acc + r * dpad;
                if (part) { /* unnormalised; the max in natural units */
                    const int64_t prow = (g - t->group_begin) * gr.count + r0 + r;
                    part->max[prow] =
                        run_max[r] == -INFINITY ? -INFINITY : run_max[r] / ATTN_LOG2E;
                    part->sum[prow] = run_sum[r];
                    memcpy(part->acc + prow * d, a, (size_t)d * sizeof(float));
                    continue;
                }
                float *restrict o = attn_o_row(t, gr.b, h, i);
                /* l == 0: no key seen, the row is zeros; a NaN l carries the NaN through;
                 * the head's sink joins l (attn_row_norm; the max is in log2 units). */
                const float inv = attn_row_norm(run_max[r] / ATTN_LOG2E, run_sum[r],
                                                p->sinks ? p->sinks[h] : -INFINITY);
                for (int64_t c = 0; c < d; c++)
                    o[c] = a[c] * inv;
            }
        }
    }
}

/* P·V for a key block whose V has a NaN or an infinity: per row of the micro-tile, only the
 * keys the row attends to (0 × NaN would otherwise reach rows that mask the key). p: the
 * weights as float32 (row stride ldp, key j at p[j - j0]); acc: the tile's rows (stride dpad).
 * round_v: multiply by V rounded to bf16, as a bf16 variant's products do. */
static inline void attn_stream_pv_nonfinite(const attn_task *t, const micro_step *st,
                                            const float *p, int64_t ldp, float *acc,
                                            int64_t dpad, bool round_v, float *vbuf)
{
    const int64_t d = t->problem->head_dim;
    const micro_rows *rows = st->rows;
    for (int r = 0; r < rows->nrows; r++) {
        const int64_t end = rows->limit[r] < st->end ? rows->limit[r] : st->end;
        float *a = acc + r * dpad;
        for (int64_t j = st->j0 > rows->first[r] ? st->j0 : rows->first[r]; j < end; j++) {
            if (rows->mask[r] && rows->mask[r][j] == -INFINITY)
                continue;
            const float w = p[r * ldp + (j - st->j0)];
            const float *v = attn_row_f32(t, 'v', st->gr->b, st->gr->hkv, j, vbuf);
            for (int64_t c = 0; c < d; c++)
                a[c] += w * (round_v ? attn_bf16_to_f32(attn_f32_to_bf16(v[c])) : v[c]);
        }
    }
}

/* The workspace size of a variant from its parts (element counts): *total = their sum; false
 * when it overflows. */
static inline bool attn_stream_sum_parts(const size_t *parts, size_t n, size_t *total)
{
    size_t sum = 0;
    for (size_t i = 0; i < n; i++)
        if (__builtin_add_overflow(sum, parts[i], &sum))
            return false;
    *total = sum;
    return true;
}

/* A float32 query row (d elements at src; NULL: a padding row) packed as dpad floats, zero
 * padded: the float32 variants' pack_q_row. */
static inline void attn_stream_pack_q_f32(float *dst, const void *src, int64_t d, int64_t dpad)
{
    const int64_t n = src ? d : 0;
    if (n)
        memcpy(dst, src, (size_t)n * sizeof(float));
    memset(dst + n, 0, (size_t)(dpad - n) * sizeof(float));
}

/* The workspace parts and constants of one task of a float32 packed-stream variant (neon.c,
 * sve.c), for the driver's callbacks (ctx). */
typedef struct stream_f32_ctx {
    float *qp, *acc, *kp, *vp, *s, *run_max, *run_sum;
    int64_t dpad, bkp; /* d and bk rounded up to the variant's panels */
    float scale_log2e;
} stream_f32_ctx;

/* The float32 variants' pack_q_row (stream_ops): row r of the tile into qp. */
static inline void attn_stream_f32_pack_q_row(void *ctx, const attn_task *t, int64_t r,
                                              const void *src)
{
    const stream_f32_ctx *c = ctx;
    attn_stream_pack_q_f32(c->qp + r * c->dpad, src, t->problem->head_dim, c->dpad);
}

/* A float32 key row (d elements at k; NULL: a padding key, zeros) as a column of a transposed
 * K panel: kcol[c·stride] for c < dpad, zero padded. */
static inline void attn_stream_pack_k_col(float *kcol, int64_t stride, const float *k, int64_t d,
                                          int64_t dpad)
{
    int64_t c = 0;
    if (k)
        for (; c < d; c++)
            kcol[c * stride] = k[c];
    for (; c < dpad; c++)
        kcol[c * stride] = 0.0f;
}

#endif /* ATTN_PACKED_STREAM_H */
