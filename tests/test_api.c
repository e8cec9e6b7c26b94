/* test_api.c — unit tests of the public functions of library.c (problem defaults, strides,
 * scale, FLOP count, parameter text, tensor extents, sizes near 2^63, an output overlapping an
 * input, variant lookup) and of the ISA name parser of runtime/cpu.h; the element types are
 * test_api_dtype.c's. Small cases are checked against values worked out by hand. */
#include "attn.h"
#include "check.h"
#include "cpu.h"
#include "rng.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_STRIDES(s, b, h, l)                                                             \
    do {                                                                                      \
        CHECK_EQ_INT((s).batch, b);                                                           \
        CHECK_EQ_INT((s).head, h);                                                            \
        CHECK_EQ_INT((s).seq, l);                                                             \
    } while (0)

static void test_problem_init(void)
{
    attn_problem p;
    memset(&p, 0xab, sizeof p); /* init must set every field */
    attn_problem_init(&p, 2, 8, 2, 5, 7, 16);
    CHECK_EQ_INT(p.batch, 2);
    CHECK_EQ_INT(p.heads_q, 8);
    CHECK_EQ_INT(p.heads_kv, 2);
    CHECK_EQ_INT(p.len_q, 5);
    CHECK_EQ_INT(p.len_kv, 7);
    CHECK_EQ_INT(p.head_dim, 16);
    CHECK(p.scale == 0.0f);
    CHECK(!p.causal);
    CHECK(p.kv_lens == NULL);
    CHECK(p.mask == NULL);
    CHECK_EQ_INT(p.mask_row_stride, 0);
    CHECK_EQ_INT(p.window_left, -1);
    CHECK_EQ_INT(p.window_right, -1);
    CHECK(p.alibi_slopes == NULL && p.sinks == NULL && p.softcap == 0.0f);
    CHECK_EQ_INT(attn_problem_features(&p), 0);
    /* [B,H,L,d]: seq = d, head = L·d, batch = H·L·d. */
    CHECK_STRIDES(p.q, 8 * 5 * 16, 5 * 16, 16);
    CHECK_STRIDES(p.k, 2 * 7 * 16, 7 * 16, 16);
    CHECK_STRIDES(p.v, 2 * 7 * 16, 7 * 16, 16);
    CHECK_STRIDES(p.o, 8 * 5 * 16, 5 * 16, 16);
    CHECK(attn_problem_validate(&p, NULL) == ATTN_OK);

    /* [B,L,H,d]: head = d, seq = H·d, batch = L·H·d. */
    attn_problem_set_layout_blhd(&p);
    CHECK_STRIDES(p.q, 5 * 8 * 16, 16, 8 * 16);
    CHECK_STRIDES(p.k, 7 * 2 * 16, 16, 2 * 16);
    CHECK_STRIDES(p.v, 7 * 2 * 16, 16, 2 * 16);
    CHECK_STRIDES(p.o, 5 * 8 * 16, 16, 8 * 16);
    CHECK(attn_problem_validate(&p, NULL) == ATTN_OK);
}

static void test_problem_scale(void)
{
    attn_problem p;
    attn_problem_init(&p, 1, 1, 1, 1, 1, 16);
    CHECK(attn_problem_scale(&p) == 0.25f);
    attn_problem_init(&p, 1, 1, 1, 1, 1, 1);
    CHECK(attn_problem_scale(&p) == 1.0f);
    attn_problem_init(&p, 1, 1, 1, 1, 1, 3);
    CHECK(attn_problem_scale(&p) == (float)(1.0 / sqrt(3.0)));
    p.scale = 1.0f;
    CHECK(attn_problem_scale(&p) == 1.0f);
    p.scale = 0.125f;
    CHECK(attn_problem_scale(&p) == 0.125f);
}

