/* avx2.c — x86 AVX2 + FMA attention: streaming online softmax over packed K/V blocks with
 * register-blocked micro-kernels (8-wide ymm, compiled with -mavx2 -mfma -mf16c only).
 *
 * Algorithm (FlashAttention-2 style, per (batch, kv head) group of the task):
 *   The group's query rows are flattened over its query heads (attn_group_rows), so one packed
 *   K/V block serves every head of a GQA group. A tile of bq such rows is packed once into
 *   Q panels; the keys go by blocks of bk:
 *     1. pack the block once per tile: Kᵀ into panels of NR keys, V row-major with head_dim
 *        padded to dp (a multiple of 8) with zeros, so no micro-kernel has an edge case;
 *     2. per micro tile of MR rows: S = Q·Kᵀ (6×16 micro-kernel), epilogue in registers:
 *        × scale·log2(e), additive mask (·log2 e), key limits by select (never -inf + NaN),
 *        running per-row vector max; interior blocks (every key visible, no mask) take a
 *        mask-free epilogue; blocks past every row's key limit are skipped (causal);
 *     3. per row: new max m', the accumulator and sum rescaled by 2^(m-m') only when the max
 *        rises, P = 2^(S - m') in place (exp2_poly.h), l += ΣP;
 *     4. O_acc += P·V (6×16 micro-kernel over d).
 *   Each row is normalised once at the end (a row that saw no key gives zeros).
 *   Full-row mode (full_row=1): a tile's scores against all its keys are kept (bq × Lk floats,
 *   meant for L2), one exact softmax per row, then P·V — no rescaling, but Lk-sized workspace.
 *   Decode path (at most DECODE_MAX_ROWS rows in a group, e.g. Lq = 1): no packing; K and V
 *   rows are read straight from memory, 8 keys per dot-product step, so K/V stream at memory
 *   speed. The rows of a group (the query heads of a GQA group, or Lq = 4 draft tokens) go in
 *   tiles of up to DEC_R = 4 that share each K and V vector load: scores DEC_KS keys side
 *   by side (R·2 accumulators, each Q vector loaded once for both keys), P·V with R·cols
 *   accumulators per pass over 8 keys held in L1 (the same FMAs as one row at a time, a quarter
 *   of the K/V loads; a GQA-4 tile in L2 ran 1.8x (f32) and 1.4x (bf16) faster on Zen 4 than
 *   the former re-read of the block per row). The tiles prefetch K and V DEC_PF_BYTES of rows
 *   ahead into L2 (the one-row loops too for half rows and paged K/V, dec_prefetch), one prefetch per line beside the loads (with R rows' FMAs per byte the
 *   hardware prefetchers alone fell behind: D2 f32 1.5x faster with it). The model options
 *   (window, ALiBi, soft cap) go through the tiles' own copies, with each row's slope, i' and
 *   band start and the prefill's epilogue; a group of one row (D1) keeps the one-row loops.
 *   run_partial: the same over a key range, leaving unnormalised (max, sum, acc) per row.
 *
 * Half inputs (bf16, f16 Q/K/V; compute stays float32, widening is exact, so the result is bit
 * for bit the float32 run on the widened inputs): bf16 widens as a 16-bit left shift, f16 with
 * F16C (vcvtph2ps). The tiled path widens while it packs (Q panels, Kᵀ panels through the
 * same 8×8 register transposes, V panels), so its micro-kernels are the float32 ones unchanged.
 * The decode path reads K and V in place and widens in the loads (a copy of its loops per
 * dtype, chosen once per block), moving half the bytes of float32; a group of one row (D1)
 * reads bf16 rows in an even/odd column order (load8_dec: one ALU op per 8 columns). K is read key by key through one load
 * instruction, which the hardware prefetchers follow (D1 on Zen 4: f32 1.5x faster than 8 keys
 * read column by column with prefetch; half rows prefetch too, dec_prefetch); its Q rows are
 * widened once into the Q panels, unused there. A row tail of d % 8 halves goes
 * through a small copy (AVX2 has no 16-bit masked load), so nothing past a row is read.
 *
 * Micro-kernels and registers (16 ymm):
 *   Q·Kᵀ 6×16: 12 accumulators, 2 K loads (panel [d][16]) and 1 Q broadcast (panel [d][6]) at a
 *   time, 12 FMAs per d step.  P·V 6×16: 12 accumulators (O_acc tile), 6 P broadcasts from the
 *   score rows, 2 V loads, 12 FMAs per key; an 6×8 version covers dp % 16 == 8.
 *
 * Layout: head_dim contiguous, any element strides for batch/head/seq (stride 0 included).
 *
 * NaN: masked scores are replaced by select, so a NaN in a K row reaches only the rows that
 * attend to it. Only a mask entry of -inf excludes a key (compared unordered: a NaN entry is a
 * NaN score, as in every variant, not an exclusion). A V row with a NaN or infinity would make
 * 0·V = NaN for a masked key inside the P·V micro-kernel, so a block whose packed V is not all
 * finite skips zero weights row by row (as naive does).
 *
 * Workspace per task (floats, each part 64-byte aligned; the same for every dtype), independent
 * of Lk in streaming mode:
 * Q panels bqp·d + K panel bk·d + V panel bk·dp + scores bqp·bk + O_acc bqp·dp + 12·bqp,
 * with bqp = max(round_up(bq, MR), DECODE_MAX_ROWS), dp = round_up(d, 8): 665 KB at the
 * defaults bq=192, bk=256 for d=128 on a 2 MiB L2. In full-row mode the scores are bqp·round_up(Lk, 16). */
/* Over 900 lines, on purpose: the tiled path, the decode path and their micro-kernels share
 * the packing, the epilogue and the half-input widening as static inline code built with AVX2
 * flags only; split, they would need an ISA header of their own to share it, for no reader's
 * gain (the kernel is read as one algorithm, above). */
#include "exp2_poly.h"
#include "kvq.h"
#include "variant.h"

#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

enum {
    MR = 6,               /* query rows of a micro tile */
    NR = 16,              /* keys of a Q·Kᵀ micro tile, head_dim columns of a P·V micro tile */
    DECODE_MAX_ROWS = 8,  /* groups with at most this many rows take the decode path */
    DEC_R = 4,            /* decode rows sharing each load of a K or V vector */
    DEC_KS = 2,           /* keys scored side by side in a decode tile, sharing each Q load */
    DEC_PF_BYTES = 32768, /* how far ahead (bytes of K or V rows) decode prefetches, into L2 */
};

enum { P_BQ, P_BK, P_FULL_ROW };

static const attn_param_info avx2_params[] = {
    [P_BQ] = {"bq", "query rows per tile (over the heads of a GQA group)", MR, 384, MR},
    [P_BK] = {"bk", "keys per packed K/V block", NR, 1024, NR},
    [P_FULL_ROW] = {"full_row", "1: whole score rows per tile and one exact softmax", 0, 1, 1},
};

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ---- workspace ---------------------------------------------------------------------------- */

typedef struct workspace {
    float *q_panel;  /* [bqp/MR][d][MR] */
    float *k_panel;  /* [bk/NR][d][NR] */
    float *v_panel;  /* [bk][dp] */
    float *scores;   /* [bqp][s_ld]: S, then P in place */
    float *acc;      /* [bqp][dp] unnormalised O */
    float *max_vec;  /* [bqp][8] running vector max of the scores */
    float *run_max;  /* [bqp] row max in log2 units */
    float *run_sum;  /* [bqp] */
    int64_t *limit;  /* [bqp] key limit of each row */
    int64_t *first;  /* [bqp] first key of each row (the sliding window's left edge) */
    float *slope, *pos; /* [bqp] ALiBi slope·log2(e) and i' of each row */
    int64_t s_ld;
} workspace;

/* Float offsets of the parts; total floats, or -1 on overflow. */
enum { PARTS = 12 };
static int64_t workspace_layout(const attn_problem *p, const int32_t *v, int64_t off[PARTS],
                                int64_t *s_ld)
{
    const int64_t d = p->head_dim, dp = round_up(d, 8), bk = v[P_BK];
    const int64_t bqp = max64(round_up(v[P_BQ], MR), DECODE_MAX_ROWS);
    *s_ld = v[P_FULL_ROW] ? max64(round_up(p->len_kv, NR), bk) : bk;
    int64_t size[PARTS] = {bqp * d, bk * d, bk * dp, 0, bqp * dp, bqp * 8, bqp, bqp, 2 * bqp,
                           2 * bqp, bqp, bqp};
    if (__builtin_mul_overflow(bqp, *s_ld, &size[3]))
        return -1;
    int64_t total = 0;
    for (int i = 0; i < PARTS; i++) {
        off[i] = total;
        if (__builtin_add_overflow(total, round_up(size[i], 16), &total))
            return -1;
    }
    return total;
}

static size_t avx2_workspace_size(const attn_problem *p, const int32_t *v)
{
    if (attn_kv_quantized(p)) /* quantized K/V: avx2_kvq.c */
        return attn_kvq_workspace(p);
    int64_t off[PARTS], s_ld, total = workspace_layout(p, v, off, &s_ld);
    if (total < 0 || total > INT64_MAX / (int64_t)sizeof(float))
        return SIZE_MAX;
    return (size_t)total * sizeof(float);
}

static workspace workspace_of(const attn_task *t)
{
    int64_t off[PARTS], s_ld;
    workspace_layout(t->problem, t->params, off, &s_ld);
    float *base = t->workspace;
    return (workspace){.q_panel = base + off[0], .k_panel = base + off[1],
                       .v_panel = base + off[2], .scores = base + off[3], .acc = base + off[4],
                       .max_vec = base + off[5], .run_max = base + off[6],
                       .run_sum = base + off[7], .limit = (int64_t *)(void *)(base + off[8]),
                       .first = (int64_t *)(void *)(base + off[9]), .slope = base + off[10],
                       .pos = base + off[11], .s_ld = s_ld};
}

/* ---- vector helpers ----------------------------------------------------------------------- */

/* 2^x for x <= 0 or NaN (exp2_poly.h): p(f)·2^n with n added to the exponent field. x below
 * ATTN_EXP2_MIN (and -inf) gives 0; NaN stays NaN (its exponent field is all ones and
 * cvtps(NaN) << 23 adds nothing). */
ALWAYS_INLINE __m256 exp2_nonpos(__m256 x)
{
    const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(x, n);
    __m256 p = _mm256_set1_ps(ATTN_EXP2_C5);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_EXP2_C4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_EXP2_C3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_EXP2_C2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_EXP2_C1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(ATTN_EXP2_C0));
    const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    const __m256 r = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
    const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(ATTN_EXP2_MIN), _CMP_LT_OQ);
    return _mm256_andnot_ps(tiny, r);
}

