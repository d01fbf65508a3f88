/*
 * edgetrain — model table checks (et_model.h).
 */
#include "edgetrain/et_fixed.h"
#include "edgetrain/et_model.h"

#define ET_MAX_TENSORS (3 * ET_MAX_LAYERS)

typedef struct {
    uint32_t begin;
    uint32_t end; /* exclusive */
} et_range_t;

static int et_shape_equal(const et_shape_t *a, const et_shape_t *b)
{
    return a->h == b->h && a->w == b->w && a->c == b->c && a->fmt == b->fmt;
}

static int et_shape_valid(const et_shape_t *s)
{
    return s->h >= 1 && s->w >= 1 && s->c >= 1;
}

et_status_t et_layer_tensor_bytes(const et_layer_t *layer, uint32_t *weight_bytes, uint32_t *bias_bytes,
                                  uint32_t *bn_bytes)
{
    uint64_t w = 0; /* at most (2^16 - 1)^2 * 255^2 < 2^64: exact, then checked against uint32 */
    uint32_t b = 0;
    uint32_t bn = 0;
    if (layer == NULL || weight_bytes == NULL || bias_bytes == NULL || bn_bytes == NULL) {
        return ET_ERR_ARG;
    }
    if (layer->kind == ET_LAYER_CONV2D) {
        w = (uint64_t)layer->out.c * layer->kernel * layer->kernel * layer->in.c;
        b = 2u * layer->out.c;
    } else if (layer->kind == ET_LAYER_DENSE) {
        w = (uint64_t)layer->out.c * layer->in.c;
        b = 2u * layer->out.c;
    } else if (layer->kind == ET_LAYER_BATCHNORM) {
        bn = 8u * layer->in.c; /* gamma, beta, mean, meansq: int16 x c each */
    }
    if (w > UINT32_MAX) {
        return ET_ERR_RANGE;
    }
    *weight_bytes = (uint32_t)w;
    *bias_bytes = b;
    *bn_bytes = bn;
    return ET_OK;
}

/* Check one tensor reference and record its byte range. */
static et_status_t et_check_tensor(uint32_t offset, uint32_t bytes, uint32_t align, uint32_t image_size,
                                   et_range_t *ranges, uint32_t *n_ranges)
{
    if (bytes == 0) {
        return offset == ET_NO_TENSOR ? ET_OK : ET_ERR_CORRUPT;
    }
    if (offset == ET_NO_TENSOR || offset % align != 0 || offset > image_size || bytes > image_size - offset) {
        return ET_ERR_CORRUPT;
    }
    ranges[*n_ranges].begin = offset;
    ranges[*n_ranges].end = offset + bytes;
    *n_ranges += 1;
    return ET_OK;
}

