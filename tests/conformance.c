/* conformance.c — every variant against the float64 oracle, in the spirit of dav1d's checkasm.
 *
 * For each registered variant this CPU supports (read from the registry, never by name) it runs
 * seeded random problems drawn from the shape tables below, named edge cases and invalid
 * problems — with default or random parameters and 1 to 4 threads — in every input type the
 * variant declares (attn_variant_info.dtypes: f32, bf16, f16). A case is generated in float32;
 * for a half type Q, K and V (not the mask) are rounded to it with attn_convert, and the oracle
 * runs on the widened rounded values — further rounded to bf16 for a variant whose
 * compute_dtype is bf16 — so the declared tolerance measures the algorithm, not the input
 * rounding (see half_every for which cases run in which type, and LOGIT_ROUNDINGS for the
 * bf16-compute floor). Some half runs ask for a half output (out_dtype = dtype), widened before
 * the comparison, with the output's unit roundoff added to the tolerance
 * (attn_variant_tolerance). It checks:
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
 *   - a signal (SIGILL, SIGSEGV, SIGBUS, SIGFPE) during a call is a FAILED line, not a crash;
 *   - on x86, the call returns with the upper halves of ymm/zmm0-15 unused (XGETBV(1)): legacy
 *     SSE code after it would otherwise run several times slower.
 * Invalid problems must be refused with the right status and a message, the output untouched;
 * a variant this CPU cannot run (or that ATTN_DISABLE_ISA turns off) must be refused with
 * ATTN_ERR_UNSUPPORTED, and so must an input type it does not declare, with a message naming the
 * types.
 *
 * The seed is printed first; --seed N replays a run exactly (every random case draws from its
 * own generator seeded by the run seed and its index, so --variant, --dtype, --case and --edge
 * do not change it); every FAILED line ends with the command that replays it. At the end, one
 * line per variant ("variant NAME: N cases passed, M failed", which scripts grep) and under it
 * one line per input type. --selftest-broken corrupts results on purpose (float32 and half
 * outputs) and passes only if every corruption is caught. */
#include "attn.h"
#include "cpu.h"
#include "oracle.h"
#include "rng.h"

#include <inttypes.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
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
 * crossed. Full: ~8 s for 8 variants and the half types on 2 cores (~6 s float32 only);
 * reduced: ~10 s under ASan+UBSan. */
typedef struct shape_set {
    const char *name;
    int cases;
    double max_cost;
} shape_set;

static const shape_set shape_sets[] = {
    {"full", 400, 3.0e6},
    {"reduced", 120, 1.0e6},
};

/* ---- random numbers: SplitMix64 of rng.h ------------------------------------------------- */

/* A generator with its own state: one per case, seeded from (run seed, case). */
typedef struct rng {
    uint64_t state;
} rng;

static uint64_t rng_next(rng *r) { return attn_rng_next(&r->state); }

static rng rng_seeded(uint64_t seed, uint64_t stream)
{
    return (rng){attn_rng_mix(seed ^ attn_rng_mix(stream + 0x632be59bd9b4e019u))};
}

/* Uniform in [0, 1). */
static double rng_unit(rng *r) { return attn_rng_unit(&r->state); }

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

/* Hashes 8 bytes at a time (then the tail): each step is a bijection of the state, so any one
 * changed word changes the result. For checking that inputs stay unchanged, fast. */
static uint64_t hash_words(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3u;
    }
    return hash_bytes(h, b + i, n - i);
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

/* The output sentinel is a signalling NaN of the output's type: arithmetic and the harness's
 * conversions quieten NaNs, so no value a variant computes can carry these bits. */
#define SENTINEL_BITS 0x7fbadbadu
#define SENTINEL_BF16 0x7fa5u
#define SENTINEL_F16 0x7d5bu
/* Elements of guard band before and after the output. */
#define GUARD 64

/* ---- test cases -------------------------------------------------------------------------- */

typedef enum layout_kind { LAYOUT_BHLD, LAYOUT_BLHD, LAYOUT_PADDED } layout_kind;
static const char *const layout_names[] = {"bhld", "blhd", "padded"};

typedef struct test_case {
    char name[96];
    int index;              /* random case number, or -1 for a named case */
    int edge;               /* named case number, or -1 for a random case */
    uint64_t seed;          /* this case's own seed (random parameters derive from it) */
    attn_problem p;         /* float32 in and out; a typed_case sets the element types */
    layout_kind layout;
    bool broadcast_kv;      /* K and V batch strides 0 */
    int32_t *kv_lens;
    float *mask;
    int64_t mask_elements;
    float *q, *k, *v;       /* the case as generated, in float32 */
    int64_t extent[4];      /* elements of q, k, v, o */
    unsigned char *owned;   /* [extent o]: 1 where an output element lives */
    int64_t empty_rows;     /* rows that attend to no key */
} test_case;

/* What the oracle says on the inputs a variant computes from, and the floor under the declared
 * tolerance (see LOGIT_ROUNDINGS) with what sets it. */
typedef struct reference {
    double *out;            /* the oracle's output, [B, Hq, Lq, d] */
    int64_t nan_rows, finite_rows; /* rows of it with / without NaN */
    double logit_max;       /* S: max over attended pairs of scale·Σ|q·k| + |mask| */
    double abs_max;         /* M: max over outputs of Σ_j p_j·|v_j| */
    double spread_max;      /* R: max over outputs of sqrt(Σ_j (p_j·v_j)²) (bf16 compute) */
    double ref_max;         /* ||O*||∞ */
    double floor;
} reference;

/* Which reference a variant is held to: its inputs as read (REF_READ) or, for a variant whose
 * compute_dtype is bf16, additionally rounded to bf16 (REF_BF16). */
enum { REF_READ, REF_BF16, REF_COUNT };

/* A case in one input type: Q, K and V rounded to it in buffers of its elements with the exact
 * extents (gaps of padded layouts hold NaN, as in float32), their widened values (what the
 * oracle reads), and the references, built when a variant needs them. For float32 the
 * buffers are the case's own. */
typedef struct typed_case {
    attn_dtype t;
    attn_problem p;         /* the case's problem with dtype = t and its out_dtype */
    void *q, *k, *v;
    float *wq, *wk, *wv;
    uint64_t input_hash;    /* of the typed inputs, the mask and kv_lens */
    bool have_ref[REF_COUNT];
    reference ref[REF_COUNT];
} typed_case;

