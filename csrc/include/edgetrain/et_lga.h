/*
 * edgetrain — low-rank gradient approximation (docs/lga.md): a weight layer
 * W (n x m, int8 in NVM, frozen between merges) gets trainable factors
 * A (n x r) and B (r x m) in SRAM; the layer computes z = W x + A (B x).
 * The optimizer (max-normed SGD, max-normed momentum or Adam) keeps its
 * state on A and B only: r (n + m) numbers per state. Every K samples A B
 * is merged into W (quantised to the weight format, saturated) and the
 * factors restart.
 *
 * Formats (docs/lga.md, "Number formats"):
 *  - A, B: int16, LSB 2^-15 ([-1, 1)).
 *  - u = B x: int16, LSB 2^-10 ([-32, 32)); the correction A u is rescaled
 *    into the pre-activation format ET_FMT_BIAS (LSB 2^-12).
 *  - factor gradients: int64 sums, brought to int32 with LSB 2^-24 before
 *    the optimizer (saturated: |g| < 128).
 *  - first moment (momentum, Adam): int32, LSB 2^-24; second moment (Adam):
 *    uint64, LSB 2^-48 (g^2 exactly).
 *
 * Memory: a state is one 64-byte header followed by its arrays, each padded
 * to 8 bytes (et_lga_state_get_size). No pointers are stored, so a state
 * can be copied or saved as bytes.
 *
 * Twin: edgetrain/reference/lga.py (et_lga_<op> is lga.<op>).
 */
#ifndef EDGETRAIN_ET_LGA_H
#define EDGETRAIN_ET_LGA_H

#include <stdint.h>

#include "et_status.h"
#include "et_fixed.h"
#include "et_maxnorm.h"

#define ET_LGA_MAX_RANK 8
#define ET_LGA_FACTOR_EXP (-15) /* LSB of A and B */
#define ET_LGA_U_EXP (-10)      /* LSB of u = B x */
#define ET_LGA_G_EXP (-24)      /* LSB of a factor gradient and of the first moment */
#define ET_LGA_HEADER_BYTES 64  /* et_lga_state_t */
#define ET_LGA_BETA_MAX 1072693248 /* 2^30 - 2^20: beta <= 0.99902 keeps 1 - beta^t >= 2^-10 */
#define ET_LGA_LR_EXP_MIN (-46)
#define ET_LGA_LR_EXP_MAX (-26)

typedef enum {
    ET_LGA_SGD = 0,      /* theta -= lr * g / maxnorm(g) */
    ET_LGA_MOMENTUM = 1, /* mu = b1 mu + (1 - b1) g; theta -= lr * mu / maxnorm(mu) */
    ET_LGA_ADAM = 2      /* theta -= lr_t * mu / (sqrt(nu) + eps), lr_t = lr sqrt(1 - b2^t) / (1 - b1^t) */
} et_lga_optimizer_t;

typedef enum {
    ET_LGA_RESTART_ZERO_A = 0, /* after a merge: A = 0, B kept, optimizer states and t reset */
    ET_LGA_RESTART_REDRAW_B = 1 /* after a merge: A = 0, B drawn anew from the PRNG, states and t reset */
} et_lga_restart_t;

typedef struct {
    uint8_t optimizer;    /* et_lga_optimizer_t */
    uint8_t rank;         /* r: 1..ET_LGA_MAX_RANK */
    uint8_t restart;      /* et_lga_restart_t */
    uint8_t reserved;     /* 0 */
    uint32_t merge_every; /* K: samples of the layer between merges, 1..65535 */
    uint32_t lr;          /* learning rate lr * 2^lr_exp: 1..2^31-1 */
    int32_t lr_exp;       /* ET_LGA_LR_EXP_MIN..ET_LGA_LR_EXP_MAX */
    uint32_t beta1_q30;   /* first-moment decay (momentum, Adam) in Q30: 0..ET_LGA_BETA_MAX */
    uint32_t beta2_q30;   /* second-moment decay (Adam) in Q30: 0..ET_LGA_BETA_MAX */
    uint32_t eps;         /* Adam's epsilon in the gradient LSB 2^-24: 1..65535 */
} et_lga_config_t;

/* The state's 64-byte header; A [n][r], B [r][m] and the optimizer states follow it in memory. */
typedef struct {
    uint16_t n;          /* rows of W (outputs) */
    uint16_t m;          /* columns of W (k*k*in_c for conv) */
    uint8_t rank;        /* r */
    uint8_t optimizer;   /* et_lga_optimizer_t: which states follow */
    uint16_t reserved;
    uint32_t steps;      /* optimizer steps since the last restart (Adam's t) */
    uint32_t samples;    /* samples since the last merge */
    uint32_t beta1_pow;  /* beta1^t in Q30 (repeated multiplication, rounding rule) */
    uint32_t beta2_pow;  /* beta2^t in Q30 */
    uint32_t merges;     /* merges so far (saturating) */
    uint32_t reserved2;
    et_maxnorm_t norm_a; /* SGD, momentum: the tracker of A's update direction */
    et_maxnorm_t norm_b; /* and of B's */
} et_lga_state_t;

/* Defaults: Adam, rank 4, restart REDRAW_B, K = 100, lr 0.003 (1610613 * 2^-29), beta1 0.9, beta2 0.999,
 * eps 2^-20 (16). ET_ERR_ARG for NULL. */
et_status_t et_lga_config_default(et_lga_config_t *config);

/* ET_OK when every field is in range (see the struct), else ET_ERR_ARG. */
et_status_t et_lga_config_check(const et_lga_config_t *config);