/* tanh(x) for 8 lanes, as tanh_ps of avx512_common.h (exp2_poly.h's two halves): the Taylor
 * series below ATTN_TANH_SMALL, else sign(x)·(1 - e)/(1 + e) with e = 2^(-2|x|·log2(e)). */
ALWAYS_INLINE __m256 tanh8(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_andnot_ps(sign, x);
    const __m256 e = exp2_nonpos(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f * ATTN_LOG2E)));
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 big = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
    const __m256 x2 = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(ATTN_TANH_C11);
    y = _mm256_fmadd_ps(y, x2, _mm256_set1_ps(ATTN_TANH_C9));
    y = _mm256_fmadd_ps(y, x2, _mm256_set1_ps(ATTN_TANH_C7));
    y = _mm256_fmadd_ps(y, x2, _mm256_set1_ps(ATTN_TANH_C5));
    y = _mm256_fmadd_ps(y, x2, _mm256_set1_ps(ATTN_TANH_C3));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(y, x2), x, x);
    const __m256 is_small = _mm256_cmp_ps(a, _mm256_set1_ps(ATTN_TANH_SMALL), _CMP_LT_OQ);
    return _mm256_blendv_ps(_mm256_or_ps(big, _mm256_and_ps(x, sign)), small, is_small);
}

/* The options' epilogue of scores in log2 units (keys along the lanes, from key `key`): the
 * soft cap cl·tanh(s / cl) (cl = c·log2(e)), then the ALiBi bias slope·(key + lane - i'), the
 * difference exact in float. */
typedef struct score_opts {
    bool softcap, alibi;
    __m256 cl, inv_cl;
} score_opts;

ALWAYS_INLINE __m256 apply_options(const score_opts *o, __m256 s, int64_t key, float slope,
                                   float pos)
{
    if (!o) /* a constant NULL at the call: the plain kernel, nothing of this compiled in */
        return s;
    if (o->softcap)
        s = _mm256_mul_ps(o->cl, tanh8(_mm256_mul_ps(s, o->inv_cl)));
    if (o->alibi) {
        const __m256 j = _mm256_add_ps(_mm256_set1_ps((float)key),
                                       _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7));
        s = _mm256_fmadd_ps(_mm256_set1_ps(slope), _mm256_sub_ps(j, _mm256_set1_ps(pos)), s);
    }
    return s;
}

static score_opts score_opts_of(const attn_problem *p)
{
    const float cl = p->softcap * ATTN_LOG2E;
    return (score_opts){.softcap = p->softcap != 0.0f, .alibi = p->alibi_slopes != NULL,
                        .cl = _mm256_set1_ps(cl),
                        .inv_cl = _mm256_set1_ps(cl != 0.0f ? 1.0f / cl : 0.0f)};
}

/* Keys [key, key + 8) of a row's band [first, limit) as a lane mask. */
ALWAYS_INLINE __m256 band_lanes(int64_t key, int64_t first, int64_t limit);

ALWAYS_INLINE float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Largest non-NaN lane (-inf when none): max(x, m) returns m when x is NaN. */
ALWAYS_INLINE float hmax(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_max_ps(_mm_movehl_ps(s, s), s);
    s = _mm_max_ss(_mm_movehdup_ps(s), s);
    return _mm_cvtss_f32(s);
}

/* Lanes l with l < n (n clamped to [0, 8]) all ones. */
ALWAYS_INLINE __m256i lanes_below(int64_t n)
{
    const int32_t k = (int32_t)(n < 0 ? 0 : n > 8 ? 8 : n);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

ALWAYS_INLINE __m256 band_lanes(int64_t key, int64_t first, int64_t limit)
{
    return _mm256_castsi256_ps(
        _mm256_andnot_si256(lanes_below(first - key), lanes_below(limit - key)));
}

/* ---- loads that widen half inputs --------------------------------------------------------- */

/* Element c of a row of dt elements, as float32 (exact). */
ALWAYS_INLINE float elem(const void *row, int64_t c, attn_dtype dt)
{
    if (dt == ATTN_F32)
        return ((const float *)row)[c];
    const uint16_t x = ((const uint16_t *)row)[c];
    return dt == ATTN_BF16 ? attn_bf16_to_f32(x) : attn_f16_to_f32(x);
}

/* Eight halves widened: bf16 is the top half of a float32, f16 converts with F16C. */
ALWAYS_INLINE __m256 widen8(__m128i h, attn_dtype dt)
{
    if (dt == ATTN_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* Elements [c, c + 8) of a row of dt elements, as float32. Inlined with a constant dt, so
 * each dtype gets its own copy of the loop that calls it. */
ALWAYS_INLINE __m256 load8(const void *row, int64_t c, attn_dtype dt)
{
    if (dt == ATTN_F32)
        return _mm256_loadu_ps((const float *)row + c);
    return widen8(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + c)), dt);
}

/* Elements [c, c + n), 0 < n < 8, lanes past n zero, nothing past them read; `tail` is
 * lanes_below(n). AVX2 has no 16-bit masked load: half rows take their whole pairs with a
 * 32-bit masked load and an odd last element by a blend of its broadcast (no call, so the
 * loops around keep their accumulators in registers; a memcpy here spilled them). */
ALWAYS_INLINE __m256 load8_tail(const void *row, int64_t c, int64_t n, __m256i tail,
                                attn_dtype dt)
{
    if (dt == ATTN_F32)
        return _mm256_maskload_ps((const float *)row + c, tail);
    const uint16_t *x = (const uint16_t *)row + c;
    const __m128i pairs = _mm_cmpgt_epi32(_mm_set1_epi32((int)(n / 2)), _mm_setr_epi32(0, 1, 2, 3));
    __m128i h = _mm_maskload_epi32((const int *)(const void *)x, pairs);
    if (n & 1) {
        const __m128i last = _mm_cmpeq_epi16(_mm_set1_epi16((short)(n - 1)),
                                             _mm_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7));
        h = _mm_blendv_epi8(h, _mm_set1_epi16((short)x[n - 1]), last);
    }
    return widen8(h, dt);
}

/* Software prefetch into L2 of the line holding element c of `row` (a decode tile's K and V
 * rows pf_keys() keys ahead, from attn_kv_rows_ahead: through the page table when paged). */
ALWAYS_INLINE void prefetch_row(const void *row, int64_t c, attn_dtype dt)
{
    _mm_prefetch((const char *)row + c * (dt == ATTN_F32 ? 4 : 2), _MM_HINT_T1);
}

/* Software prefetch into L2 of a whole row of d dt elements, one per line: once per key,
 * outside the FMA loops (a prefetch branch inside them made GCC spill accumulators there). */
ALWAYS_INLINE void prefetch_whole_row(const void *row, int64_t d, attn_dtype dt)
{
    const int64_t bytes = d * (dt == ATTN_F32 ? 4 : 2);
    for (int64_t b = 0; b < bytes; b += 64)
        _mm_prefetch((const char *)row + b, _MM_HINT_T1);
}

/* Keys ahead that decode prefetches: DEC_PF_BYTES of rows, so half rows prefetch as far
 * ahead in time as float32 ones (64 keys at d = 128 for float32, 128 for bf16/f16). */
ALWAYS_INLINE int64_t pf_keys(int64_t d, attn_dtype dt)
{
    return max64(8, DEC_PF_BYTES / (d * (dt == ATTN_F32 ? 4 : 2)) / 8 * 8);
}

/* Whether the one-row decode loops prefetch K and V rows pf_keys() ahead: paged (each page
 * starts a stream the hardware prefetchers must find again), and half rows (D1 bf16 on Zen 4:
 * 9.9 -> 5.4 ms; the hardware prefetchers alone kept 256-byte rows at half the read bandwidth),
 * not contiguous float32 (no gain measured, read at 0.8 of the bandwidth without it). */
static bool dec_prefetch(const attn_problem *p)
{
    return p->page_size != 0 || p->dtype != ATTN_F32;
}

/* Row j of a tensor of dt elements with row stride ld (elements) from row 0 at base. */
ALWAYS_INLINE const void *row_at(const void *base, int64_t j, int64_t ld, attn_dtype dt)
{
    return (const char *)base + j * ld * (dt == ATTN_F32 ? 4 : 2);
}

/* Decode's bf16 column order: a 32-byte load holds 16 bf16 columns [c, c + 16) as 8 pairs, and
 * one ALU op widens each half of them (shift left 16: the even columns; mask the high
 * half: the odd ones) where vpmovzxwd + shift took two per 8 columns and capped the decode
 * loops' rate. So within each whole 16 columns of [0, d16) (d16 = d rounded down to 16) the
 * widened Q rows, the K/V vectors and the accumulators hold the even columns, then the odd
 * ones; the columns from d16 on (and every column of f32 and f16) stay in order. */

/* load8 in decode's column order for a vector c below d16 (a multiple of 8); odd says
 * c % 16 == 8, a constant at the calls in the loops, so each compiles to one ALU op (and the
 * two halves' loads of the same 32 bytes to one load). */
ALWAYS_INLINE __m256 load8_ord(const void *row, int64_t c, bool odd, attn_dtype dt)
{
    if (dt != ATTN_BF16)
        return load8(row, c, dt);
    const __m256i x = _mm256_loadu_si256(
        (const __m256i *)(const void *)((const uint16_t *)row + c - (odd ? 8 : 0)));
    return _mm256_castsi256_ps(odd ? _mm256_and_si256(x, _mm256_set1_epi32((int)0xffff0000u))
                                   : _mm256_slli_epi32(x, 16));
}

/* The same for any vector c with c + 8 <= d. */
ALWAYS_INLINE __m256 load8_dec(const void *row, int64_t c, bool odd, int64_t d16, attn_dtype dt)
{
    return dt == ATTN_BF16 && c < d16 ? load8_ord(row, c, odd, dt) : load8(row, c, dt);
}

/* Place of column c in decode's bf16 order (in order from d16 on). */
static int64_t dec_col(int64_t c, int64_t d16)
{
    if (c >= d16)
        return c;
    const int64_t k = c & 15;
    return (c & ~(int64_t)15) + (k & 1 ? 8 : 0) + k / 2;
}

/* ---- packing ------------------------------------------------------------------------------ */

/* Q rows of one micro tile (MR row pointers of dt elements; NULL = padding row) into [d][MR],
 * widened. */
