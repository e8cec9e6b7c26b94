/* cli_run_report.h — attnbench run's state (cli_run.c measures into it) and its output as
 * text, JSON (the record schema of results/README.md) and CSV (cli_run_report.c). */
#ifndef ATTN_CLI_RUN_REPORT_H
#define ATTN_CLI_RUN_REPORT_H

#include "cli.h"
#include "cli_model.h"
#include "npy.h"
#include "oracle.h"
#include "shapes.h"
#include "stats.h"
#include "timing.h"

typedef struct run_config {
    const char *variants; /* NULL: every supported one */
    int64_t batch, heads_q, heads_kv, len_q, len_kv, head_dim; /* 0: not given (shape flags) */
    const attn_named_shape *named; /* --shape: its own kv_lens (D3) */
    float scale;                                                 /* 0: default */
    bool causal, blhd, check;
    attn_dtype dtype; /* of Q, K, V */
    attn_dtype kv_dtype; /* ATTN_INT8, ATTN_Q4: K and V quantized (--kv-dtype); else dtype's */
    bool out_same;    /* O has dtype too (else float32) */
    uint64_t seed;
    int64_t reps, warmup;
    cli_int_list threads; /* resolved: no 0 */
    const char *kv_lens, *mask, *q, *k, *v, *out;
    const char *output; /* -o: the JSON document, also written there */
    bool save, quiet;
    double min_time; /* --min-time: 0, or seconds of timed rounds at least */
    double warmup_time; /* --warmup-time: 0, or seconds of warm-up rounds at least */
    bool read_ref;   /* --read-ref: a plain read of K and V after each run (run_read_ref_gbs) */
    const char *results_dir;
    const char **params; /* the --params texts, in order */
    int params_count;
    cli_format format;
    cli_model model; /* --window, --alibi, --softcap, --sinks */
} run_config;

/* Everything run owns; released by run_free.
 *
 * The inputs: data[t] holds the float32 values (random or from a file) in the problem's layout;
 * input[t] what the variants read, those values in problem.dtype (data[t] itself for f32). The
 * oracle runs on float32 copies of what a variant computes from, so data[t] is rounded in place
 * step by step once each reference is computed: ref_f32 from the data as drawn, ref from the
 * dtype's values, ref_bf16 from those rounded to bf16 (for variants computing in bf16; from a
 * rounded copy when data[t] is the variants' float32 input). A reference that would repeat
 * another is that one. */
typedef struct run_state {
    run_config config;
    attn_npy_array file_q, file_k, file_v, file_mask;
    attn_problem problem;
    int32_t *kv_lens;
    float *data[3];
    void *input[3], *o, *out; /* o: the variant's output, in out_dtype */
    void *scales[2];           /* quantized K/V: the scales of K and V */
    float *o_f32;              /* o widened, for the comparison (out_dtype != f32) */
    int64_t extent[4];         /* elements of q, k, v, o */
    double *ref, *ref_f32, *ref_bf16;
    struct variant_run *runs;
    int run_count;
    json_t *skipped; /* [{"variant", "reason"}]: left out of the default set */
    json_t *conditions; /* cli_conditions_start, around the timed rounds */
} run_state;

/* Run's tensors (cli_run_inputs.c): the logical view of tensor 'q', 'k', 'v' or 'o'; filling one
 * row by row in logical order from src (contiguous [B,H,L,d]) or, src NULL, the generator;
 * gathering one of `from` elements into contiguous [B,H,L,d] of `to` elements. */
/* The logical shape [B, H, L, d] and strides of tensor 'q', 'k', 'v' or 'o'. */
typedef struct tensor_view {
    int64_t dims[4];
    const attn_strides *strides;
    const attn_problem *paged; /* K or V of a paged problem: rows through its block table */
} tensor_view;
tensor_view run_view_of(const attn_problem *p, char tensor);
void run_fill_tensor(float *dst, tensor_view t, const float *src, uint64_t *rng);
void run_gather_tensor(void *dst, attn_dtype to, tensor_view t, const void *src, attn_dtype from);

/* Quantized K/V (cli_run_inputs.c). Why a variant cannot take run's problem
 * (cli_variant_skip_reason, or quantized K/V it does not read), NULL when it can; allocating
 * the scale tensors into the problem (false: out of memory); quantizing data[1], data[2] into
 * input[1], input[2] and dequantizing them back in place, nothing for float K/V (false with
 * err filled). */
const char *run_skip_reason(const attn_variant_info *info, const run_config *c,
                            const attn_problem *p, char *buf, size_t len);
bool run_kv_scales(run_state *s);
/* One pass of `attn_peak_read_once` over the variants' K and V arrays (their whole extent, in
 * the stored type) on `threads` threads: GB/s; 0 when it could not run on them, NaN when
 * they are smaller than one row (ATTN_READ_ROW_BYTES) each. */
double run_read_ref_gbs(const run_state *s, int threads);
bool run_kv_quantize(run_state *s, attn_error *err);

typedef struct variant_run {
    int index; /* in the registry */
    attn_variant_info info;
    attn_params params;
    double tolerance; /* attn_variant_tolerance: a half output adds its rounding */
    bool chosen;     /* named by --variant or --params, not only part of the default set */
    double *samples; /* reps seconds, in round order */
    double *read_gbs; /* --read-ref: the read after each timed run, GB/s, in round order */
    double read_ref_gbs; /* their median (NaN without --read-ref) */
    attn_time_stats time;
    stats_spread spread;
    /* The run of the same variant at the first thread count (-1: this is it), and this run's
     * speed-up over it: the geometric mean of the rounds' time ratios, with its 95% interval
     * (stats_paired_log; NaN bounds with a single rep). */
    int base;
    double speedup, speedup_lo, speedup_hi;
    attn_error_metrics error;     /* against ref (or ref_bf16): what it computes from */
    attn_error_metrics error_f32; /* against ref_f32: the float32 data before rounding */
} variant_run;

/* Whether a run passed its check (always, without --check). */
bool run_ok(const run_state *s, const variant_run *run);
/* One record of run's JSON schema; NULL on OOM. */
json_t *run_result_json(const run_state *s, const variant_run *run, double flops);
/* run's JSON document: tool, machine, results, skipped. NULL on OOM. */
json_t *run_document(const run_state *s, double flops);
/* The results on stdout; false on OOM or an output error (CSV reports neither). */
bool run_print_json(const run_state *s, double flops);
void run_print_csv(const run_state *s, double flops);
bool run_print_text(const run_state *s, double flops);

/* A run's speed-up over its base run, from the rounds' time ratios (paired). */
void run_compute_speedup(variant_run *run, const variant_run *base, int64_t reps);

#endif
