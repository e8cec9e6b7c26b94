/* execute.c — runs of a variant made ready once (execute.h): the cut over threads, the buffers,
 * and the run itself.
 *
 * A run on T > 1 threads is cut into units: (group, block of query rows, block of keys), keys
 * innermost. Units are dealt to workers as contiguous ranges of roughly equal cost (attended
 * pairs), so the partition depends only on the problem, the key lengths and T. Each unit's
 * output depends only on the unit, which makes a run bit-for-bit repeatable whatever the deal.
 * Key blocks (more than one only for a variant with run_partial, when groups × row blocks
 * leave threads idle — decode) produce partials that the caller merges afterwards, key block 0
 * first. */
#include "execute.h"
#include "kv_quant.h"
#include "cpu.h"
#include "error.h"
#include "split.h"
#include "threads.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum {
    ROW_GRANULE = 16,        /* query rows per unit at the finest */
    KEY_GRANULE = 512,       /* keys per key block at the finest: a block's partials (d + 2
                              * floats per row) and their merge stay < 1/256 of its K/V reads */
    KEY_ALIGN = 16,          /* key blocks start at multiples of this */
    UNITS_PER_WORKER = 4,    /* slack for balancing uneven (causal) rows */
};

/* The unit sizes of a run on T threads. */
typedef struct unit_sizes {
    int64_t groups, heads_per_group;
    int64_t row_block, row_blocks;  /* query rows per unit; units per group along the rows */
    int64_t key_block, key_splits;  /* keys per unit; units per row block along the keys */
} unit_sizes;

struct attn_exec {
    const attn_variant *var;
    attn_problem problem;    /* as the variant sees it: float32 O (a contiguous one when the
                              * caller's is half precision); mask and kv_lens NULL */
    attn_strides out_strides; /* the caller's O */
    attn_dtype out_dtype;
    bool has_mask, has_kv_lens, has_alibi, has_sinks, has_block_table;
    attn_params params;
    float scale;
    int threads;             /* asked for */
    int workers;             /* that get units: min(threads, units); 1 runs on the caller alone */
    unit_sizes u;
    int64_t units;
    size_t span[10];         /* bytes from element 0: q, k, v, o, mask, kv_lens, a per-head array,
                              * the K and V scales (quantized K/V), the block table */
    int64_t *first_unit;     /* [workers + 1]: worker w runs [first_unit[w], first_unit[w+1]) */
    attn_status *status;     /* [workers] */
    unsigned char *workspace; /* workers × workspace_stride bytes */
    size_t workspace_bytes, workspace_stride;
    attn_partial partial;    /* [key_splits][all rows] (+ [d] for acc) when key_splits > 1 */
    int64_t partial_rows;    /* all rows: groups × heads_per_group × Lq */
    float *o32;              /* the float32 O of a half-precision output */
    atomic_flag busy;        /* a run is using the buffers above */
};

/* One run: the exec and the call's whole task (its problem carries the call's mask and
 * kv_lens). */
typedef struct run_ctx {
    attn_exec *x;
    attn_task whole;
} run_ctx;

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Chooses the unit sizes for T workers. */
static unit_sizes plan_units(const attn_variant *var, const attn_problem *p, int T)
{
    unit_sizes s = {.groups = p->batch * p->heads_kv, .heads_per_group = p->heads_q / p->heads_kv};
    const int64_t want = (int64_t)T * UNITS_PER_WORKER;
    int64_t row_blocks = ceil_div(want, s.groups);
    const int64_t max_row_blocks = ceil_div(p->len_q, ROW_GRANULE);
    row_blocks = row_blocks < max_row_blocks ? row_blocks : max_row_blocks;
    row_blocks = row_blocks < 1 ? 1 : row_blocks;
    s.row_block = ceil_div(p->len_q, row_blocks);
    s.row_blocks = ceil_div(p->len_q, s.row_block);
    s.key_splits = 1;
    s.key_block = p->len_kv;
    const int64_t units = s.groups * s.row_blocks;
    if (var->run_partial && units < 2 * (int64_t)T) {
        int64_t splits = ceil_div(want, units);
        const int64_t max_splits = p->len_kv / KEY_GRANULE;
        splits = splits < max_splits ? splits : max_splits;
        if (splits > 1) {
            s.key_block = ceil_div(ceil_div(p->len_kv, splits), KEY_ALIGN) * KEY_ALIGN;
            s.key_splits = ceil_div(p->len_kv, s.key_block);
        }
    }
    return s;
}

