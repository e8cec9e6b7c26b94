/* planner.c — attn_plan_* and attn_wisdom_* (attn.h), in the manner of FFTW's planner.
 *
 * A plan is chosen, in order: ATTN_FORCE_VARIANT narrows the candidates to one variant; wisdom
 * for this exact problem class; with ATTN_MEASURE, a fast tune within MEASURE_BUDGET seconds
 * whose result becomes wisdom; the nearest tuned problem class of the same kind (causal, masks,
 * key lengths, decode or not, threads) by log-distance of the shapes; the estimate (registry
 * priority and cache-size defaults). A choice whose variant this CPU cannot run now (or that
 * ATTN_DISABLE_ISA turned off), or whose parameters do not fit the problem, is skipped.
 *
 * The wisdom in memory is an explicit cache: the wisdom file, read once on first use, plus
 * imports and new measurements, under one mutex. A plan is immutable once created. */
#include "tuner.h"
#include "error.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const double MEASURE_BUDGET = 10.0; /* seconds ATTN_MEASURE may spend on one problem */

struct attn_plan {
    attn_problem problem;
    tuner_config config;
    attn_plan_source source;
    double tuned_seconds;
    char description[320];
};

static pthread_mutex_t wisdom_lock = PTHREAD_MUTEX_INITIALIZER;
static char *wisdom_override;   /* attn_wisdom_set_file() */
static bool wisdom_loaded;
static wisdom_set wisdom_memory;

/* Reads the wisdom file into memory once; problems with it are reported on stderr, since a
 * plan still succeeds without wisdom. Call with wisdom_lock held. */
static void load_wisdom_locked(void)
{
    if (wisdom_loaded)
        return;
    wisdom_loaded = true;
    char path[4096], warning[512];
    wisdom_path(wisdom_override, path, sizeof path);
    size_t foreign;
    attn_error err = {0};
    wisdom_set set;
    if (wisdom_read(path, &set, &foreign, warning, sizeof warning, &err) == WISDOM_READ_BAD) {
        fprintf(stderr, "attn: %s; ignored, planning without it\n", err.message);
        return;
    }
    if (warning[0])
        fprintf(stderr, "attn: %s\n", warning);
    for (size_t i = 0; i < set.count; i++)
        wisdom_set_put(&wisdom_memory, &set.entries[i]);
    wisdom_set_free(&set);
}

const char *attn_plan_source_name(attn_plan_source source)
{
    switch (source) {
    case ATTN_PLAN_FROM_WISDOM: return "wisdom";
    case ATTN_PLAN_FROM_NEAREST: return "nearest";
    case ATTN_PLAN_FROM_ESTIMATE: return "estimate";
    case ATTN_PLAN_FROM_MEASURE: return "measure";
    case ATTN_PLAN_FROM_FORCED: return "forced";
    }
    return "unknown";
}

/* Whether an entry's choice can run p now (CPU, ATTN_DISABLE_ISA, forced variant, params). */
static bool usable(const tuner_config *c, const attn_problem *p, const char *forced)
{
    attn_variant_info info;
    return attn_variant_get(c->variant, &info) && info.supported &&
           (!forced || !strcmp(forced, info.name)) &&
           attn_params_check(info.name, p, &c->params, NULL) == ATTN_OK;
}

static double log_ratio(int64_t a, int64_t b) { return fabs(log((double)a / (double)b)); }

/* The tuned class nearest to c of the same kind whose choice runs p; NULL when none. Head
 * dimension weighs most (it shapes the kernel's register tiles), then the sequence lengths,
 * then the batch·heads count and GQA ratio. */
static const wisdom_entry *nearest(const tuner_class *c, const attn_problem *p,
                                   const char *forced)
{
    const wisdom_entry *best = NULL;
    double best_distance = INFINITY;
    for (size_t i = 0; i < wisdom_memory.count; i++) {
        const wisdom_entry *e = &wisdom_memory.entries[i];
        const tuner_class *x = &e->cls;
        if (x->causal != c->causal || x->mask != c->mask || x->kv_lens != c->kv_lens ||
            (x->len_q == 1) != (c->len_q == 1) || x->threads != c->threads)
            continue;
        tuner_config cfg = e->config;
        cfg.params.threads = c->threads;
        if (!usable(&cfg, p, forced))
            continue;
        double d = 4.0 * log_ratio(x->head_dim, c->head_dim) + log_ratio(x->len_q, c->len_q) +
                   log_ratio(x->len_kv, c->len_kv) +
                   0.5 * log_ratio(x->batch * x->heads_q, c->batch * c->heads_q) +
                   0.5 * log_ratio(x->heads_q / x->heads_kv, c->heads_q / c->heads_kv);
        if (d < best_distance) {
            best_distance = d;
            best = e;
        }
    }
    return best;
}

