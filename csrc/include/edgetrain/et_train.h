/*
 * edgetrain — the training step: a context over a model whose image lies in
 * NVM, predict, train on one labelled sample, checkpoint.
 *
 * Memory: the context and every buffer live in one caller-owned arena whose
 * exact size et_plan() (et_plan.h) computes; nothing is allocated.
 * NVM: the factory model image is never written. Every change goes through
 * the atomic commit (et_commit.h) into a training area after the image:
 * weights through et_train_write_rows(), which streams the changed rows of a
 * layer update into one commit (A/B banks + CRC'd record; only program units
 * that differ are programmed), after which the layer's read pointer moves to
 * the new bank. Biases and batch-norm parameters/statistics are trained in
 * SRAM copies and committed by et_train_checkpoint(). A context set up over
 * the same NVM after a power loss (et_train_init) recovers the last complete
 * commit of every tensor from NVM alone.
 * docs/training.md describes the step; docs/layers.md the arithmetic.
 *
 * Twin: edgetrain/reference/train.py (et_train_<op> is train.<op>).
 */
#ifndef EDGETRAIN_ET_TRAIN_H
#define EDGETRAIN_ET_TRAIN_H

#include <stdint.h>

#include "et_status.h"
#include "et_fixed.h"
#include "et_maxnorm.h"
#include "et_lrt.h"
#include "et_lga.h"
#include "et_model.h"
#include "et_nvm.h"
#include "et_commit.h"

typedef enum {
    ET_OPT_NONE = 0, /* inference only: a step predicts and changes nothing */
    ET_OPT_BIAS = 1, /* biases and BN gamma/beta trained every sample (max-norm); weights fixed */
    ET_OPT_SGD = 2,  /* as BIAS, plus a per-sample quantized weight update (max-norm) */
    ET_OPT_LRT = 3,  /* as BIAS, plus low-rank training: each weight layer's (delta, x) terms are
                        accumulated every sample (et_lrt.h) and its weights written every B samples
                        of the layer, only where the density gate passes (docs/training.md) */
    ET_OPT_LGA = 4   /* as BIAS, plus low-rank gradient approximation (et_lga.h, docs/lga.md): each weight
                        layer computes W x + A (B x); the optimizer steps on the factors every sample and
                        A B is merged into W every K samples of the layer */
} et_optimizer_t;

/* Default staging buffer of the commit: enough for any in-place NVM with a program unit up to 16 bytes. */
#define ET_TRAIN_STAGE_DEFAULT 16
/* Largest staging buffer (bytes): a 64 KiB erase unit. */
#define ET_TRAIN_STAGE_MAX 65536
/* Default commit records per tensor ring. */
#define ET_TRAIN_RING_DEFAULT 8

/* Learning rate 0.01 as a fixed-point pair: 167772 * 2^-24. */
#define ET_TRAIN_LR_DEFAULT 167772
#define ET_TRAIN_LR_EXP_DEFAULT (-24)

/* Per-layer truncation of the LRT accumulator (et_train_config_t.lrt_truncation). */
typedef enum {
    ET_LRT_TRUNC_DEFAULT = 0,  /* the config's lrt.unbiased */
    ET_LRT_TRUNC_BIASED = 1,   /* keep the top r (lrt.unbiased = 0 for this layer) */
    ET_LRT_TRUNC_UNBIASED = 2  /* Benzing's OK truncation (lrt.unbiased = 1 for this layer) */
} et_lrt_truncation_t;

