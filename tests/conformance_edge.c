/* conformance_edge.c — the named edge cases, a table: rows without keys (causal Lq > Lk,
 * kv_lens = 0, a -inf mask row), logits of ±1e4, NaN in Q, K, V and the mask (reaching only the
 * rows that see it), long decode rows, a single key. Each is built in float32 (or by its
 * build_half for the half types), checked to show what it is built to test, and run on one
 * thread and on four. */
#include "conformance.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* What a named case's oracle output must show, so a mistake in building it is seen (in every
 * input type: the checks read the reference on the rounded inputs). */
enum expect {
    EXPECT_ANY,
    EXPECT_EMPTY_ROWS,
    EXPECT_NAN_AND_FINITE_ROWS,
    EXPECT_NO_NAN,
    EXPECT_LARGE_LOGITS, /* no NaN, and logits of magnitude S >= LARGE_LOGIT */
};
#define LARGE_LOGIT 5.0e3

/* A case is built in float32 and then rounded to each input type; build_half, when set, builds
 * it instead for the half types, where the float32 construction would not survive rounding. */
typedef struct edge_case {
    const char *name;
    enum expect expect;
    void (*build)(test_case *c, rng *r);
    void (*build_half)(test_case *c, rng *r);
} edge_case;

static void edge_causal_lq_gt_lk(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 2, 37, 7, 17); /* rows 0..29 see no key */
    c->p.causal = true;
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_kv_lens_zero(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 3, 4, 4, 31, 37, 8);
    case_set_kv_lens(c, (const int32_t[]){0, 5, 0});
    case_set_layout(c, LAYOUT_PADDED, false, r);
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_mask_row_all_inf(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 8, 2, 31, 64, 17);
    case_set_mask(c, 0, -2.0f, 2.0f, 0.2, 0.3, r);
    for (int64_t j = 0; j < c->p.len_kv; j++) /* row 0 fully masked for certain */
        c->mask[j] = -INFINITY;
    case_alloc_inputs(c, 1.0f, r);
}

/* Logits near +1e4 with spread O(1) among keys (so several keys share the weight): q and the
 * common direction w of the keys are positive, keys differ by a small perturbation. */
static void large_logits(test_case *c, rng *r, float sign)
{
    case_begin(c, rng_next(r), 1, 2, 1, 7, 64, 16);
    c->p.scale = 1.0f;
    case_alloc_inputs(c, 1.0f, r);
    const attn_problem *p = &c->p;
    float w[16];
    for (int e = 0; e < 16; e++)
        w[e] = rng_float(r, 0.5f, 1.0f);
    for (int64_t h = 0; h < p->heads_q; h++)
        for (int64_t i = 0; i < p->len_q; i++) {
            float *q = tensor_row(c->q, &p->q, 0, h, i);
            for (int e = 0; e < 16; e++)
                q[e] = sign * rng_float(r, 50.0f, 100.0f);
        }
    for (int64_t j = 0; j < p->len_kv; j++) {
        float *k = tensor_row(c->k, &p->k, 0, 0, j);
        for (int e = 0; e < 16; e++)
            k[e] = 10.0f * w[e] + rng_float(r, -0.002f, 0.002f);
    }
}

static void edge_large_positive_logits(test_case *c, rng *r) { large_logits(c, r, 1.0f); }
static void edge_large_negative_logits(test_case *c, rng *r) { large_logits(c, r, -1.0f); }

/* The same logits for half inputs. A perturbation of 0.002 on keys of ~10 is below half a bf16
 * or f16 step (0.0625, 0.0078 there): rounded, every key would be the same. Here the keys share
 * elements 0..14 exactly, which give the ~1e4 common part (q ~ 75, k ~ 7.5: all representable
 * in f16, whose largest value is 65504), and differ in element 15 alone, where q is ~1 and k is
 * in [-2, 2]: a spread of O(1) that any rounding keeps. */