static void pack_q(float *restrict panel, const void *const rows[MR], int64_t d, attn_dtype dt)
{
    for (int r = 0; r < MR; r++) {
        if (!rows[r] || dt == ATTN_F32)
            for (int64_t c = 0; c < d; c++)
                panel[c * MR + r] = rows[r] ? ((const float *)rows[r])[c] : 0.0f;
        else
            for (int64_t c = 0; c < d; c++)
                panel[c * MR + r] = elem(rows[r], c, dt);
    }
}

/* 8×8 transpose of the ymm rows in place. */
ALWAYS_INLINE void transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

/* Keys [0, nk) of a block (row j at k + j·ld, dt elements) into Kᵀ panels [nkp/NR][d][NR],
 * widened, keys past nk zero. Full 8×8 squares go through registers. */
ALWAYS_INLINE void pack_k_dt(float *restrict panel, const void *k, int64_t ld, int64_t nk,
                             int64_t nkp, int64_t d, attn_dtype dt)
{
    for (int64_t j8 = 0; j8 < nkp; j8 += 8) {
        float *dst = panel + (j8 / NR) * d * NR + j8 % NR;
        const int64_t keys = min64(8, nk - j8);
        int64_t c = 0;
        if (keys == 8)
            for (; c + 8 <= d; c += 8) {
                __m256 r[8];
                for (int jj = 0; jj < 8; jj++)
                    r[jj] = load8(row_at(k, j8 + jj, ld, dt), c, dt);
                transpose8(r);
                for (int cc = 0; cc < 8; cc++)
                    _mm256_store_ps(dst + (c + cc) * NR, r[cc]);
            }
        for (; c < d; c++)
            for (int64_t jj = 0; jj < 8; jj++)
                dst[c * NR + jj] = jj < keys ? elem(row_at(k, j8 + jj, ld, dt), c, dt) : 0.0f;
    }
}

static void pack_k(float *restrict panel, const void *k, int64_t ld, int64_t nk, int64_t nkp,
                   int64_t d, attn_dtype dt)
{
    switch (dt) {
    case ATTN_F32: pack_k_dt(panel, k, ld, nk, nkp, d, ATTN_F32); break;
    case ATTN_BF16: pack_k_dt(panel, k, ld, nk, nkp, d, ATTN_BF16); break;
    case ATTN_F16: pack_k_dt(panel, k, ld, nk, nkp, d, ATTN_F16); break;
    }
}

/* Keys [0, nk) of a V block (dt elements) into [nkp][dp], widened and zero padded. Returns true
 * when every value is finite (x - x is 0 exactly for finite x, NaN otherwise). */
ALWAYS_INLINE bool pack_v_dt(float *restrict panel, const void *v, int64_t ld, int64_t nk,
                             int64_t nkp, int64_t d, int64_t dp, attn_dtype dt)
{
    __m256 bad = _mm256_setzero_ps();
    const __m256i tail = lanes_below(d % 8);
    for (int64_t j = 0; j < nkp; j++) {
        float *dst = panel + j * dp;
        if (j >= nk) {
            memset(dst, 0, (size_t)dp * sizeof *dst);
            continue;
        }
        const void *src = row_at(v, j, ld, dt);
        int64_t c = 0;
        for (; c + 8 <= d; c += 8) {
            const __m256 x = load8(src, c, dt);
            bad = _mm256_or_ps(bad, _mm256_sub_ps(x, x));
            _mm256_store_ps(dst + c, x);
        }
        if (c < d) {
            const __m256 x = load8_tail(src, c, d - c, tail, dt);
            bad = _mm256_or_ps(bad, _mm256_sub_ps(x, x));
            _mm256_store_ps(dst + c, x);
        }
    }
    return _mm256_movemask_ps(_mm256_cmp_ps(bad, bad, _CMP_UNORD_Q)) == 0;
}

static bool pack_v(float *restrict panel, const void *v, int64_t ld, int64_t nk, int64_t nkp,
                   int64_t d, int64_t dp, attn_dtype dt)
{
    switch (dt) {
    case ATTN_BF16: return pack_v_dt(panel, v, ld, nk, nkp, d, dp, ATTN_BF16);
    case ATTN_F16: return pack_v_dt(panel, v, ld, nk, nkp, d, dp, ATTN_F16);
    default: return pack_v_dt(panel, v, ld, nk, nkp, d, dp, ATTN_F32);
    }
}

/* ---- micro-kernels ------------------------------------------------------------------------ */

