/* timing.c — monotonic clock and run statistics. */
#include "timing.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double attn_clock_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail with a valid clock id and pointer */
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void attn_time_stats_compute(double *samples, size_t count, attn_time_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    stats->count = count;
    if (count == 0)
        return;
    qsort(samples, count, sizeof *samples, compare_doubles);
    stats->min = samples[0];
    stats->max = samples[count - 1];
    stats->median = count % 2 ? samples[count / 2]
                              : 0.5 * (samples[count / 2 - 1] + samples[count / 2]);
}
