/* gbench_main.c — attnbench-gbench: every variant this CPU runs × a standard shape set, as Google
 * Benchmark benchmarks (through gbench_shim.h), for CI performance tracking.
 *
 * Each benchmark is named VARIANT/KIND/SHAPE/tTHREADS, e.g.
 * "avx512/causal/B1.Hq8.Hkv8.Lq1024.Lk1024.d64/t1", and timed in real time. Before it is timed,
 * its output is checked once against the float64 oracle; a variant beyond its tolerance is
 * reported as an error and not timed. Counters: gflops (computed here from wall-clock time:
 * FLOPs × iterations / elapsed seconds), max_rel_err, bytes (Q, K, V and O bytes of one call).
 *
 * ATTN_GBENCH_PLANT_SLOWDOWN=F (0 <= F <= 1) is a test knob: after every call the benchmark
 * spins for F × the call's own measured time, a calibrated slowdown of F for checking that
 * `attnbench compare` and scripts/perf-ab catch regressions. It is recorded in the context. */
#include "attn.h"
#include "attn_build_info.h"
#include "cli.h"
#include "cpu.h"
#include "gbench_shim.h"
#include "oracle.h"
#include "rng.h"
#include "shapes.h"
#include "timing.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Inputs of one shape, shared by every variant's benchmark, made on first use. */
typedef struct shape_data {
    const attn_named_shape *def; /* of the set "gbench" or "gbench-quick" (shapes.c) */
    attn_problem problem;
    float *q, *k, *v;
    double *ref; /* the oracle's output */
    int64_t extent[4];
    bool prepared;
    char error[300]; /* non-empty: preparing failed */
} shape_data;

typedef struct bench {
    shape_data *shape;
    const char *variant; /* the registry's name */
    double tolerance;
    attn_params params;
    float *o;
    bool checked;
    double max_rel_err;
    char error[320];
    char name[192];
} bench;

static double planted_slowdown; /* ATTN_GBENCH_PLANT_SLOWDOWN */
static bool any_check_failed;

static float *random_tensor(int64_t count, uint64_t seed)
{
    float *t = aligned_alloc(64, ((size_t)count * sizeof(float) + 63) & ~(size_t)63);
    for (int64_t i = 0; t && i < count; i++)
        t[i] = attn_rng_uniform_pm1(&seed);
    return t;
}

static bool prepare_shape(shape_data *s)
{
    if (s->prepared)
        return !s->error[0];
    s->prepared = true;
    attn_named_shape_problem(s->def, &s->problem);
    attn_error err;
    const char names[4] = {'q', 'k', 'v', 'o'};
    for (int t = 0; t < 4; t++)
        if (attn_tensor_extent(&s->problem, names[t], &s->extent[t], &err) != ATTN_OK) {
            snprintf(s->error, sizeof s->error, "%s", err.message);
            return false;
        }
    s->q = random_tensor(s->extent[0], 1);
    s->k = random_tensor(s->extent[1], 2);
    s->v = random_tensor(s->extent[2], 3);
    s->ref = malloc((size_t)s->extent[3] * sizeof *s->ref);
    if (!s->q || !s->k || !s->v || !s->ref) {
        snprintf(s->error, sizeof s->error, "out of memory");
        return false;
    }
    if (attn_oracle(&s->problem, s->q, s->k, s->v, s->ref, &err) != ATTN_OK) {
        snprintf(s->error, sizeof s->error, "oracle: %s", err.message);
        return false;
    }
    return true;
}

/* The untimed first run, checked against the oracle; false (with b->error) when it fails. */
static bool prepare_bench(bench *b)
{
    if (b->checked)
        return !b->error[0];
    b->checked = true;
    shape_data *s = b->shape;
    if (!prepare_shape(s)) {
        snprintf(b->error, sizeof b->error, "%s", s->error);
        return false;
    }
    b->o = aligned_alloc(64, ((size_t)s->extent[3] * sizeof(float) + 63) & ~(size_t)63);
    if (!b->o) {
        snprintf(b->error, sizeof b->error, "out of memory");
        return false;
    }
    attn_error err;
    if (attn_run_variant(b->variant, &s->problem, &b->params, s->q, s->k, s->v, b->o, &err) !=
        ATTN_OK) {
        snprintf(b->error, sizeof b->error, "%s", err.message);
        return false;
    }
    attn_error_metrics m;
    attn_compare(&s->problem, b->o, s->ref, b->tolerance, &m);
    b->max_rel_err = m.max_rel;
    if (!m.ok) {
        any_check_failed = true;
        snprintf(b->error, sizeof b->error, "max_rel_err %.3g beyond the tolerance %.3g%s",
                 m.max_rel, b->tolerance, m.nan_mismatch ? " (NaN/inf mismatches)" : "");
        return false;
    }
    return true;
}

