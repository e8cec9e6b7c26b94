/* plan_example.c — plan once, execute many times: the planner API of libattn.
 *
 * Build against the installed library:
 *     cc plan_example.c $(pkg-config --cflags --libs attn) -o plan_example
 *
 * It plans a small causal GQA problem with ATTN_ESTIMATE (no timing; wisdom is used when this
 * machine has tuned the problem), says what the planner chose, runs the plan twice and checks
 * both runs give the same output, bit for bit. The arrays come with each attn_execute; the plan
 * holds only the problem's shape. Exit status 0 on success. */
#include <attn.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *filled(int64_t n, unsigned seed)
{
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; x && i < n; i++) {
        seed = seed * 1664525u + 1013904223u; /* a small LCG: values in [-1, 1) */
        x[i] = (float)(seed >> 8) / (float)(1u << 23) - 1.0f;
    }
    return x;
}

int main(void)
{
    attn_problem p;
    attn_problem_init(&p, /*batch*/ 1, /*heads_q*/ 8, /*heads_kv*/ 2, /*len_q*/ 256,
                      /*len_kv*/ 256, /*head_dim*/ 64);
    p.causal = true;

    attn_error err;
    const attn_plan_options options = {.flags = ATTN_ESTIMATE}; /* zeroed: default threads */
    attn_plan *plan = attn_plan_create(&p, &options, &err);
    if (!plan) {
        fprintf(stderr, "plan_example: %s\n", err.message);
        return 1;
    }
    printf("plan: %s\n", attn_plan_describe(plan));

    const int64_t nq = p.batch * p.heads_q * p.len_q * p.head_dim;
    const int64_t nkv = p.batch * p.heads_kv * p.len_kv * p.head_dim;
    float *q = filled(nq, 1), *k = filled(nkv, 2), *v = filled(nkv, 3);
    float *o1 = calloc((size_t)nq, sizeof *o1), *o2 = calloc((size_t)nq, sizeof *o2);
    int status = 1;
    if (!q || !k || !v || !o1 || !o2)
        fprintf(stderr, "plan_example: out of memory\n");
    else if (attn_execute(plan, &(attn_execute_args){.q = q, .k = k, .v = v, .o = o1}, &err) !=
                 ATTN_OK ||
             attn_execute(plan, &(attn_execute_args){.q = q, .k = k, .v = v, .o = o2}, &err) !=
                 ATTN_OK)
        fprintf(stderr, "plan_example: %s\n", err.message);
    else if (memcmp(o1, o2, (size_t)nq * sizeof *o1))
        fprintf(stderr, "plan_example: two runs of one plan differ\n");
    else {
        printf("executed twice, identical outputs; o[0] = %.6f\n", (double)o1[0]);
        status = 0;
    }
    free(q); free(k); free(v); free(o1); free(o2);
    attn_plan_destroy(plan);
    return status;
}
