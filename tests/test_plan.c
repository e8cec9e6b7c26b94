/* test_plan.c — a plan made once and executed many times (attn_plan_create, attn_execute).
 *
 * 1. A decode loop: one plan whose problem has key lengths (and, in a second run, a mask)
 *    executes 1,000 steps while kv_lens grow by one key per step. After the first step no step
 *    may allocate (every malloc, calloc, realloc, aligned_alloc, posix_memalign and memalign of
 *    the process is counted), and every step's output must equal, bit for bit, that of
 *    attn_run_variant with the plan's variant, parameters and threads on the same arrays. For
 *    the planner's choice (1, 2 and 4 threads, with and without a mask) and for every float32
 *    variant this CPU runs (1, 2, 4 threads; VARIANT_STEPS steps).
 * 2. The options: threads, flags, disable_isa (the choice avoids the ISAs turned off), the log
 *    callback (a corrupt wisdom file is reported through it).
 * 3. Errors of execute: NULL arguments, a mask or kv_lens given when the plan said none (and
 *    missing when it said one), kv_lens out of range, a bad scale, O overlapping an input.
 *
 * Counting allocations: without a sanitizer this file defines the allocation functions itself
 * (the executable's definitions win over libc's for the whole process, libattn included) and
 * forwards them to glibc's __libc_* entry points; under ASan or TSan, whose runtimes own these
 * functions, it installs the sanitizer's malloc hook instead. */
#include "attn.h"
#include "check.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

static atomic_long allocations;

#ifdef UNDER_SANITIZER
/* From the sanitizers' allocator interface (sanitizer/allocator_interface.h, which GCC does not
 * install): the runtime calls the hooks on every allocation and release. */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

static void count_malloc(const volatile void *ptr, size_t size)
{
    (void)ptr, (void)size;
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
}

static void count_free(const volatile void *ptr) { (void)ptr; }

static void start_counting(void)
{
    if (!__sanitizer_install_malloc_and_free_hooks(count_malloc, count_free)) {
        printf("FAILED: the sanitizer refused the malloc hooks\n");
        exit(1);
    }
}
#else
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void *__libc_memalign(size_t alignment, size_t size);
void __libc_free(void *ptr);

static void counted(void) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); }

void *malloc(size_t size) { counted(); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { counted(); return __libc_calloc(n, size); }
void *realloc(void *ptr, size_t size) { counted(); return __libc_realloc(ptr, size); }
void free(void *ptr) { __libc_free(ptr); }
void *memalign(size_t alignment, size_t size)
{
    counted();
    return __libc_memalign(alignment, size);
}
void *aligned_alloc(size_t alignment, size_t size)
{
    counted();
    return __libc_memalign(alignment, size);
}
int posix_memalign(void **out, size_t alignment, size_t size)
{
    counted();
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)))
        return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

static void start_counting(void) {}
#endif

enum { STEPS = 1000, BATCH = 2, HEADS_Q = 4, HEADS_KV = 1, LEN_KV = 1024, DIM = 64 };
/* Steps of the loops over every variant: all of them, but fewer under a sanitizer or qemu-user
 * (ATTN_TEST_EMULATED, set by a cross build), where each step (and its reference run) is some
 * fifty times slower; the planner's own choice always runs
 * the full STEPS. */
#if defined(UNDER_SANITIZER) || defined(ATTN_TEST_EMULATED)
enum { VARIANT_STEPS = 150, COMPARE_EVERY = 10 }; /* the reference run: every 10th step */
#else
enum { VARIANT_STEPS = STEPS, COMPARE_EVERY = 1 };
#endif

/* The decode problem: Lq = 1 against a cache of LEN_KV keys, of which kv_lens[b] are filled.
 * Two (batch, kv head) groups, so that 2 and 4 threads also split the keys. */
static void decode_problem(attn_problem *p, bool with_mask)
{
    attn_problem_init(p, BATCH, HEADS_Q, HEADS_KV, 1, LEN_KV, DIM);
    static const int32_t any_lens[BATCH] = {0}; /* only whether it is NULL counts to a plan */
    static const float any_mask[1] = {0};
    p->kv_lens = any_lens;
    p->mask = with_mask ? any_mask : NULL;
}

