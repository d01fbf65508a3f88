/*
 * edgetrain — the whole call sequence a firmware needs, on one page:
 * parse a .etm model blob that lies in NVM, plan the arena, set up the
 * training context, train on one labelled sample, checkpoint, and recover
 * after a "reboot" from NVM alone. The NVM here is a RAM buffer behind the
 * plain-memory HAL (et_nvm_ram); on a device it is the memory-mapped NVM
 * and the board's HAL (csrc/port/cortex-m/board_emu.c drives an NVM
 * controller).
 *
 * Build and run on the host (make example does this):
 *   cc -std=c99 -Icsrc/include examples/train_one_sample.c csrc/src/[a-z]*.c -o train_one_sample
 *   ./train_one_sample edgetrain/model/pretrained/mcu-cnn.etm
 * The training part (train_one_sample()) uses no libc beyond <string.h>;
 * only main() reads the file and prints.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "edgetrain/edgetrain.h"

/* The NVM partition: the .etm blob at its start, the training area of the atomic commit after it. */
#define NVM_BYTES (256u * 1024u)
/* SRAM for the training context; et_train_get_buffer_size says what a model and config need. */
#define ARENA_BYTES (96u * 1024u)

static uint8_t nvm_mem[NVM_BYTES];
static uint64_t arena[ARENA_BYTES / 8]; /* 8-byte aligned, as et_train_init requires */

/* One step of the life of a device: returns ET_OK or the first failing status. */
static et_status_t train_one_sample(const uint8_t *input, uint32_t input_len, uint16_t label, uint16_t *predicted,
                                    uint16_t *after_step, uint16_t *after_reboot)
{
    et_nvm_t nvm;
    et_nvm_ram_stats_t nvm_stats;
    et_model_t model;
    et_etm_info_t info;
    et_train_config_t cfg;
    et_train_t *ctx;
    et_train_result_t r;
    uint32_t need = 0;
    et_status_t st;

    /* 1. The NVM HAL over the partition (a device: its own HAL over the memory-mapped NVM). */
    if ((st = et_nvm_ram_init(&nvm, nvm_mem, NVM_BYTES, &nvm_stats)) != ET_OK) {
        return st;
    }
    /* 2. The model: parsed and checked in place; the weights stay where they lie. */
    if ((st = et_etm_parse(nvm.base, nvm.size, 0, &model, &info, NULL)) != ET_OK) {
        return st;
    }
    if (input_len != (uint32_t)model.layers[0].in.h * model.layers[0].in.w * model.layers[0].in.c) {
        return ET_ERR_ARG;
    }
    /* 3. The training configuration: SGD at lr 0.01 (ET_OPT_LRT for low-rank training). */
    if ((st = et_train_config_default(&cfg)) != ET_OK) {
        return st;
    }
    cfg.bn_warm = 1; /* a trained model: keep its batch-norm statistics */
    /* 4. The arena the plan needs, checked against what this build reserved. */
    if ((st = et_train_get_buffer_size(&model, &cfg, &need)) != ET_OK) {
        return st;
    }
    if (need > sizeof arena) {
        return ET_ERR_NOMEM; /* raise ARENA_BYTES to `need`, or lower the rank or the batch */
    }
    /* 5. The context: placed in the arena; recovers any trained state already in NVM. */
    if ((st = et_train_init(&ctx, arena, sizeof arena, &model, &nvm, &cfg, &need)) != ET_OK) {
        return st;
    }
    /* 6. One training step: r.predicted is the prediction before the update. */
    if ((st = et_train_step(ctx, input, input_len, label, &r)) != ET_OK) {
        return st; /* ET_ERR_IO: power lost mid-commit; the old weights stay active */
    }
    *predicted = r.predicted;
    /* 7. Checkpoint: biases and batch-norm tensors (trained in SRAM) committed to NVM. */
    if ((st = et_train_checkpoint(ctx)) != ET_OK) {
        return st;
    }
    if ((st = et_train_predict(ctx, input, input_len, &r)) != ET_OK) {
        return st;
    }
    *after_step = r.predicted;
    /* 8. A reboot: SRAM is gone; a new context over the same NVM recovers every tensor. */
    memset(arena, 0, sizeof arena);
    if ((st = et_etm_parse(nvm.base, nvm.size, ET_ETM_SKIP_BLOB_CRC, &model, &info, NULL)) != ET_OK) {
        return st; /* the training area starts right after the image, over the blob's trailing CRC */
    }
    if ((st = et_train_init(&ctx, arena, sizeof arena, &model, &nvm, &cfg, &need)) != ET_OK) {
        return st;
    }
    if ((st = et_train_predict(ctx, input, input_len, &r)) != ET_OK) {
        return st;
    }
    *after_reboot = r.predicted;
    return ET_OK;
}

int main(int argc, char **argv)
{
    static uint8_t input[28 * 28];
    uint16_t predicted = 0;
    uint16_t after = 0;
    uint16_t rebooted = 0;
    size_t size;
    uint32_t i;
    et_status_t st;
    FILE *fh;
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.etm\n", argv[0]);
        return 2;
    }
    fh = fopen(argv[1], "rb");
    if (fh == NULL) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    size = fread(nvm_mem, 1, NVM_BYTES, fh); /* "factory programming": the blob at the NVM start */
    fclose(fh);
    for (i = 0; i < sizeof input; i++) {
        input[i] = (uint8_t)((i * 37u) % 256u); /* a synthetic 28x28 sample */
    }
    st = train_one_sample(input, sizeof input, 3, &predicted, &after, &rebooted);
    if (st != ET_OK) {
        fprintf(stderr, "train_one_sample: %s\n", et_status_name(st));
        return 1;
    }
    printf("model %s (%lu bytes): predicted %u before the step, %u after it, %u after a reboot\n", argv[1],
           (unsigned long)size, (unsigned)predicted, (unsigned)after, (unsigned)rebooted);
    return 0;
}
