/* avx512_kvq_vnni.h — the VNNI paths of avx512_kvq.c, included by it where KVQ_VNNI is 1 (the
 * build of avx512_vnni_kvq.c, compiled with -mavx512vnni), after its kvq_group and kvq_block:
 * not a header of its own (no guard; one includer).
 *
 * head_dim % 64 == 0, tiles of 1 to 4 rows: int8 dot_tile_vnni, v_tile_vnni (one row:
 * accumulate_v_vnni, over 16 or 32 keys); q4 dot_tile_vnni_q4, v_q4_tile (one row over 32
 * keys: v_q4_row2). Scores:
 * Q·scale·log2(e) is quantized to 24-bit integers qi = round(q / sq) (|qi| <= 8·10^6,
 * sq = max|q| / 8·10^6), split into three signed digits qi = g0 + 256·g1 + 65536·g2; vpdpbusd
 * multiplies 64 K bytes by a digit plane at once. It wants one operand unsigned: int8 K + 128
 * (K xor 0x80), q4's nibbles (q + 8) as stored, whose extra 128·Σg or 8·Σg each lane starts
 * from minus (init). Each digit's lanes are exact int32 sums; they join in float32 lane by
 * lane, then sum16 over the lanes, times sq and the row scale. Q's rounding is 2^-24 of max|q|
 * per element: the score's error stays near float32 accumulation's. V: see
 * accumulate_v_vnni and v_q4_tile. On Zen 4 (D1, one thread) int8 ran 1.3x and q4 1.1x
 * faster than the float32 paths, D2 int8 1.9x; q4's integer V and tiles then gained another
 * 1.35x (D1) to 1.45x (D2-D4) in cache; single rows in block pairs and q4 K's Horner join
 * another 1.2x (q4) and 1.05x (int8) on D1. */
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

/* int8 K rows are read in 256-bit halves (load_stream_epi16 under a full mask: two plain
 * loads), as the float decode streams are: one 512-bit load per 64 bytes streamed int8 D1 at
 * 1.2-1.4x the time (0.70-0.85x with halves, Zen 5, one thread, both builds in one process,
 * alternated; head_dim 256 0.97x, 64 1.0x; in L2 1.0-1.016x). q4's chunks stay whole below.
 *
 * The 64 bytes of a K or V row at p, or where !whole its first 32 with zeros above: plain
 * loads, as avx512_common.h's stream loads (with the q4 V rows and scales loaded masked, D1 q4
 * ran at 0.26 of a plain read of the same K/V, with plain loads 0.62: CPU time, single thread,
 * both builds in one process, alternated, Zen 5; D2 0.15 -> 0.25, D4 0.14 -> 0.22; in cache
 * 1.12x), but one 512-bit load, not their 256-bit halves: these paths, at 0.15-0.6 of a read,
 * are bound by their arithmetic, and with the halves the fastest runs of D1, D2 and D4 q4 took
 * 1.03-1.06x as long (Zen 5, alternated; in cache the same; measured again beside int8's
 * halves: D1 1.02x, D2 1.03x, in L2 1.04x). A loop over chunks takes the test
 * on whole once per chunk (v_q4_chunk). */
static inline __attribute__((always_inline)) __m512i load_chunk(const void *p, bool whole)
{
    return whole ? _mm512_loadu_si512(p) : _mm512_zextsi256_si512(_mm256_loadu_si256(p));
}

/* q (d floats, d % 64 == 0; q4: in its parity order) as digits, 16 elements at a time (the
 * scalar loop, an lrintf call and three start-value updates per element, took 0.45 us more
 * a row on Zen 4: 15 us of a D1 call, 0.6%), the same values. q4: element c of block b = c/32 sits in byte p = 16·b + c%16 of a row, the low
 * nibble for c%32 < 16 (even elements), else the high; the lanes of a 64-byte chunk hold 4
 * head_dim blocks, one per 4 lanes. */
static void qdigits_of(const float *q, int64_t d, bool q4, kvq_qdigits *qd)
{
    __m512 vmax = _mm512_setzero_ps();
    for (int64_t c = 0; c < d; c += 16) /* a NaN is skipped (vmaxps keeps the second operand) */
        vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(q + c)), vmax);
    const float qmax = _mm512_reduce_max_ps(vmax);
    qd->sq = qmax > 0.0f ? qmax / 8e6f : 1.0f;
    memset(qd->init, 0, sizeof qd->init);
    if (q4)
        memset(qd->init4, 0, (size_t)(d + 127) / 128 * 48 * sizeof *qd->init4);
    const __m512 sq = _mm512_set1_ps(qd->sq);
    const __m512i b128 = _mm512_set1_epi32(128), b255 = _mm512_set1_epi32(255);
    for (int64_t c = 0; c < d; c += 16) {
        /* round to nearest even, as lrintf; qi = g0 + 256·g1 + 65536·g2, each in [-128, 127] */
        const __m512i qi = _mm512_cvtps_epi32(_mm512_div_ps(_mm512_loadu_ps(q + c), sq));
        __m512i g[3];
        g[0] = _mm512_sub_epi32(_mm512_and_si512(_mm512_add_epi32(qi, b128), b255), b128);
        const __m512i r = _mm512_srai_epi32(_mm512_sub_epi32(qi, g[0]), 8); /* exact */
        g[1] = _mm512_sub_epi32(_mm512_and_si512(_mm512_add_epi32(r, b128), b255), b128);
        g[2] = _mm512_srai_epi32(_mm512_sub_epi32(r, g[1]), 8);
        const int64_t p = c / 32 * 16 + c % 32 % 16; /* q4: the 16 elements' first byte */
        for (int k = 0; k < 3; k++) {
            int32_t lane[16], quad[4]; /* quad i: the sum of the digits of elements 4i..4i+3 */
            _mm512_storeu_si512(lane, g[k]);
            for (int i = 0; i < 4; i++)
                quad[i] = lane[4 * i] + lane[4 * i + 1] + lane[4 * i + 2] + lane[4 * i + 3];
            if (!q4) {
                _mm_storeu_si128((__m128i *)(qd->g[k] + c), _mm512_cvtepi32_epi8(g[k]));
                for (int i = 0; i < 4; i++)
                    qd->init[k][c % 64 / 4 + i] -= 128 * quad[i];
                continue;
            }
            _mm_storeu_si128((__m128i *)((c % 32 < 16 ? qd->g : qd->gh)[k] + p),
                             _mm512_cvtepi32_epi8(g[k]));
            for (int i = 0; i < 4; i++)
                qd->init4[p / 64 * 48 + k * 16 + p % 64 / 4 + i] -= 8 * quad[i];
        }
    }
}