typedef struct arrays {
    float *q, *k, *v, *mask, *o_plan, *o_ref;
    int32_t kv_lens[BATCH];
} arrays;

/* One plan, STEPS steps with growing key lengths: no allocation after step 0, and each step
 * equal to attn_run_variant's. forced: the variant ATTN_FORCE_VARIANT names (NULL: the
 * planner's own choice). */
static void decode_loop(const arrays *a_in, const char *forced, int threads, bool with_mask,
                        int steps, bool peer_library)
{
    arrays a = *a_in;
    if (forced)
        setenv("ATTN_FORCE_VARIANT", forced, 1);
    else
        unsetenv("ATTN_FORCE_VARIANT");
    attn_problem p;
    decode_problem(&p, with_mask);
    attn_error err = {0};
    const long before_plan = atomic_load(&allocations);
    attn_plan *plan = attn_plan_create(&p, &(attn_plan_options){.threads = threads}, &err);
    unsetenv("ATTN_FORCE_VARIANT");
    /* the counter works in this build: making a plan allocates it */
    CHECK_MSG(atomic_load(&allocations) > before_plan, "no allocation counted for a new plan");
    CHECK_MSG(plan, "plan of %s on %d threads: %s", forced ? forced : "(planner)", threads,
              err.message);
    if (!plan)
        return;
    attn_plan_info info;
    attn_plan_get_info(plan, &info);
    CHECK_MSG(!forced || !strcmp(info.variant, forced), "forced %s, got %s",
              forced ? forced : "-", info.variant);
    CHECK_MSG(info.threads == threads, "threads %d, asked %d", info.threads, threads);
    p.mask = with_mask ? a.mask : NULL; /* the reference run takes its arrays in the problem */
    p.kv_lens = a.kv_lens;
    const size_t out_bytes = (size_t)(BATCH * HEADS_Q * DIM) * sizeof(float);
    long stepped_allocations = 0;
    int mismatches = 0, first_mismatch = -1;
    for (int step = 0; step < steps; step++) {
        a.kv_lens[0] = step + 1 < LEN_KV ? step + 1 : LEN_KV;   /* grows from one key */
        a.kv_lens[1] = step + 600 < LEN_KV ? step + 600 : LEN_KV; /* grows, then full */
        const attn_execute_args args = {.q = a.q, .k = a.k, .v = a.v, .o = a.o_plan,
                                        .mask = with_mask ? a.mask : NULL, .kv_lens = a.kv_lens};
        const long before = atomic_load(&allocations);
        const attn_status s = attn_execute(plan, &args, &err);
        const long made = atomic_load(&allocations) - before;
        CHECK_MSG(s == ATTN_OK, "step %d: %s", step, err.message);
        if (step > 0)
            stepped_allocations += made;
        if (step % COMPARE_EVERY) {
            if (s != ATTN_OK)
                break;
            continue;
        }
        const attn_status r =
            attn_run_variant(info.variant, &p, &info.params, a.q, a.k, a.v, a.o_ref, &err);
        CHECK_MSG(r == ATTN_OK, "reference step %d: %s", step, err.message);
        if (s != ATTN_OK || r != ATTN_OK)
            break;
        if (memcmp(a.o_plan, a.o_ref, out_bytes) && mismatches++ == 0)
            first_mismatch = step;
    }
    printf("%-12s threads=%d %s: %ld allocations in steps 1..%d, %d of the steps compared "
           "(every %d) differ from attn_run_variant\n", info.variant, threads,
           with_mask ? "mask+kv_lens" : "kv_lens", stepped_allocations, steps - 1, mismatches,
           (int)COMPARE_EVERY);
    /* A peer's library (BLIS packs through its own memory pool on every sgemm) allocates by its
     * own rules: reported above, not ours to forbid. */
    CHECK_MSG(stepped_allocations == 0 || peer_library,
              "%s threads=%d: %ld allocations after the first step", info.variant, threads,
              stepped_allocations);
    CHECK_MSG(mismatches == 0, "%s threads=%d: %d steps differ from attn_run_variant, first %d",
              info.variant, threads, mismatches, first_mismatch);
    attn_plan_destroy(plan);
}

