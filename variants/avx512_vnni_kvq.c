/* avx512_vnni_kvq.c — the avx512 variant's quantized K/V path with AVX512_VNNI: avx512_kvq.c
 * built again with KVQ_VNNI 1 (this file's ISA flags add -mavx512vnni) as
 * attn_avx512_vnni_kvq_rows, which avx512.c calls for int8 and q4 K/V when the CPU has VNNI and
 * ATTN_DISABLE_ISA leaves it on (avx512_limit_isa). With head_dim % 64 == 0 a chunk's rows, in
 * tiles of up to 4, score K with vpdpbusd against Q split into three int8 digits and
 * accumulate V in integers (int8: vpdpwssd against the weights as two int16 digits; q4:
 * vpdpbusd against them as three bytes), exact in int32 (avx512_kvq_vnni.h says how, and why
 * the error stays at float32's); another head_dim runs avx512_kvq.c's float32 paths, the same
 * code as without VNNI. */
#define KVQ_VNNI 1
#define KVQ_ENTRY attn_avx512_vnni_kvq_rows
#include "avx512_kvq.c"
