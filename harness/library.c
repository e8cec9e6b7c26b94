/* library.c — the public API of libattn (attn.h) over the variant registry: problem checks,
 * variant listing and dispatch. */
#include "attn.h"
#include "error.h"
#include "cpu.h"
#include "split.h"
#include "threads.h"
#include "topology.h"
#include "variant.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

attn_status attn_fail(attn_error *err, attn_status status, const char *fmt, ...)
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

/* a·b, or -1 (a stride validation refuses) when it overflows: attn_problem_init takes sizes
 * unchecked, and validation reports them before it reads a stride. */
static int64_t stride_product(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_mul_overflow(a, b, &r) ? -1 : r;
}

static void set_contiguous(attn_strides *s, int64_t heads, int64_t len, int64_t d, bool blhd)
{
    if (blhd) {
        s->head = d;
        s->seq = stride_product(heads, d);
    } else {
        s->seq = d;
        s->head = stride_product(len, d);
    }
    s->batch = stride_product(heads, stride_product(len, d));
    if (s->batch < 0 || s->head < 0 || s->seq < 0) /* any overflow poisons all three */
        *s = (attn_strides){-1, -1, -1};
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
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->batch = batch;
    p->heads_q = heads_q;
    p->heads_kv = heads_kv;
    p->len_q = len_q;
    p->len_kv = len_kv;
    p->head_dim = head_dim;
    set_layout(p, false);
}

void attn_problem_set_layout_blhd(attn_problem *p)
{
    if (p)
        set_layout(p, true);
}

float attn_problem_scale(const attn_problem *p)
{
    if (!p)
        return NAN;
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

/* Floats the additive mask spans ((Lq - 1) rows of its stride + Lk), or -1 on overflow. */
static int64_t mask_extent(const attn_problem *p)
{
    const int64_t row = p->mask_row_stride ? p->mask_row_stride : p->len_kv;
    int64_t total;
    if (__builtin_mul_overflow(p->len_q - 1, row, &total) ||
        __builtin_add_overflow(total, p->len_kv, &total) ||
        total > PTRDIFF_MAX / (int64_t)sizeof(float))
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
    if (!p)
        return attn_fail(err, ATTN_ERR_INVALID, "problem is NULL");
    if (!elements)
        return attn_fail(err, ATTN_ERR_INVALID, "elements is NULL");
    const attn_strides *s;
    int64_t heads, len;
    switch (tensor) {
    case 'q': s = &p->q; heads = p->heads_q; len = p->len_q; break;
    case 'k': s = &p->k; heads = p->heads_kv; len = p->len_kv; break;
    case 'v': s = &p->v; heads = p->heads_kv; len = p->len_kv; break;
    case 'o': s = &p->o; heads = p->heads_q; len = p->len_q; break;
    default: return attn_fail(err, ATTN_ERR_INVALID, "unknown tensor '%c'", tensor);
    }
    if (p->batch < 1 || heads < 1 || len < 1 || p->head_dim < 1)
        return attn_fail(err, ATTN_ERR_INVALID, "tensor %c: sizes must be >= 1", tensor);
    if (s->batch < 0 || s->head < 0 || s->seq < 0)
        return attn_fail(err, ATTN_ERR_INVALID, "tensor %c: strides must be >= 0", tensor);
    int64_t e = tensor_extent(s, p->batch, heads, len, p->head_dim);
    if (e < 0)
        return attn_fail(err, ATTN_ERR_OVERFLOW, "tensor %c: its size overflows 64 bits", tensor);
    *elements = e;
    return ATTN_OK;
}

attn_status attn_problem_validate(const attn_problem *p, attn_error *err)
{
    if (!p)
        return attn_fail(err, ATTN_ERR_INVALID, "problem is NULL");
    const struct { const char *name; int64_t v; } sizes[] = {
        {"batch", p->batch},     {"heads_q", p->heads_q}, {"heads_kv", p->heads_kv},
        {"len_q", p->len_q},     {"len_kv", p->len_kv},   {"head_dim", p->head_dim},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].v < 1)
            return attn_fail(err, ATTN_ERR_INVALID, "%s must be >= 1 (got %lld)", sizes[i].name,
                        (long long)sizes[i].v);
    if (p->heads_q % p->heads_kv)
        return attn_fail(err, ATTN_ERR_INVALID,
                    "heads_q (%lld) must be a multiple of heads_kv (%lld)",
                    (long long)p->heads_q, (long long)p->heads_kv);
    if (!attn_dtype_size(p->dtype))
        return attn_fail(err, ATTN_ERR_INVALID, "dtype %d is not an attn_dtype", (int)p->dtype);
    if (p->out_dtype != ATTN_F32 && p->out_dtype != p->dtype)
        return attn_fail(err, ATTN_ERR_INVALID, "out_dtype must be f32 or the input dtype (%s)",
                         attn_dtype_name(p->dtype));
    if (p->scale != 0.0f && !(isfinite(p->scale) && p->scale > 0.0f))
        return attn_fail(err, ATTN_ERR_INVALID, "scale must be finite and > 0 (got %g)",
                    (double)p->scale);
    /* Every product a variant or the harness forms from the shape must fit: the FLOP count's
     * B·Hq·Lq·Lk·d bounds all of them. */
    int64_t prod = 1;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (i != 2 && __builtin_mul_overflow(prod, sizes[i].v, &prod))
            return attn_fail(err, ATTN_ERR_OVERFLOW,
                        "problem too large: batch*heads_q*len_q*len_kv*head_dim overflows 64 bits");
    if (prod > INT64_MAX / 8)
        return attn_fail(err, ATTN_ERR_OVERFLOW,
                    "problem too large: batch*heads_q*len_q*len_kv*head_dim overflows 64 bits");
    if (p->kv_lens)
        for (int64_t b = 0; b < p->batch; b++)
            if (p->kv_lens[b] < 0 || p->kv_lens[b] > p->len_kv)
                return attn_fail(err, ATTN_ERR_INVALID, "kv_lens[%lld] = %d is outside [0, len_kv=%lld]",
                            (long long)b, p->kv_lens[b], (long long)p->len_kv);
    if (p->mask_row_stride < 0 || (p->mask_row_stride > 0 && p->mask_row_stride < p->len_kv))
        return attn_fail(err, ATTN_ERR_INVALID, "mask_row_stride must be 0 or >= len_kv");
    if (p->mask && mask_extent(p) < 0)
        return attn_fail(err, ATTN_ERR_OVERFLOW,
                         "mask: len_q rows of mask_row_stride %lld floats overflow 64 bits",
                         (long long)p->mask_row_stride);
    const char names[4] = {'q', 'k', 'v', 'o'};
    for (int t = 0; t < 4; t++) {
        int64_t e;
        attn_status s = attn_tensor_extent(p, names[t], &e, err);
        if (s != ATTN_OK)
            return s;
    }
    if (!non_overlapping(&p->o, p->batch, p->heads_q, p->len_q, p->head_dim))
        return attn_fail(err, ATTN_ERR_INVALID,
                    "tensor o: strides make output elements overlap (batch %lld, head %lld, "
                    "seq %lld, head_dim %lld)", (long long)p->o.batch, (long long)p->o.head,
                    (long long)p->o.seq, (long long)p->head_dim);
    return ATTN_OK;
}

