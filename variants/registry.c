/* registry.c — every variant of this build, in priority order: the first supported one that
 * fits a problem is the default choice. Adding a variant = its file and one line here. */
#include "attn_config.h"
#include "variant.h"

extern const attn_variant attn_variant_streaming;
extern const attn_variant attn_variant_blocked;
extern const attn_variant attn_variant_naive;

const attn_variant *const attn_registry[] = {
    &attn_variant_streaming,
    &attn_variant_blocked,
    &attn_variant_naive,
};
const int attn_registry_count = (int)(sizeof attn_registry / sizeof attn_registry[0]);
