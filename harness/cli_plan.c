/* cli_plan.c — attnbench plan: what attn_plan_create would choose for a shape and why;
 * --execute times the plan. */
#include "cli.h"
#include "cli_commands.h"
#include "cli_tuner.h"
#include "timing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- attnbench plan -------------------------------------------------------------------------- */

enum { P_MEASURE = SHAPE_OPTION_COUNT, P_WISDOM_ONLY, P_EXECUTE, PLAN_OPTION_COUNT };
static const cli_option plan_options[PLAN_OPTION_COUNT] = {
    SHAPE_OPTIONS,
    [P_MEASURE] = {"measure", NULL, "ATTN_MEASURE: tune now (10 s at most, plus one run) without wisdom"},
    [P_WISDOM_ONLY] = {"wisdom-only", NULL, "ATTN_WISDOM_ONLY: fail without wisdom"},
    [P_EXECUTE] = {"execute", "N", "run the plan N times (after a warm-up) and report the median"},
};

static void print_plan_help(void)
{
    printf("usage: attnbench plan [options]\n\n"
           "Says what attn_plan_create would choose for a shape, and why: wisdom for this\n"
           "problem (tuned on this machine and build), else the nearest tuned problem of the\n"
           "same kind (causal, masks, decode or not, threads; nearest by log-distance of the\n"
           "lengths and head dim), else the estimate (of the variants this CPU runs, the one\n"
           "with the highest float32 FMA rate at its vector width, the first in registry\n"
           "order among equals, with its defaults from the caches). ATTN_FORCE_VARIANT and\n"
           "ATTN_DISABLE_ISA are honoured.\n\noptions:\n");
    cli_print_options(stdout, plan_options, PLAN_OPTION_COUNT);
}

/* Why the estimate: its FMA rate (tuner_estimate), and the variants before it in the registry
 * that it passed over. */
static void estimate_reason(char *buf, size_t len, const char *chosen)
{
    attn_variant_info c = {0};
    attn_variant_get(attn_variant_find(chosen), &c);
    size_t used = (size_t)snprintf(buf, len, "the highest float32 FMA rate of this CPU (%d "
                                   "FLOP/cycle at %d bits), first in registry order among "
                                   "equals", c.flops_per_cycle, c.vector_bits);
    bool skipped = false;
    for (int i = 0; i < attn_variant_count() && used < len; i++) {
        attn_variant_info info;
        attn_variant_get(i, &info);
        if (!strcmp(info.name, chosen))
            break;
        char rate[48];
        snprintf(rate, sizeof rate, "%d FLOP/cycle", info.flops_per_cycle);
        const char *why = !info.supported ? info.why_not
                          : info.compute_dtype != ATTN_F32 ? "computes in reduced precision"
                          : info.flops_per_cycle < c.flops_per_cycle ? rate
                                                                     : "its defaults do not fit";
        int w = snprintf(buf + used, len - used, "%s%s: %s", skipped ? ", " : "; skipped ",
                         info.name, why);
        if (w < 0)
            break;
        used += (size_t)w;
        skipped = true;
    }
    if (used < len)
        snprintf(buf + used, len - used, "; its default parameters from this machine's caches "
                 "(attnbench info)");
}

static double time_plan(const attn_plan *plan, const attn_problem *p, int64_t n, double *best,
                        attn_error *err)
{
    int64_t e[4];
    const char names[4] = {'q', 'k', 'v', 'o'};
    float *t[4] = {0};
    void *kvq[2] = {0}, *scales[2] = {0}; /* quantized K/V and their scales */
    const bool quantized = attn_problem_kv_dtype(p) != (int)p->dtype;
    double median = NAN;
    for (int i = 0; i < 4; i++) {
        if (attn_tensor_extent(p, names[i], &e[i], err) != ATTN_OK)
            goto done;
        if (!(t[i] = malloc((size_t)e[i] * sizeof(float)))) {
            err->status = ATTN_ERR_NOMEM;
            snprintf(err->message, sizeof err->message, "out of memory for the tensors");
            goto done;
        }
        for (int64_t j = 0; j < e[i]; j++)
            t[i][j] = (float)((j * 2654435761u) % 2001) / 1000.0f - 1.0f;
    }
    for (int i = 0; quantized && i < 2; i++) { /* the float values quantized, as a cache is */
        int64_t ns;
        if (attn_tensor_extent(p, "KV"[i], &ns, err) != ATTN_OK)
            goto done;
        if (!(kvq[i] = malloc((size_t)e[1 + i])) || !(scales[i] = malloc((size_t)ns * 4))) {
            err->status = ATTN_ERR_NOMEM;
            snprintf(err->message, sizeof err->message, "out of memory for the tensors");
            goto done;
        }
        if (attn_quantize_kv(p, "kv"[i], t[1 + i], kvq[i], scales[i], err) != ATTN_OK)
            goto done;
    }
    double *samples = malloc((size_t)n * sizeof *samples);
    if (!samples) {
        err->status = ATTN_ERR_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory for the samples");
        goto done;
    }
    const attn_execute_args args = {.q = t[0], .k = quantized ? kvq[0] : t[1],
                                    .v = quantized ? kvq[1] : t[2], .o = t[3],
                                    .mask = p->mask, .kv_lens = p->kv_lens,
                                    .alibi_slopes = p->alibi_slopes, .sinks = p->sinks,
                                    .k_scale = scales[0], .v_scale = scales[1],
                                    .block_table = p->block_table};
    bool ok = attn_execute(plan, &args, err) == ATTN_OK;
    for (int64_t r = 0; ok && r < n; r++) {
        const double t0 = attn_clock_seconds();
        ok = attn_execute(plan, &args, err) == ATTN_OK;
        samples[r] = attn_clock_seconds() - t0;
    }
    if (ok) {
        attn_time_stats stats;
        attn_time_stats_compute(samples, (size_t)n, &stats);
        median = stats.median;
        *best = stats.min;
    }
    free(samples);
done:
    for (int i = 0; i < 2; i++) {
        free(kvq[i]);
        free(scales[i]);
    }
    for (int i = 0; i < 4; i++)
        free(t[i]);
    return median;
}

