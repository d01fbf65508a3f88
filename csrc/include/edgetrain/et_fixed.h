/*
 * edgetrain — the numeric contract (docs/numerics.md is the prose version).
 *
 * Integer only. Every scale is a power of two, so every rescale is a shift.
 * One rounding rule (round half away from zero) and one saturation rule
 * (clamp to the target format's range) are used by every rescale in the core.
 *
 * Calling convention: pure functions of values are total (defined for every
 * input, as documented) and return their result; functions that take
 * pointers check them and return an et_status_t.
 *
 * The NumPy twin edgetrain/reference/fixed.py implements each function
 * under the same name without the et_ prefix.
 */
#ifndef EDGETRAIN_ET_FIXED_H
#define EDGETRAIN_ET_FIXED_H

#include <stdint.h>
#include <stddef.h>

#include "et_status.h"

/* ---- number formats ---------------------------------------------------- */

/* The format table. A stored integer q in format F means q * 2^F.lsb_exp. */
typedef enum {
    ET_FMT_WEIGHT = 0, /* int8,  LSB 2^-7,  [-1, 1)   weights in NVM and weight updates */
    ET_FMT_BIAS = 1,   /* int16, LSB 2^-12, [-8, 8)   biases, BN gamma/beta/mean, pre-activations */
    ET_FMT_ACT = 2,    /* uint8, LSB 2^-7,  [0, 2)    activations after ReLU */
    ET_FMT_INPUT = 3,  /* uint8, LSB 2^-8,  [0, 1)    network input */
    ET_FMT_GRAD = 4,   /* int8,  LSB 2^-7,  [-1, 1)   back-propagated gradients */
    ET_FMT_BN_OUT = 5, /* int8,  LSB 2^-6,  [-2, 2)   streaming batch-norm output */
    ET_FMT_BN_SQ = 6,  /* int16, LSB 2^-9,  [-64, 64) streaming batch-norm running mean square */
    ET_FMT_ACC32 = 7,  /* int32, scale = product of the operands' scales */
    ET_FMT_ACC64 = 8,  /* int64, scale = product of the operands' scales */
    ET_FMT_COUNT = 9
} et_format_id_t;

typedef struct {
    uint8_t bits;      /* storage width in bits: 8, 16, 32 or 64 */
    uint8_t is_signed; /* 1 for two's complement, 0 for unsigned */
    int8_t lsb_exp;    /* value of one LSB is 2^lsb_exp; 0 for accumulators */
    int64_t qmin;      /* smallest stored integer */
    int64_t qmax;      /* largest stored integer */
} et_format_t;

/* Copy the table row of format `id` into *out. ET_ERR_ARG for an unknown id or NULL. */
et_status_t et_format_get(int id, et_format_t *out);

/* ---- the rounding rule and the saturation rule -------------------------- */

/*
 * x * 2^-shift rounded to the nearest integer, ties away from zero, then
 * saturated to the int64 range. shift > 0 divides (rounding), shift <= 0
 * multiplies (exact unless it saturates). Exact for every int64 x and every
 * int shift, including |shift| >= 64.
 */
int64_t et_round_shift_s64(int64_t x, int shift);

/* x clamped to [lo, hi]. Requires lo <= hi; if not, returns lo. */
int64_t et_saturate_s64(int64_t x, int64_t lo, int64_t hi);

/*
 * Rescale an accumulator into a stored format: saturate(round_shift(x, shift))
 * to the range of format `fmt`. ET_ERR_ARG for an unknown format or NULL out.
 */
et_status_t et_requantize(int64_t x, int shift, int fmt, int64_t *out);

/* ---- integer helpers ------------------------------------------------------ */

/* floor(sqrt(x)), exact. */
uint32_t et_isqrt_u32(uint32_t x);
uint32_t et_isqrt_u64(uint64_t x);

/*
 * num / den with C semantics: truncation toward zero.
 * ET_ERR_ARG when den == 0 or quot is NULL; ET_ERR_RANGE for INT64_MIN / -1.
 */
et_status_t et_div_trunc_s64(int64_t num, int64_t den, int64_t *quot);