/* q4 scores of the block's 16 keys with VNNI (head_dim % 64 == 0) for T query rows (1..4, a
 * constant once inlined), key after key through a loop that is not unrolled (each load
 * instruction walks K in address order, which the hardware prefetchers follow): the nibbles
 * (q + 8, unsigned) of a
 * 64-byte chunk are vpdpbusd's unsigned operand as they are, split once and taken by every
 * row's low and high digit planes; per chunk a row's three digits join in int32 (|lane| <=
 * 8 nibbles · 8 · 128 = 8192, so g2·65536 + g1·256 + g0 < 2^30, exact), then to float32 times
 * the key's 4 block scales (one per 4 lanes), then sum16. s[t] = row t's 16 scores (log2 units,
 * sq applied). */
static inline __attribute__((always_inline)) void dot_tile_q4_128(const kvq_group *x,
                                                                  const kvq_block *kb,
                                                                  const kvq_qdigits *qd, int T,
                                                                  __m512 *s);

static inline __attribute__((always_inline)) void dot_tile_vnni_q4_t(const kvq_group *x,
                                                                     const kvq_block *kb,
                                                                     const kvq_qdigits *qd,
                                                                     int T, __m512 *s)
{
    if (x->d == 128) {
        dot_tile_q4_128(x, kb, qd, T, s);
        return;
    }
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i rep4 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const int64_t bytes = x->d / 2;
    __m512 part[4][KB];
#pragma GCC unroll 1
    for (int n = 0; n < KB; n++) {
        const uint8_t *kn = kb->k[n];
        const char *sn = x->ks + (kb->j0 + (n < kb->n ? n : 0)) * x->ks_seq;
        __m512 acc[4];
        for (int t = 0; t < T; t++)
            acc[t] = _mm512_setzero_ps();
        for (int64_t c = 0; c < bytes; c += 64) {
            const bool whole = bytes - c >= 64; /* else 32 bytes: 2 head_dim blocks */
            const __m512i raw = load_chunk(kn + c, whole);
            const __m512i lo = _mm512_and_si512(raw, low4);
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
            int64_t s4 = 0; /* the chunk's 4 (or 2) block scales */
            memcpy(&s4, sn + c / 16 * 2, whole ? 8 : 4);
            const __m128i h = _mm_cvtsi64_si128(s4);
            const __m512 sv = _mm512_permutexvar_ps(rep4, _mm512_castps128_ps512(_mm_cvtph_ps(h)));
            for (int t = 0; t < T; t++) {
                const int32_t *init = qd[t].init4 + c / 64 * 48;
                __m512i g[3];
                for (int k = 0; k < 3; k++)
                    g[k] = dpbusd(dpbusd(_mm512_loadu_si512(init + 16 * k), lo,
                                         _mm512_loadu_si512(qd[t].g[k] + c)),
                                  hi, _mm512_loadu_si512(qd[t].gh[k] + c));
                const __m512i gi = _mm512_add_epi32(
                    _mm512_add_epi32(_mm512_slli_epi32(g[2], 16), _mm512_slli_epi32(g[1], 8)), g[0]);
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(gi), sv, acc[t]);
            }
        }
        for (int t = 0; t < T; t++)
            part[t][n] = acc[t];
    }
    for (int t = 0; t < T; t++)
        s[t] = _mm512_mul_ps(sum16(part[t]), _mm512_set1_ps(qd[t].sq));
}

/* head_dim 128 (one 64-byte chunk a row), TT (1 or 2) rows: their digit planes in registers
 * across the block's keys (6 per row), not reloaded per key, which made the loop bound by its
 * loads (one zmm load a cycle); part[t][n] = row t's lanes of key n without the start values
 * (q4_init_128 adds them per head_dim block), the digits joined by Horner's rule, ((D2·256 +
 * D1)·256 + D0): no more than a shift between the dot products. The lanes may wrap: every step
 * is a ring operation mod 2^32 and the block's sum with its start value fits int32 (below),
 * so it comes out exact. */
