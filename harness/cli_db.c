/* cli_db.c — `attnbench db ingest|export|info`: result files into the results store (db.h) and
 * back out.
 *
 * Ingest reads and checks every file before it writes anything: a file that is not JSON, or
 * whose records are malformed, stops the command with exit 2 and one message naming it, and
 * the store is unchanged. Then each file goes in as one transaction: its machine, build and
 * benchmarks (found or added), the file row (its SHA-256 is unique: a file already there — by
 * this runner or another, even at the same moment — is skipped, not duplicated), its
 * measurements and every sample. Benchmarks are added in name order, so two transactions
 * always take their row locks in the same order; one that PostgreSQL still aborts (deadlock,
 * serialization) or that finds SQLite busy past its timeout is run again.
 *
 * Export writes each stored file's exact text back, to OUT/<machine id>/<name>, after checking
 * it against its SHA-256; `history` reads the tables. */
#include "cli.h"

#include "atomic_file.h"
#include "db.h"
#include "stats.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- what one result file holds --------------------------------------------------------- */

typedef struct measurement {
    char *benchmark; /* compare's name for it */
    const char *variant, *dtype;
    bool has_shape;
    int64_t dims[6]; /* batch, heads_q, heads_kv, len_q, len_kv, head_dim */
    bool causal;
    int64_t threads; /* 0: not recorded */
    char *params;    /* compact JSON, or NULL */
    double *samples; /* seconds, in the file's order */
    int64_t *repetitions; /* Google Benchmark's repetition_index of each sample, else -1 */
    size_t count, capacity;
} measurement;

typedef struct reported_error {
    char *benchmark, *message;
} reported_error;

typedef struct result_file {
    const char *path, *name; /* name: the file's base name, what export writes back */
    char *content;
    size_t size;
    char sha256[65];
    json_t *root;
    const char *kind; /* run, sweep, tune, gbench, perf-ab */
    const char *machine_key;
    const json_t *machine; /* attnbench's machine object, or NULL */
    const char *commit, *date;
    bool dirty;
    const char *build[6]; /* version, compiler, buildtype, optimization, c_args, sanitize */
    char *peak;           /* the roofline the file recorded, compact JSON, or NULL */
    measurement *items;
    size_t count, capacity;
    reported_error *errors;
    size_t error_count;
} result_file;

/* What the command line supplies for files that do not record it. */
typedef struct provenance {
    const char *machine, *commit, *date;
} provenance;

static const char *const cmd = "db";

static void result_file_free(result_file *f)
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
        const json_t *samples = json_object_get(record, "samples_s");
        const json_t *median = json_object_get(record, "median_s");
        if (samples && (!json_is_array(samples) || json_array_size(samples) == 0))
            return cli_error(cmd, "%s: results[%zu].samples_s is %s, expected an array of times "
                             "in seconds (%s)", f->path, i, cli_value_text(samples, v, sizeof v),
                             name);
        if (!samples && !median)
            return cli_error(cmd, "%s: results[%zu] has neither samples_s nor median_s (%s)",
                             f->path, i, name);
        const size_t count = samples ? json_array_size(samples) : 1;
        for (size_t k = 0; k < count; k++) {
            const json_t *t = samples ? json_array_get(samples, k) : median;
            if (!json_is_number(t) || !positive_time(json_number_value(t)))
                return cli_error(cmd, "%s: results[%zu].%s is %s, expected a positive time in "
                                 "seconds (%s)", f->path, i, samples ? "samples_s[]" : "median_s",
                                 cli_value_text(t, v, sizeof v), name);
            if (!add_sample(m, json_number_value(t), -1))
                return out_of_memory();
        }
    }
    return -1;
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

/* attnbench-gbench and perf-ab: Google Benchmark's per-run entries (aggregates are derived
 * from them and left out); a failed entry is an error row. */
