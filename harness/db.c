/* db.c — the results store: picking a backend, the schema and its migrations.
 *
 * The schema (every kind of result file maps onto it; `attnbench db --help` prints it):
 *   machines     one per machine id: CPU, ISA, caches, cores
 *   builds       commit, dirty, version, compiler, build type, optimization, flags, sanitizers
 *   files        one per ingested file: its SHA-256 (unique: ingestion is idempotent), kind,
 *                name, date, machine, build, the roofline it recorded, and its exact text, so
 *                `db export` gives the file back byte for byte
 *   benchmarks   one per benchmark name (compare's names): variant, shape, type, threads
 *   measurements one per (file, benchmark): the parameters it ran with, its median
 *   samples      every timed repetition of a measurement, in the file's order
 *   errors       entries a file reported as failed (Google Benchmark's error_occurred)
 * Migrations are a list: version i+1 is migrations[i], applied in one transaction with its row
 * in schema_version, so a store is always at a version this code knows how to read. */
#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* In the statements, ID stands for the backend's self-assigned integer key. */
static const char *const schema_v1[] = {
    "CREATE TABLE machines (id ID, machine_key TEXT NOT NULL UNIQUE, vendor TEXT, model_name "
    "TEXT, isa TEXT, l1d_bytes BIGINT, l2_bytes BIGINT, l3_bytes BIGINT, cpus_online BIGINT)",
    "CREATE TABLE builds (id ID, commit_sha TEXT NOT NULL, dirty INTEGER NOT NULL, version TEXT "
    "NOT NULL, compiler TEXT NOT NULL, buildtype TEXT NOT NULL, optimization TEXT NOT NULL, "
    "c_args TEXT NOT NULL, sanitize TEXT NOT NULL, UNIQUE (commit_sha, dirty, version, "
    "compiler, buildtype, optimization, c_args, sanitize))",
    "CREATE TABLE files (id ID, sha256 TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, name TEXT NOT "
    "NULL, date TEXT NOT NULL, machine_id BIGINT NOT NULL REFERENCES machines (id), build_id "
    "BIGINT NOT NULL REFERENCES builds (id), peak TEXT, content TEXT NOT NULL, ingested_at "
    "TEXT NOT NULL)",
    "CREATE TABLE benchmarks (id ID, name TEXT NOT NULL UNIQUE, variant TEXT, batch BIGINT, "
    "heads_q BIGINT, heads_kv BIGINT, len_q BIGINT, len_kv BIGINT, head_dim BIGINT, causal "
    "INTEGER, dtype TEXT, threads BIGINT)",
    "CREATE TABLE measurements (id ID, file_id BIGINT NOT NULL REFERENCES files (id), "
    "benchmark_id BIGINT NOT NULL REFERENCES benchmarks (id), params TEXT, median_s DOUBLE "
    "PRECISION, UNIQUE (file_id, benchmark_id))",
    "CREATE TABLE samples (measurement_id BIGINT NOT NULL REFERENCES measurements (id), idx "
    "INTEGER NOT NULL, seconds DOUBLE PRECISION NOT NULL, PRIMARY KEY (measurement_id, idx))",
    "CREATE TABLE errors (file_id BIGINT NOT NULL REFERENCES files (id), benchmark TEXT NOT "
    "NULL, message TEXT NOT NULL)",
};
/* v2: what `history` looks up: a benchmark's measurements, a machine's files by date. */
static const char *const schema_v2[] = {
    "CREATE INDEX measurements_by_benchmark ON measurements (benchmark_id)",
    "CREATE INDEX files_by_machine_date ON files (machine_id, date)",
};
static const struct migration {
    const char *const *statements;
    size_t count;
} migrations[] = {
    {schema_v1, sizeof schema_v1 / sizeof *schema_v1},
    {schema_v2, sizeof schema_v2 / sizeof *schema_v2},
};
static const int migration_count = (int)(sizeof migrations / sizeof *migrations);

int db_schema_latest(void) { return migration_count; }

/* In priority order: the first whose claims() accepts the target opens it. */
static const db_backend *const backends[] = {
#if ATTN_HAVE_LIBPQ
    &db_pg_backend,
#endif
    &db_sqlite_backend,
};

const char *db_default_target(const char *explicit)
{
    if (explicit && *explicit)
        return explicit;
    const char *env = getenv("ATTN_DB");
    return env && *env ? env : "results/attnbench.sqlite";
}

db_status db_query(db *d, const char *sql, int nparams, const char *const *params, db_rows *rows,
                   char *err, size_t len)
{
    return d->backend->query(d->handle, sql, nparams, params, rows, err, len);
}

db_status db_begin(db *d, char *err, size_t len)
{
    return db_query(d, d->backend->begin_write, 0, NULL, NULL, err, len);
}

db_status db_commit(db *d, char *err, size_t len)
{
    return db_query(d, "COMMIT", 0, NULL, NULL, err, len);
}

