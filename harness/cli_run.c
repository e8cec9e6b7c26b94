/* cli_run.c — attnbench run: options, inputs (random or .npy), the variants chosen, checked
 * against the float64 oracle and timed interleaved; cli_run_measure for sweep. Its output is
 * cli_run_report.c. */
#include "cli.h"
#include "cli_commands.h"
#include "cli_machine.h"
#include "cli_run.h"
#include "cli_run_report.h"
#include "cli_store.h"

#include "atomic_file.h"
#include "cpu.h"
#include "rng.h"
#include "stats.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- attnbench run ------------------------------------------------------------------------ */

enum {
    /* the shape flags first (cli_shape_flags.c), then run's own */
    RUN_VARIANT = CLI_SHAPE_OPTION_COUNT, RUN_KV_LENS, RUN_MASK, RUN_LAYOUT, RUN_DTYPE,
    RUN_OUT_DTYPE, RUN_PARAMS, RUN_SEED, RUN_REPS, RUN_WARMUP, RUN_THREADS, RUN_NO_CHECK, RUN_Q,
    RUN_K, RUN_V, RUN_OUT_NPY, RUN_OUTPUT, RUN_FORMAT, RUN_DISABLE_ISA, RUN_SAVE, RUN_RESULTS_DIR,
    RUN_QUIET, RUN_MIN_TIME, RUN_WARMUP_TIME, RUN_READ_REF, RUN_HELP, RUN_MODEL,
    RUN_OPTION_COUNT = RUN_MODEL + CLI_MODEL_OPTION_COUNT
};

/* Defaults of the shape and the measurement. */
enum { DEFAULT_BATCH = 1, DEFAULT_HEADS = 8, DEFAULT_LEN = 1024, DEFAULT_DIM = 64 };
enum { DEFAULT_REPS = 10, DEFAULT_WARMUP = 2, MAX_REPS = 1000000 };

static const cli_option run_options[RUN_OPTION_COUNT] = {
    CLI_SHAPE_OPTION_ROWS("N", "1024", "64"),
    [RUN_VARIANT] = {"variant", "LIST", "comma list of variants, or all (default: all)"},
    [RUN_KV_LENS] = {"kv-lens", "N,N,...", "key length of each batch entry (B values, each <= Lk)"},
    [RUN_MASK] = {"mask", "FILE.npy", "additive float32 mask [Lq,Lk] (-inf masks a key)"},
    [RUN_LAYOUT] = {"layout", "bhld|blhd", "memory layout of Q, K, V, O (default bhld)"},
    [RUN_DTYPE] = {"dtype", "f32|bf16|f16", "element type of Q, K, V (default f32)"},
    [RUN_OUT_DTYPE] = {"out-dtype", "f32|same", "element type of O: f32, or --dtype (default f32)"},
    [RUN_PARAMS] = {"params", "NAME:K=V,...", "parameters of variant NAME (repeatable)"},
    [RUN_SEED] = {"seed", "N", "seed of the random inputs (default 1)"},
    [RUN_REPS] = {"reps", "N", "timed runs per variant, 1..1000000 (default 10)"},
    [RUN_WARMUP] = {"warmup", "N", "untimed runs per variant before them (default 2)"},
    [RUN_THREADS] = {"threads", "N,N,...",
                     "thread counts (default 0: every core of the first NUMA node)"},
    [RUN_NO_CHECK] = {"no-check", NULL, "skip the float64 oracle (error fields become null)"},
    [RUN_Q] = {"q", "FILE.npy", "read Q [B,Hq,Lq,d] (float32 or float16) instead of random"},
    [RUN_K] = {"k", "FILE.npy", "read K [B,Hkv,Lk,d]"},
    [RUN_V] = {"v", "FILE.npy", "read V [B,Hkv,Lk,d]"},
    [RUN_OUT_NPY] = {"out-npy", "FILE.npy", "write O [B,Hq,Lq,d] of the first variant run"},
    [RUN_OUTPUT] = {"output", "FILE", "also write the JSON result document to FILE, also -o"},
    [RUN_FORMAT] = {"format", "text|json|csv", "output format (default text)"},
    [RUN_DISABLE_ISA] = {"disable-isa", "LIST", "turn ISAs off, as ATTN_DISABLE_ISA=LIST does"},
    [RUN_SAVE] = {"save", NULL, "also store the JSON result under DIR/<machine id>/"},
    [RUN_RESULTS_DIR] = {"results-dir", "DIR", "where --save stores it (default results)"},
    [RUN_QUIET] = {"quiet", NULL, "no progress and no warnings on stderr"},
    [RUN_MIN_TIME] = {"min-time", "S", "timed rounds go on past --reps until S seconds"},
    [RUN_WARMUP_TIME] = {"warmup-time", "S", "warm-up rounds go on past --warmup until S seconds"},
    [RUN_READ_REF] = {"read-ref", NULL, "a plain read of K and V after each run (below)"},
    [RUN_HELP] = {"help", NULL, "this help"},
    CLI_MODEL_OPTIONS(RUN_MODEL),
};

