/* library.c — the public API of libattn (attn.h) over the variant registry: problem checks,
 * variant listing and dispatch. */
#include "attn.h"
#include "error.h"
#include "cpu.h"
#include "execute.h"
#include "kv_quant.h"
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
    p->window_left = -1;
    p->window_right = -1;
    set_layout(p, false);
}

int attn_problem_features(const attn_problem *p)
{
    return p ? (int)attn_features_of(p) : -1;
}

void attn_features_format(unsigned features, char *buf, size_t len)
{
    static const char *const names[] = {"window", "alibi", "softcap", "sinks", "paged"};
    if (!buf || len == 0)
        return;
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(features & 1u << i))
            continue;
        const int w = snprintf(buf + used, len - used, "%s%s", used ? "," : "", names[i]);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
}

bool attn_alibi_slopes(int64_t heads, float *slopes)
{
    if (!slopes || heads < 1 || heads > (int64_t)1 << 24)
        return false;
    int64_t n = 1; /* the largest power of two <= heads */
    while (n * 2 <= heads)
        n *= 2;
    for (int64_t h = 0; h < n; h++)
        slopes[h] = (float)exp2(-8.0 * (double)(h + 1) / (double)n);
    for (int64_t k = 0; n + k < heads; k++) /* odd-indexed slopes of 2n heads */
        slopes[n + k] = (float)exp2(-8.0 * (double)(2 * k + 1) / (double)(2 * n));
    return true;
}

void attn_problem_set_pages(attn_problem *p, int64_t page_size, int64_t num_pages,
                            const int32_t *block_table, int64_t block_table_stride)
{
    if (!p)
        return;
    p->page_size = page_size;
    p->num_pages = num_pages;
    p->block_table = block_table;
    p->block_table_stride = block_table_stride;
    set_contiguous(&p->k, p->heads_kv, page_size, p->head_dim, false);
    set_contiguous(&p->v, p->heads_kv, page_size, p->head_dim, false);
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
int64_t attn_mask_extent(const attn_problem *p)
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
    case 'K': s = &p->k_scale_strides; heads = p->heads_kv; len = p->len_kv; break;
    case 'V': s = &p->v_scale_strides; heads = p->heads_kv; len = p->len_kv; break;
    default: return attn_fail(err, ATTN_ERR_INVALID, "unknown tensor '%c'", tensor);
    }
    if ((tensor == 'K' || tensor == 'V') && !attn_kv_quantized(p))
        return attn_fail(err, ATTN_ERR_INVALID, "tensor %c: K/V are not quantized (no scales)",
                         tensor);
    if (p->batch < 1 || heads < 1 || len < 1 || p->head_dim < 1)
        return attn_fail(err, ATTN_ERR_INVALID, "tensor %c: sizes must be >= 1", tensor);
    if (s->batch < 0 || s->head < 0 || s->seq < 0)
        return attn_fail(err, ATTN_ERR_INVALID, "tensor %c: strides must be >= 0", tensor);
    /* the scale tensors' rows: head_dim / 32 float16 scales (q4), one float32 (int8) */
    const int64_t row = tensor == 'K' || tensor == 'V' ? attn_kv_scales_per_row(p) : p->head_dim;
    if (row < 1)
        return attn_fail(err, ATTN_ERR_INVALID, "tensor %c: q4 needs head_dim >= 32", tensor);
    int64_t count = p->batch;
    if (p->page_size > 0 && (tensor == 'k' || tensor == 'v')) { /* a pool of pages */
        if (p->num_pages < 1)
            return attn_fail(err, ATTN_ERR_INVALID, "num_pages must be >= 1 for paged K/V "
                             "(got %lld)", (long long)p->num_pages);
        count = p->num_pages;
        len = p->page_size;
    }
    int64_t e = tensor_extent(s, count, heads, len, row);
    if (e < 0)
        return attn_fail(err, ATTN_ERR_OVERFLOW, "tensor %c: its size overflows 64 bits", tensor);
    *elements = e;
    return ATTN_OK;
}