attn_split attn_split_of(const attn_variant *v, const attn_problem *p, int threads)
{
    const unit_sizes s = plan_units(v, p, threads);
    return (attn_split){.row_block = s.row_block, .row_blocks = s.row_blocks,
                        .key_block = s.key_block, .key_splits = s.key_splits};
}

/* Attended pairs (plus one per row, for its fixed cost) of one unit, ignoring the float mask. */
static double unit_cost(const unit_sizes *s, const attn_problem *p, int64_t u)
{
    const int64_t per_group = s->row_blocks * s->key_splits;
    const int64_t g = u / per_group, rb = (u / s->key_splits) % s->row_blocks;
    const int64_t ks = u % s->key_splits, b = g / p->heads_kv;
    const int64_t i1 = (rb + 1) * s->row_block < p->len_q ? (rb + 1) * s->row_block : p->len_q;
    const int64_t j0 = ks * s->key_block, j1 = j0 + s->key_block;
    double pairs = 0;
    for (int64_t i = rb * s->row_block; i < i1; i++) {
        int64_t lim = attn_key_limit(p, b, i), start = attn_key_start(p, i);
        lim = lim < j1 ? lim : j1;
        start = start > j0 ? start : j0;
        pairs += 1.0 + (double)(lim > start ? lim - start : 0);
    }
    return pairs * (double)s->heads_per_group;
}

/* Deals contiguous unit ranges of about equal cost: unit u goes to the worker whose share of
 * the total holds the unit's midpoint. Two passes over the costs instead of an array of them,
 * so that a run with key lengths (dealt on every call) allocates nothing. */
static void deal_units(attn_exec *x, const attn_problem *p)
{
    double total = 0;
    for (int64_t u = 0; u < x->units; u++)
        total += unit_cost(&x->u, p, u);
    double before = 0;
    int w = 0;
    x->first_unit[0] = 0;
    for (int64_t u = 0; u < x->units; u++) {
        const double cost = unit_cost(&x->u, p, u);
        const double mid = (before + cost / 2) / total * x->workers;
        while (w < x->workers - 1 && mid >= w + 1)
            x->first_unit[++w] = u;
        before += cost;
    }
    while (w < x->workers)
        x->first_unit[++w] = x->units;
}

static attn_task slice(const run_ctx *c, int w, int64_t g0, int64_t g1, int64_t i0, int64_t i1)
{
    attn_task t = c->whole;
    t.workspace = c->x->workspace ? c->x->workspace + (size_t)w * c->x->workspace_stride : NULL;
    t.group_begin = g0;
    t.group_end = g1;
    t.row_begin = i0;
    t.row_end = i1;
    return t;
}

/* One task: every key into O (out NULL), or keys [j0, j1) into partials; then the vector state
 * the calling convention promises (attn_cpu_clean_upper_state). A variant without `run` writes
 * O through run_partial with no partials (variant.h). */
static attn_status run_task(const attn_variant *var, const attn_task *t, int64_t j0, int64_t j1,
                            const attn_partial *out)
{
    const attn_status s = out || !var->run ? var->run_partial(t, j0, j1, out) : var->run(t);
    attn_cpu_clean_upper_state();
    return s;
}

/* Worker w: its units, merged into as few tasks as possible when keys are not split. */
static void run_worker(void *ctx, int w, int workers)
{
    (void)workers;
    const run_ctx *c = ctx;
    attn_exec *x = c->x;
    const unit_sizes *s = &x->u;
    const attn_problem *p = c->whole.problem;
    const int64_t last = x->first_unit[w + 1], rbs = s->row_blocks;
    attn_status st = ATTN_OK;
    for (int64_t u = x->first_unit[w]; u < last && st == ATTN_OK;) {
        if (s->key_splits > 1) {
            const int64_t g = u / (rbs * s->key_splits), rb = (u / s->key_splits) % rbs;
            const int64_t ks = u % s->key_splits, i0 = rb * s->row_block;
            const int64_t i1 = i0 + s->row_block < p->len_q ? i0 + s->row_block : p->len_q;
            const int64_t j0 = ks * s->key_block;
            const int64_t j1 = j0 + s->key_block < p->len_kv ? j0 + s->key_block : p->len_kv;
            /* this unit's rows in the partial arrays: the contract's (g - group_begin)·count + r */
            const int64_t row0 = ks * x->partial_rows + g * s->heads_per_group * p->len_q +
                                 s->heads_per_group * i0;
            const attn_partial out = {x->partial.max + row0, x->partial.sum + row0,
                                      x->partial.acc + row0 * p->head_dim};
            const attn_task t = slice(c, w, g, g + 1, i0, i1);
            st = run_task(x->var, &t, j0, j1, &out);
            u++;
            continue;
        }
        const int64_t g = u / rbs, rb = u % rbs;
        if (rb == 0 && last - u >= rbs) { /* whole groups */
            const int64_t ng = (last - u) / rbs;
            const attn_task t = slice(c, w, g, g + ng, 0, p->len_q);
            st = run_task(x->var, &t, 0, p->len_kv, NULL);
            u += ng * rbs;
        } else { /* the row blocks of group g up to the end of the range */
            const int64_t rb_end = rbs < rb + (last - u) ? rbs : rb + (last - u);
            const int64_t i1 = rb_end * s->row_block < p->len_q ? rb_end * s->row_block : p->len_q;
            const attn_task t = slice(c, w, g, g + 1, rb * s->row_block, i1);
            st = run_task(x->var, &t, 0, p->len_kv, NULL);
            u += rb_end - rb;
        }
    }
    x->status[w] = st;
}