/* acc[r][0..1] = Σ_c Q[r][c]·K[j][c] for the MR rows of a Q panel and the NR keys of a K panel. */
ALWAYS_INLINE void qk_6x16(const float *restrict qp, const float *restrict kp, int64_t d,
                           __m256 acc[MR][2])
{
    for (int r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t c = 0; c < d; c++) {
        const __m256 k0 = _mm256_load_ps(kp + c * NR), k1 = _mm256_load_ps(kp + c * NR + 8);
        for (int r = 0; r < MR; r++) {
            const __m256 q = _mm256_broadcast_ss(qp + c * MR + r);
            acc[r][0] = _mm256_fmadd_ps(q, k0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(q, k1, acc[r][1]);
        }
    }
}

/* A[r][c0 .. c0 + 8·nv) += Σ_j P[r][j]·V[j][c0 ..] over keys [0, nk), nv = 1 or 2. */
ALWAYS_INLINE void pv_6xn(const float *const prow[MR], const float *restrict vp, int64_t dp,
                          int64_t nk, float *const arow[MR], int64_t c0, int nv)
{
    __m256 acc[MR][2];
    for (int r = 0; r < MR; r++)
        for (int x = 0; x < nv; x++)
            acc[r][x] = _mm256_load_ps(arow[r] + c0 + 8 * x);
    for (int64_t j = 0; j < nk; j++) {
        __m256 v[2];
        for (int x = 0; x < nv; x++)
            v[x] = _mm256_load_ps(vp + j * dp + c0 + 8 * x);
        for (int r = 0; r < MR; r++) {
            const __m256 w = _mm256_broadcast_ss(prow[r] + j);
            for (int x = 0; x < nv; x++)
                acc[r][x] = _mm256_fmadd_ps(w, v[x], acc[r][x]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int x = 0; x < nv; x++)
            _mm256_store_ps(arow[r] + c0 + 8 * x, acc[r][x]);
}

/* O_acc[r] += P[r]·V for one micro tile and one block. */
static void pv_tile(const float *const prow[MR], const float *restrict vp, int64_t dp,
                    int64_t nk, float *const arow[MR])
{
    int64_t c0 = 0;
    for (; c0 + 16 <= dp; c0 += 16)
        pv_6xn(prow, vp, dp, nk, arow, c0, 2);
    if (c0 < dp)
        pv_6xn(prow, vp, dp, nk, arow, c0, 1);
}

/* The same sum row by row, skipping zero weights: used when the V block is not all finite,
 * so a masked key's 0·NaN never reaches a row. */
static void pv_rows_skip_zero(const float *p, int64_t nk, const float *vp, int64_t dp,
                              float *acc)
{
    for (int64_t j = 0; j < nk; j++) {
        if (p[j] == 0.0f)
            continue;
        const __m256 w = _mm256_broadcast_ss(p + j);
        for (int64_t c = 0; c < dp; c += 8)
            _mm256_store_ps(acc + c, _mm256_fmadd_ps(w, _mm256_load_ps(vp + j * dp + c),
                                                     _mm256_load_ps(acc + c)));
    }
}

/* ---- score epilogue ----------------------------------------------------------------------- */

typedef struct tile_rows {
    int64_t key0;           /* key index of panel column 0 */
    float *srow[MR];        /* score rows, at panel column 0 */
    float *mrow[MR];        /* running vector max of each row */
    const float *mask[MR];  /* additive mask rows (NULL: none), at key0 */
    int64_t limit[MR];      /* key limits */
    int64_t first[MR];      /* first keys (sliding window) */
    float slope[MR], pos[MR]; /* ALiBi */
} tile_rows;

/* Q·Kᵀ of one micro tile against nkp keys (a multiple of NR), scaled into log2 units and
 * stored; `interior` means every key is visible to every row and there is no mask. */
ALWAYS_INLINE void score_tile(const float *restrict qp, const float *restrict kp, int64_t d,
                              int64_t nkp, const tile_rows *tr, float scale_log2e,
                              bool interior, const score_opts *opts)
{
    const __m256 cs = _mm256_set1_ps(scale_log2e), log2e = _mm256_set1_ps(ATTN_LOG2E);
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    for (int64_t jb = 0; jb < nkp; jb += NR) {
        __m256 acc[MR][2];
        qk_6x16(qp, kp + jb * d, d, acc);
        for (int r = 0; r < MR; r++) {
            __m256 s[2];
            for (int x = 0; x < 2; x++) {
                const int64_t key = tr->key0 + jb + 8 * x;
                s[x] = apply_options(opts, _mm256_mul_ps(acc[r][x], cs), key, tr->slope[r],
                                     tr->pos[r]);
                if (interior)
                    continue;
                __m256 valid = band_lanes(key, tr->first[r], tr->limit[r]);
                if (tr->mask[r]) {
                    const __m256 m = _mm256_maskload_ps(tr->mask[r] + jb + 8 * x,
                                                        _mm256_castps_si256(valid));
                    valid = _mm256_and_ps(valid, _mm256_cmp_ps(m, neg_inf, _CMP_NEQ_UQ));
                    s[x] = _mm256_fmadd_ps(m, log2e, s[x]);
                }
                s[x] = _mm256_blendv_ps(neg_inf, s[x], valid);
            }
            _mm256_storeu_ps(tr->srow[r] + jb, s[0]);
            _mm256_storeu_ps(tr->srow[r] + jb + 8, s[1]);
            const __m256 m = _mm256_load_ps(tr->mrow[r]);
            _mm256_store_ps(tr->mrow[r], _mm256_max_ps(s[0], _mm256_max_ps(s[1], m)));
        }
    }
}

/* P = 2^(S - m) in place over n (a multiple of 8) scores; returns ΣP. m = -inf (no finite
 * score yet) is taken as 0 so that masked -inf stays 0 and a NaN score stays NaN. */
static float exp_row(float *s, int64_t n, float m)
{
    const __m256 vm = _mm256_set1_ps(m == -INFINITY ? 0.0f : m);
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256 p0 = exp2_nonpos(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        const __m256 p1 = exp2_nonpos(_mm256_sub_ps(_mm256_loadu_ps(s + j + 8), vm));
        _mm256_storeu_ps(s + j, p0);
        _mm256_storeu_ps(s + j + 8, p1);
        sum0 = _mm256_add_ps(sum0, p0);
        sum1 = _mm256_add_ps(sum1, p1);
    }
    for (; j < n; j += 8) {
        const __m256 p0 = exp2_nonpos(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(s + j, p0);
        sum0 = _mm256_add_ps(sum0, p0);
    }
    return hsum(_mm256_add_ps(sum0, sum1));
}

static void scale_row(float *a, int64_t dp, float factor)
{
    const __m256 f = _mm256_set1_ps(factor);
    for (int64_t c = 0; c < dp; c += 8)
        _mm256_store_ps(a + c, _mm256_mul_ps(_mm256_load_ps(a + c), f));
}

/* O row = acc · inv over d columns (inv = attn_row_norm: 1/l, the sink in l); l = 0 (no key
 * seen) gives zeros. */
static void store_row(float *o, const float *acc, float l, float norm, int64_t d)
{
    const __m256 inv = _mm256_set1_ps(norm);
    const bool none = l == 0.0f;
    int64_t c = 0;
    for (; c + 8 <= d; c += 8)
        _mm256_storeu_ps(o + c, none ? _mm256_setzero_ps()
                                     : _mm256_mul_ps(_mm256_load_ps(acc + c), inv));
    if (c < d)
        _mm256_maskstore_ps(o + c, lanes_below(d - c),
                            none ? _mm256_setzero_ps() : _mm256_mul_ps(_mm256_load_ps(acc + c), inv));
}

/* Query head and index of flattened row r of the group. */
static void row_of(const attn_group_rows *gr, const attn_task *t, int64_t r, int64_t *h,
                   int64_t *i)
{
    *h = gr->first_head + r / gr->rows;
    *i = t->row_begin + r % gr->rows;
}

/* What a run computes: keys [key_begin, key_end) of each row, and where the rows go: O
 * (normalised) or, for run_partial, the unnormalised partials at row index part_row0 + r. */
typedef struct key_range {
    int64_t key_begin, key_end;
    const attn_partial *part;
    int64_t part_row0;
} key_range;

/* Row r of a group done: O row = acc / l, or its partials (max back in natural units). */
static void finish_row(const attn_task *t, const attn_group_rows *gr, const key_range *kr,
                       int64_t r, const float *acc, float l, float m_log2)
{
    const int64_t d = t->problem->head_dim;
    if (kr->part) {
        const int64_t row = kr->part_row0 + r;
        kr->part->max[row] = m_log2 == -INFINITY ? -INFINITY : m_log2 / ATTN_LOG2E;
        kr->part->sum[row] = l;
        memcpy(kr->part->acc + row * d, acc, (size_t)d * sizeof *acc);
        return;
    }
    int64_t h, i;
    row_of(gr, t, r, &h, &i);
    const attn_problem *p = t->problem;
    store_row(attn_o_row(t, gr->b, h, i), acc, l,
              attn_row_norm(m_log2 / ATTN_LOG2E, l, p->sinks ? p->sinks[h] : -INFINITY), d);
}

/* ---- tiled path --------------------------------------------------------------------------- */

typedef struct tile_ctx {
    const attn_task *t;
    const workspace *ws;
    const key_range *kr;
    attn_group_rows gr;
    int64_t d, dp, bk, r0, nr, micro_tiles, tile_keys;
    int64_t tile_first; /* smallest first key of the rows that see a key */
    float scale_log2e;
    score_opts opts;
    bool full_row; /* score columns at key - key_begin (else at block column) */
} tile_ctx;

/* Per-micro-tile view: score/max rows, masks, limits; the range of limits. */
static void micro_tile_rows(const tile_ctx *c, int64_t mt, int64_t j0, tile_rows *tr,
                            int64_t *lim_min, int64_t *lim_max, int64_t *first_max)
{
    const attn_problem *p = c->t->problem;
    const workspace *ws = c->ws;
    tr->key0 = j0;
    *lim_min = INT64_MAX;
    *lim_max = 0;
    *first_max = 0;
    for (int r = 0; r < MR; r++) {
        const int64_t row = mt * MR + r; /* within the tile */
        tr->srow[r] = ws->scores + row * ws->s_ld + (c->full_row ? j0 - c->kr->key_begin : 0);
        tr->mrow[r] = ws->max_vec + row * 8;
        tr->limit[r] = ws->limit[row];
        tr->first[r] = ws->first[row];
        tr->slope[r] = ws->slope[row];
        tr->pos[r] = ws->pos[row];
        *first_max = max64(*first_max, tr->first[r]);
        tr->mask[r] = NULL;
        if (p->mask) {
            int64_t h, i;
            row_of(&c->gr, c->t, c->r0 + min64(row, c->nr - 1), &h, &i);
            tr->mask[r] = attn_mask_row(p, i) + j0;
        }
        *lim_min = min64(*lim_min, tr->limit[r]);
        *lim_max = max64(*lim_max, tr->limit[r]);
    }
}

/* Largest key limit of the rows of micro tile mt. */
static int64_t micro_tile_limit(const tile_ctx *c, int64_t mt)
{
    int64_t lim_max = 0;
    for (int r = 0; r < MR; r++)
        lim_max = max64(lim_max, c->ws->limit[mt * MR + r]);
    return lim_max;
}

/* Panel columns (a multiple of NR) micro tile mt uses in the block [j0, j0 + nk): none past its
 * rows' key limits, so a causal diagonal block costs only the keys below the diagonal. */
static int64_t micro_tile_keys(const tile_ctx *c, int64_t mt, int64_t j0, int64_t nk)
{
    const int64_t lim_max = micro_tile_limit(c, mt);
    return lim_max <= j0 ? 0 : min64(round_up(nk, NR), round_up(lim_max - j0, NR));
}

/* Scores of every live micro tile against one packed K block [j0, j0 + nk). */
static void score_block(const tile_ctx *c, int64_t j0, int64_t nk)
{
    const bool has_mask = c->t->problem->mask != NULL;
    for (int64_t mt = 0; mt < c->micro_tiles; mt++) {
        const int64_t nkp = micro_tile_keys(c, mt, j0, nk);
        if (nkp == 0)
            continue; /* every row of the micro tile is past its key limit (causal) */
        tile_rows tr;
        int64_t lim_min, lim_max, first_max;
        micro_tile_rows(c, mt, j0, &tr, &lim_min, &lim_max, &first_max);
        const float *qp = c->ws->q_panel + mt * MR * c->d;
        const bool interior = !has_mask && lim_min >= j0 + nkp && first_max <= j0;
        /* Four copies of the tile, each with its flags constant: the options' epilogue inside
         * the 6x16 loop cost P1 1.6x when compiled in for problems without options. */
        if (c->opts.softcap || c->opts.alibi) {
            if (interior)
                score_tile(qp, c->ws->k_panel, c->d, nkp, &tr, c->scale_log2e, true, &c->opts);
            else
                score_tile(qp, c->ws->k_panel, c->d, nkp, &tr, c->scale_log2e, false, &c->opts);
        } else if (interior) {
            score_tile(qp, c->ws->k_panel, c->d, nkp, &tr, c->scale_log2e, true, NULL);
        } else {
            score_tile(qp, c->ws->k_panel, c->d, nkp, &tr, c->scale_log2e, false, NULL);
        }
    }
}

/* O_acc += P·V of every live micro tile for one packed V block. */
static void pv_block(const tile_ctx *c, int64_t j0, int64_t nk, bool v_finite)
{
    const workspace *ws = c->ws;
    const int64_t col = c->full_row ? j0 - c->kr->key_begin : 0;
    for (int64_t mt = 0; mt < c->micro_tiles; mt++) {
        const int64_t nkp = micro_tile_keys(c, mt, j0, nk);
        if (nkp == 0)
            continue;
        const float *prow[MR];
        float *arow[MR];
        for (int r = 0; r < MR; r++) {
            prow[r] = ws->scores + (mt * MR + r) * ws->s_ld + col;
            arow[r] = ws->acc + (mt * MR + r) * c->dp;
        }
        if (v_finite) {
            pv_tile(prow, ws->v_panel, c->dp, nkp, arow);
        } else {
            for (int r = 0; r < MR; r++)
                pv_rows_skip_zero(prow[r], nkp, ws->v_panel, c->dp, arow[r]);
        }
    }
}

/* Streaming update of each row after a block's scores: rescale on a rising max, P in place. */
static void softmax_block(const tile_ctx *c, int64_t j0, int64_t nk)
{
    const workspace *ws = c->ws;
    for (int64_t row = 0; row < c->micro_tiles * MR; row++) {
        const int64_t nkp = micro_tile_keys(c, row / MR, j0, nk);
        if (nkp == 0)
            continue; /* the micro tile skipped this block */
        float *mv = ws->max_vec + row * 8;
        const float m_blk = hmax(_mm256_load_ps(mv));
        _mm256_store_ps(mv, _mm256_set1_ps(-INFINITY));
        const float m_old = ws->run_max[row];
        if (m_blk > m_old) {
            const float alpha = attn_exp2_nonpos(m_old - m_blk); /* 0 when m_old = -inf */
            scale_row(ws->acc + row * c->dp, c->dp, alpha);
            ws->run_sum[row] *= alpha;
            ws->run_max[row] = m_blk;
        }
        ws->run_sum[row] += exp_row(ws->scores + row * ws->s_ld, nkp, ws->run_max[row]);
    }
}

/* Keys of block j0 packed: K (as Kᵀ panels) and V for the group. Paged K/V: a K block that
 * crosses a page edge is gathered into the V panel first (free until pack_block_v fills it;
 * its bk·dp floats hold bk rows of d elements), so the 8×8 transposes read one stride; V rows
 * are packed a page run at a time. */
static void pack_block_k(const tile_ctx *c, int64_t j0, int64_t nk)
{
    const attn_task *t = c->t;
    const attn_problem *p = t->problem;
    const void *k = attn_row(t, 'k', c->gr.b, c->gr.hkv, j0);
    int64_t ld = p->k.seq;
    if (attn_kv_run(p, j0, nk) < nk) {
        attn_kv_gather(t, 'k', c->gr.b, c->gr.hkv, j0, j0 + nk, c->ws->v_panel);
        k = c->ws->v_panel;
        ld = c->d;
    }
    pack_k(c->ws->k_panel, k, ld, nk, round_up(nk, NR), c->d, p->dtype);
}

static bool pack_block_v(const tile_ctx *c, int64_t j0, int64_t nk)
{
    const attn_task *t = c->t;
    const attn_problem *p = t->problem;
    bool finite = true;
    for (int64_t off = 0, run; off < nk; off += run) {
        run = attn_kv_run(p, j0 + off, nk - off);
        const int64_t padded = off + run < nk ? run : round_up(nk, NR) - off;
        finite &= pack_v(c->ws->v_panel + off * c->dp, attn_row(t, 'v', c->gr.b, c->gr.hkv,
                         j0 + off), p->v.seq, run, padded, c->d, c->dp, p->dtype);
    }
    return finite;
}

static void run_tile(tile_ctx *c)
{
    const attn_task *t = c->t;
    const attn_problem *p = t->problem;
    const workspace *ws = c->ws;
    const int64_t rows_p = c->micro_tiles * MR;

    /* Row state, limits (padding rows copy the last real row) and Q panels. */
    c->tile_keys = 0;
    c->tile_first = INT64_MAX;
    c->opts = score_opts_of(p);
    for (int64_t row = 0; row < rows_p; row++) {
        int64_t h, i;
        row_of(&c->gr, t, c->r0 + min64(row, c->nr - 1), &h, &i);
        ws->limit[row] = max64(min64(attn_key_limit(p, c->gr.b, i), c->kr->key_end), 0);
        ws->first[row] = attn_key_start(p, i);
        ws->slope[row] = p->alibi_slopes ? p->alibi_slopes[h] * ATTN_LOG2E : 0.0f;
        ws->pos[row] = (float)(i + p->len_kv - p->len_q);
        if (ws->limit[row] > ws->first[row])
            c->tile_first = min64(c->tile_first, ws->first[row]);
        c->tile_keys = max64(c->tile_keys, ws->limit[row]);
        ws->run_max[row] = -INFINITY;
        ws->run_sum[row] = 0.0f;
        _mm256_store_ps(ws->max_vec + row * 8, _mm256_set1_ps(-INFINITY));
        memset(ws->acc + row * c->dp, 0, (size_t)c->dp * sizeof(float));
    }
    for (int64_t mt = 0; mt < c->micro_tiles; mt++) {
        const void *qrow[MR];
        for (int r = 0; r < MR; r++) {
            const int64_t row = mt * MR + r;
            int64_t h, i;
            row_of(&c->gr, t, c->r0 + row, &h, &i);
            qrow[r] = row < c->nr ? attn_row(t, 'q', c->gr.b, h, i) : NULL;
        }
        pack_q(ws->q_panel + mt * MR * c->d, qrow, c->d, p->dtype);
    }

    if (!c->full_row) {
        /* key blocks before every row's window are skipped whole */
        for (int64_t j0 = max64(c->kr->key_begin, c->tile_first); j0 < c->tile_keys;
             j0 += c->bk) {
            const int64_t nk = min64(c->bk, c->tile_keys - j0);
            pack_block_k(c, j0, nk);
            const bool v_finite = pack_block_v(c, j0, nk);
            score_block(c, j0, nk);
            softmax_block(c, j0, nk);
            pv_block(c, j0, nk, v_finite);
        }
    } else {
        for (int64_t j0 = c->kr->key_begin; j0 < c->tile_keys; j0 += c->bk) {
            const int64_t nk = min64(c->bk, c->tile_keys - j0);
            pack_block_k(c, j0, nk);
            score_block(c, j0, nk);
        }
        /* One exact softmax per row over the columns its micro tile wrote. */
        for (int64_t row = 0; row < rows_p; row++) {
            const int64_t end =
                round_up(max64(micro_tile_limit(c, row / MR) - c->kr->key_begin, 0), NR);
            const float m = hmax(_mm256_load_ps(ws->max_vec + row * 8));
            ws->run_max[row] = m;
            ws->run_sum[row] = exp_row(ws->scores + row * ws->s_ld, end, m);
        }
        for (int64_t j0 = c->kr->key_begin; j0 < c->tile_keys; j0 += c->bk) {
            const int64_t nk = min64(c->bk, c->tile_keys - j0);
            const bool v_finite = pack_block_v(c, j0, nk);
            pv_block(c, j0, nk, v_finite);
        }
    }

    for (int64_t row = 0; row < c->nr; row++)
        finish_row(t, &c->gr, c->kr, c->r0 + row, ws->acc + row * c->dp, ws->run_sum[row],
                   ws->run_max[row]);
}

/* ---- decode path -------------------------------------------------------------------------- */

/* Scores of one query row (float32) against keys [j0, j0 + nk) read in place and widened in
 * the loads, 8 keys per step (lanes past nk read key j0 + nk - 1 again and are masked).
 * Returns the block max. */
/* One decode row's band start and options. */
typedef struct dec_row {
    int64_t first;
    float slope, pos;
    const score_opts *opts;
} dec_row;

ALWAYS_INLINE float decode_scores_dt(const attn_task *t, const attn_group_rows *gr,
                                     const float *q, const float *mask, int64_t j0, int64_t nk,
                                     float *s, float scale_log2e, const dec_row *dr,
                                     attn_dtype dt, bool prefetch)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim;
    const __m256i dtail = lanes_below(d % 8);
    const int64_t es = dt == ATTN_F32 ? 4 : 2;
    const __m256 cs = _mm256_set1_ps(scale_log2e), log2e = _mm256_set1_ps(ATTN_LOG2E);
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    __m256 vmax = neg_inf;
    for (int64_t j = 0; j < nk; j += 8) {
        /* One key after another, each row front to back, through one (not unrolled) loop: a
         * single load instruction walks K in address order and the hardware prefetchers
         * follow it (8 rows read column by column, with software prefetch, read D1 at half
         * the memory rate on Zen 4). Per-key partial vectors go through a stack array to one
         * transpose-add per 8 keys. */
        __m256 acc[8];
        const void *krow[8], *kpf[8]; /* one page lookup per run of keys; past nk: key j's row */
        attn_kv_rows(t, 'k', gr->b, gr->hkv, j0 + j, (int)min64(nk - j, 8), 8, krow);
        if (prefetch) /* dec_prefetch */
            attn_kv_rows_ahead(t, 'k', gr->b, gr->hkv, j0 + j + pf_keys(d, dt), p->len_kv, 8, krow,
                               kpf);
#pragma GCC unroll 1
        for (int x = 0; x < 8; x++) {
            const void *k = krow[x];
            /* four chains: a key's 16 FMAs (d = 128) in 4 cycles of latency each, not 8 */
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
            int64_t c = 0;
            for (; c + 32 <= d; c += 32) {
                if (prefetch) /* one prefetch per line */
                    for (int64_t pc = c; pc < c + 32; pc += 64 / es)
                        prefetch_row(kpf[x], pc, dt);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), load8_ord(k, c, false, dt), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 8), load8_ord(k, c + 8, true, dt), a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 16), load8_ord(k, c + 16, false, dt), a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 24), load8_ord(k, c + 24, true, dt), a3);
            }
            a0 = _mm256_add_ps(a0, a2);
            a1 = _mm256_add_ps(a1, a3);
            if (c + 16 <= d) {
                if (prefetch)
                    prefetch_row(kpf[x], c, dt);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), load8_ord(k, c, false, dt), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c + 8), load8_ord(k, c + 8, true, dt), a1);
                c += 16;
            }
            if (c + 8 <= d) {
                if (prefetch && c * es % 64 == 0)
                    prefetch_row(kpf[x], c, dt);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), load8(k, c, dt), a0);
                c += 8;
            }
            if (c < d)
                a1 = _mm256_fmadd_ps(_mm256_maskload_ps(q + c, dtail),
                                     load8_tail(k, c, d - c, dtail, dt), a1);
            acc[x] = _mm256_add_ps(a0, a1);
        }
        /* Transpose-reduce the 8 accumulators into one vector of 8 dot products. */
        const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
        const __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]), t3 = _mm256_hadd_ps(acc[6], acc[7]);
        const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
        const __m256 dot = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                         _mm256_permute2f128_ps(u0, u1, 0x31));
        __m256 valid = band_lanes(j0 + j, dr->first, j0 + nk);
        __m256 sv = apply_options(dr->opts, _mm256_mul_ps(dot, cs), j0 + j, dr->slope, dr->pos);
        if (mask) {
            const __m256 m = _mm256_maskload_ps(mask + j0 + j, _mm256_castps_si256(valid));
            valid = _mm256_and_ps(valid, _mm256_cmp_ps(m, neg_inf, _CMP_NEQ_UQ));
            sv = _mm256_fmadd_ps(m, log2e, sv);
        }
        sv = _mm256_blendv_ps(neg_inf, sv, valid);
        _mm256_storeu_ps(s + j, sv);
        vmax = _mm256_max_ps(sv, vmax);
    }
    return hmax(vmax);
}