static void large_logits_half(test_case *c, rng *r, float sign)
{
    case_begin(c, rng_next(r), 1, 2, 1, 7, 64, 16);
    c->p.scale = 1.0f;
    case_alloc_inputs(c, 1.0f, r);
    const attn_problem *p = &c->p;
    float w[15];
    for (int e = 0; e < 15; e++)
        w[e] = 10.0f * rng_float(r, 0.5f, 1.0f);
    for (int64_t h = 0; h < p->heads_q; h++)
        for (int64_t i = 0; i < p->len_q; i++) {
            float *q = tensor_row(c->q, &p->q, 0, h, i);
            for (int e = 0; e < 15; e++)
                q[e] = sign * rng_float(r, 50.0f, 100.0f);
            q[15] = rng_float(r, 0.5f, 1.0f);
        }
    for (int64_t j = 0; j < p->len_kv; j++) {
        float *k = tensor_row(c->k, &p->k, 0, 0, j);
        memcpy(k, w, sizeof w);
        k[15] = rng_float(r, -2.0f, 2.0f);
    }
}

static void edge_large_positive_logits_half(test_case *c, rng *r)
{
    large_logits_half(c, r, 1.0f);
}
static void edge_large_negative_logits_half(test_case *c, rng *r)
{
    large_logits_half(c, r, -1.0f);
}

static void edge_large_scale(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 2, 31, 37, 8);
    c->p.scale = 5000.0f; /* |q·k| up to ~2 with these inputs: logits up to ~1e4 */
    c->p.causal = true;
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_large_mask(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 4, 4, 31, 64, 17);
    case_set_mask(c, 0, -2.0f, 2.0f, 0.05, 0.0, r);
    for (int64_t i = 0; i < c->p.len_q; i++)
        for (int64_t j = 0; j < c->p.len_kv; j++) {
            float *m = &c->mask[i * c->p.len_kv + j];
            if (*m != -INFINITY) /* every row at +1e4 or -1e4 (finite: not masked) */
                *m += (i % 2 ? 1.0e4f : -1.0e4f) * ((j % 3) ? 1.0f : 0.9999f);
        }
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_nan_in_k(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 2, 1, 31, 31, 17);
    c->p.causal = true; /* rows i < 10 do not see key 10 */
    case_alloc_inputs(c, 1.0f, r);
    tensor_row(c->k, &c->p.k, 0, 0, 10)[3] = NAN;
}

static void edge_nan_in_q(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 2, 7, 31, 8);
    case_alloc_inputs(c, 1.0f, r);
    tensor_row(c->q, &c->p.q, 1, 3, 5)[0] = NAN;
}

static void edge_nan_in_v(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 4, 2, 31, 31, 17);
    c->p.causal = true;
    attn_problem_set_layout_blhd(&c->p);
    c->layout = LAYOUT_BLHD;
    case_alloc_inputs(c, 1.0f, r);
    tensor_row(c->v, &c->p.v, 0, 1, 20)[16] = NAN;
}

/* NaN in keys no row may attend to: beyond kv_lens and behind a -inf mask column. */
static void edge_nan_in_excluded_keys(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 2, 2, 7, 37, 17);
    case_set_kv_lens(c, (const int32_t[]){30, 37});
    case_set_mask(c, 0, -1.0f, 1.0f, 0.0, 0.0, r);
    for (int64_t i = 0; i < c->p.len_q; i++)
        c->mask[i * c->p.len_kv + 12] = -INFINITY;
    case_alloc_inputs(c, 1.0f, r);
    for (int64_t h = 0; h < 2; h++) {
        tensor_row(c->k, &c->p.k, 0, h, 33)[1] = NAN; /* batch 0: kv_lens 30 */
        tensor_row(c->v, &c->p.v, 0, h, 35)[2] = NAN;
        tensor_row(c->k, &c->p.k, 1, h, 12)[0] = NAN; /* masked column */
        tensor_row(c->v, &c->p.v, 1, h, 12)[5] = NAN;
    }
}

/* A NaN in the additive mask is a NaN in that score, as one from Q or K: it reaches its row
 * (in every batch and head, the mask being broadcast) and nothing else; a NaN at a key the
 * row may not see (causal) reaches nothing. The mask rows are padded (stride 43). */
static void edge_nan_in_mask(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 2, 31, 40, 17);
    c->p.causal = true; /* row i sees keys j <= i + 9 */
    case_set_mask(c, 43, -2.0f, 2.0f, 0.05, 0.0, r);
    c->mask[5 * 43 + 3] = NAN;   /* row 5 sees key 3 */
    c->mask[20 * 43 + 35] = NAN; /* row 20 sees keys up to 29 only */
    case_alloc_inputs(c, 1.0f, r);
}

