/* blis.c — a peer: the BLAS baseline's algorithm (gemm_softmax.h) through BLIS.
 *
 * BLIS's typed API only (bli_sgemm_ex with row and column strides: Kᵀ is K read with swapped
 * strides, no transpose flag). BLIS's library also exports the cblas_* names, which OpenBLAS
 * serves in this process (it is linked first); nothing here calls them.
 *
 * Threads: every call carries its own runtime object asking for one thread, so BLIS never
 * starts threads of its own beside the harness's (whatever BLIS_NUM_THREADS says, and in any of
 * Debian's serial, pthreads or OpenMP builds), and no process-wide setting is touched. */
#include "gemm_softmax.h"

#include <blis.h>
#include <pthread.h>
#include <stdio.h>

static void blis_gemm(void *ctx, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                      int64_t ldc)
{
    (void)ctx;
    rntm_t one_thread = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(1, &one_thread);
    float beta = 0.0f;
    /* B is [k][n] (row stride ldb), or Kᵀ: element (r, j) of the transpose at b[j·ldb + r]. */
    const inc_t rs_b = trans_b ? 1 : ldb, cs_b = trans_b ? ldb : 1;
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &alpha, (float *)a, lda, 1,
                 (float *)b, rs_b, cs_b, &beta, c, ldc, 1, NULL, &one_thread);
}

static attn_status blis_run(const attn_task *t)
{
    static const gemm_softmax_ops ops = {.gemm = blis_gemm};
    return gemm_softmax_run(t, &ops);
}

static char core_text[128];

static void describe_core(void)
{
    const char *threading = bli_info_get_enable_openmp()     ? "openmp"
                            : bli_info_get_enable_pthreads() ? "pthreads"
                                                             : "serial";
    snprintf(core_text, sizeof core_text, "BLIS %s %s (%s build, 1 thread per call)",
             bli_info_get_version_str(), bli_arch_string(bli_arch_query_id()), threading);
}

/* "BLIS 0.9.0 zen3 (openmp build, 1 thread per call)": the version and the kernel family
 * (configuration) BLIS picked for this CPU. */
static const char *blis_core(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, describe_core);
    return core_text;
}

const attn_variant attn_variant_blis = {
    .name = "blis",
    .description = "GEMM + row softmax + GEMM through BLIS (bli_sgemm with strides), "
                   "single-threaded BLIS in each of the library's threads",
    .isa = 0,
    .roofline = ATTN_ROOFLINE_FMA,
    .tolerance = 1e-5,
    .vector_bits = 128,
    .workspace_size = gemm_softmax_workspace,
    .run = blis_run,
    .features = ATTN_FEATURE_ALL,
    .blas_core = blis_core,
};
