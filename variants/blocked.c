/* blocked.c — the naive three steps, cache-tiled (portable C).
 *
 * A tile of bq query rows (flattened over the query heads of a GQA group) is processed against
 * the keys in blocks of bk: pass 1 fills the tile's score rows block by block (each K block is
 * read once for all bq rows while it is in cache) and tracks each row's max; the row softmax is
 * taken in place; pass 2 accumulates P·V block by block. Workspace: bq·Lk scores — the exact,
 * two-pass softmax needs the whole row. */
#include "variant.h"

#include <math.h>
#include <string.h>

enum { P_BQ, P_BK };

static const attn_param_info blocked_params[] = {
    [P_BQ] = {"bq", "query rows per tile", 1, 512, 1},
    [P_BK] = {"bk", "keys per block", 1, 8192, 1},
};

/* Defaults (portable family): a K (or V) block of bk rows in half of L1; a tile of score rows
 * (bq·Lk floats) in half of L2. */
static const attn_default_rule blocked_defaults[] = {
    /*          fact          div per_d lk dm min max  max_half fixed */
    [P_BQ]   = {ATTN_FACT_L2,  2, 0,    4, 1, 4,  64,  0,       0,
                "score rows: Lk floats per row"},
    [P_BK]   = {ATTN_FACT_L1D, 2, 4,    0, 1, 16, 512, 0,       0,
                "a K (then V) block: d floats per key"},
};

static size_t blocked_workspace(const attn_problem *p, const int32_t *v)
{
    size_t n;
    if (__builtin_mul_overflow((size_t)v[P_BQ], (size_t)p->len_kv, &n) ||
        __builtin_mul_overflow(n, sizeof(float), &n))
        return SIZE_MAX;
    return n;
}

static attn_status blocked_run(const attn_task *t)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, Lk = p->len_kv, bq = t->params[P_BQ], bk = t->params[P_BK];
    float *scores = t->workspace; /* [bq][Lk] */

    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const attn_group_rows gr = attn_group_rows_of(t, g);
        for (int64_t r0 = 0; r0 < gr.count; r0 += bq) {
            const int64_t nr = gr.count - r0 < bq ? gr.count - r0 : bq;
            /* Keys [tile_first, tile_keys): the union of the rows' bands; whole key blocks
             * outside it (a sliding window's far past, causal future) are never touched. */
            int64_t tile_keys = 0, tile_first = Lk;
            for (int64_t r = 0; r < nr; r++) {
                const int64_t i = t->row_begin + (r0 + r) % gr.rows;
                const int64_t lim = attn_key_limit(p, gr.b, i), first = attn_key_start(p, i);
                if (lim <= first)
                    continue;
                tile_keys = lim > tile_keys ? lim : tile_keys;
                tile_first = first < tile_first ? first : tile_first;
            }
            if (tile_first > tile_keys)
                tile_first = tile_keys;
            /* Pass 1: scores, block by block; keys a row may not see are -inf. */
            for (int64_t j0 = tile_first; j0 < tile_keys; j0 += bk) {
                const int64_t j1 = j0 + bk < tile_keys ? j0 + bk : tile_keys;
                for (int64_t r = 0; r < nr; r++) {
                    const int64_t h = gr.first_head + (r0 + r) / gr.rows;
                    const int64_t i = t->row_begin + (r0 + r) % gr.rows;
                    const int64_t lim = attn_key_limit(p, gr.b, i), first = attn_key_start(p, i);
                    const float *q = attn_q_row(t, gr.b, h, i), *mask = attn_mask_row(p, i);
                    const attn_row_opts ro = attn_row_opts_of(p, h, i);
                    float *s = scores + r * Lk;
                    for (int64_t j = j0; j < j1; j++)
                        s[j] = (j < first || j >= lim || (mask && mask[j] == -INFINITY))
                                   ? -INFINITY
                                   : attn_logit(&ro, t->scale * attn_dot(q, attn_k_row(t, gr.b,
                                                                         gr.hkv, j), d), j) +
                                         (mask ? mask[j] : 0.0f);
                }
            }
            /* Row softmax in place: weights, then 1/sum folded in. */
            for (int64_t r = 0; r < nr; r++)
                attn_softmax_row_sink(scores + r * Lk + tile_first, tile_keys - tile_first,
                                      p->sinks ? p->sinks[gr.first_head + (r0 + r) / gr.rows]
                                               : -INFINITY);
            /* Pass 2: O = P·V, block by block, each V block read once for the tile. */
            for (int64_t r = 0; r < nr; r++) {
                const int64_t h = gr.first_head + (r0 + r) / gr.rows;
                memset(attn_o_row(t, gr.b, h, t->row_begin + (r0 + r) % gr.rows), 0,
                       (size_t)d * sizeof(float));
            }
            for (int64_t j0 = tile_first; j0 < tile_keys; j0 += bk) {
                const int64_t j1 = j0 + bk < tile_keys ? j0 + bk : tile_keys;
                for (int64_t r = 0; r < nr; r++) {
                    const int64_t h = gr.first_head + (r0 + r) / gr.rows;
                    float *o = attn_o_row(t, gr.b, h, t->row_begin + (r0 + r) % gr.rows);
                    const float *s = scores + r * Lk;
                    for (int64_t j = j0; j < j1; j++) {
                        if (s[j] == 0.0f)
                            continue;
                        const float *v = attn_v_row(t, gr.b, gr.hkv, j);
                        for (int64_t c = 0; c < d; c++)
                            o[c] += s[j] * v[c];
                    }
                }
            }
        }
    }
    return ATTN_OK;
}

const attn_variant attn_variant_blocked = {
    .name = "blocked",
    .description = "cache-tiled two-pass: query tiles × key blocks, exact row softmax (portable C)",
    .isa = 0,
    .roofline = ATTN_ROOFLINE_FMA,
    .tolerance = 1e-5,
    ATTN_PARAMS(blocked_params, blocked_defaults),
    .vector_bits = 128,
    .params_valid = NULL,
    .workspace_size = blocked_workspace,
    .run = blocked_run,
    .features = ATTN_FEATURE_ALL,
};