/* O from the key blocks' partials, key block 0 first: rescale each to the common max. */
static void merge_partials(const attn_exec *x, float *o_base, const float *sinks)
{
    const attn_problem *p = &x->problem;
    const unit_sizes *s = &x->u;
    const attn_partial *pt = &x->partial;
    const int64_t d = p->head_dim, hpg = s->heads_per_group;
    for (int64_t g = 0; g < s->groups; g++) {
        const int64_t b = g / p->heads_kv, first_head = (g % p->heads_kv) * hpg;
        for (int64_t i0 = 0; i0 < p->len_q; i0 += s->row_block) {
            const int64_t rows = p->len_q - i0 < s->row_block ? p->len_q - i0 : s->row_block;
            for (int64_t r = 0; r < hpg * rows; r++) {
                const int64_t row = g * hpg * p->len_q + hpg * i0 + r;
                float m = -INFINITY;
                for (int64_t k = 0; k < s->key_splits; k++) {
                    const int64_t at = k * x->partial_rows + row;
                    if (pt->sum[at] != 0.0f && pt->max[at] > m)
                        m = pt->max[at];
                }
                float *o = o_base + b * p->o.batch + (first_head + r / rows) * p->o.head +
                           (i0 + r % rows) * p->o.seq;
                float l = 0.0f;
                for (int64_t c = 0; c < d; c++)
                    o[c] = 0.0f;
                for (int64_t k = 0; k < s->key_splits; k++) {
                    const int64_t at = k * x->partial_rows + row;
                    if (pt->sum[at] == 0.0f) /* no key in this block */
                        continue;
                    /* equal maxima weigh 1, so a NaN-only block (max -inf, sum NaN) stays NaN */
                    const float mx = pt->max[at];
                    const float wgt = mx == m ? 1.0f : expf(mx - m);
                    const float *a = pt->acc + at * d;
                    l += wgt * pt->sum[at];
                    for (int64_t c = 0; c < d; c++)
                        o[c] += wgt * a[c];
                }
                /* the sink joins the denominator here: partials never include it */
                const float inv = attn_row_norm(m, l, sinks ? sinks[first_head + r / rows]
                                                            : -INFINITY);
                for (int64_t c = 0; c < d; c++)
                    o[c] *= inv;
            }
        }
    }
}

/* Bytes each operand spans from its element 0 (strides are >= 0, so nothing lies below it). */
static void operand_spans(const attn_problem *p, size_t span[10])
{
    for (int t = 0; t < 4; t++) {
        int64_t elements = 0;
        attn_tensor_extent(p, "qkvo"[t], &elements, NULL);
        span[t] = (size_t)elements * attn_dtype_size(t < 3 ? p->dtype : p->out_dtype);
    }
    span[4] = (size_t)attn_mask_extent(p) * sizeof(float);
    span[5] = (size_t)p->batch * sizeof(int32_t);
    span[6] = (size_t)p->heads_q * sizeof(float);
    for (int t = 0; t < 2; t++) /* K/V in their stored type; their scales (0 when none) */
        span[1 + t] = attn_kv_span_bytes(p, "kv"[t]), span[7 + t] = attn_kv_span_bytes(p, "KV"[t]);
    span[9] = p->page_size ? (size_t)(p->batch * attn_block_table_stride(p)) * sizeof(int32_t) : 0;
}

