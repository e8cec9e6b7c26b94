/* fuzz_kv_lens.c — the --kv-lens list parser (cli_parse_kv_lens, harness/cli.c), then the
 * problem it makes: the first byte gives the batch (1 to 64), the rest is the text. Accepted
 * lists must have exactly `batch` values in [0, INT32_MAX]; validation must refuse a length
 * past Lk; a valid problem runs through every variant this CPU supports. */
#include "attn.h"
#include "cli.h"

#include <string.h>

enum { LEN_Q = 3, LEN_KV = 17, DIM = 4, MAX_BATCH = 64 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const int64_t batch = 1 + data[0] % MAX_BATCH;
    char *text = malloc(size);
    if (!text)
        abort();
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    int32_t *lens;
    const bool ok = cli_parse_kv_lens("fuzz", text, batch, &lens);
    free(text);
    if (!ok) {
        if (lens)
            abort();
        return 0;
    }
    bool past_end = false;
    for (int64_t b = 0; b < batch; b++) {
        if (lens[b] < 0)
            abort();
        past_end |= lens[b] > LEN_KV;
    }
    attn_problem p;
    attn_problem_init(&p, batch, 1, 1, LEN_Q, LEN_KV, DIM);
    p.kv_lens = lens;
    attn_error err;
    const attn_status st = attn_problem_validate(&p, &err);
    if ((st == ATTN_OK) == past_end)
        abort();
    static float q[MAX_BATCH * LEN_Q * DIM], k[MAX_BATCH * LEN_KV * DIM],
        v[MAX_BATCH * LEN_KV * DIM], o[MAX_BATCH * LEN_Q * DIM];
    for (int i = 0; st == ATTN_OK && i < attn_variant_count(); i++) {
        attn_variant_info info;
        attn_params params;
        if (!attn_variant_get(i, &info) || !info.supported ||
            attn_variant_default_params(info.name, &p, &params, &err) != ATTN_OK)
            continue;
        params.threads = 1;
        attn_run_variant(info.name, &p, &params, q, k, v, o, &err); /* may refuse, not crash */
    }
    free(lens);
    return 0;
}
