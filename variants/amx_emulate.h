/* amx_emulate.h — a software model of the AMX tile instructions that amx_bf16.c uses, so that
 * the kernel runs (as the test-only variant amx_bf16_emu) on CPUs with AVX-512 BF16 but no AMX:
 * LDTILECFG, TILERELEASE, TILELOADD, TILESTORED, TILEZERO and TDPBF16PS, each as the Intel
 * ISA reference's pseudocode defines it. Tests only: amx_bf16.c compiled a second time with
 * -DATTN_AMX_EMULATE and the avx512_bf16 flags (no AMX flag: the object holds no tile
 * instruction) includes this header after <immintrin.h>, and the intrinsics' names map
 * here (variants/meson.build).
 *
 * Architectural state, per thread as on hardware: the palette-1 configuration (rows and bytes
 * per row of tiles 0-7) and eight 16 × 64-byte tile registers. A tile is one register, never
 * renamed, so a kernel that reads a tile after overwriting it sees the new data here as there.
 * What the hardware faults on faults here: using tiles while none are configured (after
 * TILERELEASE or before LDTILECFG), a tile outside the configuration, TDPBF16PS operands that
 * are not three distinct tiles of matching dword shapes (#UD), and a configuration out of range
 * (#GP; a nonzero start_row too: resuming an interrupted load is not modelled). The emulation
 * prints what it found and traps (SIGILL), which the conformance runner reports as a crash of
 * the variant.
 *
 * TDPBF16PS: for each row m of C, two float32 partial sums per column n, even and odd pairs,
 * start at 0 and take, for k over A's dword columns, A[m][2k]·B[k][2n] and A[m][2k+1]·B[k][2n+1]
 * by FMA (products of bf16 are exact in float32); then C[m][n] = C[m][n] + even + odd. Every
 * step rounds to nearest even with input denormals read as zero and output denormals flushed
 * to zero (the instruction ignores MXCSR). Timing is not modelled. */
#ifndef ATTN_AMX_EMULATE_H
#define ATTN_AMX_EMULATE_H

#if !defined(__AVX512F__) || !defined(__AVX512BW__)
#error "amx_emulate.h needs the avx512 ISA flags"
#endif

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { AMX_EMU_TILES = 8, AMX_EMU_ROWS = 16, AMX_EMU_COLSB = 64 };

typedef struct amx_emu_state {
    bool configured;
    uint8_t rows[AMX_EMU_TILES];
    uint16_t colsb[AMX_EMU_TILES];
    _Alignas(64) uint8_t tile[AMX_EMU_TILES][AMX_EMU_ROWS][AMX_EMU_COLSB];
} amx_emu_state;

static _Thread_local amx_emu_state amx_emu;

/* What the hardware raises (#UD, #GP): a message, then SIGILL. */
static __attribute__((noreturn, cold, noinline)) void amx_emu_fault(const char *insn,
                                                                      const char *what)
{
    fprintf(stderr, "amx_emulate: %s: %s\n", insn, what);
    __builtin_trap();
}

/* Tile t as an operand of insn: configured, or the instruction faults. */
static inline void amx_emu_need(const char *insn, int t)
{
    if (!amx_emu.configured)
        amx_emu_fault(insn, "tiles not configured (no LDTILECFG, or after TILERELEASE)");
    if (t < 0 || t >= AMX_EMU_TILES || amx_emu.rows[t] == 0 || amx_emu.colsb[t] == 0)
        amx_emu_fault(insn, "tile not in the configuration");
}

/* LDTILECFG with the 64-byte operand: palette 0 releases the tiles; palette 1 configures tiles
 * 0-7 (rows <= 16, bytes per row <= 64, unused tiles all zero) and zeroes every tile. */
static inline void amx_emu_loadconfig(const void *config)
{
    const uint8_t *c = config;
    uint16_t colsb[16];
    memcpy(colsb, c + 16, sizeof colsb);
    if (c[0] == 0) {
        memset(&amx_emu, 0, sizeof amx_emu);
        return;
    }
    bool ok = c[0] == 1 && c[1] == 0; /* start_row: resuming a load is not modelled */
    for (int i = 2; i < 16; i++)
        ok = ok && c[i] == 0;
    for (int t = 0; t < 16; t++) {
        const uint8_t rows = c[48 + t];
        if (t < AMX_EMU_TILES)
            ok = ok && rows <= AMX_EMU_ROWS && colsb[t] <= AMX_EMU_COLSB;
        else
            ok = ok && rows == 0 && colsb[t] == 0;
    }
    if (!ok)
        amx_emu_fault("ldtilecfg", "configuration out of range for palette 1");
    memset(&amx_emu, 0, sizeof amx_emu);
    amx_emu.configured = true;
    for (int t = 0; t < AMX_EMU_TILES; t++) {
        amx_emu.rows[t] = c[48 + t];
        amx_emu.colsb[t] = colsb[t];
    }
}

/* TILERELEASE: back to the init state, no configuration. */
static inline void amx_emu_release(void) { memset(&amx_emu, 0, sizeof amx_emu); }

