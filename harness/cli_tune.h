/* cli_tune.h — the tuner's subcommands of attnbench (cli_tune.c). */
#ifndef ATTN_CLI_TUNE_H
#define ATTN_CLI_TUNE_H

/* attnbench tune: search the best variant and parameters for a shape; store them as wisdom. */
int cli_tune(int argc, char **argv);
/* attnbench plan: what the planner would choose for a shape, and why. */
int cli_plan(int argc, char **argv);
/* attnbench wisdom show|export FILE|import FILE|forget. */
int cli_wisdom(int argc, char **argv);

#endif
