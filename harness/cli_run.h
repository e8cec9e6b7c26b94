/* cli_run.h — run's measurement for other subcommands (sweep): cli_run.c. */
#ifndef ATTN_CLI_RUN_H
#define ATTN_CLI_RUN_H

#include "cli.h"
#include "cli_model.h"

/* One shape measured the way `run` measures it: the variants a --variant LIST names (NULL: as
 * run without --variant; "all": every supported one that reads `dtype`), random inputs from
 * `seed` rounded to `dtype`, one untimed run checked against the float64 oracle when `check`,
 * then `warmup` + `reps` interleaved timed runs, at every thread count. heads_kv and len_kv 0:
 * as heads_q and len_q; dtype and out_dtype zero: float32. Appends one record per variant and
 * thread count to `records`, in run's JSON schema, and when `skipped` is not NULL, an entry
 * {"variant", "reason"} to it for each variant left out (unless one of that name is there
 * already). Returns -1 on success, else an exit status after a message on stderr (which names
 * `run`). */
typedef struct cli_measure_spec {
    const char *variants;
    int64_t batch, heads_q, heads_kv, len_q, len_kv, head_dim;
    bool causal, check;
    float scale; /* 0: 1/sqrt(head_dim) */
    uint64_t seed;
    int64_t reps, warmup;
    cli_int_list threads; /* 0 or no entry: the library's default */
    attn_dtype dtype, out_dtype; /* out_dtype: ATTN_F32 or dtype */
    attn_dtype kv_dtype;         /* ATTN_INT8, ATTN_Q4: quantized K/V; else K/V of dtype */
    json_t *skipped;
    cli_model model; /* the model options' flags (cli_model_none(): none); its arrays are made
                      * and freed per call */
} cli_measure_spec;
int cli_run_measure(const cli_measure_spec *spec, json_t *records);

#endif