/* Bytes of a state for an n x m layer at rank r under optimizer: 64 + 8-padded A, B, then
 * (momentum, Adam) int32 first moments of A and B, then (Adam) uint64 second moments.
 * ET_ERR_ARG for n or m of 0, rank outside 1..8, an unknown optimizer or NULL. */
et_status_t et_lga_state_get_size(uint16_t n, uint16_t m, uint8_t rank, uint8_t optimizer, uint32_t *bytes);

/*
 * Lay out a state in mem (8-byte aligned, at least et_lga_state_get_size
 * bytes) for an n x m layer under config (its rank and optimizer): A = 0,
 * B drawn from prng (et_lga_restart describes the draw), states zero.
 * ET_ERR_ARG for NULL, misalignment, a bad config or size, ET_ERR_NOMEM for
 * too few bytes; nothing written on error.
 */
et_status_t et_lga_state_init(void *mem, uint32_t bytes, uint16_t n, uint16_t m, const et_lga_config_t *config,
                              et_prng_t *prng, et_lga_state_t **state);

/*
 * u = B x: u[k] = saturate16(round_shift(sum_j B[k][j] x[j], 5 - x_exp)),
 * the sum (LSB 2^(-15 + x_exp)) in int16 at LSB 2^-10. x: m stored integers
 * worth x[j] * 2^x_exp, x_exp in -16..0. ET_ERR_ARG for NULL or x_exp out
 * of range.
 */
et_status_t et_lga_project(const et_lga_state_t *state, const int16_t *x, int32_t x_exp, int16_t *u);

/* z[o] = saturate16(z[o] + round_shift(sum_k A[o][k] u[k], 13)): the correction A u (LSB 2^-25) in
 * the pre-activation format (LSB 2^-12). ET_ERR_ARG for NULL. */
et_status_t et_lga_correct(const et_lga_state_t *state, const int16_t *u, int16_t *z);

/* Bytes of the gradient scratch of an n x m layer at rank r: int64 gA [n][r], gB [r][m], v [r] and
 * int16 u [r], each 8-padded. ET_ERR_ARG as et_lga_state_get_size. */
et_status_t et_lga_grad_get_buffer_size(uint16_t n, uint16_t m, uint8_t rank, uint32_t *bytes);

/* Zero the gradient sums in scratch. ET_ERR_ARG for NULL, ET_ERR_NOMEM for a short scratch. */
et_status_t et_lga_grad_zero(const et_lga_state_t *state, void *scratch, uint32_t scratch_bytes);

/*
 * Add one rank-1 term of the layer's gradient at z (delta: n int8 at LSB
 * 2^-7, the gradient at the pre-activation; x: m stored integers at 2^x_exp,
 * the same x_exp for every term until et_lga_step): u = B x (as
 * et_lga_project), gA += delta u^T (LSB 2^-17), v = A^T delta (LSB 2^-22),
 * gB += v x^T (LSB 2^(-22 + x_exp)). Never forms n x m. The sums are exact
 * in int64: |gB| < 2^30 n T |x|max over T terms, below 2^63 for 8-bit inputs
 * whenever n T < 2^33 (every model within et_model.h's limits) and for int16
 * inputs whenever n T < 2^26.
 */
et_status_t et_lga_grad_add(const et_lga_state_t *state, void *scratch, uint32_t scratch_bytes, const int8_t *delta,
                            const int16_t *x, int32_t x_exp);

/*
 * One optimizer step on A and B from the summed gradients in scratch
 * (x_exp as given to et_lga_grad_add): each sum is rescaled to int32 at LSB
 * 2^-24 (rounding rule, saturated), then the update of config->optimizer is
 * applied (docs/lga.md gives every rounding) and steps += 1. An all-zero
 * gradient of a factor still takes the step (moments decay). config must
 * match the state's rank and optimizer. ET_ERR_ARG for NULL or a mismatch.
 */
et_status_t et_lga_step(et_lga_state_t *state, const et_lga_config_t *config, void *scratch, uint32_t scratch_bytes,
                        int32_t x_exp);

/*
 * Row o of the merged weights: out[j] = saturate8(w[j] + round_shift(sum_k
 * A[o][k] B[k][j], 23 - alpha_shift)), the product (LSB 2^-30) in the
 * layer's weight LSB 2^-(7 + alpha_shift). out may equal w. *changed (may be
 * NULL) = 1 when a byte differs. ET_ERR_ARG for NULL, o >= n, alpha_shift
 * outside 0..15.
 */
et_status_t et_lga_merge_row(const et_lga_state_t *state, uint16_t o, int32_t alpha_shift, const int8_t *w,
                             int8_t *out, uint8_t *changed);

/*
 * Restart the factors after a merge: A = 0, the optimizer states, t and the
 * bias-correction powers reset, samples = 0, merges += 1; with
 * ET_LGA_RESTART_REDRAW_B, B is drawn anew: B[k][j] = +s or -s by the top
 * bit of the next PRNG word (row-major), s = min(32767, div_round(2^15,
 * isqrt(m))), i.e. about 1/sqrt(m). ET_ERR_ARG for NULL or a config that
 * does not match the state.
 */
et_status_t et_lga_restart(et_lga_state_t *state, const et_lga_config_t *config, et_prng_t *prng);

/* Read views of A ([n][r]) and B ([r][m]) of a state. ET_ERR_ARG for NULL. */
et_status_t et_lga_factors(const et_lga_state_t *state, const int16_t **a, const int16_t **b);

#endif /* EDGETRAIN_ET_LGA_H */
