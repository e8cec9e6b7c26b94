/* fuzz_wisdom.c — the wisdom reader (tuner/wisdom_read.c, wisdom_read_buffer).
 *
 * The first byte picks what the rest is: even, a whole document; odd, the entries of this
 * machine and build's section (the harness writes the document around them), so that entry
 * parsing is reached on any machine (a seed's machine id is another machine's elsewhere).
 * A refusal must say why; every entry read must be found again by its class and name a variant
 * with its parameter count. */
#include "tuner/tuner.h"

#include <string.h>

static char *prefix; /* {"format": …, "sections": [{"machine": …, "build": …, "entries": [ */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_t *m = wisdom_machine_json(), *b = wisdom_build_json();
    char *mt = json_dumps(m, JSON_COMPACT), *bt = json_dumps(b, JSON_COMPACT);
    const size_t n = strlen(mt) + strlen(bt) + 200;
    if (!(prefix = malloc(n)))
        abort();
    snprintf(prefix, n, "{\"format\": \"%s\", \"version\": %d, \"sections\": [{\"machine\": %s, "
             "\"build\": %s, \"entries\": [", WISDOM_FORMAT, WISDOM_VERSION, mt, bt);
    free(mt);
    free(bt);
    json_decref(m);
    json_decref(b);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const bool wrapped = data[0] & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char *doc = NULL;
    if (wrapped) {
        static const char suffix[] = "]}]}";
        const size_t p = strlen(prefix);
        if (!(doc = malloc(p + len + sizeof suffix)))
            abort();
        memcpy(doc, prefix, p);
        memcpy(doc + p, text, len);
        memcpy(doc + p + len, suffix, sizeof suffix);
        text = doc;
        len = p + len + sizeof suffix - 1;
    }
    wisdom_set set;
    size_t foreign;
    char warning[512];
    attn_error err = {0};
    const wisdom_read_status s =
        wisdom_read_buffer(text, len, "fuzz.json", &set, &foreign, warning, sizeof warning, &err);
    if (s == WISDOM_READ_MISSING || (s == WISDOM_READ_BAD && (!err.message[0] || set.count)))
        abort();
    for (size_t i = 0; i < set.count; i++) {
        const wisdom_entry *e = &set.entries[i];
        attn_variant_info info;
        if (wisdom_set_find(&set, &e->cls) != e || !attn_variant_get(e->config.variant, &info) ||
            e->config.params.count != info.param_count)
            abort();
    }
    wisdom_set_free(&set);
    free(doc);
    return 0;
}