static int read_gbench(result_file *f, const json_t *benchmarks)
{
    size_t i;
    const json_t *entry;
    json_array_foreach(benchmarks, i, entry) {
        const char *name = json_string_value(json_object_get(entry, "name"));
        const char *run_name = json_string_value(json_object_get(entry, "run_name"));
        const char *run_type = json_string_value(json_object_get(entry, "run_type"));
        if (!json_is_object(entry) || !name)
            return cli_error(cmd, "%s: benchmarks[%zu] has no name", f->path, i);
        if ((run_type && !strcmp(run_type, "aggregate")) ||
            json_object_get(entry, "aggregate_name"))
            continue;
        const char *key = run_name ? run_name : name;
        if (json_is_true(json_object_get(entry, "error_occurred"))) {
            if (!add_error(f, key, string_or(json_object_get(entry, "error_message"), "error")))
                return out_of_memory();
            continue;
        }
        const json_t *time = json_object_get(entry, "real_time");
        const double unit = unit_seconds(string_or(json_object_get(entry, "time_unit"), "ns"));
        if (!json_is_number(time) || unit == 0)
            return cli_error(cmd, "%s: benchmark %s: no real_time%s", f->path, key,
                             unit == 0 ? " in a known time_unit" : "");
        const double seconds = json_number_value(time) * unit;
        if (!positive_time(seconds))
            return cli_error(cmd, "%s: benchmark %s: real_time %g is not a positive time",
                             f->path, key, json_number_value(time));
        const json_t *index = json_object_get(entry, "repetition_index");
        const int64_t repetition = json_is_integer(index) ? json_integer_value(index) : -1;
        measurement *m = measurement_of(f, key);
        if (!m)
            return out_of_memory();
        for (size_t k = 0; repetition >= 0 && k < m->count; k++)
            if (m->repetitions[k] == repetition)
                return cli_error(cmd, "%s: benchmarks[%zu] repeats repetition_index %lld of %s",
                                 f->path, i, (long long)repetition, key);
        if (!add_sample(m, seconds, repetition))
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
    f->machine = machine;
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
static bool plain_name(const char *name)
{
    return *name && name[0] != '.' && !strchr(name, '/');
}

static int by_benchmark(const void *a, const void *b)
{
    return strcmp(((const measurement *)a)->benchmark, ((const measurement *)b)->benchmark);
}

/* Reads and checks one file, whole; -1 when it is fine, else an exit status after a message. */
static int read_result_file(const char *path, const provenance *given, result_file *f)
{
    *f = (result_file){.path = path};
    const char *slash = strrchr(path, '/');
    f->name = slash ? slash + 1 : path;
    if (!plain_name(f->name))
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
    } else {
        return cli_error(cmd, "%s: not a result file: no \"results\" (run, sweep), "
                         "\"benchmarks\" (attnbench-gbench, perf-ab) or \"best\" (tune)", path);
    }
    if (status < 0)
        status = read_provenance(f, given);
    if (status < 0 && f->count == 0 && f->error_count == 0)
        status = cli_error(cmd, "%s holds no benchmark", path);
    if (status >= 0)
        return status;
    qsort(f->items, f->count, sizeof *f->items, by_benchmark);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (!EVP_Digest(f->content, f->size, digest, &digest_len, EVP_sha256(), NULL))
        return cli_error(cmd, "%s: cannot compute its SHA-256", path);
    for (unsigned i = 0; i < digest_len && i < 32; i++)
        snprintf(f->sha256 + 2 * i, 3, "%02x", digest[i]);
    return -1;
}

/* ---- writing a file into the store ------------------------------------------------------ */

/* A statement's text parameters: integers and doubles are formatted into slots. */
typedef struct params {
    const char *value[12];
    char text[12][32];
    int count;
} params;

static void param(params *p, const char *s) { p->value[p->count++] = s; }
static void param_int(params *p, int64_t x)
{
    snprintf(p->text[p->count], sizeof p->text[0], "%lld", (long long)x);
    p->value[p->count] = p->text[p->count];
    p->count++;
}
static void param_real(params *p, double x)
{
    snprintf(p->text[p->count], sizeof p->text[0], "%.17g", x);
    p->value[p->count] = p->text[p->count];
    p->count++;
}
static void param_int_or_null(params *p, bool present, int64_t x)
{
    if (present)
        param_int(p, x);
    else
        param(p, NULL);
}

/* Runs a statement that returns one id (RETURNING, or a SELECT); 0 when it returns no row. */
static db_status query_id(db *d, const char *sql, const params *p, int64_t *id, char *err,
                          size_t len)
{
    db_rows rows = {0};
    const db_status st = db_query(d, sql, p->count, p->value, &rows, err, len);
    if (st != DB_OK)
        return st;
    *id = rows.count && db_cell(&rows, 0, 0) ? strtoll(db_cell(&rows, 0, 0), NULL, 10) : 0;
    db_rows_free(&rows);
    return DB_OK;
}

/* INSERT that may meet an existing row, then the row's id: the insert waits for a concurrent
 * transaction that added the same key, and the SELECT (a new statement: under READ COMMITTED it
 * sees what has committed since) then finds it. */
static db_status find_or_add(db *d, const char *insert, const char *select, const params *p,
                             int select_params, int64_t *id, char *err, size_t len)
{
    db_status st = db_query(d, insert, p->count, p->value, NULL, err, len);
    if (st != DB_OK)
        return st;
    params key = *p;
    key.count = select_params;
    for (int i = 0; i < select_params; i++)
        key.value[i] = p->value[i] == p->text[i] ? key.text[i] : p->value[i];
    st = query_id(d, select, &key, id, err, len);
    if (st == DB_OK && *id == 0) {
        snprintf(err, len, "a row just added is not found");
        st = DB_FAILED;
    }
    return st;
}

static void utc_now(char *buf, size_t len)
{
    const time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "unknown");
}

