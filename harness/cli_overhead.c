/* cli_overhead.c — `attnbench overhead`: what one call costs beyond its arithmetic. A tiny
 * problem (B=1 H=1 Lq=1 Lk=16 d=16, a few hundred FLOPs) is planned once and executed many
 * times; the median time per attn_execute is the library's per-call overhead (checks, the cut
 * over threads, waking the workers) plus that tiny kernel. attn_run_variant with the plan's
 * choice is timed in the same rounds, interleaved, for comparison: it validates, looks the
 * variant up and allocates on every call. scripts/bench-kernels prints the figure. */
#include "cli.h"
#include "cli_commands.h"

#include "timing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { O_ROUNDS, O_CALLS, O_FORMAT, O_HELP, OVERHEAD_OPTION_COUNT };
static const cli_option overhead_options[OVERHEAD_OPTION_COUNT] = {
    [O_ROUNDS] = {"rounds", "N", "timed rounds per thread count (default 501)"},
    [O_CALLS] = {"calls", "N", "calls per round; a round's time / N is one sample (default 100)"},
    [O_FORMAT] = {"format", "text|json", "output format (default text)"},
    [O_HELP] = {"help", NULL, "this help"},
};

static void print_overhead_help(void)
{
    printf("usage: attnbench overhead [options]\n\n"
           "The per-call overhead of attn_execute: a tiny problem (B=1 H=1 Lq=1 Lk=16 d=16)\n"
           "planned once, then executed N calls per round; each round gives one sample (its\n"
           "time / N) and the median over the rounds is reported, with the 10th and 90th\n"
           "percentiles, on 1 thread and on the default thread count. attn_run_variant with\n"
           "the plan's variant and parameters is timed in the same rounds, interleaved.\n\n");
    cli_print_options(stdout, overhead_options, OVERHEAD_OPTION_COUNT);
}

typedef struct overhead_row {
    int threads;
    char variant[64];
    attn_time_stats execute, run_variant; /* seconds per call */
    double execute_p10, execute_p90;
} overhead_row;

/* One thread count: samples of both paths, interleaved round by round. */
static bool measure_row(int threads, int64_t rounds, int64_t calls, overhead_row *row,
                        attn_error *err)
{
    attn_problem p;
    attn_problem_init(&p, 1, 1, 1, 1, 16, 16);
    float q[16], k[16 * 16], v[16 * 16], o[16];
    for (int i = 0; i < 16 * 16; i++) {
        k[i] = (float)(i % 7) / 7.0f - 0.5f;
        v[i] = (float)(i % 5) / 5.0f - 0.5f;
    }
    for (int i = 0; i < 16; i++)
        q[i] = 0.1f * (float)i - 0.8f;
    attn_plan *plan = attn_plan_create(&p, &(attn_plan_options){.threads = threads}, err);
    if (!plan)
        return false;
    attn_plan_info info;
    attn_plan_get_info(plan, &info);
    row->threads = threads;
    snprintf(row->variant, sizeof row->variant, "%s", info.variant);
    double *samples = malloc(2 * (size_t)rounds * sizeof *samples);
    bool ok = samples != NULL;
    if (!ok)
        snprintf(err->message, sizeof err->message, "out of memory for the samples");
    const attn_execute_args args = {.q = q, .k = k, .v = v, .o = o};
    for (int64_t r = -1; ok && r < rounds; r++) { /* round -1 warms both paths up */
        double t0 = attn_clock_seconds();
        for (int64_t c = 0; ok && c < calls; c++)
            ok = attn_execute(plan, &args, err) == ATTN_OK;
        const double t1 = attn_clock_seconds();
        for (int64_t c = 0; ok && c < calls; c++)
            ok = attn_run_variant(info.variant, &p, &info.params, q, k, v, o, err) == ATTN_OK;
        if (r >= 0) {
            samples[r] = (t1 - t0) / (double)calls;
            samples[rounds + r] = (attn_clock_seconds() - t1) / (double)calls;
        }
    }
    if (ok) {
        attn_time_stats_compute(samples, (size_t)rounds, &row->execute); /* sorts them */
        row->execute_p10 = samples[rounds / 10];
        row->execute_p90 = samples[rounds - 1 - rounds / 10];
        attn_time_stats_compute(samples + rounds, (size_t)rounds, &row->run_variant);
    }
    free(samples);
    attn_plan_destroy(plan);
    return ok;
}

