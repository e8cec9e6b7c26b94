/* shapes.h — the named problem shapes of the tools, defined once (shapes.c): the reference
 * shapes P1, P2, P3, D1 of scripts/bench-kernels, scripts/tuner-check and `attnbench info`, and
 * attnbench-gbench's standard and quick sets. `attnbench run|tune|plan --shape NAME` starts from
 * one; `attnbench list --shapes` prints them (the scripts read them from there). */
#ifndef ATTN_SHAPES_H
#define ATTN_SHAPES_H

#include "attn.h"

typedef struct attn_named_shape {
    const char *name; /* "P1": what --shape takes */
    const char *set;  /* "reference", "decode", "gbench" or "gbench-quick" */
    const char *kind; /* "prefill", "causal", "decode", "gqa" */
    int64_t batch, heads_q, heads_kv, len_q, len_kv, head_dim;
    bool causal;
    const char *what; /* what the shape stands for, one line */
    /* Key length of each of the batch's sequences (batch values, each <= len_kv), or NULL:
     * every sequence has len_kv keys. */
    const int32_t *kv_lens;
} attn_named_shape;

extern const attn_named_shape attn_named_shapes[];
extern const int attn_named_shape_count;

/* The shape of that name, or NULL. */
const attn_named_shape *attn_named_shape_find(const char *name);
/* Its sizes in words: "B=1 H=4 L=2048 d=128", "B=1 H=32 Lq=1 Lk=8192 d=128",
 * "B=1 Hq=32 Hkv=8 L=512 d=128", with " causal" after a causal one and
 * " kv_lens=100..16384" (the shortest and longest) after one with key lengths. */
void attn_named_shape_format(const attn_named_shape *s, char *buf, size_t len);
/* The problem of the shape: contiguous [B,H,L,d], float32, default scale, the shape's
 * kv_lens (pointing into the table). */
void attn_named_shape_problem(const attn_named_shape *s, attn_problem *p);

#endif /* ATTN_SHAPES_H */
