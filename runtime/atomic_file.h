/* atomic_file.h — the one way the library and the CLI write a file (wisdom, the peak cache,
 * result files, .npy outputs, exports).
 *
 * What `path` names decides how it is written:
 * - a regular file, or nothing yet: replaced atomically — a temporary file in the same
 *   directory, fsynced, renamed over the name (then the directory fsynced), so a reader sees the
 *   old or the new file, never a part. An existing file keeps its permission bits (and owner,
 *   where the process may set it); a new one gets 0644. A file with no write permission bit
 *   (0444) is refused, even for root: read-only means "keep".
 * - a symbolic link: followed to its target, which is written as above (the link stays a link;
 *   a dangling link's target is created). A link inside /proc (/dev/stdout, /dev/fd/N) names an
 *   open descriptor, not a file: this process's own is written to as it is (at its offset, so
 *   `>> log` appends), another process's is reopened; never replaced.
 * - a character device or a FIFO (`--out /dev/stdout`, a pipe someone reads): written through,
 *   never replaced; opening a FIFO waits for its reader.
 * - a directory, a block device, a socket: refused.
 * Every failure is ATTN_ERR_IO with "PATH: reason" in err (ENOSPC, EACCES, EISDIR, …), and
 * nothing is left behind but the old file. */
#ifndef ATTN_ATOMIC_FILE_H
#define ATTN_ATOMIC_FILE_H

#include "attn.h"

#include <stddef.h>

/* One piece of the file's content; the pieces are written in order. */
typedef struct attn_file_part {
    const void *data;
    size_t len;
} attn_file_part;

typedef enum attn_file_mode {
    ATTN_FILE_REPLACE,   /* as above */
    ATTN_FILE_EXCLUSIVE, /* create a new regular file only; an existing name is refused with
                          * errno EEXIST (the complete file appears at once, through link()) */
} attn_file_mode;

/* Writes the parts to path as described above. On failure errno keeps the cause. */
attn_status attn_file_write(const char *path, const attn_file_part *parts, size_t count,
                            attn_file_mode mode, attn_error *err);

/* Whether attn_file_write(path, …, ATTN_FILE_REPLACE) can go ahead: the target's kind and
 * permissions and its directory's (a command checks before it spends minutes measuring). */
attn_status attn_file_check(const char *path, attn_error *err);

/* The directory part of path into buf: "." for a bare name, "/" for "/x". */
void attn_path_dir(const char *path, char *buf, size_t len);

/* One text and a final newline: the JSON writers' case. */
attn_status attn_file_write_text(const char *path, const char *text, attn_error *err);

#endif
