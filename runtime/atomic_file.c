/* atomic_file.c — the one file writer (atomic_file.h says what each kind of target gets). */
#include "atomic_file.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/vfs.h>
#endif

enum { MAX_LINKS = 40 };                 /* as the kernel's ELOOP limit */
#define PROC_FILESYSTEM_MAGIC 0x9fa0L    /* PROC_SUPER_MAGIC of <linux/magic.h> */

/* Fails with errno's reason (saved, so the caller's errno stays the cause). */
static attn_status fail_errno(attn_error *err, int error, const char *path, const char *what)
{
    attn_fail(err, ATTN_ERR_IO, "%s: %s%s%s", path, what, *what ? ": " : "", strerror(error));
    errno = error;
    return ATTN_ERR_IO;
}

void attn_path_dir(const char *path, char *buf, size_t len)
{
    snprintf(buf, len, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash)
        snprintf(buf, len, ".");
    else
        slash[slash == buf] = '\0'; /* "/x" keeps "/" */
}

enum { NOT_A_DESCRIPTOR = -2, OTHER_DESCRIPTOR = -1 };

/* A link whose directory is in procfs (/proc/self/fd/1, reached from /dev/stdout or /dev/fd/1)
 * names an open descriptor — a pipe, a terminal, a file opened with > or >> — not a file to
 * replace. Returns the descriptor when it is one of this process's (written to as it is, at its
 * offset, O_APPEND kept), OTHER_DESCRIPTOR for another process's (reopened through the link),
 * or NOT_A_DESCRIPTOR. */
static int descriptor_of_link(const char *link)
{
#ifdef __linux__
    char dir[PATH_MAX];
    attn_path_dir(link, dir, sizeof dir);
    struct statfs fs;
    if (statfs(dir, &fs) != 0 || fs.f_type != PROC_FILESYSTEM_MAGIC)
        return NOT_A_DESCRIPTOR;
    struct stat ours, here;
    const char *base = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
    char *end;
    const long fd = strtol(base, &end, 10);
    if (stat("/proc/self/fd", &ours) == 0 && stat(dir, &here) == 0 &&
        ours.st_dev == here.st_dev && ours.st_ino == here.st_ino && *base && !*end &&
        fd >= 0 && fd <= INT_MAX && fcntl((int)fd, F_GETFD) != -1)
        return (int)fd;
    return OTHER_DESCRIPTOR;
#else
    (void)link;
    return NOT_A_DESCRIPTOR;
#endif
}

typedef enum { WRITE_REPLACE, WRITE_THROUGH } write_kind;

/* Follows path's symbolic links to the name to write (into target, with its stat in *st and
 * *exists false when nothing is there yet), and says how to write it (through *descriptor when
 * path names one of this process's, else -1); refuses what must not be written. */
static attn_status resolve(const char *path, char *target, size_t len, struct stat *st,
                           bool *exists, write_kind *kind, int *descriptor, attn_error *err)
{
    *exists = false;
    *kind = WRITE_REPLACE;
    *descriptor = -1;
    if (snprintf(target, len, "%s", path) >= (int)len)
        return fail_errno(err, ENAMETOOLONG, path, "");
    for (int hops = 0;; hops++) {
        if (lstat(target, st) != 0)
            return errno == ENOENT ? ATTN_OK : fail_errno(err, errno, path, "");
        if (!S_ISLNK(st->st_mode))
            break;
        const int fd = descriptor_of_link(target);
        if (fd != NOT_A_DESCRIPTOR) { /* whatever it is open on, it is written through */
            if (fd >= 0 ? fstat(fd, st) != 0 : stat(path, st) != 0)
                return fail_errno(err, errno, path, "");
            snprintf(target, len, "%s", path); /* opening the link reopens the descriptor */
            *exists = true;
            *kind = WRITE_THROUGH;
            *descriptor = fd;
            return ATTN_OK;
        }
        char link[PATH_MAX], dir[PATH_MAX];
        const ssize_t n = readlink(target, link, sizeof link - 1);
        if (hops == MAX_LINKS || n < 0)
            return fail_errno(err, n < 0 ? errno : ELOOP, path, "");
        link[n] = '\0';
        attn_path_dir(target, dir, sizeof dir);
        if ((link[0] == '/' ? snprintf(target, len, "%s", link)
                            : snprintf(target, len, "%s/%s", dir, link)) >= (int)len)
            return fail_errno(err, ENAMETOOLONG, path, "");
    }
    *exists = true;
    if (S_ISREG(st->st_mode)) {
        /* Root passes every access() check; the mode bits still say what the owner wants. */
        if ((st->st_mode & 0222) == 0) {
            attn_fail(err, ATTN_ERR_IO, "%s: read-only file (mode %04o), not replaced "
                      "(chmod u+w it to allow that)", path, (unsigned)(st->st_mode & 07777));
            errno = EACCES;
            return ATTN_ERR_IO;
        }
        return access(target, W_OK) == 0 ? ATTN_OK : fail_errno(err, errno, path, "");
    }
    if (S_ISCHR(st->st_mode) || S_ISFIFO(st->st_mode)) {
        *kind = WRITE_THROUGH;
        return ATTN_OK;
    }
    const char *what = S_ISDIR(st->st_mode)   ? "is a directory"
                       : S_ISBLK(st->st_mode) ? "is a block device, not written"
                       : S_ISSOCK(st->st_mode) ? "is a socket, not written"
                                               : "is not a regular file, not written";
    attn_fail(err, ATTN_ERR_IO, "%s: %s", path, what);
    errno = S_ISDIR(st->st_mode) ? EISDIR : EINVAL;
    return ATTN_ERR_IO;
}

