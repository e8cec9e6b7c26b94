/* library.c — the public API of libattn (attn.h) over the variant registry: problem checks,
 * variant listing and dispatch. */
#include "attn.h"
#include "cpu.h"
#include "variant.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *attn_status_string(attn_status status)
{
    switch (status) {
    case ATTN_OK: return "ok";
    case ATTN_ERR_INVALID: return "invalid argument";
    case ATTN_ERR_OVERFLOW: return "size overflow";
    case ATTN_ERR_UNKNOWN_VARIANT: return "unknown variant";
    case ATTN_ERR_UNSUPPORTED: return "unsupported on this CPU";
    case ATTN_ERR_NOMEM: return "out of memory";
    case ATTN_ERR_IO: return "input/output error";
    }
    return "unknown status";
}

static attn_status fail(attn_error *err, attn_status status, const char *fmt, ...)
{
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

static void set_contiguous(attn_strides *s, int64_t heads, int64_t len, int64_t d, bool blhd)
{
    if (blhd) {
        s->head = d;
        s->seq = heads * d;
    } else {
        s->seq = d;
        s->head = len * d;
    }
    s->batch = heads * len * d;
}

static void set_layout(attn_problem *p, bool blhd)
{
    set_contiguous(&p->q, p->heads_q, p->len_q, p->head_dim, blhd);
    set_contiguous(&p->k, p->heads_kv, p->len_kv, p->head_dim, blhd);
    set_contiguous(&p->v, p->heads_kv, p->len_kv, p->head_dim, blhd);
    set_contiguous(&p->o, p->heads_q, p->len_q, p->head_dim, blhd);
}

void attn_problem_init(attn_problem *p, int64_t batch, int64_t heads_q, int64_t heads_kv,
                       int64_t len_q, int64_t len_kv, int64_t head_dim)
{
    memset(p, 0, sizeof *p);
    p->batch = batch;
    p->heads_q = heads_q;
    p->heads_kv = heads_kv;
    p->len_q = len_q;
    p->len_kv = len_kv;
    p->head_dim = head_dim;
    set_layout(p, false);
}

void attn_problem_set_layout_blhd(attn_problem *p) { set_layout(p, true); }

float attn_problem_scale(const attn_problem *p)
{
    return p->scale != 0.0f ? p->scale : (float)(1.0 / sqrt((double)p->head_dim));
}

/* Largest element offset + 1 of a [batch, heads, len, d] tensor, or -1 on overflow. */
static int64_t tensor_extent(const attn_strides *s, int64_t batch, int64_t heads, int64_t len,
                             int64_t d)
{
    const int64_t n[3] = {batch, heads, len}, st[3] = {s->batch, s->head, s->seq};
    int64_t total = d, term;
    for (int i = 0; i < 3; i++)
        if (__builtin_mul_overflow(n[i] - 1, st[i], &term) ||
            __builtin_add_overflow(total, term, &total))
            return -1;
    /* Bytes must fit in a size_t and a ptrdiff_t too. */
    if (total > PTRDIFF_MAX / (int64_t)sizeof(float))
        return -1;
    return total;
}

/* The output must not overlap itself: sorted by stride, each dimension must step over the
 * whole span of the ones inside it. */
static bool non_overlapping(const attn_strides *s, int64_t batch, int64_t heads, int64_t len,
                            int64_t d)
{
    int64_t n[4] = {d, batch, heads, len}, st[4] = {1, s->batch, s->head, s->seq};
    for (int i = 1; i < 4; i++) /* insertion sort by stride */
        for (int j = i; j > 0 && st[j] < st[j - 1]; j--) {
            int64_t t = st[j]; st[j] = st[j - 1]; st[j - 1] = t;
            t = n[j]; n[j] = n[j - 1]; n[j - 1] = t;
        }
    int64_t span = 1; /* elements covered by the dimensions so far */
    for (int i = 0; i < 4; i++) {
        if (n[i] == 1)
            continue;
        if (st[i] < span)
            return false;
        span = st[i] * n[i]; /* cannot overflow: tensor_extent checked it */
    }
    return true;
}

attn_status attn_tensor_extent(const attn_problem *p, char tensor, int64_t *elements,
                               attn_error *err)
{
    const attn_strides *s;
    int64_t heads, len;
    switch (tensor) {
    case 'q': s = &p->q; heads = p->heads_q; len = p->len_q; break;
    case 'k': s = &p->k; heads = p->heads_kv; len = p->len_kv; break;
    case 'v': s = &p->v; heads = p->heads_kv; len = p->len_kv; break;
    case 'o': s = &p->o; heads = p->heads_q; len = p->len_q; break;
    default: return fail(err, ATTN_ERR_INVALID, "unknown tensor '%c'", tensor);
    }
    int64_t e = tensor_extent(s, p->batch, heads, len, p->head_dim);
    if (e < 0)
        return fail(err, ATTN_ERR_OVERFLOW, "tensor %c: its size overflows 64 bits", tensor);
    *elements = e;
    return ATTN_OK;
}

attn_status attn_problem_validate(const attn_problem *p, attn_error *err)
{
    if (!p)
        return fail(err, ATTN_ERR_INVALID, "problem is NULL");
    const struct { const char *name; int64_t v; } sizes[] = {
        {"batch", p->batch},     {"heads_q", p->heads_q}, {"heads_kv", p->heads_kv},
        {"len_q", p->len_q},     {"len_kv", p->len_kv},   {"head_dim", p->head_dim},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].v < 1)
            return fail(err, ATTN_ERR_INVALID, "%s must be >= 1 (got %lld)", sizes[i].name,
                        (long long)sizes[i].v);
    if (p->heads_q % p->heads_kv)
        return fail(err, ATTN_ERR_INVALID,
                    "heads_q (%lld) must be a multiple of heads_kv (%lld)",
                    (long long)p->heads_q, (long long)p->heads_kv);
    if (p->scale != 0.0f && !(isfinite(p->scale) && p->scale > 0.0f))
        return fail(err, ATTN_ERR_INVALID, "scale must be finite and > 0 (got %g)",
                    (double)p->scale);
    /* Every product a variant or the harness forms from the shape must fit: the FLOP count's
     * B·Hq·Lq·Lk·d bounds all of them. */
    int64_t prod = 1;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (i != 2 && __builtin_mul_overflow(prod, sizes[i].v, &prod))
            return fail(err, ATTN_ERR_OVERFLOW,
                        "problem too large: batch*heads_q*len_q*len_kv*head_dim overflows 64 bits");
    if (prod > INT64_MAX / 8)
        return fail(err, ATTN_ERR_OVERFLOW,
                    "problem too large: batch*heads_q*len_q*len_kv*head_dim overflows 64 bits");
    if (p->kv_lens)
        for (int64_t b = 0; b < p->batch; b++)
            if (p->kv_lens[b] < 0 || p->kv_lens[b] > p->len_kv)
                return fail(err, ATTN_ERR_INVALID, "kv_lens[%lld] = %d is outside [0, len_kv=%lld]",
                            (long long)b, p->kv_lens[b], (long long)p->len_kv);
    if (p->mask_row_stride < 0 || (p->mask_row_stride > 0 && p->mask_row_stride < p->len_kv))
        return fail(err, ATTN_ERR_INVALID, "mask_row_stride must be 0 or >= len_kv");
    const char names[4] = {'q', 'k', 'v', 'o'};
    const attn_strides *st[4] = {&p->q, &p->k, &p->v, &p->o};
    for (int t = 0; t < 4; t++) {
        if (st[t]->batch < 0 || st[t]->head < 0 || st[t]->seq < 0)
            return fail(err, ATTN_ERR_INVALID, "tensor %c: strides must be >= 0", names[t]);
        int64_t e;
        attn_status s = attn_tensor_extent(p, names[t], &e, err);
        if (s != ATTN_OK)
            return s;
    }
    if (!non_overlapping(&p->o, p->batch, p->heads_q, p->len_q, p->head_dim))
        return fail(err, ATTN_ERR_INVALID,
                    "tensor o: strides make output elements overlap (batch %lld, head %lld, "
                    "seq %lld, head_dim %lld)", (long long)p->o.batch, (long long)p->o.head,
                    (long long)p->o.seq, (long long)p->head_dim);
    return ATTN_OK;
}

