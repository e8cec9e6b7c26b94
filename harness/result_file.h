/* result_file.h — one result file of any kind the suite writes (run, sweep, tune's JSON,
 * attnbench-gbench, perf-ab), read whole and checked: what `db ingest` stores. */
#ifndef ATTN_RESULT_FILE_H
#define ATTN_RESULT_FILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
    const char *vendor, *cpu; /* NULL when not recorded */
    char *isa;                /* the usable ISA as recorded (a list as compact JSON), or NULL */
    int64_t machine_sizes[4]; /* l1d, l2, l3 bytes, cpus online; -1 when not recorded */
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

/* Reads and checks the file at path; -1 when it is a result file, else an exit status after
 * one message on stderr naming the file (and the record and field, when one is bad). The
 * measurements come sorted by benchmark name. Free with result_file_free either way. */
int result_file_read(const char *path, const provenance *given, result_file *f);
void result_file_free(result_file *f);
/* A name a file can be written back under: not empty, no '/', not starting with '.'. */
bool result_file_plain_name(const char *name);
/* The SHA-256 of data as 64 hex digits; false when libcrypto fails. */
bool result_file_sha256(const char *data, size_t size, char hex[65]);

#endif
