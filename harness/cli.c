#include "attn.h"
#include <stdio.h>
int main(void) { printf("%d variants\n", attn_variant_count()); return 0; }
