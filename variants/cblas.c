/* cblas.c — the external baseline: what a careful user would write on top of a BLAS.
 *
 * GEMM, row softmax, GEMM through the system CBLAS (the driver and its choices are in
 * gemm_softmax.h), and beside it cblas_reference, the plain per-head program that measures how
 * fair the baseline is.
 *
 * Threads: OpenBLAS is asked for one thread (openblas_set_num_threads(1)) so the baseline is
 * single-threaded like every other variant's task; this setting is process-wide. With another
 * CBLAS, set its own thread variable (e.g. OMP_NUM_THREADS=1). */
#include "gemm_softmax.h"

#include "attn_config.h"

#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void cblas_gemm(void *ctx, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                       int64_t ldc)
{
    (void)ctx;
    if (m == 1) { /* one query row (decode): a matrix-vector product, as a BLAS user would call */
        if (trans_b) /* c[n] = alpha · B[n][k] · a */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, alpha, b, (int)ldb, a, 1,
                        0.0f, c, 1);
        else /* c[n] = alpha · aᵀ · B[k][n] */
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)k, (int)n, alpha, b, (int)ldb, a, 1, 0.0f,
                        c, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n,
                (int)k, alpha, a, (int)lda, b, (int)ldb, 0.0f, c, (int)ldc);
}

static void pin_one_thread(void)
{
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(1);
#endif
}

static attn_status cblas_run(const attn_task *t)
{
    static const gemm_softmax_ops ops = {.gemm = cblas_gemm};
    pin_one_thread();
    return gemm_softmax_run(t, &ops);
}

/* ---- cblas_reference: the plain per-head program, a yardstick for cblas -------------------
 *
 * What anyone would write first: per query head, one cblas_sgemm for all rows × Lk scores, a
 * row softmax with expf (causal: over the row's first keys, the rest zero), one cblas_sgemm for
 * O over every key. bench-kernels prints cblas's ratio to it, so that the baseline's fairness is
 * visible in every run. Problems outside that program (additive masks, per-batch key lengths,
 * rows closer than head_dim, a non-finite V under a causal mask) run through cblas instead, so
 * the reference stays correct everywhere the conformance runner asks. */
static bool plain_program_fits(const attn_task *t)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, Lk = p->len_kv;
    if (p->mask || p->kv_lens || attn_features_of(p) ||
        !gemm_softmax_rows_in_place(p->q.seq, p->len_q, d) ||
        !gemm_softmax_rows_in_place(p->k.seq, Lk, d) ||
        !gemm_softmax_rows_in_place(p->v.seq, Lk, d))
        return false;
    for (int64_t g = t->group_begin; p->causal && g < t->group_end; g++) {
        const int64_t b = g / p->heads_kv, hkv = g % p->heads_kv;
        const int64_t ldv = Lk == 1 ? d : p->v.seq;
        if (gemm_softmax_nonfinite_rows(attn_v_row(t, b, hkv, 0), ldv, Lk, d))
            return false; /* 0·NaN of a causally masked key would reach O */
    }
    return true;
}

static attn_status cblas_reference_run(const attn_task *t)
{
    if (!plain_program_fits(t))
        return cblas_run(t); /* the careful program */
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, Lk = p->len_kv, group = p->heads_q / p->heads_kv;
    const int64_t rows = t->row_end - t->row_begin;
    pin_one_thread();
    float *scores = t->workspace; /* [rows][Lk] */
    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const int64_t b = g / p->heads_kv, hkv = g % p->heads_kv;
        const float *k = attn_k_row(t, b, hkv, 0), *v = attn_v_row(t, b, hkv, 0);
        const int ldk = (int)(Lk == 1 ? d : p->k.seq), ldv = (int)(Lk == 1 ? d : p->v.seq);
        for (int64_t h = hkv * group; h < (hkv + 1) * group; h++) {
            const int ldq = (int)(rows == 1 ? d : p->q.seq), ldo = (int)(rows == 1 ? d : p->o.seq);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)Lk, (int)d,
                        t->scale, attn_q_row(t, b, h, t->row_begin), ldq, k, ldk, 0.0f, scores,
                        (int)Lk);
            for (int64_t r = 0; r < rows; r++) {
                float *s = scores + r * Lk;
                int64_t n = attn_key_limit(p, b, t->row_begin + r);
                n = n < 0 ? 0 : n;
                attn_softmax_row(s, n);
                memset(s + n, 0, (size_t)(Lk - n) * sizeof *s);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)d, (int)Lk,
                        1.0f, scores, (int)Lk, v, ldv, 0.0f, attn_o_row(t, b, h, t->row_begin),
                        ldo);
        }
    }
    return ATTN_OK;
}

/* BLAS takes int sizes and leading dimensions. */
static bool cblas_params_valid(const attn_problem *p, const int32_t *values, char *why,
                               size_t why_len)
{
    (void)values;
    const int64_t big[] = {p->len_q, p->len_kv, p->head_dim, p->q.seq, p->k.seq, p->v.seq,
                           p->o.seq};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        if (big[i] > INT32_MAX) {
            snprintf(why, why_len, "sizes and sequence strides must fit a BLAS int");
            return false;
        }
    return true;
}

#if ATTN_HAVE_OPENBLAS_CORENAME
/* OpenBLAS's cblas.h declares it, another CBLAS's header may not: the same declaration here. */
char *openblas_get_corename(void);

/* The kernel family OpenBLAS runs (detected, or OPENBLAS_CORETYPE's), e.g. "Haswell"; a warning
 * instead when cblas_sgemm is not OpenBLAS's: another library exporting the cblas_* names (BLIS
 * does) was linked before it. */
static const char *openblas_core(void)
{
    Dl_info gemm, core;
    if (dladdr((const void *)(uintptr_t)cblas_sgemm, &gemm) &&
        dladdr((const void *)(uintptr_t)openblas_get_corename, &core) &&
        gemm.dli_fbase != core.dli_fbase)
        return "not OpenBLAS: cblas_sgemm is another library's (link order)";
    return openblas_get_corename();
}
#endif

const attn_variant attn_variant_cblas = {
    .name = "cblas",
    .description = "GEMM + row softmax + GEMM through the system CBLAS, single-threaded BLAS in "
                   "each of the library's threads (baseline)",
    .isa = 0,
    .roofline = ATTN_ROOFLINE_FMA,
    .tolerance = 1e-5,
    .vector_bits = 128,
    .params_valid = cblas_params_valid,
    .workspace_size = gemm_softmax_workspace,
    .run = cblas_run,
    .features = ATTN_FEATURE_ALL,
#if ATTN_HAVE_OPENBLAS_CORENAME
    .blas_core = openblas_core,
#endif
};

const attn_variant attn_variant_cblas_reference = {
    .name = "cblas_reference",
    .description = "the plain BLAS program: per head one sgemm for all scores, expf softmax, "
                   "one sgemm (a yardstick for cblas, never planned)",
    .isa = 0,
    .roofline = ATTN_ROOFLINE_FMA,
    .tolerance = 1e-5,
    .reference_only = true,
    .vector_bits = 128,
    .params_valid = cblas_params_valid,
    .workspace_size = gemm_softmax_workspace,
    .run = cblas_reference_run,
    .features = ATTN_FEATURE_ALL,
#if ATTN_HAVE_OPENBLAS_CORENAME
    .blas_core = openblas_core,
#endif
};
