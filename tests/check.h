/* check.h — the checks of the C unit tests (test_api.c, test_plan.c, test_wisdom.c,
 * test_defaults.c, test_exp2.c): each failed check prints one line with its file:line, the
 * condition and what it saw, and counts; check_summary() prints "NAME: N checks, M failed" and
 * gives the exit status. Header-only, libc only (the tests that link just libattn use it too);
 * one test program is one translation unit, so the counters are its own.
 *
 *   CHECK(cond)                    the condition's text on failure
 *   CHECK_MSG(cond, fmt, ...)      and a printf message
 *   CHECK_EQ_INT(a, b)             both values, as long long
 *   CHECK_EQ_DBL(a, b)             both values, to 17 digits (exact comparison)
 *
 * The conformance runner keeps its own per-variant counts and FAILED lines with replay hints
 * (tests/conformance.c): its checks are cases, not lines of code. */
#ifndef ATTN_TEST_CHECK_H
#define ATTN_TEST_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static int check_count, check_failures;

/* Counts one check; on failure prints "FILE:LINE: FAILED: TEXT[: message]". */
__attribute__((format(printf, 5, 6))) static inline bool
check_report(bool ok, const char *file, int line, const char *text, const char *fmt, ...)
{
    check_count++;
    if (ok)
        return true;
    check_failures++;
    printf("%s:%d: FAILED: %s", file, line, text);
    if (fmt && fmt[0]) {
        va_list ap;
        va_start(ap, fmt);
        printf(": ");
        vprintf(fmt, ap);
        va_end(ap);
    }
    printf("\n");
    return false;
}

#define CHECK(cond) check_report((cond), __FILE__, __LINE__, #cond, NULL)
#define CHECK_MSG(cond, ...) check_report((cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

#define CHECK_EQ_INT(a, b)                                                                    \
    do {                                                                                      \
        const long long a_ = (long long)(a), b_ = (long long)(b);                             \
        check_report(a_ == b_, __FILE__, __LINE__, #a " == " #b, "%lld != %lld", a_, b_);     \
    } while (0)

#define CHECK_EQ_DBL(a, b)                                                                    \
    do {                                                                                      \
        const double a_ = (a), b_ = (b);                                                      \
        check_report(a_ == b_, __FILE__, __LINE__, #a " == " #b, "%.17g != %.17g", a_, b_);   \
    } while (0)

/* Prints "NAME: N checks, M failed"; the exit status for main (1 if any failed). */
static inline int check_summary(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

/* n floats in [-1, 1) from a linear congruential sequence started at seed (the same values on
 * every platform); exits with status 2 when out of memory. Free with free(). */
static inline float *check_floats(size_t n, unsigned seed)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) {
        fprintf(stderr, "out of memory (%zu floats)\n", n);
        exit(2);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / (float)(1u << 23) - 1.0f;
    }
    return x;
}

#endif