static void case_begin(test_case *c, uint64_t seed, int64_t batch, int64_t hq, int64_t hkv,
                       int64_t lq, int64_t lk, int64_t d)
{
    memset(c, 0, sizeof *c);
    c->index = -1;
    c->edge = -1;
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
 * fifth of the floor, and never above 0.2 of the tolerance used.
 *
 * Half-precision inputs change nothing here: the oracle reads the rounded inputs, which the
 * variant reads exactly, and it computes in float32 as before. A half output adds its unit
 * roundoff (|O - half(O)| <= u·||O||∞), as attn_variant_tolerance() does.
 *
 * bf16 compute (compute_dtype = ATTN_BF16: Q, K, V and the weights P rounded to bf16, float32
 * accumulation). The reference reads Q, K, V rounded to bf16, so those roundings cost nothing;
 * bf16 products are exact in float32, so the score and sum terms above still hold. What is new
 * is the rounding of each weight, a relative δ_j with |δ_j| <= u = 2^-8: it moves output c by
 * Σ_j p_j·δ_j·v_j (normalised by the exact sum of the weights) or Σ_j p_j·δ_j·(v_j - O_c) (by
 * the sum of the rounded ones). Its worst case, u·max(Σ_j p_j·|v_j|, Σ_j p_j·|v_j - O_c|), is
 * about u·M: a floor of 2^-8·M/||O*||∞ on every case would swallow any declared tolerance. But
 * round-to-nearest errors of different weights are independent with a standard deviation of at
 * most u/√3, so the sum's is at most u/√3·R_c with R_c the larger of ||p·v||₂ and
 * ||p·(v - O_c)||₂, which is ~M/√(keys) for a row spread over many keys. The floor adds
 * min(WEIGHT_SIGMAS·R_c/√3, worst case)·2^-8 / ||O*||∞ (max over outputs c): far under a bf16
 * tolerance for ordinary rows, u·|v|/||O*||∞ at most for a row that sees one key, and rising
 * only with cancellation (M ≫ ||O*||∞), as the float32 sum term does. WEIGHT_SIGMAS = 6: over
 * the ~10^7 outputs of a run a larger excursion is unlikely (p ~ 10^-9 each) for a correct
 * variant, while a weight rounded the wrong way (truncation, a bias) is systematic and not
 * covered: that error belongs in the variant's declared tolerance. Measured on amx_bf16 and
 * avx512_bf16 (declared 1e-2; 2 seeds, f32 and bf16 inputs, ~1070 runs each): the floor set
 * the tolerance in 3-8% of the runs (cancelling sums, M/||O*||∞ up to 100), where errors
 * reached 0.021; no error exceeded 0.4 of the tolerance used. */
#define LOGIT_ROUNDINGS 8.0
#define SUM_ROUNDINGS 16.0
#define WEIGHT_SIGMAS 6.0

/* S, M and (weights) R of a reference whose oracle output is already in ref->out, in one
 * float64 pass over the attended pairs. Rows with NaN and rows without keys are skipped. */
static void reference_conditioning(const attn_problem *p, const float *q, const float *k,
                                   const float *v, bool weights, reference *ref)
{
    const int64_t d = p->head_dim, group = p->heads_q / p->heads_kv;
    const double scale = attn_problem_scale(p);
    double *w = checked_alloc((size_t)p->len_kv, sizeof *w);
    double *acc = checked_alloc((size_t)(4 * d), sizeof *acc);
    double *abs_v = acc, *sq = acc + d, *cabs = acc + 2 * d, *csq = acc + 3 * d;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->heads_q; h++)
            for (int64_t i = 0; i < p->len_q; i++) {
                const float *qi = q + b * p->q.batch + h * p->q.head + i * p->q.seq;
                const float *m = attn_mask_row(p, i);
                const double *o = ref->out + ((b * p->heads_q + h) * p->len_q + i) * d;
                const int64_t n = attn_key_limit(p, b, i);
                double max = -INFINITY;
                bool nan = false;
                for (int64_t j = 0; j < n; j++) {
                    w[j] = -INFINITY;
                    if (m && m[j] == -INFINITY)
                        continue;
                    const float *kj = k + b * p->k.batch + h / group * p->k.head + j * p->k.seq;
                    /* Four partial sums: the chains of a single sum would bound the speed. */
                    double dot[4] = {0, 0, 0, 0}, mag[4] = {0, 0, 0, 0};
                    int64_t e = 0;
                    for (; e + 4 <= d; e += 4)
                        for (int u = 0; u < 4; u++) {
                            const double x = (double)qi[e + u] * kj[e + u];
                            dot[u] += x;
                            mag[u] += fabs(x);
                        }
                    for (; e < d; e++) {
                        const double x = (double)qi[e] * kj[e];
                        dot[0] += x;
                        mag[0] += fabs(x);
                    }
                    w[j] = scale * ((dot[0] + dot[1]) + (dot[2] + dot[3])) + (m ? m[j] : 0.0);
                    const double s =
                        scale * ((mag[0] + mag[1]) + (mag[2] + mag[3])) + (m ? fabs(m[j]) : 0.0);
                    if (s > ref->logit_max)
                        ref->logit_max = s;
                    if (isnan(w[j]))
                        nan = true;
                    else if (w[j] > max)
                        max = w[j];
                }
                if (nan || max == -INFINITY)
                    continue;
                memset(acc, 0, (size_t)(4 * d) * sizeof *acc);
                double sum = 0;
                for (int64_t j = 0; j < n; j++) {
                    if (w[j] == -INFINITY)
                        continue;
                    const double e = exp(w[j] - max);
                    const float *vj = v + b * p->v.batch + h / group * p->v.head + j * p->v.seq;
                    sum += e;
                    if (!weights) {
                        for (int64_t c = 0; c < d; c++)
                            abs_v[c] += e * fabs((double)vj[c]);
                        continue;
                    }
                    for (int64_t c = 0; c < d; c++) {
                        const double x = e * vj[c], y = e * (vj[c] - o[c]);
                        abs_v[c] += fabs(x);
                        sq[c] += x * x;
                        cabs[c] += fabs(y);
                        csq[c] += y * y;
                    }
                }
                for (int64_t c = 0; c < d; c++) {
                    const double mc = abs_v[c] / sum;
                    if (mc > ref->abs_max) /* false for NaN */
                        ref->abs_max = mc;
                    if (!weights)
                        continue;
                    const double r = sqrt(sq[c] > csq[c] ? sq[c] : csq[c]) / sum;
                    const double worst = (abs_v[c] > cabs[c] ? abs_v[c] : cabs[c]) / sum;
                    const double bound = WEIGHT_SIGMAS / sqrt(3.0) * r < worst
                                             ? WEIGHT_SIGMAS / sqrt(3.0) * r : worst;
                    if (bound > ref->spread_max)
                        ref->spread_max = bound;
                }
            }
    free(acc);
    free(w);
}

/* Marks the output's elements and counts the rows without keys. */
static void case_finish(test_case *c)
{
    attn_problem *p = &c->p;
    c->owned = checked_alloc((size_t)c->extent[3], 1);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->heads_q; h++)
            for (int64_t i = 0; i < p->len_q; i++)
                memset(c->owned + b * p->o.batch + h * p->o.head + i * p->o.seq, 1,
                       (size_t)p->head_dim);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0; i < p->len_q; i++)
            c->empty_rows += !row_attends(p, b, i) * p->heads_q;
}

static void case_free(test_case *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->mask);
    free(c->kv_lens);
    free(c->owned);
    memset(c, 0, sizeof *c);
}

static uint64_t typed_input_hash(const test_case *c, const typed_case *tc)
{
    const size_t es = attn_dtype_size(tc->t);
    uint64_t h = 0xcbf29ce484222325u;
    h = hash_words(h, tc->q, (size_t)c->extent[0] * es);
    h = hash_words(h, tc->k, (size_t)c->extent[1] * es);
    h = hash_words(h, tc->v, (size_t)c->extent[2] * es);
    if (c->mask)
        h = hash_words(h, c->mask, (size_t)c->mask_elements * sizeof(float));
    if (c->kv_lens)
        h = hash_words(h, c->kv_lens, (size_t)c->p.batch * sizeof(int32_t));
    return h;
}

/* Rounds n floats to type t (allocated with exactly n elements of it) and widens them back. */
static void *round_to(const float *x, int64_t n, attn_dtype t, float **widened)
{
    void *y = checked_alloc((size_t)n, attn_dtype_size(t));
    attn_convert(x, ATTN_F32, y, t, (size_t)n);
    *widened = checked_alloc((size_t)n, sizeof **widened);
    attn_convert(y, t, *widened, ATTN_F32, (size_t)n);
    return y;
}

