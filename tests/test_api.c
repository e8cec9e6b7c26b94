/* test_api.c — unit tests of the public functions of library.c (problem defaults, strides,
 * scale, FLOP count, parameter text, tensor extents, sizes near 2^63, an output overlapping an
 * input, variant lookup), of the element types
 * (names, sizes, attn_convert's rounding, validation, refusal, half inputs and outputs) and of
 * the ISA name parser of runtime/cpu.h. Small cases are checked against values worked out by
 * hand; bulk conversions against a reference written here. */
#include "attn.h"
#include "cpu.h"
#include "rng.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks, failures;

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        checks++;                                                                             \
        if (!(cond)) {                                                                        \
            failures++;                                                                       \
            printf("%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond);                         \
        }                                                                                     \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                    \
    do {                                                                                      \
        const long long a_ = (long long)(a), b_ = (long long)(b);                             \
        checks++;                                                                             \
        if (a_ != b_) {                                                                       \
            failures++;                                                                       \
            printf("%s:%d: FAILED: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b,    \
                   a_, b_);                                                                   \
        }                                                                                     \
    } while (0)

#define CHECK_EQ_DBL(a, b)                                                                    \
    do {                                                                                      \
        const double a_ = (a), b_ = (b);                                                      \
        checks++;                                                                             \
        if (a_ != b_) {                                                                       \
            failures++;                                                                       \
            printf("%s:%d: FAILED: %s == %s (%.17g != %.17g)\n", __FILE__, __LINE__, #a, #b,  \
                   a_, b_);                                                                   \
        }                                                                                     \
    } while (0)

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
        /* Through the mask and kv_lens of the problem. */
        p.mask = mask;
        p.kv_lens = NULL;
        CHECK(attn_run_variant(info.name, &p, NULL, q, k, v, o, NULL) == ATTN_OK);
        attn_error err = {0};
        CHECK(attn_run_variant(info.name, &p, NULL, q, k, v, mask - n + 1, &err) ==
              ATTN_ERR_INVALID);
        CHECK(strstr(err.message, "overlaps mask") != NULL);
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

/* ---- element types ---------------------------------------------------------------------- */

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static uint16_t to_half(float f, attn_dtype t)
{
    uint16_t h;
    attn_convert(&f, ATTN_F32, &h, t, 1);
    return h;
}

static float from_half(uint16_t h, attn_dtype t)
{
    float f;
    attn_convert(&h, t, &f, ATTN_F32, 1);
    return f;
}

static void test_dtype_names(void)
{
    const struct { const char *name; attn_dtype t; } names[] = {
        {"f32", ATTN_F32},   {"float32", ATTN_F32}, {"bf16", ATTN_BF16},
        {"bfloat16", ATTN_BF16}, {"f16", ATTN_F16}, {"float16", ATTN_F16},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        attn_dtype t = (attn_dtype)99;
        CHECK(attn_dtype_parse(names[i].name, &t));
        CHECK_EQ_INT(t, names[i].t);
    }
    for (int t = 0; t < ATTN_DTYPE_COUNT; t++) { /* the name parses back to the type */
        attn_dtype back = (attn_dtype)99;
        CHECK(attn_dtype_parse(attn_dtype_name((attn_dtype)t), &back));
        CHECK_EQ_INT(back, t);
    }
    const char *bad[] = {"", "F32", "bf", "fp16", "f16 ", "half", "float", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        attn_dtype t = ATTN_BF16;
        CHECK(!attn_dtype_parse(bad[i], &t));
        CHECK_EQ_INT(t, ATTN_BF16); /* untouched on failure */
    }
    CHECK(!strcmp(attn_dtype_name(ATTN_F32), "f32"));
    CHECK(!strcmp(attn_dtype_name(ATTN_BF16), "bf16"));
    CHECK(!strcmp(attn_dtype_name(ATTN_F16), "f16"));
    CHECK(!strcmp(attn_dtype_name((attn_dtype)7), "?"));
    CHECK(!strcmp(attn_dtype_name((attn_dtype)-1), "?"));
    CHECK_EQ_INT(attn_dtype_size(ATTN_F32), 4);
    CHECK_EQ_INT(attn_dtype_size(ATTN_BF16), 2);
    CHECK_EQ_INT(attn_dtype_size(ATTN_F16), 2);
    CHECK_EQ_INT(attn_dtype_size((attn_dtype)7), 0);
    CHECK_EQ_DBL(attn_dtype_unit_roundoff(ATTN_F32), ldexp(1.0, -24));
    CHECK_EQ_DBL(attn_dtype_unit_roundoff(ATTN_BF16), ldexp(1.0, -8));
    CHECK_EQ_DBL(attn_dtype_unit_roundoff(ATTN_F16), ldexp(1.0, -11));
}

