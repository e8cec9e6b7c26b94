/* cli_suggest.c — "did you mean": the valid name nearest to a mistyped one (cli.h). Distance is
 * Damerau–Levenshtein's (insertions, deletions, substitutions, and swaps of two neighbours, each
 * costing 1), so "--lenght", "--len-k" and "--threds" find their flags; a name is suggested only
 * when it is close enough to be a typo: at most half the longer name, and at most 3. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

enum { MAX_NAME = 64 };

static size_t min3(size_t a, size_t b, size_t c)
{
    const size_t ab = a < b ? a : b;
    return ab < c ? ab : c;
}

static size_t distance(const char *a, const char *b)
{
    const size_t n = strlen(a), m = strlen(b);
    if (n >= MAX_NAME || m >= MAX_NAME)
        return (size_t)-1;
    size_t d[MAX_NAME + 1][MAX_NAME + 1];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            const size_t cost = a[i - 1] != b[j - 1];
            d[i][j] = min3(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < d[i][j])
                d[i][j] = d[i - 2][j - 2] + 1;
        }
    return d[n][m];
}

const char *cli_nearest_name(const char *given, const char *const *names, int count)
{
    const char *best = NULL;
    size_t best_distance = (size_t)-1;
    for (int i = 0; i < count; i++) {
        const size_t dist = distance(given, names[i]);
        if (dist < best_distance) {
            best_distance = dist;
            best = names[i];
        }
    }
    if (!best)
        return NULL;
    const size_t longer = strlen(given) > strlen(best) ? strlen(given) : strlen(best);
    return best_distance <= 3 && best_distance * 2 <= longer ? best : NULL;
}

const char *cli_nearest_option(const char *given, const cli_option *options, int count)
{
    const char *names[128];
    int n = 0;
    for (int i = 0; i < count && n < 128; i++)
        names[n++] = options[i].name;
    return cli_nearest_name(given, names, n);
}
