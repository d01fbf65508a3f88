/*
 * edgetrain — the model description: a static table of layers whose tensors
 * (weights, biases, batch-norm parameters) are referenced by byte offset into
 * a model image that lies in (memory-mapped) NVM.
 *
 * Activations are HWC (channels last). Conv weights are OHWI:
 * [out_c][k][k][in_c], so a conv layer is an n x m matrix with n = out_c and
 * m = k*k*in_c, the im2col row order. Dense weights are [n][m].
 * Numeric formats are the et_format_id_t of et_fixed.h.
 */
#ifndef EDGETRAIN_ET_MODEL_H
#define EDGETRAIN_ET_MODEL_H

#include <stdint.h>

#include "et_status.h"

/* Most layers a model table holds (a model is a static table: no allocation). */
#define ET_MAX_LAYERS 32

/* Offset value meaning "this layer has no such tensor". */
#define ET_NO_TENSOR 0xFFFFFFFF

/*
 * Size limits that keep every integer accumulator of the layer kernels exact
 * (docs/layers.md): a conv/dense fan-in (k*k*in_c or in_c) and a conv
 * fan-out (k*k*out_c) of at most 65535, and at most 65536 output pixels per
 * conv layer, so that int32 sums of int8 x uint8 products never overflow.
 */
#define ET_MAX_FAN 65535
#define ET_MAX_CONV_PIXELS 65536

typedef enum {
    ET_LAYER_CONV2D = 1,     /* k x k convolution, stride 1; int8 weights, int16 bias, fused activation */
    ET_LAYER_DENSE = 2,      /* fully connected; int8 weights [n][m], int16 bias [n], fused activation */
    ET_LAYER_MAXPOOL2 = 3,   /* 2 x 2 max pooling, stride 2 (odd trailing row/column dropped) */
    ET_LAYER_BATCHNORM = 4,  /* streaming batch norm, per channel */
    ET_LAYER_FLATTEN = 5,    /* HWC -> vector; no data movement */
    ET_LAYER_SOFTMAX_CE = 6  /* softmax cross-entropy head; must be last */
} et_layer_kind_t;

typedef enum {
    ET_ACT_NONE = 0, /* output is the int16 pre-activation (ET_FMT_BIAS), e.g. the logits */
    ET_ACT_RELU = 1  /* output is ReLU + activation quantizer (ET_FMT_ACT) */
} et_activation_t;

typedef enum {
    ET_PAD_VALID = 0, /* no padding: out = in - k + 1 */
    ET_PAD_SAME = 1   /* zero padding (k-1)/2 on each side, k odd: out = in */
} et_padding_t;

/* Shape and element format of one activation tensor. */
typedef struct {
    uint16_t h;  /* rows, >= 1 */
    uint16_t w;  /* columns, >= 1 */
    uint16_t c;  /* channels, >= 1 */
    uint8_t fmt; /* et_format_id_t of every element */
} et_shape_t;

typedef struct {
    uint8_t kind;        /* et_layer_kind_t */
    uint8_t activation;  /* et_activation_t (conv, dense) */
    uint8_t padding;     /* et_padding_t (conv) */
    uint8_t kernel;      /* conv kernel size k, 1..15 odd for SAME */
    int8_t alpha_shift;  /* layer scale alpha = 2^-alpha_shift (conv, dense), 0..15 */
    et_shape_t in;       /* input tensor */
    et_shape_t out;      /* output tensor */
    uint32_t weight_offset; /* image offset of the int8 weights, or ET_NO_TENSOR */
    uint32_t bias_offset;   /* image offset of the int16 biases, or ET_NO_TENSOR */
    uint32_t bn_offset;     /* image offset of BN gamma[c], beta[c], mean[c], meansq[c] (int16 each) */
} et_layer_t;

typedef struct {
    const uint8_t *image; /* the model image (tensors addressed by the offsets above) */
    uint32_t image_size;  /* bytes */
    uint16_t n_layers;    /* 1..ET_MAX_LAYERS */
    et_layer_t layers[ET_MAX_LAYERS];
} et_model_t;

/*
 * Check a model table against its image before anything uses it:
 *  - 1..ET_MAX_LAYERS layers; known kinds, activations, paddings, formats;
 *  - the first input is ET_FMT_INPUT; each layer's input equals the previous
 *    layer's output (h, w, c, fmt); the last layer, and only it, is SOFTMAX_CE;
 *  - per kind: output shape and format follow from the input (conv VALID:
 *    in - k + 1; SAME: k odd, same size; pool: floor(in / 2), ET_FMT_ACT in
 *    and out; flatten: 1 x 1 x h*w*c; conv/dense output ET_FMT_ACT with
 *    ReLU, ET_FMT_BIAS without; BN: ET_FMT_ACT in, ET_FMT_BN_OUT out; dense
 *    and the head take 1 x 1 x n inputs); alpha_shift 0..15, kernel 1..15;
 *  - the size limits above (ET_ERR_UNSUPPORTED when exceeded);
 *  - tensors: present exactly where the kind needs them, inside the image,
 *    int16 tensors at even offsets, no two tensors overlapping.
 * Returns ET_OK; ET_ERR_ARG for NULL; ET_ERR_UNSUPPORTED for an unknown kind,
 * activation, padding or format; ET_ERR_CORRUPT for anything inconsistent.
 * On failure *bad_layer (if not NULL) is the index of the offending layer
 * (n_layers for a whole-model problem).
 */
et_status_t et_model_check(const et_model_t *model, uint16_t *bad_layer);

/*
 * The per-layer part of et_model_check for one layer on its own (shapes,
 * formats, parameters, size limits; not the tensor offsets). A SOFTMAX_CE
 * layer is checked as a last layer. ET_OK, ET_ERR_ARG for NULL, else as
 * et_model_check. The layer kernels (et_layers.h) call it on their argument.
 */
et_status_t et_layer_check(const et_layer_t *layer);

/* Bytes of each tensor of a layer (0 when the kind has none). ET_ERR_ARG for NULL; ET_ERR_RANGE (nothing
 * written) when the weight bytes exceed 2^32-1, which only a layer that fails et_layer_check can ask for. */
et_status_t et_layer_tensor_bytes(const et_layer_t *layer, uint32_t *weight_bytes, uint32_t *bias_bytes,
                                  uint32_t *bn_bytes);

#endif /* EDGETRAIN_ET_MODEL_H */