double attn_problem_flops(const attn_problem *p)
{
    double pairs = 0;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0; i < p->len_q; i++) {
            int64_t n = attn_key_limit(p, b, i);
            if (n <= 0)
                continue;
            const float *m = attn_mask_row(p, i);
            if (!m) {
                pairs += (double)n;
                continue;
            }
            for (int64_t j = 0; j < n; j++)
                pairs += !(isinf(m[j]) && m[j] < 0);
        }
    return 4.0 * (double)p->heads_q * (double)p->head_dim * pairs;
}

/* ---- variants ----------------------------------------------------------------------------- */

int attn_variant_count(void) { return attn_registry_count; }

int attn_variant_find(const char *name)
{
    for (int i = 0; name && i < attn_registry_count; i++)
        if (!strcmp(attn_registry[i]->name, name))
            return i;
    return -1;
}

bool attn_variant_get(int i, attn_variant_info *info)
{
    if (i < 0 || i >= attn_registry_count)
        return false;
    const attn_variant *v = attn_registry[i];
    const attn_cpu *cpu = attn_cpu_get();
    static _Thread_local char isa[128], why[192];
    attn_isa_format(v->isa, isa, sizeof isa);
    uint32_t missing = v->isa & ~cpu->isa;
    why[0] = '\0';
    if (missing) {
        char names[128];
        attn_isa_format(missing, names, sizeof names);
        uint32_t disabled = missing & cpu->isa_detected;
        if (disabled == missing)
            snprintf(why, sizeof why, "%s disabled by ATTN_DISABLE_ISA", names);
        else
            snprintf(why, sizeof why, "CPU lacks %s", names);
    }
    *info = (attn_variant_info){
        .name = v->name, .description = v->description, .isa = isa, .supported = !missing,
        .why_not = why, .tolerance = v->tolerance, .param_count = v->param_count,
        .params = v->params,
    };
    return true;
}