int cli_overhead(int argc, char **argv)
{
    int64_t rounds = 501, calls = 100;
    cli_format format = CLI_FORMAT_TEXT;
    const char *value;
    for (int o; (o = cli_next_option("overhead", argc, argv, overhead_options,
                                     OVERHEAD_OPTION_COUNT, &value)) != CLI_OPTION_END;) {
        bool ok = true;
        switch (o) {
        case O_ROUNDS:
            ok = cli_parse_int64("overhead", "rounds", value, 1, 1000000, &rounds);
            break;
        case O_CALLS: ok = cli_parse_int64("overhead", "calls", value, 1, 1000000, &calls); break;
        case O_FORMAT:
            ok = cli_parse_format("overhead", value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON,
                                  &format);
            break;
        case O_HELP: print_overhead_help(); return CLI_EXIT_OK;
        default: ok = false;
        }
        if (!ok)
            return CLI_EXIT_USAGE;
    }
    const int counts[2] = {1, attn_default_threads()};
    const int rows_wanted = counts[1] == 1 ? 1 : 2;
    overhead_row rows[2];
    for (int i = 0; i < rows_wanted; i++) {
        attn_error err = {0};
        if (!measure_row(counts[i], rounds, calls, &rows[i], &err))
            return cli_error("overhead", "%s", err.message);
    }
    if (format == CLI_FORMAT_JSON) {
        json_t *root = json_pack("{s:{s:i,s:i,s:i,s:i,s:i,s:i},s:I,s:I,s:[]}", "problem",
                                 "batch", 1, "heads_q", 1, "heads_kv", 1, "len_q", 1, "len_kv", 16,
                                 "head_dim", 16, "rounds", (json_int_t)rounds, "calls",
                                 (json_int_t)calls, "rows");
        for (int i = 0; root && i < rows_wanted; i++) {
            const overhead_row *r = &rows[i];
            json_t *j = json_pack("{s:i,s:s,s:o,s:o,s:o,s:o}", "threads", r->threads, "variant",
                                  r->variant, "execute_us", cli_json_real(r->execute.median * 1e6),
                                  "execute_p10_us", cli_json_real(r->execute_p10 * 1e6),
                                  "execute_p90_us", cli_json_real(r->execute_p90 * 1e6),
                                  "run_variant_us", cli_json_real(r->run_variant.median * 1e6));
            if (!j || json_array_append_new(json_object_get(root, "rows"), j)) {
                json_decref(root);
                root = NULL;
            }
        }
        const bool ok = cli_json_print(root);
        json_decref(root);
        return ok ? CLI_EXIT_OK : cli_error("overhead", "out of memory or output error");
    }
    printf("execute overhead (tiny problem B=1 H=1 Lq=1 Lk=16 d=16), median of %lld rounds of "
           "%lld calls:\n", (long long)rounds, (long long)calls);
    for (int i = 0; i < rows_wanted; i++) {
        const overhead_row *r = &rows[i];
        printf("  %d thread%s (%s): attn_execute %.3f us [p10 %.3f, p90 %.3f], "
               "attn_run_variant %.3f us\n", r->threads, r->threads == 1 ? "" : "s", r->variant,
               r->execute.median * 1e6, r->execute_p10 * 1e6, r->execute_p90 * 1e6,
               r->run_variant.median * 1e6);
    }
    return CLI_EXIT_OK;
}
