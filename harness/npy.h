/* npy.h — NumPy .npy files of float32 or float16: read (format versions 1.0, 2.0 and 3.0) and
 * atomic write.
 *
 * Only little-endian float32 ('<f4') and float16 ('<f2') in C order are accepted; anything else
 * (another dtype, another byte order, Fortran order, a malformed or truncated file, trailing
 * bytes) is refused with a message naming the file. NumPy has no bfloat16 type. The format is numpy.lib.format's
 * (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html). */
#ifndef ATTN_NPY_H
#define ATTN_NPY_H

#include "attn.h"

#define ATTN_NPY_MAX_DIMS 8

typedef struct attn_npy_array {
    int ndim;
    int64_t shape[ATTN_NPY_MAX_DIMS];
    int64_t count;    /* product of the shape (1 for a 0-d array) */
    attn_dtype dtype; /* what the file holds: ATTN_F32 or ATTN_F16 */
    float *data; /* count floats in C order (float16 widened, exactly); NULL when count is 0.
                  * Free with attn_npy_free. */
} attn_npy_array;

/* Reads a whole .npy file of float32 or float16. On failure *array is left empty (safe to pass
 * to attn_npy_free) and err says why: ATTN_ERR_IO (cannot open or read), ATTN_ERR_INVALID (not
 * a float32 or float16 C-order .npy, or truncated), ATTN_ERR_OVERFLOW (its shape's size
 * overflows), ATTN_ERR_NOMEM. */
attn_status attn_npy_read(const char *path, attn_npy_array *array, attn_error *err);

/* The same for an int32 ('<i4') file only (a block table): its values in data as floats,
 * exactly (values beyond ±2^24 are refused); dtype says ATTN_F32. */
attn_status attn_npy_read_int32(const char *path, attn_npy_array *array, attn_error *err);

void attn_npy_free(attn_npy_array *array);

/* Writes a C-order array of `dtype` elements (ATTN_F32: '<f4', ATTN_F16: '<f2'; ATTN_BF16 is
 * refused, numpy having no such type) as a version 1.0 .npy file, through attn_file_write: a
 * regular file is replaced atomically (readers never see a partial file), a device or FIFO
 * (/dev/stdout) is written through, a directory is refused. */
attn_status attn_npy_write(const char *path, int ndim, const int64_t *shape, const void *data,
                           attn_dtype dtype, attn_error *err);

#endif
