/* kv_quant.c — quantized K/V caches (attn.h: ATTN_INT8, ATTN_Q4): the problem's kv_dtype, its
 * checks, and quantizing float32 K/V into either format and back. The rounding rules are
 * attn.h's; variants/variant.h has the dequantization the portable variants share. */
#include "attn.h"
#include "error.h"
#include "kv_quant.h"
#include "variant.h"

#include <math.h>
#include <stdint.h>

int attn_problem_kv_dtype(const attn_problem *p)
{
    return p ? (int)attn_kv_dtype_of(p) : -1;
}

void attn_problem_set_kv_dtype(attn_problem *p, attn_dtype t)
{
    if (!p || (unsigned)t >= ATTN_KV_DTYPE_COUNT)
        return;
    p->kv_dtype = t;
    const int64_t n = t == ATTN_Q4 ? p->head_dim / ATTN_Q4_BLOCK : 1;
    const attn_strides s = {.batch = p->heads_kv * p->len_kv * n, .head = p->len_kv * n, .seq = n};
    p->k_scale_strides = p->v_scale_strides = s;
}

attn_status attn_kv_validate(const attn_problem *p, attn_error *err)
{
    if ((unsigned)p->kv_dtype >= ATTN_KV_DTYPE_COUNT)
        return attn_fail(err, ATTN_ERR_INVALID, "kv_dtype %d is not an attn_dtype",
                         (int)p->kv_dtype);
    if (!attn_kv_quantized(p)) {
        if (p->kv_dtype != ATTN_F32 && p->kv_dtype != p->dtype)
            return attn_fail(err, ATTN_ERR_INVALID,
                             "kv_dtype %s with dtype %s: K and V are either of dtype or "
                             "quantized (int8, q4)", attn_dtype_name(p->kv_dtype),
                             attn_dtype_name(p->dtype));
        return ATTN_OK;
    }
    if (p->kv_dtype == ATTN_Q4) {
        if (p->head_dim % ATTN_Q4_BLOCK)
            return attn_fail(err, ATTN_ERR_INVALID,
                             "kv_dtype q4 needs head_dim a multiple of %d (got %lld): its "
                             "scales cover blocks of %d values; use int8 for this head_dim",
                             ATTN_Q4_BLOCK, (long long)p->head_dim, ATTN_Q4_BLOCK);
        const attn_strides *kv[2] = {&p->k, &p->v};
        for (int t = 0; t < 2; t++)
            if (kv[t]->batch % 2 || kv[t]->head % 2 || kv[t]->seq % 2)
                return attn_fail(err, ATTN_ERR_INVALID,
                                 "kv_dtype q4: the strides of %c must be even (two values per "
                                 "byte, every row starting on a byte)", "kv"[t]);
    }
    for (int t = 0; t < 2; t++) {
        int64_t e;
        const attn_status s = attn_tensor_extent(p, "KV"[t], &e, err);
        if (s != ATTN_OK)
            return s;
    }
    return ATTN_OK;
}

size_t attn_kv_span_bytes(const attn_problem *p, char tensor)
{
    int64_t e;
    if (attn_tensor_extent(p, tensor, &e, NULL) != ATTN_OK)
        return 0;
    if (tensor == 'K' || tensor == 'V')
        return (size_t)e * (p->kv_dtype == ATTN_Q4 ? 2 : 4);
    return attn_dtype_bytes(attn_kv_dtype_of(p), (size_t)e);
}

/* One row of d floats into int8 values and its float32 scale. */
static void quantize_row_int8(const float *x, int64_t d, int8_t *q, float *scale)
{
    float max = 0.0f;
    bool finite = true;
    for (int64_t c = 0; c < d; c++) {
        finite &= isfinite(x[c]) != 0;
        max = fmaxf(max, fabsf(x[c]));
    }
    const float sc = finite ? max / 127.0f : NAN;
    for (int64_t c = 0; c < d; c++)
        q[c] = sc > 0.0f ? (int8_t)fmaxf(-127.0f, fminf(127.0f, rintf(x[c] / sc))) : 0;
    *scale = sc;
}

/* One row of d floats (d % 32 == 0) into 4-bit values, two per byte, and a float16 scale per
 * block of 32. */