/* The case in input type t with output type out (ATTN_F32 or t). */
static void typed_prepare(const test_case *c, attn_dtype t, attn_dtype out, typed_case *tc)
{
    memset(tc, 0, sizeof *tc);
    tc->t = t;
    tc->p = c->p;
    tc->p.dtype = t;
    tc->p.out_dtype = out;
    if (t == ATTN_F32) {
        tc->q = tc->wq = c->q;
        tc->k = tc->wk = c->k;
        tc->v = tc->wv = c->v;
    } else {
        tc->q = round_to(c->q, c->extent[0], t, &tc->wq);
        tc->k = round_to(c->k, c->extent[1], t, &tc->wk);
        tc->v = round_to(c->v, c->extent[2], t, &tc->wv);
    }
    tc->input_hash = typed_input_hash(c, tc);
}

/* The reference `which` of a typed case, computed on first use. */
static const reference *typed_reference(const test_case *c, typed_case *tc, int which)
{
    reference *ref = &tc->ref[which];
    if (tc->have_ref[which])
        return ref;
    const float *q = tc->wq, *k = tc->wk, *v = tc->wv;
    float *bq = NULL, *bk = NULL, *bv = NULL;
    void *tmp[3] = {NULL, NULL, NULL};
    if (which == REF_BF16 && tc->t != ATTN_BF16) { /* bf16 inputs are already bf16 */
        tmp[0] = round_to(q, c->extent[0], ATTN_BF16, &bq);
        tmp[1] = round_to(k, c->extent[1], ATTN_BF16, &bk);
        tmp[2] = round_to(v, c->extent[2], ATTN_BF16, &bv);
        q = bq;
        k = bk;
        v = bv;
    }
    const attn_problem *p = &tc->p;
    const int64_t d = p->head_dim, rows = p->batch * p->heads_q * p->len_q;
    /* bf16 inputs are their own bf16 rounding: the oracle's output is REF_READ's. */
    const reference *same = which == REF_BF16 && tc->t == ATTN_BF16
                                ? typed_reference(c, tc, REF_READ) : NULL;
    memset(ref, 0, sizeof *ref);
    ref->out = checked_alloc((size_t)(rows * d), sizeof *ref->out);
    attn_error err;
    if (same) {
        memcpy(ref->out, same->out, (size_t)(rows * d) * sizeof *ref->out);
    } else if (attn_oracle(p, q, k, v, ref->out, &err) != ATTN_OK) {
        fprintf(stderr, "conformance: internal error, oracle refused case %s (%s): %s\n",
                c->name, attn_dtype_name(tc->t), err.message);
        exit(2);
    }
    for (int64_t r = 0; r < rows; r++) {
        bool nan = false;
        for (int64_t e = 0; e < d; e++) {
            const double x = ref->out[r * d + e];
            nan |= isnan(x);
            if (!isnan(x) && fabs(x) > ref->ref_max)
                ref->ref_max = fabs(x);
        }
        ref->nan_rows += nan;
        ref->finite_rows += !nan;
    }
    reference_conditioning(p, q, k, v, which == REF_BF16, ref);
    if (ref->ref_max > 0)
        ref->floor = ((LOGIT_ROUNDINGS * ref->logit_max + SUM_ROUNDINGS) * 0x1p-24 *
                          ref->abs_max + ref->spread_max * 0x1p-8) / ref->ref_max;
    for (int t = 0; t < 3; t++)
        free(tmp[t]);
    free(bq);
    free(bk);
    free(bv);
    tc->have_ref[which] = true;
    return ref;
}

static void typed_free(typed_case *tc)
{
    if (tc->t != ATTN_F32) {
        free(tc->q);
        free(tc->k);
        free(tc->v);
        free(tc->wq);
        free(tc->wk);
        free(tc->wv);
    }
    for (int r = 0; r < REF_COUNT; r++)
        free(tc->ref[r].out);
    memset(tc, 0, sizeof *tc);
}

static void describe_strides(char *buf, size_t len, const char *name, const attn_strides *s)
{
    snprintf(buf, len, " %s=(%" PRId64 ",%" PRId64 ",%" PRId64 ")", name, s->batch, s->head,
             s->seq);
}

/* The full problem in one line: shape, causal, kv_lens, mask, layout, scale, types. p is the
 * case's problem with its types (a typed_case's). */
static void describe_case(const test_case *c, const attn_problem *p, char *buf, size_t len)
{
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
             " d=%" PRId64 " causal=%d kv_lens=%s mask=%s layout=%s scale=%s dtype=%s out=%s",
             p->batch, p->heads_q, p->heads_kv, p->len_q, p->len_kv, p->head_dim, p->causal,
             lens, mask, layout, scale, attn_dtype_name(p->dtype),
             attn_dtype_name(p->out_dtype));
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

/* What a named case's oracle output must show, so a mistake in building it is seen (in every
 * input type: the checks read the reference on the rounded inputs). */
enum expect {
    EXPECT_ANY,
    EXPECT_EMPTY_ROWS,
    EXPECT_NAN_AND_FINITE_ROWS,
    EXPECT_NO_NAN,
    EXPECT_LARGE_LOGITS, /* no NaN, and logits of magnitude S >= LARGE_LOGIT */
};
#define LARGE_LOGIT 5.0e3

/* A case is built in float32 and then rounded to each input type; build_half, when set, builds
 * it instead for the half types, where the float32 construction would not survive rounding. */
typedef struct edge_case {
    const char *name;
    enum expect expect;
    void (*build)(test_case *c, rng *r);
    void (*build_half)(test_case *c, rng *r);
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

/* The same logits for half inputs. A perturbation of 0.002 on keys of ~10 is below half a bf16
 * or f16 step (0.0625, 0.0078 there): rounded, every key would be the same. Here the keys share
 * elements 0..14 exactly, which give the ~1e4 common part (q ~ 75, k ~ 7.5: all representable
 * in f16, whose largest value is 65504), and differ in element 15 alone, where q is ~1 and k is
 * in [-2, 2]: a spread of O(1) that any rounding keeps. */
static void large_logits_half(test_case *c, rng *r, float sign)
{
    case_begin(c, rng_next(r), 1, 2, 1, 7, 64, 16);
    c->p.scale = 1.0f;
    case_alloc_inputs(c, 1.0f, r);
    const attn_problem *p = &c->p;
    float w[15];
    for (int e = 0; e < 15; e++)
        w[e] = 10.0f * rng_float(r, 0.5f, 1.0f);
    for (int64_t h = 0; h < p->heads_q; h++)
        for (int64_t i = 0; i < p->len_q; i++) {
            float *q = tensor_row(c->q, &p->q, 0, h, i);
            for (int e = 0; e < 15; e++)
                q[e] = sign * rng_float(r, 50.0f, 100.0f);
            q[15] = rng_float(r, 0.5f, 1.0f);
        }
    for (int64_t j = 0; j < p->len_kv; j++) {
        float *k = tensor_row(c->k, &p->k, 0, 0, j);
        memcpy(k, w, sizeof w);
        k[15] = rng_float(r, -2.0f, 2.0f);
    }
}

static void edge_large_positive_logits_half(test_case *c, rng *r)
{
    large_logits_half(c, r, 1.0f);
}
static void edge_large_negative_logits_half(test_case *c, rng *r)
{
    large_logits_half(c, r, -1.0f);
}

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

/* A NaN in the additive mask is a NaN in that score, as one from Q or K: it reaches its row
 * (in every batch and head, the mask being broadcast) and nothing else; a NaN at a key the
 * row may not see (causal) reaches nothing. The mask rows are padded (stride 43). */
static void edge_nan_in_mask(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 2, 31, 40, 17);
    c->p.causal = true; /* row i sees keys j <= i + 9 */
    case_set_mask(c, 43, -2.0f, 2.0f, 0.05, 0.0, r);
    c->mask[5 * 43 + 3] = NAN;   /* row 5 sees key 3 */
    c->mask[20 * 43 + 35] = NAN; /* row 20 sees keys up to 29 only */
    case_alloc_inputs(c, 1.0f, r);
}

