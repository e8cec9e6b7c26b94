/* cli_compare.c — `attnbench compare BASE NEW`: per benchmark, the time ratio NEW/BASE with a
 * confidence interval and a verdict (regressed, improved, unchanged, inconclusive) that noise
 * cannot fool and that says when the data cannot tell.
 *
 * Inputs: Google Benchmark JSON (the per-repetition entries; aggregates are ignored) or
 * attnbench result files (`run --format json`, `run --save`, `sweep`: each record's samples_s,
 * else its median_s alone).
 *
 * The statistics (stats.h): the headline is the ratio of medians; the test is Welch's t-test on
 * log times, whose 95% interval is that of the geometric-mean ratio; the p-values of all the
 * benchmarks compared (the whole kernel × shape matrix) go through Benjamini–Hochberg. A
 * benchmark has REGRESSED when all of these hold:
 *   1. its BH-adjusted p-value (q) is at most --fdr: the slowdown is not noise, with the
 *      expected share of false discoveries among everything flagged held at --fdr;
 *   2. the interval lies above 1: slower, at the stated confidence;
 *   3. the ratio of medians is at least 1 + threshold/2: the robust estimate agrees (one slow
 *      outlier moves a mean, not a median);
 *   4. the interval reaches 1 + threshold: the data do not show the slowdown to be smaller
 *      than the threshold (with enough repetitions, a real 2% slowdown against a 5% threshold
 *      is "unchanged", with a note that it is significant). A false discovery that BH lets
 *      through under pure noise is a small shift with a tight interval, so this condition and
 *      the third remove most of them, while a real slowdown of the threshold's size keeps its
 *      interval around 1 + threshold: on synthetic data (24 benchmarks, 5 reps, 2% noise) the
 *      chance of any false alarm is 0.7% per comparison; a 5% slowdown is flagged in 87% of
 *      benchmarks, a 10% one in all.
 * IMPROVED is the mirror image (ratios 1/(1 + ...)). Of the rest, a benchmark is UNCHANGED only
 * when its interval lies inside (1/(1 + threshold), 1 + threshold): the data exclude a change of
 * the threshold's size either way. Otherwise it is INCONCLUSIVE: the interval is too wide to tell
 * (a -4% change with an interval of [-34%, +46%] is not evidence of "no change"), and
 * scripts/perf-ab gives such benchmarks more rounds. Fewer than 2 samples on a side: no test,
 * "untested". Exit status 1 when anything regressed (or, with --fail-on inconclusive, was
 * inconclusive or untested), else 0; 2 on bad input. */
#include "cli.h"
#include "cli_commands.h"
#include "cli_compare_read.h"

#include "stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    C_THRESHOLD, C_FDR, C_CONFIDENCE, C_FORMAT, C_RENAME, C_PAIRED, C_STRICT, C_FAIL_ON, C_HELP, C_OPTION_COUNT
};
static const cli_option compare_options[C_OPTION_COUNT] = {
    [C_THRESHOLD] = {"threshold", "PCT", "smallest change worth a verdict, percent (default 5)"},
    [C_FDR] = {"fdr", "Q", "false-discovery rate over all benchmarks (default 0.05)"},
    [C_CONFIDENCE] = {"confidence", "PCT", "confidence of the intervals, percent (default 95)"},
    [C_FORMAT] = {"format", "text|markdown|json", "output format (default text)"},
    [C_RENAME] = {"rename", "OLD=NEW", "BASE's benchmark OLD is NEW's NEW (repeatable)"},
    [C_PAIRED] = {"paired", NULL, "samples were taken in matched rounds: paired t-test"},
    [C_STRICT] = {"strict", NULL, "refuse files of different (or unrecorded) machines"},
    [C_FAIL_ON] = {"fail-on", "regressed|inconclusive",
                   "exit 1 on a regression (default), or also on any inconclusive benchmark"},
    [C_HELP] = {"help", NULL, "this help"},
};

static const char *const methods[2] = {
    "ratio of medians NEW/BASE; interval and p-value from Welch's t-test on log times; "
    "Benjamini-Hochberg over all benchmarks compared",
    "ratio of medians NEW/BASE; interval and p-value from a paired t-test on the log "
    "ratios of matched rounds (outlier rounds left out: modified z-score > 3.5); "
    "Benjamini-Hochberg over all benchmarks compared"};

