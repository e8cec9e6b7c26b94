/* result_file.c — reading and checking a result file of any kind (result_file.h): compare's
 * record checks and names for run and sweep files, Google Benchmark's per-run entries for
 * attnbench-gbench and perf-ab, the tuned best of tune's JSON; then where the file records its
 * machine, commit, date and build. */
#include "result_file.h"

#include "cli.h"
#include "cli_compare_read.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const cmd = "db";

void result_file_free(result_file *f)
{
    for (size_t i = 0; i < f->count; i++) {
        free(f->items[i].benchmark);
        free(f->items[i].params);
        free(f->items[i].samples);
        free(f->items[i].repetitions);
    }
    free(f->items);
    for (size_t i = 0; i < f->error_count; i++) {
        free(f->errors[i].benchmark);
        free(f->errors[i].message);
    }
    free(f->errors);
    free(f->peak);
    free(f->isa);
    free(f->content);
    json_decref(f->root);
    *f = (result_file){0};
}

static int out_of_memory(void) { return cli_error(cmd, "out of memory"); }

static measurement *find_measurement(result_file *f, const char *name)
{
    for (size_t i = 0; i < f->count; i++)
        if (!strcmp(f->items[i].benchmark, name))
            return &f->items[i];
    return NULL;
}

/* The measurement of that name, added empty on first use; NULL on OOM. */
static measurement *measurement_of(result_file *f, const char *name)
{
    measurement *m = find_measurement(f, name);
    if (m)
        return m;
    if (f->count == f->capacity) {
        const size_t grown = f->capacity ? 2 * f->capacity : 16;
        measurement *items = realloc(f->items, grown * sizeof *items);
        if (!items)
            return NULL;
        f->items = items;
        f->capacity = grown;
    }
    m = &f->items[f->count];
    *m = (measurement){.benchmark = strdup(name)};
    if (!m->benchmark)
        return NULL;
    f->count++;
    return m;
}

static bool add_sample(measurement *m, double seconds, int64_t repetition)
{
    if (m->count == m->capacity) {
        const size_t grown = m->capacity ? 2 * m->capacity : 8;
        double *samples = realloc(m->samples, grown * sizeof *samples);
        if (samples)
            m->samples = samples;
        int64_t *reps = realloc(m->repetitions, grown * sizeof *reps);
        if (reps)
            m->repetitions = reps;
        if (!samples || !reps)
            return false;
        m->capacity = grown;
    }
    m->samples[m->count] = seconds;
    m->repetitions[m->count++] = repetition;
    return true;
}

static bool add_error(result_file *f, const char *benchmark, const char *message)
{
    reported_error *errors = realloc(f->errors, (f->error_count + 1) * sizeof *errors);
    if (!errors)
        return false;
    f->errors = errors;
    reported_error *e = &f->errors[f->error_count];
    e->benchmark = strdup(benchmark);
    e->message = strdup(message);
    if (!e->benchmark || !e->message) {
        free(e->benchmark);
        free(e->message);
        return false;
    }
    f->error_count++;
    return true;
}

static bool positive_time(double seconds) { return isfinite(seconds) && seconds > 0; }

static const char *string_or(const json_t *x, const char *fallback)
{
    return json_is_string(x) ? json_string_value(x) : fallback;
}

/* ---- the readers, one per kind of file -------------------------------------------------- */