static inline __attribute__((always_inline)) void dot_rows_q4_128(const kvq_block *kb,
                                                                  const kvq_qdigits *qd, int TT,
                                                                  __m512i (*part)[KB])
{
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512i gl[2][3], gh[2][3];
    for (int t = 0; t < TT; t++)
        for (int k = 0; k < 3; k++) {
            gl[t][k] = _mm512_loadu_si512(qd[t].g[k]);
            gh[t][k] = _mm512_loadu_si512(qd[t].gh[k]);
        }
#pragma GCC unroll 1
    for (int n = 0; n < KB; n++) {
        const __m512i raw = _mm512_loadu_si512(kb->k[n]);
        const __m512i lo = _mm512_and_si512(raw, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
        for (int t = 0; t < TT; t++) {
            __m512i g = dpbusd(dpbusd(_mm512_setzero_si512(), lo, gl[t][2]), hi, gh[t][2]);
            g = dpbusd(dpbusd(_mm512_slli_epi32(g, 8), lo, gl[t][1]), hi, gh[t][1]);
            part[t][n] = dpbusd(dpbusd(_mm512_slli_epi32(g, 8), lo, gl[t][0]), hi, gh[t][0]);
        }
    }
}

/* A row's start values at head_dim 128 joined as its digits are, summed per head_dim block:
 * lane 4·L + i = block L's (each key's lanes of block L summed get it once). */
static inline __m512i q4_init_128(const kvq_qdigits *qd)
{
    const __m512i in = _mm512_add_epi32(
        _mm512_add_epi32(_mm512_slli_epi32(_mm512_loadu_si512(qd->init4 + 32), 16),
                         _mm512_slli_epi32(_mm512_loadu_si512(qd->init4 + 16), 8)),
        _mm512_loadu_si512(qd->init4));
    const __m512i pairs = _mm512_add_epi32(in, _mm512_shuffle_epi32(in, _MM_PERM_CDAB));
    return _mm512_add_epi32(pairs, _mm512_shuffle_epi32(pairs, _MM_PERM_BADC));
}

/* The K block scales of the block's keys at head_dim 128 for sum16_q4_128: sc[i] lane 4·L + k
 * = key 4i + k's scale of head_dim block L (0 past the block's keys). */
static inline void q4_k_scales_128(const kvq_group *x, const kvq_block *kb, __m512 *sc)
{
    const __m512i kl_to_lk = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11,
                                               15);
    uint16_t tmp[KB * 4];
    const char *base = x->ks + kb->j0 * x->ks_seq;
    if (x->ks_seq != 8) { /* scales not side by side: the keys' 4 words gathered first */
        for (int n = 0; n < KB; n++)
            memcpy(tmp + 4 * n, base + (n < kb->n ? n : 0) * x->ks_seq, 8);
        base = (const char *)tmp;
    }
    for (int i = 0; i < 4; i++) { /* words 4k + L of keys 4i.. as lanes 4L + k */
        const __m256i h = kb->n == KB ? _mm256_loadu_si256((const __m256i *)(base + 32 * i))
                                      : _mm256_maskz_loadu_epi16(tail_mask16(4 * (kb->n - 4 * i)),
                                                                 base + 32 * i);
        sc[i] = _mm512_permutexvar_ps(kl_to_lk, _mm512_cvtph_ps(h));
    }
}

/* sum16 of 16 keys' int32 lanes (lane 4·L + i: head_dim block L) with each key's block scales
 * applied after the first two levels, which leave per 128-bit lane L block L's sums of 4 keys,
 * and the start values `init` (q4_init_128) added there; a block's sum is exact in int32
 * (32 values · 8·10^6 · 8 < 2^31). */
static inline __m512 sum16_q4_128(const __m512i a[KB], const __m512 *sc, __m512i init)
{
    __m512i b[8];
    __m512 c[4], e[2];
    for (int i = 0; i < 8; i++)
        b[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]),
                                _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; i++)
        c[i] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(
                                 _mm512_add_epi32(_mm512_unpacklo_epi64(b[2 * i], b[2 * i + 1]),
                                                  _mm512_unpackhi_epi64(b[2 * i], b[2 * i + 1])),
                                 init)),
                             sc[i]);
    for (int i = 0; i < 2; i++)
        e[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(e[0], e[1], 0x88),
                         _mm512_shuffle_f32x4(e[0], e[1], 0xdd));
}

/* T rows at head_dim 128, two at a time (4 rows' planes would not fit the 32 registers; the
 * second pair reads the block's K rows from L1). */
static inline __attribute__((always_inline)) void dot_tile_q4_128(const kvq_group *x,
                                                                  const kvq_block *kb,
                                                                  const kvq_qdigits *qd, int T,
                                                                  __m512 *s)
{
    __m512i part[4][KB];
    for (int t0 = 0; t0 < T; t0 += 2) {
        if (T - t0 >= 2)
            dot_rows_q4_128(kb, qd + t0, 2, part + t0);
        else
            dot_rows_q4_128(kb, qd + t0, 1, part + t0);
    }
    __m512 sc[4];
    q4_k_scales_128(x, kb, sc);
    for (int t = 0; t < T; t++)
        s[t] = _mm512_mul_ps(sum16_q4_128(part[t], sc, q4_init_128(&qd[t])),
                             _mm512_set1_ps(qd[t].sq));
}

/* One group of NC chunks of 32 of head_dim from c0 (NC constant once inlined: the 4·NC int32
 * accumulators live in registers across the np key pairs, walked in a loop that is not
 * unrolled, rows in address order), then o[c0 ..] = o·corr + sw·(hi + lo/32768) in head_dim
 * order. */
