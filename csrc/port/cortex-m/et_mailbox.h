/*
 * edgetrain — the firmware runner's mailboxes: how a host (the firmware_sim
 * emulator, or a loader on a board) hands work to the runner and reads the
 * results. All fields are little-endian uint32 unless said otherwise;
 * firmware_sim/firmware.py mirrors these numbers.
 *
 * The mailbox window starts at __et_io_start:
 *   +0x000000 input: a chain of commands (et_mb_cmd_t, then its payload)
 *   +0x100000 output: et_mb_out_t, then the payload of the last command
 *   +0x200000 optional host counters (the logical cell-write counts)
 * The runner executes the command at the input, then the one at `next`
 * (an offset from __et_io_start) until next is 0; then it calls
 * et_port_wait() and starts again at the input.
 */
#ifndef EDGETRAIN_ET_MAILBOX_H
#define EDGETRAIN_ET_MAILBOX_H

#include <stdint.h>

#define ET_MB_MAGIC 0x424D5445u /* "ETMB" */
#define ET_MB_IN 0x000000u
#define ET_MB_OUT 0x100000u
#define ET_MB_COUNTERS 0x200000u
#define ET_MB_WINDOW 0x400000u   /* bytes of the mailbox window */

typedef enum {
    ET_MB_INIT = 1,       /* parse the .etm at the NVM start, set up the context (payload: et_mb_init_t) */
    ET_MB_TRAIN = 2,      /* arg0 samples, each input_len bytes then a uint32 label (payload) */
    ET_MB_PREDICT = 3,    /* as TRAIN; labels are ignored */
    ET_MB_CHECKPOINT = 4, /* et_train_checkpoint */
    ET_MB_DUMP = 5,       /* output: every tensor's active bytes, in commit layout order (model order) */
    ET_MB_STATS = 6,      /* output: et_train_nvm_stats (5 uint64) then per weight layer 4 uint32 LRT counters */
    ET_MB_HALT = 7        /* stop: et_port_exit(arg0, the output payload) */
} et_mb_command_t;

typedef struct {
    uint32_t magic;   /* ET_MB_MAGIC */
    uint32_t command; /* et_mb_command_t */
    uint32_t next;    /* offset of the next command from __et_io_start; 0 = the chain ends */
    uint32_t arg0;
    uint32_t bytes;   /* payload bytes after this header */
    uint32_t reserved[3];
} et_mb_cmd_t;

/* INIT payload: et_train_config_t field by field (each a uint32 or int32). */
typedef struct {
    uint32_t flags;          /* bit 0: check the blob's whole CRC (first boot after install) */
    uint32_t optimizer, conv_per_pixel, bn_warm;
    uint32_t lr_weight;
    int32_t lr_weight_exp;
    uint32_t lr_bias;
    int32_t lr_bias_exp;
    uint32_t seed;
    uint32_t lrt_rank, lrt_unbiased, lrt_maxnorm, lrt_gs_passes, lrt_batch_conv, lrt_batch_dense,
        lrt_eta0_q24, lrt_rho_min_ppm, lrt_kappa_th, lrt_reorth_terms, lrt_conv_term_batch;
    uint32_t layer_rank[32]; /* per layer index (ET_MAX_LAYERS) */
    uint32_t commit_stage_bytes;
    uint32_t ring_slots;
    uint32_t counters;       /* 1: count logical cell writes into the counters window */
} et_mb_init_t;

#define ET_MB_INIT_CHECK_CRC 1u

typedef struct {
    uint32_t magic;    /* ET_MB_MAGIC */
    int32_t status;    /* et_status_t of the last command */
    uint32_t command;  /* the last command executed */
    uint32_t done;     /* TRAIN/PREDICT: samples done */
    uint32_t bytes;    /* payload bytes after this header */
    uint32_t required; /* INIT: arena bytes the plan needs */
    uint32_t arena;    /* INIT: arena bytes the firmware has */
    uint32_t commands; /* commands executed since boot */
} et_mb_out_t;

#endif /* EDGETRAIN_ET_MAILBOX_H */
