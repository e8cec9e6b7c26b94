/* stats.h — the statistics of `attnbench compare`: medians, Welch's t-test on log times with its
 * confidence interval, and Benjamini–Hochberg false-discovery-rate control; and the spread of
 * repeated timings (quartiles, coefficient of variation, outliers) that every record carries.
 *
 * Why Welch on log times: timings are positive and their noise is roughly multiplicative, so a
 * slowdown is a shift of log time and the ratio NEW/BASE is exp(shift). With the 3–10 repetitions
 * a CI job can afford, a rank test cannot reach small p-values (Mann–Whitney with 5 against 5
 * never goes below p = 2/252 = 0.0079), so after FDR control over a matrix of a few dozen
 * benchmarks a single regressed kernel could never be flagged; the t-test can. Its weakness,
 * outliers, works against detection (an outlier inflates the variance), not towards false
 * alarms, and `compare` also asks the ratio of medians, which one outlier cannot move, to agree. */
#ifndef ATTN_STATS_H
#define ATTN_STATS_H

#include <stdbool.h>
#include <stddef.h>

/* The median of x[0..n) (mean of the two middle values when n is even); NaN when n == 0.
 * Does not modify x. NaN as well when a copy cannot be allocated. */
double stats_median(const double *x, size_t n);

/* The spread of repeated timings, as every record reports it (run, sweep, tune). */
typedef struct stats_spread {
    double q1, q3;   /* quartiles (linear interpolation between order statistics) */
    double iqr;      /* q3 - q1 */
    double mean, cv; /* coefficient of variation: sample standard deviation / mean */
    size_t outliers; /* samples beyond Tukey's fences, q1 - 1.5 iqr and q3 + 1.5 iqr */
} stats_spread;

/* The spread of x[0..n) (n >= 1; with n == 1, iqr and cv are 0). Does not modify x. False when
 * a copy cannot be allocated or n == 0. */
bool stats_spread_of(const double *x, size_t n, stats_spread *out);

/* Whether a spread is large enough that a median alone misleads (hyperfine warns alike): a
 * coefficient of variation above 10%, or an interquartile range above 10% of the median. */
bool stats_spread_is_large(const stats_spread *s, double median);

/* Two-sided p-value of Student's t distribution with df degrees of freedom: P(|T| >= |t|). */
double stats_t_two_sided_p(double t, double df);
/* The quantile t such that P(|T| >= t) = alpha (0 < alpha < 1, df > 0). */
double stats_t_critical(double alpha, double df);

typedef struct stats_welch {
    double diff;   /* mean(log b) - mean(log a): log of the geometric-mean ratio b/a */
    double se;     /* its standard error */
    double df;     /* Welch–Satterthwaite degrees of freedom (0 when se == 0) */
    double p;      /* two-sided p-value of diff != 0 */
    double lo, hi; /* confidence interval of the ratio b/a, exp(diff -/+ t*se) */
} stats_welch;

/* Welch's t-test on the logs of positive samples a[0..na), b[0..nb), na, nb >= 2, with a
 * two-sided interval of the given confidence level (e.g. 0.95). With zero variance on both
 * sides, p is 0 when the means differ and 1 when they do not. False when a sample is not
 * finite and positive, or a side has fewer than 2 samples. */
bool stats_welch_log(const double *a, size_t na, const double *b, size_t nb, double level,
                     stats_welch *out);

/* The paired version, for samples taken in matched rounds (scripts/perf-ab runs BASE and NEW
 * alternately): a one-sample t-test on d[i] = log(b[i]/a[i]), so a drift of the machine that
 * slows both sides of a round cancels in its ratio. A round whose ratio is an outlier among
 * the rounds' ratios — a burst of other load that hit one side only — is left out first:
 * Iglewicz and Hoaglin's modified z-score, 0.6745·|d[i] - median(d)| / MAD(d) > 3.5 (MAD: the
 * median absolute deviation; nothing is left out when it is 0, when fewer than 3 rounds would
 * remain, or when more than one round in five (one, below 10 rounds) looks like an outlier:
 * then the noise is the rule, not a burst, and leaving rounds out would only narrow the
 * interval). *dropped receives how many were left out. Same output and failures as
 * stats_welch_log otherwise, with n >= 2 pairs; df = pairs kept - 1. */
bool stats_paired_log(const double *a, const double *b, size_t n, double level,
                      stats_welch *out, size_t *dropped);

/* Benjamini–Hochberg adjusted p-values (q-values): q[i] <= fdr means hypothesis i is rejected
 * at false-discovery rate fdr by the step-up procedure over all n. p and q may be the same
 * array. False when a temporary cannot be allocated. */
bool stats_bh_adjust(const double *p, size_t n, double *q);

#endif