/* The same, wrapped for the text output's header. */
static const char *const methods_text[2] = {
    "Ratio of medians NEW/BASE; interval and p-value from Welch's t-test on log times;\n"
    "Benjamini-Hochberg over all benchmarks compared.",
    "Ratio of medians NEW/BASE; interval and p-value from a paired t-test on the log\n"
    "ratios of matched rounds (outlier rounds left out: modified z-score > 3.5);\n"
    "Benjamini-Hochberg over all benchmarks compared."};

static void print_compare_help(void)
{
    printf("usage: attnbench compare [options] BASE NEW\n\n"
           "Compares two benchmark results, benchmark by benchmark: Google Benchmark JSON\n"
           "(attnbench-gbench --benchmark_format=json; with --benchmark_repetitions the\n"
           "per-repetition entries are used, not the aggregates) or attnbench result files\n"
           "(run --format json, run --save, sweep: the per-rep samples_s of each record).\n"
           "\nFor each benchmark in both: the ratio of median times NEW/BASE, a confidence\n"
           "interval (95%% unless --confidence; Welch's t-test on log times, i.e. of the\n"
           "geometric-mean ratio), the p-value, its Benjamini-Hochberg adjustment q over all\n"
           "benchmarks compared, and a verdict. `regressed` needs q <= --fdr, the interval\n"
           "above 1, the median ratio at least 1 + threshold/2, and the interval reaching\n"
           "1 + threshold (the data do not show the slowdown smaller than the threshold);\n"
           "`improved` mirrors it\n"
           "(with ratios 1/(1 + ...)). Of the rest, `unchanged` needs the interval inside\n"
           "(-threshold, +threshold): the data exclude a change of the threshold's size;\n"
           "otherwise the verdict is `inconclusive` (too few or too noisy samples to tell;\n"
           "scripts/perf-ab adds rounds to those, and asks its interim looks for a wider\n"
           "interval: see its --help). A benchmark with fewer than 2 samples on a\n"
           "side is `untested`. Benchmarks found on one side only are listed (--rename maps a renamed\n"
           "one), and so are entries that report an error.\n"
           "--paired: the i-th samples of a benchmark in BASE and NEW were taken in the same\n"
           "round (scripts/perf-ab, which runs BASE and NEW alternately); the test is then a\n"
           "paired t-test on log(new_i/base_i), so drift of the machine between rounds cancels;\n"
           "a round whose ratio is an outlier among the rounds' (Iglewicz-Hoaglin modified\n"
           "z-score > 3.5: a burst of load on one side) is left out, with a note; at most one\n"
           "round in five (one below 10 rounds).\n"
           "A benchmark whose sample counts differ falls back to Welch's test, with a note.\n"
           "Files of two different machines (their machine ids) are compared with a warning;\n"
           "--strict refuses them, and a file that records no machine id.\n"
           "\noptions:\n");
    cli_print_options(stdout, compare_options, C_OPTION_COUNT);
    printf("\nexit status: 0 nothing regressed, 1 something regressed (--fail-on inconclusive:\n"
           "or was inconclusive or untested), 2 bad input (unreadable or malformed file, no\n"
           "benchmark in common).\n");
}

/* ---- the comparison ------------------------------------------------------------------------- */

typedef enum verdict { REGRESSED, IMPROVED, INCONCLUSIVE, UNCHANGED, UNTESTED, VERDICTS } verdict;
static const char *const verdict_names[VERDICTS] = {"regressed", "improved", "inconclusive",
                                                    "unchanged", "untested"};
/* The rule, as every output's header states it. */
static const char rule_text[] =
    "regressed/improved: q <= FDR, the interval beyond 1, the median change at least half "
    "the threshold and the interval reaching the threshold; unchanged: the interval inside "
    "+-threshold; inconclusive: neither (more samples needed)";

typedef struct comparison {
    const char *name; /* NEW's name */
    const char *base_name;
    const series *base, *new_;
    double base_median, new_median, ratio;
    bool tested;
    stats_welch welch;
    double q;
    verdict verdict;
    const char *note;
    size_t order;   /* position in BASE */
    size_t dropped; /* --paired: outlier rounds left out of the test */
} comparison;

typedef struct compare_config {
    double threshold, fdr;
    double confidence; /* of the intervals; perf-ab's interim looks ask for more (its stops) */
    enum { OUT_TEXT, OUT_MARKDOWN, OUT_JSON } format;
    const char **renames; /* "OLD=NEW" texts */
    int rename_count;
    const char *base_path, *new_path;
    bool paired;
    bool strict; /* --strict: refuse files of different or unrecorded machines */
    bool fail_on_inconclusive; /* --fail-on inconclusive */
} compare_config;

