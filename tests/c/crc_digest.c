/*
 * A digest of et_crc32 and et_crc32_xor over every length up to 700 bytes, some long ones, four
 * offsets and several starting values (tests/test_crc_clmul.py compares builds with and without the
 * host's carry-less multiply path, csrc/src/crc.c, line for line).
 * Usage: crc_digest; `crc_digest isa` prints whether that path is built and picked on this CPU.
 */
#include <stdio.h>
#include <string.h>

#include "edgetrain/edgetrain.h"
#include "crc_internal.h"

#define MAXLEN 70000
static uint8_t a[MAXLEN + 8];
static uint8_t b[MAXLEN + 8];

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

int main(int argc, char **argv)
{
    static const uint32_t lens[] = {1024, 4095, 4096, 4097, 50816, 65535, 65536, MAXLEN};
    static const uint32_t inits[] = {0u, 0xFFFFFFFFu, 0x12345678u};
    uint32_t s = 2463534242u;
    uint32_t i, n;
    if (argc > 1 && strcmp(argv[1], "isa") == 0) {
#if ET_HOST_CLMUL
        printf("clmul built %d picked %d\n", 1, et_host_clmul());
#else
        printf("clmul built %d picked %d\n", 0, 0);
#endif
        return 0;
    }
    for (i = 0; i < sizeof a; i++) {
        a[i] = (uint8_t)rnd(&s);
        b[i] = (uint8_t)((i % 7u == 0) ? a[i] : rnd(&s)); /* some bytes equal: zero bytes in a XOR b */
    }
    for (n = 0; n < 700u + sizeof lens / sizeof lens[0]; n++) {
        uint32_t len = n < 700u ? n : lens[n - 700u];
        uint64_t h = UINT64_C(14695981039346656037);
        uint32_t off, k;
        for (off = 0; off < 4; off++) {
            for (k = 0; k < sizeof inits / sizeof inits[0]; k++) {
                uint32_t c1 = inits[k];
                uint32_t c2 = inits[k];
                int bad = et_crc32(&c1, a + off, len) != ET_OK;
                bad |= et_crc32_xor(&c2, a + off, b + 3u - off, len) != ET_OK;
                h = (h ^ c1) * UINT64_C(1099511628211);
                h = (h ^ c2) * UINT64_C(1099511628211);
                h = (h ^ (uint32_t)bad) * UINT64_C(1099511628211);
            }
        }
        printf("len %u hash %016llx\n", (unsigned)len, (unsigned long long)h);
    }
    return 0;
}
