/* db_sqlite.c — the results store in one SQLite file (the default backend).
 *
 * Many writers at once: the file is in WAL mode (readers never block the writer), a writing
 * transaction starts with BEGIN IMMEDIATE (it takes the write lock at once, so two ingesters
 * never both read and then both try to upgrade, which SQLite can only resolve by failing one),
 * and a busy handler waits up to a minute for the lock. synchronous=FULL: a committed file
 * survives a power cut. */
#include "db.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int busy_timeout_ms = 60000;

static bool sqlite_claims(const char *target)
{
    (void)target;
    return true; /* anything that is not a PostgreSQL connection string is a path */
}

static db_status fail(sqlite3 *s, int rc, char *err, size_t len)
{
    snprintf(err, len, "%s", s ? sqlite3_errmsg(s) : sqlite3_errstr(rc));
    const int primary = rc & 0xff;
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED ? DB_RETRY : DB_FAILED;
}

static db_status sqlite_query(void *handle, const char *sql, int nparams,
                              const char *const *params, db_rows *rows, char *err, size_t len)
{
    sqlite3 *s = handle;
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(s, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return fail(s, rc, err, len);
    if (sqlite3_bind_parameter_count(stmt) != nparams) {
        sqlite3_finalize(stmt);
        snprintf(err, len, "statement takes %d parameters, given %d",
                 sqlite3_bind_parameter_count(stmt), nparams);
        return DB_FAILED;
    }
    for (int i = 0; i < nparams; i++) {
        rc = params[i] ? sqlite3_bind_text(stmt, i + 1, params[i], -1, SQLITE_STATIC)
                       : sqlite3_bind_null(stmt, i + 1);
        if (rc != SQLITE_OK) {
            sqlite3_finalize(stmt);
            return fail(s, rc, err, len);
        }
    }
    const size_t columns = (size_t)sqlite3_column_count(stmt);
    db_rows got = {.columns = columns};
    size_t capacity = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (!rows)
            continue;
        if (got.count == capacity) {
            capacity = capacity ? 2 * capacity : 16;
            char **cells = realloc(got.cells, capacity * columns * sizeof *cells);
            if (!cells)
                goto oom;
            got.cells = cells;
        }
        bool lost = false; /* a cell could not be copied */
        for (size_t c = 0; c < columns; c++) {
            char *cell = NULL;
            const int type = sqlite3_column_type(stmt, (int)c);
            if (type == SQLITE_FLOAT) {
                /* column_text rounds a double to 15 digits; 17 give it back exactly. */
                char buf[32];
                snprintf(buf, sizeof buf, "%.17g", sqlite3_column_double(stmt, (int)c));
                cell = strdup(buf);
            } else if (type != SQLITE_NULL) {
                const unsigned char *text = sqlite3_column_text(stmt, (int)c);
                cell = text ? strdup((const char *)text) : NULL;
            }
            lost |= type != SQLITE_NULL && !cell;
            got.cells[got.count * columns + c] = cell;
        }
        got.count++;
        if (lost)
            goto oom;
    }
    if (rc != SQLITE_DONE) {
        const db_status status = fail(s, rc, err, len);
        sqlite3_finalize(stmt);
        db_rows_free(&got);
        return status;
    }
    sqlite3_finalize(stmt);
    if (rows)
        *rows = got;
    return DB_OK;
oom:
    sqlite3_finalize(stmt);
    db_rows_free(&got);
    snprintf(err, len, "out of memory");
    return DB_FAILED;
}

static void sqlite_close(void *handle) { sqlite3_close(handle); }

static void *sqlite_open(const char *target, char *err, size_t len)
{
    sqlite3 *s = NULL;
    int rc = sqlite3_open_v2(target, &s, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, len, "cannot open %s: %s", target, s ? sqlite3_errmsg(s) : "out of memory");
        sqlite3_close(s);
        return NULL;
    }
    sqlite3_busy_timeout(s, busy_timeout_ms);
    static const char *const setup[] = {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                                        "PRAGMA foreign_keys=ON"};
    for (size_t i = 0; i < sizeof setup / sizeof *setup; i++) {
        char why[DB_MESSAGE];
        db_rows rows = {0};
        if (sqlite_query(s, setup[i], 0, NULL, &rows, why, sizeof why) != DB_OK) {
            snprintf(err, len, "%s: %s: %s", target, setup[i], why);
            sqlite3_close(s);
            return NULL;
        }
        db_rows_free(&rows);
    }
    return s;
}

const db_backend db_sqlite_backend = {
    .name = "sqlite",
    .claims = sqlite_claims,
    .open = sqlite_open,
    .close = sqlite_close,
    .query = sqlite_query,
    .begin_write = "BEGIN IMMEDIATE",
    .id_column = "INTEGER PRIMARY KEY",
    .schema_lock = NULL,
};
