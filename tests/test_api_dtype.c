/* test_api_dtype.c — unit tests of the element types of the public API: names, sizes,
 * attn_convert's rounding (bf16, f16: small cases worked out by hand, bulk conversions against a
 * reference written here), validation, refusal by variants that do not read a type, and runs
 * with half inputs and outputs. */
#include "attn.h"
#include "check.h"
#include "rng.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        CHECK(info.compute_dtype == ATTN_F32 || info.compute_dtype == ATTN_BF16 ||
              info.compute_dtype == ATTN_F16);
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
    test_dtype_names();
    test_convert_bf16();
    test_convert_f16();
    test_dtype_validation();
    test_dtype_unsupported();
    test_dtype_runs();
    return check_summary("test_api_dtype");
}