static db_status store_machine(db *d, const result_file *f, int64_t *id, char *err, size_t len)
{
    const json_t *m = f->machine;
    char *isa = NULL;
    const json_t *isa_json = json_object_get(m, "isa");
    if (json_is_string(isa_json))
        isa = strdup(json_string_value(isa_json));
    else if (isa_json)
        isa = json_dumps(isa_json, JSON_COMPACT | JSON_ENCODE_ANY);
    params p = {0};
    param(&p, f->machine_key);
    param(&p, string_or(json_object_get(m, "vendor"), NULL));
    param(&p, string_or(json_object_get(m, "model_name"),
                        string_or(json_object_get(json_object_get(f->root, "context"),
                                                  "attnbench_cpu"), NULL)));
    param(&p, isa);
    static const char *const sizes[4] = {"l1d_bytes", "l2_bytes", "l3_bytes", "cpus_online"};
    for (int i = 0; i < 4; i++) {
        const json_t *x = json_object_get(m, sizes[i]);
        param_int_or_null(&p, json_is_integer(x), json_integer_value(x));
    }
    const db_status st = find_or_add(
        d,
        "INSERT INTO machines (machine_key, vendor, model_name, isa, l1d_bytes, l2_bytes, "
        "l3_bytes, cpus_online) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (machine_key) DO NOTHING",
        "SELECT id FROM machines WHERE machine_key = $1", &p, 1, id, err, len);
    free(isa);
    return st;
}

static db_status store_build(db *d, const result_file *f, int64_t *id, char *err, size_t len)
{
    params p = {0};
    param(&p, f->commit ? f->commit : "");
    param_int(&p, f->dirty);
    for (int i = 0; i < 6; i++)
        param(&p, f->build[i]);
    return find_or_add(
        d,
        "INSERT INTO builds (commit_sha, dirty, version, compiler, buildtype, optimization, "
        "c_args, sanitize) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (commit_sha, "
        "dirty, version, compiler, buildtype, optimization, c_args, sanitize) DO NOTHING",
        "SELECT id FROM builds WHERE commit_sha = $1 AND dirty = $2 AND version = $3 AND "
        "compiler = $4 AND buildtype = $5 AND optimization = $6 AND c_args = $7 AND "
        "sanitize = $8",
        &p, 8, id, err, len);
}