static void print_run_help(void)
{
    printf("usage: attnbench run [options]\n\n"
           "Runs each chosen variant on one attention problem: one untimed run checked against\n"
           "the float64 oracle, then --warmup untimed and --reps timed runs (CLOCK_MONOTONIC,\n"
           "the runs of the variants interleaved; --min-time S: more until they took S s);\n"
           "reports the median time and its spread (CV; IQR, min and max with --wide, and the\n"
           "outliers in JSON), GFLOP/s (4*B*Hq*d per attended query-key pair) and the error\n"
           "against the oracle. A warning on stderr when a spread is large (CV or IQR over 10%%\n"
           "of the median) or the load average says the machine is busy; every JSON record\n"
           "carries its conditions (load average at start and end, CPU MHz, governor,\n"
           "affinity, SMT siblings sharing a core).\n"
           "--threads 1,2,...: every variant runs at every count, all in the same interleaved\n"
           "rounds, and each later count gets its speed-up over the first: the geometric mean\n"
           "of the rounds' time ratios with a 95%% interval (a drift of a shared machine slows\n"
           "both runs of a round alike, so it cancels in their ratio).\n"
           "--read-ref: after each run, one timed plain read of the problem's own K and V arrays\n"
           "(a row of K, the same row of V, as `attnbench peak` reads) on the run's threads;\n"
           "read_ref_gbs is the median of those reads and bw_fraction_ref the variant's K/V\n"
           "GB/s over it: a decode kernel against the bandwidth of the same pages in the same\n"
           "minute, where bw_fraction is against peak's cached figure (memory of a shared or\n"
           "virtual machine can move by 20%% or more between hours).\n"
           "\noptions:\n");
    cli_print_options(stdout, run_options, RUN_OPTION_COUNT);
    printf("\nInputs are uniform in [-1, 1) from a SplitMix64 generator seeded by --seed, drawn\n"
           "in [B,H,L,d] order whatever the layout, so runs are reproducible and layouts agree.\n"
           ".npy files: little-endian float32 ('<f4') or float16 ('<f2'), C order, versions\n"
           "1.0, 2.0, 3.0; Q, K, V and O are 4-d [B,H,L,d] whatever --layout says. A size not\n"
           "given as a flag is taken from the files (B, Hq, Lq, d from --q; Hkv, Lk from --k or\n"
           "--v); sizes given both ways must agree. --out writes the output of the first\n"
           "variant run (the first of --variant's list, or the best-ranked supported one),\n"
           "atomically: float32, or float16 with --dtype f16 --out-dtype same (a bf16 output is\n"
           "written widened to float32: numpy has no bfloat16).\n"
           "--dtype bf16|f16: the inputs (random, or from the files, a float16 file widened\n"
           "exactly) are rounded to that type, to nearest even, and the variants read them so:\n"
           "a float16 file keeps its values with --dtype f16, a float32 file given with --dtype\n"
           "f16 or bf16 is rounded (numpy has no bfloat16: bf16 inputs come from float32 files).\n"
           "max_rel_err is against the float64 oracle run on the rounded inputs (rounded further\n"
           "to bf16 for a variant that computes in bf16: what the variant computes from);\n"
           "max_rel_err_f32 against the oracle on the float32 data before any rounding (what\n"
           "the rounding costs; the same figure when nothing is rounded).\n"
           "--variant all (the default) runs every variant this CPU supports that reads --dtype;\n"
           "the others are skipped with the reason (stderr; `skipped` in JSON). Without --variant,\n"
           "ATTN_FORCE_VARIANT=NAME runs that one only. Naming a variant this CPU cannot run, or\n"
           "one that does not read --dtype, is an error (ATTN_DISABLE_ISA=avx512,... turns ISAs\n"
           "off as if the CPU lacked them; `attnbench list` shows the types each variant reads).\n"
           "--params NAME:K=V,... must name a variant being run; its values apply over the\n"
           "variant's defaults for the shape.\n"
           "--save stores the JSON document, with commit, date and build, as\n"
           "DIR/<machine id>/run-<UTC date>.json (results/README.md), whatever --format says.\n"
           "\nexit status: 0 every variant ok, 1 some variant beyond its tolerance, 2 bad input\n"
           "or an error (message on stderr).\n");
}


