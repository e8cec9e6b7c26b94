/* test_api_pages.c — unit tests of paged K/V in the public API: every variant that reads pages
 * gives, on K/V scattered over shuffled pages, what it gives on the same keys stored
 * contiguously; plans carry the block table per execute (bits equal to attn_run_variant's) and
 * refuse a table that is missing, unplanned, out of range or under the output; a table of
 * repeated pages is legal; attn_problem_set_pages sets the pool layout. The conformance runner
 * checks every variant against the oracle on paged problems; this file checks the API around
 * them. */
#include "attn.h"
#include "check.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, HQ = 4, HKV = 2, LQ = 3, LK = 37, D = 16, PAGE = 8 };
enum { USED = (LK + PAGE - 1) / PAGE, PAGES = B * USED + 1 }; /* one spare page */

static uint64_t seed = 0x5eed9a6e;

static void fill(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2.0 * attn_rng_unit(&seed) - 1.0);
}

/* The contiguous problem and its paged twin: the same keys, in pages of a shuffled pool. */
typedef struct twins {
    attn_problem flat, paged;
    float q[B * HQ * LQ * D], k[B * HKV * LK * D], v[B * HKV * LK * D];
    float pk[PAGES * HKV * PAGE * D], pv[PAGES * HKV * PAGE * D];
    int32_t table[B * (USED + 2)]; /* row stride USED + 2: entries past USED are never read */
    int32_t kv_lens[B];
} twins;

static void make_twins(twins *w)
{
    attn_problem_init(&w->flat, B, HQ, HKV, LQ, LK, D);
    w->flat.causal = true;
    w->kv_lens[0] = LK;
    w->kv_lens[1] = 20;
    w->flat.kv_lens = w->kv_lens;
    fill(w->q, sizeof w->q / sizeof *w->q);
    fill(w->k, sizeof w->k / sizeof *w->k);
    fill(w->v, sizeof w->v / sizeof *w->v);
    int32_t order[PAGES];
    for (int i = 0; i < PAGES; i++)
        order[i] = i;
    for (int i = PAGES - 1; i > 0; i--) {
        const int j = (int)(attn_rng_next(&seed) % (uint64_t)(i + 1));
        const int32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < sizeof w->pk / sizeof *w->pk; i++)
        w->pk[i] = w->pv[i] = NAN; /* rows no table names: a read of one shows */
    for (int b = 0; b < B; b++)
        for (int k = 0; k < USED + 2; k++)
            w->table[b * (USED + 2) + k] = k < USED ? order[b * USED + k] : -1;
    w->paged = w->flat;
    attn_problem_set_pages(&w->paged, PAGE, PAGES, w->table, USED + 2);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < HKV; h++)
            for (int j = 0; j < LK; j++) {
                const int64_t page = w->table[b * (USED + 2) + j / PAGE];
                const size_t to = (size_t)(((page * HKV + h) * PAGE + j % PAGE) * D);
                const size_t from = (size_t)(((b * HKV + h) * LK + j) * D);
                memcpy(w->pk + to, w->k + from, D * sizeof(float));
                memcpy(w->pv + to, w->v + from, D * sizeof(float));
            }
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, isnan(a[i]) != isnan(b[i]) ? INFINITY : fabs((double)a[i] - b[i]));
    return m;
}

static void test_layout(void)
{
    attn_problem p;
    attn_problem_init(&p, 2, 4, 2, 3, 37, 16);
    const int32_t table[10] = {0};
    attn_problem_set_pages(&p, 8, 11, table, 0);
    CHECK_EQ_INT(p.page_size, 8);
    CHECK_EQ_INT(p.num_pages, 11);
    CHECK(p.block_table == table);
    CHECK_EQ_INT(p.k.seq, 16);
    CHECK_EQ_INT(p.k.head, 8 * 16);
    CHECK_EQ_INT(p.k.batch, 2 * 8 * 16);
    CHECK_EQ_INT(p.v.batch, p.k.batch);
    CHECK_EQ_INT(p.q.batch, 4 * 3 * 16); /* Q and O keep theirs */
    int64_t e = 0;
    CHECK(attn_tensor_extent(&p, 'k', &e, NULL) == ATTN_OK && e == 11 * 2 * 8 * 16);
    /* every entry names page 0: repeated pages are legal */
    CHECK(attn_problem_validate(&p, NULL) == ATTN_OK);
    CHECK(attn_problem_features(&p) == ATTN_FEATURE_PAGED);
}