double attn_problem_flops(const attn_problem *p)
{
    if (attn_problem_validate(p, NULL) != ATTN_OK) /* key limits and mask rows need a valid p */
        return -1;
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

static unsigned variant_dtypes(const attn_variant *v)
{
    return v->dtypes ? v->dtypes : 1u << ATTN_F32;
}

int attn_variant_find(const char *name)
{
    for (int i = 0; name && i < attn_registry_count; i++)
        if (!strcmp(attn_registry[i]->name, name))
            return i;
    return -1;
}

/* The ISA bits of `needs` that cannot be used here, and in `why` every reason that applies:
 * "disabled by ATTN_DISABLE_ISA: avx512f; CPU lacks amx" (either part alone when the other is
 * empty, "" when nothing is missing). The only place these words are made. */
static uint32_t isa_why_not(uint32_t needs, const attn_cpu *cpu, char *why, size_t why_len)
{
    const uint32_t missing = needs & ~cpu->isa;
    const uint32_t disabled = missing & cpu->isa_detected, lacking = missing & ~cpu->isa_detected;
    char names[128];
    size_t used = 0;
    why[0] = '\0';
    if (disabled) {
        attn_isa_format(disabled, names, sizeof names);
        used = (size_t)snprintf(why, why_len, "disabled by ATTN_DISABLE_ISA: %s", names);
    }
    if (lacking && used < why_len) {
        attn_isa_format(lacking, names, sizeof names);
        snprintf(why + used, why_len - used, "%sCPU lacks %s", used ? "; " : "", names);
    }
    return missing;
}

bool attn_variant_get(int i, attn_variant_info *info)
{
    if (!info || i < 0 || i >= attn_registry_count)
        return false;
    const attn_variant *v = attn_registry[i];
    const attn_cpu *cpu = attn_cpu_get();
    static _Thread_local char isa[128], why[320];
    attn_isa_format(v->isa, isa, sizeof isa);
    uint32_t missing = isa_why_not(v->isa, cpu, why, sizeof why);
    *info = (attn_variant_info){
        .name = v->name, .description = v->description, .isa = isa, .supported = !missing,
        .why_not = why, .tolerance = v->tolerance, .dtypes = variant_dtypes(v),
        .compute_dtype = v->compute_dtype, .param_count = v->param_count, .params = v->params,
        .vector_bits = v->vector_bits,
        .flops_per_cycle = (int)attn_machine_flops_per_cycle(&cpu->machine, v->vector_bits, NULL),
        .roofline = attn_roofline_name(v->roofline),
        .blas_core = v->blas_core ? v->blas_core() : NULL,
        .reference_only = v->reference_only,
    };
    return true;
}

bool attn_variant_absent(int i, const char **name, const char **why)
{
    if (!name || !why || i < 0)
        return false;
    for (int k = 0; k <= i; k++)
        if (!attn_registry_absent[k].name)
            return false;
    *name = attn_registry_absent[i].name;
    *why = attn_registry_absent[i].why;
    return true;
}

/* The registered variant of that name. NULL with *status = ATTN_ERR_UNSUPPORTED (and the reason)
 * for a variant this build leaves out, ATTN_ERR_UNKNOWN_VARIANT for any other name,
 * ATTN_ERR_INVALID for NULL. */
static const attn_variant *lookup(const char *name, attn_status *status, attn_error *err)
{
    if (!name) {
        *status = attn_fail(err, ATTN_ERR_INVALID, "variant name is NULL");
        return NULL;
    }
    const int i = attn_variant_find(name);
    if (i >= 0)
        return attn_registry[i];
    const char *absent, *why;
    for (int k = 0; attn_variant_absent(k, &absent, &why); k++)
        if (!strcmp(absent, name)) {
            *status = attn_fail(err, ATTN_ERR_UNSUPPORTED, "variant %s is %s", name, why);
            return NULL;
        }
    *status = attn_fail(err, ATTN_ERR_UNKNOWN_VARIANT, "unknown variant '%s'", name);
    return NULL;
}

attn_status attn_variant_default_params(const char *name, const attn_problem *p,
                                        attn_params *out, attn_error *err)
{
    attn_status status = ATTN_ERR_UNKNOWN_VARIANT;
    const attn_variant *v = lookup(name, &status, err);
    if (!v)
        return status;
    if (!out)
        return attn_fail(err, ATTN_ERR_INVALID, "out is NULL");
    /* The heuristics form products of the sizes: they need a problem that validates. */
    attn_status s = attn_problem_validate(p, err);
    if (s != ATTN_OK)
        return s;
    memset(out, 0, sizeof *out);
    out->count = v->param_count;
    attn_default_apply(v->defaults, v->params, v->param_count, p, &attn_cpu_get()->machine,
                       out->value);
    return ATTN_OK;
}

static attn_status check_params(const attn_variant *v, const attn_problem *p,
                                const attn_params *params, attn_error *err)
{
    if (params->threads < 0 || params->threads > ATTN_MAX_THREADS)
        return attn_fail(err, ATTN_ERR_INVALID, "threads must be in [0, %d] (got %d)",
                    ATTN_MAX_THREADS, params->threads);
    if (params->count != v->param_count)
        return attn_fail(err, ATTN_ERR_INVALID, "variant %s takes %d parameters, got %d", v->name,
                    v->param_count, params->count);
    for (int i = 0; i < v->param_count; i++) {
        const attn_param_info *d = &v->params[i];
        int32_t x = params->value[i];
        if (x < d->min || x > d->max || (d->multiple_of > 1 && x % d->multiple_of))
            return attn_fail(err, ATTN_ERR_INVALID,
                        "variant %s: %s=%d is outside [%d, %d]%s%.0d", v->name, d->name, x,
                        d->min, d->max, d->multiple_of > 1 ? " or not a multiple of " : "",
                        d->multiple_of > 1 ? d->multiple_of : 0);
    }
    /* params_valid lives in the variant's ISA file, compiled with its ISA's flags: on a CPU
     * without that ISA it could fault, so there only the ranges are checked (a run is refused
     * for the ISA before it gets here). */
    char why[200];
    if (v->params_valid && !(v->isa & ~attn_cpu_get()->isa_detected) &&
        !v->params_valid(p, params->value, why, sizeof why))
        return attn_fail(err, ATTN_ERR_INVALID, "variant %s: %s", v->name, why);
    return ATTN_OK;
}

attn_status attn_params_check(const char *name, const attn_problem *p, const attn_params *params,
                              attn_error *err)
{
    attn_status status = ATTN_ERR_UNKNOWN_VARIANT;
    const attn_variant *v = lookup(name, &status, err);
    if (!v)
        return status;
    attn_status s = attn_problem_validate(p, err);
    if (s != ATTN_OK)
        return s;
    if (!params)
        return attn_fail(err, ATTN_ERR_INVALID, "params is NULL");
    return check_params(v, p, params, err);
}

attn_status attn_params_parse(const char *name, const char *text, attn_params *params,
                              attn_error *err)
{
    attn_status status = ATTN_ERR_UNKNOWN_VARIANT;
    const attn_variant *v = lookup(name, &status, err);
    if (!v)
        return status;
    if (!text)
        return attn_fail(err, ATTN_ERR_INVALID, "text is NULL");
    if (!params)
        return attn_fail(err, ATTN_ERR_INVALID, "params is NULL");
    const char *s = text;
    while (s && *s) { /* s is NULL after the last item */
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        const char *eq = memchr(s, '=', n);
        if (!eq)
            return attn_fail(err, ATTN_ERR_INVALID, "parameter '%.*s' is not NAME=VALUE", (int)n, s);
        size_t klen = (size_t)(eq - s);
        int k = -1;
        for (int i = 0; i < v->param_count; i++)
            if (strlen(v->params[i].name) == klen && !strncmp(v->params[i].name, s, klen))
                k = i;
        if (k < 0)
            return attn_fail(err, ATTN_ERR_INVALID, "variant %s has no parameter '%.*s'", v->name,
                        (int)klen, s);
        char num[32];
        size_t vlen = n - klen - 1;
        if (vlen == 0 || vlen >= sizeof num)
            return attn_fail(err, ATTN_ERR_INVALID, "bad value for parameter %s", v->params[k].name);
        memcpy(num, eq + 1, vlen);
        num[vlen] = '\0';
        char *rest;
        long long x = strtoll(num, &rest, 10);
        if (*rest || x < INT32_MIN || x > INT32_MAX)
            return attn_fail(err, ATTN_ERR_INVALID, "parameter %s: '%s' is not an integer",
                        v->params[k].name, num);
        params->value[k] = (int32_t)x;
        s = end ? end + 1 : NULL;
    }
    params->count = v->param_count;
    return ATTN_OK;
}

void attn_params_format(const char *name, const attn_params *params, char *buf, size_t len)
{
    if (!buf || len == 0)
        return;
    attn_status status = ATTN_ERR_UNKNOWN_VARIANT;
    const attn_variant *v = lookup(name, &status, NULL);
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; v && params && i < v->param_count && i < params->count; i++) {
        int w = snprintf(buf + used, len - used, "%s%s=%d", used ? "," : "", v->params[i].name,
                         params->value[i]);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
}

/* ---- threaded runs ------------------------------------------------------------------------
 *
 * A run on T > 1 threads is cut into units: (group, block of query rows, block of keys), keys
 * innermost. Units are dealt to workers as contiguous ranges of roughly equal cost (attended
 * pairs), so the partition depends only on the problem and T. Each unit's output depends only
 * on the unit, which makes a run bit-for-bit repeatable. Key blocks (more than one only for a
 * variant with run_partial, when groups × row blocks leave threads idle — decode) produce
 * partials that the caller merges afterwards, key block 0 first. */

enum {
    ROW_GRANULE = 16,        /* query rows per unit at the finest */
    KEY_GRANULE = 512,       /* keys per key block at the finest: a block's partials (d + 2
                              * floats per row) and their merge stay < 1/256 of its K/V reads */
    KEY_ALIGN = 16,          /* key blocks start at multiples of this */
    UNITS_PER_WORKER = 4,    /* slack for balancing uneven (causal) rows */
};

typedef struct split_plan {
    const attn_variant *var;
    attn_task whole;                /* the whole problem; slices are copies of it */
    int64_t groups, heads_per_group;
    int64_t row_block, row_blocks;  /* query rows per unit; units per group along the rows */
    int64_t key_block, key_splits;  /* keys per unit; units per row block along the keys */
    int workers;
    int64_t *first_unit;            /* [workers + 1]: worker w runs [first_unit[w], first_unit[w+1]) */
    unsigned char *workspace;       /* workers × workspace_stride bytes */
    size_t workspace_stride;
    attn_partial partial;           /* [key_splits][all rows] (+ [d] for acc) when key_splits > 1 */
    int64_t partial_rows;           /* all rows: groups × heads_per_group × Lq */
    attn_status *status;            /* [workers] */
} split_plan;

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Chooses the unit sizes for T workers. */
static void plan_units(split_plan *sp, int T)
{
    const attn_problem *p = sp->whole.problem;
    const int64_t want = (int64_t)T * UNITS_PER_WORKER;
    int64_t row_blocks = ceil_div(want, sp->groups);
    const int64_t max_row_blocks = ceil_div(p->len_q, ROW_GRANULE);
    row_blocks = row_blocks < max_row_blocks ? row_blocks : max_row_blocks;
    row_blocks = row_blocks < 1 ? 1 : row_blocks;
    sp->row_block = ceil_div(p->len_q, row_blocks);
    sp->row_blocks = ceil_div(p->len_q, sp->row_block);
    sp->key_splits = 1;
    sp->key_block = p->len_kv;
    const int64_t units = sp->groups * sp->row_blocks;
    if (sp->var->run_partial && units < 2 * (int64_t)T) {
        int64_t splits = ceil_div(want, units);
        const int64_t max_splits = p->len_kv / KEY_GRANULE;
        splits = splits < max_splits ? splits : max_splits;
        if (splits > 1) {
            sp->key_block = ceil_div(ceil_div(p->len_kv, splits), KEY_ALIGN) * KEY_ALIGN;
            sp->key_splits = ceil_div(p->len_kv, sp->key_block);
        }
    }
}

attn_split attn_split_of(const attn_variant *v, const attn_problem *p, int threads)
{
    attn_task whole = {.problem = p};
    split_plan sp = {.var = v, .whole = whole, .groups = p->batch * p->heads_kv,
                     .heads_per_group = p->heads_q / p->heads_kv, .workers = threads};
    plan_units(&sp, threads);
    return (attn_split){.row_block = sp.row_block, .row_blocks = sp.row_blocks,
                        .key_block = sp.key_block, .key_splits = sp.key_splits};
}

/* Attended pairs (plus one per row, for its fixed cost) of one unit, ignoring the float mask. */
static double unit_cost(const split_plan *sp, int64_t u)
{
    const attn_problem *p = sp->whole.problem;
    const int64_t per_group = sp->row_blocks * sp->key_splits;
    const int64_t g = u / per_group, rb = (u / sp->key_splits) % sp->row_blocks;
    const int64_t ks = u % sp->key_splits, b = g / p->heads_kv;
    const int64_t i1 = (rb + 1) * sp->row_block < p->len_q ? (rb + 1) * sp->row_block : p->len_q;
    const int64_t j0 = ks * sp->key_block, j1 = j0 + sp->key_block;
    double pairs = 0;
    for (int64_t i = rb * sp->row_block; i < i1; i++) {
        int64_t lim = attn_key_limit(p, b, i);
        lim = lim < j1 ? lim : j1;
        pairs += 1.0 + (double)(lim > j0 ? lim - j0 : 0);
    }
    return pairs * (double)sp->heads_per_group;
}

/* Deals contiguous unit ranges of about equal cost: unit u goes to the worker whose share of
 * the total holds the unit's midpoint. Returns false on allocation failure. */
static bool deal_units(split_plan *sp)
{
    const int64_t units = sp->groups * sp->row_blocks * sp->key_splits;
    double *cost = malloc((size_t)units * sizeof *cost);
    if (!cost)
        return false;
    double total = 0;
    for (int64_t u = 0; u < units; u++)
        total += cost[u] = unit_cost(sp, u);
    double before = 0;
    int w = 0;
    sp->first_unit[0] = 0;
    for (int64_t u = 0; u < units; u++) {
        const double mid = (before + cost[u] / 2) / total * sp->workers;
        while (w < sp->workers - 1 && mid >= w + 1)
            sp->first_unit[++w] = u;
        before += cost[u];
    }
    while (w < sp->workers)
        sp->first_unit[++w] = units;
    free(cost);
    return true;
}

static attn_task slice(const split_plan *sp, int w, int64_t g0, int64_t g1, int64_t i0, int64_t i1)
{
    attn_task t = sp->whole;
    t.workspace = sp->workspace ? sp->workspace + (size_t)w * sp->workspace_stride : NULL;
    t.group_begin = g0;
    t.group_end = g1;
    t.row_begin = i0;
    t.row_end = i1;
    return t;
}

/* One task: every key into O (out NULL), or keys [j0, j1) into partials; then the vector state
 * the calling convention promises (attn_cpu_clean_upper_state). A variant without `run` writes
 * O through run_partial with no partials (variant.h). */
static attn_status run_task(const attn_variant *var, const attn_task *t, int64_t j0, int64_t j1,
                            const attn_partial *out)
{
    const attn_status s = out || !var->run ? var->run_partial(t, j0, j1, out) : var->run(t);
    attn_cpu_clean_upper_state();
    return s;
}

/* Worker w: its units, merged into as few tasks as possible when keys are not split. */
static void run_worker(void *ctx, int w, int workers)
{
    (void)workers;
    split_plan *sp = ctx;
    const attn_problem *p = sp->whole.problem;
    const int64_t last = sp->first_unit[w + 1], rbs = sp->row_blocks;
    attn_status st = ATTN_OK;
    for (int64_t u = sp->first_unit[w]; u < last && st == ATTN_OK;) {
        if (sp->key_splits > 1) {
            const int64_t g = u / (rbs * sp->key_splits), rb = (u / sp->key_splits) % rbs;
            const int64_t ks = u % sp->key_splits, i0 = rb * sp->row_block;
            const int64_t i1 = i0 + sp->row_block < p->len_q ? i0 + sp->row_block : p->len_q;
            const int64_t j0 = ks * sp->key_block;
            const int64_t j1 = j0 + sp->key_block < p->len_kv ? j0 + sp->key_block : p->len_kv;
            /* this unit's rows in the partial arrays: the contract's (g - group_begin)·count + r */
            const int64_t row0 = ks * sp->partial_rows + g * sp->heads_per_group * p->len_q +
                                 sp->heads_per_group * i0;
            const attn_partial out = {sp->partial.max + row0, sp->partial.sum + row0,
                                      sp->partial.acc + row0 * p->head_dim};
            const attn_task t = slice(sp, w, g, g + 1, i0, i1);
            st = run_task(sp->var, &t, j0, j1, &out);
            u++;
            continue;
        }
        const int64_t g = u / rbs, rb = u % rbs;
        if (rb == 0 && last - u >= rbs) { /* whole groups */
            const int64_t ng = (last - u) / rbs;
            const attn_task t = slice(sp, w, g, g + ng, 0, p->len_q);
            st = run_task(sp->var, &t, 0, p->len_kv, NULL);
            u += ng * rbs;
        } else { /* the row blocks of group g up to the end of the range */
            const int64_t rb_end = rbs < rb + (last - u) ? rbs : rb + (last - u);
            const int64_t i1 = rb_end * sp->row_block < p->len_q ? rb_end * sp->row_block : p->len_q;
            const attn_task t = slice(sp, w, g, g + 1, rb * sp->row_block, i1);
            st = run_task(sp->var, &t, 0, p->len_kv, NULL);
            u += rb_end - rb;
        }
    }
    sp->status[w] = st;
}

/* O from the key blocks' partials, key block 0 first: rescale each to the common max. */
static void merge_partials(const split_plan *sp)
{
    const attn_problem *p = sp->whole.problem;
    const int64_t d = p->head_dim, hpg = sp->heads_per_group;
    for (int64_t g = 0; g < sp->groups; g++) {
        const int64_t b = g / p->heads_kv, first_head = (g % p->heads_kv) * hpg;
        for (int64_t i0 = 0; i0 < p->len_q; i0 += sp->row_block) {
            const int64_t rows = p->len_q - i0 < sp->row_block ? p->len_q - i0 : sp->row_block;
            for (int64_t r = 0; r < hpg * rows; r++) {
                const int64_t row = g * hpg * p->len_q + hpg * i0 + r;
                float m = -INFINITY;
                for (int64_t s = 0; s < sp->key_splits; s++) {
                    const int64_t x = s * sp->partial_rows + row;
                    if (sp->partial.sum[x] != 0.0f && sp->partial.max[x] > m)
                        m = sp->partial.max[x];
                }
                float *o = sp->whole.o + b * p->o.batch + (first_head + r / rows) * p->o.head +
                           (i0 + r % rows) * p->o.seq;
                float l = 0.0f;
                for (int64_t c = 0; c < d; c++)
                    o[c] = 0.0f;
                for (int64_t s = 0; s < sp->key_splits; s++) {
                    const int64_t x = s * sp->partial_rows + row;
                    if (sp->partial.sum[x] == 0.0f) /* no key in this block */
                        continue;
                    /* equal maxima weigh 1, so a NaN-only block (max -inf, sum NaN) stays NaN */
                    const float mx = sp->partial.max[x];
                    const float wgt = mx == m ? 1.0f : expf(mx - m);
                    const float *a = sp->partial.acc + x * d;
                    l += wgt * sp->partial.sum[x];
                    for (int64_t c = 0; c < d; c++)
                        o[c] += wgt * a[c];
                }
                const float inv = l == 0.0f ? 0.0f : 1.0f / l;
                for (int64_t c = 0; c < d; c++)
                    o[c] *= inv;
            }
        }
    }
}

int attn_default_threads(void)
{
    const int n = attn_topology_get()->cores_first_numa;
    return n < 1 ? 1 : n > ATTN_MAX_THREADS ? ATTN_MAX_THREADS : n;
}

static attn_status run_split(const attn_variant *var, const attn_task *whole, size_t ws_bytes,
                             int threads, attn_error *err)
{
    const attn_problem *p = whole->problem;
    split_plan sp = {.var = var, .whole = *whole, .groups = p->batch * p->heads_kv,
                     .heads_per_group = p->heads_q / p->heads_kv, .workers = threads};
    plan_units(&sp, threads);
    attn_status s = ATTN_OK;
    sp.workspace_stride = (ws_bytes + 63) & ~(size_t)63;
    sp.first_unit = calloc((size_t)threads + 1, sizeof *sp.first_unit);
    sp.status = calloc((size_t)threads, sizeof *sp.status);
    if (!sp.first_unit || !sp.status || !deal_units(&sp)) {
        s = attn_fail(err, ATTN_ERR_NOMEM, "variant %s: cannot allocate the thread plan", var->name);
        goto out;
    }
    if (ws_bytes) {
        if (sp.workspace_stride > SIZE_MAX / (size_t)threads ||
            !(sp.workspace = aligned_alloc(64, sp.workspace_stride * (size_t)threads))) {
            s = attn_fail(err, ATTN_ERR_NOMEM, "variant %s: cannot allocate %d workspaces of %zu bytes",
                     var->name, threads, ws_bytes);
            goto out;
        }
    }
    if (sp.key_splits > 1) {
        sp.partial_rows = sp.groups * sp.heads_per_group * p->len_q;
        const size_t n = (size_t)(sp.key_splits * sp.partial_rows); /* bounded by validation */
        sp.partial.max = malloc(n * sizeof(float));
        sp.partial.sum = malloc(n * sizeof(float));
        sp.partial.acc = malloc(n * (size_t)p->head_dim * sizeof(float));
        if (!sp.partial.max || !sp.partial.sum || !sp.partial.acc) {
            s = attn_fail(err, ATTN_ERR_NOMEM, "variant %s: cannot allocate key-split partials",
                     var->name);
            goto out;
        }
    }
    attn_parallel_run(threads, run_worker, &sp);
    for (int w = 0; w < threads; w++)
        if (sp.status[w] != ATTN_OK && s == ATTN_OK)
            s = attn_fail(err, sp.status[w], "variant %s failed", var->name);
    if (s == ATTN_OK && sp.key_splits > 1)
        merge_partials(&sp);
out:
    free(sp.first_unit);
    free(sp.status);
    free(sp.workspace);
    free(sp.partial.max);
    free(sp.partial.sum);
    free(sp.partial.acc);
    return s;
}

double attn_variant_tolerance(const char *name, const attn_problem *p)
{
    const int i = attn_variant_find(name);
    if (i < 0 || !p || attn_dtype_size(p->out_dtype) == 0)
        return -1;
    return attn_registry[i]->tolerance +
           (p->out_dtype == ATTN_F32 ? 0.0 : attn_dtype_unit_roundoff(p->out_dtype));
}

/* Runs a checked variant into a float32 O laid out as p->o says. */
static attn_status run_checked(const attn_variant *var, const attn_problem *p,
                               const attn_params *params, const void *q, const void *k,
                               const void *v, float *o, attn_error *err)
{
    const int threads = params->threads ? params->threads : attn_default_threads();
    size_t bytes = var->workspace_size ? var->workspace_size(p, params->value) : 0;
    if (bytes == SIZE_MAX || bytes > (size_t)PTRDIFF_MAX - 64)
        return attn_fail(err, ATTN_ERR_OVERFLOW, "variant %s: workspace size overflows", var->name);
    attn_task task = {
        .problem = p, .scale = attn_problem_scale(p), .params = params->value,
        .q = q, .k = k, .v = v, .o = o, .workspace = NULL,
        .group_begin = 0, .group_end = p->batch * p->heads_kv,
        .row_begin = 0, .row_end = p->len_q,
    };
    if (threads > 1)
        return run_split(var, &task, bytes, threads, err);
    if (bytes) {
        task.workspace = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        if (!task.workspace)
            return attn_fail(err, ATTN_ERR_NOMEM, "variant %s: cannot allocate %zu bytes of workspace",
                        var->name, bytes);
    }
    attn_status s = run_task(var, &task, 0, p->len_kv, NULL);
    free(task.workspace);
    if (s != ATTN_OK)
        return attn_fail(err, s, "variant %s failed", var->name);
    return ATTN_OK;
}

/* A half-precision output: the variant writes a contiguous float32 O, rounded into o after. */
static attn_status run_half_output(const attn_variant *var, const attn_problem *p,
                                   const attn_params *params, const void *q, const void *k,
                                   const void *v, void *o, attn_error *err)
{
    attn_problem inner = *p;
    inner.out_dtype = ATTN_F32;
    inner.o = (attn_strides){.batch = p->heads_q * p->len_q * p->head_dim,
                             .head = p->len_q * p->head_dim, .seq = p->head_dim};
    const size_t n = (size_t)(p->batch * inner.o.batch); /* bounded by validation */
    float *tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return attn_fail(err, ATTN_ERR_NOMEM, "variant %s: cannot allocate the float32 output",
                         var->name);
    attn_status s = run_checked(var, &inner, params, q, k, v, tmp, err);
    const size_t esize = attn_dtype_size(p->out_dtype);
    for (int64_t b = 0; s == ATTN_OK && b < p->batch; b++)
        for (int64_t h = 0; h < p->heads_q; h++)
            for (int64_t i = 0; i < p->len_q; i++)
                attn_convert(tmp + b * inner.o.batch + h * inner.o.head + i * inner.o.seq,
                             ATTN_F32,
                             (char *)o + (b * p->o.batch + h * p->o.head + i * p->o.seq) * (int64_t)esize,
                             p->out_dtype, (size_t)p->head_dim);
    free(tmp);
    return s;
}

/* O must share no byte with an input: the variants write O while they still read Q, K, V, the
 * mask and kv_lens. Each tensor's bytes are taken as the range its strides span (element 0 to
 * its largest offset; strides are >= 0, so nothing lies below element 0), so an output
 * interleaved with an input in one buffer is refused too. Call on a validated problem. */
static attn_status check_output_apart(const attn_problem *p, const void *q, const void *k,
                                      const void *v, const void *o, attn_error *err)
{
    int64_t elements[4];
    for (int t = 0; t < 4; t++)
        attn_tensor_extent(p, "qkvo"[t], &elements[t], NULL);
    const size_t in_size = attn_dtype_size(p->dtype);
    const struct { const char *name; const void *at; size_t bytes; } inputs[] = {
        {"q", q, (size_t)elements[0] * in_size},
        {"k", k, (size_t)elements[1] * in_size},
        {"v", v, (size_t)elements[2] * in_size},
        {"mask", p->mask, p->mask ? (size_t)mask_extent(p) * sizeof(float) : 0},
        {"kv_lens", p->kv_lens, p->kv_lens ? (size_t)p->batch * sizeof(int32_t) : 0},
    };
    const uintptr_t o_begin = (uintptr_t)o;
    const uintptr_t o_end = o_begin + (size_t)elements[3] * attn_dtype_size(p->out_dtype);
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        const uintptr_t begin = (uintptr_t)inputs[i].at, end = begin + inputs[i].bytes;
        if (inputs[i].at && begin < o_end && o_begin < end)
            return attn_fail(err, ATTN_ERR_INVALID,
                             "o overlaps %s (o spans %zu bytes at %p, %s %zu bytes at %p): the "
                             "output must not share memory with an input",
                             inputs[i].name, (size_t)(o_end - o_begin), o, inputs[i].name,
                             inputs[i].bytes, inputs[i].at);
    }
    return ATTN_OK;
}

