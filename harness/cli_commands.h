/* cli_commands.h — the subcommands of attnbench, each in its own file; main.c dispatches to them.
 *
 * A subcommand is a function `int name(int argc, char **argv)` (argv[0] is the subcommand's
 * name) that returns the process's exit status (CLI_EXIT_*, cli.h), plus one line in the table
 * of main.c. It uses the helpers of cli.h for its options, its error messages and its output, so
 * every subcommand behaves the same way. */
#ifndef ATTN_CLI_COMMANDS_H
#define ATTN_CLI_COMMANDS_H

int cli_list(int argc, char **argv);     /* cli_list.c */
int cli_run(int argc, char **argv);      /* cli_run.c */
int cli_info(int argc, char **argv);     /* cli_machine.c */
int cli_peak(int argc, char **argv);     /* cli_machine.c */
/* attnbench tune: search the best variant and parameters for a shape; store them as wisdom. */
int cli_tune(int argc, char **argv);     /* cli_tune.c */
/* attnbench plan: what the planner would choose for a shape, and why. */
int cli_plan(int argc, char **argv);     /* cli_tune.c */
/* attnbench wisdom show|export FILE|import FILE|forget. */
int cli_wisdom(int argc, char **argv);   /* cli_tune.c */
int cli_sweep(int argc, char **argv);    /* cli_sweep.c */
int cli_study(int argc, char **argv);    /* cli_study.c */
int cli_compare(int argc, char **argv);  /* cli_compare.c */
int cli_overhead(int argc, char **argv); /* cli_overhead.c */

#endif
