/* kvq.h — the x86 variants' path for quantized K/V (int8, q4; attn.h): entry points and the
 * workspace they share. avx512.c and avx2.c hand a problem whose kv_dtype is quantized to
 * attn_avx512_kvq_rows / attn_avx2_kvq_rows (avx512_kvq.c, avx2_kvq.c), which read K and V in
 * place and dequantize them in registers.
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
 * to float32 once (scales applied, in L1) and runs every row on that (avx2 dequantizes per
 * row), except int8 with VNNI, whose tiles of up to 4 rows share each K/V load
 * (avx512_kvq.c). */
#ifndef ATTN_KVQ_H
#define ATTN_KVQ_H

#include "variant.h"

#include <string.h>

#define KVQ_ROWS 8 /* query rows per chunk */

/* Floats of one workspace row: head_dim rounded up to 16. */
static inline int64_t attn_kvq_dpad(const attn_problem *p) { return (p->head_dim + 15) / 16 * 16; }

/* Keys per block at most (16 for AVX-512, 8 for AVX2). */
#define KVQ_BLOCK_MAX 16

/* Workspace: per chunk row its Q row and accumulator (dpad floats each), 16 weights; the q4
 * scales of a block of keys of K and of V widened to float (16 · d/32 each, within 2 · dpad);
 * the block's K and V widened to float32 for a chunk of several rows (2 · 16 · dpad); Q's
 * Q's three int8 digit planes per chunk row (VNNI: 3 · dpad bytes, within dpad floats) and
 * q4's per-chunk lane offsets (dpad/128 · 192 bytes, within dpad floats); 64 bytes
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
    return (KVQ_ROWS * (3 * dpad + 32) + 3 * dpad + 2 * KVQ_BLOCK_MAX * dpad) * sizeof(float) +
           64;
}

attn_status attn_avx512_kvq_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                                 const attn_partial *part);
attn_status attn_avx512_vnni_kvq_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                                      const attn_partial *part);
attn_status attn_avx2_kvq_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                               const attn_partial *part);

#endif
