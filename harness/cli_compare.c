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

#include "stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    C_THRESHOLD, C_FDR, C_FORMAT, C_RENAME, C_PAIRED, C_STRICT, C_FAIL_ON, C_HELP, C_OPTION_COUNT
};
static const cli_option compare_options[C_OPTION_COUNT] = {
    [C_THRESHOLD] = {"threshold", "PCT", "smallest change worth a verdict, percent (default 5)"},
    [C_FDR] = {"fdr", "Q", "false-discovery rate over all benchmarks (default 0.05)"},
    [C_FORMAT] = {"format", "text|markdown|json", "output format (default text)"},
    [C_RENAME] = {"rename", "OLD=NEW", "BASE's benchmark OLD is NEW's NEW (repeatable)"},
    [C_PAIRED] = {"paired", NULL, "samples were taken in matched rounds: paired t-test"},
    [C_STRICT] = {"strict", NULL, "refuse files of different (or unrecorded) machines"},
    [C_FAIL_ON] = {"fail-on", "regressed|inconclusive",
                   "exit 1 on a regression (default), or also on any inconclusive benchmark"},
    [C_HELP] = {"help", NULL, "this help"},
};

static const double confidence = 0.95;
static const char *const methods[2] = {
    "ratio of medians NEW/BASE; 95% interval and p-value from Welch's t-test on log times; "
    "Benjamini-Hochberg over all benchmarks compared",
    "ratio of medians NEW/BASE; 95% interval and p-value from a paired t-test on the log "
    "ratios of matched rounds (outlier rounds left out: modified z-score > 3.5); "
    "Benjamini-Hochberg over all benchmarks compared"};

/* The same, wrapped for the text output's header. */
static const char *const methods_text[2] = {
    "Ratio of medians NEW/BASE; 95% interval and p-value from Welch's t-test on log times;\n"
    "Benjamini-Hochberg over all benchmarks compared.",
    "Ratio of medians NEW/BASE; 95% interval and p-value from a paired t-test on the log\n"
    "ratios of matched rounds (outlier rounds left out: modified z-score > 3.5);\n"
    "Benjamini-Hochberg over all benchmarks compared."};

