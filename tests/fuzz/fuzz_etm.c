/*
 * libFuzzer harness for et_etm_parse (csrc/src/etm.c) and the calls that
 * follow it. Built by `make fuzz` with clang -fsanitize=fuzzer,address,undefined.
 *
 * Each input is parsed twice: as given (most inputs stop at a CRC), and as a
 * copy whose three CRCs the harness recomputes, so that mutations reach the
 * checks behind them. Every parse must either fail without touching its
 * outputs or succeed with a table that et_model_check accepts and whose
 * tensors lie inside the blob (the harness reads every tensor byte, so
 * AddressSanitizer sees any escape). A resealed blob the parser accepts then
 * goes through plan -> init -> one training step -> checkpoint -> recovery
 * under one of SGD, LRT and bias training, picked by the blob's CRC
 * (tests/c/drive.c), with arenas capped at
 * FUZZ_ARENA_CAP bytes so that the fuzzer does not allocate huge ones. Any
 * violation aborts: a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drive.h"
#include "edgetrain/edgetrain.h"

#ifndef FUZZ_ARENA_CAP
#define FUZZ_ARENA_CAP (1u << 20)
#endif

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t crc(const uint8_t *p, uint32_t n)
{
    uint32_t c = 0;
    if (et_crc32(&c, p, n) != ET_OK) {
        abort();
    }
    return c;
}

/* Recompute the metadata, header and whole-blob CRCs where the header's sizes allow. */
static void reseal(uint8_t *b, uint32_t n)
{
    uint32_t image_offset, blob_size;
    if (n < ET_ETM_HEADER_BYTES) {
        return;
    }
    image_offset = rd32(b + 16);
    blob_size = rd32(b + 8);
    if (image_offset >= ET_ETM_HEADER_BYTES && image_offset <= n) {
        wr32(b + 56, crc(b + ET_ETM_HEADER_BYTES, image_offset - ET_ETM_HEADER_BYTES));
    }
    wr32(b + 60, crc(b, 60));
    if (blob_size >= 4 && blob_size <= n) {
        wr32(b + blob_size - 4, crc(b, blob_size - 4));
    }
}

static void parse_one(const uint8_t *blob, uint32_t size, uint32_t flags)
{
    et_model_t model, before_model;
    et_etm_info_t info, before_info;
    uint32_t bad = 0xFFFFFFFFu;
    uint16_t bad_layer;
    uint16_t i;
    et_status_t st;
    memset(&model, 0xA5, sizeof model);
    memset(&info, 0x5A, sizeof info);
    before_model = model;
    before_info = info;
    st = et_etm_parse(blob, size, flags, &model, &info, &bad);
    if (st != ET_OK) {
        if (st != ET_ERR_CORRUPT && st != ET_ERR_VERSION && st != ET_ERR_UNSUPPORTED) {
            abort();
        }
        if (bad > size || memcmp(&model, &before_model, sizeof model) != 0 ||
            memcmp(&info, &before_info, sizeof info) != 0) {
            abort();
        }
        return;
    }
    if (model.image != blob + info.image_offset || info.blob_size > size ||
        (uint64_t)info.image_offset + info.image_size + ET_ETM_TRAILER_BYTES != info.blob_size ||
        model.image_size != info.image_size || model.n_layers != info.n_layers) {
        abort();
    }
    if (et_model_check(&model, &bad_layer) != ET_OK) {
        abort();
    }
    {
        volatile uint32_t sum = 0;
        for (i = 0; i < model.n_layers; i++) {
            const et_layer_t *l = &model.layers[i];
            uint32_t wb, bb, nb, k;
            const char *name;
            if (et_layer_tensor_bytes(l, &wb, &bb, &nb) != ET_OK) {
                abort();
            }
            for (k = 0; k < wb; k++) {
                sum += model.image[l->weight_offset + k];
            }
            for (k = 0; k < bb; k++) {
                sum += model.image[l->bias_offset + k];
            }
            for (k = 0; k < nb; k++) {
                sum += model.image[l->bn_offset + k];
            }
            if (et_etm_layer_name(&info, i, &name) != ET_OK || (const uint8_t *)name < blob ||
                (const uint8_t *)name + strlen(name) >= blob + info.image_offset) {
                abort();
            }
        }
        (void)sum;
    }
    if (strlen(info.name) > ET_ETM_MAX_NAME || strlen(info.provenance) > ET_ETM_MAX_PROVENANCE) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;
    uint32_t n;
    if (size > (1u << 20)) {
        return 0;
    }
    n = (uint32_t)size;
    /* Exact-size heap copies: ASan flags any read past the end. */
    copy = (uint8_t *)malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data, size);
    parse_one(copy, n, 0);
    parse_one(copy, n, ET_ETM_SKIP_BLOB_CRC);
    reseal(copy, n);
    parse_one(copy, n, 0);
    {
        const drive_opts_t opts = {FUZZ_ARENA_CAP, 1, 0};
        drive_counts_t counts = {0, 0, 0, 0};
        drive_blob(copy, n, &opts, &counts);
    }
    free(copy);
    return 0;
}
