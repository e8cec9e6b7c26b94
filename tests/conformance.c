/* conformance.c — every variant against the float64 oracle, in the spirit of dav1d's checkasm.
 *
 * For each registered variant this CPU supports (read from the registry, never by name) it runs
 * seeded random problems drawn from the shape tables below, named edge cases and invalid
 * problems — with default or random parameters and 1 to 4 threads — and checks:
 *   - the error against attn_oracle() is within the variant's declared tolerance (or the floor
 *     that the logits' size and cancellation in P·V put under it, see LOGIT_ROUNDINGS), NaN
 *     appears exactly where the oracle has NaN, and a row that attends to no key is exactly 0;
 *   - nothing is written outside the output's elements: the output buffer has guard bands
 *     before and after it and, in padded layouts, gaps between rows, all holding a sentinel;
 *     and every output element is written;
 *   - nothing outside the inputs is read: inputs are allocated with their exact extent (reads
 *     past the end fault under ASan), gaps in padded inputs hold NaN (which would reach the
 *     output), and the inputs are unchanged after the call;
 *   - one run in eight is repeated and must give the same bits;
 *   - a signal (SIGILL, SIGSEGV, SIGBUS, SIGFPE) during a call is a FAILED line, not a crash.
 * Invalid problems must be refused with the right status and a message, the output untouched;
 * a variant this CPU cannot run (or that ATTN_DISABLE_ISA turns off) must be refused with
 * ATTN_ERR_UNSUPPORTED.
 *
 * The seed is printed first; --seed N replays a run exactly (every random case draws from its
 * own generator seeded by the run seed and its index, so --variant and --case do not change
 * it). --selftest-broken corrupts results on purpose and passes only if every corruption is
 * caught. */
#include "attn.h"
#include "cpu.h"
#include "oracle.h"

#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ---- shape tables ------------------------------------------------------------------------ */

static const int64_t head_dims[] = {1, 3, 8, 17, 64, 80, 128, 255};
static const int64_t seq_lens[] = {1, 2, 7, 31, 37, 64, 101, 127, 257, 300}; /* ascending */
#define MAX_BATCH 3
static const int64_t batches[] = {1, 2, MAX_BATCH};
static const struct { int64_t q, kv; } head_pairs[] = {{1, 1}, {4, 4}, {8, 2}, {6, 1}};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* A shape set: how many random cases, and the largest B·Hq·Lq·Lk·d a case may have. The
 * scalar oracle costs a few float64 multiply-adds per unit of it (Q·Kᵀ, P·V, and again for
 * the tolerance floor), so the budget bounds the run time; larger draws are shrunk (batch,
 * heads or one length) until they fit, so big d·L combinations are sampled rather than
 * crossed. Full: ~5 s for 6 variants on 2 cores; reduced: ~10 s under ASan+UBSan. */
typedef struct shape_set {
    const char *name;
    int cases;
    double max_cost;
} shape_set;

static const shape_set shape_sets[] = {
    {"full", 400, 3.0e6},
    {"reduced", 120, 1.0e6},
};

/* ---- random numbers: splitmix64 --------------------------------------------------------- */

typedef struct rng {
    uint64_t state;
} rng;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rng_next(rng *r) { return mix64(r->state += 0x9e3779b97f4a7c15u); }

static rng rng_seeded(uint64_t seed, uint64_t stream)
{
    return (rng){mix64(seed ^ mix64(stream + 0x632be59bd9b4e019u))};
}

/* Uniform in [0, 1). */
static double rng_unit(rng *r) { return (double)(rng_next(r) >> 11) * 0x1p-53; }

/* Uniform integer in [lo, hi]. */
static int64_t rng_range(rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static bool rng_chance(rng *r, double p) { return rng_unit(r) < p; }

static float rng_float(rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)rng_unit(r);
}

static uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3u; /* FNV-1a */
    return h;
}

/* ---- helpers ----------------------------------------------------------------------------- */

/* A test program may stop on out-of-memory: it is the environment failing, not a variant. */
static void *checked_alloc(size_t count, size_t size)
{
    void *p = count && size ? calloc(count, size) : NULL;
    if (count && size && !p) {
        fprintf(stderr, "conformance: out of memory (%zu x %zu bytes)\n", count, size);
        exit(2);
    }
    return p;
}

static float float_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* The output sentinel is a signalling NaN: arithmetic quietens NaNs, so no value a variant
 * computes can carry these bits. */
#define SENTINEL_BITS 0x7fbadbadu
/* Floats of guard band before and after the output. */
#define GUARD 64

/* ---- test cases -------------------------------------------------------------------------- */

typedef enum layout_kind { LAYOUT_BHLD, LAYOUT_BLHD, LAYOUT_PADDED } layout_kind;
static const char *const layout_names[] = {"bhld", "blhd", "padded"};

typedef struct test_case {
    char name[96];
    int index;              /* random case number, or -1 for a named case */
    uint64_t seed;          /* this case's own seed (random parameters derive from it) */
    attn_problem p;
    layout_kind layout;
    bool broadcast_kv;      /* K and V batch strides 0 */
    int32_t *kv_lens;
    float *mask;
    int64_t mask_elements;
    float *q, *k, *v;
    int64_t extent[4];      /* q, k, v, o */
    double *ref;            /* the oracle's output, [B, Hq, Lq, d] */
    unsigned char *owned;   /* [extent o]: 1 where an output element lives */
    uint64_t input_hash;
    int64_t empty_rows;     /* rows that attend to no key */
    int64_t nan_rows, finite_rows; /* rows of the oracle's output with / without NaN */
    /* The floor under the declared tolerance (see LOGIT_ROUNDINGS) and what sets it. */
    double logit_max;       /* S: max over attended pairs of scale·Σ|q·k| + |mask| */
    double abs_max;         /* M: max over outputs of Σ_j p_j·|v_j| */
    double ref_max;         /* ||O*||∞ */
    double tolerance_floor;
} test_case;

static void case_begin(test_case *c, uint64_t seed, int64_t batch, int64_t hq, int64_t hkv,
                       int64_t lq, int64_t lk, int64_t d)
{
    memset(c, 0, sizeof *c);
    c->index = -1;
    c->seed = seed;
    attn_problem_init(&c->p, batch, hq, hkv, lq, lk, d);
}

/* Strides with gaps: each row, each run of inner rows and each outer block is followed by a
 * few unused elements. order_blhd puts the head inside the sequence. */
static void padded_strides(attn_strides *s, int64_t heads, int64_t len, int64_t d,
                           bool order_blhd, rng *r)
{
    const int64_t row = d + rng_range(r, 1, 9);
    const int64_t inner_n = order_blhd ? heads : len, outer_n = order_blhd ? len : heads;
    const int64_t mid = inner_n * row + rng_range(r, 0, 13);
    if (order_blhd) {
        s->head = row;
        s->seq = mid;
    } else {
        s->seq = row;
        s->head = mid;
    }
    s->batch = outer_n * mid + rng_range(r, 0, 29);
}

static void case_set_layout(test_case *c, layout_kind layout, bool broadcast_kv, rng *r)
{
    attn_problem *p = &c->p;
    c->layout = layout;
    if (layout == LAYOUT_BLHD)
        attn_problem_set_layout_blhd(p);
    if (layout == LAYOUT_PADDED) {
        padded_strides(&p->q, p->heads_q, p->len_q, p->head_dim, rng_chance(r, 0.5), r);
        padded_strides(&p->k, p->heads_kv, p->len_kv, p->head_dim, rng_chance(r, 0.5), r);
        padded_strides(&p->v, p->heads_kv, p->len_kv, p->head_dim, rng_chance(r, 0.5), r);
        padded_strides(&p->o, p->heads_q, p->len_q, p->head_dim, rng_chance(r, 0.5), r);
    }
    c->broadcast_kv = broadcast_kv && p->batch > 1;
    if (c->broadcast_kv)
        p->k.batch = p->v.batch = 0;
}

static void case_set_kv_lens(test_case *c, const int32_t *lens)
{
    c->kv_lens = checked_alloc((size_t)c->p.batch, sizeof *c->kv_lens);
    memcpy(c->kv_lens, lens, (size_t)c->p.batch * sizeof *c->kv_lens);
    c->p.kv_lens = c->kv_lens;
}

/* An additive mask with values uniform in [lo, hi]; each entry is -inf with probability
 * p_inf, each row entirely -inf with probability p_row_inf. Gaps (row_stride > Lk) hold NaN,
 * which would poison any output that read them. */
static void case_set_mask(test_case *c, int64_t row_stride, float lo, float hi, double p_inf,
                          double p_row_inf, rng *r)
{
    attn_problem *p = &c->p;
    const int64_t stride = row_stride ? row_stride : p->len_kv;
    c->mask_elements = (p->len_q - 1) * stride + p->len_kv;
    c->mask = checked_alloc((size_t)c->mask_elements, sizeof *c->mask);
    for (int64_t e = 0; e < c->mask_elements; e++)
        c->mask[e] = NAN;
    for (int64_t i = 0; i < p->len_q; i++) {
        const bool row_inf = rng_chance(r, p_row_inf);
        for (int64_t j = 0; j < p->len_kv; j++)
            c->mask[i * stride + j] =
                row_inf || rng_chance(r, p_inf) ? -INFINITY : rng_float(r, lo, hi);
    }
    p->mask = c->mask;
    p->mask_row_stride = row_stride;
}

