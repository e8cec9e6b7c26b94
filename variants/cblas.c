/* cblas.c — the external baseline: what a user would write on top of a BLAS.
 *
 * Per (batch, query head) of the task: S = scale·Q·Kᵀ with one cblas_sgemm straight from the
 * tensors (lda/ldb are the sequence strides, so [B,H,L,d] and [B,L,H,d] need no copy), the
 * causal / padding / additive masks applied to S, a row softmax, then O = P·V with a second
 * cblas_sgemm written straight into O. Both GEMMs cover only keys [0, n) with n the largest key
 * limit of the task's rows, so padding and causal key ranges past every row are never touched.
 *
 * Workspace per task: rows × Lk floats of scores, plus a contiguous copy of a tensor whose
 * sequence stride is below head_dim (a broadcast stride 0 is legal here but not for BLAS).
 *
 * Threads: OpenBLAS is asked for one thread (openblas_set_num_threads(1)) so the baseline is
 * single-threaded like every other variant's task; this setting is process-wide. With another
 * CBLAS, set its own thread variable (e.g. OMP_NUM_THREADS=1). */
#include "variant.h"

#include "attn_config.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A tensor is handed to BLAS in place when its rows are at least head_dim apart (BLAS needs
 * ld >= d); a single row never steps, so any stride works for it. */
static bool rows_in_place(int64_t seq_stride, int64_t len, int64_t d)
{
    return len == 1 || seq_stride >= d;
}

static size_t add_floats(size_t total, int64_t a, int64_t b, bool *overflow)
{
    size_t n;
    if (__builtin_mul_overflow((size_t)a, (size_t)b, &n) ||
        __builtin_add_overflow(total, n, &total))
        *overflow = true;
    return total;
}

static size_t cblas_workspace(const attn_problem *p, const int32_t *params)
{
    (void)params;
    const int64_t d = p->head_dim;
    bool overflow = false;
    size_t n = add_floats(0, p->len_q, p->len_kv, &overflow);
    if (!rows_in_place(p->q.seq, p->len_q, d))
        n = add_floats(n, p->len_q, d, &overflow);
    if (!rows_in_place(p->k.seq, p->len_kv, d))
        n = add_floats(n, p->len_kv, d, &overflow);
    if (!rows_in_place(p->v.seq, p->len_kv, d))
        n = add_floats(n, p->len_kv, d, &overflow);
    if (overflow || __builtin_mul_overflow(n, sizeof(float), &n))
        return SIZE_MAX;
    return n;
}

/* Rows [0, len) of one head as a BLAS matrix: in place, or copied into `buf` (ld = d). */
static const float *as_matrix(const float *first, int64_t seq_stride, int64_t len, int64_t d,
                              float *buf, int64_t *ld)
{
    if (rows_in_place(seq_stride, len, d)) {
        *ld = len == 1 ? d : seq_stride;
        return first;
    }
    for (int64_t r = 0; r < len; r++)
        memcpy(buf + r * d, first + r * seq_stride, (size_t)d * sizeof *buf);
    *ld = d;
    return buf;
}

/* True when a V row in [0, n) holds a NaN or an infinity: then 0·V of a masked key would be
 * NaN inside the GEMM, so P·V skips the zero weights instead (as naive does). */
static bool has_nonfinite_rows(const float *v, int64_t ld, int64_t n, int64_t d)
{
    for (int64_t j = 0; j < n; j++)
        for (int64_t c = 0; c < d; c++)
            if (!isfinite(v[j * ld + c]))
                return true;
    return false;
}

/* Softmax of one score row s[0, n) in place, -INFINITY marking an excluded key: the two passes
 * of attn_softmax_row (same results for NaN, infinities and empty rows), written as a careful
 * user would for speed: the max as a compare (no fmaxf call) and the sum in eight partial sums,
 * so both loops vectorise at the baseline ISA; expf stays the C library's. */
static void softmax_row_fast(float *restrict s, int64_t n)
{
    float max = -INFINITY;
    for (int64_t j = 0; j < n; j++)
        max = s[j] > max ? s[j] : max; /* a NaN compares false: skipped, as by fmaxf */
    float part[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) {
            const float x = s[j + l];
            s[j + l] = x == -INFINITY ? 0.0f : expf(x - max);
            part[l] += s[j + l];
        }
    float sum = ((part[0] + part[4]) + (part[1] + part[5])) +
                ((part[2] + part[6]) + (part[3] + part[7]));
    for (; j < n; j++) {
        s[j] = s[j] == -INFINITY ? 0.0f : expf(s[j] - max);
        sum += s[j];
    }
    const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
    for (j = 0; j < n; j++)
        s[j] *= inv;
}

/* Mask and softmax of one score row s[0, n) in place: keys [key_limit, n) are excluded (causal,
 * padding); an additive mask, when there is one, is added first. */
static void softmax_row(float *s, int64_t n, int64_t key_limit, const float *mask)
{
    const int64_t live = key_limit < 0 ? 0 : key_limit < n ? key_limit : n;
    for (int64_t j = 0; mask && j < live; j++) {
        if (mask[j] == -INFINITY)
            s[j] = -INFINITY; /* assigned, never added: a NaN score of a masked key vanishes */
        else
            s[j] += mask[j];
    }
    softmax_row_fast(s, live);
    memset(s + live, 0, (size_t)(n - live) * sizeof *s);
}

/* Query rows per block of a causal problem: each block's GEMMs cover only the keys its last row
 * sees, so the fully masked upper triangle is skipped at block granularity (as a user of a BLAS
 * would do); the rest of K is re-packed once per block, 1/CAUSAL_BLOCK of its GEMM's work. */
enum { CAUSAL_BLOCK = 256 };

