/* avx512_kvq_vnni.h — the VNNI paths of avx512_kvq.c, included by it where KVQ_VNNI is 1 (the
 * build of avx512_vnni_kvq.c, compiled with -mavx512vnni), after its kvq_group and kvq_block:
 * not a header of its own (no guard; one includer).
 *
 * One query row, int8 or q4 K/V, head_dim % 64 == 0 (dot16_vnni, dot16_vnni_q4,
 * accumulate_v_vnni), and int8 tiles of up to 4 rows (dot_tile_vnni, v_tile_vnni). Scores:
 * Q·scale·log2(e) is quantized to 24-bit integers qi = round(q / sq) (|qi| <= 8·10^6,
 * sq = max|q| / 8·10^6), split into three signed digits qi = g0 + 256·g1 + 65536·g2; vpdpbusd
 * multiplies 64 K bytes by a digit plane at once. It wants one operand unsigned: int8 K + 128
 * (K xor 0x80), q4's nibbles (q + 8) as stored, whose extra 128·Σg or 8·Σg each lane starts
 * from minus (init). Each digit's lanes are exact int32 sums; they join in float32 lane by
 * lane, then sum16 over the lanes, times sq and the row scale. Q's rounding is 2^-24 of max|q|
 * per element: the score's error stays near float32 accumulation's. V: see
 * accumulate_v_vnni. On Zen 4 (D1, one thread) int8 ran 1.3x and q4 1.1x faster than the
 * float32 paths, D2 int8 1.9x. */
struct kvq_qdigits {
    int8_t *g[3];             /* the digit planes (workspace): int8 head_dim bytes each; q4
                               * head_dim/2 each, the low nibbles' elements (even ones) */
    int8_t *gh[3];            /* q4: the high nibbles' (odd elements) */
    int32_t init[3][16];      /* int8, per lane: -128 · (the digits the lane multiplies, summed) */
    int32_t *init4;           /* q4, per 64-byte chunk of a row [chunk][digit][lane]: -8 · (the
                               * lane's digits, low and high nibbles, summed) */
    float sq;                 /* the quantization step of Q */
};

/* acc += the VNNI dot products, in place: GCC's _mm512_dpbusd_epi32 / _mm512_dpwssd_epi32 copy
 * each accumulator to another register and to the stack around every instruction (GCC 12), which
 * made the loops slower than float32's. */
