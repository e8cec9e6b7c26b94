/* cli_tune.c — attnbench tune; plan (cli_plan.c) and wisdom (cli_wisdom.c) beside it, what
 * they share in cli_tuner.c: the tuner and the planner from the command line.
 *
 * tune    searches the variants and parameters of one shape (tuner/search.c), prints the best
 *         configurations per variant and how far the estimate is from the tuned best, and
 *         stores the best as wisdom; --compare re-times given configurations side by side.
 * plan    says what attn_plan_create would choose for a shape and why; --execute times the plan.
 * wisdom  shows, exports, imports or forgets the wisdom file. */
#include "cli.h"
#include "cli_commands.h"
#include "cli_tuner.h"
#include "timing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { DEFAULT_BUDGET = 60, DEFAULT_ROUNDS = 15 };

/* ---- attnbench tune -------------------------------------------------------------------------- */

enum {
    T_VARIANT = SHAPE_OPTION_COUNT, T_STRATEGY, T_BUDGET, T_TOP, T_NO_STORE, T_COMPARE, T_ROUNDS,
    T_QUIET, TUNE_OPTION_COUNT
};
static const cli_option tune_options[TUNE_OPTION_COUNT] = {
    SHAPE_OPTIONS,
    [T_VARIANT] = {"variant", "LIST", "tune these variants only (default: every supported one)"},
    [T_STRATEGY] = {"strategy", "fast|exhaustive", "search strategy (default fast)"},
    [T_BUDGET] = {"budget", "SECONDS", "stop searching after this long (default 60)"},
    [T_TOP] = {"top", "N", "configurations shown per variant (default 3)"},
    [T_NO_STORE] = {"no-store", NULL, "do not write the result to the wisdom file"},
    [T_COMPARE] = {"compare", "VARIANT[:K=V,...]", "time this configuration (repeatable)"},
    [T_ROUNDS] = {"rounds", "N", "--compare: interleaved rounds (default 15)"},
    [T_QUIET] = {"quiet", NULL, "no progress on stderr"},
};

static void print_tune_help(void)
{
    printf("usage: attnbench tune [options]\n\n"
           "Searches the variants this CPU runs, and their parameters, for the fastest correct\n"
           "configuration on one shape (random inputs, [B,H,L,d]), and stores it as wisdom for\n"
           "attn_plan_create. Candidates come from each variant's declared parameter ranges\n"
           "around its cache-size default; each is checked against the float64 oracle on a small\n"
           "problem of the same kind first (paged alike with --page-size), and one beyond its\n"
           "tolerance is never chosen; then timed on the problem as given (--block-table too).\n"
           "Timing: a warm-up run, then repetitions until the candidate is clearly slower than\n"
           "the best so far, separates from it, or is stable (at most 15).\n"
           "  fast        the estimate's default first, then per variant its default; variants\n"
           "              more than 1.5x slower than the best default are dropped; the others\n"
           "              descend coordinate by coordinate over their parameter values\n"
           "  exhaustive  every configuration (the ground truth; slow)\n"
           "--compare skips the search and times the given configurations side by side, their\n"
           "runs interleaved, --rounds rounds; the first is the reference of the ratios.\n"
           "\noptions:\n");
    cli_print_options(stdout, tune_options, TUNE_OPTION_COUNT);
    printf("\nexit status: 0 ok, 2 bad input or an error (including a wisdom file that cannot be\n"
           "written over: it is left as it is; attnbench wisdom forget removes it).\n");
}