static void test_decode_loops(void)
{
    arrays a = {0};
    const size_t nq = (size_t)(BATCH * HEADS_Q * DIM), nkv = (size_t)(BATCH * LEN_KV * DIM);
    a.q = check_floats(nq, 1);
    a.k = check_floats(nkv, 2);
    a.v = check_floats(nkv, 3);
    a.mask = check_floats(LEN_KV, 4); /* one row (Lq = 1), values in [-1, 1) */
    a.o_plan = calloc(nq, sizeof(float));
    a.o_ref = calloc(nq, sizeof(float));
    CHECK_MSG(a.q && a.k && a.v && a.mask && a.o_plan && a.o_ref, "out of memory");
    if (check_failures)
        return;
    for (int j = 0; j < LEN_KV; j += 5)
        a.mask[j] = -INFINITY;
    const int thread_counts[] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        decode_loop(&a, NULL, thread_counts[t], false, STEPS, false);
        decode_loop(&a, NULL, thread_counts[t], true, STEPS, false);
    }
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        attn_variant_get(i, &info);
        /* the estimate never picks a reduced-precision variant (attn.h): those need wisdom */
        if (!info.supported || !(info.dtypes & (1u << ATTN_F32)) ||
            info.compute_dtype != ATTN_F32)
            continue;
        const char *name = info.name; /* the registry's string, stable */
        /* the mask on 2 threads, unless the variant refuses one as unsupported (ggml: its mask
         * is f16) */
        attn_problem masked;
        decode_problem(&masked, true);
        attn_error refusal = {0};
        setenv("ATTN_FORCE_VARIANT", name, 1);
        attn_plan *probe = attn_plan_create(&masked, &(attn_plan_options){.threads = 2}, &refusal);
        unsetenv("ATTN_FORCE_VARIANT");
        const bool takes_mask = probe || refusal.status != ATTN_ERR_UNSUPPORTED;
        attn_plan_destroy(probe);
        for (int t = 0; t < 3; t++)
            decode_loop(&a, name, thread_counts[t], t == 1 && takes_mask, VARIANT_STEPS,
                        info.blas_core != NULL);
    }
    free(a.q); free(a.k); free(a.v); free(a.mask); free(a.o_plan); free(a.o_ref);
}

typedef struct log_record {
    int calls;
    char last[512];
} log_record;

static void record_log(void *ctx, const char *message)
{
    log_record *r = ctx;
    r->calls++;
    snprintf(r->last, sizeof r->last, "%s", message);
}

/* A comma-list item of `list` equal to `name`. */
static bool in_list(const char *list, const char *name)
{
    const size_t n = strlen(name);
    for (const char *s = list; s && *s; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL)
        if (!strncmp(s, name, n) && (s[n] == ',' || s[n] == '\0'))
            return true;
    return false;
}

