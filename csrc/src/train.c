/*
 * edgetrain — the training step (et_train.h; docs/training.md).
 */
#include <string.h>

#include "edgetrain/et_crc.h"
#include "edgetrain/et_layers.h"
#include "clip_internal.h"
#include "maxnorm_inline.h"
#include "train_internal.h"

/* ---- small helpers ---------------------------------------------------------- */

static int et_ctx_ok(const et_train_t *ctx)
{
    return ctx != NULL && ctx->magic == ET_TRAIN_MAGIC;
}

static uint32_t et_elems(const et_shape_t *s)
{
    return (uint32_t)s->h * s->w * s->c;
}

static int et_has_weights(const et_layer_t *l)
{
    return l->kind == ET_LAYER_CONV2D || l->kind == ET_LAYER_DENSE;
}

static uint32_t et_cols(const et_layer_t *l)
{
    return l->kind == ET_LAYER_CONV2D ? (uint32_t)l->kernel * l->kernel * l->in.c : l->in.c;
}

static int et_in_lsb(const et_layer_t *l)
{
    et_format_t f;
    return et_format_get(l->in.fmt, &f) == ET_OK ? f.lsb_exp : 0;
}

static uint32_t et_add_sat32(uint32_t a, uint32_t b)
{
    return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

/* Fold n clip events into a saturating counter. */
static void et_clip_add(uint32_t *counter, uint32_t n)
{
    *counter = et_add_sat32(*counter, n);
}

static uint64_t et_abs64(int64_t v)
{
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

static int16_t et_get_le16(const uint8_t *p)
{
    return (int16_t)(uint16_t)((uint16_t)p[0] | ((uint16_t)p[1] << 8));
}

static void et_put_le16(uint8_t *p, int16_t v)
{
    uint16_t u = (uint16_t)v;
    p[0] = (uint8_t)(u & 0xFFu);
    p[1] = (uint8_t)(u >> 8);
}

/* The input tensor of layer i in the current pass (flatten aliases its input). */
static const void *et_in_of(const et_train_t *ctx, uint16_t i)
{
    while (i > 0) {
        if (ctx->layers[i - 1].out != NULL) {
            return ctx->layers[i - 1].out;
        }
        i--;
    }
    return ctx->input;
}

/* ---- configuration, size, init ---------------------------------------------- */

et_status_t et_train_config_default(et_train_config_t *config)
{
    if (config == NULL) {
        return ET_ERR_ARG;
    }
    memset(config, 0, sizeof(*config));
    config->optimizer = ET_OPT_SGD;
    config->lr_weight = ET_TRAIN_LR_DEFAULT;
    config->lr_weight_exp = ET_TRAIN_LR_EXP_DEFAULT;
    config->lr_bias = ET_TRAIN_LR_DEFAULT;
    config->lr_bias_exp = ET_TRAIN_LR_EXP_DEFAULT;
    (void)et_lrt_config_default(&config->lrt);
    (void)et_lga_config_default(&config->lga);
    config->commit_stage_bytes = ET_TRAIN_STAGE_DEFAULT;
    config->ring_slots = ET_TRAIN_RING_DEFAULT;
    return ET_OK;
}

et_status_t et_train_get_buffer_size(const et_model_t *model, const et_train_config_t *config, uint32_t *bytes)
{
    et_plan_t plan;
    et_status_t st;
    if (bytes == NULL) {
        return ET_ERR_ARG;
    }
    st = et_plan(model, config, &plan);
    if (st == ET_OK) {
        *bytes = plan.total;
    }
    return st;
}

/* The alignment unit of the NVM: its erase unit, else its program unit. */
static uint32_t et_nvm_align(const et_nvm_t *nvm)
{
    return nvm->erase_unit != 0 ? nvm->erase_unit : nvm->program_unit;
}

/*
 * Check the NVM against the model and config and find where the training
 * area goes: right after the image, rounded up to the alignment unit, to the
 * end of the region. Writes nothing.
 */
static et_status_t et_check_nvm(const et_model_t *model, const et_nvm_t *nvm, const et_train_config_t *config,
                                uint32_t *image_at, et_commit_config_t *area)
{
    uintptr_t img = (uintptr_t)model->image;
    uintptr_t base = (uintptr_t)nvm->base;
    uint32_t at;
    uint32_t align;
    uint32_t need;
    uint64_t area_at;
    et_status_t st;
    if (nvm->base == NULL || nvm->program == NULL || img < base || img - base > nvm->size ||
        model->image_size > nvm->size - (uint32_t)(img - base)) {
        return ET_ERR_ARG;
    }
    if (et_commit_get_buffer_size(nvm, &need) != ET_OK) {
        return ET_ERR_UNSUPPORTED; /* a geometry the commit cannot use */
    }
    align = et_nvm_align(nvm);
    if (config->commit_stage_bytes < need || config->commit_stage_bytes % align != 0) {
        return ET_ERR_ARG;
    }
    if ((st = et_commit_area_size(model, nvm, config->ring_slots, &need)) != ET_OK) {
        return st; /* ET_ERR_UNSUPPORTED: more tensors than ET_COMMIT_MAX_TENSORS */
    }
    at = (uint32_t)(img - base);
    area_at = ((uint64_t)at + model->image_size + align - 1) / align * align;
    if (area_at > nvm->size || need > nvm->size - area_at) {
        return ET_ERR_NOMEM;
    }
    *image_at = at;
    memset(area, 0, sizeof(*area));
    area->area_offset = (uint32_t)area_at;
    area->area_size = nvm->size - (uint32_t)area_at;
    area->ring_slots = config->ring_slots;
    (void)et_crc32(&area->model_id, model->image, model->image_size); /* starts from 0 */
    return ET_OK;
}

/* Copy n little-endian int16 values from NVM bytes p. */
static void et_load_s16(int16_t *dst, const uint8_t *p, uint32_t n)
{
    uint32_t k;
    for (k = 0; k < n; k++) {
        dst[k] = et_get_le16(p + 2 * k);
    }
}

et_status_t et_train_init(et_train_t **ctx_out, void *arena, uint32_t arena_bytes, const et_model_t *model,
                          et_nvm_t *nvm, const et_train_config_t *config, uint32_t *required)
{
    et_plan_t plan;
    et_train_t *ctx;
    et_commit_config_t area;
    uint32_t image_at;
    uint16_t i;
    et_status_t st;
    if (ctx_out == NULL || model == NULL || model->image == NULL || nvm == NULL || config == NULL) {
        return ET_ERR_ARG;
    }
    if ((st = et_train_config_check(config)) != ET_OK || (st = et_model_check(model, NULL)) != ET_OK ||
        (st = et_plan_carve(model, config, NULL, &plan, NULL)) != ET_OK) {
        return st;
    }
    if (required != NULL) {
        *required = plan.total;
    }
    if ((st = et_check_nvm(model, nvm, config, &image_at, &area)) != ET_OK) {
        return st;
    }
    if (arena == NULL || arena_bytes < plan.total) {
        return ET_ERR_NOMEM;
    }
    if (((uintptr_t)arena & 7u) != 0) {
        return ET_ERR_ARG;
    }
    (void)et_plan_carve(model, config, (uint8_t *)arena, &plan, &ctx);
    /* Checked above: the geometry, the stage and the area are what et_commit_open accepts. */
    (void)et_commit_open(ctx->commit, model, nvm, &area, ctx->stage, config->commit_stage_bytes);
    ctx->model = model;
    ctx->nvm = nvm;
    ctx->image_at = image_at;
    ctx->config = *config;
    ctx->open_tensor = -1;
    for (i = 0; i < model->n_layers; i++) {
        const et_layer_t *l = &model->layers[i];
        et_train_layer_t *rec = &ctx->layers[i];
        const int8_t *params = NULL;
        if (et_has_weights(l) || l->kind == ET_LAYER_BATCHNORM) {
            (void)et_commit_active_tensor(ctx->commit, (uint16_t)(ET_COMMIT_PARAMS | i), &params);
        }
        if (et_has_weights(l)) {
            (void)et_commit_active_tensor(ctx->commit, i, &rec->weights);
            et_load_s16(rec->bias, (const uint8_t *)params, l->out.c);
        } else if (l->kind == ET_LAYER_BATCHNORM) {
            uint32_t c4 = 4u * l->in.c;
            uint32_t keep = config->bn_warm ? c4 : 2u * l->in.c; /* gamma, beta (and stats when warm) */
            et_load_s16(rec->bn, (const uint8_t *)params, keep);
            memset(rec->bn + keep, 0, 2u * (c4 - keep));
            rec->bn_decay_q30 = config->bn_warm ? 0u : (uint32_t)ET_BN_ONE_Q30;
        }
        if (rec->lrt != NULL) {
            /* the plan sized this buffer with the same figures: it cannot fail */
            et_lrt_config_t lc;
            size_t bytes = 0;
            et_train_lrt_layer_config(config, i, &lc);
            (void)et_lrt_state_get_size(l->out.c, et_cols(l), lc.rank, &bytes);
            (void)et_lrt_state_init(rec->lrt, bytes, l->out.c, et_cols(l),
                                    l->kind == ET_LAYER_CONV2D ? ET_LRT_CONV : ET_LRT_DENSE, &lc, &rec->lrt);
            (void)et_lrt_norms_init(rec->lrt_norms);
            rec->lrt_samples = 0;
        }
        if (rec->mn_weight != NULL) {
            (void)et_maxnorm_init(rec->mn_weight);
        }
        if (rec->mn_bias != NULL) {
            (void)et_maxnorm_init(rec->mn_bias);
        }
    }
    (void)et_prng_seed(ctx->prng, config->seed);
    for (i = 0; i < model->n_layers; i++) {
        const et_layer_t *l = &model->layers[i];
        et_train_layer_t *rec = &ctx->layers[i];
        if (rec->lga != NULL) {
            /* the plan sized this buffer with the same figures; B is drawn from the seeded PRNG */
            et_lga_config_t lc;
            uint32_t bytes = 0;
            et_train_lga_layer_config(config, i, &lc);
            (void)et_lga_state_get_size(l->out.c, (uint16_t)et_cols(l), lc.rank, lc.optimizer, &bytes);
            (void)et_lga_state_init(rec->lga, bytes, l->out.c, (uint16_t)et_cols(l), &lc, ctx->prng, &rec->lga);
        }
    }
    ctx->magic = ET_TRAIN_MAGIC;
    *ctx_out = ctx;
    return ET_OK;
}

/* ---- the write path: everything goes through the atomic commit ------------------ */

/* Host accounting: count the bytes of data that differ from cur (image offset image_off). */
static void et_count_changes(et_train_t *ctx, uint32_t image_off, const uint8_t *cur, const uint8_t *data,
                             uint32_t len)
{
    uint32_t i;
    if (ctx->cell_counts == NULL) {
        return;
    }
    for (i = 0; i < len; i++) {
        if (cur[i] != data[i]) {
            ctx->cell_counts[image_off + i] += 1;
        }
    }
}

/* The active bytes of tensor id (a bank, or the factory image). */
static const uint8_t *et_active(const et_train_t *ctx, uint16_t id)
{
    const int8_t *p = NULL;
    (void)et_commit_active_tensor(ctx->commit, id, &p);
    return (const uint8_t *)p;
}

et_status_t et_train_write_end(et_train_t *ctx)
{
    uint16_t id;
    et_status_t st;
    if (!et_ctx_ok(ctx)) {
        return ET_ERR_ARG;
    }
    if (ctx->open_tensor < 0) {
        return ET_OK;
    }
    id = (uint16_t)ctx->open_tensor;
    ctx->open_tensor = -1;
    st = et_commit_end(ctx->commit, id);
    if (st == ET_ERR_WORN) {
        ctx->commits_lost += 1; /* no ring slot took the record: the old version stays active */
        st = ET_OK;
    }
    if (st == ET_OK && (id & ET_COMMIT_PARAMS) == 0) {
        ctx->layers[id].weights = (const int8_t *)et_active(ctx, id);
    }
    return st;
}

/* Stream rows of tensor id into its commit, beginning one (and ending another) as needed. */
static et_status_t et_commit_stream(et_train_t *ctx, uint16_t id, uint32_t row0, uint32_t n_rows, const uint8_t *data)
{
    et_status_t st;
    if (ctx->open_tensor != (int32_t)id || row0 < ctx->next_row) {
        if ((st = et_train_write_end(ctx)) != ET_OK) {
            return st;
        }
        if ((st = et_commit_begin(ctx->commit, id)) != ET_OK) {
            return st;
        }
        ctx->open_tensor = id;
    }
    st = et_commit_rows(ctx->commit, id, row0, n_rows, (const int8_t *)data);
    if (st != ET_OK) {
        ctx->open_tensor = -1; /* the commit abandoned itself; the old version stays active */
        return st;
    }
    ctx->next_row = row0 + n_rows;
    return ET_OK;
}

et_status_t et_train_write_rows(et_train_t *ctx, uint16_t layer, uint32_t row0, uint32_t n_rows, const int8_t *rows)
{
    const et_layer_t *l;
    uint32_t n;
    uint32_t m;
    if (!et_ctx_ok(ctx) || rows == NULL || layer >= ctx->model->n_layers) {
        return ET_ERR_ARG;
    }
    l = &ctx->model->layers[layer];
    if (!et_has_weights(l)) {
        return ET_ERR_ARG;
    }
    n = l->out.c;
    m = et_cols(l);
    if (row0 > n || n_rows > n - row0) {
        return ET_ERR_ARG;
    }
    et_count_changes(ctx, l->weight_offset + row0 * m, (const uint8_t *)(ctx->layers[layer].weights + row0 * m),
                     (const uint8_t *)rows, n_rows * m);
    return et_commit_stream(ctx, layer, row0, n_rows, (const uint8_t *)rows);
}

/*
 * Commit a parameter tensor from SRAM int16 values: part a (na values) then
 * part b (nb values, may be 0), little-endian, when its bytes differ from
 * the active version. image_off: the tensor's factory offset (accounting).
 */
static et_status_t et_commit_params(et_train_t *ctx, uint16_t layer, uint32_t image_off, const int16_t *a, uint32_t na,
                                    const int16_t *b, uint32_t nb)
{
    uint16_t id = (uint16_t)(ET_COMMIT_PARAMS | layer);
    const uint8_t *cur = et_active(ctx, id);
    uint8_t buf[64];
    uint32_t total = na + nb;
    uint32_t k;
    int pass;
    int differs = 0;
    et_status_t st;
    for (pass = 0; pass < 2; pass++) { /* pass 0 compares, pass 1 streams */
        for (k = 0; k < total; k += 32) {
            uint32_t chunk = total - k < 32 ? total - k : 32;
            uint32_t j;
            for (j = 0; j < chunk; j++) {
                uint32_t v = k + j;
                et_put_le16(buf + 2 * j, v < na ? a[v] : b[v - na]);
            }
            if (pass == 0) {
                differs |= memcmp(buf, cur + 2 * k, 2 * chunk) != 0;
                continue;
            }
            et_count_changes(ctx, image_off + 2 * k, cur + 2 * k, buf, 2 * chunk);
            if ((st = et_commit_stream(ctx, id, k, chunk, buf)) != ET_OK) {
                return st;
            }
        }
        if (!differs) {
            return ET_OK;
        }
    }
    return et_train_write_end(ctx);
}

et_status_t et_train_checkpoint(et_train_t *ctx)
{
    uint16_t i;
    et_status_t st;
    if (!et_ctx_ok(ctx)) {
        return ET_ERR_ARG;
    }
    if ((st = et_train_write_end(ctx)) != ET_OK) {
        return st;
    }
    if (ctx->config.optimizer == ET_OPT_NONE) {
        return ET_OK; /* nothing was trained */
    }
    for (i = 0; i < ctx->model->n_layers; i++) {
        const et_layer_t *l = &ctx->model->layers[i];
        et_train_layer_t *rec = &ctx->layers[i];
        if (et_has_weights(l)) {
            st = et_commit_params(ctx, i, l->bias_offset, rec->bias, l->out.c, NULL, 0);
        } else if (l->kind == ET_LAYER_BATCHNORM) {
            uint32_t c = l->in.c;
            /* The parameter-gradient scratch (16 c_max bytes) holds the 2c corrected statistics. */
            int16_t *stats = (int16_t *)(void *)ctx->pgrad;
            st = et_batchnorm_corrected_stats(l, rec->bn, rec->bn_decay_q30, stats);
            if (st == ET_OK) {
                st = et_commit_params(ctx, i, l->bn_offset, rec->bn, 2 * c, stats, 2 * c);
            }
        } else {
            continue;
        }
        if (st != ET_OK) {
            return st;
        }
    }
    return ET_OK;
}

/* ---- forward ---------------------------------------------------------------------- */

/* The stored integers of a dense layer's input as an int16 row (the format's bytes widened). */
static void et_dense_row(const et_layer_t *l, const void *in, int16_t *row)
{
    const uint8_t *x = (const uint8_t *)in;
    uint32_t j;
    for (j = 0; j < l->in.c; j++) {
        row[j] = l->in.fmt == ET_FMT_BN_OUT ? (int16_t)(int8_t)x[j] : (int16_t)x[j];
    }
}

/*
 * ET_OPT_LGA forward of weight layer i: z = W x + bias (the kernel without its
 * activation, into the int16 pre-activation buffer), z += A (B x) per output
 * pixel (et_lga_correct), then the layer's activation (ReLU) or a copy.
 */
static et_status_t et_lga_forward(et_train_t *ctx, uint16_t i, const void *in, int train)
{
    const et_layer_t *l = &ctx->model->layers[i];
    et_train_layer_t *rec = &ctx->layers[i];
    et_layer_t zl = *l;
    uint32_t pixels = (uint32_t)l->out.h * l->out.w;
    uint32_t n = l->out.c;
    int16_t u[ET_LGA_MAX_RANK];
    uint32_t t;
    uint32_t pre = 0;
    uint32_t act = 0;
    et_status_t st;
    zl.activation = ET_ACT_NONE;
    zl.out.fmt = ET_FMT_BIAS;
    if (l->kind == ET_LAYER_CONV2D) {
        st = et_conv2d_forward_n(&zl, rec->weights, rec->bias, in, ctx->lga_z, &pre, &act);
    } else {
        st = et_dense_forward_n(&zl, rec->weights, rec->bias, in, ctx->lga_z, &pre, &act);
    }
    for (t = 0; t < pixels && st == ET_OK; t++) {
        if (l->kind == ET_LAYER_CONV2D) {
            st = et_conv2d_im2col_row(l, in, t, ctx->xrow);
        } else {
            et_dense_row(l, in, ctx->xrow);
        }
        if (st == ET_OK) {
            st = et_lga_project(rec->lga, ctx->xrow, et_in_lsb(l), u);
        }
        if (st == ET_OK) {
            st = et_lga_correct_n(rec->lga, u, ctx->lga_z + t * n, &pre);
        }
    }
    if (st != ET_OK) {
        return st;
    }
    if (l->activation == ET_ACT_RELU) {
        st = et_relu_forward_n(ctx->lga_z, (uint8_t *)rec->out, pixels * n, &act);
    } else {
        memcpy(rec->out, ctx->lga_z, 2u * pixels * n);
    }
    if (st == ET_OK && train) {
        et_clip_add(&rec->clips.pre, pre);
        et_clip_add(&rec->clips.act, act);
    }
    return st;
}

static et_status_t et_forward(et_train_t *ctx, int train, uint16_t *pred)
{
    const et_model_t *model = ctx->model;
    uint16_t i;
    et_status_t st = ET_OK;
    for (i = 0; i < model->n_layers && st == ET_OK; i++) {
        const et_layer_t *l = &model->layers[i];
        et_train_layer_t *rec = &ctx->layers[i];
        const void *in = et_in_of(ctx, i);
        uint32_t pre = 0;
        uint32_t act = 0;
        uint32_t stats = 0;
        switch (l->kind) {
        case ET_LAYER_CONV2D:
        case ET_LAYER_DENSE:
            if (rec->lga != NULL) {
                st = et_lga_forward(ctx, i, in, train);
            } else if (l->kind == ET_LAYER_CONV2D) {
                st = et_conv2d_forward_n(l, rec->weights, rec->bias, in, rec->out, &pre, &act);
            } else {
                st = et_dense_forward_n(l, rec->weights, rec->bias, in, rec->out, &pre, &act);
            }
            break;
        case ET_LAYER_MAXPOOL2:
            st = et_maxpool2_forward(l, (const uint8_t *)in, (uint8_t *)rec->out);
            break;
        case ET_LAYER_BATCHNORM:
            if (train) {
                st = et_batchnorm_update_stats_n(l, (const uint8_t *)in, rec->bn, &rec->bn_decay_q30, &stats);
            }
            if (st == ET_OK) {
                st = et_batchnorm_prepare(l, rec->bn, rec->bn_decay_q30, rec->bn_mean_hat, rec->bn_inv_sigma);
            }
            if (st == ET_OK) {
                st = et_batchnorm_forward_n(l, (const uint8_t *)in, rec->bn, rec->bn_mean_hat, rec->bn_inv_sigma,
                                            (int8_t *)rec->out, &act);
            }
            break;
        case ET_LAYER_SOFTMAX_CE:
            st = et_softmax_ce_forward(l, (const int16_t *)in, pred);
            break;
        default: /* flatten: the output aliases the input */
            break;
        }
        if (st == ET_OK && train) { /* a prediction counts nothing */
            et_clip_add(&rec->clips.pre, pre);
            et_clip_add(&rec->clips.act, act);
            et_clip_add(&rec->clips.stats, stats);
        }
    }
    return st;
}

/* ---- optimizer ------------------------------------------------------------------ */

/*
 * SGD weight updates are rounded to the weight grid stochastically: the update
 * of a cell, in weight LSBs, is first scaled with ET_SGD_DITHER_BITS more
 * fractional bits (et_maxnorm_scale into an int32 whose LSB is
 * 2^(-7 - ET_SGD_DITHER_BITS)), then floor((v + u) / 2^ET_SGD_DITHER_BITS)
 * with u the top ET_SGD_DITHER_BITS bits of one draw of the context's PRNG:
 * E[dw] = v / 2^ET_SGD_DITHER_BITS (to 2^-17 LSB). One draw per cell whose
 * gradient is not zero, in row-major order (docs/training.md).
 */
#define ET_SGD_DITHER_BITS 16

/* The exponent that scales a gradient worth 2^exp into the fine update format. */
static int32_t et_fine_exp(int32_t exp)
{
    return exp + 7 + ET_SGD_DITHER_BITS; /* the weight LSB is 2^-7; ET_FMT_ACC32's LSB is 2^0 */
}

/*
 * The fine scale (above) of a layer's gradient cells, worth 2^exp, under the
 * max-norm divisor div, for |g| <= xmax: et_maxnorm_scale prepared once
 * (et_maxnorm_scaler_t), so that a cell costs a multiply and a correction
 * instead of a 64-bit division, with the same result.
 */
static void et_fine_scaler(const et_train_t *ctx, et_maxnorm_scaler_t *sc, int32_t exp, et_ufloat_t div,
                           int64_t xmax)
{
    (void)et_maxnorm_scaler_init(sc, et_fine_exp(exp), ctx->config.lr_weight, ctx->config.lr_weight_exp, div,
                                 ET_FMT_ACC32, (uint64_t)xmax);
}

/*
 * Smallest |x| in 1..xmax whose fine scale is non-zero, or xmax + 1 when
 * there is none. The scale is odd and monotone in x, so every |x| below the
 * threshold scales to 0: skipping the scale for them is exact.
 */
static int64_t et_threshold(const et_maxnorm_scaler_t *sc, int64_t xmax)
{
    int64_t lo = 1;
    int64_t hi = xmax;
    int64_t q = 0;
    (void)et_maxnorm_scaler_apply_inline(sc, xmax, &q);
    if (q == 0) {
        return xmax + 1;
    }
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        q = 0;
        (void)et_maxnorm_scaler_apply_inline(sc, mid, &q);
        if (q != 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

/*
 * w - dw saturated to int8, dw the stochastically rounded update of gradient
 * g (above) under the fine scaler sc; g = 0 leaves w and draws nothing. The
 * draw is et_prng_next_u32's, inline on the caller's copy *state of the
 * context's PRNG state. The scaled v is an ACC32 value, so
 * floor((v + u) / 2^16) lies in [-2^15, 2^15] and w - dw fits an int32.
 * *clips += 1 when w - dw was clamped.
 */
static inline int8_t et_sgd_cell(uint32_t *state, int8_t w, int32_t g, uint32_t tmin, const et_maxnorm_scaler_t *sc,
                                 uint32_t *clips)
{
    uint32_t a = g < 0 ? 0u - (uint32_t)g : (uint32_t)g;
    int64_t v;
    uint32_t u;
    int32_t r;
    if (g == 0) {
        return w;
    }
    u = et_xorshift32_inline(*state);
    *state = u;
    if (a < tmin) {
        return w; /* v = 0: floor(u / 2^16) = 0 */
    }
    if (sc->fast && a <= sc->xmax) {
        v = et_maxnorm_scaler_fast_inline(sc, a, g < 0);
    } else {
        int64_t t = 0;
        (void)et_maxnorm_scale(g, sc->x_exp, sc->factor, sc->factor_exp, sc->divisor, sc->fmt, &t);
        v = t;
    }
    v = (v + (int64_t)(u >> (32 - ET_SGD_DITHER_BITS))) >> ET_SGD_DITHER_BITS; /* floor: arithmetic shift */
    r = (int32_t)w - (int32_t)v;
    *clips += (uint32_t)(r < INT8_MIN) | (uint32_t)(r > INT8_MAX);
    return (int8_t)(r < INT8_MIN ? INT8_MIN : (r > INT8_MAX ? INT8_MAX : r));
}

/*
 * Per-sample update of one parameter tensor (bias, BN gamma or beta) from its
 * gradient g (n values worth g * 2^g_exp, overwritten): normalise to |g| < 2^31
 * by a common right shift, feed the tracker, subtract the scaled update,
 * saturate to int16. An all-zero gradient makes no step.
 */
static et_status_t et_update_params(et_train_t *ctx, et_maxnorm_t *mn, int64_t *g, uint32_t n, int32_t g_exp,
                                    int16_t *params, uint32_t *counter)
{
    uint32_t clips = 0;
    uint64_t gmax = 0;
    uint32_t k;
    int s = 0;
    et_ufloat_t div;
    et_status_t st;
    for (k = 0; k < n; k++) {
        uint64_t a = et_abs64(g[k]);
        gmax = a > gmax ? a : gmax;
    }
    if (gmax == 0) {
        return ET_OK;
    }
    if (64 - et_clz_u64(gmax) > 30) {
        s = 64 - et_clz_u64(gmax) - 30;
        for (k = 0; k < n; k++) {
            g[k] = et_round_shift_s64(g[k], s);
        }
        gmax = (uint64_t)et_round_shift_s64((int64_t)gmax, s);
    }
    if ((st = et_maxnorm_update(mn, gmax, g_exp + s, &div)) != ET_OK) {
        return st;
    }
    for (k = 0; k < n; k++) {
        int64_t d = 0;
        if (g[k] == 0) {
            continue;
        }
        st = et_maxnorm_scale(g[k], g_exp + s, ctx->config.lr_bias, ctx->config.lr_bias_exp, div, ET_FMT_BIAS, &d);
        if (st != ET_OK) {
            return st;
        }
        d = (int64_t)params[k] - d;
        clips += (uint32_t)(d < INT16_MIN) | (uint32_t)(d > INT16_MAX);
        params[k] = (int16_t)et_saturate_s64(d, INT16_MIN, INT16_MAX);
    }
    et_clip_add(counter, clips);
    return ET_OK;
}

/*
 * Visit the rank-1 terms of weight layer i (dz: its gradient at z, in: its
 * input). skip_zero: pass over terms whose delta is all zero.
 */
static et_status_t et_for_each_pair(et_train_t *ctx, uint16_t i, const void *in, const int8_t *dz, et_pair_fn fn,
                                    void *user, int skip_zero)
{
    const et_layer_t *l = &ctx->model->layers[i];
    et_grad_pair_t pair;
    uint32_t t;
    uint32_t pixels = (uint32_t)l->out.h * l->out.w;
    et_status_t st;
    pair.n = l->out.c;
    pair.m = (uint16_t)et_cols(l);
    pair.x = ctx->xrow;
    pair.delta_exp = -7 - l->alpha_shift;
    pair.x_exp = et_in_lsb(l);
    for (t = 0; t < pixels; t++) {
        const int8_t *d = dz + t * pair.n;
        if (skip_zero) {
            uint32_t k = 0;
            while (k < pair.n && d[k] == 0) {
                k++;
            }
            if (k == pair.n) {
                continue;
            }
        }
        if (l->kind == ET_LAYER_CONV2D) {
            st = et_conv2d_im2col_row(l, in, t, ctx->xrow);
        } else {
            const uint8_t *x = (const uint8_t *)in;
            uint32_t j;
            for (j = 0; j < pair.m; j++) {
                ctx->xrow[j] = l->in.fmt == ET_FMT_BN_OUT ? (int16_t)(int8_t)x[j] : (int16_t)x[j];
            }
            st = ET_OK;
        }
        if (st != ET_OK) {
            return st;
        }
        pair.delta = d;
        pair.index = t;
        if ((st = fn(user, i, &pair)) != ET_OK) {
            return st;
        }
    }
    return ET_OK;
}

/* SGD on one rank-1 term (a dense sample, or one conv output pixel): max|dW| = max|delta| max|x|. */
static et_status_t et_sgd_pair(void *user, uint16_t layer, const et_grad_pair_t *pair)
{
    et_train_t *ctx = (et_train_t *)user;
    et_train_layer_t *rec = &ctx->layers[layer];
    int32_t dmax = 0;
    int32_t xmax = 0;
    int32_t exp = pair->delta_exp + pair->x_exp;
    int64_t tmin;
    et_ufloat_t div;
    et_maxnorm_scaler_t sc;
    uint32_t o;
    uint32_t j;
    uint32_t clips = 0;
    et_status_t st;
    for (o = 0; o < pair->n; o++) {
        int32_t a = pair->delta[o] < 0 ? -pair->delta[o] : pair->delta[o];
        dmax = a > dmax ? a : dmax;
    }
    for (j = 0; j < pair->m; j++) {
        int32_t a = pair->x[j] < 0 ? -pair->x[j] : pair->x[j];
        xmax = a > xmax ? a : xmax;
    }
    if (dmax == 0 || xmax == 0) {
        return ET_OK;
    }
    if ((st = et_maxnorm_update(rec->mn_weight, (uint64_t)dmax * (uint64_t)xmax, exp, &div)) != ET_OK) {
        return st;
    }
    et_fine_scaler(ctx, &sc, exp, div, (int64_t)dmax * xmax);
    tmin = et_threshold(&sc, (int64_t)dmax * xmax);
    for (o = 0; o < pair->n; o++) {
        int32_t d = pair->delta[o];
        const int8_t *w = rec->weights + o * pair->m;
        int8_t *row = ctx->row;
        uint32_t state = ctx->prng->state;
        int changed = 0;
        if (d == 0) {
            continue;
        }
        for (j = 0; j < pair->m; j++) {
            row[j] = et_sgd_cell(&state, w[j], d * pair->x[j], (uint32_t)tmin, &sc, &clips); /* |d x| < 2^23 */
            changed |= row[j] != w[j];
        }
        ctx->prng->state = state;
        et_clip_add(&rec->clips.weight, clips); /* once per row */
        clips = 0;
        if (changed && (st = et_train_write_rows(ctx, layer, o, 1, ctx->row)) != ET_OK) {
            return st;
        }
    }
    return et_train_write_end(ctx); /* each term is its own update: the next one reads its result */
}

/* SGD on a conv layer's weight gradient summed over its output pixels. */
static et_status_t et_sgd_conv_summed(et_train_t *ctx, uint16_t i, const void *in, const int8_t *dz)
{
    const et_layer_t *l = &ctx->model->layers[i];
    et_train_layer_t *rec = &ctx->layers[i];
    uint32_t n = l->out.c;
    uint32_t m = et_cols(l);
    int32_t exp = -7 - l->alpha_shift + et_in_lsb(l);
    uint64_t gmax = 0;
    int64_t tmin;
    et_ufloat_t div;
    et_maxnorm_scaler_t sc;
    uint32_t o;
    uint32_t j;
    uint32_t clips = 0;
    et_status_t st;
    if ((st = et_conv2d_weight_grad(l, in, dz, ctx->dw)) != ET_OK) {
        return st;
    }
    for (j = 0; j < n * m; j++) {
        uint64_t a = et_abs64(ctx->dw[j]);
        gmax = a > gmax ? a : gmax;
    }
    if (gmax == 0) {
        return ET_OK;
    }
    if ((st = et_maxnorm_update(rec->mn_weight, gmax, exp, &div)) != ET_OK) {
        return st;
    }
    et_fine_scaler(ctx, &sc, exp, div, (int64_t)gmax);
    tmin = et_threshold(&sc, (int64_t)gmax);
    for (o = 0; o < n; o++) {
        const int8_t *w = rec->weights + o * m;
        const int32_t *g = ctx->dw + o * m;
        int8_t *row = ctx->row;
        uint32_t state = ctx->prng->state;
        int changed = 0;
        for (j = 0; j < m; j++) {
            row[j] = et_sgd_cell(&state, w[j], g[j], (uint32_t)tmin, &sc, &clips); /* tmin <= gmax + 1 <= 2^31 + 1 */
            changed |= row[j] != w[j];
        }
        ctx->prng->state = state;
        et_clip_add(&rec->clips.weight, clips); /* once per row */
        clips = 0;
        if (changed && (st = et_train_write_rows(ctx, i, o, 1, ctx->row)) != ET_OK) {
            return st;
        }
    }
    return ET_OK;
}

/*
 * A conv layer with conv_term_batch k > 1 buffers its terms at the start of lrt_scratch
 * (et_train_lrt_batch_input_bytes) and hands them to et_lrt_accumulate_batch_* k at a time, the
 * last, shorter batch when the layer's terms of the sample end (et_lrt_update).
 */
static et_status_t et_lrt_batch_drain(et_train_t *ctx, uint16_t layer)
{
    const et_layer_t *l = &ctx->model->layers[layer];
    et_lrt_config_t lc;
    uint32_t n = l->out.c;
    uint32_t m = et_cols(l);
    uint32_t k;
    uint32_t count = ctx->lrt_batch_count;
    uint32_t off;
    uint8_t *base = (uint8_t *)ctx->lrt_scratch;
    const int32_t *d_exp;
    if (count == 0) {
        return ET_OK;
    }
    et_train_lrt_layer_config(&ctx->config, layer, &lc);
    k = et_train_lrt_term_batch(l, &lc);
    off = et_train_lrt_batch_input_bytes(n, m, k);
    d_exp = (const int32_t *)(base + ((k * (n + m) + 3u) & ~3u));
    ctx->lrt_batch_count = 0;
    if (l->in.fmt == ET_FMT_BN_OUT) {
        return et_lrt_accumulate_batch_s8(ctx->layers[layer].lrt, &lc, count, (const int8_t *)base, d_exp,
                                          (const int8_t *)(base + k * n), d_exp + k, base + off,
                                          ctx->lrt_scratch_size - off, ctx->prng);
    }
    return et_lrt_accumulate_batch_u8(ctx->layers[layer].lrt, &lc, count, (const int8_t *)base, d_exp, base + k * n,
                                      d_exp + k, base + off, ctx->lrt_scratch_size - off, ctx->prng);
}

/*
 * LRT on one rank-1 term: the x row (int16 holding the input format's stored
 * integers) is narrowed into the row buffer as bytes (or into the batch buffer,
 * above), then accumulated into the layer's state with the context's PRNG
 * (unbiased truncation draws from it).
 */
static et_status_t et_lrt_pair(void *user, uint16_t layer, const et_grad_pair_t *pair)
{
    et_train_t *ctx = (et_train_t *)user;
    et_train_layer_t *rec = &ctx->layers[layer];
    uint8_t *x = (uint8_t *)ctx->row;
    et_lrt_config_t lc;
    uint32_t j;
    uint32_t k;
    et_train_lrt_layer_config(&ctx->config, layer, &lc);
    k = et_train_lrt_term_batch(&ctx->model->layers[layer], &lc);
    if (k > 1) {
        uint8_t *base = (uint8_t *)ctx->lrt_scratch;
        uint32_t c = ctx->lrt_batch_count;
        int32_t *d_exp = (int32_t *)(base + ((k * (pair->n + pair->m) + 3u) & ~3u));
        x = base + k * pair->n + c * pair->m;
        memcpy(base + c * pair->n, pair->delta, pair->n);
        d_exp[c] = pair->delta_exp;
        d_exp[k + c] = pair->x_exp;
    }
    for (j = 0; j < pair->m; j++) {
        x[j] = (uint8_t)pair->x[j]; /* modulo 256: an int8 value reads back through int8_t */
    }
    if (k > 1) {
        ctx->lrt_batch_count += 1;
        return ctx->lrt_batch_count == k ? et_lrt_batch_drain(ctx, layer) : ET_OK;
    }
    if (ctx->model->layers[layer].in.fmt == ET_FMT_BN_OUT) {
        return et_lrt_accumulate_s8(rec->lrt, &lc, pair->delta, pair->delta_exp, (const int8_t *)ctx->row,
                                    pair->x_exp, ctx->lrt_scratch, ctx->lrt_scratch_size, ctx->prng);
    }
    return et_lrt_accumulate_u8(rec->lrt, &lc, pair->delta, pair->delta_exp, x, pair->x_exp, ctx->lrt_scratch,
                                ctx->lrt_scratch_size, ctx->prng);
}

/*
 * One flush attempt of weight layer i (every B samples of the layer): when
 * the update passes the density gate, stream its rows, W = sat8(W - dW), each
 * changed row through the one write path, then reset the accumulator;
 * otherwise keep accumulating (B_eff has grown, so has eta).
 */
static et_status_t et_lrt_flush_layer(et_train_t *ctx, uint16_t i)
{
    const et_layer_t *l = &ctx->model->layers[i];
    et_train_layer_t *rec = &ctx->layers[i];
    et_lrt_flush_t *fl = ctx->lrt_flush;
    uint32_t n = l->out.c;
    uint32_t m = et_cols(l);
    et_lrt_config_t lc;
    uint32_t o;
    uint32_t j;
    et_status_t st;
    et_train_lrt_layer_config(&ctx->config, i, &lc);
    if ((st = et_lrt_flush_begin(rec->lrt, &lc, rec->lrt_norms, fl)) != ET_OK) {
        return st;
    }
    rec->lrt_done.flushes = et_add_sat32(rec->lrt_done.flushes, 1);
    if (!fl->apply) {
        return ET_OK;
    }
    for (o = 0; o < n; o++) {
        const int8_t *w = rec->weights + o * m;
        int changed = 0;
        uint32_t clips = 0;
        if ((st = et_lrt_delta_row(rec->lrt, fl, o, ctx->row, NULL)) != ET_OK) {
            return st;
        }
        for (j = 0; j < m; j++) {
            int64_t e = (int64_t)w[j] - ctx->row[j];
            int8_t v = (int8_t)et_saturate_s64(e, INT8_MIN, INT8_MAX);
            clips += (uint32_t)(e < INT8_MIN) | (uint32_t)(e > INT8_MAX);
            changed |= v != w[j];
            ctx->row[j] = v;
        }
        et_clip_add(&rec->clips.weight, clips);
        if (changed && (st = et_train_write_rows(ctx, i, o, 1, ctx->row)) != ET_OK) {
            return st;
        }
    }
    rec->lrt_done.applied = et_add_sat32(rec->lrt_done.applied, 1);
    rec->lrt_done.terms = et_add_sat32(rec->lrt_done.terms, rec->lrt->terms);
    rec->lrt_done.skipped = et_add_sat32(rec->lrt_done.skipped, rec->lrt->skipped);
    return et_lrt_reset(rec->lrt);
}

/* LRT on weight layer i: accumulate this sample's terms; every B samples a flush attempt. */
static et_status_t et_lrt_update(et_train_t *ctx, uint16_t i, const void *in, const int8_t *dz)
{
    const et_lrt_config_t *lc = &ctx->config.lrt;
    et_train_layer_t *rec = &ctx->layers[i];
    uint32_t batch = ctx->model->layers[i].kind == ET_LAYER_CONV2D ? lc->batch_conv : lc->batch_dense;
    et_status_t st;
    ET_PORT_PHASE(ET_PHASE_ACCUMULATE);
    ctx->lrt_batch_count = 0;
    if ((st = et_for_each_pair(ctx, i, in, dz, et_lrt_pair, ctx, 1)) != ET_OK ||
        (st = et_lrt_batch_drain(ctx, i)) != ET_OK) {
        return st;
    }
    ET_PORT_PHASE(ET_PHASE_UPDATE);
    rec->lrt_samples += 1;
    if (rec->lrt_samples < batch) {
        return ET_OK;
    }
    rec->lrt_samples = 0;
    return et_lrt_flush_layer(ctx, i);
}

/* ET_OPT_LGA: add one rank-1 term (gradient at z, LSB 2^-7, without the layer scale) to the sums. */
static et_status_t et_lga_pair(void *user, uint16_t layer, const et_grad_pair_t *pair)
{
    et_train_t *ctx = (et_train_t *)user;
    return et_lga_grad_add(ctx->layers[layer].lga, ctx->lga_scratch, ctx->lga_scratch_size, pair->delta, pair->x,
                           pair->x_exp);
}

/*
 * ET_OPT_LGA on weight layer i: the factor gradients summed over the
 * sample's terms, one optimizer step; every K samples of the layer A B is
 * merged into W (each changed row through the one write path) and the
 * factors restart.
 */
static et_status_t et_lga_update(et_train_t *ctx, uint16_t i, const void *in, const int8_t *dz)
{
    const et_layer_t *l = &ctx->model->layers[i];
    et_lga_state_t *s = ctx->layers[i].lga;
    et_lga_config_t lc;
    uint32_t m = et_cols(l);
    uint16_t o;
    et_status_t st;
    et_train_lga_layer_config(&ctx->config, i, &lc);
    if ((st = et_lga_grad_zero(s, ctx->lga_scratch, ctx->lga_scratch_size)) != ET_OK ||
        (st = et_for_each_pair(ctx, i, in, dz, et_lga_pair, ctx, 1)) != ET_OK ||
        (st = et_lga_step(s, &lc, ctx->lga_scratch, ctx->lga_scratch_size, et_in_lsb(l))) != ET_OK) {
        return st;
    }
    s->samples += 1;
    if (s->samples < lc.merge_every) {
        return ET_OK;
    }
    for (o = 0; o < l->out.c; o++) {
        uint8_t changed = 0;
        uint32_t clips = 0;
        if ((st = et_lga_merge_row_n(s, o, l->alpha_shift, ctx->layers[i].weights + (uint32_t)o * m, ctx->row,
                                     &changed, &clips)) != ET_OK) {
            return st;
        }
        et_clip_add(&ctx->layers[i].clips.weight, clips);
        if (changed && (st = et_train_write_rows(ctx, i, o, 1, ctx->row)) != ET_OK) {
            return st;
        }
    }
    return et_lga_restart(s, &lc, ctx->prng);
}

/* The optimizer's work on weight layer i once dz (gradient at z) is final. */
static et_status_t et_update_weight_layer(et_train_t *ctx, uint16_t i, const void *in, const int8_t *dz)
{
    const et_layer_t *l = &ctx->model->layers[i];
    et_train_layer_t *rec = &ctx->layers[i];
    uint32_t n = l->out.c;
    uint32_t k;
    et_status_t st;
    if (ctx->hook != NULL && (st = et_for_each_pair(ctx, i, in, dz, ctx->hook, ctx->hook_user, 0)) != ET_OK) {
        return st;
    }
    /* Bias: db = sum over pixels of dz (LSB 2^-7), widened into the parameter-gradient scratch. */
    if (l->kind == ET_LAYER_CONV2D) {
        int32_t *db = (int32_t *)(void *)(ctx->pgrad + n);
        if ((st = et_conv2d_bias_grad(l, dz, db)) != ET_OK) {
            return st;
        }
        for (k = 0; k < n; k++) {
            ctx->pgrad[k] = db[k];
        }
    } else {
        for (k = 0; k < n; k++) {
            ctx->pgrad[k] = dz[k];
        }
    }
    if ((st = et_update_params(ctx, rec->mn_bias, ctx->pgrad, n, -7, rec->bias, &rec->clips.param)) != ET_OK) {
        return st;
    }
    if (ctx->config.optimizer == ET_OPT_LRT) {
        st = et_lrt_update(ctx, i, in, dz);
    } else if (ctx->config.optimizer == ET_OPT_LGA) {
        st = et_lga_update(ctx, i, in, dz);
    } else if (ctx->config.optimizer != ET_OPT_SGD) {
        return ET_OK;
    } else {
        ET_PORT_PHASE(ET_PHASE_UPDATE);
        st = l->kind == ET_LAYER_CONV2D && !ctx->config.conv_per_pixel ? et_sgd_conv_summed(ctx, i, in, dz)
                                                                        : et_for_each_pair(ctx, i, in, dz, et_sgd_pair, ctx, 1);
    }
    /* The layer's update is complete: its commit ends here (one commit per layer update). */
    st = st == ET_OK ? et_train_write_end(ctx) : st;
    ET_PORT_PHASE(ET_PHASE_BACKWARD);
    return st;
}

/* ---- backward ------------------------------------------------------------------- */

/* 1 when the gradient at layer i's input is the gradient at a BN output (flatten in between). */
static int et_feeds_bn(const et_model_t *model, int32_t i)
{
    int32_t j = i - 1;
    while (j >= 0 && model->layers[j].kind == ET_LAYER_FLATTEN) {
        j--;
    }
    return j >= 0 && model->layers[j].kind == ET_LAYER_BATCHNORM;
}

static et_status_t et_backward(et_train_t *ctx, uint16_t label)
{
    const et_model_t *model = ctx->model;
    uint16_t head = (uint16_t)(model->n_layers - 1);
    int8_t *g = ctx->grad[0];
    int8_t *h = ctx->grad[1];
    int32_t i;
    int32_t lowest = 0;
    uint32_t clips = 0;
    et_status_t st;
    while (lowest < head && !et_has_weights(&model->layers[lowest]) &&
           model->layers[lowest].kind != ET_LAYER_BATCHNORM) {
        lowest++;
    }
    if ((st = et_softmax_ce_backward_n(&model->layers[head], (const int16_t *)et_in_of(ctx, head), label, g,
                                       &clips)) != ET_OK) {
        return st;
    }
    et_clip_add(&ctx->layers[head].clips.grad, clips);
    for (i = head - 1; i >= lowest; i--) {
        const et_layer_t *l = &model->layers[i];
        et_train_layer_t *rec = &ctx->layers[i];
        const void *in = et_in_of(ctx, (uint16_t)i);
        int need_in = i > lowest;
        switch (l->kind) {
        case ET_LAYER_CONV2D:
        case ET_LAYER_DENSE:
            if (l->activation == ET_ACT_RELU &&
                (st = et_relu_backward((const uint8_t *)rec->out, g, g, et_elems(&l->out))) != ET_OK) {
                return st;
            }
            if (need_in && et_feeds_bn(model, i)) {
                /* the wide gradient for the BN below; g and h stay as they are */
                clips = 0;
                st = l->kind == ET_LAYER_CONV2D ? et_conv2d_backward_input_n(l, rec->weights, g, ctx->grad16, 1, &clips)
                                                : et_dense_backward_input_n(l, rec->weights, g, ctx->grad16, 1, &clips);
                et_clip_add(&rec->clips.grad, clips);
                if (st == ET_OK) {
                    st = et_update_weight_layer(ctx, (uint16_t)i, in, g);
                }
                if (st != ET_OK) {
                    return st;
                }
                continue;
            }
            if (need_in) {
                clips = 0;
                st = l->kind == ET_LAYER_CONV2D ? et_conv2d_backward_input_n(l, rec->weights, g, h, 0, &clips)
                                                : et_dense_backward_input_n(l, rec->weights, g, h, 0, &clips);
                if (st != ET_OK) {
                    return st;
                }
                et_clip_add(&rec->clips.grad, clips);
            }
            if ((st = et_update_weight_layer(ctx, (uint16_t)i, in, g)) != ET_OK) {
                return st;
            }
            break;
        case ET_LAYER_MAXPOOL2:
            if ((st = et_maxpool2_backward(l, (const uint8_t *)in, g, h)) != ET_OK) {
                return st;
            }
            break;
        case ET_LAYER_BATCHNORM: {
            uint32_t c = l->in.c;
            int64_t *dgamma = ctx->pgrad;
            int64_t *dbeta = ctx->pgrad + c;
            clips = 0;
            st = et_batchnorm_backward_n(l, (const uint8_t *)in, (const int8_t *)rec->out, rec->bn, rec->bn_mean_hat,
                                         rec->bn_inv_sigma, ctx->grad16, need_in ? h : NULL, dgamma, dbeta, &clips);
            et_clip_add(&rec->clips.grad, clips);
            if (st == ET_OK) {
                st = et_update_params(ctx, rec->mn_weight, dgamma, c, -27, rec->bn, &rec->clips.param);
            }
            if (st == ET_OK) {
                st = et_update_params(ctx, rec->mn_bias, dbeta, c, -15, rec->bn + c, &rec->clips.param);
            }
            if (st != ET_OK) {
                return st;
            }
            break;
        }
        default: /* flatten: the same gradient, reshaped */
            continue;
        }
        if (need_in) {
            int8_t *t = g;
            g = h;
            h = t;
        }
    }
    return ET_OK;
}

/* ---- step, predict, accessors ------------------------------------------------------ */

static et_status_t et_check_input(const et_train_t *ctx, const uint8_t *input, uint32_t input_len,
                                  const et_train_result_t *result)
{
    if (!et_ctx_ok(ctx) || input == NULL || result == NULL || input_len != et_elems(&ctx->model->layers[0].in)) {
        return ET_ERR_ARG;
    }
    return ET_OK;
}

et_status_t et_train_predict(et_train_t *ctx, const uint8_t *input, uint32_t input_len, et_train_result_t *result)
{
    uint16_t pred = 0;
    et_status_t st = et_check_input(ctx, input, input_len, result);
    if (st != ET_OK) {
        return st;
    }
    ctx->input = input;
    st = et_forward(ctx, 0, &pred);
    ctx->input = NULL;
    if (st == ET_OK) {
        ctx->last_pred = pred;
        result->predicted = pred;
        result->correct = 0;
    }
    return st;
}

et_status_t et_train_step(et_train_t *ctx, const uint8_t *input, uint32_t input_len, uint16_t label,
                          et_train_result_t *result)
{
    uint16_t pred = 0;
    et_status_t st = et_check_input(ctx, input, input_len, result);
    if (st != ET_OK) {
        return st;
    }
    if (label >= ctx->model->layers[ctx->model->n_layers - 1].in.c) {
        return ET_ERR_ARG;
    }
    if (ctx->config.optimizer == ET_OPT_NONE) {
        st = et_train_predict(ctx, input, input_len, result);
        if (st == ET_OK) {
            result->correct = result->predicted == label;
        }
        return st;
    }
    ctx->input = input;
    ET_PORT_PHASE(ET_PHASE_FORWARD);
    st = et_forward(ctx, 1, &pred);
    if (st == ET_OK) {
        ctx->last_pred = pred;
        result->predicted = pred;
        result->correct = pred == label;
        ET_PORT_PHASE(ET_PHASE_BACKWARD);
        st = et_backward(ctx, label);
        if (st == ET_OK) {
            ET_PORT_PHASE(ET_PHASE_UPDATE);
            st = et_train_write_end(ctx); /* nothing stays open between steps */
        }
        ctx->samples += 1;
    }
    ET_PORT_PHASE(ET_PHASE_OTHER);
    ctx->input = NULL;
    return st;
}

et_status_t et_train_set_pair_hook(et_train_t *ctx, et_pair_fn fn, void *user)
{
    if (!et_ctx_ok(ctx)) {
        return ET_ERR_ARG;
    }
    ctx->hook = fn;
    ctx->hook_user = user;
    return ET_OK;
}

et_status_t et_train_set_cell_counter(et_train_t *ctx, uint32_t *counts, uint32_t n)
{
    if (!et_ctx_ok(ctx) || (counts != NULL && n != ctx->model->image_size)) {
        return ET_ERR_ARG;
    }
    ctx->cell_counts = counts;
    return ET_OK;
}

et_status_t et_train_output(const et_train_t *ctx, uint16_t layer, const void **data, uint32_t *bytes)
{
    const et_layer_t *l;
    if (!et_ctx_ok(ctx) || data == NULL || bytes == NULL || layer >= ctx->model->n_layers) {
        return ET_ERR_ARG;
    }
    l = &ctx->model->layers[layer];
    if (l->kind == ET_LAYER_SOFTMAX_CE) {
        return ET_ERR_ARG; /* the head has no output tensor: read the logits of the layer before */
    }
    if (et_in_of(ctx, (uint16_t)(layer + 1)) == NULL) {
        return ET_ERR_STATE; /* a flatten of the input: the caller's sample, not kept */
    }
    *data = et_in_of(ctx, (uint16_t)(layer + 1));
    *bytes = et_elems(&l->out) * (l->out.fmt == ET_FMT_BIAS ? 2u : 1u);
    return ET_OK;
}

et_status_t et_train_params(const et_train_t *ctx, uint16_t layer, const int16_t **bias, const int16_t **bn)
{
    if (!et_ctx_ok(ctx) || bias == NULL || bn == NULL || layer >= ctx->model->n_layers) {
        return ET_ERR_ARG;
    }
    *bias = ctx->layers[layer].bias;
    *bn = ctx->layers[layer].bn;
    return ET_OK;
}

et_status_t et_train_weights(const et_train_t *ctx, uint16_t layer, const int8_t **weights)
{
    if (!et_ctx_ok(ctx) || weights == NULL || layer >= ctx->model->n_layers ||
        ctx->layers[layer].weights == NULL) {
        return ET_ERR_ARG;
    }
    *weights = ctx->layers[layer].weights;
    return ET_OK;
}

et_status_t et_train_lrt(const et_train_t *ctx, uint16_t layer, const et_lrt_state_t **state,
                         et_train_lrt_stats_t *stats)
{
    const et_train_layer_t *rec;
    if (!et_ctx_ok(ctx) || layer >= ctx->model->n_layers || ctx->layers[layer].lrt == NULL) {
        return ET_ERR_ARG;
    }
    rec = &ctx->layers[layer];
    if (state != NULL) {
        *state = rec->lrt;
    }
    if (stats != NULL) {
        *stats = rec->lrt_done;
        stats->terms = et_add_sat32(stats->terms, rec->lrt->terms);
        stats->skipped = et_add_sat32(stats->skipped, rec->lrt->skipped);
    }
    return ET_OK;
}

et_status_t et_train_lga(const et_train_t *ctx, uint16_t layer, const et_lga_state_t **state)
{
    if (!et_ctx_ok(ctx) || state == NULL || layer >= ctx->model->n_layers || ctx->layers[layer].lga == NULL) {
        return ET_ERR_ARG;
    }
    *state = ctx->layers[layer].lga;
    return ET_OK;
}

et_status_t et_train_nvm_stats(const et_train_t *ctx, et_train_nvm_stats_t *stats)
{
    et_commit_stats_t cs;
    if (!et_ctx_ok(ctx) || stats == NULL) {
        return ET_ERR_ARG;
    }
    (void)et_commit_get_stats(ctx->commit, &cs);
    stats->commits = cs.commits;
    stats->commits_lost = ctx->commits_lost;
    stats->worn_reports = cs.worn_reports;
    stats->bytes_programmed = cs.bytes_programmed;
    stats->record_bytes = cs.record_bytes;
    return ET_OK;
}

et_status_t et_train_commit(const et_train_t *ctx, const et_commit_t **commit)
{
    if (!et_ctx_ok(ctx) || commit == NULL) {
        return ET_ERR_ARG;
    }
    *commit = ctx->commit;
    return ET_OK;
}

et_status_t et_train_get_clip_counts(const et_train_t *ctx, uint16_t layer, et_clip_counts_t *out)
{
    if (!et_ctx_ok(ctx) || out == NULL || layer >= ctx->model->n_layers) {
        return ET_ERR_ARG;
    }
    *out = ctx->layers[layer].clips;
    return ET_OK;
}

et_status_t et_train_reset_clip_counts(et_train_t *ctx)
{
    uint16_t i;
    if (!et_ctx_ok(ctx)) {
        return ET_ERR_ARG;
    }
    for (i = 0; i < ctx->model->n_layers; i++) {
        memset(&ctx->layers[i].clips, 0, sizeof(ctx->layers[i].clips));
    }
    return ET_OK;
}

et_status_t et_train_samples(const et_train_t *ctx, uint32_t *samples)
{
    if (!et_ctx_ok(ctx) || samples == NULL) {
        return ET_ERR_ARG;
    }
    *samples = ctx->samples;
    return ET_OK;
}
