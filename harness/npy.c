/* npy.c — NumPy .npy reader (float32 and float16) and writer (atomic_file.c).
 *
 * A .npy file is: the magic "\x93NUMPY", a major and a minor version byte, the header length
 * (little-endian uint16 for version 1.0, uint32 for 2.0 and 3.0), then the header — a Python
 * dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces
 * and ended by '\n' — then the raw data. Version 3.0 only allows UTF-8 in the header, which
 * changes nothing for the keys and values accepted here. */
#include "npy.h"
#include "atomic_file.h"
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The data is read and written as the host's floats (and uint16 halves), byte for byte. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "npy.c assumes a little-endian host (x86-64, AArch64)");
_Static_assert(sizeof(float) == 4, "npy.c assumes 4-byte floats");

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* A real header is well under a kilobyte (numpy itself refuses more than 10000 bytes by
 * default); the cap keeps a corrupt length from making us allocate gigabytes. */
#define NPY_MAX_HEADER_BYTES 65536

void attn_npy_free(attn_npy_array *array)
{
    if (!array)
        return;
    free(array->data);
    memset(array, 0, sizeof *array);
}

/* ---- header parsing ----------------------------------------------------------------------- */

/* A cursor over the NUL-terminated header text. */
typedef struct header_cursor {
    const char *s;
    char why[128]; /* set on the first parse error */
} header_cursor;

static bool parse_error(header_cursor *c, const char *what)
{
    if (c->why[0])
        return false;
    char excerpt[21]; /* what follows, printable, for the message */
    size_t n = 0;
    for (; n < sizeof excerpt - 1 && c->s[n] >= ' ' && c->s[n] <= '~'; n++)
        excerpt[n] = c->s[n];
    excerpt[n] = '\0';
    snprintf(c->why, sizeof c->why, "%s at '%s'", what, excerpt);
    return false;
}

static void skip_space(header_cursor *c)
{
    while (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r')
        c->s++;
}

static bool expect_char(header_cursor *c, char ch)
{
    skip_space(c);
    if (*c->s != ch) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", ch);
        return parse_error(c, what);
    }
    c->s++;
    return true;
}

/* A quoted Python string without escapes ('...' or "..."), copied into out. */
static bool parse_string(header_cursor *c, char *out, size_t len)
{
    skip_space(c);
    const char quote = *c->s;
    if (quote != '\'' && quote != '"')
        return parse_error(c, "expected a quoted string");
    const char *end = strchr(c->s + 1, quote);
    if (!end)
        return parse_error(c, "unterminated string");
    size_t n = (size_t)(end - c->s - 1);
    if (n >= len || memchr(c->s + 1, '\\', n))
        return parse_error(c, "unsupported string");
    memcpy(out, c->s + 1, n);
    out[n] = '\0';
    c->s = end + 1;
    return true;
}

static bool parse_bool(header_cursor *c, bool *value)
{
    skip_space(c);
    if (!strncmp(c->s, "True", 4)) {
        *value = true;
        c->s += 4;
    } else if (!strncmp(c->s, "False", 5)) {
        *value = false;
        c->s += 5;
    } else {
        return parse_error(c, "expected True or False");
    }
    return true;
}

/* A tuple of non-negative integers: (), (3,), (2, 3), (2, 3,). Python 2 files may write 3L. */
static bool parse_shape(header_cursor *c, attn_npy_array *a)
{
    if (!expect_char(c, '('))
        return false;
    a->ndim = 0;
    for (;;) {
        skip_space(c);
        if (*c->s == ')') {
            c->s++;
            return true;
        }
        if (*c->s < '0' || *c->s > '9')
            return parse_error(c, "expected a non-negative integer in the shape");
        if (a->ndim == ATTN_NPY_MAX_DIMS)
            return parse_error(c, "too many dimensions");
        int64_t v = 0;
        while (*c->s >= '0' && *c->s <= '9') {
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *c->s - '0', &v))
                return parse_error(c, "dimension too large");
            c->s++;
        }
        if (*c->s == 'L')
            c->s++;
        a->shape[a->ndim++] = v;
        skip_space(c);
        /* numpy writes (3,) for one dimension; (3) is accepted too: its meaning is plain. */
        if (*c->s == ',')
            c->s++;
        else if (*c->s != ')')
            return parse_error(c, "expected ',' or ')' in the shape");
    }
}

