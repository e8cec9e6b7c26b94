/* conformance_case.c — a conformance case: its problem, layouts (packed, BLHD, padded with gaps,
 * broadcast K/V), kv_lens and mask, inputs with exact extents, its rounding to each input type,
 * and the float64 reference with the floor under the declared tolerance (LOGIT_ROUNDINGS). */
#include "conformance.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ATTN_CONFORMANCE_SLACK=1 (set for the qemu-x86_64 stages, tests/meson.build): 64 zero bytes
 * after every buffer. qemu 7.2 faults on the masked-off lanes of VMASKMOVPS where they cross
 * into an unmapped page, which real CPUs never do; the kernels' masked tail loads then crash
 * only when a tensor happens to end at a page edge. Natively the extents stay exact. */
void *checked_alloc(size_t count, size_t size)
{
    static int slack = -1;
    if (slack < 0)
        slack = getenv("ATTN_CONFORMANCE_SLACK") ? 64 : 0;
    size_t bytes = 0;
    const bool fits = !__builtin_mul_overflow(count, size, &bytes) &&
                      !__builtin_add_overflow(bytes, (size_t)slack, &bytes);
    void *p = count && size && fits ? calloc(1, bytes) : NULL;
    if (count && size && !p) {
        fprintf(stderr, "conformance: out of memory (%zu x %zu bytes)\n", count, size);
        exit(2);
    }
    return p;
}

static const char *const layout_names[] = {"bhld", "blhd", "padded"};

void case_begin(test_case *c, uint64_t seed, int64_t batch, int64_t hq, int64_t hkv,
                       int64_t lq, int64_t lk, int64_t d)
{
    memset(c, 0, sizeof *c);
    c->index = -1;
    c->edge = -1;
    c->seed = seed;
    attn_problem_init(&c->p, batch, hq, hkv, lq, lk, d);
}

/* Strides with gaps: each row, each run of inner rows and each outer block is followed by a
 * few unused elements. order_blhd puts the head inside the sequence. */
static void padded_strides(attn_strides *s, int64_t heads, int64_t len, int64_t d,
                           bool order_blhd, rng *r)
{
    const int64_t row = d + rng_range(r, 1, 9);
    const int64_t inner_n = order_blhd ? heads : len, outer_n = order_blhd ? len : heads;
    const int64_t mid = inner_n * row + rng_range(r, 0, 13);
    if (order_blhd) {
        s->head = row;
        s->seq = mid;
    } else {
        s->seq = row;
        s->head = mid;
    }
    s->batch = outer_n * mid + rng_range(r, 0, 29);
}

void case_set_layout(test_case *c, layout_kind layout, bool broadcast_kv, rng *r)
{
    attn_problem *p = &c->p;
    c->layout = layout;
    if (layout == LAYOUT_BLHD)
        attn_problem_set_layout_blhd(p);
    if (layout == LAYOUT_PADDED) {
        padded_strides(&p->q, p->heads_q, p->len_q, p->head_dim, rng_chance(r, 0.5), r);
        padded_strides(&p->k, p->heads_kv, p->len_kv, p->head_dim, rng_chance(r, 0.5), r);
        padded_strides(&p->v, p->heads_kv, p->len_kv, p->head_dim, rng_chance(r, 0.5), r);
        padded_strides(&p->o, p->heads_q, p->len_q, p->head_dim, rng_chance(r, 0.5), r);
    }
    c->broadcast_kv = broadcast_kv && p->batch > 1;
    if (c->broadcast_kv)
        p->k.batch = p->v.batch = 0;
}

void case_set_kv_lens(test_case *c, const int32_t *lens)
{
    c->kv_lens = checked_alloc((size_t)c->p.batch, sizeof *c->kv_lens);
    memcpy(c->kv_lens, lens, (size_t)c->p.batch * sizeof *c->kv_lens);
    c->p.kv_lens = c->kv_lens;
}

/* An additive mask with values uniform in [lo, hi]; each entry is -inf with probability
 * p_inf, each row entirely -inf with probability p_row_inf. Gaps (row_stride > Lk) hold NaN,
 * which would poison any output that read them. */