attn_status attn_pages_check(const attn_problem *p, const int32_t *table, attn_error *err)
{
    if (p->page_size == 0)
        return p->block_table ? attn_fail(err, ATTN_ERR_INVALID, "block_table is given, but "
                                          "page_size is 0 (contiguous K/V)")
                              : ATTN_OK;
    if (p->page_size < 0)
        return attn_fail(err, ATTN_ERR_INVALID, "page_size must be 0 (contiguous) or > 0 (got "
                         "%lld)", (long long)p->page_size);
    /* The scale tensors are laid out per sequence, not per page: the two do not compose yet. */
    if (attn_kv_quantized(p))
        return attn_fail(err, ATTN_ERR_UNSUPPORTED, "paged K/V cannot be quantized (int8, q4) "
                         "yet: give contiguous quantized K/V, or float K/V in pages");
    if (p->num_pages < 1 || p->num_pages > INT32_MAX)
        return attn_fail(err, ATTN_ERR_INVALID, "num_pages must be in [1, 2^31) for paged K/V "
                         "(got %lld)", (long long)p->num_pages);
    const int64_t used = (p->len_kv - 1) / p->page_size + 1;
    const int64_t stride = attn_block_table_stride(p);
    int64_t cells;
    if (stride < used || __builtin_mul_overflow(stride, p->batch, &cells) ||
        cells > PTRDIFF_MAX / (int64_t)sizeof(int32_t))
        return attn_fail(err, ATTN_ERR_INVALID, "block_table_stride must be 0 or >= the %lld "
                         "pages of len_kv, with batch rows fitting in memory (got %lld)",
                         (long long)used, (long long)p->block_table_stride);
    if (!table)
        return attn_fail(err, ATTN_ERR_INVALID, "block_table is NULL, but page_size is %lld",
                         (long long)p->page_size);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t k = 0; k < used; k++) {
            const int32_t page = table[b * stride + k];
            if (page < 0 || page >= p->num_pages)
                return attn_fail(err, ATTN_ERR_INVALID, "block_table[%lld][%lld] = %d is "
                                 "outside [0, num_pages=%lld)", (long long)b, (long long)k,
                                 page, (long long)p->num_pages);
        }
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
        return attn_fail(err, ATTN_ERR_INVALID, "dtype %d is not a float attn_dtype (int8 and q4 "
                         "are for kv_dtype)", (int)p->dtype);
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
    if (p->window_left < -1 || p->window_right < -1)
        return attn_fail(err, ATTN_ERR_INVALID, "window_left and window_right must be >= 0, or -1 "
                         "for unbounded (got %lld, %lld)", (long long)p->window_left,
                         (long long)p->window_right);
    if (p->softcap != 0.0f && !(isfinite(p->softcap) && p->softcap > 0.0f))
        return attn_fail(err, ATTN_ERR_INVALID, "softcap must be 0 (none) or finite and > 0 (got %g)",
                         (double)p->softcap);
    const float *per_head[2] = {p->alibi_slopes, p->sinks};
    for (int a = 0; a < 2; a++)
        for (int64_t h = 0; per_head[a] && h < p->heads_q; h++)
            if (!isfinite(per_head[a][h]))
                return attn_fail(err, ATTN_ERR_INVALID, "%s[%lld] = %g is not finite",
                                 a ? "sinks" : "alibi_slopes", (long long)h,
                                 (double)per_head[a][h]);
    if (p->mask_row_stride < 0 || (p->mask_row_stride > 0 && p->mask_row_stride < p->len_kv))
        return attn_fail(err, ATTN_ERR_INVALID, "mask_row_stride must be 0 or >= len_kv");
    if (p->mask && attn_mask_extent(p) < 0)
        return attn_fail(err, ATTN_ERR_OVERFLOW,
                         "mask: len_q rows of mask_row_stride %lld floats overflow 64 bits",
                         (long long)p->mask_row_stride);
    attn_status paged = attn_pages_check(p, p->block_table, err);
    if (paged != ATTN_OK)
        return paged;
    const char names[4] = {'q', 'k', 'v', 'o'};
    for (int t = 0; t < 4; t++) {
        int64_t e;
        attn_status s = attn_tensor_extent(p, names[t], &e, err);
        if (s != ATTN_OK)
            return s;
    }
    const attn_status kv = attn_kv_validate(p, err);
    if (kv != ATTN_OK)
        return kv;
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
            const int64_t j0 = attn_key_start(p, i), n = attn_key_limit(p, b, i);
            if (n <= j0)
                continue;
            const float *m = attn_mask_row(p, i);
            if (!m) {
                pairs += (double)(n - j0);
                continue;
            }
            for (int64_t j = j0; j < n; j++)
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

attn_status attn_features_check(const attn_variant *v, const attn_problem *p, attn_error *err)
{
    const unsigned missing = (unsigned)attn_problem_features(p) & ~v->features;
    const char *refused = v->refuses ? v->refuses(p) : NULL;
    if (refused)
        return attn_fail(err, ATTN_ERR_UNSUPPORTED, "variant %s does not implement %s", v->name,
                         refused);
    if (!missing)
        return ATTN_OK;
    char names[64];
    attn_features_format(missing, names, sizeof names);
    return attn_fail(err, ATTN_ERR_UNSUPPORTED, "variant %s does not implement %s", v->name, names);
}