static const attn_variant *lookup(const char *name, attn_error *err)
{
    int i = attn_variant_find(name);
    if (i < 0) {
        fail(err, ATTN_ERR_UNKNOWN_VARIANT, "unknown variant '%s'", name ? name : "(null)");
        return NULL;
    }
    return attn_registry[i];
}

attn_status attn_variant_default_params(const char *name, const attn_problem *p,
                                        attn_params *out, attn_error *err)
{
    const attn_variant *v = lookup(name, err);
    if (!v)
        return ATTN_ERR_UNKNOWN_VARIANT;
    memset(out, 0, sizeof *out);
    out->count = v->param_count;
    if (v->default_params)
        v->default_params(p, &attn_cpu_get()->machine, out->value);
    return ATTN_OK;
}

static attn_status check_params(const attn_variant *v, const attn_problem *p,
                                const attn_params *params, attn_error *err)
{
    if (params->count != v->param_count)
        return fail(err, ATTN_ERR_INVALID, "variant %s takes %d parameters, got %d", v->name,
                    v->param_count, params->count);
    for (int i = 0; i < v->param_count; i++) {
        const attn_param_info *d = &v->params[i];
        int32_t x = params->value[i];
        if (x < d->min || x > d->max || (d->multiple_of > 1 && x % d->multiple_of))
            return fail(err, ATTN_ERR_INVALID,
                        "variant %s: %s=%d is outside [%d, %d]%s%.0d", v->name, d->name, x,
                        d->min, d->max, d->multiple_of > 1 ? " or not a multiple of " : "",
                        d->multiple_of > 1 ? d->multiple_of : 0);
    }
    char why[200];
    if (v->params_valid && !v->params_valid(p, params->value, why, sizeof why))
        return fail(err, ATTN_ERR_INVALID, "variant %s: %s", v->name, why);
    return ATTN_OK;
}