static int parse_run_options(int argc, char **argv, run_config *c)
{
    *c = (run_config){.check = true, .seed = 1, .reps = DEFAULT_REPS, .warmup = DEFAULT_WARMUP,
                      .threads = {{0}, 1}, .results_dir = "results", .model = cli_model_none()};
    c->params = malloc((size_t)argc * sizeof *c->params);
    if (!c->params)
        return cli_error("run", "out of memory");
    /* -o is --output: the option parser knows long options (and -h) only. */
    static char output_flag[] = "--output";
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "-o"))
            argv[i] = output_flag;
    cli_shape_flags shape;
    cli_shape_flags_init(&shape);
    const char *value;
    for (int o; (o = cli_next_option("run", argc, argv, run_options, RUN_OPTION_COUNT, &value)) !=
                CLI_OPTION_END;) {
        const char *flag = o >= 0 ? run_options[o].name : "";
        bool ok = true;
        const int shape_flag = o >= 0 ? cli_shape_option("run", o, value, false, &shape) : 0;
        if (shape_flag)
            ok = shape_flag > 0;
        else switch (o) {
        case RUN_VARIANT: c->variants = value; break;
        case RUN_KV_LENS: c->kv_lens = value; break;
        case RUN_MASK: c->mask = value; break;
        case RUN_LAYOUT:
            ok = !strcmp(value, "bhld") || !strcmp(value, "blhd");
            if (!ok)
                cli_error("run", "--layout: '%s' is not bhld or blhd", value);
            c->blhd = ok && !strcmp(value, "blhd");
            break;
        case RUN_DTYPE: ok = cli_parse_dtype("run", value, &c->dtype); break;
        case RUN_OUT_DTYPE: ok = cli_parse_out_dtype("run", value, &c->out_same); break;
        case RUN_PARAMS: c->params[c->params_count++] = value; break;
        case RUN_SEED: ok = cli_parse_uint64("run", flag, value, &c->seed); break;
        case RUN_REPS: ok = cli_parse_int64("run", flag, value, 1, MAX_REPS, &c->reps); break;
        case RUN_WARMUP: ok = cli_parse_int64("run", flag, value, 0, MAX_REPS, &c->warmup); break;
        case RUN_THREADS:
            ok = cli_parse_int_list("run", flag, value, 0, ATTN_MAX_THREADS, &c->threads);
            break;
        case RUN_NO_CHECK: c->check = false; break;
        case RUN_Q: c->q = value; break;
        case RUN_K: c->k = value; break;
        case RUN_V: c->v = value; break;
        case RUN_OUT_NPY:
        case RUN_OUTPUT: { /* checked now, not after the measurements */
            attn_error err;
            *(o == RUN_OUT_NPY ? &c->out : &c->output) = value;
            ok = attn_file_check(value, &err) == ATTN_OK;
            if (!ok)
                cli_error("run", "--%s %s", flag, err.message);
            break;
        }
        case RUN_QUIET: c->quiet = true; break;
        case RUN_MIN_TIME:
        case RUN_WARMUP_TIME: {
            float seconds;
            ok = cli_parse_positive_float("run", flag, value, &seconds);
            *(o == RUN_MIN_TIME ? &c->min_time : &c->warmup_time) = seconds;
            break;
        }
        case RUN_READ_REF: c->read_ref = true; break;
        case RUN_FORMAT:
            ok = cli_parse_format("run", value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON |
                                  1u << CLI_FORMAT_CSV, &c->format);
            break;
        case RUN_DISABLE_ISA: ok = cli_set_disable_isa("run", value); break;
        case RUN_SAVE: c->save = true; break;
        case RUN_RESULTS_DIR: c->results_dir = value; break;
        case RUN_HELP: print_run_help(); return CLI_EXIT_OK;
        default:
            if (o < RUN_MODEL)
                return CLI_EXIT_USAGE;
            ok = cli_model_parse("run", o - RUN_MODEL, value, &c->model);
        }
        if (!ok)
            return CLI_EXIT_USAGE;
    }
    if (!cli_resolve_threads("run", &c->threads))
        return CLI_EXIT_USAGE;
    cli_shape_sizes z;
    cli_shape_flags_sizes(&shape, &z);
    c->batch = z.batch, c->heads_q = z.heads_q, c->heads_kv = z.heads_kv;
    c->len_q = z.len_q, c->len_kv = z.len_kv, c->head_dim = z.head_dim;
    c->causal = z.causal, c->scale = z.scale;
    c->named = shape.shape;
    if (!cli_kv_dtype_resolve("run", z.kv_dtype, c->dtype, &c->kv_dtype))
        return CLI_EXIT_USAGE;
    return -1; /* go on */
}

/* ---- inputs -------------------------------------------------------------------------------- */

static void format_shape(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, ")");
}


static void run_free(run_state *s)
{
    json_decref(s->conditions);
    attn_npy_free(&s->file_q);
    attn_npy_free(&s->file_k);
    attn_npy_free(&s->file_v);
    attn_npy_free(&s->file_mask);
    cli_model_free(&s->config.model);
    free(s->kv_lens);
    for (int t = 0; t < 3; t++) {
        if (s->input[t] != s->data[t])
            free(s->input[t]);
        free(s->data[t]);
    }
    free(s->scales[0]), free(s->scales[1]);
    free(s->o);
    free(s->o_f32);
    free(s->out);
    if (s->ref_bf16 != s->ref && s->ref_bf16 != s->ref_f32)
        free(s->ref_bf16);
    if (s->ref != s->ref_f32)
        free(s->ref);
    free(s->ref_f32);
    for (int i = 0; i < s->run_count; i++) {
        free(s->runs[i].samples);
        free(s->runs[i].read_gbs);
    }
    free(s->runs);
    free(s->config.params);
    json_decref(s->skipped);
}

/* Notes a variant left out of the default set: on stderr and in the `skipped` list. */
static int skip_variant(run_state *s, const char *name, const char *reason)
{
    fprintf(stderr, "attnbench run: skipping %s: %s\n", name, reason);
    if (json_array_append_new(s->skipped,
                              json_pack("{s:s, s:s}", "variant", name, "reason", reason)))
        return cli_error("run", "out of memory");
    return -1;
}

static bool read_npy(const char *flag, const char *path, int ndim, attn_npy_array *a)
{
    if (!path)
        return true;
    attn_error err;
    if (attn_npy_read(path, a, &err) != ATTN_OK) {
        cli_error("run", "--%s %s", flag, err.message);
        return false;
    }
    if (a->ndim != ndim) {
        char shape[160];
        format_shape(shape, sizeof shape, a->ndim, a->shape);
        cli_error("run", "--%s %s: expected a %d-d array, got shape %s", flag, path, ndim, shape);
        return false;
    }
    return true;
}

/* A file must have exactly the shape the problem says. */
static bool check_file_shape(const char *flag, const char *path, const attn_npy_array *a,
                             int ndim, const int64_t *want, const char *names)
{
    if (!path || !memcmp(a->shape, want, (size_t)ndim * sizeof *want))
        return true;
    char have[160], need[160];
    format_shape(have, sizeof have, a->ndim, a->shape);
    format_shape(need, sizeof need, ndim, want);
    cli_error("run", "--%s %s: shape %s does not match the problem's %s = %s", flag, path, have,
              names, need);
    return false;
}