void case_set_mask(test_case *c, int64_t row_stride, float lo, float hi, double p_inf,
                          double p_row_inf, rng *r)
{
    attn_problem *p = &c->p;
    const int64_t stride = row_stride ? row_stride : p->len_kv;
    c->mask_elements = (p->len_q - 1) * stride + p->len_kv;
    c->mask = checked_alloc((size_t)c->mask_elements, sizeof *c->mask);
    for (int64_t e = 0; e < c->mask_elements; e++)
        c->mask[e] = NAN;
    for (int64_t i = 0; i < p->len_q; i++) {
        const bool row_inf = rng_chance(r, p_row_inf);
        for (int64_t j = 0; j < p->len_kv; j++)
            c->mask[i * stride + j] =
                row_inf || rng_chance(r, p_inf) ? -INFINITY : rng_float(r, lo, hi);
    }
    p->mask = c->mask;
    p->mask_row_stride = row_stride;
}

float *tensor_row(float *base, const attn_strides *s, int64_t b, int64_t h, int64_t i)
{
    return base + b * s->batch + h * s->head + i * s->seq;
}

/* Allocates q, k, v with their exact extents: NaN everywhere (gaps of padded layouts), then
 * every element uniform in [-amplitude, amplitude]. */
void case_alloc_inputs(test_case *c, float amplitude, rng *r)
{
    attn_problem *p = &c->p;
    const char names[4] = {'q', 'k', 'v', 'o'};
    for (int t = 0; t < 4; t++) {
        attn_error err;
        if (attn_tensor_extent(p, names[t], &c->extent[t], &err) != ATTN_OK) {
            fprintf(stderr, "conformance: internal error, case %s: %s\n", c->name, err.message);
            exit(2);
        }
    }
    float **tensors[3] = {&c->q, &c->k, &c->v};
    const attn_strides *strides[3] = {&p->q, &p->k, &p->v};
    for (int t = 0; t < 3; t++) {
        float *x = checked_alloc((size_t)c->extent[t], sizeof *x);
        for (int64_t e = 0; e < c->extent[t]; e++)
            x[e] = NAN;
        const int64_t heads = t == 0 ? p->heads_q : p->heads_kv;
        const int64_t len = t == 0 ? p->len_q : p->len_kv;
        for (int64_t b = 0; b < p->batch; b++)
            for (int64_t h = 0; h < heads; h++)
                for (int64_t i = 0; i < len; i++) {
                    float *row = t == 0 ? tensor_row(x, strides[t], b, h, i)
                                        : x + attn_kv_offset(p, strides[t], b, h, i);
                    for (int64_t e = 0; e < p->head_dim; e++)
                        row[e] = rng_float(r, -amplitude, amplitude);
                }
        *tensors[t] = x;
    }
}

/* Whether row i of batch b attends to at least one key. */
bool row_attends(const attn_problem *p, int64_t b, int64_t i)
{
    const int64_t n = attn_key_limit(p, b, i);
    const float *m = attn_mask_row(p, i);
    for (int64_t j = attn_key_start(p, i); j < n; j++)
        if (!m || m[j] != -INFINITY)
            return true;
    return false;
}

