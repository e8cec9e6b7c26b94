/* stats.c — medians, Welch's t-test on log times, Benjamini–Hochberg (see stats.h). */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int compare_doubles(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double stats_median(const double *x, size_t n)
{
    if (n == 0)
        return NAN;
    double *copy = malloc(n * sizeof *copy);
    if (!copy)
        return NAN;
    memcpy(copy, x, n * sizeof *copy);
    qsort(copy, n, sizeof *copy, compare_doubles);
    const double median = n % 2 ? copy[n / 2] : 0.5 * (copy[n / 2 - 1] + copy[n / 2]);
    free(copy);
    return median;
}

/* The q-quantile of sorted[0..n), interpolating linearly between order statistics. */
static double sorted_quantile(const double *sorted, size_t n, double q)
{
    const double at = q * (double)(n - 1);
    const size_t i = (size_t)at;
    const size_t j = i + 1 < n ? i + 1 : i;
    return sorted[i] + (sorted[j] - sorted[i]) * (at - (double)i);
}

bool stats_spread_of(const double *x, size_t n, stats_spread *out)
{
    *out = (stats_spread){0};
    if (n == 0)
        return false;
    double *sorted = malloc(n * sizeof *sorted);
    if (!sorted)
        return false;
    memcpy(sorted, x, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, compare_doubles);
    out->q1 = sorted_quantile(sorted, n, 0.25);
    out->q3 = sorted_quantile(sorted, n, 0.75);
    out->iqr = out->q3 - out->q1;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += sorted[i];
    out->mean = sum / (double)n;
    double squares = 0;
    for (size_t i = 0; i < n; i++)
        squares += (sorted[i] - out->mean) * (sorted[i] - out->mean);
    out->cv = n > 1 && out->mean > 0 ? sqrt(squares / (double)(n - 1)) / out->mean : 0;
    const double low = out->q1 - 1.5 * out->iqr, high = out->q3 + 1.5 * out->iqr;
    for (size_t i = 0; i < n; i++)
        out->outliers += sorted[i] < low || sorted[i] > high;
    free(sorted);
    return true;
}

bool stats_spread_is_large(const stats_spread *s, double median)
{
    return s->cv > 0.10 || (median > 0 && s->iqr > 0.10 * median);
}

/* The continued fraction of the regularised incomplete beta function (DLMF 8.17.22),
 * 1 + d1/(1 + d2/(1 + ...)), by the modified Lentz method. Converges quickly for
 * x < (a + 1)/(a + b + 2). */
static double beta_fraction(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-15;
    double f = 1.0, c = 1.0, d = 0.0;
    for (int j = 1; j <= 1000; j++) {
        const int m = j / 2;
        const double dj = j % 2 ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                                : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
        d = 1.0 + dj * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1.0 + dj / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        const double delta = c * d;
        f *= delta;
        if (fabs(delta - 1.0) < eps)
            break;
    }
    return f;
}

/* I_x(a, b), the regularised incomplete beta function, for a, b > 0 and x in [0, 1]. */
static double incomplete_beta(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    if (x > (a + 1) / (a + b + 2))
        return 1.0 - incomplete_beta(b, a, 1.0 - x); /* the fraction converges on this side */
    const double log_front =
        a * log(x) + b * log1p(-x) - (lgamma(a) + lgamma(b) - lgamma(a + b));
    return exp(log_front) / a / beta_fraction(a, b, x);
}

double stats_t_two_sided_p(double t, double df)
{
    if (isnan(t) || !(df > 0))
        return NAN;
    if (isinf(t))
        return 0;
    return incomplete_beta(0.5 * df, 0.5, df / (df + t * t));
}

double stats_t_critical(double alpha, double df)
{
    double lo = 0, hi = 1;
    while (stats_t_two_sided_p(hi, df) > alpha && hi < 1e12)
        hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
        const double mid = 0.5 * (lo + hi);
        if (stats_t_two_sided_p(mid, df) > alpha)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* Mean and sample variance of log x; false when a value is not finite and positive. */
static bool log_moments(const double *x, size_t n, double *mean, double *var)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(isfinite(x[i]) && x[i] > 0))
            return false;
        sum += log(x[i]);
    }
    *mean = sum / (double)n;
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (log(x[i]) - *mean) * (log(x[i]) - *mean);
    *var = ss / (double)(n - 1);
    return true;
}

