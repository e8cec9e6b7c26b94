/* cli_machine.h — what `run` and `sweep` use of info and peak's file (cli_machine.c): the
 * --disable-isa flag and the cached roofline. */
#ifndef ATTN_CLI_MACHINE_H
#define ATTN_CLI_MACHINE_H

#include "attn.h"

#include <jansson.h>

/* --disable-isa LIST (validated, then set as ATTN_DISABLE_ISA before the first detection);
 * false after reporting a bad list. */
bool cli_set_disable_isa(const char *command, const char *list);
/* Fractions of the cached roofline (attnbench peak); NaN when none is cached. peak_fraction =
 * GFLOP/s over the per-core peak of `roofline` (the variant's, attn_variant_info.roofline) x
 * min(threads, cores); bw_fraction = K+V bytes read per second over the read bandwidth
 * (1-thread figure x threads, at most the all-cores figure). */
double cli_peak_fraction(const char *roofline, double gflops, int threads);
double cli_bw_fraction(const attn_problem *p, double seconds, int threads);
/* The bytes of K and V a decode kernel must read once: every row up to each batch entry's key
 * limit, in the stored type, with its scales when quantized. */
double cli_kv_bytes(const attn_problem *p);
/* The cached roofline as `peak --format json` describes it, or JSON null when none is cached.
 * NULL on OOM. */
json_t *cli_cached_peak_json(void);

#endif