static float decode_scores(const attn_task *t, const attn_group_rows *gr, const float *q,
                           const float *mask, int64_t j0, int64_t nk, float *s,
                           float scale_log2e, const dec_row *dr)
{
    /* Literals: a copy per dtype and prefetch (dec_prefetch), so the others have none. */
#define SCORES(dt, pf) decode_scores_dt(t, gr, q, mask, j0, nk, s, scale_log2e, dr, dt, pf)
    const bool prefetch = dec_prefetch(t->problem);
    switch (t->problem->dtype) {
    case ATTN_BF16: return prefetch ? SCORES(ATTN_BF16, true) : SCORES(ATTN_BF16, false);
    case ATTN_F16: return prefetch ? SCORES(ATTN_F16, true) : SCORES(ATTN_F16, false);
    default: return prefetch ? SCORES(ATTN_F32, true) : SCORES(ATTN_F32, false);
    }
#undef SCORES
}

/* acc[0, dp) += Σ_j P[j]·V[j] over keys read in place and widened in the loads; zero weights
 * (masked keys) are skipped, so they never meet a NaN in V. Eight accumulators cover 64
 * columns per pass. With prefetch (dec_prefetch), each pass's columns pf_keys() keys ahead. */
ALWAYS_INLINE void decode_pv_dt(const attn_task *t, const attn_group_rows *gr, const float *s,
                                int64_t j0, int64_t nk, float *acc, int64_t d, attn_dtype dt,
                                bool prefetch)
{
    const int64_t ld = t->problem->v.seq, es = dt == ATTN_F32 ? 4 : 2;
    const void *v = attn_row(t, 'v', gr->b, gr->hkv, j0);
    const __m256i dtail = lanes_below(d % 8);
    const int64_t d16 = dt == ATTN_BF16 ? d & ~(int64_t)15 : 0, d64 = d & ~(int64_t)63;
    const void *vpf[8];
    /* Whole passes of 64 columns: a fixed set of 8 accumulators, no column test in the loop
     * (in decode's bf16 order, as c0 + 64 <= d16). */
    for (int64_t c0 = 0; c0 < d64; c0 += 64) {
        __m256 a[8];
        for (int x = 0; x < 8; x++)
            a[x] = _mm256_load_ps(acc + c0 + 8 * x);
        for (int64_t j = 0; j < nk; j++) {
            if (prefetch && j % 8 == 0)
                attn_kv_rows_ahead(t, 'v', gr->b, gr->hkv, j0 + j + pf_keys(d, dt),
                                   t->problem->len_kv, 8, &v, vpf);
            if (prefetch)
                for (int64_t c = c0; c < c0 + 64; c += 64 / es) /* one prefetch per line */
                    prefetch_row(vpf[j % 8], c, dt);
            if (s[j] == 0.0f)
                continue;
            const __m256 w = _mm256_broadcast_ss(s + j);
            /* element c0 of row j: constant offsets below, as the float32 loop had */
            const void *vj = (const char *)row_at(v, j, ld, dt) + c0 * es;
            for (int x = 0; x < 8; x++)
                a[x] = _mm256_fmadd_ps(w, load8_ord(vj, 8 * x, x & 1, dt), a[x]);
        }
        for (int x = 0; x < 8; x++)
            _mm256_store_ps(acc + c0 + 8 * x, a[x]);
    }
    if (d64 == d)
        return;
    /* The last d % 64 columns (fewer than 8 vectors, the last one maybe partial). */
    const int64_t c0 = d64;
    const int nv = (int)((d - c0 + 7) / 8);
    const bool tail = c0 + 8 * nv > d;
    __m256 a[8];
    for (int x = 0; x < nv; x++)
        a[x] = _mm256_load_ps(acc + c0 + 8 * x);
    for (int64_t j = 0; j < nk; j++) {
        if (prefetch && j % 8 == 0)
            attn_kv_rows_ahead(t, 'v', gr->b, gr->hkv, j0 + j + pf_keys(d, dt), t->problem->len_kv,
                               8, &v, vpf);
        if (prefetch)
            for (int64_t c = c0; c < c0 + 8 * nv; c += 64 / es)
                prefetch_row(vpf[j % 8], c, dt);
        if (s[j] == 0.0f)
            continue;
        const __m256 w = _mm256_broadcast_ss(s + j);
        const void *vj = row_at(v, j, ld, dt);
        for (int x = 0; x < nv - 1; x++)
            a[x] = _mm256_fmadd_ps(w, load8_dec(vj, c0 + 8 * x, x & 1, d16, dt), a[x]);
        const int64_t cl = c0 + 8 * (nv - 1);
        const __m256 last = tail ? load8_tail(vj, cl, d - cl, dtail, dt)
                                 : load8_dec(vj, cl, (nv - 1) & 1, d16, dt);
        a[nv - 1] = _mm256_fmadd_ps(w, last, a[nv - 1]);
    }
    for (int x = 0; x < nv; x++)
        _mm256_store_ps(acc + c0 + 8 * x, a[x]);
}

