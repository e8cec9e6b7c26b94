/* gemm_softmax.h — the BLAS baselines' algorithm, one driver for every GEMM library.
 *
 * Per (batch, query head) of a task: S = scale·Q·Kᵀ with one GEMM straight from the tensors
 * (the sequence strides are the leading dimensions, so [B,H,L,d] and [B,L,H,d] need no copy),
 * the causal / padding / additive masks applied to S, a row softmax, then O = P·V with a second
 * GEMM written straight into O. The GEMMs cover only keys [0, n) with n the largest key limit
 * of the rows, so padding and causal key ranges past every row are never touched; a causal
 * problem goes in blocks of query rows, each over the keys its last row sees, so the fully
 * masked upper triangle is skipped at block granularity, as a careful BLAS user would do.
 *
 * Decode with grouped heads (one query row, Hq > Hkv): the query heads of a KV head are one
 * matrix (row stride = the head stride), so each product is one GEMM of Hq/Hkv rows over the
 * group's K or V instead of Hq/Hkv matrix-vector products that each read K and V again.
 *
 * Scores are dense [rows][n] (row stride n). Workspace per task: max(rows, Hq/Hkv) × Lk floats
 * of scores, plus a contiguous copy of a tensor whose sequence stride is below head_dim (a
 * broadcast stride 0 is legal here but not for BLAS), plus a sink logit and a flag per score
 * row.
 *
 * The variants (cblas.c, blis.c, onednn.c) give the driver their GEMM, optionally their softmax,
 * and pin their library's threads. */
#ifndef ATTN_GEMM_SOFTMAX_H
#define ATTN_GEMM_SOFTMAX_H

#include "variant.h"

#include <stdbool.h>

/* Row-major C[m][n] (row stride ldc) = alpha · A[m][k] (lda) · B, where B is [k][n] (ldb), or
 * with trans_b the transpose of a [n][k] matrix (ldb); beta 0: C is only written. ctx is the
 * ops' ctx. */
typedef void gemm_softmax_gemm(void *ctx, bool trans_b, int64_t m, int64_t n, int64_t k,
                               float alpha, const float *a, int64_t lda, const float *b,
                               int64_t ldb, float *c, int64_t ldc);

/* Softmax of each row of the dense scores [m][n] in place, -INFINITY marking an excluded key
 * (the masks, soft cap and ALiBi are already applied). sinks (NULL: none): row r's sink logit
 * sinks[r] joins its denominator without a value row. A row whose keys are all excluded may
 * come out as anything: the driver writes it as zeros afterwards. */
typedef void gemm_softmax_softmax(void *ctx, int64_t m, int64_t n, float *scores,
                                  const float *sinks);

typedef struct gemm_softmax_ops {
    gemm_softmax_gemm *gemm;
    gemm_softmax_softmax *softmax; /* NULL: the driver's own (two passes, expf) */
    void *ctx;                     /* passed to both */
} gemm_softmax_ops;

/* A tensor is handed to a GEMM in place when its rows are at least head_dim apart (BLAS needs
 * ld >= d); a single row never steps, so any stride works for it. */
static inline bool gemm_softmax_rows_in_place(int64_t seq_stride, int64_t len, int64_t d)
{
    return len == 1 || seq_stride >= d;
}

/* True when a row in [0, n) of the [n][d] matrix v (row stride ld) holds a NaN or an infinity:
 * then 0·V of a masked key would be NaN inside the GEMM. */
bool gemm_softmax_nonfinite_rows(const float *v, int64_t ld, int64_t n, int64_t d);

size_t gemm_softmax_workspace(const attn_problem *p, const int32_t *params);
/* The task's slice of O with ops. */
attn_status gemm_softmax_run(const attn_task *t, const gemm_softmax_ops *ops);

#endif
