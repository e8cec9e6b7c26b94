/* naive.c — the textbook algorithm, clarity first. For each query head: materialise the scores
 * S = softcap(scale·Q·Kᵀ) (+ ALiBi bias) (+ mask) for the task's rows, take each row's softmax in place, then O = P·V.
 * Workspace: rows × Lk floats (the whole score matrix of one head) and a row of d floats.
 * Accumulates in float32; half-precision inputs are widened (exactly) row by row, quantized
 * K/V (int8, q4) dequantized row by row. */
#include "variant.h"

#include <math.h>
#include <string.h>

static size_t naive_workspace(const attn_problem *p, const int32_t *params)
{
    (void)params;
    size_t n;
    if (__builtin_mul_overflow((size_t)p->len_q, (size_t)p->len_kv, &n) ||
        __builtin_add_overflow(n, 2 * (size_t)p->head_dim, &n) ||
        __builtin_mul_overflow(n, sizeof(float), &n))
        return SIZE_MAX;
    return n;
}

static attn_status naive_run(const attn_task *t)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, Lk = p->len_kv, group = p->heads_q / p->heads_kv;
    float *scores = t->workspace;
    float *q_buf = scores + (t->row_end - t->row_begin) * Lk, *kv_buf = q_buf + d;
    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const int64_t b = g / p->heads_kv, hkv = g % p->heads_kv;
        for (int64_t h = hkv * group; h < (hkv + 1) * group; h++) {
            /* 1. scores: keys outside the row's band (causal, padding, window) stay out
             * (-inf); the logit is softcap(scale·q·k) + ALiBi bias + mask. */
            for (int64_t i = t->row_begin; i < t->row_end; i++) {
                float *s = scores + (i - t->row_begin) * Lk;
                const float *q = attn_row_f32(t, 'q', b, h, i, q_buf);
                const float *mask = attn_mask_row(p, i);
                const int64_t j0 = attn_key_start(p, i), n = attn_key_limit(p, b, i);
                const attn_row_opts ro = attn_row_opts_of(p, h, i);
                for (int64_t j = 0; j < Lk; j++) {
                    if (j < j0 || j >= n || (mask && mask[j] == -INFINITY)) {
                        s[j] = -INFINITY;
                        continue;
                    }
                    const float *k = attn_row_f32(t, 'k', b, hkv, j, kv_buf);
                    float dot = 0.0f;
                    for (int64_t c = 0; c < d; c++)
                        dot += q[c] * k[c];
                    s[j] = attn_logit(&ro, t->scale * dot, j) + (mask ? mask[j] : 0.0f);
                }
            }
            /* 2. row softmax in place (the head's sink in its denominator); a row with every
             * key masked becomes all zeros. */
            for (int64_t i = t->row_begin; i < t->row_end; i++)
                attn_softmax_row_sink(scores + (i - t->row_begin) * Lk, Lk,
                                      p->sinks ? p->sinks[h] : -INFINITY);
            /* 3. O = P·V, skipping the keys that carry no weight. */
            for (int64_t i = t->row_begin; i < t->row_end; i++) {
                const float *s = scores + (i - t->row_begin) * Lk;
                float *o = attn_o_row(t, b, h, i);
                memset(o, 0, (size_t)d * sizeof *o);
                for (int64_t j = 0; j < Lk; j++) {
                    if (s[j] == 0.0f)
                        continue;
                    const float *v = attn_row_f32(t, 'v', b, hkv, j, kv_buf);
                    for (int64_t c = 0; c < d; c++)
                        o[c] += s[j] * v[c];
                }
            }
        }
    }
    return ATTN_OK;
}

const attn_variant attn_variant_naive = {
    .name = "naive",
    .description = "materialised scores, row softmax, P·V (portable C)",
    .isa = 0,
    .roofline = ATTN_ROOFLINE_FMA,
    .tolerance = 1e-5,
    .dtypes = 1u << ATTN_F32 | 1u << ATTN_BF16 | 1u << ATTN_F16,
    .kv_dtypes = 1u << ATTN_INT8 | 1u << ATTN_Q4,
    .vector_bits = 128,
    .params_valid = NULL,
    .workspace_size = naive_workspace,
    .run = naive_run,
    .features = ATTN_FEATURE_ALL,
};
