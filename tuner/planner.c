/* planner.c — attn_plan_* and attn_wisdom_* (attn.h), in the manner of FFTW's planner.
 *
 * A plan is chosen, in order: ATTN_FORCE_VARIANT narrows the candidates to one variant; wisdom
 * for this exact problem class; with ATTN_MEASURE, a fast tune within MEASURE_BUDGET seconds
 * whose result becomes wisdom; the nearest tuned problem class of the same kind (causal, masks,
 * key lengths, decode or not, threads) by log-distance of the shapes; the estimate (registry
 * priority and cache-size defaults). A choice whose variant this CPU cannot run now (or that
 * ATTN_DISABLE_ISA turned off), does not read the problem's dtype, or whose parameters do not
 * fit the problem, is skipped.
 *
 * Accuracy: classes are tuned per bound (max_rel_err; 0 = float32 compute only). A variant that
 * computes in bf16 is chosen only from a measurement under a bound — wisdom or ATTN_MEASURE —
 * whose measured error is within the bound; never by the estimate.
 *
 * The plan then resolves the run itself once (runtime/execute.h): the variant, its parameters,
 * the cut over threads and every buffer, so that attn_execute only checks what a call changes
 * and runs.
 *
 * The wisdom in memory is an explicit cache: the wisdom file, read once on first use, plus
 * imports and new measurements, under one mutex. A plan is immutable once created. */
#include "tuner.h"
#include "cpu.h"
#include "error.h"
#include "execute.h"
#include "variant.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const double MEASURE_BUDGET = 10.0; /* seconds ATTN_MEASURE may spend on one problem */

static tuner_progress_fn measure_progress; /* tuner_measure_progress() */
static void *measure_progress_ctx;

void tuner_measure_progress(tuner_progress_fn fn, void *ctx)
{
    measure_progress = fn;
    measure_progress_ctx = ctx;
}

struct attn_plan {
    attn_exec *exec; /* the run, resolved */
    tuner_config config;
    attn_plan_source source;
    double tuned_seconds;
    double rel_err; /* measured for the choice; NaN when unknown */
    int full_variant; /* a reduced-precision choice: the float32 candidate it beat, else -1 */
    double full_median_seconds;
    char description[480];
};

static pthread_mutex_t wisdom_lock = PTHREAD_MUTEX_INITIALIZER;
static char *wisdom_override;   /* attn_wisdom_set_file() */
static bool wisdom_loaded;
static wisdom_set wisdom_memory;

/* A warning for the caller: through its log callback, else on stderr. */
static void plan_log(const attn_plan_options *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void plan_log(const attn_plan_options *o, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (o && o->log)
        o->log(o->log_ctx, message);
    else
        fprintf(stderr, "attn: %s\n", message);
}

/* Reads the wisdom file into memory once; problems with it are reported through o's log (see
 * plan_log), since a plan still succeeds without wisdom. Call with wisdom_lock held. */
static void load_wisdom_locked(const attn_plan_options *o)
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
        plan_log(o, "%s; ignored, planning without it", err.message);
        return;
    }
    if (warning[0])
        plan_log(o, "%s", warning);
    if (wisdom_memory.count == 0) { /* the usual case: the file's set becomes the memory */
        wisdom_set_free(&wisdom_memory);
        wisdom_memory = set;
        return;
    }
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

/* Whether a choice can run p now (CPU, ATTN_DISABLE_ISA, dtype, forced variant, params) within
 * the accuracy bound: its measured error rel_err (NaN: unknown) — or, unknown, its declared
 * tolerance — at most max_rel_err when one is given; reduced precision only when measured. */
static bool usable(const tuner_config *c, double rel_err, const attn_problem *p,
                   const char *forced, double max_rel_err, uint32_t isa_off)
{
    attn_variant_info info;
    char why[200];
    if (c->variant < 0 || c->variant >= attn_variant_count() ||
        (attn_variant_isa(attn_registry[c->variant]) & isa_off) ||
        !tuner_variant_eligible(c->variant, p, max_rel_err > 0, why, sizeof why) ||
        !attn_variant_get(c->variant, &info) || (forced && strcmp(forced, info.name)) ||
        attn_params_check(info.name, p, &c->params, NULL) != ATTN_OK)
        return false;
    if (max_rel_err <= 0)
        return true;
    if (isnan(rel_err))
        return info.compute_dtype == ATTN_F32 && info.tolerance <= max_rel_err;
    return rel_err <= max_rel_err;
}