typedef struct {
    uint8_t optimizer;       /* et_optimizer_t */
    uint8_t conv_per_pixel;  /* SGD only: 0 = a conv layer's weight gradient is summed over its output
                                pixels (one update per sample); 1 = the update is applied at every
                                output pixel (the paper's baseline, for its write counts) */
    uint8_t bn_warm;         /* 0 = BN statistics start from zero with bias correction (a fresh model);
                                1 = the image's statistics are used as they are (a trained model) */
    uint32_t lr_weight;      /* weight learning rate = lr_weight * 2^lr_weight_exp; 0..2^31-1 */
    int32_t lr_weight_exp;   /* -64..0 */
    uint32_t lr_bias;        /* bias and BN gamma/beta learning rate, same form */
    int32_t lr_bias_exp;     /* -64..0 */
    uint32_t seed;           /* seeds the context's PRNG (et_prng_t); any value */
    et_lrt_config_t lrt;     /* ET_OPT_LRT: the accumulator's hyper-parameters (et_lrt.h, checked by
                                et_lrt_config_check; rank, B per kind, eta0, rho_min, kappa, biased or
                                unbiased); not read by the other optimizers */
    uint8_t lrt_rank[ET_MAX_LAYERS]; /* ET_OPT_LRT: rank of weight layer i (by layer index), 1..8;
                                        0 = lrt.rank. Entries of layers without weights are ignored */
    uint32_t commit_stage_bytes; /* the commit's staging buffer in the arena (plan part "commit"), bytes:
                                    16..65536, a multiple of the NVM's alignment unit and at least
                                    et_commit_get_buffer_size(nvm) (checked at init); default 16; flash
                                    needs its erase unit */
    uint16_t ring_slots;     /* commit records per tensor ring, ET_COMMIT_MIN_RING..ET_COMMIT_MAX_RING; default 8 */
    et_lga_config_t lga;     /* ET_OPT_LGA: optimizer, rank, restart rule, K, lr, betas, eps (et_lga.h, checked
                                by et_lga_config_check); not read by the other optimizers */
    uint8_t lga_rank[ET_MAX_LAYERS]; /* ET_OPT_LGA: rank of weight layer i (by layer index), 1..8; 0 = lga.rank */
    uint8_t lrt_truncation[ET_MAX_LAYERS]; /* ET_OPT_LRT: truncation of weight layer i (by layer index), an
                                              et_lrt_truncation_t: ET_LRT_TRUNC_DEFAULT (0) = lrt.unbiased,
                                              ET_LRT_TRUNC_BIASED (1) or ET_LRT_TRUNC_UNBIASED (2); 3..255 are
                                              rejected. Entries of layers without weights are ignored */
} et_train_config_t;

/* The training context: opaque, placed at the start of the arena by et_train_init. */
typedef struct et_train et_train_t;

/* What a step or a prediction reports. */
typedef struct {
    uint16_t predicted; /* argmax of the logits, first maximum on ties (before any update) */
    uint8_t correct;    /* 1 when predicted == label (a step), else 0 */
} et_train_result_t;

/*
 * One rank-1 term of a weight layer's gradient: the layer's gradient is the
 * sum over its terms of 2^(delta_exp + x_exp) * delta x^T. A dense layer has
 * one term per sample; a conv layer one per output pixel t (delta = the out_c
 * gradients at z at pixel t, x = the im2col row of t in OHWI order). delta
 * includes the layer scale alpha as its exponent (-7 - alpha_shift).
 */
typedef struct {
    const int8_t *delta; /* n values (ET_FMT_GRAD integers) */
    const int16_t *x;    /* m values: stored integers of the layer's input format */
    uint16_t n;          /* out_c */
    uint16_t m;          /* k*k*in_c (conv) or in_c (dense) */
    uint32_t index;      /* t: the output pixel (0 for dense) */
    int32_t delta_exp;   /* delta[i] is worth delta[i] * 2^delta_exp */
    int32_t x_exp;       /* x[j] is worth x[j] * 2^x_exp */
} et_grad_pair_t;

/* Called once per term; a non-OK return stops the step with that status. */
typedef et_status_t (*et_pair_fn)(void *user, uint16_t layer, const et_grad_pair_t *pair);

