/*
 * The accumulator's AVX2 kernels (csrc/src/lrt.c) against the loops they replace, on inputs made to
 * reach what real streams rarely do. First the rotation's store pass at rank 4 (lrt_rot_write4_avx2)
 * against the exact int64 rows of lrt_rot_write, the loop firmware runs. This driver includes lrt.c to reach the
 * static kernels and feeds both the same random rotations (an empty old basis and one at an exact
 * left shift; lengths 1..300, so every tail of a four-row step; weights and residual weights of
 * every size, the residual's weights split as the host's store pass splits them) with shifts chosen
 * around the rows' peak, small ones among them, so that ties of the rounding (negative ones too) and
 * both clamps (int16 and column 1's 16 + b bits) occur often. Compares every mantissa, every
 * extended mantissa of column 1 and every byte of its plane. Then the MGS sweeps
 * (lrt_mgs_sweep4_avx2 against lrt_mgs_sweep16, lrt_mgs_sweep32_avx2 against lrt_mgs_sweep32, column 1
 * from e0 or columns 2..4 from q, with the next column's dot product or the sum of squares; lengths
 * 1..300) with coefficients that are a power of two times a small odd number, so that many products
 * land on a rounding tie: every residual and the returned sum. Prints one line per kernel: cases,
 * ties (all, negative), for the store entries clamped (columns 2..4, column 1), mismatches. Usage:
 * lrt_avx2 [CASES]. Prints "no avx2" on a CPU without AVX2 and on builds without the kernels.
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

#if LRT_AVX2
static int32_t res_ref[LEN_MAX];
static int32_t res_avx[LEN_MAX];

/* 1 where round(x 2^-sh) is a tie; *neg adds one where x < 0 */
static int is_tie(int64_t x, int sh, long *neg)
{
    uint64_t m = (uint64_t)(x < 0 ? -x : x);
    int tie = (m & ((UINT64_C(1) << sh) - 1u)) == (UINT64_C(1) << (sh - 1));
    *neg += tie && x < 0;
    return tie;
}

static void sweeps(long cases, uint32_t *s)
{
    long c;
    long ties[2] = {0, 0};
    long neg[2] = {0, 0};
    long bad[2] = {0, 0};
    int kind;
    for (c = 0; c < cases; c++) {
        uint32_t len = 1 + rnd(s) % (rnd(s) % 4 == 0 ? LEN_MAX : 24);
        int col = (int)(rnd(s) % 4); /* 0: column 1 from e0 (the 32-bit sweep only) */
        int dot_next = col < 3 ? (int)(rnd(s) & 1u) : 0;
        uint32_t i;
        for (i = 0; i < len * 4u; i++) {
            qbuf[i] = (int16_t)(rnd(s) % 5 == 0 ? (int)(rnd(s) >> 16) - 32768 : (int)srnd(s, 1 + (int)(rnd(s) % 15)));
        }
        for (i = 0; i < len; i++) {
            e0_old[i] = (int32_t)qbuf[(size_t)i * 4u] * 4 + (int32_t)(rnd(s) & 3u);
            resbuf[i] = (int32_t)srnd(s, 1 + (int)(rnd(s) % 28));
        }
        for (kind = 0; kind < 2; kind++) {
            const int16_t *qj = qbuf + col;
            const int16_t *qn = qbuf + col + 1;
            uint64_t got;
            uint64_t want;
            if (kind == 0) { /* lrt_mgs_sweep16: 17 <= sh, |a| < 2^31, |d| < 2^28 */
                int sh = 17 + (int)(rnd(s) % 28);
                int lim = sh + 12 < 31 ? sh + 12 : 31;
                int p = sh - 1 - (int)(rnd(s) % 4); /* a = odd 2^p: ties where q's odd part meets */
                uint32_t amag = (uint32_t)((1u + 2u * (rnd(s) % 8u)) << (p < lim - 4 ? p : lim - 4));
                int negc = (int)(rnd(s) & 1u);
                if (col == 0) {
                    continue;
                }
                for (i = 0; i < len; i++) {
                    ties[0] += is_tie((int64_t)amag * qj[(size_t)i * 4u], sh, &neg[0]);
                }
                memcpy(res_ref, resbuf, sizeof(int32_t) * len);
                memcpy(res_avx, resbuf, sizeof(int32_t) * len);
                want = lrt_mgs_sweep16(qj, qn, 4, amag, negc, sh, res_ref, len, dot_next, 0);
                got = lrt_mgs_sweep4_avx2(qbuf, col, amag, negc, sh, res_avx, len, dot_next);
            } else { /* lrt_mgs_sweep32 without the clamp: 1 <= sh, |d| < 2^28 */
                int sh = 1 + (int)(rnd(s) % 40);
                int p = sh - 1 - (int)(rnd(s) % 4);
                int lim = sh + 9 < 30 ? sh + 9 : 30;
                int32_t a32 = (int32_t)((1 + 2 * (int32_t)(rnd(s) % 8u)) * ((int32_t)1 << (p < 0 ? 0 : (p < lim - 4 ? p : lim - 4))));
                a32 = (rnd(s) & 1u) ? -a32 : a32;
                for (i = 0; i < len; i++) {
                    int32_t v = col == 0 ? e0_old[i] : qj[(size_t)i * 4u];
                    ties[1] += sh > 1 ? is_tie((int64_t)a32 * v, sh, &neg[1]) : 0;
                }
                memcpy(res_ref, resbuf, sizeof(int32_t) * len);
                memcpy(res_avx, resbuf, sizeof(int32_t) * len);
                want = lrt_mgs_sweep32(col == 0 ? NULL : qj, col == 0 ? e0_old : NULL, qn, 4, a32, sh, res_ref, len, 0,
                                       dot_next);
                got = lrt_mgs_sweep32_avx2(col == 0 ? e0_old : NULL, qbuf, col, a32, sh, res_avx, len, dot_next);
            }
            bad[kind] += got != want || memcmp(res_ref, res_avx, sizeof(int32_t) * len) != 0;
        }
    }
    printf("sweep16 cases %ld ties %ld negative %ld bad %ld\n", cases, ties[0], neg[0], bad[0]);
    printf("sweep32 cases %ld ties %ld negative %ld bad %ld\n", cases, ties[1], neg[1], bad[1]);
}
#endif

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
    printf("store cases %ld ties %ld negative %ld clamped %ld column1 %ld bad %ld\n", cases, ties, neg_ties, clamped,
           clamped1, bad);
    sweeps(cases, &s);
#else
    (void)argc;
    (void)argv;
    printf("no avx2\n");
#endif
    return 0;
}
