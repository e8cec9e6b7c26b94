/* kvq.h — the SIMD variants' path for quantized K/V (int8, q4; attn.h): entry points and the
 * workspace and plain-C bookkeeping they share. avx512.c, avx2.c and neon.c hand a problem
 * whose kv_dtype is quantized to attn_avx512_kvq_rows / attn_avx2_kvq_rows /
 * attn_neon_kvq_rows (avx512_kvq.c, avx2_kvq.c, neon_kvq.c), which read K and V in place and
 * dequantize them in registers.
 *
 * Algorithm (both ISAs): a group's query rows (every query head of a GQA group × the task's
 * query rows) in chunks of KVQ_ROWS; each row walks its keys in blocks of one vector of keys
 * (16 or 8): scores of the block (Q prescaled by scale·log2(e), K dequantized chunk by chunk,
 * the int8 row scale applied to the summed score), the options, mask and band, then the online
 * softmax (exp2 polynomial) and the V accumulation with the weight folded with the V row
 * scale (int8) or block scale (q4). q4 works in a permuted order inside each block of 32 (even
 * elements, then odd: the low and high nibbles as they unpack), which Q is permuted into once
 * and the accumulator is permuted back from at the end. Keys a row excludes are skipped, never
 * weighted 0 (a NaN in an excluded V row must not reach the row). A chunk of one row (decode
 * MHA) dequantizes in registers as it goes, each row read key after key in address order; in
 * avx512 a chunk of several (a GQA group, several query rows) widens each key block of K and V
 * to float32 once (scales applied, in L1) and runs every row on that (avx2: tiles of up to 4
 * rows share each value dequantized in registers), except with VNNI (head_dim % 64 == 0), whose int8 and q4 tiles of up to 4 rows share
 * each K/V load (avx512_kvq.c, avx512_kvq_vnni.h). */
#ifndef ATTN_KVQ_H
#define ATTN_KVQ_H

#include "exp2_poly.h"
#include "variant.h"

#include <math.h>
#include <string.h>

#define KVQ_ROWS 8 /* query rows per chunk */

/* Floats of one workspace row: head_dim rounded up to 16. */
static inline int64_t attn_kvq_dpad(const attn_problem *p) { return (p->head_dim + 15) / 16 * 16; }

/* Keys per block at most (16 for AVX-512, 8 for AVX2 and NEON). */
#define KVQ_BLOCK_MAX 16

/* Workspace: per chunk row its Q row and accumulator (dpad floats each), 16 weights; the q4
 * scales of a block of keys of K and of V widened to float (16 · d/32 each, within 2 · dpad);
 * the block's K and V widened to float32 for a chunk of several rows (2 · 16 · dpad); Q's
 * Q's three int8 digit planes per chunk row (VNNI: 3 · dpad bytes, within dpad floats) and
 * its q4 per-chunk lane offsets (ceil(dpad/128) · 192 bytes, within dpad floats); 64 bytes
 * of slack for alignment. */
/* Query row q (d floats) times c2 (scale·log2(e)) into qr, zero padded to dpad; with q4 in
 * each 32-block's even-then-odd order, the order the kernels widen q4 nibbles in. */
static inline void attn_kvq_pack_q(float *qr, const float *q, int64_t d, int64_t dpad, float c2,
                                   bool q4)
{
    for (int64_t c = 0; c < d; c++)
        qr[q4 ? c / 32 * 32 + (c % 2) * 16 + c % 32 / 2 : c] = q[c] * c2;
    memset(qr + d, 0, (size_t)(dpad - d) * sizeof *qr);
}

static inline size_t attn_kvq_workspace(const attn_problem *p)
{
    const size_t dpad = (size_t)attn_kvq_dpad(p);
    return (KVQ_ROWS * (4 * dpad + 32) + 2 * dpad + 2 * KVQ_BLOCK_MAX * dpad) * sizeof(float) +
           64;
}

/* Chunk row rr of group gr: its query head *h and row *i, and the keys it sees within
 * [key_begin, key_end), [*first, *lim); a row that sees a key widens the chunk's key range
 * [*chunk_first, *chunk_last). */
static inline void attn_kvq_row_place(const attn_task *t, const attn_group_rows *gr, int64_t rr,
                                      int64_t key_begin, int64_t key_end, int64_t *h, int64_t *i,
                                      int64_t *first, int64_t *lim, int64_t *chunk_first,
                                      int64_t *chunk_last)
{
    const attn_problem *p = t->problem;
    *h = gr->first_head + rr / gr->rows;
    *i = t->row_begin + rr % gr->rows;
    const int64_t start = attn_key_start(p, *i), limit = attn_key_limit(p, gr->b, *i);
    *first = start > key_begin ? start : key_begin;
    *lim = limit < key_end ? limit : key_end;
    if (*lim > *first) {
        *chunk_first = *first < *chunk_first ? *first : *chunk_first;
        *chunk_last = *lim > *chunk_last ? *lim : *chunk_last;
    }
}

