/* tile_rows.h — row bookkeeping shared by the x86 tile variants (avx512.c, avx512_bf16.c,
 * amx_bf16.c): workspace parts, the key range of a run, a block of a group's flattened query
 * rows (which head and row each is, its key limit and mask offset) and the output of a finished
 * row: O normalised, or run_partial's partials (variant.h). Plain C; the kernels stay in the
 * variants. */
#ifndef ATTN_TILE_ROWS_H
#define ATTN_TILE_ROWS_H

#include "variant.h"

#include <math.h>
#include <string.h>

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Appends count·elem bytes to a workspace of *total bytes at *part, rounded to 64 so every part
 * stays aligned; false on overflow. */
static inline bool add_part(size_t *part, size_t *total, size_t count, size_t elem)
{
    size_t bytes;
    if (__builtin_mul_overflow(count, elem, &bytes) || bytes > SIZE_MAX - 64)
        return false;
    bytes = (bytes + 63) & ~(size_t)63;
    *part = *total;
    return !__builtin_add_overflow(*total, bytes, total);
}

/* The per-row parts of a 32-row tile variant's workspace (avx512.c, avx512_bf16.c), as offsets:
 * running max and sum, key limit and mask offset of each of `rows` prefill rows; first key
 * (window), ALiBi slope and i' of each row of either path (max(rows, dec) of them). */
typedef struct row_parts {
    size_t m, l, lim, moff, first, slope, pos;
} row_parts;

static inline bool add_row_parts(row_parts *rp, size_t *total, size_t rows, size_t dec)
{
    const size_t either = rows > dec ? rows : dec;
    return add_part(&rp->m, total, rows, sizeof(float)) &&
           add_part(&rp->l, total, rows, sizeof(float)) &&
           add_part(&rp->lim, total, rows, sizeof(int64_t)) &&
           add_part(&rp->moff, total, rows, sizeof(int64_t)) &&
           add_part(&rp->first, total, either, sizeof(int64_t)) &&
           add_part(&rp->slope, total, either, sizeof(float)) &&
           add_part(&rp->pos, total, either, sizeof(float));
}

/* Those parts' arrays in the workspace ws. */
typedef struct row_arrays {
    float *m, *l;
    int64_t *lim, *moff, *first;
    float *slope, *pos;
} row_arrays;

static inline row_arrays row_arrays_of(void *ws, const row_parts *rp)
{
    char *b = ws;
    return (row_arrays){.m = (float *)(b + rp->m), .l = (float *)(b + rp->l),
                        .lim = (int64_t *)(b + rp->lim), .moff = (int64_t *)(b + rp->moff),
                        .first = (int64_t *)(b + rp->first), .slope = (float *)(b + rp->slope),
                        .pos = (float *)(b + rp->pos)};
}

/* A tile's rows as its score epilogue sees them (avx512_common.h: tile_scores): from row r0
 * of the arrays on. */
typedef struct tile_band {
    const int64_t *lim;       /* key limit of each row; 0 for padding lanes */
    const int64_t *first;     /* first key of each row (sliding window; 0 without) */
    const int64_t *moff;      /* offset of each row's mask row (mask problems) */
    const float *slope, *pos; /* ALiBi: slope·log2(e) and i' of each row */
} tile_band;

static inline tile_band tile_band_at(const row_arrays *ra, int64_t r0)
{
    return (tile_band){.lim = ra->lim + r0, .first = ra->first + r0, .moff = ra->moff + r0,
                       .slope = ra->slope + r0, .pos = ra->pos + r0};
}

/* Which keys a run covers and where its rows go: O (normalised), or for run_partial the
 * unnormalised partials of the contract (variant.h) at row index row0 + r. */
typedef struct key_range {
    int64_t begin, end;
    const attn_partial *part;
    int64_t row0;
} key_range;

/* Keys [begin, end) for group g of the task (gr = attn_group_rows_of(t, g)). */
static inline key_range key_range_of(const attn_task *t, int64_t g, const attn_group_rows *gr,
                                     int64_t begin, int64_t end, const attn_partial *part)
{
    return (key_range){.begin = begin, .end = end, .part = part,
                       .row0 = (g - t->group_begin) * gr->count};
}

typedef struct block_rows {
    const attn_task *t;
    const key_range *kr;
    attn_group_rows gr;
    int64_t r0, n; /* flattened rows [r0, r0 + n) of the group */
} block_rows;

/* The block of up to `rows` rows of the group from flattened row r0 on. */
static inline block_rows block_of(const attn_task *t, const key_range *kr,
                                  const attn_group_rows *gr, int64_t r0, int64_t rows)
{
    return (block_rows){.t = t, .kr = kr, .gr = *gr, .r0 = r0,
                        .n = gr->count - r0 < rows ? gr->count - r0 : rows};
}

