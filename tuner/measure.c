/* measure.c — is a candidate correct, and how fast is it?
 *
 * Correctness: every candidate runs first on a small problem of the same kind (same head_dim,
 * GQA ratio, causal flag, masks and key lengths present or not, input type, paged K/V with the
 * same page size; short sequences, so tiles meet their edge cases) and is compared with the
 * float64 oracle under its variant's tolerance (for a bf16-compute variant, the oracle on the
 * inputs rounded to bf16). The timed runs are on the problem as given (its block table too).
 *
 * Accuracy: a timed candidate's output on the problem itself is compared, over a sample of rows
 * (batch 0, the first SAMPLE_GROUPS kv groups, the last SAMPLE_ROWS query rows: the causal
 * rows that see the most keys), with the oracle on the inputs as given — the error a user of
 * this problem would see, rounding inside the variant included.
 *
 * Speed: one warm-up run, then timed repetitions, added only while they can change the
 * decision: a candidate whose fastest run is already slower than the best's median is dropped,
 * one whose whole range lies below the best's range has separated, and one whose spread is
 * within STABLE_SPREAD of its median is settled. Times come from a monotonic clock.
 *
 * Budget: no repetition starts that would end after the search's deadline (the last run's time
 * predicts the next), so a search ends within its budget plus one run of the candidate that was
 * running. A run's FLOPs at an assumed peak (ASSUMED_PEAK: above what the widest vector unit of
 * any CPU with these ISA bits reaches) bound its time from below before it ever ran; a candidate
 * whose bound exceeds LONG_RUN gets no separate warm-up (caches and page faults are noise next
 * to a run that long), so a 6-second run is never run twice before the first is counted. */
#include "tuner.h"
#include "cpu.h"
#include "oracle.h"
#include "rng.h"
#include "timing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    MIN_REPS = 3,  /* before a median means anything */
    MAX_REPS = 15, /* for candidates that stay close to the best */
    SMALL_LEN_Q = 160, SMALL_LEN_KV = 300, SMALL_BATCH = 2,
    SAMPLE_GROUPS = 2, SAMPLE_ROWS = 32,
};
static const double STABLE_SPREAD = 0.02;  /* (max - min) / median of a settled candidate */
static const double SLOWER_MARGIN = 1.05;  /* min > best median · this: clearly slower */
static const double HOPELESS_WARMUP = 2.0; /* warm-up > best median · this: not worth timing */
static const double LONG_RUN = 0.25;       /* seconds (lower bound) above which no warm-up */
static const double ASSUMED_HZ = 6e9;      /* above any CPU's boost clock */

/* FLOPs per cycle per core at most, by the widest unit the CPU has (two FMA pipes of its
 * widest vector, or AMX's tile throughput), first match wins. */
static const struct {
    uint32_t isa;
    double flops_per_cycle;
} ASSUMED_PEAK[] = {
    {ATTN_ISA_AMX, 2048},    /* TDPBF16PS: 1024 bf16 FMAs per cycle */
    {ATTN_ISA_AVX512F, 64},  /* 2 × 16 lanes × FMA */
    {ATTN_ISA_SVE, 64},      /* up to 512-bit vectors */
    {ATTN_ISA_AVX2, 32},
    {ATTN_ISA_NEON, 32},     /* 4 pipes × 4 lanes × FMA */
    {0, 16},                 /* anything else */
};

static attn_status fail(attn_error *err, attn_status s, const char *what)
{
    if (err) {
        err->status = s;
        snprintf(err->message, sizeof err->message, "tuner: %s", what);
    }
    return s;
}

static void *alloc_tensor(int64_t n, attn_dtype t, attn_error *err)
{
    void *x = aligned_alloc(64, ((size_t)n * attn_dtype_size(t) + 63) & ~(size_t)63);
    if (!x)
        fail(err, ATTN_ERR_NOMEM, "cannot allocate the tensors to time on");
    return x;
}

/* A tensor of p (q, k or v) of uniform values in [-1, 1], stored as p->dtype. *widened gets
 * the stored values as floats (for the oracle): the tensor itself when it is float32. */