/* BASE's name as NEW calls it, after --rename. */
static const char *renamed(const compare_config *c, const char *name, char *buf, size_t len)
{
    for (int i = 0; i < c->rename_count; i++) {
        const char *eq = strchr(c->renames[i], '=');
        if (strlen(name) == (size_t)(eq - c->renames[i]) &&
            !strncmp(name, c->renames[i], (size_t)(eq - c->renames[i]))) {
            snprintf(buf, len, "%s", eq + 1);
            return buf;
        }
    }
    return name;
}

static void decide(comparison *x, const compare_config *c)
{
    const double t = c->threshold;
    x->verdict = UNCHANGED;
    if (!x->tested) {
        x->verdict = UNTESTED;
        x->note = "under 2 samples a side";
        return;
    }
    const stats_welch *w = &x->welch;
    const bool significant = x->q <= c->fdr;
    if (significant && w->lo > 1 && x->ratio >= 1 + t / 2 && w->hi >= 1 + t)
        x->verdict = REGRESSED;
    else if (significant && w->hi < 1 && x->ratio <= 1 / (1 + t / 2) && w->lo <= 1 / (1 + t))
        x->verdict = IMPROVED;
    else if (w->lo > 1 / (1 + t) && w->hi < 1 + t) {
        if (significant && !x->note)
            x->note = "significant, under threshold";
    } else {
        x->verdict = INCONCLUSIVE;
        if (!x->note)
            x->note = "interval too wide";
    }
}

/* Regressed first (largest slowdown first), then improved, inconclusive, unchanged, untested,
 * each in BASE's order. */
static int compare_rows(const void *a, const void *b)
{
    const comparison *x = a, *y = b;
    if (x->verdict != y->verdict)
        return (int)x->verdict - (int)y->verdict;
    if (x->verdict == REGRESSED && x->ratio != y->ratio)
        return x->ratio < y->ratio ? 1 : -1;
    return (x->order > y->order) - (x->order < y->order);
}

/* ---- output --------------------------------------------------------------------------------- */

static void format_time(char *buf, size_t len, double seconds)
{
    static const struct { double scale; const char *unit; } units[] = {
        {1, "s"}, {1e-3, "ms"}, {1e-6, "us"}, {1e-9, "ns"}};
    size_t u = 0;
    while (u + 1 < sizeof units / sizeof units[0] && seconds < units[u].scale)
        u++;
    snprintf(buf, len, "%.4g %s", seconds / units[u].scale, units[u].unit);
}

static void format_change(char *buf, size_t len, double ratio)
{
    const double pct = (ratio - 1) * 100;
    snprintf(buf, len, fabs(pct) < 100 ? "%+.1f%%" : "%+.0f%%", pct);
}

static void format_interval(char *buf, size_t len, const comparison *x)
{
    if (!x->tested) {
        snprintf(buf, len, "-");
        return;
    }
    char lo[24], hi[24];
    format_change(lo, sizeof lo, x->welch.lo);
    format_change(hi, sizeof hi, x->welch.hi);
    snprintf(buf, len, "[%s,%s]", lo, hi);
}

/* The printed cells of one comparison, shared by the text and Markdown tables. */
typedef struct row_text {
    char base[32], new_[32], change[32], interval[80];
} row_text;

static row_text row_text_of(const comparison *x)
{
    row_text r;
    format_time(r.base, sizeof r.base, x->base_median);
    format_time(r.new_, sizeof r.new_, x->new_median);
    format_change(r.change, sizeof r.change, x->ratio);
    format_interval(r.interval, sizeof r.interval, x);
    return r;
}

typedef struct summary {
    char machine_warning[400]; /* empty when both files come from one machine */
    size_t counts[VERDICTS];
    const result_set *base, *new_;
    const char **only_base, **only_new;
    size_t only_base_count, only_new_count;
} summary;

static void print_list(FILE *out, const char *title, const char *const *names, size_t count,
                       bool markdown)
{
    if (!count)
        return;
    fprintf(out, "%s%s (%zu):", markdown ? "\n**" : "\n", title, count);
    if (markdown)
        fputs("**", out);
    for (size_t i = 0; i < count; i++)
        fprintf(out, markdown ? "%s`%s`" : "%s%s", i ? ", " : " ", names[i]);
    fputc('\n', out);
}

