/* defaults.c — default parameters from the machine's facts: the evaluator of the rule tables
 * (attn_default_rule, variant.h) that every variant's descriptor carries, and the fallbacks
 * for facts the machine does not know. Portable C, part of every build. */
#include "variant.h"

#include <stdio.h>

/* Fallbacks: the values every default used before the facts were known per machine. */
static const struct {
    const char *name;
    int64_t fallback;
} facts[ATTN_FACT_COUNT] = {
    [ATTN_FACT_NONE] = {"none", 0},
    [ATTN_FACT_L1D] = {"L1d", 32 << 10},
    [ATTN_FACT_L2] = {"L2", 1 << 20},
    [ATTN_FACT_L3] = {"L3", 8 << 20},
};

const char *attn_fact_name(attn_fact fact)
{
    return fact >= 0 && fact < ATTN_FACT_COUNT ? facts[fact].name : "?";
}

int64_t attn_machine_fact(const attn_machine *m, attn_fact fact, bool *detected)
{
    int64_t v = 0;
    switch (fact) {
    case ATTN_FACT_L1D: v = m->l1d_bytes; break;
    case ATTN_FACT_L2: v = m->l2_bytes; break;
    case ATTN_FACT_L3: v = m->l3_bytes; break;
    default: break;
    }
    if (detected)
        *detected = v > 0;
    return v > 0 ? v : fact > 0 && fact < ATTN_FACT_COUNT ? facts[fact].fallback : 0;
}

/* Bytes of one unit; INT64_MAX when that overflows (defaults may be asked for a problem not
 * yet validated): the rule then gives its minimum. */
static int64_t unit_bytes(const attn_default_rule *r, const attn_problem *p)
{
    const int64_t dm = r->d_multiple > 1 ? r->d_multiple : 1;
    const int64_t d = p->head_dim > 0 ? p->head_dim : 1, lk = p->len_kv > 0 ? p->len_kv : 1;
    int64_t dpad, a, b, sum;
    if (__builtin_add_overflow(d, dm - 1, &dpad) ||
        __builtin_mul_overflow(dpad / dm * dm, (int64_t)r->per_d, &a) ||
        __builtin_mul_overflow(lk, (int64_t)r->per_lk, &b) || __builtin_add_overflow(a, b, &sum))
        return INT64_MAX;
    return sum > 0 ? sum : 1;
}

static int32_t rule_max(const attn_default_rule *r, const attn_problem *p)
{
    return p->dtype != ATTN_F32 && r->max_half ? r->max_half : r->max;
}

static int32_t rule_value(const attn_default_rule *r, const attn_param_info *info,
                          const attn_problem *p, const attn_machine *m)
{
    if (r->fact == ATTN_FACT_NONE)
        return r->fixed;
    const int64_t mult = info->multiple_of > 1 ? info->multiple_of : 1;
    int64_t units = attn_machine_fact(m, r->fact, NULL) / (r->cache_div > 0 ? r->cache_div : 1) /
                    unit_bytes(r, p) / mult * mult;
    const int64_t max = rule_max(r, p);
    units = units < r->min ? r->min : units > max ? max : units;
    return (int32_t)units;
}

void attn_default_apply(const attn_default_rule *rules, const attn_param_info *params, int count,
                        const attn_problem *p, const attn_machine *m, int32_t *values)
{
    for (int i = 0; rules && i < count; i++)
        values[i] = rule_value(&rules[i], &params[i], p, m);
}

static void format_size(char *buf, size_t len, int64_t bytes)
{
    if (bytes >= (1 << 20) && bytes % (1 << 20) == 0)
        snprintf(buf, len, "%lld MiB", (long long)(bytes >> 20));
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(buf, len, "%lld KiB", (long long)(bytes >> 10));
    else
        snprintf(buf, len, "%lld B", (long long)bytes);
}

void attn_default_explain(const attn_default_rule *r, const attn_problem *p,
                          const attn_machine *m, char *buf, size_t len)
{
    if (r->fact == ATTN_FACT_NONE) {
        snprintf(buf, len, "fixed: %s", r->what);
        return;
    }
    bool detected;
    char size[32];
    format_size(size, sizeof size, attn_machine_fact(m, r->fact, &detected));
    snprintf(buf, len, "1/%d of %s (%s, %s) / %lld B per unit (%s), in [%d, %d]", r->cache_div,
             attn_fact_name(r->fact), size, detected ? "detected" : "fallback: unknown",
             (long long)unit_bytes(r, p), r->what, r->min, rule_max(r, p));
}

int64_t attn_machine_flops_per_cycle(const attn_machine *m, int vector_bits, bool *known)
{
    const int width = vector_bits >= 512 ? 2 : vector_bits >= 256 ? 1 : 0;
    const int64_t lanes = (int64_t)128 << width >> 5, rate = m->fma_per_cycle[width];
    if (known)
        *known = rate > 0;
    return 2 * lanes * (rate > 0 ? rate : 2);
}
