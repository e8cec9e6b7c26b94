/* timing.h — a monotonic clock and the statistics of repeated runs (median, min, max).
 * Timings are wall-clock seconds from CLOCK_MONOTONIC, which never jumps with the system time. */
#ifndef ATTN_TIMING_H
#define ATTN_TIMING_H

#include <stddef.h>

/* Seconds since an arbitrary fixed point; only differences mean something. */
double attn_clock_seconds(void);

typedef struct attn_time_stats {
    size_t count;  /* number of samples */
    double median; /* mean of the two middle samples when count is even */
    double min, max;
} attn_time_stats;

/* Summarises `count` samples (seconds). Sorts `samples` in place. count == 0 gives all zeros. */
void attn_time_stats_compute(double *samples, size_t count, attn_time_stats *stats);

#endif
