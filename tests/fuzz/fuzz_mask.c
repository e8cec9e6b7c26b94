/* fuzz_mask.c — the mask as `run --mask FILE.npy` loads it: the .npy reader, the [Lq, Lk]
 * shape, then the problem with that additive mask through every variant this CPU supports
 * (any float: NaN, ±inf, huge), under ASan/UBSan. Masks of up to MAX_SCORES entries run. */
#include "attn.h"
#include "fuzz_file.h"
#include "npy.h"

enum { DIM = 4, MAX_SCORES = 4096 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    fuzz_file(0, data, size, path, sizeof path);
    attn_npy_array a;
    attn_error err;
    if (attn_npy_read(path, &a, &err) != ATTN_OK)
        return 0;
    if (a.ndim != 2 || a.count == 0 || a.count > MAX_SCORES) {
        attn_npy_free(&a);
        return 0;
    }
    const int64_t len_q = a.shape[0], len_kv = a.shape[1];
    attn_problem p;
    attn_problem_init(&p, 1, 2, 1, len_q, len_kv, DIM);
    p.mask = a.data;
    p.causal = size & 1;
    if (attn_problem_validate(&p, &err) != ATTN_OK)
        abort(); /* a mask of the problem's shape is always valid */
    static float q[2 * MAX_SCORES * DIM], kv[MAX_SCORES * DIM], o[2 * MAX_SCORES * DIM];
    for (int64_t i = 0; i < 2 * len_q * DIM; i++)
        q[i] = (float)(i % 7) - 3;
    for (int64_t i = 0; i < len_kv * DIM; i++)
        kv[i] = (float)(i % 5) - 2;
    for (int i = 0; i < attn_variant_count(); i++) {
        attn_variant_info info;
        attn_params params;
        if (!attn_variant_get(i, &info) || !info.supported ||
            attn_variant_default_params(info.name, &p, &params, &err) != ATTN_OK)
            continue;
        params.threads = 1;
        attn_run_variant(info.name, &p, &params, q, kv, kv, o, &err); /* may refuse */
    }
    attn_npy_free(&a);
    return 0;
}