static float *tensor_row(float *base, const attn_strides *s, int64_t b, int64_t h, int64_t i)
{
    return base + b * s->batch + h * s->head + i * s->seq;
}

/* Allocates q, k, v with their exact extents: NaN everywhere (gaps of padded layouts), then
 * every element uniform in [-amplitude, amplitude]. */
static void case_alloc_inputs(test_case *c, float amplitude, rng *r)
{
    attn_problem *p = &c->p;
    const char names[4] = {'q', 'k', 'v', 'o'};
    for (int t = 0; t < 4; t++) {
        attn_error err;
        if (attn_tensor_extent(p, names[t], &c->extent[t], &err) != ATTN_OK) {
            fprintf(stderr, "conformance: internal error, case %s: %s\n", c->name, err.message);
            exit(2);
        }
    }
    float **tensors[3] = {&c->q, &c->k, &c->v};
    const attn_strides *strides[3] = {&p->q, &p->k, &p->v};
    for (int t = 0; t < 3; t++) {
        float *x = checked_alloc((size_t)c->extent[t], sizeof *x);
        for (int64_t e = 0; e < c->extent[t]; e++)
            x[e] = NAN;
        const int64_t heads = t == 0 ? p->heads_q : p->heads_kv;
        const int64_t len = t == 0 ? p->len_q : p->len_kv;
        for (int64_t b = 0; b < p->batch; b++)
            for (int64_t h = 0; h < heads; h++)
                for (int64_t i = 0; i < len; i++) {
                    float *row = tensor_row(x, strides[t], b, h, i);
                    for (int64_t e = 0; e < p->head_dim; e++)
                        row[e] = rng_float(r, -amplitude, amplitude);
                }
        *tensors[t] = x;
    }
}

/* Whether row i of batch b attends to at least one key. */
static bool row_attends(const attn_problem *p, int64_t b, int64_t i)
{
    const int64_t n = attn_key_limit(p, b, i);
    const float *m = attn_mask_row(p, i);
    for (int64_t j = 0; j < n; j++)
        if (!m || m[j] != -INFINITY)
            return true;
    return false;
}

/* S = max over attended pairs of scale·Σ|q_c·k_c| + |mask|: a bound on the magnitude of the
 * terms a float score is rounded from. */
static double logit_magnitude(const test_case *c)
{
    const attn_problem *p = &c->p;
    const double scale = attn_problem_scale(p);
    const int64_t group = p->heads_q / p->heads_kv;
    double s_max = 0;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->heads_q; h++)
            for (int64_t i = 0; i < p->len_q; i++) {
                const float *q = tensor_row(c->q, &p->q, b, h, i), *m = attn_mask_row(p, i);
                const int64_t n = attn_key_limit(p, b, i);
                for (int64_t j = 0; j < n; j++) {
                    if (m && m[j] == -INFINITY)
                        continue;
                    const float *k = tensor_row(c->k, &p->k, b, h / group, j);
                    double s = 0;
                    for (int64_t e = 0; e < p->head_dim; e++)
                        s += fabs((double)q[e] * k[e]);
                    s = scale * s + (m ? fabs(m[j]) : 0.0);
                    if (s > s_max)
                        s_max = s;
                }
            }
    return s_max;
}

/* The check's floor under the declared tolerance: problems whose float32 inputs fix the
 * answer only to some absolute error, whatever the algorithm.
 *
 * Logits. Rounding a float score of magnitude S costs an absolute error of ~S·2^-24 in the
 * score, i.e. a relative error of S·2^-24 in its weight exp(score - max); the scale, the max
 * subtraction and the accumulation of the dot product add a few more such roundings. A convex
 * combination whose weights move by a relative δ moves by at most 2δ·M, where
 * M = max over outputs of Σ_j p_j·|v_j| (the oracle run on |V|). Hence LOGIT_ROUNDINGS·S·2^-24·M
 * with LOGIT_ROUNDINGS = 2 (convex combination) × 4 (score, scale, max subtraction, dot).
 *
 * Cancellation. The weighted sum itself rounds at the scale of its terms, M, not of its result:
 * when V's values cancel (d = 1, long rows of inputs in [-1, 1]) ||O*||∞ can be 1000 times
 * smaller than M, and the normwise relative error of any float32 sum exceeds a tolerance meant
 * for ||O*||∞ ~ M. Hence SUM_ROUNDINGS·2^-24·M (the exp, the normalisation, the sum).
 *
 * The floor is (LOGIT_ROUNDINGS·S + SUM_ROUNDINGS)·2^-24·M / ||O*||∞, as a normwise relative
 * error. With the default scale and inputs in [-1, 1], S ≈ sqrt(d)/4 <= 4 and ||O*||∞ ~ M/3, so
 * it stays under the declared tolerances (1e-5); it rises with an explicit scale of 1-2 and a
 * large d (S up to ~150), for the logits of ±1e4 of the edge cases and for cancelling sums.
 * Measured over 10^4 runs (4 seeds, 6 variants): errors up to 1.7·S·2^-24·M, i.e. at most a
 * fifth of the floor, and never above 0.2 of the tolerance used. */
#define LOGIT_ROUNDINGS 8.0
#define SUM_ROUNDINGS 16.0

static uint64_t case_input_hash(const test_case *c)
{
    uint64_t h = 0xcbf29ce484222325u;
    h = hash_bytes(h, c->q, (size_t)c->extent[0] * sizeof(float));
    h = hash_bytes(h, c->k, (size_t)c->extent[1] * sizeof(float));
    h = hash_bytes(h, c->v, (size_t)c->extent[2] * sizeof(float));
    if (c->mask)
        h = hash_bytes(h, c->mask, (size_t)c->mask_elements * sizeof(float));
    if (c->kv_lens)
        h = hash_bytes(h, c->kv_lens, (size_t)c->p.batch * sizeof(int32_t));
    return h;
}

static void case_finish(test_case *c)
{
    attn_problem *p = &c->p;
    const int64_t d = p->head_dim, rows = p->batch * p->heads_q * p->len_q;
    c->ref = checked_alloc((size_t)(rows * d), sizeof *c->ref);
    attn_error err;
    if (attn_oracle(p, c->q, c->k, c->v, c->ref, &err) != ATTN_OK) {
        fprintf(stderr, "conformance: internal error, oracle refused case %s: %s\n", c->name,
                err.message);
        exit(2);
    }
    c->owned = checked_alloc((size_t)c->extent[3], 1);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->heads_q; h++)
            for (int64_t i = 0; i < p->len_q; i++) {
                memset(c->owned + b * p->o.batch + h * p->o.head + i * p->o.seq, 1, (size_t)d);
                bool nan = false;
                const double *r = c->ref + ((b * p->heads_q + h) * p->len_q + i) * d;
                for (int64_t e = 0; e < d; e++)
                    nan |= isnan(r[e]);
                c->nan_rows += nan;
                c->finite_rows += !nan;
            }
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0; i < p->len_q; i++)
            c->empty_rows += !row_attends(p, b, i) * p->heads_q;
    c->input_hash = case_input_hash(c);

    /* The floor of the tolerance (see LOGIT_ROUNDINGS): S, M from the oracle on |V|, ||O*||. */
    c->logit_max = logit_magnitude(c);
    float *v_abs = checked_alloc((size_t)c->extent[2], sizeof *v_abs);
    for (int64_t e = 0; e < c->extent[2]; e++)
        v_abs[e] = fabsf(c->v[e]);
    double *ref_abs = checked_alloc((size_t)(rows * d), sizeof *ref_abs);
    if (attn_oracle(p, c->q, c->k, v_abs, ref_abs, &err) != ATTN_OK) {
        fprintf(stderr, "conformance: internal error, oracle refused case %s: %s\n", c->name,
                err.message);
        exit(2);
    }
    for (int64_t e = 0; e < rows * d; e++) {
        if (!isnan(c->ref[e]) && fabs(c->ref[e]) > c->ref_max)
            c->ref_max = fabs(c->ref[e]);
        if (!isnan(ref_abs[e]) && ref_abs[e] > c->abs_max)
            c->abs_max = ref_abs[e];
    }
    free(ref_abs);
    free(v_abs);
    if (c->ref_max > 0)
        c->tolerance_floor = (LOGIT_ROUNDINGS * c->logit_max + SUM_ROUNDINGS) * 0x1p-24 *
                             c->abs_max / c->ref_max;
}

static void case_free(test_case *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->mask);
    free(c->kv_lens);
    free(c->ref);
    free(c->owned);
    memset(c, 0, sizeof *c);
}

static void describe_strides(char *buf, size_t len, const char *name, const attn_strides *s)
{
    snprintf(buf, len, " %s=(%" PRId64 ",%" PRId64 ",%" PRId64 ")", name, s->batch, s->head,
             s->seq);
}

