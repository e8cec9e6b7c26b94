/* threads.h — a small process-wide pool of worker threads for static parallel loops.
 *
 * attn_parallel_run(n, fn, ctx) calls fn(ctx, w, n) once for each w in [0, n): w = 0 on the
 * calling thread, w >= 1 on pool thread w. The library never binds the calling thread (that is
 * the application's choice); pool thread w is bound through hwloc to the (w-1)-th core, in
 * hwloc's logical order (NUMA node 0 first), other than the core the caller is on when the run
 * starts — so the caller and the workers do not share a core. Each w always does the same share of the work
 * (the caller partitions statically by w), so results never depend on timing.
 *
 * Why a hand-made pool rather than OpenMP: binding through hwloc, one static partition chosen
 * by the caller, and a safe answer to nested or concurrent calls (below) are all a few lines
 * here, and the library then does not impose an OpenMP runtime on its users.
 *
 * The pool serves one parallel run at a time. When it is busy (another thread's run, or a call
 * from inside a worker) or cannot start threads, the caller runs fn for every w itself, in
 * order, and the function returns false — same results, one core. Pool threads live until the
 * process exits; a child process after fork() starts with an empty pool. */
#ifndef ATTN_THREADS_H
#define ATTN_THREADS_H

#include <stdbool.h>

typedef void (*attn_parallel_fn)(void *ctx, int worker, int workers);

/* True when fn ran on `workers` threads, false when the caller ran them all. */
bool attn_parallel_run(int workers, attn_parallel_fn fn, void *ctx);

/* True when ATTN_SERIAL=1 keeps every run on the calling thread. */
bool attn_parallel_serial(void);

#endif
