/* streaming.c — online softmax in portable C (the FlashAttention recurrence).
 *
 * A tile of bq query rows (flattened over the query heads of a GQA group, so each key block is
 * read once for the whole group) walks the keys in blocks of bk. For each block it computes the
 * bq×bk scores, then per row: the block max m', the correction 2^(m-m') applied to the running
 * sum l and accumulator only when the max rises, and l += Σp, acc += Σ p·v. The row is
 * normalised once at the end. Half-precision inputs are widened (exactly) into float32: a
 * query row once per key block, and each key block of K and V once per tile, so the widening
 * costs about 1/bq of the arithmetic. Memory: bq·(d + bk + 2) + d floats, plus 2·bk·d for
 * half inputs; independent of Lk. */
#include "variant.h"

#include <math.h>
#include <string.h>

enum { P_BQ, P_BK };

static const attn_param_info streaming_params[] = {
    [P_BQ] = {"bq", "query rows per tile", 1, 512, 1},
    [P_BK] = {"bk", "keys per block", 1, 8192, 1},
};

/* Defaults (portable family). A key block of K and V (2·bk·d floats) in half of L1; the
 * tile's accumulators and scores (bq·(d + bk) floats) then fit L2 for any d up to 1024. */
static const attn_default_rule streaming_defaults[] = {
    /*          fact           div per_d lk dm min max  max_half fixed */
    [P_BQ]   = {ATTN_FACT_NONE, 0, 0,    0, 0, 0,  0,   0,       32,
                "rows per tile; the key block, not the tile, has to fit L1"},
    [P_BK]   = {ATTN_FACT_L1D,  2, 8,    0, 1, 16, 256, 0,       0,
                "K and V: 2 x d floats per key"},
};

static size_t streaming_workspace(const attn_problem *p, const int32_t *v)
{
    const size_t bq = (size_t)v[P_BQ], bk = (size_t)v[P_BK], d = (size_t)p->head_dim;
    const size_t half_blocks = attn_kv_dtype_of(p) == ATTN_F32 ? 0 : 2 * bk * d;
    return (bq * (d + bk + 2) + d + half_blocks) * sizeof(float);
}

/* The task's rows over keys [key_begin, key_end): normalised into O when part is NULL,
 * otherwise the unnormalised (max, sum, acc) partials of the contract (variant.h). */