/* The first value of a size: the flag, else the first file that has it, else the default. */
static int64_t pick_size(int64_t flag, const attn_npy_array *a, const attn_npy_array *b, int dim,
                         int64_t fallback)
{
    if (flag)
        return flag;
    if (a && a->ndim == 4)
        return a->shape[dim];
    if (b && b->ndim == 4)
        return b->shape[dim];
    return fallback;
}

/* Builds and validates the problem from the flags and files. */
static int build_problem(run_state *s)
{
    const run_config *c = &s->config;
    if (!read_npy("q", c->q, 4, &s->file_q) || !read_npy("k", c->k, 4, &s->file_k) ||
        !read_npy("v", c->v, 4, &s->file_v) || !read_npy("mask", c->mask, 2, &s->file_mask))
        return CLI_EXIT_USAGE;
    const attn_npy_array *fq = c->q ? &s->file_q : NULL, *fk = c->k ? &s->file_k : NULL,
                         *fv = c->v ? &s->file_v : NULL;
    const attn_npy_array *fkv = fk ? fk : fv;
    const int64_t batch = pick_size(c->batch, fq, fkv, 0, DEFAULT_BATCH);
    const int64_t heads_q = pick_size(c->heads_q, fq, NULL, 1, DEFAULT_HEADS);
    const int64_t heads_kv = pick_size(c->heads_kv, fkv, NULL, 1, heads_q);
    const int64_t len_q = pick_size(c->len_q, fq, NULL, 2, c->len_kv ? c->len_kv : DEFAULT_LEN);
    const int64_t len_kv = pick_size(c->len_kv, fkv, NULL, 2, len_q);
    const int64_t head_dim = pick_size(c->head_dim, fq, fkv, 3, DEFAULT_DIM);
    attn_problem *p = &s->problem;
    attn_problem_init(p, batch, heads_q, heads_kv, len_q, len_kv, head_dim);
    p->scale = c->scale;
    p->causal = c->causal;
    p->dtype = c->dtype;
    p->out_dtype = c->out_same ? c->dtype : ATTN_F32;
    if (c->blhd)
        attn_problem_set_layout_blhd(p);
    if (c->kv_dtype == ATTN_INT8 || c->kv_dtype == ATTN_Q4)
        attn_problem_set_kv_dtype(p, c->kv_dtype); /* contiguous scales */
    if (!cli_model_apply("run", &s->config.model, p))
        return CLI_EXIT_USAGE;

    const int64_t shape_q[4] = {batch, heads_q, len_q, head_dim},
                  shape_kv[4] = {batch, heads_kv, len_kv, head_dim},
                  shape_mask[2] = {len_q, len_kv};
    if (!check_file_shape("q", c->q, &s->file_q, 4, shape_q, "[B,Hq,Lq,d]") ||
        !check_file_shape("k", c->k, &s->file_k, 4, shape_kv, "[B,Hkv,Lk,d]") ||
        !check_file_shape("v", c->v, &s->file_v, 4, shape_kv, "[B,Hkv,Lk,d]") ||
        !check_file_shape("mask", c->mask, &s->file_mask, 2, shape_mask, "[Lq,Lk]"))
        return CLI_EXIT_USAGE;
    p->mask = s->file_mask.data;

    if (c->kv_lens) {
        if (!cli_parse_kv_lens("run", c->kv_lens, batch, &s->kv_lens))
            return CLI_EXIT_USAGE;
        p->kv_lens = s->kv_lens;
    } else if (c->named && c->named->kv_lens && batch == c->named->batch &&
               len_kv == c->named->len_kv) {
        p->kv_lens = c->named->kv_lens; /* the shape's own (D3), unless its sizes changed */
    }

    attn_error err;
    if (attn_problem_validate(p, &err) != ATTN_OK)
        return cli_error("run", "invalid problem: %s", err.message);
    return -1;
}

/* The registry index of the variant named by text[0..len), or -1. */
static int variant_index(const char *text, size_t len)
{
    char name[64];
    if (len >= sizeof name)
        return -1;
    memcpy(name, text, len);
    name[len] = '\0';
    return attn_variant_find(name);
}

static int unknown_variant(const char *flag, const char *text, size_t len)
{
    const char *absent, *why;
    for (int i = 0; attn_variant_absent(i, &absent, &why); i++)
        if (strlen(absent) == len && !strncmp(absent, text, len))
            return cli_error("run", "--%s: variant %s is %s", flag, absent, why);
    char known[512] = "";
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        if (attn_variant_get(i, &info))
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s, ", info.name);
    }
    return cli_error("run", "--%s: unknown variant '%.*s' (known: %sall)", flag, (int)len, text,
                     known);
}