/* The same in decode rows (Lq = 1, the decode paths and, on several threads, split keys): the
 * batch whose kv_lens reaches the NaN column is NaN, the other is not. */
static void edge_nan_in_mask_decode(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 8, 2, 1, 1500, 64);
    case_set_kv_lens(c, (const int32_t[]){1500, 700});
    case_set_mask(c, 0, -2.0f, 2.0f, 0.0, 0.0, r);
    c->mask[900] = NAN;
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_decode_long(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 8, 2, 1, 4099, 128);
    c->p.causal = true;
    case_set_kv_lens(c, (const int32_t[]){4099, 1031});
    case_alloc_inputs(c, 1.0f, r);
}

/* Decode rows of different key limits in one group (Lq = 4 causal, 2 heads per kv head: the
 * decode paths' row tiles): a NaN in the V row of the last key reaches only the last query row
 * of each head of its group, not the rows that stop one key short. */
static void edge_nan_in_v_decode_causal(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 4, 2, 4, 37, 17);
    c->p.causal = true;
    case_alloc_inputs(c, 1.0f, r);
    tensor_row(c->v, &c->p.v, 0, 1, 36)[3] = NAN;
}

/* GQA decode tiles (rows of a group sharing each K and V load): 8 query heads per kv head (two
 * full tiles), odd head dim and key count (the vector and key-step tails), padded strides, and
 * per-batch key lengths, one of which ends inside a key step. */
static void edge_gqa_decode(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 16, 2, 1, 45, 33);
    case_set_layout(c, LAYOUT_PADDED, false, r);
    case_set_kv_lens(c, (const int32_t[]){45, 19});
    case_alloc_inputs(c, 1.0f, r);
}

/* MQA decode with a group of 6 rows (a tile of 4 and one of 2, or 3 + 3) and 2 query rows:
 * causal, so the rows of a tile see different keys, with a NaN in the V row of the last key
 * that only the last query row of each head sees. */
static void edge_mqa_decode_causal(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 3, 1, 2, 71, 255);
    c->p.causal = true;
    case_set_layout(c, LAYOUT_BLHD, false, r);
    case_alloc_inputs(c, 1.0f, r);
    tensor_row(c->v, &c->p.v, 0, 0, 70)[200] = NAN;
}

/* GQA decode against a single key (the key steps past it read nothing). */
static void edge_gqa_decode_single_key(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 12, 3, 1, 1, 7);
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
    {"all keys masked: causal with Lq > Lk", EXPECT_EMPTY_ROWS, edge_causal_lq_gt_lk, NULL},
    {"all keys masked: kv_lens = 0", EXPECT_EMPTY_ROWS, edge_kv_lens_zero, NULL},
    {"all keys masked: -inf mask row", EXPECT_EMPTY_ROWS, edge_mask_row_all_inf, NULL},
    {"large logits: +1e4 from large inputs", EXPECT_LARGE_LOGITS, edge_large_positive_logits,
     edge_large_positive_logits_half},
    {"large logits: -1e4 from large inputs", EXPECT_LARGE_LOGITS, edge_large_negative_logits,
     edge_large_negative_logits_half},
    {"large logits: scale 5000", EXPECT_LARGE_LOGITS, edge_large_scale, NULL},
    {"large logits: mask values +-1e4", EXPECT_LARGE_LOGITS, edge_large_mask, NULL},
    {"NaN in one K row reaches only rows that see it", EXPECT_NAN_AND_FINITE_ROWS, edge_nan_in_k,
     NULL},
    {"NaN in one Q row reaches only that row", EXPECT_NAN_AND_FINITE_ROWS, edge_nan_in_q, NULL},
    {"NaN in one V element reaches only rows that see it", EXPECT_NAN_AND_FINITE_ROWS,
     edge_nan_in_v, NULL},
    {"NaN in excluded keys (kv_lens, -inf mask) reaches nothing", EXPECT_NO_NAN,
     edge_nan_in_excluded_keys, NULL},
    {"NaN in one mask entry reaches only its row", EXPECT_NAN_AND_FINITE_ROWS, edge_nan_in_mask,
     NULL},
    {"NaN in the mask of decode rows reaches only the batch that sees it",
     EXPECT_NAN_AND_FINITE_ROWS, edge_nan_in_mask_decode, NULL},
    {"decode: Lq = 1, Lk = 4099", EXPECT_ANY, edge_decode_long, NULL},
    {"NaN in V of the last key, causal decode rows (Lq = 4): only rows that see it",
     EXPECT_NAN_AND_FINITE_ROWS, edge_nan_in_v_decode_causal, NULL},
    {"GQA decode: 8 heads per kv head, d = 33, Lk = 45, padded, kv_lens", EXPECT_ANY,
     edge_gqa_decode, NULL},
    {"MQA decode, Lq = 2 causal, d = 255: a NaN V row reaches only rows that see it",
     EXPECT_NAN_AND_FINITE_ROWS, edge_mqa_decode_causal, NULL},
    {"GQA decode, Lk = 1, d = 7", EXPECT_ANY, edge_gqa_decode_single_key, NULL},
    {"Lk = 1", EXPECT_ANY, edge_single_key, NULL},
    {"Lk = 1, causal", EXPECT_EMPTY_ROWS, edge_single_key_causal, NULL},
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
                       const attn_params *params, const void *q, const void *k,
                       const void *v, void *o, attn_error *err, attn_status *status,
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

/* On x86 with XGETBV(1): whether the upper halves of ymm0-15 or zmm0-15 are in use (XINUSE
 * bits 2 and 6), as after AVX code that forgot VZEROUPPER. False where that cannot be read. */
static bool upper_halves_in_use(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) ||
        !__get_cpuid_count(0xd, 1, &a, &b, &c, &d) || !(a & (1u << 2)))
        return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(1));
    return (lo & (1u << 2 | 1u << 6)) != 0;
#else
    return false;
#endif
}

/* ---- running and checking one variant on one case ---------------------------------------- */

/* The output: GUARD + extent + GUARD elements of the output type. Offsets are in elements from
 * element 0 of the output (negative: the guard before it). */
typedef struct out_buffer {
    attn_dtype t;
    size_t esize;
    unsigned char *base;
    unsigned char *o; /* base + GUARD elements */
    int64_t total;
} out_buffer;

static void out_init(out_buffer *ob, int64_t extent, attn_dtype t)
{
    ob->t = t;
    ob->esize = attn_dtype_size(t);
    ob->total = extent + 2 * GUARD;
    ob->base = checked_alloc((size_t)ob->total, ob->esize);
    ob->o = ob->base + GUARD * ob->esize;
}

static uint32_t sentinel_bits(attn_dtype t)
{
    return t == ATTN_BF16 ? SENTINEL_BF16 : t == ATTN_F16 ? SENTINEL_F16 : SENTINEL_BITS;
}

/* The bits of element e of base (0 <= e < total). */
static uint32_t out_bits(const out_buffer *ob, int64_t e)
{
    if (ob->esize == 4)
        return ((const uint32_t *)(const void *)ob->base)[e];
    return ((const uint16_t *)(const void *)ob->base)[e];
}