/* The check's floor under the declared tolerance: problems whose float32 inputs fix the
 * answer only to some absolute error, whatever the algorithm.
 *
 * Logits. Rounding a float score of magnitude S costs an absolute error of ~S·2^-24 in the
 * score, i.e. a relative error of S·2^-24 in its weight exp(score - max); the scale, the max
 * subtraction and the accumulation of the dot product add a few more such roundings. A convex
 * combination whose weights move by a relative δ moves by at most 2δ·M, where
 * M = max over outputs of Σ_j p_j·|v_j| (the oracle run on |V|). Hence LOGIT_ROUNDINGS·S·2^-24·M
 * with LOGIT_ROUNDINGS = 2 (convex combination) × 4 (score, scale, max subtraction, dot).
 *
 * Cancellation. The weighted sum itself rounds at the scale of its terms, M, not of its result:
 * when V's values cancel (d = 1, long rows of inputs in [-1, 1]) ||O*||∞ can be 1000 times
 * smaller than M, and the normwise relative error of any float32 sum exceeds a tolerance meant
 * for ||O*||∞ ~ M. Hence SUM_ROUNDINGS·2^-24·M (the exp, the normalisation, the sum).
 *
 * The floor is (LOGIT_ROUNDINGS·S + SUM_ROUNDINGS)·2^-24·M / ||O*||∞, as a normwise relative
 * error. With the default scale and inputs in [-1, 1], S ≈ sqrt(d)/4 <= 4 and ||O*||∞ ~ M/3, so
 * it stays under the declared tolerances (1e-5); it rises with an explicit scale of 1-2 and a
 * large d (S up to ~150), for the logits of ±1e4 of the edge cases and for cancelling sums.
 * Measured over 10^4 runs (4 seeds, 6 variants): errors up to 1.7·S·2^-24·M, i.e. at most a
 * fifth of the floor, and never above 0.2 of the tolerance used.
 *
 * Half-precision inputs change nothing here: the oracle reads the rounded inputs, which the
 * variant reads exactly, and it computes in float32 as before. A half output adds its unit
 * roundoff (|O - half(O)| <= u·||O||∞), as attn_variant_tolerance() does.
 *
 * bf16 compute (compute_dtype = ATTN_BF16: Q, K, V and the weights P rounded to bf16, float32
 * accumulation). The reference reads Q, K, V rounded to bf16, so those roundings cost nothing;
 * bf16 products are exact in float32, so the score and sum terms above still hold. What is new
 * is the rounding of each weight, a relative δ_j with |δ_j| <= u = 2^-8: it moves output c by
 * Σ_j p_j·δ_j·v_j (normalised by the exact sum of the weights) or Σ_j p_j·δ_j·(v_j - O_c) (by
 * the sum of the rounded ones). Its worst case, u·max(Σ_j p_j·|v_j|, Σ_j p_j·|v_j - O_c|), is
 * about u·M: a floor of 2^-8·M/||O*||∞ on every case would swallow any declared tolerance. But
 * round-to-nearest errors of different weights are independent with a standard deviation of at
 * most u/√3, so the sum's is at most u/√3·R_c with R_c the larger of ||p·v||₂ and
 * ||p·(v - O_c)||₂, which is ~M/√(keys) for a row spread over many keys. The floor adds
 * min(WEIGHT_SIGMAS·R_c/√3, worst case)·2^-8 / ||O*||∞ (max over outputs c): far under a bf16
 * tolerance for ordinary rows, u·|v|/||O*||∞ at most for a row that sees one key, and rising
 * only with cancellation (M ≫ ||O*||∞), as the float32 sum term does. WEIGHT_SIGMAS = 6: over
 * the ~10^7 outputs of a run a larger excursion is unlikely (p ~ 10^-9 each) for a correct
 * variant, while a weight rounded the wrong way (truncation, a bias) is systematic and not
 * covered: that error belongs in the variant's declared tolerance. Measured on amx_bf16 and
 * avx512_bf16 (declared 1e-2; 2 seeds, f32 and bf16 inputs, ~1070 runs each): the floor set
 * the tolerance in 3-8% of the runs (cancelling sums, M/||O*||∞ up to 100), where errors
 * reached 0.021; no error exceeded 0.4 of the tolerance used.
 *
 * Underflow. A float32 kernel's weight exp(logit - max) below 2^-126 is lost (flushed, or a
 * denormal with few bits), so a row whose every key sits far under its max (a sink that takes
 * all the weight, a huge negative ALiBi bias) can have an exact output far below anything float32
 * holds: 1e-78 where the variant, rightly, writes 0. Each lost weight is under 2^-126 of a sum of
 * at least 1, so the absolute error it causes is at most n·2^-126·max_j |v_j| over the row's n
 * attended keys: the floor adds that (max over rows) / ||O*||∞, nothing for ordinary outputs.
 *
 * f16 compute (compute_dtype = ATTN_F16: ggml_f16, whose decode keeps the P·V accumulator in
 * f16). The accumulator rounds at the scale of its terms, M, with f16's unit roundoff 2^-11:
 * the cancellation term above at that precision, F16_SUM_ROUNDINGS·2^-11·M / ||O*||∞. For
 * ordinary outputs (M/||O*||∞ ~ 3) that is 3e-3, far under an f16 tolerance, which covers the
 * accumulator's growth with the keys; it rises with cancellation only. Measured: a d = 1 row
 * over 257 keys with M/||O*||∞ = 294 erred by 0.35·2^-11·M (relative 0.0504 against ggml_f16's
 * declared 0.05). */
#define LOGIT_ROUNDINGS 8.0
#define SUM_ROUNDINGS 16.0
#define WEIGHT_SIGMAS 6.0
#define F16_SUM_ROUNDINGS 2.0

/* S, M and (weights) R of a reference whose oracle output is already in ref->out, in one
 * float64 pass over the attended pairs. Rows with NaN and rows without keys are skipped. */
