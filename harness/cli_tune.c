/* cli_tune.c — attnbench tune, plan and wisdom: the tuner and the planner from the command line.
 *
 * tune    searches the variants and parameters of one shape (tuner/search.c), prints the best
 *         configurations per variant and how far the estimate is from the tuned best, and
 *         stores the best as wisdom; --compare re-times given configurations side by side.
 * plan    says what attn_plan_create would choose for a shape and why; --execute times the plan.
 * wisdom  shows, exports, imports or forgets the wisdom file. */
#include "cli.h"
#include "cli_tune.h"
#include "shapes.h"
#include "timing.h"
#include "tuner/tuner.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { DEFAULT_BUDGET = 60, DEFAULT_ROUNDS = 15 };

/* ---- the shape options tune and plan share ------------------------------------------------ */

/* The shape flags of every shape-taking command (cli_shape_flags.c), then tune's and plan's
 * common ones. */
enum {
    O_DTYPE = CLI_SHAPE_OPTION_COUNT, O_MAX_REL_ERR, O_THREADS, O_WISDOM, O_FORMAT, O_HELP,
    SHAPE_OPTION_COUNT
};
#define SHAPE_OPTIONS                                                                             \
    CLI_SHAPE_OPTION_ROWS("N", "1024", "64"),                                                     \
    [O_DTYPE] = {"dtype", "f32|bf16|f16", "element type of Q, K and V (default f32)"},          \
    [O_MAX_REL_ERR] = {"max-rel-err", "X",                                                      \
                       "accuracy bound: variants computing in bf16 may be chosen when their "   \
                       "error measured on this problem is <= X (default: float32 compute only)"},\
    [O_THREADS] = {"threads", "N", "threads per run; 0: the library's default (default 0)"},    \
    [O_WISDOM] = {"wisdom", "FILE", "wisdom file (default $ATTN_WISDOM, else the XDG cache)"},  \
    [O_FORMAT] = {"format", "text|json", "output format (default text)"},                       \
    [O_HELP] = {"help", NULL, "this help"}

typedef struct shape_config {
    cli_shape_flags flags;
    int64_t threads; /* 0: not given */
    attn_dtype dtype;
    double max_rel_err; /* 0: float32 compute only */
    const char *wisdom;
    cli_format format;
} shape_config;

/* Handles option o when it is a shape option: returns 1 when handled, 0 when it is not one,
 * -1 on a bad value (reported). */
static int shape_option(const char *cmd, int o, const char *value, const cli_option *options,
                        shape_config *s)
{
    if (o < CLI_SHAPE_OPTION_COUNT)
        return cli_shape_option(cmd, o, value, false, &s->flags);
    switch (o) {
    case O_THREADS:
        if (strchr(value, ',')) {
            cli_error(cmd, "--threads takes one count here, not '%s' (%s once per count)",
                      value, cmd);
            return -1;
        }
        return cli_parse_int64(cmd, options[o].name, value, 0, ATTN_MAX_THREADS, &s->threads)
                   ? 1 : -1;
    case O_DTYPE:
        if (attn_dtype_parse(value, &s->dtype))
            return 1;
        cli_error(cmd, "--dtype: '%s' is not f32, bf16 or f16", value);
        return -1;
    case O_MAX_REL_ERR: {
        char *end;
        s->max_rel_err = strtod(value, &end);
        if (end != value && !*end && isfinite(s->max_rel_err) && s->max_rel_err > 0)
            return 1;
        cli_error(cmd, "--max-rel-err: '%s' is not a finite number > 0", value);
        return -1;
    }
    case O_WISDOM: s->wisdom = value; return 1;
    case O_FORMAT:
        return cli_parse_format(cmd, value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON,
                                &s->format) ? 1 : -1;
    default: return 0;
    }
}

