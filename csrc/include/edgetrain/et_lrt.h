/*
 * edgetrain — low-rank training (LRT): the streaming rank-r gradient accumulator
 * of Gural et al. (lrt-paper-spec §2), integer only.
 *
 * Each trainable n x m layer keeps a rank-r estimate of its summed weight
 * gradient sum_i delta_i x_i^T as two int16 block-floating-point bases
 * Q_L (n x r), Q_R (m x r) with orthonormal (or zero) columns and r singular
 * values c (descending): G~ = Q_L diag(c) Q_R^T. Per rank-1 term (one per
 * sample for a dense layer, H_out*W_out per sample for a conv layer) the term
 * is projected on the bases, the (r+1) x (r+1) core is decomposed by a
 * one-sided Jacobi SVD and truncated back to rank r, biased (keep the top r)
 * or unbiased (Benzing's OK: the small singular values are mixed with random
 * signs so that the expectation is exact). Every B samples the caller flushes:
 * the quantized update dW = Q_w(eta L^ R^T) is streamed row by row and applied
 * only when its density exceeds rho_min.
 *
 * Formats, rounding points, the Jacobi sweep count and the error bounds are
 * in docs/lrt.md. The NumPy twin is edgetrain/reference/lrt.py (same names
 * without the et_lrt_ prefix); edgetrain/reference/lrt_float.py is the same
 * algorithm in float64.
 *
 * Memory: a layer's persistent state is one et_lrt_state_t header (60 bytes)
 * followed by the bases, 2 r (n + m) bytes, and their column 1's low bits,
 * ceil(n b / 8) + ceil(m b / 8) bytes, in caller memory (et_lrt_state_get_size). The scratch of et_lrt_accumulate_* is one buffer
 * shared by all layers (only one layer accumulates at a time), sized by
 * et_lrt_accumulate_get_buffer_size for the largest layer. The two max-norm
 * trackers of a layer (et_lrt_norms_t, 32 bytes) are optimizer state the
 * caller keeps next to it. Nothing here allocates.
 *
 * Typical use (the training step):
 *   et_lrt_state_init(mem, size, n, m, ET_LRT_DENSE, &cfg, &st);
 *   et_lrt_norms_init(&norms);
 *   per backward pass, per (delta, x) pair of the layer:
 *       et_lrt_accumulate_u8(st, &cfg, delta, delta_exp, x, x_exp, scratch, scratch_size, &prng);
 *   every B samples (cfg.batch_dense or cfg.batch_conv):
 *       et_lrt_flush_begin(st, &cfg, &norms, &fl);
 *       if (fl.apply) {
 *           for each row i: et_lrt_delta_row(st, &fl, i, d, NULL);
 *                           new_row = sat8(old_row - d); write the changed cells;
 *           et_lrt_reset(st);
 *       }
 */
#ifndef EDGETRAIN_ET_LRT_H
#define EDGETRAIN_ET_LRT_H

#include <stddef.h>
#include <stdint.h>

#include "et_status.h"
#include "et_fixed.h"
#include "et_maxnorm.h"

#define ET_LRT_MAX_RANK 8          /* r: 1..8 */
#define ET_LRT_MAX_DIM 65535       /* n and m: 1..65535 */
#define ET_LRT_JACOBI_SWEEPS 8     /* most cyclic Jacobi sweeps per term (docs/lrt.md) */
#define ET_LRT_STATE_HEADER 60     /* sizeof(et_lrt_state_t) on every target */
#define ET_LRT_EXP_MIN (-128)      /* accepted delta_exp / x_exp */
#define ET_LRT_EXP_MAX 127
#define ET_LRT_CORE_MAX 33554432   /* 2^25: largest |entry| et_lrt_svd accepts */
#define ET_LRT_BATCH_MAX 16        /* terms per et_lrt_accumulate_batch_* call: 1..16 */

typedef enum {
    ET_LRT_DENSE = 0, /* one rank-1 term per sample; flushed every cfg.batch_dense samples */
    ET_LRT_CONV = 1   /* H_out*W_out terms per sample; flushed every cfg.batch_conv samples */
} et_lrt_kind_t;

/*
 * Every hyper-parameter of the accumulator. et_lrt_config_default() gives the
 * paper's values (lrt-paper-spec §6.5); et_lrt_config_check() the ranges.
 */
