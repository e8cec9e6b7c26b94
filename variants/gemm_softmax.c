/* gemm_softmax.c — the BLAS baselines' driver: GEMM, row softmax, GEMM (gemm_softmax.h). */
#include "gemm_softmax.h"

#include <math.h>
#include <string.h>

static size_t add_floats(size_t total, int64_t a, int64_t b, bool *overflow)
{
    size_t n;
    if (__builtin_mul_overflow((size_t)a, (size_t)b, &n) ||
        __builtin_add_overflow(total, n, &total))
        *overflow = true;
    return total;
}

size_t gemm_softmax_workspace(const attn_problem *p, const int32_t *params)
{
    (void)params;
    const int64_t d = p->head_dim;
    bool overflow = false;
    size_t n = add_floats(0, p->len_q, p->len_kv, &overflow);
    if (!gemm_softmax_rows_in_place(p->q.seq, p->len_q, d))
        n = add_floats(n, p->len_q, d, &overflow);
    if (!gemm_softmax_rows_in_place(p->k.seq, p->len_kv, d))
        n = add_floats(n, p->len_kv, d, &overflow);
    if (!gemm_softmax_rows_in_place(p->v.seq, p->len_kv, d))
        n = add_floats(n, p->len_kv, d, &overflow);
    if (overflow || __builtin_mul_overflow(n, sizeof(float), &n))
        return SIZE_MAX;
    return n;
}

/* Rows [0, len) of one head as a BLAS matrix: in place, or copied into `buf` (ld = d). */
static const float *as_matrix(const float *first, int64_t seq_stride, int64_t len, int64_t d,
                              float *buf, int64_t *ld)
{
    if (gemm_softmax_rows_in_place(seq_stride, len, d)) {
        *ld = len == 1 ? d : seq_stride;
        return first;
    }
    for (int64_t r = 0; r < len; r++)
        memcpy(buf + r * d, first + r * seq_stride, (size_t)d * sizeof *buf);
    *ld = d;
    return buf;
}

/* A non-finite V row makes P·V skip the zero weights instead (as naive does). */
bool gemm_softmax_nonfinite_rows(const float *v, int64_t ld, int64_t n, int64_t d)
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
static void softmax_row_fast(float *restrict s, int64_t n, float sink)
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
    const float inv = attn_row_norm(max, sum, sink);
    for (j = 0; j < n; j++)
        s[j] *= inv;
}

/* Mask and softmax of one score row s[0, n) in place, s[j] the score of key kb + j: keys
 * outside the row's band [first, key_limit) are excluded (causal, padding, window); the
 * options' logit (soft cap, ALiBi) and an additive mask, when there are, come first; the
 * head's sink joins the denominator. */
static void softmax_row(float *s, int64_t n, int64_t kb, int64_t first, int64_t key_limit,
                        const float *mask, const attn_row_opts *ro)
{
    int64_t live = key_limit - kb < n ? key_limit - kb : n, lead = first - kb;
    live = live < 0 ? 0 : live;
    lead = lead < 0 ? 0 : lead < live ? lead : live;
    float *row = s + lead;
    const int64_t count = live - lead, j0 = kb + lead;
    if (ro->softcap != 0.0f || ro->slope != 0.0f)
        for (int64_t j = 0; j < count; j++)
            row[j] = attn_logit(ro, row[j], j0 + j);
    for (int64_t j = 0; mask && j < count; j++) {
        if (mask[j0 + j] == -INFINITY)
            row[j] = -INFINITY; /* assigned, never added: a NaN score of a masked key vanishes */
        else
            row[j] += mask[j0 + j];
    }
    softmax_row_fast(row, count, ro->sink);
    memset(s, 0, (size_t)lead * sizeof *s);
    memset(s + live, 0, (size_t)(n - live) * sizeof *s);
}

/* Query rows per block of a causal problem: each block's GEMMs cover only the keys its last row
 * sees; a GEMM library re-packs K for every block, 1/CAUSAL_BLOCK of that block's GEMM work. */
enum { CAUSAL_BLOCK = 256 };

/* Smallest first key of rows [i0, i1) (their windows' left edges): keys before it are outside
 * every row's window. */
static int64_t block_first(const attn_problem *p, int64_t i0, int64_t i1)
{
    int64_t n = INT64_MAX;
    for (int64_t i = i0; i < i1; i++) {
        const int64_t f = attn_key_start(p, i);
        n = f < n ? f : n;
    }
    return n;
}

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