/* The problem of the shape options, contiguous [B,H,L,d]; prints why on failure. */
static bool shape_problem(const char *cmd, shape_config *s, attn_problem *p)
{
    if (!cli_shape_flags_problem(cmd, &s->flags, p))
        return false;
    p->dtype = s->dtype;
    if (s->threads == 0)
        s->threads = attn_default_threads();
    attn_error err;
    if (s->wisdom && attn_wisdom_set_file(s->wisdom, &err) != ATTN_OK) {
        cli_error(cmd, "%s", err.message);
        return false;
    }
    return true;
}

static json_t *class_json(const tuner_class *c)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:b, s:i, s:s, s:o}", "batch",
                     (json_int_t)c->batch, "heads_q", (json_int_t)c->heads_q, "heads_kv",
                     (json_int_t)c->heads_kv, "len_q", (json_int_t)c->len_q, "len_kv",
                     (json_int_t)c->len_kv, "head_dim", (json_int_t)c->head_dim, "causal",
                     c->causal, "mask", c->mask, "kv_lens", c->kv_lens, "threads", c->threads,
                     "dtype", attn_dtype_name(c->dtype), "max_rel_err",
                     c->max_rel_err > 0 ? json_real(c->max_rel_err) : json_null());
}

static attn_dtype compute_dtype_of(int variant)
{
    attn_variant_info info;
    return attn_variant_get(variant, &info) ? info.compute_dtype : ATTN_F32;
}

static json_t *params_json(const tuner_config *c)
{
    attn_variant_info info;
    json_t *o = json_object();
    if (o && attn_variant_get(c->variant, &info))
        for (int i = 0; i < info.param_count; i++)
            json_object_set_new(o, info.params[i].name, json_integer(c->params.value[i]));
    return o;
}

static const char *variant_name(int index)
{
    attn_variant_info info;
    return attn_variant_get(index, &info) ? info.name : "?";
}

/* "12.34" milliseconds with about four significant digits. */
static void format_ms(char *buf, size_t len, double seconds)
{
    const double ms = seconds * 1e3;
    snprintf(buf, len, "%.*f", ms >= 100 ? 1 : ms >= 10 ? 2 : ms >= 1 ? 3 : 4, ms);
}

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
           "problem of the same kind first, and one beyond its tolerance is never chosen.\n"
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

/* Progress on stderr: on a terminal one line redrawn in place (a bar, then what is being
 * measured); otherwise (a log, a pipe) plain lines, the first after PROGRESS_FIRST seconds and
 * then at most one per PROGRESS_EVERY seconds (so a short tune prints none), and one before
 * every step expected to take PROGRESS_FIRST or more. */
static const double PROGRESS_FIRST = 1.0, PROGRESS_EVERY = 2.0;

typedef struct progress_state {
    const char *command;
    bool tty;
    bool active;      /* a terminal line is drawn and must be cleared */
    double last_line; /* elapsed seconds of the last plain line; < 0: none yet */
} progress_state;

static void progress_init(progress_state *ps, const char *command)
{
    *ps = (progress_state){.command = command, .tty = isatty(STDERR_FILENO), .last_line = -1};
}

static void show_progress(void *ctx, const tuner_progress *p)
{
    progress_state *ps = ctx;
    /* A step expected to take long (a long run, the inputs of a large problem) is announced
     * at once: it may leave nothing else to print for a while. */
    const bool long_step = strcmp(p->stage, "timed") && p->run_seconds >= PROGRESS_FIRST;
    if (!ps->tty && !long_step &&
        (p->elapsed < PROGRESS_FIRST ||
         (ps->last_line >= 0 && p->elapsed - ps->last_line < PROGRESS_EVERY)))
        return;
    char text[320];
    int n = snprintf(text, sizeof text, "%.1f/%.3g s, %zu/%zu configurations: %s%s%s", p->elapsed,
                     p->budget, p->done, p->total, p->stage, p->what[0] ? " " : "", p->what);
    if (n > 0 && (size_t)n < sizeof text && !strcmp(p->stage, "timing")) {
        if (p->rep == 0)
            snprintf(text + n, sizeof text - (size_t)n, ": warm-up (at least %.3g s)",
                     p->run_seconds);
        else
            snprintf(text + n, sizeof text - (size_t)n, ": rep %d/%d (%s%.3g s per run)", p->rep,
                     p->reps, p->run_bound ? "at least " : "", p->run_seconds);
    }
    if (ps->tty) {
        const double f = p->budget > 0 && p->elapsed < p->budget ? p->elapsed / p->budget : 1;
        const int width = 20, filled = (int)(f * width);
        fprintf(stderr, "\r[%.*s%*s] %-100.100s", filled, "####################",
                width - filled, "", text);
        ps->active = true;
    } else {
        fprintf(stderr, "%s: %s\n", ps->command, text);
        ps->last_line = p->elapsed;
    }
    fflush(stderr);
}