static inline __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "vm"(s8));
    return acc;
}
static inline __m512i dpwssd(__m512i acc, __m512i a, __m512i b)
{
    __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

/* q (d floats; q4: in its parity order) as digits. q4: element c of block b = c/32 sits in
 * byte p = 16·b + c%16 of a row, the low nibble for c%32 < 16 (even elements), else the high;
 * the lanes of a 64-byte chunk hold 4 head_dim blocks, one per 4 lanes. */
static void qdigits_of(const float *q, int64_t d, bool q4, kvq_qdigits *qd)
{
    float qmax = 0.0f;
    for (int64_t c = 0; c < d; c++)
        qmax = fmaxf(qmax, fabsf(q[c]));
    qd->sq = qmax > 0.0f ? qmax / 8e6f : 1.0f;
    memset(qd->init, 0, sizeof qd->init);
    if (q4)
        memset(qd->init4, 0, (size_t)(d + 127) / 128 * 48 * sizeof *qd->init4);
    for (int64_t c = 0; c < d; c++) {
        const int32_t qi = (int32_t)lrintf(q[c] / qd->sq);
        const int32_t g0 = ((qi + 128) & 255) - 128, r = (qi - g0) / 256;
        const int32_t g1 = ((r + 128) & 255) - 128, g2 = (r - g1) / 256;
        const int32_t g[3] = {g0, g1, g2};
        const int64_t p = c / 32 * 16 + c % 16;
        for (int k = 0; k < 3; k++) {
            if (!q4) {
                qd->g[k][c] = (int8_t)g[k];
                qd->init[k][c % 64 / 4] -= 128 * g[k];
                continue;
            }
            (c % 32 < 16 ? qd->g : qd->gh)[k][p] = (int8_t)g[k];
            qd->init4[p / 64 * 48 + k * 16 + p % 64 / 4] -= 8 * g[k];
        }
    }
}

/* q4 scores of the block's 16 keys with VNNI (head_dim % 64 == 0), key after key as
 * dot16_vnni: the nibbles (q + 8, unsigned) of a 64-byte chunk are vpdpbusd's unsigned
 * operand as they are, low and high against their digit planes; per chunk the digits join in
 * float32 and take the key's 4 block scales (one per 4 lanes), then sum16. */
static inline __m512 dot16_vnni_q4(const kvq_group *x, const kvq_block *kb, const kvq_qdigits *qd)
{
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i rep4 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const int64_t bytes = x->d / 2;
    __m512 a[KB];
#pragma GCC unroll 1
    for (int n = 0; n < KB; n++) {
        const uint8_t *kn = kb->k[n];
        const char *sn = x->ks + (kb->j0 + (n < kb->n ? n : 0)) * x->ks_seq;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t c = 0; c < bytes; c += 64) {
            const bool whole = bytes - c >= 64; /* else 32 bytes: 2 head_dim blocks */
            const __m512i raw = _mm512_maskz_loadu_epi8(whole ? ~0ull : 0xffffffffull, kn + c);
            const __m512i lo = _mm512_and_si512(raw, low4);
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
            const int32_t *init = qd->init4 + c / 64 * 48;
            __m512i g0 = _mm512_loadu_si512(init), g1 = _mm512_loadu_si512(init + 16),
                    g2 = _mm512_loadu_si512(init + 32);
            g0 = dpbusd(dpbusd(g0, lo, _mm512_loadu_si512(qd->g[0] + c)), hi,
                        _mm512_loadu_si512(qd->gh[0] + c));
            g1 = dpbusd(dpbusd(g1, lo, _mm512_loadu_si512(qd->g[1] + c)), hi,
                        _mm512_loadu_si512(qd->gh[1] + c));
            g2 = dpbusd(dpbusd(g2, lo, _mm512_loadu_si512(qd->g[2] + c)), hi,
                        _mm512_loadu_si512(qd->gh[2] + c));
            const __m512 f = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(g2), _mm512_set1_ps(65536.0f),
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(g1), _mm512_set1_ps(256.0f),
                                _mm512_cvtepi32_ps(g0)));
            const __m128i h = _mm_maskz_loadu_epi16(whole ? 0xf : 0x3, sn + c / 16 * 2);
            acc = _mm512_fmadd_ps(f, _mm512_permutexvar_ps(rep4, _mm512_castps128_ps512(_mm_cvtph_ps(h))),
                                  acc);
        }
        a[n] = acc;
    }
    return _mm512_mul_ps(sum16(a), _mm512_set1_ps(qd->sq));
}

/* Scores of the block's 16 keys (log2 units before sq and the row scale): key after key,
 * through a loop that is not unrolled, so each load instruction walks K in address order
 * (the hardware prefetchers follow it, as in avx512.c's decode path); the three digits' lanes
 * join in float32 per key, into a stack array for sum16. */
static inline __m512 dot16_vnni(const void *const *k, int64_t d, const kvq_qdigits *qd)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const __m512i i0 = _mm512_loadu_si512(qd->init[0]), i1 = _mm512_loadu_si512(qd->init[1]),
                  i2 = _mm512_loadu_si512(qd->init[2]);
    __m512 a[KB];
#pragma GCC unroll 1
    for (int n = 0; n < KB; n++) {
        const int8_t *kn = k[n];
        __m512i g0 = i0, g1 = i1, g2 = i2;
        for (int64_t c = 0; c < d; c += 64) {
            const __m512i kx = _mm512_xor_si512(_mm512_loadu_si512(kn + c), flip);
            g0 = dpbusd(g0, kx, _mm512_loadu_si512(qd->g[0] + c));
            g1 = dpbusd(g1, kx, _mm512_loadu_si512(qd->g[1] + c));
            g2 = dpbusd(g2, kx, _mm512_loadu_si512(qd->g[2] + c));
        }
        a[n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(g2), _mm512_set1_ps(65536.0f),
                               _mm512_fmadd_ps(_mm512_cvtepi32_ps(g1), _mm512_set1_ps(256.0f),
                                               _mm512_cvtepi32_ps(g0)));
    }
    return sum16(a);
}

