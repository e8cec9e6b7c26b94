/* oracle.c — float64 reference: per row, exact max subtraction, exp in double, weighted sum. */
#include "oracle.h"
#include "error.h"

#include "variant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Whether query i sees key j before the additive mask, from the definitions in attn.h: key
 * lengths, causal (j <= i'), the sliding window (i' - left <= j <= i' + right), with
 * i' = i + Lk - Lq. */
static bool visible(const attn_problem *p, int64_t b, int64_t i, int64_t j)
{
    const int64_t pos = i + p->len_kv - p->len_q;
    if (p->kv_lens && j >= p->kv_lens[b])
        return false;
    if (p->causal && j > pos)
        return false;
    if (p->window_left >= 0 && pos - j > p->window_left) /* j < i' - left, without overflow */
        return false;
    if (p->window_right >= 0 && j - pos > p->window_right)
        return false;
    return true;
}

/* Element offset of key j of sequence b, head h, from the definition in attn.h: b's row j, or
 * with paged K/V row j mod page_size of page block_table[b][j / page_size] of the pool. */
static int64_t key_offset(const attn_problem *p, const attn_strides *s, int64_t b, int64_t h,
                          int64_t j)
{
    if (p->page_size == 0)
        return b * s->batch + h * s->head + j * s->seq;
    const int64_t row = p->block_table_stride ? p->block_table_stride
                                              : (p->len_kv + p->page_size - 1) / p->page_size;
    const int64_t page = p->block_table[b * row + j / p->page_size];
    return page * s->batch + h * s->head + (j % p->page_size) * s->seq;
}

attn_status attn_oracle(const attn_problem *p, const float *q, const float *k, const float *v,
                        double *out, attn_error *err)
{
    attn_status s = attn_problem_validate(p, err);
    if (s != ATTN_OK)
        return s;
    const int64_t d = p->head_dim, Lk = p->len_kv, group = p->heads_q / p->heads_kv;
    const double scale = attn_problem_scale(p);
    double *w = malloc((size_t)Lk * sizeof *w);
    if (!w) {
        if (err) {
            err->status = ATTN_ERR_NOMEM;
            strcpy(err->message, "oracle: out of memory");
        }
        return ATTN_ERR_NOMEM;
    }
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->heads_q; h++)
            for (int64_t i = 0; i < p->len_q; i++) {
                const int64_t hkv = h / group;
                const float *qi = q + b * p->q.batch + h * p->q.head + i * p->q.seq;
                const float *mask = attn_mask_row(p, i);
                double *o = out + ((b * p->heads_q + h) * p->len_q + i) * d;
                const int64_t n = Lk;
                double max = -INFINITY;
                bool nan = false;
                for (int64_t j = 0; j < n; j++) {
                    if (!visible(p, b, i, j) || (mask && mask[j] == -INFINITY)) {
                        w[j] = -INFINITY;
                        continue;
                    }
                    const float *kj = k + key_offset(p, &p->k, b, hkv, j);
                    double dot = 0;
                    for (int64_t c = 0; c < d; c++)
                        dot += (double)qi[c] * (double)kj[c];
                    w[j] = scale * dot;
                    if (p->softcap != 0.0f)
                        w[j] = p->softcap * tanh(w[j] / p->softcap);
                    if (p->alibi_slopes) /* slope·(j - i'), i' = i + Lk - Lq */
                        w[j] += (double)p->alibi_slopes[h] * (double)(j - (i + Lk - p->len_q));
                    w[j] += mask ? (double)mask[j] : 0.0;
                    if (isnan(w[j]))
                        nan = true;
                    else if (w[j] > max)
                        max = w[j];
                }
                memset(o, 0, (size_t)d * sizeof *o);
                if (nan) {
                    for (int64_t c = 0; c < d; c++)
                        o[c] = NAN;
                    continue;
                }
                /* The sink joins the denominator as a key without a value row; the max is
                 * taken over it too. No visible key: a zero row whatever the sink. */
                const bool any = max != -INFINITY;
                const double sink = p->sinks && any ? (double)p->sinks[h] : -INFINITY;
                if (sink > max)
                    max = sink;
                double sum = sink == -INFINITY ? 0 : exp(sink - max);
                for (int64_t j = 0; j < n; j++) {
                    if (w[j] == -INFINITY)
                        continue;
                    const double e = exp(w[j] - max);
                    sum += e;
                    const float *vj = v + key_offset(p, &p->v, b, hkv, j);
                    for (int64_t c = 0; c < d; c++)
                        o[c] += e * (double)vj[c];
                }
                if (sum > 0)
                    for (int64_t c = 0; c < d; c++)
                        o[c] /= sum;
            }
    free(w);
    return ATTN_OK;
}

attn_status attn_oracle_rounded(const attn_problem *p, const float *q, const float *k,
                                const float *v, attn_dtype round_to, double *out,
                                attn_error *err)
{
    if (round_to == ATTN_F32)
        return attn_oracle(p, q, k, v, out, err);
    const float *in[3] = {q, k, v};
    float *rounded[3] = {NULL, NULL, NULL};
    attn_status s = attn_problem_validate(p, err);
    for (int t = 0; t < 3 && s == ATTN_OK; t++) {
        int64_t n;
        if ((s = attn_tensor_extent(p, "qkv"[t], &n, err)) != ATTN_OK)
            break;
        if (!(rounded[t] = malloc((size_t)n * sizeof(float)))) {
            s = attn_fail(err, ATTN_ERR_NOMEM, "oracle: out of memory");
            break;
        }
        uint16_t half[1024];
        for (int64_t i = 0; i < n; i += 1024) {
            const size_t m = (size_t)(n - i < 1024 ? n - i : 1024);
            attn_convert(in[t] + i, ATTN_F32, half, round_to, m);
            attn_convert(half, round_to, rounded[t] + i, ATTN_F32, m);
        }
    }
    if (s == ATTN_OK)
        s = attn_oracle(p, rounded[0], rounded[1], rounded[2], out, err);
    for (int t = 0; t < 3; t++)
        free(rounded[t]);
    return s;
}

void attn_compare(const attn_problem *p, const float *o, const double *ref, double tolerance,
                  attn_error_metrics *m)
{
    memset(m, 0, sizeof *m);
    const int64_t d = p->head_dim;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->heads_q; h++)
            for (int64_t i = 0; i < p->len_q; i++) {
                const float *oi = o + b * p->o.batch + h * p->o.head + i * p->o.seq;
                const double *ri = ref + ((b * p->heads_q + h) * p->len_q + i) * d;
                for (int64_t c = 0; c < d; c++) {
                    const double x = oi[c], r = ri[c];
                    if (isnan(r) || isnan(x) || isinf(x)) {
                        m->nan_mismatch += !(isnan(r) && isnan(x));
                        continue;
                    }
                    if (fabs(r) > m->ref_max)
                        m->ref_max = fabs(r);
                    if (fabs(x - r) > m->max_abs)
                        m->max_abs = fabs(x - r);
                }
            }
    m->max_rel = m->ref_max > 0 ? m->max_abs / m->ref_max : m->max_abs;
    m->ok = m->nan_mismatch == 0 && m->max_rel <= tolerance;
}
