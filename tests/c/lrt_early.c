/*
 * The accumulator's early kappa discards (csrc/src/lrt.c, lrt_early_discard): before the first MGS
 * pass and after it, a bound on the final residual norms decides a discard that the exact test, after
 * the last pass, is sure to make as well. tests/test_lrt_early_discard.py builds this driver twice: as the
 * core is, and with -DET_LRT_EARLY_CHECK, where the core keeps every term on the exact path (the
 * early test compiled out) and counts what the early test would have done. Both builds print one
 * hash line per case (state, PRNG and status after every term; they must agree), the check build
 * then a line of counters, for the test after the first pass, for the one before it, and for the one
 * with the shorter side after its first pass and the longer before any (the "exceeded" count there:
 * either side's final rho above its bound; no margin count): terms
 * where the bound applies, of them terms where a final rho exceeded its bound, early discards, of
 * them ones the exact test would have kept, and terms where the margin in the bound was needed (the
 * final rho above the norm the bound starts from).
 *
 * Streams per case (shape, rank, mode: unbiased, kappa and Gram-Schmidt passes, kind):
 *   kind 0: uniform random terms (the benchmark's stream);
 *   kind 1: the same, and every 23rd term a random state (any mantissas, any valid exponents);
 *   kind 2: every 7th term bases whose columns sit just below the contraction limit
 *           sum q^2 = 2^(1 - 2 exp) (a second pass then nearly undoes the first: the tightest
 *           case for the bound), with a random c;
 *   kind 3: repeated and nearly repeated terms (residuals small against the basis).
 * Usage: lrt_early [TERMS_PER_CASE]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgetrain/edgetrain.h"
#include "digest.h"
#include "lrt_case.h"

#ifdef ET_LRT_EARLY_CHECK
extern uint64_t et_lrt_early_stats[22];
#endif

static union {
    uint64_t align;
    unsigned char b[1 << 22];
} mem;

/* Columns at or just below the contraction limit sum(q^2) = 2^(1 - 2 exp) as the core's check
 * sees it: exp in -22..-14 (where the check applies), random directions with random supports,
 * scaled to the limit. */
static void limit_basis(int16_t *q, uint32_t len, uint32_t rank, int16_t *exp, uint32_t *s)
{
    int e = -22 + (int)(rnd(s) % 9);
    /* the largest sums the core's check accepts: 2^16 (sum floor(q^2 / 2^16) + len) <= 2^(1 - 2 e) */
    uint64_t lim = (UINT64_C(1) << (1 - 2 * e)) - ((uint64_t)len << 16);
    uint32_t i;
    uint32_t k;
    for (k = 0; k < rank; k++) {
        uint64_t sum = 0;
        uint32_t spread = 1 + rnd(s) % (len < 8 ? len : 8);
        for (i = 0; i < len; i++) {
            uint32_t v = rnd(s);
            int32_t m = (i % spread == k % spread) ? (int32_t)(v >> 17) - 16384 : 0;
            q[(size_t)i * rank + k] = (int16_t)m;
            sum += (uint64_t)((int64_t)m * m);
        }
        if (sum == 0) {
            q[k] = 1;
            sum = 1;
        }
        /* scale by f = sqrt(lim / sum) (kept below 1 for int16), rounded down, then nudged up while
         * the sum stays within the limit */
        {
            uint64_t num = 0;
            int shift = 0;
            while ((sum << 2) <= lim && shift < 8) {
                shift++;
                sum <<= 2;
            }
            for (i = 0; i < len; i++) {
                int32_t m = q[(size_t)i * rank + k];
                m = m * (1 << shift);
                m = m > 32767 ? 32767 : m < -32768 ? -32768 : m;
                q[(size_t)i * rank + k] = (int16_t)m;
            }
            sum = 0;
            for (i = 0; i < len; i++) {
                int32_t m = q[(size_t)i * rank + k];
                sum += (uint64_t)((int64_t)m * m);
            }
            while (sum > lim) {
                sum = 0;
                for (i = 0; i < len; i++) {
                    int32_t m = q[(size_t)i * rank + k];
                    m -= m / 64 + (m > 0) - (m < 0);
                    q[(size_t)i * rank + k] = (int16_t)m;
                    sum += (uint64_t)((int64_t)m * m);
                }
            }
            /* nudge: +-1 on the largest entries while the limit holds */
            for (i = 0; i < len && num < 64; i++) {
                int32_t m = q[(size_t)i * rank + k];
                int32_t m2 = m + (m >= 0 ? 1 : -1);
                uint64_t next = sum - (uint64_t)((int64_t)m * m) + (uint64_t)((int64_t)m2 * m2);
                if (m != 0 && m2 <= 32767 && m2 >= -32768 && next <= lim) {
                    q[(size_t)i * rank + k] = (int16_t)m2;
                    sum = next;
                    num++;
                }
            }
        }
    }
    *exp = (int16_t)e;
}

