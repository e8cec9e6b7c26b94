/* cli_store.h — stored result files (results/README.md): cli_store.c.
 *
 * cli_build_json: the build as result files record it (version, compiler, buildtype,
 * optimization, c_args, sanitize); NULL on OOM. cli_store_save adds kind, commit, commit_dirty,
 * date and build to doc and writes it atomically to RESULTS_DIR/<machine id>/<kind>-<UTC
 * stamp>.json (never over an existing file); the path goes into `path`. The others are its
 * parts: cli_store_stamp adds the provenance fields only; cli_store_dir creates
 * RESULTS_DIR/<machine id> (its path into `dir`), so a command can check it before a long
 * measurement; cli_store_write writes doc atomically to a path of the user's choosing (a
 * temporary file beside it, then rename over it). Each returns false after a message on stderr
 * naming `command`. */
#ifndef ATTN_CLI_STORE_H
#define ATTN_CLI_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

json_t *cli_build_json(void);
bool cli_store_save(const char *command, json_t *doc, const char *kind, const char *results_dir,
                    char *path, size_t path_len);
bool cli_store_stamp(const char *command, json_t *doc, const char *kind);
bool cli_store_dir(const char *command, const char *results_dir, char *dir, size_t len);
bool cli_store_write(const char *command, const json_t *doc, const char *path);

#endif
