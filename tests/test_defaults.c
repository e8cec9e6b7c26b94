/* test_defaults.c — the default parameters follow each variant's rule table on synthetic
 * machines (tiny caches, huge caches, unknown caches = the fallbacks, two real cache sets), every
 * default is in range and passes params_valid on odd problems, the defaults of the synthetic
 * machines run and agree with `naive`, and the planner's FMA-rate facts rank as documented.
 * Nothing here reads this CPU's facts except to skip variants it cannot run. */
#include "attn.h"
#include "attn_config.h"
#include "check.h"
#include "cpu.h"
#include "rng.h"
#include "tuner/tuner.h"
#include "variant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TINY, HUGE_, UNKNOWN, FALLBACK_VALUES, ZEN4_LIKE, EMR_LIKE, MACHINES };
static const char *const machine_names[MACHINES] = {"tiny", "huge", "unknown", "fallback values",
                                                    "32K/1M/32M", "48K/2M/105M"};

static attn_machine machine(int which)
{
    attn_machine m = {.isa = ~0u};
    const int64_t caches[MACHINES][3] = {
        [TINY] = {16, 64, 256},
        [HUGE_] = {1ll << 36, 1ll << 40, 1ll << 44},
        [UNKNOWN] = {0, 0, 0},
        [FALLBACK_VALUES] = {32 << 10, 1 << 20, 8 << 20}, /* the documented fallbacks */
        [ZEN4_LIKE] = {32 << 10, 1 << 20, 32 << 20},
        [EMR_LIKE] = {48 << 10, 2 << 20, 105 << 20},
    };
    m.l1d_bytes = caches[which][0];
    m.l2_bytes = caches[which][1];
    m.l3_bytes = caches[which][2];
    return m;
}

static const attn_variant *variant_named(const char *name)
{
    for (int i = 0; i < attn_registry_count; i++)
        if (!strcmp(attn_registry[i]->name, name))
            return attn_registry[i];
    return NULL;
}

static void defaults_of(const attn_variant *v, const attn_problem *p, const attn_machine *m,
                        int32_t *values)
{
    attn_default_apply(v->defaults, v->params, v->param_count, p, m, values);
}

/* The fallbacks and the facts' names. */
static void test_facts(void)
{
    const attn_machine unknown = machine(UNKNOWN), known = machine(EMR_LIKE);
    const attn_fact facts[] = {ATTN_FACT_L1D, ATTN_FACT_L2, ATTN_FACT_L3};
    const int64_t fallback[] = {32 << 10, 1 << 20, 8 << 20};
    const int64_t real[] = {48 << 10, 2 << 20, 105 << 20};
    for (int i = 0; i < 3; i++) {
        bool detected = true;
        CHECK_MSG(attn_machine_fact(&unknown, facts[i], &detected) == fallback[i], "fact %d", i);
        CHECK_MSG(!detected, "fact %d reads as detected on an unknown machine", i);
        CHECK_MSG(attn_machine_fact(&known, facts[i], &detected) == real[i], "fact %d", i);
        CHECK_MSG(detected, "fact %d", i);
    }
    CHECK_MSG(!strcmp(attn_fact_name(ATTN_FACT_L2), "L2"), "%s", attn_fact_name(ATTN_FACT_L2));
}

/* Every rule against the formula of variant.h, for every machine, d and dtype: fixed values,
 * tiny caches give the minimum, huge ones the maximum, unknown caches the fallbacks' values,
 * more cache never a smaller block; every value in the parameter's range and multiple. */
