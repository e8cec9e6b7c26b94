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
/* cli_suggest.c: the name nearest to a mistyped one, when close enough to be a typo (else
 * NULL): among `names`, or among the long names of an option table. */
const char *cli_nearest_name(const char *given, const char *const *names, int count);
const char *cli_nearest_option(const char *given, const cli_option *options, int count);
/* Prints text and a newline, wrapped at blanks to CLI_TABLE_WIDTH columns (not with --wide):
 * `used` columns of the first line are taken already, and later lines start after `indent`
 * blanks. */
void cli_print_wrapped(FILE *out, size_t indent, size_t used, const char *text);
/* cli_text.c: between begin and end, stdout goes to memory; end prints it with every line over
 * CLI_TABLE_WIDTH wrapped at blanks under its value column (not with --wide). For text reports
 * of free-form lines (info, study, compare). end: false on a write error. */
void cli_text_begin(void);
bool cli_text_end(void);
/* Prints "  --name METAVAR   help" for every option, the help wrapped to 100 columns. */
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
/* Tables fit CLI_TABLE_WIDTH columns: the widest left-aligned columns wrap their cells onto more
 * lines; with cli_table_wide (--wide, any command) nothing wraps. */
enum { CLI_TABLE_WIDTH = 100 };
extern bool cli_table_wide;
/* Prints the table; false when an earlier add ran out of memory. */
bool cli_table_print(const cli_table *t, FILE *out);
void cli_table_free(cli_table *t);

/* ---- what several subcommands share: shape flags, conditions, progress ------------------ */

/* cli_shape_flags.c: the one grammar of shape flags (run, tune, plan, sweep). A subcommand puts
 * CLI_SHAPE_OPTION_ROWS first in its option table (its own options numbered from
 * CLI_SHAPE_OPTION_COUNT on), hands every option to cli_shape_option (1: a shape flag, handled;
 * 0: not one; -1: a bad value, reported) and builds its problem with cli_shape_flags_problem
 * (false after a message). `lists`: the lengths and head dims may be comma lists (sweep's
 * grid; the other sizes take one value everywhere). */
enum {
    CLI_SHAPE_SHAPE, CLI_SHAPE_BATCH, CLI_SHAPE_HEADS, CLI_SHAPE_KV_HEADS, CLI_SHAPE_LEN,
    CLI_SHAPE_LEN_Q, CLI_SHAPE_LEN_KV, CLI_SHAPE_DIM, CLI_SHAPE_SCALE, CLI_SHAPE_CAUSAL,
    CLI_SHAPE_KV_DTYPE, CLI_SHAPE_OPTION_COUNT
};
#define CLI_SHAPE_OPTION_ROWS(N, LENS, DIMS)   /* N: a length's metavar, "N" or "N,N,..." */   \
    [CLI_SHAPE_SHAPE] = {"shape", "NAME", "a named shape (attnbench list --shapes); the flags "  \
                                          "below override its sizes"},                         \
    [CLI_SHAPE_BATCH] = {"batch", "N", "batch size B (default 1)"},                             \
    [CLI_SHAPE_HEADS] = {"heads", "N", "query heads Hq (default 8)"},                           \
    [CLI_SHAPE_KV_HEADS] = {"kv-heads", "N", "key/value heads Hkv, dividing Hq (default Hq)"},  \
    [CLI_SHAPE_LEN] = {"len", N, "Lq and Lk at once (default " LENS ")"},                       \
    [CLI_SHAPE_LEN_Q] = {"len-q", N, "query length Lq (default: Lk)"},                          \
    [CLI_SHAPE_LEN_KV] = {"len-kv", N, "key/value length Lk (default: Lq)"},                    \
    [CLI_SHAPE_DIM] = {"dim", N, "head dimension d (default " DIMS ")"},                        \
    [CLI_SHAPE_SCALE] = {"scale", "X", "softmax scale, finite and > 0 (default 1/sqrt(d))"},    \
    [CLI_SHAPE_CAUSAL] = {"causal", NULL, "causal mask, bottom-right aligned: i sees j <= "      \
                                          "i + Lk - Lq"},                                       \
    [CLI_SHAPE_KV_DTYPE] = {"kv-dtype", "f32|bf16|f16|int8|q4",                                 \
                            "element type of K and V: int8 or q4 quantize the float32 K/V on "  \
                            "the way in (default: --dtype)"}