static db_status store_measurement(db *d, int64_t file_id, const measurement *m, char *err,
                                   size_t len)
{
    params p = {0};
    param(&p, m->benchmark);
    param(&p, m->variant);
    for (int i = 0; i < 6; i++)
        param_int_or_null(&p, m->has_shape, m->dims[i]);
    param_int_or_null(&p, m->has_shape, m->causal);
    param(&p, m->dtype);
    param_int_or_null(&p, m->threads > 0, m->threads);
    int64_t benchmark_id;
    db_status st = find_or_add(
        d,
        "INSERT INTO benchmarks (name, variant, batch, heads_q, heads_kv, len_q, len_kv, "
        "head_dim, causal, dtype, threads) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
        "$11) ON CONFLICT (name) DO NOTHING",
        "SELECT id FROM benchmarks WHERE name = $1", &p, 1, &benchmark_id, err, len);
    if (st != DB_OK)
        return st;
    p = (params){0};
    param_int(&p, file_id);
    param_int(&p, benchmark_id);
    param(&p, m->params);
    param_real(&p, stats_median(m->samples, m->count));
    int64_t measurement_id;
    st = query_id(d,
                  "INSERT INTO measurements (file_id, benchmark_id, params, median_s) VALUES "
                  "($1, $2, $3, $4) RETURNING id",
                  &p, &measurement_id, err, len);
    for (size_t i = 0; st == DB_OK && i < m->count; i++) {
        p = (params){0};
        param_int(&p, measurement_id);
        param_int(&p, (int64_t)i);
        param_real(&p, m->samples[i]);
        st = db_query(d, "INSERT INTO samples (measurement_id, idx, seconds) VALUES ($1, $2, $3)",
                      p.count, p.value, NULL, err, len);
    }
    return st;
}

/* One transaction; *added false when the store holds the file already. */
static db_status store_file(db *d, const result_file *f, bool *added, char *err, size_t len)
{
    *added = false;
    db_status st = db_begin(d, err, len);
    int64_t machine_id = 0, build_id = 0, file_id = 0;
    if (st == DB_OK)
        st = store_machine(d, f, &machine_id, err, len);
    if (st == DB_OK)
        st = store_build(d, f, &build_id, err, len);
    if (st == DB_OK) {
        char now[32];
        utc_now(now, sizeof now);
        params p = {0};
        param(&p, f->sha256);
        param(&p, f->kind);
        param(&p, f->name);
        param(&p, f->date ? f->date : "");
        param_int(&p, machine_id);
        param_int(&p, build_id);
        param(&p, f->peak);
        param(&p, f->content);
        param(&p, now);
        st = query_id(d,
                      "INSERT INTO files (sha256, kind, name, date, machine_id, build_id, peak, "
                      "content, ingested_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                      "ON CONFLICT (sha256) DO NOTHING RETURNING id",
                      &p, &file_id, err, len);
    }
    if (st == DB_OK && file_id == 0) { /* there already: nothing to add */
        db_rollback(d);
        return DB_OK;
    }
    for (size_t i = 0; st == DB_OK && i < f->count; i++)
        st = store_measurement(d, file_id, &f->items[i], err, len);
    for (size_t i = 0; st == DB_OK && i < f->error_count; i++) {
        params p = {0};
        param_int(&p, file_id);
        param(&p, f->errors[i].benchmark);
        param(&p, f->errors[i].message);
        st = db_query(d, "INSERT INTO errors (file_id, benchmark, message) VALUES ($1, $2, $3)",
                      p.count, p.value, NULL, err, len);
    }
    if (st == DB_OK)
        st = db_commit(d, err, len);
    if (st != DB_OK) {
        db_rollback(d);
        return st;
    }
    *added = true;
    return DB_OK;
}

/* ---- the subcommands -------------------------------------------------------------------- */

