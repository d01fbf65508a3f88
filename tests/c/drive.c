/*
 * The whole C call sequence on one .etm blob (drive.h). Host test code: it may allocate.
 */
#include "drive.h"

#include <stdlib.h>
#include <string.h>

#include "edgetrain/edgetrain.h"

#define DRIVE_CHECK(cond)                                                                                     \
    do {                                                                                                      \
        if (!(cond)) {                                                                                        \
            abort();                                                                                          \
        }                                                                                                     \
    } while (0)

/* Parse a private copy; on failure check that nothing but *bad was written. 1 when accepted. */
static int drive_parse(const uint8_t *blob, uint32_t size, et_model_t *model, et_etm_info_t *info)
{
    et_model_t before_model;
    et_etm_info_t before_info;
    uint32_t bad = 0xFFFFFFFFu;
    et_status_t st;
    memset(model, 0xA5, sizeof *model);
    memset(info, 0x5A, sizeof *info);
    before_model = *model;
    before_info = *info;
    st = et_etm_parse(blob, size, 0, model, info, &bad);
    if (st == ET_OK) {
        DRIVE_CHECK(et_model_check(model, NULL) == ET_OK);
        DRIVE_CHECK(model->image == blob + info->image_offset && info->blob_size <= size);
        return 1;
    }
    DRIVE_CHECK(st == ET_ERR_CORRUPT || st == ET_ERR_VERSION || st == ET_ERR_UNSUPPORTED);
    DRIVE_CHECK(bad <= size);
    DRIVE_CHECK(memcmp(model, &before_model, sizeof *model) == 0 && memcmp(info, &before_info, sizeof *info) == 0);
    return 0;
}

static void drive_input(uint8_t *input, uint32_t len, et_prng_t *prng)
{
    uint32_t i;
    uint32_t v = 0;
    for (i = 0; i < len; i++) {
        if (i % 4 == 0) {
            DRIVE_CHECK(et_prng_next_u32(prng, &v) == ET_OK);
        }
        input[i] = (uint8_t)(v >> (8 * (i % 4)));
    }
}

/* One optimizer over the model: plan, init over a fresh NVM copy of the blob, steps, checkpoint,
 * init again over the same NVM (recovery, statistics taken as stored) and predict alike. */