static inline __attribute__((always_inline)) void v_vnni_group(const void *const *vrows, int64_t c0,
                                                               int NC, int np, uint32_t keys,
                                                               const int32_t *whi,
                                                               const int32_t *wlo, float sw,
                                                               float corr, float *o)
{
    __m512i hl[4], hh[4], ll[4], lh[4]; /* [digit hi/lo][unpack lo/hi] per chunk */
    for (int c = 0; c < NC; c++)
        hl[c] = hh[c] = ll[c] = lh[c] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int m = 0; m < np; m++) {
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

/* One row's V over np key pairs: v_vnni_group over head_dim (% 64 == 0) 128 values at a time,
 * then the last 64. */
static inline __attribute__((always_inline)) void v_vnni_row(const void *const *vrows, int64_t d,
                                                             int np, uint32_t keys,
                                                             const int32_t *whi,
                                                             const int32_t *wlo, float sw,
                                                             float corr, float *o)
{
    int64_t c0 = 0;
    for (; c0 + 128 <= d; c0 += 128)
        v_vnni_group(vrows, c0, 4, np, keys, whi, wlo, sw, corr, o);
    if (c0 < d)
        v_vnni_group(vrows, c0, 2, np, keys, whi, wlo, sw, corr, o);
}

/* V with VNNI over nk (1 or 2) vectors of 16 keys (vrows, w: 16·nk; keys: bit n for key n):
 * the weights w (p · V's row scale, >= 0) are quantized against their largest, sw = max w /
 * 32767, as hi + lo/32768 (hi in [0, 32767], |lo| <= 16384: 2^-31 of max w), packed in key
 * pairs; vpdpwssd takes two keys' int16 V values (vpmovsxbw, interleaved by vpunpck[lh]wd)
 * times the pair's weights, the sums exact in int32 (32 · 32767 · 127 < 2^31). false (nothing
 * done) when a weight is not finite (a NaN or infinite V scale): the float path carries it.
 * head_dim % 64 == 0. */
static inline bool accumulate_v_vnni(const void *const *vrows, int64_t d, float *o, float corr,
                                     uint32_t keys, const float *w, int nk)
{
    __m512 wv[2];
    __mmask16 bad = 0;
    for (int h = 0; h < nk; h++) {
        wv[h] = _mm512_maskz_loadu_ps((__mmask16)(keys >> 16 * h), w + 16 * h);
        bad |= _mm512_fpclass_ps_mask(wv[h], 0x99); /* NaN or infinite (reduce_max may drop a NaN) */
    }
    if (bad)
        return false;
    const float wmax = _mm512_reduce_max_ps(nk == 2 ? _mm512_max_ps(wv[0], wv[1]) : wv[0]);
    if (wmax == 0.0f) {
        const __m512 cv = _mm512_set1_ps(corr);
        for (int64_t c = 0; c < d; c += 16)
            _mm512_storeu_ps(o + c, _mm512_mul_ps(_mm512_loadu_ps(o + c), cv));
        return true;
    }
    const float sw = wmax / 32767.0f;
    int32_t whi[16], wlo[16]; /* key pair m: (w[2m], w[2m+1]) as two int16 */
    for (int h = 0; h < nk; h++) {
        const __m512i hi = _mm512_cvtps_epi32(_mm512_mul_ps(wv[h], _mm512_set1_ps(1.0f / sw)));
        const __m512 rest = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_set1_ps(sw), wv[h]);
        const __m512i lo = _mm512_cvtps_epi32(_mm512_mul_ps(rest, _mm512_set1_ps(32768.0f / sw)));
        _mm256_storeu_si256((__m256i *)(whi + 8 * h), _mm512_cvtepi32_epi16(hi));
        _mm256_storeu_si256((__m256i *)(wlo + 8 * h), _mm512_cvtepi32_epi16(lo));
    }
    v_vnni_row(vrows, d, 8 * nk, keys, whi, wlo, sw, corr, o);
    return true;
}
/* A tile of T query rows (T = 1..4, a constant once inlined) of one GQA group on int8 K/V:
 * each K row is loaded and flipped once for the T rows' digits (3·T accumulators), key after
 * key in address order; s[t] = row t's 16 scores (log2 units, sq and the row scales
 * applied). */
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
            const __m512i kx = _mm512_xor_si512(load_stream_epi16(kn + c, ~0u), flip);
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

/* int8 at head_dim 128, TT (1 or 2) rows with their digit planes and start values in
 * registers across the block's keys (as dot_rows_q4_128); part[t][n] = row t's lanes of key n. */
static inline __attribute__((always_inline)) void dot_rows_int8_128(const kvq_block *kb,
                                                                    const kvq_qdigits *qd,
                                                                    int TT, __m512 (*part)[KB])
{
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512i g0[2][3], g1[2][3], in[2][3]; /* planes of values 0..63 and 64..127 */
    for (int t = 0; t < TT; t++)
        for (int k = 0; k < 3; k++) {
            g0[t][k] = _mm512_loadu_si512(qd[t].g[k]);
            g1[t][k] = _mm512_loadu_si512(qd[t].g[k] + 64);
            in[t][k] = _mm512_loadu_si512(qd[t].init[k]);
        }
#pragma GCC unroll 1
    for (int n = 0; n < KB; n++) {
        const int8_t *kn = kb->k[n];
        /* in 256-bit halves: why, above load_chunk */
        const __m512i k0 = _mm512_xor_si512(load_stream_epi16(kn, ~0u), flip);
        const __m512i k1 = _mm512_xor_si512(load_stream_epi16(kn + 64, ~0u), flip);
        for (int t = 0; t < TT; t++) {
            __m512i g[3];
            for (int k = 0; k < 3; k++)
                g[k] = dpbusd(dpbusd(in[t][k], k0, g0[t][k]), k1, g1[t][k]);
            /* |lane| <= 8 · 128 · 128 = 2^17 per digit: g2·65536 would overflow int32, so
             * the digits join in float32 */
            part[t][n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(g[2]), _mm512_set1_ps(65536.0f),
                                         _mm512_fmadd_ps(_mm512_cvtepi32_ps(g[1]),
                                                         _mm512_set1_ps(256.0f),
                                                         _mm512_cvtepi32_ps(g[0])));
        }
    }
}