/* Largest key limit of rows [i0, i1) of batch b: keys past it are masked for every row. */
static int64_t block_keys(const attn_problem *p, int64_t b, int64_t i0, int64_t i1)
{
    int64_t n = 0;
    for (int64_t i = i0; i < i1; i++) {
        const int64_t lim = attn_key_limit(p, b, i);
        n = lim > n ? lim : n;
    }
    return n;
}

/* S = scale·Q·Kᵀ, softmax, O = P·V for rows [i0, i1) of query head h over keys [0, n). */
static void attend_rows(const attn_task *t, int64_t b, int64_t h, int64_t i0, int64_t i1,
                        int64_t n, const float *k, int64_t ldk, const float *v, int64_t ldv,
                        bool v_nonfinite, float *q_copy, float *scores)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, Lk = p->len_kv, rows = i1 - i0;
    float *o0 = attn_o_row(t, b, h, i0);
    const int64_t ldo = rows == 1 ? d : p->o.seq;
    if (n <= 0) { /* every key masked for every row: zeros */
        for (int64_t r = 0; r < rows; r++)
            memset(o0 + r * ldo, 0, (size_t)d * sizeof *o0);
        return;
    }
    int64_t ldq;
    const float *q = as_matrix(attn_q_row(t, b, h, i0), p->q.seq, rows, d, q_copy, &ldq);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n, (int)d, t->scale, q,
                (int)ldq, k, (int)ldk, 0.0f, scores, (int)Lk);
    for (int64_t r = 0; r < rows; r++)
        softmax_row(scores + r * Lk, n, attn_key_limit(p, b, i0 + r), attn_mask_row(p, i0 + r));
    if (!v_nonfinite) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)d, (int)n, 1.0f,
                    scores, (int)Lk, v, (int)ldv, 0.0f, o0, (int)ldo);
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *s = scores + r * Lk;
        float *o = o0 + r * ldo;
        memset(o, 0, (size_t)d * sizeof *o);
        for (int64_t j = 0; j < n; j++)
            if (s[j] != 0.0f)
                cblas_saxpy((int)d, s[j], v + j * ldv, 1, o, 1);
    }
}

static attn_status cblas_run(const attn_task *t)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, Lk = p->len_kv, group = p->heads_q / p->heads_kv;
    const int64_t rows = t->row_end - t->row_begin;
    const int64_t block = p->causal ? CAUSAL_BLOCK : rows;
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(1);
#endif
    float *scores = t->workspace; /* [rows][Lk] */
    float *q_copy = scores + rows * Lk;
    float *k_copy = q_copy + (rows_in_place(p->q.seq, p->len_q, d) ? 0 : p->len_q * d);
    float *v_copy = k_copy + (rows_in_place(p->k.seq, p->len_kv, d) ? 0 : Lk * d);

    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const int64_t b = g / p->heads_kv, hkv = g % p->heads_kv;
        const int64_t n = block_keys(p, b, t->row_begin, t->row_end); /* keys any row sees */
        int64_t ldk, ldv;
        const float *k = as_matrix(attn_k_row(t, b, hkv, 0), p->k.seq, n, d, k_copy, &ldk);
        const float *v = as_matrix(attn_v_row(t, b, hkv, 0), p->v.seq, n, d, v_copy, &ldv);
        const bool v_nonfinite = n > 0 && has_nonfinite_rows(v, ldv, n, d);
        for (int64_t h = hkv * group; h < (hkv + 1) * group; h++)
            for (int64_t i0 = t->row_begin; i0 < t->row_end; i0 += block) {
                const int64_t i1 = i0 + block < t->row_end ? i0 + block : t->row_end;
                attend_rows(t, b, h, i0, i1, block_keys(p, b, i0, i1), k, ldk, v, ldv,
                            v_nonfinite, q_copy, scores);
            }
    }
    return ATTN_OK;
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
    if (p->mask || p->kv_lens || !rows_in_place(p->q.seq, p->len_q, d) ||
        !rows_in_place(p->k.seq, Lk, d) || !rows_in_place(p->v.seq, Lk, d))
        return false;
    for (int64_t g = t->group_begin; p->causal && g < t->group_end; g++) {
        const int64_t b = g / p->heads_kv, hkv = g % p->heads_kv;
        const int64_t ldv = Lk == 1 ? d : p->v.seq;
        if (has_nonfinite_rows(attn_v_row(t, b, hkv, 0), ldv, Lk, d))
            return false; /* 0·NaN of a causally masked key would reach O */
    }
    return true;
}

static attn_status cblas_reference_run(const attn_task *t)
{
    if (!plain_program_fits(t))
        return cblas_run(t);
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, Lk = p->len_kv, group = p->heads_q / p->heads_kv;
    const int64_t rows = t->row_end - t->row_begin;
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(1);
#endif
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

/* The kernel family OpenBLAS runs (detected, or OPENBLAS_CORETYPE's), e.g. "Haswell". */
static const char *openblas_core(void)
{
    return openblas_get_corename();
}
#endif

const attn_variant attn_variant_cblas = {
    .name = "cblas",
    .description = "GEMM + row softmax + GEMM through the system CBLAS, one thread (baseline)",
    .isa = 0,
    .roofline = ATTN_ROOFLINE_FMA,
    .tolerance = 1e-5,
    .param_count = 0,
    .params = NULL,
    .defaults = NULL,
    .vector_bits = 128,
    .params_valid = cblas_params_valid,
    .workspace_size = cblas_workspace,
    .run = cblas_run,
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
    .workspace_size = cblas_workspace,
    .run = cblas_reference_run,
#if ATTN_HAVE_OPENBLAS_CORENAME
    .blas_core = openblas_core,
#endif
};
