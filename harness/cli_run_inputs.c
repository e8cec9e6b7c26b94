/* cli_run_inputs.c — attnbench run's inputs (cli_run_report.h): tensors laid out by the
 * problem's strides and pages, filled and gathered in logical order; quantized K/V
 * (--kv-dtype int8|q4): which variants read them, the scale tensors, and quantizing the float32
 * K and V on the way in. */
#include "cli_run_report.h"

#include "peak.h"
#include "rng.h"
#include "variant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Element offset of row (b, h, l). */
static int64_t view_offset(const tensor_view *t, int64_t b, int64_t h, int64_t l)
{
    if (t->paged)
        return attn_kv_offset(t->paged, t->strides, b, h, l);
    return b * t->strides->batch + h * t->strides->head + l * t->strides->seq;
}

tensor_view run_view_of(const attn_problem *p, char tensor)
{
    const bool is_q = tensor == 'q' || tensor == 'o';
    const attn_strides *s = tensor == 'q' ? &p->q : tensor == 'k' ? &p->k
                          : tensor == 'v' ? &p->v : &p->o;
    return (tensor_view){{p->batch, is_q ? p->heads_q : p->heads_kv, is_q ? p->len_q : p->len_kv,
                          p->head_dim}, s, !is_q && p->page_size ? p : NULL};
}

/* Fills a strided tensor row by row in logical order: from `src` (contiguous [B,H,L,d]) when
 * given, else from the generator. */
void run_fill_tensor(float *dst, tensor_view t, const float *src, uint64_t *rng)
{
    const int64_t d = t.dims[3];
    for (int64_t b = 0; b < t.dims[0]; b++)
        for (int64_t h = 0; h < t.dims[1]; h++)
            for (int64_t l = 0; l < t.dims[2]; l++) {
                float *row = dst + view_offset(&t, b, h, l);
                if (src) {
                    memcpy(row, src, (size_t)d * sizeof *row);
                    src += d;
                } else {
                    for (int64_t c = 0; c < d; c++)
                        row[c] = attn_rng_uniform_pm1(rng);
                }
            }
}

/* Copies a strided tensor of `from` elements into contiguous [B,H,L,d] of `to` elements. */
void run_gather_tensor(void *dst, attn_dtype to, tensor_view t, const void *src,
                          attn_dtype from)
{
    const int64_t d = t.dims[3];
    const size_t in = attn_dtype_size(from), out = attn_dtype_size(to);
    char *row = dst;
    for (int64_t b = 0; b < t.dims[0]; b++)
        for (int64_t h = 0; h < t.dims[1]; h++)
            for (int64_t l = 0; l < t.dims[2]; l++, row += (size_t)d * out)
                attn_convert((const char *)src + (size_t)view_offset(&t, b, h, l) * in, from,
                             row, to, (size_t)d);
}

static bool quantized(const attn_problem *p) { return attn_problem_kv_dtype(p) != (int)p->dtype; }

const char *run_skip_reason(const attn_variant_info *info, const run_config *c,
                            const attn_problem *p, char *buf, size_t len)
{
    const char *why = cli_variant_skip_reason(info, c->dtype, cli_model_features(&c->model), buf,
                                              len);
    if (why)
        return why;
    if ((c->kv_dtype == ATTN_INT8 || c->kv_dtype == ATTN_Q4) &&
        !(info->kv_dtypes & 1u << c->kv_dtype)) {
        snprintf(buf, len, "does not read %s K/V", attn_dtype_name(c->kv_dtype));
        return buf;
    }
    attn_error err; /* what the variant itself refuses (e.g. ggml: an additive mask) */
    if (attn_variant_accepts(info->name, p, &err) == ATTN_OK)
        return NULL;
    snprintf(buf, len, "%s", err.message);
    return buf;
}

bool run_kv_scales(run_state *s)
{
    for (int t = 0; t < 2; t++) {
        int64_t n;
        attn_tensor_extent(&s->problem, "KV"[t], &n, NULL);
        if (!(s->scales[t] = malloc((size_t)n * 4)))
            return false;
    }
    s->problem.k_scale = s->scales[0];
    s->problem.v_scale = s->scales[1];
    return true;
}

bool run_kv_quantize(run_state *s, attn_error *err)
{
    const attn_problem *p = &s->problem;
    for (int t = 1; t < 3 && quantized(p); t++) /* the variants read these, the oracle floats */
        if (attn_quantize_kv(p, "qkv"[t], s->data[t], s->input[t], s->scales[t - 1], err) ||
            attn_dequantize_kv(p, "qkv"[t], s->input[t], s->scales[t - 1], s->data[t], err))
            return false;
    return true;
}

double run_read_ref_gbs(const run_state *s, int threads)
{
    const attn_dtype kvt = (attn_dtype)attn_problem_kv_dtype(&s->problem);
    const size_t k = attn_dtype_bytes(kvt, (size_t)s->extent[1]);
    const size_t v = attn_dtype_bytes(kvt, (size_t)s->extent[2]);
    const size_t bytes = k < v ? k : v;
    if (bytes < ATTN_READ_ROW_BYTES) /* not one row to read: no figure */
        return NAN;
    return attn_peak_read_once(s->input[1], s->input[2], bytes, threads);
}