/* Chooses the variants and their parameters. */
static int choose_variants(run_state *s)
{
    const run_config *c = &s->config;
    const int count = attn_variant_count();
    s->runs = calloc((size_t)count, sizeof *s->runs);
    s->skipped = json_array();
    if (!s->runs || !s->skipped)
        return cli_error("run", "out of memory");
    attn_variant_info info;
    const char *forced = NULL, *why;
    char reason[96];
    attn_error err;
    int status = -1;
    if (!c->variants && attn_forced_variant(&forced, &err) != ATTN_OK)
        return cli_error("run", "%s", err.message);
    if (forced) {
        const int i = attn_variant_find(forced);
        attn_variant_get(i, &info);
        if ((why = run_skip_reason(&info, c, &s->problem, reason, sizeof reason)))
            return cli_error("run", "ATTN_FORCE_VARIANT=%s: %s", forced, why);
        s->runs[s->run_count++] = (variant_run){.index = i, .chosen = true};
    } else if (!c->variants || !strcmp(c->variants, "all")) {
        for (int i = 0; i < count && status < 0; i++) {
            if (!attn_variant_get(i, &info))
                continue;
            if ((why = run_skip_reason(&info, c, &s->problem, reason, sizeof reason)))
                status = skip_variant(s, info.name, why);
            else
                s->runs[s->run_count++].index = i;
        }
        if (status >= 0)
            return status;
    } else {
        for (const char *t = c->variants;; t++) {
            const size_t len = strcspn(t, ",");
            const int i = variant_index(t, len);
            if (i < 0)
                return unknown_variant("variant", t, len);
            attn_variant_get(i, &info);
            if (!info.supported)
                return cli_error("run", "--variant: %s cannot run on this CPU: %s", info.name,
                                 info.why_not);
            if ((why = run_skip_reason(&info, c, &s->problem, reason, sizeof reason)))
                return cli_error("run", "--variant: %s %s", info.name, why);
            for (int r = 0; r < s->run_count; r++)
                if (s->runs[r].index == i)
                    return cli_error("run", "--variant: %s is named twice", info.name);
            s->runs[s->run_count++] = (variant_run){.index = i, .chosen = true};
            t += len;
            if (!*t)
                break;
        }
    }
    if (s->run_count == 0)
        return cli_error("run", "no variant can run on this CPU with %s inputs",
                         attn_dtype_name(c->dtype));

    for (int r = 0; r < s->run_count; r++) {
        variant_run *run = &s->runs[r];
        attn_variant_get(run->index, &run->info);
        run->info.isa = NULL; /* attn_variant_get's text buffers are reused by the next call */
        run->info.why_not = NULL;
        run->tolerance = attn_variant_tolerance(run->info.name, &s->problem);
        if (attn_variant_default_params(run->info.name, &s->problem, &run->params, &err) !=
            ATTN_OK)
            return cli_error("run", "%s", err.message);
        run->params.threads = (int32_t)c->threads.value[0];
    }
    for (int i = 0; i < c->params_count; i++) {
        const char *text = c->params[i], *colon = strchr(text, ':');
        if (!colon)
            return cli_error("run", "--params: '%s' is not NAME:K=V,...", text);
        const size_t len = (size_t)(colon - text);
        const int index = variant_index(text, len);
        if (index < 0)
            return unknown_variant("params", text, len);
        variant_run *run = NULL;
        for (int r = 0; r < s->run_count; r++)
            if (s->runs[r].index == index)
                run = &s->runs[r];
        if (!run)
            return cli_error("run", "--params: variant %.*s is not being run (see --variant)",
                             (int)len, text);
        if (attn_params_parse(run->info.name, colon + 1, &run->params, &err) != ATTN_OK)
            return cli_error("run", "--params %s: %s", text, err.message);
        run->chosen = true;
    }
    /* Every choice checked now, before the long part. A variant that only came with the
     * default set and cannot take this problem (a BLAS int limit, a register budget) is left
     * out with a note; one the user chose is an error. */
    int kept = 0;
    for (int r = 0; r < s->run_count; r++) {
        variant_run *run = &s->runs[r];
        if (attn_params_check(run->info.name, &s->problem, &run->params, &err) == ATTN_OK)
            s->runs[kept++] = *run;
        else if (run->chosen)
            return cli_error("run", "%s", err.message);
        else if ((status = skip_variant(s, run->info.name, err.message)) >= 0)
            return status;
    }
    if (kept == 0)
        return cli_error("run", "no variant can run this problem");
    /* One run per variant and thread count, a variant's counts side by side. */
    const int counts = c->threads.count;
    variant_run *runs = calloc((size_t)kept * (size_t)counts, sizeof *runs);
    if (!runs)
        return cli_error("run", "out of memory");
    for (int r = 0; r < kept; r++)
        for (int t = 0; t < counts; t++) {
            variant_run *run = &runs[r * counts + t];
            *run = s->runs[r];
            run->params.threads = (int32_t)c->threads.value[t];
            run->base = t > 0 ? r * counts : -1;
        }
    free(s->runs);
    s->runs = runs;
    s->run_count = kept * counts;
    return -1;
}

/* Whether a variant being run computes in bf16 from inputs that are not bf16 already: then it
 * is checked against its own reference. */
static bool needs_bf16_reference(const run_state *s)
{
    for (int r = 0; s->problem.dtype != ATTN_BF16 && r < s->run_count; r++)
        if (s->runs[r].info.compute_dtype == ATTN_BF16)
            return true;
    return false;
}

/* 64-byte aligned, the size rounded up as aligned_alloc wants. */
static void *alloc_tensor(int64_t elements, size_t element_size)
{
    return aligned_alloc(64, ((size_t)elements * element_size + 63) & ~(size_t)63);
}

/* Allocates and fills the tensors, after checking the total fits in the machine's memory (so a
 * huge-but-valid shape fails cleanly here rather than in the OOM killer later). */
