/* oracle.h — the float64 reference of attention and the error metrics every variant is judged by. */
#ifndef ATTN_ORACLE_H
#define ATTN_ORACLE_H

#include "attn.h"

/* Computes O in float64 from the same float inputs, with the same semantics as every variant
 * (causal, key lengths, additive mask, strides, fully-masked rows give zeros). `out` is
 * contiguous [B, Hq, Lq, d]; it has B·Hq·Lq·d elements. */
attn_status attn_oracle(const attn_problem *p, const float *q, const float *k, const float *v,
                        double *out, attn_error *err);

/* The same on q, k and v rounded to `round_to` first (to nearest even, then widened): the
 * reference of a variant that computes in that type. ATTN_F32 is attn_oracle itself. The
 * inputs are not modified. */
attn_status attn_oracle_rounded(const attn_problem *p, const float *q, const float *k,
                                const float *v, attn_dtype round_to, double *out,
                                attn_error *err);

typedef struct attn_error_metrics {
    double max_abs;        /* max |O - O*| */
    double max_rel;        /* normwise: ||O - O*||inf / ||O*||inf (max_abs when O* is all 0) */
    double ref_max;        /* ||O*||inf */
    int64_t nan_mismatch;  /* elements where exactly one of O, O* is NaN (or O is ±inf) */
    bool ok;               /* nan_mismatch == 0 and max_rel <= tolerance */
} attn_error_metrics;

/* Compares O (laid out as p->o says) with the oracle's output. */
void attn_compare(const attn_problem *p, const float *o, const double *ref, double tolerance,
                  attn_error_metrics *m);

#endif