/* FLOPs = 4·B·Hq·d·pairs; the pairs below are counted by hand. */
static void test_problem_flops(void)
{
    attn_problem p;
    attn_problem_init(&p, 1, 1, 1, 4, 4, 1);
    CHECK_EQ_DBL(attn_problem_flops(&p), 4.0 * 16); /* 4 x 4 pairs */
    p.causal = true;
    CHECK_EQ_DBL(attn_problem_flops(&p), 4.0 * (1 + 2 + 3 + 4));

    /* Causal, Lq < Lk: row i sees j <= i + 2 -> 3 and 4 keys. */
    attn_problem_init(&p, 1, 1, 1, 2, 4, 1);
    p.causal = true;
    CHECK_EQ_DBL(attn_problem_flops(&p), 4.0 * (3 + 4));

    /* Causal, Lq > Lk: row i sees j <= i - 2 -> rows 0, 1 see none; 1 and 2 keys. */
    attn_problem_init(&p, 1, 1, 1, 4, 2, 1);
    p.causal = true;
    CHECK_EQ_DBL(attn_problem_flops(&p), 4.0 * (0 + 0 + 1 + 2));

    /* kv_lens {1, 3, 0}, Lq = 2, Lk = 4: 2·1 + 2·3 + 0 pairs; with Hq = 8, d = 16. */
    const int32_t lens[3] = {1, 3, 0};
    attn_problem_init(&p, 3, 8, 2, 2, 4, 16);
    p.kv_lens = lens;
    CHECK_EQ_DBL(attn_problem_flops(&p), 4.0 * 8 * 16 * (2 * 1 + 2 * 3));
    /* ... and causal (row i sees j <= i + 2): batch 0: 1 + 1, batch 1: 3 + 3. */
    p.causal = true;
    CHECK_EQ_DBL(attn_problem_flops(&p), 4.0 * 8 * 16 * (1 + 1 + 3 + 3));
    const int32_t lens2[3] = {4, 3, 4};
    p.kv_lens = lens2; /* causal rows see 3, 4 keys; kv_lens 3 caps row 1 */
    CHECK_EQ_DBL(attn_problem_flops(&p), 4.0 * 8 * 16 * ((3 + 4) + (3 + 3) + (3 + 4)));

    /* Mask: -inf entries are not attended; other values (+inf included) are. */
    const float mask[2 * 3] = {0.0f, -INFINITY, 1.0f, -INFINITY, -INFINITY, -INFINITY};
    attn_problem_init(&p, 1, 1, 1, 2, 3, 1);
    p.mask = mask;
    CHECK_EQ_DBL(attn_problem_flops(&p), 4.0 * 2);
    const float mask_padded[2 * 4] = {-INFINITY, -5.0f, 3.0f, -INFINITY /* gap */,
                                      INFINITY, -INFINITY, 2.0f, 0.0f /* gap */};
    p.mask = mask_padded;
    p.mask_row_stride = 4;
    CHECK_EQ_DBL(attn_problem_flops(&p), 4.0 * (2 + 2));
    p.causal = true; /* Lq = 2, Lk = 3: row 0 sees j <= 1, row 1 all */
    CHECK_EQ_DBL(attn_problem_flops(&p), 4.0 * (1 + 2));
}

/* The options of current models: the standard ALiBi slopes, the window's pairs, the features
 * a problem uses, and a plan that takes the slopes and sinks at execute. */