enum { O_DB, O_MACHINE, O_COMMIT, O_DATE, O_OUT, O_FORMAT, O_HELP, O_COUNT };
static const cli_option db_options[O_COUNT] = {
    [O_DB] = {"db", "TARGET", "the store: a SQLite file or a PostgreSQL connection string "
                              "(default $ATTN_DB, else results/attnbench.sqlite)"},
    [O_MACHINE] = {"machine", "ID", "ingest: machine id of files that record none (tune)"},
    [O_COMMIT] = {"commit", "SHA", "ingest: commit of files that record none (gbench, tune)"},
    [O_DATE] = {"date", "UTC", "ingest: date of files that record none (tune)"},
    [O_OUT] = {"out", "DIR", "export: folder to write into (default results)"},
    [O_FORMAT] = {"format", "text|json", "info: output format (default text)"},
    [O_HELP] = {"help", NULL, "this help"},
};

static void print_db_help(void)
{
    printf("usage: attnbench db ingest [options] FILE...\n"
           "       attnbench db export [options]\n"
           "       attnbench db info [options]\n\n"
           "The results store: every result file the suite writes (run --save, sweep,\n"
           "tune --format json, attnbench-gbench's JSON, perf-ab's base.json/new.json) in one\n"
           "schema: machines, builds (commit, compiler, flags), files, benchmarks,\n"
           "measurements and every timed sample. SQLite by default (one file, many writers);\n"
           "PostgreSQL for a fleet of runners (--db 'postgresql://host/db' or 'dbname=...').\n"
           "\ningest: checks every FILE first (exit 2, nothing written, when one is not a result\n"
           "file), then adds each in one transaction. A file already in the store (same\n"
           "SHA-256) is skipped, so ingesting again, or two runners ingesting the same file at\n"
           "once, adds nothing twice.\n"
           "export: writes every stored file back, byte for byte, to OUT/<machine id>/<name>\n"
           "(a different file of the same name gets -<hash> before .json; an identical one is\n"
           "left alone).\n"
           "info: the backend, schema version and how many rows each table holds.\n"
           "`attnbench history` reads the store.\n\noptions:\n");
    cli_print_options(stdout, db_options, O_COUNT);
}

typedef struct db_config {
    const char *target, *out;
    provenance given;
    cli_format format;
} db_config;

static int ingest(db *d, const char *const *paths, int count, const provenance *given)
{
    result_file *files = calloc((size_t)count, sizeof *files);
    if (!files)
        return out_of_memory();
    int status = -1;
    for (int i = 0; i < count && status < 0; i++)
        status = read_result_file(paths[i], given, &files[i]);
    for (int i = 0; i < count && status < 0; i++) {
        char err[DB_MESSAGE];
        bool added = false;
        db_status st = DB_RETRY;
        /* Lost races are run again after a short random pause, so two runners that keep
         * meeting fall out of step. */
        uint64_t pause = (uint64_t)getpid() * 2654435761u;
        for (int attempt = 0; attempt < 20 && st == DB_RETRY; attempt++) {
            st = store_file(d, &files[i], &added, err, sizeof err);
            if (st == DB_RETRY)
                usleep((useconds_t)(1000 + (pause = pause * 6364136223846793005u + 1) % 50000));
        }
        if (st != DB_OK) {
            status = cli_error(cmd, "%s: not stored: %s", files[i].path, err);
            break;
        }
        size_t samples = 0;
        for (size_t k = 0; k < files[i].count; k++)
            samples += files[i].items[k].count;
        if (added)
            printf("%s: stored (%s, machine %s, commit %.12s, %zu benchmarks, %zu samples%s)\n",
                   files[i].path, files[i].kind, files[i].machine_key,
                   files[i].commit && *files[i].commit ? files[i].commit : "unknown",
                   files[i].count, samples, files[i].error_count ? ", errors" : "");
        else
            printf("%s: already in the store (sha256 %.16s), skipped\n", files[i].path,
                   files[i].sha256);
    }
    for (int i = 0; i < count; i++)
        result_file_free(&files[i]);
    free(files);
    return status < 0 ? CLI_EXIT_OK : status;
}

static bool digest_matches(const char *content, const char *sha256)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    char hex[65] = "";
    if (!EVP_Digest(content, strlen(content), digest, &digest_len, EVP_sha256(), NULL))
        return false;
    for (unsigned i = 0; i < digest_len && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return !strcmp(hex, sha256);
}

