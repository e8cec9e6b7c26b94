/* shapes.c — the named problem shapes (shapes.h), one table. */
#include "shapes.h"

#include <stdio.h>
#include <string.h>

/* D3: 16 sequences of a serving batch, key lengths spaced geometrically from 100 to 16384
 * (100·163.84^(i/15)), in a fixed mixed order as a server's batch has them. */
static const int32_t d3_kv_lens[16] = {2131, 100,  16384, 547, 4206,  140, 8302, 277,
                                       1080, 11663, 197,  2994, 390, 5909, 769, 1517};

const attn_named_shape attn_named_shapes[] = {
    /* {name, set, kind, B, Hq, Hkv, Lq, Lk, d, causal,
     *  what, kv_lens (NULL: every sequence has Lk keys)} */
    {"P1",             "reference",    "prefill", 1, 4,  4,  2048, 2048, 128, false,
     "prefill", NULL},
    {"P2",             "reference",    "prefill", 1, 8,  8,  2048, 2048, 64,  false,
     "prefill, small head dim", NULL},
    {"P3",             "reference",    "causal",  1, 4,  4,  2048, 2048, 128, true,
     "P1, causal: prefill with a causal mask", NULL},
    {"D1",             "reference",    "decode",  1, 32, 32, 1,    8192, 128, false,
     "decode: memory-bound, K/V streamed once", NULL},
    /* More decode shapes of scripts/bench-kernels (--shapes D2,D4). */
    {"D2",             "decode",       "decode",  1, 32, 8,  1,    32768, 128, false,
     "decode, GQA, long context", NULL},
    {"D3",             "decode",       "decode",  16, 32, 8, 1,    16384, 128, false,
     "batched ragged decode: 16 sequences of 100 to 16384 keys (kv_lens)", d3_kv_lens},
    {"D4",             "decode",       "decode",  1, 32, 32, 4,    8192, 128, true,
     "speculative verification of 4 draft tokens", NULL},
    /* attnbench-gbench's standard set (the same kinds as --quick, sized for tracking). */
    {"gbench-prefill", "gbench",       "prefill", 1, 8,  8,  1024, 1024, 64,  false,
     "gbench: prefill", NULL},
    {"gbench-causal",  "gbench",       "causal",  1, 8,  8,  1024, 1024, 64,  true,
     "gbench: the prefill, causal", NULL},
    {"gbench-decode",  "gbench",       "decode",  4, 8,  8,  1,    2048, 128, false,
     "gbench: a decode step of 4 sequences against a long KV cache", NULL},
    {"gbench-gqa",     "gbench",       "gqa",     1, 32, 8,  512,  512,  128, false,
     "gbench: grouped-query attention, 4 query heads per KV head", NULL},
    /* attnbench-gbench --quick: small enough for a CI job (the whole matrix in seconds). */
    {"quick-prefill",  "gbench-quick", "prefill", 1, 4,  4,  128,  128,  64,  false,
     "gbench --quick: prefill", NULL},
    {"quick-causal",   "gbench-quick", "causal",  1, 4,  4,  128,  128,  64,  true,
     "gbench --quick: the prefill, causal", NULL},
    {"quick-decode",   "gbench-quick", "decode",  1, 8,  8,  1,    1024, 64,  false,
     "gbench --quick: a decode step", NULL},
    {"quick-gqa",      "gbench-quick", "gqa",     1, 8,  2,  128,  128,  64,  false,
     "gbench --quick: grouped-query attention", NULL},
};
const int attn_named_shape_count = (int)(sizeof attn_named_shapes / sizeof attn_named_shapes[0]);

const attn_named_shape *attn_named_shape_find(const char *name)
{
    for (int i = 0; name && i < attn_named_shape_count; i++)
        if (!strcmp(attn_named_shapes[i].name, name))
            return &attn_named_shapes[i];
    return NULL;
}

void attn_named_shape_format(const attn_named_shape *s, char *buf, size_t len)
{
    char heads[48], lens[48];
    if (s->heads_kv == s->heads_q)
        snprintf(heads, sizeof heads, "H=%lld", (long long)s->heads_q);
    else
        snprintf(heads, sizeof heads, "Hq=%lld Hkv=%lld", (long long)s->heads_q,
                 (long long)s->heads_kv);
    if (s->len_q == s->len_kv)
        snprintf(lens, sizeof lens, "L=%lld", (long long)s->len_q);
    else
        snprintf(lens, sizeof lens, "Lq=%lld Lk=%lld", (long long)s->len_q, (long long)s->len_kv);
    char kv_lens[48] = "";
    if (s->kv_lens) {
        int32_t lo = s->kv_lens[0], hi = s->kv_lens[0];
        for (int64_t b = 1; b < s->batch; b++) {
            lo = s->kv_lens[b] < lo ? s->kv_lens[b] : lo;
            hi = s->kv_lens[b] > hi ? s->kv_lens[b] : hi;
        }
        snprintf(kv_lens, sizeof kv_lens, " kv_lens=%d..%d", (int)lo, (int)hi);
    }
    snprintf(buf, len, "B=%lld %s %s d=%lld%s%s", (long long)s->batch, heads, lens,
             (long long)s->head_dim, s->causal ? " causal" : "", kv_lens);
}

void attn_named_shape_problem(const attn_named_shape *s, attn_problem *p)
{
    attn_problem_init(p, s->batch, s->heads_q, s->heads_kv, s->len_q, s->len_kv, s->head_dim);
    p->causal = s->causal;
    p->kv_lens = s->kv_lens;
}