static void spin_until(double deadline)
{
    while (attn_clock_seconds() < deadline) {
    }
}

static void run_bench(gbench_state *state, void *arg)
{
    bench *b = arg;
    if (!prepare_bench(b)) {
        gbench_skip_with_error(state, b->error);
        return;
    }
    const shape_data *s = b->shape;
    attn_error err;
    const double start = attn_clock_seconds();
    while (gbench_keep_running(state)) {
        const double t0 = attn_clock_seconds();
        if (attn_run_variant(b->variant, &s->problem, &b->params, s->q, s->k, s->v, b->o,
                             &err) != ATTN_OK) {
            gbench_skip_with_error(state, err.message);
            return;
        }
        if (planted_slowdown > 0)
            spin_until(t0 + (1 + planted_slowdown) * (attn_clock_seconds() - t0));
    }
    const double elapsed = attn_clock_seconds() - start;
    const double calls = (double)gbench_iterations(state);
    /* GFLOP/s from wall-clock time, set as a plain counter: Google Benchmark 1.7's rate
     * counters divide by CPU time, which misses the library's worker threads. */
    gbench_set_counter(state, "gflops",
                       elapsed > 0 ? attn_problem_flops(&s->problem) * calls / elapsed * 1e-9 : 0);
    gbench_set_counter(state, "max_rel_err", b->max_rel_err);
    gbench_set_counter(state, "bytes",
                       4.0 * (double)(s->extent[0] + s->extent[1] + s->extent[2] + s->extent[3]));
}

static void print_help(void)
{
    printf("usage: attnbench-gbench [options] [--benchmark_* flags]\n\n"
           "Every variant this CPU runs x a standard shape set (prefill, causal, decode, GQA) as\n"
           "Google Benchmark benchmarks named VARIANT/KIND/SHAPE/tTHREADS, timed in real time.\n"
           "Each variant is checked once against the float64 oracle before it is timed.\n"
           "Counters: gflops (from wall-clock time), max_rel_err, bytes (Q, K, V, O per call).\n"
           "\noptions:\n"
           "  --quick                  the small shape set (for CI)\n"
           "  --threads N,N,...        library threads per call, 1..%d, each count its own\n"
           "                           benchmarks (default 1)\n"
           "  --variant LIST           comma list of variants (default: every supported one)\n"
           "  --wide                   Google Benchmark's console table (CPU time, every\n"
           "                           counter, full names) instead of the 100-column one\n"
           "  --help                   this help\n"
           "and the shape flags of run, tune, plan and sweep (--shape NAME, --batch, --heads,\n"
           "--kv-heads, --len, --len-q, --len-kv, --dim, --scale, --causal): one shape of their\n"
           "describing instead of the set, benchmarked as KIND custom.\n"
           "\nGoogle Benchmark's flags, among others: --benchmark_filter=REGEX\n"
           "--benchmark_repetitions=N --benchmark_min_time=SECONDS --benchmark_format=json\n"
           "--benchmark_out=FILE --benchmark_out_format=json --benchmark_list_tests=true\n"
           "(Google Benchmark's own list follows this help).\n"
           "\nenvironment: ATTN_GBENCH_PLANT_SLOWDOWN=F (0..1) plants a calibrated slowdown of F\n"
           "(a spin of F x each call's time) for testing regression detection.\n"
           "\nexit status: 0 ok, 1 a variant failed its oracle check, 2 bad input or nothing run.\n",
           ATTN_MAX_THREADS);
}

/* Whether `name` is in the comma list (NULL: every name is). */
static bool in_list(const char *list, const char *name)
{
    if (!list)
        return true;
    const size_t len = strlen(name);
    for (const char *t = list;; t++) {
        const size_t item = strcspn(t, ",");
        if (item == len && !strncmp(t, name, len))
            return true;
        t += item;
        if (!*t)
            return false;
    }
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "attnbench-gbench: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 2;
}

static bool parse_fraction(const char *text, double *out)
{
    char *end;
    errno = 0;
    const double v = strtod(text, &end);
    if (!text[0] || *end || errno || !(v >= 0 && v <= 1))
        return false;
    *out = v;
    return true;
}