/* Row (h, i) of batch b's Q·scale·log2(e) packed into qr (attn_kvq_pack_q), its accumulator
 * orow zeroed (it first serves as the scratch row a half-precision Q widens into). */
static inline void attn_kvq_row_q(const attn_task *t, int64_t b, int64_t h, int64_t i, float *qr,
                                  float *orow, int64_t dpad, float c2, bool q4)
{
    const float *q = attn_row_f32(t, 'q', b, h, i, orow);
    attn_kvq_pack_q(qr, q, t->problem->head_dim, dpad, c2, q4);
    memset(orow, 0, (size_t)dpad * sizeof *orow);
}

/* One group's quantized K and V as a kernel reads them: byte addresses and strides. */
typedef struct kvq_group {
    const char *k, *v;      /* key 0 of the group's K and V */
    int64_t k_seq, v_seq;   /* bytes from one key to the next */
    const char *ks, *vs;    /* key 0's scales */
    int64_t ks_seq, vs_seq; /* bytes from one key's scales to the next's */
    int64_t d;
    bool q4;
    int64_t k_step[16], v_step[16]; /* bytes from a block's key 0 to its key n (avx512 loads them) */
} kvq_group;

static inline kvq_group attn_kvq_group_of(const attn_task *t, int64_t b, int64_t hkv)
{
    const attn_problem *p = t->problem;
    const bool q4 = p->kv_dtype == ATTN_Q4;
    const int64_t ssize = q4 ? 2 : 4;
    kvq_group x = {
        .k = attn_row(t, 'k', b, hkv, 0), .v = attn_row(t, 'v', b, hkv, 0),
        .k_seq = q4 ? p->k.seq / 2 : p->k.seq, .v_seq = q4 ? p->v.seq / 2 : p->v.seq,
        .ks = attn_kv_scale_row(p, 'k', p->k_scale, b, hkv, 0),
        .vs = attn_kv_scale_row(p, 'v', p->v_scale, b, hkv, 0),
        .ks_seq = p->k_scale_strides.seq * ssize, .vs_seq = p->v_scale_strides.seq * ssize,
        .d = p->head_dim, .q4 = q4};
    for (int n = 0; n < 16; n++) {
        x.k_step[n] = n * x.k_seq;
        x.v_step[n] = n * x.v_seq;
    }
    return x;
}

/* A finished row (query head h, row i of batch b): its accumulator o (q4: in the permuted
 * order of attn_kvq_pack_q), running max m (log2 units) and sum l, normalised into O, or with
 * part its partials at row prow (variant.h: natural-unit max). No key seen (l = 0): zeros. */
static inline void attn_kvq_store_row(const attn_task *t, const kvq_group *x, int64_t b,
                                      int64_t h, int64_t i, float m, float l, const float *o,
                                      const attn_partial *part, int64_t prow)
{
    const attn_problem *p = t->problem;
    const float ln2 = 0.69314718055994530942f, m_nat = m * ln2;
    float *dst;
    float norm = 1.0f;
    if (part) {
        part->max[prow] = m == -INFINITY ? -INFINITY : m_nat;
        part->sum[prow] = l;
        dst = part->acc + prow * x->d;
    } else {
        norm = attn_row_norm(m_nat, l, p->sinks ? p->sinks[h] : -INFINITY);
        dst = attn_o_row(t, b, h, i);
    }
    const bool empty = l == 0.0f;
    for (int64_t c = 0; c < x->d; c++) {
        const int64_t at = x->q4 ? c / 32 * 32 + (c % 2) * 16 + c % 32 / 2 : c;
        dst[c] = empty ? 0.0f : o[at] * norm;
    }
}

attn_status attn_avx512_kvq_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                                 const attn_partial *part);
attn_status attn_avx512_vnni_kvq_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                                      const attn_partial *part);
attn_status attn_avx2_kvq_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                               const attn_partial *part);
attn_status attn_neon_kvq_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                               const attn_partial *part);

/* The model options (soft cap, ALiBi) and the additive mask on a row's scores s[0, n) (log2
 * units) of keys j0 + n: keys whose bit is clear in `valid` are left alone, keys the mask sets
 * to -inf drop out; returns the keys left. The scalar path of avx2_kvq.c and neon_kvq.c for the
 * rare rows with options or a mask. */
static inline unsigned kvq_row_logits(const attn_row_opts *ro, bool options, const float *mask,
                                      float *s, int n, int64_t j0, unsigned valid)
{
    for (int k = 0; k < n; k++) {
        if (!(valid >> k & 1))
            continue;
        if (options)
            s[k] = attn_logit_log2(ro, s[k], j0 + k);
        if (mask) {
            if (mask[j0 + k] == -INFINITY)
                valid &= ~(1u << k);
            else
                s[k] += mask[j0 + k] * ATTN_LOG2E;
        }
    }
    return valid;
}

#endif