/* Whether the file at path holds exactly text. */
static bool same_content(const char *path, const char *text)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    const size_t n = strlen(text);
    bool same = true;
    size_t at = 0;
    char buf[65536];
    size_t got;
    while (same && (got = fread(buf, 1, sizeof buf, f)) > 0) {
        same = at + got <= n && !memcmp(buf, text + at, got);
        at += got;
    }
    fclose(f);
    return same && at == n;
}

static int export_files(db *d, const char *out_dir)
{
    char err[DB_MESSAGE];
    db_rows ids = {0};
    if (db_query(d, "SELECT f.id FROM files f ORDER BY f.id", 0, NULL, &ids, err,
                 sizeof err) != DB_OK)
        return cli_error(cmd, "%s: %s", d->target, err);
    int status = -1;
    size_t written = 0, present = 0;
    for (size_t i = 0; i < ids.count && status < 0; i++) {
        db_rows row = {0};
        const char *id[1] = {db_cell(&ids, i, 0)};
        if (db_query(d, "SELECT m.machine_key, f.name, f.sha256, f.content FROM files f JOIN "
                     "machines m ON m.id = f.machine_id WHERE f.id = $1", 1, id, &row, err,
                     sizeof err) != DB_OK || row.count != 1) {
            status = cli_error(cmd, "%s: file %s: %s", d->target, id[0],
                               row.count == 1 ? err : "gone");
            db_rows_free(&row);
            break;
        }
        const char *machine = db_cell(&row, 0, 0), *name = db_cell(&row, 0, 1);
        const char *sha256 = db_cell(&row, 0, 2), *content = db_cell(&row, 0, 3);
        char dir[4096], path[4608];
        if (!plain_name(machine) || !plain_name(name))
            status = cli_error(cmd, "%s: file %s: stored name '%s/%s' is not a plain name",
                               d->target, id[0], machine, name);
        else if (!digest_matches(content, sha256))
            status = cli_error(cmd, "%s: file %s (%s): its text no longer matches its SHA-256",
                               d->target, id[0], name);
        else if (snprintf(dir, sizeof dir, "%s/%s", out_dir, machine) >= (int)sizeof dir ||
                 (mkdir(out_dir, 0777) != 0 && errno != EEXIST) ||
                 (mkdir(dir, 0777) != 0 && errno != EEXIST))
            status = cli_error(cmd, "cannot create %s: %s", dir, strerror(errno));
        for (int attempt = 0; status < 0 && attempt < 2; attempt++) {
            /* The stored name; when another file holds it, the name with the hash. */
            const size_t stem = strlen(name) > 5 && !strcmp(name + strlen(name) - 5, ".json")
                                    ? strlen(name) - 5 : strlen(name);
            if (attempt == 0)
                snprintf(path, sizeof path, "%s/%s", dir, name);
            else
                snprintf(path, sizeof path, "%s/%.*s-%.12s%s", dir, (int)stem, name, sha256,
                         name + stem);
            if (same_content(path, content)) {
                present++;
                break;
            }
            const attn_file_part part = {content, strlen(content)};
            attn_error werr;
            if (attn_file_write(path, &part, 1, ATTN_FILE_EXCLUSIVE, &werr) == ATTN_OK) {
                written++;
                break;
            }
            if (errno != EEXIST || attempt == 1)
                status = cli_error(cmd, "%s", werr.message);
        }
        db_rows_free(&row);
    }
    db_rows_free(&ids);
    if (status >= 0)
        return status;
    printf("exported %zu files to %s (%zu already there)\n", written, out_dir, present);
    return CLI_EXIT_OK;
}

