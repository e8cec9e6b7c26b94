/* gemm_softmax.c — the BLAS baselines' driver: GEMM, row softmax, GEMM (gemm_softmax.h). */
#include "gemm_softmax.h"

#include <math.h>
#include <string.h>

static size_t add_floats(size_t total, int64_t a, int64_t b, bool *overflow)
{
    size_t n;
    if (__builtin_mul_overflow((size_t)a, (size_t)b, &n) ||
        __builtin_add_overflow(total, n, &total))
        *overflow = true;
    return total;
}

/* Score rows a task may hold at once: its query rows, or one row of each head of a group. */
static int64_t score_rows(const attn_problem *p)
{
    const int64_t group = p->heads_q / p->heads_kv;
    return p->len_q > group ? p->len_q : group;
}

/* K or V goes to the GEMMs in place unless its rows are too close, or in pages: then the keys
 * are gathered into the workspace first, inside the timed run. */
static bool kv_in_place(const attn_problem *p, int64_t seq_stride)
{
    return !p->page_size && gemm_softmax_rows_in_place(seq_stride, p->len_kv, p->head_dim);
}

/* The workspace, in order: scores, copies of Q, K, V rows too close for a GEMM, each score
 * row's sink logit, row flags. (It is sized on the problem without its arrays: the sink slots
 * are there whether or not the problem has sinks.) */
typedef struct ws_layout {
    float *scores, *q_copy, *k_copy, *v_copy, *sinks;
    unsigned char *empty;
} ws_layout;

static ws_layout ws_layout_of(const attn_problem *p, void *workspace)
{
    const int64_t d = p->head_dim, Lk = p->len_kv;
    ws_layout w = {.scores = workspace};
    w.q_copy = w.scores + score_rows(p) * Lk;
    w.k_copy = w.q_copy + (gemm_softmax_rows_in_place(p->q.seq, p->len_q, d) ? 0 : p->len_q * d);
    w.v_copy = w.k_copy + (kv_in_place(p, p->k.seq) ? 0 : Lk * d);
    w.sinks = w.v_copy + (kv_in_place(p, p->v.seq) ? 0 : Lk * d);
    w.empty = (unsigned char *)(w.sinks + score_rows(p));
    return w;
}

size_t gemm_softmax_workspace(const attn_problem *p, const int32_t *params)
{
    (void)params;
    const int64_t d = p->head_dim;
    bool overflow = false;
    size_t n = add_floats(0, score_rows(p), p->len_kv, &overflow);
    if (!gemm_softmax_rows_in_place(p->q.seq, p->len_q, d))
        n = add_floats(n, p->len_q, d, &overflow);
    if (!kv_in_place(p, p->k.seq))
        n = add_floats(n, p->len_kv, d, &overflow);
    if (!kv_in_place(p, p->v.seq))
        n = add_floats(n, p->len_kv, d, &overflow);
    n = add_floats(n, score_rows(p), 1, &overflow); /* sinks: sized before they are known */
    if (overflow || __builtin_mul_overflow(n, sizeof(float), &n) ||
        __builtin_add_overflow(n, (size_t)score_rows(p), &n)) /* + the row flags */
        return SIZE_MAX;
    return n;
}

/* Rows [0, len) of one head as a BLAS matrix: in place, or copied into `buf` (ld = d). */
static const float *as_matrix(const float *first, int64_t seq_stride, int64_t len, int64_t d,
                              float *buf, int64_t *ld)
{
    if (gemm_softmax_rows_in_place(seq_stride, len, d)) {
        *ld = len == 1 ? d : seq_stride;
        return first;
    }
    for (int64_t r = 0; r < len; r++)
        memcpy(buf + r * d, first + r * seq_stride, (size_t)d * sizeof *buf);
    *ld = d;
    return buf;
}

/* Keys [0, n) of K or V of (b, hkv) as a BLAS matrix: as_matrix, or gathered from their pages
 * into buf (ld = d). */
static const float *kv_matrix(const attn_task *t, char tensor, int64_t b, int64_t hkv,
                              int64_t n, float *buf, int64_t *ld)
{
    const attn_problem *p = t->problem;
    if (!p->page_size)
        return as_matrix(tensor == 'k' ? attn_k_row(t, b, hkv, 0) : attn_v_row(t, b, hkv, 0),
                         tensor == 'k' ? p->k.seq : p->v.seq, n, p->head_dim, buf, ld);
    attn_kv_gather(t, tensor, b, hkv, 0, n, buf);
    *ld = p->head_dim;
    return buf;
}