static void test_model_options(void)
{
    /* 8 heads: 2^-1 .. 2^-8; 6 heads: 2^-2, 2^-4, 2^-6, 2^-8 (n = 4), then the odd slopes of
     * 8 heads, 2^-1 and 2^-3. */
    float slopes[8];
    CHECK(attn_alibi_slopes(8, slopes));
    for (int h = 0; h < 8; h++)
        CHECK(slopes[h] == ldexpf(1.0f, -(h + 1)));
    CHECK(attn_alibi_slopes(6, slopes));
    const float six[6] = {0x1p-2f, 0x1p-4f, 0x1p-6f, 0x1p-8f, 0x1p-1f, 0x1p-3f};
    for (int h = 0; h < 6; h++)
        CHECK(slopes[h] == six[h]);
    CHECK(!attn_alibi_slopes(0, slopes));

    /* Window: L = 6, causal, left 2: rows see 1, 2, 3, 3, 3, 3 keys; right 1 without causal:
     * 0 + left 2 + right 1 -> 2, 3, 4, 4, 4, 3. */
    attn_problem p;
    attn_problem_init(&p, 1, 1, 1, 6, 6, 1);
    p.causal = true;
    p.window_left = 2;
    CHECK_EQ_DBL(attn_problem_flops(&p), 4.0 * (1 + 2 + 3 + 3 + 3 + 3));
    p.causal = false;
    p.window_right = 1;
    CHECK_EQ_DBL(attn_problem_flops(&p), 4.0 * (2 + 3 + 4 + 4 + 4 + 3));
    CHECK_EQ_INT(attn_problem_features(&p), ATTN_FEATURE_WINDOW);
    char names[64];
    attn_features_format(ATTN_FEATURE_ALL, names, sizeof names);
    CHECK(!strcmp(names, "window,alibi,softcap,sinks,paged"));

    /* A plan for a problem with slopes and sinks: execute must give both, and its result is
     * attn_run_variant's, bit for bit. */
    attn_problem_init(&p, 1, 4, 2, 5, 9, 8);
    p.causal = true;
    p.window_left = 3;
    p.softcap = 5.0f;
    float sinks[4] = {0.5f, -1.0f, 2.0f, 0.0f};
    attn_alibi_slopes(4, slopes);
    p.alibi_slopes = slopes;
    p.sinks = sinks;
    float q[4 * 5 * 8], k[2 * 9 * 8], v[2 * 9 * 8], o[4 * 5 * 8], o2[4 * 5 * 8];
    for (int i = 0; i < 4 * 5 * 8; i++)
        q[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
    for (int i = 0; i < 2 * 9 * 8; i++) {
        k[i] = (float)((i * 29) % 13) / 6.0f - 1.0f;
        v[i] = (float)((i * 11) % 7) / 3.0f - 1.0f;
    }
    attn_error err;
    attn_params params = {.threads = 1};
    CHECK(attn_variant_default_params("naive", &p, &params, &err) == ATTN_OK);
    params.threads = 1;
    CHECK(attn_run_variant("naive", &p, &params, q, k, v, o, &err) == ATTN_OK);
    setenv("ATTN_FORCE_VARIANT", "naive", 1);
    attn_plan *plan = attn_plan_create(&p, &(attn_plan_options){.threads = 1}, &err);
    unsetenv("ATTN_FORCE_VARIANT");
    CHECK(plan != NULL);
    attn_execute_args args = {.q = q, .k = k, .v = v, .o = o2, .alibi_slopes = slopes};
    CHECK(attn_execute(plan, &args, &err) == ATTN_ERR_INVALID && strstr(err.message, "sinks"));
    args.sinks = sinks;
    CHECK(attn_execute(plan, &args, &err) == ATTN_OK);
    CHECK(!memcmp(o, o2, sizeof o));
    sinks[1] = NAN;
    CHECK(attn_execute(plan, &args, &err) == ATTN_ERR_INVALID && strstr(err.message, "sinks[1]"));
    attn_plan_destroy(plan);
}

/* The first registered variant with / without tunable parameters, or -1. */
static int find_variant(bool with_params, attn_variant_info *info)
{
    for (int i = 0; i < attn_variant_count(); i++)
        if (attn_variant_get(i, info) && (info->param_count > 0) == with_params)
            return i;
    return -1;
}

static void test_params_text(void)
{
    attn_variant_info info;
    attn_problem p;
    attn_problem_init(&p, 1, 4, 4, 64, 64, 64);
    attn_error err;
    attn_params params, back;

    if (find_variant(true, &info) < 0) {
        printf("note: no variant with parameters is registered; round trip not tested\n");
    } else {
        char name[64];
        snprintf(name, sizeof name, "%s", info.name);
        char first[32];
        snprintf(first, sizeof first, "%s", info.params[0].name);
        const attn_param_info param0 = info.params[0];

        /* defaults -> text -> parse over zeros -> the same values */
        CHECK(attn_variant_default_params(name, &p, &params, &err) == ATTN_OK);
        CHECK_EQ_INT(params.count, info.param_count);
        char text[256];
        attn_params_format(name, &params, text, sizeof text);
        CHECK(strchr(text, '=') != NULL);
        memset(&back, 0, sizeof back);
        CHECK(attn_params_parse(name, text, &back, &err) == ATTN_OK);
        CHECK_EQ_INT(back.count, params.count);
        for (int i = 0; i < params.count; i++)
            CHECK_EQ_INT(back.value[i], params.value[i]);

        /* a partial text changes only the parameter it names */
        char one[64];
        const int32_t value = param0.max;
        snprintf(one, sizeof one, "%s=%d", first, value);
        back = params;
        CHECK(attn_params_parse(name, one, &back, &err) == ATTN_OK);
        CHECK_EQ_INT(back.value[0], value);
        for (int i = 1; i < params.count; i++)
            CHECK_EQ_INT(back.value[i], params.value[i]);
        /* empty text keeps everything */
        back = params;
        CHECK(attn_params_parse(name, "", &back, &err) == ATTN_OK);
        CHECK(!memcmp(back.value, params.value, sizeof back.value));

        /* errors, each with a message */
        const char *bad[] = {"nosuchparam=4", "=4", "4", NULL, NULL, NULL, NULL};
        char no_value[64], not_int[64], too_big[64], trailing[64];
        snprintf(no_value, sizeof no_value, "%s=", first);
        snprintf(not_int, sizeof not_int, "%s=12x", first);
        snprintf(too_big, sizeof too_big, "%s=99999999999", first);
        snprintf(trailing, sizeof trailing, "%s", first);
        bad[3] = no_value;
        bad[4] = not_int;
        bad[5] = too_big;
        bad[6] = trailing;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            back = params;
            memset(&err, 0, sizeof err);
            const attn_status s = attn_params_parse(name, bad[i], &back, &err);
            CHECK(s == ATTN_ERR_INVALID);
            CHECK(err.status == ATTN_ERR_INVALID && err.message[0] != '\0');
            if (s != ATTN_ERR_INVALID)
                printf("  (text '%s' was accepted)\n", bad[i]);
        }

        /* format into a short buffer: terminated, nothing written past it */
        char small[8];
        memset(small, 'x', sizeof small);
        attn_params_format(name, &params, small, 4);
        CHECK(strlen(small) < 4);
        CHECK(small[4] == 'x');
    }

    /* A variant without parameters takes only the empty text. */
    if (find_variant(false, &info) >= 0) {
        char name[64];
        snprintf(name, sizeof name, "%s", info.name);
        memset(&params, 0, sizeof params);
        CHECK(attn_params_parse(name, "", &params, &err) == ATTN_OK);
        CHECK_EQ_INT(params.count, 0);
        CHECK(attn_params_parse(name, "x=1", &params, &err) == ATTN_ERR_INVALID);
        char text[16] = "junk";
        attn_params_format(name, &params, text, sizeof text);
        CHECK(text[0] == '\0');
    }
    memset(&err, 0, sizeof err);
    CHECK(attn_params_parse("no-such-variant", "a=1", &params, &err) == ATTN_ERR_UNKNOWN_VARIANT);
    CHECK(err.message[0] != '\0');
    CHECK(attn_variant_default_params("no-such-variant", &p, &params, &err) ==
          ATTN_ERR_UNKNOWN_VARIANT);
}

