/* main.c — the attnbench tool: a dispatcher over a table of subcommands (cli_commands.h). */
#include "cli.h"
#include "cli_commands.h"

#include "attn_config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The subcommands: adding one is a function (see cli_commands.h) and one line here. */
static const struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"list", cli_list, "list the variants: ISA, support on this CPU, parameters, tolerance"},
    {"run", cli_run, "time variants on one shape and check them against the float64 oracle"},
    {"info", cli_info, "this machine: CPU, ISA, topology, caches, machine id, runnable variants"},
    {"peak", cli_peak, "measure (or show the cached) FMA peak and triad memory bandwidth"},
    {"tune", cli_tune, "search the fastest correct variant and parameters for a shape; store wisdom"},
    {"plan", cli_plan, "what the planner would choose for a shape, and why"},
    {"wisdom", cli_wisdom, "show, export, import or forget the tuning wisdom of this machine"},
    {"sweep", cli_sweep, "run a grid of shapes, threads and variants; write one result file"},
    {"study", cli_study, "numerical studies: `study scaling`, why attention scales by 1/sqrt(d)"},
    {"compare", cli_compare, "compare two benchmark results: ratios, intervals, regression verdict"},
    {"overhead", cli_overhead, "per-call overhead of attn_execute on a tiny problem"},
#if ATTN_HAVE_RESULTS_DB
    {"db", cli_db, "the results store: ingest result files, export them, its contents"},
    {"history", cli_history, "each benchmark over commits, per machine: change points, CI gate"},
#endif
};
static const int command_count = (int)(sizeof commands / sizeof commands[0]);

static void print_usage(FILE *out)
{
    fprintf(out, "usage: attnbench COMMAND [options]   (attnbench COMMAND --help: its options)\n"
                 "\nScaled dot-product attention on CPUs: O = softmax(scale*Q*K^T + mask)*V.\n"
                 "\ncommands:\n");
    for (int i = 0; i < command_count; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nexit status: 0 ok, 1 a result failed its check, 2 bad input or an error.\n"
                 "environment: ATTN_DISABLE_ISA=avx512,avx2 turns ISAs off as if the CPU lacked "
                 "them;\nATTN_FORCE_VARIANT=NAME makes NAME the only default choice.\n"
                 "Every command takes --wide: its tables at full width (by default they wrap to\n"
                 "fit 100 columns).\n");
}

int main(int argc, char **argv)
{
    /* --wide, taken by every command, is taken out here: tables at their full width. */
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            while (i < argc)
                argv[kept++] = argv[i++];
        else if (!strcmp(argv[i], "--wide"))
            cli_table_wide = true;
        else
            argv[kept++] = argv[i];
    }
    argc = kept;
    argv[argc] = NULL;
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(name, "--version")) {
        printf("attnbench %s\n", ATTN_VERSION_STRING);
        return CLI_EXIT_OK;
    }
    int status = -1;
    for (int i = 0; i < command_count && status < 0; i++)
        if (!strcmp(name, commands[i].name))
            status = commands[i].run(argc - 1, argv + 1);
    if (status < 0) {
        const char *names[64];
        int n = 0;
        for (int i = 0; i < command_count && n < 64; i++)
            names[n++] = commands[i].name;
        const char *near = cli_nearest_name(name, names, n);
        if (near)
            return cli_error(NULL, "unknown command '%s'; did you mean %s?", name, near);
        return cli_error(NULL, "unknown command '%s' (see attnbench --help)", name);
    }
    /* A full disk or a closed pipe must not pass for success. */
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_error(NULL, "cannot write the output: %s", strerror(errno));
    return status;
}