/* Parses the header dict into a; the only keys are descr, fortran_order and shape, each once. */
static bool parse_header(header_cursor *c, attn_npy_array *a, char *descr, size_t descr_len,
                         bool *fortran_order)
{
    bool seen_descr = false, seen_order = false, seen_shape = false;
    if (!expect_char(c, '{'))
        return false;
    for (;;) {
        skip_space(c);
        if (*c->s == '}') {
            c->s++;
            break;
        }
        char key[32];
        if (!parse_string(c, key, sizeof key) || !expect_char(c, ':'))
            return false;
        if (!strcmp(key, "descr") && !seen_descr) {
            seen_descr = parse_string(c, descr, descr_len);
            if (!seen_descr)
                return false;
        } else if (!strcmp(key, "fortran_order") && !seen_order) {
            seen_order = parse_bool(c, fortran_order);
            if (!seen_order)
                return false;
        } else if (!strcmp(key, "shape") && !seen_shape) {
            seen_shape = parse_shape(c, a);
            if (!seen_shape)
                return false;
        } else {
            snprintf(c->why, sizeof c->why, "unexpected or repeated key '%s'", key);
            return false;
        }
        skip_space(c);
        if (*c->s == ',')
            c->s++;
        else if (*c->s != '}')
            return parse_error(c, "expected ',' or '}'");
    }
    skip_space(c);
    if (*c->s)
        return parse_error(c, "unexpected text after the header dict");
    if (!seen_descr || !seen_order || !seen_shape) {
        snprintf(c->why, sizeof c->why, "header lacks '%s'",
                 !seen_descr ? "descr" : !seen_order ? "fortran_order" : "shape");
        return false;
    }
    return true;
}

/* ---- reading ------------------------------------------------------------------------------ */

static attn_status read_exact(FILE *f, void *buf, size_t n, const char *path, const char *what,
                              attn_error *err)
{
    if (fread(buf, 1, n, f) == n)
        return ATTN_OK;
    if (ferror(f))
        return attn_fail(err, ATTN_ERR_IO, "%s: read error: %s", path, strerror(errno));
    return attn_fail(err, ATTN_ERR_INVALID, "%s: truncated %s", path, what);
}