static void test_params_check(void)
{
    attn_problem p;
    attn_problem_init(&p, 1, 4, 2, 33, 65, 16);
    attn_params params;
    attn_error err;
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        attn_variant_get(i, &info);
        char name[64];
        snprintf(name, sizeof name, "%s", info.name);
        CHECK(attn_variant_default_params(name, &p, &params, &err) == ATTN_OK);
        CHECK_EQ_INT(params.threads, 0);
        const attn_status s = attn_params_check(name, &p, &params, &err);
        CHECK(s == ATTN_OK);
        if (s != ATTN_OK)
            printf("  (%s: defaults refused: %s)\n", name, err.message);
        attn_params wrong = params;
        wrong.count = params.count + 1;
        memset(&err, 0, sizeof err);
        CHECK(attn_params_check(name, &p, &wrong, &err) == ATTN_ERR_INVALID);
        CHECK(err.message[0] != '\0');
        for (int j = 0; j < info.param_count; j++) {
            wrong = params;
            if (info.params[j].max == INT32_MAX)
                continue;
            wrong.value[j] = info.params[j].max + 1;
            CHECK(attn_params_check(name, &p, &wrong, &err) == ATTN_ERR_INVALID);
        }
        const int32_t bad_threads[] = {-1, ATTN_MAX_THREADS + 1};
        for (int j = 0; j < 2; j++) { /* the same range attn_run_variant enforces */
            wrong = params;
            wrong.threads = bad_threads[j];
            CHECK(attn_params_check(name, &p, &wrong, &err) == ATTN_ERR_INVALID);
        }
        p.heads_kv = 3; /* an invalid problem is refused first */
        CHECK(attn_params_check(name, &p, &params, &err) == ATTN_ERR_INVALID);
        p.heads_kv = 2;
    }
    CHECK(attn_params_check("no-such-variant", &p, &params, &err) == ATTN_ERR_UNKNOWN_VARIANT);
    /* A variant this build leaves out is refused as unsupported, with the reason. */
    const char *absent, *why;
    for (int i = 0; attn_variant_absent(i, &absent, &why); i++) {
        CHECK(attn_variant_find(absent) < 0);
        memset(&err, 0, sizeof err);
        CHECK(attn_params_check(absent, &p, &params, &err) == ATTN_ERR_UNSUPPORTED);
        CHECK(strstr(err.message, why) != NULL);
    }
    CHECK(attn_default_threads() >= 1 && attn_default_threads() <= ATTN_MAX_THREADS);
}

/* ATTN_FORCE_VARIANT is read on every call. */
static void test_forced_variant(void)
{
    const char *saved = getenv("ATTN_FORCE_VARIANT");
    char keep[128] = "";
    if (saved)
        snprintf(keep, sizeof keep, "%s", saved);
    const char *name = "junk";
    attn_error err;
    unsetenv("ATTN_FORCE_VARIANT");
    CHECK(attn_forced_variant(&name, &err) == ATTN_OK);
    CHECK(name == NULL);
    setenv("ATTN_FORCE_VARIANT", "", 1);
    CHECK(attn_forced_variant(&name, &err) == ATTN_OK);
    CHECK(name == NULL);
    setenv("ATTN_FORCE_VARIANT", "no-such-variant", 1);
    memset(&err, 0, sizeof err);
    CHECK(attn_forced_variant(&name, &err) == ATTN_ERR_UNKNOWN_VARIANT);
    CHECK(name == NULL && err.message[0] != '\0');
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        attn_variant_get(i, &info);
        setenv("ATTN_FORCE_VARIANT", info.name, 1);
        const attn_status s = attn_forced_variant(&name, &err);
        if (info.supported) {
            CHECK(s == ATTN_OK);
            CHECK(name && !strcmp(name, info.name));
        } else {
            CHECK(s == ATTN_ERR_UNSUPPORTED);
            CHECK(name == NULL);
        }
    }
    if (saved)
        setenv("ATTN_FORCE_VARIANT", keep, 1);
    else
        unsetenv("ATTN_FORCE_VARIANT");
}

