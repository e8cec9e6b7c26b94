/* cli_run_report.c — attnbench run's output: text, JSON and CSV (cli_run_report.h). */
#include "cli_run_report.h"

#include "cli_machine.h"

#include "cpu.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- run's output -------------------------------------------------------------------------- */

/* K/V GB/s of a run (the bytes a decode kernel must read, at its median time) over its
 * --read-ref reads; NaN without them. */
static double bw_fraction_ref(const attn_problem *p, const variant_run *run)
{
    return cli_kv_bytes(p) / run->time.median * 1e-9 / run->read_ref_gbs;
}

static double gflops(const variant_run *run, double flops)
{
    return run->time.median > 0 ? flops / run->time.median * 1e-9 : 0.0;
}

bool run_ok(const run_state *s, const variant_run *run)
{
    return !s->config.check || run->error.ok;
}

static json_t *kv_lens_json(const attn_problem *p)
{
    if (!p->kv_lens)
        return json_null();
    json_t *list = json_array();
    for (int64_t b = 0; list && b < p->batch; b++)
        if (json_array_append_new(list, json_integer(p->kv_lens[b]))) {
            json_decref(list);
            return NULL;
        }
    return list;
}

/* The timed samples, in seconds, in round order. */
static json_t *samples_json(const variant_run *run, int64_t reps)
{
    json_t *list = json_array();
    for (int64_t i = 0; list && i < reps; i++)
        if (json_array_append_new(list, json_real(run->samples[i]))) {
            json_decref(list);
            return NULL;
        }
    return list;
}

/* The spread of the samples: quartiles, interquartile range, coefficient of variation, the
 * count of outliers (Tukey's fences), and whether it is large (stats_spread_is_large). */
static json_t *spread_json(const variant_run *run)
{
    const stats_spread *d = &run->spread;
    return json_pack("{s:f, s:f, s:f, s:f, s:I, s:b}", "q1_s", d->q1, "q3_s", d->q3, "iqr_s",
                     d->iqr, "cv", d->cv, "outliers", (json_int_t)d->outliers, "large",
                     stats_spread_is_large(d, run->time.median));
}

/* {"over_threads", "ratio", "ci95": [lo, hi] or null}, or null for a variant's first count. */
static json_t *speedup_json(const run_state *s, const variant_run *run)
{
    if (run->base < 0)
        return json_null();
    return json_pack("{s:I, s:o, s:o}", "over_threads",
                     (json_int_t)s->runs[run->base].params.threads, "ratio",
                     cli_json_real(run->speedup), "ci95",
                     isnan(run->speedup_lo)
                         ? json_null()
                         : json_pack("[o, o]", cli_json_real(run->speedup_lo),
                                     cli_json_real(run->speedup_hi)));
}

