/*
 * edgetrain — et_maxnorm_scaler_apply as a static inline function, private to
 * csrc/src: maxnorm.c exports it, the per-cell SGD update (train.c) calls it
 * inline. The derivation is in et_maxnorm.h (et_maxnorm_scaler_t) and
 * docs/performance.md; tests/test_maxnorm_scaler.py checks it against
 * et_maxnorm_scale.
 */
#ifndef EDGETRAIN_MAXNORM_INLINE_H
#define EDGETRAIN_MAXNORM_INLINE_H

#include <stdint.h>

#include "edgetrain/et_maxnorm.h"
#include "fixed_inline.h"

/*
 * floor(y / den) for 1 <= a < sat_from, a <= xmax. There y < den * 2^31 < 2^63,
 * so yh = y >> 32 < 2^31, and with R = 2^32 + recip = floor((2^64 - 1) / den):
 * q0 = floor(yh * R / 2^32) <= yh * 2^32 / den <= y / den, and
 * y / den - q0 < 2^32 / den + yh / 2^32 * (1 + 1 / den) + 1 < 2 + 0.6 + 1,
 * so the remainder loop below adds at most 3. q0 * den < 2^63.
 */
static inline uint32_t et_maxnorm_scaler_quot_inline(const et_maxnorm_scaler_t *sc, uint32_t a)
{
    uint64_t y = sc->rshift == 0 ? (uint64_t)a * sc->mul + sc->bias
                                 : ((((uint64_t)a * sc->factor) << 1) + sc->bias) >> sc->rshift;
    uint32_t yh = (uint32_t)(y >> 32);
    uint32_t q = yh + (uint32_t)(((uint64_t)yh * sc->recip) >> 32);
    uint64_t rem = y - (uint64_t)q * sc->den;
    while (rem >= sc->den) {
        rem -= sc->den;
        q += 1;
    }
    return q;
}

/* The scaled value of x = -a (neg) or a, for sc->fast and a <= sc->xmax. */
static inline int64_t et_maxnorm_scaler_fast_inline(const et_maxnorm_scaler_t *sc, uint32_t a, int neg)
{
    int64_t q;
    if (a >= sc->sat_from) {
        return neg ? sc->qmin : sc->qmax; /* q >= 2^31: beyond any format of 32 bits */
    }
    q = (int64_t)et_maxnorm_scaler_quot_inline(sc, a);
    if (sc->wide) {
        return neg ? -q : q; /* |q| < 2^31 */
    }
    return et_saturate_s64_inline(neg ? -q : q, sc->qmin, sc->qmax);
}

/* et_maxnorm_scaler_apply without the NULL checks. */
static inline et_status_t et_maxnorm_scaler_apply_inline(const et_maxnorm_scaler_t *sc, int64_t x, int64_t *out)
{
    uint64_t a = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
    if (!sc->fast || a > sc->xmax) {
        return et_maxnorm_scale(x, sc->x_exp, sc->factor, sc->factor_exp, sc->divisor, sc->fmt, out);
    }
    *out = et_maxnorm_scaler_fast_inline(sc, (uint32_t)a, x < 0);
    return ET_OK;
}

#endif /* EDGETRAIN_MAXNORM_INLINE_H */