static void progress_end(progress_state *ps)
{
    if (ps->active)
        fprintf(stderr, "\r%*s\r", 124, "");
    ps->active = false;
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
        if (!parse_config(texts[i], p, (int)s->threads, &configs[i]))
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

int cli_tune(int argc, char **argv)
{
    shape_config s = {.flags = {.causal = -1}};
    tuner_options opt = {.strategy = TUNER_FAST, .budget_seconds = DEFAULT_BUDGET};
    int64_t top = 3, rounds = DEFAULT_ROUNDS;
    bool store = true, quiet = false;
    const char **compare = malloc((size_t)argc * sizeof *compare);
    int compare_count = 0, status = CLI_EXIT_USAGE;
    if (!compare)
        return cli_error("tune", "out of memory");
    const char *value;
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
        status = tune_compare(&p, &s, compare, compare_count, (int)rounds);
        free(compare);
        return status;
    }
    free(compare);
    if (opt.only_variant && !variants_runnable(opt.only_variant))
        return CLI_EXIT_USAGE;

    opt.threads = (int)s.threads;
    opt.max_rel_err = s.max_rel_err;
    progress_state ps;
    progress_init(&ps, "tune");
    opt.progress = quiet ? NULL : show_progress;
    opt.progress_ctx = &ps;
    tuner_class cls;
    tuner_class_of(&p, (int)s.threads, s.max_rel_err, &cls);
    char what[200], path[4096];
    tuner_class_format(&cls, what, sizeof what);
    attn_wisdom_file(path, sizeof path);
    if (s.format == CLI_FORMAT_TEXT)
        printf("tune %s: strategy %s, budget %.3g s\n", what,
               opt.strategy == TUNER_FAST ? "fast" : "exhaustive", opt.budget_seconds);
    fflush(stdout);

    tuner_result r;
    attn_error err;
    json_t *conditions = cli_conditions_start();
    cli_conditions_warn("tune", conditions);
    attn_status st = tuner_run(&p, &opt, &r, &err);
    progress_end(&ps);
    cli_conditions_end(conditions);
    if (st != ATTN_OK) {
        json_decref(conditions);
        return cli_error("tune", "%s", err.message);
    }

    const double flops = attn_problem_flops(&p);
    const tuner_candidate *best = &r.candidates[r.best];
    const tuner_candidate *est = r.estimate_index >= 0 ? &r.candidates[r.estimate_index] : NULL;
    size_t failed = 0;
    for (size_t i = 0; i < r.space.count; i++)
        failed += r.candidates[i].checked && !r.candidates[i].correct;

    /* Store first, so the report can say where (or why not). */
    wisdom_entry e;
    tuner_wisdom_entry(&p, &cls, &r, &e);
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

    if (s.format == CLI_FORMAT_JSON) {
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
        const bool stamped = cli_document_stamp(root, &p, conditions);
        conditions = NULL;
        status = stamped && cli_json_print(root) ? CLI_EXIT_OK
                                                 : cli_error("tune", "out of memory");
        json_decref(root);
    } else {
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
    json_decref(conditions); /* NULL when the JSON document took it */
    tuner_result_free(&r);
    return status;
}

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
    double *samples = malloc((size_t)n * sizeof *samples);
    if (!samples) {
        err->status = ATTN_ERR_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory for the samples");
        goto done;
    }
    const attn_execute_args args = {.q = t[0], .k = t[1], .v = t[2], .o = t[3],
                                    .mask = p->mask, .kv_lens = p->kv_lens};
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
    for (int i = 0; i < 4; i++)
        free(t[i]);
    return median;
}