json_t *run_result_json(const run_state *s, const variant_run *run, double flops)
{
    const attn_problem *p = &s->problem;
    const run_config *c = &s->config;
    json_t *params = json_object();
    for (int i = 0; params && i < run->info.param_count; i++)
        if (json_object_set_new(params, run->info.params[i].name,
                                json_integer(run->params.value[i]))) {
            json_decref(params);
            params = NULL;
        }
    json_t *shape = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:f, s:s, s:o, s:o}", "batch", (json_int_t)p->batch,
        "heads_q", (json_int_t)p->heads_q, "heads_kv", (json_int_t)p->heads_kv, "len_q",
        (json_int_t)p->len_q, "len_kv", (json_int_t)p->len_kv, "head_dim", (json_int_t)p->head_dim,
        "causal", p->causal, "scale", (double)attn_problem_scale(p), "layout",
        c->blhd ? "blhd" : "bhld", "kv_lens", kv_lens_json(p), "mask",
        c->mask ? json_string(c->mask) : json_null());
    if (shape && !cli_model_json(p, shape)) {
        json_decref(shape);
        shape = NULL;
    }
    json_t *record = json_pack(
        "{s:s, s:o, s:o, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:o, s:o, s:f, s:f, s:o, "
        "s:o, s:o, s:o, s:o, s:o, s:o, s:f, s:b, s:b, s:s, s:o, s:O?}",
        "variant", run->info.name, "params", params, "shape", shape,
        "dtype", attn_dtype_name(p->dtype), "out_dtype", attn_dtype_name(p->out_dtype),
        "compute_dtype", attn_dtype_name(run->info.compute_dtype), "threads",
        (json_int_t)run->params.threads, "reps",
        (json_int_t)c->reps, "warmup", (json_int_t)c->warmup, "seed", (json_int_t)c->seed,
        "median_s", run->time.median, "min_s", run->time.min, "max_s", run->time.max,
        "samples_s", samples_json(run, c->reps), "spread", spread_json(run), "flops",
        flops, "gflops", gflops(run, flops),
        /* fractions of the cached roofline (attnbench peak), null when none is cached */
        "peak_fraction", cli_json_real(cli_peak_fraction(run->info.roofline, gflops(run, flops),
                                                         run->params.threads)),
        "bw_fraction", p->len_q == 1
            ? cli_json_real(cli_bw_fraction(p, run->time.median, run->params.threads))
            : json_null(),
        "speedup", speedup_json(s, run),
        "max_abs_err", c->check ? cli_json_real(run->error.max_abs) : json_null(),
        "max_rel_err", c->check ? cli_json_real(run->error.max_rel) : json_null(),
        /* against the oracle on the float32 data before rounding to dtype */
        "max_rel_err_f32", c->check ? cli_json_real(run->error_f32.max_rel) : json_null(),
        "nan_mismatch", c->check ? json_integer(run->error.nan_mismatch) : json_null(),
        "tolerance", run->tolerance, "checked", c->check, "ok", run_ok(s, run),
        "roofline", run->info.roofline, /* what peak_fraction is against */
        "blas_core", run->info.blas_core ? json_string(run->info.blas_core) : json_null(),
        "conditions", s->conditions);
    /* K/V's element type: --dtype's, or int8 / q4 (max_rel_err_f32 then says what the
     * quantization costs against the float32 data); the bytes of K and V (scales included)
     * the problem reads once, which the bandwidth fractions count; --read-ref's reads (null
     * without it) */
    if (record && (json_object_set_new(record, "kv_dtype",
                                       json_string(attn_dtype_name(
                                           (attn_dtype)attn_problem_kv_dtype(p)))) ||
                   json_object_set_new(record, "kv_bytes", json_real(cli_kv_bytes(p))) ||
                   json_object_set_new(record, "read_ref_gbs", cli_json_real(run->read_ref_gbs)) ||
                   json_object_set_new(record, "bw_fraction_ref",
                                       cli_json_real(bw_fraction_ref(p, run))))) {
        json_decref(record);
        record = NULL;
    }
    return record;
}

json_t *run_document(const run_state *s, double flops)
{
    json_t *results = json_array();
    for (int r = 0; results && r < s->run_count; r++)
        if (json_array_append_new(results, run_result_json(s, &s->runs[r], flops))) {
            json_decref(results);
            results = NULL;
        }
    return json_pack("{s:s, s:o, s:O?, s:o, s:O}", "tool", "attnbench " ATTN_VERSION_STRING,
                     "machine", cli_machine_json(), "conditions", s->conditions, "results",
                     results, "skipped", s->skipped);
}

bool run_print_json(const run_state *s, double flops)
{
    json_t *root = run_document(s, flops);
    const bool ok = cli_json_print(root);
    json_decref(root);
    return ok;
}

/* A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. */
static void csv_field(const char *text, bool last)
{
    if (strpbrk(text, ",\"\n\r")) {
        putchar('"');
        for (const char *t = text; *t; t++) {
            if (*t == '"')
                putchar('"');
            putchar(*t);
        }
        putchar('"');
    } else {
        fputs(text, stdout);
    }
    putchar(last ? '\n' : ',');
}