/* The full problem in one line: shape, causal, kv_lens, mask, layout, scale. */
static void describe_case(const test_case *c, char *buf, size_t len)
{
    const attn_problem *p = &c->p;
    char lens[64] = "none", mask[64] = "none", layout[256], scale[48];
    if (p->kv_lens) {
        size_t used = 0;
        for (int64_t b = 0; b < p->batch && used < sizeof lens; b++)
            used += (size_t)snprintf(lens + used, sizeof lens - used, "%s%d", b ? "," : "[",
                                     p->kv_lens[b]);
        if (used < sizeof lens)
            snprintf(lens + used, sizeof lens - used, "]");
    }
    if (p->mask) {
        int64_t inf = 0;
        for (int64_t i = 0; i < p->len_q; i++)
            for (int64_t j = 0; j < p->len_kv; j++)
                inf += attn_mask_row(p, i)[j] == -INFINITY;
        snprintf(mask, sizeof mask, "yes(row_stride=%" PRId64 ",%" PRId64 " -inf)",
                 p->mask_row_stride, inf);
    }
    snprintf(layout, sizeof layout, "%s%s", layout_names[c->layout],
             c->broadcast_kv ? "+broadcast-kv" : "");
    if (c->layout == LAYOUT_PADDED || c->broadcast_kv) {
        const char *names[4] = {"q", "k", "v", "o"};
        const attn_strides *s[4] = {&p->q, &p->k, &p->v, &p->o};
        for (int t = 0; t < 4; t++) {
            size_t used = strlen(layout);
            describe_strides(layout + used, sizeof layout - used, names[t], s[t]);
        }
    }
    if (p->scale == 0.0f)
        snprintf(scale, sizeof scale, "default(%.6g)", (double)attn_problem_scale(p));
    else
        snprintf(scale, sizeof scale, "%.9g", (double)p->scale);
    snprintf(buf, len,
             "B=%" PRId64 " Hq=%" PRId64 " Hkv=%" PRId64 " Lq=%" PRId64 " Lk=%" PRId64
             " d=%" PRId64 " causal=%d kv_lens=%s mask=%s layout=%s scale=%s",
             p->batch, p->heads_q, p->heads_kv, p->len_q, p->len_kv, p->head_dim, p->causal,
             lens, mask, layout, scale);
}

/* ---- random cases ------------------------------------------------------------------------ */

static double case_cost(int64_t b, int64_t hq, int64_t lq, int64_t lk, int64_t d)
{
    return (double)b * (double)hq * (double)lq * (double)lk * (double)d;
}

static void make_random_case(test_case *c, uint64_t run_seed, int index, const shape_set *set)
{
    rng r = rng_seeded(run_seed, (uint64_t)index);
    /* Cycle the head dims so every one is covered evenly; draw the rest. */
    const int64_t d = head_dims[index % COUNT(head_dims)];
    int ia = (int)rng_range(&r, 0, COUNT(seq_lens) - 1), ib = ia;
    const int relation = (int)rng_range(&r, 0, 2); /* Lq = Lk, Lq < Lk, Lq > Lk */
    if (relation)
        while (ib == ia)
            ib = (int)rng_range(&r, 0, COUNT(seq_lens) - 1);
    int iq = relation == 2 ? (ia > ib ? ia : ib) : (ia < ib ? ia : ib);
    int ik = relation == 2 ? (ia > ib ? ib : ia) : (ia < ib ? ib : ia);
    int ibatch = (int)rng_range(&r, 0, COUNT(batches) - 1);
    int iheads = (int)rng_range(&r, 0, COUNT(head_pairs) - 1);
    /* Shrink a random dimension until the case fits the budget. */
    while (case_cost(batches[ibatch], head_pairs[iheads].q, seq_lens[iq], seq_lens[ik], d) >
           set->max_cost) {
        switch (rng_range(&r, 0, 3)) {
        case 0: ibatch -= ibatch > 0; break;
        case 1: iheads -= iheads > 0; break;
        case 2: iq -= iq > 0; break;
        default: ik -= ik > 0; break;
        }
    }
    case_begin(c, rng_next(&r), batches[ibatch], head_pairs[iheads].q, head_pairs[iheads].kv,
               seq_lens[iq], seq_lens[ik], d);
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
    case_alloc_inputs(c, 1.0f, &r);
    case_finish(c);
}

/* ---- named edge cases -------------------------------------------------------------------- */

/* What a named case's oracle output must show, so a mistake in building it is seen. */
enum expect { EXPECT_ANY, EXPECT_EMPTY_ROWS, EXPECT_NAN_AND_FINITE_ROWS, EXPECT_NO_NAN };

typedef struct edge_case {
    const char *name;
    enum expect expect;
    void (*build)(test_case *c, rng *r);
} edge_case;

static void edge_causal_lq_gt_lk(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 2, 37, 7, 17); /* rows 0..29 see no key */
    c->p.causal = true;
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_kv_lens_zero(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 3, 4, 4, 31, 37, 8);
    case_set_kv_lens(c, (const int32_t[]){0, 5, 0});
    case_set_layout(c, LAYOUT_PADDED, false, r);
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_mask_row_all_inf(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 8, 2, 31, 64, 17);
    case_set_mask(c, 0, -2.0f, 2.0f, 0.2, 0.3, r);
    for (int64_t j = 0; j < c->p.len_kv; j++) /* row 0 fully masked for certain */
        c->mask[j] = -INFINITY;
    case_alloc_inputs(c, 1.0f, r);
}

/* Logits near +1e4 with spread O(1) among keys (so several keys share the weight): q and the
 * common direction w of the keys are positive, keys differ by a small perturbation. */
static void large_logits(test_case *c, rng *r, float sign)
{
    case_begin(c, rng_next(r), 1, 2, 1, 7, 64, 16);
    c->p.scale = 1.0f;
    case_alloc_inputs(c, 1.0f, r);
    const attn_problem *p = &c->p;
    float w[16];
    for (int e = 0; e < 16; e++)
        w[e] = rng_float(r, 0.5f, 1.0f);
    for (int64_t h = 0; h < p->heads_q; h++)
        for (int64_t i = 0; i < p->len_q; i++) {
            float *q = tensor_row(c->q, &p->q, 0, h, i);
            for (int e = 0; e < 16; e++)
                q[e] = sign * rng_float(r, 50.0f, 100.0f);
        }
    for (int64_t j = 0; j < p->len_kv; j++) {
        float *k = tensor_row(c->k, &p->k, 0, 0, j);
        for (int e = 0; e < 16; e++)
            k[e] = 10.0f * w[e] + rng_float(r, -0.002f, 0.002f);
    }
}

static void edge_large_positive_logits(test_case *c, rng *r) { large_logits(c, r, 1.0f); }
static void edge_large_negative_logits(test_case *c, rng *r) { large_logits(c, r, -1.0f); }

static void edge_large_scale(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 2, 31, 37, 8);
    c->p.scale = 5000.0f; /* |q·k| up to ~2 with these inputs: logits up to ~1e4 */
    c->p.causal = true;
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_large_mask(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 4, 4, 31, 64, 17);
    case_set_mask(c, 0, -2.0f, 2.0f, 0.05, 0.0, r);
    for (int64_t i = 0; i < c->p.len_q; i++)
        for (int64_t j = 0; j < c->p.len_kv; j++) {
            float *m = &c->mask[i * c->p.len_kv + j];
            if (*m != -INFINITY) /* every row at +1e4 or -1e4 (finite: not masked) */
                *m += (i % 2 ? 1.0e4f : -1.0e4f) * ((j % 3) ? 1.0f : 0.9999f);
        }
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_nan_in_k(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 2, 1, 31, 31, 17);
    c->p.causal = true; /* rows i < 10 do not see key 10 */
    case_alloc_inputs(c, 1.0f, r);
    tensor_row(c->k, &c->p.k, 0, 0, 10)[3] = NAN;
}

static void edge_nan_in_q(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 2, 7, 31, 8);
    case_alloc_inputs(c, 1.0f, r);
    tensor_row(c->q, &c->p.q, 1, 3, 5)[0] = NAN;
}

static void edge_nan_in_v(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 4, 2, 31, 31, 17);
    c->p.causal = true;
    attn_problem_set_layout_blhd(&c->p);
    c->layout = LAYOUT_BLHD;
    case_alloc_inputs(c, 1.0f, r);
    tensor_row(c->v, &c->p.v, 0, 1, 20)[16] = NAN;
}

/* NaN in keys no row may attend to: beyond kv_lens and behind a -inf mask column. */
static void edge_nan_in_excluded_keys(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 2, 2, 7, 37, 17);
    case_set_kv_lens(c, (const int32_t[]){30, 37});
    case_set_mask(c, 0, -1.0f, 1.0f, 0.0, 0.0, r);
    for (int64_t i = 0; i < c->p.len_q; i++)
        c->mask[i * c->p.len_kv + 12] = -INFINITY;
    case_alloc_inputs(c, 1.0f, r);
    for (int64_t h = 0; h < 2; h++) {
        tensor_row(c->k, &c->p.k, 0, h, 33)[1] = NAN; /* batch 0: kv_lens 30 */
        tensor_row(c->v, &c->p.v, 0, h, 35)[2] = NAN;
        tensor_row(c->k, &c->p.k, 1, h, 12)[0] = NAN; /* masked column */
        tensor_row(c->v, &c->p.v, 1, h, 12)[5] = NAN;
    }
}

