/* avx512_bf16_pack.h — bf16 pairs for VDPBF16PS (avx512_bf16.c's prefill): the pair shuffles
 * and the packing of K and V into tiles of PACK_TILE_K keys. Include it only from a file built
 * with the avx512_bf16 ISA flags (after avx512_common.h's requirements: see meson.build). */
#ifndef ATTN_AVX512_BF16_PACK_H
#define ATTN_AVX512_BF16_PACK_H

#include "avx512_common.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

#ifndef __AVX512BF16__
#error "avx512_bf16_pack.h needs the avx512_bf16 ISA flags (see meson.build)"
#endif

enum { PACK_TILE_K = 8 }; /* keys per packed tile: the transpose below is 8 x 16 */

/* vpermw index: 16-bit element 2i takes element i, 2i+1 takes element 16 + i, so two 16-wide
 * halves [a | b] become the pairs (a[i], b[i]) in 32-bit lane i. */
static const uint16_t pair_index[32] = {0,  16, 1,  17, 2,  18, 3,  19, 4,  20, 5,
                                        21, 6,  22, 7,  23, 8,  24, 9,  25, 10, 26,
                                        11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

static inline __m512i interleave_halves(__m512i ab)
{
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(pair_index), ab);
}

/* Pairs (a[c], b[c]) for 16 columns c of two rows; a NULL row reads as zeros. */
static inline __m512i load_key_pairs(const void *a, const void *b, attn_dtype dt, int64_t n)
{
    const __m256i x = a ? load_bf16x16(a, n, dt) : _mm256_setzero_si256();
    const __m256i y = b ? load_bf16x16(b, n, dt) : _mm256_setzero_si256();
    return interleave_halves(_mm512_inserti64x4(_mm512_castsi256_si512(x), y, 1));
}

/* Transposes 8 rows of 16 32-bit elements (r[j][e]: key j, pair e) into r[m] = pairs 2m and
 * 2m + 1 of the 8 keys, key-minor: (r[0][2m], ..., r[7][2m], r[0][2m+1], ..., r[7][2m+1]). Three
 * rounds of two-source permutes (24), in place of 8 scatters of 16 elements, which Zen 4 runs
 * element by element (the K packing took ~10% of P2 with them). */
static inline void transpose_pairs_8x16(__m512i r[PACK_TILE_K])
{
    /* Round 1, 32-bit units: keys (2i, 2i+1) interleaved, elements 0-7 and 8-15. */
    const __m512i lo32 = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi32 = _mm512_add_epi32(lo32, _mm512_set1_epi32(8));
    /* Rounds 2 and 3 in 64-bit units: pairs of keys interleaved, then quads of keys. */
    const __m512i lo64 = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
    const __m512i hi64 = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
    const __m512i lo128 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    const __m512i hi128 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    __m512i a[PACK_TILE_K], b[PACK_TILE_K];
    for (int i = 0; i < 4; i++) { /* a[2i]: elements 0-7 of keys 2i, 2i+1; a[2i+1]: 8-15 */
        a[2 * i] = _mm512_permutex2var_epi32(r[2 * i], lo32, r[2 * i + 1]);
        a[2 * i + 1] = _mm512_permutex2var_epi32(r[2 * i], hi32, r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) /* b[4i + h·2 + q]: keys 4i..4i+3, elements 8h + 4q .. + 3 */
        for (int h = 0; h < 2; h++) {
            b[4 * i + 2 * h] = _mm512_permutex2var_epi64(a[4 * i + h], lo64, a[4 * i + 2 + h]);
            b[4 * i + 2 * h + 1] =
                _mm512_permutex2var_epi64(a[4 * i + h], hi64, a[4 * i + 2 + h]);
        }
    for (int g = 0; g < 4; g++) { /* elements 4g..4g+3 of keys 0-3 (b[g]) and 4-7 (b[4 + g]) */
        r[2 * g] = _mm512_permutex2var_epi64(b[g], lo128, b[4 + g]);
        r[2 * g + 1] = _mm512_permutex2var_epi64(b[g], hi128, b[4 + g]);
    }
}

/* Any bf16 element with an all-ones exponent (inf or NaN)? */
static inline bool any_nonfinite(__m512i x)
{
    const __m512i e = _mm512_set1_epi16(0x7f80);
    return _mm512_cmpeq_epi16_mask(_mm512_and_si512(x, e), e) != 0;
}

/* K and V of up to PACK_TILE_K keys (their rows krows[j], vrows[j]; NULL: a key past the end,
 * packed as zeros) of d elements of dt into one KP tile, [pair p][8 keys], and one VP tile,
 * [key pair i][d] of (V[2i][c], V[2i+1][c]). Returns whether the VP tile holds an inf or NaN. */
static inline bool pack_kv_tile(const char *const krows[PACK_TILE_K],
                                const char *const vrows[PACK_TILE_K], attn_dtype dt, int64_t d,
                                uint32_t *kt, uint32_t *vt)
{
    const int64_t dp = (d + 1) / 2, es = dt == ATTN_F32 ? 4 : 2;
    for (int64_t c0 = 0; c0 < d; c0 += 32) {
        __m512i r[PACK_TILE_K]; /* 16 pairs of each key, zeros past d and for missing keys */
        for (int j = 0; j < PACK_TILE_K; j++)
            r[j] = krows[j] ? load_bf16x32(krows[j] + c0 * es, d - c0, dt) : _mm512_setzero_si512();
        transpose_pairs_8x16(r);
        for (int m = 0; m < 8; m++) { /* r[m]: pairs c0/2 + 2m and + 2m + 1 of the 8 keys */
            const int64_t left = dp - c0 / 2 - 2 * m; /* pairs left from pair c0/2 + 2m */
            if (left > 0)
                _mm512_mask_storeu_epi32(kt + (c0 / 2 + 2 * m) * PACK_TILE_K,
                                         left > 1 ? 0xffff : 0x00ff, r[m]);
        }
    }
    bool nonfinite = false;
    for (int i = 0; i < PACK_TILE_K / 2; i++) {
        const char *a = vrows[2 * i], *b = vrows[2 * i + 1];
        for (int64_t c0 = 0; c0 < d; c0 += 16) {
            const __m512i pr =
                load_key_pairs(a ? a + c0 * es : NULL, b ? b + c0 * es : NULL, dt, d - c0);
            nonfinite |= any_nonfinite(pr);
            _mm512_mask_storeu_epi32(vt + i * d + c0, tail_mask16(d - c0), pr);
        }
    }
    return nonfinite;
}

#endif