attn_status attn_run_variant(const char *name, const attn_problem *p, const attn_params *params,
                             const void *q, const void *k, const void *v, void *o,
                             attn_error *err)
{
    attn_status status = ATTN_ERR_UNKNOWN_VARIANT;
    const attn_variant *var = lookup(name, &status, err);
    if (!var)
        return status;
    attn_status s = attn_problem_validate(p, err);
    if (s != ATTN_OK)
        return s;
    if (!q || !k || !v || !o)
        return attn_fail(err, ATTN_ERR_INVALID, "q, k, v and o must not be NULL");
    if ((s = check_output_apart(p, q, k, v, o, err)) != ATTN_OK)
        return s;
    char why[256];
    if (isa_why_not(var->isa, attn_cpu_get(), why, sizeof why))
        return attn_fail(err, ATTN_ERR_UNSUPPORTED, "variant %s cannot run here: %s", name, why);
    if (!(variant_dtypes(var) & (1u << p->dtype))) {
        char list[32] = "";
        for (int t = 0; t < ATTN_DTYPE_COUNT; t++)
            if (variant_dtypes(var) & (1u << t))
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                         list[0] ? ", " : "", attn_dtype_name((attn_dtype)t));
        return attn_fail(err, ATTN_ERR_UNSUPPORTED, "variant %s reads %s inputs, not %s", name,
                         list, attn_dtype_name(p->dtype));
    }
    attn_params defaults;
    if (!params) {
        attn_variant_default_params(name, p, &defaults, NULL);
        params = &defaults;
    }
    if ((s = check_params(var, p, params, err)) != ATTN_OK)
        return s;
    if (p->out_dtype != ATTN_F32)
        return run_half_output(var, p, params, q, k, v, o, err);
    return run_checked(var, p, params, q, k, v, o, err);
}

attn_status attn_forced_variant(const char **name, attn_error *err)
{
    if (!name)
        return attn_fail(err, ATTN_ERR_INVALID, "name is NULL");
    *name = NULL;
    const char *env = getenv("ATTN_FORCE_VARIANT");
    if (!env || !*env)
        return ATTN_OK;
    const int i = attn_variant_find(env);
    if (i < 0) {
        char known[256] = "";
        for (int j = 0; j < attn_registry_count; j++) {
            size_t used = strlen(known);
            snprintf(known + used, sizeof known - used, "%s%s", j ? ", " : "",
                     attn_registry[j]->name);
        }
        return attn_fail(err, ATTN_ERR_UNKNOWN_VARIANT,
                    "ATTN_FORCE_VARIANT=%s: no such variant (known: %s)", env, known);
    }
    attn_variant_info info;
    attn_variant_get(i, &info);
    if (!info.supported)
        return attn_fail(err, ATTN_ERR_UNSUPPORTED, "ATTN_FORCE_VARIANT=%s: cannot run here: %s", env,
                    info.why_not);
    *name = attn_registry[i]->name;
    return ATTN_OK;
}

const char *attn_machine_id(void) { return attn_cpu_machine_id(); }
