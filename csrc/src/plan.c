/*
 * edgetrain — the memory plan (et_plan.h) and the arena layout it describes.
 * One function both counts and places, so the plan and the layout cannot drift.
 */
#include <string.h>

#include "train_internal.h"

#define ET_ALIGN8(n) (((n) + UINT64_C(7)) & ~UINT64_C(7))

typedef struct {
    uint8_t *base; /* NULL: count only */
    uint64_t used;
    uint64_t part[ET_PLAN_PART_COUNT];
} et_carver_t;

/* Take `bytes` (rounded up to 8) for `part`; the address when placing, else NULL. */
static void *et_take(et_carver_t *c, int part, uint64_t bytes)
{
    void *p = NULL;
    if (bytes == 0) {
        return NULL;
    }
    if (c->base != NULL) {
        p = c->base + c->used;
    }
    c->used += ET_ALIGN8(bytes);
    c->part[part] += ET_ALIGN8(bytes);
    return p;
}

/* Element and byte counts in 64 bits: h*w*c of three uint16 can reach 2^48. The carver sums in
 * 64 bits too, and a plan whose total exceeds 2^32-1 is refused (ET_ERR_RANGE), so every count
 * the training context keeps fits its uint32. */
static uint64_t et_elems(const et_shape_t *s)
{
    return (uint64_t)s->h * s->w * s->c;
}

static uint64_t et_act_bytes(const et_shape_t *s)
{
    return et_elems(s) * (s->fmt == ET_FMT_BIAS ? 2u : 1u);
}

static int et_has_weights(const et_layer_t *l)
{
    return l->kind == ET_LAYER_CONV2D || l->kind == ET_LAYER_DENSE;
}

/* m: columns of the weight matrix. */
static uint32_t et_cols(const et_layer_t *l)
{
    return l->kind == ET_LAYER_CONV2D ? (uint32_t)l->kernel * l->kernel * l->in.c : l->in.c;
}

/* Channels whose parameters get a gradient (bias or BN gamma/beta). */
static uint32_t et_param_channels(const et_layer_t *l)
{
    if (et_has_weights(l)) {
        return l->out.c;
    }
    return l->kind == ET_LAYER_BATCHNORM ? l->in.c : 0;
}

et_status_t et_train_config_check(const et_train_config_t *config)
{
    int i;
    if (config == NULL || config->optimizer > ET_OPT_LGA || config->conv_per_pixel > 1 || config->bn_warm > 1 ||
        config->lr_weight >= (UINT32_C(1) << 31) || config->lr_bias >= (UINT32_C(1) << 31) ||
        config->lr_weight_exp < -64 || config->lr_weight_exp > 0 || config->lr_bias_exp < -64 ||
        config->lr_bias_exp > 0 || config->commit_stage_bytes < ET_COMMIT_RECORD_BYTES ||
        config->commit_stage_bytes > ET_TRAIN_STAGE_MAX || config->ring_slots < ET_COMMIT_MIN_RING ||
        config->ring_slots > ET_COMMIT_MAX_RING) {
        return ET_ERR_ARG;
    }
    if (config->optimizer == ET_OPT_LRT) {
        if (et_lrt_config_check(&config->lrt) != ET_OK) {
            return ET_ERR_ARG;
        }
        for (i = 0; i < ET_MAX_LAYERS; i++) {
            if (config->lrt_rank[i] > ET_LRT_MAX_RANK || config->lrt_truncation[i] > ET_LRT_TRUNC_UNBIASED) {
                return ET_ERR_ARG;
            }
        }
    }
    if (config->optimizer == ET_OPT_LGA) {
        if (et_lga_config_check(&config->lga) != ET_OK) {
            return ET_ERR_ARG;
        }
        for (i = 0; i < ET_MAX_LAYERS; i++) {
            if (config->lga_rank[i] > ET_LGA_MAX_RANK) {
                return ET_ERR_ARG;
            }
        }
    }
    return ET_OK;
}