/* "avx512:bq=64,bk=128" or "avx512" into a config (threads given). */
static bool parse_config(const char *text, const attn_problem *p, int threads, tuner_config *c)
{
    char name[64];
    const char *colon = strchr(text, ':');
    size_t n = colon ? (size_t)(colon - text) : strlen(text);
    if (n >= sizeof name) {
        cli_error("tune", "--compare: '%s' is not VARIANT[:K=V,...]", text);
        return false;
    }
    memcpy(name, text, n);
    name[n] = '\0';
    attn_error err;
    c->variant = attn_variant_find(name);
    if (c->variant < 0) {
        cli_error("tune", "--compare: unknown variant '%s'", name);
        return false;
    }
    if (attn_variant_default_params(name, p, &c->params, &err) != ATTN_OK ||
        (colon && attn_params_parse(name, colon + 1, &c->params, &err) != ATTN_OK)) {
        cli_error("tune", "--compare %s: %s", text, err.message);
        return false;
    }
    c->params.threads = threads;
    if (attn_params_check(name, p, &c->params, &err) != ATTN_OK) {
        cli_error("tune", "--compare %s: %s", text, err.message);
        return false;
    }
    return true;
}

static int tune_compare(const attn_problem *p, const shape_config *s, const char **texts, int n,
                        int rounds)
{
    tuner_config *configs = calloc((size_t)n, sizeof *configs);
    tuner_timing *times = calloc((size_t)n, sizeof *times);
    int status = CLI_EXIT_USAGE;
    tuner_bench bench = {0};
    attn_error err;
    if (!configs || !times) {
        cli_error("tune", "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        if (!parse_config(texts[i], p, (int)s->threads.value[0], &configs[i]))
            goto done;
    if (tuner_bench_init(&bench, p, &err) != ATTN_OK ||
        tuner_time_interleaved(&bench, configs, n, rounds, times, &err) != ATTN_OK) {
        cli_error("tune", "%s", err.message);
        goto done;
    }
    const double flops = attn_problem_flops(p);
    json_t *list = s->format == CLI_FORMAT_JSON ? json_array() : NULL;
    cli_table t;
    cli_table_init(&t, 7, "llrrrrr");
    cli_table_add(&t, "variant");
    cli_table_add(&t, "params");
    cli_table_add(&t, "median ms");
    cli_table_add(&t, "min ms");
    cli_table_add(&t, "max ms");
    cli_table_add(&t, "GFLOP/s");
    cli_table_add(&t, "vs first");
    for (int i = 0; i < n; i++) {
        char what[200], med[32], mn[32], mx[32];
        tuner_config_format(&configs[i], what, sizeof what);
        const char *params = strchr(what, ' ');
        format_ms(med, sizeof med, times[i].median);
        format_ms(mn, sizeof mn, times[i].min);
        format_ms(mx, sizeof mx, times[i].max);
        cli_table_add(&t, "%s", variant_name(configs[i].variant));
        cli_table_add(&t, "%s", params ? params + 1 : "-");
        cli_table_add(&t, "%s", med);
        cli_table_add(&t, "%s", mn);
        cli_table_add(&t, "%s", mx);
        cli_table_add(&t, "%.1f", flops / times[i].median * 1e-9);
        cli_table_add(&t, "%.3f", times[i].median / times[0].median);
        if (list)
            json_array_append_new(list, json_pack("{s:s, s:o, s:f, s:f, s:f, s:i, s:f}",
                                                  "variant", variant_name(configs[i].variant),
                                                  "params", params_json(&configs[i]), "median_s",
                                                  times[i].median, "min_s", times[i].min, "max_s",
                                                  times[i].max, "reps", times[i].reps, "ratio",
                                                  times[i].median / times[0].median));
    }
    if (list) {
        json_t *root = json_pack("{s:i, s:o}", "rounds", rounds, "configurations", list);
        status = root && cli_json_print(root) ? CLI_EXIT_OK : cli_error("tune", "out of memory");
        json_decref(root);
    } else {
        printf("%d configurations, %d interleaved rounds after a warm-up of each:\n", n, rounds);
        status = cli_table_print(&t, stdout) ? CLI_EXIT_OK : cli_error("tune", "out of memory");
    }
    cli_table_free(&t);
done:
    tuner_bench_free(&bench);
    free(configs);
    free(times);
    return status;
}

static int compare_candidates(const void *a, const void *b)
{
    const tuner_candidate *x = *(tuner_candidate *const *)a, *y = *(tuner_candidate *const *)b;
    if (x->config.variant != y->config.variant)
        return x->config.variant - y->config.variant;
    /* Within a variant: fully timed before early-rejected, then by median. */
    if (x->timing.rejected != y->timing.rejected)
        return x->timing.rejected - y->timing.rejected;
    return (x->timing.median > y->timing.median) - (x->timing.median < y->timing.median);
}

static void print_tune_table(const tuner_result *r, double flops, int top)
{
    tuner_candidate **timed = malloc(r->space.count * sizeof *timed);
    if (!timed)
        return;
    size_t n = 0;
    for (size_t i = 0; i < r->space.count; i++)
        if (r->candidates[i].timed)
            timed[n++] = &r->candidates[i];
    qsort(timed, n, sizeof *timed, compare_candidates);
    const double best = r->candidates[r->best].timing.median;
    cli_table t;
    cli_table_init(&t, 9, "llrrrrrrl");
    const char *head[9] = {"variant", "params", "median ms", "min ms", "reps", "GFLOP/s",
                           "vs best", "max_rel_err", ""};
    for (int i = 0; i < 9; i++)
        cli_table_add(&t, "%s", head[i]);
    int shown = 0;
    for (size_t i = 0; i < n; i++) {
        const tuner_candidate *c = timed[i];
        if (i > 0 && c->config.variant != timed[i - 1]->config.variant)
            shown = 0;
        if (shown++ >= top)
            continue;
        char what[200], med[32], mn[32];
        tuner_config_format(&c->config, what, sizeof what);
        const char *params = strchr(what, ' ');
        format_ms(med, sizeof med, c->timing.median);
        format_ms(mn, sizeof mn, c->timing.min);
        cli_table_add(&t, "%s", variant_name(c->config.variant));
        cli_table_add(&t, "%s", params ? params + 1 : "-");
        cli_table_add(&t, "%s", med);
        cli_table_add(&t, "%s", mn);
        cli_table_add(&t, "%d", c->timing.reps);
        cli_table_add(&t, "%.1f", flops / c->timing.median * 1e-9);
        cli_table_add(&t, "%.2f", c->timing.median / best);
        cli_table_add(&t, "%.1e", c->rel_err);
        cli_table_add(&t, "%s", c == &r->candidates[r->best] ? "best"
                                : c->too_inexact ? "over --max-rel-err"
                                : c->timing.rejected ? "dropped early" : "");
    }
    cli_table_print(&t, stdout);
    cli_table_free(&t);
    free(timed);
}

static json_t *candidate_json(const tuner_candidate *c, double flops)
{
    /* max_rel_err: on the small check problem, against the oracle the variant is judged by;
     * rel_err: on this problem's sample rows, against the oracle on the inputs as given. */
    return json_pack("{s:s, s:o, s:s, s:b, s:o, s:o, s:b, s:f, s:f, s:f, s:i, s:b, s:o}",
                     "variant", variant_name(c->config.variant), "params", params_json(&c->config),
                     "compute_dtype", attn_dtype_name(compute_dtype_of(c->config.variant)),
                     "correct", c->correct, "max_rel_err", cli_json_real(c->max_rel),
                     "rel_err", cli_json_real(c->rel_err), "over_max_rel_err", c->too_inexact,
                     "median_s", c->timing.median, "min_s", c->timing.min, "max_s",
                     c->timing.max, "reps", c->timing.reps, "rejected_early", c->timing.rejected,
                     "gflops", cli_json_real(flops / c->timing.median * 1e-9));
}

/* Every name of --variant's comma list is registered and runs on this CPU; reports which not. */
static bool variants_runnable(const char *list)
{
    for (const char *s = list; s; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL) {
        char name[64];
        const size_t n = strcspn(s, ",");
        snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), s);
        attn_variant_info info;
        const int i = attn_variant_find(name);
        if (i < 0) {
            cli_error("tune", "--variant: unknown variant '%s'", name);
            return false;
        }
        attn_variant_get(i, &info);
        if (!info.supported) {
            cli_error("tune", "--variant: %s cannot run here: %s", name, info.why_not);
            return false;
        }
    }
    return true;
}