static void test_machine_id(void)
{
    const char *id = attn_machine_id();
    CHECK(id && strlen(id) == 16);
    for (int i = 0; id && id[i]; i++)
        CHECK(isxdigit((unsigned char)id[i]));
    CHECK(id && !strcmp(id, attn_machine_id()));
}

static void test_tensor_extent(void)
{
    attn_problem p;
    attn_problem_init(&p, 2, 8, 2, 5, 7, 16);
    int64_t e = -1;
    attn_error err;
    CHECK(attn_tensor_extent(&p, 'q', &e, &err) == ATTN_OK);
    CHECK_EQ_INT(e, 2 * 8 * 5 * 16);
    CHECK(attn_tensor_extent(&p, 'k', &e, &err) == ATTN_OK);
    CHECK_EQ_INT(e, 2 * 2 * 7 * 16);
    CHECK(attn_tensor_extent(&p, 'v', &e, &err) == ATTN_OK);
    CHECK_EQ_INT(e, 2 * 2 * 7 * 16);
    CHECK(attn_tensor_extent(&p, 'o', &e, &err) == ATTN_OK);
    CHECK_EQ_INT(e, 2 * 8 * 5 * 16);
    attn_problem_set_layout_blhd(&p);
    CHECK(attn_tensor_extent(&p, 'q', &e, &err) == ATTN_OK);
    CHECK_EQ_INT(e, 2 * 8 * 5 * 16);

    /* Padded: largest offset + 1 = (B-1)·sb + (H-1)·sh + (L-1)·ss + d. */
    p.q = (attn_strides){.batch = 1000, .head = 100, .seq = 19};
    CHECK(attn_tensor_extent(&p, 'q', &e, &err) == ATTN_OK);
    CHECK_EQ_INT(e, 1 * 1000 + 7 * 100 + 4 * 19 + 16);
    /* Broadcast (stride 0) over batch and heads. */
    p.k = (attn_strides){.batch = 0, .head = 0, .seq = 16};
    CHECK(attn_tensor_extent(&p, 'k', &e, &err) == ATTN_OK);
    CHECK_EQ_INT(e, 6 * 16 + 16);

    CHECK(attn_tensor_extent(&p, 'x', &e, &err) == ATTN_ERR_INVALID);
    CHECK(err.message[0] != '\0');

    /* Overflow of the 64-bit offset, and of the byte size. */
    attn_problem_init(&p, 1, 1, 1, 1, 1, 1);
    p.batch = INT64_C(1) << 40;
    p.q.batch = INT64_C(1) << 30;
    memset(&err, 0, sizeof err);
    CHECK(attn_tensor_extent(&p, 'q', &e, &err) == ATTN_ERR_OVERFLOW);
    CHECK(err.status == ATTN_ERR_OVERFLOW && err.message[0] != '\0');
    p.batch = 2;
    p.q.batch = INT64_MAX;
    CHECK(attn_tensor_extent(&p, 'q', &e, &err) == ATTN_ERR_OVERFLOW);
    p.q.batch = INT64_MAX / 4; /* fits in int64 elements, not in ptrdiff_t bytes */
    CHECK(attn_tensor_extent(&p, 'q', &e, &err) == ATTN_ERR_OVERFLOW);
    p.q.batch = INT64_MAX / 16;
    CHECK(attn_tensor_extent(&p, 'q', &e, &err) == ATTN_OK);
    CHECK_EQ_INT(e, INT64_MAX / 16 + 1);
}

static void test_validate(void)
{
    attn_problem p;
    attn_error err;
    attn_problem_init(&p, 1, 1, 1, INT64_C(1) << 22, INT64_C(1) << 22, INT64_C(1) << 20);
    memset(&err, 0, sizeof err);
    CHECK(attn_problem_validate(&p, &err) == ATTN_ERR_OVERFLOW);
    CHECK(err.message[0] != '\0');
    CHECK(attn_problem_validate(NULL, &err) == ATTN_ERR_INVALID);
    attn_problem_init(&p, 1, 6, 4, 3, 3, 8);
    CHECK(attn_problem_validate(&p, NULL) == ATTN_ERR_INVALID); /* err may be NULL */
    attn_problem_init(&p, 1, 1, 1, 3, 3, 8);
    p.scale = -0.0f; /* compares equal to 0: the default */
    CHECK(attn_problem_validate(&p, NULL) == ATTN_OK);
}

