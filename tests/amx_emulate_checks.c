/* amx_emulate_checks.c — the checks of test_amx_emulate (tests/test_amx_emulate.c), compiled
 * with the avx512_bf16 flags like the emulation they test (variants/amx_emulate.h): each tile
 * instruction against a plain scalar reading of its definition, with shapes other than the
 * 16 × 64 bytes that amx_bf16 uses, denormals, and the faults (SIGILL in a child process). The
 * kernel on emulated tiles is checked by the conformance runner (amx_bf16_emu). */
#include "amx_emulate.h"
#include "check.h"

#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int amx_emulate_checks(void);

/* The ldtilecfg operand: palette 1, tile t with rows[t] rows of colsb[t] bytes. */
typedef struct config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} config;

static void configure(const uint8_t rows[AMX_EMU_TILES], const uint16_t colsb[AMX_EMU_TILES])
{
    _Alignas(64) config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < AMX_EMU_TILES; t++) {
        c.rows[t] = rows[t];
        c.colsb[t] = colsb[t];
    }
    _tile_loadconfig(&c);
}

static uint32_t rng_state = 12345u;
static uint32_t next_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* A bf16 of a normal float in [-2, 2) (upper half of its bits, truncated: any bf16 will do). */
static uint16_t random_bf16(void)
{
    const float f = (float)((int32_t)(next_u32() >> 8) - (1 << 23)) / (float)(1 << 22);
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return (uint16_t)(bits >> 16);
}

static float bf16_value(uint16_t h)
{
    const uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* TILELOADD and TILESTORED move rows × colsb bytes at their strides, nothing else; the rest of
 * the tile reads as zero; TILEZERO clears it all. */
static void check_load_store(void)
{
    const uint8_t rows[AMX_EMU_TILES] = {16, 16, 5, 16, 16, 16, 16, 16};
    const uint16_t colsb[AMX_EMU_TILES] = {64, 64, 20, 64, 64, 64, 64, 64};
    configure(rows, colsb);
    uint8_t src[16 * 72], dst[16 * 80];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)next_u32();
    memset(dst, 0xaa, sizeof dst);
    _tile_loadd(2, src, 72);
    _tile_stored(2, dst, 80);
    int moved = 0, kept = 0;
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 80; c++) {
            if (r < 5 && c < 20)
                moved += dst[r * 80 + c] == src[r * 72 + c];
            else
                kept += dst[r * 80 + c] == 0xaa;
        }
    CHECK_EQ_INT(moved, 5 * 20);
    CHECK_EQ_INT(kept, 16 * 80 - 5 * 20);
    int zero = 0;
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 64; c++)
            zero += (r >= 5 || c >= 20) && amx_emu.tile[2][r][c] == 0;
    CHECK_EQ_INT(zero, 16 * 64 - 5 * 20);
    _tile_zero(2);
    _tile_stored(2, dst, 80);
    int cleared = 0;
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 20; c++)
            cleared += dst[r * 80 + c] == 0;
    CHECK_EQ_INT(cleared, 5 * 20);
    _tile_release();
}

/* TDPBF16PS on C (m × n float32), A (m × k bf16 pairs), B (k × n pairs) against the scalar
 * reading of the ISA reference: per element, even and odd pair products summed apart by FMA,
 * then C + even + odd. Normal data: the two must agree to the bit. */
static void check_dot(int m, int k, int n)
{
    uint8_t rows[AMX_EMU_TILES] = {0};
    uint16_t colsb[AMX_EMU_TILES] = {0};
    rows[1] = (uint8_t)m, colsb[1] = (uint16_t)(4 * n); /* C */
    rows[4] = (uint8_t)m, colsb[4] = (uint16_t)(4 * k); /* A */
    rows[7] = (uint8_t)k, colsb[7] = (uint16_t)(4 * n); /* B */
    configure(rows, colsb);
    uint16_t a[16][32], b[16][32];
    float c[16][16], want[16][16], got[16][16];
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 32; j++) {
            a[i][j] = random_bf16();
            b[i][j] = random_bf16();
        }
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++)
            c[i][j] = bf16_value(random_bf16());
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float even = 0.0f, odd = 0.0f;
            for (int p = 0; p < k; p++) {
                even = fmaf(bf16_value(a[i][2 * p]), bf16_value(b[p][2 * j]), even);
                odd = fmaf(bf16_value(a[i][2 * p + 1]), bf16_value(b[p][2 * j + 1]), odd);
            }
            want[i][j] = c[i][j] + even + odd;
        }
    _tile_loadd(1, c, sizeof c[0]);
    _tile_loadd(4, a, sizeof a[0]);
    _tile_loadd(7, b, sizeof b[0]);
    _tile_dpbf16ps(1, 4, 7);
    _tile_stored(1, got, sizeof got[0]);
    int same = 0;
    for (int i = 0; i < m; i++)
        same += !memcmp(got[i], want[i], (size_t)n * sizeof(float));
    CHECK_MSG(same == m, "%dx%dx%d: %d of %d rows bit-equal", m, k, n, same, m);
    _tile_release();
}

