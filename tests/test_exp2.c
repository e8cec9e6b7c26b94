/* test_exp2.c — accuracy of attn_exp2_nonpos() (variants/exp2_poly.h), the 2^x every SIMD
 * softmax uses, against exp2() in double over [-126, 0]; and of attn_tanh_model(), the tanh of
 * the logit soft cap (test_tanh, below); and of attn_exp2_bf16_nonpos(), the degree-3 2^x of
 * the bf16 kernels' weights (test_exp2_bf16, below).
 *
 * Every float in [-126, 0] is ~1.1e9 values; the sweep takes
 *   - a uniform grid of 10^7 points over [-126, 0],
 *   - every 64th float bit pattern in [-1, 0] (~1.7e7 values, all binades down to the
 *     denormals, where the result is ~1),
 *   - the 2·4096 floats around every half-integer and integer in [-126, 0], where the range
 *     reduction n = round(x) switches and f = x - n reaches ±0.5,
 * and reports the max relative error and the max error in ulps of the exact result, failing
 * if the latter exceeds MAX_ULPS. It also checks the special inputs: x < -126 gives 0, NaN
 * gives NaN, -0 and 0 give ~1.
 *
 * The largest ulp error sits just below x = 0: there p(f) rounds to C0 = 1 + 2^-23 while the
 * exact 2^x is just under 1, where an ulp is 2^-24, so the error approaches (but stays under)
 * 3 ulp; elsewhere it is under ~2.7 ulp. The relative error stays near 2.1e-7. */
#include "check.h"
#include "exp2_poly.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_ULPS 3.0

typedef struct error_stats {
    double max_rel, max_ulp;
    float worst_rel_x, worst_ulp_x;
    long long points;
} error_stats;

/* ulp of a float of (exact, positive, normal) value y: 2^(floor(log2 y) - 23). */
static double float_ulp(double y)
{
    int e;
    frexp(y, &e); /* y = m·2^e, m in [0.5, 1) */
    return ldexp(1.0, e - 1 - 23);
}

/* One point of a function: its float result `got` against the exact value (nonzero). */
static void measure_fn(error_stats *s, float x, double got, double exact)
{
    const double err = fabs(got - exact);
    const double rel = err / fabs(exact), ulp = err / float_ulp(fabs(exact));
    s->points++;
    if (rel > s->max_rel) {
        s->max_rel = rel;
        s->worst_rel_x = x;
    }
    if (ulp > s->max_ulp) {
        s->max_ulp = ulp;
        s->worst_ulp_x = x;
    }
}

static void measure(error_stats *s, float x)
{
    measure_fn(s, x, attn_exp2_nonpos(x), exp2((double)x));
}

static float float_from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static void report(const char *what, const error_stats *s)
{
    printf("exp2 %-34s %11lld points: max rel err %.3g (at x=%.9g), max %.4f ulp (at x=%.9g)\n",
           what, s->points, s->max_rel, (double)s->worst_rel_x, s->max_ulp,
           (double)s->worst_ulp_x);
}

static void merge(error_stats *all, const error_stats *s)
{
    if (s->max_rel > all->max_rel) {
        all->max_rel = s->max_rel;
        all->worst_rel_x = s->worst_rel_x;
    }
    if (s->max_ulp > all->max_ulp) {
        all->max_ulp = s->max_ulp;
        all->worst_ulp_x = s->worst_ulp_x;
    }
    all->points += s->points;
}

/* tanh of the soft cap (attn_tanh_model, the scalar model of tanh_ps and tanh8) against tanh()
 * in double: a uniform grid on [-20, 20] and every 64th float in (0, 2] with its negative,
 * reporting the max relative error and ulps (of the exact result); fails above MAX_TANH_ULPS
 * (measured: 4.03 ulp, relative 2.7e-7, just below tanh = 0.5 in the exp2 half).
 * Exact ±1 beyond |x| = 9.1 (where tanh rounds to 1 in float), NaN stays NaN. */
#define MAX_TANH_ULPS 4.5

static void test_tanh(void)
{
    error_stats s = {0};
    const long long n = 4000000;
    for (long long i = 0; i <= 2 * n; i++) {
        const float x = (float)(20.0 * (double)(i - n) / (double)n);
        if (x != 0.0f)
            measure_fn(&s, x, attn_tanh_model(x), tanh((double)x));
    }
    for (uint32_t b = 0x00800000u; b <= 0x40000000u; b += 64) { /* 2^-126 .. 2 */
        const float x = float_from_bits(b);
        measure_fn(&s, x, attn_tanh_model(x), tanh((double)x));
        measure_fn(&s, -x, attn_tanh_model(-x), tanh(-(double)x));
    }
    printf("tanh %-34s %11lld points: max rel err %.3g (at x=%.9g), max %.4f ulp (at x=%.9g)\n",
           "grid on [-20, 20], (0, 2] by 64", s.points, s.max_rel, (double)s.worst_rel_x,
           s.max_ulp, (double)s.worst_ulp_x);
    CHECK_MSG(s.max_ulp <= MAX_TANH_ULPS, "tanh max error %.3f ulp exceeds %.1f ulp", s.max_ulp,
              MAX_TANH_ULPS);
    CHECK_MSG(attn_tanh_model(10.0f) == 1.0f && attn_tanh_model(-1e30f) == -1.0f &&
                  isnan(attn_tanh_model(NAN)),
              "tanh(10) = %g, tanh(-1e30) = %g, tanh(NaN) = %g (expected 1, -1, NaN)",
              (double)attn_tanh_model(10.0f), (double)attn_tanh_model(-1e30f),
              (double)attn_tanh_model(NAN));
}