/* The same in decode rows (Lq = 1, the decode paths and, on several threads, split keys): the
 * batch whose kv_lens reaches the NaN column is NaN, the other is not. */
static void edge_nan_in_mask_decode(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 8, 2, 1, 1500, 64);
    case_set_kv_lens(c, (const int32_t[]){1500, 700});
    case_set_mask(c, 0, -2.0f, 2.0f, 0.0, 0.0, r);
    c->mask[900] = NAN;
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_decode_long(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 8, 2, 1, 4099, 128);
    c->p.causal = true;
    case_set_kv_lens(c, (const int32_t[]){4099, 1031});
    case_alloc_inputs(c, 1.0f, r);
}

/* Decode rows of different key limits in one group (Lq = 4 causal, 2 heads per kv head: the
 * decode paths' row tiles): a NaN in the V row of the last key reaches only the last query row
 * of each head of its group, not the rows that stop one key short. */
static void edge_nan_in_v_decode_causal(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 4, 2, 4, 37, 17);
    c->p.causal = true;
    case_alloc_inputs(c, 1.0f, r);
    tensor_row(c->v, &c->p.v, 0, 1, 36)[3] = NAN;
}

/* GQA decode tiles (rows of a group sharing each K and V load): 8 query heads per kv head (two
 * full tiles), odd head dim and key count (the vector and key-step tails), padded strides, and
 * per-batch key lengths, one of which ends inside a key step. */
static void edge_gqa_decode(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 16, 2, 1, 45, 33);
    case_set_layout(c, LAYOUT_PADDED, false, r);
    case_set_kv_lens(c, (const int32_t[]){45, 19});
    case_alloc_inputs(c, 1.0f, r);
}

/* MQA decode with a group of 6 rows (a tile of 4 and one of 2, or 3 + 3) and 2 query rows:
 * causal, so the rows of a tile see different keys, with a NaN in the V row of the last key
 * that only the last query row of each head sees. */
static void edge_mqa_decode_causal(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 3, 1, 2, 71, 255);
    c->p.causal = true;
    case_set_layout(c, LAYOUT_BLHD, false, r);
    case_alloc_inputs(c, 1.0f, r);
    tensor_row(c->v, &c->p.v, 0, 0, 70)[200] = NAN;
}

/* GQA decode against a single key (the key steps past it read nothing). */
static void edge_gqa_decode_single_key(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 12, 3, 1, 1, 7);
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_single_key(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 2, 37, 1, 17);
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_single_key_causal(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 6, 1, 37, 1, 80); /* only the last row sees the key */
    c->p.causal = true;
    case_set_layout(c, LAYOUT_BLHD, false, r);
    case_alloc_inputs(c, 1.0f, r);
}

/* Sliding window of 0: each row sees only its own position; 1: itself and the key before. */
static void edge_window_zero(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 2, 37, 37, 17);
    c->p.window_left = 0;
    c->p.window_right = 0;
    case_alloc_inputs(c, 1.0f, r);
}

static void edge_window_one_causal(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 6, 2, 64, 101, 64);
    c->p.causal = true;
    c->p.window_left = 1;
    case_set_layout(c, LAYOUT_BLHD, false, r);
    case_alloc_inputs(c, 1.0f, r);
}

/* A window wider than Lk on both sides: the same as none. */
static void edge_window_beyond_lk(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 8, 2, 31, 127, 80);
    c->p.window_left = 1000;
    c->p.window_right = 5000;
    case_alloc_inputs(c, 1.0f, r);
}

/* Keys past kv_lens and a causal window: rows whose window lies beyond the batch's keys see
 * none and give zeros. */
static void edge_window_past_kv_lens(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 4, 37, 37, 8);
    c->p.causal = true;
    c->p.window_left = 3;
    case_set_kv_lens(c, (const int32_t[]){5, 37});
    case_alloc_inputs(c, 1.0f, r);
}

/* A causal window over a long prefill, Lq < Lk (chunked prefill): the block skipping at both
 * ends of the band, several key blocks wide. */
static void edge_window_long(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 2, 1, 300, 1100, 64);
    c->p.causal = true;
    c->p.window_left = 257;
    case_alloc_inputs(c, 1.0f, r);
}

