/* changepoint.h — change points in a series of benchmark results: E-Divisive means.
 *
 * The method (Matteson & James, "A nonparametric approach for multiple change point analysis
 * of multivariate data", JASA 2014; as MongoDB's performance CI runs it, Daly et al., "The Use
 * of Change Point Detection to Identify Software Performance Regressions in a Continuous
 * Integration System", ICPE 2020): for every split tau of a segment into X (before) and Y
 * (after), the energy statistic
 *     Q(tau) = m n / (m + n) * ( 2/(m n) sum |x_i - y_j|
 *                                - 1/C(m,2) sum_{i<k} |x_i - x_k| - 1/C(n,2) sum_{j<k} |y_j - y_k| )
 * (the divergence of the two samples' distributions; alpha = 1 by default) is largest at the
 * most likely change. Y runs to the segment's end (Matteson & James also search where Y ends;
 * with the end fixed a scan is O(n^2) and a single step is found the same way). Its significance is a permutation test: the same maximum over R random
 * orderings of the segment, p = (1 + #{max_perm >= max}) / (R + 1). A significant split is
 * kept and both sides are searched again (the best candidate over all segments first), until
 * no candidate is significant.
 *
 * Why this method: it assumes no distribution (benchmark noise is skewed, with bursts of load,
 * not normal), it needs no prior on how often changes happen (Bayesian online detection does),
 * it finds several changes in one series, and MongoDB's CI has shown it to work on exactly this
 * kind of data. Why on per-commit medians of log times: a commit's repetitions are not
 * independent of each other (one machine, one moment), so the commit is the unit; the median
 * keeps a burst of load inside one run from moving the point; logs make a change a shift,
 * whatever the kernel's time.
 *
 * Deterministic: the permutations come from rng.h with a fixed seed, so a history gives the
 * same answer on every run. */
#ifndef ATTN_CHANGEPOINT_H
#define ATTN_CHANGEPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct changepoint_options {
    double alpha;        /* the distances' exponent, in (0, 2] */
    double significance; /* keep a split when its permutation p-value is at most this */
    int permutations;    /* R */
    size_t min_size;     /* fewest points on either side of a split (>= 2) */
    uint64_t seed;
} changepoint_options;

typedef struct changepoint {
    size_t index; /* the first point after the change */
    double p;     /* its permutation p-value */
} changepoint;

/* The change points of x[0..n), in increasing index order, into out (room for n entries);
 * their number in *count. False when a temporary cannot be allocated. */
bool changepoint_edivisive(const double *x, size_t n, const changepoint_options *o,
                           changepoint *out, size_t *count);

#endif