/* Sizes near 2^63, one at a time and in pairs, in both layouts: validation refuses them with
 * ATTN_ERR_OVERFLOW (negative ones with ATTN_ERR_INVALID), and nothing on the way overflows
 * (attn_problem_init forms the strides; the sanitize suite runs this under UBSan). */
static void test_huge_sizes(void)
{
    const int64_t top = INT64_MAX, half = INT64_C(1) << 62;
    const int64_t base[6] = {1, 2, 1, 4, 5, 16}; /* batch, heads_q, heads_kv, len_q, len_kv, d */
    const int64_t values[] = {top, half, INT64_MAX / 16 + 1, INT64_MIN, -1};
    for (int layout = 0; layout < 2; layout++)
        for (int i = 0; i < 6; i++)
            for (int j = i; j < 6; j++)
                for (size_t x = 0; x < sizeof values / sizeof values[0]; x++) {
                    int64_t n[6];
                    memcpy(n, base, sizeof n);
                    n[i] = n[j] = values[x];
                    if (i == 1 && j != 2) /* keep Hq a multiple of Hkv */
                        n[2] = 1;
                    if (i == 2 || j == 2)
                        n[1] = n[2];
                    attn_problem p;
                    attn_problem_init(&p, n[0], n[1], n[2], n[3], n[4], n[5]);
                    if (layout)
                        attn_problem_set_layout_blhd(&p);
                    attn_error err = {0};
                    const attn_status s = attn_problem_validate(&p, &err);
                    CHECK(s == (values[x] < 0 ? ATTN_ERR_INVALID : ATTN_ERR_OVERFLOW));
                    CHECK(err.status == s && err.message[0] != '\0');
                    CHECK(attn_problem_flops(&p) == -1);
                    int64_t e;
                    CHECK(attn_tensor_extent(&p, 'q', &e, NULL) != ATTN_OK ||
                          attn_tensor_extent(&p, 'k', &e, NULL) != ATTN_OK ||
                          values[x] >= 0); /* negative sizes have no extent */
                    attn_params params;
                    CHECK(attn_variant_default_params("naive", &p, &params, NULL) == s);
                    float x4[4] = {0};
                    CHECK(attn_run_variant("naive", &p, NULL, x4, x4, x4, x4 + 1, NULL) == s);
                }
    /* A mask whose rows overflow: validation must refuse it before a variant forms
     * i * mask_row_stride. */
    const float mask[8] = {0};
    attn_problem p;
    attn_problem_init(&p, 1, 1, 1, 4, 2, 4);
    p.mask = mask;
    p.mask_row_stride = INT64_MAX;
    attn_error err = {0};
    CHECK(attn_problem_validate(&p, &err) == ATTN_ERR_OVERFLOW);
    CHECK(strstr(err.message, "mask") != NULL);
    p.mask_row_stride = INT64_MAX / 2; /* (Lq - 1) rows fit in 64 bits, not in bytes */
    CHECK(attn_problem_validate(&p, NULL) == ATTN_ERR_OVERFLOW);
    p.mask_row_stride = 2;
    CHECK(attn_problem_validate(&p, NULL) == ATTN_OK);
}

/* O overlapping an input is refused for every variant (they write O while still reading the
 * inputs); touching without overlap, and inputs overlapping each other, are fine. */