static int run_case(uint32_t n, uint32_t m, uint32_t rank, int unbiased, uint32_t kappa, int passes, int kind,
                    int terms, uint32_t seed)
{
    lrt_case_t c;
    et_lrt_state_t *st = NULL;
    et_prng_t prng;
    int8_t *delta;
    uint8_t *x;
    uint64_t h = UINT64_C(14695981039346656037);
    uint32_t s = seed;
    int ok = 0;
    int bad = 0;
    int t;
    uint32_t i;
    if (lrt_case_init(&c, mem.b, n, m, rank, unbiased, kappa) != 0) {
        return 1;
    }
    c.cfg.gs_passes = (uint8_t)passes;
    st = c.st;
    delta = c.delta;
    x = c.x;
    (void)et_prng_seed(&prng, seed * 2654435761u + 1u);
    for (t = 0; t < terms; t++) {
        et_status_t rc;
        int repeat = kind == 3 && t > 0 && rnd(&s) % 4 != 0;
        if (!repeat) {
            for (i = 0; i < n; i++) {
                delta[i] = (int8_t)(rnd(&s) >> 24);
            }
            for (i = 0; i < m; i++) {
                x[i] = (uint8_t)(rnd(&s) >> 24);
            }
        } else if (rnd(&s) % 2 == 0) {
            /* nearly repeated: a few entries moved by one */
            for (i = 0; i < 3; i++) {
                uint32_t v = rnd(&s);
                x[v % m] = (uint8_t)(x[v % m] + ((v >> 16) & 1 ? 1 : 255));
                delta[(v >> 8) % n] = (int8_t)(delta[(v >> 8) % n] ^ 1);
            }
        }
        if (kind == 1 && t % 23 == 11) {
            int16_t *ql = NULL;
            int16_t *qr = NULL;
            (void)et_lrt_bases(st, &ql, &qr);
            for (i = 0; i < (n + m) * rank; i++) {
                uint32_t v = rnd(&s);
                ql[i] = (int16_t)(v % 5 == 0 ? (int)(v >> 16) - 32768 : (int)(v >> 20) - 2048);
            }
            st->exp_l = (int16_t)(rnd(&s) % 4 == 0 ? 0 : -44 + (int)(rnd(&s) % 31));
            st->exp_r = (int16_t)(rnd(&s) % 4 == 0 ? 0 : -44 + (int)(rnd(&s) % 31));
            st->f_l = (uint16_t)(st->exp_l == 0 ? 0 : 32768u + (rnd(&s) >> 17));
            st->f_r = (uint16_t)(st->exp_r == 0 ? 0 : 32768u + (rnd(&s) >> 17));
            st->c_mant[0] = rnd(&s) >> 1;
            for (i = 1; i < rank; i++) {
                st->c_mant[i] = st->c_mant[i - 1] >> (rnd(&s) % 4);
            }
            st->c_exp = (int16_t)(-40 + (int)(rnd(&s) % 60));
        }
        if (kind == 2 && t % 7 == 3) {
            int16_t *ql = NULL;
            int16_t *qr = NULL;
            (void)et_lrt_bases(st, &ql, &qr);
            limit_basis(ql, n, rank, &st->exp_l, &s);
            limit_basis(qr, m, rank, &st->exp_r, &s);
            st->f_l = 65535; /* the multiplier nearest 1: columns at the contraction limit */
            st->f_r = 65535;
            st->c_mant[0] = (rnd(&s) >> 1) | (UINT32_C(1) << 30);
            for (i = 1; i < rank; i++) {
                st->c_mant[i] = st->c_mant[i - 1] >> (rnd(&s) % 4);
            }
            /* around the threshold for these inputs (rho_L rho_R about 2^-1..2^4 here) */
            st->c_exp = (int16_t)(-26 + (int)(rnd(&s) % 16));
        }
        rc = et_lrt_accumulate_u8(st, &c.cfg, delta, -9, x, -7, c.scratch, c.scr_size, &prng);
        ok += rc == ET_OK;
        bad += rc != ET_OK;
        h = fnv(h, &rc, sizeof(rc));
        h = fnv(h, st, c.st_size);
        h = fnv(h, &prng, sizeof(prng));
        if (t % 97 == 96) {
            (void)et_lrt_reset(st);
        }
    }
    printf("%u x %u rank %u unbiased %d kappa %u passes %d kind %d: ok %d err %d skipped %u hash %016llx\n",
           (unsigned)n, (unsigned)m, (unsigned)rank, unbiased, (unsigned)kappa, passes, kind, ok, bad, (unsigned)st->skipped,
           (unsigned long long)h);
    return 0;
}