#define ATTN_VARIANT(name, built_when, why_absent) \
    ATTN_WHEN(built_when)(extern const attn_variant attn_variant_##name;)
#include "variant_list.h"
#undef ATTN_VARIANT

static bool listed_absent(const char *name)
{
    const char *absent, *why;
    for (int i = 0; attn_variant_absent(i, &absent, &why); i++)
        if (!strcmp(absent, name))
            return true;
    return false;
}

/* Each line of variant_list.h that this build compiles is the registry entry at its place, and
 * its descriptor's .name is the line's name; the other lines are listed as absent. */
static void test_variant_list(void)
{
    int index = 0;
#define ATTN_VARIANT(id, built_when, why_absent)                                                \
    ATTN_WHEN(built_when)(                                                                      \
        CHECK_MSG(index < attn_registry_count && attn_registry[index] == &attn_variant_##id,    \
                  "%s: registry entry %d", #id, index);                                         \
        CHECK_MSG(!strcmp(attn_variant_##id.name, #id), "attn_variant_%s is named \"%s\"",      \
                  #id, attn_variant_##id.name);                                                 \
        index++;)                                                                               \
    ATTN_UNLESS(built_when)(CHECK_MSG(listed_absent(#id), "%s: not listed absent", #id);)
#include "variant_list.h"
#undef ATTN_VARIANT
    CHECK_MSG(index == attn_registry_count, "%d list lines built, %d registered", index,
              attn_registry_count);
}

static void test_rules(void)
{
    const int64_t dims[] = {1, 7, 64, 128, 129, 256, 1000};
    const attn_dtype dtypes[] = {ATTN_F32, ATTN_BF16, ATTN_F16};
    for (int i = 0; i < attn_registry_count; i++) {
        const attn_variant *v = attn_registry[i];
        CHECK_MSG((v->defaults != NULL) == (v->param_count > 0), "%s: a rule per parameter",
                  v->name);
        CHECK_MSG(v->vector_bits == 128 || v->vector_bits == 256 || v->vector_bits == 512 ||
                      (v->vector_bits == 0 && (v->isa & ATTN_ISA_SVE)), /* 0: scalable */
                  "%s: vector_bits %d", v->name, v->vector_bits);
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
            for (size_t ti = 0; ti < 3; ti++) {
                attn_problem p;
                attn_problem_init(&p, 1, 2, 2, 33, 1000, dims[di]);
                p.dtype = dtypes[ti];
                int32_t val[MACHINES][ATTN_MAX_PARAMS];
                for (int mi = 0; mi < MACHINES; mi++) {
                    const attn_machine m = machine(mi);
                    defaults_of(v, &p, &m, val[mi]);
                }
                for (int k = 0; k < v->param_count; k++) {
                    const attn_default_rule *r = &v->defaults[k];
                    const attn_param_info *pi = &v->params[k];
                    const int32_t max = p.dtype != ATTN_F32 && r->max_half ? r->max_half : r->max;
                    for (int mi = 0; mi < MACHINES; mi++) {
                        const int32_t x = val[mi][k];
                        CHECK_MSG(x >= pi->min && x <= pi->max &&
                                      (pi->multiple_of <= 1 || x % pi->multiple_of == 0),
                                  "%s %s=%d (d=%lld, %s machine) outside its range", v->name,
                                  pi->name, x, (long long)p.head_dim, machine_names[mi]);
                        if (r->fact == ATTN_FACT_NONE)
                            CHECK_MSG(x == r->fixed, "%s %s=%d, fixed %d", v->name, pi->name, x,
                                      r->fixed);
                    }
                    if (r->fact == ATTN_FACT_NONE)
                        continue;
                    CHECK_MSG(r->min <= max && r->cache_div > 0, "%s %s: rule", v->name, pi->name);
                    CHECK_MSG(val[TINY][k] == r->min, "%s %s=%d on tiny caches, min %d", v->name,
                              pi->name, val[TINY][k], r->min);
                    CHECK_MSG(val[HUGE_][k] == max, "%s %s=%d on huge caches, max %d", v->name,
                              pi->name, val[HUGE_][k], max);
                    CHECK_MSG(val[UNKNOWN][k] == val[FALLBACK_VALUES][k],
                              "%s %s: unknown caches give %d, the fallbacks %d", v->name, pi->name,
                              val[UNKNOWN][k], val[FALLBACK_VALUES][k]);
                    CHECK_MSG(val[ZEN4_LIKE][k] <= val[EMR_LIKE][k] &&
                                  val[TINY][k] <= val[ZEN4_LIKE][k] &&
                                  val[EMR_LIKE][k] <= val[HUGE_][k],
                              "%s %s: more cache, smaller block", v->name, pi->name);
                }
            }
    }
}

/* Sizes past any cache (and past int64 once multiplied, as an unvalidated problem may have):
 * every cache rule gives its minimum, nothing overflows (UBSan watches). */
static void test_huge_problem(void)
{
    attn_problem p;
    attn_problem_init(&p, 1, 1, 1, 1, 1, 1); /* strides of the huge sizes would overflow */
    p.len_kv = p.head_dim = INT64_MAX / 2;
    const attn_machine m = machine(EMR_LIKE);
    for (int i = 0; i < attn_registry_count; i++) {
        const attn_variant *v = attn_registry[i];
        int32_t val[ATTN_MAX_PARAMS];
        defaults_of(v, &p, &m, val);
        for (int k = 0; k < v->param_count; k++)
            CHECK_MSG(val[k] == (v->defaults[k].fact == ATTN_FACT_NONE ? v->defaults[k].fixed
                                                                       : v->defaults[k].min),
                      "%s %s=%d on a huge problem", v->name, v->params[k].name, val[k]);
    }
}

/* Values worked out by hand from the tables (what the defaults were before they came from a
 * table, on the caches the development machines have had). */
static void test_worked_values(void)
{
    const struct {
        const char *variant;
        int machine;
        int64_t d;
        attn_dtype dtype;
        int32_t values[4];
    } cases[] = {
        /* bq: 1 MiB / 4 / (8·128) = 256 → 128; bk: 1 MiB / 4 / 1024 = 256 */
        {"avx512", ZEN4_LIKE, 128, ATTN_F32, {0, 128, 256, 16}},
        {"avx512", EMR_LIKE, 128, ATTN_F32, {0, 128, 512, 16}},
        {"avx512", EMR_LIKE, 128, ATTN_BF16, {0, 256, 512, 16}},
        {"avx512", UNKNOWN, 64, ATTN_F32, {0, 128, 512, 16}},
        /* avx2 bq: 1 MiB / 4 / (8·dp) → 192 cap; bk: 1 MiB / 8 / (8·dp), multiple of 16 */
        {"avx2", ZEN4_LIKE, 128, ATTN_F32, {192, 128, 0}},
        {"avx2", ZEN4_LIKE, 64, ATTN_F32, {192, 256, 0}},
        {"avx2", EMR_LIKE, 128, ATTN_F32, {192, 256, 0}},
        {"avx2", ZEN4_LIKE, 256, ATTN_F32, {126, 64, 0}},
        /* bq: 1 MiB / 4 / (6·128) = 341 → 256 cap; bk: 1 MiB / 4 / (4·128) = 512 */
        {"avx512_bf16", ZEN4_LIKE, 128, ATTN_F32, {256, 512, 16}},
        /* dpad = 128: bq 2 MiB / 2 / 768 = 1365 → 1024; bk 2 MiB / 4 / 512 = 1024 */
        {"amx_bf16", EMR_LIKE, 100, ATTN_F32, {1024, 1024, 128, 8}},
        {"streaming", ZEN4_LIKE, 128, ATTN_F32, {32, 16}},
        {"streaming", EMR_LIKE, 64, ATTN_F32, {32, 48}},
        /* blocked bq: 1 MiB / 2 / (4·Lk = 4000) = 131 → 64; bk: 32 KiB / 2 / (4·128) = 32 */
        {"blocked", ZEN4_LIKE, 128, ATTN_F32, {64, 32}},
        /* neon bq: 1 MiB / 4 / (8·128) = 256 → 128; bk: 1 MiB / 2 / 1024 = 512 */
        {"neon", ZEN4_LIKE, 128, ATTN_F32, {128, 512}},
    };
    int ran = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const attn_variant *v = variant_named(cases[c].variant);
        if (!v)
            continue; /* another architecture's variant */
        attn_problem p;
        attn_problem_init(&p, 1, 2, 2, 33, 1000, cases[c].d);
        p.dtype = cases[c].dtype;
        const attn_machine m = machine(cases[c].machine);
        int32_t val[ATTN_MAX_PARAMS];
        defaults_of(v, &p, &m, val);
        for (int k = 0; k < v->param_count; k++)
            CHECK_MSG(val[k] == cases[c].values[k], "%s on %s, d=%lld: %s=%d, expected %d",
                      v->name, machine_names[cases[c].machine], (long long)cases[c].d,
                      v->params[k].name, val[k], cases[c].values[k]);
        ran++;
    }
    CHECK_MSG(ran >= 3, "only %d worked cases had their variant in this build", ran);
}

static uint64_t rng_state = 1;
static float uniform(void) { return attn_rng_uniform_pm1(&rng_state); }

/* Odd problems: with the defaults of every machine, a variant this CPU can run passes its
 * params_valid, has a workspace and gives naive's output (within its tolerance). The others are
 * left out: their descriptor functions are compiled with their ISA's flags (the defaults
 * themselves are data, checked for every variant above). */
static void test_odd_problems(void)
{
    const struct {
        int64_t b, hq, hkv, lq, lk, d;
        bool causal;
    } shapes[] = {
        {1, 1, 1, 1, 1, 1, false},   {2, 3, 1, 7, 13, 3, true},   {1, 4, 2, 1, 1001, 17, false},
        {1, 2, 2, 33, 5, 129, true}, {3, 1, 1, 65, 65, 255, false}, {1, 8, 1, 2, 300, 64, false},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        attn_problem p;
        attn_problem_init(&p, shapes[s].b, shapes[s].hq, shapes[s].hkv, shapes[s].lq,
                          shapes[s].lk, shapes[s].d);
        p.causal = shapes[s].causal;
        const size_t nq = (size_t)(p.batch * p.heads_q * p.len_q * p.head_dim);
        const size_t nk = (size_t)(p.batch * p.heads_kv * p.len_kv * p.head_dim);
        float *q = malloc(nq * sizeof *q), *k = malloc(nk * sizeof *k), *vv = malloc(nk * sizeof *vv);
        float *ref = malloc(nq * sizeof *ref), *o = malloc(nq * sizeof *o);
        if (!q || !k || !vv || !ref || !o) {
            CHECK_MSG(false, "out of memory");
            return;
        }
        for (size_t i = 0; i < nq; i++)
            q[i] = uniform();
        for (size_t i = 0; i < nk; i++)
            k[i] = uniform(), vv[i] = uniform();
        attn_params none = {0};
        CHECK_MSG(attn_run_variant("naive", &p, &none, q, k, vv, ref, NULL) == ATTN_OK, "naive");
        for (int i = 0; i < attn_registry_count; i++) {
            const attn_variant *v = attn_registry[i];
            attn_variant_info info;
            attn_variant_get(i, &info);
            for (int mi = 0; mi < MACHINES; mi++) {
                const attn_machine m = machine(mi);
                if (!info.supported)
                    continue;
                attn_params params = {.count = v->param_count, .threads = 1 + mi % 2};
                defaults_of(v, &p, &m, params.value);
                char why[200] = "";
                CHECK_MSG(!v->params_valid || v->params_valid(&p, params.value, why, sizeof why),
                          "%s on %s machine, shape %zu: %s", v->name, machine_names[mi], s, why);
                CHECK_MSG(!v->workspace_size || v->workspace_size(&p, params.value) != SIZE_MAX,
                          "%s: workspace", v->name);
                attn_error err;
                if (attn_run_variant(v->name, &p, &params, q, k, vv, o, &err) != ATTN_OK) {
                    CHECK_MSG(false, "%s on %s machine, shape %zu: %s", v->name, machine_names[mi],
                              s, err.message);
                    continue;
                }
                double num = 0, den = 0;
                for (size_t e = 0; e < nq; e++)
                    num += ((double)o[e] - ref[e]) * ((double)o[e] - ref[e]),
                        den += (double)ref[e] * ref[e];
                const double rel = sqrt(num / (den > 0 ? den : 1));
                CHECK_MSG(rel <= 4 * v->tolerance, "%s on %s machine, shape %zu: error %.3g",
                          v->name, machine_names[mi], s, rel);
            }
        }
        free(q), free(k), free(vv), free(ref), free(o);
    }
}

/* FLOPs per cycle from the FMA facts, and the fallback. */
static void test_fma_rates(void)
{
    attn_machine zen4 = {.fma_per_cycle = {2, 2, 1}}, intel = {.fma_per_cycle = {2, 2, 2}};
    attn_machine unknown = {0};
    bool known = false;
    CHECK_MSG(attn_machine_flops_per_cycle(&zen4, 512, &known) == 32 && known, "zen4 512");
    CHECK_MSG(attn_machine_flops_per_cycle(&zen4, 256, NULL) == 32, "zen4 256: same as 512");
    CHECK_MSG(attn_machine_flops_per_cycle(&intel, 512, NULL) == 64, "intel 512");
    CHECK_MSG(attn_machine_flops_per_cycle(&intel, 256, NULL) == 32, "intel 256: half of 512");
    CHECK_MSG(attn_machine_flops_per_cycle(&intel, 128, NULL) == 16, "128");
    CHECK_MSG(attn_machine_flops_per_cycle(&unknown, 512, &known) == 64 && !known, "fallback 512");
    CHECK_MSG(attn_machine_flops_per_cycle(&unknown, 256, &known) == 32 && !known, "fallback 256");
}

/* The estimate picks a float32 variant with the highest rate of those that can run here. */
static void test_estimate_ranks_by_rate(void)
{
    attn_problem p;
    attn_problem_init(&p, 1, 2, 2, 64, 64, 32);
    tuner_config c;
    attn_error err;
    if (tuner_estimate(&p, 1, &c, &err) != ATTN_OK) {
        CHECK_MSG(false, "estimate: %s", err.message);
        return;
    }
    attn_variant_info chosen;
    attn_variant_get(c.variant, &chosen);
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        attn_variant_get(i, &info);
        if (!info.supported || info.compute_dtype != ATTN_F32)
            continue;
        CHECK_MSG(info.flops_per_cycle < chosen.flops_per_cycle ||
                      (info.flops_per_cycle == chosen.flops_per_cycle && i >= c.variant),
                  "estimate %s (%d FLOP/cycle) passes over %s (%d)", chosen.name,
                  chosen.flops_per_cycle, info.name, info.flops_per_cycle);
    }
}

int main(void)
{
    if (getenv("ATTN_FORCE_VARIANT"))
        unsetenv("ATTN_FORCE_VARIANT");
    test_facts();
    test_variant_list();
    test_rules();
    test_worked_values();
    test_huge_problem();
    test_odd_problems();
    test_fma_rates();
    test_estimate_ranks_by_rate();
    return check_summary("test_defaults");
}
