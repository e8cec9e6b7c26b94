/* cli_compare_read.c — reading the result files of `attnbench compare` (cli_compare_read.h). */
#include "cli_compare_read.h"

#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void result_set_free(result_set *r)
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

series *find_series(const result_set *r, const char *name)
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

int cli_gbench_entry(const char *cmd, const char *path, size_t i, const json_t *entry,
                     gbench_entry *e)
{
    const char *name = json_string_value(json_object_get(entry, "name"));
    const char *run_name = json_string_value(json_object_get(entry, "run_name"));
    const char *run_type = json_string_value(json_object_get(entry, "run_type"));
    if (!json_is_object(entry) || !name)
        return cli_error(cmd, "%s: benchmarks[%zu] has no name", path, i);
    *e = (gbench_entry){.key = run_name ? run_name : name, .repetition = -1};
    e->skip = (run_type && !strcmp(run_type, "aggregate")) ||
              json_object_get(entry, "aggregate_name");
    if (e->skip)
        return -1;
    if (json_is_true(json_object_get(entry, "error_occurred"))) {
        const char *message = json_string_value(json_object_get(entry, "error_message"));
        e->error = message ? message : "error";
        return -1;
    }
    const json_t *time = json_object_get(entry, "real_time");
    const char *unit_name = json_string_value(json_object_get(entry, "time_unit"));
    const double unit = unit_seconds(unit_name ? unit_name : "ns");
    if (!json_is_number(time) || unit == 0)
        return cli_error(cmd, "%s: benchmark %s: no real_time%s", path, e->key,
                         unit == 0 ? " in a known time_unit" : "");
    e->seconds = json_number_value(time) * unit;
    if (!positive_time(e->seconds))
        return cli_error(cmd, "%s: benchmark %s: real_time %g is not a positive time", path,
                         e->key, json_number_value(time));
    const json_t *index = json_object_get(entry, "repetition_index");
    if (json_is_integer(index))
        e->repetition = json_integer_value(index);
    return -1;
}

int cli_record_times(const char *cmd, const char *path, size_t i, const char *name,
                     const json_t *record, const json_t **times, size_t *count)
{
    char v[64];
    const json_t *samples = json_object_get(record, "samples_s");
    const json_t *median = json_object_get(record, "median_s");
    if (median && !(json_is_number(median) && positive_time(json_number_value(median))))
        return cli_error(cmd, "%s: results[%zu].median_s is %s, expected a positive time in "
                         "seconds (%s)", path, i, cli_value_text(median, v, sizeof v), name);
    if (samples && (!json_is_array(samples) || json_array_size(samples) == 0))
        return cli_error(cmd, "%s: results[%zu].samples_s is %s, expected an array of times "
                         "in seconds (%s)", path, i, cli_value_text(samples, v, sizeof v), name);
    if (!samples && !median)
        return cli_error(cmd, "%s: results[%zu] has neither samples_s nor median_s (%s)", path,
                         i, name);
    *times = samples ? samples : median;
    *count = samples ? json_array_size(samples) : 1;
    for (size_t k = 0; samples && k < *count; k++) {
        const json_t *t = json_array_get(samples, k);
        if (!json_is_number(t) || !positive_time(json_number_value(t)))
            return cli_error(cmd, "%s: results[%zu].samples_s[%zu] is %s, expected a positive "
                             "time in seconds (%s)", path, i, k, cli_value_text(t, v, sizeof v),
                             name);
    }
    return -1;
}

double cli_record_time(const json_t *times, size_t k)
{
    return json_number_value(json_is_array(times) ? json_array_get(times, k) : times);
}

/* Google Benchmark: every entry of "benchmarks" that is a measured run (not an aggregate). */
static int read_gbench(const json_t *benchmarks, result_set *r)
{
    size_t i;
    const json_t *entry;
    json_array_foreach(benchmarks, i, entry) {
        gbench_entry e;
        const int status = cli_gbench_entry("compare", r->path, i, entry, &e);
        if (status >= 0)
            return status;
        if (e.skip)
            continue;
        if (e.error) {
            if (!add_error(r, e.key, e.error))
                return cli_error("compare", "out of memory");
            continue;
        }
        /* Repetitions of a benchmark are its samples; one repetition twice is a file pasted
         * together, refused rather than merged. */
        if (e.repetition >= 0 && has_repetition(find_series(r, e.key), e.repetition))
            return cli_error("compare", "%s: benchmarks[%zu] repeats repetition_index %lld of %s",
                             r->path, i, (long long)e.repetition, e.key);
        if (!add_sample(r, e.key, e.seconds, e.repetition))
            return cli_error("compare", "out of memory");
    }
    return -1;
}

/* A JSON value as the file has it, cut short, for messages ("missing" when absent). */
const char *cli_value_text(const json_t *x, char *buf, size_t len)
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
const char *cli_record_invalid(const json_t *record, const char **expected,
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

/* An attnbench record's benchmark name (cli_record_invalid first), in attnbench-gbench's style:
 * VARIANT/B1.Hq8.Hkv8.Lq1024.Lk1024.d64[.causal][.blhd][.kvlens][.mask][.bf16|.f16]/tTHREADS. */
bool cli_record_name(const json_t *record, char *buf, size_t len)
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
                             i, cli_value_text(record, v, sizeof v));
        const json_t *bad;
        if ((field = cli_record_invalid(record, &expected, &bad)))
            return cli_error("compare", "%s: results[%zu].%s is %s, expected %s", r->path, i,
                             field, cli_value_text(bad, v, sizeof v), expected);
        if (!cli_record_name(record, name, sizeof name))
            return cli_error("compare", "%s: results[%zu]: name too long", r->path, i);
        const series *earlier = find_series(r, name);
        if (earlier)
            return cli_error("compare", "%s: results[%zu] repeats the benchmark of results[%zu] "
                             "(%s); one record per benchmark", r->path, i, earlier->record,
                             name);
        const json_t *times;
        size_t count;
        const int status = cli_record_times("compare", r->path, i, name, record, &times, &count);
        if (status >= 0)
            return status;
        for (size_t k = 0; k < count; k++)
            if (!add_sample(r, name, cli_record_time(times, k), -1))
                return cli_error("compare", "out of memory");
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
                         cli_value_text(machine, v, sizeof v));
    if (id && !json_is_string(id))
        return cli_error("compare", "%s: %s is %s, expected a string", r->path,
                         machine ? "machine.id" : "context.attnbench_machine_id",
                         cli_value_text(id, v, sizeof v));
    if ((id && !(r->machine_id = strdup(json_string_value(id)))) ||
        (json_is_string(cpu) && !(r->cpu = strdup(json_string_value(cpu)))))
        return cli_error("compare", "out of memory");
    return -1;
}

int read_results(const char *path, result_set *r)
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