typedef struct {
    uint8_t rank;         /* r, rank of the estimate: 1..8; default 4 */
    uint8_t unbiased;     /* 1: unbiased OK truncation (default); 0: biased, keep the top r */
    uint8_t maxnorm;      /* 1: max-norm L and R at flush (default); 0: off */
    uint8_t gs_passes;    /* Gram-Schmidt passes per term: 1..2; default 2 (docs/lrt.md) */
    uint16_t batch_conv;  /* B of conv layers, in samples (images): 1..65535; default 10 */
    uint16_t batch_dense; /* B of dense layers, in samples: 1..65535; default 100 */
    uint32_t eta0_q24;    /* base learning rate eta0 * 2^24: 1..2^24, i.e. (0, 1]; default 167772 (0.01) */
    uint32_t rho_min_ppm; /* minimum update density, parts per million: 0..1000000; default 10000 (1 %) */
    uint32_t kappa_th;    /* skip a term when c_1 > kappa_th * rho_L * rho_R: 0 (never) .. 2^31-1; default 100 */
    uint16_t reorth_terms; /* re-orthonormalise the bases after a term that leaves `terms` a multiple of
                              this (et_lrt_reorthonormalize): 0 (never, default) .. 65535; 100 holds
                              max|Q^T Q - I| below 2e-3 on long low-rank streams (docs/lrt.md) */
    uint8_t conv_term_batch; /* training step, conv layers: a sample's terms go to et_lrt_accumulate_batch_*
                                this many at a time (the bases rounded once per call): 0..ET_LRT_BATCH_MAX;
                                0 or 1: one et_lrt_accumulate_* call per term (default 0). Dense layers
                                have one term per sample and always take it alone (docs/lrt.md) */
} et_lrt_config_t;

/*
 * One layer's persistent state; the int16 bases follow it in the same buffer:
 * Q_L (n x r, row-major) then Q_R (m x r, row-major), then column 1's low bits
 * of Q_L, b per row packed from bit 0 of the first byte (ceil(n b / 8) bytes),
 * then Q_R's (b = 2 at r >= 3, 1 at r = 2, 0 at r = 1). Values, with
 * E = mant * 2^b (+ the row's low bits in column 1):
 * Q_L[i][k] = E * f_l * 2^(exp_l - 16 - b), Q_R[j][k] = E * f_r * 2^(exp_r - 16 - b)
 * (f: the basis' full-range scale, 2^15..2^16-1, so that its largest mantissa is near 32767),
 * c_k = c_mant[k] * 2^c_exp (c_mant <= 2^31, descending; zero beyond rank).
 * A zero column (with c_k = 0) is an empty slot. "A bad state" below is one
 * whose dimensions, kind, basis exponents or multipliers are out of range or whose first
 * rank c_mant are not descending with c_mant[0] <= 2^31.
 */
typedef struct {
    uint32_t c_mant[ET_LRT_MAX_RANK]; /* singular values, shared exponent c_exp */
    uint32_t b_eff;   /* effective batch in samples since the last reset (sum of B per flush attempt) */
    uint32_t terms;   /* rank-1 terms accepted since the last reset (saturates) */
    uint32_t skipped; /* terms discarded by the kappa rule since the last reset (saturates) */
    uint16_t n;       /* outputs (rows of W) */
    uint16_t m;       /* inputs (columns of W; k*k*C_in for a conv layer) */
    int16_t exp_l;    /* block exponent of Q_L (0 while Q_L is all zero) */
    int16_t exp_r;    /* block exponent of Q_R */
    int16_t c_exp;    /* shared exponent of c */
    uint8_t rank;     /* r */
    uint8_t kind;     /* et_lrt_kind_t */
    uint16_t f_l;     /* multiplier of Q_L, Q16: 2^15..2^16-1 (0 while Q_L is all zero) */
    uint16_t f_r;     /* multiplier of Q_R */
} et_lrt_state_t;

/* The max-norm trackers of one layer's two factors (lrt-paper-spec §4). */
typedef struct {
    et_maxnorm_t l; /* for L = Q_L diag(sqrt c) */
    et_maxnorm_t r; /* for R = Q_R diag(sqrt c) */
} et_lrt_norms_t;