static attn_status read_file(FILE *f, const char *path, attn_npy_array *a, bool int32,
                             attn_error *err)
{
    unsigned char lead[12]; /* magic, version, header length */
    attn_status s = read_exact(f, lead, 8, path, "file (no .npy magic)", err);
    if (s != ATTN_OK)
        return s;
    if (memcmp(lead, npy_magic, sizeof npy_magic))
        return attn_fail(err, ATTN_ERR_INVALID, "%s: not a .npy file (bad magic)", path);
    const unsigned major = lead[6], minor = lead[7];
    if (!(major >= 1 && major <= 3 && minor == 0))
        return attn_fail(err, ATTN_ERR_INVALID, "%s: unsupported .npy version %u.%u (1.0, 2.0, 3.0 "
                    "are known)", path, major, minor);
    const size_t len_bytes = major == 1 ? 2 : 4;
    if ((s = read_exact(f, lead + 8, len_bytes, path, "header", err)) != ATTN_OK)
        return s;
    uint32_t header_len = (uint32_t)lead[8] | (uint32_t)lead[9] << 8;
    if (major > 1)
        header_len |= (uint32_t)lead[10] << 16 | (uint32_t)lead[11] << 24;
    if (header_len > NPY_MAX_HEADER_BYTES)
        return attn_fail(err, ATTN_ERR_INVALID, "%s: header of %u bytes is too long", path,
                    header_len);

    char *header = malloc((size_t)header_len + 1);
    if (!header)
        return attn_fail(err, ATTN_ERR_NOMEM, "%s: out of memory", path);
    s = read_exact(f, header, header_len, path, "header", err);
    header[header_len] = '\0';
    char descr[16];
    bool fortran_order = false;
    header_cursor c = {.s = header};
    if (s == ATTN_OK && (memchr(header, '\0', header_len) ||
                         !parse_header(&c, a, descr, sizeof descr, &fortran_order)))
        s = attn_fail(err, ATTN_ERR_INVALID, "%s: malformed .npy header: %s", path,
                 c.why[0] ? c.why : "NUL byte in the header");
    free(header);
    if (s != ATTN_OK)
        return s;
    if (int32 && strcmp(descr, "<i4"))
        return attn_fail(err, ATTN_ERR_INVALID, "%s: dtype '%s' is not little-endian int32 "
                         "('<i4')", path, descr);
    if (int32 || !strcmp(descr, "<f4"))
        a->dtype = ATTN_F32;
    else if (!strcmp(descr, "<f2"))
        a->dtype = ATTN_F16;
    else
        return attn_fail(err, ATTN_ERR_INVALID, "%s: dtype '%s' is not little-endian float32 "
                         "('<f4') or float16 ('<f2')", path, descr);
    const int64_t esize = (int64_t)attn_dtype_size(a->dtype);
    if (fortran_order)
        return attn_fail(err, ATTN_ERR_INVALID, "%s: Fortran-order arrays are not supported (write it "
                    "with numpy.ascontiguousarray)", path);

    int64_t count = 1, bytes;
    for (int i = 0; i < a->ndim; i++)
        if (__builtin_mul_overflow(count, a->shape[i], &count))
            return attn_fail(err, ATTN_ERR_OVERFLOW, "%s: shape's size overflows 64 bits", path);
    /* The float32 copy in memory: at least as large as the data in the file. */
    int64_t copy_bytes;
    if (__builtin_mul_overflow(count, (int64_t)sizeof(float), &copy_bytes) ||
        copy_bytes > PTRDIFF_MAX)
        return attn_fail(err, ATTN_ERR_OVERFLOW, "%s: shape's size overflows 64 bits", path);
    bytes = count * esize;
    a->count = count;

    /* For a regular file the size says at once whether the data is all there; check it before
     * allocating what a corrupt shape might claim. */
    struct stat st;
    const long data_offset = ftell(f);
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && data_offset >= 0) {
        const int64_t have = (int64_t)st.st_size - data_offset;
        if (have < bytes)
            return attn_fail(err, ATTN_ERR_INVALID, "%s: truncated: shape needs %lld data bytes, the "
                        "file has %lld", path, (long long)bytes, (long long)have);
        if (have > bytes)
            return attn_fail(err, ATTN_ERR_INVALID, "%s: %lld unexpected bytes after the data", path,
                        (long long)(have - bytes));
    }
    if (count == 0)
        return ATTN_OK;
    a->data = malloc((size_t)copy_bytes);
    /* float16 and int32 are read as stored, then widened (exactly) into data. */
    void *raw = a->dtype == ATTN_F32 && !int32 ? (void *)a->data : malloc((size_t)bytes);
    if (!a->data || !raw) {
        if (raw != a->data)
            free(raw);
        return attn_fail(err, ATTN_ERR_NOMEM, "%s: cannot allocate %lld bytes", path,
                         (long long)copy_bytes);
    }
    s = read_exact(f, raw, (size_t)bytes, path, "data", err);
    if (s == ATTN_OK && fgetc(f) != EOF)
        s = attn_fail(err, ATTN_ERR_INVALID, "%s: unexpected bytes after the data", path);
    if (raw != a->data) {
        const int32_t *n = raw;
        for (int64_t i = 0; int32 && s == ATTN_OK && i < count; i++) {
            if (n[i] > 1 << 24 || n[i] < -(1 << 24))
                s = attn_fail(err, ATTN_ERR_INVALID, "%s: element %lld = %d is beyond 2^24",
                              path, (long long)i, n[i]);
            a->data[i] = (float)n[i];
        }
        if (s == ATTN_OK && !int32)
            attn_convert(raw, a->dtype, a->data, ATTN_F32, (size_t)count);
        free(raw);
    }
    return s;
}