/* Tunes p (fast strategy, small budget), remembers the result and stores it in the file. */
static attn_status measure(const attn_problem *p, int threads, const tuner_class *cls,
                           attn_plan *plan, attn_error *err)
{
    tuner_options opt = {.strategy = TUNER_FAST, .budget_seconds = MEASURE_BUDGET,
                         .threads = threads};
    tuner_result r;
    attn_status st = tuner_run(p, &opt, &r, err);
    if (st != ATTN_OK)
        return st;
    const tuner_candidate *best = &r.candidates[r.best];
    wisdom_entry e = {.cls = *cls, .config = best->config,
                      .median_seconds = best->timing.median};
    e.gflops = attn_problem_flops(p) / e.median_seconds * 1e-9;
    wisdom_now(e.date, sizeof e.date);
    tuner_result_free(&r);
    plan->config = e.config;
    plan->source = ATTN_PLAN_FROM_MEASURE;
    plan->tuned_seconds = e.median_seconds;

    char path[4096];
    wisdom_set one = {.entries = &e, .count = 1, .capacity = 1};
    attn_error werr = {0};
    pthread_mutex_lock(&wisdom_lock);
    wisdom_path(wisdom_override, path, sizeof path);
    wisdom_set_put(&wisdom_memory, &e);
    if (wisdom_merge_into_file(path, &one, &werr) != ATTN_OK) /* the plan stands regardless */
        fprintf(stderr, "attn: %s\n", werr.message);
    pthread_mutex_unlock(&wisdom_lock);
    return ATTN_OK;
}

attn_plan *attn_plan_create_threads(const attn_problem *p, int threads, unsigned flags,
                                    attn_error *err)
{
    if (attn_problem_validate(p, err) != ATTN_OK)
        return NULL;
    if (flags & ~(unsigned)(ATTN_MEASURE | ATTN_WISDOM_ONLY)) {
        attn_fail(err, ATTN_ERR_INVALID, "unknown planner flags 0x%x", flags);
        return NULL;
    }
    if (threads < 0 || threads > ATTN_MAX_THREADS) {
        attn_fail(err, ATTN_ERR_INVALID, "threads must be in [0, %d] (got %d)", ATTN_MAX_THREADS,
             threads);
        return NULL;
    }
    if (threads == 0)
        threads = attn_default_threads();
    const char *forced = NULL;
    if (attn_forced_variant(&forced, err) != ATTN_OK)
        return NULL;
    attn_plan *plan = calloc(1, sizeof *plan);
    if (!plan) {
        attn_fail(err, ATTN_ERR_NOMEM, "out of memory for a plan");
        return NULL;
    }
    plan->problem = *p;
    tuner_class cls;
    tuner_class_of(p, threads, &cls);

    pthread_mutex_lock(&wisdom_lock);
    load_wisdom_locked();
    const wisdom_entry *exact = wisdom_set_find(&wisdom_memory, &cls);
    const wisdom_entry *near = NULL;
    bool found = false;
    if (exact && usable(&exact->config, p, forced)) {
        plan->config = exact->config;
        plan->tuned_seconds = exact->median_seconds;
        plan->source = ATTN_PLAN_FROM_WISDOM;
        found = true;
    } else if (!(flags & (ATTN_MEASURE | ATTN_WISDOM_ONLY)) && (near = nearest(&cls, p, forced))) {
        plan->config = near->config;
        plan->config.params.threads = threads;
        plan->tuned_seconds = near->median_seconds;
        plan->source = ATTN_PLAN_FROM_NEAREST;
        found = true;
    }
    tuner_class near_cls = near ? near->cls : cls;
    pthread_mutex_unlock(&wisdom_lock);

    attn_status st = ATTN_OK;
    if (!found && (flags & ATTN_WISDOM_ONLY)) {
        char what[160], path[4096];
        tuner_class_format(&cls, what, sizeof what);
        attn_wisdom_file(path, sizeof path);
        st = attn_fail(err, ATTN_ERR_UNSUPPORTED, "no usable wisdom for %s in %s", what, path);
    } else if (!found && (flags & ATTN_MEASURE)) {
        st = measure(p, threads, &cls, plan, err);
    } else if (!found) {
        st = tuner_estimate(p, threads, &plan->config, err);
        plan->source = forced ? ATTN_PLAN_FROM_FORCED : ATTN_PLAN_FROM_ESTIMATE;
    }
    if (st != ATTN_OK) {
        free(plan);
        return NULL;
    }
    char choice[200];
    tuner_config_format(&plan->config, choice, sizeof choice);
    int n = snprintf(plan->description, sizeof plan->description, "%s threads=%d, from %s",
                     choice, threads, attn_plan_source_name(plan->source));
    if (plan->source == ATTN_PLAN_FROM_NEAREST && n > 0 && (size_t)n < sizeof plan->description) {
        char what[160];
        tuner_class_format(&near_cls, what, sizeof what);
        snprintf(plan->description + n, sizeof plan->description - (size_t)n, " (tuned for %s)",
                 what);
    }
    return plan;
}