void et_train_lga_layer_config(const et_train_config_t *config, uint16_t layer, et_lga_config_t *out)
{
    *out = config->lga;
    if (layer < ET_MAX_LAYERS && config->lga_rank[layer] != 0) {
        out->rank = config->lga_rank[layer];
    }
}

static void et_lga_figures(const et_layer_t *l, const et_train_config_t *cfg, uint16_t i, et_plan_lga_layer_t *f)
{
    et_lga_config_t lc;
    uint32_t state = 0;
    uint32_t scratch = 0;
    et_train_lga_layer_config(cfg, i, &lc);
    f->n = l->out.c;
    f->m = (uint16_t)et_cols(l);
    f->rank = lc.rank;
    f->optimizer = lc.optimizer;
    (void)et_lga_state_get_size(f->n, f->m, lc.rank, lc.optimizer, &state);
    (void)et_lga_grad_get_buffer_size(f->n, f->m, lc.rank, &scratch);
    f->state_bytes = state;
    f->scratch_bytes = scratch;
    f->z_bytes = 2u * et_elems(&l->out);
}

void et_train_lrt_layer_config(const et_train_config_t *config, uint16_t layer, et_lrt_config_t *out)
{
    *out = config->lrt;
    if (layer < ET_MAX_LAYERS && config->lrt_rank[layer] != 0) {
        out->rank = config->lrt_rank[layer];
    }
    if (layer < ET_MAX_LAYERS && config->lrt_truncation[layer] != ET_LRT_TRUNC_DEFAULT) {
        out->unbiased = (uint8_t)(config->lrt_truncation[layer] == ET_LRT_TRUNC_UNBIASED);
    }
}

uint32_t et_train_lrt_term_batch(const et_layer_t *l, const et_lrt_config_t *lc)
{
    return l->kind == ET_LAYER_CONV2D && lc->conv_term_batch > 1 ? lc->conv_term_batch : 1u;
}

uint32_t et_train_lrt_batch_input_bytes(uint32_t n, uint32_t m, uint32_t k)
{
    return k > 1 ? ((k * (n + m) + 3u) & ~3u) + 8u * k : 0u;
}

/* One weight layer's LRT figures (the config and layer checked by the caller). The scratch holds, for a
 * layer that batches its terms, the buffered terms and then the batched accumulate's scratch. */
static void et_lrt_figures(const et_layer_t *l, const et_train_config_t *cfg, uint16_t i, et_plan_lrt_layer_t *f)
{
    et_lrt_config_t lc;
    size_t state = 0;
    size_t scratch = 0;
    uint32_t k;
    et_train_lrt_layer_config(cfg, i, &lc);
    f->n = l->out.c;
    f->m = (uint16_t)et_cols(l);
    f->rank = lc.rank;
    f->kind = (uint8_t)(l->kind == ET_LAYER_CONV2D ? ET_LRT_CONV : ET_LRT_DENSE);
    k = et_train_lrt_term_batch(l, &lc);
    (void)et_lrt_state_get_size(f->n, f->m, lc.rank, &state);
    if (k > 1) {
        (void)et_lrt_accumulate_batch_get_buffer_size(f->n, f->m, lc.rank, k, &scratch);
        scratch += et_train_lrt_batch_input_bytes(f->n, f->m, k);
    } else {
        (void)et_lrt_accumulate_get_buffer_size(f->n, f->m, lc.rank, &scratch);
    }
    f->state_bytes = (uint32_t)state;
    f->norms_bytes = (uint32_t)sizeof(et_lrt_norms_t);
    f->scratch_bytes = (uint32_t)scratch;
}

/* Sizes of the shared scratch buffers: maxima over the layers. */
typedef struct {
    uint64_t grad_elems;
    uint64_t grad16; /* int16 values: the wide gradient at a BN output */
    uint64_t dw;    /* int32 values */
    uint64_t m_max; /* columns */
    uint64_t c_max; /* parameter channels */
} et_scratch_t;