/* ALiBi with the standard slopes of 6 heads (not a power of two), causal. */
static void edge_alibi_six_heads(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 6, 3, 127, 300, 64);
    c->p.causal = true;
    case_set_alibi(c, true, r);
    case_alloc_inputs(c, 1.0f, r);
}

/* Soft cap on logits of ~1e4 (inputs of 40): they saturate at ±c, no NaN, no overflow. */
static void edge_softcap_huge_logits(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 4, 2, 37, 64, 64);
    c->p.scale = 1.0f;
    c->p.softcap = 30.0f;
    case_alloc_inputs(c, 12.0f, r);
}

/* A tiny soft cap: every logit within ±0.01, the weights nearly uniform. */
static void edge_softcap_tiny(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 4, 31, 101, 17);
    c->p.softcap = 0.01f;
    c->p.causal = true;
    case_alloc_inputs(c, 1.0f, r);
}

/* Sinks of +1e4 (the sink takes all the weight: zeros) and -1e4 (no effect), by head. */
static void edge_sinks_extreme(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 4, 2, 37, 64, 17);
    c->p.causal = true;
    case_set_sinks(c, 0.0f, 0.0f, r);
    const float values[4] = {1e4f, -1e4f, 2.0f, -2.0f};
    memcpy(c->sinks, values, sizeof values);
    case_alloc_inputs(c, 1.0f, r);
}

/* Decode with every option at once and a long cache: the decode paths and the key split
 * (whose merge adds the sink). */
static void edge_decode_all_options(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 8, 2, 1, 4099, 128);
    c->p.causal = true;
    c->p.window_left = 2000;
    c->p.softcap = 5.0f;
    case_set_kv_lens(c, (const int32_t[]){4099, 1031});
    case_set_alibi(c, true, r);
    case_set_sinks(c, -1.0f, 3.0f, r);
    case_alloc_inputs(c, 1.0f, r);
}

/* Cross attention (Lq > Lk) with a window on both sides, GQA, sinks: rows above the keys see
 * nothing. */
static void edge_window_cross_sinks(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 8, 2, 64, 31, 17);
    c->p.window_left = 4;
    c->p.window_right = 2;
    case_set_sinks(c, -1.0f, 1.0f, r);
    case_set_layout(c, LAYOUT_PADDED, false, r);
    case_alloc_inputs(c, 1.0f, r);
}

/* Paged K/V: every table entry names one page (a table of repeated pages is legal), GQA decode
 * over 300 keys in pages of 16. */
static void edge_paged_one_page(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 8, 2, 1, 300, 64);
    case_set_pages(c, 16, true, r);
    const int64_t row = attn_block_table_stride(&c->p), used = (300 + 15) / 16;
    for (int64_t b = 0; b < 2; b++)
        for (int64_t k = 0; k < used; k++)
            c->block_table[b * row + k] = (int32_t)(c->p.num_pages - 1);
    case_alloc_inputs(c, 1.0f, r);
}

/* Paged decode over a long cache with every option: pages of 64 shuffled, kv_lens ending inside
 * a page, the key split of four threads crossing page edges. */
static void edge_paged_decode_all_options(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 8, 2, 1, 4099, 128);
    c->p.causal = true;
    c->p.window_left = 2000;
    c->p.softcap = 5.0f;
    case_set_kv_lens(c, (const int32_t[]){4099, 1031});
    case_set_alibi(c, true, r);
    case_set_sinks(c, -1.0f, 3.0f, r);
    case_set_pages(c, 64, false, r);
    case_alloc_inputs(c, 1.0f, r);
}

/* Paged prefill, causal, GQA, BLHD pool: one page of 256 holds all 100 keys (the rows past
 * them NaN, never read). */
static void edge_paged_page_beyond_lk(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 6, 2, 100, 100, 80);
    c->p.causal = true;
    c->layout = LAYOUT_BLHD;
    case_set_pages(c, 256, false, r);
    case_alloc_inputs(c, 1.0f, r);
}

/* Paged prefill in pages of one key, shuffled, padded pool, a window: every key block crosses
 * page edges at every key. */