/* The plan for one thread count: the text report (unless --format json), and *doc (JSON or -o)
 * its document, not yet stamped. Returns an exit status. */
static int plan_one(const attn_problem *p, const shape_config *s, int threads, unsigned flags,
                    int64_t execute, json_t **doc)
{
    attn_error err;
    const attn_plan_options po = {.threads = threads, .flags = flags,
                                  .max_rel_err = s->max_rel_err};
    progress_state ps;
    progress_init(&ps, "plan");
    tuner_measure_progress(show_progress, &ps);
    attn_plan *plan = attn_plan_create(p, &po, &err);
    tuner_measure_progress(NULL, NULL);
    progress_end(&ps);
    if (!plan)
        return cli_error("plan", "%s", err.message);
    attn_plan_info info;
    attn_plan_get_info(plan, &info);
    char path[4096], why[600], tuned[32];
    attn_wisdom_file(path, sizeof path);
    format_ms(tuned, sizeof tuned, info.tuned_seconds);
    switch (info.source) {
    case ATTN_PLAN_FROM_WISDOM:
        snprintf(why, sizeof why, "this problem was tuned on this machine and build (%s ms), "
                 "in %.400s", tuned, path);
        break;
    case ATTN_PLAN_FROM_NEAREST:
        snprintf(why, sizeof why, "no wisdom for this problem; the nearest tuned problem of the "
                 "same kind (%s ms there), in %.400s", tuned, path);
        break;
    case ATTN_PLAN_FROM_MEASURE:
        snprintf(why, sizeof why, "tuned now (%s ms), stored in %.400s", tuned, path);
        break;
    case ATTN_PLAN_FROM_FORCED:
        snprintf(why, sizeof why, "ATTN_FORCE_VARIANT=%s, its cache-size default parameters",
                 info.variant);
        break;
    case ATTN_PLAN_FROM_ESTIMATE:
        estimate_reason(why, sizeof why, info.variant);
        break;
    }
    if (info.compute_dtype != ATTN_F32) { /* the description says why reduced precision */
        const char *reason = strchr(attn_plan_describe(plan), ';');
        const size_t used = strlen(why);
        snprintf(why + used, sizeof why - used, "%s", reason ? reason : "");
    }
    double exec_median = NAN, exec_min = NAN;
    if (execute > 0 && !isfinite(exec_median = time_plan(plan, p, execute, &exec_min, &err))) {
        attn_plan_destroy(plan);
        return cli_error("plan", "%s", err.message);
    }
    tuner_config cfg = {.variant = attn_variant_find(info.variant), .params = info.params};
    attn_variant_info chosen = {0}; /* a peer (another library's kernels) names its library */
    attn_variant_get(cfg.variant, &chosen);
    int status = CLI_EXIT_OK;
    if (s->format == CLI_FORMAT_JSON || s->output) {
        json_t *root = json_pack("{s:s, s:o, s:i, s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:o, s:s}",
                                 "variant", info.variant, "params", params_json(&cfg), "threads",
                                 info.threads, "dtype", attn_dtype_name(p->dtype), "compute_dtype",
                                 attn_dtype_name(info.compute_dtype), "measured_rel_err",
                                 cli_json_real(info.measured_rel_err), "max_rel_err",
                                 s->max_rel_err > 0 ? json_real(s->max_rel_err) : json_null(),
                                 "source",
                                 attn_plan_source_name(info.source),
                                 "description", attn_plan_describe(plan), "why", why,
                                 "tuned_median_s",
                                 info.tuned_seconds > 0 ? json_real(info.tuned_seconds) : json_null(),
                                 "wisdom_file", path);
        if (root)
            json_object_set_new(root, "peer", chosen.blas_core ? json_string(chosen.blas_core)
                                                                : json_null());
        if (root && execute > 0)
            json_object_set_new(root, "execute", json_pack("{s:I, s:f, s:f, s:o}", "runs",
                                                           (json_int_t)execute, "median_s",
                                                           exec_median, "min_s", exec_min,
                                                           "vs_tuned", info.tuned_seconds > 0
                                                           ? json_real(exec_median / info.tuned_seconds)
                                                           : json_null()));
        *doc = root;
        if (!root)
            status = cli_error("plan", "out of memory");
    }
    if (s->format != CLI_FORMAT_JSON && status == CLI_EXIT_OK) {
        fputs("plan: ", stdout);
        cli_print_wrapped(stdout, 6, 6, attn_plan_describe(plan));
        fputs("why: ", stdout);
        cli_print_wrapped(stdout, 5, 5, why);
        if (chosen.blas_core)
            printf("chosen: %s (a peer: %s)\n", info.variant, chosen.blas_core);
        else
            printf("chosen: %s (this project's kernel)\n", info.variant);
        if (execute > 0) {
            char med[32];
            format_ms(med, sizeof med, exec_median);
            printf("executed %lld times: median %s ms", (long long)execute, med);
            if (info.tuned_seconds > 0)
                printf(" (%.3f x the %s ms recorded by tuning)", exec_median / info.tuned_seconds,
                       tuned);
            printf("\n");
        }
    }
    attn_plan_destroy(plan);
    return status;
}

