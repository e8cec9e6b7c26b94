/* space.c — search spaces from variant descriptors alone.
 *
 * For each parameter: the variant's default for the problem, and the powers of two within a
 * factor TUNER_GRID_FACTOR of it, each rounded to the parameter's multiple and kept inside its
 * range. The space is the product of those lists, filtered by attn_params_check (ranges and the
 * variant's params_valid constraints). When a variant declares many parameters, the factor
 * shrinks until the product stays under TUNER_MAX_SPACE. */
#include "error.h"
#include "tuner.h"
#include "variant.h"

#include <stdlib.h>
#include <string.h>

enum {
    TUNER_GRID_FACTOR = 8,  /* values from default/8 to default·8 */
    TUNER_MAX_SPACE = 512,  /* configurations per variant, before validity filtering */
    TUNER_SMALL_RANGE = 8,  /* ranges of at most this many values + 1 are enumerated whole */
};

static int32_t round_to_multiple(int64_t x, const attn_param_info *pi)
{
    const int64_t m = pi->multiple_of > 1 ? pi->multiple_of : 1;
    x = (x + m / 2) / m * m;
    if (x < pi->min)
        x = (pi->min + m - 1) / m * m;
    if (x > pi->max)
        x = pi->max / m * m;
    return (int32_t)x;
}

static int compare_int32(const void *a, const void *b)
{
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Sorted distinct candidate values of one parameter; returns how many. A small range (a
 * switch, a mode) is enumerated whole; otherwise the grid is the default and the powers of two
 * within `factor` of it, plus 0 when the range starts there (zero often means "off" or "auto",
 * which no power of two reaches). */
static int param_values(const attn_param_info *pi, int32_t def, int64_t factor, int32_t *out)
{
    const int64_t step = pi->multiple_of > 1 ? pi->multiple_of : 1;
    int n = 0;
    if (((int64_t)pi->max - pi->min) / step < TUNER_SMALL_RANGE) {
        for (int64_t x = pi->min; x <= pi->max; x += step)
            out[n++] = round_to_multiple(x, pi);
    } else {
        out[n++] = round_to_multiple(def, pi);
        if (pi->min == 0)
            out[n++] = 0;
        const int64_t center = def > step ? def : step;
        const int64_t lo = center / factor > 0 ? center / factor : 1, hi = center * factor;
        for (int64_t x = 1; x <= hi && x <= pi->max && n < TUNER_MAX_VALUES; x *= 2)
            if (x >= lo && x >= pi->min)
                out[n++] = round_to_multiple(x, pi);
    }
    qsort(out, (size_t)n, sizeof *out, compare_int32);
    int distinct = 0;
    for (int i = 0; i < n; i++)
        if (out[i] >= pi->min && out[i] <= pi->max && (distinct == 0 || out[i] != out[distinct - 1]))
            out[distinct++] = out[i];
    return distinct;
}

static attn_status push_config(tuner_space *s, size_t *capacity, const tuner_config *c,
                               attn_error *err)
{
    if (s->count == *capacity) {
        size_t cap = *capacity ? 2 * *capacity : 64;
        tuner_config *grown = realloc(s->configs, cap * sizeof *grown);
        if (!grown) {
            if (err) {
                err->status = ATTN_ERR_NOMEM;
                strcpy(err->message, "tuner: out of memory building the search space");
            }
            return ATTN_ERR_NOMEM;
        }
        s->configs = grown;
        *capacity = cap;
    }
    s->configs[s->count++] = *c;
    return ATTN_OK;
}

static attn_status add_variant(tuner_space *s, size_t *capacity, int index,
                               const attn_variant_info *info, const attn_problem *p, int threads,
                               attn_error *err)
{
    tuner_variant_space *vs = &s->variants[s->variant_count];
    memset(vs, 0, sizeof *vs);
    vs->variant = index;
    attn_status st = attn_variant_default_params(info->name, p, &vs->defaults, err);
    if (st != ATTN_OK)
        return st;
    vs->defaults.threads = threads;
    int64_t factor = TUNER_GRID_FACTOR;
    for (;;) {
        size_t product = 1;
        for (int i = 0; i < info->param_count; i++) {
            vs->value_count[i] =
                param_values(&info->params[i], vs->defaults.value[i], factor, vs->values[i]);
            product *= (size_t)vs->value_count[i];
        }
        if (product <= TUNER_MAX_SPACE || factor == 1)
            break;
        factor /= 2;
    }
    vs->first = s->count;
    /* Walk the product like an odometer over the value indices. */
    int idx[ATTN_MAX_PARAMS] = {0};
    for (;;) {
        tuner_config c = {.variant = index, .params = vs->defaults};
        for (int i = 0; i < info->param_count; i++)
            c.params.value[i] = vs->values[i][idx[i]];
        if (attn_params_check(info->name, p, &c.params, NULL) == ATTN_OK &&
            (st = push_config(s, capacity, &c, err)) != ATTN_OK)
            return st;
        int i = 0;
        while (i < info->param_count && ++idx[i] == vs->value_count[i])
            idx[i++] = 0;
        if (i == info->param_count)
            break;
    }
    vs->count = s->count - vs->first;
    if (vs->count > 0)
        s->variant_count++;
    return ATTN_OK;
}

/* Whether name is one of the comma list's entries. */
static bool name_in_list(const char *list, const char *name)
{
    const size_t n = strlen(name);
    for (const char *s = list; s; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL)
        if (!strncmp(s, name, n) && (s[n] == ',' || s[n] == '\0'))
            return true;
    return false;
}

/* Whether ATTN_FORCE_VARIANT names this variant: a reference-only variant runs then, as asked. */
static bool forced_by_name(const char *name)
{
    const char *forced = NULL;
    return attn_forced_variant(&forced, NULL) == ATTN_OK && forced && !strcmp(forced, name);
}

bool tuner_variant_eligible(int i, const attn_problem *p, bool allow_reduced, char *why,
                            size_t why_len)
{
    attn_variant_info info;
    if (!attn_variant_get(i, &info))
        snprintf(why, why_len, "no variant %d", i);
    else if (!info.supported)
        snprintf(why, why_len, "%s: %s", info.name, info.why_not);
    else if (info.reference_only && !forced_by_name(info.name))
        snprintf(why, why_len, "%s is a reference, not a candidate (ATTN_FORCE_VARIANT runs it)",
                 info.name);
    else if (!(info.dtypes & (1u << p->dtype)))
        snprintf(why, why_len, "%s does not read %s inputs", info.name, attn_dtype_name(p->dtype));
    else if ((p->kv_dtype == ATTN_INT8 || p->kv_dtype == ATTN_Q4) &&
             !(info.kv_dtypes & (1u << p->kv_dtype)))
        snprintf(why, why_len, "%s does not read %s K/V", info.name, attn_dtype_name(p->kv_dtype));
    else if ((unsigned)attn_problem_features(p) & ~info.features) {
        char names[64];
        attn_features_format((unsigned)attn_problem_features(p) & ~info.features, names,
                             sizeof names);
        snprintf(why, why_len, "%s does not implement %s", info.name, names);
    } else if (info.compute_dtype != ATTN_F32 && !allow_reduced)
        snprintf(why, why_len, "%s computes in %s: only with an accuracy bound (--max-rel-err)",
                 info.name, attn_dtype_name(info.compute_dtype));
    else
        return true;
    return false;
}

attn_status tuner_space_build(const attn_problem *p, int threads, const char *only,
                              bool allow_reduced, tuner_space *space, attn_error *err)
{
    memset(space, 0, sizeof *space);
    size_t capacity = 0;
    char why[200] = "";
    space->variants = calloc((size_t)attn_variant_count(), sizeof *space->variants);
    if (!space->variants)
        return attn_fail(err, ATTN_ERR_NOMEM, "out of memory for the search space");
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        attn_variant_get(i, &info);
        if (only && !name_in_list(only, info.name))
            continue;
        if (!tuner_variant_eligible(i, p, allow_reduced, why, sizeof why))
            continue;
        attn_status st = add_variant(space, &capacity, i, &info, p, threads, err);
        if (st != ATTN_OK) {
            tuner_space_free(space);
            return st;
        }
    }
    if (space->count == 0) {
        tuner_space_free(space);
        if (err) {
            err->status = ATTN_ERR_UNSUPPORTED;
            snprintf(err->message, sizeof err->message,
                     "no supported variant%s%.60s can run this problem%s%.120s",
                     only ? " of " : "", only ? only : "", why[0] ? " (" : "", why);
            if (why[0])
                strncat(err->message, ")", sizeof err->message - strlen(err->message) - 1);
        }
        return err ? err->status : ATTN_ERR_UNSUPPORTED;
    }
    return ATTN_OK;
}

