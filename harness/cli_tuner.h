/* cli_tuner.h — what attnbench tune, plan and wisdom share (cli_tuner.c): the shape options
 * of tune and plan, tuner classes and configurations as JSON, and progress on stderr. */
#ifndef ATTN_CLI_TUNER_H
#define ATTN_CLI_TUNER_H

#include "cli.h"
#include "cli_model.h"
#include "shapes.h"
#include "tuner/tuner.h"

/* The shape flags of every shape-taking command (cli_shape_flags.c), then tune's and plan's
 * common ones. */
enum {
    O_DTYPE = CLI_SHAPE_OPTION_COUNT, O_MAX_REL_ERR, O_THREADS, O_WISDOM, O_FORMAT, O_OUTPUT,
    O_HELP, O_MODEL,
    SHAPE_OPTION_COUNT = O_MODEL + CLI_MODEL_OPTION_COUNT
};
#define SHAPE_OPTIONS                                                                             \
    CLI_SHAPE_OPTION_ROWS("N", "1024", "64"),                                                     \
    [O_DTYPE] = {"dtype", "f32|bf16|f16", "element type of Q, K and V (default f32)"},          \
    [O_MAX_REL_ERR] = {"max-rel-err", "X",                                                      \
                       "accuracy bound: variants computing in bf16 may be chosen when their "   \
                       "error measured on this problem is <= X (default: float32 compute only)"},\
    [O_THREADS] = {"threads", "N,N,...",                                                        \
                   "thread counts, each in turn; 0: the library's default (default 0)"},        \
    [O_WISDOM] = {"wisdom", "FILE", "wisdom file (default $ATTN_WISDOM, else the XDG cache)"},  \
    [O_FORMAT] = {"format", "text|json", "output format (default text)"},                       \
    [O_OUTPUT] = {"output", "FILE", "also write the JSON document to FILE, also -o"},          \
    [O_HELP] = {"help", NULL, "this help"},                                                     \
    CLI_MODEL_OPTIONS(O_MODEL)

typedef struct shape_config {
    cli_shape_flags flags;
    cli_int_list threads; /* --threads as given (0: the default); shape_problem resolves it */
    attn_dtype dtype;
    double max_rel_err; /* 0: float32 compute only */
    const char *wisdom;
    cli_format format;
    cli_model model; /* --window, --alibi, --softcap, --sinks */
    const char *output; /* -o: the JSON document, also written there */
} shape_config;

/* -o is --output in argv (the option parser knows long options and -h only). */
void shape_output_flag(int argc, char **argv);
/* Writes the JSON document to s->output when given, stamped as a result file of `kind`;
 * false after a message. */
bool shape_write_output(const char *cmd, const shape_config *s, json_t *root);

/* Handles option o when it is a shape option: returns 1 when handled, 0 when it is not one,
 * -1 on a bad value (reported). */
int shape_option(const char *cmd, int o, const char *value, const cli_option *options,
                 shape_config *s);
/* The problem of the shape options, contiguous [B,H,L,d]; prints why on failure. */
bool shape_problem(const char *cmd, shape_config *s, attn_problem *p);
json_t *class_json(const tuner_class *c);
/* The type variant `variant` computes in (float32 for an unknown index). */
attn_dtype compute_dtype_of(int variant);
/* {name: value} of a configuration's parameters. */
json_t *params_json(const tuner_config *c);
/* A variant's name by registry index; "?" for an unknown index. */
const char *variant_name(int index);
/* "12.34" milliseconds with about four significant digits. */
void format_ms(char *buf, size_t len, double seconds);

/* Progress on stderr: on a terminal one line redrawn in place (a bar, then what is being
 * measured); otherwise (a log, a pipe) plain lines, the first after PROGRESS_FIRST seconds and
 * then at most one per PROGRESS_EVERY seconds (so a short tune prints none), and one before
 * every step expected to take PROGRESS_FIRST or more. */

typedef struct progress_state {
    const char *command;
    bool tty;
    bool active;      /* a terminal line is drawn and must be cleared */
    double last_line; /* elapsed seconds of the last plain line; < 0: none yet */
} progress_state;

void progress_init(progress_state *ps, const char *command);
/* A tuner_progress callback (ctx: a progress_state). */
void show_progress(void *ctx, const tuner_progress *p);
/* Clears a terminal line left drawn. */
void progress_end(progress_state *ps);

#endif