int cli_plan(int argc, char **argv)
{
    static shape_config s; /* static: the model's slopes and sinks outlive the plan (cli_tune) */
    s = (shape_config){.flags = {.causal = -1, .kv_dtype = -1}, .model = cli_model_none()};
    unsigned flags = ATTN_ESTIMATE;
    int64_t execute = 0;
    const char *value;
    shape_output_flag(argc, argv);
    for (int o; (o = cli_next_option("plan", argc, argv, plan_options, PLAN_OPTION_COUNT,
                                     &value)) != CLI_OPTION_END;) {
        int handled = o >= 0 ? shape_option("plan", o, value, plan_options, &s) : -1;
        bool ok = handled >= 0;
        if (handled == 0)
            switch (o) {
            case P_MEASURE: flags |= ATTN_MEASURE; break;
            case P_WISDOM_ONLY: flags |= ATTN_WISDOM_ONLY; break;
            case P_EXECUTE: ok = cli_parse_int64("plan", "execute", value, 1, 1000000, &execute); break;
            case O_HELP: print_plan_help(); return CLI_EXIT_OK;
            default: ok = false;
            }
        if (!ok)
            return CLI_EXIT_USAGE;
    }
    attn_problem p;
    if (!shape_problem("plan", &s, &p))
        return CLI_EXIT_USAGE;
    /* Every count of --threads in turn: one document for one count, {"kind": "plan",
     * "threads", "plans": [...]} for several. */
    json_t *conditions = cli_conditions_start();
    json_t *plans = json_array(), *counts = json_array();
    int status = plans && counts ? CLI_EXIT_OK : cli_error("plan", "out of memory");
    for (int t = 0; status == CLI_EXIT_OK && t < s.threads.count; t++) {
        json_t *doc = NULL;
        if (t > 0 && s.format == CLI_FORMAT_TEXT)
            printf("\n");
        status = plan_one(&p, &s, (int)s.threads.value[t], flags, execute, &doc);
        if (doc && (json_array_append_new(plans, doc) != 0 ||
                    json_array_append_new(counts, json_integer(s.threads.value[t])) != 0))
            status = cli_error("plan", "out of memory");
    }
    cli_conditions_end(conditions);
    if (status == CLI_EXIT_OK && (s.format == CLI_FORMAT_JSON || s.output)) {
        json_t *root = json_array_size(plans) == 1 ? json_incref(json_array_get(plans, 0))
                       : json_pack("{s:s, s:O, s:O}", "kind", "plan", "threads", counts,
                                   "plans", plans);
        const bool stamped = cli_document_stamp(root, &p, conditions);
        conditions = NULL;
        status = !stamped ? cli_error("plan", "out of memory")
                 : !shape_write_output("plan", &s, root) ? CLI_EXIT_USAGE
                 : s.format != CLI_FORMAT_JSON || cli_json_print(root)
                     ? CLI_EXIT_OK
                     : cli_error("plan", "output error");
        json_decref(root);
    }
    json_decref(plans);
    json_decref(counts);
    json_decref(conditions); /* NULL when the JSON document took it */
    return status;
}

