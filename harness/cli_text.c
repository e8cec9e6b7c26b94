/* cli_text.c — text output that fits CLI_TABLE_WIDTH columns (cli.h). A command's text report is
 * written to a memory stream in place of stdout, then printed with every line longer than the
 * width wrapped at blanks, its continuation lines indented to the line's value column: for
 * "key        value ..." lines the start of the value, for table-like lines the start of the
 * last field that follows a gap of two blanks (a description). With --wide nothing wraps. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static FILE *saved_stdout;
static char *buffer;
static size_t buffer_size;

void cli_text_begin(void)
{
    if (saved_stdout || cli_table_wide)
        return;
    fflush(stdout);
    FILE *memory = open_memstream(&buffer, &buffer_size);
    if (!memory)
        return; /* out of memory: the text goes out unwrapped */
    saved_stdout = stdout;
    stdout = memory;
}

/* Where continuation lines of `line` start: the start of the last field that follows two or more
 * blanks within the first half of the width, else 4. */
static size_t value_column(const char *line, size_t len)
{
    size_t column = 4;
    for (size_t i = 1; i + 1 < len && i < CLI_TABLE_WIDTH / 2; i++)
        if (line[i] == ' ' && line[i - 1] == ' ' && line[i + 1] != ' ')
            column = i + 1;
    return column;
}

static void print_line(FILE *out, const char *line, size_t len)
{
    if (len <= CLI_TABLE_WIDTH) {
        fprintf(out, "%.*s\n", (int)len, line);
        return;
    }
    const size_t indent = value_column(line, len);
    bool first = true;
    while (len > 0) {
        const size_t room = CLI_TABLE_WIDTH - (first ? 0 : indent), floor = first ? indent : 0;
        size_t n = len;
        if (n > room) { /* at the last blank, or after the last comma, that fits */
            n = room;
            while (n > floor + 1 && line[n] != ' ' && line[n - 1] != ',')
                n--;
            if (n <= floor + 1)
                n = room; /* one long word: cut */
        }
        if (!first)
            fprintf(out, "%*s", (int)indent, "");
        fprintf(out, "%.*s\n", (int)n, line);
        line += n, len -= n;
        while (len > 0 && *line == ' ')
            line++, len--;
        first = false;
    }
}

bool cli_text_end(void)
{
    if (!saved_stdout)
        return true;
    const bool ok = fclose(stdout) == 0;
    stdout = saved_stdout;
    saved_stdout = NULL;
    for (const char *line = buffer; ok && buffer && *line;) {
        const char *end = strchr(line, '\n');
        const size_t len = end ? (size_t)(end - line) : strlen(line);
        print_line(stdout, line, len);
        line += len + (end != NULL);
    }
    free(buffer);
    buffer = NULL;
    return ok;
}