static void out_set_bits(out_buffer *ob, int64_t off, uint32_t bits)
{
    unsigned char *at = ob->o + off * (int64_t)ob->esize;
    if (ob->esize == 4) {
        memcpy(at, &bits, 4);
    } else {
        const uint16_t x = (uint16_t)bits;
        memcpy(at, &x, 2);
    }
}

static float out_get(const out_buffer *ob, int64_t off)
{
    float f;
    attn_convert(ob->o + off * (int64_t)ob->esize, ob->t, &f, ATTN_F32, 1);
    return f;
}

/* Stores f rounded to the output type (self-test damage). */
static void out_set(out_buffer *ob, int64_t off, float f)
{
    attn_convert(&f, ATTN_F32, ob->o + off * (int64_t)ob->esize, ob->t, 1);
}

static void out_fill_sentinel(out_buffer *ob)
{
    const uint32_t s = sentinel_bits(ob->t);
    for (int64_t e = 0; e < ob->total; e++) {
        if (ob->esize == 4)
            ((uint32_t *)(void *)ob->base)[e] = s;
        else
            ((uint16_t *)(void *)ob->base)[e] = (uint16_t)s;
    }
}

static bool out_untouched(const out_buffer *ob)
{
    for (int64_t e = 0; e < ob->total; e++)
        if (out_bits(ob, e) != sentinel_bits(ob->t))
            return false;
    return true;
}

/* Deliberate damage for --selftest-broken, applied after a correct run. */
typedef enum corruption {
    CORRUPT_NONE,
    CORRUPT_OUTPUT,       /* one output element off by 0.5·||O||∞ */
    CORRUPT_OUTPUT_NAN,   /* one output element of a finite row set to NaN */
    CORRUPT_EMPTY_ROW,    /* one element of a row without keys set to the smallest subnormal */
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

/* How one variant runs one case, drawn from the case's seed, the variant's name and (for a
 * half type) the input type: NULL parameters (the library's defaults) in a fifth of the runs;
 * otherwise the variant's defaults or, for a variant with parameters, half of the time a random
 * draw (log-uniform in each range, rounded to its multiple); threads 0 (default) to 4 unless
 * `threads` >= 0 fixes them (thread counts above the slices make the harness split keys:
 * decode); and one run in eight repeated to check the bits do not change. */
typedef struct run_plan {
    bool null_params, drawn, repeat;
    attn_params params;
} run_plan;

static run_plan plan_run(const attn_variant_info *info, const test_case *c,
                         const attn_problem *p, int threads)
{
    run_plan rp;
    memset(&rp, 0, sizeof rp);
    uint64_t stream = hash_bytes(0xcbf29ce484222325u, info->name, strlen(info->name));
    if (p->dtype != ATTN_F32) /* float32 draws as it always did: old seeds replay */
        stream = attn_rng_mix(stream + (uint64_t)p->dtype);
    rng r = rng_seeded(c->seed, stream);
    rp.repeat = rng_chance(&r, 0.125);
    rp.null_params = threads < 0 && rng_chance(&r, 0.2);
    if (rp.null_params)
        return rp;
    attn_variant_default_params(info->name, p, &rp.params, NULL);
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

static void apply_corruption(corruption what, const test_case *c, const typed_case *tc,
                             const reference *ref, out_buffer *ob)
{
    const attn_problem *p = &tc->p;
    const int64_t d = p->head_dim;
    /* The first row of the output (by row index) that has keys / has none / is finite. */
    int64_t finite_row = -1, empty_row = -1;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0; i < p->len_q; i++) {
            const int64_t off = b * p->o.batch + (p->heads_q - 1) * p->o.head + i * p->o.seq;
            const double *r = ref->out + ((b * p->heads_q + p->heads_q - 1) * p->len_q + i) * d;
            if (!row_attends(p, b, i) && empty_row < 0)
                empty_row = off;
            if (row_attends(p, b, i) && !isnan(r[0]) && finite_row < 0)
                finite_row = off;
        }
    int64_t max_off = 0;
    for (int64_t e = 0; e < c->extent[3]; e++)
        if (c->owned[e])
            max_off = e;
    switch (what) {
    case CORRUPT_NONE: break;
    case CORRUPT_OUTPUT: out_set(ob, finite_row, out_get(ob, finite_row) + 0.5f); break;
    case CORRUPT_OUTPUT_NAN: out_set(ob, finite_row, NAN); break;
    case CORRUPT_EMPTY_ROW: out_set_bits(ob, empty_row + d - 1, 1); break;
    case CORRUPT_UNWRITTEN: out_set_bits(ob, max_off, sentinel_bits(ob->t)); break;
    case CORRUPT_GUARD_BEFORE: out_set(ob, -1, 0.0f); break;
    case CORRUPT_GUARD_AFTER: out_set(ob, c->extent[3], 0.0f); break;
    case CORRUPT_ROW_GAP:
        for (int64_t e = 0; e < c->extent[3]; e++)
            if (!c->owned[e]) {
                out_set(ob, e, 1.0f);
                break;
            }
        break;
    case CORRUPT_INPUT: ((unsigned char *)tc->k)[1] ^= 0x40; break; /* a bit of k[0] */
    }
}

static void check_output(const test_case *c, const typed_case *tc, const reference *ref,
                         const out_buffer *ob, run_result *res)
{
    const attn_problem *p = &tc->p;
    res->guard_first = INT64_MIN;
    for (int64_t e = 0; e < ob->total; e++) {
        const int64_t off = e - GUARD;
        const bool owned = off >= 0 && off < c->extent[3] && c->owned[off];
        const bool sentinel = out_bits(ob, e) == sentinel_bits(ob->t);
        if (owned && sentinel)
            res->unwritten++;
        if (!owned && !sentinel) {
            if (!res->guard_bad)
                res->guard_first = off;
            res->guard_bad++;
        }
    }
    /* A half output is widened (exactly) into a float32 copy with the same layout. */
    float *wide = (float *)(void *)ob->base;
    if (ob->t != ATTN_F32) {
        wide = checked_alloc((size_t)ob->total, sizeof *wide);
        attn_convert(ob->base, ob->t, wide, ATTN_F32, (size_t)ob->total);
    }
    const float *o = wide + GUARD;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0; i < p->len_q; i++) {
            if (row_attends(p, b, i))
                continue;
            for (int64_t h = 0; h < p->heads_q; h++) {
                const float *row = o + b * p->o.batch + h * p->o.head + i * p->o.seq;
                for (int64_t e = 0; e < p->head_dim; e++)
                    res->empty_nonzero += row[e] != 0.0f;
            }
        }
    attn_compare(p, o, ref->out, res->tolerance, &res->m);
    if (ob->t != ATTN_F32)
        free(wide);
    res->inputs_changed = typed_input_hash(c, tc) != tc->input_hash;
    res->ok = res->m.ok && !res->guard_bad && !res->unwritten && !res->empty_nonzero &&
              !res->inputs_changed && !res->repeat_differs;
}

/* The reference a variant is held to (see REF_BF16). */
static int reference_of(const attn_variant_info *info)
{
    return info->compute_dtype == ATTN_BF16 ? REF_BF16 : REF_READ;
}

/* Runs one variant on one typed case as plan_run() says (`threads` >= 0 fixes the thread
 * count) and checks everything; `corrupt` damages the result first (self-test only).
 * `replay` is the line that replays the run. */