static void quantize_row_q4(const float *x, int64_t d, uint8_t *q, uint16_t *scale)
{
    for (int64_t b0 = 0; b0 < d; b0 += ATTN_Q4_BLOCK) {
        float max = 0.0f;
        bool finite = true;
        for (int c = 0; c < ATTN_Q4_BLOCK; c++) {
            finite &= isfinite(x[b0 + c]) != 0;
            max = fmaxf(max, fabsf(x[b0 + c]));
        }
        const uint16_t h = attn_f32_to_f16(finite ? max / 7.0f : NAN);
        const float sc = attn_f16_to_f32(h);
        scale[b0 / ATTN_Q4_BLOCK] = h;
        for (int c = 0; c < ATTN_Q4_BLOCK; c += 2) {
            int nib[2];
            for (int e = 0; e < 2; e++) {
                const float v = sc > 0.0f && isfinite(sc) ? rintf(x[b0 + c + e] / sc) : 0.0f;
                nib[e] = (int)fmaxf(-7.0f, fminf(7.0f, v)) + 8;
            }
            q[(b0 + c) / 2] = (uint8_t)(nib[0] | nib[1] << 4);
        }
    }
}

/* Checks shared by attn_quantize_kv and attn_dequantize_kv; the strides of the tensor. */
static attn_status kv_args(const attn_problem *p, char tensor, const void *src, const void *dst,
                           const void *scale, const attn_strides **s, attn_error *err)
{
    if (!p)
        return attn_fail(err, ATTN_ERR_INVALID, "problem is NULL");
    if (tensor != 'k' && tensor != 'v')
        return attn_fail(err, ATTN_ERR_INVALID, "tensor must be 'k' or 'v' (got '%c')", tensor);
    if (!src || !dst)
        return attn_fail(err, ATTN_ERR_INVALID, "%s is NULL", src ? "dst" : "src");
    const attn_status st = attn_problem_validate(p, err);
    if (st != ATTN_OK)
        return st;
    if (attn_kv_quantized(p) && !scale)
        return attn_fail(err, ATTN_ERR_INVALID, "scale is NULL (K/V are %s)",
                         attn_dtype_name(p->kv_dtype));
    *s = tensor == 'k' ? &p->k : &p->v;
    return ATTN_OK;
}

attn_status attn_quantize_kv(const attn_problem *p, char tensor, const float *src, void *dst,
                             void *scale, attn_error *err)
{
    const attn_strides *s;
    attn_status st = kv_args(p, tensor, src, dst, scale, &s, err);
    if (st != ATTN_OK)
        return st;
    const attn_dtype t = attn_kv_dtype_of(p);
    const int64_t d = p->head_dim;
    const attn_task task = {.problem = p, .k = dst, .v = dst}; /* for attn_row's offsets */
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->heads_kv; h++)
            for (int64_t j = 0; j < p->len_kv; j++) {
                const float *x = src + b * s->batch + h * s->head + j * s->seq;
                void *row = (void *)attn_row(&task, tensor, b, h, j);
                void *sc = (void *)(scale ? attn_kv_scale_row(p, tensor, scale, b, h, j) : NULL);
                if (t == ATTN_INT8)
                    quantize_row_int8(x, d, row, sc);
                else if (t == ATTN_Q4)
                    quantize_row_q4(x, d, row, sc);
                else if (!attn_convert(x, ATTN_F32, row, t, (size_t)d))
                    return attn_fail(err, ATTN_ERR_INVALID, "src and dst overlap");
            }
    return ATTN_OK;
}

attn_status attn_dequantize_kv(const attn_problem *p, char tensor, const void *src,
                               const void *scale, float *dst, attn_error *err)
{
    const attn_strides *s;
    attn_status st = kv_args(p, tensor, src, dst, scale, &s, err);
    if (st != ATTN_OK)
        return st;
    const attn_dtype t = attn_kv_dtype_of(p);
    const attn_task task = {.problem = p, .k = src, .v = src};
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->heads_kv; h++)
            for (int64_t j = 0; j < p->len_kv; j++) {
                float *x = dst + b * s->batch + h * s->head + j * s->seq;
                const void *row = attn_row(&task, tensor, b, h, j);
                if (attn_kv_quantized(p))
                    attn_dequant_row(t, row, attn_kv_scale_row(p, tensor, scale, b, h, j),
                                     p->head_dim, x);
                else if (!attn_convert(row, t, x, ATTN_F32, (size_t)p->head_dim))
                    return attn_fail(err, ATTN_ERR_INVALID, "src and dst overlap");
            }
    return ATTN_OK;
}