void db_rollback(db *d)
{
    char ignored[DB_MESSAGE];
    db_query(d, "ROLLBACK", 0, NULL, NULL, ignored, sizeof ignored);
}

/* The version in schema_version; 0 when the table is absent or empty, -1 after an error
 * other than its absence (reported in err). */
static int read_version(db *d, bool table_may_be_absent, char *err, size_t len)
{
    db_rows rows = {0};
    const db_status st = db_query(d, "SELECT MAX(version) FROM schema_version", 0, NULL, &rows,
                                  err, len);
    if (st != DB_OK)
        return table_may_be_absent ? 0 : -1;
    const char *cell = rows.count ? db_cell(&rows, 0, 0) : NULL;
    const int version = cell ? atoi(cell) : 0;
    db_rows_free(&rows);
    return version;
}

int db_schema_version(db *d, char *err, size_t len) { return read_version(d, false, err, len); }

/* sql with every "ID" word replaced by the backend's key column type; NULL on OOM. */
static char *with_id_column(const char *sql, const char *id_column)
{
    size_t n = 1;
    for (const char *s = sql; (s = strstr(s, " ID,")); s++)
        n++;
    char *out = malloc(strlen(sql) + n * strlen(id_column) + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const char *s = sql; *s;) {
        if (!strncmp(s, " ID,", 4)) {
            o += sprintf(o, " %s,", id_column);
            s += 4;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

/* One attempt at bringing the schema from its version to the latest, in one transaction. */
static db_status migrate_once(db *d, char *err, size_t len)
{
    db_status st = db_begin(d, err, len);
    if (st == DB_OK && d->backend->schema_lock)
        st = db_query(d, d->backend->schema_lock, 0, NULL, NULL, err, len);
    if (st == DB_OK)
        st = db_query(d, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
                      0, NULL, NULL, err, len);
    const int from = st == DB_OK ? read_version(d, false, err, len) : -1;
    if (st == DB_OK && from < 0)
        st = DB_FAILED;
    if (st == DB_OK && from > migration_count) {
        snprintf(err, len, "the store's schema is version %d, newer than this attnbench's (%d)",
                 from, migration_count);
        st = DB_FAILED;
    }
    for (int v = from; st == DB_OK && v < migration_count; v++) {
        for (size_t i = 0; st == DB_OK && i < migrations[v].count; i++) {
            char *sql = with_id_column(migrations[v].statements[i], d->backend->id_column);
            if (!sql) {
                snprintf(err, len, "out of memory");
                st = DB_FAILED;
                break;
            }
            st = db_query(d, sql, 0, NULL, NULL, err, len);
            free(sql);
        }
        char version[16];
        snprintf(version, sizeof version, "%d", v + 1);
        const char *params[1] = {version};
        if (st == DB_OK)
            st = db_query(d, "INSERT INTO schema_version (version) VALUES ($1)", 1, params, NULL,
                          err, len);
    }
    if (st == DB_OK)
        st = db_commit(d, err, len);
    if (st != DB_OK)
        db_rollback(d);
    return st;
}

/* SQLite creates the file but not its folder: the default results/ may not exist yet. */
static void make_parent_dir(const char *path)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            return; /* opening the file reports it */
    }
}

bool db_open(db *d, const char *target, bool create, char *err, size_t len)
{
    *d = (db){0};
    if (snprintf(d->target, sizeof d->target, "%s", target) >= (int)sizeof d->target) {
        snprintf(err, len, "--db: too long");
        return false;
    }
    for (size_t i = 0; i < sizeof backends / sizeof *backends && !d->backend; i++)
        if (backends[i]->claims(target))
            d->backend = backends[i];
#if !ATTN_HAVE_LIBPQ
    if (strstr(target, "postgres") || strstr(target, "dbname=")) {
        snprintf(err, len, "%s looks like a PostgreSQL connection string, but this attnbench "
                 "was built without libpq (Debian: libpq-dev)", target);
        return false;
    }
#endif
    if (d->backend == &db_sqlite_backend && !create && access(target, F_OK) != 0) {
        snprintf(err, len, "no store at %s (`attnbench db ingest` creates it; --db or ATTN_DB "
                 "names another)", target);
        return false;
    }
    if (d->backend == &db_sqlite_backend)
        make_parent_dir(target);
    d->handle = d->backend->open(target, err, len);
    if (!d->handle)
        return false;
    /* What messages and outputs name: a connection string may hold a password. */
    if (d->backend != &db_sqlite_backend)
        snprintf(d->target, sizeof d->target, "%s store", d->backend->name);
    /* Most opens find the schema current: check without taking the write lock. */
    if (read_version(d, true, err, len) == migration_count)
        return true;
    for (int attempt = 0; attempt < 8; attempt++) {
        const db_status st = migrate_once(d, err, len);
        if (st == DB_OK)
            return true;
        if (st == DB_FAILED)
            break;
    }
    d->backend->close(d->handle);
    d->handle = NULL;
    return false;
}

void db_close(db *d)
{
    if (d->handle)
        d->backend->close(d->handle);
    d->handle = NULL;
}