/* run and sweep: every record of "results" (compare's checks and names). */
static int read_records(result_file *f, const json_t *results)
{
    size_t i;
    const json_t *record;
    char v[64];
    json_array_foreach(results, i, record) {
        char name[512];
        const char *expected, *field;
        const json_t *bad;
        if (!json_is_object(record))
            return cli_error(cmd, "%s: results[%zu] is %s, expected a run record", f->path, i,
                             cli_value_text(record, v, sizeof v));
        if ((field = cli_record_invalid(record, &expected, &bad)))
            return cli_error(cmd, "%s: results[%zu].%s is %s, expected %s", f->path, i, field,
                             cli_value_text(bad, v, sizeof v), expected);
        if (!cli_record_name(record, name, sizeof name))
            return cli_error(cmd, "%s: results[%zu]: name too long", f->path, i);
        if (find_measurement(f, name))
            return cli_error(cmd, "%s: results[%zu] repeats the benchmark %s", f->path, i, name);
        measurement *m = measurement_of(f, name);
        if (!m)
            return out_of_memory();
        const json_t *shape = json_object_get(record, "shape");
        static const char *const dims[6] = {"batch", "heads_q", "heads_kv",
                                            "len_q", "len_kv",  "head_dim"};
        m->has_shape = true;
        for (int d = 0; d < 6; d++)
            m->dims[d] = json_integer_value(json_object_get(shape, dims[d]));
        m->causal = json_is_true(json_object_get(shape, "causal"));
        m->variant = json_string_value(json_object_get(record, "variant"));
        m->dtype = string_or(json_object_get(record, "dtype"), "f32");
        m->threads = json_integer_value(json_object_get(record, "threads"));
        const json_t *params = json_object_get(record, "params");
        if (params && !(m->params = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS |
                                                           JSON_ENCODE_ANY)))
            return out_of_memory();
        const json_t *times;
        size_t count;
        const int status = cli_record_times(cmd, f->path, i, name, record, &times, &count);
        if (status >= 0)
            return status;
        for (size_t k = 0; k < count; k++)
            if (!add_sample(m, cli_record_time(times, k), -1))
                return out_of_memory();
    }
    return -1;
}

/* attnbench-gbench and perf-ab: Google Benchmark's per-run entries (aggregates are derived
 * from them and left out); a failed entry is an error row. */
static int read_gbench(result_file *f, const json_t *benchmarks)
{
    size_t i;
    const json_t *entry;
    json_array_foreach(benchmarks, i, entry) {
        gbench_entry e;
        const int status = cli_gbench_entry(cmd, f->path, i, entry, &e);
        if (status >= 0)
            return status;
        if (e.skip)
            continue;
        if (e.error) {
            if (!add_error(f, e.key, e.error))
                return out_of_memory();
            continue;
        }
        measurement *m = measurement_of(f, e.key);
        if (!m)
            return out_of_memory();
        for (size_t k = 0; e.repetition >= 0 && k < m->count; k++)
            if (m->repetitions[k] == e.repetition)
                return cli_error(cmd, "%s: benchmarks[%zu] repeats repetition_index %lld of %s",
                                 f->path, i, (long long)e.repetition, e.key);
        if (!add_sample(m, e.seconds, e.repetition))
            return out_of_memory();
    }
    return -1;
}

/* tune --format json: the tuned best for the problem, one sample (its median), under the name
 * tune/B.Hq.Hkv.Lq.Lk.d[.causal][.kvlens][.mask][.type]/tN, its variant and parameters beside. */
static int read_tune(result_file *f, const json_t *problem, const json_t *best)
{
    static const char *const dims[6] = {"batch", "heads_q", "heads_kv",
                                        "len_q", "len_kv",  "head_dim"};
    static const char *const labels[6] = {"B", "Hq", "Hkv", "Lq", "Lk", "d"};
    char name[256], v[64];
    size_t used = (size_t)snprintf(name, sizeof name, "tune/");
    int64_t values[6];
    for (int d = 0; d < 6; d++) {
        const json_t *x = json_object_get(problem, dims[d]);
        if (!json_is_integer(x) || json_integer_value(x) < 1)
            return cli_error(cmd, "%s: problem.%s is %s, expected an integer >= 1", f->path,
                             dims[d], cli_value_text(x, v, sizeof v));
        values[d] = json_integer_value(x);
        used += (size_t)snprintf(name + used, sizeof name - used, "%s%s%lld", d ? "." : "",
                                 labels[d], (long long)values[d]);
    }
    static const char *const flags[3] = {"causal", "kv_lens", "mask"};
    for (int k = 0; k < 3; k++)
        if (json_is_true(json_object_get(problem, flags[k])))
            used += (size_t)snprintf(name + used, sizeof name - used, ".%s",
                                     k == 1 ? "kvlens" : flags[k]);
    const char *dtype = string_or(json_object_get(problem, "dtype"), "f32");
    if (strcmp(dtype, "f32"))
        used += (size_t)snprintf(name + used, sizeof name - used, ".%s", dtype);
    const json_t *threads = json_object_get(problem, "threads");
    snprintf(name + used, sizeof name - used, "/t%lld",
             (long long)(json_is_integer(threads) ? json_integer_value(threads) : 0));
    const json_t *median = json_object_get(best, "median_s");
    if (!json_is_number(median) || !positive_time(json_number_value(median)))
        return cli_error(cmd, "%s: best.median_s is %s, expected a positive time in seconds",
                         f->path, cli_value_text(median, v, sizeof v));
    measurement *m = measurement_of(f, name);
    if (!m || !add_sample(m, json_number_value(median), -1))
        return out_of_memory();
    m->has_shape = true;
    memcpy(m->dims, values, sizeof values);
    m->causal = json_is_true(json_object_get(problem, "causal"));
    m->variant = json_string_value(json_object_get(best, "variant"));
    m->dtype = dtype;
    m->threads = json_is_integer(threads) ? json_integer_value(threads) : 0;
    const json_t *params = json_object_get(best, "params");
    if (params && !(m->params = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS |
                                                       JSON_ENCODE_ANY)))
        return out_of_memory();
    return -1;
}

