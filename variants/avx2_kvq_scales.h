/* avx2_kvq_scales.h — the scale widening of avx2_kvq.c (int8 row scales, q4 block scales,
 * per block of KB = 8 keys), included by it after KB: not a header of its own (no guard; one
 * includer, compiled with its AVX2 flags). */

/* The int8 row scales of keys j0 + i (i >= n: key j0's), loaded one by one into the vector
 * (not stored to memory and read back as one vector: that missed store forwarding, a stall
 * per block). */
static inline __m256 row_scales(const char *base, int64_t seq, int64_t j0, int64_t n)
{
    if (seq == 4 && n == KB) /* consecutive keys' scales adjacent: one load */
        return _mm256_loadu_ps((const float *)(base + j0 * seq));
    float s[KB];
    for (int i = 0; i < KB; i++)
        memcpy(&s[i], base + (j0 + (i < n ? i : 0)) * seq, 4);
    return _mm256_setr_ps(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
}

/* The q4 scales of keys j0 + n (n < 8, the first `n_keys`; the others 0) widened, one vector
 * of 8 keys per head_dim block: out[blk·8 + n]. A whole block, 4 head_dim blocks at a time:
 * each key's 4 scales by one 8-byte load (keys n and n + 4 in one vcvtph2ps), then a 4x4
 * transpose in each 128-bit lane; no byte outside the keys' scale rows is read. (Gathers,
 * one per head_dim block, took 14% of D2's time on Zen 4.) */
static inline void q4_scales(const char *base, int64_t seq, int64_t j0, int64_t n_keys,
                             int64_t nb, float *out)
{
    int64_t blk = 0;
    for (; n_keys == KB && blk + 4 <= nb; blk += 4) {
        __m256 r[4]; /* lanes 0-3: key i's scales blk..blk+3, lanes 4-7: key i + 4's */
        for (int i = 0; i < 4; i++) {
            int64_t lo, hi;
            memcpy(&lo, base + (j0 + i) * seq + 2 * blk, 8);
            memcpy(&hi, base + (j0 + i + 4) * seq + 2 * blk, 8);
            r[i] = _mm256_cvtph_ps(_mm_set_epi64x(hi, lo));
        }
        const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpacklo_ps(r[2], r[3]);
        const __m256 t2 = _mm256_unpackhi_ps(r[0], r[1]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
        _mm256_storeu_ps(out + blk * KB, _mm256_shuffle_ps(t0, t1, 0x44));
        _mm256_storeu_ps(out + (blk + 1) * KB, _mm256_shuffle_ps(t0, t1, 0xee));
        _mm256_storeu_ps(out + (blk + 2) * KB, _mm256_shuffle_ps(t2, t3, 0x44));
        _mm256_storeu_ps(out + (blk + 3) * KB, _mm256_shuffle_ps(t2, t3, 0xee));
    }
    for (int n = 0; n < KB && blk < nb; n++) {
        const uint16_t *row = (const uint16_t *)(base + (j0 + n) * seq);
        for (int64_t b = blk; b < nb; b++)
            out[b * KB + n] = n < n_keys ? _cvtsh_ss(row[b]) : 0.0f;
    }
}

/* The q4 scales of keys j0 + n, n < n_keys, widened in key order: out[n·nb + blk]; those of
 * consecutive keys adjacent in memory (seq = 2·nb, attn_problem_set_kv_dtype's layout) as one
 * run (key by key: D1 in cache 5% slower). */
static inline void q4_scales_by_key(const char *base, int64_t seq, int64_t j0, int64_t n_keys,
                                    int64_t nb, float *out)
{
    const bool run = seq == 2 * nb;
    const int64_t rows = run ? 1 : n_keys, len = run ? n_keys * nb : nb;
    for (int64_t r = 0; r < rows; r++) {
        const uint16_t *src = (const uint16_t *)(base + (j0 + r) * seq);
        float *dst = out + r * nb;
        int64_t c = 0;
        for (; c + 8 <= len; c += 8)
            _mm256_storeu_ps(dst + c, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + c))));
        for (; c + 4 <= len; c += 4)
            _mm_storeu_ps(dst + c, _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(src + c))));
        for (; c < len; c++)
            dst[c] = _cvtsh_ss(src[c]);
    }
}

/* Per key n of 8, Σ_blk sk[n·nb + blk] · off[blk] (the keys' scales in key order). nb = 4
 * (NB): the 8 keys' 32 scales as 4 vectors of two keys, times off twice over, summed by a
 * vhaddps tree (lanes k0 k2 k4 k6 | k1 k3 k5 k7), put in key order. */
static inline __attribute__((always_inline)) __m256 q4_key_offsets(const float *sk,
                                                                   const float *off, int NB,
                                                                   int64_t nb)
{
    if (NB == 4) {
        const __m256 o = _mm256_broadcast_ps((const __m128 *)off);
        const __m256 p0 = _mm256_mul_ps(_mm256_loadu_ps(sk), o);
        const __m256 p1 = _mm256_mul_ps(_mm256_loadu_ps(sk + 8), o);
        const __m256 p2 = _mm256_mul_ps(_mm256_loadu_ps(sk + 16), o);
        const __m256 p3 = _mm256_mul_ps(_mm256_loadu_ps(sk + 24), o);
        const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(p0, p1), _mm256_hadd_ps(p2, p3));
        return _mm256_permutevar8x32_ps(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    }
    float t[KB];
    for (int n = 0; n < KB; n++) {
        t[n] = 0.0f;
        for (int64_t blk = 0; blk < nb; blk++)
            t[n] += sk[n * nb + blk] * off[blk];
    }
    return _mm256_loadu_ps(t);
}
