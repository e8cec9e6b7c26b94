/* gbench_shim.h — Google Benchmark (the C++ library, 1.7.x) seen from C.
 *
 * attnbench-gbench registers its benchmarks at run time through these functions: a name, a C
 * callback and an argument. The callback runs the timed loop itself:
 *
 *     static void bench(gbench_state *state, void *arg)
 *     {
 *         while (gbench_keep_running(state))
 *             work(arg);
 *         gbench_set_counter(state, "gflops", ...);
 *     }
 *
 * Every benchmark is timed in real (wall-clock) time: a library run may use worker threads whose
 * CPU time the benchmark thread does not see. No C++ exception crosses into C: a failure inside
 * the library is reported as a false or 0 return and a message on stderr. */
#ifndef ATTN_GBENCH_SHIM_H
#define ATTN_GBENCH_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gbench_state gbench_state; /* a benchmark::State, opaque */
typedef void (*gbench_fn)(gbench_state *state, void *arg);

/* Parses and removes the --benchmark_* flags from argv (Google Benchmark's Initialize). The
 * remaining arguments stay in argv[1..*argc). */
void gbench_initialize(int *argc, char **argv);
/* Registers a benchmark timed in real time, reported in microseconds; false on failure. The
 * name and arg must stay valid until gbench_run returns. */
bool gbench_register(const char *name, gbench_fn fn, void *arg);
/* A key/value pair for the "context" block of the JSON output (AddCustomContext). */
void gbench_add_context(const char *key, const char *value);
/* Runs the benchmarks the --benchmark_filter flag selects, reporting as the flags say
 * (console, --benchmark_format=json, --benchmark_out=FILE). narrow: the console table is
 * attnbench-gbench's own, within 100 columns (name, time, iterations, GFLOP/s, oracle error;
 * the caller passes it only when the display format is console); false: Google Benchmark's
 * reporter for the format. --benchmark_out files are the library's either way. Returns how
 * many ran. */
size_t gbench_run(bool narrow);
void gbench_shutdown(void);

/* Inside a callback. */
bool gbench_keep_running(gbench_state *state); /* the timed loop: true while it should go on */
int64_t gbench_iterations(const gbench_state *state);
/* A plain counter (no rate, no averaging over threads): reported as is next to the times. */
void gbench_set_counter(gbench_state *state, const char *name, double value);
void gbench_set_label(gbench_state *state, const char *label);
/* Marks the benchmark as failed with a message (shown in its output); the callback must then
 * return without entering or continuing the loop. */
void gbench_skip_with_error(gbench_state *state, const char *message);

#ifdef __cplusplus
}
#endif
#endif
