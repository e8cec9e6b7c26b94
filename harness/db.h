/* db.h — the results store behind `attnbench db` and `attnbench history`: one schema, two
 * backends (SQLite, the embedded default, one file; PostgreSQL through libpq, for a fleet of CI
 * runners writing at once).
 *
 * A backend runs one SQL statement at a time with text parameters and text results (a NULL
 * pointer is SQL NULL). Statements are written once for both: parameters are $1, $2, ... in
 * the order they first appear (PostgreSQL's numbered parameters; SQLite reads "$1" as a named
 * parameter and numbers named parameters in order of first appearance, so the numbers agree),
 * and upserts use INSERT ... ON CONFLICT ... RETURNING, which both have (SQLite since 3.35). */
#ifndef ATTN_DB_H
#define ATTN_DB_H

#include "attn_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

/* The rows a statement returned, every cell as text (NULL: SQL NULL). */
typedef struct db_rows {
    size_t count, columns;
    char **cells; /* count x columns, row-major */
} db_rows;

static inline const char *db_cell(const db_rows *r, size_t row, size_t column)
{
    return r->cells[row * r->columns + column];
}
/* Inline, as db_cell: the backends fill and free rows without calling up into db.c (the
 * layering test forbids a call cycle between db.c and its backends). */
static inline void db_rows_free(db_rows *r)
{
    for (size_t i = 0; r->cells && i < r->count * r->columns; i++)
        free(r->cells[i]);
    free(r->cells);
    *r = (db_rows){0};
}

typedef enum db_status {
    DB_OK,
    DB_RETRY, /* the transaction lost a race (deadlock, serialization, busy): run it again */
    DB_FAILED,
} db_status;

enum { DB_MESSAGE = 512 };

/* One backend: a table row (db.c picks the first that claims a target). */
typedef struct db_backend {
    const char *name;
    /* Whether a --db / ATTN_DB target is this backend's (a connection string, a path). */
    bool (*claims)(const char *target);
    /* NULL after a message in err. */
    void *(*open)(const char *target, char *err, size_t len);
    void (*close)(void *handle);
    /* Runs one statement; rows may be NULL when the caller wants none. */
    db_status (*query)(void *handle, const char *sql, int nparams, const char *const *params,
                       db_rows *rows, char *err, size_t len);
    const char *begin_write; /* starts a transaction that will write */
    const char *id_column;   /* the type of an integer key the database assigns */
    const char *schema_lock; /* serialises migrations inside a transaction; NULL: begin_write does */
} db_backend;

typedef struct db {
    const db_backend *backend;
    void *handle;
    char target[1024]; /* a SQLite path; for PostgreSQL a name without the connection string */
} db;

/* The target: `explicit` (--db), else $ATTN_DB, else results/attnbench.sqlite. */
const char *db_default_target(const char *explicit);
/* Opens the store and brings its schema up to date (migrations, each in one transaction).
 * A SQLite file is created only when `create` (ingest); reading a store that is not there is
 * an error, not a new empty store. False after a message in err. */
bool db_open(db *d, const char *target, bool create, char *err, size_t len);
void db_close(db *d);

db_status db_query(db *d, const char *sql, int nparams, const char *const *params, db_rows *rows,
                   char *err, size_t len);
/* BEGIN for writing; COMMIT; ROLLBACK (errors ignored: the connection aborts the transaction
 * anyway). */
db_status db_begin(db *d, char *err, size_t len);
db_status db_commit(db *d, char *err, size_t len);
void db_rollback(db *d);

/* The schema version this build writes, and the one the store holds after db_open. */
int db_schema_latest(void);
int db_schema_version(db *d, char *err, size_t len);

extern const db_backend db_sqlite_backend;
#if ATTN_HAVE_LIBPQ
extern const db_backend db_pg_backend;
#endif

#endif