static void print_notes(FILE *out, const summary *s, bool markdown)
{
    print_list(out, "only in BASE (removed or renamed; --rename OLD=NEW maps one)",
               (const char *const *)s->only_base, s->only_base_count, markdown);
    print_list(out, "only in NEW (added or renamed)", (const char *const *)s->only_new,
               s->only_new_count, markdown);
    print_list(out, "errors reported in BASE", (const char *const *)s->base->errors,
               s->base->error_count, markdown);
    print_list(out, "errors reported in NEW", (const char *const *)s->new_->errors,
               s->new_->error_count, markdown);
}

static bool print_text(const comparison *rows, size_t n, const summary *s,
                       const compare_config *c)
{
    printf("%zu benchmarks compared: %zu regressed, %zu improved, %zu inconclusive, "
           "%zu unchanged", n, s->counts[REGRESSED], s->counts[IMPROVED],
           s->counts[INCONCLUSIVE], s->counts[UNCHANGED]);
    if (s->counts[UNTESTED])
        printf(", %zu untested", s->counts[UNTESTED]);
    printf("\nthreshold %g%%, FDR %g, %g%% intervals; %s.\n", c->threshold * 100, c->fdr,
           c->confidence * 100, rule_text);
    /* (cli_text_end wraps these lines to 100 columns) */
    printf("%s\n\n", methods_text[c->paired]);
    if (s->machine_warning[0])
        printf("warning: %s\n\n", s->machine_warning);
    cli_table t;
    /* Narrow by default: the sample counts and q with --wide (q: in JSON and Markdown too). */
    const bool wide = cli_table_wide;
    cli_table_init(&t, wide ? 8 : 7, wide ? "lrrrlrll" : "lrrrlll");
    static const char *const header[] = {"benchmark", "base", "new", "change", "%g%% CI",
                                         "q", "verdict", "note"};
    for (int i = 0; i < 8; i++)
        if (wide || i != 5)
            cli_table_add(&t, header[i], c->confidence * 100);
    for (size_t i = 0; i < n; i++) {
        const comparison *x = &rows[i];
        const row_text r = row_text_of(x);
        cli_table_add(&t, "%s", x->name);
        if (wide) {
            cli_table_add(&t, "%s (%zu)", r.base, x->base->count);
            cli_table_add(&t, "%s (%zu)", r.new_, x->new_->count);
        } else {
            cli_table_add(&t, "%s", r.base);
            cli_table_add(&t, "%s", r.new_);
        }
        cli_table_add(&t, "%s", r.change);
        cli_table_add(&t, "%s", r.interval);
        if (wide && x->tested)
            cli_table_add(&t, "%.2g", x->q);
        else if (wide)
            cli_table_add(&t, "-");
        cli_table_add(&t, "%s", verdict_names[x->verdict]);
        cli_table_add(&t, "%s", x->note ? x->note : "");
    }
    const bool ok = cli_table_print(&t, stdout);
    cli_table_free(&t);
    print_notes(stdout, s, false);
    return ok;
}

static void print_markdown(const comparison *rows, size_t n, const summary *s,
                           const compare_config *c)
{
    printf("### Performance: %zu regressed, %zu improved, %zu inconclusive, %zu unchanged",
           s->counts[REGRESSED], s->counts[IMPROVED], s->counts[INCONCLUSIVE],
           s->counts[UNCHANGED]);
    if (s->counts[UNTESTED])
        printf(", %zu untested", s->counts[UNTESTED]);
    printf("\n\n%zu benchmarks in both `%s` (BASE) and `%s` (NEW); threshold %g%%, "
           "false-discovery rate %g, %g%% intervals. Rule: %s. Method: %s.\n\n",
           n, c->base_path, c->new_path, c->threshold * 100, c->fdr, c->confidence * 100,
           rule_text, methods[c->paired]);
    if (s->machine_warning[0])
        printf("> **Warning:** %s\n\n", s->machine_warning);
    printf("| benchmark | base | new | change | %g%% CI | q | verdict |\n"
           "|---|---:|---:|---:|---|---:|---|\n", c->confidence * 100);
    for (size_t i = 0; i < n; i++) {
        const comparison *x = &rows[i];
        const row_text r = row_text_of(x);
        const bool strong = x->verdict == REGRESSED || x->verdict == IMPROVED;
        printf("| `%s` | %s | %s | %s | %s | ", x->name, r.base, r.new_, r.change, r.interval);
        if (x->tested)
            printf("%.2g", x->q);
        else
            printf("-");
        printf(" | %s%s%s%s%s |\n", strong ? "**" : "", verdict_names[x->verdict],
               strong ? "**" : "", x->note ? ": " : "", x->note ? x->note : "");
    }
    print_notes(stdout, s, true);
}