/*
 * Fill *config with the defaults: SGD, summed conv gradients, fresh BN, lr
 * 0.01 for both, seed 0; lrt = et_lrt_config_default (the paper's), lga =
 * et_lga_config_default, no per-layer ranks.
 */
/* Fill *config with the defaults: SGD, summed conv gradients, fresh BN, lr 0.01 for both, seed 0,
 * a 16-byte commit staging buffer, 8 records per ring. */
et_status_t et_train_config_default(et_train_config_t *config);

/* Bytes of arena et_train_init needs: et_plan(model, config).total. */
et_status_t et_train_get_buffer_size(const et_model_t *model, const et_train_config_t *config, uint32_t *bytes);

/*
 * Set up a context in `arena` (arena_bytes, 8-byte aligned) over `model`,
 * whose image must lie inside the NVM region of `nvm`, and recover the
 * trained state from NVM alone: the training area starts after the image
 * (rounded up to the NVM's alignment unit) and runs to the end of the region
 * (et_commit_area_size bytes are needed); et_commit_open finds each tensor's
 * last complete commit (the factory image where there is none). Commit
 * records carry the CRC-32 of the factory image as model id, so a new image
 * starts from its own tensors. model and nvm must outlive the context.
 * The weights are read where they lie; biases and BN tensors are copied to
 * SRAM from their active versions (BN statistics start at zero unless
 * bn_warm). *required (if not NULL) receives the planned size whenever the
 * model and config are valid. Errors, with nothing written but *required:
 * ET_ERR_ARG (NULL, misaligned arena, config out of range, image outside
 * the NVM region, a HAL without program, commit_stage_bytes not a multiple
 * of the NVM's alignment unit or below et_commit_get_buffer_size), the
 * et_model_check status for a bad model, ET_ERR_UNSUPPORTED (an NVM geometry
 * the commit cannot use: program unit not a power of two up to 4096, erase
 * unit not a multiple of it or without an erase function), ET_ERR_NOMEM
 * (arena smaller than the plan, or no room for the training area after the
 * image).
 */
et_status_t et_train_init(et_train_t **ctx, void *arena, uint32_t arena_bytes, const et_model_t *model,
                          et_nvm_t *nvm, const et_train_config_t *config, uint32_t *required);

/*
 * Inference: forward with the current parameters and statistics (nothing is
 * updated). input: the model's input tensor, input_len = in.h*in.w*in.c
 * bytes (ET_FMT_INPUT). ET_ERR_ARG for a wrong length or NULL.
 */
et_status_t et_train_predict(et_train_t *ctx, const uint8_t *input, uint32_t input_len, et_train_result_t *result);

/*
 * One training step on (input, label), label 0..n_classes-1: forward (BN
 * statistics updated with this sample), softmax cross-entropy, backward,
 * and the optimizer's updates (weights written through et_train_write_rows,
 * one commit per layer update; per-pixel SGD: one per output pixel).
 * result->predicted is the prediction of the forward pass, before the
 * updates (prequential). With ET_OPT_NONE it is et_train_predict. Bad
 * arguments (NULL, wrong input length, label out of range) → ET_ERR_ARG with
 * nothing changed; an NVM failure (ET_ERR_IO: power lost) → its status, the
 * step stopped where it failed and the interrupted commit leaves the old
 * weights (re-initialise the context over the NVM). Worn cells are not an
 * error: they are counted (et_train_nvm_stats) and training continues with
 * the values the cells hold.
 */
et_status_t et_train_step(et_train_t *ctx, const uint8_t *input, uint32_t input_len, uint16_t label,
                          et_train_result_t *result);

/*
 * Commit the SRAM copies of every bias and BN tensor (bias-corrected
 * statistics, so that a context set up with bn_warm = 1 predicts as this one
 * does): one commit per parameter tensor whose stored bytes differ, through
 * the same commit as the weights. Ends an open weight commit first.
 * ET_ERR_IO when power is lost (the tensors not yet committed keep their
 * previous versions).
 */
