/* fuzz_result_file.c — the reader behind `attnbench db ingest` (harness/result_file.c) on
 * fuzzed files: run and sweep records, Google Benchmark entries, tune's JSON, provenance. The
 * first byte picks which of --machine/--commit/--date the command line supplies. The reader
 * may refuse (exit status 2, one message) but not crash; a file it accepts has a SHA-256, at
 * least one benchmark or error, and every sample a positive finite time. */
#include "fuzz_file.h"
#include "result_file.h"

#include <math.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t mode = data[0];
    char path[64];
    fuzz_file(0, data + 1, size - 1, path, sizeof path);
    const provenance given = {mode & 1 ? "0123456789abcdef" : NULL, mode & 2 ? "c0ffee" : NULL,
                              mode & 4 ? "2026-01-01T00:00:00Z" : NULL};
    result_file f;
    const int status = result_file_read(path, &given, &f);
    if (status != -1 && status != 2)
        abort();
    if (status == -1) {
        if (strlen(f.sha256) != 64 || (f.count == 0 && f.error_count == 0) || !f.machine_key)
            abort();
        for (size_t i = 0; i < f.count; i++)
            for (size_t k = 0; k < f.items[i].count; k++)
                if (!(isfinite(f.items[i].samples[k]) && f.items[i].samples[k] > 0))
                    abort();
    }
    result_file_free(&f);
    return 0;
}
