/* cli_model.h — the options of current models on the command line (run, tune, plan): sliding
 * window, ALiBi, logit soft-capping, attention sinks (attn.h). One parser and one place that
 * turns the flags into a problem's fields and arrays, so every subcommand spells them alike:
 *
 *   --window L[,R]          keys i'-L .. i'+R visible (R omitted: unbounded; -1 = unbounded)
 *   --alibi                 ALiBi with the standard slopes of Hq heads (attn_alibi_slopes)
 *   --alibi-slopes FILE.npy the slopes, float32 [Hq]
 *   --softcap C             logits become C·tanh(logit / C)
 *   --sinks X|FILE.npy      one sink logit for every head, or float32 [Hq]
 *   --page-size N           paged K/V: pages of N keys in a pool, each sequence's pages
 *                           shuffled (a fixed seed: the same table on every run)
 *   --block-table FILE.npy  with --page-size: the block table, int32 [B, max_pages]; the pool
 *                           holds max entry + 1 pages */
#ifndef ATTN_CLI_MODEL_H
#define ATTN_CLI_MODEL_H

#include "attn.h"
#include "cli.h"

#include <jansson.h>

typedef struct cli_model {
    int64_t window_left, window_right; /* -1: unbounded */
    bool alibi;                        /* --alibi or --alibi-slopes */
    const char *alibi_file, *sinks;    /* the flags' texts (NULL: not given) */
    float softcap;                     /* 0: none */
    float *slopes, *sink_values;       /* [Hq], made by cli_model_apply */
    int64_t page_size;                 /* 0: contiguous K/V */
    const char *block_table_file;      /* --block-table, or NULL: a shuffled table */
    int32_t *block_table;              /* made by cli_model_apply */
} cli_model;

/* The option table entries of the five flags, for a subcommand's table: its enum reserves
 * CLI_MODEL_OPTION_COUNT indices from `first` on, its table has CLI_MODEL_OPTIONS(first), and
 * its parser hands option o in that range to cli_model_parse as o - first. */
enum { CLI_MODEL_OPTION_COUNT = 7 };
#define CLI_MODEL_OPTIONS(first)                                                                  \
    [(first) + 0] = {"window", "L[,R]", "sliding window: query i sees keys i'-L .. i'+R (R "     \
                                        "omitted or -1: unbounded; i' = i + Lk - Lq)"},          \
    [(first) + 1] = {"alibi", NULL, "ALiBi bias slope_h*(j - i') with the standard slopes"},      \
    [(first) + 2] = {"alibi-slopes", "FILE.npy", "ALiBi with these slopes (float32 [Hq])"},       \
    [(first) + 3] = {"softcap", "C", "logit soft-capping: logits become C*tanh(logit/C)"},        \
    [(first) + 4] = {"sinks", "X|FILE.npy", "attention sink logit of every head (X), or float32 " \
                                            "[Hq]: joins the softmax denominator"},               \
    [(first) + 5] = {"page-size", "N", "paged K/V: pages of N keys, each sequence's pages "       \
                                       "shuffled in a pool (seeded)"},                           \
    [(first) + 6] = {"block-table", "FILE.npy", "with --page-size: the block table, int32 "       \
                                                "[B, max_pages]"}

/* An untouched model: no option. */
cli_model cli_model_none(void);
/* Parses flag k (0 .. CLI_MODEL_OPTION_COUNT - 1, in the table's order) of `value`; false after
 * reporting a bad value. */
bool cli_model_parse(const char *command, int k, const char *value, cli_model *m);
/* Sets p's window and softcap and points p at the slopes and sinks (read from their files or
 * made here, owned by m), once p's heads are known; pages K and V (the pool in p's K/V layout,
 * BHLD or BLHD); false after reporting an error. */
bool cli_model_apply(const char *command, cli_model *m, attn_problem *p);
void cli_model_free(cli_model *m);
/* The attn_feature bits the flags ask for. */
unsigned cli_model_features(const cli_model *m);
/* " window=L,R alibi softcap=C sinks" for text output ("" without options). */
void cli_model_describe(const attn_problem *p, char *buf, size_t len);
/* The problem's options as JSON fields: window [L, R] (null: none), alibi, softcap (null: none),
 * sinks, page_size (0: contiguous); added to `object` (a record's shape). False on OOM. */
bool cli_model_json(const attn_problem *p, json_t *object);

#endif