static inline void dot_tile_vnni(const kvq_block *kb, int64_t d, const kvq_qdigits *qd, int T,
                                 __m512 *s)
{
    if (d == 128) {
        __m512 part[4][KB];
        for (int t0 = 0; t0 < T; t0 += 2) {
            if (T - t0 >= 2)
                dot_rows_int8_128(kb, qd + t0, 2, part + t0);
            else
                dot_rows_int8_128(kb, qd + t0, 1, part + t0);
        }
        for (int t = 0; t < T; t++)
            s[t] = _mm512_mul_ps(sum16(part[t]), _mm512_mul_ps(kb->ks, _mm512_set1_ps(qd[t].sq)));
        return;
    }
    switch (T) {
    case 1: dot_tile_vnni_t(kb, d, qd, 1, s); break;
    case 2: dot_tile_vnni_t(kb, d, qd, 2, s); break;
    case 3: dot_tile_vnni_t(kb, d, qd, 3, s); break;
    default: dot_tile_vnni_t(kb, d, qd, 4, s); break;
    }
}

/* The tile's V (accumulate_v_vnni's int16 weights, per row), row t's o_t = o_t·corr[t] + sw_t·(hi
 * + lo/32768). head_dim >= 128: row after row, each through v_vnni_group over the block's V rows
 * read whole, key after key (the first row's pass streams them in address order, the others reread
 * them from L1); smaller: each pair of V rows loaded and interleaved once per 32 values of
 * head_dim for the T rows (4·T int32 accumulators), which reads the 16 rows side by side. Zen 5,
 * int8, alternated in one process, one thread, from memory: row after row took 0.93-0.97x the time
 * at head_dim 128 (D2; D4 0.96-0.97x, a D3-like batch 0.96x), 0.81x at 192, 1.06x at 64; in L2
 * 1.03x at 128, 1.08x at 64. A row without keys has weight 0 and corr 1. false (nothing done) when
 * a weight is not finite. */
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
        if (_mm512_fpclass_ps_mask(wv, 0x99)) /* NaN or infinite (reduce_max may drop a NaN) */
            return false;
        const float wmax = _mm512_reduce_max_ps(wv);
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
    if (d >= 128) {
        for (int t = 0; t < T; t++)
            v_vnni_row(vrows, d, KB / 2, keys[t], whi[t], wlo[t], sw[t], corr[t], o + t * ostride);
        return true;
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
    case 1: return v_tile_vnni_t(vrows, d, 1, o, ostride, corr, keys, w);
    case 2: return v_tile_vnni_t(vrows, d, 2, o, ostride, corr, keys, w);
    case 3: return v_tile_vnni_t(vrows, d, 3, o, ostride, corr, keys, w);
    default: return v_tile_vnni_t(vrows, d, 4, o, ostride, corr, keys, w);
    }
}

/* q4 V with VNNI. A 64-byte chunk of a V row holds 4 head_dim blocks, one per 128-bit lane
 * (byte p of block L: element p in the low nibble, p + 16 in the high one, in the permuted
 * order of attn_kvq_pack_q). Four keys' chunks interleaved byte by byte (vpunpck[lh]bw, then
 * [lh]wd, within the lanes) give per 32-bit lane one byte position of 4 keys; (byte ^ 0x88)
 * masked to a nibble's place is 16·q as a signed byte, vpdpbusd's signed operand, against the
 * four keys' weights as unsigned bytes. A weight, p · the key's block scale (>= 0), is a 24-bit
 * integer against the largest of its head_dim block, u = round(w · 2^k) with the power of two
 * that puts the largest in [2^23, 2^24), taken as its three bytes (3 digit products, each exact in int32: 16 keys · 255 · 128 < 2^20); the
 * digits join in float32 per block end, so the error stays at float32's. */

/* The V scales of the chunk's nbl (2 or 4) head_dim blocks from blk0, for the block's 16 keys:
 * sc[L] lane n = key n's scale of block blk0 + L (0 past the block's keys). */
static inline void q4_v_chunk_scales(const kvq_group *x, const kvq_block *kb, int64_t blk0,
                                     int nbl, __m512 *sc)
{
    const char *base = x->vs + kb->j0 * x->vs_seq + 2 * blk0;
    if (nbl == 4) { /* each key's 4 scales as one 64-bit word, transposed into [L][key] */
        const __m512i n8 = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
        const __m512i seq = _mm512_set1_epi64(x->vs_seq);
        const __mmask16 have = tail_mask16(kb->n);
        __m512i g0, g1;
        if (x->vs_seq == 8 && kb->n == KB) { /* side by side (head_dim 128): two loads */
            g0 = _mm512_loadu_si512(base);
            g1 = _mm512_loadu_si512(base + 64);
        } else if (x->vs_seq == 8) {
            g0 = _mm512_maskz_loadu_epi64((__mmask8)have, base);
            g1 = _mm512_maskz_loadu_epi64((__mmask8)(have >> 8), base + 64);
        } else {
            g0 = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), (__mmask8)have,
                                             _mm512_mullo_epi64(n8, seq), base, 1);
            g1 = _mm512_mask_i64gather_epi64(
                _mm512_setzero_si512(), (__mmask8)(have >> 8),
                _mm512_mullo_epi64(_mm512_add_epi64(n8, _mm512_set1_epi64(8)), seq), base, 1);
        }
        /* word L·16 + n of the result: key n's word L (g0 for n < 8, g1 after) */
        __m512i idx[2];
        for (int h = 0; h < 2; h++) {
            int16_t ix[32];
            for (int i = 0; i < 32; i++) {
                const int L = 2 * h + i / 16, n = i % 16;
                ix[i] = (int16_t)((n < 8 ? 0 : 32) + (n % 8) * 4 + L);
            }
            idx[h] = _mm512_loadu_si512(ix);
        }
        for (int h = 0; h < 2; h++) {
            const __m512i w = _mm512_permutex2var_epi16(g0, idx[h], g1);
            sc[2 * h] = _mm512_cvtph_ps(_mm512_castsi512_si256(w));
            sc[2 * h + 1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(w, 1));
        }
        return;
    }
    for (int L = 0; L < nbl; L++) {
        float f[KB];
        for (int n = 0; n < KB; n++) {
            uint16_t h = 0;
            if (n < kb->n)
                memcpy(&h, base + n * x->vs_seq + 2 * L, 2);
            f[n] = _cvtsh_ss(h);
        }
        sc[L] = _mm512_loadu_ps(f);
    }
}

