/* test_kv_scales.c — quantized V scales that the integer (VNNI) paths cannot take as weights:
 * a negative scale (the q4 V weights are unsigned bytes) and a NaN or infinite one (not an
 * integer at all). Every variant that reads the quantized type here must give naive's result:
 * not finite in the same places, the rest within 1e-5 of the largest. head_dim 128 and one query
 * row or a GQA group of 4 (avx512's VNNI one-row and tile paths when the CPU has VNNI), int8
 * and q4, the odd scale on a key in the middle of a block of 16. */
#include "attn.h"
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LEN_KV = 40, HEAD_DIM = 128, ODD_KEY = 21 };

typedef enum { SCALE_NEGATIVE, SCALE_NAN, SCALE_INF, SCALE_KINDS } odd_scale;
static const char *const scale_names[SCALE_KINDS] = {"negative", "NaN", "infinite"};

/* Key ODD_KEY's V scale (int8: its row's; q4: its second block's) made `kind`. */
static void spoil_scale(const attn_problem *p, void *v_scale, odd_scale kind)
{
    if (p->kv_dtype == ATTN_INT8) {
        float *s = (float *)v_scale + ODD_KEY * p->v_scale_strides.seq;
        *s = kind == SCALE_NEGATIVE ? -*s : kind == SCALE_NAN ? NAN : INFINITY;
        return;
    }
    uint16_t *s = (uint16_t *)v_scale + ODD_KEY * p->v_scale_strides.seq + 1;
    *s = kind == SCALE_NEGATIVE ? (uint16_t)(*s | 0x8000u) : kind == SCALE_NAN ? 0x7e00 : 0x7c00;
}

/* o against naive's ref (n floats): not finite in the same places (an infinite scale gives
 * infinities or NaNs, depending on the order of the sums), the rest within 1e-5 of ref's
 * largest. */
static bool agrees(const float *o, const float *ref, size_t n, double *worst)
{
    double top = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(ref[i]))
            top = fmax(top, fabs(ref[i]));
    bool ok = true;
    *worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ref[i]) || !isfinite(o[i])) {
            if (isfinite(ref[i]) || isfinite(o[i]))
                printf("  [%zu] %g, naive %g\n", i, o[i], ref[i]);
            ok = ok && !isfinite(ref[i]) && !isfinite(o[i]);
            continue;
        }
        const double e = fabs((double)o[i] - ref[i]);
        *worst = fmax(*worst, e);
        ok = ok && e <= 1e-5 * top;
    }
    return ok;
}

static void run_case(attn_dtype kv, int64_t heads_q, odd_scale kind)
{
    attn_problem p;
    attn_problem_init(&p, 1, heads_q, 1, 1, LEN_KV, HEAD_DIM);
    attn_problem_set_kv_dtype(&p, kv);
    int64_t n[4];
    const char names[4] = {'q', 'k', 'v', 'o'};
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(attn_tensor_extent(&p, names[i], &n[i], NULL), ATTN_OK);
    float *q = check_floats((size_t)n[0], 11), *k = check_floats((size_t)n[1], 12),
          *v = check_floats((size_t)n[2], 13);
    const size_t scales = (size_t)LEN_KV * (kv == ATTN_Q4 ? HEAD_DIM / 32 : 1);
    const size_t ssize = kv == ATTN_Q4 ? 2 : 4;
    void *kq = malloc((size_t)n[1]), *vq = malloc((size_t)n[2]);
    void *ks = malloc(scales * ssize), *vs = malloc(scales * ssize);
    float *ref = malloc((size_t)n[3] * sizeof *ref), *o = malloc((size_t)n[3] * sizeof *o);
    if (!kq || !vq || !ks || !vs || !ref || !o) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    attn_error err;
    CHECK_EQ_INT(attn_quantize_kv(&p, 'k', k, kq, ks, &err), ATTN_OK);
    CHECK_EQ_INT(attn_quantize_kv(&p, 'v', v, vq, vs, &err), ATTN_OK);
    spoil_scale(&p, vs, kind);
    p.k_scale = ks;
    p.v_scale = vs;
    attn_params params;
    CHECK_EQ_INT(attn_variant_default_params("naive", &p, &params, NULL), ATTN_OK);
    params.threads = 1;
    CHECK_EQ_INT(attn_run_variant("naive", &p, &params, q, kq, vq, ref, &err), ATTN_OK);
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        if (!attn_variant_get(i, &info) || !strcmp(info.name, "naive"))
            continue;
        const attn_status accepts = attn_variant_accepts(info.name, &p, NULL);
        if (!(info.kv_dtypes & 1u << kv)) { /* refused, as attn_run_variant refuses it */
            CHECK_MSG(accepts == ATTN_ERR_UNSUPPORTED, "%s accepts %s K/V", info.name,
                      attn_dtype_name(kv));
            continue;
        }
        if (accepts != ATTN_OK) /* not on this CPU */
            continue;
        CHECK_EQ_INT(attn_variant_default_params(info.name, &p, &params, NULL), ATTN_OK);
        params.threads = 1;
        memset(o, 0, (size_t)n[3] * sizeof *o);
        const attn_status st = attn_run_variant(info.name, &p, &params, q, kq, vq, o, &err);
        CHECK_MSG(st == ATTN_OK, "%s: %s", info.name, err.message);
        double worst;
        const bool ok = agrees(o, ref, (size_t)n[3], &worst);
        CHECK_MSG(ok, "%s, %s K/V, Hq=%lld, a %s V scale: differs from naive (worst %.3g)",
                  info.name, attn_dtype_name(kv), (long long)heads_q, scale_names[kind], worst);
    }
    free(q);
    free(k);
    free(v);
    free(kq);
    free(vq);
    free(ks);
    free(vs);
    free(ref);
    free(o);
}

int main(void)
{
    const attn_dtype kinds[] = {ATTN_INT8, ATTN_Q4};
    for (int t = 0; t < 2; t++)
        for (int64_t hq = 1; hq <= 4; hq += 3)
            for (int s = 0; s < SCALE_KINDS; s++)
                run_case(kinds[t], hq, (odd_scale)s);
    return check_summary("test_kv_scales");
}
