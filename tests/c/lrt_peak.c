/*
 * The rotation's peak pass (csrc/src/lrt.c): lrt_rot_bitlen_approx forms every entry of the new
 * basis in int32 with an error bound and returns bitlen(peak) only when the bound leaves no doubt,
 * 0 otherwise (then the exact pass runs). This driver includes lrt.c to reach those static
 * functions and compares, over random rotations (every rank, modes 0, 1 and 2, lengths 1..700),
 * the approximate bit length against the exact peak's (lrt_rot_max), and lrt_rot_peak's exponent
 * and shift against the exact ones. Half of the cases plant a peak within a few error bounds of a
 * power of two (one entry steered by its residual), where the approximation must fall back, and
 * every 16th case puts one residual at its worst rounding (the low bits all ones) just above one.
 * Prints: cases, decided by the approximation, fallbacks, planted cases whose peak ended within the
 * error bound of a power of two, disagreements. Usage: lrt_peak [CASES]. The approximation exists in
 * the host's wide builds only (LRT_WIDE): a portable build prints that it has none.
 */
#include <stdio.h>
#include <stdlib.h>

#include "lrt.c"
#include "digest.h"

#if !LRT_WIDE
int main(void)
{
    printf("portable build: no approximate peak pass\n");
    return 0;
}
#else
static int16_t qbuf[700 * ET_LRT_MAX_RANK];
static int32_t resbuf[700];

static int64_t srnd(uint32_t *s, int bits)
{
    uint64_t v = ((uint64_t)rnd(s) << 32) | rnd(s);
    int64_t x = (int64_t)(v >> (64 - bits));
    return (rnd(s) & 1) ? -x : x;
}

static uint64_t exact_peak(const int16_t *q, uint32_t len, int rank, const lrt_rot_t *rt, const int32_t *res)
{
    return lrt_rot_max(q, len, rt, res, rank);
}

int main(int argc, char **argv)
{
    long cases = argc > 1 ? atol(argv[1]) : 20000;
    uint32_t s = 12345u;
    long c;
    long decided = 0;
    long fallback = 0;
    long near = 0;
    long bad = 0;
    for (c = 0; c < cases; c++) {
        int rank = 1 + (int)(rnd(&s) % ET_LRT_MAX_RANK);
        uint32_t len = 1 + rnd(&s) % (rnd(&s) % 4 == 0 ? 700 : 64);
        int mode = (int)(rnd(&s) % 8);
        int q_exp = mode == 0 ? 0 : mode == 1 ? -44 + (int)(rnd(&s) % 14) : -30 + (int)(rnd(&s) % 17);
        int32_t mrot[LRT_QMAX * ET_LRT_MAX_RANK];
        int64_t g[ET_LRT_MAX_RANK];
        int res_bits = 1 + (int)(rnd(&s) % 28);
        int g_bits = 1 + (int)(rnd(&s) % 35);
        int m_bits = 1 + (int)(rnd(&s) % 30);
        lrt_rot_t rt;
        uint32_t i;
        int j;
        int k;
        int approx;
        int shift;
        int exp;
        uint64_t peak;
        int exact_bits;
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
        lrt_rot_init(&rt, mrot, q_exp, g);
        if (c % 2 == 1 && len > 0) {
            /* steer one entry to a power of two plus a small offset through its residual: entry =
             * A 2^up + res g with g the largest weight, res chosen to land near 2^L */
            uint32_t row = rnd(&s) % len;
            int col = (int)(rnd(&s) % (uint32_t)rank);
            uint64_t p0;
            int64_t a = 0;
            int64_t base;
            int64_t target;
            int L;
            g[col] = (INT64_C(1) << 33) + srnd(&s, 20);
            p0 = exact_peak(qbuf, len, rank, &rt, resbuf);
            if (rt.mode != 0) {
                for (j = 0; j < rank; j++) {
                    a += (int64_t)qbuf[(size_t)row * rank + j] * mrot[j * rank + col];
                }
            }
            base = rt.mode == 0 ? 0 : rt.mode == 1 ? a * ((int64_t)1 << rt.up) : et_round_shift_s64_inline(a, -rt.up);
            L = p0 == 0 ? 50 : lrt_bitlen(p0) + (int)(rnd(&s) % 2);
            L = L < 40 ? 40 : L > 60 ? 60 : L;
            target = (INT64_C(1) << L) + srnd(&s, L - 12 + (int)(rnd(&s) % 6));
            if (rnd(&s) & 1) {
                target = -target;
            }
            {
                int64_t r = (target - base) / g[col];
                resbuf[row] = (int32_t)(r > (INT64_C(1) << 28) ? (INT64_C(1) << 28) : r < -(INT64_C(1) << 28) ? -(INT64_C(1) << 28) : r);
            }
        }
        if (c % 16 == 14) {
            /* the residual's rounding at its worst: no old basis, res = 2^(15+s) - 1 loses almost
             * 2^s to the floor, and g puts res g just above a power of two */
            int L = 40 + (int)(rnd(&s) % 21);
            int32_t r = (int32_t)((UINT32_C(1) << 28) - 1 - (rnd(&s) % 4) * (UINT32_C(1) << 13));
            int64_t gv = (int64_t)(((UINT64_C(1) << L) + (uint64_t)r - 1) / (uint64_t)r);
            lrt_rot_init(&rt, mrot, 0, g);
            for (i = 0; i < len; i++) {
                resbuf[i] = 0;
            }
            resbuf[0] = (rnd(&s) & 1) ? -r : r;
            for (k = 0; k < rank; k++) {
                g[k] = k == 0 ? gv : 0;
            }
        }
        approx = lrt_rot_bitlen_approx(qbuf, len, rank, &rt, resbuf);
        peak = exact_peak(qbuf, len, rank, &rt, resbuf);
        exact_bits = peak == 0 ? 0 : lrt_bitlen(peak);
        exp = lrt_rot_peak(qbuf, len, rank, &rt, resbuf, &shift);
        if (approx != 0) {
            decided++;
            bad += approx != exact_bits;
        } else {
            fallback++;
        }
        if (c % 2 == 1 && peak != 0) {
            /* within 2^(bitlen - 12) of a power of two: inside the approximation's error bound for
             * the residual weights used here */
            uint64_t below = peak - (UINT64_C(1) << (exact_bits - 1));
            uint64_t above = (exact_bits < 64 ? (UINT64_C(1) << exact_bits) : UINT64_MAX) - peak;
            uint64_t win = UINT64_C(1) << (exact_bits > 12 ? exact_bits - 12 : 0);
            near += below < win || above < win;
        }
        bad += exp != (peak == 0 ? 0 : LRT_WORK_EXP + et_norm_shift_u64(peak, 15));
        bad += shift != (peak == 0 ? 0 : et_norm_shift_u64(peak, 15));
    }
    printf("cases %ld decided %ld fallback %ld near %ld bad %ld\n", cases, decided, fallback, near, bad);
    return 0;
}
#endif