static void run_case(const attn_variant_info *info, const test_case *c, typed_case *tc,
                     int threads, corruption corrupt, const char *replay, run_result *res)
{
    memset(res, 0, sizeof *res);
    const reference *ref = typed_reference(c, tc, reference_of(info));
    /* The floor plus a half output's roundoff, or the declared tolerance (which includes it). */
    const double floor = ref->floor + (tc->p.out_dtype == ATTN_F32
                                           ? 0.0 : attn_dtype_unit_roundoff(tc->p.out_dtype));
    const double declared = attn_variant_tolerance(info->name, &tc->p);
    res->tolerance = declared > floor ? declared : floor;
    run_plan rp = plan_run(info, c, &tc->p, threads);
    describe_params(info, &rp, res->params, sizeof res->params);
    char context[384];
    snprintf(context, sizeof context, "%s [%s] dtype=%s params=%s; %s", info->name, c->name,
             attn_dtype_name(tc->t), res->params, replay);
    out_buffer ob;
    out_init(&ob, c->extent[3], tc->p.out_dtype);
    out_fill_sentinel(&ob);
    attn_error err = {0};

    if (rp.drawn && attn_params_check(info->name, &tc->p, &rp.params, &err) != ATTN_OK) {
        /* The variant's own constraints refuse the draw: the run must refuse it alike, without
         * writing; then the defaults run. */
        char why[256];
        snprintf(why, sizeof why, "%s", err.message);
        res->signal = guarded_run(context, info->name, &tc->p, &rp.params, tc->q, tc->k, tc->v,
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
        attn_variant_default_params(info->name, &tc->p, &rp.params, NULL);
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
    unsigned char *first = NULL;
    const size_t bytes = (size_t)ob.total * ob.esize;
    for (int run = 0; run < (rp.repeat ? 2 : 1); run++) {
        if (run == 1) { /* the same call again: the same bits, guards included */
            first = checked_alloc(bytes, 1);
            memcpy(first, ob.base, bytes);
            out_fill_sentinel(&ob);
            res->repeated = true;
        }
        res->signal = guarded_run(context, info->name, &tc->p, params, tc->q, tc->k, tc->v,
                                  ob.o, &err, &res->status, NULL);
        if (res->signal || res->status != ATTN_OK)
            break;
    }
    if (res->signal) {
        snprintf(res->message, sizeof res->message, "caught signal %d (%s)", res->signal,
                 strsignal(res->signal));
    } else if (res->status != ATTN_OK) {
        snprintf(res->message, sizeof res->message, "returned %s: %s",
                 attn_status_string(res->status), err.message);
    } else if (upper_halves_in_use()) {
        snprintf(res->message, sizeof res->message,
                 "returned with the upper halves of ymm/zmm0-15 in use (no VZEROUPPER): legacy "
                 "SSE code after it runs several times slower");
    } else {
        for (size_t e = 0; first && e < bytes; e += ob.esize)
            res->repeat_differs += memcmp(first + e, ob.base + e, ob.esize) != 0;
        apply_corruption(corrupt, c, tc, ref, &ob);
        check_output(c, tc, ref, &ob, res);
        if (corrupt == CORRUPT_INPUT)
            ((unsigned char *)tc->k)[1] ^= 0x40;
    }
    free(first);
    free(ob.base);
}

/* ---- the runner -------------------------------------------------------------------------- */

/* Random cases run in every input type a variant reads: float32 on every case and, when more
 * than one type is tested, bf16 on every 5th case (index % 5 == 1) and f16 on every 7th
 * (index % 7 == 3). That keeps the whole run near 1.5 times float32's (f16 costs the most: the
 * portable variants convert it in software). The periods are prime to the 8 head dims, so each
 * subset still cycles through all of them. With --dtype naming one type, or with --case, every
 * case runs in it. A third of the half runs write a half output (out_dtype = dtype). */
static const int half_every[ATTN_DTYPE_COUNT] = {1, 5, 7};
static const int half_slot[ATTN_DTYPE_COUNT] = {0, 1, 3};
#define HALF_OUTPUT_CHANCE (1.0 / 3.0)

typedef struct variant_state {
    attn_variant_info info;
    char isa[128], why_not[192]; /* copies: attn_variant_get's strings are reused */
    bool selected;
    int passed, failed;
    /* Case runs per input type, and how many of them wrote a half output. */
    int dtype_passed[ATTN_DTYPE_COUNT], dtype_failed[ATTN_DTYPE_COUNT];
    int dtype_half_out[ATTN_DTYPE_COUNT];
} variant_state;

typedef struct runner {
    uint64_t seed;
    const char *filter;       /* --variant, or NULL */
    unsigned dtypes;          /* --dtype: bit (1u << attn_dtype) */
    int cases;                /* random cases */
    int64_t only_case;        /* --case N, or -1 */
    int64_t only_edge;        /* --edge N, or -1 */
    const shape_set *shapes;
    bool verbose;
    variant_state *vs;
    int nv;
    int api_passed, api_failed; /* checks that belong to no variant */
} runner;

static bool variant_reads(const attn_variant_info *info, attn_dtype t)
{
    return (info->dtypes & (1u << t)) != 0;
}

/* "replay: conformance --seed N [--reduced] [--variant NAME] [--dtype T] [--case I | --edge E]"
 * (case_index: a random case, or -1; edge_index: a named case, or -1). */
static void replay_hint(const runner *rn, const char *variant, const char *dtype, int case_index,
                        int edge_index, char *buf, size_t len)
{
    int used = snprintf(buf, len, "replay: conformance --seed %" PRIu64 "%s", rn->seed,
                        rn->shapes == &shape_sets[1] ? " --reduced" : "");
    if (variant && used >= 0 && (size_t)used < len)
        used += snprintf(buf + used, len - (size_t)used, " --variant %s", variant);
    if (dtype && used >= 0 && (size_t)used < len)
        used += snprintf(buf + used, len - (size_t)used, " --dtype %s", dtype);
    if (case_index >= 0 && used >= 0 && (size_t)used < len)
        snprintf(buf + used, len - (size_t)used, " --case %d", case_index);
    if (edge_index >= 0 && used >= 0 && (size_t)used < len)
        snprintf(buf + used, len - (size_t)used, " --edge %d", edge_index);
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

static void report_case(runner *rn, variant_state *vs, const test_case *c, const typed_case *tc,
                        const run_result *res, const char *replay)
{
    record(rn, vs, res->ok);
    vs->dtype_passed[tc->t] += res->ok;
    vs->dtype_failed[tc->t] += !res->ok;
    vs->dtype_half_out[tc->t] += tc->p.out_dtype != ATTN_F32;
    if (res->ok && !rn->verbose)
        return;
    const reference *ref = &tc->ref[reference_of(&vs->info)];
    char problem[768], why[512];
    describe_case(c, &tc->p, problem, sizeof problem);
    if (res->message[0]) {
        snprintf(why, sizeof why, "%s", res->message);
    } else {
        int n = snprintf(why, sizeof why,
                         "max_abs=%.3g max_rel=%.3g tol=%.3g (S=%.3g M=%.3g |O*|=%.3g)"
                         " nan_mismatch=%" PRId64 " guard_writes=%" PRId64
                         " unwritten=%" PRId64 " empty_row_nonzero=%" PRId64, res->m.max_abs,
                         res->m.max_rel, res->tolerance, ref->logit_max, ref->abs_max,
                         ref->ref_max, res->m.nan_mismatch, res->guard_bad, res->unwritten,
                         res->empty_nonzero);
        if (reference_of(&vs->info) == REF_BF16 && n >= 0 && (size_t)n < sizeof why)
            n += snprintf(why + n, sizeof why - (size_t)n, " bf16_compute(W=%.3g)",
                          ref->spread_max);
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
        printf("FAILED %s [%s] %s params=%s: %s; %s\n", vs->info.name, c->name, problem,
               res->params, why, replay);
    } else {
        printf("ok %s [%s] %s params=%s: max_abs=%.3g max_rel=%.3g tol=%.3g (S=%.3g M=%.3g "
               "|O*|=%.3g)%s\n", vs->info.name, c->name, problem, res->params, res->m.max_abs,
               res->m.max_rel, res->tolerance, ref->logit_max, ref->abs_max, ref->ref_max,
               res->repeated ? " repeated: same bits" : "");
    }
}

/* Runs every selected supported variant that reads the case's type on it; threads < 0: drawn
 * per run. */
static void run_on_selected(runner *rn, const test_case *c, typed_case *tc, int threads)
{
    for (int i = 0; i < rn->nv; i++) {
        variant_state *vs = &rn->vs[i];
        if (!vs->selected || !vs->info.supported || !variant_reads(&vs->info, tc->t))
            continue;
        char replay[200];
        replay_hint(rn, vs->info.name, attn_dtype_name(tc->t), c->index, c->edge, replay,
                    sizeof replay);
        run_result res;
        run_case(&vs->info, c, tc, threads, CORRUPT_NONE, replay, &res);
        report_case(rn, vs, c, tc, &res, replay);
    }
}

/* The output type of a case in input type t: a half output a third of the time. */
static attn_dtype draw_out_dtype(const test_case *c, attn_dtype t)
{
    rng r = rng_seeded(c->seed, 0x300000000u + (uint64_t)t);
    return t != ATTN_F32 && rng_chance(&r, HALF_OUTPUT_CHANCE) ? t : ATTN_F32;
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

static void run_random_cases(runner *rn)
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
        case_free(&c);
    }
}

/* Checks a named case's oracle output shows what the case is built to test. */
static bool edge_case_is_sound(const edge_case *e, const test_case *c, const reference *ref)
{
    switch (e->expect) {
    case EXPECT_ANY: return true;
    case EXPECT_EMPTY_ROWS:
        return c->empty_rows > 0 && c->empty_rows < c->p.batch * c->p.heads_q * c->p.len_q;
    case EXPECT_NAN_AND_FINITE_ROWS: return ref->nan_rows > 0 && ref->finite_rows > 0;
    case EXPECT_NO_NAN: return ref->nan_rows == 0;
    case EXPECT_LARGE_LOGITS: return ref->nan_rows == 0 && ref->logit_max >= LARGE_LOGIT;
    }
    return false;
}

static void run_edge_cases(runner *rn)
{
    for (int i = 0; i < COUNT(edge_cases); i++) {
        const edge_case *e = &edge_cases[i];
        if (rn->only_edge >= 0 && i != rn->only_edge)
            continue;
        for (int t = 0; t < ATTN_DTYPE_COUNT; t++) {
            if (!(rn->dtypes & (1u << t)))
                continue;
            rng r = rng_seeded(rn->seed, 0x100000000u + (uint64_t)i);
            test_case c;
            (t != ATTN_F32 && e->build_half ? e->build_half : e->build)(&c, &r);
            snprintf(c.name, sizeof c.name, "edge %d: %s", i, e->name);
            c.edge = i;
            case_finish(&c);
            typed_case tc;
            typed_prepare(&c, (attn_dtype)t, draw_out_dtype(&c, (attn_dtype)t), &tc);
            const reference *ref = typed_reference(&c, &tc, REF_READ);
            if (!edge_case_is_sound(e, &c, ref)) {
                printf("FAILED [%s] dtype=%s: the case is built wrong (empty rows %" PRId64
                       ", NaN rows %" PRId64 ", finite rows %" PRId64 ", S=%.3g)\n", c.name,
                       attn_dtype_name((attn_dtype)t), c.empty_rows, ref->nan_rows,
                       ref->finite_rows, ref->logit_max);
                record(rn, NULL, false);
            } else { /* one thread, and four (key blocks split for decode) */
                run_on_selected(rn, &c, &tc, 1);
                run_on_selected(rn, &c, &tc, 4);
            }
            typed_free(&tc);
            case_free(&c);
        }
    }
}

/* ---- invalid problems -------------------------------------------------------------------- */

typedef struct invalid_args {
    attn_problem p;
    const attn_problem *problem; /* &p, or NULL */
    const void *q, *k, *v;
    void *o;
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
static void inv_dtype_unknown(invalid_args *a) { a->p.dtype = (attn_dtype)7; }
static void inv_dtype_negative(invalid_args *a) { a->p.dtype = (attn_dtype)-1; }
static void inv_out_dtype_half_of_f32(invalid_args *a) { a->p.out_dtype = ATTN_BF16; }
static void inv_out_dtype_other_half(invalid_args *a)
{
    a->p.dtype = ATTN_BF16;
    a->p.out_dtype = ATTN_F16;
}
static void inv_out_dtype_unknown(invalid_args *a) { a->p.out_dtype = (attn_dtype)7; }

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
    {"dtype 7", ATTN_ERR_INVALID, inv_dtype_unknown},
    {"dtype -1", ATTN_ERR_INVALID, inv_dtype_negative},
    {"out_dtype bf16 with f32 inputs", ATTN_ERR_INVALID, inv_out_dtype_half_of_f32},
    {"out_dtype f16 with bf16 inputs", ATTN_ERR_INVALID, inv_out_dtype_other_half},
    {"out_dtype 7", ATTN_ERR_INVALID, inv_out_dtype_unknown},
};

/* Runs `name` on a refused problem and checks the status, the message (which must contain
 * `say1` and `say2` when they are not NULL) and that the output stayed untouched. */
static bool expect_refusal_saying(runner *rn, const char *name, const char *check,
                                  const invalid_args *a, const attn_params *params,
                                  attn_status expect, out_buffer *ob, const char *say1,
                                  const char *say2)
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
    const bool says = (!say1 || strstr(err.message, say1)) && (!say2 || strstr(err.message, say2));
    const bool ok = !sig && status == expect && err.status == expect && err.message[0] &&
                    untouched && says;
    if (!ok || rn->verbose) {
        char replay[160];
        replay_hint(rn, name, NULL, -1, -1, replay, sizeof replay);
        printf("%s %s [invalid: %s]: expected %s, got %s (message \"%s\")%s%s%s; %s\n",
               ok ? "ok" : "FAILED", name ? name : "(null)", check, attn_status_string(expect),
               sig ? strsignal(sig) : attn_status_string(status), err.message,
               untouched ? "" : ", output written", err.status == status ? "" : ", err.status differs",
               says ? "" : ", the message does not name the types", replay);
    }
    return ok;
}

static bool expect_refusal(runner *rn, const char *name, const char *check,
                           const invalid_args *a, const attn_params *params, attn_status expect,
                           out_buffer *ob)
{
    return expect_refusal_saying(rn, name, check, a, params, expect, ob, NULL, NULL);
}

static void invalid_base(invalid_args *a, const void *q, const void *k, const void *v, void *o)
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
    out_init(&ob, 2 * 4 * 5 * 8, ATTN_F32);
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
        /* An input type it does not read: unsupported, the message naming the type asked for
         * and one it reads. */
        for (int t = 0; t < ATTN_DTYPE_COUNT; t++) {
            if (variant_reads(&vs->info, (attn_dtype)t))
                continue;
            const char *reads = NULL;
            for (int u = 0; u < ATTN_DTYPE_COUNT && !reads; u++)
                if (variant_reads(&vs->info, (attn_dtype)u))
                    reads = attn_dtype_name((attn_dtype)u);
            invalid_base(&a, q, kv, kv, ob.o);
            a.p.dtype = (attn_dtype)t;
            char check[64];
            snprintf(check, sizeof check, "%s inputs (not declared)",
                     attn_dtype_name((attn_dtype)t));
            record(rn, vs, expect_refusal_saying(rn, vs->info.name, check, &a, NULL,
                                                 ATTN_ERR_UNSUPPORTED, &ob,
                                                 attn_dtype_name((attn_dtype)t), reads));
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
                                    ATTN_ERR_INVALID, &ob));
    free(q);
    free(kv);
    free(ob.base);
}