int cli_plan(int argc, char **argv)
{
    shape_config s = {.flags = {.causal = -1}};
    unsigned flags = ATTN_ESTIMATE;
    int64_t execute = 0;
    const char *value;
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
    attn_error err;
    const attn_plan_options po = {.threads = (int)s.threads, .flags = flags,
                                  .max_rel_err = s.max_rel_err};
    progress_state ps;
    progress_init(&ps, "plan");
    json_t *conditions = cli_conditions_start();
    tuner_measure_progress(show_progress, &ps);
    attn_plan *plan = attn_plan_create(&p, &po, &err);
    tuner_measure_progress(NULL, NULL);
    progress_end(&ps);
    if (!plan) {
        json_decref(conditions);
        return cli_error("plan", "%s", err.message);
    }
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
    if (execute > 0 && !isfinite(exec_median = time_plan(plan, &p, execute, &exec_min, &err))) {
        attn_plan_destroy(plan);
        json_decref(conditions);
        return cli_error("plan", "%s", err.message);
    }
    cli_conditions_end(conditions);
    tuner_config cfg = {.variant = attn_variant_find(info.variant), .params = info.params};
    int status = CLI_EXIT_OK;
    if (s.format == CLI_FORMAT_JSON) {
        json_t *root = json_pack("{s:s, s:o, s:i, s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:o, s:s}",
                                 "variant", info.variant, "params", params_json(&cfg), "threads",
                                 info.threads, "dtype", attn_dtype_name(p.dtype), "compute_dtype",
                                 attn_dtype_name(info.compute_dtype), "measured_rel_err",
                                 cli_json_real(info.measured_rel_err), "max_rel_err",
                                 s.max_rel_err > 0 ? json_real(s.max_rel_err) : json_null(),
                                 "source",
                                 attn_plan_source_name(info.source),
                                 "description", attn_plan_describe(plan), "why", why,
                                 "tuned_median_s",
                                 info.tuned_seconds > 0 ? json_real(info.tuned_seconds) : json_null(),
                                 "wisdom_file", path);
        if (root && execute > 0)
            json_object_set_new(root, "execute", json_pack("{s:I, s:f, s:f, s:o}", "runs",
                                                           (json_int_t)execute, "median_s",
                                                           exec_median, "min_s", exec_min,
                                                           "vs_tuned", info.tuned_seconds > 0
                                                           ? json_real(exec_median / info.tuned_seconds)
                                                           : json_null()));
        const bool stamped = cli_document_stamp(root, &p, conditions);
        conditions = NULL;
        status = stamped && cli_json_print(root) ? CLI_EXIT_OK
                                                 : cli_error("plan", "out of memory");
        json_decref(root);
    } else {
        fputs("plan: ", stdout);
        cli_print_wrapped(stdout, 6, 6, attn_plan_describe(plan));
        fputs("why: ", stdout);
        cli_print_wrapped(stdout, 5, 5, why);
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
    json_decref(conditions); /* NULL when the JSON document took it */
    attn_plan_destroy(plan);
    return status;
}

/* ---- attnbench wisdom ------------------------------------------------------------------------ */

enum { W_WISDOM, W_FORMAT, W_HELP, WISDOM_OPTION_COUNT };
static const cli_option wisdom_options[WISDOM_OPTION_COUNT] = {
    [W_WISDOM] = {"wisdom", "FILE", "wisdom file (default $ATTN_WISDOM, else the XDG cache)"},
    [W_FORMAT] = {"format", "text|json", "output format of show (default text)"},
    [W_HELP] = {"help", NULL, "this help"},
};

static void print_wisdom_help(void)
{
    printf("usage: attnbench wisdom show|export FILE|import FILE|forget [options]\n\n"
           "  show         the wisdom file: its path, this machine's entries, other sections\n"
           "  export FILE  write this machine and build's entries to FILE\n"
           "  import FILE  merge FILE's entries for this machine and build into the wisdom file\n"
           "  forget       remove the wisdom file (also a damaged one; a file that is not\n"
           "               attnbench wisdom is refused and left)\n"
           "\nWisdom is keyed by the machine id (CPU model, detected ISA, caches) and the build\n"
           "(library version, compiler and flags, variants and their parameters); sections of\n"
           "other machines or builds are kept but ignored.\n\noptions:\n");
    cli_print_options(stdout, wisdom_options, WISDOM_OPTION_COUNT);
}

static int wisdom_show(const char *path, cli_format format)
{
    wisdom_set set;
    size_t foreign;
    char warning[512];
    attn_error err = {0};
    wisdom_read_status rs = wisdom_read(path, &set, &foreign, warning, sizeof warning, &err);
    if (rs == WISDOM_READ_BAD)
        return cli_error("wisdom", "%s", err.message);
    /* The readable entries are listed; an entry the strict check refuses fails the command. */
    attn_error bad_entry = {0};
    const bool entries_ok = wisdom_check_file(path, &bad_entry) == ATTN_OK;
    const char *state = !entries_ok ? "bad entry" : rs == WISDOM_READ_OK ? "ok" : "missing";
    if (format == CLI_FORMAT_JSON) {
        json_t *entries = json_array();
        for (size_t i = 0; entries && i < set.count; i++) {
            const wisdom_entry *e = &set.entries[i];
            json_array_append_new(entries, json_pack("{s:o, s:s, s:o, s:f, s:f, s:s}", "problem",
                                                     class_json(&e->cls), "variant",
                                                     variant_name(e->config.variant), "params",
                                                     params_json(&e->config), "median_s",
                                                     e->median_seconds, "gflops", e->gflops,
                                                     "date", e->date));
        }
        json_t *root = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "path", path, "status", state,
                                 "message", entries_ok ? warning : bad_entry.message,
                                 "machine_id", attn_machine_id(), "foreign_sections",
                                 (json_int_t)foreign, "entries", entries);
        if (!root || !cli_json_print(root))
            rs = WISDOM_READ_BAD;
        json_decref(root);
        if (rs == WISDOM_READ_BAD)
            cli_error("wisdom", "out of memory");
    } else {
        printf("wisdom file: %s\nmachine id: %s\n", path, attn_machine_id());
        if (rs == WISDOM_READ_MISSING)
            printf("status: missing (no wisdom yet: attnbench tune writes it)\n");
        else if (!entries_ok)
            printf("status: an entry is invalid (the message follows on stderr)\n");
        else {
            printf("status: ok, %zu entr%s for this machine and build\n", set.count,
                   set.count == 1 ? "y" : "ies");
            if (warning[0])
                printf("note: %s\n", warning);
        }
        if (set.count) {
            cli_table t;
            cli_table_init(&t, 5, "llrrl");
            const char *head[5] = {"problem", "choice", "median ms", "GFLOP/s", "date"};
            for (int i = 0; i < 5; i++)
                cli_table_add(&t, "%s", head[i]);
            for (size_t i = 0; i < set.count; i++) {
                char cls[200], choice[200], ms[32];
                tuner_class_format(&set.entries[i].cls, cls, sizeof cls);
                tuner_config_format(&set.entries[i].config, choice, sizeof choice);
                format_ms(ms, sizeof ms, set.entries[i].median_seconds);
                cli_table_add(&t, "%s", cls);
                cli_table_add(&t, "%s", choice);
                cli_table_add(&t, "%s", ms);
                cli_table_add(&t, "%.1f", set.entries[i].gflops);
                cli_table_add(&t, "%s", set.entries[i].date);
            }
            cli_table_print(&t, stdout);
            cli_table_free(&t);
        }
    }
    wisdom_set_free(&set);
    if (!entries_ok)
        return cli_error("wisdom", "%s", bad_entry.message);
    return rs == WISDOM_READ_BAD ? CLI_EXIT_USAGE : CLI_EXIT_OK;
}

