/* cli_compare_read.h — the result files `attnbench compare` reads (cli_compare_read.c): Google
 * Benchmark JSON (the per-repetition entries; aggregates are ignored) or attnbench result files
 * (`run --format json`, `run --save`, `sweep`: each record's samples_s, else its median_s). */
#ifndef ATTN_CLI_COMPARE_READ_H
#define ATTN_CLI_COMPARE_READ_H

#include <jansson.h>
#include <stddef.h>

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

void result_set_free(result_set *r);
/* The series of that name; NULL when there is none. */
series *find_series(const result_set *r, const char *name);
/* Reads the file at `path` into *r (free it with result_set_free whatever the outcome): -1 when
 * it holds benchmarks, else an exit status after a message on stderr naming `compare`. */
int read_results(const char *path, result_set *r);

#endif
