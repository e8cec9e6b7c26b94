/* cli_run_kv.c — attnbench run on quantized K/V (--kv-dtype int8|q4): which variants read them,
 * the scale tensors, and quantizing the float32 K and V on the way in (cli_run_report.h). */
#include "cli_run_report.h"

#include <stdio.h>
#include <stdlib.h>

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