/* A non-finite V row makes P·V skip the zero weights instead (as naive does). */
bool gemm_softmax_nonfinite_rows(const float *v, int64_t ld, int64_t n, int64_t d)
{
    for (int64_t j = 0; j < n; j++)
        for (int64_t c = 0; c < d; c++)
            if (!isfinite(v[j * ld + c]))
                return true;
    return false;
}

/* Softmax of one score row s[0, n) in place, -INFINITY marking an excluded key: the two passes
 * of attn_softmax_row (same results for NaN, infinities and empty rows), written as a careful
 * user would for speed: the max as a compare (no fmaxf call) and the sum in eight partial sums,
 * so both loops vectorise at the baseline ISA; expf stays the C library's. */
static void softmax_row_fast(float *restrict s, int64_t n, float sink)
{
    float max = -INFINITY;
    for (int64_t j = 0; j < n; j++)
        max = s[j] > max ? s[j] : max; /* a NaN compares false: skipped, as by fmaxf */
    float part[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) {
            const float x = s[j + l];
            s[j + l] = x == -INFINITY ? 0.0f : expf(x - max);
            part[l] += s[j + l];
        }
    float sum = ((part[0] + part[4]) + (part[1] + part[5])) +
                ((part[2] + part[6]) + (part[3] + part[7]));
    for (; j < n; j++) {
        s[j] = s[j] == -INFINITY ? 0.0f : expf(s[j] - max);
        sum += s[j];
    }
    const float inv = attn_row_norm(max, sum, sink);
    for (j = 0; j < n; j++)
        s[j] *= inv;
}

/* Mask and softmax of one score row s[0, n) in place, s[j] the score of key kb + j: keys
 * outside the row's band [first, key_limit) are excluded (causal, padding, window); the
 * options' logit (soft cap, ALiBi) and an additive mask, when there are, come first; the
 * head's sink joins the denominator. */
static void softmax_row(float *s, int64_t n, int64_t kb, int64_t first, int64_t key_limit,
                        const float *mask, const attn_row_opts *ro)
{
    int64_t live = key_limit - kb < n ? key_limit - kb : n, lead = first - kb;
    live = live < 0 ? 0 : live;
    lead = lead < 0 ? 0 : lead < live ? lead : live;
    float *row = s + lead;
    const int64_t count = live - lead, j0 = kb + lead;
    if (ro->softcap != 0.0f || ro->slope != 0.0f)
        for (int64_t j = 0; j < count; j++)
            row[j] = attn_logit(ro, row[j], j0 + j);
    for (int64_t j = 0; mask && j < count; j++) {
        if (mask[j0 + j] == -INFINITY)
            row[j] = -INFINITY; /* assigned, never added: a NaN score of a masked key vanishes */
        else
            row[j] += mask[j0 + j];
    }
    softmax_row_fast(row, count, ro->sink);
    memset(s, 0, (size_t)lead * sizeof *s);
    memset(s + live, 0, (size_t)(n - live) * sizeof *s);
}

/* The logits of one score row s[0, n) for a softmax of the ops, s[j] the scaled score of key
 * kb + j: inside the row's band [first, key_limit) the options' logit (soft cap, ALiBi), then
 * the additive mask; -INFINITY outside it (the sink is the ops' softmax's). Returns false when
 * no key is left. */
static bool mask_row(float *s, int64_t n, int64_t kb, int64_t first, int64_t key_limit,
                     const float *mask, const attn_row_opts *ro)
{
    int64_t live = key_limit - kb < n ? key_limit - kb : n, lead = first - kb;
    live = live < 0 ? 0 : live;
    lead = lead < 0 ? 0 : lead < live ? lead : live;
    bool any = false;
    for (int64_t j = 0; j < lead; j++)
        s[j] = -INFINITY;
    if (ro->softcap != 0.0f || ro->slope != 0.0f)
        for (int64_t j = lead; j < live; j++)
            s[j] = attn_logit(ro, s[j], kb + j);
    for (int64_t j = lead; j < live; j++) {
        if (mask)
            s[j] = mask[kb + j] == -INFINITY ? -INFINITY : s[j] + mask[kb + j];
        any |= s[j] != -INFINITY;
    }
    for (int64_t j = live; j < n; j++)
        s[j] = -INFINITY;
    return any;
}