static void et_scratch_of(const et_layer_t *l, const et_train_config_t *cfg, et_scratch_t *s)
{
    memset(s, 0, sizeof(*s));
    if (cfg->optimizer == ET_OPT_NONE) {
        return;
    }
    s->grad_elems = et_elems(&l->in) > et_elems(&l->out) ? et_elems(&l->in) : et_elems(&l->out);
    if (et_has_weights(l)) {
        s->m_max = et_cols(l);
        if (l->kind == ET_LAYER_CONV2D && cfg->optimizer == ET_OPT_SGD && !cfg->conv_per_pixel) {
            s->dw = (uint64_t)l->out.c * et_cols(l);
        }
    }
    s->c_max = et_param_channels(l);
    if (l->kind == ET_LAYER_BATCHNORM) {
        s->grad16 = et_elems(&l->out);
    }
}

/* Take the scratch buffers described by s; returns nothing, fills ctx when placing. */
static void et_take_scratch(et_carver_t *c, const et_scratch_t *s, const et_train_config_t *cfg, et_train_t *ctx)
{
    int8_t *g0 = (int8_t *)et_take(c, ET_PLAN_GRADIENTS, s->grad_elems);
    int8_t *g1 = (int8_t *)et_take(c, ET_PLAN_GRADIENTS, s->grad_elems);
    int16_t *g16 = (int16_t *)et_take(c, ET_PLAN_GRADIENTS, 2 * s->grad16);
    int32_t *dw = (int32_t *)et_take(c, ET_PLAN_GRADIENTS, 4 * s->dw);
    int16_t *xrow = (int16_t *)et_take(c, ET_PLAN_GRADIENTS, 2 * s->m_max);
    /* the new weight row (SGD, LRT flush); LRT also narrows each x row into it before accumulating */
    int8_t *row = (int8_t *)et_take(c, ET_PLAN_GRADIENTS,
                                    cfg->optimizer == ET_OPT_SGD || cfg->optimizer == ET_OPT_LRT ||
                                            cfg->optimizer == ET_OPT_LGA
                                        ? s->m_max
                                        : 0);
    int64_t *pgrad = (int64_t *)et_take(c, ET_PLAN_GRADIENTS, 16 * s->c_max);
    if (ctx != NULL) {
        ctx->grad[0] = g0;
        ctx->grad[1] = g1;
        ctx->grad_elems = (uint32_t)s->grad_elems;
        ctx->grad16 = g16;
        ctx->dw = dw;
        ctx->xrow = xrow;
        ctx->row = row;
        ctx->pgrad = pgrad;
    }
}

/* The layer's saved buffers (output, BN state). */
static void et_take_saved(et_carver_t *c, const et_layer_t *l, et_train_layer_t *rec)
{
    void *out = NULL;
    int32_t *mh = NULL;
    int32_t *inv = NULL;
    if (l->kind != ET_LAYER_FLATTEN && l->kind != ET_LAYER_SOFTMAX_CE) {
        out = et_take(c, ET_PLAN_ACTIVATIONS, et_act_bytes(&l->out));
    }
    if (l->kind == ET_LAYER_BATCHNORM) {
        mh = (int32_t *)et_take(c, ET_PLAN_ACTIVATIONS, 4u * l->in.c);
        inv = (int32_t *)et_take(c, ET_PLAN_ACTIVATIONS, 4u * l->in.c);
    }
    if (rec != NULL) {
        rec->out = out;
        rec->bn_mean_hat = mh;
        rec->bn_inv_sigma = inv;
    }
}