/* One group of NC chunks of 32 of head_dim from c0 (NC constant once inlined: the 4·NC int32
 * accumulators live in registers across the block's key pairs, walked in a loop that is not
 * unrolled, rows in address order), then o[c0 ..] = o·corr + sw·(hi + lo/32768) in head_dim
 * order. */
static inline __attribute__((always_inline)) void v_vnni_group(const void *const *vrows, int64_t c0,
                                                               int NC, __mmask16 keys,
                                                               const int32_t *whi,
                                                               const int32_t *wlo, float sw,
                                                               float corr, float *o)
{
    __m512i hl[4], hh[4], ll[4], lh[4]; /* [digit hi/lo][unpack lo/hi] per chunk */
    for (int c = 0; c < NC; c++)
        hl[c] = hh[c] = ll[c] = lh[c] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int m = 0; m < KB / 2; m++) {
        if (!(keys >> (2 * m) & 3))
            continue;
        /* a key outside `keys` has weight 0: its (finite) int8 row adds nothing */
        const int8_t *ra = (const int8_t *)vrows[2 * m] + c0, *rb = (const int8_t *)vrows[2 * m + 1] + c0;
        const __m512i ph = _mm512_set1_epi32(whi[m]), pl = _mm512_set1_epi32(wlo[m]);
        for (int c = 0; c < NC; c++) {
            const __m512i va = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(ra + 32 * c)));
            const __m512i vb = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(rb + 32 * c)));
            const __m512i ul = _mm512_unpacklo_epi16(va, vb), uh = _mm512_unpackhi_epi16(va, vb);
            hl[c] = dpwssd(hl[c], ul, ph);
            hh[c] = dpwssd(hh[c], uh, ph);
            ll[c] = dpwssd(ll[c], ul, pl);
            lh[c] = dpwssd(lh[c], uh, pl);
        }
    }
    /* the unpacked lanes (c = 8·(j/4) + j%4, and + 4) back in head_dim order */
    const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i second = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29,
                                             30, 31);
    const __m512 s = _mm512_set1_ps(sw), f = _mm512_set1_ps(1.0f / 32768.0f), cv = _mm512_set1_ps(corr);
    for (int c = 0; c < NC; c++) {
        float *oc = o + c0 + 32 * c;
        const __m512 xl = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ll[c]), f, _mm512_cvtepi32_ps(hl[c]));
        const __m512 xh = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lh[c]), f, _mm512_cvtepi32_ps(hh[c]));
        _mm512_storeu_ps(oc, _mm512_fmadd_ps(_mm512_permutex2var_ps(xl, first, xh), s,
                                             _mm512_mul_ps(_mm512_loadu_ps(oc), cv)));
        _mm512_storeu_ps(oc + 16, _mm512_fmadd_ps(_mm512_permutex2var_ps(xl, second, xh), s,
                                                  _mm512_mul_ps(_mm512_loadu_ps(oc + 16), cv)));
    }
}

/* V with VNNI: the block's weights w (p · V's row scale, >= 0) are quantized against their
 * largest, sw = max w / 32767, as hi + lo/32768 (hi in [0, 32767], |lo| <= 16384: 2^-31 of max
 * w), packed in key pairs; vpdpwssd takes two keys' int16 V values (vpmovsxbw, interleaved by
 * vpunpck[lh]wd) times the pair's weights, the block's sums exact in int32 (16 · 32767 · 127 <
 * 2^31). false (nothing done) when a weight is not finite (a NaN or infinite V scale): the
 * float path carries it. head_dim % 64 == 0. */
