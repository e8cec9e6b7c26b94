/* conformance_guard.c — one guarded run of a variant and its checks: the output between guard
 * bands of a signalling-NaN sentinel, signals (SIGILL, SIGSEGV, SIGBUS, SIGFPE) caught as a
 * FAILED line, the upper halves of the vector registers after the call, the error against the
 * reference, rows without keys, unwritten elements, changed inputs, repeated runs; and the
 * self-test (--selftest-broken), which damages results and crashes on purpose and passes only if
 * each is caught. */
#include "conformance.h"

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
#include <unistd.h>

/* The output sentinel is a signalling NaN of the output's type: arithmetic and the harness's
 * conversions quieten NaNs, so no value a variant computes can carry these bits. */
#define SENTINEL_BITS 0x7fbadbadu
#define SENTINEL_BF16 0x7fa5u
#define SENTINEL_F16 0x7d5bu

/* ---- catching signals -------------------------------------------------------------------- */

/* A signal on the thread that called the variant jumps back to guarded_run. A signal on one of
 * the library's worker threads cannot jump across threads: it prints a FAILED line naming the
 * call and ends the process. Anywhere else the signal takes its default action. */
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

void install_crash_handlers(void)
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

/* Runs a variant (or, in the self-test, crash_test) with the handlers armed; `context` names
 * the call in a worker thread's FAILED line. Returns the signal caught, or 0. */
int guarded_run(const char *context, const char *name, const attn_problem *p,
                const attn_params *params, const void *q, const void *k, const void *v, void *o,
                attn_error *err, attn_status *status, crash_test_fn crash_test)
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

void out_init(out_buffer *ob, int64_t extent, attn_dtype t)
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

void out_fill_sentinel(out_buffer *ob)
{
    const uint32_t s = sentinel_bits(ob->t);
    for (int64_t e = 0; e < ob->total; e++) {
        if (ob->esize == 4)
            ((uint32_t *)(void *)ob->base)[e] = s;
        else
            ((uint16_t *)(void *)ob->base)[e] = (uint16_t)s;
    }
}

bool out_untouched(const out_buffer *ob)
{
    for (int64_t e = 0; e < ob->total; e++)
        if (out_bits(ob, e) != sentinel_bits(ob->t))
            return false;
    return true;
}

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

/* Runs one variant on one typed case as plan_run() says (`threads` >= 0 fixes the thread
 * count) and checks everything; `corrupt` damages the result first (self-test only).
 * `replay` is the line that replays the run. */
void run_case(const attn_variant_info *info, const test_case *c, typed_case *tc, int threads,
              corruption corrupt, const char *replay, run_result *res)
{
    memset(res, 0, sizeof *res);
    const reference *ref = typed_reference(c, tc, reference_of(info));
    /* The floor plus a half output's roundoff, or the declared tolerance (which includes it).
     * Outputs below the half type's normal range round to a fixed spacing instead: half of f16's
     * smallest subnormal, 2^-25, is 0.003 of an ||O*|| of 1e-5 (seed 62, avx2, a d = 1 row). */
    const attn_dtype out = tc->p.out_dtype;
    const double subnormal_half_step = out == ATTN_F16 ? 0x1p-25 : 0x1p-134;
    const double floor = ref->floor + (out == ATTN_F32 ? 0.0
                                       : attn_dtype_unit_roundoff(out) +
                                             (ref->ref_max > 0 ? subnormal_half_step / ref->ref_max
                                                               : 0.0));
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

    const unsigned missing = (unsigned)attn_problem_features(&tc->p) & ~info->features;
    const attn_variant *desc = attn_registry[attn_variant_find(info->name)];
    const char *refused = desc->refuses ? desc->refuses(&tc->p) : NULL;
    if (missing || refused) { /* what the variant does not implement: refused, named, untouched */
        char names[128];
        if (refused)
            snprintf(names, sizeof names, "%s", refused);
        else
            attn_features_format(missing, names, sizeof names);
        res->signal = guarded_run(context, info->name, &tc->p, &rp.params, tc->q, tc->k, tc->v,
                                  ob.o, &err, &res->status, NULL);
        if (res->signal || res->status != ATTN_ERR_UNSUPPORTED || !strstr(err.message, names) ||
            !out_untouched(&ob))
            snprintf(res->message, sizeof res->message, "does not implement %s, but the run %s",
                     names, res->signal ? "crashed" : res->status != ATTN_ERR_UNSUPPORTED
                                              ? "was not refused as unsupported"
                                              : !strstr(err.message, names)
                                                    ? "was refused without naming it"
                                                    : "wrote the output");
        else
            res->ok = true;
        free(ob.base);
        return;
    }
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

int selftest(runner *rn)
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
