/* changepoint.c — E-Divisive means (changepoint.h has the method and why). */
#include "changepoint.h"

#include "rng.h"

#include <math.h>
#include <stdlib.h>

/* The best split of the segment whose points are x[order[0..n)], by Q(tau), tau in
 * [min_size, n - min_size]; its Q in *best_q. The sums update in O(n) per tau from row sums of
 * the distance matrix, so one scan is O(n^2). */
static double distance(double a, double b, double alpha)
{
    return alpha == 1 ? fabs(a - b) : pow(fabs(a - b), alpha);
}

static size_t best_split(const double *x, const size_t *order, size_t n, size_t min_size,
                         double alpha, double *best_q)
{
    /* within_before: sum over pairs before tau; within_after: pairs from tau on; across: one
     * on each side. Start at tau = 0: everything is after. */
    double within_before = 0, within_after = 0, across = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            within_after += distance(x[order[i]], x[order[j]], alpha);
    size_t best = 0;
    *best_q = -INFINITY;
    for (size_t tau = 0; tau + min_size <= n; tau++) {
        if (tau >= min_size) {
            const double m = (double)tau, k = (double)(n - tau);
            const double e = 2.0 * across / (m * k) - within_before / (m * (m - 1) / 2) -
                             within_after / (k * (k - 1) / 2);
            const double q = m * k / (m + k) * e;
            if (q > *best_q) {
                *best_q = q;
                best = tau;
            }
        }
        /* Move point tau from after to before. */
        double to_before = 0, to_after = 0;
        const double xt = x[order[tau]];
        for (size_t i = 0; i < tau; i++)
            to_before += distance(xt, x[order[i]], alpha);
        for (size_t j = tau + 1; j < n; j++)
            to_after += distance(xt, x[order[j]], alpha);
        within_before += to_before;
        within_after -= to_after;
        across += to_after - to_before;
    }
    return best;
}

typedef struct candidate {
    size_t start, end, split; /* segment [start, end), split at an absolute index */
    double p;
} candidate;

/* The best split of x[start..end) and its permutation p-value; split 0 when the segment is
 * too short to split. */
static bool test_segment(const double *x, size_t start, size_t end,
                         const changepoint_options *o, uint64_t *rng, candidate *c)
{
    const size_t n = end - start;
    *c = (candidate){start, end, 0, 1.0};
    if (n < 2 * o->min_size)
        return true;
    size_t *order = malloc(n * sizeof *order);
    if (!order)
        return false;
    for (size_t i = 0; i < n; i++)
        order[i] = start + i;
    double q;
    c->split = start + best_split(x, order, n, o->min_size, o->alpha, &q);
    /* Once more orderings reach q than a significant p allows, the split cannot be kept: stop
     * there (p is then a lower bound, and above the significance). A series without a change
     * costs a few orderings instead of all of them. */
    const int allowed = (int)(o->significance * (1.0 + o->permutations)) - 1;
    int at_least = 0, r = 0;
    for (; r < o->permutations && at_least <= allowed; r++) {
        for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            const size_t j = (size_t)(attn_rng_unit(rng) * (double)(i + 1));
            const size_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double q_perm;
        best_split(x, order, n, o->min_size, o->alpha, &q_perm);
        at_least += q_perm >= q;
    }
    c->p = at_least > allowed ? (1.0 + at_least) / (1.0 + r)
                              : (1.0 + at_least) / (1.0 + o->permutations);
    free(order);
    return true;
}

static int by_index(const void *a, const void *b)
{
    const size_t x = ((const changepoint *)a)->index, y = ((const changepoint *)b)->index;
    return (x > y) - (x < y);
}

bool changepoint_edivisive(const double *x, size_t n, const changepoint_options *o,
                           changepoint *out, size_t *count)
{
    *count = 0;
    uint64_t rng = o->seed;
    /* The segments between the change points found so far, each with its tested best split;
     * at most n / min_size + 1 of them. */
    const size_t room = n / (o->min_size ? o->min_size : 1) + 2;
    candidate *segments = malloc(room * sizeof *segments);
    if (!segments)
        return false;
    size_t segment_count = 1;
    if (!test_segment(x, 0, n, o, &rng, &segments[0])) {
        free(segments);
        return false;
    }
    for (;;) {
        /* The most significant candidate of all segments (the first among equals). */
        size_t best = segment_count;
        for (size_t i = 0; i < segment_count; i++)
            if (segments[i].split && segments[i].p <= o->significance &&
                (best == segment_count || segments[i].p < segments[best].p))
                best = i;
        if (best == segment_count || segment_count + 1 > room)
            break;
        const candidate found = segments[best];
        out[(*count)++] = (changepoint){found.split, found.p};
        if (!test_segment(x, found.start, found.split, o, &rng, &segments[best]) ||
            !test_segment(x, found.split, found.end, o, &rng, &segments[segment_count++])) {
            free(segments);
            return false;
        }
    }
    free(segments);
    qsort(out, *count, sizeof *out, by_index);
    return true;
}