static void reference_conditioning(const attn_problem *p, const float *q, const float *k,
                                   const float *v, bool weights, reference *ref)
{
    const int64_t d = p->head_dim, group = p->heads_q / p->heads_kv;
    const double scale = attn_problem_scale(p);
    double *w = checked_alloc((size_t)p->len_kv, sizeof *w);
    double *acc = checked_alloc((size_t)(4 * d), sizeof *acc);
    double *abs_v = acc, *sq = acc + d, *cabs = acc + 2 * d, *csq = acc + 3 * d;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->heads_q; h++)
            for (int64_t i = 0; i < p->len_q; i++) {
                const float *qi = q + b * p->q.batch + h * p->q.head + i * p->q.seq;
                const float *m = attn_mask_row(p, i);
                const double *o = ref->out + ((b * p->heads_q + h) * p->len_q + i) * d;
                const int64_t n = attn_key_limit(p, b, i), first = attn_key_start(p, i);
                double max = -INFINITY;
                bool nan = false;
                for (int64_t j = 0; j < n; j++) {
                    w[j] = -INFINITY;
                    if (j < first || (m && m[j] == -INFINITY))
                        continue;
                    const float *kj = k + attn_kv_offset(p, &p->k, b, h / group, j);
                    /* Four partial sums: the chains of a single sum would bound the speed. */
                    double dot[4] = {0, 0, 0, 0}, mag[4] = {0, 0, 0, 0};
                    int64_t e = 0;
                    for (; e + 4 <= d; e += 4)
                        for (int u = 0; u < 4; u++) {
                            const double x = (double)qi[e + u] * kj[e + u];
                            dot[u] += x;
                            mag[u] += fabs(x);
                        }
                    for (; e < d; e++) {
                        const double x = (double)qi[e] * kj[e];
                        dot[0] += x;
                        mag[0] += fabs(x);
                    }
                    /* The logit of attn.h; its size S adds the soft cap (the tanh's own error
                     * is relative to c) and the ALiBi bias to the dot product's. */
                    const double bias = p->alibi_slopes ? (double)p->alibi_slopes[h] *
                                            (double)(j - (i + p->len_kv - p->len_q)) : 0.0;
                    w[j] = scale * ((dot[0] + dot[1]) + (dot[2] + dot[3]));
                    if (p->softcap != 0.0f)
                        w[j] = p->softcap * tanh(w[j] / p->softcap);
                    w[j] += bias + (m ? m[j] : 0.0);
                    const double s = scale * ((mag[0] + mag[1]) + (mag[2] + mag[3])) +
                                     p->softcap + fabs(bias) + (m ? fabs(m[j]) : 0.0);
                    if (s > ref->logit_max)
                        ref->logit_max = s;
                    if (isnan(w[j]))
                        nan = true;
                    else if (w[j] > max)
                        max = w[j];
                }
                if (nan || max == -INFINITY)
                    continue;
                memset(acc, 0, (size_t)(4 * d) * sizeof *acc);
                /* the sink's share of the denominator shrinks O* and M alike */
                const double sink = p->sinks ? (double)p->sinks[h] : -INFINITY;
                if (sink > max)
                    max = sink;
                double sum = sink == -INFINITY ? 0 : exp(sink - max);
                double keys = 0, v_max = 0; /* the underflow term's n and max |v_j| */
                for (int64_t j = 0; j < n; j++) {
                    if (w[j] == -INFINITY)
                        continue;
                    const double e = exp(w[j] - max);
                    const float *vj = v + attn_kv_offset(p, &p->v, b, h / group, j);
                    sum += e;
                    keys++;
                    for (int64_t c = 0; c < d; c++)
                        if (fabs((double)vj[c]) > v_max)
                            v_max = fabs((double)vj[c]);
                    if (!weights) {
                        for (int64_t c = 0; c < d; c++)
                            abs_v[c] += e * fabs((double)vj[c]);
                        continue;
                    }
                    for (int64_t c = 0; c < d; c++) {
                        const double x = e * vj[c], y = e * (vj[c] - o[c]);
                        abs_v[c] += fabs(x);
                        sq[c] += x * x;
                        cabs[c] += fabs(y);
                        csq[c] += y * y;
                    }
                }
                if (keys * v_max * 0x1p-126 > ref->underflow_max)
                    ref->underflow_max = keys * v_max * 0x1p-126;
                for (int64_t c = 0; c < d; c++) {
                    const double mc = abs_v[c] / sum;
                    if (mc > ref->abs_max) /* false for NaN */
                        ref->abs_max = mc;
                    if (!weights)
                        continue;
                    const double r = sqrt(sq[c] > csq[c] ? sq[c] : csq[c]) / sum;
                    const double worst = (abs_v[c] > cabs[c] ? abs_v[c] : cabs[c]) / sum;
                    const double bound = WEIGHT_SIGMAS / sqrt(3.0) * r < worst
                                             ? WEIGHT_SIGMAS / sqrt(3.0) * r : worst;
                    if (bound > ref->spread_max)
                        ref->spread_max = bound;
                }
            }
    free(acc);
    free(w);
}