int main(int argc, char **argv)
{
    static const uint32_t shapes[][2] = {{7, 33}, {64, 577}, {128, 1152}, {200, 17}, {513, 96}};
    static const uint32_t ranks[] = {1, 2, 4, 8};
    static const uint32_t modes[][3] = {{1, 100, 2}, {0, 100, 2}, {1, 10, 2}, {0, 1000, 2}, {1, 100, 1}};
    int terms = argc > 1 ? atoi(argv[1]) : 80;
    size_t a;
    size_t b;
    size_t c;
    int kind;
    for (a = 0; a < sizeof(shapes) / sizeof(shapes[0]); a++) {
        for (b = 0; b < sizeof(ranks) / sizeof(ranks[0]); b++) {
            for (c = 0; c < sizeof(modes) / sizeof(modes[0]); c++) {
                for (kind = 0; kind < 4; kind++) {
                    uint32_t seed = (uint32_t)(a * 1009 + b * 101 + c * 11 + (size_t)kind + 1u);
                    if (run_case(shapes[a][0], shapes[a][1], ranks[b], (int)modes[c][0], modes[c][1], (int)modes[c][2],
                                 kind, terms, seed) != 0) {
                        return 1;
                    }
                }
            }
        }
    }
#ifdef ET_LRT_EARLY_CHECK
    {
        int k;
        for (k = 0; k < 15; k += 5) {
            printf("%s applied %llu exceeded %llu early %llu kept %llu margin %llu\n",
                   k == 0 ? "after" : k == 5 ? "before" : "mixed",
                   (unsigned long long)et_lrt_early_stats[k], (unsigned long long)et_lrt_early_stats[k + 1],
                   (unsigned long long)et_lrt_early_stats[k + 2], (unsigned long long)et_lrt_early_stats[k + 3],
                   (unsigned long long)et_lrt_early_stats[k + 4]);
        }
        printf("gram applied %llu exceeded %llu early %llu kept %llu unsought %llu\n",
               (unsigned long long)et_lrt_early_stats[17], (unsigned long long)et_lrt_early_stats[18],
               (unsigned long long)et_lrt_early_stats[19], (unsigned long long)et_lrt_early_stats[20],
               (unsigned long long)et_lrt_early_stats[21]);
        printf("sums checked %llu differed %llu\n", (unsigned long long)et_lrt_early_stats[15],
               (unsigned long long)et_lrt_early_stats[16]);
    }
#endif
    return 0;
}
