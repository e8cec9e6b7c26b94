/* cli_wisdom.c — attnbench wisdom: shows, exports, imports or forgets the wisdom file. */
#include "cli.h"
#include "cli_commands.h"
#include "cli_tuner.h"
#include "timing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- attnbench wisdom ------------------------------------------------------------------------ */

enum { W_WISDOM, W_FORMAT, W_HELP, WISDOM_OPTION_COUNT };
static const cli_option wisdom_options[WISDOM_OPTION_COUNT] = {
    [W_WISDOM] = {"wisdom", "FILE", "wisdom file (default $ATTN_WISDOM, else the XDG cache)"},
    [W_FORMAT] = {"format", "text|json", "output format of show (default text)"},
    [W_HELP] = {"help", NULL, "this help"},
};

static void print_wisdom_help(void)
{
    printf("usage: attnbench wisdom show|export FILE|import FILE|forget [options]\n\n"
           "  show         the wisdom file: its path, this machine's entries, other sections\n"
           "  export FILE  write this machine and build's entries to FILE\n"
           "  import FILE  merge FILE's entries for this machine and build into the wisdom file\n"
           "  forget       remove the wisdom file (also a damaged one; a file that is not\n"
           "               attnbench wisdom is refused and left)\n"
           "\nWisdom is keyed by the machine id (CPU model, detected ISA, caches) and the build\n"
           "(library version, compiler and flags, variants and their parameters); sections of\n"
           "other machines or builds are kept but ignored.\n\noptions:\n");
    cli_print_options(stdout, wisdom_options, WISDOM_OPTION_COUNT);
}

static int wisdom_show(const char *path, cli_format format)
{
    wisdom_set set;
    size_t foreign;
    char warning[512];
    attn_error err = {0};
    wisdom_read_status rs = wisdom_read(path, &set, &foreign, warning, sizeof warning, &err);
    if (rs == WISDOM_READ_BAD)
        return cli_error("wisdom", "%s", err.message);
    /* The readable entries are listed; an entry the strict check refuses fails the command. */
    attn_error bad_entry = {0};
    const bool entries_ok = wisdom_check_file(path, &bad_entry) == ATTN_OK;
    const char *state = !entries_ok ? "bad entry" : rs == WISDOM_READ_OK ? "ok" : "missing";
    if (format == CLI_FORMAT_JSON) {
        json_t *entries = json_array();
        for (size_t i = 0; entries && i < set.count; i++) {
            const wisdom_entry *e = &set.entries[i];
            json_array_append_new(entries, json_pack("{s:o, s:s, s:o, s:f, s:f, s:s}", "problem",
                                                     class_json(&e->cls), "variant",
                                                     variant_name(e->config.variant), "params",
                                                     params_json(&e->config), "median_s",
                                                     e->median_seconds, "gflops", e->gflops,
                                                     "date", e->date));
        }
        json_t *root = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "path", path, "status", state,
                                 "message", entries_ok ? warning : bad_entry.message,
                                 "machine_id", attn_machine_id(), "foreign_sections",
                                 (json_int_t)foreign, "entries", entries);
        if (!root || !cli_json_print(root))
            rs = WISDOM_READ_BAD;
        json_decref(root);
        if (rs == WISDOM_READ_BAD)
            cli_error("wisdom", "out of memory");
    } else {
        printf("wisdom file: %s\nmachine id: %s\n", path, attn_machine_id());
        if (rs == WISDOM_READ_MISSING)
            printf("status: missing (no wisdom yet: attnbench tune writes it)\n");
        else if (!entries_ok)
            printf("status: an entry is invalid (the message follows on stderr)\n");
        else {
            printf("status: ok, %zu entr%s for this machine and build\n", set.count,
                   set.count == 1 ? "y" : "ies");
            if (warning[0])
                printf("note: %s\n", warning);
        }
        if (set.count) {
            cli_table t;
            cli_table_init(&t, 5, "llrrl");
            const char *head[5] = {"problem", "choice", "median ms", "GFLOP/s", "date"};
            for (int i = 0; i < 5; i++)
                cli_table_add(&t, "%s", head[i]);
            for (size_t i = 0; i < set.count; i++) {
                char cls[200], choice[200], ms[32];
                tuner_class_format(&set.entries[i].cls, cls, sizeof cls);
                tuner_config_format(&set.entries[i].config, choice, sizeof choice);
                format_ms(ms, sizeof ms, set.entries[i].median_seconds);
                cli_table_add(&t, "%s", cls);
                cli_table_add(&t, "%s", choice);
                cli_table_add(&t, "%s", ms);
                cli_table_add(&t, "%.1f", set.entries[i].gflops);
                cli_table_add(&t, "%s", set.entries[i].date);
            }
            cli_table_print(&t, stdout);
            cli_table_free(&t);
        }
    }
    wisdom_set_free(&set);
    if (!entries_ok)
        return cli_error("wisdom", "%s", bad_entry.message);
    return rs == WISDOM_READ_BAD ? CLI_EXIT_USAGE : CLI_EXIT_OK;
}