int cli_wisdom(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        print_wisdom_help();
        return CLI_EXIT_OK;
    }
    if (argc < 2)
        return cli_error("wisdom", "which action? show, export FILE, import FILE or forget "
                         "(see --help)");
    const char *action = argv[1], *file = NULL;
    int skip = 1;
    if (!strcmp(action, "export") || !strcmp(action, "import")) {
        if (argc < 3 || argv[2][0] == '-')
            return cli_error("wisdom", "%s needs a FILE", action);
        file = argv[2];
        skip = 2;
    } else if (strcmp(action, "show") && strcmp(action, "forget")) {
        return cli_error("wisdom", "unknown action '%s' (show, export FILE, import FILE, forget)",
                         action);
    }
    const char *override = NULL, *value;
    cli_format format = CLI_FORMAT_TEXT;
    for (int o; (o = cli_next_option("wisdom", argc - skip, argv + skip,
                                     wisdom_options, WISDOM_OPTION_COUNT, &value)) !=
                CLI_OPTION_END;) {
        switch (o) {
        case W_WISDOM: override = value; break;
        case W_FORMAT:
            if (!cli_parse_format("wisdom", value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON,
                                  &format))
                return CLI_EXIT_USAGE;
            break;
        case W_HELP: print_wisdom_help(); return CLI_EXIT_OK;
        default: return CLI_EXIT_USAGE;
        }
    }
    char path[4096];
    wisdom_path(override, path, sizeof path);
    attn_error err = {0};
    if (!strcmp(action, "show"))
        return wisdom_show(path, format);
    if (!strcmp(action, "forget")) {
        if (wisdom_forget(path, &err) != ATTN_OK)
            return cli_error("wisdom", "%s", err.message);
        printf("removed %s\n", path);
        return CLI_EXIT_OK;
    }
    wisdom_set set;
    size_t foreign;
    char warning[512];
    const char *from = !strcmp(action, "export") ? path : file;
    wisdom_read_status rs = wisdom_read(from, &set, &foreign, warning, sizeof warning, &err);
    if (rs == WISDOM_READ_BAD)
        return cli_error("wisdom", "%s", err.message);
    if (rs == WISDOM_READ_MISSING && !strcmp(action, "import"))
        return cli_error("wisdom", "import: %s: no such file", file);
    if (!strcmp(action, "import") && wisdom_check_file(file, &err) != ATTN_OK) {
        wisdom_set_free(&set);
        return cli_error("wisdom", "import: %s", err.message);
    }
    if (warning[0])
        fprintf(stderr, "attnbench wisdom: %s\n", warning);
    int status = CLI_EXIT_OK;
    if (!strcmp(action, "export")) {
        if (wisdom_write_file(file, &set, &err) != ATTN_OK)
            status = cli_error("wisdom", "%s", err.message);
        else
            printf("exported %zu entr%s to %s\n", set.count, set.count == 1 ? "y" : "ies", file);
    } else if (set.count == 0) {
        status = cli_error("wisdom", "import: %s holds no wisdom for this machine and build",
                           file);
    } else if (wisdom_merge_into_file(path, &set, &err) != ATTN_OK) {
        status = cli_error("wisdom", "%s", err.message);
    } else {
        printf("imported %zu entr%s from %s into %s\n", set.count, set.count == 1 ? "y" : "ies",
               file, path);
    }
    wisdom_set_free(&set);
    return status;
}