/* The same for float32 rows through the former loop (passes of up to 64 columns, the vector
 * count tested per key): measured, it streams D1 faster than decode_pv_dt's fixed passes (Zen 4: 12.7
 * against 15.1 ms, alternated, min of 6), which in turn stream half rows faster (f16 D1: 5.3
 * against 7.6 ms) and run float32 in cache faster; why is not known. */
ALWAYS_INLINE void decode_pv_f32(const attn_task *t, const attn_group_rows *gr, const float *s,
                                 int64_t j0, int64_t nk, float *acc, int64_t d, bool prefetch)
{
    const attn_dtype dt = ATTN_F32;
    const int64_t ld = t->problem->v.seq, es = 4;
    const void *v = attn_row(t, 'v', gr->b, gr->hkv, j0);
    const __m256i dtail = lanes_below(d % 8);
    for (int64_t c0 = 0; c0 < d; c0 += 64) {
        const int nv = (int)min64(8, (d - c0 + 7) / 8);
        const bool tail = c0 + 8 * nv > d; /* the last vector is partial */
        __m256 a[8];
        for (int x = 0; x < nv; x++)
            a[x] = _mm256_load_ps(acc + c0 + 8 * x);
        const void *vpf[8];
        for (int64_t j = 0; j < nk; j++) {
            if (prefetch && j % 8 == 0)
                attn_kv_rows_ahead(t, 'v', gr->b, gr->hkv, j0 + j + pf_keys(d, dt),
                                   t->problem->len_kv, 8, &v, vpf);
            if (prefetch)
                for (int64_t c = c0; c < c0 + 8 * nv; c += 64 / es) /* one prefetch per line */
                    prefetch_row(vpf[j % 8], c, dt);
            if (s[j] == 0.0f)
                continue;
            const __m256 w = _mm256_broadcast_ss(s + j);
            /* element c0 of row j: constant offsets below, as the float32 loop had */
            const void *vj = (const char *)row_at(v, j, ld, dt) + c0 * es;
            if (nv == 8 && !tail) {
                for (int x = 0; x < 8; x++)
                    a[x] = _mm256_fmadd_ps(w, load8(vj, 8 * x, dt), a[x]);
            } else {
                for (int x = 0; x < nv - 1; x++)
                    a[x] = _mm256_fmadd_ps(w, load8(vj, 8 * x, dt), a[x]);
                const int64_t cl = 8 * (nv - 1);
                const __m256 last = tail ? load8_tail(vj, cl, d - c0 - cl, dtail, dt)
                                         : load8(vj, cl, dt);
                a[nv - 1] = _mm256_fmadd_ps(w, last, a[nv - 1]);
            }
        }
        for (int x = 0; x < nv; x++)
            _mm256_store_ps(acc + c0 + 8 * x, a[x]);
    }
}


/* decode_pv_dt a page run of keys at a time (one run unless K/V are paged). */
static void decode_pv(const attn_task *t, const attn_group_rows *gr, const float *s, int64_t j0,
                      int64_t nk, float *acc, int64_t d)
{
    const bool prefetch = dec_prefetch(t->problem);
    for (int64_t off = 0, n; off < nk; off += n) {
        n = attn_kv_run(t->problem, j0 + off, nk - off);
        /* Literals: a copy per dtype and prefetch (dec_prefetch), so the others have none. */
#define PV(dt, pf) decode_pv_dt(t, gr, s + off, j0 + off, n, acc, d, dt, pf)
        switch (t->problem->dtype) {
        case ATTN_BF16: prefetch ? PV(ATTN_BF16, true) : PV(ATTN_BF16, false); break;
        case ATTN_F16: prefetch ? PV(ATTN_F16, true) : PV(ATTN_F16, false); break;
        default: decode_pv_f32(t, gr, s + off, j0 + off, n, acc, d, prefetch); break;
        }
#undef PV
    }
}

/* A decode tile's model options: the epilogue, and per row (each may be another head, or
 * another query position) its band start, ALiBi slope (log2 units) and position i'. */
typedef struct dec_tile_opts {
    const score_opts *opts;
    int64_t first[DEC_R];
    float slope[DEC_R], pos[DEC_R];
} dec_tile_opts;

/* Vector c of DEC_KS keys' K rows into R rows' accumulators a, each Q vector loaded once for
 * the keys. */
ALWAYS_INLINE void qk_tile_step(int R, const void *const k[DEC_KS],
                                const float *const q[DEC_R], int64_t c, attn_dtype dt,
                                __m256 a[DEC_R][DEC_KS])
{
    __m256 kv[DEC_KS];
    for (int u = 0; u < DEC_KS; u++) {
        kv[u] = load8(k[u], c, dt);
        __asm__("" : "+x"(kv[u])); /* in a register too: GCC folded it into every row's FMA */
    }
    for (int r = 0; r < R; r++) {
        __m256 qv = _mm256_loadu_ps(q[r] + c);
        /* in a register: folded into each key's FMA, Q was loaded DEC_KS times (1.25 loads per
         * FMA at R = 4, more than Zen 4's two a cycle) */
        __asm__("" : "+x"(qv));
        for (int u = 0; u < DEC_KS; u++)
            a[r][u] = _mm256_fmadd_ps(qv, kv[u], a[r][u]);
    }
}

/* The same for a tile of R >= 2 rows of a group (the query heads of a GQA group, or a few
 * query rows): each K vector is loaded once for the R rows and each Q vector once for DEC_KS
 * keys side by side (their rows read front to back), so a GQA group reads K once from memory
 * at one load per 1.33 FMAs instead of one re-read of the block per row at two loads per FMA.
 * Row r's scores go to s[r] (keys past nkr[r] are -inf, and with options o keys before the
 * row's band start too); its block max to bmax[r]. o is a constant NULL in the plain copies,
 * so their epilogue has nothing of the options compiled in. */
ALWAYS_INLINE void decode_scores_tile_dt(const attn_task *t, const attn_group_rows *gr, int R,
                                         const float *const q[DEC_R],
                                         const float *const mask[DEC_R],
                                         const int64_t nkr[DEC_R], int64_t j0, int64_t nk,
                                         float *const s[DEC_R], float scale_log2e,
                                         const dec_tile_opts *o, float bmax[DEC_R],
                                         attn_dtype dt)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim;
    const __m256i dtail = lanes_below(d % 8);
    const __m256 cs = _mm256_set1_ps(scale_log2e), log2e = _mm256_set1_ps(ATTN_LOG2E);
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    for (int64_t j = 0; j < nk; j += 8) {
        __m256 part[DEC_R][8];
        const void *krow[8], *kpf[8]; /* the keys' rows, and those pf_keys() keys later */
        attn_kv_rows(t, 'k', gr->b, gr->hkv, j0 + j, (int)min64(nk - j, 8), 8, krow);
        attn_kv_rows_ahead(t, 'k', gr->b, gr->hkv, j0 + j + pf_keys(d, dt), p->len_kv, 8, krow, kpf);
#pragma GCC unroll 1
        for (int x = 0; x < 8; x += DEC_KS) {
            const void *const *k = krow + x;
            for (int u = 0; u < DEC_KS; u++)
                prefetch_whole_row(kpf[x + u], d, dt);
            __m256 a[DEC_R][DEC_KS];
            for (int r = 0; r < R; r++)
                for (int u = 0; u < DEC_KS; u++)
                    a[r][u] = _mm256_setzero_ps();
            int64_t c = 0;
            /* by 8 (unrolled by 2, GCC spilled an accumulator into the FMA chain); the tiles
             * read bf16 in order (decode's even/odd order is the one-row loops') */
            for (; c + 16 <= d; c += 8)
                qk_tile_step(R, k, q, c, dt, a);
            if (c + 8 <= d) {
                qk_tile_step(R, k, q, c, dt, a);
                c += 8;
            }
            if (c < d) {
                __m256 kv[DEC_KS];
                for (int u = 0; u < DEC_KS; u++)
                    kv[u] = load8_tail(k[u], c, d - c, dtail, dt);
                for (int r = 0; r < R; r++) {
                    const __m256 qv = _mm256_maskload_ps(q[r] + c, dtail);
                    for (int u = 0; u < DEC_KS; u++)
                        a[r][u] = _mm256_fmadd_ps(qv, kv[u], a[r][u]);
                }
            }
            for (int r = 0; r < R; r++)
                for (int u = 0; u < DEC_KS; u++)
                    part[r][x + u] = a[r][u];
        }
        for (int r = 0; r < R; r++) {
            const __m256 *acc = part[r];
            const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
            const __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]), t3 = _mm256_hadd_ps(acc[6], acc[7]);
            const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
            const __m256 dot = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                             _mm256_permute2f128_ps(u0, u1, 0x31));
            __m256 valid, sv = _mm256_mul_ps(dot, cs);
            if (o) { /* the prefill's epilogue: soft cap, ALiBi, the window's left edge */
                valid = band_lanes(j0 + j, o->first[r], j0 + nkr[r]);
                sv = apply_options(o->opts, sv, j0 + j, o->slope[r], o->pos[r]);
            } else {
                valid = _mm256_castsi256_ps(lanes_below(nkr[r] - j));
            }
            if (mask[r]) {
                const __m256 m =
                    _mm256_maskload_ps(mask[r] + j0 + j, _mm256_castps_si256(valid));
                valid = _mm256_and_ps(valid, _mm256_cmp_ps(m, neg_inf, _CMP_NEQ_UQ));
                sv = o ? _mm256_fmadd_ps(m, log2e, sv)
                       : _mm256_fmadd_ps(dot, cs, _mm256_mul_ps(m, log2e));
            }
            sv = _mm256_blendv_ps(neg_inf, sv, valid);
            _mm256_storeu_ps(s[r] + j, sv);
        }
    }
    /* The block max from the stored scores, not in registers across the loop above: with the
     * R running maxima live there, GCC spilled accumulators of the FMA loops. */
    for (int r = 0; r < R; r++) {
        __m256 m = neg_inf;
        for (int64_t j = 0; j < nk; j += 8)
            m = _mm256_max_ps(_mm256_loadu_ps(s[r] + j), m);
        bmax[r] = hmax(m);
    }
}