static json_t *name_list_json(char *const *names, size_t count)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < count; i++)
        if (json_array_append_new(list, json_string(names[i]))) {
            json_decref(list);
            return NULL;
        }
    return list;
}

static bool print_json(const comparison *rows, size_t n, const summary *s,
                       const compare_config *c)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        const comparison *x = &rows[i];
        json_t *row = json_pack(
            "{s:s, s:s, s:{s:I, s:f}, s:{s:I, s:f}, s:f, s:o, s:o, s:o, s:o, s:s, s:o, s:I}",
            "name",
            x->name, "base_name", x->base_name, "base", "n", (json_int_t)x->base->count,
            "median_s", x->base_median, "new", "n", (json_int_t)x->new_->count, "median_s",
            x->new_median, "ratio", x->ratio, "ci_low",
            x->tested ? cli_json_real(x->welch.lo) : json_null(), "ci_high",
            x->tested ? cli_json_real(x->welch.hi) : json_null(), "p",
            x->tested ? cli_json_real(x->welch.p) : json_null(), "q",
            x->tested ? cli_json_real(x->q) : json_null(), "verdict", verdict_names[x->verdict],
            "note", x->note ? json_string(x->note) : json_null(), "rounds_left_out",
            (json_int_t)x->dropped);
        if (json_array_append_new(list, row)) {
            json_decref(list);
            list = NULL;
        }
    }
    json_t *root = json_pack(
        "{s:s, s:s, s:s, s:f, s:f, s:f, s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I}, s:o, s:o, "
        "s:o, s:o, s:o}",
        "tool", "attnbench " ATTN_VERSION_STRING, "base", c->base_path, "new", c->new_path,
        "threshold", c->threshold, "fdr", c->fdr, "confidence", c->confidence, "method",
        methods[c->paired], "rule", rule_text, "fail_on",
        c->fail_on_inconclusive ? "inconclusive" : "regressed", "summary", "regressed",
        (json_int_t)s->counts[REGRESSED], "improved", (json_int_t)s->counts[IMPROVED],
        "inconclusive", (json_int_t)s->counts[INCONCLUSIVE], "unchanged",
        (json_int_t)s->counts[UNCHANGED],
        "untested", (json_int_t)s->counts[UNTESTED], "benchmarks", list, "only_in_base",
        name_list_json((char *const *)s->only_base, s->only_base_count), "only_in_new",
        name_list_json((char *const *)s->only_new, s->only_new_count), "errors_in_base",
        name_list_json(s->base->errors, s->base->error_count), "errors_in_new",
        name_list_json(s->new_->errors, s->new_->error_count));
    if (root && (json_object_set_new(root, "machine_ids", json_pack(
                     "{s:s?, s:s?}", "base", s->base->machine_id, "new", s->new_->machine_id)) ||
                 json_object_set_new(root, "warning", s->machine_warning[0]
                                                          ? json_string(s->machine_warning)
                                                          : json_null()))) {
        json_decref(root);
        root = NULL;
    }
    const bool ok = root && cli_json_print(root);
    json_decref(root);
    return ok;
}

/* Whether BASE and NEW come from one machine: a warning in s when they differ (on stderr too),
 * and with --strict a refusal, as for a file that records no machine id. */
static int check_machines(const compare_config *c, const result_set *base,
                          const result_set *new_, summary *s)
{
    const result_set *unknown = !base->machine_id ? base : !new_->machine_id ? new_ : NULL;
    if (unknown)
        return c->strict ? cli_error("compare", "--strict: %s records no machine id (a run, "
                                     "sweep or attnbench-gbench file has one)", unknown->path)
                         : -1;
    if (!strcmp(base->machine_id, new_->machine_id))
        return -1;
    snprintf(s->machine_warning, sizeof s->machine_warning,
             "BASE and NEW come from different machines (%s: %.80s, id %s; %s: %.80s, id %s): "
             "the ratios compare the machines as much as the code", base->path,
             base->cpu ? base->cpu : "unknown CPU", base->machine_id, new_->path,
             new_->cpu ? new_->cpu : "unknown CPU", new_->machine_id);
    if (c->strict)
        return cli_error("compare", "--strict: %s", s->machine_warning);
    fprintf(stderr, "attnbench compare: warning: %s\n", s->machine_warning);
    return -1;
}