et_status_t et_train_checkpoint(et_train_t *ctx);

/*
 * The one path for weight changes: rows row0..row0+n_rows-1 of layer
 * `layer`'s weight matrix ([n][m], OHWI rows for conv) become `rows`
 * (n_rows*m int8). The rows stream into the layer's open commit (one is
 * begun if none is open); rows not given keep their values. The commit ends
 * (and the new weights become active and the layer's read pointer moves to
 * them) at et_train_write_end, which the training step calls after each
 * layer update; a write to another layer, or to a row before the last one
 * written, ends the open commit first. Until then the rows are not visible
 * through the read pointer. Only program units that differ from the target
 * bank are programmed. ET_ERR_ARG for a layer without weights or rows out of
 * range (nothing written); ET_ERR_IO as the HAL reports it (the commit is
 * abandoned, the old weights stay active).
 */
et_status_t et_train_write_rows(et_train_t *ctx, uint16_t layer, uint32_t row0, uint32_t n_rows, const int8_t *rows);

/*
 * End the open weight commit, if any: its rows become the layer's active
 * weights (atomically) and the read pointer follows. When no ring slot takes
 * the record (worn cells, ET_ERR_WORN from et_commit_end) the old weights
 * stay, the loss is counted (et_train_nvm_stats) and ET_OK is returned.
 * ET_ERR_ARG for a bad context; ET_ERR_IO when power is lost.
 */
et_status_t et_train_write_end(et_train_t *ctx);

/*
 * Call fn(user, layer, &pair) for every rank-1 term of every weight layer
 * during each training step, after the layer's gradient is final and before
 * its update (NULL fn: none). The pair's buffers are valid during the call.
 */
et_status_t et_train_set_pair_hook(et_train_t *ctx, et_pair_fn fn, void *user);

/*
 * Host accounting of logical writes: counts[i] += 1 whenever the write path
 * (weights) or the checkpoint (biases, BN) changes the value of the tensor
 * byte that lies at image byte i in the factory layout. Physical writes
 * (both banks, records) are the HAL's business. n must equal the image size;
 * NULL counts turns counting off.
 */
et_status_t et_train_set_cell_counter(et_train_t *ctx, uint32_t *counts, uint32_t n);

/*
 * Read view of a layer's output from the last forward pass (bytes of its
 * format). ET_ERR_ARG for the head (it has no output: read the layer before);
 * ET_ERR_STATE for a flatten of the input, which is the caller's sample.
 */
et_status_t et_train_output(const et_train_t *ctx, uint16_t layer, const void **data, uint32_t *bytes);

/*
 * The SRAM copies of a layer's bias (out_c int16) and BN tensor ([4][c]
 * int16: gamma, beta, mean EMA, mean-square EMA); NULL where the layer has none.
 */
et_status_t et_train_params(const et_train_t *ctx, uint16_t layer, const int16_t **bias, const int16_t **bn);

/* The read pointer of a layer's weights (in NVM: the active bank, or the factory image before its
 * first commit); ET_ERR_ARG for a layer without. */
et_status_t et_train_weights(const et_train_t *ctx, uint16_t layer, const int8_t **weights);

/* ET_OPT_LRT: what a weight layer's accumulator has done since init (saturating counters). */
typedef struct {
    uint32_t terms;   /* rank-1 terms accumulated (the state's `terms`; terms whose delta is all zero
                         are not fed at all) */
    uint32_t skipped; /* terms the kappa rule discarded (not in `terms`: fed = terms + skipped) */
    uint32_t flushes; /* flush attempts (one every B samples of the layer) */
    uint32_t applied; /* attempts that passed the density gate: the weights were written, the state reset */
} et_train_lrt_stats_t;

/*
 * ET_OPT_LRT: read view of weight layer `layer`'s accumulator (state may be
 * NULL) and its counters (stats may be NULL). ET_ERR_ARG for a context
 * without LRT or a layer without weights.
 */
