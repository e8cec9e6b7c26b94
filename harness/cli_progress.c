/* cli_progress.c — progress of long work on stderr, the same for every subcommand (cli.h).
 *
 * On a terminal: one line redrawn in place, at most ten times a second — a bar, done/total, the
 * time left (extrapolated from the time per step so far) and what is being done. Off a terminal
 * (a CI log, a file, a pipe): plain lines, since a log has no place to redraw — the first once
 * the work has taken PLAIN_FIRST seconds, then one every PLAIN_EVERY seconds, and a last one at
 * the end when any was printed — so a minute of work is never a minute of silence, and a short
 * command prints nothing. --quiet turns it all off. */
#include "cli.h"

#include "timing.h"

#include <unistd.h>

static const double PLAIN_FIRST = 1.0, PLAIN_EVERY = 5.0, TTY_EVERY = 0.1;

void cli_progress_start(cli_progress *p, const char *command, size_t total, bool quiet)
{
    *p = (cli_progress){.command = command, .total = total, .quiet = quiet,
                        .tty = isatty(STDERR_FILENO), .start = attn_clock_seconds(),
                        .last = -1};
}

/* "1:05" or "12 s". */
static void format_seconds(char *buf, size_t len, double s)
{
    if (s >= 60)
        snprintf(buf, len, "%d:%02d", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, len, "%.0f s", s);
}

void cli_progress_update(cli_progress *p, size_t done, const char *what)
{
    if (p->quiet)
        return;
    const double elapsed = attn_clock_seconds() - p->start;
    const bool final = p->total && done >= p->total;
    if (p->tty ? (!final && p->last >= 0 && elapsed - p->last < TTY_EVERY)
               : final ? p->last < 0
                       : elapsed < PLAIN_FIRST || (p->last >= 0 && elapsed - p->last < PLAIN_EVERY))
        return;
    char spent[16], left[32] = "";
    format_seconds(spent, sizeof spent, elapsed);
    if (done > 0 && p->total > done) {
        char eta[16];
        format_seconds(eta, sizeof eta, elapsed / (double)done * (double)(p->total - done));
        snprintf(left, sizeof left, ", about %s left", eta);
    }
    if (p->tty) {
        enum { WIDTH = 20 };
        const int filled = p->total ? (int)(done * WIDTH / p->total) : WIDTH;
        /* At most 100 columns: the text is cut, the bar never wraps. */
        fprintf(stderr, "\r\033[K[%.*s%.*s] %zu/%zu %s%s %.40s", filled, "####################",
                WIDTH - filled, "....................", done, p->total, spent, left,
                what ? what : "");
        p->drawn = true;
    } else {
        fprintf(stderr, "attnbench %s: %zu/%zu done, %s%s%s%s\n", p->command, done, p->total,
                spent, left, what && what[0] ? ": " : "", what ? what : "");
    }
    p->last = elapsed;
    fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
    if (p->drawn)
        fputs("\r\033[K", stderr);
    p->drawn = false;
}