static json_t *threads_json(const cli_int_list *threads)
{
    json_t *list = json_array();
    for (int i = 0; list && i < threads->count; i++)
        json_array_append_new(list, json_integer(threads->value[i]));
    return list;
}

/* One thread count's search: the report in text (unless --format json), the wisdom stored, and
 * *doc (JSON or -o) the count's document, not yet stamped. Returns an exit status. */
static int tune_one(const attn_problem *p, const shape_config *s, tuner_options opt, int threads,
                    int top, bool store, bool quiet, json_t **doc)
{
    opt.threads = threads;
    opt.max_rel_err = s->max_rel_err;
    progress_state ps;
    progress_init(&ps, "tune");
    opt.progress = quiet ? NULL : show_progress;
    opt.progress_ctx = &ps;
    tuner_class cls;
    tuner_class_of(p, threads, s->max_rel_err, &cls);
    char what[200], path[4096];
    tuner_class_format(&cls, what, sizeof what);
    attn_wisdom_file(path, sizeof path);
    if (s->format == CLI_FORMAT_TEXT)
        printf("tune %s: strategy %s, budget %.3g s\n", what,
               opt.strategy == TUNER_FAST ? "fast" : "exhaustive", opt.budget_seconds);
    fflush(stdout);

    tuner_result r;
    attn_error err;
    attn_status st = tuner_run(p, &opt, &r, &err);
    progress_end(&ps);
    if (st != ATTN_OK)
        return cli_error("tune", "%s", err.message);

    const double flops = attn_problem_flops(p);
    const tuner_candidate *best = &r.candidates[r.best];
    const tuner_candidate *est = r.estimate_index >= 0 ? &r.candidates[r.estimate_index] : NULL;
    size_t failed = 0;
    for (size_t i = 0; i < r.space.count; i++)
        failed += r.candidates[i].checked && !r.candidates[i].correct;

    /* Store first, so the report can say where (or why not). */
    wisdom_entry e;
    tuner_wisdom_entry(p, &cls, &r, &e);
    wisdom_set one = {.entries = &e, .count = 1, .capacity = 1};
    attn_error werr = {0};
    bool stored = store && wisdom_merge_into_file(path, &one, &werr) == ATTN_OK;

    char best_text[200], est_text[200], best_ms[32], est_ms[32];
    tuner_config_format(&best->config, best_text, sizeof best_text);
    tuner_config_format(&r.estimate, est_text, sizeof est_text);
    format_ms(best_ms, sizeof best_ms, best->timing.median);
    const bool est_timed = est && est->timed;
    const double est_slower = est_timed ? 100.0 * (est->timing.median / best->timing.median - 1)
                                        : NAN;
    if (est_timed)
        format_ms(est_ms, sizeof est_ms, est->timing.median);

    int status = CLI_EXIT_OK;
    if (s->format == CLI_FORMAT_JSON || s->output) {
        json_t *cands = json_array();
        for (size_t i = 0; cands && i < r.space.count; i++)
            if (r.candidates[i].timed)
                json_array_append_new(cands, candidate_json(&r.candidates[i], flops));
        json_t *rejected = json_array(); /* what failed the correctness check, and why */
        for (size_t i = 0; rejected && i < r.space.count; i++)
            if (r.candidates[i].checked && !r.candidates[i].correct)
                json_array_append_new(rejected, json_pack("{s:s, s:o, s:s}", "variant",
                                                          variant_name(r.candidates[i].config.variant),
                                                          "params", params_json(&r.candidates[i].config),
                                                          "why", r.candidates[i].why));
        json_t *root = json_pack(
            "{s:o, s:s, s:f, s:f, s:b, s:I, s:I, s:I, s:o, s:o, s:{s:s, s:o, s:o, s:o}, s:o, s:o, "
            "s:{s:s, s:b, s:s}}",
            "problem", class_json(&cls), "strategy",
            opt.strategy == TUNER_FAST ? "fast" : "exhaustive", "budget_s", opt.budget_seconds,
            "seconds", r.seconds, "budget_exhausted", r.budget_exhausted, "space_size",
            (json_int_t)r.space.count, "timed", (json_int_t)r.timed, "failed_check",
            (json_int_t)failed, "failed", rejected, "best", candidate_json(best, flops), "estimate", "variant",
            variant_name(r.estimate.variant), "params", params_json(&r.estimate), "median_s",
            est_timed ? json_real(est->timing.median) : json_null(), "slower_pct",
            cli_json_real(est_slower), "estimate_slower_pct", cli_json_real(est_slower),
            "candidates", cands, "wisdom", "path", path, "stored", stored, "error",
            stored || !store ? "" : werr.message);
        if (root && json_object_set_new(root, "check", json_pack(
                "{s:I, s:I, s:I, s:I}", "batch", (json_int_t)r.check.batch, "len_q",
                (json_int_t)r.check.len_q, "len_kv", (json_int_t)r.check.len_kv, "page_size",
                (json_int_t)r.check.page_size)) != 0) {
            json_decref(root);
            root = NULL;
        }
        *doc = root;
        if (!root)
            status = cli_error("tune", "out of memory");
    }
    if (s->format != CLI_FORMAT_JSON && status != CLI_EXIT_USAGE) {
        print_tune_table(&r, flops, (int)top);
        printf("timed %zu of %zu configurations (%.1f%%) in %.1f s%s", r.timed, r.space.count,
               100.0 * (double)r.timed / (double)r.space.count, r.seconds,
               r.budget_exhausted ? " (budget exhausted: best so far)" : "");
        if (failed)
            printf("; %zu failed their correctness check", failed);
        printf("\n");
        char line[600];
        if (est_timed)
            snprintf(line, sizeof line, "estimate: %s ms (%s), tuned best: %s ms (%s), estimate "
                     "is %.1f%% slower", est_ms, est_text, best_ms, best_text, est_slower);
        else
            snprintf(line, sizeof line, "estimate: %s was not timed (outside --variant), tuned "
                     "best: %s ms (%s)", est_text, best_ms, best_text);
        cli_print_wrapped(stdout, 10, 0, line);
        if (stored)
            printf("wisdom: stored in %s\n", path);
        status = CLI_EXIT_OK;
    }
    if (store && !stored) {
        cli_error("tune", "wisdom not stored: %s", werr.message);
        status = CLI_EXIT_USAGE;
    }
    tuner_result_free(&r);
    return status;
}

