/* npy.h — NumPy .npy files of float32: read (format versions 1.0, 2.0 and 3.0) and atomic write.
 *
 * Only little-endian float32 ('<f4') in C order is accepted; anything else (another dtype, another
 * byte order, Fortran order, a malformed or truncated file, trailing bytes) is refused with a
 * message naming the file. The format is numpy.lib.format's
 * (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html). */
#ifndef ATTN_NPY_H
#define ATTN_NPY_H

#include "attn.h"

#define ATTN_NPY_MAX_DIMS 8

typedef struct attn_npy_array {
    int ndim;
    int64_t shape[ATTN_NPY_MAX_DIMS];
    int64_t count; /* product of the shape (1 for a 0-d array) */
    float *data;   /* count floats in C order; NULL when count is 0. Free with attn_npy_free. */
} attn_npy_array;

/* Reads a whole .npy file. On failure *array is left empty (safe to pass to attn_npy_free) and
 * err says why: ATTN_ERR_IO (cannot open or read), ATTN_ERR_INVALID (not a float32 C-order
 * .npy, or truncated), ATTN_ERR_OVERFLOW (its shape's size overflows), ATTN_ERR_NOMEM. */
attn_status attn_npy_read_f32(const char *path, attn_npy_array *array, attn_error *err);

void attn_npy_free(attn_npy_array *array);

/* Writes a float32 C-order array as a version 1.0 .npy file (2.0 when the header needs it).
 * Atomic: the data goes to a temporary file in the same directory, which is renamed over `path`
 * only once it is complete, so readers never see a partial file. The file gets mode 0644. */
attn_status attn_npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data,
                               attn_error *err);

#endif