/* One row's weights for a chunk, nk (1 or 2, a constant once inlined) vectors of 16 keys (w,
 * keys and sc[4·h ..] per vector h): wq[4·h + Q] 32-bit lane k of 128-bit lane L (head_dim
 * block L) = byte k of the 4 weights of keys 16h + 4Q.. (k < 3; v_q4_pass broadcasts each
 * across its 128-bit lane: a quarter of the stores of the broadcast vectors, which ran 2%
 * slower, in cache and from L3); swv lane 4·L.. = the
 * block's step over 16 (16·q). Each block's weights are scaled by the power of two that puts
 * their largest in [2^23, 2^24) (exact, and an integer there; no division). false when a
 * weight is not finite or negative (a negative scale): the float32 path carries them. */
static inline __attribute__((always_inline)) bool q4_v_weights(const float *w,
                                                               const __mmask16 *keys, int nk,
                                                               const __m512 *sc, int nbl,
                                                               __m512i *wq, __m512 *swv)
{
    const __m512i bytes_by_digit = _mm512_set4_epi32(0x0f0b0703, 0x0e0a0602, 0x0d090501,
                                                     0x0c080400);
    __m512 wv[2][4], wm[4];
    __mmask16 bad = 0;
    for (int h = 0; h < nk; h++) {
        const __m512 wp = _mm512_loadu_ps(w + 16 * h);
        for (int L = 0; L < 4; L++) {
            wv[h][L] = L < nbl ? _mm512_maskz_mul_ps(keys[h], wp, sc[4 * h + L])
                               : _mm512_setzero_ps();
            bad |= _mm512_fpclass_ps_mask(wv[h][L], 0xd9); /* NaN, infinite, negative */
        }
    }
    if (bad)
        return false;
    for (int L = 0; L < 4; L++)
        wm[L] = nk == 2 ? _mm512_max_ps(wv[0][L], wv[1][L]) : wv[0][L];
    /* every 128-bit lane: the 4 blocks' largest weights */
    const __m512 m01 = _mm512_max_ps(_mm512_unpacklo_ps(wm[0], wm[1]), _mm512_unpackhi_ps(wm[0], wm[1]));
    const __m512 m23 = _mm512_max_ps(_mm512_unpacklo_ps(wm[2], wm[3]), _mm512_unpackhi_ps(wm[2], wm[3]));
    __m512 m = _mm512_max_ps(_mm512_shuffle_ps(m01, m23, 0x44), _mm512_shuffle_ps(m01, m23, 0xee));
    m = _mm512_max_ps(m, _mm512_shuffle_f32x4(m, m, 0x4e));
    m = _mm512_max_ps(m, _mm512_shuffle_f32x4(m, m, 0xb1));
    /* 2^k with k = 23 - floor(log2 max) (a block of zeros: any k, 100) */
    const __m512 k = _mm512_min_ps(_mm512_sub_ps(_mm512_set1_ps(23.0f), _mm512_getexp_ps(m)),
                                   _mm512_set1_ps(100.0f));
    const __m512 kl[4] = {_mm512_permute_ps(k, 0x00), _mm512_permute_ps(k, 0x55),
                          _mm512_permute_ps(k, 0xaa), _mm512_permute_ps(k, 0xff)};
    for (int h = 0; h < nk; h++) {
        __m512i u[4];
        for (int L = 0; L < 4; L++)
            u[L] = _mm512_shuffle_epi8(_mm512_cvtps_epi32(_mm512_scalef_ps(wv[h][L], kl[L])),
                                       bytes_by_digit);
        /* 128-bit lanes transposed: tq[Q] lane L = u[L] lane Q */
        const __m512i t0 = _mm512_shuffle_i32x4(u[0], u[1], 0x44), t1 = _mm512_shuffle_i32x4(u[0], u[1], 0xee);
        const __m512i t2 = _mm512_shuffle_i32x4(u[2], u[3], 0x44), t3 = _mm512_shuffle_i32x4(u[2], u[3], 0xee);
        const __m512i tq[4] = {_mm512_shuffle_i32x4(t0, t2, 0x88), _mm512_shuffle_i32x4(t0, t2, 0xdd),
                               _mm512_shuffle_i32x4(t1, t3, 0x88), _mm512_shuffle_i32x4(t1, t3, 0xdd)};
        for (int Q = 0; Q < 4; Q++) {
            wq[4 * h + Q] = tq[Q];
        }
    }
    /* lane 4·L + i: 2^-k_L / 16 */
    const __m512i rep4 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    *swv = _mm512_permutexvar_ps(rep4, _mm512_scalef_ps(_mm512_set1_ps(1.0f / 16.0f),
                                                        _mm512_sub_ps(_mm512_setzero_ps(), k)));
    return true;
}

/* The 4 vectors x[i] (lane L: 4 values of block L, positions 4i..4i+3) in block order:
 * out[L] = the 16 values of block L. */
static inline void lanes_transpose(const __m512 *x, __m512 *out)
{
    const __m512 t0 = _mm512_shuffle_f32x4(x[0], x[1], 0x44), t1 = _mm512_shuffle_f32x4(x[0], x[1], 0xee);
    const __m512 t2 = _mm512_shuffle_f32x4(x[2], x[3], 0x44), t3 = _mm512_shuffle_f32x4(x[2], x[3], 0xee);
    out[0] = _mm512_shuffle_f32x4(t0, t2, 0x88);
    out[1] = _mm512_shuffle_f32x4(t0, t2, 0xdd);
    out[2] = _mm512_shuffle_f32x4(t1, t3, 0x88);
    out[3] = _mm512_shuffle_f32x4(t1, t3, 0xdd);
}