int cli_tune(int argc, char **argv)
{
    /* static: the model's slopes and sinks live as long as the process (the problem and the
     * stored wisdom point at them until the end) */
    static shape_config s;
    s = (shape_config){.flags = {.causal = -1, .kv_dtype = -1}, .model = cli_model_none()};
    tuner_options opt = {.strategy = TUNER_FAST, .budget_seconds = DEFAULT_BUDGET};
    int64_t top = 3, rounds = DEFAULT_ROUNDS;
    bool store = true, quiet = false;
    const char **compare = malloc((size_t)argc * sizeof *compare);
    int compare_count = 0, status = CLI_EXIT_USAGE;
    if (!compare)
        return cli_error("tune", "out of memory");
    const char *value;
    shape_output_flag(argc, argv);
    for (int o; (o = cli_next_option("tune", argc, argv, tune_options, TUNE_OPTION_COUNT,
                                     &value)) != CLI_OPTION_END;) {
        int handled = o >= 0 ? shape_option("tune", o, value, tune_options, &s) : -1;
        bool ok = handled >= 0;
        if (handled == 0)
            switch (o) {
            case T_VARIANT: opt.only_variant = value; break;
            case T_STRATEGY:
                ok = !strcmp(value, "fast") || !strcmp(value, "exhaustive");
                if (!ok)
                    cli_error("tune", "--strategy: '%s' is not fast or exhaustive", value);
                opt.strategy = ok && !strcmp(value, "exhaustive") ? TUNER_EXHAUSTIVE : TUNER_FAST;
                break;
            case T_BUDGET: {
                float b;
                ok = cli_parse_positive_float("tune", "budget", value, &b);
                opt.budget_seconds = b;
                break;
            }
            case T_TOP: ok = cli_parse_int64("tune", "top", value, 1, 1000, &top); break;
            case T_NO_STORE: store = false; break;
            case T_QUIET: quiet = true; break;
            case T_COMPARE: compare[compare_count++] = value; break;
            case T_ROUNDS: ok = cli_parse_int64("tune", "rounds", value, 1, 100000, &rounds); break;
            case O_HELP: print_tune_help(); free(compare); return CLI_EXIT_OK;
            default: ok = false;
            }
        if (!ok) {
            free(compare);
            return CLI_EXIT_USAGE;
        }
    }
    attn_problem p;
    if (!shape_problem("tune", &s, &p)) {
        free(compare);
        return CLI_EXIT_USAGE;
    }
    if (compare_count > 0) {
        if (s.threads.count > 1) {
            free(compare);
            return cli_error("tune", "--compare times its configurations side by side at one "
                             "--threads count, not %d", s.threads.count);
        }
        status = tune_compare(&p, &s, compare, compare_count, (int)rounds);
        free(compare);
        return status;
    }
    free(compare);
    if (opt.only_variant && !variants_runnable(opt.only_variant))
        return CLI_EXIT_USAGE;

    /* Every count of --threads in turn, each stored as its own wisdom (keyed by threads); one
     * document for one count, {"kind": "tune", "threads", "tunes": [...]} for several. */
    json_t *conditions = cli_conditions_start();
    cli_conditions_warn("tune", conditions);
    json_t *tunes = json_array();
    status = CLI_EXIT_OK;
    for (int t = 0; tunes && status == CLI_EXIT_OK && t < s.threads.count; t++) {
        json_t *doc = NULL;
        if (t > 0 && s.format == CLI_FORMAT_TEXT)
            printf("\n");
        status = tune_one(&p, &s, opt, (int)s.threads.value[t], (int)top, store, quiet, &doc);
        if (doc && json_array_append_new(tunes, doc) != 0)
            status = cli_error("tune", "out of memory");
    }
    cli_conditions_end(conditions);
    if (!tunes)
        status = cli_error("tune", "out of memory");
    if (status == CLI_EXIT_OK && (s.format == CLI_FORMAT_JSON || s.output)) {
        json_t *root = json_array_size(tunes) == 1 ? json_incref(json_array_get(tunes, 0))
                       : json_pack("{s:s, s:o, s:O}", "kind", "tune", "threads",
                                   threads_json(&s.threads), "tunes", tunes);
        const bool stamped = cli_document_stamp(root, &p, conditions);
        conditions = NULL;
        status = !stamped ? cli_error("tune", "out of memory")
                 : !shape_write_output("tune", &s, root) ? CLI_EXIT_USAGE
                 : s.format != CLI_FORMAT_JSON || cli_json_print(root)
                     ? CLI_EXIT_OK
                     : cli_error("tune", "output error");
        json_decref(root);
    }
    json_decref(tunes);
    json_decref(conditions); /* NULL when the JSON document took it */
    return status;
}

