/* error.h — filling an attn_error, shared by the library's files. */
#ifndef ATTN_ERROR_H
#define ATTN_ERROR_H

#include "attn.h"

/* Writes status and a printf-formatted message into *err (when err is not NULL); returns
 * status, so a failing path reads `return attn_fail(err, ATTN_ERR_INVALID, "...", ...);`. */
attn_status attn_fail(attn_error *err, attn_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
