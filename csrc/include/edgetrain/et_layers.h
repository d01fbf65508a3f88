/*
 * edgetrain — integer layer kernels: forward and backward of every layer kind
 * of et_model.h. docs/layers.md states every step exactly; the NumPy twin is
 * edgetrain/reference/layers.py (same names without the et_ prefix).
 *
 * Conventions shared by every function here:
 *  - `layer` describes the shapes and formats (et_model.h) and must pass
 *    et_layer_check(); the function checks it and its own kind.
 *  - Tensors are HWC (channels last). Conv weights are OHWI
 *    [out_c][k][k][in_c]; dense weights [n][m].
 *  - An activation tensor of format ET_FMT_INPUT or ET_FMT_ACT is uint8, of
 *    ET_FMT_BN_OUT int8, of ET_FMT_BIAS int16 (hence the `void *`).
 *  - Gradients are int8 in ET_FMT_GRAD (LSB 2^-7), except the gradient at a
 *    batch-norm output, which is int16 with LSB 2^-15 (ET_GRAD16_LSB_EXP):
 *    the paper quantizes gradients to 8 bits after BN backward, not before
 *    (docs/layers.md, "Where gradients are quantized").
 *  - Every rescale is et_round_shift_s64 (round half away from zero) followed
 *    by saturation to the target format.
 *  - Return ET_OK, or ET_ERR_ARG for a NULL pointer / wrong layer kind /
 *    out-of-range argument, or the et_layer_check status for a bad layer;
 *    nothing is written on error.
 */
#ifndef EDGETRAIN_ET_LAYERS_H
#define EDGETRAIN_ET_LAYERS_H

#include <stdint.h>

#include "et_status.h"
#include "et_model.h"

/* The wide gradient handed to batch norm: int16, LSB 2^-15, range [-1, 1). */
#define ET_GRAD16_LSB_EXP (-15)

/* ---- ReLU (fused into conv/dense as ET_ACT_RELU, also usable alone) ------ */

/*
 * a[i] = saturate(round_shift(z[i], 5), 0, 255): an ET_FMT_BIAS value
 * (LSB 2^-12) to ET_FMT_ACT (LSB 2^-7); one requantize does ReLU and the
 * [0, 2) clip. n: 1..2^32-1.
 */
et_status_t et_relu_forward(const int16_t *z, uint8_t *a, uint32_t n);

/*
 * Straight-through mask: dz[i] = da[i] where 0 < a[i] < 255 (the forward
 * value was neither clipped at 0 nor at 2), else 0. dz may equal da.
 */
et_status_t et_relu_backward(const uint8_t *a, const int8_t *da, int8_t *dz, uint32_t n);

/* ---- Conv2D (k x k, stride 1, VALID or SAME zero padding) ---------------- */

/*
 * acc = sum w * x (int32, at 2^(-7 + in_lsb)); t = requantize(acc,
 * alpha_shift - 5 - in_lsb, ET_FMT_BIAS) (the layer scale alpha included);
 * z = saturate(t + bias, int16); out = z (ET_ACT_NONE, int16) or
 * et_relu_forward(z) (ET_ACT_RELU, uint8).
 */
et_status_t et_conv2d_forward(const et_layer_t *layer, const int8_t *weights, const int16_t *bias, const void *in,
                              void *out);

/*
 * Gradient at the input: dx = requantize(sum_{o,ky,kx} w * dz, 7 + alpha_shift,
 * ET_FMT_GRAD), i.e. alpha * W^T dz as a transposed convolution. dz: the
 * gradient at z (after the ReLU mask), out.h*out.w*out.c values; dx:
 * in.h*in.w*in.c values.
 */
et_status_t et_conv2d_backward_input(const et_layer_t *layer, const int8_t *weights, const int8_t *dz, int8_t *dx);

/*
 * The same sum rescaled to the wide gradient that feeds a batch norm:
 * dx = saturate16(round_shift(sum, alpha_shift - 1)) (LSB 2^-15).
 */
et_status_t et_conv2d_backward_input_s16(const et_layer_t *layer, const int8_t *weights, const int8_t *dz,
                                         int16_t *dx);

