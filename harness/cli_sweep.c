/* cli_sweep.c — `attnbench sweep`: a grid of shapes × causal × thread counts, every point
 * measured as `run` measures one shape (cli_run_measure), written as one result file.
 *
 * The file is run's JSON document (`tool`, `machine`, `results`: one record per variant and
 * point, run's record schema; `skipped`: the variants left out, with why) plus `duration_s`,
 * `peak` (the cached roofline, or null), `sweep` (the grid) and the provenance every stored
 * file has (cli_store.c: `kind` "sweep", `commit`, `commit_dirty`, `date`, `build`). It is
 * written through atomic_file.c: atomically (replaced, -o, or created, the default name under
 * the results directory), or through a device or FIFO that -o names. */
#include "cli.h"
#include "cli_commands.h"
#include "cli_machine.h"
#include "cli_run.h"
#include "cli_store.h"

#include "atomic_file.h"
#include "shapes.h"
#include "timing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { DEFAULT_REPS = 5, DEFAULT_WARMUP = 1, DEFAULT_CHECK_MAX_LEN = 1024, MAX_REPS = 1000000 };

/* The shape flags first (cli_shape_flags.c: the grammar of run, tune and plan, with lists of
 * lengths and head dims), then sweep's own. */
enum {
    W_CAUSAL_BOTH = CLI_SHAPE_OPTION_COUNT, W_THREADS, W_VARIANT, W_DTYPE, W_OUT_DTYPE, W_REPS,
    W_WARMUP, W_SEED, W_NO_CHECK, W_CHECK_MAX_LEN, W_OUTPUT, W_RESULTS_DIR, W_QUIET, W_FORMAT,
    W_HELP, W_MODEL,
    W_OPTION_COUNT = W_MODEL + CLI_MODEL_OPTION_COUNT
};

static const cli_option sweep_options[W_OPTION_COUNT] = {
    CLI_SHAPE_OPTION_ROWS("N,N,...", "256,512,1024", "64,128"),
    [W_CAUSAL_BOTH] = {"causal-both", NULL, "every point without and with the causal mask"},
    [W_THREADS] = {"threads", "N,N,...",
                   "thread counts (default 0: every core of the first NUMA node)"},
    [W_VARIANT] = {"variant", "LIST", "comma list of variants, or all (default all)"},
    [W_DTYPE] = {"dtype", "f32|bf16|f16", "element type of Q, K, V (default f32)"},
    [W_OUT_DTYPE] = {"out-dtype", "f32|same", "element type of O: f32, or --dtype (default f32)"},
    [W_REPS] = {"reps", "N", "timed runs per variant and point (default 5)"},
    [W_WARMUP] = {"warmup", "N", "untimed runs per variant before them (default 1)"},
    [W_SEED] = {"seed", "N", "seed of the random inputs (default 1)"},
    [W_NO_CHECK] = {"no-check", NULL, "never run the float64 oracle (error fields null)"},
    [W_CHECK_MAX_LEN] = {"check-max-len", "N",
                         "oracle check only where Lq*Lk <= N*N (default 1024)"},
    [W_OUTPUT] = {"output", "FILE", "the result file, also -o (default: see below)"},
    [W_RESULTS_DIR] = {"results-dir", "DIR", "where the default file goes (default results)"},
    [W_QUIET] = {"quiet", NULL, "no progress on stderr"},
    [W_FORMAT] = {"format", "text|json", "stdout: the file's path (default), or the document"},
    [W_HELP] = {"help", NULL, "this help"},
    CLI_MODEL_OPTIONS(W_MODEL),
};