/* Marks the output's elements and counts the rows without keys. */
void case_finish(test_case *c)
{
    attn_problem *p = &c->p;
    c->owned = checked_alloc((size_t)c->extent[3], 1);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->heads_q; h++)
            for (int64_t i = 0; i < p->len_q; i++)
                memset(c->owned + b * p->o.batch + h * p->o.head + i * p->o.seq, 1,
                       (size_t)p->head_dim);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0; i < p->len_q; i++)
            c->empty_rows += !row_attends(p, b, i) * p->heads_q;
}

void case_free(test_case *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->mask);
    free(c->kv_lens);
    free(c->alibi);
    free(c->sinks);
    free(c->block_table);
    free(c->owned);
    memset(c, 0, sizeof *c);
}

uint64_t typed_input_hash(const test_case *c, const typed_case *tc)
{
    const size_t es = attn_dtype_size(tc->t);
    const attn_dtype kvt = (attn_dtype)attn_problem_kv_dtype(&tc->p);
    uint64_t h = 0xcbf29ce484222325u;
    h = hash_words(h, tc->q, (size_t)c->extent[0] * es);
    h = hash_words(h, tc->k, attn_dtype_bytes(kvt, (size_t)c->extent[1]));
    h = hash_words(h, tc->v, attn_dtype_bytes(kvt, (size_t)c->extent[2]));
    for (int t = 0; tc->k_scale && t < 2; t++) {
        int64_t n = 0;
        attn_tensor_extent(&tc->p, "KV"[t], &n, NULL);
        h = hash_words(h, t ? tc->v_scale : tc->k_scale, (size_t)n * (kvt == ATTN_Q4 ? 2 : 4));
    }
    if (c->mask)
        h = hash_words(h, c->mask, (size_t)c->mask_elements * sizeof(float));
    if (c->kv_lens)
        h = hash_words(h, c->kv_lens, (size_t)c->p.batch * sizeof(int32_t));
    if (c->block_table)
        h = hash_words(h, c->block_table,
                       (size_t)(c->p.batch * attn_block_table_stride(&c->p)) * sizeof(int32_t));
    return h;
}

/* Rounds n floats to type t (allocated with exactly n elements of it) and widens them back. */
static void *round_to(const float *x, int64_t n, attn_dtype t, float **widened)
{
    void *y = checked_alloc((size_t)n, attn_dtype_size(t));
    attn_convert(x, ATTN_F32, y, t, (size_t)n);
    *widened = checked_alloc((size_t)n, sizeof **widened);
    attn_convert(y, t, *widened, ATTN_F32, (size_t)n);
    return y;
}

/* The case in input type t with output type out (ATTN_F32 or t). */
void typed_prepare(const test_case *c, attn_dtype t, attn_dtype out, typed_case *tc)
{
    memset(tc, 0, sizeof *tc);
    tc->t = t;
    tc->p = c->p;
    tc->p.dtype = t;
    tc->p.out_dtype = out;
    if (t == ATTN_F32) {
        tc->q = tc->wq = c->q;
        tc->k = tc->wk = c->k;
        tc->v = tc->wv = c->v;
    } else {
        tc->q = round_to(c->q, c->extent[0], t, &tc->wq);
        tc->k = round_to(c->k, c->extent[1], t, &tc->wk);
        tc->v = round_to(c->v, c->extent[2], t, &tc->wv);
    }
    tc->input_hash = typed_input_hash(c, tc);
}

/* One of K, V quantized (and its scales) and dequantized back: the float copy keeps the
 * case's NaN gaps between rows. */
static bool quantize_tensor(const attn_problem *p, char tensor, const float *x, int64_t n,
                            void **q, void **scale, float **wide)
{
    int64_t ns = 0;
    attn_tensor_extent(p, tensor == 'k' ? 'K' : 'V', &ns, NULL);
    *q = checked_alloc(attn_dtype_bytes(p->kv_dtype, (size_t)n) + 1, 1);
    *scale = checked_alloc((size_t)ns + 1, p->kv_dtype == ATTN_Q4 ? 2 : 4);
    *wide = checked_alloc((size_t)n, sizeof **wide);
    memcpy(*wide, x, (size_t)n * sizeof **wide);
    attn_error err;
    if (attn_quantize_kv(p, tensor, x, *q, *scale, &err) != ATTN_OK ||
        attn_dequantize_kv(p, tensor, *q, *scale, *wide, &err) != ATTN_OK) {
        printf("FAILED: quantizing %c of a valid case: %s\n", tensor, err.message);
        return false;
    }
    return true;
}

