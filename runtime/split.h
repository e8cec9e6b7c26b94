/* split.h — how runs and plans cut a problem over threads (execute.c), for tools that say
 * what the library will do (`attnbench info`). */
#ifndef ATTN_SPLIT_H
#define ATTN_SPLIT_H

#include "variant.h"

/* Units of a run on `threads` threads: query rows per unit and units per group along the rows;
 * keys per unit and units per row block along the keys (key_splits > 1 only for a variant
 * with run_partial when groups × row blocks leave threads idle: decode). */
typedef struct attn_split {
    int64_t row_block, row_blocks, key_block, key_splits;
} attn_split;

attn_split attn_split_of(const attn_variant *v, const attn_problem *p, int threads);

#endif