static void test_output_aliasing(void)
{
    attn_problem p;
    attn_problem_init(&p, 2, 2, 2, 16, 16, 16); /* Q, K, V and O all have the same extent */
    const size_t n = 2 * 2 * 16 * 16;
    /* One arena: q | k | v | o | mask | kv_lens, each region exactly its extent. */
    float *arena = calloc(5 * n + 16 * 16 + 2, sizeof(float));
    if (!arena) {
        CHECK(!"out of memory");
        return;
    }
    for (size_t i = 0; i < 5 * n; i++)
        arena[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    float *q = arena, *k = arena + n, *v = arena + 2 * n, *o = arena + 3 * n;
    float *mask = arena + 4 * n; /* n floats of room; the mask uses 16 x 16 */
    int32_t *kv_lens = (int32_t *)(arena + 5 * n + 16 * 16);
    kv_lens[0] = 16;
    kv_lens[1] = 9;
    const struct { const char *what; const float *o; bool refused; } cases[] = {
        {"o == q", q, true},
        {"o == k", k, true},
        {"o == v", v, true},
        {"o one element into v", v + n - 1, true},
        {"o ending one element into k", k - n + 1, true},
        {"o just after v", o, false},
    };
    const int count = attn_variant_count();
    for (int i = 0; i < count; i++) {
        attn_variant_info info;
        if (!attn_variant_get(i, &info) || !info.supported)
            continue;
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            p.mask = NULL;
            p.kv_lens = NULL;
            attn_error err = {0};
            attn_status s =
                attn_run_variant(info.name, &p, NULL, q, k, v, (void *)cases[c].o, &err);
            if (cases[c].refused) {
                CHECK(s == ATTN_ERR_INVALID);
                CHECK(strstr(err.message, "o overlaps") != NULL);
                if (s != ATTN_ERR_INVALID)
                    printf("  %s: %s returned %s\n", info.name, cases[c].what,
                           attn_status_string(s));
            } else {
                CHECK(s == ATTN_OK);
            }
        }
        /* Through the mask and kv_lens of the problem (the mask unless the variant refuses
         * one as unsupported: ggml). */
        p.mask = mask;
        p.kv_lens = NULL;
        attn_error err = {0};
        if (attn_variant_accepts(info.name, &p, NULL) == ATTN_OK) {
            CHECK(attn_run_variant(info.name, &p, NULL, q, k, v, o, NULL) == ATTN_OK);
            CHECK(attn_run_variant(info.name, &p, NULL, q, k, v, mask - n + 1, &err) ==
                  ATTN_ERR_INVALID);
            CHECK(strstr(err.message, "overlaps mask") != NULL);
        } else {
            CHECK(attn_variant_accepts(info.name, &p, &err) == ATTN_ERR_UNSUPPORTED);
        }
        p.mask = NULL;
        p.kv_lens = kv_lens;
        CHECK(attn_run_variant(info.name, &p, NULL, q, k, v, (float *)kv_lens - n + 1, &err) ==
              ATTN_ERR_INVALID);
        CHECK(strstr(err.message, "overlaps kv_lens") != NULL);
        /* Inputs may share memory: self-attention on one tensor. */
        p.kv_lens = NULL;
        CHECK(attn_run_variant(info.name, &p, NULL, q, q, q, o, NULL) == ATTN_OK);
    }

    /* A half output counts 2-byte elements: o right after a bf16 q is fine, one element
     * earlier overlaps. */
    p.dtype = p.out_dtype = ATTN_BF16;
    uint16_t *half = (uint16_t *)arena;
    int bf16_runs = 0;
    for (int i = 0; i < count; i++) {
        attn_variant_info info;
        if (!attn_variant_get(i, &info) || !info.supported || !(info.dtypes & (1u << ATTN_BF16)))
            continue;
        bf16_runs++;
        CHECK(attn_run_variant(info.name, &p, NULL, half, half + n, half + 2 * n, half + 3 * n,
                               NULL) == ATTN_OK);
        CHECK(attn_run_variant(info.name, &p, NULL, half, half + n, half + 2 * n,
                               half + 3 * n - 1, NULL) == ATTN_ERR_INVALID);
    }
    CHECK(bf16_runs > 0); /* naive reads bf16 */

    /* Broadcast K and V (strides 0 over batch and heads) span one head: Lk·d floats. */
    p.dtype = p.out_dtype = ATTN_F32;
    attn_problem b = p;
    b.k.batch = b.k.head = b.v.batch = b.v.head = 0;
    const size_t one_head = 16 * 16;
    float *kb = arena + n, *vb = kb + one_head, *ob = vb + one_head; /* ob: n floats of room */
    CHECK(attn_run_variant("naive", &b, NULL, q, kb, vb, ob, NULL) == ATTN_OK);
    CHECK(attn_run_variant("naive", &b, NULL, q, kb, vb, ob - 1, NULL) == ATTN_ERR_INVALID);

    /* Through a plan. */
    attn_wisdom_set_file("/nonexistent-attn-test-api/wisdom.json", NULL); /* not the user's */
    attn_plan *plan = attn_plan_create(&p, NULL, NULL);
    CHECK(plan != NULL);
    if (plan) {
        CHECK(attn_execute(plan, &(attn_execute_args){.q = q, .k = k, .v = v, .o = o}, NULL) ==
              ATTN_OK);
        CHECK(attn_execute(plan, &(attn_execute_args){.q = q, .k = k, .v = v, .o = k}, NULL) ==
              ATTN_ERR_INVALID);
        attn_plan_destroy(plan);
    }
    attn_wisdom_set_file(NULL, NULL);
    free(arena);
}

static void test_status_strings(void)
{
    const attn_status all[] = {ATTN_OK, ATTN_ERR_INVALID, ATTN_ERR_OVERFLOW,
                               ATTN_ERR_UNKNOWN_VARIANT, ATTN_ERR_UNSUPPORTED, ATTN_ERR_NOMEM,
                               ATTN_ERR_IO};
    const int n = (int)(sizeof all / sizeof all[0]);
    for (int i = 0; i < n; i++) {
        CHECK(attn_status_string(all[i])[0] != '\0');
        for (int j = 0; j < i; j++)
            CHECK(strcmp(attn_status_string(all[i]), attn_status_string(all[j])) != 0);
    }
    CHECK(attn_status_string((attn_status)999)[0] != '\0');
}