static int make_tensors(run_state *s)
{
    const attn_problem *p = &s->problem;
    const run_config *c = &s->config;
    attn_error err;
    int64_t *extent = s->extent, logical = p->batch; /* elements: q, k, v, o; B·Hq·Lq·d */
    const char names[4] = {'q', 'k', 'v', 'o'};
    for (int t = 0; t < 4; t++)
        if (attn_tensor_extent(p, names[t], &extent[t], &err) != ATTN_OK)
            return cli_error("run", "invalid problem: %s", err.message);
    /* B·Hq·Lq·d <= B·Hq·Lq·Lk·d, which validation bounds by INT64_MAX / 8. */
    logical *= p->heads_q * p->len_q * p->head_dim;
    const bool quantized = attn_problem_kv_dtype(p) != (int)p->dtype; /* K/V int8 or q4 */
    const bool half_in = p->dtype != ATTN_F32 || quantized, half_out = p->out_dtype != ATTN_F32;
    const size_t in_size = attn_dtype_size(p->dtype), out_size = attn_dtype_size(p->out_dtype);
    const bool bf16_ref = c->check && needs_bf16_reference(s);
    const int refs = c->check ? 1 + half_in + bf16_ref : 0;
    const double inputs = (double)(extent[0] + extent[1] + extent[2]);
    /* float32 inputs: a copy rounded to bf16 for the bf16 reference (prepare_inputs) */
    const double total = (4.0 + (half_in ? (double)in_size : bf16_ref ? 4.0 : 0)) * inputs +
                         ((double)out_size + (half_out ? 4.0 : 0)) * (double)extent[3] +
                         8.0 * refs * (double)logical + (c->out ? 4.0 * logical : 0);
    const double physical = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (physical > 0 && total > physical)
        return cli_error("run", "cannot allocate: this shape needs %.3g GiB of memory for its "
                         "tensors%s, the machine has %.3g GiB", total / 0x1p30,
                         c->check ? " and the oracle" : "", physical / 0x1p30);

    for (int t = 0; t < 3; t++) {
        s->data[t] = alloc_tensor(extent[t], sizeof(float));
        s->input[t] = t > 0 && quantized ? alloc_tensor(extent[t], 1) /* q4: half used */
                      : p->dtype != ATTN_F32 ? alloc_tensor(extent[t], in_size) : s->data[t];
        if (!s->data[t] || !s->input[t])
            return cli_error("run", "cannot allocate %lld bytes for %c",
                             (long long)extent[t] * 4, names[t]);
    }
    if (quantized && !run_kv_scales(s))
        return cli_error("run", "cannot allocate the scales of K and V");
    if (!(s->o = alloc_tensor(extent[3], out_size)) ||
        (half_out && !(s->o_f32 = alloc_tensor(extent[3], sizeof(float)))))
        return cli_error("run", "cannot allocate %lld bytes for o", (long long)extent[3] * 4);
    /* The references, each B·Hq·Lq·d doubles; one that would repeat another is that one. */
    double **refs_to_make[3] = {&s->ref_f32, half_in ? &s->ref : NULL,
                                bf16_ref ? &s->ref_bf16 : NULL};
    for (int r = 0; c->check && r < 3; r++)
        if (refs_to_make[r] && !(*refs_to_make[r] = malloc((size_t)logical * sizeof(double))))
            return cli_error("run", "cannot allocate %lld bytes for the oracle's output",
                             (long long)logical * 8);
    if (!half_in)
        s->ref = s->ref_f32;
    if (!s->ref_bf16)
        s->ref_bf16 = s->ref;
    if (c->out && !(s->out = malloc((size_t)logical * sizeof(float))))
        return cli_error("run", "cannot allocate %lld bytes for --out", (long long)logical * 4);

    /* One stream per tensor, so changing one tensor's shape leaves the others' values alone. */
    const attn_npy_array *files[3] = {&s->file_q, &s->file_k, &s->file_v};
    for (int t = 0; t < 3; t++) {
        uint64_t rng = c->seed ^ (uint64_t)(t + 1) << 56;
        run_fill_tensor(s->data[t], run_view_of(p, names[t]), files[t]->data, &rng);
    }
    attn_npy_free(&s->file_q);
    attn_npy_free(&s->file_k);
    attn_npy_free(&s->file_v);
    return -1;
}

/* Rounds the inputs to the problem's dtype for the variants, and computes the oracle's
 * references on the way, rounding data[] in place after each (see run_state). */
static int prepare_inputs(run_state *s)
{
    const attn_problem *p = &s->problem;
    const bool check = s->config.check;
    attn_error err;
    if (check && attn_oracle(p, s->data[0], s->data[1], s->data[2], s->ref_f32, &err))
        return cli_error("run", "oracle: %s", err.message);
    if (!run_kv_quantize(s, &err)) /* quantized K/V: after the float32 reference */
        return cli_error("run", "quantizing K/V: %s", err.message);
    for (int t = 0; t < 3; t++)
        if (s->input[t] != s->data[t] && (t == 0 || attn_problem_kv_dtype(p) == (int)p->dtype)) {
            int64_t overflowed = 0; /* finite values float16 cannot hold: they become ±inf */
            for (int64_t i = 0; p->dtype == ATTN_F16 && i < s->extent[t]; i++)
                overflowed += isfinite(s->data[t][i]) && fabsf(s->data[t][i]) >= 65520.0f;
            if (overflowed)
                fprintf(stderr, "attnbench run: warning: %lld values of %c are beyond float16's "
                        "range (|x| >= 65520) and become infinite\n", (long long)overflowed,
                        "QKV"[t]);
            attn_convert(s->data[t], ATTN_F32, s->input[t], p->dtype, (size_t)s->extent[t]);
            attn_convert(s->input[t], p->dtype, s->data[t], ATTN_F32, (size_t)s->extent[t]);
        }
    if (check && s->ref != s->ref_f32 &&
        attn_oracle(p, s->data[0], s->data[1], s->data[2], s->ref, &err))
        return cli_error("run", "oracle: %s", err.message);
    if (check && s->ref_bf16 != s->ref &&
        attn_oracle_rounded(p, s->data[0], s->data[1], s->data[2], ATTN_BF16, s->ref_bf16, &err))
        return cli_error("run", "oracle: %s", err.message);
    return -1;
}