static void edge_paged_single_key_pages(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 1, 4, 2, 67, 67, 33);
    c->p.window_left = 9;
    c->p.window_right = 3;
    c->layout = LAYOUT_PADDED;
    case_set_pages(c, 1, false, r);
    case_alloc_inputs(c, 1.0f, r);
}

/* A NaN in a K row of a page that a sequence names past its kv_lens reaches nothing. */
static void edge_paged_nan_past_kv_lens(test_case *c, rng *r)
{
    case_begin(c, rng_next(r), 2, 4, 2, 5, 90, 17);
    case_set_kv_lens(c, (const int32_t[]){90, 40});
    case_set_pages(c, 16, false, r);
    case_alloc_inputs(c, 1.0f, r);
    const attn_problem *p = &c->p;
    c->k[attn_kv_offset(p, &p->k, 1, 1, 50) + 3] = NAN;
    c->v[attn_kv_offset(p, &p->v, 1, 0, 41)] = NAN;
}

static const edge_case edge_cases[] = {
    {"all keys masked: causal with Lq > Lk", EXPECT_EMPTY_ROWS, edge_causal_lq_gt_lk, NULL},
    {"all keys masked: kv_lens = 0", EXPECT_EMPTY_ROWS, edge_kv_lens_zero, NULL},
    {"all keys masked: -inf mask row", EXPECT_EMPTY_ROWS, edge_mask_row_all_inf, NULL},
    {"large logits: +1e4 from large inputs", EXPECT_LARGE_LOGITS, edge_large_positive_logits,
     edge_large_positive_logits_half},
    {"large logits: -1e4 from large inputs", EXPECT_LARGE_LOGITS, edge_large_negative_logits,
     edge_large_negative_logits_half},
    {"large logits: scale 5000", EXPECT_LARGE_LOGITS, edge_large_scale, NULL},
    {"large logits: mask values +-1e4", EXPECT_LARGE_LOGITS, edge_large_mask, NULL},
    {"NaN in one K row reaches only rows that see it", EXPECT_NAN_AND_FINITE_ROWS, edge_nan_in_k,
     NULL},
    {"NaN in one Q row reaches only that row", EXPECT_NAN_AND_FINITE_ROWS, edge_nan_in_q, NULL},
    {"NaN in one V element reaches only rows that see it", EXPECT_NAN_AND_FINITE_ROWS,
     edge_nan_in_v, NULL},
    {"NaN in excluded keys (kv_lens, -inf mask) reaches nothing", EXPECT_NO_NAN,
     edge_nan_in_excluded_keys, NULL},
    {"NaN in one mask entry reaches only its row", EXPECT_NAN_AND_FINITE_ROWS, edge_nan_in_mask,
     NULL},
    {"NaN in the mask of decode rows reaches only the batch that sees it",
     EXPECT_NAN_AND_FINITE_ROWS, edge_nan_in_mask_decode, NULL},
    {"decode: Lq = 1, Lk = 4099", EXPECT_ANY, edge_decode_long, NULL},
    {"NaN in V of the last key, causal decode rows (Lq = 4): only rows that see it",
     EXPECT_NAN_AND_FINITE_ROWS, edge_nan_in_v_decode_causal, NULL},
    {"GQA decode: 8 heads per kv head, d = 33, Lk = 45, padded, kv_lens", EXPECT_ANY,
     edge_gqa_decode, NULL},
    {"MQA decode, Lq = 2 causal, d = 255: a NaN V row reaches only rows that see it",
     EXPECT_NAN_AND_FINITE_ROWS, edge_mqa_decode_causal, NULL},
    {"GQA decode, Lk = 1, d = 7", EXPECT_ANY, edge_gqa_decode_single_key, NULL},
    {"Lk = 1", EXPECT_ANY, edge_single_key, NULL},
    {"Lk = 1, causal", EXPECT_EMPTY_ROWS, edge_single_key_causal, NULL},
    {"window 0: each row sees its own position only", EXPECT_ANY, edge_window_zero, NULL},
    {"window 1, causal, Lq < Lk", EXPECT_ANY, edge_window_one_causal, NULL},
    {"window wider than Lk", EXPECT_ANY, edge_window_beyond_lk, NULL},
    {"all keys outside the window (kv_lens): zeros", EXPECT_EMPTY_ROWS,
     edge_window_past_kv_lens, NULL},
    {"causal window 257 over Lk = 1100", EXPECT_ANY, edge_window_long, NULL},
    {"ALiBi, standard slopes of 6 heads", EXPECT_ANY, edge_alibi_six_heads, NULL},
    {"soft cap 30 on logits of ~1e4", EXPECT_NO_NAN, edge_softcap_huge_logits, NULL},
    {"soft cap 0.01", EXPECT_ANY, edge_softcap_tiny, NULL},
    {"sinks of +-1e4", EXPECT_ANY, edge_sinks_extreme, NULL},
    {"decode with window, ALiBi, soft cap and sinks, Lk = 4099", EXPECT_ANY,
     edge_decode_all_options, NULL},
    {"cross attention, window both sides, sinks", EXPECT_EMPTY_ROWS, edge_window_cross_sinks,
     NULL},
    {"paged: every table entry names one page, GQA decode", EXPECT_ANY, edge_paged_one_page,
     NULL},
    {"paged decode, pages of 64 shuffled, every option, Lk = 4099", EXPECT_ANY,
     edge_paged_decode_all_options, NULL},
    {"paged: one page of 256 holds all 100 keys, causal, BLHD", EXPECT_ANY,
     edge_paged_page_beyond_lk, NULL},
    {"paged: pages of 1 key, padded pool, window", EXPECT_ANY, edge_paged_single_key_pages,
     NULL},
    {"paged: NaN in pages past kv_lens reaches nothing", EXPECT_NO_NAN,
     edge_paged_nan_past_kv_lens, NULL},
};
const int edge_case_count = COUNT(edge_cases);