extern const cli_option cli_shape_options[CLI_SHAPE_OPTION_COUNT];
typedef struct cli_shape_flags {
    const struct attn_named_shape *shape; /* --shape, or NULL */
    cli_int_list batch, heads_q, heads_kv, len, len_q, len_kv, head_dim; /* count 0: not given */
    double scale; /* 0: not given */
    int causal;   /* -1: not given, 1: --causal (sweep: 0, 1 or 2 for both, its own flag) */
    int kv_dtype; /* -1: not given (K/V of --dtype), else an attn_dtype */
} cli_shape_flags;
void cli_shape_flags_init(cli_shape_flags *f);
int cli_shape_option(const char *command, int o, const char *value, bool lists,
                     cli_shape_flags *f);
/* The sizes the flags and --shape give (the first value of each list), 0 where neither gives
 * one (run fills those from its .npy inputs, then the defaults): the grammar's rules without
 * the defaults. */
typedef struct cli_shape_sizes {
    int64_t batch, heads_q, heads_kv, len_q, len_kv, head_dim;
    bool causal;
    float scale; /* 0: 1/sqrt(d) */
    int kv_dtype; /* -1: not given */
} cli_shape_sizes;
/* The problem's kv_dtype from --kv-dtype (-1: not given) once the command knows its --dtype:
 * ATTN_INT8 or ATTN_Q4 quantized, else 0 (K/V of dtype); false after a message for a float
 * type other than dtype (no mixed float types). */
bool cli_kv_dtype_resolve(const char *command, int kv_dtype, attn_dtype dtype, attn_dtype *out);
void cli_shape_flags_sizes(const cli_shape_flags *f, cli_shape_sizes *out);
/* The problem of the flags (the first value of each list): contiguous [B,H,L,d], float32;
 * missing sizes: a length follows the other, Hkv = Hq, else B 1, Hq 8, L 1024, d 64. */
bool cli_shape_flags_problem(const char *command, const cli_shape_flags *f, attn_problem *p);
/* {batch, heads_q, heads_kv, len_q, len_kv, head_dim, causal, scale}: the problem as every
 * subcommand's JSON states it. NULL on OOM. */
json_t *cli_problem_json(const attn_problem *p);

/* cli_conditions.c: the conditions of a measurement, as every record's "conditions" block:
 * loadavg_start and loadavg_end ({"1min", "5min", "15min"}), cpu_mhz ({mean, min, max, source}
 * over the CPUs of the affinity), governor, affinity ("0-3"), affinity_cpus, cpus_online,
 * smt_shared_cores (cores with two or more SMT siblings in the affinity); null where Linux does
 * not say. cli_conditions_start takes it before a measurement (NULL on OOM), cli_conditions_end
 * adds the end's load average (false on OOM). cli_conditions_warn prints a warning on stderr
 * when the load average at the start says other work keeps half the CPUs busy or more
 * (cli_conditions_busy: whether it does, with the figures). */
json_t *cli_conditions_start(void);
bool cli_conditions_end(json_t *conditions);
bool cli_conditions_busy(const json_t *conditions, double *load, int *cpus);
/* The rule itself: a 1-minute load average of half the CPUs or more (false for a NaN load). */
bool cli_load_busy(double load, int cpus);
void cli_conditions_warn(const char *command, const json_t *conditions);
/* Adds the block every JSON document of a measurement carries: tool, machine, shape (the
 * problem, cli_problem_json; null without one) and conditions (stolen; null when NULL). False on
 * OOM (conditions released either way). */
bool cli_document_stamp(json_t *root, const attn_problem *p, json_t *conditions);

/* cli_progress.c: progress of long work on stderr (tune, sweep, run with many variants,
 * gbench): a bar with the time left on a terminal, plain lines every few seconds off one (CI
 * logs), nothing with --quiet. update() says `done` of `total` steps are done and what runs now
 * (may be NULL); end() clears a terminal line before the command's own output. */
typedef struct cli_progress {
    const char *command;
    size_t total;
    double start, last; /* clock at the start; elapsed seconds at the last line (< 0: none) */
    bool tty, quiet, drawn;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *command, size_t total, bool quiet);
void cli_progress_update(cli_progress *p, size_t done, const char *what);
void cli_progress_end(cli_progress *p);

#endif