static inline bool accumulate_v_vnni(const void *const *vrows, int64_t d, float *o, float corr,
                                     __mmask16 keys, const float *w)
{
    const __m512 wv = _mm512_maskz_loadu_ps(keys, w);
    const float wmax = _mm512_reduce_max_ps(wv);
    if (!(wmax < INFINITY))
        return false;
    if (wmax == 0.0f) {
        const __m512 cv = _mm512_set1_ps(corr);
        for (int64_t c = 0; c < d; c += 16)
            _mm512_storeu_ps(o + c, _mm512_mul_ps(_mm512_loadu_ps(o + c), cv));
        return true;
    }
    const float sw = wmax / 32767.0f;
    const __m512i hi = _mm512_cvtps_epi32(_mm512_mul_ps(wv, _mm512_set1_ps(1.0f / sw)));
    const __m512 rest = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_set1_ps(sw), wv);
    const __m512i lo = _mm512_cvtps_epi32(_mm512_mul_ps(rest, _mm512_set1_ps(32768.0f / sw)));
    int32_t whi[8], wlo[8]; /* key pair m: (w[2m], w[2m+1]) as two int16 */
    _mm256_storeu_si256((__m256i *)whi, _mm512_cvtepi32_epi16(hi));
    _mm256_storeu_si256((__m256i *)wlo, _mm512_cvtepi32_epi16(lo));
    int64_t c0 = 0;
    for (; c0 + 128 <= d; c0 += 128)
        v_vnni_group(vrows, c0, 4, keys, whi, wlo, sw, corr, o);
    if (c0 < d)
        v_vnni_group(vrows, c0, 2, keys, whi, wlo, sw, corr, o);
    return true;
}
/* A tile of T query rows (T = 2..4, a constant once inlined) of one GQA group on int8 K/V:
 * each K row is loaded and flipped once for the T rows' digits (3·T accumulators), key after
 * key as dot16_vnni; s[t] = row t's 16 scores (log2 units, sq and the row scales applied). */
static inline __attribute__((always_inline)) void dot_tile_vnni_t(const kvq_block *kb, int64_t d,
                                                                  const kvq_qdigits *qd, int T,
                                                                  __m512 *s)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 part[4][KB];
#pragma GCC unroll 1
    for (int n = 0; n < KB; n++) {
        const int8_t *kn = kb->k[n];
        __m512i g[4][3];
        for (int t = 0; t < T; t++)
            for (int k = 0; k < 3; k++)
                g[t][k] = _mm512_loadu_si512(qd[t].init[k]);
        for (int64_t c = 0; c < d; c += 64) {
            const __m512i kx = _mm512_xor_si512(_mm512_loadu_si512(kn + c), flip);
            for (int t = 0; t < T; t++)
                for (int k = 0; k < 3; k++)
                    g[t][k] = dpbusd(g[t][k], kx, _mm512_loadu_si512(qd[t].g[k] + c));
        }
        for (int t = 0; t < T; t++)
            part[t][n] = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(g[t][2]), _mm512_set1_ps(65536.0f),
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(g[t][1]), _mm512_set1_ps(256.0f),
                                _mm512_cvtepi32_ps(g[t][0])));
    }
    for (int t = 0; t < T; t++)
        s[t] = _mm512_mul_ps(sum16(part[t]), _mm512_mul_ps(kb->ks, _mm512_set1_ps(qd[t].sq)));
}

static inline void dot_tile_vnni(const kvq_block *kb, int64_t d, const kvq_qdigits *qd, int T,
                                 __m512 *s)
{
    switch (T) {
    case 2: dot_tile_vnni_t(kb, d, qd, 2, s); break;
    case 3: dot_tile_vnni_t(kb, d, qd, 3, s); break;
    default: dot_tile_vnni_t(kb, d, qd, 4, s); break;
    }
}

/* The tile's V (accumulate_v_vnni's int16 weights, per row): each pair of V rows is loaded and
 * interleaved once per 32 values of head_dim for the T rows (4·T int32 accumulators), then
 * row t's o_t = o_t·corr[t] + sw_t·(hi + lo/32768). A row without keys has weight 0 and corr
 * 1. false (nothing done) when a weight is not finite. */