bool typed_prepare_kv(const test_case *c, attn_dtype kv, typed_case *tc)
{
    memset(tc, 0, sizeof *tc);
    tc->t = ATTN_F32;
    tc->p = c->p;
    attn_problem_set_kv_dtype(&tc->p, kv);
    if (attn_problem_validate(&tc->p, NULL) != ATTN_OK) /* q4: head_dim % 32, odd strides */
        return false;
    tc->q = tc->wq = c->q;
    void *k, *v;
    /* both allocated before either result counts: typed_free frees whatever is there */
    const bool k_ok = quantize_tensor(&tc->p, 'k', c->k, c->extent[1], &k, &tc->k_scale, &tc->wk);
    const bool ok = quantize_tensor(&tc->p, 'v', c->v, c->extent[2], &v, &tc->v_scale, &tc->wv) &&
                    k_ok;
    tc->k = k;
    tc->v = v;
    tc->p.k_scale = tc->k_scale;
    tc->p.v_scale = tc->v_scale;
    tc->input_hash = typed_input_hash(c, tc);
    if (!ok) {
        typed_free(tc);
        exit(1);
    }
    return true;
}

/* The reference `which` of a typed case, computed on first use. */
const reference *typed_reference(const test_case *c, typed_case *tc, int which)
{
    reference *ref = &tc->ref[which];
    if (tc->have_ref[which])
        return ref;
    const float *q = tc->wq, *k = tc->wk, *v = tc->wv;
    float *bq = NULL, *bk = NULL, *bv = NULL;
    void *tmp[3] = {NULL, NULL, NULL};
    const attn_dtype rounded = which == REF_BF16 ? ATTN_BF16 : ATTN_F16;
    if (which != REF_READ && tc->t != rounded) { /* inputs of that type are already rounded */
        tmp[0] = round_to(q, c->extent[0], rounded, &bq);
        tmp[1] = round_to(k, c->extent[1], rounded, &bk);
        tmp[2] = round_to(v, c->extent[2], rounded, &bv);
        q = bq;
        k = bk;
        v = bv;
    }
    const attn_problem *p = &tc->p;
    const int64_t d = p->head_dim, rows = p->batch * p->heads_q * p->len_q;
    /* inputs of the rounding's type are their own rounding: the oracle's output is REF_READ's */
    const reference *same = which != REF_READ && tc->t == rounded
                                ? typed_reference(c, tc, REF_READ) : NULL;
    memset(ref, 0, sizeof *ref);
    ref->out = checked_alloc((size_t)(rows * d), sizeof *ref->out);
    attn_error err;
    if (same) {
        memcpy(ref->out, same->out, (size_t)(rows * d) * sizeof *ref->out);
    } else if (attn_oracle(p, q, k, v, ref->out, &err) != ATTN_OK) {
        fprintf(stderr, "conformance: internal error, oracle refused case %s (%s): %s\n",
                c->name, attn_dtype_name(tc->t), err.message);
        exit(2);
    }
    for (int64_t r = 0; r < rows; r++) {
        bool nan = false;
        for (int64_t e = 0; e < d; e++) {
            const double x = ref->out[r * d + e];
            nan |= isnan(x);
            if (!isnan(x) && fabs(x) > ref->ref_max)
                ref->ref_max = fabs(x);
        }
        ref->nan_rows += nan;
        ref->finite_rows += !nan;
    }
    reference_conditioning(p, q, k, v, which == REF_BF16, ref);
    if (ref->ref_max > 0)
        ref->floor = ((LOGIT_ROUNDINGS * ref->logit_max + SUM_ROUNDINGS) * 0x1p-24 *
                          ref->abs_max + ref->spread_max * 0x1p-8 + ref->underflow_max +
                      (which == REF_F16 ? F16_SUM_ROUNDINGS * 0x1p-11 * ref->abs_max : 0)) /
                     ref->ref_max;
    for (int t = 0; t < 3; t++)
        free(tmp[t]);
    free(bq);
    free(bk);
    free(bv);
    tc->have_ref[which] = true;
    return ref;
}