static void test_options(const char *dir)
{
    attn_problem p;
    attn_problem_init(&p, 1, 2, 1, 3, 40, 16);
    attn_error err = {0};

    /* disable_isa: for each ISA variant this CPU runs, turning its ISAs off must choose a
     * variant that needs none of them. */
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info v;
        attn_variant_get(i, &v);
        if (!v.supported || !v.isa[0])
            continue;
        char isa[128];
        snprintf(isa, sizeof isa, "%s", v.isa);
        attn_plan *plan = attn_plan_create(
            &p, &(attn_plan_options){.threads = 1, .disable_isa = isa}, &err);
        CHECK_MSG(plan, "disable_isa=%s: %s", isa, err.message);
        if (!plan)
            continue;
        attn_plan_info info;
        attn_plan_get_info(plan, &info);
        attn_variant_info chosen;
        attn_variant_get(attn_variant_find(info.variant), &chosen);
        char chosen_isa[128];
        snprintf(chosen_isa, sizeof chosen_isa, "%s", chosen.isa);
        for (const char *s = isa; s; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL) {
            char name[32];
            snprintf(name, sizeof name, "%.*s", (int)strcspn(s, ","), s);
            CHECK_MSG(!in_list(chosen_isa, name), "disable_isa=%s chose %s, which needs %s", isa,
                      info.variant, chosen_isa);
        }
        attn_plan_destroy(plan);
    }
    CHECK_MSG(!attn_plan_create(&p, &(attn_plan_options){.disable_isa = "avx9000"}, &err) &&
                  err.status == ATTN_ERR_INVALID && strstr(err.message, "avx9000"),
              "unknown ISA name: %s", err.message);
    CHECK_MSG(!attn_plan_create(&p, &(attn_plan_options){.threads = ATTN_MAX_THREADS + 1}, &err) &&
                  err.status == ATTN_ERR_INVALID, "too many threads");
    CHECK_MSG(!attn_plan_create(&p, &(attn_plan_options){.flags = 1u << 9}, &err) &&
                  err.status == ATTN_ERR_INVALID, "unknown flag");
    attn_plan *plan = attn_plan_create(&p, NULL, &err);
    CHECK_MSG(plan, "NULL options: %s", err.message);
    attn_plan_info info = {0};
    attn_plan_get_info(plan, &info);
    CHECK_MSG(info.threads == attn_default_threads(), "NULL options: %d threads", info.threads);
    attn_plan_destroy(plan);

    /* The log callback gets the warning about a corrupt wisdom file; nothing else is told. */
    char path[4096];
    snprintf(path, sizeof path, "%s/corrupt-wisdom.json", dir);
    FILE *f = fopen(path, "w");
    CHECK_MSG(f, "cannot write %s", path);
    if (!f)
        return;
    fputs("{ not json", f);
    fclose(f);
    attn_wisdom_set_file(path, NULL);
    log_record r = {0};
    plan = attn_plan_create(
        &p, &(attn_plan_options){.threads = 1, .log = record_log, .log_ctx = &r}, &err);
    CHECK_MSG(plan, "a corrupt wisdom file must not stop a plan: %s", err.message);
    CHECK_MSG(r.calls == 1 && strstr(r.last, path) && strstr(r.last, "planning without it"),
              "log: %d calls, last '%s'", r.calls, r.last);
    attn_plan_destroy(plan);
    remove(path);
}