/* What et_lrt_flush_begin prepares for the row calls (transient, caller-owned). */
typedef struct {
    int32_t g[ET_LRT_MAX_RANK]; /* per-column coefficient eta c_k / (div_l div_r), |g| <= 2^29 */
    int32_t shift;     /* dW[i][j] = sat8(round(sum_k g_k QL[i][k] QR[j][k] * 2^-shift)) */
    uint32_t nonzero;  /* non-zero entries of dW over all n rows */
    uint8_t apply;     /* 1: nonzero > rho_min * n * m: apply dW, then et_lrt_reset */
    et_ufloat_t eta;   /* eta0 * sqrt(B_eff) */
    et_ufloat_t div_l; /* max-norm divisor of L (1 with max-norm off) */
    et_ufloat_t div_r; /* max-norm divisor of R */
    uint32_t stamp[6]; /* the state this was prepared for (rows refuse a changed state) */
} et_lrt_flush_t;

/* The paper's defaults into *cfg. ET_ERR_ARG for NULL. */
et_status_t et_lrt_config_default(et_lrt_config_t *cfg);

/* ET_OK when every field is in its documented range, ET_ERR_ARG otherwise. */
et_status_t et_lrt_config_check(const et_lrt_config_t *cfg);

/*
 * Bytes of one layer's state: ET_LRT_STATE_HEADER + 2 * rank * (n + m)
 * + ceil(n b / 8) + ceil(m b / 8), b = 2 at rank >= 3, 1 at rank 2, 0 at rank 1.
 * n, m: 1..65535; rank: 1..8. ET_ERR_ARG otherwise.
 */
et_status_t et_lrt_state_get_size(uint32_t n, uint32_t m, uint32_t rank, size_t *bytes);

/*
 * Lay out an empty state (c = 0, zero bases, counters 0) in mem (4-byte
 * aligned, size bytes) for an n x m layer of the given kind at cfg->rank and
 * return it in *state. ET_ERR_NOMEM when size < et_lrt_state_get_size(), with
 * nothing written; ET_ERR_ARG for NULL, misalignment, bad shape/kind/config.
 */
et_status_t et_lrt_state_init(void *mem, size_t size, uint32_t n, uint32_t m, int kind,
                              const et_lrt_config_t *cfg, et_lrt_state_t **state);

/* The bases of a state (pointers into its buffer). ET_ERR_ARG for NULL or a bad state. */
et_status_t et_lrt_bases(et_lrt_state_t *state, int16_t **ql, int16_t **qr);

/* Forget the accumulated gradient: zero bases, c, B_eff and counters. */
et_status_t et_lrt_reset(et_lrt_state_t *state);

/*
 * Bytes of the scratch shared by every layer's accumulate:
 * 4 * (2 (n_max + m_max) + 2 q^2 + 3 q r), q = r + 1 (the residuals, each basis'
 * column 1 as int32, the small matrices). Ranges as et_lrt_state_get_size.
 */
et_status_t et_lrt_accumulate_get_buffer_size(uint32_t n_max, uint32_t m_max, uint32_t rank, size_t *bytes);

/*
 * Add the rank-1 term delta x^T to the estimate.
 *   delta: n int8 values worth delta[i] * 2^delta_exp (the layer's gradient,
 *          alpha included: e.g. delta_exp = -7 - alpha_shift);
 *   x:     m values worth x[j] * 2^x_exp: int8 (_s8, e.g. batch-norm output,
 *          2^-6) or uint8 (_u8, activations 2^-7, network input 2^-8);
 *   delta_exp, x_exp: -128..127;
 *   scratch: 4-byte aligned, scratch_size >= et_lrt_accumulate_get_buffer_size(n, m, r);
 *   prng: the seeded generator; one u32 is drawn per term that mixes
 *         (unbiased mode, sigma_{r+1} > 0). May be NULL in biased mode.
 * A zero delta or x leaves the estimate unchanged (counted in terms); a term
 * failing the kappa rule is discarded (counted in skipped). With
 * cfg->reorth_terms = K > 0, a term that leaves terms a multiple of K is
 * followed by et_lrt_reorthonormalize in the same scratch (skipped, with the
 * bases as they are, if it refuses them: never for bases built this way).
 * ET_ERR_ARG for NULL pointers, a bad state, a config whose rank differs from
 * the state's, an exponent out of range; ET_ERR_NOMEM for a short scratch;
 * ET_ERR_RANGE if a new exponent would leave int16. On error nothing is
 * written (state, prng; the scratch is scratch).
 */
