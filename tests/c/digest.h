/*
 * What the digest drivers (lrt_digest.c, layers_digest.c) share: an FNV-1a hash of the bytes a
 * build produces and a xorshift32 stream of test inputs, so two builds of the core can be compared
 * line for line.
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

#endif /* EDGETRAIN_TESTS_DIGEST_H */