void attn_exec_destroy(attn_exec *x)
{
    if (!x)
        return;
    free(x->first_unit);
    free(x->status);
    free(x->workspace);
    free(x->partial.max);
    free(x->partial.sum);
    free(x->partial.acc);
    free(x->o32);
    free(x);
}

static void do_nothing(void *ctx, int w, int workers)
{
    (void)ctx, (void)w, (void)workers;
}

void attn_exec_warm(const attn_exec *x)
{
    if (x->threads > 1 && x->workers > 1)
        attn_parallel_run(x->workers, do_nothing, NULL);
}

attn_status attn_exec_create(const attn_variant *var, const attn_problem *p,
                             const attn_params *params, int threads, attn_exec **out,
                             attn_error *err)
{
    *out = NULL;
    attn_exec *x = calloc(1, sizeof *x);
    if (!x)
        return attn_fail(err, ATTN_ERR_NOMEM, "variant %s: cannot allocate a run", var->name);
    atomic_flag_clear(&x->busy);
    x->var = var;
    x->params = *params;
    x->threads = threads;
    x->scale = attn_problem_scale(p);
    x->has_mask = p->mask != NULL;
    x->has_kv_lens = p->kv_lens != NULL;
    x->has_alibi = p->alibi_slopes != NULL;
    x->has_sinks = p->sinks != NULL;
    x->has_block_table = p->block_table != NULL;
    x->out_strides = p->o;
    x->out_dtype = p->out_dtype;
    operand_spans(p, x->span);
    x->problem = *p;
    x->problem.mask = NULL;
    x->problem.kv_lens = NULL;
    x->problem.alibi_slopes = NULL;
    x->problem.sinks = NULL;
    x->problem.k_scale = x->problem.v_scale = NULL;
    x->problem.block_table = NULL;
    attn_problem *q = &x->problem;
    attn_status s = attn_features_check(var, p, err);
    if (s == ATTN_OK)
        s = attn_kv_dtype_check(var, p, err);
    if (s != ATTN_OK)
        goto failed;
    if (p->out_dtype != ATTN_F32) { /* the variant writes a contiguous float32 O; rounded after */
        q->out_dtype = ATTN_F32;
        q->o = (attn_strides){.batch = p->heads_q * p->len_q * p->head_dim,
                              .head = p->len_q * p->head_dim, .seq = p->head_dim};
        const size_t n = (size_t)(p->batch * q->o.batch); /* bounded by validation */
        if (!(x->o32 = malloc(n * sizeof *x->o32))) {
            s = attn_fail(err, ATTN_ERR_NOMEM, "variant %s: cannot allocate the float32 output",
                          var->name);
            goto failed;
        }
    }
    x->workspace_bytes = var->workspace_size ? var->workspace_size(q, params->value) : 0;
    if (x->workspace_bytes == SIZE_MAX || x->workspace_bytes > (size_t)PTRDIFF_MAX - 64) {
        s = attn_fail(err, ATTN_ERR_OVERFLOW, "variant %s: workspace size overflows", var->name);
        goto failed;
    }
    x->workspace_stride = (x->workspace_bytes + 63) & ~(size_t)63;
    x->u = plan_units(var, q, threads);
    x->units = x->u.groups * x->u.row_blocks * x->u.key_splits;
    /* Workers past the number of units would get nothing: they are not woken at all. The units
     * stay those of `threads`, so the bits do too. */
    x->workers = threads == 1 ? 1 : x->units < threads ? (int)x->units : threads;
    x->first_unit = calloc((size_t)x->workers + 1, sizeof *x->first_unit);
    x->status = calloc((size_t)x->workers, sizeof *x->status);
    if (!x->first_unit || !x->status) {
        s = attn_fail(err, ATTN_ERR_NOMEM, "variant %s: cannot allocate the thread plan",
                      var->name);
        goto failed;
    }
    if (x->workspace_bytes &&
        (x->workspace_stride > SIZE_MAX / (size_t)x->workers ||
         !(x->workspace = aligned_alloc(64, x->workspace_stride * (size_t)x->workers)))) {
        s = attn_fail(err, ATTN_ERR_NOMEM, "variant %s: cannot allocate %d workspaces of %zu bytes",
                      var->name, x->workers, x->workspace_bytes);
        goto failed;
    }
    if (threads > 1 && x->u.key_splits > 1) {
        x->partial_rows = x->u.groups * x->u.heads_per_group * p->len_q;
        const size_t n = (size_t)(x->u.key_splits * x->partial_rows); /* bounded by validation */
        x->partial.max = malloc(n * sizeof(float));
        x->partial.sum = malloc(n * sizeof(float));
        x->partial.acc = malloc(n * (size_t)p->head_dim * sizeof(float));
        if (!x->partial.max || !x->partial.sum || !x->partial.acc) {
            s = attn_fail(err, ATTN_ERR_NOMEM, "variant %s: cannot allocate key-split partials",
                          var->name);
            goto failed;
        }
    }
    if (threads > 1 && !x->has_kv_lens) /* the costs depend on the shape alone: deal once */
        deal_units(x, q);
    *out = x;
    return ATTN_OK;
failed:
    attn_exec_destroy(x);
    return s;
}

