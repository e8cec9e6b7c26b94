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
#include "cli_commands.h"

#include "atomic_file.h"
#include "db.h"
#include "result_file.h"
#include "stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const cmd = "db";

static int out_of_memory(void) { return cli_error(cmd, "out of memory"); }

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
    params p = {0};
    param(&p, f->machine_key);
    param(&p, f->vendor);
    param(&p, f->cpu);
    param(&p, f->isa);
    for (int i = 0; i < 4; i++)
        param_int_or_null(&p, f->machine_sizes[i] >= 0, f->machine_sizes[i]);
    return find_or_add(
        d,
        "INSERT INTO machines (machine_key, vendor, model_name, isa, l1d_bytes, l2_bytes, "
        "l3_bytes, cpus_online) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (machine_key) DO NOTHING",
        "SELECT id FROM machines WHERE machine_key = $1", &p, 1, id, err, len);
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
        status = result_file_read(paths[i], given, &files[i]);
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
    char hex[65];
    return result_file_sha256(content, strlen(content), hex) && !strcmp(hex, sha256);
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
        if (!result_file_plain_name(machine) || !result_file_plain_name(name))
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