/* One half h (16 of each 32 values) of a q4 V chunk into a row of O: o = o·cv + the sums xs
 * (lanes_transpose's input) of the chunk's nbl head_dim blocks (32 values per block, from oc). */
static inline void v_q4_store_half(float *oc, int h, const __m512 xs[4], __m512 cv, int nbl)
{
    __m512 blk[4];
    lanes_transpose(xs, blk);
    for (int L = 0; L < nbl; L++) {
        float *ob = oc + 32 * L + 16 * h;
        _mm512_storeu_ps(ob, _mm512_fmadd_ps(_mm512_loadu_ps(ob), cv, blk[L]));
    }
}

/* One pass over NQ key quads (4: a block; 8: two blocks for one row) for XP of the 4
 * byte-position vectors from x0 (T rows, XP constant once inlined; T·XP·6 int32 accumulators
 * in registers; row t's weights from wq[NQ·t], q4_v_weights's), into f[t][x][nibble]: the
 * float32 sums times the row's block steps. */
static inline __attribute__((always_inline)) void v_q4_pass(const void *const *vrows, int64_t c,
                                                            bool whole, unsigned any, int NQ,
                                                            int T, int x0, int XP,
                                                            const __m512i *wq, const __m512 *swv,
                                                            __m512 *f)
{
    const __m512i f0 = _mm512_set1_epi8((char)0xf0), x80 = _mm512_set1_epi8((char)0x80);
    __m512i acc[4][2][2][3]; /* [row][vector][low/high nibble][digit] */
    for (int t = 0; t < T; t++)
        for (int i = 0; i < XP; i++)
            for (int h = 0; h < 2; h++)
                for (int k = 0; k < 3; k++)
                    acc[t][i][h][k] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int Q = 0; Q < NQ; Q++) {
        if (!(any >> (4 * Q) & 15))
            continue; /* weight 0 for every row: the keys add nothing */
        const __m512i a = load_chunk((const char *)vrows[4 * Q] + c, whole);
        const __m512i b = load_chunk((const char *)vrows[4 * Q + 1] + c, whole);
        const __m512i cc = load_chunk((const char *)vrows[4 * Q + 2] + c, whole);
        const __m512i dd = load_chunk((const char *)vrows[4 * Q + 3] + c, whole);
        const __m512i ab = x0 < 2 ? _mm512_unpacklo_epi8(a, b) : _mm512_unpackhi_epi8(a, b);
        const __m512i cd = x0 < 2 ? _mm512_unpacklo_epi8(cc, dd) : _mm512_unpackhi_epi8(cc, dd);
        for (int i = 0; i < XP; i++) {
            const __m512i xv = (x0 + i) % 2 ? _mm512_unpackhi_epi16(ab, cd) : _mm512_unpacklo_epi16(ab, cd);
            /* (x & 0xf0) ^ 0x80: 16·q of the high nibble; of the low one after a shift by 4 */
            const __m512i hi = _mm512_ternarylogic_epi32(xv, f0, x80, 0x6a);
            const __m512i lo = _mm512_ternarylogic_epi32(_mm512_slli_epi16(xv, 4), f0, x80, 0x6a);
            for (int t = 0; t < T; t++) {
                const __m512i tq = _mm512_loadu_si512(wq + NQ * t + Q);
                const __m512i wk[3] = {_mm512_shuffle_epi32(tq, _MM_PERM_AAAA),
                                       _mm512_shuffle_epi32(tq, _MM_PERM_BBBB),
                                       _mm512_shuffle_epi32(tq, _MM_PERM_CCCC)};
                for (int k = 0; k < 3; k++) {
                    acc[t][i][0][k] = dpbusd(acc[t][i][0][k], wk[k], lo);
                    acc[t][i][1][k] = dpbusd(acc[t][i][1][k], wk[k], hi);
                }
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int i = 0; i < XP; i++)
            for (int h = 0; h < 2; h++)
                f[(t * 4 + x0 + i) * 2 + h] = _mm512_mul_ps(
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][i][h][2]), _mm512_set1_ps(65536.0f),
                                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][i][h][1]),
                                                    _mm512_set1_ps(256.0f),
                                                    _mm512_cvtepi32_ps(acc[t][i][h][0]))),
                    swv[t]);
}

/* The 4 byte-position vectors of a V chunk through v_q4_pass: one row in two passes of 2 (12
 * accumulators a pass), more rows in four passes of 1. */
static inline __attribute__((always_inline)) void v_q4_passes(const void *const *vrows, int64_t c,
                                                              bool whole, unsigned any, int NQ,
                                                              int T, const __m512i *wq,
                                                              const __m512 *swv, __m512 *f)
{
    if (T == 1) {
        v_q4_pass(vrows, c, whole, any, NQ, 1, 0, 2, wq, swv, f);
        v_q4_pass(vrows, c, whole, any, NQ, 1, 2, 2, wq, swv, f);
    } else
        for (int x0 = 0; x0 < 4; x0++)
            v_q4_pass(vrows, c, whole, any, NQ, T, x0, 1, wq, swv, f);
}

/* v_q4_passes with whole made a constant in each copy, so its loads take no test (load_chunk). */
static inline __attribute__((always_inline)) void v_q4_chunk(const void *const *vrows, int64_t c,
                                                             bool whole, unsigned any, int NQ,
                                                             int T, const __m512i *wq,
                                                             const __m512 *swv, __m512 *f)
{
    if (whole)
        v_q4_passes(vrows, c, true, any, NQ, T, wq, swv, f);
    else
        v_q4_passes(vrows, c, false, any, NQ, T, wq, swv, f);
}