/* The layer's optimizer state (parameter copies, trackers). */
static void et_take_optimizer(et_carver_t *c, const et_layer_t *l, const et_train_config_t *cfg,
                              et_train_layer_t *rec)
{
    int16_t *bias = NULL;
    int16_t *bn = NULL;
    et_maxnorm_t *mw = NULL;
    et_maxnorm_t *mb = NULL;
    et_lrt_norms_t *ln = NULL;
    int trains = cfg->optimizer != ET_OPT_NONE;
    if (et_has_weights(l)) {
        bias = (int16_t *)et_take(c, ET_PLAN_OPTIMIZER, 2u * l->out.c);
        if (cfg->optimizer == ET_OPT_SGD) {
            mw = (et_maxnorm_t *)et_take(c, ET_PLAN_OPTIMIZER, sizeof(et_maxnorm_t));
        }
        if (cfg->optimizer == ET_OPT_LRT) {
            ln = (et_lrt_norms_t *)et_take(c, ET_PLAN_OPTIMIZER, sizeof(et_lrt_norms_t));
        }
        if (trains) {
            mb = (et_maxnorm_t *)et_take(c, ET_PLAN_OPTIMIZER, sizeof(et_maxnorm_t));
        }
    } else if (l->kind == ET_LAYER_BATCHNORM) {
        bn = (int16_t *)et_take(c, ET_PLAN_OPTIMIZER, 8u * l->in.c);
        if (trains) {
            mw = (et_maxnorm_t *)et_take(c, ET_PLAN_OPTIMIZER, sizeof(et_maxnorm_t));
            mb = (et_maxnorm_t *)et_take(c, ET_PLAN_OPTIMIZER, sizeof(et_maxnorm_t));
        }
    }
    if (rec != NULL) {
        rec->bias = bias;
        rec->bn = bn;
        rec->mn_weight = mw;
        rec->mn_bias = mb;
        rec->lrt_norms = ln;
    }
}

/*
 * ET_OPT_LRT: every weight layer's accumulator (lrt_state), then the flush
 * context and the accumulate scratch sized for the layer that needs most
 * (lrt_scratch). Placed after everything else, so the other parts keep their
 * offsets whatever the optimizer.
 */
static void et_take_lrt(et_carver_t *c, const et_model_t *model, const et_train_config_t *cfg, et_train_t *ctx)
{
    uint16_t i;
    uint32_t need = 0;
    et_lrt_flush_t *fl;
    void *scratch;
    if (cfg->optimizer != ET_OPT_LRT) {
        return;
    }
    for (i = 0; i < model->n_layers; i++) {
        et_plan_lrt_layer_t f;
        void *mem;
        if (!et_has_weights(&model->layers[i])) {
            continue;
        }
        et_lrt_figures(&model->layers[i], cfg, i, &f);
        mem = et_take(c, ET_PLAN_LRT_STATE, f.state_bytes);
        need = f.scratch_bytes > need ? f.scratch_bytes : need;
        if (ctx != NULL) {
            ctx->layers[i].lrt = (et_lrt_state_t *)mem; /* laid out by et_train_init */
        }
    }
    fl = (et_lrt_flush_t *)et_take(c, ET_PLAN_LRT_SCRATCH, sizeof(et_lrt_flush_t));
    scratch = et_take(c, ET_PLAN_LRT_SCRATCH, need);
    if (ctx != NULL) {
        ctx->lrt_flush = fl;
        ctx->lrt_scratch = scratch;
        ctx->lrt_scratch_size = need;
    }
}

static void et_take_lga(et_carver_t *c, const et_model_t *model, const et_train_config_t *cfg, et_train_t *ctx)
{
    uint16_t i;
    uint32_t need = 0;
    uint32_t z = 0;
    void *scratch;
    int16_t *zbuf;
    if (cfg->optimizer != ET_OPT_LGA) {
        return;
    }
    for (i = 0; i < model->n_layers; i++) {
        et_plan_lga_layer_t f;
        void *mem;
        if (!et_has_weights(&model->layers[i])) {
            continue;
        }
        et_lga_figures(&model->layers[i], cfg, i, &f);
        mem = et_take(c, ET_PLAN_LGA_STATE, f.state_bytes);
        need = f.scratch_bytes > need ? f.scratch_bytes : need;
        z = f.z_bytes > z ? f.z_bytes : z;
        if (ctx != NULL) {
            ctx->layers[i].lga = (et_lga_state_t *)mem; /* laid out by et_train_init */
        }
    }
    scratch = et_take(c, ET_PLAN_LGA_SCRATCH, need);
    zbuf = (int16_t *)et_take(c, ET_PLAN_LGA_SCRATCH, z);
    if (ctx != NULL) {
        ctx->lga_scratch = scratch;
        ctx->lga_scratch_size = need;
        ctx->lga_z = zbuf;
    }
}

