/*
 * et_isqrt_u64, et_isqrt_u32, et_clz_u32 and et_clz_u64 for each value read from stdin (one
 * decimal uint64 a line), one output line each: "isqrt64 isqrt32(low 32 bits) clz32(low 32 bits)
 * clz64". tests/test_fixed_paths.py builds it with each of fixed.c's code paths.
 */
#include <stdio.h>
#include <stdint.h>

#include "edgetrain/et_fixed.h"

int main(void)
{
    unsigned long long v;
    while (scanf("%llu", &v) == 1) {
        uint64_t x = (uint64_t)v;
        printf("%lu %lu %d %d\n", (unsigned long)et_isqrt_u64(x), (unsigned long)et_isqrt_u32((uint32_t)x),
               et_clz_u32((uint32_t)x), et_clz_u64(x));
    }
    return 0;
}