void typed_free(typed_case *tc)
{
    if (tc->k_scale) { /* quantized K/V: float32 Q is the case's */
        free(tc->k);
        free(tc->v);
        free(tc->wk);
        free(tc->wv);
        free(tc->k_scale);
        free(tc->v_scale);
    } else if (tc->t != ATTN_F32) {
        free(tc->q);
        free(tc->k);
        free(tc->v);
        free(tc->wq);
        free(tc->wk);
        free(tc->wv);
    }
    for (int r = 0; r < REF_COUNT; r++)
        free(tc->ref[r].out);
    memset(tc, 0, sizeof *tc);
}

static void describe_strides(char *buf, size_t len, const char *name, const attn_strides *s)
{
    snprintf(buf, len, " %s=(%" PRId64 ",%" PRId64 ",%" PRId64 ")", name, s->batch, s->head,
             s->seq);
}

/* The full problem in one line: shape, causal, kv_lens, mask, layout, scale, types. p is the
 * case's problem with its types (a typed_case's). */
void describe_case(const test_case *c, const attn_problem *p, char *buf, size_t len)
{
    char lens[64] = "none", mask[64] = "none", layout[256], scale[48];
    if (p->kv_lens) {
        size_t used = 0;
        for (int64_t b = 0; b < p->batch && used < sizeof lens; b++)
            used += (size_t)snprintf(lens + used, sizeof lens - used, "%s%d", b ? "," : "[",
                                     p->kv_lens[b]);
        if (used < sizeof lens)
            snprintf(lens + used, sizeof lens - used, "]");
    }
    if (p->mask) {
        int64_t inf = 0;
        for (int64_t i = 0; i < p->len_q; i++)
            for (int64_t j = 0; j < p->len_kv; j++)
                inf += attn_mask_row(p, i)[j] == -INFINITY;
        snprintf(mask, sizeof mask, "yes(row_stride=%" PRId64 ",%" PRId64 " -inf)",
                 p->mask_row_stride, inf);
    }
    snprintf(layout, sizeof layout, "%s%s", layout_names[c->layout],
             c->broadcast_kv ? "+broadcast-kv" : "");
    if (c->layout == LAYOUT_PADDED || c->broadcast_kv) {
        const char *names[4] = {"q", "k", "v", "o"};
        const attn_strides *s[4] = {&p->q, &p->k, &p->v, &p->o};
        for (int t = 0; t < 4; t++) {
            size_t used = strlen(layout);
            describe_strides(layout + used, sizeof layout - used, names[t], s[t]);
        }
    }
    if (p->scale == 0.0f)
        snprintf(scale, sizeof scale, "default(%.6g)", (double)attn_problem_scale(p));
    else
        snprintf(scale, sizeof scale, "%.9g", (double)p->scale);
    snprintf(buf, len,
             "B=%" PRId64 " Hq=%" PRId64 " Hkv=%" PRId64 " Lq=%" PRId64 " Lk=%" PRId64
             " d=%" PRId64 " causal=%d kv_lens=%s mask=%s layout=%s scale=%s dtype=%s out=%s",
             p->batch, p->heads_q, p->heads_kv, p->len_q, p->len_kv, p->head_dim, p->causal,
             lens, mask, layout, scale, attn_dtype_name(p->dtype),
             attn_dtype_name(p->out_dtype));
    const size_t used = strlen(buf);
    if (attn_problem_features(p) & ~ATTN_FEATURE_PAGED && used < len)
        snprintf(buf + used, len - used, " window=%" PRId64 ",%" PRId64 " alibi=%s softcap=%g "
                 "sinks=%s%.3g", p->window_left, p->window_right,
                 p->alibi_slopes ? "yes" : "no", (double)p->softcap, p->sinks ? "head0:" : "no",
                 p->sinks ? (double)p->sinks[0] : 0.0);
    const size_t after = strlen(buf);
    if (p->page_size && after < len)
        snprintf(buf + after, len - after, " paged=%" PRId64 "x%" PRId64 " table_stride=%" PRId64
                 " k=(%" PRId64 ",%" PRId64 ",%" PRId64 ")", p->num_pages, p->page_size,
                 attn_block_table_stride(p), p->k.batch, p->k.head, p->k.seq);
}

/* ---- the options of current models (attn.h) --------------------------------------------- */

void case_set_alibi(test_case *c, bool standard, rng *r)
{
    c->alibi = checked_alloc((size_t)c->p.heads_q, sizeof *c->alibi);
    attn_alibi_slopes(c->p.heads_q, c->alibi);
    for (int64_t h = 0; !standard && h < c->p.heads_q; h++)
        c->alibi[h] = rng_float(r, -0.5f, 1.0f);
    c->p.alibi_slopes = c->alibi;
}