/* ---- the command ---------------------------------------------------------------------------- */

static bool parse_number(const char *flag, const char *text, double min, double max,
                         bool percent, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (percent && *end == '%')
        end++;
    if (!text[0] || *end || errno || !(v > min && v < max)) {
        cli_error("compare", "--%s: '%s' is not a number in (%g, %g)", flag, text, min, max);
        return false;
    }
    *out = percent ? v / 100 : v;
    return true;
}

static int parse_compare_options(int argc, char **argv, compare_config *c)
{
    *c = (compare_config){.threshold = 0.05, .fdr = 0.05, .confidence = 0.95,
                          .format = OUT_TEXT};
    c->renames = malloc((size_t)argc * sizeof *c->renames);
    if (!c->renames)
        return cli_error("compare", "out of memory");
    const char *value;
    int o;
    while ((o = cli_next_option("compare", argc, argv, compare_options, C_OPTION_COUNT,
                                &value)) != CLI_OPTION_END) {
        switch (o) {
        case C_THRESHOLD:
            if (!parse_number("threshold", value, 0, 1000, true, &c->threshold))
                return CLI_EXIT_USAGE;
            break;
        case C_FDR:
            if (!parse_number("fdr", value, 0, 1, false, &c->fdr))
                return CLI_EXIT_USAGE;
            break;
        case C_CONFIDENCE:
            if (!parse_number("confidence", value, 0, 100, true, &c->confidence))
                return CLI_EXIT_USAGE;
            break;
        case C_FORMAT:
            if (!strcmp(value, "text"))
                c->format = OUT_TEXT;
            else if (!strcmp(value, "markdown") || !strcmp(value, "md"))
                c->format = OUT_MARKDOWN;
            else if (!strcmp(value, "json"))
                c->format = OUT_JSON;
            else
                return cli_error("compare", "--format: '%s' is not text, markdown or json",
                                 value);
            break;
        case C_RENAME: {
            const char *eq = strchr(value, '=');
            if (!eq || eq == value || !eq[1])
                return cli_error("compare", "--rename: '%s' is not OLD=NEW", value);
            c->renames[c->rename_count++] = value;
            break;
        }
        case C_PAIRED: c->paired = true; break;
        case C_STRICT: c->strict = true; break;
        case C_FAIL_ON:
            if (strcmp(value, "regressed") && strcmp(value, "inconclusive"))
                return cli_error("compare", "--fail-on: '%s' is not regressed or inconclusive",
                                 value);
            c->fail_on_inconclusive = !strcmp(value, "inconclusive");
            break;
        case C_HELP: print_compare_help(); return CLI_EXIT_OK;
        default: return CLI_EXIT_USAGE;
        }
    }
    return -1;
}

/* Whether arg is one of compare's options that takes its value as the next argument. */
static bool takes_separate_value(const char *arg)
{
    if (arg[0] != '-' || arg[1] != '-' || strchr(arg, '='))
        return false;
    for (int i = 0; i < C_OPTION_COUNT; i++)
        if (compare_options[i].metavar && !strcmp(arg + 2, compare_options[i].name))
            return true;
    return false;
}