/* TILEZERO */
static inline void amx_emu_zero(int t)
{
    amx_emu_need("tilezero", t);
    memset(amx_emu.tile[t], 0, sizeof amx_emu.tile[t]);
}

/* TILELOADD: rows[t] rows of colsb[t] bytes, `stride` bytes apart; the rest of the tile is 0. */
static inline void amx_emu_loadd(int t, const void *base, long stride)
{
    amx_emu_need("tileloadd", t);
    memset(amx_emu.tile[t], 0, sizeof amx_emu.tile[t]);
    for (int r = 0; r < amx_emu.rows[t]; r++)
        memcpy(amx_emu.tile[t][r], (const char *)base + r * stride, amx_emu.colsb[t]);
}

/* TILESTORED: rows[t] rows of colsb[t] bytes, `stride` bytes apart. */
static inline void amx_emu_stored(int t, void *base, long stride)
{
    amx_emu_need("tilestored", t);
    for (int r = 0; r < amx_emu.rows[t]; r++)
        memcpy((char *)base + r * stride, amx_emu.tile[t][r], amx_emu.colsb[t]);
}

/* Denormals to zero of their sign (inputs read as zero, outputs flushed). */
static inline __m512 amx_emu_ftz(__m512 x)
{
    const __mmask16 denormal = _mm512_fpclass_ps_mask(x, 0x20);
    return _mm512_mask_and_ps(x, denormal, x, _mm512_set1_ps(-0.0f));
}

/* TDPBF16PS tmm_c, tmm_a, tmm_b (C: M × N float32, A: M × K bf16 pairs, B: K × N bf16 pairs). */
static inline void amx_emu_dpbf16ps(int c, int a, int b)
{
    amx_emu_need("tdpbf16ps", c);
    amx_emu_need("tdpbf16ps", a);
    amx_emu_need("tdpbf16ps", b);
    if (c == a || c == b || a == b)
        amx_emu_fault("tdpbf16ps", "operands are not three distinct tiles");
    const int m_rows = amx_emu.rows[c], k_pairs = amx_emu.colsb[a] / 4;
    if (amx_emu.colsb[a] % 4 || amx_emu.colsb[b] % 4 || amx_emu.colsb[c] % 4 ||
        amx_emu.rows[a] != m_rows || amx_emu.rows[b] != k_pairs ||
        amx_emu.colsb[b] != amx_emu.colsb[c])
        amx_emu_fault("tdpbf16ps", "operand shapes do not match");
    const __mmask16 cols = (__mmask16)((1u << (amx_emu.colsb[c] / 4)) - 1);
    const __m512i hi_half = _mm512_set1_epi32((int)0xffff0000u);
    for (int m = 0; m < m_rows; m++) {
        __m512 even = _mm512_setzero_ps(), odd = _mm512_setzero_ps();
        for (int k = 0; k < k_pairs; k++) {
            uint32_t pair;
            memcpy(&pair, amx_emu.tile[a][m] + 4 * k, 4);
            const __m512i apair = _mm512_set1_epi32((int)pair);
            const __m512i brow = _mm512_maskz_loadu_epi32(cols, amx_emu.tile[b][k]);
            /* a bf16 is the upper half of its float32: the even element shifted up, the odd
             * one with the lower half cleared */
            const __m512 a_even = amx_emu_ftz(_mm512_castsi512_ps(_mm512_slli_epi32(apair, 16)));
            const __m512 a_odd = amx_emu_ftz(_mm512_castsi512_ps(_mm512_and_si512(apair, hi_half)));
            const __m512 b_even = amx_emu_ftz(_mm512_castsi512_ps(_mm512_slli_epi32(brow, 16)));
            const __m512 b_odd = amx_emu_ftz(_mm512_castsi512_ps(_mm512_and_si512(brow, hi_half)));
            even = amx_emu_ftz(_mm512_fmadd_ps(a_even, b_even, even));
            odd = amx_emu_ftz(_mm512_fmadd_ps(a_odd, b_odd, odd));
        }
        float *row = (float *)(void *)amx_emu.tile[c][m];
        __m512 acc = amx_emu_ftz(_mm512_maskz_loadu_ps(cols, row));
        acc = amx_emu_ftz(_mm512_add_ps(acc, even));
        acc = amx_emu_ftz(_mm512_add_ps(acc, odd));
        _mm512_mask_storeu_ps(row, cols, acc);
    }
}

/* The intrinsics' names (GCC and clang define the tile ones as macros over inline asm, the
 * configuration ones as functions) now name the model. */
#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbf16ps
#define _tile_loadconfig(config) amx_emu_loadconfig(config)
#define _tile_release() amx_emu_release()
#define _tile_zero(t) amx_emu_zero(t)
#define _tile_loadd(t, base, stride) amx_emu_loadd((t), (base), (long)(stride))
#define _tile_stored(t, base, stride) amx_emu_stored((t), (base), (long)(stride))
#define _tile_dpbf16ps(c, a, b) amx_emu_dpbf16ps((c), (a), (b))

#endif
