/* cli_store.c — stored result files: results/<machine id>/<kind>-<UTC stamp>.json, with the
 * provenance every stored file carries (results/README.md is the schema). */
#include "cli.h"
#include "cli_store.h"

#include "atomic_file.h"
#include "attn_build_info.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The first line a fixed shell command prints, without its newline; false when it prints
 * nothing or fails. No user input reaches the shell. */
static bool command_line(const char *command, char *buf, size_t len)
{
    FILE *f = popen(command, "r");
    if (!f)
        return false;
    const bool got = fgets(buf, (int)len, f) != NULL;
    const int status = pclose(f);
    if (!got || status != 0)
        return false;
    buf[strcspn(buf, "\n")] = '\0';
    return buf[0] != '\0';
}

json_t *cli_build_json(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "version", ATTN_VERSION_STRING,
                     "compiler", ATTN_BUILD_COMPILER, "buildtype", ATTN_BUILD_TYPE,
                     "optimization", ATTN_BUILD_OPTIMIZATION, "c_args", ATTN_BUILD_C_ARGS,
                     "sanitize", ATTN_BUILD_SANITIZE);
}

/* mkdir -p for a directory path. */
static bool make_dirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return false;
    }
    for (char *s = buf + 1;; s++) {
        const char saved = *s;
        if (saved == '/' || saved == '\0') {
            *s = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return false;
            *s = saved;
        }
        if (!saved)
            return true;
    }
}

/* doc as the text of a stored file; NULL (and a message) when out of memory. */
static char *store_text(const char *command, const json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(1) | JSON_REAL_PRECISION(15));
    if (!text)
        cli_error(command, "out of memory");
    return text;
}

/* The UTC time now, as the date field and (when stamp is not NULL) as a file name's stamp. */
static bool utc_now(const char *command, char *date, size_t date_len, char *stamp,
                    size_t stamp_len)
{
    const time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || !strftime(date, date_len, "%Y-%m-%dT%H:%M:%SZ", &tm) ||
        (stamp && !strftime(stamp, stamp_len, "%Y%m%dT%H%M%SZ", &tm))) {
        cli_error(command, "cannot read the clock");
        return false;
    }
    return true;
}

/* Adds kind, commit, commit_dirty, date and build to doc. */
static bool add_provenance(const char *command, json_t *doc, const char *kind, const char *date)
{
    char commit[128], line[512];
    const bool in_git = command_line("git rev-parse HEAD 2>/dev/null", commit, sizeof commit);
    const bool dirty = in_git && command_line(
        "git status --porcelain --untracked-files=no 2>/dev/null", line, sizeof line);
    if (json_object_set_new(doc, "kind", json_string(kind)) ||
        json_object_set_new(doc, "commit", in_git ? json_string(commit) : json_null()) ||
        json_object_set_new(doc, "commit_dirty", in_git ? json_boolean(dirty) : json_null()) ||
        json_object_set_new(doc, "date", json_string(date)) ||
        json_object_set_new(doc, "build", cli_build_json())) {
        cli_error(command, "out of memory");
        return false;
    }
    return true;
}

bool cli_store_stamp(const char *command, json_t *doc, const char *kind)
{
    char date[32];
    return utc_now(command, date, sizeof date, NULL, 0) &&
           add_provenance(command, doc, kind, date);
}

bool cli_store_dir(const char *command, const char *results_dir, char *dir, size_t len)
{
    if (snprintf(dir, len, "%s/%s", results_dir, attn_machine_id()) >= (int)len) {
        cli_error(command, "--results-dir: path too long");
        return false;
    }
    if (!make_dirs(dir) || access(dir, W_OK | X_OK) != 0) {
        cli_error(command, "cannot create %s: %s", dir, strerror(errno));
        return false;
    }
    return true;
}

bool cli_store_write(const char *command, const json_t *doc, const char *path)
{
    char *text = store_text(command, doc);
    if (!text)
        return false;
    attn_error err;
    const bool ok = attn_file_write_text(path, text, &err) == ATTN_OK;
    free(text);
    if (!ok)
        cli_error(command, "%s", err.message);
    return ok;
}

bool cli_store_save(const char *command, json_t *doc, const char *kind, const char *results_dir,
                    char *path, size_t path_len)
{
    char date[32], stamp[32], dir[4096];
    if (!utc_now(command, date, sizeof date, stamp, sizeof stamp) ||
        !add_provenance(command, doc, kind, date) ||
        !cli_store_dir(command, results_dir, dir, sizeof dir))
        return false;
    char *text = store_text(command, doc);
    if (!text)
        return false;
    const attn_file_part parts[2] = {{text, strlen(text)}, {"\n", 1}};
    attn_error err;
    /* An exclusive write refuses an existing name: two saves in the same second get -2, -3,
     * ... and no file is ever overwritten; the complete file appears under its name at once. */
    for (int n = 1; n < 1000; n++) {
        char suffix[16] = "";
        if (n > 1)
            snprintf(suffix, sizeof suffix, "-%d", n);
        if (snprintf(path, path_len, "%s/%s-%s%s.json", dir, kind, stamp, suffix) >=
            (int)path_len) {
            free(text);
            cli_error(command, "--results-dir: path too long");
            return false;
        }
        if (attn_file_write(path, parts, 2, ATTN_FILE_EXCLUSIVE, &err) == ATTN_OK) {
            free(text);
            return true;
        }
        if (errno != EEXIST)
            break;
    }
    free(text);
    cli_error(command, "%s", err.message);
    return false;
}