static void edge_decode_long(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 8, 2, 1, 4099, 128);
    c->p.causal = true;
    case_set_kv_lens(c, (const int32_t[]){4099, 1031});
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_single_key(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 2, 37, 1, 17);
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_single_key_causal(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 6, 1, 37, 1, 80); /* only the last row sees the key */
    c->p.causal = true;
    case_set_layout(c, LAYOUT_BLHD, false, r);
    case_alloc_inputs(c, 1.0f, r);
}

static const edge_case edge_cases[] = {
    {"all keys masked: causal with Lq > Lk", EXPECT_EMPTY_ROWS, edge_causal_lq_gt_lk},
    {"all keys masked: kv_lens = 0", EXPECT_EMPTY_ROWS, edge_kv_lens_zero},
    {"all keys masked: -inf mask row", EXPECT_EMPTY_ROWS, edge_mask_row_all_inf},
    {"large logits: +1e4 from large inputs", EXPECT_NO_NAN, edge_large_positive_logits},
    {"large logits: -1e4 from large inputs", EXPECT_NO_NAN, edge_large_negative_logits},
    {"large logits: scale 5000", EXPECT_NO_NAN, edge_large_scale},
    {"large logits: mask values +-1e4", EXPECT_NO_NAN, edge_large_mask},
    {"NaN in one K row reaches only rows that see it", EXPECT_NAN_AND_FINITE_ROWS, edge_nan_in_k},
    {"NaN in one Q row reaches only that row", EXPECT_NAN_AND_FINITE_ROWS, edge_nan_in_q},
    {"NaN in one V element reaches only rows that see it", EXPECT_NAN_AND_FINITE_ROWS,
     edge_nan_in_v},
    {"NaN in excluded keys (kv_lens, -inf mask) reaches nothing", EXPECT_NO_NAN,
     edge_nan_in_excluded_keys},
    {"decode: Lq = 1, Lk = 4099", EXPECT_ANY, edge_decode_long},
    {"Lk = 1", EXPECT_ANY, edge_single_key},
    {"Lk = 1, causal", EXPECT_EMPTY_ROWS, edge_single_key_causal},
};

/* ---- catching signals -------------------------------------------------------------------- */

/* A signal on the thread that called the variant jumps back to guarded_run. A signal on one of
 * the library's worker threads cannot jump across threads: it prints a FAILED line naming the
 * call and ends the process. Anywhere else the signal takes its default action. */
static uint64_t crash_seed; /* the run's seed, for the replay line of a worker's crash */
static sigjmp_buf crash_jump;
static _Thread_local volatile sig_atomic_t crash_armed;
static volatile sig_atomic_t call_in_flight;
static char crash_context[384]; /* "variant [case]; replay: ..." of the call in flight */

