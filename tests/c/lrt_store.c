/*
 * The rotation's store pass at rank 4 with AVX2 (csrc/src/lrt.c, lrt_rot_write4_avx2) against the
 * exact int64 rows of lrt_rot_write, the loop firmware runs. This driver includes lrt.c to reach the
 * static kernels and feeds both the same random rotations (an empty old basis and one at an exact
 * left shift; lengths 1..300, so every tail of a four-row step; weights and residual weights of
 * every size, the residual's weights split as the host's store pass splits them) with shifts chosen
 * around the rows' peak, small ones among them, so that ties of the rounding (negative ones too) and
 * both clamps (int16 and column 1's 16 + b bits) occur often. Compares every mantissa, every
 * extended mantissa of column 1 and every byte of its plane. Prints: cases, entries rounded at an
 * exact tie (all, negative), entries clamped (columns 2..4, column 1), mismatches. Usage:
 * lrt_store [CASES]. Prints "no avx2" on a CPU without AVX2 and on builds without the kernel.
 */
#include <stdio.h>
#include <stdlib.h>

#include "lrt.c"
#include "digest.h"

#define LEN_MAX 300

static int16_t qbuf[LEN_MAX * 4];
static int16_t q_ref[LEN_MAX * 4];
static int16_t q_avx[LEN_MAX * 4];
static int32_t resbuf[LEN_MAX];
static int32_t e0_old[LEN_MAX];
static int32_t e0_ref[LEN_MAX];
static int32_t e0_avx[LEN_MAX];
static uint8_t plane_ref[LEN_MAX / 4 + 1];
static uint8_t plane_avx[LEN_MAX / 4 + 1];

static int64_t srnd(uint32_t *s, int bits)
{
    uint64_t v = ((uint64_t)rnd(s) << 32) | rnd(s);
    int64_t x = (int64_t)(v >> (64 - bits));
    return (rnd(s) & 1) ? -x : x;
}

int main(int argc, char **argv)
{
#if LRT_AVX2
    long cases = argc > 1 ? atol(argv[1]) : 20000;
    uint32_t s = 2024u;
    long c;
    long ties = 0;
    long neg_ties = 0;
    long clamped = 0;
    long clamped1 = 0;
    long bad = 0;
    if (!__builtin_cpu_supports("avx2")) {
        printf("no avx2\n");
        return 0;
    }
    for (c = 0; c < cases; c++) {
        uint32_t len = 1 + rnd(&s) % (rnd(&s) % 4 == 0 ? LEN_MAX : 24);
        int mode = rnd(&s) % 6 == 0 ? 0 : 1;
        int up = mode == 0 ? 0 : (int)(rnd(&s) % 4);
        int m_bits = 1 + (int)(rnd(&s) % 31);
        int g_bits = 1 + (int)(rnd(&s) % 40);
        int res_bits = 1 + (int)(rnd(&s) % (g_bits > 29 ? 60 - g_bits : 31)); /* |res g| < 2^60 */
        int32_t mrot[LRT_QMAX * 4];
        int64_t g[4];
        int32_t gh[4];
        int32_t gl[4];
        lrt_rot_t rt;
        uint64_t peak = 0;
        int shift;
        uint32_t i;
        int k;
        for (i = 0; i < len * 4u; i++) {
            qbuf[i] = (int16_t)(rnd(&s) % 5 == 0 ? (int)(rnd(&s) >> 16) - 32768 : (int)srnd(&s, 1 + (int)(rnd(&s) % 15)));
        }
        for (i = 0; i < len; i++) {
            resbuf[i] = rnd(&s) % 7 == 0 ? 0 : (int32_t)srnd(&s, res_bits);
            e0_old[i] = (int32_t)qbuf[(size_t)i * 4u] * 4 + (int32_t)(rnd(&s) & 3u);
        }
        for (k = 0; k < 20; k++) {
            mrot[k] = (int32_t)srnd(&s, m_bits);
        }
        for (k = 0; k < 4; k++) {
            g[k] = rnd(&s) % 7 == 0 ? 0 : srnd(&s, g_bits);
        }
        rt.m = mrot;
        rt.g = g;
        rt.e0 = e0_old;
        rt.b = 2;
        rt.mode = mode;
        rt.up = up;
        rt.qmax = UINT32_MAX;
        for (i = 0; i < len; i++) {
            int64_t row[4];
            lrt_rot_row(&rt, qbuf + (size_t)i * 4u, e0_old[i], resbuf[i], row, 4);
            for (k = 0; k < 4; k++) {
                uint64_t a = lrt_abs(row[k]);
                peak = a > peak ? a : peak;
            }
        }
        /* around the shift that brings the peak to int16 (a store pass' sh - 1), a few bits either way:
         * below it the clamps, small peaks give small shifts and many ties; |v| stays below 2^21 */
        shift = (peak == 0 ? 0 : 64 - et_clz_u64(peak)) - 16 + (int)(rnd(&s) % 6) - 3;
        shift = shift < 3 ? 3 : shift;
        if (peak >= (UINT64_C(1) << 61) || shift > 47 || !lrt_rot_fast(&rt, 4, gh, gl)) {
            c--; /* outside the fast path's conditions (lrt_rot_commit_side): draw again */
            continue;
        }
        for (i = 0; i < len; i++) {
            int64_t row[4];
            lrt_rot_row(&rt, qbuf + (size_t)i * 4u, e0_old[i], resbuf[i], row, 4);
            for (k = 0; k < 4; k++) {
                int sh = k == 0 ? shift - 2 : shift;
                uint64_t low = (uint64_t)row[k] & ((UINT64_C(1) << sh) - 1u);
                int64_t v = et_round_shift_s64(row[k], sh);
                if (low == (UINT64_C(1) << (sh - 1))) {
                    ties++;
                    neg_ties += row[k] < 0;
                }
                if (k == 0) {
                    clamped1 += v < -(INT64_C(1) << 17) || v > (INT64_C(1) << 17) - 1;
                } else {
                    clamped += v < INT16_MIN || v > INT16_MAX;
                }
            }
        }
        memcpy(q_ref, qbuf, sizeof(int16_t) * len * 4u);
        memcpy(q_avx, qbuf, sizeof(int16_t) * len * 4u);
        memcpy(e0_ref, e0_old, sizeof(int32_t) * len);
        memcpy(e0_avx, e0_old, sizeof(int32_t) * len);
        memset(plane_ref, 0x5A, sizeof(plane_ref));
        memset(plane_avx, 0x5A, sizeof(plane_avx));
        rt.e0 = e0_ref;
        lrt_rot_write(q_ref, len, &rt, resbuf, shift, 4);
        lrt_ext_pack_b(e0_ref, len, plane_ref, 2);
        rt.e0 = e0_avx;
        lrt_rot_write4_avx2(q_avx, plane_avx, len, &rt, resbuf, shift, gh, gl);
        bad += memcmp(q_ref, q_avx, sizeof(int16_t) * len * 4u) != 0 || memcmp(e0_ref, e0_avx, sizeof(int32_t) * len) != 0 ||
               memcmp(plane_ref, plane_avx, sizeof(plane_ref)) != 0;
    }
    printf("cases %ld ties %ld negative %ld clamped %ld column1 %ld bad %ld\n", cases, ties, neg_ties, clamped,
           clamped1, bad);
#else
    (void)argc;
    (void)argv;
    printf("no avx2\n");
#endif
    return 0;
}