/* q4 V for T rows (1..4, a constant once inlined): row t's o_t = o_t·corr[t] + Σ w·V, the
 * block's V rows read once for all T rows (as above). false (nothing done) when a weight is
 * not finite: the float32 path carries it. head_dim % 64 == 0. */
static inline __attribute__((always_inline)) bool v_q4_tile_t(const kvq_group *x,
                                                              const kvq_block *kb, int T,
                                                              float *o, int64_t ostride,
                                                              const float *corr,
                                                              const __mmask16 *keys,
                                                              const float *w)
{
    const int64_t bytes = x->d / 2;
    unsigned any = 0;
    for (int t = 0; t < T; t++)
        any |= keys[t];
    __m512 sc[4], swv[4], f[4 * 4 * 2];
    __m512i wq[4 * 16];
    if (bytes > 64) /* a weight not finite in a later chunk must leave o untouched */
        for (int64_t c = 0; c < bytes; c += 64) {
            const int nbl = bytes - c >= 64 ? 4 : 2;
            q4_v_chunk_scales(x, kb, c / 16, nbl, sc);
            for (int t = 0; t < T; t++)
                if (!q4_v_weights(w + 16 * t, &keys[t], 1, sc, nbl, wq, swv))
                    return false;
        }
    for (int64_t c = 0; c < bytes; c += 64) {
        const bool whole = bytes - c >= 64;
        const int nbl = whole ? 4 : 2;
        q4_v_chunk_scales(x, kb, c / 16, nbl, sc);
        for (int t = 0; t < T; t++)
            if (!q4_v_weights(w + 16 * t, &keys[t], 1, sc, nbl, wq + 4 * t, &swv[t]))
                return false;
        v_q4_chunk(kb->v, c, whole, any, 4, T, wq, swv, f);
        for (int t = 0; t < T; t++) {
            const __m512 cv = _mm512_set1_ps(corr[t]);
            float *oc = o + t * ostride + 2 * c; /* 32 values per 16 bytes */
            for (int h = 0; h < 2; h++) {
                const __m512 xs[4] = {f[(t * 4) * 2 + h], f[(t * 4 + 1) * 2 + h],
                                      f[(t * 4 + 2) * 2 + h], f[(t * 4 + 3) * 2 + h]};
                v_q4_store_half(oc, h, xs, cv, nbl);
            }
        }
    }
    return true;
}

/* q4 V of one row over two blocks' 32 keys (kb[0], kb[1]; vrows: their 32 V rows): o = o·corr + Σ w·V, one pass over
 * 8 key quads, the weights of both blocks sharing each head_dim block's power of two (half the
 * weight and epilogue work per key of v_q4_tile). false (nothing done) when a weight is not
 * finite. head_dim % 64 == 0. */
static bool v_q4_row2(const kvq_group *x, const kvq_block *kb, const void *const *vrows,
                      float *o, float corr, const __mmask16 *keys, const float *w)
{
    const int64_t bytes = x->d / 2;
    const unsigned any = keys[0] | (unsigned)keys[1] << 16;
    __m512 sc[8], swv, f[4 * 2];
    __m512i wq[32];
    if (bytes > 64) /* a weight not finite in a later chunk must leave o untouched */
        for (int64_t c = 0; c < bytes; c += 64) {
            const int nbl = bytes - c >= 64 ? 4 : 2;
            q4_v_chunk_scales(x, &kb[0], c / 16, nbl, sc);
            q4_v_chunk_scales(x, &kb[1], c / 16, nbl, sc + 4);
            if (!q4_v_weights(w, keys, 2, sc, nbl, wq, &swv))
                return false;
        }
    const __m512 cv = _mm512_set1_ps(corr);
    for (int64_t c = 0; c < bytes; c += 64) {
        const bool whole = bytes - c >= 64;
        const int nbl = whole ? 4 : 2;
        q4_v_chunk_scales(x, &kb[0], c / 16, nbl, sc);
        q4_v_chunk_scales(x, &kb[1], c / 16, nbl, sc + 4);
        if (!q4_v_weights(w, keys, 2, sc, nbl, wq, &swv))
            return false;
        v_q4_chunk(vrows, c, whole, any, 8, 1, wq, &swv, f);
        float *oc = o + 2 * c; /* 32 values per 16 bytes */
        for (int h = 0; h < 2; h++) {
            const __m512 xs[4] = {f[h], f[2 + h], f[4 + h], f[6 + h]};
            v_q4_store_half(oc, h, xs, cv, nbl);
        }
    }
    return true;
}

static inline bool v_q4_tile(const kvq_group *x, const kvq_block *kb, int T, float *o,
                             int64_t ostride, const float *corr, const __mmask16 *keys,
                             const float *w)
{
    switch (T) {
    case 1: return v_q4_tile_t(x, kb, 1, o, ostride, corr, keys, w);
    case 2: return v_q4_tile_t(x, kb, 2, o, ostride, corr, keys, w);
    case 3: return v_q4_tile_t(x, kb, 3, o, ostride, corr, keys, w);
    default: return v_q4_tile_t(x, kb, 4, o, ostride, corr, keys, w);
    }
}

static inline void dot_tile_vnni_q4(const kvq_group *x, const kvq_block *kb,
                                    const kvq_qdigits *qd, int T, __m512 *s)
{
    switch (T) {
    case 1: dot_tile_vnni_q4_t(x, kb, qd, 1, s); break;
    case 2: dot_tile_vnni_q4_t(x, kb, qd, 2, s); break;
    case 3: dot_tile_vnni_q4_t(x, kb, qd, 3, s); break;
    default: dot_tile_vnni_q4_t(x, kb, qd, 4, s); break;
    }
}