static void write_text(const char *s) /* async-signal-safe */
{
    size_t n = strlen(s);
    while (n > 0) {
        const ssize_t w = write(STDOUT_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void crash_handler(int sig)
{
    if (crash_armed) {
        crash_armed = 0;
        siglongjmp(crash_jump, sig);
    }
    if (call_in_flight) {
        char num[4] = {(char)('0' + sig / 10 % 10), (char)('0' + sig % 10), '\0', '\0'};
        write_text("FAILED ");
        write_text(crash_context);
        write_text(" (signal ");
        write_text(num[0] == '0' ? num + 1 : num);
        write_text(" on a worker thread)\n");
        _exit(1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_crash_handlers(void)
{
    /* An alternate stack, so a stack overflow on the calling thread is caught too. */
    static char alt_stack[1 << 16];
    stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof alt_stack};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = crash_handler;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGILL, SIGSEGV, SIGBUS, SIGFPE};
    for (int i = 0; i < COUNT(sigs); i++)
        sigaction(sigs[i], &sa, NULL);
}

typedef void (*crash_test_fn)(void);

/* Runs a variant (or, in the self-test, crash_test) with the handlers armed; `context` names
 * the call in a worker thread's FAILED line. Returns the signal caught, or 0. */
static int guarded_run(const char *context, const char *name, const attn_problem *p,
                       const attn_params *params, const float *q, const float *k,
                       const float *v, float *o, attn_error *err, attn_status *status,
                       crash_test_fn crash_test)
{
    snprintf(crash_context, sizeof crash_context, "%s", context);
    const int sig = sigsetjmp(crash_jump, 1);
    if (sig) {
        call_in_flight = 0;
        return sig;
    }
    call_in_flight = 1;
    crash_armed = 1;
    if (crash_test)
        crash_test();
    else
        *status = attn_run_variant(name, p, params, q, k, v, o, err);
    crash_armed = 0;
    call_in_flight = 0;
    return 0;
}

/* ---- running and checking one variant on one case ---------------------------------------- */

typedef struct out_buffer {
    float *base; /* GUARD + extent + GUARD floats */
    float *o;    /* base + GUARD */
    int64_t total;
} out_buffer;

static void out_init(out_buffer *ob, int64_t extent)
{
    ob->total = extent + 2 * GUARD;
    ob->base = checked_alloc((size_t)ob->total, sizeof(float));
    ob->o = ob->base + GUARD;
}

static void out_fill_sentinel(out_buffer *ob)
{
    const float s = float_from_bits(SENTINEL_BITS);
    for (int64_t e = 0; e < ob->total; e++)
        ob->base[e] = s;
}

static bool out_untouched(const out_buffer *ob)
{
    for (int64_t e = 0; e < ob->total; e++)
        if (bits_of(ob->base[e]) != SENTINEL_BITS)
            return false;
    return true;
}

/* Deliberate damage for --selftest-broken, applied after a correct run. */
typedef enum corruption {
    CORRUPT_NONE,
    CORRUPT_OUTPUT,       /* one output element off by 0.5·||O||∞ */
    CORRUPT_OUTPUT_NAN,   /* one output element of a finite row set to NaN */
    CORRUPT_EMPTY_ROW,    /* one element of a row without keys set to a tiny 1e-30 */
    CORRUPT_UNWRITTEN,    /* one output element left at the sentinel */
    CORRUPT_GUARD_BEFORE, /* the element just before the output */
    CORRUPT_GUARD_AFTER,  /* the element just after the output's extent */
    CORRUPT_ROW_GAP,      /* an element between two rows of a padded output */
    CORRUPT_INPUT,        /* one input element changed */
} corruption;

typedef struct run_result {
    attn_status status;
    char message[320];
    int signal;
    char params[200];               /* how it ran: parameters and threads */
    attn_error_metrics m;
    double tolerance;
    int64_t guard_bad, guard_first; /* elements outside the output that changed; the first */
    int64_t unwritten;              /* output elements still holding the sentinel */
    int64_t empty_nonzero;          /* elements of rows without keys that are not 0 */
    int64_t repeat_differs;         /* elements whose bits differ on a second, identical run */
    bool repeated;
    bool inputs_changed;
    bool ok;
} run_result;

/* How one variant runs one case, drawn from the case's seed and the variant's name:
 * NULL parameters (the library's defaults) in a fifth of the runs; otherwise the variant's
 * defaults or, for a variant with parameters, half of the time a random draw (log-uniform in
 * each range, rounded to its multiple); threads 0 (default) to 4 unless `threads` >= 0 fixes
 * them (thread counts above the slices make the harness split keys: decode); and one run in
 * eight repeated to check the bits do not change. */
typedef struct run_plan {
    bool null_params, drawn, repeat;
    attn_params params;
} run_plan;

static run_plan plan_run(const attn_variant_info *info, const test_case *c, int threads)
{
    run_plan rp;
    memset(&rp, 0, sizeof rp);
    rng r = rng_seeded(c->seed, hash_bytes(0xcbf29ce484222325u, info->name, strlen(info->name)));
    rp.repeat = rng_chance(&r, 0.125);
    rp.null_params = threads < 0 && rng_chance(&r, 0.2);
    if (rp.null_params)
        return rp;
    attn_variant_default_params(info->name, &c->p, &rp.params, NULL);
    rp.params.threads = threads >= 0 ? threads : (int32_t)rng_range(&r, 0, 4);
    rp.drawn = info->param_count > 0 && rng_chance(&r, 0.5);
    for (int i = 0; rp.drawn && i < info->param_count && i < ATTN_MAX_PARAMS; i++) {
        const attn_param_info *d = &info->params[i];
        int64_t x;
        if (d->min >= 1)
            x = (int64_t)exp(rng_float(&r, logf((float)d->min), logf((float)d->max + 1.0f)));
        else
            x = rng_range(&r, d->min, d->max);
        const int64_t m = d->multiple_of > 1 ? d->multiple_of : 1;
        x -= x % m;
        while (x < d->min)
            x += m;
        rp.params.value[i] = (int32_t)(x > d->max ? d->max : x);
    }
    return rp;
}

static void describe_params(const attn_variant_info *info, const run_plan *rp, char *buf,
                            size_t len)
{
    if (rp->null_params) {
        snprintf(buf, len, "NULL");
        return;
    }
    char values[128] = "";
    attn_params_format(info->name, &rp->params, values, sizeof values);
    snprintf(buf, len, "%s%s%s threads=%d", rp->drawn ? "" : "default",
             rp->drawn || !values[0] ? "" : ":", values, rp->params.threads);
}

static void apply_corruption(corruption what, const test_case *c, out_buffer *ob)
{
    const attn_problem *p = &c->p;
    const int64_t d = p->head_dim;
    /* The first row of the output (by row index) that has keys / has none / is finite. */
    int64_t finite_row = -1, empty_row = -1;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0; i < p->len_q; i++) {
            const int64_t off = b * p->o.batch + (p->heads_q - 1) * p->o.head + i * p->o.seq;
            const double *ref = c->ref + ((b * p->heads_q + p->heads_q - 1) * p->len_q + i) * d;
            if (!row_attends(p, b, i) && empty_row < 0)
                empty_row = off;
            if (row_attends(p, b, i) && !isnan(ref[0]) && finite_row < 0)
                finite_row = off;
        }
    int64_t max_off = 0;
    for (int64_t e = 0; e < c->extent[3]; e++)
        if (c->owned[e])
            max_off = e;
    switch (what) {
    case CORRUPT_NONE: break;
    case CORRUPT_OUTPUT: ob->o[finite_row] += 0.5f; break;
    case CORRUPT_OUTPUT_NAN: ob->o[finite_row] = NAN; break;
    case CORRUPT_EMPTY_ROW: ob->o[empty_row + d - 1] = 1e-30f; break;
    case CORRUPT_UNWRITTEN: ob->o[max_off] = float_from_bits(SENTINEL_BITS); break;
    case CORRUPT_GUARD_BEFORE: ob->o[-1] = 0.0f; break;
    case CORRUPT_GUARD_AFTER: ob->o[c->extent[3]] = 0.0f; break;
    case CORRUPT_ROW_GAP:
        for (int64_t e = 0; e < c->extent[3]; e++)
            if (!c->owned[e]) {
                ob->o[e] = 1.0f;
                break;
            }
        break;
    case CORRUPT_INPUT: c->k[0] += 1.0f; break;
    }
}

static void check_output(const test_case *c, const out_buffer *ob, run_result *res)
{
    const attn_problem *p = &c->p;
    res->guard_first = INT64_MIN;
    for (int64_t e = 0; e < ob->total; e++) {
        const int64_t off = e - GUARD;
        const bool owned = off >= 0 && off < c->extent[3] && c->owned[off];
        const bool sentinel = bits_of(ob->base[e]) == SENTINEL_BITS;
        if (owned && sentinel)
            res->unwritten++;
        if (!owned && !sentinel) {
            if (!res->guard_bad)
                res->guard_first = off;
            res->guard_bad++;
        }
    }
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0; i < p->len_q; i++) {
            if (row_attends(p, b, i))
                continue;
            for (int64_t h = 0; h < p->heads_q; h++) {
                const float *o = tensor_row(ob->o, &p->o, b, h, i);
                for (int64_t e = 0; e < p->head_dim; e++)
                    res->empty_nonzero += o[e] != 0.0f;
            }
        }
    attn_compare(p, ob->o, c->ref, res->tolerance, &res->m);
    res->inputs_changed = case_input_hash(c) != c->input_hash;
    res->ok = res->m.ok && !res->guard_bad && !res->unwritten && !res->empty_nonzero &&
              !res->inputs_changed && !res->repeat_differs;
}

/* Runs one variant on one case as plan_run() says (`threads` >= 0 fixes the thread count) and
 * checks everything; `corrupt` damages the result first (self-test only). */
static void run_case(const attn_variant_info *info, test_case *c, int threads,
                     corruption corrupt, run_result *res)
{
    memset(res, 0, sizeof *res);
    res->tolerance = info->tolerance > c->tolerance_floor ? info->tolerance : c->tolerance_floor;
    run_plan rp = plan_run(info, c, threads);
    describe_params(info, &rp, res->params, sizeof res->params);
    char context[384], case_arg[32] = "";
    if (c->index >= 0)
        snprintf(case_arg, sizeof case_arg, " --case %d", c->index);
    snprintf(context, sizeof context, "%s [%s] params=%s; replay: conformance --seed %" PRIu64
             " --variant %s%s", info->name, c->name, res->params, crash_seed, info->name,
             case_arg);
    out_buffer ob;
    out_init(&ob, c->extent[3]);
    out_fill_sentinel(&ob);
    attn_error err = {0};

    if (rp.drawn && attn_params_check(info->name, &c->p, &rp.params, &err) != ATTN_OK) {
        /* The variant's own constraints refuse the draw: the run must refuse it alike, without
         * writing; then the defaults run. */
        char why[256];
        snprintf(why, sizeof why, "%s", err.message);
        res->signal = guarded_run(context, info->name, &c->p, &rp.params, c->q, c->k, c->v,
                                  ob.o, &err, &res->status, NULL);
        if (res->signal || res->status != ATTN_ERR_INVALID || !out_untouched(&ob)) {
            snprintf(res->message, sizeof res->message,
                     "attn_params_check refused %s (%.120s) but the run %s", res->params, why,
                     res->signal ? "crashed" : res->status != ATTN_ERR_INVALID
                                                   ? "did not refuse them"
                                                   : "wrote the output");
            free(ob.base);
            return;
        }
        const int32_t keep_threads = rp.params.threads;
        attn_variant_default_params(info->name, &c->p, &rp.params, NULL);
        rp.params.threads = keep_threads;
        rp.drawn = false;
        char refused[sizeof res->params];
        memcpy(refused, res->params, sizeof refused);
        describe_params(info, &rp, res->params, sizeof res->params);
        const size_t used = strlen(res->params);
        snprintf(res->params + used, sizeof res->params - used, " (drawn %.80s refused)",
                 refused);
    }
    const attn_params *params = rp.null_params ? NULL : &rp.params;
    float *first = NULL;
    for (int run = 0; run < (rp.repeat ? 2 : 1); run++) {
        if (run == 1) { /* the same call again: the same bits, guards included */
            first = checked_alloc((size_t)ob.total, sizeof *first);
            memcpy(first, ob.base, (size_t)ob.total * sizeof *first);
            out_fill_sentinel(&ob);
            res->repeated = true;
        }
        res->signal = guarded_run(context, info->name, &c->p, params, c->q, c->k, c->v, ob.o,
                                  &err, &res->status, NULL);
        if (res->signal || res->status != ATTN_OK)
            break;
    }
    if (res->signal) {
        snprintf(res->message, sizeof res->message, "caught signal %d (%s)", res->signal,
                 strsignal(res->signal));
    } else if (res->status != ATTN_OK) {
        snprintf(res->message, sizeof res->message, "returned %s: %s",
                 attn_status_string(res->status), err.message);
    } else {
        for (int64_t e = 0; first && e < ob.total; e++)
            res->repeat_differs += bits_of(first[e]) != bits_of(ob.base[e]);
        apply_corruption(corrupt, c, &ob);
        check_output(c, &ob, res);
        if (corrupt == CORRUPT_INPUT)
            c->k[0] -= 1.0f;
    }
    free(first);
    free(ob.base);
}

/* ---- the runner -------------------------------------------------------------------------- */

typedef struct variant_state {
    attn_variant_info info;
    char isa[128], why_not[192]; /* copies: attn_variant_get's strings are reused */
    bool selected;
    int passed, failed;
} variant_state;

typedef struct runner {
    uint64_t seed;
    const char *filter;       /* --variant, or NULL */
    int cases;                /* random cases */
    int64_t only_case;        /* --case N, or -1 */
    const shape_set *shapes;
    bool verbose;
    variant_state *vs;
    int nv;
    int api_passed, api_failed; /* checks that belong to no variant */
} runner;

/* "replay: conformance --seed N [--reduced] [--variant NAME] [--case I]" */
static void replay_hint(const runner *rn, const char *variant, int case_index, char *buf,
                        size_t len)
{
    int used = snprintf(buf, len, "replay: conformance --seed %" PRIu64 "%s", rn->seed,
                        rn->shapes == &shape_sets[1] ? " --reduced" : "");
    if (variant && used >= 0 && (size_t)used < len)
        used += snprintf(buf + used, len - (size_t)used, " --variant %s", variant);
    if (case_index >= 0 && used >= 0 && (size_t)used < len)
        snprintf(buf + used, len - (size_t)used, " --case %d", case_index);
}

static void record(runner *rn, variant_state *vs, bool ok)
{
    if (vs) {
        vs->passed += ok;
        vs->failed += !ok;
    } else {
        rn->api_passed += ok;
        rn->api_failed += !ok;
    }
}

static void report_case(runner *rn, variant_state *vs, const test_case *c, const run_result *res)
{
    record(rn, vs, res->ok);
    if (res->ok && !rn->verbose)
        return;
    char problem[768], why[512], replay[160];
    describe_case(c, problem, sizeof problem);
    if (res->message[0]) {
        snprintf(why, sizeof why, "%s", res->message);
    } else {
        int n = snprintf(why, sizeof why,
                         "max_abs=%.3g max_rel=%.3g tol=%.3g (S=%.3g M=%.3g |O*|=%.3g)"
                         " nan_mismatch=%" PRId64 " guard_writes=%" PRId64
                         " unwritten=%" PRId64 " empty_row_nonzero=%" PRId64, res->m.max_abs,
                         res->m.max_rel, res->tolerance, c->logit_max, c->abs_max, c->ref_max,
                         res->m.nan_mismatch, res->guard_bad, res->unwritten,
                         res->empty_nonzero);
        if (res->guard_bad && n >= 0 && (size_t)n < sizeof why)
            n += snprintf(why + n, sizeof why - (size_t)n, " first_guard_write=o[%" PRId64 "]",
                          res->guard_first);
        if (res->repeated && n >= 0 && (size_t)n < sizeof why)
            n += snprintf(why + n, sizeof why - (size_t)n, " repeat_differs=%" PRId64,
                          res->repeat_differs);
        if (res->inputs_changed && n >= 0 && (size_t)n < sizeof why)
            snprintf(why + n, sizeof why - (size_t)n, " INPUTS CHANGED");
    }
    if (!res->ok) {
        replay_hint(rn, vs->info.name, c->index, replay, sizeof replay);
        printf("FAILED %s [%s] %s params=%s: %s; %s\n", vs->info.name, c->name, problem,
               res->params, why, replay);
    } else {
        printf("ok %s [%s] %s params=%s: max_abs=%.3g max_rel=%.3g tol=%.3g (S=%.3g M=%.3g "
               "|O*|=%.3g)%s\n", vs->info.name, c->name, problem, res->params, res->m.max_abs,
               res->m.max_rel, res->tolerance, c->logit_max, c->abs_max, c->ref_max,
               res->repeated ? " repeated: same bits" : "");
    }
}

/* Runs every selected supported variant on a case; threads < 0: drawn per run. */
static void run_on_selected(runner *rn, test_case *c, int threads)
{
    for (int i = 0; i < rn->nv; i++) {
        variant_state *vs = &rn->vs[i];
        if (!vs->selected || !vs->info.supported)
            continue;
        run_result res;
        run_case(&vs->info, c, threads, CORRUPT_NONE, &res);
        report_case(rn, vs, c, &res);
    }
}

static void run_random_cases(runner *rn)
{
    for (int i = 0; i < rn->cases; i++) {
        if (rn->only_case >= 0 && i != rn->only_case)
            continue;
        test_case c;
        make_random_case(&c, rn->seed, i, rn->shapes);
        run_on_selected(rn, &c, -1);
        case_free(&c);
    }
}

/* Checks a named case's oracle output shows what the case is built to test. */
static bool edge_case_is_sound(const edge_case *e, const test_case *c)
{
    switch (e->expect) {
    case EXPECT_ANY: return true;
    case EXPECT_EMPTY_ROWS:
        return c->empty_rows > 0 && c->empty_rows < c->p.batch * c->p.heads_q * c->p.len_q;
    case EXPECT_NAN_AND_FINITE_ROWS: return c->nan_rows > 0 && c->finite_rows > 0;
    case EXPECT_NO_NAN: return c->nan_rows == 0;
    }
    return false;
}

static void run_edge_cases(runner *rn)
{
    for (int i = 0; i < COUNT(edge_cases); i++) {
        const edge_case *e = &edge_cases[i];
        rng r = rng_seeded(rn->seed, 0x100000000u + (uint64_t)i);
        test_case c;
        e->build(&c, &r);
        snprintf(c.name, sizeof c.name, "edge: %s", e->name);
        case_finish(&c);
        if (!edge_case_is_sound(e, &c)) {
            printf("FAILED [%s]: the case is built wrong (empty rows %" PRId64
                   ", NaN rows %" PRId64 ", finite rows %" PRId64 ")\n", c.name, c.empty_rows,
                   c.nan_rows, c.finite_rows);
            record(rn, NULL, false);
        } else { /* one thread, and four (key blocks split for decode) */
            run_on_selected(rn, &c, 1);
            run_on_selected(rn, &c, 4);
        }
        case_free(&c);
    }
}

/* ---- invalid problems -------------------------------------------------------------------- */

typedef struct invalid_args {
    attn_problem p;
    const attn_problem *problem; /* &p, or NULL */
    const float *q, *k, *v;
    float *o;
    int32_t kv_lens[2];
    float mask[5 * 7];
} invalid_args;

typedef struct invalid_check {
    const char *name;
    attn_status expect;
    void (*mutate)(invalid_args *a);
} invalid_check;

static void inv_batch_zero(invalid_args *a) { a->p.batch = 0; }
static void inv_heads_q_zero(invalid_args *a) { a->p.heads_q = 0; }
static void inv_heads_kv_zero(invalid_args *a) { a->p.heads_kv = 0; }
static void inv_len_q_zero(invalid_args *a) { a->p.len_q = 0; }
static void inv_len_kv_zero(invalid_args *a) { a->p.len_kv = 0; }
static void inv_head_dim_zero(invalid_args *a) { a->p.head_dim = 0; }
static void inv_batch_negative(invalid_args *a) { a->p.batch = -1; }
static void inv_len_kv_negative(invalid_args *a) { a->p.len_kv = -5; }
static void inv_head_dim_negative(invalid_args *a) { a->p.head_dim = -3; }
static void inv_heads_ratio(invalid_args *a) { a->p.heads_kv = 3; }
static void inv_scale_negative(invalid_args *a) { a->p.scale = -1.0f; }
static void inv_scale_nan(invalid_args *a) { a->p.scale = NAN; }
static void inv_scale_inf(invalid_args *a) { a->p.scale = INFINITY; }
static void inv_scale_minus_inf(invalid_args *a) { a->p.scale = -INFINITY; }
static void inv_kv_lens_above(invalid_args *a)
{
    a->kv_lens[0] = 3;
    a->kv_lens[1] = (int32_t)a->p.len_kv + 1;
    a->p.kv_lens = a->kv_lens;
}
static void inv_kv_lens_negative(invalid_args *a)
{
    a->kv_lens[0] = -1;
    a->kv_lens[1] = 2;
    a->p.kv_lens = a->kv_lens;
}
static void inv_o_rows_overlap(invalid_args *a) { a->p.o.seq = a->p.head_dim - 1; }
static void inv_o_heads_alias(invalid_args *a) { a->p.o.head = 0; }
static void inv_o_batches_alias(invalid_args *a) { a->p.o.batch = 0; }
static void inv_negative_stride(invalid_args *a) { a->p.q.seq = -a->p.head_dim; }
static void inv_mask_stride_short(invalid_args *a)
{
    a->p.mask = a->mask;
    a->p.mask_row_stride = a->p.len_kv - 1;
}
static void inv_mask_stride_negative(invalid_args *a)
{
    a->p.mask = a->mask;
    a->p.mask_row_stride = -1;
}
static void inv_q_null(invalid_args *a) { a->q = NULL; }
static void inv_k_null(invalid_args *a) { a->k = NULL; }
static void inv_v_null(invalid_args *a) { a->v = NULL; }
static void inv_o_null(invalid_args *a) { a->o = NULL; }
static void inv_problem_null(invalid_args *a) { a->problem = NULL; }
static void inv_shape_product(invalid_args *a)
{
    a->p.len_q = a->p.len_kv = INT64_C(1) << 22;
    a->p.head_dim = INT64_C(1) << 20; /* B·Hq·Lq·Lk·d = 2^67 */
}
static void inv_size_overflow(invalid_args *a) { a->p.len_q = INT64_MAX / 2; }
static void inv_extent_bytes(invalid_args *a) { a->p.q.batch = INT64_MAX / 4; }
static void inv_extent_overflow(invalid_args *a) { a->p.k.seq = INT64_MAX / 3; }

static const invalid_check invalid_checks[] = {
    {"batch = 0", ATTN_ERR_INVALID, inv_batch_zero},
    {"heads_q = 0", ATTN_ERR_INVALID, inv_heads_q_zero},
    {"heads_kv = 0", ATTN_ERR_INVALID, inv_heads_kv_zero},
    {"len_q = 0", ATTN_ERR_INVALID, inv_len_q_zero},
    {"len_kv = 0", ATTN_ERR_INVALID, inv_len_kv_zero},
    {"head_dim = 0", ATTN_ERR_INVALID, inv_head_dim_zero},
    {"batch < 0", ATTN_ERR_INVALID, inv_batch_negative},
    {"len_kv < 0", ATTN_ERR_INVALID, inv_len_kv_negative},
    {"head_dim < 0", ATTN_ERR_INVALID, inv_head_dim_negative},
    {"heads_q % heads_kv != 0", ATTN_ERR_INVALID, inv_heads_ratio},
    {"scale < 0", ATTN_ERR_INVALID, inv_scale_negative},
    {"scale NaN", ATTN_ERR_INVALID, inv_scale_nan},
    {"scale +inf", ATTN_ERR_INVALID, inv_scale_inf},
    {"scale -inf", ATTN_ERR_INVALID, inv_scale_minus_inf},
    {"kv_lens > len_kv", ATTN_ERR_INVALID, inv_kv_lens_above},
    {"kv_lens < 0", ATTN_ERR_INVALID, inv_kv_lens_negative},
    {"output rows overlap (o.seq < head_dim)", ATTN_ERR_INVALID, inv_o_rows_overlap},
    {"output heads alias (o.head = 0)", ATTN_ERR_INVALID, inv_o_heads_alias},
    {"output batches alias (o.batch = 0)", ATTN_ERR_INVALID, inv_o_batches_alias},
    {"negative stride", ATTN_ERR_INVALID, inv_negative_stride},
    {"mask_row_stride < len_kv", ATTN_ERR_INVALID, inv_mask_stride_short},
    {"mask_row_stride < 0", ATTN_ERR_INVALID, inv_mask_stride_negative},
    {"q NULL", ATTN_ERR_INVALID, inv_q_null},
    {"k NULL", ATTN_ERR_INVALID, inv_k_null},
    {"v NULL", ATTN_ERR_INVALID, inv_v_null},
    {"o NULL", ATTN_ERR_INVALID, inv_o_null},
    {"problem NULL", ATTN_ERR_INVALID, inv_problem_null},
    {"B*Hq*Lq*Lk*d overflows", ATTN_ERR_OVERFLOW, inv_shape_product},
    {"len_q near INT64_MAX", ATTN_ERR_OVERFLOW, inv_size_overflow},
    {"tensor bytes exceed PTRDIFF_MAX", ATTN_ERR_OVERFLOW, inv_extent_bytes},
    {"tensor extent overflows", ATTN_ERR_OVERFLOW, inv_extent_overflow},
};

/* Runs `name` on a refused problem and checks the status, the message and that the output
 * stayed untouched. */
static bool expect_refusal(runner *rn, const char *name, const char *check,
                           const invalid_args *a, const attn_params *params, attn_status expect,
                           out_buffer *ob)
{
    out_fill_sentinel(ob);
    attn_error err;
    memset(&err, 0, sizeof err);
    attn_status status = ATTN_OK;
    char context[256];
    snprintf(context, sizeof context, "%s [invalid: %s]", name ? name : "(null)", check);
    const int sig = guarded_run(context, name, a->problem, params, a->q, a->k, a->v, a->o, &err,
                                &status, NULL);
    const bool untouched = out_untouched(ob);
    const bool ok = !sig && status == expect && err.status == expect && err.message[0] &&
                    untouched;
    if (!ok || rn->verbose) {
        char replay[160];
        replay_hint(rn, name, -1, replay, sizeof replay);
        printf("%s %s [invalid: %s]: expected %s, got %s (message \"%s\")%s%s; %s\n",
               ok ? "ok" : "FAILED", name ? name : "(null)", check, attn_status_string(expect),
               sig ? strsignal(sig) : attn_status_string(status), err.message,
               untouched ? "" : ", output written", err.status == status ? "" : ", err.status differs",
               replay);
    }
    return ok;
}

static void invalid_base(invalid_args *a, const float *q, const float *k, const float *v,
                         float *o)
{
    memset(a, 0, sizeof *a);
    attn_problem_init(&a->p, 2, 4, 2, 5, 7, 8);
    a->problem = &a->p;
    a->q = q;
    a->k = k;
    a->v = v;
    a->o = o;
    for (int e = 0; e < COUNT(a->mask); e++)
        a->mask[e] = 0.5f;
}

static void run_invalid_checks(runner *rn)
{
    /* Inputs sized for the base problem; the invalid ones are refused before any access. */
    invalid_args a;
    attn_problem_init(&a.p, 2, 4, 2, 5, 7, 8);
    float *q = checked_alloc(2 * 4 * 5 * 8, sizeof(float));
    float *kv = checked_alloc(2 * 2 * 7 * 8, sizeof(float));
    out_buffer ob;
    out_init(&ob, 2 * 4 * 5 * 8);
    for (int i = 0; i < rn->nv; i++) {
        variant_state *vs = &rn->vs[i];
        if (!vs->selected)
            continue;
        if (!vs->info.supported) {
            /* It must be refused as unsupported, with a message, without writing. */
            invalid_base(&a, q, kv, kv, ob.o);
            record(rn, vs, expect_refusal(rn, vs->info.name, "unsupported on this CPU", &a,
                                          NULL, ATTN_ERR_UNSUPPORTED, &ob));
            continue;
        }
        for (int j = 0; j < COUNT(invalid_checks); j++) {
            invalid_base(&a, q, kv, kv, ob.o);
            invalid_checks[j].mutate(&a);
            record(rn, vs, expect_refusal(rn, vs->info.name, invalid_checks[j].name, &a, NULL,
                                          invalid_checks[j].expect, &ob));
        }
        /* Parameters out of range, not a multiple, or the wrong count. */
        for (int j = 0; j < vs->info.param_count; j++) {
            const attn_param_info *d = &vs->info.params[j];
            const int64_t bad[3] = {(int64_t)d->max + 1, (int64_t)d->min - 1,
                                    d->multiple_of > 1 ? (int64_t)d->min + 1 : INT64_MIN};
            const char *what[3] = {"above max", "below min", "not a multiple"};
            for (int t = 0; t < 3; t++) {
                if (bad[t] < INT32_MIN || bad[t] > INT32_MAX)
                    continue;
                invalid_base(&a, q, kv, kv, ob.o);
                attn_params params;
                attn_error err;
                if (attn_variant_default_params(vs->info.name, &a.p, &params, &err) != ATTN_OK) {
                    printf("FAILED %s: default parameters: %s\n", vs->info.name, err.message);
                    record(rn, vs, false);
                    continue;
                }
                params.value[j] = (int32_t)bad[t];
                char check[96];
                snprintf(check, sizeof check, "param %s=%" PRId64 " (%s)", d->name, bad[t],
                         what[t]);
                record(rn, vs, expect_refusal(rn, vs->info.name, check, &a, &params,
                                              ATTN_ERR_INVALID, &ob));
            }
        }
        if (vs->info.param_count > 0 && vs->info.param_count < ATTN_MAX_PARAMS) {
            invalid_base(&a, q, kv, kv, ob.o);
            attn_params params;
            attn_variant_default_params(vs->info.name, &a.p, &params, NULL);
            params.count++;
            record(rn, vs, expect_refusal(rn, vs->info.name, "one parameter too many", &a,
                                          &params, ATTN_ERR_INVALID, &ob));
        }
        /* Thread counts outside [0, ATTN_MAX_THREADS]. */
        const int32_t bad_threads[2] = {-1, ATTN_MAX_THREADS + 1};
        for (int t = 0; t < 2; t++) {
            invalid_base(&a, q, kv, kv, ob.o);
            attn_params params;
            attn_variant_default_params(vs->info.name, &a.p, &params, NULL);
            params.threads = bad_threads[t];
            char check[64];
            snprintf(check, sizeof check, "threads = %d", bad_threads[t]);
            record(rn, vs, expect_refusal(rn, vs->info.name, check, &a, &params,
                                          ATTN_ERR_INVALID, &ob));
        }
    }
    /* Variant names: unknown, and NULL. */
    invalid_base(&a, q, kv, kv, ob.o);
    record(rn, NULL, expect_refusal(rn, "no-such-variant", "unknown variant name", &a, NULL,
                                    ATTN_ERR_UNKNOWN_VARIANT, &ob));
    record(rn, NULL, expect_refusal(rn, NULL, "NULL variant name", &a, NULL,
                                    ATTN_ERR_UNKNOWN_VARIANT, &ob));
    free(q);
    free(kv);
    free(ob.base);
}

/* The dispatch agrees with the CPU: a variant is supported exactly when every ISA bit it
 * needs is available, and one that ATTN_DISABLE_ISA turned off says so. */
static void check_dispatch(runner *rn)
{
    const attn_cpu *cpu = attn_cpu_get();
    const char *env = getenv("ATTN_DISABLE_ISA");
    char isa[256], disabled[256];
    attn_isa_format(cpu->isa, isa, sizeof isa);
    attn_isa_format(cpu->isa_detected & ~cpu->isa, disabled, sizeof disabled);
    printf("conformance: cpu isa %s", isa[0] ? isa : "(baseline)");
    if (env)
        printf("; ATTN_DISABLE_ISA=%s turned off %s", env, disabled[0] ? disabled : "nothing");
    printf("\n");
    for (int i = 0; i < rn->nv; i++) {
        variant_state *vs = &rn->vs[i];
        if (!vs->selected)
            continue;
        uint32_t needs = 0;
        char why[200];
        bool ok = attn_isa_parse_disable(vs->isa, &needs, why, sizeof why);
        const uint32_t missing = needs & ~cpu->isa;
        const bool turned_off = missing && !(missing & ~cpu->isa_detected);
        ok = ok && vs->info.supported == !missing;
        if (ok && turned_off)
            ok = strstr(vs->why_not, "ATTN_DISABLE_ISA") != NULL;
        if (!ok)
            printf("FAILED %s [dispatch]: needs '%s', reported %s (%s)\n", vs->info.name,
                   vs->isa, vs->info.supported ? "supported" : "unsupported", vs->why_not);
        record(rn, vs, ok);
    }
}

/* ---- the self-test: corruptions that must be caught --------------------------------------- */

static void crash_segv(void)
{
    /* A read from an inaccessible page: a real fault, not raise(). */
    const long page = sysconf(_SC_PAGESIZE);
    volatile char *no_access = mmap(NULL, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
                                    -1, 0);
    if (no_access == MAP_FAILED)
        return;
    (void)no_access[0];
}

static void crash_ill(void) { raise(SIGILL); }
static void crash_fpe(void) { raise(SIGFPE); }

static int selftest(runner *rn)
{
    const variant_state *vs = NULL;
    for (int i = 0; i < rn->nv && !vs; i++)
        if (rn->vs[i].selected && rn->vs[i].info.supported)
            vs = &rn->vs[i];
    if (!vs) {
        printf("selftest: no supported variant selected\n");
        return 1;
    }
    /* A padded output (row gaps) with rows that see no key (causal, Lq > Lk). */
    rng r = rng_seeded(rn->seed, 0x200000000u);
    test_case c;
    case_begin(&c, rng_next(&r), 2, 4, 2, 31, 17, 17);
    snprintf(c.name, sizeof c.name, "selftest");
    c.p.causal = true;
    case_set_layout(&c, LAYOUT_PADDED, false, &r);
    case_alloc_inputs(&c, 1.0f, &r);
    case_finish(&c);

    static const struct { corruption what; const char *name; } damages[] = {
        {CORRUPT_NONE, "none (must pass)"},
        {CORRUPT_OUTPUT, "one output element off by 0.5"},
        {CORRUPT_OUTPUT_NAN, "one output element NaN"},
        {CORRUPT_EMPTY_ROW, "1e-30 in a row without keys"},
        {CORRUPT_UNWRITTEN, "one output element not written"},
        {CORRUPT_GUARD_BEFORE, "write just before the output"},
        {CORRUPT_GUARD_AFTER, "write just after the output"},
        {CORRUPT_ROW_GAP, "write between two padded rows"},
        {CORRUPT_INPUT, "an input changed"},
    };
    int missed = 0;
    for (int i = 0; i < COUNT(damages); i++) {
        run_result res;
        run_case(&vs->info, &c, 1, damages[i].what, &res);
        const bool want_ok = damages[i].what == CORRUPT_NONE;
        const bool right = res.ok == want_ok && !res.signal && res.status == ATTN_OK;
        missed += !right;
        printf("selftest %s: %-32s -> %s (max_rel=%.3g tol=%.3g nan_mismatch=%" PRId64
               " guard_writes=%" PRId64 " unwritten=%" PRId64 " empty_row_nonzero=%" PRId64
               "%s)\n", vs->info.name, damages[i].name,
               right ? (want_ok ? "passed" : "caught") : (want_ok ? "FAILED" : "MISSED"),
               res.m.max_rel, res.tolerance, res.m.nan_mismatch, res.guard_bad, res.unwritten,
               res.empty_nonzero, res.inputs_changed ? " inputs_changed" : "");
    }
    case_free(&c);

    static const struct { crash_test_fn fn; int sig; const char *name; } crashes[] = {
        {crash_segv, SIGSEGV, "read of a PROT_NONE page"},
        {crash_ill, SIGILL, "SIGILL"},
        {crash_fpe, SIGFPE, "SIGFPE"},
    };
    for (int i = 0; i < COUNT(crashes); i++) {
        attn_status status = ATTN_OK;
        const int sig = guarded_run("selftest", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, &status,
                                    crashes[i].fn);
        missed += sig != crashes[i].sig;
        printf("selftest crash: %-32s -> %s\n", crashes[i].name,
               sig == crashes[i].sig ? "caught" : "MISSED");
    }
    printf("selftest: %s\n", missed ? "FAILED" : "every corruption was caught");
    return missed ? 1 : 0;
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: conformance [options]\n"
            "  --seed N            replay a run (default: a new seed, printed first)\n"
            "  --variant NAME      test only that variant (repeatable: no; one name)\n"
            "  --cases N           number of random cases (default: %d full, %d reduced)\n"
            "  --case N            run only random case N (with --seed, to replay a failure)\n"
            "  --reduced           the reduced shape set (sanitizer builds)\n"
            "  --selftest-broken   corrupt results on purpose; pass only if all are caught\n"
            "  -v                  print every case\n",
            shape_sets[0].cases, shape_sets[1].cases);
}

/* Accepts "--name VALUE" and "--name=VALUE"; returns the value or NULL. */
static const char *option_value(const char *name, int argc, char **argv, int *i)
{
    const size_t n = strlen(name);
    if (strncmp(argv[*i], name, n))
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    const long long x = strtoll(s, &end, 10);
    if (!*s || *end || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

int main(int argc, char **argv)
{
    runner rn = {.only_case = -1, .shapes = &shape_sets[0], .cases = -1};
    bool seed_given = false, self = false;
    for (int i = 1; i < argc; i++) {
        const char *val;
        int64_t x;
        if ((val = option_value("--seed", argc, argv, &i))) {
            char *end;
            rn.seed = strtoull(val, &end, 10);
            if (!*val || *end) {
                fprintf(stderr, "conformance: bad seed '%s'\n", val);
                return 2;
            }
            seed_given = true;
        } else if ((val = option_value("--variant", argc, argv, &i))) {
            rn.filter = val;
        } else if ((val = option_value("--cases", argc, argv, &i))) {
            if (!parse_int(val, 0, 1000000, &x)) {
                fprintf(stderr, "conformance: bad --cases '%s'\n", val);
                return 2;
            }
            rn.cases = (int)x;
        } else if ((val = option_value("--case", argc, argv, &i))) {
            if (!parse_int(val, 0, 1000000, &rn.only_case)) {
                fprintf(stderr, "conformance: bad --case '%s'\n", val);
                return 2;
            }
        } else if (!strcmp(argv[i], "--reduced")) {
            rn.shapes = &shape_sets[1];
        } else if (!strcmp(argv[i], "--selftest-broken")) {
            self = true;
        } else if (!strcmp(argv[i], "-v")) {
            rn.verbose = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "conformance: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!seed_given) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rn.seed = (uint32_t)mix64((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec +
                                  ((uint64_t)getpid() << 32));
    }
    if (rn.cases < 0)
        rn.cases = rn.shapes->cases;
    if (rn.only_case >= rn.cases)
        rn.cases = (int)rn.only_case + 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("conformance: seed %" PRIu64 "\n", rn.seed);
    crash_seed = rn.seed;

    rn.nv = attn_variant_count();
    rn.vs = checked_alloc((size_t)(rn.nv > 0 ? rn.nv : 1), sizeof *rn.vs);
    int selected = 0;
    for (int i = 0; i < rn.nv; i++) {
        variant_state *vs = &rn.vs[i];
        attn_variant_get(i, &vs->info);
        snprintf(vs->isa, sizeof vs->isa, "%s", vs->info.isa);
        snprintf(vs->why_not, sizeof vs->why_not, "%s", vs->info.why_not);
        vs->info.isa = vs->isa;
        vs->info.why_not = vs->why_not;
        vs->selected = !rn.filter || !strcmp(rn.filter, vs->info.name);
        selected += vs->selected;
    }
    if (!selected) {
        fprintf(stderr, "conformance: no variant named '%s'\n", rn.filter);
        return 2;
    }
    printf("conformance: shapes %s, %d random cases, %d edge cases\n", rn.shapes->name,
           rn.cases, COUNT(edge_cases));
    install_crash_handlers();
    if (self) {
        const int status = selftest(&rn);
        free(rn.vs);
        return status;
    }

    check_dispatch(&rn);
    run_invalid_checks(&rn);
    if (rn.only_case < 0)
        run_edge_cases(&rn);
    run_random_cases(&rn);

    int passed = rn.api_passed, failed = rn.api_failed;
    for (int i = 0; i < rn.nv; i++) {
        const variant_state *vs = &rn.vs[i];
        if (!vs->selected)
            continue;
        printf("variant %s: %d cases passed, %d failed", vs->info.name, vs->passed, vs->failed);
        if (!vs->info.supported)
            printf(" (unsupported here: %s; checked that it is refused)", vs->why_not);
        printf("\n");
        passed += vs->passed;
        failed += vs->failed;
    }
    printf("api: %d checks passed, %d failed\n", rn.api_passed, rn.api_failed);
    printf("total: %d passed, %d failed%s", passed, failed, failed ? "; " : "\n");
    if (failed) {
        char replay[160];
        replay_hint(&rn, rn.filter, -1, replay, sizeof replay);
        printf("%s\n", replay);
    }
    free(rn.vs);
    return failed ? 1 : 0;
}
