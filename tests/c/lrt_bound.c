/*
 * The rotation's scale (csrc/src/lrt.c): no pass forms the new basis to find its peak; lrt_rot_bound
 * bounds every |entry| from the old basis' largest mantissa, the weights and the residual's largest
 * value, and lrt_full_range_scale turns the bound into the block exponent and the multiplier f. This
 * driver includes lrt.c to reach those static functions and checks, over random rotations (every
 * rank, modes 0, 1 and 2, lengths 1..700, old multipliers across their range, weights up to 2^31 and
 * residual weights up to 2^35, column 1 with random low bits), that the bound is never below the exact peak (or the cap, 2^62) (every entry formed by
 * lrt_rot_row), that f lies in [2^15, 2^16) with inv = round(2^46 / f), and that the store pass
 * (lrt_rot_commit_side) leaves every mantissa within int16 and the largest one at least half of
 * 32767 peak / bound (the scale wastes no more than the bound's slack). Prints: cases, cases with a
 * zero bound, cases where the bound was within 1 % of the peak, failures. Usage: lrt_bound [CASES].
 */
#include <stdio.h>
#include <stdlib.h>

#include "lrt.c"
#include "digest.h"

static int16_t qbuf[700 * ET_LRT_MAX_RANK];
static int16_t qnew[700 * ET_LRT_MAX_RANK];
static int32_t resbuf[700];
static int32_t e0buf[700];
static uint8_t plane[700];

int main(int argc, char **argv)
{
    long cases = argc > 1 ? atol(argv[1]) : 20000;
    uint32_t s = 12345u;
    long c;
    long zero = 0;
    long tight = 0;
    long bad = 0;
    for (c = 0; c < cases; c++) {
        int rank = 1 + (int)(rnd(&s) % ET_LRT_MAX_RANK);
        uint32_t len = 1 + rnd(&s) % (rnd(&s) % 4 == 0 ? 700 : 64);
        int mode = (int)(rnd(&s) % 8);
        int q_exp = mode == 0 ? 0 : mode == 1 ? -44 + (int)(rnd(&s) % 14) : -30 + (int)(rnd(&s) % 17);
        uint32_t f_old = q_exp == 0 ? 0 : LRT_F_MIN + rnd(&s) % LRT_F_MIN;
        int32_t mrot[LRT_QMAX * ET_LRT_MAX_RANK];
        int64_t g[ET_LRT_MAX_RANK];
        int res_bits = 1 + (int)(rnd(&s) % 28);
        int g_bits = 1 + (int)(rnd(&s) % 35);
        int m_bits = 1 + (int)(rnd(&s) % 30);
        lrt_rot_t rt;
        lrt_scale_t sc;
        uint64_t peak = 0;
        uint32_t top = 0;
        uint32_t i;
        int j;
        int k;
        for (i = 0; i < len * (uint32_t)rank; i++) {
            qbuf[i] = (int16_t)(rnd(&s) % 3 == 0 ? (int)(rnd(&s) >> 16) - 32768 : (int)srnd(&s, 14));
        }
        for (i = 0; i < len; i++) {
            resbuf[i] = rnd(&s) % 5 == 0 ? 0 : (int32_t)srnd(&s, res_bits);
        }
        for (j = 0; j < (rank + 1) * rank; j++) {
            mrot[j] = (int32_t)srnd(&s, m_bits + 1 > 31 ? 31 : m_bits + 1);
        }
        for (k = 0; k < rank; k++) {
            g[k] = rnd(&s) % 7 == 0 ? 0 : srnd(&s, g_bits);
        }
        for (i = 0; i < len; i++) { /* column 1's extended mantissas: q 2^b plus random low bits */
            int b = lrt_low_bits(rank);
            e0buf[i] = (int32_t)qbuf[(size_t)i * rank] * (1 << b) + (int32_t)(rnd(&s) & ((1u << b) - 1u));
        }
        lrt_rot_init(&rt, mrot, rank, q_exp, f_old, g, e0buf);
        for (i = 0; i < len; i++) {
            int64_t row[ET_LRT_MAX_RANK];
            lrt_rot_row(&rt, qbuf + (size_t)i * rank, e0buf[i], resbuf[i], row, rank);
            for (k = 0; k < rank; k++) {
                uint64_t a = lrt_abs(row[k]);
                peak = a > peak ? a : peak;
            }
        }
        lrt_rot_plan(&rt, rank, qbuf, len, resbuf, &sc);
        /* entries past the cap (random weights at their extremes, never a term's): the bound is the cap */
        if (sc.bound < (peak < LRT_BOUND_CAP ? peak : LRT_BOUND_CAP) || (sc.bound == 0) != (sc.exp == 0)) {
            bad++;
            continue;
        }
        if (sc.bound == 0) {
            zero++;
            continue;
        }
        tight += sc.bound - peak <= peak / 100;
        if (sc.f < LRT_F_MIN || sc.f > LRT_F_MAX || sc.inv != (uint32_t)lrt_div(INT64_C(1) << 46, sc.f)) {
            bad++;
            continue;
        }
        memcpy(qnew, qbuf, sizeof(int16_t) * len * (size_t)rank);
        lrt_rot_commit_side(&rt, rank, qnew, plane, len, resbuf, &sc);
        for (i = 0; i < len * (uint32_t)rank; i++) {
            uint32_t a = (uint32_t)(qnew[i] < 0 ? -qnew[i] : qnew[i]);
            top = a > top ? a : top;
        }
        /* top ~ 32767 peak / bound; the weights' rounding may carry an entry one unit past 32767, to the
         * clamp (int16: -32768 stays) */
        if (top > 32768 || (sc.bound < LRT_BOUND_CAP && (double)top + 2.0 < 0.5 * 32767.0 * (double)peak / (double)sc.bound)) {
            bad++;
        }
    }
    printf("cases %ld zero %ld tight %ld bad %ld\n", cases, zero, tight, bad);
    return 0;
}