/* Each variant that reads pages gives on the paged twin what it gives on the contiguous one. */
static void test_variants(twins *w)
{
    static float o_flat[B * HQ * LQ * D], o_paged[B * HQ * LQ * D];
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        attn_variant_get(i, &info);
        if (!(info.features & ATTN_FEATURE_PAGED) || !(info.dtypes & 1u << ATTN_F32))
            continue;
        if (!info.supported) { /* e.g. amx_bf16_emu without AVX-512 BF16 */
            printf("test_api_pages: SKIP %s: %s\n", info.name, info.why_not);
            continue;
        }
        for (int threads = 1; threads <= 3; threads += 2) {
            attn_params params;
            attn_error err;
            CHECK(attn_variant_default_params(info.name, &w->flat, &params, &err) == ATTN_OK);
            params.threads = threads;
            attn_status s1 = attn_run_variant(info.name, &w->flat, &params, w->q, w->k, w->v,
                                              o_flat, &err);
            attn_status s2 = attn_run_variant(info.name, &w->paged, &params, w->q, w->pk, w->pv,
                                              o_paged, &err);
            CHECK_MSG(s1 == ATTN_OK && s2 == ATTN_OK, "%s: %s", info.name, err.message);
            const double diff = max_diff(o_flat, o_paged, sizeof o_flat / sizeof *o_flat);
            CHECK_MSG(diff <= 4 * info.tolerance, "%s, %d threads: paged differs by %g",
                      info.name, threads, diff);
        }
    }
}

static void test_plan(twins *w)
{
    static float o_run[B * HQ * LQ * D], o_exec[B * HQ * LQ * D];
    attn_error err;
    const attn_plan_options options = {.threads = 2};
    attn_plan *plan = attn_plan_create(&w->paged, &options, &err);
    CHECK_MSG(plan != NULL, "%s", err.message);
    if (!plan)
        return;
    attn_plan_info info;
    attn_plan_get_info(plan, &info);
    attn_execute_args a = {.q = w->q, .k = w->pk, .v = w->pv, .o = o_exec,
                           .kv_lens = w->kv_lens, .block_table = w->table};
    CHECK_MSG(attn_execute(plan, &a, &err) == ATTN_OK, "%s", err.message);
    attn_params params = info.params;
    params.threads = info.threads;
    CHECK(attn_run_variant(info.variant, &w->paged, &params, w->q, w->pk, w->pv, o_run, &err) ==
          ATTN_OK);
    CHECK(memcmp(o_run, o_exec, sizeof o_run) == 0);

    /* Another table on the next call: the pages of sequence 0 and 1 swapped with their data. */
    static float pk2[PAGES * HKV * PAGE * D], pv2[PAGES * HKV * PAGE * D];
    int32_t table2[B * (USED + 2)];
    for (int b = 0; b < B; b++)
        for (int k = 0; k < USED + 2; k++)
            table2[b * (USED + 2) + k] = w->table[(1 - b) * (USED + 2) + k];
    const size_t page_floats = HKV * PAGE * D;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < USED; k++) {
            const size_t to = (size_t)table2[b * (USED + 2) + k] * page_floats;
            const size_t from = (size_t)w->table[b * (USED + 2) + k] * page_floats;
            memcpy(pk2 + to, w->pk + from, page_floats * sizeof(float));
            memcpy(pv2 + to, w->pv + from, page_floats * sizeof(float));
        }
    attn_execute_args a2 = a;
    a2.k = pk2;
    a2.v = pv2;
    a2.block_table = table2;
    a2.o = o_run;
    CHECK_MSG(attn_execute(plan, &a2, &err) == ATTN_OK, "%s", err.message);
    CHECK(memcmp(o_run, o_exec, sizeof o_run) == 0);

    /* What execute refuses. */
    attn_execute_args bad = a;
    bad.block_table = NULL;
    CHECK(attn_execute(plan, &bad, &err) == ATTN_ERR_INVALID &&
          strstr(err.message, "block_table is NULL"));
    int32_t wrong[B * (USED + 2)];
    memcpy(wrong, w->table, sizeof wrong);
    wrong[USED + 2 + 1] = PAGES;
    bad.block_table = wrong;
    CHECK(attn_execute(plan, &bad, &err) == ATTN_ERR_INVALID &&
          strstr(err.message, "block_table[1][1]"));
    wrong[USED + 2 + 1] = w->table[USED + 2 + 1];
    wrong[USED] = -7; /* past the pages in use: never read, never checked */
    CHECK(attn_execute(plan, &bad, &err) == ATTN_OK);
    /* the output over the table: a buffer that holds both */
    int32_t *shared = malloc(sizeof o_run);
    if (shared) {
        memcpy(shared, w->table, sizeof w->table);
        bad.block_table = shared;
        bad.o = shared;
        CHECK(attn_execute(plan, &bad, &err) == ATTN_ERR_INVALID &&
              strstr(err.message, "o overlaps block_table"));
        free(shared);
    }
    attn_plan_destroy(plan);

    plan = attn_plan_create(&w->flat, &options, &err);
    CHECK(plan != NULL);
    a.k = w->k;
    a.v = w->v;
    CHECK(attn_execute(plan, &a, &err) == ATTN_ERR_INVALID &&
          strstr(err.message, "block_table is given"));
    attn_plan_destroy(plan);
}

int main(void)
{
    static twins w;
    make_twins(&w);
    test_layout();
    test_variants(&w);
    test_plan(&w);
    return check_summary("test_api_pages");
}