/* float32 -> bfloat16: round to nearest, ties to even, on the bit patterns. */
static void test_convert_bf16(void)
{
    const struct { uint32_t in; uint16_t out; const char *what; } cases[] = {
        {0x3f800000u, 0x3f80, "1.0 exact"},
        {0xc0000000u, 0xc000, "-2.0 exact"},
        {0x3f808000u, 0x3f80, "halfway, even below: down"},
        {0x3f818000u, 0x3f82, "halfway, even above: up"},
        {0x3f808001u, 0x3f81, "just above halfway: up"},
        {0x3f807fffu, 0x3f80, "just below halfway: down"},
        {0xbf818000u, 0xbf82, "negative halfway: up in magnitude to even"},
        {0xbf807fffu, 0xbf80, "negative just below halfway"},
        {0x3fffffffu, 0x4000, "carry into the exponent"},
        {0x7f800000u, 0x7f80, "+inf"},
        {0xff800000u, 0xff80, "-inf"},
        {0x7f7fffffu, 0x7f80, "FLT_MAX overflows to +inf"},
        {0xff7fffffu, 0xff80, "-FLT_MAX overflows to -inf"},
        {0x7f7f7fffu, 0x7f7f, "just below the overflow halfway stays finite"},
        {0x7f7f8000u, 0x7f80, "the overflow halfway (odd below): to inf"},
        {0x00000000u, 0x0000, "+0"},
        {0x80000000u, 0x8000, "-0 keeps its sign"},
        {0x00008000u, 0x0000, "subnormal halfway to 0 (even)"},
        {0x00018000u, 0x0002, "subnormal halfway up to even"},
        {0x80000001u, 0x8000, "tiny negative rounds to -0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint16_t got = to_half(f32_from_bits(cases[i].in), ATTN_BF16);
        CHECK_EQ_INT(got, cases[i].out);
        if (got != cases[i].out)
            printf("  (bf16 of 0x%08x, %s: 0x%04x)\n", cases[i].in, cases[i].what, got);
    }
    /* NaN stays NaN (quiet), whatever its payload: truncating 0x7f800001 would give inf. */
    const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fbfffffu, 0xffffffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        const uint16_t h = to_half(f32_from_bits(nans[i]), ATTN_BF16);
        CHECK((h & 0x7f80) == 0x7f80 && (h & 0x007f) != 0); /* a NaN */
        CHECK(h & 0x0040);                                   /* quiet */
        CHECK(isnan(from_half(h, ATTN_BF16)));
    }
    /* Widening is exact: the 16 bits become the top of the float. */
    CHECK_EQ_INT(f32_bits(from_half(0x3f81, ATTN_BF16)), 0x3f810000u);
    CHECK_EQ_INT(f32_bits(from_half(0x8000, ATTN_BF16)), 0x80000000u);
    CHECK_EQ_INT(f32_bits(from_half(0xff80, ATTN_BF16)), 0xff800000u);
    CHECK_EQ_INT(f32_bits(from_half(0x0001, ATTN_BF16)), 0x00010000u);

    /* Bulk, against a reference worked in integers: the two neighbours, the nearer one, ties
     * to the even one; over a sweep of bit patterns (NaN left out). */
    enum { N = 1 << 16 };
    uint32_t *in = malloc(N * sizeof *in);
    uint16_t *out = malloc(N * sizeof *out);
    uint64_t state = 1;
    int wrong = 0;
    for (int i = 0; i < N; i++) {
        in[i] = (uint32_t)(attn_rng_next(&state) >> 32);
        if ((in[i] & 0x7fffffffu) > 0x7f800000u)
            in[i] &= 0xff7fffffu; /* a NaN becomes a finite value */
    }
    attn_convert(in, ATTN_F32, out, ATTN_BF16, N);
    for (int i = 0; i < N; i++) {
        const uint32_t lo = in[i] >> 16, rest = in[i] & 0xffffu;
        const uint32_t want = rest > 0x8000u || (rest == 0x8000u && (lo & 1)) ? lo + 1 : lo;
        wrong += out[i] != (uint16_t)want;
    }
    CHECK_EQ_INT(wrong, 0);
    free(in);
    free(out);
}