/* Where the file records its machine, commit, date and build (kind by kind), with the command
 * line's values for what it does not record. */
static int read_provenance(result_file *f, const provenance *given)
{
    const json_t *root = f->root, *context = json_object_get(root, "context");
    const json_t *perf_ab = json_object_get(context, "perf_ab");
    const json_t *machine = json_object_get(root, "machine");
    if (machine && !json_is_object(machine))
        return cli_error(cmd, "%s: machine is not an object", f->path);
    f->vendor = string_or(json_object_get(machine, "vendor"), NULL);
    f->cpu = string_or(json_object_get(machine, "model_name"),
                       string_or(json_object_get(context, "attnbench_cpu"), NULL));
    const json_t *isa = json_object_get(machine, "isa");
    if (isa && !(f->isa = json_is_string(isa) ? strdup(json_string_value(isa))
                                              : json_dumps(isa, JSON_COMPACT | JSON_ENCODE_ANY)))
        return out_of_memory();
    static const char *const sizes[4] = {"l1d_bytes", "l2_bytes", "l3_bytes", "cpus_online"};
    for (int i = 0; i < 4; i++) {
        const json_t *x = json_object_get(machine, sizes[i]);
        f->machine_sizes[i] = json_is_integer(x) ? json_integer_value(x) : -1;
    }
    f->machine_key = string_or(machine ? json_object_get(machine, "id")
                                       : json_object_get(context, "attnbench_machine_id"),
                               given->machine);
    if (!f->machine_key || !*f->machine_key)
        return cli_error(cmd, "%s records no machine id; give it with --machine ID (`attnbench "
                         "info` prints it)", f->path);
    for (const char *c = f->machine_key; *c; c++) /* it names a folder on export */
        if (!(c[0] >= '0' && c[0] <= '9') && !(c[0] >= 'a' && c[0] <= 'z') &&
            !(c[0] >= 'A' && c[0] <= 'Z') && !strchr("-_.", c[0]))
            return cli_error(cmd, "%s: machine id '%s' has characters other than letters, "
                             "digits, '-', '_' and '.'", f->path, f->machine_key);
    if (!strcmp(f->machine_key, ".") || !strcmp(f->machine_key, ".."))
        return cli_error(cmd, "%s: machine id '%s' is not a name", f->path, f->machine_key);
    f->commit = string_or(json_object_get(root, "commit"),
                          string_or(json_object_get(perf_ab, "commit"), given->commit));
    f->dirty = json_is_true(json_object_get(root, "commit_dirty"));
    f->date = string_or(json_object_get(root, "date"),
                        string_or(json_object_get(context, "date"), given->date));
    const json_t *build = json_object_get(root, "build");
    static const char *const fields[6][2] = {
        {"version", "attnbench_version"},   {"compiler", "attnbench_compiler"},
        {"buildtype", "attnbench_buildtype"}, {"optimization", NULL},
        {"c_args", "attnbench_c_args"},     {"sanitize", NULL}};
    for (int i = 0; i < 6; i++)
        f->build[i] = string_or(json_object_get(build, fields[i][0]),
                                fields[i][1] ? string_or(json_object_get(context, fields[i][1]),
                                                         "")
                                             : "");
    const json_t *peak = json_object_get(root, "peak");
    if (peak && !json_is_null(peak) &&
        !(f->peak = json_dumps(peak, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)))
        return out_of_memory();
    return -1;
}

/* A stored name written back must stay inside its folder. */
bool result_file_plain_name(const char *name)
{
    return *name && name[0] != '.' && !strchr(name, '/');
}