void run_print_csv(const run_state *s, double flops)
{
    const attn_problem *p = &s->problem;
    const run_config *c = &s->config;
    static const char *const header[] = {
        "variant", "params", "batch", "heads_q", "heads_kv", "len_q", "len_kv", "head_dim",
        "causal", "scale", "layout", "dtype", "out_dtype", "compute_dtype", "threads", "reps",
        "warmup", "seed", "median_s", "min_s", "max_s", "gflops", "max_abs_err", "max_rel_err",
        "max_rel_err_f32", "tolerance", "ok", "speedup", "speedup_over_threads"};
    enum { COLUMNS = sizeof header / sizeof header[0] };
    for (int i = 0; i < COLUMNS; i++)
        csv_field(header[i], i == COLUMNS - 1);
    for (int r = 0; r < s->run_count; r++) {
        const variant_run *run = &s->runs[r];
        char params[256], cells[COLUMNS - 2][32];
        attn_params_format(run->info.name, &run->params, params, sizeof params);
        const int64_t sizes[6] = {p->batch, p->heads_q, p->heads_kv, p->len_q, p->len_kv,
                                  p->head_dim};
        int n = 0;
        for (int i = 0; i < 6; i++)
            snprintf(cells[n++], 32, "%lld", (long long)sizes[i]);
        snprintf(cells[n++], 32, "%s", p->causal ? "true" : "false");
        snprintf(cells[n++], 32, "%.9g", (double)attn_problem_scale(p));
        snprintf(cells[n++], 32, "%s", c->blhd ? "blhd" : "bhld");
        snprintf(cells[n++], 32, "%s", attn_dtype_name(p->dtype));
        snprintf(cells[n++], 32, "%s", attn_dtype_name(p->out_dtype));
        snprintf(cells[n++], 32, "%s", attn_dtype_name(run->info.compute_dtype));
        snprintf(cells[n++], 32, "%d", run->params.threads);
        snprintf(cells[n++], 32, "%lld", (long long)c->reps);
        snprintf(cells[n++], 32, "%lld", (long long)c->warmup);
        snprintf(cells[n++], 32, "%llu", (unsigned long long)c->seed);
        snprintf(cells[n++], 32, "%.9g", run->time.median);
        snprintf(cells[n++], 32, "%.9g", run->time.min);
        snprintf(cells[n++], 32, "%.9g", run->time.max);
        snprintf(cells[n++], 32, "%.6g", gflops(run, flops));
        const double errors[3] = {run->error.max_abs, run->error.max_rel,
                                  run->error_f32.max_rel};
        for (int i = 0; i < 3; i++, n++) { /* empty: not checked */
            cells[n][0] = '\0';
            if (c->check)
                snprintf(cells[n], 32, "%.6g", errors[i]);
        }
        snprintf(cells[n++], 32, "%g", run->tolerance);
        snprintf(cells[n++], 32, "%s", run_ok(s, run) ? "true" : "false");
        cells[n][0] = cells[n + 1][0] = '\0'; /* empty: the variant's first count */
        if (run->base >= 0) {
            snprintf(cells[n], 32, "%.4g", run->speedup);
            snprintf(cells[n + 1], 32, "%d", s->runs[run->base].params.threads);
        }
        n += 2;
        csv_field(run->info.name, false);
        csv_field(params, false);
        for (int i = 0; i < n; i++)
            csv_field(cells[i], i == n - 1);
    }
}

/* Milliseconds with about four significant digits, in plain notation. */
static void format_ms(char *buf, size_t len, double seconds)
{
    const double ms = seconds * 1e3;
    const int decimals = ms >= 100 ? 1 : ms >= 10 ? 2 : ms >= 1 ? 3 : ms >= 0.1 ? 4 : 5;
    snprintf(buf, len, "%.*f", decimals, ms);
}

/* Like hyperfine: a warning on stderr for each run whose spread makes its median doubtful,
 * with the load average when the machine was busy. */
static void warn_spread(const run_state *s)
{
    if (s->config.quiet)
        return;
    double load;
    int cpus;
    const bool busy = cli_conditions_busy(s->conditions, &load, &cpus);
    int large = 0;
    for (int r = 0; r < s->run_count; r++)
        large += stats_spread_is_large(&s->runs[r].spread, s->runs[r].time.median);
    if (!large)
        return;
    fprintf(stderr, "attnbench run: warning: large spread (CV or IQR over 10%% of the median) in "
            "%d of %d runs, their medians may mislead (%s):", large, s->run_count,
            busy ? "the machine is busy" : "more --reps or --min-time may help");
    for (int r = 0, shown = 0; r < s->run_count; r++) {
        const variant_run *run = &s->runs[r];
        if (stats_spread_is_large(&run->spread, run->time.median))
            fprintf(stderr, "%s %s/%dt CV %.0f%%%s", shown++ ? "," : "", run->info.name,
                    run->params.threads, 100 * run->spread.cv,
                    run->spread.outliers ? " with outliers" : "");
    }
    fputc('\n', stderr);
}

