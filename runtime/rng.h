/* rng.h — the one random number generator of the tree: SplitMix64 (Steele, Lea, Flood, "Fast
 * splittable pseudorandom number generators", OOPSLA 2014). A 64-bit counter stepped by the
 * golden-ratio increment, then mixed: full 2^64 period, passes BigCrush, a state of one word, so
 * any seed is a valid start and runs replay from their seed. Used for the tool's inputs (`run`,
 * `study`, gbench), the tuner's measurement inputs and the tests' drawn cases. Not for secrets. */
#ifndef ATTN_RNG_H
#define ATTN_RNG_H

#include <stdint.h>

/* SplitMix64's finaliser: a bijection of 64-bit words that spreads every input bit over the
 * output. Also a hash, for deriving independent seeds from (seed, stream). */
static inline uint64_t attn_rng_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* The next 64 random bits; advances *state. */
static inline uint64_t attn_rng_next(uint64_t *state)
{
    return attn_rng_mix(*state += 0x9e3779b97f4a7c15u);
}

/* Uniform in [0, 1): 53 random bits. */
static inline double attn_rng_unit(uint64_t *state)
{
    return (double)(attn_rng_next(state) >> 11) * 0x1p-53;
}

/* Uniform in [-1, 1): 24 random bits scaled, exactly representable in float. */
static inline float attn_rng_uniform_pm1(uint64_t *state)
{
    return (float)(attn_rng_next(state) >> 40) * 0x1p-23f - 1.0f;
}

#endif /* ATTN_RNG_H */
