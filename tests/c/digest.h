/*
 * What the C test drivers share: an FNV-1a hash of the bytes a build produces and a xorshift32
 * stream of test inputs, so two builds of the core can be compared line for line (the digest
 * drivers lrt_digest.c, layers_digest.c), and signed draws from that stream (the kernel checks
 * lrt_avx2.c, lrt_bound.c, lrt_sweep_lo.c).
 */
#ifndef EDGETRAIN_TESTS_DIGEST_H
#define EDGETRAIN_TESTS_DIGEST_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t fnv(uint64_t h, const void *p, size_t len)
{
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < len; i++) {
        h = (h ^ b[i]) * UINT64_C(1099511628211);
    }
    return h;
}

static inline uint32_t rnd(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

/* A value of up to bits bits (1..63) from the stream, of either sign. */
static inline int64_t srnd(uint32_t *s, int bits)
{
    uint64_t v = ((uint64_t)rnd(s) << 32) | rnd(s);
    int64_t x = (int64_t)(v >> (64 - bits));
    return (rnd(s) & 1) ? -x : x;
}

#endif /* EDGETRAIN_TESTS_DIGEST_H */
