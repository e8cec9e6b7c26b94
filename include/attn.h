/* attn.h — the public API of libattn: scaled dot-product attention on CPUs.
 *
 *   O = softmax(scale · Q·Kᵀ + mask) · V        scale defaults to 1/sqrt(head_dim)
 *
 * A problem is described by an attn_problem (shapes, scale, masks, strides); a variant (one
 * implementation: naive, blocked, streaming, avx2, avx512, ...) is run on it by name. Every entry
 * point validates its input and returns a status with a message; nothing aborts on bad input. */
#ifndef ATTN_H
#define ATTN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_VERSION_STRING "0.1.0"

typedef enum attn_status {
    ATTN_OK = 0,
    ATTN_ERR_INVALID,         /* the problem, a parameter or an argument is invalid */
    ATTN_ERR_OVERFLOW,        /* a size computed from the problem does not fit in 64 bits */
    ATTN_ERR_UNKNOWN_VARIANT, /* no variant of that name is registered */
    ATTN_ERR_UNSUPPORTED,     /* this CPU (or ATTN_DISABLE_ISA) cannot run that variant */
    ATTN_ERR_NOMEM,           /* an allocation failed */
    ATTN_ERR_IO,              /* a file could not be read or written */
} attn_status;

/* A short fixed text for a status ("invalid argument", ...). */
const char *attn_status_string(attn_status status);

/* Detailed message of a failed call; every entry point takes an optional attn_error*. */
typedef struct attn_error {
    attn_status status;
    char message[256];
} attn_error;

/* Element strides of one 4-d tensor [batch, head, seq, dim]; the dim stride is always 1
 * (each row of head_dim floats is contiguous). Input strides may be 0 (broadcast). */
typedef struct attn_strides {
    int64_t batch, head, seq;
} attn_strides;

typedef struct attn_problem {
    int64_t batch;    /* B  */
    int64_t heads_q;  /* Hq: query (and output) heads */
    int64_t heads_kv; /* Hkv: key/value heads; Hq % Hkv == 0 (MHA, GQA, MQA) */
    int64_t len_q;    /* Lq */
    int64_t len_kv;   /* Lk */
    int64_t head_dim; /* d  */
    /* Softmax scale; 0 means the default 1/sqrt(head_dim). Otherwise finite and > 0. */
    float scale;
    /* Causal, bottom-right aligned: query i sees keys j <= i + Lk - Lq (as for a KV cache). */
    bool causal;
    /* Optional per-batch key lengths [batch], each in [0, Lk]: keys j >= kv_lens[b] are masked. */
    const int32_t *kv_lens;
    /* Optional additive mask [Lq x Lk], row stride mask_row_stride (0 = Lk), broadcast over
     * batch and heads. -INFINITY masks a key. */
    const float *mask;
    int64_t mask_row_stride;
    attn_strides q, k, v, o;
} attn_problem;

/* Fills a problem with the given shape, default scale, no masks and contiguous [B,H,L,d]
 * strides for all four tensors. */
void attn_problem_init(attn_problem *p, int64_t batch, int64_t heads_q, int64_t heads_kv,
                       int64_t len_q, int64_t len_kv, int64_t head_dim);
/* Sets the strides of all four tensors to the contiguous [B,L,H,d] layout. */
void attn_problem_set_layout_blhd(attn_problem *p);
/* The scale a run will use: p->scale, or 1/sqrt(head_dim) when that is 0. */
float attn_problem_scale(const attn_problem *p);
/* Checks shapes, scale, key lengths, strides and that every size fits in 64 bits. */
attn_status attn_problem_validate(const attn_problem *p, attn_error *err);
/* The number of float elements a tensor spans (largest offset + 1) for the given strides. */
attn_status attn_tensor_extent(const attn_problem *p, char tensor /* 'q','k','v','o' */,
                               int64_t *elements, attn_error *err);
/* 4·B·Hq·d·(query-key pairs actually attended); the FLOPs of one run. */
double attn_problem_flops(const attn_problem *p);

/* ---- variants ----------------------------------------------------------------------------- */

#define ATTN_MAX_PARAMS 8

/* Values of a variant's tunable parameters, in the order the variant declares them. */
typedef struct attn_params {
    int count;
    int32_t value[ATTN_MAX_PARAMS];
} attn_params;

typedef struct attn_param_info {
    const char *name;        /* e.g. "bq" */
    const char *description; /* e.g. "query rows per tile" */
    int32_t min, max;        /* inclusive range */
    int32_t multiple_of;     /* values must be multiples of this (1 = any) */
} attn_param_info;

typedef struct attn_variant_info {
    const char *name;        /* the CLI's name: "naive", "avx512", ... */
    const char *description;
    const char *isa;         /* ISA it needs, "" for portable C; e.g. "avx512f,avx512bw" */
    bool supported;          /* this CPU (after ATTN_DISABLE_ISA) can run it */
    const char *why_not;     /* when !supported: why, e.g. "CPU lacks avx512f" */
    double tolerance;        /* declared max relative (normwise) error against the oracle */
    int param_count;
    const attn_param_info *params;
} attn_variant_info;

/* Number of registered variants, in priority order (best first). */
int attn_variant_count(void);
/* Information on variant i (0 <= i < count); false when i is out of range. */
bool attn_variant_get(int i, attn_variant_info *info);
/* Index of the variant with that name, or -1. */
int attn_variant_find(const char *name);

/* Default parameters of a variant for a problem (a heuristic from cache sizes). */
attn_status attn_variant_default_params(const char *name, const attn_problem *p,
                                        attn_params *out, attn_error *err);
/* Parses "bq=64,bk=128" (names from the variant's list) over the defaults already in *params. */
attn_status attn_params_parse(const char *name, const char *text, attn_params *params,
                              attn_error *err);
/* Writes "bq=64,bk=128" into buf. */
void attn_params_format(const char *name, const attn_params *params, char *buf, size_t len);

/* Runs the named variant. params may be NULL (defaults). q, k, v, o point at element 0 of each
 * tensor, laid out as the problem's strides say. Allocates and frees its own workspace. */
attn_status attn_run_variant(const char *name, const attn_problem *p, const attn_params *params,
                             const float *q, const float *k, const float *v, float *o,
                             attn_error *err);

#ifdef __cplusplus
}
#endif
#endif /* ATTN_H */