static int info(db *d, cli_format format)
{
    static const char *const tables[] = {"machines", "builds",  "files", "benchmarks",
                                         "measurements", "samples", "errors"};
    enum { TABLES = sizeof tables / sizeof *tables };
    int64_t counts[TABLES];
    char err[DB_MESSAGE];
    for (int i = 0; i < TABLES; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", tables[i]);
        db_rows rows = {0};
        if (db_query(d, sql, 0, NULL, &rows, err, sizeof err) != DB_OK)
            return cli_error(cmd, "%s: %s", d->target, err);
        counts[i] = strtoll(db_cell(&rows, 0, 0), NULL, 10);
        db_rows_free(&rows);
    }
    const int version = db_schema_version(d, err, sizeof err);
    if (format == CLI_FORMAT_JSON) {
        json_t *root = json_pack("{s:s, s:s, s:i}", "backend", d->backend->name, "target",
                                 d->target, "schema_version", version);
        for (int i = 0; root && i < TABLES; i++)
            json_object_set_new(root, tables[i], json_integer(counts[i]));
        const bool ok = root && cli_json_print(root);
        json_decref(root);
        return ok ? CLI_EXIT_OK : out_of_memory();
    }
    printf("store: %s (%s), schema version %d\n", d->target, d->backend->name, version);
    for (int i = 0; i < TABLES; i++)
        printf("  %-13s %lld\n", tables[i], (long long)counts[i]);
    return CLI_EXIT_OK;
}

static bool takes_separate_value(const char *arg)
{
    if (arg[0] != '-' || arg[1] != '-' || strchr(arg, '='))
        return false;
    for (int i = 0; i < O_COUNT; i++)
        if (db_options[i].metavar && !strcmp(arg + 2, db_options[i].name))
            return true;
    return false;
}

int cli_db(int argc, char **argv)
{
    static const char *const actions[] = {"ingest", "export", "info"};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        print_db_help();
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    int action = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(argv[1], actions[i]))
            action = i;
    if (action < 0)
        return cli_error(cmd, "unknown action '%s' (ingest, export, info)", argv[1]);
    /* Files out first, so cli_next_option sees only options. */
    char **rest = malloc((size_t)argc * sizeof *rest);
    const char **files = malloc((size_t)argc * sizeof *files);
    if (!rest || !files) {
        free(rest);
        free(files);
        return out_of_memory();
    }
    int rest_count = 0, file_count = 0;
    for (int i = 1; i < argc; i++) {
        if (i == 1 || argv[i][0] == '-') {
            rest[rest_count++] = argv[i];
            if (i > 1 && takes_separate_value(argv[i]) && i + 1 < argc)
                rest[rest_count++] = argv[++i];
        } else {
            files[file_count++] = argv[i];
        }
    }
    rest[rest_count] = NULL;
    db_config c = {.out = "results", .format = CLI_FORMAT_TEXT};
    int status = -1, o;
    const char *value;
    while (status < 0 && (o = cli_next_option(cmd, rest_count, rest, db_options, O_COUNT,
                                              &value)) != CLI_OPTION_END) {
        switch (o) {
        case O_DB: c.target = value; break;
        case O_MACHINE: c.given.machine = value; break;
        case O_COMMIT: c.given.commit = value; break;
        case O_DATE: c.given.date = value; break;
        case O_OUT: c.out = value; break;
        case O_FORMAT:
            if (!cli_parse_format(cmd, value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON,
                                  &c.format))
                status = CLI_EXIT_USAGE;
            break;
        case O_HELP: print_db_help(); status = CLI_EXIT_OK; break;
        default: status = CLI_EXIT_USAGE; break;
        }
    }
    free(rest);
    if (status < 0 && action == 0 && file_count == 0)
        status = cli_error(cmd, "ingest: no FILE given");
    if (status < 0 && action != 0 && file_count > 0)
        status = cli_error(cmd, "%s takes no FILE ('%s')", actions[action], files[0]);
    db d;
    char err[DB_MESSAGE];
    if (status < 0 && !db_open(&d, db_default_target(c.target), action == 0, err, sizeof err))
        status = cli_error(cmd, "%s", err);
    if (status < 0) {
        status = action == 0   ? ingest(&d, files, file_count, &c.given)
                 : action == 1 ? export_files(&d, c.out)
                               : info(&d, c.format);
        db_close(&d);
    }
    free(files);
    return status;
}