/* O shares no byte with an input: the variants write O while they still read Q, K, V, the mask
 * and kv_lens. Each tensor's bytes are taken as the range its strides span, so an output
 * interleaved with an input in one buffer is refused too. */
static attn_status check_output_apart(const attn_exec *x, const attn_execute_args *a,
                                      attn_error *err)
{
    static const char *const names[10] = {"q", "k", "v", "mask", "kv_lens", "alibi_slopes",
                                          "sinks", "k_scale", "v_scale", "block_table"};
    const void *at[10] = {a->q, a->k, a->v, a->mask, a->kv_lens, a->alibi_slopes, a->sinks,
                          a->k_scale, a->v_scale, a->block_table};
    const size_t bytes[10] = {x->span[0], x->span[1], x->span[2], x->span[4], x->span[5],
                              x->span[6], x->span[6], x->span[7], x->span[8], x->span[9]};
    const uintptr_t o_begin = (uintptr_t)a->o, o_end = o_begin + x->span[3];
    for (int i = 0; i < 10; i++) {
        const uintptr_t begin = (uintptr_t)at[i], end = begin + bytes[i];
        if (at[i] && begin < o_end && o_begin < end)
            return attn_fail(err, ATTN_ERR_INVALID,
                             "o overlaps %s (o spans %zu bytes at %p, %s %zu bytes at %p): the "
                             "output must not share memory with an input",
                             names[i], x->span[3], a->o, names[i], bytes[i], at[i]);
    }
    return ATTN_OK;
}

/* The checks of what a call changes. */
static attn_status check_args(const attn_exec *x, const attn_execute_args *a, attn_error *err)
{
    if (!a->q || !a->k || !a->v || !a->o)
        return attn_fail(err, ATTN_ERR_INVALID, "q, k, v and o must not be NULL");
    if (x->has_mask != (a->mask != NULL))
        return attn_fail(err, ATTN_ERR_INVALID, x->has_mask ?
                         "mask is NULL, but the plan was made for a problem with a mask" :
                         "a mask is given, but the plan was made for a problem without one");
    if (x->has_kv_lens != (a->kv_lens != NULL))
        return attn_fail(err, ATTN_ERR_INVALID, x->has_kv_lens ?
                         "kv_lens is NULL, but the plan was made for a problem with kv_lens" :
                         "kv_lens is given, but the plan was made for a problem without them");
    const struct { bool planned; const float *given; const char *name; } per_head[2] = {
        {x->has_alibi, a->alibi_slopes, "alibi_slopes"}, {x->has_sinks, a->sinks, "sinks"}};
    for (int k = 0; k < 2; k++) {
        if (per_head[k].planned != (per_head[k].given != NULL))
            return attn_fail(err, ATTN_ERR_INVALID, per_head[k].planned ?
                             "%s is NULL, but the plan was made for a problem with them" :
                             "%s given, but the plan was made for a problem without them",
                             per_head[k].name);
        for (int64_t h = 0; per_head[k].given && h < x->problem.heads_q; h++)
            if (!isfinite(per_head[k].given[h]))
                return attn_fail(err, ATTN_ERR_INVALID, "%s[%lld] = %g is not finite",
                                 per_head[k].name, (long long)h, (double)per_head[k].given[h]);
    }
    if (x->has_block_table != (a->block_table != NULL))
        return attn_fail(err, ATTN_ERR_INVALID, x->has_block_table ?
                         "block_table is NULL, but the plan was made for paged K/V" :
                         "block_table is given, but the plan was made for contiguous K/V");
    attn_status paged = attn_pages_check(&x->problem, a->block_table, err);
    if (paged != ATTN_OK)
        return paged;
    if (a->kv_lens)
        for (int64_t b = 0; b < x->problem.batch; b++)
            if (a->kv_lens[b] < 0 || a->kv_lens[b] > x->problem.len_kv)
                return attn_fail(err, ATTN_ERR_INVALID,
                                 "kv_lens[%lld] = %d is outside [0, len_kv=%lld]", (long long)b,
                                 a->kv_lens[b], (long long)x->problem.len_kv);
    if (attn_kv_quantized(&x->problem) && (!a->k_scale || !a->v_scale))
        return attn_fail(err, ATTN_ERR_INVALID, "k_scale and v_scale must not be NULL: K/V are %s",
                         attn_dtype_name(x->problem.kv_dtype));
    if (a->scale != 0.0f && !(isfinite(a->scale) && a->scale > 0.0f))
        return attn_fail(err, ATTN_ERR_INVALID, "scale must be 0 (the planned one) or finite and "
                         "> 0 (got %g)", (double)a->scale);
    return check_output_apart(x, a, err);
}