static int by_benchmark(const void *a, const void *b)
{
    return strcmp(((const measurement *)a)->benchmark, ((const measurement *)b)->benchmark);
}

/* Reads and checks one file, whole; -1 when it is fine, else an exit status after a message. */
int result_file_read(const char *path, const provenance *given, result_file *f)
{
    *f = (result_file){.path = path};
    const char *slash = strrchr(path, '/');
    f->name = slash ? slash + 1 : path;
    if (!result_file_plain_name(f->name))
        return cli_error(cmd, "%s: export could not write a file of this name back (it "
                         "starts with '.')", path);
    FILE *in = fopen(path, "rb");
    if (!in)
        return cli_error(cmd, "cannot read %s: %s", path, strerror(errno));
    size_t capacity = 0;
    for (;;) {
        if (f->size + 65536 > capacity) {
            capacity = capacity ? 2 * capacity : 1 << 20;
            char *grown = realloc(f->content, capacity + 1);
            if (!grown) {
                fclose(in);
                return out_of_memory();
            }
            f->content = grown;
        }
        const size_t got = fread(f->content + f->size, 1, capacity - f->size, in);
        f->size += got;
        if (got == 0)
            break;
    }
    const bool failed = ferror(in);
    fclose(in);
    if (failed)
        return cli_error(cmd, "cannot read %s", path);
    f->content[f->size] = '\0';
    if (memchr(f->content, '\0', f->size))
        return cli_error(cmd, "%s: not a result file (it holds a NUL byte)", path);
    json_error_t error;
    f->root = json_loadb(f->content, f->size, JSON_REJECT_DUPLICATES, &error);
    if (!f->root)
        return cli_error(cmd, "%s:%d:%d: malformed JSON: %s", path, error.line, error.column,
                         error.text);
    if (!json_is_object(f->root))
        return cli_error(cmd, "%s: not a result file (not a JSON object)", path);
    const json_t *results = json_object_get(f->root, "results");
    const json_t *benchmarks = json_object_get(f->root, "benchmarks");
    const json_t *best = json_object_get(f->root, "best");
    const json_t *problem = json_object_get(f->root, "problem");
    const json_t *tunes = json_object_get(f->root, "tunes");
    int status;
    if (json_is_array(results)) {
        const char *kind = string_or(json_object_get(f->root, "kind"), "run");
        f->kind = !strcmp(kind, "sweep") ? "sweep" : "run";
        status = read_records(f, results);
    } else if (json_is_array(benchmarks)) {
        f->kind = json_object_get(json_object_get(f->root, "context"), "perf_ab") ? "perf-ab"
                                                                                  : "gbench";
        status = read_gbench(f, benchmarks);
    } else if (json_is_object(best) && json_is_object(problem)) {
        f->kind = "tune";
        status = read_tune(f, problem, best);
    } else if (json_is_array(tunes) && json_array_size(tunes) > 0) {
        /* tune --threads N,M,...: one tune per count */
        f->kind = "tune";
        status = -1;
        for (size_t i = 0; status < 0 && i < json_array_size(tunes); i++) {
            const json_t *one = json_array_get(tunes, i);
            const json_t *b = json_object_get(one, "best"), *pr = json_object_get(one, "problem");
            status = json_is_object(b) && json_is_object(pr)
                         ? read_tune(f, pr, b)
                         : cli_error(cmd, "%s: tunes[%zu] has no \"best\" and \"problem\"",
                                     path, i);
        }
    } else {
        return cli_error(cmd, "%s: not a result file: no \"results\" (run, sweep), "
                         "\"benchmarks\" (attnbench-gbench, perf-ab) or \"best\"/\"tunes\" (tune)",
                         path);
    }
    if (status < 0)
        status = read_provenance(f, given);
    if (status < 0 && f->count == 0 && f->error_count == 0)
        status = cli_error(cmd, "%s holds no benchmark", path);
    if (status >= 0)
        return status;
    if (f->count) /* qsort may not be given NULL, even for no elements */
        qsort(f->items, f->count, sizeof *f->items, by_benchmark);
    if (!result_file_sha256(f->content, f->size, f->sha256))
        return cli_error(cmd, "%s: cannot compute its SHA-256", path);
    return -1;
}

bool result_file_sha256(const char *data, size_t size, char hex[65])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (!EVP_Digest(data, size, digest, &digest_len, EVP_sha256(), NULL) || digest_len != 32)
        return false;
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return true;
}

