/* conformance_random.c — the drawn cases: seeded random problems from the shape tables (every
 * head dim in turn, lengths, batches, head groupings, layouts, causal, kv_lens, masks, scales),
 * each run in the input types half_every schedules. Case i draws from its own generator seeded
 * by the run seed and i, so filters never change what a case is. */
#include "conformance.h"

#include <math.h>
#include <stdio.h>

static const int64_t head_dims[] = {1, 3, 8, 17, 64, 80, 128, 255};
static const int64_t seq_lens[] = {1, 2, 7, 31, 37, 64, 101, 127, 257, 300}; /* ascending */
#define MAX_BATCH 3
static const int64_t batches[] = {1, 2, MAX_BATCH};
static const struct { int64_t q, kv; } head_pairs[] = {{1, 1}, {4, 4}, {8, 2}, {6, 1}};
/* Every LONG_EVERY-th case is a decode step (Lq of 1 to 4) over a long cache: the lengths above
 * give the kernels' key blocks (128 to 512 keys) at most two turns and their streaming state
 * little to carry, and an error that grows with the row (a sum or an offset carried across
 * blocks) shows only at thousands of keys. */
#define LONG_EVERY 25
static const int64_t long_lens[] = {1024, 2053, 4096, 4099};
static const int64_t long_q[] = {1, 1, 2, 4};
static const int64_t long_dims[] = {64, 128, 80, 17}; /* in turn: the decode dims, q4's, a tail */

/* A shape set: how many random cases, and the largest B·Hq·Lq·Lk·d a case may have. The
 * scalar oracle costs a few float64 multiply-adds per unit of it (Q·Kᵀ, P·V, and again for
 * the tolerance floor), so the budget bounds the run time; larger draws are shrunk (batch,
 * heads or one length) until they fit, so big d·L combinations are sampled rather than
 * crossed. Full: ~8 s for 8 variants and the half types on 2 cores (~6 s float32 only);
 * reduced: ~10 s under ASan+UBSan. */
const shape_set shape_sets[2] = {
    {"full", 400, 3.0e6},
    {"reduced", 120, 1.0e6},
};

const int half_every[ATTN_DTYPE_COUNT] = {1, 5, 7};
const int half_slot[ATTN_DTYPE_COUNT] = {0, 1, 3};

static double case_cost(int64_t b, int64_t hq, int64_t lq, int64_t lk, int64_t d)
{
    return (double)b * (double)hq * (double)lq * (double)lk * (double)d;
}

