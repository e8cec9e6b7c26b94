/* search.c — the search strategies.
 *
 * exhaustive: every configuration of the space is checked and timed (hopeless ones stop after
 *   their warm-up or first run, see measure.c): the ground truth.
 * fast: each variant's cache-size default is timed first; variants whose default is more than
 *   PRUNE_RATIO slower than the best default are dropped; the others, best first, descend
 *   coordinate by coordinate (each parameter stepped to its neighbouring value in the space,
 *   in the direction that improves, until a whole pass over the parameters changes nothing).
 *
 * The configuration the estimate (ATTN_ESTIMATE) would pick is timed first in both, so every
 * tune can say how far the estimate is from the tuned best, and the best so far is known early
 * for early rejection. A configuration that fails its correctness check is never timed.
 *
 * Accuracy: every timed configuration's error on the problem itself is measured (sample rows,
 * measure.c). With an accuracy bound (max_rel_err > 0) variants computing in reduced precision
 * join the space, and a configuration whose measured error exceeds the bound is never chosen;
 * the fastest float32-compute configuration is remembered, to say what the choice beat. */
#include "error.h"
#include "tuner.h"
#include "timing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double PRUNE_RATIO = 1.5;    /* a variant's default this much slower: dropped */
static const double MIN_IMPROVEMENT = 0.01; /* a step must gain 1% to be taken */
static const double FASTER_AT_MOST = 0.5;  /* a new candidate's run vs the fastest so far */

typedef struct search {
    const tuner_options *opt;
    tuner_result *r;
    tuner_bench bench;
    double start;
    double run_bound; /* a lower bound of one run's time (seconds) */
    tuner_timing best, best_full;
    size_t done; /* configurations visited (checked, timed or rejected) */
} search;

/* Whether the budget is spent: no new candidate starts once its first run would end after the
 * deadline, that run taking at least the FLOP bound (tuner_run_lower_bound) and, once something
 * was timed, half the fastest run so far (configurations of one problem seldom differ more);
 * but until one candidate was timed there is no result, so the search goes on. */
static bool out_of_budget(search *s)
{
    const double fastest = s->r->best >= 0 ? s->best.min : 0;
    const double next_run = fmax(s->run_bound, FASTER_AT_MOST * fastest);
    if (s->r->timed > 0 && attn_clock_seconds() + next_run > s->bench.deadline)
        s->r->budget_exhausted = true;
    return s->r->budget_exhausted;
}

/* Checks and times configuration i once; later calls return at once. */
static attn_status visit(search *s, size_t i, attn_error *err)
{
    tuner_candidate *c = &s->r->candidates[i];
    if (c->checked)
        return ATTN_OK;
    c->checked = true;
    char what[192];
    tuner_config_format(&c->config, what, sizeof what);
    s->bench.status.done = s->done;
    if (s->opt->progress) {
        tuner_progress p = s->bench.status;
        p.stage = "checking";
        p.what = what;
        p.elapsed = attn_clock_seconds() - s->start;
        s->opt->progress(s->opt->progress_ctx, &p);
    }
    c->correct = tuner_check(&s->bench, &c->config, &c->max_rel, c->why, sizeof c->why);
    if (c->correct) {
        attn_status st = tuner_time(&s->bench, &c->config, &s->best, &c->timing, err);
        if (st != ATTN_OK)
            return st;
        c->timed = true;
        s->r->timed++;
        c->rel_err = tuner_sample_error(&s->bench); /* the output the timed runs left */
        c->too_inexact = s->opt->max_rel_err > 0 && !(c->rel_err <= s->opt->max_rel_err);
        attn_variant_info info;
        attn_variant_get(c->config.variant, &info);
        if (!c->timing.rejected && !c->too_inexact &&
            (s->r->best < 0 || c->timing.median < s->best.median)) {
            s->r->best = (long)i;
            s->best = c->timing;
        }
        if (!c->too_inexact && info.compute_dtype == ATTN_F32 &&
            (s->r->best_full < 0 || c->timing.median < s->best_full.median)) {
            s->r->best_full = (long)i;
            s->best_full = c->timing;
        }
    }
    s->done++;
    return ATTN_OK;
}