static void test_variant_lookup(void)
{
    const int n = attn_variant_count();
    CHECK(n >= 1);
    attn_variant_info info;
    for (int i = 0; i < n; i++) {
        CHECK(attn_variant_get(i, &info));
        CHECK(info.name && info.name[0]);
        CHECK(info.description && info.description[0]);
        CHECK(info.tolerance > 0 && info.tolerance < 1);
        CHECK(info.supported || (info.why_not && info.why_not[0]));
        CHECK_EQ_INT(attn_variant_find(info.name), i);
        for (int j = 0; j < info.param_count; j++)
            CHECK(info.params[j].min <= info.params[j].max && info.params[j].multiple_of >= 1);
    }
    CHECK(!attn_variant_get(-1, &info));
    CHECK(!attn_variant_get(n, &info));
    CHECK_EQ_INT(attn_variant_find("no-such-variant"), -1);
    CHECK_EQ_INT(attn_variant_find(NULL), -1);
    CHECK_EQ_INT(attn_variant_find(""), -1);
}

#define ALL_AVX512                                                                            \
    (ATTN_ISA_AVX512F | ATTN_ISA_AVX512BW | ATTN_ISA_AVX512VL | ATTN_ISA_AVX512DQ |          \
     ATTN_ISA_AVX512BF16 | ATTN_ISA_AVX512FP16 | ATTN_ISA_AVX512VNNI)

static void test_isa_parse(void)
{
    uint32_t mask = 0xdeadu;
    char why[256] = "";
    CHECK(attn_isa_parse_disable("avx2", &mask, why, sizeof why));
    CHECK(mask & ATTN_ISA_AVX2);
    CHECK(!(mask & ALL_AVX512));
    CHECK(attn_isa_parse_disable("avx512", &mask, why, sizeof why));
    CHECK_EQ_INT(mask & ALL_AVX512, ALL_AVX512);
    CHECK(!(mask & ATTN_ISA_AVX2));
    CHECK(attn_isa_parse_disable("avx512,avx2", &mask, why, sizeof why));
    CHECK_EQ_INT(mask & (ALL_AVX512 | ATTN_ISA_AVX2), ALL_AVX512 | ATTN_ISA_AVX2);
    CHECK(attn_isa_parse_disable("avx512f", &mask, why, sizeof why));
    CHECK_EQ_INT(mask, ATTN_ISA_AVX512F);
    CHECK(attn_isa_parse_disable("", &mask, why, sizeof why));
    CHECK_EQ_INT(mask, 0);
    CHECK(attn_isa_parse_disable(NULL, &mask, why, sizeof why));
    CHECK_EQ_INT(mask, 0);
    CHECK(attn_isa_parse_disable("avx2,", &mask, why, sizeof why)); /* empty entries ignored */
    CHECK(mask & ATTN_ISA_AVX2);

    /* every single name parses to its bit, and format/parse round-trips */
    for (int i = 0; i < attn_isa_name_count; i++) {
        CHECK(attn_isa_parse_disable(attn_isa_names[i].name, &mask, why, sizeof why));
        CHECK_EQ_INT(mask, attn_isa_names[i].bit);
    }
    const uint32_t some = ATTN_ISA_AVX2 | ATTN_ISA_FMA | ATTN_ISA_AVX512F | ATTN_ISA_NEON;
    char text[256];
    attn_isa_format(some, text, sizeof text);
    CHECK(attn_isa_parse_disable(text, &mask, why, sizeof why));
    CHECK_EQ_INT(mask, some);
    attn_isa_format(0, text, sizeof text);
    CHECK(text[0] == '\0');

    /* unknown names are errors that name the culprit */
    why[0] = '\0';
    CHECK(!attn_isa_parse_disable("bogus", &mask, why, sizeof why));
    CHECK(strstr(why, "bogus") != NULL);
    why[0] = '\0';
    CHECK(!attn_isa_parse_disable("avx2,avx513", &mask, why, sizeof why));
    CHECK(strstr(why, "avx513") != NULL);
    CHECK(!attn_isa_parse_disable("AVX2", &mask, why, sizeof why)); /* names are lower case */
    CHECK(attn_isa_parse_disable("avx", &mask, why, sizeof why)); /* not a prefix match */
    CHECK_EQ_INT(mask, ATTN_ISA_AVX);
}

int main(void)
{
    test_problem_init();
    test_problem_scale();
    test_problem_flops();
    test_model_options();
    test_params_text();
    test_params_check();
    test_forced_variant();
    test_machine_id();
    test_tensor_extent();
    test_validate();
    test_huge_sizes();
    test_output_aliasing();
    test_status_strings();
    test_variant_lookup();
    test_isa_parse();
    return check_summary("test_api");
}
