/* fuzz_npy.c — the .npy reader (harness/npy.c, attn_npy_read) on any bytes as a file.
 * A refusal must say why and leave the array empty; an accepted file must hold exactly the
 * elements its shape says (every one is read back, so ASan sees a short buffer). */
#include "fuzz_file.h"
#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    fuzz_file(0, data, size, path, sizeof path);
    attn_npy_array a;
    attn_error err = {0};
    if (attn_npy_read(path, &a, &err) != ATTN_OK) {
        if (!err.message[0] || a.data || a.count)
            abort();
        return 0;
    }
    int64_t count = 1;
    for (int i = 0; i < a.ndim; i++)
        count *= a.shape[i];
    if (a.ndim < 0 || a.ndim > ATTN_NPY_MAX_DIMS || count != a.count || (count > 0) != !!a.data)
        abort();
    float sum = 0;
    for (int64_t i = 0; i < count; i++)
        sum += a.data[i];
    volatile float sink = sum; /* the reads must happen */
    (void)sink;
    attn_npy_free(&a);
    return 0;
}