/* Fills p and the interval from diff, se and df (se == 0: certain either way). */
static void finish_test(double level, stats_welch *out)
{
    if (out->se == 0) {
        out->df = 0;
        out->p = out->diff == 0 ? 1.0 : 0.0;
        out->lo = out->hi = exp(out->diff);
        return;
    }
    out->p = stats_t_two_sided_p(out->diff / out->se, out->df);
    const double half = stats_t_critical(1.0 - level, out->df) * out->se;
    out->lo = exp(out->diff - half);
    out->hi = exp(out->diff + half);
}

bool stats_welch_log(const double *a, size_t na, const double *b, size_t nb, double level,
                     stats_welch *out)
{
    double mean_a, var_a, mean_b, var_b;
    if (na < 2 || nb < 2 || !log_moments(a, na, &mean_a, &var_a) ||
        !log_moments(b, nb, &mean_b, &var_b))
        return false;
    const double va = var_a / (double)na, vb = var_b / (double)nb;
    *out = (stats_welch){.diff = mean_b - mean_a, .se = sqrt(va + vb)};
    if (out->se > 0)
        out->df = (va + vb) * (va + vb) /
                  (va * va / (double)(na - 1) + vb * vb / (double)(nb - 1));
    finish_test(level, out);
    return true;
}

bool stats_paired_log(const double *a, const double *b, size_t n, double level,
                      stats_welch *out, size_t *dropped)
{
    *dropped = 0;
    if (n < 2)
        return false;
    double *d = malloc(3 * n * sizeof *d);
    if (!d)
        return false;
    double *deviation = d + n, *kept = d + 2 * n;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        ok = ok && isfinite(a[i]) && a[i] > 0 && isfinite(b[i]) && b[i] > 0;
        d[i] = ok ? log(b[i] / a[i]) : 0;
    }
    size_t count = n;
    if (ok) {
        const double center = stats_median(d, n);
        for (size_t i = 0; i < n; i++)
            deviation[i] = fabs(d[i] - center);
        const double mad = stats_median(deviation, n);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (!(mad > 0) || 0.6745 * deviation[i] / mad <= 3.5)
                kept[k++] = exp(d[i]);
        /* Each round left out narrows the interval: at most one in five (one below 10). */
        const size_t most = n / 5 > 1 ? n / 5 : 1;
        if (k >= 3 && k < n && n - k <= most) {
            *dropped = n - k;
            count = k;
        } else {
            for (size_t i = 0; i < n; i++)
                kept[i] = exp(d[i]);
        }
    }
    double mean, var;
    ok = ok && log_moments(kept, count, &mean, &var);
    free(d);
    if (!ok)
        return false;
    *out = (stats_welch){.diff = mean, .se = sqrt(var / (double)count),
                         .df = (double)(count - 1)};
    finish_test(level, out);
    return true;
}

/* Orders indices by their p-value (qsort_r, a GNU extension; _GNU_SOURCE is defined). */
static int compare_by_p(const void *x, const void *y, void *keys)
{
    const double *p = keys;
    const double a = p[*(const size_t *)x], b = p[*(const size_t *)y];
    return (a > b) - (a < b);
}

bool stats_bh_adjust(const double *p, size_t n, double *q)
{
    if (n == 0)
        return true;
    size_t *order = malloc(n * sizeof *order);
    double *adjusted = malloc(n * sizeof *adjusted);
    if (!order || !adjusted) {
        free(order);
        free(adjusted);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof *order, compare_by_p, (void *)p);
    /* Step-up: q_(k) = min over j >= k of p_(j)·n/j, capped at 1. */
    double running = 1.0;
    for (size_t k = n; k-- > 0;) {
        const double scaled = p[order[k]] * (double)n / (double)(k + 1);
        if (scaled < running)
            running = scaled;
        adjusted[order[k]] = running;
    }
    memcpy(q, adjusted, n * sizeof *q);
    free(order);
    free(adjusted);
    return true;
}