/*
 * num / den rounded to the nearest integer, ties away from zero (the rounding
 * rule applied to division). Errors as et_div_trunc_s64.
 */
et_status_t et_div_round_s64(int64_t num, int64_t den, int64_t *quot);

/* Number of leading zero bits; 32 (64) for x == 0. */
int et_clz_u32(uint32_t x);
int et_clz_u64(uint64_t x);

/*
 * The normalising shift: the s for which (mag >> s), or (mag << -s) when s is
 * negative, lies in [2^(bits-1), 2^bits). Returns 0 for mag == 0. bits is
 * clamped to [1, 63].
 */
int et_norm_shift_u64(uint64_t mag, int bits);

/* ---- seeded integer PRNG (xorshift32: 13, 17, 5) ------------------------- */

/* The whole generator state; owned by the caller, part of any training state. */
typedef struct {
    uint32_t state; /* never 0 */
} et_prng_t;

/*
 * Seed the generator. Every 32-bit seed is valid: the seed is mixed
 * (murmur3 finaliser) so that nearby seeds give unrelated streams; a mixed
 * value of 0 is replaced by 0x9E3779B9. ET_ERR_ARG for NULL.
 */
et_status_t et_prng_seed(et_prng_t *prng, uint32_t seed);

/* Advance and return the next 32-bit value in *out. ET_ERR_ARG for NULL. */
et_status_t et_prng_next_u32(et_prng_t *prng, uint32_t *out);

/* ---- block floating point: int16 mantissas sharing one exponent ---------- */

/* Largest vector length: keeps every dot product exact in int64. */
#define ET_BFP16_MAX_LEN 65535

/*
 * value[i] = mant[i] * 2^exp. The mantissa storage is owned by the caller.
 * Exponent arguments of the functions below must lie in [-32768, 32767].
 */
typedef struct {
    int16_t *mant;
    uint16_t len;
    int16_t exp;
} et_bfp16_t;

/*
 * Normalise src (value src[i] * 2^src_exp, dst->len entries) into dst so that
 * the largest magnitude uses the full int16 range: max |mant| in [2^14, 2^15)
 * before rounding; rounding follows the rounding rule, and a mantissa that
 * rounds to 2^15 saturates to 32767. An all-zero src gives zero mantissas and
 * exp 0. ET_ERR_ARG for NULL pointers, len 0 or src_exp out of range;
 * ET_ERR_RANGE when the result
 * exponent leaves [-32768, 32767] (dst untouched).
 */
et_status_t et_bfp16_normalize_s32(et_bfp16_t *dst, const int32_t *src, int src_exp);
et_status_t et_bfp16_normalize_s64(et_bfp16_t *dst, const int64_t *src, int src_exp);

/* Normalise v in place after arithmetic on its mantissas (same rule as above). */
et_status_t et_bfp16_renormalize(et_bfp16_t *v);

/*
 * Exact dot products: *acc * 2^*exp == sum a[i]*b[i]. Lengths must match.
 * ET_ERR_ARG for NULL pointers, a length mismatch or x_exp out of range.
 */
et_status_t et_bfp16_dot(const et_bfp16_t *a, const et_bfp16_t *b, int64_t *acc, int *exp);
et_status_t et_bfp16_dot_s32(const et_bfp16_t *a, const int32_t *x, int x_exp, int64_t *acc, int *exp);

/*
 * y += alpha * x into a wider accumulator with a fixed exponent:
 * y[i] = saturate(y[i] + round_shift(alpha * x.mant[i], y_exp - alpha_exp - x.exp)),
 * where y[i] is worth y[i] * 2^y_exp and alpha is worth alpha * 2^alpha_exp.
 * Saturates to the accumulator's range. ET_ERR_ARG for NULL pointers or an
 * exponent out of range.
 */
et_status_t et_bfp16_axpy_s32(int32_t *y, int y_exp, int32_t alpha, int alpha_exp, const et_bfp16_t *x);
et_status_t et_bfp16_axpy_s64(int64_t *y, int y_exp, int32_t alpha, int alpha_exp, const et_bfp16_t *x);

#endif /* EDGETRAIN_ET_FIXED_H */
