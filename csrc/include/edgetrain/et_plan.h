/*
 * edgetrain — the memory plan: the exact arena et_train_init needs, broken
 * down by part. The one source of truth for SRAM sizes (Python asks this
 * function too). Every buffer is placed at an 8-byte boundary; a part's
 * size includes the padding of its buffers.
 *
 * Adding a part: a new et_plan_part_t value before ET_PLAN_PART_COUNT, its
 * name in et_plan_part_name, and its buffers taken in plan.c's carve step.
 * Twin: edgetrain/reference/plan.py.
 */
#ifndef EDGETRAIN_ET_PLAN_H
#define EDGETRAIN_ET_PLAN_H

#include <stdint.h>

#include "et_status.h"
#include "et_model.h"
#include "et_train.h"

typedef enum {
    ET_PLAN_CONTEXT = 0,     /* the context record, one record per layer and the commit handle
                                (et_commit_t) (depends on the ABI) */
    ET_PLAN_ACTIVATIONS = 1, /* every layer's output (flatten: none, it aliases) and BN per-channel
                                mean_hat/inv_sigma, kept from the forward pass for the backward pass */
    ET_PLAN_GRADIENTS = 2,   /* gradient scratch: two delta buffers, the wide gradient at a BN output,
                                the conv weight gradient (SGD, summed), an im2col row, a weight-row
                                buffer, parameter gradients */
    ET_PLAN_OPTIMIZER = 3,   /* SRAM copies of biases and BN tensors, max-norm trackers */
    ET_PLAN_PRNG = 4,        /* the PRNG state */
    ET_PLAN_LRT_STATE = 5,   /* ET_OPT_LRT: per weight layer its persistent accumulator, header, int16
                                bases and column 1's low bits (et_lrt_state_get_size: 60 + 2 r (n + m)
                                + ceil(n b / 8) + ceil(m b / 8), b = 2 at r >= 3) */
    ET_PLAN_LRT_SCRATCH = 6, /* ET_OPT_LRT: the flush context and the accumulate scratch shared by all
                                layers, sized for the layer that needs most */
    ET_PLAN_COMMIT = 7,      /* the commit's staging buffer (config commit_stage_bytes) */
    ET_PLAN_LGA_STATE = 8,   /* ET_OPT_LGA: per weight layer its factors and optimizer states
                                (et_lga_state_get_size: 64 + 2 r (n + m), + 4 r (n + m) momentum/Adam,
                                + 8 r (n + m) Adam, each array 8-padded) */
    ET_PLAN_LGA_SCRATCH = 9, /* ET_OPT_LGA: the gradient sums shared by all layers (the largest
                                et_lga_grad_get_buffer_size) and the int16 pre-activations of the
                                largest weight layer output */
    ET_PLAN_PART_COUNT = 10
} et_plan_part_t;

typedef struct {
    uint32_t part[ET_PLAN_PART_COUNT]; /* bytes per part */
    uint32_t total;                    /* sum of the parts: the arena size */
} et_plan_t;

/*
 * Plan the arena for `model` (checked by et_model_check first) trained with
 * `config`. ET_ERR_ARG for NULL or a config out of range (an ET_OPT_LRT
 * config: et_lrt_config_check and lrt_rank 0..8; an ET_OPT_LGA config:
 * et_lga_config_check and lga_rank 0..8), the model check's
 * status, ET_ERR_RANGE when the total exceeds 2^32-1 bytes.
 */
et_status_t et_plan(const et_model_t *model, const et_train_config_t *config, et_plan_t *plan);

/* One weight layer's low-rank figures under an ET_OPT_LRT config. */
typedef struct {
    uint16_t n;             /* outputs: rows of W */
    uint16_t m;             /* inputs: columns of W (k*k*in_c for conv) */
    uint8_t rank;           /* the layer's rank r (lrt_rank[layer], else lrt.rank) */
    uint8_t kind;           /* et_lrt_kind_t: which B applies */
    uint32_t state_bytes;   /* persistent accumulator: et_lrt_state_get_size(n, m, r) */
    uint32_t norms_bytes;   /* its two max-norm trackers (counted in the optimizer part) */
    uint32_t scratch_bytes; /* its need of the shared accumulate scratch: et_lrt_accumulate_get_buffer_size */
} et_plan_lrt_layer_t;

/*
 * The figures of weight layer `layer` of `model` under `config` (the planner's
 * own numbers: et_plan's lrt parts are their 8-byte-aligned sums and maxima).
 * ET_ERR_ARG for NULL, a config that is not ET_OPT_LRT or out of range, a
 * layer index out of range or a layer without weights; the model check's
 * status for a bad model.
 */
et_status_t et_plan_lrt_layer(const et_model_t *model, const et_train_config_t *config, uint16_t layer,
                              et_plan_lrt_layer_t *out);

/* One weight layer's figures under an ET_OPT_LGA config. */
typedef struct {
    uint16_t n;             /* outputs: rows of W */
    uint16_t m;             /* inputs: columns of W (k*k*in_c for conv) */
    uint8_t rank;           /* the layer's rank r (lga_rank[layer], else lga.rank) */
    uint8_t optimizer;      /* et_lga_optimizer_t */
    uint32_t state_bytes;   /* factors and optimizer states: et_lga_state_get_size */
    uint32_t scratch_bytes; /* its need of the shared gradient sums: et_lga_grad_get_buffer_size */
    uint32_t z_bytes;       /* its pre-activation buffer: 2 * output elements */
} et_plan_lga_layer_t;

/*
 * The figures of weight layer `layer` under an ET_OPT_LGA config (et_plan's
 * lga parts are their 8-byte-aligned sums and maxima). ET_ERR_ARG for NULL,
 * a config that is not ET_OPT_LGA or out of range, a layer index out of
 * range or a layer without weights; the model check's status for a bad model.
 */
et_status_t et_plan_lga_layer(const et_model_t *model, const et_train_config_t *config, uint16_t layer,
                              et_plan_lga_layer_t *out);

/* Short lower-case name of a part ("activations"); "unknown" for other values. */
const char *et_plan_part_name(int part);

/*
 * Per-layer size query: *saved = bytes this layer keeps from forward for
 * backward (its output and BN per-channel state; 0 for flatten and the
 * head), *scratch = gradient scratch this layer needs on its own under
 * `config` (the plan shares scratch between layers: its gradient part is the
 * per-buffer maxima over the layers). ET_ERR_ARG for NULL, et_layer_check's
 * status for a bad layer, ET_ERR_RANGE when a figure exceeds 2^32-1 bytes.
 */
et_status_t et_layer_get_buffer_size(const et_layer_t *layer, const et_train_config_t *config, uint32_t *saved,
                                     uint32_t *scratch);

#endif /* EDGETRAIN_ET_PLAN_H */