static attn_status read_path(const char *path, attn_npy_array *array, bool int32,
                             attn_error *err)
{
    memset(array, 0, sizeof *array);
    FILE *f = fopen(path, "rb");
    if (!f)
        return attn_fail(err, ATTN_ERR_IO, "%s: %s", path, strerror(errno));
    attn_status s = read_file(f, path, array, int32, err);
    fclose(f);
    if (s != ATTN_OK)
        attn_npy_free(array);
    return s;
}

attn_status attn_npy_read(const char *path, attn_npy_array *array, attn_error *err)
{
    return read_path(path, array, false, err);
}

attn_status attn_npy_read_int32(const char *path, attn_npy_array *array, attn_error *err)
{
    return read_path(path, array, true, err);
}

/* ---- writing ------------------------------------------------------------------------------ */

/* The header, padded so that the data starts on a 64-byte boundary as numpy does. Returns
 * its length (magic to '\n'), or 0 when it does not fit in `len`. */
static size_t format_header(char *buf, size_t len, const char *descr, int ndim,
                            const int64_t *shape)
{
    char dict[64 + ATTN_NPY_MAX_DIMS * 24];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     descr);
    for (int i = 0; i < ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    const size_t dict_len = (size_t)n;
    /* Version 1.0 has a 2-byte length; magic(6) + version(2) + length(2) = 10 bytes before. */
    size_t total = (10 + dict_len + 1 + 63) / 64 * 64;
    if (total > len)
        return 0;
    memcpy(buf, npy_magic, sizeof npy_magic);
    buf[6] = 1;
    buf[7] = 0;
    const size_t header_len = total - 10;
    buf[8] = (char)(header_len & 0xff);
    buf[9] = (char)(header_len >> 8);
    memcpy(buf + 10, dict, dict_len);
    memset(buf + 10 + dict_len, ' ', total - 10 - dict_len - 1);
    buf[total - 1] = '\n';
    return total;
}

attn_status attn_npy_write(const char *path, int ndim, const int64_t *shape, const void *data,
                           attn_dtype dtype, attn_error *err)
{
    if (dtype != ATTN_F32 && dtype != ATTN_F16)
        return attn_fail(err, ATTN_ERR_INVALID, "%s: cannot write %s (.npy files hold float32 "
                         "or float16)", path, attn_dtype_name(dtype));
    const size_t esize = attn_dtype_size(dtype);
    if (ndim < 0 || ndim > ATTN_NPY_MAX_DIMS)
        return attn_fail(err, ATTN_ERR_INVALID, "%s: %d dimensions (at most %d)", path, ndim,
                    ATTN_NPY_MAX_DIMS);
    int64_t count = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(count, shape[i], &count) ||
            count > PTRDIFF_MAX / (int64_t)esize)
            return attn_fail(err, ATTN_ERR_OVERFLOW, "%s: bad or overflowing shape", path);
    /* With at most 8 dimensions of 19 digits the dict stays far below 65535 bytes, so version
     * 1.0 always suffices. */
    char header[1024];
    const size_t header_len = format_header(header, sizeof header,
                                            dtype == ATTN_F32 ? "<f4" : "<f2", ndim, shape);
    if (!header_len)
        return attn_fail(err, ATTN_ERR_INVALID, "%s: header too long", path);

    const attn_file_part parts[2] = {{header, header_len},
                                     {data, count > 0 ? (size_t)count * esize : 0}};
    return attn_file_write(path, parts, 2, ATTN_FILE_REPLACE, err);
}