/* A candidate's time for comparisons; failed ones are infinitely slow. */
static double time_of(const search *s, long i)
{
    const tuner_candidate *c = &s->r->candidates[i];
    return c->timed ? c->timing.median : INFINITY;
}

static attn_status exhaustive(search *s, attn_error *err)
{
    for (size_t i = 0; i < s->r->space.count && !out_of_budget(s); i++) {
        attn_status st = visit(s, i, err);
        if (st != ATTN_OK)
            return st;
    }
    return ATTN_OK;
}

/* Index in the space of variant vs's point at value indices idx, or -1 when not valid. */
static long point(const search *s, const tuner_variant_space *vs, const int *idx)
{
    tuner_config c = {.variant = vs->variant, .params = vs->defaults};
    for (int i = 0; i < c.params.count; i++)
        c.params.value[i] = vs->values[i][idx[i]];
    return tuner_space_find(&s->r->space, &c);
}

/* Value indices of the default of a variant (its values lists contain it). */
static void default_point(const tuner_variant_space *vs, int *idx)
{
    for (int i = 0; i < vs->defaults.count; i++) {
        idx[i] = 0;
        for (int j = 0; j < vs->value_count[i]; j++)
            if (vs->values[i][j] == vs->defaults.value[i])
                idx[i] = j;
    }
}

static attn_status descend(search *s, const tuner_variant_space *vs, long start, int *idx,
                           attn_error *err)
{
    long cur = start;
    bool moved = true;
    while (moved && !out_of_budget(s)) {
        moved = false;
        for (int i = 0; i < vs->defaults.count && !out_of_budget(s); i++) {
            for (int dir = 1; dir >= -1; dir -= 2) {
                bool stepped = false;
                for (int j = idx[i] + dir; j >= 0 && j < vs->value_count[i]; j += dir) {
                    int trial[ATTN_MAX_PARAMS];
                    memcpy(trial, idx, sizeof trial);
                    trial[i] = j;
                    long next = point(s, vs, trial);
                    if (next < 0)
                        break; /* not valid: the constraint wall in this direction */
                    attn_status st = visit(s, (size_t)next, err);
                    if (st != ATTN_OK)
                        return st;
                    if (!(time_of(s, next) < (1.0 - MIN_IMPROVEMENT) * time_of(s, cur)) ||
                        out_of_budget(s))
                        break;
                    cur = next;
                    idx[i] = j;
                    stepped = moved = true;
                }
                if (stepped)
                    break; /* the other direction only when this one gained nothing */
            }
        }
    }
    return ATTN_OK;
}

static int compare_by_time(const void *a, const void *b)
{
    const double x = ((const double *)a)[0], y = ((const double *)b)[0];
    return (x > y) - (x < y);
}

static attn_status fast(search *s, attn_error *err)
{
    tuner_space *space = &s->r->space;
    /* (time of the default, variant space index, start config) per variant. */
    double (*order)[3] = calloc((size_t)space->variant_count + 1, sizeof *order);
    if (!order)
        return attn_fail(err, ATTN_ERR_NOMEM, "tuner: out of memory ordering the variants");
    attn_status st = ATTN_OK;
    int n = 0;
    for (int v = 0; v < space->variant_count && !out_of_budget(s); v++) {
        const tuner_variant_space *vs = &space->variants[v];
        int idx[ATTN_MAX_PARAMS];
        default_point(vs, idx);
        long start = point(s, vs, idx);
        if (start < 0)
            start = (long)vs->first; /* the default is not valid: any valid point */
        st = visit(s, (size_t)start, err);
        if (st != ATTN_OK)
            break;
        const tuner_candidate *c = &s->r->candidates[start];
        order[n][0] = c->timed ? c->timing.median : INFINITY;
        order[n][1] = v;
        order[n][2] = (double)start;
        n++;
    }
    qsort(order, (size_t)n, sizeof order[0], compare_by_time);
    for (int k = 0; k < n && !out_of_budget(s) && st == ATTN_OK; k++) {
        if (!(order[k][0] <= PRUNE_RATIO * order[0][0]))
            break;
        const tuner_variant_space *vs = &space->variants[(int)order[k][1]];
        const long start = (long)order[k][2];
        int idx[ATTN_MAX_PARAMS] = {0};
        for (int i = 0; i < vs->defaults.count; i++) /* the start point's value indices */
            for (int j = 0; j < vs->value_count[i]; j++)
                if (vs->values[i][j] == space->configs[start].params.value[i])
                    idx[i] = j;
        st = descend(s, vs, start, idx, err);
    }
    free(order);
    return st;
}