static void make_random_case(test_case *c, uint64_t run_seed, int index, const shape_set *set)
{
    rng r = rng_seeded(run_seed, (uint64_t)index);
    /* Cycle the head dims so every one is covered evenly; draw the rest. */
    const bool long_row = index % LONG_EVERY == LONG_EVERY - 1;
    const int64_t d = long_row ? long_dims[index / LONG_EVERY % COUNT(long_dims)]
                               : head_dims[index % COUNT(head_dims)];
    int ia = (int)rng_range(&r, 0, COUNT(seq_lens) - 1), ib = ia;
    const int relation = (int)rng_range(&r, 0, 2); /* Lq = Lk, Lq < Lk, Lq > Lk */
    if (relation)
        while (ib == ia)
            ib = (int)rng_range(&r, 0, COUNT(seq_lens) - 1);
    int iq = relation == 2 ? (ia > ib ? ia : ib) : (ia < ib ? ia : ib);
    int ik = relation == 2 ? (ia > ib ? ib : ia) : (ia < ib ? ib : ia);
    int ibatch = (int)rng_range(&r, 0, COUNT(batches) - 1);
    int iheads = (int)rng_range(&r, 0, COUNT(head_pairs) - 1);
    int64_t lq = seq_lens[iq], lk = seq_lens[ik];
    if (long_row) {
        lq = long_q[rng_range(&r, 0, COUNT(long_q) - 1)];
        lk = long_lens[rng_range(&r, 0, COUNT(long_lens) - 1)];
    }
    /* Shrink a random dimension until the case fits the budget (a long row keeps its length
     * down to its shortest: at one row of head_dim 255, 1024 keys fit the reduced budget). */
    while (case_cost(batches[ibatch], head_pairs[iheads].q, lq, lk, d) > set->max_cost) {
        switch (rng_range(&r, 0, 3)) {
        case 0: ibatch -= ibatch > 0; break;
        case 1: iheads -= iheads > 0; break;
        case 2:
            if (!long_row)
                lq = seq_lens[iq -= iq > 0];
            else if (lq > 1)
                lq /= 2;
            break;
        default:
            if (!long_row)
                lk = seq_lens[ik -= ik > 0];
            else if (lk / 2 >= long_lens[0])
                lk /= 2;
            break;
        }
    }
    case_begin(c, rng_next(&r), batches[ibatch], head_pairs[iheads].q, head_pairs[iheads].kv,
               lq, lk, d);
    snprintf(c->name, sizeof c->name, "random #%d", index);
    c->index = index;
    attn_problem *p = &c->p;

    const double u = rng_unit(&r);
    const layout_kind layout = u < 0.35 ? LAYOUT_BHLD : u < 0.65 ? LAYOUT_BLHD : LAYOUT_PADDED;
    case_set_layout(c, layout, rng_chance(&r, 0.1), &r);
    p->causal = rng_chance(&r, 0.5);
    if (rng_chance(&r, 0.3)) {
        int32_t lens[MAX_BATCH];
        for (int64_t b = 0; b < p->batch; b++) {
            const double w = rng_unit(&r);
            lens[b] = (int32_t)(w < 0.15 ? 0 : w < 0.3 ? p->len_kv : rng_range(&r, 0, p->len_kv));
        }
        case_set_kv_lens(c, lens);
    }
    if (rng_chance(&r, 0.3)) {
        const int64_t stride = rng_chance(&r, 0.5) ? 0 : p->len_kv + rng_range(&r, 1, 5);
        case_set_mask(c, stride, -3.0f, 3.0f, 0.1, 0.05, &r);
    }
    const double s = rng_unit(&r);
    if (s < 0.4)
        p->scale = 0.0f;
    else if (s < 0.6)
        p->scale = 1.0f;
    else
        p->scale = (float)exp(rng_float(&r, logf(0.02f), logf(2.0f)));
    draw_options(c);
    draw_pages(c);
    case_alloc_inputs(c, 1.0f, &r);
    case_finish(c);
}
/* Whether random case `index` runs in type t (see half_every). */
static bool dtype_runs_case(const runner *rn, attn_dtype t, int index)
{
    if (!(rn->dtypes & (1u << t)))
        return false;
    if (t == ATTN_F32 || rn->dtypes == 1u << t || rn->only_case >= 0 || rn->only_edge >= 0)
        return true;
    return index % half_every[t] == half_slot[t];
}

void run_random_cases(runner *rn)
{
    for (int i = 0; i < rn->cases; i++) {
        if (rn->only_case >= 0 && i != rn->only_case)
            continue;
        test_case c;
        make_random_case(&c, rn->seed, i, rn->shapes);
        for (int t = 0; t < ATTN_DTYPE_COUNT; t++) {
            if (!dtype_runs_case(rn, (attn_dtype)t, i))
                continue;
            typed_case tc;
            typed_prepare(&c, (attn_dtype)t, draw_out_dtype(&c, (attn_dtype)t), &tc);
            run_on_selected(rn, &c, &tc, -1);
            typed_free(&tc);
        }
        /* Quantized K/V with float32 Q: int8 on every 3rd case, q4 on every case it can take
         * (head_dim % 32 == 0, even strides), or every case when --dtype names the type. */
        for (attn_dtype t = ATTN_INT8; t <= ATTN_Q4; t++) {
            const bool named = rn->dtypes == 1u << t || rn->only_case >= 0;
            if (!(rn->dtypes & (1u << t)) || (t == ATTN_INT8 && !named && i % 3 != 2))
                continue;
            typed_case tc;
            if (!typed_prepare_kv(&c, t, &tc))
                continue;
            run_on_selected(rn, &c, &tc, -1);
            typed_free(&tc);
        }
        case_free(&c);
    }
}