static void *random_tensor(const attn_problem *p, char tensor, uint64_t *seed, float **widened,
                           attn_error *err)
{
    int64_t n;
    *widened = NULL;
    if (attn_tensor_extent(p, tensor, &n, err) != ATTN_OK)
        return NULL;
    float *x = alloc_tensor(n, ATTN_F32, err);
    if (!x)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        x[i] = attn_rng_uniform_pm1(seed);
    if (p->dtype == ATTN_F32)
        return *widened = x;
    void *stored = alloc_tensor(n, p->dtype, err);
    if (!stored) {
        free(x);
        return NULL;
    }
    attn_convert(x, ATTN_F32, stored, p->dtype, (size_t)n);
    attn_convert(stored, p->dtype, x, ATTN_F32, (size_t)n);
    *widened = x;
    return stored;
}

/* Frees a tensor and its widened copy (the same buffer for float32). */
static void free_tensor(void *stored, float *widened)
{
    if (widened != stored)
        free(widened);
    free(stored);
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* A small problem of the same kind as p: what a candidate is checked on. */
static void make_small(const attn_problem *p, attn_problem *s)
{
    int64_t lq = min64(p->len_q, SMALL_LEN_Q), lk = min64(p->len_kv, SMALL_LEN_KV);
    if (p->len_q == p->len_kv) /* self-attention stays square */
        lq = lk = min64(p->len_q, SMALL_LEN_KV);
    attn_problem_init(s, min64(p->batch, SMALL_BATCH), p->heads_q / p->heads_kv, 1, lq, lk,
                      p->head_dim);
    s->scale = p->scale;
    s->causal = p->causal;
}

/* Paged p: the small problem s paged alike, each sequence's pages shuffled over a pool with one
 * spare page that no entry names (a kernel that reads a wrong page reads values of no key, and
 * fails the check). The table is b->small_table. */
static bool page_small(tuner_bench *b, const attn_problem *p, attn_problem *s, uint64_t *seed)
{
    const int64_t used = (s->len_kv - 1) / p->page_size + 1, named = s->batch * used;
    const int64_t pool = named + 1;
    int32_t *order = malloc((size_t)pool * sizeof *order);
    if (!order)
        return false;
    for (int64_t i = 0; i < pool; i++)
        order[i] = (int32_t)i;
    for (int64_t i = pool - 1; i > 0; i--) { /* Fisher-Yates */
        const int64_t j = (int64_t)(attn_rng_next(seed) % (uint64_t)(i + 1));
        const int32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    b->small_table = order; /* its first `named` entries: the table, [batch][used] */
    attn_problem_set_pages(s, p->page_size, pool, order, 0);
    return true;
}

/* The sample rows of p as a view with p's strides (see the header). */
static void make_sample(const attn_problem *p, attn_problem *s, int64_t *row0)
{
    *s = *p;
    const int64_t group = p->heads_q / p->heads_kv;
    s->batch = 1;
    s->heads_kv = min64(p->heads_kv, SAMPLE_GROUPS);
    s->heads_q = group * s->heads_kv;
    s->len_q = min64(p->len_q, SAMPLE_ROWS);
    *row0 = p->len_q - s->len_q; /* bottom-right causal alignment holds for the last rows */
    if (p->mask)
        s->mask = p->mask + *row0 * (p->mask_row_stride ? p->mask_row_stride : p->len_kv);
    s->out_dtype = ATTN_F32;
}

attn_status tuner_bench_init(tuner_bench *b, const attn_problem *p, attn_error *err)
{
    memset(b, 0, sizeof *b);
    b->problem = p;
    attn_status st = attn_problem_validate(p, err);
    if (st != ATTN_OK)
        return st;
    if (p->kv_dtype == ATTN_INT8 || p->kv_dtype == ATTN_Q4)
        return fail(err, ATTN_ERR_UNSUPPORTED, "tuning on quantized K/V (int8, q4) is not "
                    "supported yet: plans for them are estimates");
    uint64_t seed = 1; /* fixed: the same inputs on every run */
    make_small(p, &b->small);
    attn_problem *s = &b->small;
    if (p->page_size && !page_small(b, p, s, &seed))
        goto nomem;
    const size_t small_out = (size_t)(s->batch * s->heads_q * s->len_q * s->head_dim);
    int64_t o_elements;
    float **w = b->widened, **sw = b->small_widened;
    if (!(b->q = random_tensor(p, 'q', &seed, &w[0], err)) ||
        !(b->k = random_tensor(p, 'k', &seed, &w[1], err)) ||
        !(b->v = random_tensor(p, 'v', &seed, &w[2], err)) ||
        attn_tensor_extent(p, 'o', &o_elements, err) != ATTN_OK ||
        !(b->o = alloc_tensor(o_elements, p->out_dtype, err)) ||
        !(b->sq = random_tensor(s, 'q', &seed, &sw[0], err)) ||
        !(b->sk = random_tensor(s, 'k', &seed, &sw[1], err)) ||
        !(b->sv = random_tensor(s, 'v', &seed, &sw[2], err)) ||
        attn_tensor_extent(s, 'o', &o_elements, err) != ATTN_OK ||
        !(b->so = alloc_tensor(o_elements, ATTN_F32, err)))
        goto failed;
    if (p->mask) {
        /* Values in [-1, 1], one key in eight excluded, and the first row fully masked. */
        if (!(b->small_mask = malloc((size_t)(s->len_q * s->len_kv) * sizeof(float))))
            goto nomem;
        for (int64_t i = 0; i < s->len_q * s->len_kv; i++) {
            float u = attn_rng_uniform_pm1(&seed);
            b->small_mask[i] = (i < s->len_kv || u > 0.75f) ? -INFINITY : u;
        }
        s->mask = b->small_mask;
    }
    if (p->kv_lens) {
        if (!(b->small_kv_lens = malloc((size_t)s->batch * sizeof(int32_t))))
            goto nomem;
        for (int64_t i = 0; i < s->batch; i++) /* one empty sequence, the others partial */
            b->small_kv_lens[i] = (int32_t)(i == 0 ? 0 : s->len_kv - s->len_kv / (i + 2));
        s->kv_lens = b->small_kv_lens;
    }
    make_sample(p, &b->sample, &b->sample_row0);
    const attn_problem *m = &b->sample;
    const size_t sample_out = (size_t)(m->heads_q * m->len_q * m->head_dim);
    if (!(b->small_ref = malloc(small_out * sizeof(double))) ||
        !(b->small_ref_bf16 = malloc(small_out * sizeof(double))) ||
        !(b->sample_ref = malloc(sample_out * sizeof(double))))
        goto nomem;
    if ((st = attn_oracle(s, sw[0], sw[1], sw[2], b->small_ref, err)) != ATTN_OK ||
        (st = attn_oracle_rounded(s, sw[0], sw[1], sw[2], ATTN_BF16, b->small_ref_bf16, err)) !=
            ATTN_OK ||
        (st = attn_oracle(m, w[0] + b->sample_row0 * p->q.seq, w[1], w[2], b->sample_ref, err)) !=
            ATTN_OK) {
        tuner_bench_free(b);
        return st;
    }
    return ATTN_OK;
nomem:
    fail(err, ATTN_ERR_NOMEM, "out of memory preparing the correctness check");
failed:
    tuner_bench_free(b);
    return err ? err->status : ATTN_ERR_NOMEM;
}

void tuner_bench_free(tuner_bench *b)
{
    void *stored[3] = {b->q, b->k, b->v}, *small[3] = {b->sq, b->sk, b->sv};
    for (int t = 0; t < 3; t++) {
        free_tensor(stored[t], b->widened[t]);
        free_tensor(small[t], b->small_widened[t]);
    }
    free(b->o); free(b->so);
    free(b->small_mask); free(b->small_kv_lens); free(b->small_table);
    free(b->small_ref); free(b->small_ref_bf16);
    free(b->sample_ref);
    memset(b, 0, sizeof *b);
}

double tuner_sample_error(const tuner_bench *b)
{
    const attn_problem *p = b->problem, *m = &b->sample;
    const int64_t d = p->head_dim;
    const size_t esize = attn_dtype_size(p->out_dtype);
    double max_abs = 0, ref_max = 0;
    float *row = malloc((size_t)d * sizeof *row);
    if (!row)
        return NAN;
    for (int64_t h = 0; h < m->heads_q; h++)
        for (int64_t i = 0; i < m->len_q; i++) {
            const int64_t at = h * p->o.head + (b->sample_row0 + i) * p->o.seq;
            attn_convert((const char *)b->o + at * (int64_t)esize, p->out_dtype, row, ATTN_F32,
                         (size_t)d);
            const double *r = b->sample_ref + (h * m->len_q + i) * d;
            for (int64_t c = 0; c < d; c++) {
                if (isnan(r[c]) != isnan(row[c]) || isinf(row[c]))
                    max_abs = INFINITY; /* a NaN where the oracle has none, or the reverse */
                else if (!isnan(r[c])) {
                    max_abs = fmax(max_abs, fabs(row[c] - r[c]));
                    ref_max = fmax(ref_max, fabs(r[c]));
                }
            }
        }
    free(row);
    return ref_max > 0 ? max_abs / ref_max : max_abs;
}

bool tuner_check(const tuner_bench *b, const tuner_config *c, double *max_rel, char *why,
                 size_t why_len)
{
    attn_variant_info info;
    attn_variant_get(c->variant, &info);
    attn_error err = {0};
    *max_rel = NAN;
    if (attn_run_variant(info.name, &b->small, &c->params, b->sq, b->sk, b->sv, b->so, &err) !=
        ATTN_OK) {
        snprintf(why, why_len, "does not run on the check problem: %s", err.message);
        return false;
    }
    attn_error_metrics m;
    const double tolerance = attn_variant_tolerance(info.name, &b->small);
    const bool rounds = info.compute_dtype == ATTN_BF16 && b->small.dtype != ATTN_BF16;
    attn_compare(&b->small, b->so, rounds ? b->small_ref_bf16 : b->small_ref, tolerance, &m);
    *max_rel = m.max_rel;
    if (!m.ok) {
        snprintf(why, why_len, "wrong: max_rel %.3g > tolerance %.3g, %lld NaN mismatches",
                 m.max_rel, tolerance, (long long)m.nan_mismatch);
        return false;
    }
    why[0] = '\0';
    return true;
}

static attn_status run_once(const tuner_bench *b, const tuner_config *c, double *seconds,
                            attn_error *err)
{
    attn_variant_info info;
    attn_variant_get(c->variant, &info);
    const double t0 = attn_clock_seconds();
    attn_status st =
        attn_run_variant(info.name, b->problem, &c->params, b->q, b->k, b->v, b->o, err);
    *seconds = attn_clock_seconds() - t0;
    return st;
}

static void summarise(double *samples, int n, tuner_timing *out)
{
    attn_time_stats stats;
    attn_time_stats_compute(samples, (size_t)n, &stats);
    out->median = stats.median;
    out->min = stats.min;
    out->max = stats.max;
    out->reps = n;
}

double tuner_run_lower_bound(const attn_problem *p, int threads)
{
    const uint32_t isa = attn_cpu_get()->isa_detected;
    size_t i = 0;
    while (ASSUMED_PEAK[i].isa && !(isa & ASSUMED_PEAK[i].isa))
        i++;
    const double peak = ASSUMED_PEAK[i].flops_per_cycle * ASSUMED_HZ * (threads > 0 ? threads : 1);
    return attn_problem_flops(p) / peak;
}

/* Tells the progress hook about run `rep` (0: the warm-up) of c. */
static void report(const tuner_bench *b, const char *stage, const char *what, int rep, int reps,
                   double run_seconds, bool run_bound)
{
    if (!b->progress)
        return;
    tuner_progress p = b->status;
    p.stage = stage;
    p.what = what;
    p.rep = rep;
    p.reps = reps;
    p.run_seconds = run_seconds;
    p.run_bound = run_bound;
    p.elapsed = attn_clock_seconds() - b->start;
    b->progress(b->progress_ctx, &p);
}

/* Whether a run of `seconds` started now would end after the deadline. */
static bool would_overrun(const tuner_bench *b, double seconds)
{
    return b->deadline > 0 && attn_clock_seconds() + seconds > b->deadline;
}

/* How many timed repetitions fit before the deadline, at `seconds` each (1 to MAX_REPS). */
static int planned_reps(const tuner_bench *b, double seconds)
{
    if (b->deadline <= 0 || seconds <= 0)
        return MAX_REPS;
    const double fit = (b->deadline - attn_clock_seconds()) / seconds;
    return fit >= MAX_REPS ? MAX_REPS : fit < 1 ? 1 : (int)fit;
}

attn_status tuner_time(const tuner_bench *b, const tuner_config *c, const tuner_timing *best,
                       tuner_timing *out, attn_error *err)
{
    memset(out, 0, sizeof *out);
    const bool have_best = best && best->reps > 0;
    char what[192];
    tuner_config_format(c, what, sizeof what);
    const double bound = tuner_run_lower_bound(b->problem, c->params.threads);
    double last = bound, samples[MAX_REPS], sorted[MAX_REPS];
    int n = 0;
    attn_status st;
    if (bound < LONG_RUN) {
        double warmup;
        report(b, "timing", what, 0, planned_reps(b, bound), bound, true);
        if ((st = run_once(b, c, &warmup, err)) != ATTN_OK)
            return st;
        if (have_best && warmup > HOPELESS_WARMUP * best->median) {
            out->median = out->min = out->max = warmup;
            out->rejected = true;
            return ATTN_OK;
        }
        last = warmup;
        if (would_overrun(b, warmup)) { /* no time for another: the warm-up is the sample */
            samples[n++] = warmup;
            summarise(samples, n, out);
            report(b, "timed", what, n, n, out->median, false);
            return ATTN_OK;
        }
    }
    while (n < MAX_REPS) {
        if (n > 0 && would_overrun(b, last))
            break; /* the budget: the next run would end after the deadline */
        const int planned = n + planned_reps(b, last);
        report(b, "timing", what, n + 1, planned < MAX_REPS ? planned : MAX_REPS, last,
               last == bound);
        if ((st = run_once(b, c, &samples[n], err)) != ATTN_OK)
            return st;
        last = samples[n++];
        memcpy(sorted, samples, (size_t)n * sizeof *samples);
        summarise(sorted, n, out);
        if (have_best && out->min > SLOWER_MARGIN * best->median) {
            out->rejected = true;
            break;
        }
        if (n < MIN_REPS)
            continue;
        if (have_best && out->max < best->min)
            break; /* separated: faster than anything the best ever ran */
        if (out->max - out->min <= STABLE_SPREAD * out->median)
            break;
    }
    report(b, "timed", what, n, n, out->median, false);
    return ATTN_OK;
}

attn_status tuner_time_interleaved(const tuner_bench *b, const tuner_config *configs, int n,
                                   int rounds, tuner_timing *out, attn_error *err)
{
    double *samples = malloc((size_t)n * (size_t)rounds * sizeof *samples);
    if (!samples)
        return fail(err, ATTN_ERR_NOMEM, "out of memory for timing samples");
    attn_status st = ATTN_OK;
    double t;
    for (int i = 0; i < n && st == ATTN_OK; i++)
        st = run_once(b, &configs[i], &t, err);
    for (int r = 0; r < rounds && st == ATTN_OK; r++)
        for (int i = 0; i < n && st == ATTN_OK; i++)
            st = run_once(b, &configs[i], &samples[(size_t)i * (size_t)rounds + (size_t)r], err);
    for (int i = 0; i < n && st == ATTN_OK; i++) {
        memset(&out[i], 0, sizeof out[i]);
        summarise(&samples[(size_t)i * (size_t)rounds], rounds, &out[i]);
    }
    free(samples);
    return st;
}