/*
 * Weight gradient summed over the output pixels: dw[o][ky][kx][c] =
 * sum_t dz_t[o] * x_t[(ky*k + kx)*in_c + c], exact in int32 (the size limits
 * of et_model.h guarantee it). Worth dw * 2^(-7 + in_lsb); the optimizer's
 * alpha * dz adds -alpha_shift to that exponent.
 */
et_status_t et_conv2d_weight_grad(const et_layer_t *layer, const void *in, const int8_t *dz, int32_t *dw);

/* Bias gradient: db[o] = sum over output pixels of dz[t][o] (LSB 2^-7). */
et_status_t et_conv2d_bias_grad(const et_layer_t *layer, const int8_t *dz, int32_t *db);

/*
 * The im2col row of output pixel t (0..out.h*out.w-1, row-major): m =
 * k*k*in_c values in OHWI order [ky][kx][c], zero where SAME padding reaches
 * outside the input. Values are the stored integers of the input format.
 */
et_status_t et_conv2d_im2col_row(const et_layer_t *layer, const void *in, uint32_t t, int16_t *row);

/* ---- Dense ------------------------------------------------------------- */

/* As et_conv2d_forward with one pixel: acc[o] = sum_j w[o][j] * x[j]. */
et_status_t et_dense_forward(const et_layer_t *layer, const int8_t *weights, const int16_t *bias, const void *in,
                             void *out);

/* dx[j] = requantize(sum_o w[o][j] * dz[o], 7 + alpha_shift, ET_FMT_GRAD). */
et_status_t et_dense_backward_input(const et_layer_t *layer, const int8_t *weights, const int8_t *dz, int8_t *dx);

/* dx = saturate16(round_shift(sum_o w[o][j] * dz[o], alpha_shift - 1)) (LSB 2^-15), for a batch norm below. */
et_status_t et_dense_backward_input_s16(const et_layer_t *layer, const int8_t *weights, const int8_t *dz, int16_t *dx);

/* ---- MaxPool 2x2, stride 2 (on ET_FMT_ACT, uint8) ----------------------- */

/*
 * out[y][x][c] = max of in[2y+dy][2x+dx][c] over (dy, dx) in the order
 * (0,0), (0,1), (1,0), (1,1). An odd trailing row/column is dropped.
 */
et_status_t et_maxpool2_forward(const et_layer_t *layer, const uint8_t *in, uint8_t *out);

/*
 * din = 0 except at each window's first maximum (same order as the forward,
 * recomputed from the stored input), which receives dout.
 */
et_status_t et_maxpool2_backward(const et_layer_t *layer, const uint8_t *in, const int8_t *dout, int8_t *din);

/* ---- Flatten (HWC -> 1 x 1 x h*w*c, the same bytes) ---------------------- */

/* Copies the bytes (memmove; in == out allowed). */
et_status_t et_flatten_forward(const et_layer_t *layer, const void *in, void *out);
et_status_t et_flatten_backward(const et_layer_t *layer, const int8_t *dout, int8_t *din);

/* ---- Streaming batch norm (per channel; ET_FMT_ACT in, ET_FMT_BN_OUT out) -- */

/* eta = 1 - 1/ET_BN_WINDOW = 0.9: the EMA weight of the statistics. */
#define ET_BN_WINDOW 10
#define ET_BN_ONE_Q30 1073741824

/*
 * `params` is the layer's BN tensor, int16 [4][c]: gamma[c], beta[c] (LSB
 * 2^-12), mean EMA[c] (ET_FMT_BIAS) and mean-square EMA[c] (ET_FMT_BN_SQ).
 * `decay_q30` is eta^t in Q30 (2^30 for statistics that start from zero, 0
 * for statistics taken as they are).
 *
 * Update from one sample (N = h*w pixels per channel):
 *   mean = round(sum x * 2^5 / N) (LSB 2^-12), msq = round(sum x^2 / (2^5 N))
 *   (LSB 2^-9); ema = saturate(round((9 ema + new) / 10)) for both;
 *   decay = round(9 decay / 10).
 */
