/* fuzz_file.h — an input as a file, for readers that take a path: one memfd per slot, rewritten
 * with each input and named by its /proc/self/fd path (a regular file, as a user's would be;
 * nothing touches the disk). */
#ifndef ATTN_FUZZ_FILE_H
#define ATTN_FUZZ_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes data to memfd number `slot` (0 or 1) and its path into path; aborts when it cannot
 * (that is the harness failing, not the reader). */
static inline void fuzz_file(int slot, const uint8_t *data, size_t size, char *path, size_t len)
{
    static int fds[2] = {-1, -1};
    if (fds[slot] < 0 && (fds[slot] = memfd_create("fuzz-input", 0)) < 0) {
        perror("memfd_create");
        abort();
    }
    const int fd = fds[slot];
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) {
        perror("fuzz input");
        abort();
    }
    snprintf(path, len, "/proc/self/fd/%d", fd);
}

#endif
