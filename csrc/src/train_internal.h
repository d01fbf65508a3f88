/*
 * edgetrain — the training context's layout, shared by plan.c (which places
 * it in the arena) and train.c (which uses it). Not a public header.
 */
#ifndef EDGETRAIN_TRAIN_INTERNAL_H
#define EDGETRAIN_TRAIN_INTERNAL_H

#include "edgetrain/et_commit.h"
#include "edgetrain/et_fixed.h"
#include "edgetrain/et_lga.h"
#include "edgetrain/et_lrt.h"
#include "edgetrain/et_maxnorm.h"
#include "edgetrain/et_model.h"
#include "edgetrain/et_nvm.h"
#include "edgetrain/et_plan.h"
#include "edgetrain/et_train.h"

#define ET_TRAIN_MAGIC 0x45545452u /* "ETTR" */

/*
 * Port hook: where a training step's phases begin. A firmware build may
 * define ET_PORT_PHASE(p) (e.g. a store to a marker register) to count
 * instructions per phase; by default it is nothing. docs/firmware.md.
 */
#define ET_PHASE_OTHER 0      /* argument checks, bookkeeping between phases */
#define ET_PHASE_FORWARD 1    /* the forward pass */
#define ET_PHASE_BACKWARD 2   /* head gradient, input gradients, bias/BN updates */
#define ET_PHASE_ACCUMULATE 3 /* ET_OPT_LRT: the rank-1 terms fed to the accumulators */
#define ET_PHASE_UPDATE 4     /* weight updates and their NVM commits (SGD update, LRT flush) */
#ifndef ET_PORT_PHASE
#define ET_PORT_PHASE(p) ((void)0)
#endif

/* Per-layer state. Pointers are NULL where the layer kind or optimizer has no such buffer. */
typedef struct {
    const int8_t *weights;  /* read view of the active weights in NVM (a commit bank, or the factory
                               image before the first commit); repointed after each commit */
    int16_t *bias;          /* SRAM copy of the bias (out_c) */
    int16_t *bn;            /* SRAM copy of the BN tensor [4][c] (gamma, beta, mean EMA, msq EMA) */
    int32_t *bn_mean_hat;   /* per channel, from the last forward pass */
    int32_t *bn_inv_sigma;  /* per channel, from the last forward pass */
    void *out;              /* output buffer (NULL for flatten and the head: they alias their input) */
    et_maxnorm_t *mn_weight; /* tracker of the weight gradient (conv/dense, SGD), of gamma (BN) */
    et_maxnorm_t *mn_bias;   /* tracker of the bias gradient (conv/dense), of beta (BN) */
    uint32_t bn_decay_q30;  /* eta^t of this BN layer's statistics */
    et_lrt_state_t *lrt;    /* ET_OPT_LRT: the layer's accumulator (conv/dense), in the lrt_state part */
    et_lrt_norms_t *lrt_norms; /* ET_OPT_LRT: its max-norm trackers (optimizer part) */
    uint32_t lrt_samples;   /* ET_OPT_LRT: samples since the last flush attempt (0..B-1) */
    et_train_lrt_stats_t lrt_done; /* ET_OPT_LRT: counters up to the last reset (et_train_lrt adds the state's) */
    et_lga_state_t *lga;    /* ET_OPT_LGA: the layer's factors and optimizer states (lga_state part) */
    et_clip_counts_t clips; /* saturation counters (et_train_get_clip_counts): part of the context */
} et_train_layer_t;

struct et_train {
    uint32_t magic;
    const et_model_t *model;
    et_nvm_t *nvm;
    uint32_t image_at;          /* byte offset of the model image inside the NVM region */
    et_train_config_t config;
    et_train_layer_t *layers;   /* model->n_layers records */
    int8_t *grad[2];            /* delta ping-pong buffers, grad_elems each */
    uint32_t grad_elems;
    int16_t *grad16;            /* the wide gradient at a BN output (int16, LSB 2^-15) */
    int32_t *dw;                /* conv weight gradient, n*m (SGD with summed conv gradients) */
    int16_t *xrow;              /* one im2col / input row, m_max values */
    int8_t *row;                /* one new weight row, m_max values (SGD) */
    int64_t *pgrad;             /* parameter gradients, 2 * c_max values */
    et_prng_t *prng;
    et_lrt_flush_t *lrt_flush;  /* ET_OPT_LRT: the flush context (lrt_scratch part) */
    void *lrt_scratch;          /* ET_OPT_LRT: accumulate scratch shared by the layers */
    uint32_t lrt_scratch_size;  /* its bytes: the largest need of the layers (et_lrt_figures in plan.c) */
    uint32_t lrt_batch_count;   /* ET_OPT_LRT: terms buffered for the layer's next batch (conv_term_batch > 1) */
    uint32_t samples;           /* training steps taken */
    uint16_t last_pred;
    et_pair_fn hook;
    void *hook_user;
    uint32_t *cell_counts;      /* host accounting (NULL on a device) */
    const uint8_t *input;       /* the sample of the current forward pass */
    et_commit_t *commit;        /* the atomic commit over the training area (context part) */
    uint8_t *stage;             /* its staging buffer (commit part), config.commit_stage_bytes */
    int32_t open_tensor;        /* tensor id with an open commit (et_train_write_rows), -1 for none */
    uint32_t next_row;          /* the open commit accepts rows from here on */
    uint64_t commits_lost;      /* et_commit_end answered ET_ERR_WORN: the record found no slot */
    void *lga_scratch;          /* ET_OPT_LGA: the gradient sums shared by the layers (lga_scratch part) */
    uint32_t lga_scratch_size;  /* its bytes: the largest et_lga_grad_get_buffer_size of the layers */
    int16_t *lga_z;             /* ET_OPT_LGA: a weight layer's pre-activations (lga_scratch part) */
};

/*
 * Compute the arena layout of (model, config). With base == NULL only the
 * plan is filled; otherwise the context is placed at base (8-byte aligned,
 * plan->total bytes) and its buffers assigned. The model and config must
 * have been checked.
 */
et_status_t et_plan_carve(const et_model_t *model, const et_train_config_t *config, uint8_t *base, et_plan_t *plan,
                          et_train_t **ctx);

/* Checks of a config's ranges (shared by et_plan and et_train_init). */
et_status_t et_train_config_check(const et_train_config_t *config);

/*
 * The accumulator config of weight layer `layer` under an ET_OPT_LRT config:
 * config->lrt with the layer's rank (lrt_rank[layer], else lrt.rank) and truncation
 * (lrt_truncation[layer], else lrt.unbiased).
 */
void et_train_lrt_layer_config(const et_train_config_t *config, uint16_t layer, et_lrt_config_t *out);

/* Terms per et_lrt_accumulate_batch_* call of weight layer l under lc: lc->conv_term_batch for a conv layer
 * when above 1, else 1 (one et_lrt_accumulate_* call per term). */
uint32_t et_train_lrt_term_batch(const et_layer_t *l, const et_lrt_config_t *lc);

/* Bytes at the start of lrt_scratch that hold a layer's buffered terms for batches of k (k > 1; 0 for k = 1):
 * k deltas (n bytes each) and k x rows (m bytes each), padded to 4, then k delta and k x exponents (int32). */
uint32_t et_train_lrt_batch_input_bytes(uint32_t n, uint32_t m, uint32_t k);

/* The factor config of weight layer `layer` under an ET_OPT_LGA config: config->lga with the layer's rank. */
void et_train_lga_layer_config(const et_train_config_t *config, uint16_t layer, et_lga_config_t *out);

#endif /* EDGETRAIN_TRAIN_INTERNAL_H */