int cli_wisdom(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        print_wisdom_help();
        return CLI_EXIT_OK;
    }
    if (argc < 2)
        return cli_error("wisdom", "which action? show, export FILE, import FILE or forget "
                         "(see --help)");
    const char *action = argv[1], *file = NULL;
    int skip = 1;
    if (!strcmp(action, "export") || !strcmp(action, "import")) {
        if (argc < 3 || argv[2][0] == '-')
            return cli_error("wisdom", "%s needs a FILE", action);
        file = argv[2];
        skip = 2;
    } else if (strcmp(action, "show") && strcmp(action, "forget")) {
        return cli_error("wisdom", "unknown action '%s' (show, export FILE, import FILE, forget)",
                         action);
    }
    const char *override = NULL, *value;
    cli_format format = CLI_FORMAT_TEXT;
    for (int o; (o = cli_next_option("wisdom", argc - skip, argv + skip,
                                     wisdom_options, WISDOM_OPTION_COUNT, &value)) !=
                CLI_OPTION_END;) {
        switch (o) {
        case W_WISDOM: override = value; break;
        case W_FORMAT:
            if (!cli_parse_format("wisdom", value, 1u << CLI_FORMAT_TEXT | 1u << CLI_FORMAT_JSON,
                                  &format))
                return CLI_EXIT_USAGE;
            break;
        case W_HELP: print_wisdom_help(); return CLI_EXIT_OK;
        default: return CLI_EXIT_USAGE;
        }
    }
    char path[4096];
    wisdom_path(override, path, sizeof path);
    attn_error err = {0};
    if (!strcmp(action, "show"))
        return wisdom_show(path, format);
    if (!strcmp(action, "forget")) {
        if (wisdom_forget(path, &err) != ATTN_OK)
            return cli_error("wisdom", "%s", err.message);
        printf("removed %s\n", path);
        return CLI_EXIT_OK;
    }
    wisdom_set set;
    size_t foreign;
    char warning[512];
    const char *from = !strcmp(action, "export") ? path : file;
    wisdom_read_status rs = wisdom_read(from, &set, &foreign, warning, sizeof warning, &err);
    if (rs == WISDOM_READ_BAD)
        return cli_error("wisdom", "%s", err.message);
    if (rs == WISDOM_READ_MISSING && !strcmp(action, "import"))
        return cli_error("wisdom", "import: %s: no such file", file);
    if (!strcmp(action, "import") && wisdom_check_file(file, &err) != ATTN_OK) {
        wisdom_set_free(&set);
        return cli_error("wisdom", "import: %s", err.message);
    }
    if (warning[0])
        fprintf(stderr, "attnbench wisdom: %s\n", warning);
    int status = CLI_EXIT_OK;
    if (!strcmp(action, "export")) {
        if (wisdom_write_file(file, &set, &err) != ATTN_OK)
            status = cli_error("wisdom", "%s", err.message);
        else
            printf("exported %zu entr%s to %s\n", set.count, set.count == 1 ? "y" : "ies", file);
    } else if (set.count == 0) {
        status = cli_error("wisdom", "import: %s holds no wisdom for this machine and build",
                           file);
    } else if (wisdom_merge_into_file(path, &set, &err) != ATTN_OK) {
        status = cli_error("wisdom", "%s", err.message);
    } else {
        printf("imported %zu entr%s from %s into %s\n", set.count, set.count == 1 ? "y" : "ies",
               file, path);
    }
    wisdom_set_free(&set);
    return status;
}