void case_set_sinks(test_case *c, float lo, float hi, rng *r)
{
    c->sinks = checked_alloc((size_t)c->p.heads_q, sizeof *c->sinks);
    for (int64_t h = 0; h < c->p.heads_q; h++)
        c->sinks[h] = rng_float(r, lo, hi);
    c->p.sinks = c->sinks;
}

/* Draws the options of a random case from its own generator (so the shapes and inputs of
 * every case stay those of earlier runs): a sliding window (both sides, one side, of 0, 1,
 * beyond Lk), ALiBi (standard or random slopes), a soft cap (tiny to large), sinks. */
void draw_options(test_case *c)
{
    rng r = rng_seeded(c->seed, 0x400000000u);
    attn_problem *p = &c->p;
    const int64_t lk = p->len_kv;
    const int64_t sizes[] = {0, 1, 2, lk / 4, lk / 2, lk + 3};
    if (rng_chance(&r, 0.35)) {
        p->window_left = rng_chance(&r, 0.8) ? sizes[rng_range(&r, 0, COUNT(sizes) - 1)] : -1;
        p->window_right = rng_chance(&r, 0.5) ? sizes[rng_range(&r, 0, COUNT(sizes) - 1)] : -1;
    }
    if (rng_chance(&r, 0.25))
        case_set_alibi(c, rng_chance(&r, 0.6), &r);
    if (rng_chance(&r, 0.25)) {
        static const float caps[] = {0.05f, 1.0f, 5.0f, 30.0f};
        p->softcap = caps[rng_range(&r, 0, COUNT(caps) - 1)];
    }
    if (rng_chance(&r, 0.25))
        case_set_sinks(c, -3.0f, 3.0f, &r);
}

attn_dtype draw_out_dtype(const test_case *c, attn_dtype t)
{
    rng r = rng_seeded(c->seed, 0x300000000u + (uint64_t)t);
    return t != ATTN_F32 && rng_chance(&r, HALF_OUTPUT_CHANCE) ? t : ATTN_F32;
}

int reference_of(const attn_variant_info *info)
{
    return info->compute_dtype == ATTN_BF16 ? REF_BF16
           : info->compute_dtype == ATTN_F16 ? REF_F16 : REF_READ;
}

/* ---- paged K/V ---------------------------------------------------------------------------- */

void case_set_pages(test_case *c, int64_t page_size, bool repeat, rng *r)
{
    attn_problem *p = &c->p;
    const int64_t used = (p->len_kv - 1) / page_size + 1;
    const int64_t stride = rng_chance(r, 0.3) ? used + rng_range(r, 1, 3) : 0;
    const int64_t row = stride ? stride : used, in_use = p->batch * used;
    const int64_t pages = repeat ? rng_range(r, 1, in_use) : in_use + rng_range(r, 0, 2);
    int32_t *order = checked_alloc((size_t)pages, sizeof *order);
    for (int64_t k = 0; k < pages; k++) /* Fisher-Yates */
        order[k] = (int32_t)k;
    for (int64_t k = pages - 1; k > 0; k--) {
        const int64_t m = rng_range(r, 0, k);
        const int32_t x = order[k];
        order[k] = order[m];
        order[m] = x;
    }
    c->block_table = checked_alloc((size_t)(p->batch * row), sizeof *c->block_table);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t k = 0; k < row; k++) /* -1 past the pages in use: never read */
            c->block_table[b * row + k] = k >= used ? -1
                                          : repeat ? (int32_t)rng_range(r, 0, pages - 1)
                                                   : order[b * used + k];
    free(order);
    attn_problem_set_pages(p, page_size, pages, c->block_table, stride);
    c->broadcast_kv = false;
    const int64_t hkv = p->heads_kv, d = p->head_dim;
    if (c->layout == LAYOUT_BLHD)
        p->k = p->v = (attn_strides){.batch = page_size * hkv * d, .head = d, .seq = hkv * d};
    if (c->layout == LAYOUT_PADDED) {
        padded_strides(&p->k, hkv, page_size, d, rng_chance(r, 0.5), r);
        padded_strides(&p->v, hkv, page_size, d, rng_chance(r, 0.5), r);
    }
}

void draw_pages(test_case *c)
{
    rng r = rng_seeded(c->seed, 0x500000000u);
    static const int64_t sizes[] = {1, 3, 8, 16, 17, 64, 256};
    if (rng_chance(&r, 1.0 / 3.0))
        case_set_pages(c, sizes[rng_range(&r, 0, COUNT(sizes) - 1)], rng_chance(&r, 0.25), &r);
}
