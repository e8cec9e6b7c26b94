/* fuzz_compare.c — `attnbench compare` (harness/cli_compare.c) on fuzzed result files: the
 * reader of Google Benchmark JSON and attnbench result files, then the statistics and the
 * report. The input is BASE, a 0xff byte (never in JSON text), NEW; without one, both are the
 * input. The first byte picks the options (--paired, the output format). stdout and stderr
 * are closed by libFuzzer's -close_fd_mask (scripts/fuzz). The command may refuse (exit 2)
 * but not crash; exit statuses outside 0-2 are a failure. */
#include "cli.h"
#include "fuzz_file.h"

#include <getopt.h>
#include <string.h>

int cli_compare(int argc, char **argv);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static const char *const formats[] = {"text", "markdown", "json"};
    const uint8_t mode = data[0];
    data++;
    size--;
    const uint8_t *cut = memchr(data, 0xff, size);
    char base[64], new_[64];
    fuzz_file(0, data, cut ? (size_t)(cut - data) : size, base, sizeof base);
    if (cut)
        fuzz_file(1, cut + 1, size - (size_t)(cut - data) - 1, new_, sizeof new_);
    else
        memcpy(new_, base, sizeof base);
    char *argv[] = {"compare", base, new_, "--format", (char *)formats[(mode >> 1) % 3],
                    mode & 1 ? "--paired" : "--threshold=0.05", NULL};
    optind = 0; /* getopt's state: a fresh parse each time */
    const int status = cli_compare(6, argv);
    if (status < 0 || status > 2)
        abort();
    return 0;
}
