/*
 * A digest of the low-rank accumulator over a fixed stream of terms: every shape, rank and mode
 * in the list below, random and extreme inputs, a flush and reset now and then. Prints one line
 * per case (status counts and an FNV-1a hash of the state, the PRNG and the flushed rows after
 * every term), so that two builds of the core (e.g. with and without ET_NO_MULTIVERSION) can be
 * compared byte for byte. Every 29th term re-orthonormalises the bases. Every 23rd term starts from a random state (any mantissas, any valid
 * exponents: the paths valid bases never take). Usage: lrt_digest [TERMS_PER_CASE]
 * [N M RANK UNBIASED KAPPA] (the second form runs one case in steady state, for profiling:
 * random terms only, no flush). "lrt_digest TERMS batch" runs every case through
 * et_lrt_accumulate_batch_u8 instead, in batches of 1..16 terms (each batch's terms are the stream's
 * next ones; the hash after every batch).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgetrain/edgetrain.h"
#include "digest.h"
#include "lrt_case.h"

static union {
    uint64_t align;
    unsigned char b[1 << 22];
} mem;

/* batch mode: the batch scratch and the buffered terms, past what lrt_case_init lays out */
#define BATCH_AT (1u << 21)

static int run_case(uint32_t n, uint32_t m, uint32_t rank, int unbiased, uint32_t kappa, int terms, uint32_t seed,
                    int steady, int batched)
{
    int8_t *bdelta = (int8_t *)(mem.b + BATCH_AT);
    uint8_t *bx = (uint8_t *)(bdelta + ET_LRT_BATCH_MAX * n);
    int32_t bdexp[ET_LRT_BATCH_MAX];
    int32_t bxexp[ET_LRT_BATCH_MAX];
    unsigned char *bscratch = mem.b + BATCH_AT + (((size_t)ET_LRT_BATCH_MAX * (n + m) + 63) & ~(size_t)63);
    size_t bscr_size = 0;
    uint32_t fill = 0;
    uint32_t want = 1;
    lrt_case_t c;
    et_lrt_state_t *st = NULL;
    et_lrt_norms_t norms;
    et_lrt_flush_t fl;
    et_prng_t prng;
    int8_t *delta;
    uint8_t *x;
    int8_t *row;
    uint64_t h = UINT64_C(14695981039346656037);
    uint32_t s = seed;
    int ok = 0;
    int bad = 0;
    int t;
    uint32_t i;
    if (lrt_case_init(&c, mem.b, n, m, rank, unbiased, kappa) != 0) {
        return 1;
    }
    st = c.st;
    delta = c.delta;
    x = c.x;
    row = (int8_t *)(x + m);
    (void)et_lrt_accumulate_batch_get_buffer_size(n, m, rank, ET_LRT_BATCH_MAX, &bscr_size);
    (void)et_lrt_norms_init(&norms);
    (void)et_prng_seed(&prng, seed * 2654435761u + 1u);
    for (t = 0; t < terms; t++) {
        uint32_t kind = rnd(&s) % 8;
        int dexp = -12 + (int)(rnd(&s) % 8);
        int xexp = -9 + (int)(rnd(&s) % 6);
        et_status_t rc;
        for (i = 0; i < n; i++) {
            uint32_t v = rnd(&s);
            delta[i] = kind == 0 ? (int8_t)-128 : kind == 1 ? (int8_t)((v % 16) == 0 ? (int)(v >> 8) % 128 : 0)
                                                            : (int8_t)(v >> 11);
        }
        for (i = 0; i < m; i++) {
            uint32_t v = rnd(&s);
            x[i] = kind == 2 ? (uint8_t)255 : kind == 3 ? (uint8_t)(i % 7 == 0 ? v >> 24 : 0) : (uint8_t)(v >> 13);
        }
        if (kind == 4 && t > 0) {
            /* a term close to the span: one row of the basis' span repeated */
            for (i = 0; i < m; i++) {
                x[i] = (uint8_t)(i % 3 == 0 ? 200 : 10);
            }
        }
        if (batched) {
            /* buffer the term; a batch of `want` (1..16, drawn per batch) goes in at once */
            memcpy(bdelta + fill * n, delta, n);
            memcpy(bx + fill * m, x, m);
            bdexp[fill] = dexp;
            bxexp[fill] = xexp;
            if (++fill < want && t + 1 < terms) {
                continue;
            }
            rc = et_lrt_accumulate_batch_u8(st, &c.cfg, fill, bdelta, bdexp, bx, bxexp, bscratch, bscr_size, &prng);
            fill = 0;
            want = 1 + rnd(&s) % ET_LRT_BATCH_MAX;
        } else {
            rc = et_lrt_accumulate_u8(st, &c.cfg, delta, dexp, x, xexp, c.scratch, c.scr_size, &prng);
        }
        ok += rc == ET_OK;
        bad += rc != ET_OK;
        h = fnv(h, &rc, sizeof(rc));
        h = fnv(h, st, c.st_size);
        h = fnv(h, &prng, sizeof(prng));
        if (t % 23 == 11 && !steady) {
            /* any state et_lrt_state_ok accepts: random mantissas, exponents over their whole
             * range (old-basis shifts either way, large coefficients, clamped residuals) */
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
            /* c descending, as every accumulate leaves it (the core's entries then stay below
             * 2^25; an unsorted c is outside what the core is defined for) */
            st->c_mant[0] = rnd(&s) >> 1;
            for (i = 1; i < rank; i++) {
                st->c_mant[i] = st->c_mant[i - 1] >> (rnd(&s) % 4);
            }
            st->c_exp = (int16_t)(-40 + (int)(rnd(&s) % 60));
        }
        if (t % 29 == 28 && !steady) {
            /* re-orthonormalise (a random state above is refused: nothing may change then) */
            rc = et_lrt_reorthonormalize(st, batched ? bscratch : c.scratch, batched ? bscr_size : c.scr_size);
            h = fnv(h, &rc, sizeof(rc));
            h = fnv(h, st, c.st_size);
        }
        if (t % 37 == 36 && !steady) {
            if (et_lrt_flush_begin(st, &c.cfg, &norms, &fl) == ET_OK) {
                for (i = 0; i < n; i++) {
                    uint32_t nz = 0;
                    (void)et_lrt_delta_row(st, &fl, i, row, &nz);
                    h = fnv(h, row, m);
                }
            }
            (void)et_lrt_reset(st);
        }
    }
    {
        printf("%u x %u rank %u unbiased %d kappa %u: ok %d err %d hash %016llx\n", (unsigned)n, (unsigned)m,
               (unsigned)rank, unbiased, (unsigned)kappa, ok, bad, (unsigned long long)h);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const uint32_t shapes[][2] = {{1, 1}, {1, 9}, {3, 2}, {7, 33}, {16, 144}, {64, 577}, {128, 1152},
                                         {200, 17}, {513, 96}};
    int terms = argc > 1 ? atoi(argv[1]) : 60;
    int batched = argc == 3 && strcmp(argv[2], "batch") == 0;
    size_t s;
    uint32_t rank;
    if (argc == 7) {
        return run_case((uint32_t)atoi(argv[2]), (uint32_t)atoi(argv[3]), (uint32_t)atoi(argv[4]), atoi(argv[5]),
                        (uint32_t)atoi(argv[6]), terms, 1u, 1, 0);
    }
    for (s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        for (rank = 1; rank <= ET_LRT_MAX_RANK; rank++) {
            int mode;
            for (mode = 0; mode < 3; mode++) {
                if (run_case(shapes[s][0], shapes[s][1], rank, mode != 0, mode == 2 ? 100u : 0u, terms,
                             (uint32_t)(s * 131 + rank * 7 + (uint32_t)mode + 1u), 0, batched) != 0) {
                    return 1;
                }
            }
        }
    }
    return 0;
}
