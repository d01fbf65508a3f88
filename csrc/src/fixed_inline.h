/*
 * edgetrain — the rounding rule, the saturation rule and the rounded division
 * as static inline functions, private to csrc/src. This is their one
 * definition: fixed.c exports them as et_round_shift_s64 / et_saturate_s64 /
 * et_div_round_s64 (et_fixed.h documents the contract), and hot loops of the
 * core (lrt.c) call them inline.
 */
#ifndef EDGETRAIN_FIXED_INLINE_H
#define EDGETRAIN_FIXED_INLINE_H

#include <stdint.h>

/*
 * The rounding rule for 1 <= shift <= 63, without a branch: the floor quotient
 * plus one when the remainder r (in [0, 2^shift)) exceeds half, or equals it
 * for x >= 0. r + half - (x < 0) lies in [0, 2^shift + half) and reaches
 * 2^shift exactly in those cases; no overflow anywhere.
 */
static inline int64_t et_round_shift_pos_inline(int64_t x, int shift)
{
    uint64_t r = (uint64_t)x & ((UINT64_C(1) << shift) - 1u);
    uint64_t half = UINT64_C(1) << (shift - 1);
    return (x >> shift) + (int64_t)((r + half - (uint64_t)(x < 0)) >> shift);
}

static inline int64_t et_round_shift_s64_inline(int64_t x, int shift)
{
    if (shift <= 0) {
        /* Exact multiplication by 2^-shift, saturated. */
        int k = shift < -64 ? 64 : -shift;
        if (x == 0 || k == 0) {
            return x;
        }
        if (k >= 63) {
            /* Only x == -1 with k == 63 fits: -2^63. */
            return (k == 63 && x == -1) ? INT64_MIN : (x > 0 ? INT64_MAX : INT64_MIN);
        }
        if (x > (INT64_MAX >> k)) {
            return INT64_MAX;
        }
        if (x < (INT64_MIN >> k)) {
            return INT64_MIN;
        }
        return (int64_t)((uint64_t)x << k);
    }
    if (shift >= 64) {
        /* |x| * 2^-64 <= 1/2: only INT64_MIN reaches the tie at -1/2 (and only at 64). */
        return (shift == 64 && x == INT64_MIN) ? -1 : 0;
    }
    return et_round_shift_pos_inline(x, shift);
}

static inline int64_t et_saturate_s64_inline(int64_t x, int64_t lo, int64_t hi)
{
    if (lo > hi) {
        return lo;
    }
    if (x < lo) {
        return lo;
    }
    if (x > hi) {
        return hi;
    }
    return x;
}

/*
 * num / den rounded half away from zero, for den != 0 and not INT64_MIN / -1 (et_div_round_s64
 * checks those): the truncated quotient, moved one away from zero when |r| / |den| >= 1/2
 * (compared without overflow; r has num's sign).
 */
static inline int64_t et_div_round_s64_inline(int64_t num, int64_t den)
{
    int64_t q = num / den;
    int64_t r = num % den;
    uint64_t abs_r = r < 0 ? (uint64_t)0 - (uint64_t)r : (uint64_t)r;
    uint64_t abs_den = den < 0 ? (uint64_t)0 - (uint64_t)den : (uint64_t)den;
    if (abs_r >= abs_den - abs_r) {
        q += ((num < 0) == (den < 0)) ? 1 : -1;
    }
    return q;
}

/* One xorshift32 step of et_prng_next_u32 (state != 0): the next state, which is also the draw. */
static inline uint32_t et_xorshift32_inline(uint32_t s)
{
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
}

#endif /* EDGETRAIN_FIXED_INLINE_H */