et_status_t et_train_lrt(const et_train_t *ctx, uint16_t layer, const et_lrt_state_t **state,
                         et_train_lrt_stats_t *stats);

/*
 * ET_OPT_LGA: read view of weight layer `layer`'s factor state (et_lga.h:
 * factors through et_lga_factors, steps, samples since the last merge,
 * merges). ET_ERR_ARG for a context without LGA or a layer without weights.
 */
et_status_t et_train_lga(const et_train_t *ctx, uint16_t layer, const et_lga_state_t **state);

/* Training steps taken so far (ET_OPT_NONE steps do not count). */
et_status_t et_train_samples(const et_train_t *ctx, uint32_t *samples);

/*
 * Saturation (clip) counters of one layer: how many stored values of each
 * kind were clamped to their format's [qmin, qmax] during training steps
 * (predictions count nothing) since et_train_init or the last
 * et_train_reset_clip_counts. Each counter saturates at UINT32_MAX (never
 * wraps). A value is counted when its exact rounded result lay outside the
 * range, once per store; docs/numerics.md ("Saturation counters") lists the
 * stores behind each field.
 */
typedef struct {
    uint32_t pre;    /* forward, conv/dense: int16 pre-activation z (ET_FMT_BIAS) clamped by the alpha rescale or
                        the bias add (one per element); ET_OPT_LGA also counts its z + A(Bx) add (a second store) */
    uint32_t act;    /* forward: ReLU output above 255 (ET_FMT_ACT, conv/dense); BN output outside int8
                        (ET_FMT_BN_OUT, batch norm) */
    uint32_t grad;   /* backward: the gradient this layer stores for the layer below clamped: delta at the input
                        (ET_FMT_GRAD int8; the int16 2^-15 gradient when a BN is below; BN din); the head's
                        softmax gradient */
    uint32_t weight; /* int8 weight cells (ET_FMT_WEIGHT) whose update hit -128/127: SGD cell update, LRT flush
                        apply, LGA merge */
    uint32_t param;  /* int16 bias (conv/dense) or BN gamma/beta updates clamped to the int16 limits */
    uint32_t stats;  /* BN running statistics (mean and mean-square EMAs) clamped to int16 */
} et_clip_counts_t;

/*
 * Copy layer `layer`'s saturation counters (0 <= layer < n_layers; layers
 * with nothing to count read zeros). ET_ERR_ARG for a bad context, NULL out
 * or a layer out of range (nothing written).
 */
et_status_t et_train_get_clip_counts(const et_train_t *ctx, uint16_t layer, et_clip_counts_t *out);

/* Set every layer's saturation counters to zero. ET_ERR_ARG for a bad context. */
et_status_t et_train_reset_clip_counts(et_train_t *ctx);

/* What the context's NVM writes met so far (since et_train_init). */
typedef struct {
    uint64_t commits;      /* commits completed (weights and parameter tensors) */
    uint64_t commits_lost; /* commits whose record no ring slot would take (ET_ERR_WORN): old values kept */
    uint64_t worn_reports; /* HAL answers ET_ERR_WORN: cells that did not take their value (training goes on) */
    uint64_t bytes_programmed; /* bytes the commits passed to the HAL's program */
    uint64_t record_bytes; /* of which: commit records */
} et_train_nvm_stats_t;

/* Copy the context's NVM counters. ET_ERR_ARG for NULL. */
et_status_t et_train_nvm_stats(const et_train_t *ctx, et_train_nvm_stats_t *stats);

/* Read view of the context's commit handle (tensor placement and state: et_commit_tensor_info,
 * et_commit_active_tensor, et_commit_get_stats). ET_ERR_ARG for NULL. */
et_status_t et_train_commit(const et_train_t *ctx, const et_commit_t **commit);

#endif /* EDGETRAIN_ET_TRAIN_H */