static double log_ratio(int64_t a, int64_t b) { return fabs(log((double)a / (double)b)); }

/* The tuned class nearest to c of the same kind whose choice runs p; NULL when none. Head
 * dimension weighs most (it shapes the kernel's register tiles), then the sequence lengths,
 * then the batch·heads count and GQA ratio. */
static const wisdom_entry *nearest(const tuner_class *c, const attn_problem *p,
                                   const char *forced, uint32_t isa_off)
{
    const wisdom_entry *best = NULL;
    double best_distance = INFINITY;
    for (size_t i = 0; i < wisdom_memory.count; i++) {
        const wisdom_entry *e = &wisdom_memory.entries[i];
        const tuner_class *x = &e->cls;
        if (x->causal != c->causal || x->mask != c->mask || x->kv_lens != c->kv_lens ||
            (x->len_q == 1) != (c->len_q == 1) || x->threads != c->threads ||
            x->dtype != c->dtype || x->max_rel_err != c->max_rel_err ||
            strcmp(x->options, c->options))
            continue;
        tuner_config cfg = e->config;
        cfg.params.threads = c->threads;
        if (!usable(&cfg, e->rel_err, p, forced, c->max_rel_err, isa_off))
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

/* Records that a plan chose wisdom entry e: its last use, which pruning keeps entries by, is
 * refreshed in memory and in the file, there at most once per USE_RESOLUTION seconds and entry
 * so that planning seldom writes. Failing to write is not the plan's failure: ignored. Call
 * with wisdom_lock held. */
static void mark_used_locked(wisdom_entry *e)
{
    enum { USE_RESOLUTION = 24 * 3600 };
    char recent[32], path[4096];
    wisdom_time(time(NULL) - USE_RESOLUTION, recent, sizeof recent);
    if (strcmp(e->last_used, recent) >= 0)
        return;
    wisdom_now(e->last_used, sizeof e->last_used);
    wisdom_path(wisdom_override, path, sizeof path);
    attn_error ignored;
    wisdom_touch_in_file(path, &e->cls, &ignored);
}

/* Tunes p (fast strategy, small budget), remembers the result and stores it in the file. */
static attn_status measure(const attn_problem *p, int threads, const tuner_class *cls,
                           uint32_t isa_off, const attn_plan_options *o, attn_plan *plan,
                           attn_error *err)
{
    tuner_options opt = {.strategy = TUNER_FAST, .budget_seconds = MEASURE_BUDGET,
                         .threads = threads, .max_rel_err = cls->max_rel_err,
                         .progress = measure_progress, .progress_ctx = measure_progress_ctx};
    char allowed[512] = ""; /* with ISAs turned off: the names of the variants left */
    if (isa_off) {
        for (int i = 0; i < attn_variant_count(); i++)
            if (!(attn_variant_isa(attn_registry[i]) & isa_off))
                snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s",
                         allowed[0] ? "," : "", attn_registry[i]->name);
        if (!allowed[0])
            return attn_fail(err, ATTN_ERR_UNSUPPORTED, "disable_isa leaves no variant");
        opt.only_variant = allowed;
    }
    tuner_result r;
    attn_status st = tuner_run(p, &opt, &r, err);
    if (st != ATTN_OK)
        return st;
    wisdom_entry e;
    tuner_wisdom_entry(p, cls, &r, &e);
    tuner_result_free(&r);
    plan->config = e.config;
    plan->source = ATTN_PLAN_FROM_MEASURE;
    plan->tuned_seconds = e.median_seconds;
    plan->rel_err = e.rel_err;
    plan->full_variant = e.full_variant;
    plan->full_median_seconds = e.full_median_seconds;

    char path[4096];
    wisdom_set one = {.entries = &e, .count = 1, .capacity = 1};
    attn_error werr = {0};
    pthread_mutex_lock(&wisdom_lock);
    wisdom_path(wisdom_override, path, sizeof path);
    wisdom_set_put(&wisdom_memory, &e);
    if (wisdom_merge_into_file(path, &one, &werr) != ATTN_OK) /* the plan stands regardless */
        plan_log(o, "%s", werr.message);
    pthread_mutex_unlock(&wisdom_lock);
    return ATTN_OK;
}

/* "avx512 bq=32 ... threads=1, from wisdom", plus, for a reduced-precision choice, why. */
static void describe(attn_plan *plan, int threads, const tuner_class *cls,
                     const tuner_class *near_cls)
{
    char choice[200];
    size_t n = 0, len = sizeof plan->description;
    char *out = plan->description;
    tuner_config_format(&plan->config, choice, sizeof choice);
    n += (size_t)snprintf(out, len, "%s threads=%d, from %s", choice, threads,
                          attn_plan_source_name(plan->source));
    if (plan->source == ATTN_PLAN_FROM_NEAREST && n < len) {
        char what[200];
        tuner_class_format(near_cls, what, sizeof what);
        n += (size_t)snprintf(out + n, len - n, " (tuned for %s)", what);
    }
    attn_variant_info info, full;
    attn_variant_get(plan->config.variant, &info);
    if (info.compute_dtype != ATTN_F32 && n < len) {
        n += (size_t)snprintf(out + n, len - n,
                              "; computes in %s: measured max_rel_err %.2g <= bound %g",
                              attn_dtype_name(info.compute_dtype), plan->rel_err,
                              cls->max_rel_err);
        if (plan->full_variant >= 0 && attn_variant_get(plan->full_variant, &full) && n < len &&
            plan->tuned_seconds > 0)
            snprintf(out + n, len - n, ", %.2fx the speed of the fastest float32-compute "
                     "candidate (%s)", plan->full_median_seconds / plan->tuned_seconds, full.name);
    }
}

attn_plan *attn_plan_create(const attn_problem *p, const attn_plan_options *options,
                            attn_error *err)
{
    const attn_plan_options none = {0};
    const attn_plan_options *o = options ? options : &none;
    const unsigned flags = o->flags;
    int threads = o->threads;
    if (!p) {
        attn_fail(err, ATTN_ERR_INVALID, "problem is NULL");
        return NULL;
    }
    /* Only whether the problem has key lengths counts: plan as if every sequence were full,
     * without reading the caller's array. */
    attn_problem shape = *p;
    shape.kv_lens = NULL;
    if (attn_problem_validate(&shape, err) != ATTN_OK)
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
    if (!(o->max_rel_err >= 0 && isfinite(o->max_rel_err))) {
        attn_fail(err, ATTN_ERR_INVALID, "max_rel_err must be finite and >= 0 (got %g)",
                  o->max_rel_err);
        return NULL;
    }
    uint32_t isa_off = 0;
    char why[200];
    if (o->disable_isa && !attn_isa_parse_disable(o->disable_isa, &isa_off, why, sizeof why)) {
        attn_fail(err, ATTN_ERR_INVALID, "disable_isa: %s", why);
        return NULL;
    }
    if (threads == 0)
        threads = attn_default_threads();
    const char *forced = NULL;
    if (attn_forced_variant(&forced, err) != ATTN_OK)
        return NULL;
    if (forced && (attn_variant_isa(attn_registry[attn_variant_find(forced)]) & isa_off)) {
        attn_fail(err, ATTN_ERR_UNSUPPORTED, "ATTN_FORCE_VARIANT=%s needs an ISA that "
                  "disable_isa turns off", forced);
        return NULL;
    }
    attn_plan *plan = calloc(1, sizeof *plan);
    int32_t *full_lens = p->kv_lens ? malloc((size_t)p->batch * sizeof *full_lens) : NULL;
    if (!plan || (p->kv_lens && !full_lens)) {
        free(plan);
        free(full_lens);
        attn_fail(err, ATTN_ERR_NOMEM, "out of memory for a plan");
        return NULL;
    }
    for (int64_t b = 0; full_lens && b < p->batch; b++)
        full_lens[b] = (int32_t)(p->len_kv < INT32_MAX ? p->len_kv : INT32_MAX);
    shape.kv_lens = full_lens;
    plan->rel_err = NAN;
    plan->full_variant = -1;
    tuner_class cls;
    tuner_class_of(&shape, threads, o->max_rel_err, &cls);

    pthread_mutex_lock(&wisdom_lock);
    load_wisdom_locked(o);
    const wisdom_entry *exact = wisdom_set_find(&wisdom_memory, &cls);
    const wisdom_entry *near = NULL, *chosen = NULL;
    if (exact && usable(&exact->config, exact->rel_err, &shape, forced, cls.max_rel_err, isa_off)) {
        chosen = exact;
        plan->source = ATTN_PLAN_FROM_WISDOM;
    } else if (!(flags & (ATTN_MEASURE | ATTN_WISDOM_ONLY)) &&
               (near = nearest(&cls, &shape, forced, isa_off))) {
        chosen = near;
        plan->source = ATTN_PLAN_FROM_NEAREST;
    }
    if (chosen) {
        mark_used_locked(&wisdom_memory.entries[chosen - wisdom_memory.entries]);
        plan->config = chosen->config;
        plan->config.params.threads = threads;
        plan->tuned_seconds = chosen->median_seconds;
        plan->rel_err = chosen->rel_err;
        plan->full_variant = chosen->full_variant;
        plan->full_median_seconds = chosen->full_median_seconds;
    }
    tuner_class near_cls = near ? near->cls : cls;
    pthread_mutex_unlock(&wisdom_lock);

    attn_status st = ATTN_OK;
    if (!chosen && (flags & ATTN_WISDOM_ONLY)) {
        char what[200], path[4096];
        tuner_class_format(&cls, what, sizeof what);
        attn_wisdom_file(path, sizeof path);
        st = attn_fail(err, ATTN_ERR_UNSUPPORTED, "no usable wisdom for %s in %s", what, path);
    } else if (!chosen && (flags & ATTN_MEASURE)) {
        /* measuring samples the mask given (see attn.h) */
        st = measure(&shape, threads, &cls, isa_off, o, plan, err);
    } else if (!chosen) {
        st = tuner_estimate_without(&shape, threads, isa_off, &plan->config, err);
        plan->source = forced ? ATTN_PLAN_FROM_FORCED : ATTN_PLAN_FROM_ESTIMATE;
        attn_variant_info info;
        attn_variant_get(plan->config.variant, &info);
        if (st == ATTN_OK && cls.max_rel_err > 0 && info.tolerance > cls.max_rel_err)
            st = attn_fail(err, ATTN_ERR_UNSUPPORTED,
                           "no plan within max_rel_err %g: %s declares tolerance %g and no "
                           "measurement says better (tune this problem with the bound)",
                           cls.max_rel_err, info.name, info.tolerance);
    }
    if (st == ATTN_OK)
        st = attn_exec_create(attn_registry[plan->config.variant], &shape, &plan->config.params,
                              threads, &plan->exec, err);
    free(full_lens);
    if (st != ATTN_OK) {
        free(plan);
        return NULL;
    }
    attn_exec_warm(plan->exec);
    describe(plan, threads, &cls, &near_cls);
    return plan;
}

attn_status attn_execute(const attn_plan *plan, const attn_execute_args *args, attn_error *err)
{
    if (!plan)
        return attn_fail(err, ATTN_ERR_INVALID, "plan is NULL");
    if (!args)
        return attn_fail(err, ATTN_ERR_INVALID, "args is NULL");
    return attn_exec_run(plan->exec, args, err);
}

const char *attn_plan_describe(const attn_plan *plan)
{
    return plan ? plan->description : "(no plan)";
}

void attn_plan_get_info(const attn_plan *plan, attn_plan_info *info)
{
    if (!plan || !info)
        return;
    attn_variant_info v;
    attn_variant_get(plan->config.variant, &v);
    *info = (attn_plan_info){.variant = v.name, .params = plan->config.params,
                             .threads = plan->config.params.threads, .source = plan->source,
                             .tuned_seconds = plan->tuned_seconds,
                             .compute_dtype = v.compute_dtype, .measured_rel_err = plan->rel_err};
}

void attn_plan_destroy(attn_plan *plan)
{
    if (!plan)
        return;
    attn_exec_destroy(plan->exec);
    free(plan);
}

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
    if (!buf || len == 0)
        return;
    pthread_mutex_lock(&wisdom_lock);
    wisdom_path(wisdom_override, buf, len);
    pthread_mutex_unlock(&wisdom_lock);
}

attn_status attn_wisdom_import_file(const char *path, attn_error *err)
{
    if (!path)
        return attn_fail(err, ATTN_ERR_INVALID, "path is NULL");
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
    load_wisdom_locked(NULL);
    for (size_t i = 0; i < set.count && st == ATTN_OK; i++)
        st = wisdom_set_put(&wisdom_memory, &set.entries[i]);
    pthread_mutex_unlock(&wisdom_lock);
    wisdom_set_free(&set);
    return st == ATTN_OK ? ATTN_OK : attn_fail(err, st, "out of memory importing wisdom");
}

attn_status attn_wisdom_export_file(const char *path, attn_error *err)
{
    if (!path)
        return attn_fail(err, ATTN_ERR_INVALID, "path is NULL");
    wisdom_set copy = {0};
    attn_status st = ATTN_OK;
    pthread_mutex_lock(&wisdom_lock);
    load_wisdom_locked(NULL);
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