/* Smallest key limit of rows [i0, i1) of batch b. */
static int64_t fewest_keys(const attn_problem *p, int64_t b, int64_t i0, int64_t i1)
{
    int64_t n = INT64_MAX;
    for (int64_t i = i0; i < i1; i++) {
        const int64_t lim = attn_key_limit(p, b, i);
        n = lim < n ? lim : n;
    }
    return n;
}

/* S = scale·Q·Kᵀ, softmax, O = P·V for rows [i0, i1) of query head h over keys [kb, n). */
static void attend_rows(const attn_task *t, int64_t b, int64_t h, int64_t i0, int64_t i1,
                        int64_t kb, int64_t n, const float *k, int64_t ldk, const float *v,
                        int64_t ldv, bool v_nonfinite, float *q_copy, float *scores,
                        gemm_softmax_gemm *gemm)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, Lk = p->len_kv, rows = i1 - i0;
    float *o0 = attn_o_row(t, b, h, i0);
    const int64_t ldo = rows == 1 ? d : p->o.seq;
    kb = kb < n ? kb : n;
    k += kb * ldk;
    v += kb * ldv;
    n -= kb; /* keys [kb, kb + n) from here on */
    if (n <= 0) { /* every key masked for every row: zeros */
        for (int64_t r = 0; r < rows; r++)
            memset(o0 + r * ldo, 0, (size_t)d * sizeof *o0);
        return;
    }
    int64_t ldq;
    const float *q = as_matrix(attn_q_row(t, b, h, i0), p->q.seq, rows, d, q_copy, &ldq);
    gemm(true, rows, n, d, t->scale, q, ldq, k, ldk, scores, Lk);
    for (int64_t r = 0; r < rows; r++) {
        const attn_row_opts ro = attn_row_opts_of(p, h, i0 + r);
        softmax_row(scores + r * Lk, n, kb, attn_key_start(p, i0 + r),
                    attn_key_limit(p, b, i0 + r), attn_mask_row(p, i0 + r), &ro);
    }
    if (!v_nonfinite) {
        gemm(false, rows, d, n, 1.0f, scores, Lk, v, ldv, o0, ldo);
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *s = scores + r * Lk;
        float *o = o0 + r * ldo;
        memset(o, 0, (size_t)d * sizeof *o);
        for (int64_t j = 0; j < n; j++)
            for (int64_t col = 0; s[j] != 0.0f && col < d; col++)
                o[col] += s[j] * v[j * ldv + col];
    }
}

attn_status gemm_softmax_run(const attn_task *t, gemm_softmax_gemm *gemm)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, Lk = p->len_kv, group = p->heads_q / p->heads_kv;
    const int64_t rows = t->row_end - t->row_begin;
    const bool banded = p->causal || p->window_left >= 0 || p->window_right >= 0;
    const int64_t block = banded ? CAUSAL_BLOCK : rows;
    float *scores = t->workspace; /* [rows][Lk] */
    float *q_copy = scores + rows * Lk;
    float *k_copy = q_copy + (gemm_softmax_rows_in_place(p->q.seq, p->len_q, d) ? 0 : p->len_q * d);
    float *v_copy = k_copy + (gemm_softmax_rows_in_place(p->k.seq, p->len_kv, d) ? 0 : Lk * d);

    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const int64_t b = g / p->heads_kv, hkv = g % p->heads_kv;
        const int64_t n = block_keys(p, b, t->row_begin, t->row_end); /* keys any row sees */
        int64_t ldk, ldv;
        const float *k = as_matrix(attn_k_row(t, b, hkv, 0), p->k.seq, n, d, k_copy, &ldk);
        const float *v = as_matrix(attn_v_row(t, b, hkv, 0), p->v.seq, n, d, v_copy, &ldv);
        /* V is scanned only where some key of [0, n) gets a zero weight by exclusion */
        const bool excludes = p->mask || fewest_keys(p, b, t->row_begin, t->row_end) < n ||
                              p->window_left >= 0;
        const bool v_nonfinite = n > 0 && excludes && gemm_softmax_nonfinite_rows(v, ldv, n, d);
        for (int64_t h = hkv * group; h < (hkv + 1) * group; h++)
            for (int64_t i0 = t->row_begin; i0 < t->row_end; i0 += block) {
                const int64_t i1 = i0 + block < t->row_end ? i0 + block : t->row_end;
                attend_rows(t, b, h, i0, i1, block_first(p, i0, i1), block_keys(p, b, i0, i1),
                            k, ldk, v, ldv, v_nonfinite, q_copy, scores, gemm);
            }
    }
    return ATTN_OK;
}