et_status_t et_batchnorm_update_stats(const et_layer_t *layer, const uint8_t *in, int16_t *params,
                                      uint32_t *decay_q30);

/*
 * The bias-corrected statistics in their stored formats, out [2][c]:
 * out[0][c] = mean_hat (ET_FMT_BIAS), out[1][c] = msq_hat (ET_FMT_BN_SQ),
 * each saturate16(round(ema * 2^30 / (2^30 - decay))), or the EMA itself
 * when decay = 2^30 (no sample seen yet). decay_q30: 0..2^30.
 */
et_status_t et_batchnorm_corrected_stats(const et_layer_t *layer, const int16_t *params, uint32_t decay_q30,
                                         int16_t *out);

/*
 * Per channel, from the corrected statistics (et_batchnorm_corrected_stats):
 * var = max(msq_hat * 2^15 - mean_hat^2, 1) (LSB 2^-24);
 * sigma = isqrt(var * 2^16) (LSB 2^-20); inv_sigma = round(2^36 / sigma)
 * (LSB 2^-16). mean_hat (LSB 2^-12) and inv_sigma: c values each.
 */
et_status_t et_batchnorm_prepare(const et_layer_t *layer, const int16_t *params, uint32_t decay_q30,
                                 int32_t *mean_hat, int32_t *inv_sigma);

/*
 * xhat = round_shift((x * 2^5 - mean_hat) * inv_sigma, 16) (LSB 2^-12);
 * out = requantize(gamma * xhat + beta * 2^12, 18, ET_FMT_BN_OUT).
 */
et_status_t et_batchnorm_forward(const et_layer_t *layer, const uint8_t *in, const int16_t *params,
                                 const int32_t *mean_hat, const int32_t *inv_sigma, int8_t *out);

/*
 * The statistics count as constants (the paper's streaming BN). dout: the
 * wide gradient at the output (int16, LSB 2^-15). With g = dout where
 * -128 < out < 127 (not saturated), else 0:
 *   din = requantize(g * gamma * inv_sigma, 36, ET_FMT_GRAD) (din may be NULL);
 *   dgamma[c] = sum g * xhat (LSB 2^-27); dbeta[c] = sum g (LSB 2^-15).
 */
et_status_t et_batchnorm_backward(const et_layer_t *layer, const uint8_t *in, const int8_t *out,
                                  const int16_t *params, const int32_t *mean_hat, const int32_t *inv_sigma,
                                  const int16_t *dout, int8_t *din, int64_t *dgamma, int64_t *dbeta);

/* ---- Softmax cross-entropy head ----------------------------------------- */

/* log2(e) in Q15, rounded. */
#define ET_LOG2E_Q15 47274

/*
 * 2^(u / 4096) in Q16 for u <= 0 (u > 0 counts as 0): u = 4096 q + f with
 * f in [0, 4096); 2^(f/4096) from a 33-entry Q16 table of 2^(j/32) with
 * linear interpolation (j = f >> 7, r = f & 127: T[j] +
 * round_shift((T[j+1] - T[j]) * r, 7)); then round_shift by -q. Total.
 * |result - 2^16 * 2^(u/4096)| <= 1e-4 * 2^16 * 2^(u/4096) + 1/2.
 */
uint32_t et_softmax_exp2_q16(int32_t u);

/* The index of the largest logit (the first one on ties). n = in.c. */
et_status_t et_softmax_ce_forward(const et_layer_t *layer, const int16_t *logits, uint16_t *predicted);

/*
 * Gradient of the cross-entropy at the logits, p - onehot(label), in
 * ET_FMT_GRAD: e[i] = et_softmax_exp2_q16(round_shift((z[i] - max z) *
 * ET_LOG2E_Q15, 15)); S = sum e; grad[i] = saturate8(round((128 e[i] -
 * [i == label] 128 S) / S)). label: 0..in.c-1.
 */
et_status_t et_softmax_ce_backward(const et_layer_t *layer, const int16_t *logits, uint16_t label, int8_t *grad);

#endif /* EDGETRAIN_ET_LAYERS_H */