attn_status attn_params_parse(const char *name, const char *text, attn_params *params,
                              attn_error *err)
{
    const attn_variant *v = lookup(name, err);
    if (!v)
        return ATTN_ERR_UNKNOWN_VARIANT;
    const char *s = text;
    while (s && *s) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        const char *eq = memchr(s, '=', n);
        if (!eq)
            return fail(err, ATTN_ERR_INVALID, "parameter '%.*s' is not NAME=VALUE", (int)n, s);
        size_t klen = (size_t)(eq - s);
        int k = -1;
        for (int i = 0; i < v->param_count; i++)
            if (strlen(v->params[i].name) == klen && !strncmp(v->params[i].name, s, klen))
                k = i;
        if (k < 0)
            return fail(err, ATTN_ERR_INVALID, "variant %s has no parameter '%.*s'", v->name,
                        (int)klen, s);
        char num[32];
        size_t vlen = n - klen - 1;
        if (vlen == 0 || vlen >= sizeof num)
            return fail(err, ATTN_ERR_INVALID, "bad value for parameter %s", v->params[k].name);
        memcpy(num, eq + 1, vlen);
        num[vlen] = '\0';
        char *rest;
        long long x = strtoll(num, &rest, 10);
        if (*rest || x < INT32_MIN || x > INT32_MAX)
            return fail(err, ATTN_ERR_INVALID, "parameter %s: '%s' is not an integer",
                        v->params[k].name, num);
        params->value[k] = (int32_t)x;
        s = end ? end + 1 : NULL;
    }
    params->count = v->param_count;
    return ATTN_OK;
}

void attn_params_format(const char *name, const attn_params *params, char *buf, size_t len)
{
    const attn_variant *v = lookup(name, NULL);
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; v && i < v->param_count && i < params->count; i++) {
        int w = snprintf(buf + used, len - used, "%s%s=%d", used ? "," : "", v->params[i].name,
                         params->value[i]);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
}

attn_status attn_run_variant(const char *name, const attn_problem *p, const attn_params *params,
                             const float *q, const float *k, const float *v, float *o,
                             attn_error *err)
{
    const attn_variant *var = lookup(name, err);
    if (!var)
        return ATTN_ERR_UNKNOWN_VARIANT;
    attn_status s = attn_problem_validate(p, err);
    if (s != ATTN_OK)
        return s;
    if (!q || !k || !v || !o)
        return fail(err, ATTN_ERR_INVALID, "q, k, v and o must not be NULL");
    uint32_t missing = var->isa & ~attn_cpu_get()->isa;
    if (missing) {
        char names[128];
        attn_isa_format(missing, names, sizeof names);
        return fail(err, ATTN_ERR_UNSUPPORTED, "variant %s needs %s, which this CPU %s", name,
                    names, (missing & attn_cpu_get()->isa_detected) ? "has disabled" : "lacks");
    }
    attn_params defaults;
    if (!params) {
        attn_variant_default_params(name, p, &defaults, NULL);
        params = &defaults;
    }
    if ((s = check_params(var, p, params, err)) != ATTN_OK)
        return s;
    size_t bytes = var->workspace_size ? var->workspace_size(p, params->value) : 0;
    if (bytes == SIZE_MAX || bytes > (size_t)PTRDIFF_MAX - 64)
        return fail(err, ATTN_ERR_OVERFLOW, "variant %s: workspace size overflows", name);
    void *ws = NULL;
    if (bytes) {
        ws = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        if (!ws)
            return fail(err, ATTN_ERR_NOMEM, "variant %s: cannot allocate %zu bytes of workspace",
                        name, bytes);
    }
    attn_task task = {
        .problem = p, .scale = attn_problem_scale(p), .params = params->value,
        .q = q, .k = k, .v = v, .o = o, .workspace = ws,
        .group_begin = 0, .group_end = p->batch * p->heads_kv,
        .row_begin = 0, .row_end = p->len_q,
    };
    s = var->run(&task);
    free(ws);
    if (s != ATTN_OK)
        return fail(err, s, "variant %s failed", name);
    return ATTN_OK;
}
