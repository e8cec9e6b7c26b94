/* cli_defaults.h — info's defaults part (cli_defaults.c): the facts, and each variant's default
 * parameters with their rules for the reference shapes P1 and D1, as text lines and as JSON. */
#ifndef ATTN_CLI_DEFAULTS_H
#define ATTN_CLI_DEFAULTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

void cli_defaults_print(void);
json_t *cli_defaults_json(void);
/* "32 KiB", "1 MiB", "100 B". */
void cli_format_bytes(char *buf, size_t len, int64_t bytes);

#endif