attn_plan *attn_plan_create(const attn_problem *p, unsigned flags, attn_error *err)
{
    return attn_plan_create_threads(p, 0, flags, err);
}

attn_status attn_execute(const attn_plan *plan, const void *q, const void *k, const void *v,
                         void *o, attn_error *err)
{
    if (!plan)
        return attn_fail(err, ATTN_ERR_INVALID, "plan is NULL");
    attn_variant_info info;
    attn_variant_get(plan->config.variant, &info);
    return attn_run_variant(info.name, &plan->problem, &plan->config.params, q, k, v, o, err);
}

const char *attn_plan_describe(const attn_plan *plan)
{
    return plan ? plan->description : "(no plan)";
}

void attn_plan_get_info(const attn_plan *plan, attn_plan_info *info)
{
    attn_variant_info v;
    attn_variant_get(plan->config.variant, &v);
    *info = (attn_plan_info){.variant = v.name, .params = plan->config.params,
                             .threads = plan->config.params.threads, .source = plan->source,
                             .tuned_seconds = plan->tuned_seconds};
}

void attn_plan_destroy(attn_plan *plan) { free(plan); }

/* ---- wisdom ------------------------------------------------------------------------------- */

attn_status attn_wisdom_set_file(const char *path, attn_error *err)
{
    char *copy = NULL;
    if (path && !(copy = strdup(path)))
        return attn_fail(err, ATTN_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&wisdom_lock);
    free(wisdom_override);
    wisdom_override = copy;
    wisdom_set_free(&wisdom_memory);
    wisdom_loaded = false;
    pthread_mutex_unlock(&wisdom_lock);
    return ATTN_OK;
}

void attn_wisdom_file(char *buf, size_t len)
{
    pthread_mutex_lock(&wisdom_lock);
    wisdom_path(wisdom_override, buf, len);
    pthread_mutex_unlock(&wisdom_lock);
}

attn_status attn_wisdom_import_file(const char *path, attn_error *err)
{
    wisdom_set set;
    size_t foreign;
    char warning[512];
    switch (wisdom_read(path, &set, &foreign, warning, sizeof warning, err)) {
    case WISDOM_READ_BAD:
        return err ? err->status : ATTN_ERR_IO;
    case WISDOM_READ_MISSING:
        return attn_fail(err, ATTN_ERR_IO, "wisdom file %s: no such file", path);
    case WISDOM_READ_OK:
        break;
    }
    if (set.count == 0) {
        wisdom_set_free(&set);
        return attn_fail(err, ATTN_ERR_INVALID, "wisdom file %s holds no wisdom for this machine and "
                    "build%s%s", path, warning[0] ? ": " : "", warning);
    }
    attn_status st = ATTN_OK;
    pthread_mutex_lock(&wisdom_lock);
    load_wisdom_locked();
    for (size_t i = 0; i < set.count && st == ATTN_OK; i++)
        st = wisdom_set_put(&wisdom_memory, &set.entries[i]);
    pthread_mutex_unlock(&wisdom_lock);
    wisdom_set_free(&set);
    return st == ATTN_OK ? ATTN_OK : attn_fail(err, st, "out of memory importing wisdom");
}

attn_status attn_wisdom_export_file(const char *path, attn_error *err)
{
    wisdom_set copy = {0};
    attn_status st = ATTN_OK;
    pthread_mutex_lock(&wisdom_lock);
    load_wisdom_locked();
    for (size_t i = 0; i < wisdom_memory.count && st == ATTN_OK; i++)
        st = wisdom_set_put(&copy, &wisdom_memory.entries[i]);
    pthread_mutex_unlock(&wisdom_lock);
    if (st == ATTN_OK)
        st = wisdom_write_file(path, &copy, err);
    else
        attn_fail(err, st, "out of memory exporting wisdom");
    wisdom_set_free(&copy);
    return st;
}