/* n elements of type t, all NaN. */
static void fill_nan(void *o, attn_dtype t, int64_t n)
{
    if (t == ATTN_F32) {
        for (int64_t i = 0; i < n; i++)
            ((float *)o)[i] = NAN;
        return;
    }
    const float nan = NAN;
    uint16_t bits;
    attn_convert(&nan, ATTN_F32, &bits, t, 1);
    for (int64_t i = 0; i < n; i++)
        ((uint16_t *)o)[i] = bits;
}

/* One untimed run of each variant, compared with the oracle; --out keeps the first. */
static int check_variants(run_state *s)
{
    int status = prepare_inputs(s);
    if (status >= 0)
        return status;
    const attn_problem *p = &s->problem;
    /* .npy has float16 but no bfloat16: a bf16 output is written widened. */
    const attn_dtype file_dtype = p->out_dtype == ATTN_F16 ? ATTN_F16 : ATTN_F32;
    attn_error err;
    for (int r = 0; r < s->run_count; r++) {
        variant_run *run = &s->runs[r];
        /* NaN everywhere first: an element the variant forgets to write fails the check. */
        fill_nan(s->o, p->out_dtype, s->extent[3]);
        if (attn_run_variant(run->info.name, p, &run->params, s->input[0], s->input[1],
                             s->input[2], s->o, &err))
            return cli_error("run", "%s", err.message);
        const float *o = s->o;
        if (s->o_f32) {
            attn_convert(s->o, p->out_dtype, s->o_f32, ATTN_F32, (size_t)s->extent[3]);
            o = s->o_f32;
        }
        if (s->config.check) {
            attn_compare(p, o, run->info.compute_dtype == ATTN_BF16 ? s->ref_bf16 : s->ref,
                         run->tolerance, &run->error);
            attn_compare(p, o, s->ref_f32, run->tolerance, &run->error_f32);
        }
        if (r == 0 && s->out)
            run_gather_tensor(s->out, file_dtype, run_view_of(p, 'o'), s->o, p->out_dtype);
    }
    if (s->out) {
        const int64_t shape[4] = {p->batch, p->heads_q, p->len_q, p->head_dim};
        if (attn_npy_write(s->config.out, 4, shape, s->out, file_dtype, &err) != ATTN_OK)
            return cli_error("run", "--out %s", err.message);
    }
    return -1;
}

/* Warm-up rounds, then timed rounds; each round runs every variant (and thread count) once, so
 * slow drifts of a shared machine (frequency, other load) spread over all runs alike. */
/* With --min-time S, timed rounds go on past --reps until they have taken S seconds (as Google
 * Benchmark's min_time), and config.reps becomes the number taken; --warmup-time likewise for
 * the warm-up rounds (config.warmup). Samples stay in round order (the speed-ups pair them by
 * round; result files keep that order for compare --paired). With --read-ref every run, warm-up
 * too (so that the rounds' pattern never changes), is followed by a read of K and V. */
static int time_variants(run_state *s)
{
    run_config *c = &s->config;
    attn_error err;
    int64_t capacity = c->reps;
    for (int r = 0; r < s->run_count; r++) {
        variant_run *run = &s->runs[r];
        run->read_ref_gbs = NAN;
        if (!(run->samples = malloc((size_t)capacity * sizeof(double))) ||
            (c->read_ref && !(run->read_gbs = malloc((size_t)capacity * sizeof(double)))))
            return cli_error("run", "out of memory");
    }
    cli_progress progress;
    cli_progress_start(&progress, "run", (size_t)(c->warmup + c->reps),
                       c->quiet || c->min_time > 0 || c->warmup_time > 0);
    const double warmup_start = attn_clock_seconds();
    double timed_start = 0;
    int64_t warm = 0, timed = 0;
    for (;;) {
        const bool warming =
            warm < c->warmup || attn_clock_seconds() - warmup_start < c->warmup_time;
        if (!warming && timed == 0)
            timed_start = attn_clock_seconds();
        if (!warming && timed >= c->reps &&
            (timed >= MAX_REPS || !(c->min_time > 0) ||
             attn_clock_seconds() - timed_start >= c->min_time))
            break;
        if (!warming && timed >= capacity) {
            capacity *= 2;
            for (int r = 0; r < s->run_count; r++) {
                variant_run *run = &s->runs[r];
                double *more = realloc(run->samples, (size_t)capacity * sizeof(double));
                if (more)
                    run->samples = more;
                double *reads = more && c->read_ref
                    ? realloc(run->read_gbs, (size_t)capacity * sizeof(double)) : NULL;
                if (reads)
                    run->read_gbs = reads;
                if (!more || (c->read_ref && !reads))
                    return cli_error("run", "out of memory");
            }
        }
        for (int r = 0; r < s->run_count; r++) {
            variant_run *run = &s->runs[r];
            const double start = attn_clock_seconds();
            if (attn_run_variant(run->info.name, &s->problem, &run->params, s->input[0],
                                 s->input[1], s->input[2], s->o, &err))
                return cli_error("run", "%s", err.message);
            const double seconds = attn_clock_seconds() - start;
            const double read = c->read_ref ? run_read_ref_gbs(s, run->params.threads) : 0;
            if (c->read_ref && read == 0)
                return cli_error("run", "--read-ref: the read could not run on %d threads "
                                 "(the thread pool is busy)", run->params.threads);
            if (!warming)
                run->samples[timed] = seconds;
            if (!warming && c->read_ref)
                run->read_gbs[timed] = read;
        }
        *(warming ? &warm : &timed) += 1;
        cli_progress_update(&progress, (size_t)(warm + timed),
                            warming ? "warm-up" : "timed rounds");
    }
    cli_progress_end(&progress);
    c->warmup = warm;
    c->reps = timed;
    for (int r = 0; r < s->run_count; r++)
        if (s->runs[r].base >= 0)
            run_compute_speedup(&s->runs[r], &s->runs[s->runs[r].base], c->reps);
    double *sorted = malloc((size_t)c->reps * sizeof *sorted);
    if (!sorted)
        return cli_error("run", "out of memory");
    for (int r = 0; r < s->run_count; r++) {
        variant_run *run = &s->runs[r];
        memcpy(sorted, run->samples, (size_t)c->reps * sizeof *sorted);
        attn_time_stats_compute(sorted, (size_t)c->reps, &run->time); /* sorts its copy */
        if (c->read_ref) {
            attn_time_stats reads;
            memcpy(sorted, run->read_gbs, (size_t)c->reps * sizeof *sorted);
            attn_time_stats_compute(sorted, (size_t)c->reps, &reads);
            run->read_ref_gbs = reads.median;
        }
        if (!stats_spread_of(run->samples, (size_t)c->reps, &run->spread)) {
            free(sorted);
            return cli_error("run", "out of memory");
        }
    }
    free(sorted);
    return -1;
}