void tuner_space_free(tuner_space *space)
{
    free(space->configs);
    free(space->variants);
    memset(space, 0, sizeof *space);
}

long tuner_space_find(const tuner_space *space, const tuner_config *c)
{
    for (size_t i = 0; i < space->count; i++) {
        const tuner_config *x = &space->configs[i];
        if (x->variant == c->variant && x->params.count == c->params.count &&
            x->params.threads == c->params.threads &&
            !memcmp(x->params.value, c->params.value, sizeof(int32_t) * (size_t)c->params.count))
            return (long)i;
    }
    return -1;
}

void tuner_config_format(const tuner_config *c, char *buf, size_t len)
{
    attn_variant_info info;
    if (!attn_variant_get(c->variant, &info)) {
        snprintf(buf, len, "(variant %d)", c->variant);
        return;
    }
    char params[160];
    attn_params_format(info.name, &c->params, params, sizeof params);
    for (char *s = params; *s; s++) /* "bq=64,bk=128" → "bq=64 bk=128" */
        if (*s == ',')
            *s = ' ';
    snprintf(buf, len, "%s%s%s", info.name, params[0] ? " " : "", params);
}

attn_status tuner_estimate(const attn_problem *p, int threads, tuner_config *out,
                           attn_error *err)
{
    return tuner_estimate_without(p, threads, 0, out, err);
}

attn_status tuner_estimate_without(const attn_problem *p, int threads, uint32_t isa_off,
                                   tuner_config *out, attn_error *err)
{
    const char *forced = NULL;
    attn_status st = attn_forced_variant(&forced, err);
    if (st != ATTN_OK)
        return st;
    attn_error why = {0};
    int best_rate = 0;
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        attn_variant_get(i, &info);
        if ((forced && strcmp(forced, info.name)) || info.flops_per_cycle <= best_rate ||
            (attn_variant_isa(attn_registry[i]) & isa_off) ||
            !tuner_variant_eligible(i, p, false, why.message, sizeof why.message))
            continue;
        tuner_config c = {.variant = i};
        if ((st = attn_variant_default_params(info.name, p, &c.params, err)) != ATTN_OK)
            return st;
        c.params.threads = threads;
        if (attn_params_check(info.name, p, &c.params, &why) == ATTN_OK) {
            *out = c;
            best_rate = info.flops_per_cycle;
        }
    }
    if (best_rate > 0)
        return ATTN_OK;
    if (err) {
        err->status = ATTN_ERR_UNSUPPORTED;
        snprintf(err->message, sizeof err->message, "no supported variant fits this problem%s%.200s",
                 why.message[0] ? ": " : "", why.message);
    }
    return ATTN_ERR_UNSUPPORTED;
}