static attn_status streaming_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                                  const attn_partial *part)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, bq = t->params[P_BQ], bk = t->params[P_BK];
    float *acc = t->workspace;          /* [bq][d] */
    float *scores = acc + bq * d;       /* [bq][bk] */
    float *run_max = scores + bq * bk;  /* [bq] */
    float *run_sum = run_max + bq;      /* [bq] */
    float *q_buf = run_sum + bq;        /* [d]: a widened half query row */
    float *k_block = q_buf + d;         /* [bk][d]: widened half keys, when not float32 */
    float *v_block = k_block + bk * d;  /* [bk][d] */
    const bool half = attn_kv_dtype_of(p) != ATTN_F32; /* K/V widened (dequantized) per block */

    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const attn_group_rows gr = attn_group_rows_of(t, g);
        for (int64_t r0 = 0; r0 < gr.count; r0 += bq) {
            const int64_t nr = gr.count - r0 < bq ? gr.count - r0 : bq;
            /* Keys [tile_first, tile_keys): the union of the rows' bands within the range;
             * whole key blocks outside it are never touched. */
            int64_t tile_keys = 0, tile_first = key_end;
            for (int64_t r = 0; r < nr; r++) {
                const int64_t i = t->row_begin + (r0 + r) % gr.rows;
                int64_t lim = attn_key_limit(p, gr.b, i), first = attn_key_start(p, i);
                lim = lim < key_end ? lim : key_end;
                first = first > key_begin ? first : key_begin;
                if (lim > first) {
                    tile_keys = lim > tile_keys ? lim : tile_keys;
                    tile_first = first < tile_first ? first : tile_first;
                }
                run_max[r] = -INFINITY;
                run_sum[r] = 0.0f;
            }
            memset(acc, 0, (size_t)(nr * d) * sizeof *acc);

            for (int64_t j0 = tile_first; j0 < tile_keys; j0 += bk) {
                const int64_t j1 = j0 + bk < tile_keys ? j0 + bk : tile_keys;
                for (int64_t j = j0; half && j < j1; j++) {
                    attn_row_f32(t, 'k', gr.b, gr.hkv, j, k_block + (j - j0) * d);
                    attn_row_f32(t, 'v', gr.b, gr.hkv, j, v_block + (j - j0) * d);
                }
                for (int64_t r = 0; r < nr; r++) {
                    const int64_t h = gr.first_head + (r0 + r) / gr.rows;
                    const int64_t i = t->row_begin + (r0 + r) % gr.rows;
                    const int64_t lim = attn_key_limit(p, gr.b, i), first = attn_key_start(p, i);
                    const int64_t end = j1 < lim ? j1 : lim, begin = j0 > first ? j0 : first;
                    if (end <= begin)
                        continue;
                    const float *q = attn_row_f32(t, 'q', gr.b, h, i, q_buf);
                    const float *mask = attn_mask_row(p, i);
                    const attn_row_opts ro = attn_row_opts_of(p, h, i);
                    float *s = scores + r * bk - j0; /* indexed by key j */
                    float block_max = -INFINITY;
                    bool any = false;
                    for (int64_t j = begin; j < end; j++) {
                        if (mask && mask[j] == -INFINITY) {
                            s[j] = -INFINITY;
                            continue;
                        }
                        const float *k = half ? k_block + (j - j0) * d
                                              : attn_k_row(t, gr.b, gr.hkv, j);
                        s[j] = attn_logit(&ro, t->scale * attn_dot(q, k, d), j) +
                               (mask ? mask[j] : 0.0f);
                        block_max = fmaxf(block_max, s[j]); /* NaN skipped; reaches l below */
                        any = true;
                    }
                    if (!any)
                        continue;
                    float *a = acc + r * d;
                    if (block_max > run_max[r]) {
                        const float correction = expf(run_max[r] - block_max);
                        if (run_max[r] != -INFINITY) { /* acc is still 0 otherwise */
                            for (int64_t c = 0; c < d; c++)
                                a[c] *= correction;
                            run_sum[r] *= correction;
                        }
                        run_max[r] = block_max;
                    }
                    for (int64_t j = begin; j < end; j++) {
                        if (s[j] == -INFINITY)
                            continue;
                        const float w = expf(s[j] - run_max[r]);
                        const float *v = half ? v_block + (j - j0) * d
                                              : attn_v_row(t, gr.b, gr.hkv, j);
                        run_sum[r] += w;
                        for (int64_t c = 0; c < d; c++)
                            a[c] += w * v[c];
                    }
                }
            }

            if (part) {
                const int64_t row0 = (g - t->group_begin) * gr.count + r0;
                memcpy(part->max + row0, run_max, (size_t)nr * sizeof *run_max);
                memcpy(part->sum + row0, run_sum, (size_t)nr * sizeof *run_sum);
                memcpy(part->acc + row0 * d, acc, (size_t)(nr * d) * sizeof *acc);
                continue;
            }
            for (int64_t r = 0; r < nr; r++) {
                const int64_t h = gr.first_head + (r0 + r) / gr.rows;
                const int64_t i = t->row_begin + (r0 + r) % gr.rows;
                float *o = attn_o_row(t, gr.b, h, i);
                /* l == 0: no key seen, the row is zeros; a NaN l carries the NaN through; the
                 * head's sink joins the denominator. */
                const float inv = attn_row_norm(run_max[r], run_sum[r],
                                                p->sinks ? p->sinks[h] : -INFINITY);
                for (int64_t c = 0; c < d; c++)
                    o[c] = acc[r * d + c] * inv;
            }
        }
    }
    return ATTN_OK;
}

const attn_variant attn_variant_streaming = {
    .name = "streaming",
    .description = "online softmax, key blocks, O(bq·(d+bk)) memory (portable C)",
    .isa = 0,
    .roofline = ATTN_ROOFLINE_FMA,
    .tolerance = 1e-5,
    .dtypes = 1u << ATTN_F32 | 1u << ATTN_BF16 | 1u << ATTN_F16,
    .kv_dtypes = 1u << ATTN_INT8 | 1u << ATTN_Q4,
    ATTN_PARAMS(streaming_params, streaming_defaults),
    .vector_bits = 128,
    .params_valid = NULL,
    .workspace_size = streaming_workspace,
    .run_partial = streaming_rows,
    .features = ATTN_FEATURE_ALL,
};