/* One pass of decode_pv_tile_dt: keys [j0, j0 + n) of the run at v, nv of the pass's cv
 * vectors from column c0 (the last partial when tail), each V vector loaded once for the R rows,
 * the R weights in registers for the key's vectors: 0.75 loads per FMA at R = 4 instead of
 * 1.25 with the weight as the FMA's memory operand (Zen 4 issues two 256-bit loads per cycle,
 * as many as FMAs). checked (a constant): some weight of the keys is 0, and such a key is
 * skipped for its row (bit j of `all`: every row counts key j); unchecked, the loop has no
 * test. */
ALWAYS_INLINE void pv_tile_pass(int R, int cv, const void *v, int64_t ld, int64_t j0, int n,
                                float *const s[DEC_R], float *const acc[DEC_R], int64_t c0,
                                int nv, bool tail, int64_t d, unsigned all, bool checked,
                                const void *const vpf[8], attn_dtype dt)
{
    enum { MAXC = 6 };
    const __m256i dtail = lanes_below(d % 8);
    __m256 a[DEC_R][MAXC];
    for (int r = 0; r < R; r++)
        for (int x = 0; x < cv; x++)
            a[r][x] = x < nv ? _mm256_load_ps(acc[r] + c0 + 8 * x) : _mm256_setzero_ps();
    for (int j = 0; j < n; j++) {
        const void *vj = row_at(v, j0 + j, ld, dt);
        const bool every = !checked || (all >> j & 1);
        __m256 wv[DEC_R];
        for (int r = 0; r < R; r++)
            wv[r] = _mm256_broadcast_ss(s[r] + j0 + j);
        for (int x = 0; x < cv; x++) {
            if (x >= nv)
                break;
            const int64_t c = c0 + 8 * x;
            const __m256 xv = tail && x == nv - 1 ? load8_tail(vj, c, d - c, dtail, dt)
                                                  : load8(vj, c, dt);
            if (c * (dt == ATTN_F32 ? 4 : 2) % 64 == 0) /* one prefetch per line */
                prefetch_row(vpf[j], c, dt);
            for (int r = 0; r < R; r++)
                if (every || s[r][j0 + j] != 0.0f)
                    a[r][x] = _mm256_fmadd_ps(wv[r], xv, a[r][x]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int x = 0; x < cv; x++)
            if (x < nv)
                _mm256_store_ps(acc[r] + c0 + 8 * x, a[r][x]);
}

/* acc_r[0, dp) += Σ_j s_r[j]·V[j] for a tile of R >= 2 rows, keys [0, nk) of the run at v (key
 * jv of group gr, whose rows pf_keys() keys later it prefetches): keys by 8 (a few KiB, in
 * L1 while the passes over head_dim take them), DEC_PV_COLS[R] vectors of each row's
 * accumulator in registers per pass. A key whose weight is 0 for a row (masked, or past its
 * limit) is skipped for that row, so a NaN in V never reaches a row that excludes it. */
static const int DEC_PV_COLS[DEC_R + 1] = {0, 8, 6, 3, 2}; /* R·cols + 1 + R ymm <= 16 */
ALWAYS_INLINE void decode_pv_tile_dt(const attn_task *t, const attn_group_rows *gr, int64_t jv,
                                     const void *v, int64_t ld, int R, float *const s[DEC_R],
                                     int64_t nk, float *const acc[DEC_R], int64_t d,
                                     attn_dtype dt)
{
    const int cv = DEC_PV_COLS[R];
    const int64_t dwhole = d - d % (8 * cv); /* columns in whole passes */
    for (int64_t j0 = 0; j0 < nk; j0 += 8) {
        const int n = (int)min64(nk - j0, 8);
        const void *vpf[8]; /* rows pf_keys() keys later, through the page table */
        attn_kv_rows_ahead(t, 'v', gr->b, gr->hkv, jv + j0 + pf_keys(d, dt), t->problem->len_kv, 8,
                           &v, vpf);
        /* Once per 8 keys, not per pass: which keys every row counts. */
        unsigned all = 0;
        for (int j = 0; j < n; j++) {
            bool nz = true;
            for (int r = 0; r < R; r++)
                nz &= s[r][j0 + j] != 0.0f;
            all |= (unsigned)nz << j;
        }
        const bool checked = all != (1u << n) - 1;
        for (int64_t c0 = 0; c0 < dwhole; c0 += 8 * cv) {
            if (checked)
                pv_tile_pass(R, cv, v, ld, j0, n, s, acc, c0, cv, false, d, all, true, vpf, dt);
            else
                pv_tile_pass(R, cv, v, ld, j0, n, s, acc, c0, cv, false, d, all, false, vpf, dt);
        }
        if (dwhole < d) { /* the last columns: fewer than cv vectors, the last maybe partial */
            const int nv = (int)((d - dwhole + 7) / 8);
            pv_tile_pass(R, cv, v, ld, j0, n, s, acc, dwhole, nv, dwhole + 8 * nv > d, d, all,
                         true, vpf, dt);
        }
    }
}

/* One block of keys for rows [r0, r0 + R) of a group (R >= 2, a constant once inlined): their
 * scores, the running max, sum and accumulator rescale of each row, then P·V. opts (model
 * options: window, ALiBi, soft cap) is a constant: NULL in the plain copies. */
ALWAYS_INLINE void decode_tile_dt(const attn_task *t, const workspace *ws,
                                  const attn_group_rows *gr, int64_t r0, int R, int64_t j0,
                                  int64_t bk, float scale_log2e, const score_opts *opts,
                                  attn_dtype dt)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, dp = round_up(d, 8);
    const float *q[DEC_R], *mask[DEC_R];
    float *s[DEC_R], *acc[DEC_R], bmax[DEC_R];
    int64_t nkr[DEC_R], nk = 0;
    for (int r = 0; r < R; r++) {
        int64_t h, i;
        row_of(gr, t, r0 + r, &h, &i);
        q[r] = dt == ATTN_F32 ? attn_q_row(t, gr->b, h, i) : ws->q_panel + (r0 + r) * d;
        mask[r] = attn_mask_row(p, i);
        s[r] = ws->scores + r * ws->s_ld;
        acc[r] = ws->acc + (r0 + r) * dp;
        nkr[r] = min64(bk, ws->limit[r0 + r] - j0);
        nk = max64(nk, nkr[r]);
    }
    dec_tile_opts o;
    if (opts) {
        /* The block starts at the first key some row's band holds (a window's band skips
         * whole blocks before it, and the keys of its edge block before it); none: skip. */
        int64_t lo = INT64_MAX;
        for (int r = 0; r < R; r++) {
            o.first[r] = ws->first[r0 + r];
            o.slope[r] = ws->slope[r0 + r];
            o.pos[r] = ws->pos[r0 + r];
            if (nkr[r] > 0 && o.first[r] < j0 + nkr[r])
                lo = min64(lo, o.first[r]);
        }
        if (lo == INT64_MAX)
            return;
        const int64_t skip = max64(lo - j0, 0);
        j0 += skip;
        nk -= skip;
        for (int r = 0; r < R; r++)
            nkr[r] -= skip;
        o.opts = opts;
    }
    if (nk <= 0)
        return;
    decode_scores_tile_dt(t, gr, R, q, mask, nkr, j0, nk, s, scale_log2e, opts ? &o : NULL,
                          bmax, dt);
    for (int r = 0; r < R; r++) {
        const int64_t row = r0 + r;
        if (bmax[r] > ws->run_max[row]) {
            const float alpha = attn_exp2_nonpos(ws->run_max[row] - bmax[r]);
            scale_row(acc[r], dp, alpha);
            ws->run_sum[row] *= alpha;
            ws->run_max[row] = bmax[r];
        }
        ws->run_sum[row] += exp_row(s[r], round_up(nk, 8), ws->run_max[row]);
    }
    for (int64_t off = 0, n; off < nk; off += n) { /* a page run at a time */
        n = attn_kv_run(p, j0 + off, nk - off);
        float *so[DEC_R];
        for (int r = 0; r < R; r++)
            so[r] = s[r] + off;
        decode_pv_tile_dt(t, gr, j0 + off, attn_row(t, 'v', gr->b, gr->hkv, j0 + off), p->v.seq,
                          R, so, n, acc, d, dt);
    }
}

/* Rows [r0, r0 + R) of a group on one block, R in 2..DEC_R: one copy per R, dtype and options
 * (OPTS: NULL, or the argument opts), so each tile's arrays stay in registers and the plain
 * copies have nothing of the options in their loops (as the prefill's four copies). */
#define DECODE_TILE_OF(name, dt, OPTS)                                                           \
    static __attribute__((noinline)) void name(const attn_task *t, const workspace *ws,          \
                                               const attn_group_rows *gr, int64_t r0, int R,     \
                                               int64_t j0, int64_t bk, float scale_log2e,        \
                                               const score_opts *opts)                           \
    {                                                                                            \
        (void)opts;                                                                              \
        switch (R) {                                                                             \
        case 2: decode_tile_dt(t, ws, gr, r0, 2, j0, bk, scale_log2e, OPTS, dt); break;          \
        case 3: decode_tile_dt(t, ws, gr, r0, 3, j0, bk, scale_log2e, OPTS, dt); break;          \
        default: decode_tile_dt(t, ws, gr, r0, 4, j0, bk, scale_log2e, OPTS, dt); break;         \
        }                                                                                        \
    }
DECODE_TILE_OF(decode_tile_f32, ATTN_F32, NULL)
DECODE_TILE_OF(decode_tile_bf16, ATTN_BF16, NULL)
DECODE_TILE_OF(decode_tile_f16, ATTN_F16, NULL)
DECODE_TILE_OF(decode_tile_f32_opts, ATTN_F32, opts)
DECODE_TILE_OF(decode_tile_bf16_opts, ATTN_BF16, opts)
DECODE_TILE_OF(decode_tile_f16_opts, ATTN_F16, opts)

typedef void decode_tile_fn(const attn_task *, const workspace *, const attn_group_rows *,
                            int64_t, int, int64_t, int64_t, float, const score_opts *);

/* opts NULL: no model options (the plain copies). */
static void decode_tile(const attn_task *t, const workspace *ws, const attn_group_rows *gr,
                        int64_t r0, int R, int64_t j0, int64_t bk, float scale_log2e,
                        const score_opts *opts)
{
    decode_tile_fn *fn;
    switch (t->problem->dtype) {
    case ATTN_BF16: fn = opts ? decode_tile_bf16_opts : decode_tile_bf16; break;
    case ATTN_F16: fn = opts ? decode_tile_f16_opts : decode_tile_f16; break;
    default: fn = opts ? decode_tile_f32_opts : decode_tile_f32; break;
    }
    fn(t, ws, gr, r0, R, j0, bk, scale_log2e, opts);
}

static void run_decode(const attn_task *t, const workspace *ws, const attn_group_rows *gr,
                       const key_range *kr, int64_t bk, float scale_log2e)
{
    const attn_problem *p = t->problem;
    const int64_t d = p->head_dim, dp = round_up(d, 8);
    int64_t keys = 0;
    /* decode's bf16 column order (load8_dec) in the one-row loops, a group of one row; the
     * tiles read in order: by 16 for the pairs, their Q·K loop spilled (in cache, D2 bf16 13.6
     * against 16 GB/s for f16 by 8) */
    const int64_t d16 = p->dtype == ATTN_BF16 && gr->count == 1 ? d & ~(int64_t)15 : 0;
    const score_opts opts = score_opts_of(p);
    const bool options = opts.softcap || opts.alibi || p->window_left >= 0;
    for (int64_t r = 0; r < gr->count; r++) {
        int64_t h, i;
        row_of(gr, t, r, &h, &i);
        if (p->dtype != ATTN_F32) { /* half Q rows widened once into the (unused) Q panels, */
            const void *q = attn_row(t, 'q', gr->b, h, i); /* in decode's column order */
            for (int64_t c = 0; c < d; c++)
                ws->q_panel[r * d + dec_col(c, d16)] = elem(q, c, p->dtype);
        }
        ws->limit[r] = max64(min64(attn_key_limit(p, gr->b, i), kr->key_end), 0);
        ws->first[r] = attn_key_start(p, i);
        ws->slope[r] = p->alibi_slopes ? p->alibi_slopes[h] * ATTN_LOG2E : 0.0f;
        ws->pos[r] = (float)(i + p->len_kv - p->len_q);
        keys = max64(keys, ws->limit[r]);
        ws->run_max[r] = -INFINITY;
        ws->run_sum[r] = 0.0f;
        memset(ws->acc + r * dp, 0, (size_t)dp * sizeof(float));
    }
    for (int64_t j0 = kr->key_begin; j0 < keys; j0 += bk) {
        /* Tiles of up to DEC_R rows share each K and V load; a lone last row (and a group of
         * one row, D1) takes the one-row path below, whose key order was measured at the
         * read bandwidth. Rows 4 + 1 go as 3 + 2, so no row is alone in a larger group. */
        int64_t r = 0;
        while (gr->count - r >= 2) {
            const int64_t left = gr->count - r;
            const int R = left == 5 ? 3 : (int)min64(left, DEC_R);
            decode_tile(t, ws, gr, r, R, j0, bk, scale_log2e, options ? &opts : NULL);
            r += R;
        }
        for (; r < gr->count; r++) {
            const int64_t nk = min64(bk, ws->limit[r] - j0);
            if (nk <= 0 || j0 + nk <= ws->first[r]) /* past the limit, or before the window */
                continue;
            int64_t h, i;
            row_of(gr, t, r, &h, &i);
            const dec_row dr = {.first = ws->first[r], .opts = &opts, .slope = ws->slope[r],
                                .pos = ws->pos[r]};
            float *s = ws->scores; /* one row at a time */
            const float *q = p->dtype == ATTN_F32 ? attn_q_row(t, gr->b, h, i)
                                                  : ws->q_panel + r * d;
            const float m_blk =
                decode_scores(t, gr, q, attn_mask_row(p, i), j0, nk, s, scale_log2e, &dr);
            float *acc = ws->acc + r * dp;
            if (m_blk > ws->run_max[r]) {
                const float alpha = attn_exp2_nonpos(ws->run_max[r] - m_blk);
                scale_row(acc, dp, alpha);
                ws->run_sum[r] *= alpha;
                ws->run_max[r] = m_blk;
            }
            ws->run_sum[r] += exp_row(s, round_up(nk, 8), ws->run_max[r]);
            decode_pv(t, gr, s, j0, nk, acc, d);
        }
    }
    for (int64_t r = 0; r < gr->count; r++) {
        float *acc = ws->acc + r * dp;
        if (d16 > 0) { /* back from decode's column order, through the (now free) Q panel */
            float *row = ws->q_panel + r * d;
            for (int64_t c = 0; c < d16; c++)
                row[c] = acc[dec_col(c, d16)];
            memcpy(acc, row, (size_t)d16 * sizeof *acc);
        }
        finish_row(t, gr, kr, r, acc, ws->run_sum[r], ws->run_max[r]);
    }
}

/* ---- entry points ------------------------------------------------------------------------- */

/* run_partial, and run with part NULL over every key (variant.h). */
static attn_status avx2_rows(const attn_task *t, int64_t key_begin, int64_t key_end,
                             const attn_partial *part)
{
    if (attn_kv_quantized(t->problem)) /* int8, q4 K/V: avx2_kvq.c */
        return attn_avx2_kvq_rows(t, key_begin, key_end, part);
    const attn_problem *p = t->problem;
    const workspace ws = workspace_of(t);
    const float scale_log2e = t->scale * ATTN_LOG2E;
    const int64_t bq = t->params[P_BQ], bk = t->params[P_BK];
    for (int64_t g = t->group_begin; g < t->group_end; g++) {
        const attn_group_rows gr = attn_group_rows_of(t, g);
        const key_range kr = {.key_begin = key_begin, .key_end = key_end, .part = part,
                              .part_row0 = (g - t->group_begin) * gr.count};
        if (gr.count <= DECODE_MAX_ROWS) {
            run_decode(t, &ws, &gr, &kr, bk, scale_log2e);
            continue;
        }
        for (int64_t r0 = 0; r0 < gr.count; r0 += bq) {
            tile_ctx c = {.t = t, .ws = &ws, .kr = &kr, .gr = gr, .d = p->head_dim,
                          .dp = round_up(p->head_dim, 8), .bk = bk, .r0 = r0,
                          .nr = min64(bq, gr.count - r0), .scale_log2e = scale_log2e,
                          .full_row = t->params[P_FULL_ROW] != 0};
            c.micro_tiles = (c.nr + MR - 1) / MR;
            run_tile(&c);
        }
    }
    return ATTN_OK;
}

/* Defaults (AVX2 family). Each tile re-reads the packed K/V block, so large tiles first:
 * bq=192 reads K/V a sixth as often as bq=32. The K and V panels take an eighth of L2, the
 * tile's Q panels and O_acc a quarter, the scores (bq·bk floats, at most 192 KiB) the rest of
 * half of L2 — the whole workspace stays in L2 (1 MiB: bq=192 bk=128 at d=128, 192/256 at
 * d=64; 2 MiB: 192/256 at d=128). */
static const attn_default_rule avx2_defaults[] = {
    /*             fact           div per_d lk dm min max  max_half fixed */
    [P_BQ]      = {ATTN_FACT_L2,   4, 8,    0, 8, 48, 192, 0,       0,
                   "Q panels and O_acc: 2 x dp floats per row"},
    [P_BK]      = {ATTN_FACT_L2,   8, 8,    0, 8, 64, 256, 0,       0,
                   "K and V panels: 2 x dp floats per key"},
    [P_FULL_ROW] = {ATTN_FACT_NONE, 0, 0,   0, 0, 0,  0,   0,       0,
                   "streaming; full rows need Lk-sized workspace"},
};

static bool avx2_params_valid(const attn_problem *p, const int32_t *v, char *why, size_t len)
{
    if (avx2_workspace_size(p, v) == SIZE_MAX) {
        snprintf(why, len, "full_row=1 needs bq x len_kv scores, which overflow");
        return false;
    }
    return true;
}

const attn_variant attn_variant_avx2 = {
    .name = "avx2",
    .description = "AVX2+FMA streaming softmax, packed K/V blocks, 6x16 micro-kernels",
    .isa = ATTN_ISA_AVX2 | ATTN_ISA_FMA | ATTN_ISA_F16C,
    .tolerance = 1e-5,
    .dtypes = 1u << ATTN_F32 | 1u << ATTN_BF16 | 1u << ATTN_F16,
    .kv_dtypes = 1u << ATTN_INT8 | 1u << ATTN_Q4,
    .compute_dtype = ATTN_F32,
    .roofline = ATTN_ROOFLINE_FMA256,
    ATTN_PARAMS(avx2_params, avx2_defaults),
    .vector_bits = 256,
    .params_valid = avx2_params_valid,
    .workspace_size = avx2_workspace_size,
    .run_partial = avx2_rows,
    .features = ATTN_FEATURE_ALL,
};
