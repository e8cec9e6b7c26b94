/* cli.h — the helpers every subcommand of the attnbench tool shares (cli.c): options, error
 * messages, number parsing, output, so every subcommand behaves the same way. The bottom of the
 * tool: cli.c calls nothing of harness/ but the named shapes (shapes.c). The subcommands
 * themselves are cli_commands.h. */
#ifndef ATTN_CLI_H
#define ATTN_CLI_H

#include "attn.h"

#include <jansson.h>
#include <stdio.h>

/* A list of integers from a flag (cli_parse_int_list). */
enum { CLI_MAX_LIST = 64 };
typedef struct cli_int_list {
    int64_t value[CLI_MAX_LIST];
    int count;
} cli_int_list;

/* Exit statuses of every subcommand. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1, /* ran, but a result is wrong (e.g. a variant beyond its tolerance) */
    CLI_EXIT_USAGE = 2,  /* bad input: flag, value, file, shape; or a resource error */
};

/* Element types in listings: "f32,bf16,f16" for a mask of 1u << attn_dtype, and the
 * same as a JSON list of names (NULL on OOM). */
void cli_dtypes_format(unsigned dtypes, char *buf, size_t len);
json_t *cli_dtypes_json(unsigned dtypes);
/* Why variant `info` cannot be part of a default set for inputs of `dtype` and a problem
 * using the attn_feature options `features`: this CPU cannot run it, it does not implement an
 * option, or it does not read that type. NULL when it can. The text lives in buf (or info). */
const char *cli_variant_skip_reason(const attn_variant_info *info, attn_dtype dtype,
                                    unsigned features, char *buf,
                                    size_t len);
/* --dtype / --out-dtype values: false after a message naming the command and flag. */
bool cli_parse_dtype(const char *command, const char *text, attn_dtype *out);
bool cli_parse_out_dtype(const char *command, const char *text, bool *same);
/* --shape NAME: a named shape of shapes.c; NULL after a message naming the known ones. */
struct attn_named_shape;
const struct attn_named_shape *cli_parse_shape(const char *command, const char *name);
/* Each size that is 0 (no flag gave it) from the shape s, and causal when s is; nothing when s
 * is NULL. The flags of a command override its --shape, whatever their order. */
void cli_shape_fill(const struct attn_named_shape *s, int64_t *batch, int64_t *heads_q,
                    int64_t *heads_kv, int64_t *len_q, int64_t *len_kv, int64_t *head_dim,
                    bool *causal);

/* Prints "attnbench <command>: <message>" on stderr and returns CLI_EXIT_USAGE. */
int cli_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- options: a table of long options drives both parsing and --help --------------------- */

typedef struct cli_option {
    const char *name;    /* long name without "--" */
    const char *metavar; /* name of its value in the help ("N", "FILE"); NULL: takes none */
    const char *help;    /* one line */
} cli_option;

#define CLI_OPTION_END (-1)   /* no options left */
#define CLI_OPTION_ERROR (-2) /* an error was reported on stderr */

/* getopt_long over the table: returns the index of the next option found (its value, if it
 * takes one, in *value), CLI_OPTION_END, or CLI_OPTION_ERROR after printing why (unknown or
 * ambiguous option, missing value, stray argument). -h is --help when the table has "help". */
int cli_next_option(const char *command, int argc, char **argv, const cli_option *options,
                    int count, const char **value);
/* Prints "  --name METAVAR   help" for every option. */
void cli_print_options(FILE *out, const cli_option *options, int count);

/* Strict number parsing: the whole text must be the number (no blanks, no "12x"). Each reports
 * "<command>: --<flag>: ..." on failure and returns false. */
bool cli_parse_int64(const char *command, const char *flag, const char *text, int64_t min,
                     int64_t max, int64_t *out);
/* --kv-lens N,N,...: exactly `batch` integers in [0, INT32_MAX], into a new array (*out, free
 * it); false with one message otherwise. */
bool cli_parse_kv_lens(const char *command, const char *text, int64_t batch, int32_t **out);
bool cli_parse_uint64(const char *command, const char *flag, const char *text, uint64_t *out);
/* A comma list of distinct integers in [min, max] ("1,2,4"), each checked like a single flag
 * value (a list of CLI_MAX_LIST at most). */
bool cli_parse_int_list(const char *command, const char *flag, const char *text, int64_t min,
                        int64_t max, cli_int_list *out);
/* "1,2,4" for a list; buf of CLI_INT_LIST_TEXT bytes holds any list of thread counts. */
enum { CLI_INT_LIST_TEXT = CLI_MAX_LIST * 8 };
void cli_int_list_format(const cli_int_list *list, char *buf, size_t len);
/* Thread counts as given (0: the library's default) to the counts a run uses: 0 becomes
 * attn_default_threads(), and an empty list the default alone. False, after a message, when
 * two entries become the same count ("0,2" on two cores). */
bool cli_resolve_threads(const char *command, cli_int_list *threads);
/* A positive finite float (as float32 too). */
bool cli_parse_positive_float(const char *command, const char *flag, const char *text,
                              float *out);

typedef enum cli_format { CLI_FORMAT_TEXT, CLI_FORMAT_JSON, CLI_FORMAT_CSV } cli_format;
/* Parses text|json|csv; `allowed` is a mask of 1 << format. */
bool cli_parse_format(const char *command, const char *text, unsigned allowed, cli_format *out);

/* ---- output ------------------------------------------------------------------------------ */

/* The machine as every JSON output describes it: vendor, model, ISA, caches. NULL on OOM. */
json_t *cli_machine_json(void);
/* A number, or null when it is NaN or infinite (JSON has no such numbers). */
json_t *cli_json_real(double x);
/* Dumps a document on stdout with a final newline; false on error. Steals nothing. */
bool cli_json_print(const json_t *root);

/* A text table printed with aligned columns. Cells are added row by row, header row first. */
typedef struct cli_table {
    int columns;
    const char *align; /* one 'l' or 'r' per column */
    size_t count, capacity;
    char **cells;
    bool out_of_memory; /* an add failed; cli_table_print then refuses */
} cli_table;

void cli_table_init(cli_table *t, int columns, const char *align);
void cli_table_add(cli_table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the table; false when an earlier add ran out of memory. */
bool cli_table_print(const cli_table *t, FILE *out);
void cli_table_free(cli_table *t);

#endif