et_status_t et_lrt_accumulate_s8(et_lrt_state_t *state, const et_lrt_config_t *cfg, const int8_t *delta,
                                 int delta_exp, const int8_t *x, int x_exp, void *scratch, size_t scratch_size,
                                 et_prng_t *prng);
et_status_t et_lrt_accumulate_u8(et_lrt_state_t *state, const et_lrt_config_t *cfg, const int8_t *delta,
                                 int delta_exp, const uint8_t *x, int x_exp, void *scratch, size_t scratch_size,
                                 et_prng_t *prng);

/*
 * Bytes of the scratch of et_lrt_accumulate_batch_* for batches of up to count_max terms:
 * et_lrt_accumulate_get_buffer_size(n_max, m_max, rank) plus the batch's int16 columns,
 * 2 count_max (n_max + m_max) rounded up to 4, plus 8 (rank + count_max) rank.
 * count_max: 1..ET_LRT_BATCH_MAX; other ranges as et_lrt_state_get_size. ET_ERR_ARG otherwise.
 */
et_status_t et_lrt_accumulate_batch_get_buffer_size(uint32_t n_max, uint32_t m_max, uint32_t rank, uint32_t count_max,
                                                    size_t *bytes);

/*
 * Add count terms deltas[t] xs[t]^T (t = 0..count-1) as et_lrt_accumulate_* would one after the other
 * (the same projections, kappa rule, core, truncation and PRNG draws per term), except that the bases
 * are rounded to int16 once, after the last term, instead of after every term. Within the batch the
 * current bases are held as coordinates in a frame: the bases the batch started from plus one int16
 * column per accepted term (its residual direction); docs/lrt.md ("Batches of terms"). On a long
 * low-rank stream this keeps the error within 1.1x of the float64 algorithm's at 16 terms per batch,
 * against 2.5-2.7x per term. Meant for a conv layer's output pixels of one sample.
 *   deltas: count x n int8 (row t at deltas + t n), worth deltas[t][i] * 2^delta_exps[t];
 *   xs:     count x m (row t at xs + t m), worth xs[t][j] * 2^x_exps[t];
 *   count:  1..ET_LRT_BATCH_MAX; exponents -128..127;
 *   scratch: 4-byte aligned, scratch_size >= et_lrt_accumulate_batch_get_buffer_size(n, m, r, count);
 *   prng: as et_lrt_accumulate_*.
 * Counters (terms, skipped) count per term as et_lrt_accumulate_*; with cfg->reorth_terms = K > 0, a
 * batch after which terms has passed a multiple of K is followed by et_lrt_reorthonormalize.
 * Errors as et_lrt_accumulate_*; on error nothing is written (state, prng).
 */
et_status_t et_lrt_accumulate_batch_s8(et_lrt_state_t *state, const et_lrt_config_t *cfg, uint32_t count,
                                       const int8_t *deltas, const int32_t *delta_exps, const int8_t *xs,
                                       const int32_t *x_exps, void *scratch, size_t scratch_size, et_prng_t *prng);
et_status_t et_lrt_accumulate_batch_u8(et_lrt_state_t *state, const et_lrt_config_t *cfg, uint32_t count,
                                       const int8_t *deltas, const int32_t *delta_exps, const uint8_t *xs,
                                       const int32_t *x_exps, void *scratch, size_t scratch_size, et_prng_t *prng);

/*
 * Re-orthonormalise both bases without changing the estimate beyond rounding.
 * Each term rounds every basis entry to int16, so after thousands of terms
 * without a reset the columns drift from orthonormal (docs/lrt.md). This
 * rewrites Q_L diag(c) Q_R^T as Q'_L diag(c') Q'_R^T with Q = Q' R (Cholesky of
 * the Gram matrix of the columns with c_k > 0), the SVD of R_L diag(c) R_R^T
 * and one rotation per basis, all in integers. Cost: about 2.5 r^2 (n + m)
 * multiply-adds, less than one term's; every 100 terms keeps the drift below
 * 2e-3 on long low-rank streams (more often costs accuracy, docs/lrt.md). Columns with c_k = 0 become zero; counters, B_eff and the PRNG are
 * untouched; an empty state is left as it is.
 *   scratch: as et_lrt_accumulate_* (4-byte aligned, at least
 *            et_lrt_accumulate_get_buffer_size(n, m, r) bytes).
 * ET_ERR_ARG for NULL or a bad state; ET_ERR_NOMEM for a short scratch;
 * ET_ERR_RANGE when some entry of Q^T Q is more than 1/(4p) from the
 * identity (p live columns; not a basis this core built) or an exponent
 * would leave its range. On error nothing is written.
 */
