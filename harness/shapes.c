/* shapes.c — the named problem shapes (shapes.h), one table. */
#include "shapes.h"

#include <stdio.h>
#include <string.h>

const attn_named_shape attn_named_shapes[] = {
    /* {name, set, kind, B, Hq, Hkv, Lq, Lk, d, causal,
     *  what} */
    {"P1",             "reference",    "prefill", 1, 4,  4,  2048, 2048, 128, false,
     "prefill"},
    {"P2",             "reference",    "prefill", 1, 8,  8,  2048, 2048, 64,  false,
     "prefill, small head dim"},
    {"P3",             "reference",    "causal",  1, 4,  4,  2048, 2048, 128, true,
     "P1, causal: prefill with a causal mask"},
    {"D1",             "reference",    "decode",  1, 32, 32, 1,    8192, 128, false,
     "decode: memory-bound, K/V streamed once"},
    /* More decode shapes of scripts/bench-kernels (--shapes D2,D4). */
    {"D2",             "decode",       "decode",  1, 32, 8,  1,    32768, 128, false,
     "decode, GQA, long context"},
    {"D4",             "decode",       "decode",  1, 32, 32, 4,    8192, 128, true,
     "speculative verification of 4 draft tokens"},
    /* attnbench-gbench's standard set (the same kinds as --quick, sized for tracking). */
    {"gbench-prefill", "gbench",       "prefill", 1, 8,  8,  1024, 1024, 64,  false,
     "gbench: prefill"},
    {"gbench-causal",  "gbench",       "causal",  1, 8,  8,  1024, 1024, 64,  true,
     "gbench: the prefill, causal"},
    {"gbench-decode",  "gbench",       "decode",  4, 8,  8,  1,    2048, 128, false,
     "gbench: a decode step of 4 sequences against a long KV cache"},
    {"gbench-gqa",     "gbench",       "gqa",     1, 32, 8,  512,  512,  128, false,
     "gbench: grouped-query attention, 4 query heads per KV head"},
    /* attnbench-gbench --quick: small enough for a CI job (the whole matrix in seconds). */
    {"quick-prefill",  "gbench-quick", "prefill", 1, 4,  4,  128,  128,  64,  false,
     "gbench --quick: prefill"},
    {"quick-causal",   "gbench-quick", "causal",  1, 4,  4,  128,  128,  64,  true,
     "gbench --quick: the prefill, causal"},
    {"quick-decode",   "gbench-quick", "decode",  1, 8,  8,  1,    1024, 64,  false,
     "gbench --quick: a decode step"},
    {"quick-gqa",      "gbench-quick", "gqa",     1, 8,  2,  128,  128,  64,  false,
     "gbench --quick: grouped-query attention"},
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
    snprintf(buf, len, "B=%lld %s %s d=%lld%s", (long long)s->batch, heads, lens,
             (long long)s->head_dim, s->causal ? " causal" : "");
}

void attn_named_shape_problem(const attn_named_shape *s, attn_problem *p)
{
    attn_problem_init(p, s->batch, s->heads_q, s->heads_kv, s->len_q, s->len_kv, s->head_dim);
    p->causal = s->causal;
}
