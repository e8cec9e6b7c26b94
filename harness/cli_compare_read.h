/* cli_compare_read.h — the result files `attnbench compare` reads (cli_compare_read.c): Google
 * Benchmark JSON (the per-repetition entries; aggregates are ignored) or attnbench result files
 * (`run --format json`, `run --save`, `sweep`: each record's samples_s, else its median_s). */
#ifndef ATTN_CLI_COMPARE_READ_H
#define ATTN_CLI_COMPARE_READ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* The reading of an attnbench result record, shared with `db ingest`: cli_record_invalid names
 * the first bad identifying field (NULL: none), with what it should be and its value;
 * cli_record_name is the record's benchmark name
 * (VARIANT/B1.Hq8.Hkv8.Lq1024.Lk1024.d64[.causal][.blhd][.kvlens][.mask][.bf16]/tN), false when
 * it does not fit; cli_value_text is a JSON value cut short for a message. */
const char *cli_record_invalid(const json_t *record, const char **expected,
                               const json_t **value);
bool cli_record_name(const json_t *record, char *buf, size_t len);
const char *cli_value_text(const json_t *x, char *buf, size_t len);

/* The parts of a result file both readers (compare's here, `db ingest`'s result_file.c) check
 * the same way; each returns -1 when fine, else an exit status after a message naming cmd and
 * the file at path. */
typedef struct gbench_entry {
    const char *key;    /* run_name, else name */
    bool skip;          /* an aggregate: derived from the runs, left out */
    const char *error;  /* error_message of an entry that reported an error, else NULL */
    double seconds;     /* real_time in seconds (a run without error) */
    int64_t repetition; /* repetition_index; -1 when absent */
} gbench_entry;
/* benchmarks[i] of a Google Benchmark file. */
int cli_gbench_entry(const char *cmd, const char *path, size_t i, const json_t *entry,
                     gbench_entry *e);
/* The times of results[i] (benchmark `name`): samples_s, else median_s, each a positive time;
 * *count of them, the k-th being cli_record_time(*times, k). */
int cli_record_times(const char *cmd, const char *path, size_t i, const char *name,
                     const json_t *record, const json_t **times, size_t *count);
double cli_record_time(const json_t *times, size_t k);

void result_set_free(result_set *r);
/* The series of that name; NULL when there is none. */
series *find_series(const result_set *r, const char *name);
/* Reads the file at `path` into *r (free it with result_set_free whatever the outcome): -1 when
 * it holds benchmarks, else an exit status after a message on stderr naming `compare`. */
int read_results(const char *path, result_set *r);

#endif
