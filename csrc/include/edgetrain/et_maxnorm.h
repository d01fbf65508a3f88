/*
 * edgetrain — gradient max-norm (lrt-paper-spec §4), integer only.
 *
 * The paper replaces Adam (per-parameter state) by one scalar tracker per
 * tensor: k += 1; x_max = max|x| + eps; x_mv = beta*x_mv + (1-beta)*x_max;
 * x_tilde = x_mv / (1 - beta^k); the update uses x / max(x_max, x_tilde).
 * Magnitudes span many octaves, so the tracker works in et_ufloat_t, an
 * unsigned software float with a 31-bit mantissa. Constants (docs/numerics.md):
 * beta = 1072668082 / 2^30 (0.999 to 1e-9), eps = 2^-13 (the paper's 1e-4,
 * rounded to a power of two so that adding it is exact).
 *
 * Twin: edgetrain/reference/maxnorm.py.
 */
#ifndef EDGETRAIN_ET_MAXNORM_H
#define EDGETRAIN_ET_MAXNORM_H

#include <stdint.h>

#include "et_status.h"

#define ET_MAXNORM_BETA_Q30 1072668082
#define ET_MAXNORM_EPS_EXP (-13)

/*
 * value = mant * 2^exp. Normalised: mant in [2^30, 2^31), or mant = 0 and
 * exp = 0 for zero. Exponents stay within [-2^24, 2^24].
 */
typedef struct {
    uint32_t mant;
    int32_t exp;
} et_ufloat_t;

/*
 * v * 2^exp, rounded to a 31-bit mantissa by the rounding rule (a mantissa
 * that rounds up to 2^31 becomes 2^30 with exp + 1). Total: exp is clamped
 * to [-2^24, 2^24].
 */
et_ufloat_t et_ufloat_make(uint64_t v, int32_t exp);

/* a + b, rounded once. Total. */
et_ufloat_t et_ufloat_add(et_ufloat_t a, et_ufloat_t b);

/* -1, 0 or 1 as a <, ==, > b. Total (inputs must be normalised). */
int et_ufloat_cmp(et_ufloat_t a, et_ufloat_t b);

/* One tracker per tensor; lives in the training state. */
typedef struct {
    uint32_t count;      /* calls so far (k) */
    uint32_t beta_pow;   /* beta^k in Q30, by repeated multiplication with the rounding rule */
    et_ufloat_t moving;  /* x_mv; starts at eps */
} et_maxnorm_t;

/* Reset a tracker: count 0, beta^0 = 1, x_mv = eps. ET_ERR_ARG for NULL. */
et_status_t et_maxnorm_init(et_maxnorm_t *mn);

/*
 * Feed one tensor whose largest magnitude is max_abs * 2^exp (exp in
 * [-2^20, 2^20]) and return the divisor max(x_max, x_tilde) in *divisor.
 * ET_ERR_ARG for NULL pointers or exp out of range (tracker unchanged).
 */
et_status_t et_maxnorm_update(et_maxnorm_t *mn, uint64_t max_abs, int32_t exp, et_ufloat_t *divisor);

/*
 * The one rescale of a normalised update:
 *   *out = saturate(round(x * 2^x_exp * factor * 2^factor_exp / divisor / lsb(fmt)))
 * in format fmt (a format of at most 32 bits). x: |x| < 2^31; factor:
 * 0..2^31-1 (a learning rate in fixed point); divisor: non-zero.
 * ET_ERR_ARG otherwise (nothing written).
 */
et_status_t et_maxnorm_scale(int64_t x, int32_t x_exp, uint32_t factor, int32_t factor_exp,
                             et_ufloat_t divisor, int fmt, int64_t *out);

/*
 * et_maxnorm_scale prepared for one (x_exp, factor, factor_exp, divisor, fmt)
 * and many x: et_maxnorm_scaler_apply gives exactly et_maxnorm_scale's status
 * and *out for every x, without a division for 1 <= |x| <= xmax. With
 * s = x_exp + factor_exp - divisor.exp - lsb_exp(fmt), the magnitude is
 * q = floor(y / den), den = 2 * divisor.mant and
 * y = ((|x| * factor << lshift) + bias) >> rshift (s >= 0: lshift = s + 1,
 * bias = mant, rshift = 0, computed as |x| * (factor << lshift) + bias; s < 0: lshift = 1, rshift = -s, bias = mant << -s),
 * which is round(|x| * factor * 2^s / mant) with ties away from zero. q comes
 * from the 33-bit reciprocal 2^32 + recip of den and one exact remainder
 * correction; |x| >= sat_from saturates (q >= 2^31). Arguments for which
 * this does not hold (fast = 0), and |x| > xmax, take et_maxnorm_scale itself.
 */
typedef struct {
    uint64_t bias;
    uint64_t mul;       /* s >= 0: factor << lshift, so that y = |x| * mul + bias */
    uint32_t factor;
    uint32_t den;
    uint32_t recip;
    uint32_t xmax;
    uint32_t sat_from;
    uint8_t lshift;
    uint8_t rshift;
    uint8_t fast;
    uint8_t wide;       /* qmin <= -(2^31 - 1) and qmax >= 2^31 - 1: no q < 2^31 saturates */
    int64_t qmin;
    int64_t qmax;
    int32_t x_exp;
    int32_t factor_exp;
    et_ufloat_t divisor;
    int fmt;
} et_maxnorm_scaler_t;

/*
 * Prepare *sc (xmax: the largest |x| the caller will pass; larger |x| still
 * give et_maxnorm_scale's answer, by et_maxnorm_scale). Arguments that
 * et_maxnorm_scale rejects are kept for it to reject at apply.
 * ET_ERR_ARG only for sc == NULL.
 */
et_status_t et_maxnorm_scaler_init(et_maxnorm_scaler_t *sc, int32_t x_exp, uint32_t factor, int32_t factor_exp,
                                   et_ufloat_t divisor, int fmt, uint64_t xmax);

/* et_maxnorm_scale(x, <sc's arguments>, out), exactly. ET_ERR_ARG for NULL pointers. */
et_status_t et_maxnorm_scaler_apply(const et_maxnorm_scaler_t *sc, int64_t x, int64_t *out);

#endif /* EDGETRAIN_ET_MAXNORM_H */