/* attn_exp2_bf16_nonpos: its weights are rounded to bf16 (half-ulp 2^-9) right after, so it
 * is held to a relative error bound, MAX_BF16_REL (measured: 1.02e-4), over a uniform grid of
 * [-126, 0] and the floats around every k/2; plus the special inputs of attn_exp2_nonpos. */
#define MAX_BF16_REL 1.1e-4
static void test_exp2_bf16(void)
{
    error_stats s = {0};
    const long long n = 2000000;
    for (long long i = 0; i <= n; i++) {
        const float x = (float)(ATTN_EXP2_MIN * (double)i / (double)n);
        measure_fn(&s, x, attn_exp2_bf16_nonpos(x), exp2((double)x));
    }
    for (int h = 1; h <= 252; h++) {
        const uint32_t c = bits_of(-0.5f * (float)h);
        for (uint32_t d = 0; d <= 256; d++) {
            const float x[2] = {float_from_bits(c - d), float_from_bits(c + d)};
            for (int k = 0; k < 2; k++)
                if (x[k] >= ATTN_EXP2_MIN)
                    measure_fn(&s, x[k], attn_exp2_bf16_nonpos(x[k]), exp2((double)x[k]));
        }
    }
    report("degree 3 (bf16 weights)", &s);
    CHECK_MSG(s.max_rel <= MAX_BF16_REL, "degree-3 max rel err %.3g exceeds %.3g", s.max_rel,
              MAX_BF16_REL);
    CHECK(attn_exp2_bf16_nonpos(-126.5f) == 0.0f && attn_exp2_bf16_nonpos(-INFINITY) == 0.0f);
    CHECK(isnan(attn_exp2_bf16_nonpos(NAN)));
    CHECK(attn_exp2_bf16_nonpos(0.0f) == 1.0f && attn_exp2_bf16_nonpos(-0.0f) == 1.0f);
}

int main(void)
{
    error_stats all = {0}, grid = {0}, unit = {0}, edges = {0};

    const long long n = 10000000;
    for (long long i = 0; i <= n; i++)
        measure(&grid, (float)(ATTN_EXP2_MIN * (double)i / (double)n));
    report("uniform grid on [-126, 0]", &grid);

    /* Bit patterns of -0 ... -1: 0x80000000 to 0xbf800000. */
    for (uint32_t b = 0x80000000u; b <= 0xbf800000u; b += 64)
        measure(&unit, float_from_bits(b));
    measure(&unit, -1.0f);
    report("every 64th float in [-1, 0]", &unit);

    /* Around every integer and half-integer k/2 in [-126, 0]: 4096 floats each side. */
    for (int h = 0; h <= 252; h++) {
        const float center = -0.5f * (float)h;
        const uint32_t c = bits_of(center);
        for (uint32_t d = 0; d <= 4096; d++) {
            if (h > 0) /* towards zero: smaller magnitude */
                measure(&edges, float_from_bits(c - d));
            if (h < 252 && (h > 0 || d > 0)) /* away from zero (not below -126) */
                measure(&edges, h > 0 ? float_from_bits(c + d) : -float_from_bits(d));
        }
    }
    report("4096 floats around each k/2", &edges);

    merge(&all, &grid);
    merge(&all, &unit);
    merge(&all, &edges);
    report("all", &all);
    CHECK_MSG(all.max_ulp <= MAX_ULPS, "max error %.3f ulp exceeds %.1f ulp", all.max_ulp,
              MAX_ULPS);

    /* Special inputs. */
    const struct { float x; const char *what; } below[] = {
        {-126.00001f, "just below -126"}, {-127.0f, "-127"}, {-1000.0f, "-1000"},
        {-INFINITY, "-inf"},
    };
    for (size_t i = 0; i < sizeof below / sizeof below[0]; i++)
        CHECK_MSG(attn_exp2_nonpos(below[i].x) == 0.0f, "exp2(%s) = %g, expected 0",
                  below[i].what, (double)attn_exp2_nonpos(below[i].x));
    CHECK(isnan(attn_exp2_nonpos(NAN)));
    const float at_zero[2] = {0.0f, -0.0f};
    for (int i = 0; i < 2; i++) {
        const float y = attn_exp2_nonpos(at_zero[i]);
        CHECK_MSG(fabs((double)y - 1.0) <= MAX_ULPS * 0x1p-23, "exp2(%s0) = %.9g, expected 1",
                  i ? "-" : "+", (double)y);
    }
    CHECK_MSG(attn_exp2_nonpos(ATTN_EXP2_MIN) >= 0x1p-126f, "exp2(-126) = %g is below 2^-126",
              (double)attn_exp2_nonpos(-126.0f));
    test_tanh();
    test_exp2_bf16();
    return check_summary("test_exp2");
}