/* Query rows per block of a causal problem: each block's GEMMs cover only the keys its last row
 * sees; a GEMM library re-packs K for every block, 1/CAUSAL_BLOCK of that block's GEMM work. */
enum { CAUSAL_BLOCK = 256 };

/* Smallest first key of rows [i0, i1) (their windows' left edges): keys before it are outside
 * every row's window. */
static int64_t block_first(const attn_problem *p, int64_t i0, int64_t i1)
{
    int64_t n = INT64_MAX;
    for (int64_t i = i0; i < i1; i++) {
        const int64_t f = attn_key_start(p, i);
        n = f < n ? f : n;
    }
    return n;
}

/* Largest key limit of rows [i0, i1) of batch b: keys past it are masked for every row. */
static int64_t block_keys(const attn_problem *p, int64_t b, int64_t i0, int64_t i1)
{
    int64_t n = 0;
    for (int64_t i = i0; i < i1; i++) {
        const int64_t lim = attn_key_limit(p, b, i);
        n = lim > n ? lim : n;
    }
    return n;
}

/* Smallest key limit of rows [i0, i1) of batch b. */
static int64_t fewest_keys(const attn_problem *p, int64_t b, int64_t i0, int64_t i1)
{
    int64_t n = INT64_MAX;
    for (int64_t i = i0; i < i1; i++) {
        const int64_t lim = attn_key_limit(p, b, i);
        n = lim < n ? lim : n;
    }
    return n;
}

/* m query rows handed to the GEMMs as one matrix: row r is query index i0 + r·step of head
 * h + r·hstep of batch b (a block of one head's rows: step 1, hstep 0; one row of each head of a
 * GQA group: step 0, hstep 1). */
typedef struct row_block {
    int64_t b, h, i0, step, hstep, m;
    const float *q; /* first row, rows ldq apart (ld >= d, or a copy) */
    int64_t ldq;
    float *o; /* first row, rows ldo apart */
    int64_t ldo;
} row_block;

/* The group's K and V over keys [0, n) as GEMM operands, and the task's buffers. */
typedef struct group_operands {
    const float *k, *v;
    int64_t ldk, ldv;
    bool v_nonfinite; /* some row of V in [0, n) is not finite and some weight may be 0 */
    float *scores;    /* [m][n] */
    float *sinks;     /* [m]: each row's sink logit for the ops' softmax; NULL without sinks */
    unsigned char *empty; /* [m]: the row has no key left (ops with their own softmax) */
} group_operands;

/* Masks and softmax of the block's scores [m][n]: the driver's own softmax per row, or the ops'
 * over the whole block after the masks, rows without a key then zero. */
static void block_softmax(const attn_problem *p, const row_block *blk, int64_t kb, int64_t n,
                          const group_operands *g, const gemm_softmax_ops *ops)
{
    for (int64_t r = 0; r < blk->m; r++) {
        const int64_t i = blk->i0 + r * blk->step, h = blk->h + r * blk->hstep;
        const int64_t first = attn_key_start(p, i), limit = attn_key_limit(p, blk->b, i);
        float *s = g->scores + r * n;
        const attn_row_opts ro = attn_row_opts_of(p, h, i);
        if (ops->softmax) {
            g->empty[r] = !mask_row(s, n, kb, first, limit, attn_mask_row(p, i), &ro);
            if (g->sinks)
                g->sinks[r] = ro.sink;
        } else {
            softmax_row(s, n, kb, first, limit, attn_mask_row(p, i), &ro);
        }
    }
    if (!ops->softmax)
        return;
    ops->softmax(ops->ctx, blk->m, n, g->scores, g->sinks);
    for (int64_t r = 0; r < blk->m; r++)
        if (g->empty[r])
            memset(g->scores + r * n, 0, (size_t)n * sizeof *g->scores);
}

