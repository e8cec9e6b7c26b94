/* test_wisdom.c — the planner API (attn.h) from a program's point of view: an estimate plan
 * runs what attn_run_variant runs, bit for bit; one plan executes from several threads at once;
 * ATTN_WISDOM_ONLY fails without wisdom; ATTN_MEASURE stores wisdom that export/import carry to
 * a fresh wisdom file; bad arguments are refused with a message. Tiny shapes; no timing checks.
 * usage: test_wisdom TMPDIR */
#include "attn.h"
#include "check.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A plan on one thread with these flags. */
static attn_plan *plan_one_thread(const attn_problem *p, unsigned flags, attn_error *err)
{
    return attn_plan_create(p, &(attn_plan_options){.threads = 1, .flags = flags}, err);
}

static attn_status execute(const attn_plan *plan, const float *q, const float *k, const float *v,
                           float *o, attn_error *err)
{
    return attn_execute(plan, &(attn_execute_args){.q = q, .k = k, .v = v, .o = o}, err);
}

typedef struct exec_job {
    const attn_plan *plan;
    const float *q, *k, *v;
    float *o;
    attn_status status;
} exec_job;

static void *execute_job(void *arg)
{
    exec_job *j = arg;
    for (int r = 0; r < 20 && j->status == ATTN_OK; r++)
        j->status = execute(j->plan, j->q, j->k, j->v, j->o, NULL);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_wisdom TMPDIR\n");
        return 2;
    }
    char wisdom[4096], exported[4096];
    snprintf(wisdom, sizeof wisdom, "%s/test_wisdom.json", argv[1]);
    snprintf(exported, sizeof exported, "%s/test_wisdom_exported.json", argv[1]);
    remove(wisdom);
    remove(exported);
    attn_error err;
    CHECK_MSG(attn_wisdom_set_file(wisdom, &err) == ATTN_OK, "set file: %s", err.message);

    attn_problem p;
    attn_problem_init(&p, 2, 4, 2, 37, 53, 24);
    p.causal = true;
    const int64_t nq = 2 * 4 * 37 * 24, nkv = 2 * 2 * 53 * 24;
    float *q = check_floats(nq, 1), *k = check_floats(nkv, 2), *v = check_floats(nkv, 3);
    float *o1 = calloc((size_t)nq, sizeof *o1), *o2 = calloc((size_t)nq, sizeof *o2),
          *o3 = calloc((size_t)nq, sizeof *o3);
    if (!q || !k || !v || !o1 || !o2 || !o3)
        return 2;

    /* The estimate: no wisdom yet. It runs exactly what attn_run_variant runs. */
    attn_plan *plan = plan_one_thread(&p, ATTN_ESTIMATE, &err);
    CHECK_MSG(plan != NULL, "estimate plan: %s", err.message);
    if (plan) {
        attn_plan_info info;
        attn_plan_get_info(plan, &info);
        CHECK_MSG(info.source == ATTN_PLAN_FROM_ESTIMATE &&
                      strstr(attn_plan_describe(plan), "from estimate"),
                  "estimate source: %s", attn_plan_describe(plan));
        CHECK_MSG(execute(plan, q, k, v, o1, &err) == ATTN_OK, "execute: %s", err.message);
        CHECK_MSG(attn_run_variant(info.variant, &p, &info.params, q, k, v, o2, &err) == ATTN_OK,
                  "run_variant: %s", err.message);
        CHECK_MSG(!memcmp(o1, o2, (size_t)nq * sizeof *o1), "plan and attn_run_variant differ");

        /* One plan, two threads, distinct outputs: same bits as the single run. Skipped where
         * threads cannot be created (ATTN_SERIAL=1: the cross suite under qemu-user). */
        const char *serial = getenv("ATTN_SERIAL");
        if (serial && !strcmp(serial, "1")) {
            printf("test_wisdom: ATTN_SERIAL=1, concurrent execute not checked\n");
        } else {
            memset(o2, 0, (size_t)nq * sizeof *o2);
            exec_job jobs[2] = {{plan, q, k, v, o2, ATTN_OK}, {plan, q, k, v, o3, ATTN_OK}};
            pthread_t t[2];
            int started = 0;
            while (started < 2 && !pthread_create(&t[started], NULL, execute_job, &jobs[started]))
                started++;
            for (int i = 0; i < started; i++)
                pthread_join(t[i], NULL);
            CHECK_MSG(started == 2, "pthread_create failed");
            CHECK_MSG(jobs[0].status == ATTN_OK && jobs[1].status == ATTN_OK,
                      "concurrent execute failed");
            CHECK_MSG(!memcmp(o1, o2, (size_t)nq * sizeof *o1) &&
                          !memcmp(o1, o3, (size_t)nq * sizeof *o1),
                      "concurrent executions differ from the single one");
        }
        attn_plan_destroy(plan);
    }

    /* Wisdom only: nothing tuned yet. */
    CHECK_MSG(plan_one_thread(&p, ATTN_WISDOM_ONLY, &err) == NULL &&
                  err.status == ATTN_ERR_UNSUPPORTED && strstr(err.message, wisdom),
              "wisdom-only without wisdom must fail naming the file: %s", err.message);

    /* Measure: tunes (tiny shape, so quickly), then the same problem is wisdom. */
    plan = plan_one_thread(&p, ATTN_MEASURE, &err);
    CHECK_MSG(plan != NULL, "measure plan: %s", err.message);
    if (plan) {
        CHECK_MSG(strstr(attn_plan_describe(plan), "from measure") != NULL, "measure: %s",
                  attn_plan_describe(plan));
        CHECK_MSG(execute(plan, q, k, v, o1, &err) == ATTN_OK, "execute: %s", err.message);
        attn_plan_destroy(plan);
    }
    plan = plan_one_thread(&p, ATTN_WISDOM_ONLY, &err);
    CHECK_MSG(plan && strstr(attn_plan_describe(plan), "from wisdom"), "wisdom after measure: %s",
              plan ? attn_plan_describe(plan) : err.message);
    attn_plan_destroy(plan);

    /* Export, switch to an empty wisdom file, import: wisdom again. */
    CHECK_MSG(attn_wisdom_export_file(exported, &err) == ATTN_OK, "export: %s", err.message);
    remove(wisdom);
    CHECK_MSG(attn_wisdom_set_file(wisdom, &err) == ATTN_OK, "set file: %s", err.message);
    CHECK_MSG(plan_one_thread(&p, ATTN_WISDOM_ONLY, &err) == NULL, "wisdom was dropped");
    CHECK_MSG(attn_wisdom_import_file(exported, &err) == ATTN_OK, "import: %s", err.message);
    plan = plan_one_thread(&p, ATTN_WISDOM_ONLY, &err);
    CHECK_MSG(plan != NULL, "wisdom after import: %s", err.message);
    attn_plan_destroy(plan);

    /* Accuracy bounds: a float32 problem planned with a tight bound computes in float32, and its
     * measured error is within the bound; a bound no variant meets is refused, never ignored. */
    attn_plan_options strict = {.threads = 1, .flags = ATTN_MEASURE, .max_rel_err = 1e-5};
    plan = attn_plan_create(&p, &strict, &err);
    CHECK_MSG(plan != NULL, "measure under max_rel_err 1e-5: %s", err.message);
    if (plan) {
        attn_plan_info info;
        attn_plan_get_info(plan, &info);
        CHECK_MSG(info.compute_dtype == ATTN_F32 && info.measured_rel_err <= 1e-5,
                  "max_rel_err 1e-5: %s computes in %s, measured %g", info.variant,
                  attn_dtype_name(info.compute_dtype), info.measured_rel_err);
        attn_plan_destroy(plan);
    }
    const attn_plan_options unreachable = {.threads = 1, .max_rel_err = 1e-12};
    CHECK_MSG(attn_plan_create(&p, &unreachable, &err) == NULL &&
                  err.status == ATTN_ERR_UNSUPPORTED && strstr(err.message, "max_rel_err"),
              "an unreachable bound must be refused: %s", err.message);
    const attn_plan_options negative = {.threads = 1, .max_rel_err = -1},
                            not_a_number = {.threads = 1, .max_rel_err = NAN};
    CHECK_MSG(attn_plan_create(&p, &negative, &err) == NULL && err.status == ATTN_ERR_INVALID &&
                  attn_plan_create(&p, &not_a_number, &err) == NULL &&
                  err.status == ATTN_ERR_INVALID,
              "a negative or NaN bound must be refused");
    remove(wisdom); /* the measurement above wrote it */

    /* Refusals. */
    CHECK_MSG(attn_wisdom_import_file(wisdom, &err) != ATTN_OK,
              "import of a missing file succeeded");
    CHECK_MSG(attn_plan_create(NULL, NULL, &err) == NULL && err.status == ATTN_ERR_INVALID,
              "NULL problem");
    CHECK_MSG(plan_one_thread(&p, 1u << 7, &err) == NULL && err.status == ATTN_ERR_INVALID,
              "unknown flags");
    CHECK_MSG(attn_plan_create(&p, &(attn_plan_options){.threads = -1}, &err) == NULL,
              "negative threads");
    CHECK_MSG(execute(NULL, q, k, v, o1, &err) == ATTN_ERR_INVALID, "NULL plan");
    attn_problem bad = p;
    bad.heads_kv = 3;
    CHECK_MSG(attn_plan_create(&bad, NULL, &err) == NULL && err.status == ATTN_ERR_INVALID,
              "invalid problem");

    remove(wisdom);
    remove(exported);
    free(q); free(k); free(v); free(o1); free(o2); free(o3);
    return check_summary("test_wisdom");
}