static inline __attribute__((always_inline)) bool v_tile_vnni_t(const void *const *vrows,
                                                                int64_t d, int T, float *o,
                                                                int64_t ostride,
                                                                const float *corr,
                                                                const __mmask16 *keys,
                                                                const float *w)
{
    int32_t whi[4][8], wlo[4][8];
    float sw[4];
    unsigned any = 0;
    for (int t = 0; t < T; t++) {
        const __m512 wv = _mm512_maskz_loadu_ps(keys[t], w + 16 * t);
        const float wmax = _mm512_reduce_max_ps(wv);
        if (!(wmax < INFINITY))
            return false;
        any |= keys[t];
        sw[t] = wmax / 32767.0f;
        const __m512 inv = _mm512_set1_ps(wmax > 0.0f ? 1.0f / sw[t] : 0.0f);
        const __m512i hi = _mm512_cvtps_epi32(_mm512_mul_ps(wv, inv));
        const __m512 rest = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_set1_ps(sw[t]), wv);
        const __m512i lo = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_mul_ps(rest, inv),
                                                            _mm512_set1_ps(32768.0f)));
        _mm256_storeu_si256((__m256i *)whi[t], _mm512_cvtepi32_epi16(hi));
        _mm256_storeu_si256((__m256i *)wlo[t], _mm512_cvtepi32_epi16(lo));
    }
    const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i second = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29,
                                             30, 31);
    const __m512 f = _mm512_set1_ps(1.0f / 32768.0f);
    for (int64_t c0 = 0; c0 < d; c0 += 32) {
        __m512i acc[4][4]; /* per row: hi digit × (lo, hi unpack), lo digit × (lo, hi) */
        for (int t = 0; t < T; t++)
            for (int i = 0; i < 4; i++)
                acc[t][i] = _mm512_setzero_si512();
#pragma GCC unroll 1
        for (int m = 0; m < KB / 2; m++) {
            if (!(any >> (2 * m) & 3))
                continue;
            const __m512i va = _mm512_cvtepi8_epi16(
                _mm256_loadu_si256((const __m256i *)((const int8_t *)vrows[2 * m] + c0)));
            const __m512i vb = _mm512_cvtepi8_epi16(
                _mm256_loadu_si256((const __m256i *)((const int8_t *)vrows[2 * m + 1] + c0)));
            const __m512i ul = _mm512_unpacklo_epi16(va, vb), uh = _mm512_unpackhi_epi16(va, vb);
            for (int t = 0; t < T; t++) {
                const __m512i ph = _mm512_set1_epi32(whi[t][m]), pl = _mm512_set1_epi32(wlo[t][m]);
                acc[t][0] = dpwssd(acc[t][0], ul, ph);
                acc[t][1] = dpwssd(acc[t][1], uh, ph);
                acc[t][2] = dpwssd(acc[t][2], ul, pl);
                acc[t][3] = dpwssd(acc[t][3], uh, pl);
            }
        }
        for (int t = 0; t < T; t++) {
            float *oc = o + t * ostride + c0;
            const __m512 xl = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][2]), f,
                                              _mm512_cvtepi32_ps(acc[t][0]));
            const __m512 xh = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][3]), f,
                                              _mm512_cvtepi32_ps(acc[t][1]));
            const __m512 sv = _mm512_set1_ps(sw[t]), cv = _mm512_set1_ps(corr[t]);
            _mm512_storeu_ps(oc, _mm512_fmadd_ps(_mm512_permutex2var_ps(xl, first, xh), sv,
                                                 _mm512_mul_ps(_mm512_loadu_ps(oc), cv)));
            _mm512_storeu_ps(oc + 16,
                             _mm512_fmadd_ps(_mm512_permutex2var_ps(xl, second, xh), sv,
                                             _mm512_mul_ps(_mm512_loadu_ps(oc + 16), cv)));
        }
    }
    return true;
}

static inline bool v_tile_vnni(const void *const *vrows, int64_t d, int T, float *o,
                               int64_t ostride, const float *corr, const __mmask16 *keys,
                               const float *w)
{
    switch (T) {
    case 2: return v_tile_vnni_t(vrows, d, 2, o, ostride, corr, keys, w);
    case 3: return v_tile_vnni_t(vrows, d, 3, o, ostride, corr, keys, w);
    default: return v_tile_vnni_t(vrows, d, 4, o, ostride, corr, keys, w);
    }
}