int cli_compare(int argc, char **argv)
{
    /* The two files are taken out first (options may come before, between or after them), so
     * cli_next_option sees only options. */
    const char *files[2];
    int file_count = 0;
    char **rest = malloc(((size_t)argc + 1) * sizeof *rest);
    if (!rest)
        return cli_error("compare", "out of memory");
    int rest_count = 0;
    for (int i = 0; i < argc; i++) {
        if (i == 0 || argv[i][0] == '-') {
            rest[rest_count++] = argv[i];
            if (i > 0 && takes_separate_value(argv[i]) && i + 1 < argc)
                rest[rest_count++] = argv[++i];
        } else if (file_count < 2) {
            files[file_count++] = argv[i];
        } else {
            free(rest);
            return cli_error("compare", "unexpected argument '%s' (two files: BASE NEW)",
                             argv[i]);
        }
    }
    rest[rest_count] = NULL;
    compare_config c;
    int status = parse_compare_options(rest_count, rest, &c);
    if (status >= 0) {
        free(c.renames);
        free(rest);
        return status;
    }
    if (file_count != 2) {
        free(c.renames);
        free(rest);
        return cli_error("compare", "two files are needed: BASE NEW (see --help)");
    }
    c.base_path = files[0];
    c.new_path = files[1];

    result_set base, new_;
    status = read_results(c.base_path, &base);
    if (status < 0)
        status = read_results(c.new_path, &new_);
    else
        new_ = (result_set){0};
    comparison *rows = NULL;
    summary s = {.base = &base, .new_ = &new_};
    double *p = NULL;
    if (status < 0)
        status = check_machines(&c, &base, &new_, &s);
    if (status < 0) {
        rows = calloc(base.count + 1, sizeof *rows);
        s.only_base = calloc(base.count + 1, sizeof *s.only_base);
        s.only_new = calloc(new_.count + 1, sizeof *s.only_new);
        p = calloc(base.count + 1, sizeof *p);
        if (!rows || !s.only_base || !s.only_new || !p)
            status = cli_error("compare", "out of memory");
    }
    size_t n = 0, tested = 0;
    bool *matched = status < 0 ? calloc(new_.count + 1, sizeof *matched) : NULL;
    if (status < 0 && !matched)
        status = cli_error("compare", "out of memory");
    char buf[512];
    for (size_t i = 0; status < 0 && i < base.count; i++) {
        const char *name = renamed(&c, base.items[i].name, buf, sizeof buf);
        const series *other = find_series(&new_, name);
        if (!other) {
            s.only_base[s.only_base_count++] = base.items[i].name;
            continue;
        }
        matched[other - new_.items] = true;
        comparison *x = &rows[n++];
        *x = (comparison){.name = other->name, .base_name = base.items[i].name,
                          .base = &base.items[i], .new_ = other, .order = i};
        x->base_median = stats_median(x->base->samples, x->base->count);
        x->new_median = stats_median(other->samples, other->count);
        if (isnan(x->base_median) || isnan(x->new_median)) {
            status = cli_error("compare", "out of memory");
            break;
        }
        x->ratio = x->new_median / x->base_median;
        if (c.paired && x->base->count == other->count) {
            x->tested = stats_paired_log(x->base->samples, other->samples, other->count,
                                         c.confidence, &x->welch, &x->dropped);
            if (x->dropped)
                x->note = "outlier rounds left out";
        }
        else
            x->tested = stats_welch_log(x->base->samples, x->base->count, other->samples,
                                        other->count, c.confidence, &x->welch);
        if (c.paired && x->base->count != other->count)
            x->note = "counts differ: Welch test";
        if (x->tested)
            p[tested++] = x->welch.p;
    }
    for (size_t i = 0; status < 0 && i < new_.count; i++)
        if (!matched[i])
            s.only_new[s.only_new_count++] = new_.items[i].name;
    if (status < 0 && n == 0)
        status = cli_error("compare", "%s and %s have no benchmark in common (%zu and %zu "
                           "benchmarks)", c.base_path, c.new_path, base.count, new_.count);
    if (status < 0 && !stats_bh_adjust(p, tested, p))
        status = cli_error("compare", "out of memory");
    if (status < 0) {
        for (size_t i = 0, k = 0; i < n; i++) {
            rows[i].q = rows[i].tested ? p[k++] : NAN;
            decide(&rows[i], &c);
            s.counts[rows[i].verdict]++;
        }
        qsort(rows, n, sizeof *rows, compare_rows);
        bool ok = true;
        switch (c.format) {
        case OUT_TEXT:
            cli_text_begin(); /* the header's lines wrap to 100 columns */
            ok = print_text(rows, n, &s, &c);
            ok = cli_text_end() && ok;
            break;
        case OUT_MARKDOWN: print_markdown(rows, n, &s, &c); break;
        case OUT_JSON: ok = print_json(rows, n, &s, &c); break;
        }
        const bool failed = s.counts[REGRESSED] ||
                            (c.fail_on_inconclusive &&
                             (s.counts[INCONCLUSIVE] || s.counts[UNTESTED]));
        status = !ok ? cli_error("compare", "out of memory or output error")
                 : failed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
    }
    free(matched);
    free(p);
    free(rows);
    free(s.only_base);
    free(s.only_new);
    result_set_free(&base);
    result_set_free(&new_);
    free(c.renames);
    free(rest);
    return status;
}