static void test_execute_errors(void)
{
    attn_problem p;
    attn_problem_init(&p, 2, 2, 1, 3, 40, 16);
    const size_t nq = 2 * 2 * 3 * 16, nkv = 2 * 40 * 16;
    float *q = check_floats(nq, 5), *k = check_floats(nkv, 6), *v = check_floats(nkv, 7);
    float *o = calloc(nq, sizeof(float)), *mask = calloc(3 * 40, sizeof(float));
    int32_t lens[2] = {10, 40};
    attn_error err = {0};
    CHECK_MSG(q && k && v && o && mask, "out of memory");
    if (check_failures)
        return;
    const attn_plan_options one = {.threads = 1};
    attn_plan *plain = attn_plan_create(&p, &one, &err);
    p.mask = mask;
    p.kv_lens = lens;
    attn_plan *masked = attn_plan_create(&p, &one, &err);
    CHECK_MSG(plain && masked, "plans: %s", err.message);
    if (!plain || !masked)
        return;
    const attn_execute_args ok_plain = {.q = q, .k = k, .v = v, .o = o};
    const attn_execute_args ok_masked = {.q = q, .k = k, .v = v, .o = o, .mask = mask,
                                         .kv_lens = lens};
    CHECK_MSG(attn_execute(plain, &ok_plain, &err) == ATTN_OK, "%s", err.message);
    CHECK_MSG(attn_execute(masked, &ok_masked, &err) == ATTN_OK, "%s", err.message);
    const struct {
        const char *what;
        const attn_plan *plan;
        attn_execute_args args;
        const char *says; /* in the message */
    } bad[] = {
        {"NULL q", plain, {.k = k, .v = v, .o = o}, "must not be NULL"},
        {"NULL o", plain, {.q = q, .k = k, .v = v}, "must not be NULL"},
        {"mask not planned", plain, {.q = q, .k = k, .v = v, .o = o, .mask = mask}, "without"},
        {"kv_lens not planned", plain, {.q = q, .k = k, .v = v, .o = o, .kv_lens = lens},
         "without"},
        {"mask missing", masked, {.q = q, .k = k, .v = v, .o = o, .kv_lens = lens}, "mask is NULL"},
        {"kv_lens missing", masked, {.q = q, .k = k, .v = v, .o = o, .mask = mask},
         "kv_lens is NULL"},
        {"negative scale", plain, {.q = q, .k = k, .v = v, .o = o, .scale = -1}, "scale"},
        {"NaN scale", plain, {.q = q, .k = k, .v = v, .o = o, .scale = NAN}, "scale"},
        {"o is k", plain, {.q = q, .k = k, .v = v, .o = k}, "o overlaps k"},
        {"o over the mask", masked, {.q = q, .k = k, .v = v, .o = mask, .mask = mask,
         .kv_lens = lens}, "o overlaps mask"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = (attn_error){0};
        CHECK_MSG(attn_execute(bad[i].plan, &bad[i].args, &err) == ATTN_ERR_INVALID &&
                      strstr(err.message, bad[i].says),
                  "%s: '%s'", bad[i].what, err.message);
    }
    const int32_t out_of_range[][2] = {{-1, 5}, {5, 41}};
    for (int i = 0; i < 2; i++) {
        int32_t l[2] = {out_of_range[i][0], out_of_range[i][1]};
        attn_execute_args a = ok_masked;
        a.kv_lens = l;
        CHECK_MSG(attn_execute(masked, &a, &err) == ATTN_ERR_INVALID &&
                      strstr(err.message, "kv_lens["),
                  "kv_lens {%d, %d}: '%s'", l[0], l[1], err.message);
    }
    CHECK_MSG(attn_execute(NULL, &ok_plain, &err) == ATTN_ERR_INVALID &&
                  strstr(err.message, "NULL"),
              "NULL plan");
    CHECK_MSG(attn_execute(plain, NULL, &err) == ATTN_ERR_INVALID && strstr(err.message, "NULL"),
              "NULL args");

    /* A per-call scale is the planned problem's with that scale. */
    float *o_ref = calloc(nq, sizeof(float));
    attn_plan_info info;
    attn_plan_get_info(masked, &info);
    attn_execute_args scaled = ok_masked;
    scaled.scale = 0.5f;
    attn_problem ps = p;
    ps.scale = 0.5f;
    CHECK_MSG(o_ref && attn_execute(masked, &scaled, &err) == ATTN_OK &&
                  attn_run_variant(info.variant, &ps, &info.params, q, k, v, o_ref, &err) ==
                      ATTN_OK &&
                  !memcmp(o, o_ref, nq * sizeof(float)),
              "per-call scale: %s", err.message);
    /* The plan does not read the problem's kv_lens: values out of range at planning are fine. */
    int32_t unread[2] = {-7, 1 << 30};
    p.kv_lens = unread;
    attn_plan *unread_plan = attn_plan_create(&p, &one, &err);
    CHECK_MSG(unread_plan, "kv_lens' values at planning must not matter: %s", err.message);
    attn_plan_destroy(unread_plan);
    attn_plan_destroy(plain);
    attn_plan_destroy(masked);
    free(q); free(k); free(v); free(o); free(mask); free(o_ref);
}

int main(void)
{
    char dir[] = "/tmp/attn-test-plan-XXXXXX";
    if (!mkdtemp(dir)) {
        printf("FAILED: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char nowhere[4200];
    snprintf(nowhere, sizeof nowhere, "%s/no-wisdom.json", dir);
    attn_wisdom_set_file(nowhere, NULL); /* never the user's wisdom */
    start_counting();
    test_decode_loops();
    test_options(dir);
    test_execute_errors();
    attn_wisdom_set_file(NULL, NULL);
    rmdir(dir);
    return check_summary("test_plan");
}