static void print_sweep_help(void)
{
    printf("usage: attnbench sweep [options]\n\n"
           "Measures every point of a grid - sequence length x query length x head dimension\n"
           "x causal x thread count - as `attnbench run` measures one shape (random inputs, an\n"
           "untimed run checked against the float64 oracle, then --warmup and --reps\n"
           "interleaved timed runs of the variants), and writes one JSON result file: run's\n"
           "document (machine, results: one record per variant and point) plus commit, date,\n"
           "build, the cached peak (attnbench peak; null when none) and the grid. A shape's\n"
           "thread counts are measured together, as `run --threads 1,2` does: their records\n"
           "carry the speed-up over the first count from the same rounds. Progress goes to\n"
           "stderr (a bar with the time left on a terminal, a line every few seconds\n"
           "otherwise; --quiet: none); the path of the file written goes to stdout.\n"
           "The float64 oracle is slow on big shapes: points with Lq*Lk > N*N (N: --check-max-\n"
           "len) are timed unchecked (their error fields are null, `checked` false).\n"
           "The shape flags are run's, tune's and plan's, with lists of lengths and head dims:\n"
           "--len (or --len-kv) gives the key lengths Lk, each with Lq = Lk; --len-q 0,1 adds\n"
           "a decode point (Lq = 1) to every self-attention one (0: Lq = Lk); --len-q alone\n"
           "(no 0 in it) gives points with Lk = Lq. --shape NAME starts from a named shape.\n"
           "--dtype bf16|f16 rounds the inputs to that type, as `run --dtype` does; --variant\n"
           "all then measures the variants that read it, and the file's `skipped` lists the\n"
           "others with the reason.\n"
           "\noptions:\n");
    cli_print_options(stdout, sweep_options, W_OPTION_COUNT);
    printf("\nDefault file: DIR/<machine id>/sweep-<UTC date, YYYYMMDDTHHMMSSZ>.json. The commit\n"
           "is `git rev-parse HEAD` in the current directory (null outside a git checkout).\n"
           "\nexample: attnbench sweep --len 256,512,1024,2048 --dim 64,128 --causal both \\\n"
           "           --threads 1,2 --variant all --reps 5\n"
           "\nexit status: 0 every checked variant ok, 1 some variant beyond its tolerance (the\n"
           "file is still written), 2 bad input or an error (no file written).\n");
}


/* Every name of a --variant list is a variant this CPU runs on `dtype` inputs (or the list is
 * "all"). */
static bool variants_ok(const char *list, attn_dtype dtype)
{
    if (!strcmp(list, "all"))
        return true;
    for (const char *t = list;;) {
        const size_t len = strcspn(t, ",");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), t);
        const int index = len < sizeof name ? attn_variant_find(name) : -1;
        attn_variant_info info;
        if (index < 0 || !attn_variant_get(index, &info)) {
            cli_error("sweep", "--variant: unknown variant '%.*s' (see attnbench list)",
                      (int)len, t);
            return false;
        }
        if (!info.supported) {
            cli_error("sweep", "--variant: %s cannot run on this CPU: %s", info.name,
                      info.why_not);
            return false;
        }
        char reason[96];
        const char *why = cli_variant_skip_reason(&info, dtype, 0, reason, sizeof reason);
        if (why) {
            cli_error("sweep", "--variant: %s %s", info.name, why);
            return false;
        }
        t += len;
        if (!*t)
            return true;
        t++;
    }
}

typedef struct sweep_config {
    cli_int_list lens, lens_q, dims, threads;
    attn_dtype kv_dtype; /* --kv-dtype: ATTN_INT8, ATTN_Q4, else K/V of dtype */
    bool causal[2]; /* [0]: non-causal points, [1]: causal points */
    const char *variants, *output, *results_dir;
    int64_t batch, heads_q, heads_kv, reps, warmup, check_max_len;
    float scale; /* 0: 1/sqrt(d) */
    uint64_t seed;
    bool check, quiet;
    cli_format format;
    attn_dtype dtype;
    bool out_same; /* O in dtype too */
    cli_model model; /* the options of current models, as run takes them */
} sweep_config;

static bool has_zero(const cli_int_list *l)
{
    for (int i = 0; i < l->count; i++)
        if (!l->value[i])
            return true;
    return false;
}

/* The grid of the shape flags, as run, tune and plan read them, each size a list: Lk from
 * --len-kv, else --len, else --shape, else the default lengths; Lq from --len-q (0: Lq = Lk),
 * else --shape's (unless --len sets both), else Lq = Lk; --len-q alone (no 0 in it) gives points
 * with Lk = Lq. The mask: --causal-both both, --causal causal only, else the shape's. */