/* The dispatch agrees with the CPU: a variant is supported exactly when every ISA bit it
 * needs is available, and its reason names every cause that applies: bits ATTN_DISABLE_ISA
 * turned off, and bits the CPU lacks (both when both). */
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
        ok = ok && vs->info.supported == !missing;
        if (ok && (missing & cpu->isa_detected))
            ok = strstr(vs->why_not, "disabled by ATTN_DISABLE_ISA") != NULL;
        if (ok && (missing & ~cpu->isa_detected))
            ok = strstr(vs->why_not, "CPU lacks") != NULL;
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

/* The first selected supported variant that reads type t, or NULL. */
static const variant_state *selftest_variant(const runner *rn, attn_dtype t)
{
    for (int i = 0; i < rn->nv; i++)
        if (rn->vs[i].selected && rn->vs[i].info.supported &&
            variant_reads(&rn->vs[i].info, t))
            return &rn->vs[i];
    return NULL;
}

static int selftest(runner *rn)
{
    if (!selftest_variant(rn, ATTN_F32)) {
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
        {CORRUPT_EMPTY_ROW, "a subnormal in a row without keys"},
        {CORRUPT_UNWRITTEN, "one output element not written"},
        {CORRUPT_GUARD_BEFORE, "write just before the output"},
        {CORRUPT_GUARD_AFTER, "write just after the output"},
        {CORRUPT_ROW_GAP, "write between two padded rows"},
        {CORRUPT_INPUT, "an input changed"},
    };
    /* Float32 in and out, then each half type in and out (2-byte elements, guards and
     * sentinels), when a selected variant reads it. */
    int missed = 0;
    for (int t = 0; t < ATTN_DTYPE_COUNT; t++) {
        const variant_state *vs = selftest_variant(rn, (attn_dtype)t);
        if (!vs) {
            printf("selftest: no selected variant reads %s; not checked\n",
                   attn_dtype_name((attn_dtype)t));
            continue;
        }
        typed_case tc;
        typed_prepare(&c, (attn_dtype)t, (attn_dtype)t, &tc);
        for (int i = 0; i < COUNT(damages); i++) {
            run_result res;
            run_case(&vs->info, &c, &tc, 1, damages[i].what, "selftest", &res);
            const bool want_ok = damages[i].what == CORRUPT_NONE;
            const bool right = res.ok == want_ok && !res.signal && res.status == ATTN_OK;
            missed += !right;
            printf("selftest %s %s: %-34s -> %s (max_rel=%.3g tol=%.3g nan_mismatch=%" PRId64
                   " guard_writes=%" PRId64 " unwritten=%" PRId64 " empty_row_nonzero=%" PRId64
                   "%s%s%s)\n", vs->info.name, attn_dtype_name((attn_dtype)t), damages[i].name,
                   right ? (want_ok ? "passed" : "caught") : (want_ok ? "FAILED" : "MISSED"),
                   res.m.max_rel, res.tolerance, res.m.nan_mismatch, res.guard_bad,
                   res.unwritten, res.empty_nonzero, res.inputs_changed ? " inputs_changed" : "",
                   res.message[0] ? "; " : "", res.message);
        }
        typed_free(&tc);
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
            "  --edge N            run only named case N (likewise)\n"
            "  --dtype T           input types: f32, bf16, f16 or all (default all: bf16 on\n"
            "                      every %dth random case, f16 on every %dth; all when named)\n"
            "  --reduced           the reduced shape set (sanitizer builds)\n"
            "  --selftest-broken   corrupt results on purpose; pass only if all are caught\n"
            "  -v                  print every case\n",
            shape_sets[0].cases, shape_sets[1].cases, half_every[ATTN_BF16],
            half_every[ATTN_F16]);
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
    runner rn = {.only_case = -1, .only_edge = -1, .shapes = &shape_sets[0], .cases = -1,
                 .dtypes = (1u << ATTN_DTYPE_COUNT) - 1};
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
        } else if ((val = option_value("--dtype", argc, argv, &i))) {
            attn_dtype t;
            if (!strcmp(val, "all")) {
                rn.dtypes = (1u << ATTN_DTYPE_COUNT) - 1;
            } else if (attn_dtype_parse(val, &t)) {
                rn.dtypes = 1u << t;
            } else {
                fprintf(stderr, "conformance: bad --dtype '%s' (f32, bf16, f16 or all)\n", val);
                return 2;
            }
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
        } else if ((val = option_value("--edge", argc, argv, &i))) {
            if (!parse_int(val, 0, COUNT(edge_cases) - 1, &rn.only_edge)) {
                fprintf(stderr, "conformance: bad --edge '%s' (0 to %d)\n", val,
                        COUNT(edge_cases) - 1);
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
        rn.seed = (uint32_t)attn_rng_mix((uint64_t)ts.tv_sec * 1000000000u +
                                         (uint64_t)ts.tv_nsec + ((uint64_t)getpid() << 32));
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
    char dtypes[32] = "";
    for (int t = 0; t < ATTN_DTYPE_COUNT; t++)
        if (rn.dtypes & (1u << t))
            snprintf(dtypes + strlen(dtypes), sizeof dtypes - strlen(dtypes), "%s%s",
                     dtypes[0] ? "," : "", attn_dtype_name((attn_dtype)t));
    printf("conformance: shapes %s, %d random cases, %d edge cases, input types %s\n",
           rn.shapes->name, rn.cases, COUNT(edge_cases), dtypes);
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
    if (rn.only_edge < 0)
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
        /* Its case runs per input type (the line above adds the API checks). */
        for (int t = 0; vs->info.supported && t < ATTN_DTYPE_COUNT; t++) {
            if (!(rn.dtypes & (1u << t)))
                continue;
            const char *name = attn_dtype_name((attn_dtype)t);
            if (!variant_reads(&vs->info, (attn_dtype)t)) {
                printf("  %s %s: not read (refusal checked)\n", vs->info.name, name);
                continue;
            }
            printf("  %s %s: %d passed, %d failed", vs->info.name, name,
                   vs->dtype_passed[t], vs->dtype_failed[t]);
            if (t != ATTN_F32)
                printf(" (%d with %s output)", vs->dtype_half_out[t], name);
            if (vs->info.compute_dtype == ATTN_BF16)
                printf(" [bf16 compute: reference on bf16-rounded inputs]");
            printf("\n");
        }
        passed += vs->passed;
        failed += vs->failed;
    }
    printf("api: %d checks passed, %d failed\n", rn.api_passed, rn.api_failed);
    printf("total: %d passed, %d failed%s", passed, failed, failed ? "; " : "\n");
    if (failed) {
        char replay[160];
        replay_hint(&rn, rn.filter, NULL, -1, -1, replay, sizeof replay);
        printf("%s\n", replay);
    }
    free(rn.vs);
    return failed ? 1 : 0;
}
