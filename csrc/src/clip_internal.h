/*
 * edgetrain — kernels that also count saturation (clip) events, private to
 * csrc/src. Each is the public kernel of the same name without the _n suffix
 * (et_layers.h, et_lga.h) with the same arithmetic and checks, plus count
 * pointers: *count += the number of stored values whose rounded value lay
 * outside the format's [qmin, qmax] and were clamped (docs/numerics.md,
 * "Saturation counters"). The pointers must not be NULL; the additions are
 * plain (a call stores fewer than 2^32 values), the caller saturates when it
 * folds them into the context's counters. The public kernels call these with
 * a local counter they drop.
 */
#ifndef EDGETRAIN_CLIP_INTERNAL_H
#define EDGETRAIN_CLIP_INTERNAL_H

#include "edgetrain/et_layers.h"
#include "edgetrain/et_lga.h"

/* pre: int16 pre-activation (rescale or bias add clamped); act: ReLU output above 255. */
et_status_t et_conv2d_forward_n(const et_layer_t *layer, const int8_t *weights, const int16_t *bias, const void *in,
                                void *out, uint32_t *pre, uint32_t *act);
et_status_t et_dense_forward_n(const et_layer_t *layer, const int8_t *weights, const int16_t *bias, const void *in,
                               void *out, uint32_t *pre, uint32_t *act);
/* act: values above 255 (a negative z is the ReLU itself, not a clip). */
et_status_t et_relu_forward_n(const int16_t *z, uint8_t *a, uint32_t n, uint32_t *act);
/* wide = 0: int8 delta at 2^-7; wide = 1: the int16 gradient at 2^-15 for a BN below. */
et_status_t et_conv2d_backward_input_n(const et_layer_t *layer, const int8_t *weights, const int8_t *dz, void *dx,
                                       int wide, uint32_t *grad);
et_status_t et_dense_backward_input_n(const et_layer_t *layer, const int8_t *weights, const int8_t *dz, void *dx,
                                      int wide, uint32_t *grad);
et_status_t et_batchnorm_update_stats_n(const et_layer_t *layer, const uint8_t *in, int16_t *params,
                                        uint32_t *decay_q30, uint32_t *stats);
et_status_t et_batchnorm_forward_n(const et_layer_t *layer, const uint8_t *in, const int16_t *params,
                                   const int32_t *mean_hat, const int32_t *inv_sigma, int8_t *out, uint32_t *act);
et_status_t et_batchnorm_backward_n(const et_layer_t *layer, const uint8_t *in, const int8_t *out,
                                    const int16_t *params, const int32_t *mean_hat, const int32_t *inv_sigma,
                                    const int16_t *dout, int8_t *din, int64_t *dgamma, int64_t *dbeta, uint32_t *grad);
et_status_t et_softmax_ce_backward_n(const et_layer_t *layer, const int16_t *logits, uint16_t label, int8_t *grad,
                                     uint32_t *clips);
/* pre: z + A u clamped to int16. */
et_status_t et_lga_correct_n(const et_lga_state_t *state, const int16_t *u, int16_t *z, uint32_t *pre);
/* weight: merged cells clamped to int8. */
et_status_t et_lga_merge_row_n(const et_lga_state_t *state, uint16_t o, int32_t alpha_shift, const int8_t *w,
                               int8_t *out, uint8_t *changed, uint32_t *weight);

#endif /* EDGETRAIN_CLIP_INTERNAL_H */