/* The measurement itself, shared by run and cli_run_measure: -1 when done. */
static int measure(run_state *s)
{
    int status = build_problem(s);
    if (status < 0)
        status = choose_variants(s);
    if (status < 0)
        status = make_tensors(s);
    if (status < 0)
        status = check_variants(s);
    if (status < 0) {
        s->conditions = cli_conditions_start();
        if (!s->conditions)
            return cli_error("run", "out of memory");
        if (!s->config.quiet)
            cli_conditions_warn("run", s->conditions);
        status = time_variants(s);
        if (!cli_conditions_end(s->conditions))
            status = cli_error("run", "out of memory");
    }
    return status;
}

int cli_run(int argc, char **argv)
{
    run_state s = {0};
    int status = parse_run_options(argc, argv, &s.config);
    if (status < 0)
        status = measure(&s);
    if (status < 0 && (s.config.save || s.config.output)) {
        json_t *doc = run_document(&s, attn_problem_flops(&s.problem));
        char path[4200];
        if (!doc)
            status = cli_error("run", "out of memory");
        if (doc && s.config.output && !(cli_store_stamp("run", doc, "run") &&
                                        cli_store_write("run", doc, s.config.output)))
            status = CLI_EXIT_USAGE;
        if (status < 0 && s.config.save) {
            if (cli_store_save("run", doc, "run", s.config.results_dir, path, sizeof path))
                fprintf(stderr, "attnbench run: saved %s\n", path);
            else
                status = CLI_EXIT_USAGE;
        }
        json_decref(doc);
    }
    if (status < 0) {
        const double flops = attn_problem_flops(&s.problem);
        bool printed = true;
        switch (s.config.format) {
        case CLI_FORMAT_JSON: printed = run_print_json(&s, flops); break;
        case CLI_FORMAT_CSV: run_print_csv(&s, flops); break;
        case CLI_FORMAT_TEXT: printed = run_print_text(&s, flops); break;
        }
        status = CLI_EXIT_OK;
        for (int r = 0; r < s.run_count; r++)
            if (!run_ok(&s, &s.runs[r]))
                status = CLI_EXIT_FAILED;
        if (!printed)
            status = cli_error("run", "out of memory or output error");
    }
    run_free(&s);
    return status;
}

int cli_run_measure(const cli_measure_spec *spec, json_t *records)
{
    run_state s = {.config = {.variants = spec->variants, .batch = spec->batch,
                              .heads_q = spec->heads_q, .heads_kv = spec->heads_kv,
                              .len_q = spec->len_q, .len_kv = spec->len_kv,
                              .head_dim = spec->head_dim, .causal = spec->causal,
                              .scale = spec->scale,
                              .check = spec->check, .seed = spec->seed, .reps = spec->reps,
                              .quiet = true, /* the caller shows its own progress */
                              .warmup = spec->warmup,
                              .threads = spec->threads,
                              .dtype = spec->dtype, .out_same = spec->out_dtype != ATTN_F32,
                              .kv_dtype = spec->kv_dtype,
                              .format = CLI_FORMAT_JSON, .model = spec->model}};
    s.config.model.slopes = s.config.model.sink_values = NULL; /* made here, freed by run_free */
    s.config.model.block_table = NULL;
    if (spec->out_dtype != ATTN_F32 && spec->out_dtype != spec->dtype)
        return cli_error("run", "out_dtype must be f32 or the input dtype");
    if (!cli_resolve_threads("run", &s.config.threads))
        return CLI_EXIT_USAGE;
    int status = measure(&s);
    if (status < 0) {
        const double flops = attn_problem_flops(&s.problem);
        for (int r = 0; r < s.run_count && status < 0; r++)
            if (json_array_append_new(records, run_result_json(&s, &s.runs[r], flops)))
                status = cli_error("run", "out of memory");
    }
    if (status < 0 && spec->skipped) { /* the skipped variants, once per name */
        size_t i, j;
        json_t *entry, *known;
        json_array_foreach(s.skipped, i, entry) {
            bool seen = false;
            json_array_foreach(spec->skipped, j, known)
                seen |= json_equal(json_object_get(known, "variant"),
                                   json_object_get(entry, "variant"));
            if (!seen && json_array_append(spec->skipped, entry))
                status = cli_error("run", "out of memory");
        }
    }
    run_free(&s);
    return status;
}