static void grid_of_flags(const cli_shape_flags *f, bool causal_both, sweep_config *c)
{
    const attn_named_shape *s = f->shape;
    const bool lk_given = f->len_kv.count || f->len.count;
    if (f->len_kv.count)
        c->lens = f->len_kv;
    else if (f->len.count)
        c->lens = f->len;
    else if (s)
        c->lens = (cli_int_list){{s->len_kv}, 1};
    if (f->len_q.count && !lk_given && !s && !has_zero(&f->len_q)) {
        c->lens = f->len_q; /* Lk follows Lq */
    } else if (f->len_q.count) {
        c->lens_q = f->len_q;
    } else if (s && !f->len.count) { /* the shape's Lq, unless --len sets both */
        c->lens_q = (cli_int_list){{s->len_q == s->len_kv && !lk_given ? 0 : s->len_q}, 1};
    }
    if (f->head_dim.count)
        c->dims = f->head_dim;
    else if (s)
        c->dims = (cli_int_list){{s->head_dim}, 1};
    c->batch = f->batch.count ? f->batch.value[0] : s ? s->batch : 1;
    c->heads_q = f->heads_q.count ? f->heads_q.value[0] : s ? s->heads_q : 8;
    c->heads_kv = f->heads_kv.count ? f->heads_kv.value[0]
                  : s && !f->heads_q.count ? s->heads_kv
                                           : 0; /* 0: Hq */
    c->scale = (float)f->scale;
    const bool causal = f->causal == 1 || (f->causal < 0 && s && s->causal);
    c->causal[0] = causal_both || !causal;
    c->causal[1] = causal_both || causal;
}

static int parse_sweep_options(int argc, char **argv, sweep_config *c)
{
    *c = (sweep_config){.lens = {{256, 512, 1024}, 3}, .lens_q = {{0}, 1}, .dims = {{64, 128}, 2},
                        .threads = {{0}, 1}, .causal = {true, false}, .variants = "all",
                        .results_dir = "results", .batch = 1, .heads_q = 8, .reps = DEFAULT_REPS,
                        .warmup = DEFAULT_WARMUP, .check_max_len = DEFAULT_CHECK_MAX_LEN,
                        .seed = 1, .check = true, .model = cli_model_none()};
    /* -o is --output: the option parser knows long options (and -h) only. */
    static char output_flag[] = "--output";
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "-o"))
            argv[i] = output_flag;
    const char *value;
    cli_shape_flags shape;
    cli_shape_flags_init(&shape);
    bool causal_both = false;
    for (int o; (o = cli_next_option("sweep", argc, argv, sweep_options, W_OPTION_COUNT,
                                     &value)) != CLI_OPTION_END;) {
        const char *flag = o >= 0 ? sweep_options[o].name : "";
        bool ok = true;
        /* --len-q takes 0 (Lq = Lk), which the shape grammar's lengths do not. */
        if (o == CLI_SHAPE_LEN_Q) {
            if (!cli_parse_int_list("sweep", flag, value, 0, INT32_MAX, &shape.len_q))
                return CLI_EXIT_USAGE;
            continue;
        }
        const int shape_flag = o >= 0 ? cli_shape_option("sweep", o, value, true, &shape) : 0;
        if (shape_flag)
            ok = shape_flag > 0;
        else switch (o) {
        case W_CAUSAL_BOTH: causal_both = true; break;
        case W_THREADS: ok = cli_parse_int_list("sweep", flag, value, 0, ATTN_MAX_THREADS, &c->threads); break;
        case W_VARIANT: c->variants = value; break;
        case W_DTYPE: ok = cli_parse_dtype("sweep", value, &c->dtype); break;
        case W_OUT_DTYPE: ok = cli_parse_out_dtype("sweep", value, &c->out_same); break;
        case W_REPS: ok = cli_parse_int64("sweep", flag, value, 1, MAX_REPS, &c->reps); break;
        case W_WARMUP: ok = cli_parse_int64("sweep", flag, value, 0, MAX_REPS, &c->warmup); break;
        case W_SEED: ok = cli_parse_uint64("sweep", flag, value, &c->seed); break;
        case W_NO_CHECK: c->check = false; break;
        case W_CHECK_MAX_LEN:
            ok = cli_parse_int64("sweep", flag, value, 0, INT64_MAX, &c->check_max_len);
            break;
        case W_OUTPUT: c->output = value; break;
        case W_RESULTS_DIR: c->results_dir = value; break;
        case W_QUIET: c->quiet = true; break;
        case W_FORMAT:
            ok = cli_parse_format("sweep", value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON,
                                  &c->format);
            break;
        case W_HELP: print_sweep_help(); return CLI_EXIT_OK;
        default:
            if (o < W_MODEL || o >= W_OPTION_COUNT)
                return CLI_EXIT_USAGE;
            ok = cli_model_parse("sweep", o - W_MODEL, value, &c->model);
        }
        if (!ok)
            return CLI_EXIT_USAGE;
    }
    grid_of_flags(&shape, causal_both, c);
    if (!cli_kv_dtype_resolve("sweep", shape.kv_dtype, c->dtype, &c->kv_dtype))
        return CLI_EXIT_USAGE;
    if (!variants_ok(c->variants, c->dtype))
        return CLI_EXIT_USAGE;
    /* Every shape valid before anything is timed (heads_kv dividing heads_q, sizes). */
    for (int l = 0; l < c->lens.count; l++)
        for (int q = 0; q < c->lens_q.count; q++)
            for (int d = 0; d < c->dims.count; d++) {
                attn_problem p;
                attn_error err;
                const int64_t len = c->lens.value[l],
                              len_q = c->lens_q.value[q] ? c->lens_q.value[q] : len;
                attn_problem_init(&p, c->batch, c->heads_q,
                                  c->heads_kv ? c->heads_kv : c->heads_q, len_q, len,
                                  c->dims.value[d]);
                if (attn_problem_validate(&p, &err) != ATTN_OK)
                    return cli_error("sweep", "Lq %lld, Lk %lld, dim %lld: %s",
                                     (long long)len_q, (long long)len,
                                     (long long)c->dims.value[d], err.message);
            }
    /* The grid records the counts the runs use. */
    return cli_resolve_threads("sweep", &c->threads) ? -1 : CLI_EXIT_USAGE;
}