/* S = scale·Q·Kᵀ, softmax, O = P·V for the block's rows over keys [kb, n). */
static void attend(const attn_task *t, const row_block *blk, int64_t kb, int64_t n,
                   const group_operands *g, const gemm_softmax_ops *ops)
{
    const int64_t d = t->problem->head_dim, m = blk->m;
    kb = kb < n ? kb : n;
    n -= kb; /* keys [kb, kb + n) from here on */
    const float *k = g->k + kb * g->ldk, *v = g->v + kb * g->ldv;
    if (n <= 0) { /* every key masked for every row: zeros */
        for (int64_t r = 0; r < m; r++)
            memset(blk->o + r * blk->ldo, 0, (size_t)d * sizeof *blk->o);
        return;
    }
    ops->gemm(ops->ctx, true, m, n, d, t->scale, blk->q, blk->ldq, k, g->ldk, g->scores, n);
    block_softmax(t->problem, blk, kb, n, g, ops);
    if (!g->v_nonfinite) {
        ops->gemm(ops->ctx, false, m, d, n, 1.0f, g->scores, n, v, g->ldv, blk->o, blk->ldo);
        return;
    }
    for (int64_t r = 0; r < m; r++) {
        const float *s = g->scores + r * n;
        float *o = blk->o + r * blk->ldo;
        memset(o, 0, (size_t)d * sizeof *o);
        for (int64_t j = 0; j < n; j++)
            for (int64_t col = 0; s[j] != 0.0f && col < d; col++)
                o[col] += s[j] * v[j * g->ldv + col];
    }
}

/* One decode row of every query head of a group as one matrix: when the heads' Q and O rows are
 * at least d apart (and the stride fits every GEMM library's int). */
static bool heads_as_matrix(const attn_problem *p, int64_t rows)
{
    const int64_t d = p->head_dim;
    return rows == 1 && p->heads_q > p->heads_kv && p->q.head >= d && p->o.head >= d &&
           p->q.head <= INT32_MAX && p->o.head <= INT32_MAX;
}

attn_status gemm_softmax_run(const attn_task *t, const gemm_softmax_ops *ops)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, group = p->heads_q / p->heads_kv;
    const int64_t rows = t->row_end - t->row_begin;
    const bool banded = p->causal || p->window_left >= 0 || p->window_right >= 0;
    const int64_t block = banded ? CAUSAL_BLOCK : rows;
    const ws_layout ws = ws_layout_of(p, t->workspace);

    for (int64_t gi = t->group_begin; gi < t->group_end; gi++) {
        const int64_t b = gi / p->heads_kv, hkv = gi % p->heads_kv;
        const int64_t n = block_keys(p, b, t->row_begin, t->row_end); /* keys any row sees */
        group_operands g = {.scores = ws.scores, .sinks = p->sinks ? ws.sinks : NULL,
                            .empty = ws.empty};
        g.k = kv_matrix(t, 'k', b, hkv, n, ws.k_copy, &g.ldk);
        g.v = kv_matrix(t, 'v', b, hkv, n, ws.v_copy, &g.ldv);
        /* V is scanned only where some key of [0, n) gets a zero weight by exclusion */
        const bool excludes = p->mask || fewest_keys(p, b, t->row_begin, t->row_end) < n ||
                              p->window_left >= 0;
        g.v_nonfinite = n > 0 && excludes && gemm_softmax_nonfinite_rows(g.v, g.ldv, n, d);
        if (heads_as_matrix(p, rows)) {
            const row_block blk = {.b = b, .h = hkv * group, .i0 = t->row_begin, .step = 0,
                                   .hstep = 1, .m = group,
                                   .q = attn_q_row(t, b, hkv * group, t->row_begin),
                                   .ldq = p->q.head,
                                   .o = attn_o_row(t, b, hkv * group, t->row_begin),
                                   .ldo = p->o.head};
            attend(t, &blk, attn_key_start(p, t->row_begin), n, &g, ops);
            continue;
        }
        for (int64_t h = hkv * group; h < (hkv + 1) * group; h++)
            for (int64_t i0 = t->row_begin; i0 < t->row_end; i0 += block) {
                const int64_t i1 = i0 + block < t->row_end ? i0 + block : t->row_end;
                row_block blk = {.b = b, .h = h, .i0 = i0, .step = 1, .hstep = 0, .m = i1 - i0,
                                 .o = attn_o_row(t, b, h, i0),
                                 .ldo = i1 - i0 == 1 ? d : p->o.seq};
                blk.q = as_matrix(attn_q_row(t, b, h, i0), p->q.seq, blk.m, d, ws.q_copy,
                                  &blk.ldq);
                attend(t, &blk, block_first(p, i0, i1), block_keys(p, b, i0, i1), &g, ops);
            }
    }
    return ATTN_OK;
}