static inline int64_t row_head(const block_rows *br, int64_t r)
{
    return br->gr.first_head + (br->r0 + r) / br->gr.rows;
}
static inline int64_t row_index(const block_rows *br, int64_t r)
{
    return br->t->row_begin + (br->r0 + r) % br->gr.rows;
}

/* Key limit lim[r], first key first[r] (the sliding window's left edge; first may be NULL
 * for a variant without windows) and mask-row offset moff[r] (may be NULL) of rows [0, rows)
 * of the block; rows from br->n on are padding lanes, and a row whose band is empty gets
 * limit 0 and first key 0 too (offset 0 for padding). Returns the largest limit. */
static inline int64_t block_limits(const block_rows *br, int64_t rows, int64_t *lim,
                                   int64_t *first, int64_t *moff)
{
    const attn_problem *p = br->t->problem;
    const int64_t mstride = p->mask_row_stride ? p->mask_row_stride : p->len_kv;
    int64_t lim_max = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t i = r < br->n ? row_index(br, r) : 0;
        const int64_t n = r < br->n ? attn_key_limit(p, br->gr.b, i) : 0;
        const int64_t f = r < br->n ? attn_key_start(p, i) : 0;
        lim[r] = n > f ? n : 0;
        if (first)
            first[r] = n > f ? f : 0;
        if (moff)
            moff[r] = r < br->n ? i * mstride : 0;
        lim_max = lim[r] > lim_max ? lim[r] : lim_max;
    }
    return lim_max;
}

/* Smallest and largest first key of the rows [0, rows) that see a key (lim > 0): where a
 * tile's keys begin, and from where every row of it sees them. lo = hi = INT64_MAX when none
 * does. */
static inline void first_range(const int64_t *first, const int64_t *lim, int64_t rows,
                               int64_t *lo, int64_t *hi)
{
    int64_t a = INT64_MAX, b = 0;
    for (int64_t r = 0; r < rows; r++)
        if (lim[r] > 0) {
            a = first[r] < a ? first[r] : a;
            b = first[r] > b ? first[r] : b;
        }
    *lo = a;
    *hi = a == INT64_MAX ? INT64_MAX : b;
}

/* ALiBi of rows [0, rows) in log2 units: slope2[r] = slope of the row's head · log2(e), pos[r]
 * = i' (the row's position on the key axis, exact in float below 2^24), so the bias of key j
 * is slope2[r]·(j - pos[r]) with j - pos[r] exact. Padding rows get 0 and 0. */
static inline void block_alibi(const block_rows *br, int64_t rows, float *slope2, float *pos)
{
    const attn_problem *p = br->t->problem;
    for (int64_t r = 0; r < rows; r++) {
        slope2[r] = r < br->n ? p->alibi_slopes[row_head(br, r)] * ATTN_LOG2E : 0.0f;
        pos[r] = r < br->n ? (float)(row_index(br, r) + p->len_kv - p->len_q) : 0.0f;
    }
}

/* Smallest and largest of the key limits lim[0..rows). */
static inline void limit_range(const int64_t *lim, int64_t rows, int64_t *lo, int64_t *hi)
{
    int64_t a = INT64_MAX, b = 0;
    for (int64_t r = 0; r < rows; r++) {
        a = lim[r] < a ? lim[r] : a;
        b = lim[r] > b ? lim[r] : b;
    }
    *lo = a;
    *hi = b;
}

/* Zeros the accumulator (o_floats floats) and the running max (-inf) and sum of `rows` rows. */
static inline void reset_rows(float *o, int64_t o_floats, float *m, float *l, int64_t rows)
{
    memset(o, 0, (size_t)o_floats * sizeof *o);
    for (int64_t r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
}

/* Row r done: O row = acc / l (l = 0: no key seen, zeros; a NaN l carries the NaN; the head's
 * sink joins l: attn_row_norm), or its
 * partials with the max back in natural units. acc[c·stride] is the row's accumulator. Not
 * `inline` (every includer calls it): once per row, so the compiler may keep it out of line,
 * away from the kernels that call it. */
static void finish_row(const block_rows *br, int64_t r, const float *acc, int64_t stride, float l,
                       float m_log2)
{
    const int64_t d = br->t->problem->head_dim;
    const attn_partial *part = br->kr->part;
    if (part) {
        const int64_t row = br->kr->row0 + br->r0 + r;
        part->max[row] = m_log2 == -INFINITY ? -INFINITY : m_log2 / ATTN_LOG2E;
        part->sum[row] = l;
        for (int64_t c = 0; c < d; c++)
            part->acc[row * d + c] = acc[c * stride];
        return;
    }
    const attn_problem *p = br->t->problem;
    const float inv = attn_row_norm(m_log2 / ATTN_LOG2E, l,
                                    p->sinks ? p->sinks[row_head(br, r)] : -INFINITY);
    float *o = attn_o_row(br->t, br->gr.b, row_head(br, r), row_index(br, r));
    for (int64_t c = 0; c < d; c++)
        o[c] = acc[c * stride] * inv;
}

#endif