/* The run on x's buffers, which the caller holds. */
static attn_status run_held(attn_exec *x, const attn_execute_args *a, attn_error *err)
{
    attn_problem p = x->problem; /* the call's mask and key lengths, seen by the variant */
    p.mask = a->mask;
    p.kv_lens = a->kv_lens;
    p.alibi_slopes = a->alibi_slopes;
    p.sinks = a->sinks;
    p.k_scale = a->k_scale;
    p.v_scale = a->v_scale;
    p.block_table = a->block_table;
    float *o = x->o32 ? x->o32 : (float *)a->o;
    run_ctx c = {
        .x = x,
        .whole = {.problem = &p, .scale = a->scale != 0.0f ? a->scale : x->scale,
                  .params = x->params.value, .q = a->q, .k = a->k, .v = a->v, .o = o,
                  .workspace = x->workspace, .group_begin = 0, .group_end = x->u.groups,
                  .row_begin = 0, .row_end = p.len_q},
    };
    attn_status s = ATTN_OK;
    if (x->threads == 1) {
        s = run_task(x->var, &c.whole, 0, p.len_kv, NULL);
    } else {
        if (x->has_kv_lens)
            deal_units(x, &p);
        attn_parallel_run(x->workers, run_worker, &c);
        for (int w = 0; w < x->workers && s == ATTN_OK; w++)
            s = x->status[w];
        if (s == ATTN_OK && x->u.key_splits > 1)
            merge_partials(x, o, p.sinks);
    }
    if (s != ATTN_OK)
        return attn_fail(err, s, "variant %s failed", x->var->name);
    if (x->o32) { /* round the float32 O into the caller's half-precision one */
        const size_t esize = attn_dtype_size(x->out_dtype);
        const attn_strides *in = &x->problem.o, *to = &x->out_strides;
        for (int64_t b = 0; b < p.batch; b++)
            for (int64_t h = 0; h < p.heads_q; h++)
                for (int64_t i = 0; i < p.len_q; i++)
                    attn_convert(x->o32 + b * in->batch + h * in->head + i * in->seq, ATTN_F32,
                                 (char *)a->o +
                                     (b * to->batch + h * to->head + i * to->seq) * (int64_t)esize,
                                 x->out_dtype, (size_t)p.head_dim);
    }
    return ATTN_OK;
}

attn_status attn_exec_run(attn_exec *x, const attn_execute_args *args, attn_error *err)
{
    attn_status s = check_args(x, args, err);
    if (s != ATTN_OK)
        return s;
    if (!atomic_flag_test_and_set_explicit(&x->busy, memory_order_acquire)) {
        s = run_held(x, args, err);
        atomic_flag_clear_explicit(&x->busy, memory_order_release);
        return s;
    }
    /* Another thread is running x: this call gets buffers of its own. */
    attn_problem p = x->problem;
    p.o = x->out_strides;
    p.out_dtype = x->out_dtype;
    p.mask = args->mask;
    p.kv_lens = args->kv_lens;
    p.alibi_slopes = args->alibi_slopes;
    p.sinks = args->sinks;
    p.block_table = args->block_table;
    attn_exec *own;
    if ((s = attn_exec_create(x->var, &p, &x->params, x->threads, &own, err)) != ATTN_OK)
        return s;
    s = run_held(own, args, err);
    attn_exec_destroy(own);
    return s;
}