attn_status tuner_run(const attn_problem *p, const tuner_options *opt, tuner_result *out,
                      attn_error *err)
{
    memset(out, 0, sizeof *out);
    out->best = out->best_full = out->estimate_index = -1;
    const int threads = opt->threads > 0 ? opt->threads : attn_default_threads();
    attn_status st = tuner_estimate(p, threads, &out->estimate, err);
    if (st != ATTN_OK)
        return st;
    const char *only = opt->only_variant;
    const char *forced = NULL;
    if (!only && attn_forced_variant(&forced, NULL) == ATTN_OK && forced)
        only = forced;
    if (!(opt->max_rel_err >= 0 && isfinite(opt->max_rel_err))) {
        if (err) {
            err->status = ATTN_ERR_INVALID;
            snprintf(err->message, sizeof err->message,
                     "tuner: max_rel_err must be finite and >= 0 (got %g)", opt->max_rel_err);
        }
        return ATTN_ERR_INVALID;
    }
    if ((st = tuner_space_build(p, threads, only, opt->max_rel_err > 0, &out->space, err)) !=
        ATTN_OK)
        return st;
    out->candidates = calloc(out->space.count, sizeof *out->candidates);
    if (!out->candidates) {
        tuner_result_free(out);
        if (err) {
            err->status = ATTN_ERR_NOMEM;
            snprintf(err->message, sizeof err->message, "tuner: out of memory");
        }
        return ATTN_ERR_NOMEM;
    }
    for (size_t i = 0; i < out->space.count; i++) {
        out->candidates[i].config = out->space.configs[i];
        out->candidates[i].rel_err = NAN;
    }
    out->estimate_index = tuner_space_find(&out->space, &out->estimate);

    search s = {.opt = opt, .r = out, .start = attn_clock_seconds(),
                .run_bound = tuner_run_lower_bound(p, threads)};
    const tuner_progress status = {.stage = "preparing inputs", .what = "",
                                   .total = out->space.count, .budget = opt->budget_seconds};
    if (opt->progress) { /* a long run means large inputs to prepare: say so at once */
        tuner_progress preparing = status;
        preparing.run_seconds = s.run_bound;
        preparing.run_bound = true;
        opt->progress(opt->progress_ctx, &preparing);
    }
    if ((st = tuner_bench_init(&s.bench, p, err)) != ATTN_OK) {
        tuner_result_free(out);
        return st;
    }
    const attn_problem *small = &s.bench.small;
    out->check.batch = small->batch;
    out->check.len_q = small->len_q;
    out->check.len_kv = small->len_kv;
    out->check.page_size = small->page_size;
    s.bench.deadline = s.start + opt->budget_seconds;
    s.bench.progress = opt->progress;
    s.bench.progress_ctx = opt->progress_ctx;
    s.bench.status = status;
    s.bench.start = s.start;
    if (out->estimate_index >= 0)
        st = visit(&s, (size_t)out->estimate_index, err);
    if (st == ATTN_OK)
        st = opt->strategy == TUNER_EXHAUSTIVE ? exhaustive(&s, err) : fast(&s, err);
    tuner_bench_free(&s.bench);
    out->seconds = attn_clock_seconds() - s.start;
    if (st == ATTN_OK && out->best < 0) {
        st = ATTN_ERR_UNSUPPORTED;
        if (err) {
            err->status = st;
            snprintf(err->message, sizeof err->message,
                     "tuner: no configuration passed its correctness check%s%s",
                     opt->max_rel_err > 0 ? " and the accuracy bound" : "",
                     out->budget_exhausted ? " within the budget" : "");
        }
    }
    if (st != ATTN_OK)
        tuner_result_free(out);
    return st;
}

void tuner_result_free(tuner_result *r)
{
    tuner_space_free(&r->space);
    free(r->candidates);
    r->candidates = NULL;
}
