/* cli_defaults.c — the part of `attnbench info` that says which defaults the library chooses on
 * this machine and from which facts: cache sizes, FMA rates and thread count with where each
 * came from (or its fallback), and for two reference shapes each runnable variant's default
 * parameters with the rule behind each value (the variant's attn_default_rule table), the
 * planner's estimate and the thread split. */
#include "cli.h"
#include "cli_defaults.h"

#include "cpu.h"
#include "shapes.h"
#include "split.h"
#include "topology.h"
#include "tuner/tuner.h"
#include "variant.h"

#include <stdio.h>
#include <string.h>

/* The reference shapes (shapes.c) that show a prefill and a decode choice. */
static const char *const info_shapes[] = {"P1", "D1"};
enum { SHAPE_COUNT = sizeof info_shapes / sizeof info_shapes[0] };

void cli_format_bytes(char *buf, size_t len, int64_t bytes)
{
    if (bytes >= (1 << 20) && bytes % (1 << 20) == 0)
        snprintf(buf, len, "%lld MiB", (long long)(bytes >> 20));
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(buf, len, "%lld KiB", (long long)(bytes >> 10));
    else
        snprintf(buf, len, "%lld B", (long long)bytes);
}

static const attn_fact cache_facts[3] = {ATTN_FACT_L1D, ATTN_FACT_L2, ATTN_FACT_L3};
static const int fma_widths[3] = {128, 256, 512};

static const attn_named_shape *info_shape(int s)
{
    return attn_named_shape_find(info_shapes[s]);
}

static attn_problem shape_problem(int s)
{
    attn_problem p;
    attn_named_shape_problem(info_shape(s), &p);
    return p;
}

/* "B=1 H=4 L=2048 d=128 prefill" */
static void shape_what(int s, char *buf, size_t len)
{
    char sizes[120];
    attn_named_shape_format(info_shape(s), sizes, sizeof sizes);
    snprintf(buf, len, "%s %s", sizes, info_shape(s)->kind);
}

/* "1 MiB (hwloc)", or "unknown: fallback 1 MiB". */
static void fact_text(int level, char *buf, size_t len)
{
    const attn_cpu *cpu = attn_cpu_get();
    bool detected;
    const int64_t v = attn_machine_fact(&cpu->machine, cache_facts[level], &detected);
    char size[32];
    cli_format_bytes(size, sizeof size, v);
    if (detected)
        snprintf(buf, len, "%s (%s)", size, cpu->cache_source[level]);
    else
        snprintf(buf, len, "unknown: fallback %s", size);
}

static const char *threads_source(void)
{
    return attn_topology_get()->from_hwloc ? "hwloc: the cores of NUMA node 0"
                                           : "sysconf: online CPUs (no hwloc topology)";
}

static void split_text(const attn_split *sp, const attn_problem *p, int threads, char *buf,
                       size_t len)
{
    if (threads <= 1)
        snprintf(buf, len, "1 thread: one task");
    else if (sp->key_splits > 1)
        snprintf(buf, len, "%d threads: %lld groups x %lld row blocks, keys split in %lld blocks "
                 "of %lld", threads, (long long)(p->batch * p->heads_kv),
                 (long long)sp->row_blocks, (long long)sp->key_splits, (long long)sp->key_block);
    else
        snprintf(buf, len, "%d threads: %lld groups x %lld row blocks of %lld rows, keys not "
                 "split", threads, (long long)(p->batch * p->heads_kv), (long long)sp->row_blocks,
                 (long long)sp->row_block);
}

/* The estimate's variant for shape s (NULL when none fits). */
static const char *estimate_name(const attn_problem *p, int threads)
{
    tuner_config c;
    attn_variant_info info;
    if (tuner_estimate(p, threads, &c, NULL) != ATTN_OK || !attn_variant_get(c.variant, &info))
        return NULL;
    return info.name;
}