static void drive_config(const uint8_t *blob, const et_etm_info_t *info0, uint8_t optimizer,
                         const drive_opts_t *opts, drive_counts_t *counts)
{
    et_train_config_t cfg;
    et_plan_t plan;
    et_model_t model;
    et_etm_info_t info;
    et_nvm_t nvm;
    et_nvm_ram_stats_t nvm_stats;
    et_train_t *ctx = NULL;
    et_train_result_t res, again;
    et_prng_t prng;
    uint64_t *arena;
    uint8_t *mem;
    uint8_t *input;
    uint32_t area = 0, region, image_end, input_len, required = 0, k;
    uint16_t n_classes;
    et_status_t st;

    DRIVE_CHECK(et_train_config_default(&cfg) == ET_OK);
    cfg.optimizer = optimizer;
    cfg.lrt.batch_conv = 2; /* flush attempts within a few steps */
    cfg.lrt.batch_dense = 2;
    cfg.lrt.rank = 2;
    cfg.seed = 7;

    /* The NVM: the blob, then the training area (from the image's end to the region's end). */
    mem = (uint8_t *)malloc(info0->blob_size);
    DRIVE_CHECK(mem != NULL);
    memcpy(mem, blob, info0->blob_size);
    DRIVE_CHECK(drive_parse(mem, info0->blob_size, &model, &info));
    DRIVE_CHECK(et_nvm_ram_init(&nvm, mem, info.blob_size, &nvm_stats) == ET_OK);
    st = et_plan(&model, &cfg, &plan);
    if (st == ET_OK) {
        st = et_commit_area_size(&model, &nvm, cfg.ring_slots, &area);
    }
    free(mem);
    if (st == ET_ERR_RANGE || (st == ET_OK && plan.total > opts->arena_cap)) {
        counts->capped++;
        return;
    }
    if (st == ET_ERR_UNSUPPORTED) {
        counts->refused++;
        return;
    }
    DRIVE_CHECK(st == ET_OK);
    image_end = info.image_offset + info.image_size;
    if (area > opts->arena_cap) {
        counts->capped++;
        return;
    }
    region = image_end + area > info.blob_size ? image_end + area : info.blob_size;
    mem = (uint8_t *)malloc(region);
    arena = (uint64_t *)malloc(((size_t)plan.total + 7) / 8 * 8 + 8);
    input_len = (uint32_t)model.layers[0].in.h * model.layers[0].in.w * model.layers[0].in.c;
    input = (uint8_t *)malloc(input_len ? input_len : 1);
    DRIVE_CHECK(mem != NULL && arena != NULL && input != NULL);
    memset(mem, 0xFF, region);
    memcpy(mem, blob, info.blob_size);
    DRIVE_CHECK(drive_parse(mem, info.blob_size, &model, &info));
    DRIVE_CHECK(et_nvm_ram_init(&nvm, mem, region, &nvm_stats) == ET_OK);

    /* An arena one byte short is refused with the size it needs, and nothing else is written. */
    if (plan.total > 8) {
        st = et_train_init(&ctx, arena, plan.total - 8, &model, &nvm, &cfg, &required);
        DRIVE_CHECK(st == ET_ERR_NOMEM && required == plan.total && ctx == NULL);
    }
    st = et_train_init(&ctx, arena, plan.total, &model, &nvm, &cfg, &required);
    DRIVE_CHECK(st == ET_OK && ctx != NULL && required == plan.total);
    n_classes = model.layers[model.n_layers - 1].in.c;
    DRIVE_CHECK(et_prng_seed(&prng, 11) == ET_OK);
    for (k = 0; k < opts->steps; k++) {
        drive_input(input, input_len, &prng);
        DRIVE_CHECK(et_train_step(ctx, input, input_len, (uint16_t)(k % n_classes), &res) == ET_OK);
        DRIVE_CHECK(res.predicted < n_classes);
    }
    /* Bad arguments change nothing: a label out of range, a wrong input length. */
    DRIVE_CHECK(et_train_step(ctx, input, input_len, n_classes, &res) == ET_ERR_ARG);
    DRIVE_CHECK(et_train_step(ctx, input, input_len + 1, 0, &res) == ET_ERR_ARG);
    DRIVE_CHECK(et_train_checkpoint(ctx) == ET_OK);
    drive_input(input, input_len, &prng);
    DRIVE_CHECK(et_train_predict(ctx, input, input_len, &res) == ET_OK);

    /* Recovery: a new context over the same NVM, statistics as stored, predicts the same class. */
    cfg.bn_warm = 1;
    memset(arena, 0, plan.total);
    ctx = NULL;
    DRIVE_CHECK(et_train_init(&ctx, arena, plan.total, &model, &nvm, &cfg, &required) == ET_OK);
    DRIVE_CHECK(et_train_predict(ctx, input, input_len, &again) == ET_OK);
    DRIVE_CHECK(again.predicted == res.predicted);
    counts->trained++;
    free(input);
    free(arena);
    free(mem);
}

void drive_blob(const uint8_t *data, size_t size, const drive_opts_t *opts, drive_counts_t *counts)
{
    static const uint8_t optimizers[] = {ET_OPT_SGD, ET_OPT_LRT, ET_OPT_BIAS};
    et_model_t model;
    et_etm_info_t info;
    uint8_t *copy;
    size_t i;
    if (size > UINT32_MAX) {
        counts->rejected++;
        return;
    }
    /* An exact-size heap copy: AddressSanitizer flags any read past the end. */
    copy = (uint8_t *)malloc(size ? size : 1);
    DRIVE_CHECK(copy != NULL);
    memcpy(copy, data, size);
    if (!drive_parse(copy, (uint32_t)size, &model, &info)) {
        counts->rejected++;
        free(copy);
        return;
    }
    for (i = 0; i < sizeof optimizers; i++) {
        if (opts->every_optimizer || i == info.blob_crc % sizeof optimizers) {
            drive_config(copy, &info, optimizers[i], opts, counts);
        }
    }
    free(copy);
}