static bool write_all(int fd, const attn_file_part *parts, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const char *p = parts[i].data;
        for (size_t left = parts[i].len; left > 0;) {
            const ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                if (w == 0)
                    errno = EIO;
                return false;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    return true;
}

/* Writes to the open descriptor, or else opens target (a FIFO waits for its reader). */
static attn_status write_through(const char *path, const char *target, int descriptor,
                                 const attn_file_part *parts, size_t count, attn_error *err)
{
    if (descriptor >= 0)
        return write_all(descriptor, parts, count) ? ATTN_OK
                                                   : fail_errno(err, errno, path, "cannot write");
    int fd;
    while ((fd = open(target, O_WRONLY | O_CLOEXEC | O_NOCTTY)) < 0 && errno == EINTR) {
    }
    if (fd < 0)
        return fail_errno(err, errno, path, "cannot open");
    const bool ok = write_all(fd, parts, count);
    const int error = errno;
    if (close(fd) != 0 && ok && errno != EINTR)
        return fail_errno(err, errno, path, "cannot write");
    return ok ? ATTN_OK : fail_errno(err, error, path, "cannot write");
}

static attn_status write_replace(const char *path, const char *target, const struct stat *old,
                                 bool exists, const attn_file_part *parts, size_t count,
                                 attn_file_mode mode, attn_error *err)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    attn_path_dir(target, dir, sizeof dir);
    const char *slash = strrchr(target, '/'), *base = slash ? slash + 1 : target;
    if (snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, base) >= (int)sizeof tmp)
        return fail_errno(err, ENAMETOOLONG, path, "");
    const int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return fail_errno(err, errno, path, "cannot create a temporary file next to it");
    /* The owner first: a chown clears set-id bits, the chmod after it restores the mode. */
    if (exists && (old->st_uid != geteuid() || old->st_gid != getegid()) &&
        fchown(fd, old->st_uid, old->st_gid) != 0) {
        /* not permitted: the new file is ours, as any editor would leave it */
    }
    bool ok = fchmod(fd, exists ? old->st_mode & 07777 : 0644) == 0 &&
              write_all(fd, parts, count) && fsync(fd) == 0;
    int error = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        error = errno;
    }
    if (ok) {
        /* link() refuses an existing name, so an exclusive file never replaces one. */
        ok = mode == ATTN_FILE_EXCLUSIVE ? link(tmp, target) == 0 : rename(tmp, target) == 0;
        error = errno;
        if (ok && mode == ATTN_FILE_EXCLUSIVE)
            unlink(tmp);
    }
    if (!ok) {
        unlink(tmp);
        return fail_errno(err, error, path, "cannot write");
    }
    const int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { /* makes the rename durable; failing here loses nothing already written */
        fsync(dfd);
        close(dfd);
    }
    return ATTN_OK;
}

attn_status attn_file_write(const char *path, const attn_file_part *parts, size_t count,
                            attn_file_mode mode, attn_error *err)
{
    char target[PATH_MAX];
    struct stat st;
    bool exists;
    write_kind kind;
    int descriptor;
    if (!path || !*path)
        return attn_fail(err, ATTN_ERR_INVALID, "no file name given");
    /* An exclusive write takes a free name only: any entry there, a link included, is EEXIST. */
    if (mode == ATTN_FILE_EXCLUSIVE && lstat(path, &st) == 0)
        return fail_errno(err, EEXIST, path, "");
    attn_status s = resolve(path, target, sizeof target, &st, &exists, &kind, &descriptor, err);
    if (s != ATTN_OK)
        return s;
    if (mode == ATTN_FILE_EXCLUSIVE && (exists || kind != WRITE_REPLACE))
        return fail_errno(err, EEXIST, path, "");
    return kind == WRITE_THROUGH
               ? write_through(path, target, descriptor, parts, count, err)
               : write_replace(path, target, &st, exists, parts, count, mode, err);
}

attn_status attn_file_check(const char *path, attn_error *err)
{
    char target[PATH_MAX], dir[PATH_MAX];
    struct stat st;
    bool exists;
    write_kind kind;
    int descriptor;
    if (!path || !*path)
        return attn_fail(err, ATTN_ERR_INVALID, "no file name given");
    attn_status s = resolve(path, target, sizeof target, &st, &exists, &kind, &descriptor, err);
    if (s != ATTN_OK || kind == WRITE_THROUGH)
        return s;
    attn_path_dir(target, dir, sizeof dir);
    return access(dir, W_OK | X_OK) == 0 ? ATTN_OK : fail_errno(err, errno, path, dir);
}

attn_status attn_file_write_text(const char *path, const char *text, attn_error *err)
{
    const attn_file_part parts[2] = {{text, strlen(text)}, {"\n", 1}};
    return attn_file_write(path, parts, 2, ATTN_FILE_REPLACE, err);
}