et_status_t et_plan_carve(const et_model_t *model, const et_train_config_t *config, uint8_t *base, et_plan_t *plan,
                          et_train_t **ctx_out)
{
    et_carver_t c;
    et_train_t *ctx;
    et_train_layer_t *layers;
    et_commit_t *commit;
    et_scratch_t all;
    uint16_t i;
    int p;
    memset(&c, 0, sizeof(c));
    memset(&all, 0, sizeof(all));
    c.base = base;
    ctx = (et_train_t *)et_take(&c, ET_PLAN_CONTEXT, sizeof(et_train_t));
    layers = (et_train_layer_t *)et_take(&c, ET_PLAN_CONTEXT, (uint64_t)model->n_layers * sizeof(et_train_layer_t));
    commit = (et_commit_t *)et_take(&c, ET_PLAN_CONTEXT, sizeof(et_commit_t));
    if (ctx != NULL) {
        memset(ctx, 0, sizeof(*ctx));
        memset(layers, 0, (size_t)model->n_layers * sizeof(et_train_layer_t));
        ctx->layers = layers;
        ctx->commit = commit;
    }
    for (i = 0; i < model->n_layers; i++) {
        et_take_saved(&c, &model->layers[i], ctx != NULL ? &layers[i] : NULL);
    }
    for (i = 0; i < model->n_layers; i++) {
        et_scratch_t s;
        et_scratch_of(&model->layers[i], config, &s);
        all.grad_elems = s.grad_elems > all.grad_elems ? s.grad_elems : all.grad_elems;
        all.grad16 = s.grad16 > all.grad16 ? s.grad16 : all.grad16;
        all.dw = s.dw > all.dw ? s.dw : all.dw;
        all.m_max = s.m_max > all.m_max ? s.m_max : all.m_max;
        all.c_max = s.c_max > all.c_max ? s.c_max : all.c_max;
    }
    et_take_scratch(&c, &all, config, ctx);
    for (i = 0; i < model->n_layers; i++) {
        et_take_optimizer(&c, &model->layers[i], config, ctx != NULL ? &layers[i] : NULL);
    }
    {
        et_prng_t *prng = (et_prng_t *)et_take(&c, ET_PLAN_PRNG, sizeof(et_prng_t));
        uint8_t *stage = (uint8_t *)et_take(&c, ET_PLAN_COMMIT, config->commit_stage_bytes);
        if (ctx != NULL) {
            ctx->prng = prng;
            ctx->stage = stage;
        }
    }
    et_take_lrt(&c, model, config, ctx);
    et_take_lga(&c, model, config, ctx);
    if (c.used > UINT32_MAX) {
        return ET_ERR_RANGE;
    }
    if (plan != NULL) {
        plan->total = (uint32_t)c.used;
        for (p = 0; p < ET_PLAN_PART_COUNT; p++) {
            plan->part[p] = (uint32_t)c.part[p];
        }
    }
    if (ctx_out != NULL) {
        *ctx_out = ctx;
    }
    return ET_OK;
}