et_status_t et_lrt_reorthonormalize(et_lrt_state_t *state, void *scratch, size_t scratch_size);

/* Reset both trackers (et_maxnorm_init). ET_ERR_ARG for NULL. */
et_status_t et_lrt_norms_init(et_lrt_norms_t *norms);

/*
 * One flush attempt (lrt-paper-spec §2.3), every B samples of the layer:
 * B_eff += B (B = cfg->batch_conv or batch_dense by the state's kind);
 * with max-norm, both trackers see max|L| and max|R|; eta = eta0 sqrt(B_eff);
 * the update dW = round(eta L^ R^T / 2^-7) (int8, saturated) is counted and
 * flush->apply says whether its density exceeds rho_min. The state is
 * otherwise unchanged: without apply, keep accumulating. O(n m r).
 * norms may be NULL with max-norm off. ET_ERR_ARG for NULL pointers, a bad
 * state or config (nothing written).
 */
et_status_t et_lrt_flush_begin(et_lrt_state_t *state, const et_lrt_config_t *cfg, et_lrt_norms_t *norms,
                               et_lrt_flush_t *flush);

/*
 * Row `row` (0..n-1) of dW into out (m int8 values on the weight grid,
 * LSB 2^-7); the caller applies W[row] = sat8(W[row] - out). *nonzero (may be
 * NULL) receives the row's non-zero count. O(m r). ET_ERR_STATE when the
 * state changed since et_lrt_flush_begin; ET_ERR_ARG for NULL or a bad row.
 */
et_status_t et_lrt_delta_row(const et_lrt_state_t *state, const et_lrt_flush_t *flush, uint32_t row, int8_t *out,
                             uint32_t *nonzero);

/*
 * The core SVD (exposed for tests): c = U diag(sigma) V^T for a q x q
 * row-major matrix, q = 2..9, |c[i]| <= 2^25 (ET_LRT_CORE_MAX). One-sided
 * Jacobi, at most ET_LRT_JACOBI_SWEEPS cyclic sweeps, then U by normalising
 * and Gram-Schmidt. sigma: q values, descending; u, v: q x q row-major, Q30,
 * column k is the k-th singular vector, zero where sigma_k = 0. u may alias c.
 * ET_ERR_ARG for NULL pointers, q or entries out of range (nothing written).
 */
et_status_t et_lrt_svd(const int32_t *c, int q, uint32_t *sigma, int32_t *u, int32_t *v);

/*
 * Truncation to rank r (exposed for tests): from q = r + 1 singular values
 * (descending, sum < 2^32) the r new values c_out and the q x r row-major
 * matrix t_out (Q30, orthonormal columns) with new bases [Q u] U T, [Q w] V T.
 * Biased, or sigma_q = 0: T = first r columns of I, c = sigma_1..r. Unbiased:
 * OK with p = min{i : (q-i) sigma_i <= sum_{j>=i} sigma_j}, k = q - p,
 * s1 = sum_{j>=p} sigma_j, c = (sigma_1..sigma_{p-1}, s1/k x k), X from the
 * Householder reflector mapping e1 to x0 (x0_t = sqrt(1 - k sigma_{p-1+t}/s1))
 * with row t of the mixed block negated where bit t of sign_bits is set.
 * *p_out = p (1-based; q when nothing is mixed). rank: 1..8.
 * ET_ERR_ARG for NULL pointers or inputs out of range (nothing written).
 */
et_status_t et_lrt_truncate(const uint32_t *sigma, int rank, int unbiased, uint32_t sign_bits, uint32_t *c_out,
                            int32_t *t_out, int *p_out);

#endif /* EDGETRAIN_ET_LRT_H */
