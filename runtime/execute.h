/* execute.h — a run of one variant made ready once and executed many times: what an attn_plan
 * holds (tuner/planner.c) and what attn_run_variant makes for its one call (library.c).
 *
 * attn_exec_create resolves everything that depends only on the problem's shape: the variant,
 * its parameters, the scale, the cut over threads, each operand's byte span (for the aliasing
 * check), and it allocates every buffer a run needs (per-worker workspaces, key-split partials,
 * a float32 output for a half-precision O). attn_exec_run then checks only what a call changes
 * (pointers, kv_lens values, O apart from the inputs) and allocates nothing — unless the same
 * attn_exec is already running on another thread, when that call works on buffers of its own. */
#ifndef ATTN_EXECUTE_H
#define ATTN_EXECUTE_H

#include "attn.h"
#include "variant.h"

typedef struct attn_exec attn_exec;

/* For a problem that attn_problem_validate accepted and parameters that attn_params_check
 * accepted for var (on a CPU that runs it, for its dtype): threads 1..ATTN_MAX_THREADS. The
 * problem's mask and kv_lens pointers only say whether a run gives them; neither is kept or
 * read. */
attn_status attn_exec_create(const attn_variant *var, const attn_problem *p,
                             const attn_params *params, int threads, attn_exec **out,
                             attn_error *err);
/* One run; args->mask and args->kv_lens must be given exactly when the problem had them. */
attn_status attn_exec_run(attn_exec *x, const attn_execute_args *args, attn_error *err);
void attn_exec_destroy(attn_exec *x);
/* Starts the worker threads a run of x uses (once per process), so that its first run does not
 * pay for them. */
void attn_exec_warm(const attn_exec *x);

/* ATTN_OK when var implements every option p uses (attn_problem_features); else
 * ATTN_ERR_UNSUPPORTED naming the missing ones (library.c). */
attn_status attn_features_check(const attn_variant *var, const attn_problem *p, attn_error *err);

/* ATTN_OK when var reads p's K/V type (a quantized kv_dtype among var->kv_dtypes); else
 * ATTN_ERR_UNSUPPORTED saying so (library.c). */
attn_status attn_kv_dtype_check(const attn_variant *var, const attn_problem *p, attn_error *err);

/* Floats the additive mask spans ((Lq - 1) rows of its stride + Lk), or -1 on overflow
 * (library.c). */
int64_t attn_mask_extent(const attn_problem *p);

/* ATTN_OK when p's paging fields are consistent and every block-table entry in use (of `table`,
 * the problem's or a call's) names a page of the pool; else ATTN_ERR_INVALID (library.c). */
attn_status attn_pages_check(const attn_problem *p, const int32_t *table, attn_error *err);

#endif