et_status_t et_plan(const et_model_t *model, const et_train_config_t *config, et_plan_t *plan)
{
    et_status_t st;
    et_plan_t tmp;
    if (model == NULL || plan == NULL) {
        return ET_ERR_ARG;
    }
    if ((st = et_train_config_check(config)) != ET_OK) {
        return st;
    }
    if ((st = et_model_check(model, NULL)) != ET_OK) {
        return st;
    }
    if ((st = et_plan_carve(model, config, NULL, &tmp, NULL)) != ET_OK) {
        return st;
    }
    *plan = tmp;
    return ET_OK;
}

et_status_t et_plan_lrt_layer(const et_model_t *model, const et_train_config_t *config, uint16_t layer,
                              et_plan_lrt_layer_t *out)
{
    et_status_t st;
    et_plan_lrt_layer_t f;
    if (model == NULL || out == NULL) {
        return ET_ERR_ARG;
    }
    if ((st = et_train_config_check(config)) != ET_OK) {
        return st;
    }
    if (config->optimizer != ET_OPT_LRT) {
        return ET_ERR_ARG;
    }
    if ((st = et_model_check(model, NULL)) != ET_OK) {
        return st;
    }
    if (layer >= model->n_layers || !et_has_weights(&model->layers[layer])) {
        return ET_ERR_ARG;
    }
    et_lrt_figures(&model->layers[layer], config, layer, &f);
    *out = f;
    return ET_OK;
}

const char *et_plan_part_name(int part)
{
    switch (part) {
    case ET_PLAN_CONTEXT: return "context";
    case ET_PLAN_ACTIVATIONS: return "activations";
    case ET_PLAN_GRADIENTS: return "gradients";
    case ET_PLAN_OPTIMIZER: return "optimizer";
    case ET_PLAN_PRNG: return "prng";
    case ET_PLAN_LRT_STATE: return "lrt_state";
    case ET_PLAN_LRT_SCRATCH: return "lrt_scratch";
    case ET_PLAN_COMMIT: return "commit";
    case ET_PLAN_LGA_STATE: return "lga_state";
    case ET_PLAN_LGA_SCRATCH: return "lga_scratch";
    default: return "unknown";
    }
}

et_status_t et_layer_get_buffer_size(const et_layer_t *layer, const et_train_config_t *config, uint32_t *saved,
                                     uint32_t *scratch)
{
    et_status_t st;
    et_carver_t c;
    et_scratch_t s;
    if (layer == NULL || saved == NULL || scratch == NULL) {
        return ET_ERR_ARG;
    }
    if ((st = et_train_config_check(config)) != ET_OK) {
        return st;
    }
    if ((st = et_layer_check(layer)) != ET_OK) {
        return st;
    }
    memset(&c, 0, sizeof(c));
    et_take_saved(&c, layer, NULL);
    et_scratch_of(layer, config, &s);
    et_take_scratch(&c, &s, config, NULL);
    if (c.part[ET_PLAN_ACTIVATIONS] > UINT32_MAX || c.part[ET_PLAN_GRADIENTS] > UINT32_MAX) {
        return ET_ERR_RANGE;
    }
    *saved = (uint32_t)c.part[ET_PLAN_ACTIVATIONS];
    *scratch = (uint32_t)c.part[ET_PLAN_GRADIENTS];
    return ET_OK;
}

et_status_t et_plan_lga_layer(const et_model_t *model, const et_train_config_t *config, uint16_t layer,
                              et_plan_lga_layer_t *out)
{
    et_status_t st;
    et_plan_lga_layer_t f;
    if (model == NULL || out == NULL) {
        return ET_ERR_ARG;
    }
    if ((st = et_train_config_check(config)) != ET_OK) {
        return st;
    }
    if (config->optimizer != ET_OPT_LGA) {
        return ET_ERR_ARG;
    }
    if ((st = et_model_check(model, NULL)) != ET_OK) {
        return st;
    }
    if (layer >= model->n_layers || !et_has_weights(&model->layers[layer])) {
        return ET_ERR_ARG;
    }
    et_lga_figures(&model->layers[layer], config, layer, &f);
    *out = f;
    return ET_OK;
}