/* The float16 value of x rounded to nearest even, worked in doubles (exact here): the grid
 * step is 2^(e-10) for 2^e <= |x| < 2^(e+1), e >= -14 (subnormals share 2^-24). */
static double f16_reference(float x)
{
    const double a = fabs((double)x);
    int e;
    frexp(a, &e); /* a = m·2^e, m in [0.5, 1) */
    e -= 1;
    if (e < -14)
        e = -14;
    const double step = ldexp(1.0, e - 10);
    const double r = nearbyint(a / step) * step; /* the default rounding: to nearest even */
    return copysign(r > 65504.0 ? INFINITY : r, (double)x);
}

static void test_convert_f16(void)
{
    const struct { float in; uint16_t out; const char *what; } cases[] = {
        {1.0f, 0x3c00, "1.0"},
        {-2.0f, 0xc000, "-2.0"},
        {65504.0f, 0x7bff, "largest finite stays"},
        {65519.0f, 0x7bff, "below the overflow halfway stays finite"},
        {65520.0f, 0x7c00, "the overflow halfway goes to inf"},
        {-65520.0f, 0xfc00, "and to -inf"},
        {1.0e6f, 0x7c00, "overflow"},
        {INFINITY, 0x7c00, "+inf"},
        {-INFINITY, 0xfc00, "-inf"},
        {0x1p-24f, 0x0001, "smallest subnormal"},
        {0x1.ff8p-15f, 0x03ff, "largest subnormal"},
        {0x1p-14f, 0x0400, "smallest normal"},
        {0x1p-25f, 0x0000, "halfway to the smallest subnormal: to 0 (even)"},
        {0x1.000002p-25f, 0x0001, "just above that halfway: up"},
        {0x1.8p-24f, 0x0002, "subnormal halfway: up to even"},
        {0x1.4p-23f, 0x0002, "subnormal halfway (2.5 units): down to even"},
        {0x1p-26f, 0x0000, "underflow to 0"},
        {-0x1p-26f, 0x8000, "underflow to -0"},
        {1.0e-10f, 0x0000, "far underflow"},
        {-0.0f, 0x8000, "-0 keeps its sign"},
        {1.0f + 0x1p-11f, 0x3c00, "halfway above 1: down to even"},
        {1.0f + 0x1.8p-10f, 0x3c02, "halfway between 1+u and 1+2u: up to even"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint16_t got = to_half(cases[i].in, ATTN_F16);
        CHECK_EQ_INT(got, cases[i].out);
        if (got != cases[i].out)
            printf("  (f16 of %a, %s: 0x%04x)\n", (double)cases[i].in, cases[i].what, got);
    }
    const uint16_t h = to_half(NAN, ATTN_F16);
    CHECK((h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0);
    CHECK(isnan(from_half(to_half(f32_from_bits(0x7f800001u), ATTN_F16), ATTN_F16)));
    /* Widening is exact. */
    CHECK(from_half(0x0001, ATTN_F16) == 0x1p-24f);
    CHECK(from_half(0x03ff, ATTN_F16) == 0x1.ff8p-15f);
    CHECK(from_half(0x7bff, ATTN_F16) == 65504.0f);
    CHECK(from_half(0xfc00, ATTN_F16) == -INFINITY);
    CHECK_EQ_INT(f32_bits(from_half(0x8000, ATTN_F16)), 0x80000000u);

    /* Bulk, against the reference in doubles: floats spread over the f16 range and beyond. */
    enum { N = 1 << 16 };
    float *in = malloc(N * sizeof *in), *back = malloc(N * sizeof *back);
    uint16_t *out = malloc(N * sizeof *out);
    uint64_t state = 2;
    for (int i = 0; i < N; i++) {
        const uint64_t x = attn_rng_next(&state);
        /* exponents 2^-28 .. 2^17, random significand and sign */
        const int e = (int)(x % 46) - 28;
        const double m = 1.0 + (double)(x >> 40) * 0x1p-24;
        in[i] = (float)ldexp((x >> 39) & 1 ? -m : m, e);
    }
    attn_convert(in, ATTN_F32, out, ATTN_F16, N);
    attn_convert(out, ATTN_F16, back, ATTN_F32, N);
    int wrong = 0;
    for (int i = 0; i < N; i++) {
        const double want = f16_reference(in[i]);
        const bool ok = (double)back[i] == want && !signbit(back[i]) == !signbit(want);
        if (!ok && wrong++ < 3)
            printf("  (f16 of %a: %a, want %a)\n", (double)in[i], (double)back[i], want);
    }
    CHECK_EQ_INT(wrong, 0);

    /* Between the types: float32 copies exactly; bf16 to f16 rounds, overflowing to inf. */
    float copy[4];
    const float src[4] = {1.5f, -0.0f, 0x1p-140f, INFINITY};
    attn_convert(src, ATTN_F32, copy, ATTN_F32, 4);
    CHECK(!memcmp(src, copy, sizeof src));
    const uint16_t bf[3] = {0x3f81 /* 1 + 2^-7 */, 0x4780 /* 65536 */, 0x3380 /* 2^-24 */};
    uint16_t f16[3];
    attn_convert(bf, ATTN_BF16, f16, ATTN_F16, 3);
    CHECK_EQ_INT(f16[0], 0x3c08);
    CHECK_EQ_INT(f16[1], 0x7c00);
    CHECK_EQ_INT(f16[2], 0x0001);
    free(in);
    free(back);
    free(out);
}

static void test_dtype_validation(void)
{
    attn_problem p;
    attn_error err;
    attn_problem_init(&p, 1, 2, 1, 3, 5, 8);
    CHECK_EQ_INT(p.dtype, ATTN_F32);
    CHECK_EQ_INT(p.out_dtype, ATTN_F32);
    const struct { int dtype, out; attn_status want; } cases[] = {
        {ATTN_F32, ATTN_F32, ATTN_OK},        {ATTN_BF16, ATTN_F32, ATTN_OK},
        {ATTN_BF16, ATTN_BF16, ATTN_OK},      {ATTN_F16, ATTN_F16, ATTN_OK},
        {ATTN_F16, ATTN_F32, ATTN_OK},        {7, ATTN_F32, ATTN_ERR_INVALID},
        {-1, ATTN_F32, ATTN_ERR_INVALID},     {ATTN_F32, ATTN_BF16, ATTN_ERR_INVALID},
        {ATTN_F32, ATTN_F16, ATTN_ERR_INVALID}, {ATTN_BF16, ATTN_F16, ATTN_ERR_INVALID},
        {ATTN_F16, ATTN_BF16, ATTN_ERR_INVALID}, {ATTN_BF16, 7, ATTN_ERR_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        p.dtype = (attn_dtype)cases[i].dtype;
        p.out_dtype = (attn_dtype)cases[i].out;
        memset(&err, 0, sizeof err);
        const attn_status s = attn_problem_validate(&p, &err);
        CHECK_EQ_INT(s, cases[i].want);
        CHECK(s == ATTN_OK || err.message[0] != '\0');
    }
    /* The tolerance adds a half output's unit roundoff. */
    attn_variant_info info;
    attn_variant_get(0, &info);
    char name[64];
    snprintf(name, sizeof name, "%s", info.name);
    p.dtype = ATTN_BF16;
    p.out_dtype = ATTN_F32;
    CHECK_EQ_DBL(attn_variant_tolerance(name, &p), info.tolerance);
    p.out_dtype = ATTN_BF16;
    CHECK_EQ_DBL(attn_variant_tolerance(name, &p), info.tolerance + ldexp(1.0, -8));
    p.dtype = p.out_dtype = ATTN_F16;
    CHECK_EQ_DBL(attn_variant_tolerance(name, &p), info.tolerance + ldexp(1.0, -11));
    CHECK_EQ_DBL(attn_variant_tolerance("no-such-variant", &p), -1.0);
}

/* Random inputs already rounded to type t, for problem p (contiguous), in t and widened. */
typedef struct half_inputs {
    void *x[3];   /* q, k, v in t */
    float *w[3];  /* widened */
    int64_t n[4]; /* extents of q, k, v, o */
} half_inputs;

static void half_inputs_make(const attn_problem *p, attn_dtype t, uint64_t seed, half_inputs *h)
{
    const char names[4] = {'q', 'k', 'v', 'o'};
    for (int i = 0; i < 4; i++)
        attn_tensor_extent(p, names[i], &h->n[i], NULL);
    for (int i = 0; i < 3; i++) {
        float *f = malloc((size_t)h->n[i] * sizeof *f);
        for (int64_t e = 0; e < h->n[i]; e++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            f[e] = (float)((double)(seed >> 11) * 0x1p-53 * 4.0 - 2.0);
        }
        h->x[i] = malloc((size_t)h->n[i] * attn_dtype_size(t));
        h->w[i] = malloc((size_t)h->n[i] * sizeof(float));
        attn_convert(f, ATTN_F32, h->x[i], t, (size_t)h->n[i]);
        attn_convert(h->x[i], t, h->w[i], ATTN_F32, (size_t)h->n[i]);
        free(f);
    }
}

static void half_inputs_free(half_inputs *h)
{
    for (int i = 0; i < 3; i++) {
        free(h->x[i]);
        free(h->w[i]);
    }
}

/* A variant that reads only float32 is refused half inputs, with a message naming the types,
 * without writing the output. */
static void test_dtype_unsupported(void)
{
    attn_problem p;
    attn_problem_init(&p, 1, 2, 1, 3, 5, 8);
    p.dtype = ATTN_BF16;
    half_inputs h;
    half_inputs_make(&p, ATTN_BF16, 1, &h);
    float o[2 * 3 * 8];
    int refused = 0;
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        attn_variant_get(i, &info);
        CHECK(info.dtypes & (1u << ATTN_F32)); /* every variant reads float32 */
        CHECK((info.dtypes & ~((1u << ATTN_DTYPE_COUNT) - 1)) == 0);
        CHECK(info.compute_dtype == ATTN_F32 || info.compute_dtype == ATTN_BF16);
        if (!info.supported || (info.dtypes & (1u << ATTN_BF16)))
            continue;
        char name[64];
        snprintf(name, sizeof name, "%s", info.name);
        for (size_t e = 0; e < sizeof o / sizeof o[0]; e++)
            o[e] = 42.0f;
        attn_error err;
        memset(&err, 0, sizeof err);
        CHECK_EQ_INT(attn_run_variant(name, &p, NULL, h.x[0], h.x[1], h.x[2], o, &err),
                     ATTN_ERR_UNSUPPORTED);
        CHECK_EQ_INT(err.status, ATTN_ERR_UNSUPPORTED);
        CHECK(strstr(err.message, "bf16") && strstr(err.message, "f32"));
        bool untouched = true;
        for (size_t e = 0; e < sizeof o / sizeof o[0]; e++)
            untouched &= o[e] == 42.0f;
        CHECK(untouched);
        refused++;
    }
    /* blocked reads float32 only: the case is not vacuous. */
    const int blocked = attn_variant_find("blocked");
    CHECK(blocked >= 0);
    attn_variant_info info;
    if (blocked >= 0 && attn_variant_get(blocked, &info))
        CHECK(info.dtypes == 1u << ATTN_F32);
    CHECK(refused >= 1);
    half_inputs_free(&h);
}

/* naive and streaming widen half rows exactly and then run the float32 code: on half inputs
 * they give the bits they give on the widened copies. A half output is the float32 output
 * rounded by attn_convert. */
static void test_dtype_runs(void)
{
    const char *variants[] = {"naive", "streaming"};
    const attn_dtype types[] = {ATTN_BF16, ATTN_F16};
    for (size_t vi = 0; vi < 2; vi++)
        for (size_t ti = 0; ti < 2; ti++)
            for (int layout = 0; layout < 2; layout++) {
                const char *name = variants[vi];
                const attn_dtype t = types[ti];
                attn_problem p;
                attn_problem_init(&p, 2, 4, 2, 13, 29, 24);
                p.causal = true;
                if (layout)
                    attn_problem_set_layout_blhd(&p);
                half_inputs h;
                half_inputs_make(&p, t, 7 + vi * 2 + ti, &h);
                const size_t n = (size_t)h.n[3];
                float *o_half_in = malloc(n * sizeof(float)), *o_wide = malloc(n * sizeof(float));
                uint16_t *o_half = malloc(n * sizeof(uint16_t)), *o_conv = malloc(n * 2);
                attn_params params;
                attn_variant_default_params(name, &p, &params, NULL);
                params.threads = 1 + layout * 2;
                attn_error err;

                attn_problem pw = p; /* float32 inputs: the widened copies */
                CHECK_EQ_INT(attn_run_variant(name, &pw, &params, h.w[0], h.w[1], h.w[2], o_wide,
                                              &err), ATTN_OK);
                p.dtype = t;
                CHECK_EQ_INT(attn_run_variant(name, &p, &params, h.x[0], h.x[1], h.x[2],
                                              o_half_in, &err), ATTN_OK);
                const bool same = !memcmp(o_half_in, o_wide, n * sizeof(float));
                CHECK(same);
                p.out_dtype = t;
                CHECK_EQ_INT(attn_run_variant(name, &p, &params, h.x[0], h.x[1], h.x[2], o_half,
                                              &err), ATTN_OK);
                attn_convert(o_wide, ATTN_F32, o_conv, t, n);
                const bool rounded = !memcmp(o_half, o_conv, n * sizeof(uint16_t));
                CHECK(rounded);
                if (!same || !rounded)
                    printf("  (%s, %s inputs, layout %s: %s)\n", name, attn_dtype_name(t),
                           layout ? "blhd" : "bhld",
                           same ? "half output is not the rounded float32 output"
                                : "differs from the run on widened float32 inputs");
                free(o_half_in);
                free(o_wide);
                free(o_half);
                free(o_conv);
                half_inputs_free(&h);
            }
}

int main(void)
{
    test_problem_init();
    test_problem_scale();
    test_problem_flops();
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
    test_dtype_names();
    test_convert_bf16();
    test_convert_f16();
    test_dtype_validation();
    test_dtype_unsupported();
    test_dtype_runs();
    printf("test_api: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