static void print_compare_help(void)
{
    printf("usage: attnbench compare [options] BASE NEW\n\n"
           "Compares two benchmark results, benchmark by benchmark: Google Benchmark JSON\n"
           "(attnbench-gbench --benchmark_format=json; with --benchmark_repetitions the\n"
           "per-repetition entries are used, not the aggregates) or attnbench result files\n"
           "(run --format json, run --save, sweep: the per-rep samples_s of each record).\n"
           "\nFor each benchmark in both: the ratio of median times NEW/BASE, a 95%% confidence\n"
           "interval (Welch's t-test on log times, i.e. of the geometric-mean ratio), the\n"
           "p-value, its Benjamini-Hochberg adjustment q over all benchmarks compared, and a\n"
           "verdict. `regressed` needs q <= --fdr, the interval above 1, the median ratio at\n"
           "least 1 + threshold/2, and the interval reaching 1 + threshold (the\n"
           "data do not show the slowdown smaller than the threshold); `improved` mirrors it\n"
           "(with ratios 1/(1 + ...)). Of the rest, `unchanged` needs the interval inside\n"
           "(-threshold, +threshold): the data exclude a change of the threshold's size;\n"
           "otherwise the verdict is `inconclusive` (too few or too noisy samples to tell;\n"
           "scripts/perf-ab adds rounds to those). A benchmark with fewer than 2 samples on a\n"
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

/* ---- reading the files ---------------------------------------------------------------------- */

typedef struct series {
    char *name;
    double *samples; /* seconds */
    size_t count, capacity;
    json_int_t *repetitions; /* Google Benchmark: each sample's repetition_index, else -1 */
    size_t repetitions_capacity;
    size_t record; /* attnbench files: index of the record it came from */
} series;

typedef struct result_set {
    const char *path;
    const char *format; /* "Google Benchmark" or "attnbench" */
    series *items;
    size_t count, capacity;
    char **errors; /* "name: message" of entries that reported an error */
    size_t error_count;
    char *machine_id, *cpu; /* the machine's, when the file records it; else NULL */
} result_set;

static void result_set_free(result_set *r)
{
    for (size_t i = 0; i < r->count; i++) {
        free(r->items[i].name);
        free(r->items[i].samples);
        free(r->items[i].repetitions);
    }
    free(r->items);
    for (size_t i = 0; i < r->error_count; i++)
        free(r->errors[i]);
    free(r->errors);
    free(r->machine_id);
    free(r->cpu);
}

static series *find_series(const result_set *r, const char *name)
{
    for (size_t i = 0; i < r->count; i++)
        if (!strcmp(r->items[i].name, name))
            return &r->items[i];
    return NULL;
}

/* Room for one more element in a growing array of `count` elements (doubling from `first`);
 * false on OOM, the array left as it was. */
static bool reserve_one(void **items, size_t count, size_t *capacity, size_t size, size_t first)
{
    if (count < *capacity)
        return true;
    const size_t grown = *capacity ? 2 * *capacity : first;
    void *p = realloc(*items, grown * size);
    if (!p)
        return false;
    *items = p;
    *capacity = grown;
    return true;
}

/* Appends a sample (of that repetition_index, -1: none) to the series of that name (created on
 * first use); false on OOM. */
static bool add_sample(result_set *r, const char *name, double seconds, json_int_t repetition)
{
    series *s = find_series(r, name);
    if (!s) {
        void *items = r->items;
        const bool room = reserve_one(&items, r->count, &r->capacity, sizeof *r->items, 32);
        r->items = items;
        if (!room)
            return false;
        s = &r->items[r->count];
        *s = (series){.name = strdup(name)};
        if (!s->name)
            return false;
        r->count++;
    }
    void *samples = s->samples, *repetitions = s->repetitions;
    const bool room = reserve_one(&samples, s->count, &s->capacity, sizeof *s->samples, 8) &&
                      reserve_one(&repetitions, s->count, &s->repetitions_capacity,
                                  sizeof *s->repetitions, 8);
    s->samples = samples;
    s->repetitions = repetitions;
    if (!room)
        return false;
    s->samples[s->count] = seconds;
    s->repetitions[s->count++] = repetition;
    return true;
}

static bool has_repetition(const series *s, json_int_t repetition)
{
    for (size_t i = 0; s && i < s->count; i++)
        if (s->repetitions[i] == repetition)
            return true;
    return false;
}

static bool add_error(result_set *r, const char *name, const char *message)
{
    char **errors = realloc(r->errors, (r->error_count + 1) * sizeof *errors);
    if (!errors)
        return false;
    r->errors = errors;
    if (asprintf(&r->errors[r->error_count], "%s: %s", name, message) < 0)
        return false;
    r->error_count++;
    return true;
}

/* Seconds per unit of Google Benchmark's time_unit; 0 when unknown. */
static double unit_seconds(const char *unit)
{
    static const struct { const char *name; double seconds; } units[] = {
        {"ns", 1e-9}, {"us", 1e-6}, {"ms", 1e-3}, {"s", 1.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(unit, units[i].name))
            return units[i].seconds;
    return 0;
}

static bool positive_time(double seconds) { return isfinite(seconds) && seconds > 0; }

/* Google Benchmark: every entry of "benchmarks" that is a measured run (not an aggregate). */
static int read_gbench(const json_t *benchmarks, result_set *r)
{
    size_t i;
    const json_t *entry;
    json_array_foreach(benchmarks, i, entry) {
        const char *name = json_string_value(json_object_get(entry, "name"));
        const char *run_name = json_string_value(json_object_get(entry, "run_name"));
        const char *run_type = json_string_value(json_object_get(entry, "run_type"));
        if (!json_is_object(entry) || !name)
            return cli_error("compare", "%s: benchmarks[%zu] has no name", r->path, i);
        if ((run_type && !strcmp(run_type, "aggregate")) || json_object_get(entry,
                                                                            "aggregate_name"))
            continue;
        const char *key = run_name ? run_name : name;
        if (json_is_true(json_object_get(entry, "error_occurred"))) {
            const char *message = json_string_value(json_object_get(entry, "error_message"));
            if (!add_error(r, key, message ? message : "error"))
                return cli_error("compare", "out of memory");
            continue;
        }
        const json_t *time = json_object_get(entry, "real_time");
        const char *unit_name = json_string_value(json_object_get(entry, "time_unit"));
        const double unit = unit_seconds(unit_name ? unit_name : "ns");
        if (!json_is_number(time) || unit == 0)
            return cli_error("compare", "%s: benchmark %s: no real_time%s", r->path, key,
                             unit == 0 ? " in a known time_unit" : "");
        const double seconds = json_number_value(time) * unit;
        if (!positive_time(seconds))
            return cli_error("compare", "%s: benchmark %s: real_time %g is not a positive time",
                             r->path, key, json_number_value(time));
        /* Repetitions of a benchmark are its samples; one repetition twice is a file pasted
         * together, refused rather than merged. */
        const json_t *index = json_object_get(entry, "repetition_index");
        const json_int_t repetition = json_is_integer(index) ? json_integer_value(index) : -1;
        if (repetition >= 0 && has_repetition(find_series(r, key), repetition))
            return cli_error("compare", "%s: benchmarks[%zu] repeats repetition_index %lld of %s",
                             r->path, i, (long long)repetition, key);
        if (!add_sample(r, key, seconds, repetition))
            return cli_error("compare", "out of memory");
    }
    return -1;
}

/* A JSON value as the file has it, cut short, for messages ("missing" when absent). */
static const char *value_text(const json_t *x, char *buf, size_t len)
{
    char *text = x ? json_dumps(x, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    snprintf(buf, len, "%.40s%s", x ? (text ? text : "?") : "missing",
             text && strlen(text) > 40 ? "..." : "");
    free(text);
    return buf;
}

/* Checks a record's identifying fields: NULL when they are fine, else the bad field's name
 * (relative to the record), with what it should be in *expected and its value (NULL: missing)
 * in *value. */
static const char *record_invalid(const json_t *record, const char **expected,
                                  const json_t **value)
{
    static const char *const dims[][2] = {
        {"batch", "shape.batch"},   {"heads_q", "shape.heads_q"}, {"heads_kv", "shape.heads_kv"},
        {"len_q", "shape.len_q"},   {"len_kv", "shape.len_kv"},   {"head_dim", "shape.head_dim"}};
    const json_t *shape = json_object_get(record, "shape"), *x;
    const char *variant = json_string_value(*value = json_object_get(record, "variant"));
    *expected = "a variant name";
    if (!variant || !*variant)
        return "variant";
    *expected = "an object";
    if (!json_is_object(*value = shape))
        return "shape";
    *expected = "an integer >= 1";
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++) {
        x = *value = json_object_get(shape, dims[i][0]);
        if (!json_is_integer(x) || json_integer_value(x) < 1)
            return dims[i][1];
    }
    x = *value = json_object_get(record, "threads");
    if (!json_is_integer(x) || json_integer_value(x) < 1)
        return "threads";
    *expected = "true or false";
    x = *value = json_object_get(shape, "causal");
    if (x && !json_is_boolean(x))
        return "shape.causal";
    *expected = "\"bhld\" or \"blhd\"";
    x = *value = json_object_get(shape, "layout");
    const char *layout = json_string_value(x);
    if (x && (!layout || (strcmp(layout, "bhld") && strcmp(layout, "blhd"))))
        return "shape.layout";
    *expected = "a type name";
    x = *value = json_object_get(record, "dtype");
    if (x && !json_is_string(x))
        return "dtype";
    return NULL;
}

/* An attnbench record's benchmark name (record_invalid first), in attnbench-gbench's style:
 * VARIANT/B1.Hq8.Hkv8.Lq1024.Lk1024.d64[.causal][.blhd][.kvlens][.mask][.bf16|.f16]/tTHREADS. */
static bool record_name(const json_t *record, char *buf, size_t len)
{
    const char *variant = json_string_value(json_object_get(record, "variant"));
    const json_t *shape = json_object_get(record, "shape");
    const json_t *threads = json_object_get(record, "threads");
    static const char *const dims[] = {"batch", "heads_q", "heads_kv", "len_q", "len_kv",
                                       "head_dim"};
    static const char *const labels[] = {"B", "Hq", "Hkv", "Lq", "Lk", "d"};
    size_t used = (size_t)snprintf(buf, len, "%s/", variant);
    for (int i = 0; i < 6 && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s%lld", i ? "." : "", labels[i],
                                 (long long)json_integer_value(json_object_get(shape, dims[i])));
    const char *layout = json_string_value(json_object_get(shape, "layout"));
    const bool flags[4] = {json_is_true(json_object_get(shape, "causal")),
                           layout && !strcmp(layout, "blhd"),
                           json_is_array(json_object_get(shape, "kv_lens")),
                           json_is_string(json_object_get(shape, "mask"))};
    static const char *const flag_names[4] = {".causal", ".blhd", ".kvlens", ".mask"};
    for (int i = 0; i < 4 && used < len; i++)
        if (flags[i])
            used += (size_t)snprintf(buf + used, len - used, "%s", flag_names[i]);
    /* The input type, when not float32, so records of different types never pair. */
    const char *dtype = json_string_value(json_object_get(record, "dtype"));
    if (dtype && strcmp(dtype, "f32") && used < len)
        used += (size_t)snprintf(buf + used, len - used, ".%s", dtype);
    if (used < len)
        used += (size_t)snprintf(buf + used, len - used, "/t%lld",
                                 (long long)json_integer_value(threads));
    return used < len;
}

/* attnbench: every record of "results", its samples_s (else its median_s). A record repeating
 * an earlier one's benchmark is refused: merging two runs' samples silently would test a
 * mixture (compare two files instead). */
static int read_attnbench(const json_t *results, result_set *r)
{
    size_t i;
    const json_t *record;
    char v[64];
    json_array_foreach(results, i, record) {
        char name[512];
        const char *expected, *field;
        if (!json_is_object(record))
            return cli_error("compare", "%s: results[%zu] is %s, expected a run record", r->path,
                             i, value_text(record, v, sizeof v));
        const json_t *bad;
        if ((field = record_invalid(record, &expected, &bad)))
            return cli_error("compare", "%s: results[%zu].%s is %s, expected %s", r->path, i,
                             field, value_text(bad, v, sizeof v), expected);
        if (!record_name(record, name, sizeof name))
            return cli_error("compare", "%s: results[%zu]: name too long", r->path, i);
        const series *earlier = find_series(r, name);
        if (earlier)
            return cli_error("compare", "%s: results[%zu] repeats the benchmark of results[%zu] "
                             "(%s); one record per benchmark", r->path, i, earlier->record,
                             name);
        const json_t *samples = json_object_get(record, "samples_s");
        const json_t *median = json_object_get(record, "median_s");
        if (median && !(json_is_number(median) && positive_time(json_number_value(median))))
            return cli_error("compare", "%s: results[%zu].median_s is %s, expected a positive "
                             "time in seconds (%s)", r->path, i, value_text(median, v, sizeof v),
                             name);
        if (samples && (!json_is_array(samples) || json_array_size(samples) == 0))
            return cli_error("compare", "%s: results[%zu].samples_s is %s, expected an array of "
                             "times in seconds (%s)", r->path, i,
                             value_text(samples, v, sizeof v), name);
        if (!samples && !median)
            return cli_error("compare", "%s: results[%zu] has neither samples_s nor median_s "
                             "(%s)", r->path, i, name);
        const size_t count = samples ? json_array_size(samples) : 1;
        for (size_t k = 0; k < count; k++) {
            const json_t *t = samples ? json_array_get(samples, k) : median;
            if (!json_is_number(t) || !positive_time(json_number_value(t)))
                return cli_error("compare", "%s: results[%zu].samples_s[%zu] is %s, expected a "
                                 "positive time in seconds (%s)", r->path, i, k,
                                 value_text(t, v, sizeof v), name);
            if (!add_sample(r, name, json_number_value(t), -1))
                return cli_error("compare", "out of memory");
        }
        find_series(r, name)->record = i;
    }
    return -1;
}

/* The machine a file was measured on: attnbench's "machine" {"id", "model_name"}, or the
 * context attnbench-gbench writes (attnbench_machine_id, attnbench_cpu). */
static int read_machine(const json_t *root, result_set *r)
{
    const json_t *machine = json_object_get(root, "machine");
    const json_t *context = json_object_get(root, "context");
    const json_t *id = machine ? json_object_get(machine, "id")
                               : json_object_get(context, "attnbench_machine_id");
    const json_t *cpu = machine ? json_object_get(machine, "model_name")
                                : json_object_get(context, "attnbench_cpu");
    char v[64];
    if (machine && !json_is_object(machine))
        return cli_error("compare", "%s: machine is %s, expected an object", r->path,
                         value_text(machine, v, sizeof v));
    if (id && !json_is_string(id))
        return cli_error("compare", "%s: %s is %s, expected a string", r->path,
                         machine ? "machine.id" : "context.attnbench_machine_id",
                         value_text(id, v, sizeof v));
    if ((id && !(r->machine_id = strdup(json_string_value(id)))) ||
        (json_is_string(cpu) && !(r->cpu = strdup(json_string_value(cpu)))))
        return cli_error("compare", "out of memory");
    return -1;
}

static int read_results(const char *path, result_set *r)
{
    *r = (result_set){.path = path};
    json_error_t error;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &error);
    if (!root) {
        if (error.line < 0) /* jansson could not open or read it */
            return cli_error("compare", "cannot read %s: %s", path, error.text);
        return cli_error("compare", "%s:%d:%d: malformed JSON: %s", path, error.line,
                         error.column, error.text);
    }
    const json_t *benchmarks = json_object_get(root, "benchmarks");
    const json_t *results = json_object_get(root, "results");
    int status = read_machine(root, r);
    if (status < 0 && json_is_array(benchmarks)) {
        r->format = "Google Benchmark";
        status = read_gbench(benchmarks, r);
    } else if (status < 0 && json_is_array(results)) {
        r->format = "attnbench";
        status = read_attnbench(results, r);
    } else if (status < 0) {
        status = cli_error("compare", "%s: neither Google Benchmark JSON (\"benchmarks\") nor an "
                           "attnbench result file (\"results\")", path);
    }
    json_decref(root);
    if (status < 0 && r->count == 0 && r->error_count == 0)
        status = cli_error("compare", "%s holds no benchmark", path);
    return status;
}

/* ---- the comparison ------------------------------------------------------------------------- */

typedef enum verdict { REGRESSED, IMPROVED, INCONCLUSIVE, UNCHANGED, UNTESTED, VERDICTS } verdict;
static const char *const verdict_names[VERDICTS] = {"regressed", "improved", "inconclusive",
                                                    "unchanged", "untested"};
/* The rule, as every output's header states it. */
static const char rule_text[] =
    "regressed/improved: q <= FDR, the 95% interval beyond 1, the median change at least half "
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
    printf("\nthreshold %g%%, FDR %g; %s.\n", c->threshold * 100, c->fdr, rule_text);
    /* (cli_text_end wraps these lines to 100 columns) */
    printf("%s\n\n", methods_text[c->paired]);
    if (s->machine_warning[0])
        printf("warning: %s\n\n", s->machine_warning);
    cli_table t;
    /* Narrow by default: the sample counts and q with --wide (q: in JSON and Markdown too). */
    const bool wide = cli_table_wide;
    cli_table_init(&t, wide ? 8 : 7, wide ? "lrrrlrll" : "lrrrlll");
    static const char *const header[] = {"benchmark", "base", "new", "change", "95% CI",
                                         "q", "verdict", "note"};
    for (int i = 0; i < 8; i++)
        if (wide || i != 5)
            cli_table_add(&t, "%s", header[i]);
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
           "false-discovery rate %g. Rule: %s. Method: %s.\n\n",
           n, c->base_path, c->new_path, c->threshold * 100, c->fdr, rule_text,
           methods[c->paired]);
    if (s->machine_warning[0])
        printf("> **Warning:** %s\n\n", s->machine_warning);
    printf("| benchmark | base | new | change | 95%% CI | q | verdict |\n"
           "|---|---:|---:|---:|---|---:|---|\n");
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
        "threshold", c->threshold, "fdr", c->fdr, "confidence", confidence, "method",
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
    *c = (compare_config){.threshold = 0.05, .fdr = 0.05, .format = OUT_TEXT};
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
                                         confidence, &x->welch, &x->dropped);
            if (x->dropped)
                x->note = "outlier rounds left out";
        }
        else
            x->tested = stats_welch_log(x->base->samples, x->base->count, other->samples,
                                        other->count, confidence, &x->welch);
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
