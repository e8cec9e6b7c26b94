/* conformance_invalid.c — what must be refused: invalid problems (a table of mutations of one
 * valid problem, each with the status it must get), parameters out of range, thread counts,
 * input types a variant does not declare, unknown and NULL variant names, and a variant this CPU
 * cannot run; each with a message and the output untouched. And the dispatch check: a variant is
 * supported exactly when every ISA bit it needs is available, and says why when it is not. */
#include "conformance.h"
#include "cpu.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct invalid_args {
    attn_problem p;
    const attn_problem *problem; /* &p, or NULL */
    const void *q, *k, *v;
    void *o;
    int32_t kv_lens[2];
    float mask[5 * 7];
    float per_head[4]; /* slopes or sinks of the 4 query heads */
    int32_t table[4];  /* a block table: 2 sequences of 2 pages */
} invalid_args;

typedef struct invalid_check {
    const char *name;
    attn_status expect;
    void (*mutate)(invalid_args *a);
} invalid_check;

static void inv_window_left(invalid_args *a) { a->p.window_left = -2; }
static void inv_window_right(invalid_args *a) { a->p.window_right = INT64_MIN; }
static void inv_softcap_negative(invalid_args *a) { a->p.softcap = -30.0f; }
static void inv_softcap_nan(invalid_args *a) { a->p.softcap = NAN; }
static void inv_softcap_inf(invalid_args *a) { a->p.softcap = INFINITY; }
static void per_head(invalid_args *a, float bad, const float **field)
{
    for (int h = 0; h < 4; h++)
        a->per_head[h] = h == 2 ? bad : 0.5f;
    *field = a->per_head;
}
static void inv_sinks_nan(invalid_args *a) { per_head(a, NAN, &a->p.sinks); }
static void inv_sinks_inf(invalid_args *a) { per_head(a, INFINITY, &a->p.sinks); }
static void inv_alibi_nan(invalid_args *a) { per_head(a, NAN, &a->p.alibi_slopes); }
static void inv_alibi_inf(invalid_args *a) { per_head(a, -INFINITY, &a->p.alibi_slopes); }
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

/* Quantized K/V (attn.h): q4 needs head_dim % 32 == 0 and even K/V strides; no mixed float
 * types; kv_dtype in range. */
static void inv_q4_head_dim(invalid_args *a) { attn_problem_set_kv_dtype(&a->p, ATTN_Q4); }
static void inv_q4_odd_stride(invalid_args *a)
{
    attn_problem_init(&a->p, 2, 4, 2, 5, 7, 32);
    attn_problem_set_kv_dtype(&a->p, ATTN_Q4);
    a->p.v.seq = 33;
}
static void inv_kv_mixed_float(invalid_args *a) { a->p.kv_dtype = ATTN_BF16; }
static void inv_kv_dtype_range(invalid_args *a) { a->p.kv_dtype = (attn_dtype)99; }
/* Paged K/V that fits the base problem's K and V: 3 pages of 4 keys (64 floats each, within
 * the 224 of the contiguous tensors), 2 pages per sequence, a repeated page (legal). */
static void paged(invalid_args *a)
{
    memcpy(a->table, (const int32_t[]){2, 0, 1, 0}, sizeof a->table);
    attn_problem_set_pages(&a->p, 4, 3, a->table, 0);
}
static void inv_page_size_negative(invalid_args *a) { paged(a); a->p.page_size = -4; }
static void inv_page_past_pool(invalid_args *a) { paged(a); a->table[3] = 3; }
static void inv_page_negative(invalid_args *a) { paged(a); a->table[1] = -1; }
static void inv_table_null(invalid_args *a) { paged(a); a->p.block_table = NULL; }
static void inv_table_stride_short(invalid_args *a) { paged(a); a->p.block_table_stride = 1; }
static void inv_num_pages_zero(invalid_args *a) { paged(a); a->p.num_pages = 0; }
static void inv_table_unpaged(invalid_args *a) { paged(a); a->p.page_size = 0; }
static void inv_pool_overflow(invalid_args *a) { paged(a); a->p.v.batch = INT64_MAX / 2; }

static const invalid_check invalid_checks[] = {
    {"q4 K/V with head_dim 8", ATTN_ERR_INVALID, inv_q4_head_dim},
    {"q4 K/V with an odd stride", ATTN_ERR_INVALID, inv_q4_odd_stride},
    {"bf16 K/V with f32 Q", ATTN_ERR_INVALID, inv_kv_mixed_float},
    {"kv_dtype 99", ATTN_ERR_INVALID, inv_kv_dtype_range},
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
    {"window_left < -1", ATTN_ERR_INVALID, inv_window_left},
    {"window_right = INT64_MIN", ATTN_ERR_INVALID, inv_window_right},
    {"softcap < 0", ATTN_ERR_INVALID, inv_softcap_negative},
    {"softcap NaN", ATTN_ERR_INVALID, inv_softcap_nan},
    {"softcap inf", ATTN_ERR_INVALID, inv_softcap_inf},
    {"a sink NaN", ATTN_ERR_INVALID, inv_sinks_nan},
    {"a sink inf", ATTN_ERR_INVALID, inv_sinks_inf},
    {"an ALiBi slope NaN", ATTN_ERR_INVALID, inv_alibi_nan},
    {"an ALiBi slope -inf", ATTN_ERR_INVALID, inv_alibi_inf},
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
    {"page_size < 0", ATTN_ERR_INVALID, inv_page_size_negative},
    {"a block table entry past the pool", ATTN_ERR_INVALID, inv_page_past_pool},
    {"a block table entry < 0", ATTN_ERR_INVALID, inv_page_negative},
    {"paged, block_table NULL", ATTN_ERR_INVALID, inv_table_null},
    {"block_table_stride < pages of len_kv", ATTN_ERR_INVALID, inv_table_stride_short},
    {"paged, num_pages = 0", ATTN_ERR_INVALID, inv_num_pages_zero},
    {"block_table with page_size 0", ATTN_ERR_INVALID, inv_table_unpaged},
    {"page pool extent overflows", ATTN_ERR_OVERFLOW, inv_pool_overflow},
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

void run_invalid_checks(runner *rn)
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
        /* The base problem in a type the variant reads (float32, unless it reads only halves:
         * the float buffers hold either), so each check meets the refusal it is about. */
        attn_dtype reads = ATTN_F32;
        while (!variant_reads(&vs->info, reads) && reads + 1 < ATTN_DTYPE_COUNT)
            reads++;
        for (int j = 0; j < COUNT(invalid_checks); j++) {
            invalid_base(&a, q, kv, kv, ob.o);
            a.p.dtype = reads;
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
        /* Quantized K/V it does not read: unsupported, naming the type. */
        for (attn_dtype t = ATTN_INT8; t <= ATTN_Q4; t++) {
            if (vs->info.kv_dtypes & (1u << t))
                continue;
            invalid_base(&a, q, kv, kv, ob.o);
            attn_problem_init(&a.p, 2, 4, 2, 5, 7, 32); /* refused before any access */
            attn_problem_set_kv_dtype(&a.p, t);
            a.p.k_scale = a.p.v_scale = kv;
            char check[64];
            snprintf(check, sizeof check, "%s K/V (not declared)", attn_dtype_name(t));
            record(rn, vs, expect_refusal_saying(rn, vs->info.name, check, &a, NULL,
                                                 ATTN_ERR_UNSUPPORTED, &ob, attn_dtype_name(t),
                                                 NULL));
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
                a.p.dtype = reads;
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
            a.p.dtype = reads;
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
            a.p.dtype = reads;
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
void check_dispatch(runner *rn)
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