void cli_defaults_print(void)
{
    const attn_cpu *cpu = attn_cpu_get();
    char facts[3][64];
    for (int l = 0; l < 3; l++)
        fact_text(l, facts[l], sizeof facts[l]);
    printf("defaults from     L1d %s, L2 %s, L3 %s\n", facts[0], facts[1], facts[2]);
    printf("FLOP/cycle/core   ");
    for (int w = 0; w < 3; w++) {
        printf("%s%d-bit FMA ", w ? ", " : "", fma_widths[w]);
        if (cpu->fma_source && !cpu->machine.fma_per_cycle[w])
            printf("-"); /* a known CPU without that width */
        else
            printf("%lld", (long long)attn_machine_flops_per_cycle(&cpu->machine, fma_widths[w],
                                                                   NULL));
    }
    printf(" (%s)\n", cpu->fma_source ? cpu->fma_source
                                      : "CPU not in the table: fallback 2 FMAs per cycle");
    const int threads = attn_default_threads();
    printf("threads           %d (%s)\n", threads, threads_source());
    for (int s = 0; s < SHAPE_COUNT; s++) {
        const attn_problem p = shape_problem(s);
        const char *est = estimate_name(&p, 0);
        char split[160] = "", what[160];
        shape_what(s, what, sizeof what);
        if (est) {
            const attn_split sp = attn_split_of(attn_registry[attn_variant_find(est)], &p, threads);
            split_text(&sp, &p, threads, split, sizeof split);
        }
        printf("defaults %s       %s\n  estimate     %s%s%s\n", info_shapes[s], what,
               est ? est : "none", est ? "; " : "", split);
        for (int i = 0; i < attn_registry_count; i++) {
            const attn_variant *v = attn_registry[i];
            attn_variant_info info;
            attn_params params;
            if (!attn_variant_get(i, &info) || !info.supported ||
                attn_variant_default_params(v->name, &p, &params, NULL) != ATTN_OK)
                continue;
            char text[160] = "";
            attn_params_format(v->name, &params, text, sizeof text);
            printf("  %-12s %s; %d FLOP/cycle at %d bits\n", v->name,
                   text[0] ? text : "(no parameters)", info.flops_per_cycle, info.vector_bits);
            for (int k = 0; v->defaults && k < v->param_count; k++) {
                char why[256];
                attn_default_explain(&v->defaults[k], &p, &cpu->machine, why, sizeof why);
                printf("    %-10s %-6d %s\n", v->params[k].name, params.value[k], why);
            }
        }
    }
}

json_t *cli_defaults_json(void)
{
    const attn_cpu *cpu = attn_cpu_get();
    json_t *caches = json_object(), *fma = json_object(), *list = json_array();
    for (int l = 0; caches && l < 3; l++) {
        bool detected;
        const int64_t v = attn_machine_fact(&cpu->machine, cache_facts[l], &detected);
        json_object_set_new(caches, attn_fact_name(cache_facts[l]),
                            json_pack("{s:I, s:s}", "bytes", (json_int_t)v, "source",
                                      detected ? cpu->cache_source[l] : "fallback"));
    }
    for (int w = 0; fma && w < 3; w++) {
        char key[8];
        snprintf(key, sizeof key, "%d", fma_widths[w]);
        /* 0: a known CPU without that width */
        const bool absent = cpu->fma_source && !cpu->machine.fma_per_cycle[w];
        json_object_set_new(fma, key, json_integer(absent ? 0 : attn_machine_flops_per_cycle(
                                                                    &cpu->machine, fma_widths[w],
                                                                    NULL)));
    }
    const int threads = attn_default_threads();
    for (int s = 0; list && s < SHAPE_COUNT; s++) {
        const attn_problem p = shape_problem(s);
        const char *est = estimate_name(&p, 0);
        json_t *vars = json_array();
        for (int i = 0; vars && i < attn_registry_count; i++) {
            const attn_variant *v = attn_registry[i];
            attn_variant_info info;
            attn_params params;
            if (!attn_variant_get(i, &info) || !info.supported ||
                attn_variant_default_params(v->name, &p, &params, NULL) != ATTN_OK)
                continue;
            json_t *values = json_object(), *rules = json_object();
            for (int k = 0; values && rules && v->defaults && k < v->param_count; k++) {
                char why[256];
                attn_default_explain(&v->defaults[k], &p, &cpu->machine, why, sizeof why);
                json_object_set_new(values, v->params[k].name, json_integer(params.value[k]));
                json_object_set_new(rules, v->params[k].name, json_string(why));
            }
            const attn_split sp = attn_split_of(v, &p, threads);
            json_array_append_new(
                vars, json_pack("{s:s, s:o, s:o, s:i, s:i, s:{s:i, s:I, s:I, s:I, s:I}}", "name",
                                v->name, "params", values, "rules", rules, "vector_bits",
                                info.vector_bits, "flops_per_cycle", info.flops_per_cycle,
                                "split", "threads", threads, "row_block",
                                (json_int_t)sp.row_block, "row_blocks",
                                (json_int_t)sp.row_blocks, "key_block", (json_int_t)sp.key_block,
                                "key_splits", (json_int_t)(threads > 1 ? sp.key_splits : 1)));
        }
        const attn_named_shape *sh = info_shape(s);
        char what[160];
        shape_what(s, what, sizeof what);
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "name", sh->name,
                            "what", what, "batch", (json_int_t)sh->batch, "heads",
                            (json_int_t)sh->heads_q, "len_q", (json_int_t)sh->len_q, "len_kv",
                            (json_int_t)sh->len_kv, "dim", (json_int_t)sh->head_dim,
                            "estimate", est ? json_string(est) : json_null(), "variants", vars));
    }
    return json_pack("{s:o, s:{s:o, s:o}, s:{s:i, s:s}, s:o}", "caches", caches,
                     "fma_flops_per_cycle", "by_vector_bits", fma, "source",
                     cpu->fma_source ? json_string(cpu->fma_source)
                                     : json_string("fallback: 2 FMAs per cycle at every width"),
                     "threads", "value", threads, "source", threads_source(), "shapes", list);
}
