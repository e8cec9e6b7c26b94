/* peak_amx.c — the AMX bf16 tile peak loop, TDPBF16PS (compiled with the amx flags only).
 * One instruction: C[16×16 float32] += A[16×32 bf16] · B[16×32 bf16 as 16 key pairs × 16
 * columns], 16·16·32 multiply-adds = 16384 FLOPs. Six independent accumulator tiles (tmm0-5)
 * cover the instruction's latency over its issue interval (about 52 over 16 cycles on Sapphire
 * Rapids); A (tmm6, bf16 1.0) and B (tmm7, bf16 2^-20) are loaded once. The caller has the
 * kernel's permission for tile data (cpu_x86.c asks at detection: no permission, no AMX bit). */
#include "peak.h"

#include <immintrin.h>
#include <string.h>

enum { ACC = 6, TILE_ROWS = 16, TILE_BYTES_PER_ROW = 64 };

/* The ldtilecfg operand (palette 1). */
typedef struct tile_config {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static double dot_amx(int64_t iters, float *sink)
{
    _Alignas(64) tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) {
        cfg.colsb[i] = TILE_BYTES_PER_ROW;
        cfg.rows[i] = TILE_ROWS;
    }
    _tile_loadconfig(&cfg);
    enum { TILE_BF16 = TILE_ROWS * TILE_BYTES_PER_ROW / 2 };
    _Alignas(64) uint16_t a[TILE_BF16], b[TILE_BF16];
    for (int i = 0; i < TILE_BF16; i++) {
        a[i] = 0x3f80; /* bf16 1.0 */
        b[i] = 0x3580; /* bf16 2^-20 */
    }
    _tile_loadd(6, a, TILE_BYTES_PER_ROW);
    _tile_loadd(7, b, TILE_BYTES_PER_ROW);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_zero(4);
    _tile_zero(5);
    for (int64_t it = 0; it < iters; it++) {
        _tile_dpbf16ps(0, 6, 7);
        _tile_dpbf16ps(1, 6, 7);
        _tile_dpbf16ps(2, 6, 7);
        _tile_dpbf16ps(3, 6, 7);
        _tile_dpbf16ps(4, 6, 7);
        _tile_dpbf16ps(5, 6, 7);
    }
    _Alignas(64) float c[TILE_ROWS * TILE_BYTES_PER_ROW / 4];
    _tile_stored(5, c, TILE_BYTES_PER_ROW);
    _tile_release();
    *sink = c[0];
    return 2.0 * TILE_ROWS * TILE_ROWS * 32 * ACC * (double)iters;
}

const attn_flop_kernel attn_flop_kernel_amx = {
    "amx", "tdpbf16ps 16x16x32", ATTN_ROOFLINE_AMX_BF16,
    ATTN_ISA_AMX | ATTN_ISA_AVX512F | ATTN_ISA_AVX512BW | ATTN_ISA_AVX512VL | ATTN_ISA_AVX512DQ |
        ATTN_ISA_AVX512BF16,
    TILE_ROWS * TILE_BYTES_PER_ROW * 8, ACC, dot_amx};