static et_status_t et_check_layer(const et_layer_t *l, int is_last)
{
    const et_shape_t *in = &l->in;
    const et_shape_t *out = &l->out;
    /* Same order as the Python mirror (validate.py): kind, then each shape (dimensions, format). */
    if (l->kind < ET_LAYER_CONV2D || l->kind > ET_LAYER_SOFTMAX_CE) {
        return ET_ERR_UNSUPPORTED;
    }
    if (!et_shape_valid(in)) {
        return ET_ERR_CORRUPT;
    }
    if (in->fmt >= ET_FMT_COUNT) {
        return ET_ERR_UNSUPPORTED;
    }
    if (!et_shape_valid(out)) {
        return ET_ERR_CORRUPT;
    }
    if (out->fmt >= ET_FMT_COUNT) {
        return ET_ERR_UNSUPPORTED;
    }
    if ((l->kind == ET_LAYER_SOFTMAX_CE) != (is_last != 0)) {
        return ET_ERR_CORRUPT;
    }
    switch (l->kind) {
    case ET_LAYER_CONV2D:
    case ET_LAYER_DENSE: {
        uint8_t want_out_fmt;
        if (l->activation > ET_ACT_RELU) {
            return ET_ERR_UNSUPPORTED;
        }
        if (in->fmt != ET_FMT_INPUT && in->fmt != ET_FMT_ACT && in->fmt != ET_FMT_BN_OUT) {
            return ET_ERR_UNSUPPORTED;
        }
        if (l->alpha_shift < 0 || l->alpha_shift > 15) {
            return ET_ERR_CORRUPT;
        }
        want_out_fmt = l->activation == ET_ACT_RELU ? (uint8_t)ET_FMT_ACT : (uint8_t)ET_FMT_BIAS;
        if (out->fmt != want_out_fmt) {
            return ET_ERR_CORRUPT;
        }
        if (l->kind == ET_LAYER_DENSE) {
            return (in->h == 1 && in->w == 1 && out->h == 1 && out->w == 1) ? ET_OK : ET_ERR_CORRUPT;
        }
        if (l->kernel < 1 || l->kernel > 15) {
            return ET_ERR_CORRUPT;
        }
        if ((uint32_t)l->kernel * l->kernel * in->c > ET_MAX_FAN ||
            (uint32_t)l->kernel * l->kernel * out->c > ET_MAX_FAN) {
            return ET_ERR_UNSUPPORTED;
        }
        if (l->padding == ET_PAD_VALID) {
            if (in->h < l->kernel || in->w < l->kernel || out->h != in->h - l->kernel + 1 ||
                out->w != in->w - l->kernel + 1) {
                return ET_ERR_CORRUPT;
            }
        } else if (l->padding == ET_PAD_SAME) {
            if (l->kernel % 2 == 0 || out->h != in->h || out->w != in->w) {
                return ET_ERR_CORRUPT;
            }
        } else {
            return ET_ERR_UNSUPPORTED;
        }
        return (uint32_t)out->h * out->w <= ET_MAX_CONV_PIXELS ? ET_OK : ET_ERR_UNSUPPORTED;
    }
    case ET_LAYER_MAXPOOL2:
        return (in->h >= 2 && in->w >= 2 && out->h == in->h / 2 && out->w == in->w / 2 && out->c == in->c &&
                in->fmt == ET_FMT_ACT && out->fmt == ET_FMT_ACT)
                   ? ET_OK
                   : ET_ERR_CORRUPT;
    case ET_LAYER_BATCHNORM:
        return (in->fmt == ET_FMT_ACT && out->fmt == ET_FMT_BN_OUT && out->h == in->h && out->w == in->w &&
                out->c == in->c)
                   ? ET_OK
                   : ET_ERR_CORRUPT;
    case ET_LAYER_FLATTEN:
        /* h*w*c in 64 bits: three uint16 factors can reach 2^48 (32 bits would wrap). */
        return (out->h == 1 && out->w == 1 && (uint64_t)out->c == (uint64_t)in->h * in->w * in->c &&
                out->fmt == in->fmt)
                   ? ET_OK
                   : ET_ERR_CORRUPT;
    case ET_LAYER_SOFTMAX_CE:
        return (in->h == 1 && in->w == 1 && in->c >= 2 && in->fmt == ET_FMT_BIAS && et_shape_equal(in, out))
                   ? ET_OK
                   : ET_ERR_CORRUPT;
    default:
        return ET_ERR_UNSUPPORTED;
    }
}

et_status_t et_layer_check(const et_layer_t *layer)
{
    if (layer == NULL) {
        return ET_ERR_ARG;
    }
    return et_check_layer(layer, layer->kind == ET_LAYER_SOFTMAX_CE);
}

et_status_t et_model_check(const et_model_t *model, uint16_t *bad_layer)
{
    et_range_t ranges[ET_MAX_TENSORS];
    uint32_t n_ranges = 0;
    uint16_t i;
    uint32_t a;
    uint32_t b;
    et_status_t st;
    uint16_t where = 0;
    if (model == NULL || model->image == NULL) {
        return ET_ERR_ARG;
    }
    if (model->n_layers < 1 || model->n_layers > ET_MAX_LAYERS) {
        where = model->n_layers;
        st = ET_ERR_CORRUPT;
        goto fail;
    }
    for (i = 0; i < model->n_layers; i++) {
        const et_layer_t *l = &model->layers[i];
        uint32_t wb;
        uint32_t bb;
        uint32_t nb;
        where = i;
        if (i > 0 && !et_shape_equal(&l->in, &model->layers[i - 1].out)) {
            st = ET_ERR_CORRUPT;
            goto fail;
        }
        st = et_check_layer(l, i + 1 == model->n_layers);
        if (st == ET_OK && i == 0 && l->in.fmt != ET_FMT_INPUT) {
            st = ET_ERR_CORRUPT;
        }
        if (st != ET_OK) {
            goto fail;
        }
        (void)et_layer_tensor_bytes(l, &wb, &bb, &nb); /* within uint32 after the fan-in limits above */
        if ((st = et_check_tensor(l->weight_offset, wb, 1, model->image_size, ranges, &n_ranges)) != ET_OK ||
            (st = et_check_tensor(l->bias_offset, bb, 2, model->image_size, ranges, &n_ranges)) != ET_OK ||
            (st = et_check_tensor(l->bn_offset, nb, 2, model->image_size, ranges, &n_ranges)) != ET_OK) {
            goto fail;
        }
    }
    for (a = 0; a < n_ranges; a++) {
        for (b = a + 1; b < n_ranges; b++) {
            if (ranges[a].begin < ranges[b].end && ranges[b].begin < ranges[a].end) {
                where = model->n_layers;
                st = ET_ERR_CORRUPT;
                goto fail;
            }
        }
    }
    return ET_OK;
fail:
    if (bad_layer != NULL) {
        *bad_layer = where;
    }
    return st;
}
