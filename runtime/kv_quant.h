/* kv_quant.h — quantized K/V caches inside the runtime: the checks attn_problem_validate adds
 * for them (kv_quant.c; the public functions are in attn.h). */
#ifndef ATTN_KV_QUANT_H
#define ATTN_KV_QUANT_H

#include "attn.h"

/* kv_dtype and what it asks of the shape and strides: a float kv_dtype is F32 or dtype; q4
 * needs head_dim % 32 == 0 and even K/V strides; the scale tensors' strides >= 0 and their
 * extents fit. For a problem whose other fields attn_problem_validate has checked. */
attn_status attn_kv_validate(const attn_problem *p, attn_error *err);

/* Bytes K ('k') or V ('v') spans from element 0, in the type it is stored in; 'K', 'V': its
 * scales. 0 when K/V are not quantized ('K', 'V') or the problem does not validate. */
size_t attn_kv_span_bytes(const attn_problem *p, char tensor);

#endif