bool run_print_text(const run_state *s, double flops)
{
    const attn_problem *p = &s->problem;
    const run_config *c = &s->config;
    const attn_cpu *cpu = attn_cpu_get();
    char threads[CLI_INT_LIST_TEXT];
    cli_int_list_format(&c->threads, threads, sizeof threads);
    char options[128];
    const bool quantized = attn_problem_kv_dtype(p) != (int)p->dtype;
    cli_model_describe(p, options, sizeof options);
    printf("B=%lld Hq=%lld Hkv=%lld Lq=%lld Lk=%lld d=%lld scale=%.6g%s%s%s%s layout=%s\n"
           "dtype=%s%s%s out-dtype=%s threads=%s reps=%lld warmup=%lld seed=%llu\n",
           (long long)p->batch, (long long)p->heads_q, (long long)p->heads_kv,
           (long long)p->len_q, (long long)p->len_kv, (long long)p->head_dim,
           (double)attn_problem_scale(p), p->causal ? " causal" : "",
           p->kv_lens ? " kv-lens" : "", p->mask ? " mask" : "", options,
           c->blhd ? "blhd" : "bhld",
           attn_dtype_name(p->dtype), quantized ? " kv-dtype=" : "",
           quantized ? attn_dtype_name(p->kv_dtype) : "", attn_dtype_name(p->out_dtype), threads,
           (long long)c->reps, (long long)c->warmup, (unsigned long long)c->seed);
    printf("%s (%s), %.4g GFLOP per run\n\n", cpu->model_name, cpu->vendor, flops * 1e-9);

    /* The error against the float32 data differs from max_rel_err only when something was
     * rounded: a half dtype, or a variant computing in bf16. */
    bool bf16_compute = false;
    for (int r = 0; r < s->run_count; r++)
        bf16_compute |= s->runs[r].info.compute_dtype == ATTN_BF16;
    const bool f32_column = c->check && (p->dtype != ATTN_F32 || bf16_compute || quantized);
    const bool thread_columns = c->threads.count > 1;
    /* Narrow by default (100 columns): dtype, IQR, min, max, max_abs_err, max_rel_err_f32 and
     * the tolerance with --wide (and in JSON and CSV). */
    enum { COLUMNS = 16 };
    static const char *const header[COLUMNS] = {
        "variant", "params", "threads", "dtype", "median ms", "IQR ms", "CV", "min ms", "max ms",
        "GFLOP/s", "speed-up [95% CI]", "max_abs_err", "max_rel_err", "max_rel_err_f32",
        "tolerance", "ok"};
    static const char align[COLUMNS + 1] = "llrlrrrrrrlrrrrl";
    const bool wide = cli_table_wide;
    const bool shown[COLUMNS] = {true, true, thread_columns, wide, true, wide, true, wide, wide,
                                 true, thread_columns, wide, true, f32_column && wide, wide, true};
    char shown_align[COLUMNS + 1] = "";
    int columns = 0;
    for (int i = 0; i < COLUMNS; i++)
        if (shown[i])
            shown_align[columns++] = align[i];
    cli_table table;
    cli_table_init(&table, columns, shown_align);
    for (int i = 0; i < COLUMNS; i++)
        if (shown[i])
            cli_table_add(&table, "%s", header[i]);
    for (int r = 0; r < s->run_count; r++) {
        const variant_run *run = &s->runs[r];
        char params[256], median[32], min[32], max[32], iqr[32];
        attn_params_format(run->info.name, &run->params, params, sizeof params);
        format_ms(median, sizeof median, run->time.median);
        format_ms(iqr, sizeof iqr, run->spread.iqr);
        format_ms(min, sizeof min, run->time.min);
        format_ms(max, sizeof max, run->time.max);
        cli_table_add(&table, "%s", run->info.name);
        cli_table_add(&table, "%s", params[0] ? params : "-");
        if (thread_columns)
            cli_table_add(&table, "%d", run->params.threads);
        if (wide)
            cli_table_add(&table, "%s%s", attn_dtype_name(p->dtype),
                          run->info.compute_dtype == ATTN_BF16 ? " (bf16)" : "");
        cli_table_add(&table, "%s", median);
        if (wide)
            cli_table_add(&table, "%s", iqr);
        cli_table_add(&table, "%.1f%%", 100 * run->spread.cv);
        if (wide) {
            cli_table_add(&table, "%s", min);
            cli_table_add(&table, "%s", max);
        }
        cli_table_add(&table, "%.2f", gflops(run, flops));
        if (thread_columns && run->base < 0)
            cli_table_add(&table, "-");
        else if (thread_columns && isnan(run->speedup_lo))
            cli_table_add(&table, "%.2fx", run->speedup);
        else if (thread_columns)
            cli_table_add(&table, "%.2fx [%.3g, %.3g]", run->speedup, run->speedup_lo,
                          run->speedup_hi);
        if (wide && c->check)
            cli_table_add(&table, "%.2e", run->error.max_abs);
        else if (wide)
            cli_table_add(&table, "-");
        if (c->check)
            cli_table_add(&table, "%.2e", run->error.max_rel);
        else
            cli_table_add(&table, "-");
        if (f32_column && wide)
            cli_table_add(&table, "%.2e", run->error_f32.max_rel);
        if (wide)
            cli_table_add(&table, "%.2g", run->tolerance);
        if (!c->check)
            cli_table_add(&table, "unchecked");
        else if (run->error.nan_mismatch)
            cli_table_add(&table, "FAIL (%lld NaN/inf mismatches)",
                          (long long)run->error.nan_mismatch);
        else
            cli_table_add(&table, "%s", run->error.ok ? "yes" : "FAIL");
    }
    const bool ok = cli_table_print(&table, stdout);
    cli_table_free(&table);
    warn_spread(s);
    const char *gap = "\n";
    if (thread_columns) {
        printf("%sspeed-up: over the same variant at %lld thread%s, the geometric mean of the "
               "time ratios\nof the interleaved rounds (95%% CI).\n",
               gap, (long long)c->threads.value[0], c->threads.value[0] == 1 ? "" : "s");
        gap = "";
    }
    if (bf16_compute) {
        printf("%sbf16 compute: max_rel_err is against the oracle on its inputs rounded to bf16"
               "\n(--wide: the error against the float32 data too).\n", gap);
        gap = "";
    }
    if (f32_column && cli_table_wide) {
        printf("%smax_rel_err_f32: against the oracle on the float32 data before any rounding."
               "\n", gap);
        gap = "";
    }
    for (int r = 0; c->read_ref && r < s->run_count; r++, gap = "") {
        const variant_run *run = &s->runs[r];
        printf("%s%s on %d thread%s: K/V %.2f GB/s, a plain read of them %.2f GB/s (--read-ref), "
               "%.2f of it\n", gap, run->info.name, run->params.threads,
               run->params.threads == 1 ? "" : "s", cli_kv_bytes(p) / run->time.median * 1e-9,
               run->read_ref_gbs, bw_fraction_ref(p, run));
    }
    return ok;
}

/* A run's speed-up over its base run, from the rounds' time ratios: a drift of the machine that
 * slows both runs of a round cancels in their ratio. */
void run_compute_speedup(variant_run *run, const variant_run *base, int64_t reps)
{
    stats_welch paired;
    size_t dropped;
    run->speedup = base->samples[0] / run->samples[0];
    run->speedup_lo = run->speedup_hi = NAN;
    if (reps >= 2 &&
        stats_paired_log(run->samples, base->samples, (size_t)reps, 0.95, &paired, &dropped)) {
        run->speedup = exp(paired.diff);
        run->speedup_lo = paired.lo;
        run->speedup_hi = paired.hi;
    }
}