static void add_context(const cli_int_list *threads, bool quick)
{
    const attn_cpu *cpu = attn_cpu_get();
    char text[CLI_INT_LIST_TEXT];
    gbench_add_context("attnbench_version", ATTN_VERSION_STRING);
    gbench_add_context("attnbench_machine_id", attn_machine_id());
    gbench_add_context("attnbench_cpu", cpu->model_name);
    gbench_add_context("attnbench_compiler", ATTN_BUILD_COMPILER);
    gbench_add_context("attnbench_buildtype", ATTN_BUILD_TYPE);
    gbench_add_context("attnbench_c_args", ATTN_BUILD_C_ARGS);
    gbench_add_context("attnbench_shape_set", quick ? "quick" : "standard");
    cli_int_list_format(threads, text, sizeof text); /* "1" or "1,2" */
    gbench_add_context("attnbench_threads", text);
    snprintf(text, sizeof text, "%g", planted_slowdown);
    gbench_add_context("attnbench_planted_slowdown", text);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_help();
            fflush(stdout);
            /* Google Benchmark prints its flags for --help, and exits. */
            char *help_argv[] = {argv[0], "--help", NULL};
            int help_argc = 2;
            gbench_initialize(&help_argc, help_argv);
            return 0;
        }
    /* The console table is attnbench-gbench's narrow one unless --wide or another
     * --benchmark_format (read before Initialize takes the --benchmark_* flags out of argv). */
    bool narrow = true;
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], "--benchmark_format=", 19) && strcmp(argv[i] + 19, "console"))
            narrow = false;
    gbench_initialize(&argc, argv); /* takes the --benchmark_* flags out of argv */
    bool quick = false, custom = false;
    cli_int_list threads = {{1}, 1};
    const char *variants = NULL;
    cli_shape_flags shape_flags;
    cli_shape_flags_init(&shape_flags);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int shape_flag = -1; /* the one grammar of shape flags (cli_shape_flags.c) */
        for (int k = 0; k < CLI_SHAPE_OPTION_COUNT && arg[0] == '-' && arg[1] == '-'; k++)
            if (!strcmp(arg + 2, cli_shape_options[k].name))
                shape_flag = k;
        if (shape_flag >= 0) {
            const bool takes_value = cli_shape_options[shape_flag].metavar != NULL;
            if (takes_value && i + 1 == argc)
                return usage_error("option '%s' needs a value", arg);
            if (cli_shape_option("gbench", shape_flag, takes_value ? argv[++i] : NULL, false,
                                 &shape_flags) < 0)
                return 2;
            custom = true;
        } else if (!strcmp(arg, "--quick")) {
            quick = true;
        } else if (!strcmp(arg, "--wide")) {
            narrow = false;
        } else if (!strcmp(arg, "--threads") || !strcmp(arg, "--variant")) {
            if (i + 1 == argc)
                return usage_error("option '%s' needs a value", arg);
            const char *value = argv[++i];
            if (!strcmp(arg, "--variant")) {
                variants = value;
                continue;
            }
            /* a list, as every shape-taking command's: each count its own benchmarks (/tN) */
            if (!cli_parse_int_list("gbench", "threads", value, 1, ATTN_MAX_THREADS, &threads))
                return 2;
        } else {
            const char *known[CLI_SHAPE_OPTION_COUNT + 5] = {"quick", "threads", "variant",
                                                             "wide", "help"};
            for (int k = 0; k < CLI_SHAPE_OPTION_COUNT; k++)
                known[5 + k] = cli_shape_options[k].name;
            const char *near = arg[0] == '-' && arg[1] == '-'
                                   ? cli_nearest_name(arg + 2, known, CLI_SHAPE_OPTION_COUNT + 5)
                                   : NULL;
            if (near) {
                fprintf(stderr, "attnbench-gbench: unknown argument '%s'; did you mean --%s?\n",
                        arg, near);
                return 2;
            }
            return usage_error("unknown argument '%s' (see --help)", arg);
        }
    }
    const char *plant = getenv("ATTN_GBENCH_PLANT_SLOWDOWN");
    if (plant && plant[0] && !parse_fraction(plant, &planted_slowdown))
        return usage_error("ATTN_GBENCH_PLANT_SLOWDOWN: '%s' is not a number in [0, 1]", plant);
    for (const char *t = variants; t;) {
        char name[64];
        const size_t len = strcspn(t, ",");
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), t);
        attn_variant_info info;
        const int index = attn_variant_find(name);
        if (index < 0 || !attn_variant_get(index, &info))
            return usage_error("--variant: unknown variant '%s'", name);
        if (!info.supported)
            return usage_error("--variant: %s cannot run on this CPU", name);
        t = t[len] ? t + len + 1 : NULL;
    }

    /* The standard set, or --quick's: the same kinds, small enough for a CI job. */
    const char *set = quick ? "gbench-quick" : "gbench";
    /* The shape flags: their one shape instead of the set. */
    attn_named_shape custom_shape = {.name = "custom", .set = "custom", .kind = "custom"};
    attn_problem custom_problem;
    char custom_kind[64]; /* "custom", with ".causal" and ".s<scale>" when they apply */
    if (custom) {
        if (!cli_shape_flags_problem("gbench", &shape_flags, &custom_problem))
            return 2;
        const int n = snprintf(custom_kind, sizeof custom_kind, "custom%s",
                               custom_problem.causal ? ".causal" : "");
        if (custom_problem.scale > 0)
            snprintf(custom_kind + n, sizeof custom_kind - (size_t)n, ".s%.6g",
                     (double)custom_problem.scale);
        custom_shape.kind = custom_kind;
        custom_shape.batch = custom_problem.batch, custom_shape.heads_q = custom_problem.heads_q;
        custom_shape.heads_kv = custom_problem.heads_kv, custom_shape.len_q = custom_problem.len_q;
        custom_shape.len_kv = custom_problem.len_kv;
        custom_shape.head_dim = custom_problem.head_dim;
        custom_shape.causal = custom_problem.causal;
    }
    const int variant_count = attn_variant_count();
    shape_data *shapes = calloc((size_t)attn_named_shape_count, sizeof *shapes);
    bench *benches = calloc((size_t)variant_count * (size_t)attn_named_shape_count *
                                (size_t)threads.count,
                            sizeof *benches);
    if (!shapes || !benches) {
        free(shapes);
        free(benches);
        return usage_error("%s", "out of memory");
    }
    int count = 0, shape_count = 0;
    if (custom) {
        shapes[0].def = &custom_shape;
        shapes[0].problem = custom_problem;
        shape_count = 1;
    }
    for (int n = 0; !custom && n < attn_named_shape_count; n++) {
        if (strcmp(attn_named_shapes[n].set, set))
            continue;
        shapes[shape_count].def = &attn_named_shapes[n];
        attn_named_shape_problem(&attn_named_shapes[n], &shapes[shape_count].problem);
        shape_count++;
    }
    /* Variant-major order: a variant's shapes run one after another. */
    for (int i = 0; i < variant_count; i++) {
        attn_variant_info info;
        if (!attn_variant_get(i, &info) || !info.supported || !in_list(variants, info.name))
            continue;
        for (int s = 0; s < shape_count * threads.count; s++) {
            bench *b = &benches[count];
            const long count_of_threads = (long)threads.value[s % threads.count];
            const attn_named_shape *d = shapes[s / threads.count].def;
            attn_error err;
            b->shape = &shapes[s / threads.count];
            b->variant = info.name; /* the registry's own string, stable */
            b->tolerance = info.tolerance;
            const attn_problem *problem = &b->shape->problem;
            if (attn_variant_default_params(info.name, problem, &b->params, &err) != ATTN_OK ||
                (b->params.threads = (int32_t)count_of_threads,
                 attn_params_check(info.name, problem, &b->params, &err) != ATTN_OK)) {
                fprintf(stderr, "attnbench-gbench: skipping %s on %s: %s\n", info.name, d->kind,
                        err.message);
                continue;
            }
            snprintf(b->name, sizeof b->name, "%s/%s/B%lld.Hq%lld.Hkv%lld.Lq%lld.Lk%lld.d%lld/t%ld",
                     info.name, d->kind, (long long)d->batch, (long long)d->heads_q,
                     (long long)d->heads_kv, (long long)d->len_q, (long long)d->len_kv,
                     (long long)d->head_dim, count_of_threads);
            if (!gbench_register(b->name, run_bench, b)) {
                free(shapes);
                free(benches);
                return 2;
            }
            count++;
        }
    }
    add_context(&threads, quick);
    const size_t ran = gbench_run(narrow);
    gbench_shutdown();
    for (int i = 0; i < count; i++)
        free(benches[i].o);
    for (int s = 0; s < shape_count; s++) {
        free(shapes[s].q);
        free(shapes[s].k);
        free(shapes[s].v);
        free(shapes[s].ref);
    }
    free(shapes);
    free(benches);
    if (fflush(stdout) != 0 || ferror(stdout))
        return usage_error("cannot write the output: %s", strerror(errno));
    if (ran == 0)
        return usage_error("%s", "no benchmark ran (see --benchmark_filter)");
    return any_check_failed ? 1 : 0;
}