/* Input denormals read as zero, output denormals flushed: a denormal bf16 (2^-133) times 2^100
 * adds nothing (2^-33 without DAZ), nor does 2^-68 · 2^-72 (2^-140, a float32 denormal, without
 * FTZ); 2^-68 · 2^8 does. */
static void check_denormals(void)
{
    const uint8_t rows[AMX_EMU_TILES] = {1, 1, 1, 0, 0, 0, 0, 0};
    const uint16_t colsb[AMX_EMU_TILES] = {12, 4, 12, 0, 0, 0, 0, 0};
    configure(rows, colsb); /* C = tile 0 (1 × 3), A = tile 1 (1 × 1 pair), B = tile 2 */
    const uint16_t tiny = 0x1d80 /* 2^-68 */, denormal = 0x0001 /* 2^-133 */;
    const uint16_t a[2] = {denormal, tiny};
    /* B's columns (even, odd): (2^100, 0), (0, 2^-72), (0, 2^8) */
    const uint16_t b[6] = {0x7180, 0, 0, 0x1b80, 0, 0x4380};
    const float c0[3] = {0.0f, 0.0f, 0.0f};
    float out[3];
    _tile_loadd(0, c0, 12);
    _tile_loadd(1, a, 4);
    _tile_loadd(2, b, 12);
    _tile_dpbf16ps(0, 1, 2);
    _tile_stored(0, out, 12);
    CHECK_EQ_DBL(out[0], 0.0);
    CHECK_EQ_DBL(out[1], 0.0);
    CHECK_EQ_DBL(out[2], ldexp(1.0, -60));
    _tile_release();
}

/* The body run in a child: the instruction must fault (SIGILL). */
typedef void (*fault_fn)(void);
static void use_after_release(void)
{
    _tile_release();
    _tile_zero(0);
}
static void shapes_mismatch(void)
{
    const uint8_t rows[AMX_EMU_TILES] = {16, 16, 8, 16, 16, 16, 16, 16};
    const uint16_t colsb[AMX_EMU_TILES] = {64, 64, 64, 64, 64, 64, 64, 64};
    configure(rows, colsb); /* B (tile 2) has 8 rows, A's 64 bytes need 16 */
    _tile_dpbf16ps(0, 1, 2);
}
static void rows_out_of_range(void)
{
    const uint8_t rows[AMX_EMU_TILES] = {17, 16, 16, 16, 16, 16, 16, 16};
    const uint16_t colsb[AMX_EMU_TILES] = {64, 64, 64, 64, 64, 64, 64, 64};
    configure(rows, colsb);
}
static void unconfigured_tile(void)
{
    const uint8_t rows[AMX_EMU_TILES] = {16, 16, 16, 16, 16, 16, 16, 0};
    const uint16_t colsb[AMX_EMU_TILES] = {64, 64, 64, 64, 64, 64, 64, 0};
    configure(rows, colsb);
    _tile_zero(7);
}

static void check_faults(void)
{
    static const struct {
        const char *what;
        fault_fn fn;
    } cases[] = {{"a tile after TILERELEASE", use_after_release},
                 {"TDPBF16PS with mismatched shapes", shapes_mismatch},
                 {"LDTILECFG with 17 rows", rows_out_of_range},
                 {"a tile outside the configuration", unconfigured_tile}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fflush(stdout);
        const pid_t pid = fork();
        if (pid == 0) {
            if (!freopen("/dev/null", "w", stderr)) /* the fault's message is expected */
                _exit(3);
            cases[i].fn();
            _exit(0);
        }
        int status = 0;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
        CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGILL, "%s: status %#x",
                  cases[i].what, status);
    }
}

int amx_emulate_checks(void)
{
    check_load_store();
    check_dot(16, 16, 16); /* amx_bf16's shape */
    check_dot(5, 7, 6);
    check_dot(1, 1, 1);
    check_dot(16, 3, 11);
    check_denormals();
    check_faults();
    return check_summary("test_amx_emulate");
}