/* Checks a named case's oracle output shows what the case is built to test. */
static bool edge_case_is_sound(const edge_case *e, const test_case *c, const reference *ref)
{
    switch (e->expect) {
    case EXPECT_ANY: return true;
    case EXPECT_EMPTY_ROWS:
        return c->empty_rows > 0 && c->empty_rows < c->p.batch * c->p.heads_q * c->p.len_q;
    case EXPECT_NAN_AND_FINITE_ROWS: return ref->nan_rows > 0 && ref->finite_rows > 0;
    case EXPECT_NO_NAN: return ref->nan_rows == 0;
    case EXPECT_LARGE_LOGITS: return ref->nan_rows == 0 && ref->logit_max >= LARGE_LOGIT;
    }
    return false;
}

void run_edge_cases(runner *rn)
{
    for (int i = 0; i < COUNT(edge_cases); i++) {
        const edge_case *e = &edge_cases[i];
        if (rn->only_edge >= 0 && i != rn->only_edge)
            continue;
        /* the float types, then quantized K/V (int8, q4) where the case's shape allows */
        for (int t = 0; t < ATTN_KV_DTYPE_COUNT; t++) {
            if (!(rn->dtypes & (1u << t)))
                continue;
            const bool kv = t >= ATTN_DTYPE_COUNT;
            rng r = rng_seeded(rn->seed, 0x100000000u + (uint64_t)i);
            test_case c;
            (t != ATTN_F32 && !kv && e->build_half ? e->build_half : e->build)(&c, &r);
            snprintf(c.name, sizeof c.name, "edge %d: %s", i, e->name);
            c.edge = i;
            case_finish(&c);
            typed_case tc;
            if (kv && !typed_prepare_kv(&c, (attn_dtype)t, &tc)) {
                case_free(&c);
                continue;
            }
            if (!kv)
                typed_prepare(&c, (attn_dtype)t, draw_out_dtype(&c, (attn_dtype)t), &tc);
            const reference *ref = typed_reference(&c, &tc, REF_READ);
            if (!edge_case_is_sound(e, &c, ref)) {
                printf("FAILED [%s] dtype=%s: the case is built wrong (empty rows %" PRId64
                       ", NaN rows %" PRId64 ", finite rows %" PRId64 ", S=%.3g)\n", c.name,
                       attn_dtype_name((attn_dtype)t), c.empty_rows, ref->nan_rows,
                       ref->finite_rows, ref->logit_max);
                record(rn, NULL, false);
            } else { /* one thread, and four (key blocks split for decode) */
                run_on_selected(rn, &c, &tc, 1);
                run_on_selected(rn, &c, &tc, 4);
            }
            typed_free(&tc);
            case_free(&c);
        }
    }
}