attn_status attn_kv_dtype_check(const attn_variant *v, const attn_problem *p, attn_error *err)
{
    if (!attn_kv_quantized(p) || (v->kv_dtypes & 1u << p->kv_dtype))
        return ATTN_OK;
    return attn_fail(err, ATTN_ERR_UNSUPPORTED, "variant %s does not read %s K/V", v->name,
                     attn_dtype_name(p->kv_dtype));
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
    attn_isa_format(attn_variant_isa(v), isa, sizeof isa);
    uint32_t missing = isa_why_not(attn_variant_isa(v), cpu, why, sizeof why);
    const int bits = v->vector_bits ? v->vector_bits : cpu->sve_vector_bits; /* 0: scalable */
    *info = (attn_variant_info){
        .name = v->name, .description = v->description, .isa = isa, .supported = !missing,
        .why_not = why, .tolerance = v->tolerance, .dtypes = variant_dtypes(v),
        .kv_dtypes = v->kv_dtypes,
        .compute_dtype = v->compute_dtype, .param_count = v->param_count, .params = v->params,
        .vector_bits = bits,
        .flops_per_cycle = (int)attn_machine_flops_per_cycle(&cpu->machine, bits, NULL),
        .roofline = attn_roofline_name(v->roofline),
        .blas_core = v->blas_core ? v->blas_core() : NULL,
        .reference_only = v->reference_only, .features = v->features,
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
    if (v->params_valid && !(attn_variant_isa(v) & ~attn_cpu_get()->isa_detected) &&
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

int attn_default_threads(void)
{
    const int n = attn_topology_get()->cores_first_numa;
    return n < 1 ? 1 : n > ATTN_MAX_THREADS ? ATTN_MAX_THREADS : n;
}

double attn_variant_tolerance(const char *name, const attn_problem *p)
{
    const int i = attn_variant_find(name);
    if (i < 0 || !p || attn_dtype_size(p->out_dtype) == 0)
        return -1;
    return attn_registry[i]->tolerance +
           (p->out_dtype == ATTN_F32 ? 0.0 : attn_dtype_unit_roundoff(p->out_dtype));
}

/* What attn_variant_accepts checks after the problem's validation and the name's lookup. */
static attn_status variant_accepts(const attn_variant *var, const char *name,
                                   const attn_problem *p, attn_error *err)
{
    char why[256];
    if (isa_why_not(attn_variant_isa(var), attn_cpu_get(), why, sizeof why))
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
    return attn_features_check(var, p, err);
}

attn_status attn_variant_accepts(const char *name, const attn_problem *p, attn_error *err)
{
    attn_status status = ATTN_ERR_UNKNOWN_VARIANT;
    const attn_variant *var = lookup(name, &status, err);
    if (!var)
        return status;
    attn_status s = attn_problem_validate(p, err);
    if (s == ATTN_OK)
        s = variant_accepts(var, name, p, err);
    return s != ATTN_OK ? s : attn_kv_dtype_check(var, p, err); /* as attn_run_variant */
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
    if ((s = variant_accepts(var, name, p, err)) != ATTN_OK)
        return s;
    if ((s = attn_kv_dtype_check(var, p, err)) != ATTN_OK)
        return s;
    if (attn_kv_quantized(p) && (!p->k_scale || !p->v_scale))
        return attn_fail(err, ATTN_ERR_INVALID, "k_scale and v_scale must not be NULL: K/V are %s",
                         attn_dtype_name(p->kv_dtype));
    attn_params defaults;
    if (!params) {
        attn_variant_default_params(name, p, &defaults, NULL);
        params = &defaults;
    }
    if ((s = check_params(var, p, params, err)) != ATTN_OK)
        return s;
    /* The same path as a plan's, made for this one call. */
    const int threads = params->threads ? params->threads : attn_default_threads();
    attn_exec *x;
    if ((s = attn_exec_create(var, p, params, threads, &x, err)) != ATTN_OK)
        return s;
    const attn_execute_args args = {.q = q, .k = k, .v = v, .o = o, .mask = p->mask,
                                    .kv_lens = p->kv_lens, .alibi_slopes = p->alibi_slopes,
                                    .sinks = p->sinks, .k_scale = p->k_scale,
                                    .v_scale = p->v_scale, .block_table = p->block_table};
    s = attn_exec_run(x, &args, err);
    attn_exec_destroy(x);
    return s;
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