/* ---- the file's grid ----------------------------------------------------------------------- */

static json_t *int_list_json(const cli_int_list *l)
{
    json_t *a = json_array();
    for (int i = 0; a && i < l->count; i++)
        if (json_array_append_new(a, json_integer(l->value[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *grid_json(const sweep_config *c, int points)
{
    json_t *causal = json_array();
    for (int k = 0; causal && k < 2; k++)
        if (c->causal[k] && json_array_append_new(causal, json_boolean(k))) {
            json_decref(causal);
            causal = NULL;
        }
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b, "
                     "s:o, s:i, s:o}",
                     "len", int_list_json(&c->lens), "len_q", int_list_json(&c->lens_q), "dim",
                     int_list_json(&c->dims), "causal", causal, "threads",
                     int_list_json(&c->threads), "variants", c->variants, "dtype",
                     attn_dtype_name(c->dtype), "out_dtype",
                     attn_dtype_name(c->out_same ? c->dtype : ATTN_F32),
                     "batch", (json_int_t)c->batch, "heads_q", (json_int_t)c->heads_q,
                     "heads_kv", (json_int_t)(c->heads_kv ? c->heads_kv : c->heads_q), "reps",
                     (json_int_t)c->reps, "warmup", (json_int_t)c->warmup, "seed",
                     (json_int_t)c->seed, "check", c->check, "check_max_len",
                     c->check ? json_integer(c->check_max_len) : json_null(), "points", points,
                     "scale", c->scale ? json_real(c->scale) : json_null());
}

/* ---- output -------------------------------------------------------------------------------- */

/* Whether -o can be written (atomic_file.h: its directory writable, not a directory or a
 * read-only file): checked before the measurements, so a typo in -o does not cost a sweep. */
static bool can_create(const char *path)
{
    attn_error err;
    if (attn_file_check(path, &err) == ATTN_OK)
        return true;
    cli_error("sweep", "-o %s", err.message);
    return false;
}

/* ---- the sweep ------------------------------------------------------------------------------ */

/* A checked record beyond its tolerance. */
static bool any_failed(const json_t *records)
{
    size_t i;
    const json_t *r;
    json_array_foreach(records, i, r) if (!json_is_true(json_object_get(r, "ok"))) return true;
    return false;
}

int cli_sweep(int argc, char **argv)
{
    sweep_config c;
    int status = parse_sweep_options(argc, argv, &c);
    if (status >= 0)
        return status;

    /* Where the file goes, checked before the measurements. */
    char dir[4096];
    if (c.output ? !can_create(c.output) : !cli_store_dir("sweep", c.results_dir, dir, sizeof dir))
        return CLI_EXIT_USAGE;

    json_t *records = json_array(), *skipped = json_array();
    if (!records || !skipped) {
        json_decref(records);
        json_decref(skipped);
        return cli_error("sweep", "out of memory");
    }
    const int causal_count = c.causal[0] + c.causal[1];
    /* A point is a shape; its thread counts are measured together, rounds interleaved, so
     * their speed-ups are ratios within one measurement. */
    const int total = c.dims.count * c.lens.count * c.lens_q.count * causal_count;
    const double start = attn_clock_seconds();
    cli_progress progress;
    cli_progress_start(&progress, "sweep", (size_t)total, c.quiet);
    /* The whole sweep's conditions (each record has its own point's too). */
    json_t *conditions = cli_conditions_start();
    if (!c.quiet)
        cli_conditions_warn("sweep", conditions);
    int done = 0;
    status = -1;
    char threads[CLI_INT_LIST_TEXT];
    cli_int_list_format(&c.threads, threads, sizeof threads);
    /* The order of the points: head dim, then length, query length, causal. */
    for (int i = 0; i < total && status < 0; i++) {
        int rest = i;
        const int k = c.causal[0] && c.causal[1] ? rest % 2 : c.causal[1];
        rest /= causal_count;
        const int q = rest % c.lens_q.count;
        rest /= c.lens_q.count;
        const int l = rest % c.lens.count;
        const int d = rest / c.lens.count;
        const int64_t len = c.lens.value[l],
                      len_q = c.lens_q.value[q] ? c.lens_q.value[q] : len;
        /* The oracle's cost grows as Lq·Lk: compare with N² (doubles: no overflow). */
        const bool check = c.check && (double)len_q * (double)len <=
                                          (double)c.check_max_len * (double)c.check_max_len;
        char what[CLI_INT_LIST_TEXT + 160], lens[64];
        if (len_q == len)
            snprintf(lens, sizeof lens, "len=%lld", (long long)len);
        else
            snprintf(lens, sizeof lens, "Lq=%lld Lk=%lld", (long long)len_q, (long long)len);
        snprintf(what, sizeof what, "%s d=%lld %s threads=%s%s", lens,
                 (long long)c.dims.value[d], k ? "causal" : "non-causal", threads,
                 check ? "" : " (unchecked)");
        cli_progress_update(&progress, (size_t)done, what);
        const cli_measure_spec spec = {
            .variants = c.variants, .batch = c.batch, .heads_q = c.heads_q,
            .heads_kv = c.heads_kv, .len_q = len_q, .len_kv = len, .head_dim = c.dims.value[d],
            .causal = k, .check = check, .scale = c.scale, .seed = c.seed, .reps = c.reps, .warmup = c.warmup,
            .threads = c.threads, .dtype = c.dtype, .kv_dtype = c.kv_dtype,
            .out_dtype = c.out_same ? c.dtype : ATTN_F32, .skipped = skipped,
            .model = c.model};
        status = cli_run_measure(&spec, records);
        if (status < 0)
            cli_progress_update(&progress, (size_t)++done, what);
    }
    cli_progress_end(&progress);
    cli_conditions_end(conditions);
    if (status >= 0) {
        json_decref(conditions);
        json_decref(records);
        json_decref(skipped);
        return cli_error("sweep", "stopped at point %d of %d; no file written", done + 1, total);
    }

    json_t *doc = json_pack("{s:s, s:f, s:o, s:o?, s:o, s:o, s:o, s:o}", "tool",
                            "attnbench " ATTN_VERSION_STRING, "duration_s",
                            attn_clock_seconds() - start, "machine", cli_machine_json(),
                            "conditions", conditions, "peak", cli_cached_peak_json(), "sweep",
                            grid_json(&c, total * c.threads.count), "results", records,
                            "skipped", skipped);
    if (!doc)
        return cli_error("sweep", "out of memory");
    char path[4200];
    bool written;
    if (c.output) {
        snprintf(path, sizeof path, "%s", c.output);
        written = cli_store_stamp("sweep", doc, "sweep") && cli_store_write("sweep", doc, path);
    } else {
        written = cli_store_save("sweep", doc, "sweep", c.results_dir, path, sizeof path);
    }
    status = CLI_EXIT_USAGE;
    if (written) {
        fprintf(stderr, "sweep: %zu records in %s\n", json_array_size(records), path);
        if (c.format == CLI_FORMAT_JSON)
            written = cli_json_print(doc);
        else
            printf("%s\n", path);
        status = !written ? cli_error("sweep", "output error")
                 : any_failed(records) ? CLI_EXIT_FAILED : CLI_EXIT_OK;
    }
    json_decref(doc);
    return status;
}
