/*
 * Firmware's int32-lane MGS sweep for the shifts 15 and 16 (lrt_mgs_sweep16 with low set,
 * csrc/src/lrt.c) against the 32 x 32 -> 64-bit sweep it replaces there (lrt_mgs_sweep32 without
 * the clamp), on inputs made to reach what real streams rarely do: coefficients that are a small
 * odd number times a power of two near the shift, so that many products land on a rounding tie
 * (negative ones too), coefficients up to 2^31 - 1 (the split's high half at its top) with
 * residuals small enough that no value leaves int32 (the caller's condition), and the int16
 * extremes among the mantissas. Compares every residual and the returned dot product or sum of
 * squares. This driver includes lrt.c to reach the static sweeps. Prints "sweep16lo cases N ties N
 * negative N big N bad N". Usage: lrt_sweep_lo [CASES].
 */
#include <stdio.h>
#include <stdlib.h>

#include "lrt.c"
#include "digest.h"

#define LEN_MAX 300

static int16_t qbuf[LEN_MAX * 4];
static int32_t resbuf[LEN_MAX];
static int32_t res_ref[LEN_MAX];
static int32_t res_lo[LEN_MAX];

int main(int argc, char **argv)
{
    long cases = argc > 1 ? atol(argv[1]) : 20000;
    uint32_t s = 20261208u;
    long ties = 0;
    long neg_ties = 0;
    long big = 0;
    long bad = 0;
    long c;
    for (c = 0; c < cases; c++) {
        uint32_t len = 1 + rnd(&s) % (rnd(&s) % 4 == 0 ? LEN_MAX : 24);
        int col = 1 + (int)(rnd(&s) % 3);
        int dot_next = col < 3 ? (int)(rnd(&s) & 1u) : 0;
        int sh = 15 + (int)(rnd(&s) & 1u);
        int negc = (int)(rnd(&s) & 1u);
        const int16_t *qj = qbuf + col;
        const int16_t *qn = qbuf + col + 1;
        uint32_t amag;
        uint64_t room;
        uint64_t want;
        uint64_t got;
        uint32_t i;
        if (rnd(&s) % 4 == 0) { /* the high half near its top: |d| up to 2^31 / 2^(sh - 15) */
            amag = (uint32_t)(INT32_MAX - (int32_t)(rnd(&s) % 65536u));
            big++;
        } else { /* odd 2^p with p near the shift: ties where q's odd part meets */
            int p = sh - 1 - (int)(rnd(&s) % 6);
            amag = (1u + 2u * (rnd(&s) % 8u)) << p;
        }
        /* |res| + |d| within int32 (no clamp): |d| <= round(amag 2^15 2^-sh) <= (amag + [sh = 16]) 2^(15 - sh) */
        room = (uint64_t)INT32_MAX - (((uint64_t)amag + (uint64_t)(sh == 16)) >> (sh - 15));
        for (i = 0; i < len * 4u; i++) {
            uint32_t pick = rnd(&s) % 8;
            qbuf[i] = (int16_t)(pick == 0 ? -32768 : pick == 1 ? 32767 : pick == 2 ? -32767
                                                                        : (int)srnd(&s, 1 + (int)(rnd(&s) % 15)));
        }
        for (i = 0; i < len; i++) {
            int64_t x = (int64_t)amag * qj[(size_t)i * 4u];
            uint64_t m = (uint64_t)(x < 0 ? -x : x);
            int tie = (m & ((UINT64_C(1) << sh) - 1u)) == (UINT64_C(1) << (sh - 1));
            ties += tie;
            neg_ties += tie && x < 0;
            resbuf[i] = (int32_t)(srnd(&s, 31) % (int64_t)(room + 1u)); /* |res| <= room */
        }
        memcpy(res_ref, resbuf, sizeof(int32_t) * len);
        memcpy(res_lo, resbuf, sizeof(int32_t) * len);
        want = lrt_mgs_sweep32(qj, NULL, qn, 4, negc ? -(int32_t)amag : (int32_t)amag, sh, res_ref, len, 0, dot_next);
        got = lrt_mgs_sweep16(qj, qn, 4, amag, negc, sh, res_lo, len, dot_next, 1);
        bad += got != want || memcmp(res_ref, res_lo, sizeof(int32_t) * len) != 0;
    }
    printf("sweep16lo cases %ld ties %ld negative %ld big %ld bad %ld\n", cases, ties, neg_ties, big, bad);
    return 0;
}
