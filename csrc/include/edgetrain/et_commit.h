/*
 * edgetrain — atomic commit: trained tensors live in an NVM "training area"
 * beside the read-only factory model image, and a power loss at any program
 * or erase leaves every tensor with either its old or its new contents,
 * never a mix.
 *
 * Tensors: every layer with weights has a weight tensor (id = the layer
 * index) and a parameter tensor (id = ET_COMMIT_PARAMS | layer index: its
 * int16 biases); a batch-norm layer has a parameter tensor (its int16
 * gamma, beta, mean and mean-square block). The factory image is never
 * written: the training step commits weights, et_train_checkpoint commits
 * parameter tensors.
 *
 * Layout (per tensor, per layer its weights then its parameters, in layer
 * order, each part aligned to the alignment unit: erase_unit when the HAL
 * has one, else program_unit):
 *
 *   [ bank A ][ bank B ][ ring of commit records ]
 *
 * A record (16 bytes, padded to the program unit) holds: sequence number
 * (uint32, first commit = 1), tensor id (uint16), bank (uint8, 0 = A,
 * 1 = B), magic 0xE7, CRC-32 of the bank's tensor bytes, and a CRC-32 over a
 * layout tag followed by the record's first 12 bytes (all little-endian;
 * CRC-32 is the IEEE/zlib one). The tag is a CRC of the protocol version,
 * the caller's model_id and the whole layout, so records written for another
 * model or layout never validate.
 *
 * Recovery (et_commit_open) reads NVM only: per tensor, the newest valid
 * record whose bank matches its CRC names the active bank; with no valid
 * record the factory image is the active tensor (so first use needs no
 * format step and no copy of the model). A commit writes the new tensor into
 * the inactive bank, programming only the program units that differ from
 * that bank's current content (flash: a page that cannot be reached by
 * clearing bits is erased first, then its non-erased units programmed), then
 * appends the next record. The active bank is never written while it is the
 * newest record's bank, so a power loss before the record lands leaves the
 * old weights, after it the new ones.
 *
 * The record's bank CRC costs what changed, not the bank: CRC-32 is affine
 * over GF(2), so for equal lengths crc(new) = crc(active) XOR the CRC register
 * of (new XOR active) (et_crc32_combine, et_crc32_xor). The active bank's CRC
 * is known (its record, checked at open), and new XOR active is zero outside
 * the rows the caller gives, so the commit runs the CRC over the given rows'
 * difference only and carries the register over the unchanged stretches with
 * at most 32 GF(2) products each. Without an erase unit, one pass over the
 * given rows (eight bytes at a time) both compares them with the target bank
 * and feeds their difference from the active bank to the CRC; the program
 * calls are the same as with two passes. From the factory image (no record)
 * the CRC is taken over the written bank.
 *
 * The inactive bank is two versions old. The handle remembers, per tensor,
 * the chunks (rows in at most 64 groups) the last commit was given: outside
 * them the inactive bank equals the active one, so only the given rows and
 * those chunks are compared and programmed; the rest is skipped unread (a
 * skipped stretch would program and erase nothing). After et_commit_open,
 * after a commit from the factory image, and after an abandoned commit or a
 * worn report, the next commit of that tensor compares the whole bank.
 *
 * Cells that fail verify-after-write (the HAL answers ET_ERR_WORN) are
 * counted in the stats and the commit goes on: a commit that met a worn
 * report on its bank takes the record's bank CRC over what the cells hold, so
 * the active tensor is exactly what the NVM holds. A record that does not read
 * back intact is written again to the next ring slot.
 *
 * Usage: et_commit_open once after power-up; per update of tensor T:
 * et_commit_begin(T), et_commit_rows(T, ...) with full new rows in increasing
 * row order (rows not given keep their current values), et_commit_end(T);
 * then re-read et_commit_active_tensor(T), which now points at the new bank.
 * Rows: a weight tensor has out_c rows of k*k*in_c (conv) or in_c (dense)
 * bytes; a parameter tensor has one row per int16 value (2 bytes,
 * little-endian).
 */
#ifndef EDGETRAIN_ET_COMMIT_H
#define EDGETRAIN_ET_COMMIT_H

#include <stdint.h>

#include "et_model.h"
#include "et_nvm.h"
#include "et_status.h"

#define ET_COMMIT_RECORD_BYTES 16 /* record payload; a ring slot is this rounded up to the program unit */
#define ET_COMMIT_MAGIC 0xE7
#define ET_COMMIT_MIN_RING 2      /* fewest ring slots asked for */
#define ET_COMMIT_MAX_RING 1024   /* most ring slots asked for */
#define ET_COMMIT_PARAMS 0x8000   /* tensor id flag: the layer's parameter tensor (bias or BN block) */
/* Tensors a handle holds (64 bytes each): 32 by default, i.e. 16 layers with weights and biases, or
 * e.g. 10 conv + 10 batch-norm layers. A model with more tensors is refused (ET_ERR_UNSUPPORTED);
 * a firmware may build with another value (at most 254). */
#ifndef ET_COMMIT_MAX_TENSORS
#define ET_COMMIT_MAX_TENSORS 32
#endif

typedef enum {
    ET_COMMIT_BANK_A = 0,
    ET_COMMIT_BANK_B = 1,
    ET_COMMIT_FACTORY = 2 /* the factory image is the active tensor (no commit yet) */
} et_commit_bank_t;

typedef struct {
    uint32_t area_offset; /* HAL offset of the training area, a multiple of the alignment unit */
    uint32_t area_size;   /* bytes available for the area (et_commit_area_size tells the need) */
    uint16_t ring_slots;  /* records per tensor ring, ET_COMMIT_MIN_RING..ET_COMMIT_MAX_RING;
                             with an erase unit the ring is grown to fill at least two erase units */
    uint32_t model_id;    /* identity of the factory model; another id reads as "no commit yet" */
} et_commit_config_t;

/* Where one tensor lives and which bank is active (read with et_commit_tensor_info). */
typedef struct {
    uint16_t id;             /* tensor id: layer index (weights), ET_COMMIT_PARAMS | layer index (parameters) */
    uint8_t active;          /* et_commit_bank_t */
    uint8_t known;           /* 1: the inactive bank equals the active one outside the `dirty` chunks */
    uint32_t rows;           /* weights: n (output channels); parameters: int16 values */
    uint32_t row_bytes;      /* weights: m (bytes per row); parameters: 2 */
    uint32_t bytes;          /* rows * row_bytes */
    uint32_t bank_bytes;     /* bytes of one bank (bytes rounded up to the alignment unit) */
    uint32_t bank_offset[2]; /* HAL offsets of banks A and B */
    uint32_t ring_offset;    /* HAL offset of the record ring */
    uint32_t ring_slots;     /* slots in the ring */
    uint32_t seq;            /* sequence number of the active record; 0 while the factory image is active */
    uint32_t next_seq;       /* sequence number the next commit writes */
    int32_t head;            /* ring slot of the newest valid record, -1 if none */
    int32_t active_slot;     /* ring slot of the active record, -1 if none */
    uint32_t crc;            /* CRC-32 of the active bank as its cells hold it (0 while the factory image is active) */
    uint32_t dirty[2];       /* chunks the last commit was given (bit k of the 64: rows k * ceil(rows / 64) ..) */
} et_commit_tensor_t;

typedef struct {
    uint64_t commits;          /* commits completed */
    uint64_t program_ops;      /* HAL program calls made by the protocol */
    uint64_t erase_ops;        /* HAL erase calls made by the protocol */
    uint64_t bytes_programmed; /* bytes passed to program */
    uint64_t record_bytes;     /* of which: commit-record bytes */
    uint64_t worn_reports;     /* HAL answers ET_ERR_WORN (cells that did not take their value) */
    uint64_t record_retries;   /* records written again to another slot after a failed read-back */
    uint64_t crc_fallbacks;    /* at open: valid records passed over because their bank failed its CRC */
} et_commit_stats_t;

typedef struct {
    const et_model_t *model;
    et_nvm_t *nvm;
    et_commit_config_t cfg;
    uint32_t tag;          /* layout tag mixed into every record CRC */
    uint32_t record_bytes; /* bytes of one ring slot */
    uint32_t align;        /* alignment unit */
    uint32_t area_bytes;   /* bytes the layout uses */
    uint16_t n_tensors;
    et_commit_tensor_t tensors[ET_COMMIT_MAX_TENSORS];
    uint8_t slot_of_weights[ET_MAX_LAYERS]; /* per layer: index into tensors of its weights, 0xFF for none */
    uint8_t slot_of_params[ET_MAX_LAYERS];  /* per layer: index into tensors of its parameters, 0xFF for none */
    uint8_t *stage;        /* caller's staging buffer */
    uint32_t stage_size;
    uint32_t stage_fill;   /* bytes staged */
    uint32_t stage_pos;    /* bank-relative offset of stage[0] */
    uint32_t next_byte;    /* tensor bytes streamed so far */
    uint16_t busy_slot;    /* tensor being committed */
    uint8_t busy;          /* 1 between et_commit_begin and et_commit_end */
    uint8_t target;        /* bank being written */
    uint8_t derive;        /* 1: the new bank's CRC is derived from the active bank's (a bank is active) */
    uint8_t bank_worn;     /* 1: a bank program or erase of this commit answered ET_ERR_WORN */
    uint32_t given[2];     /* chunks of the tensor given rows in this commit */
    uint32_t dreg;         /* CRC register of (new XOR active) over bytes [0, dpos) */
    uint32_t dpos;
    et_commit_stats_t stats;
} et_commit_t;

/*
 * Bytes of training area needed for `model` on `nvm` with `ring_slots`
 * records per tensor. ET_ERR_ARG for NULL, a ring size out of range or a HAL
 * geometry that is not usable (program_unit not a power of two in 1..4096,
 * erase_unit not a multiple of it, or an erase unit without an erase
 * function); et_model_check's status for a bad model; ET_ERR_UNSUPPORTED for
 * a model with more than ET_COMMIT_MAX_TENSORS tensors.
 */
et_status_t et_commit_area_size(const et_model_t *model, const et_nvm_t *nvm, uint16_t ring_slots, uint32_t *bytes);

/* Bytes of staging buffer et_commit_open needs: the alignment unit (erase_unit, else program_unit),
 * rounded up to hold one record slot.
 * A larger buffer (a multiple of it) lets runs of changed units go out in fewer program calls. */
et_status_t et_commit_get_buffer_size(const et_nvm_t *nvm, uint32_t *bytes);

/*
 * Lay the area out, then recover: find each tensor's active bank from NVM
 * alone (no writes). `buffer` (buffer_size bytes, a multiple of
 * et_commit_get_buffer_size) is kept for staging until the handle is dropped.
 * ET_ERR_ARG for NULL, misalignment, a ring size out of range, a factory
 * image that overlaps the area, or an unusable HAL geometry; ET_ERR_NOMEM
 * when area_size or buffer_size is too small; et_model_check's status for a
 * bad model. *c is written only on success.
 */
et_status_t et_commit_open(et_commit_t *c, const et_model_t *model, et_nvm_t *nvm, const et_commit_config_t *cfg,
                           uint8_t *buffer, uint32_t buffer_size);

/* The active contents of tensor `tensor` (memory-mapped NVM: a bank or the factory image; a
 * parameter tensor's bytes are little-endian int16). ET_ERR_ARG for NULL or an id that names
 * no tensor. */
et_status_t et_commit_active_tensor(const et_commit_t *c, uint16_t tensor, const int8_t **weights);

/* A copy of the tensor's placement and state. ET_ERR_ARG for NULL or an id that names no tensor. */
et_status_t et_commit_tensor_info(const et_commit_t *c, uint16_t tensor, et_commit_tensor_t *info);

/* Start a commit of `tensor`. ET_ERR_ARG for an id that names no tensor; ET_ERR_STATE while another
 * commit is open. */
et_status_t et_commit_begin(et_commit_t *c, uint16_t tensor);

/*
 * Stream rows first_row .. first_row + n_rows - 1 (n_rows * row_bytes bytes
 * of new contents). Calls must come in increasing row order without overlap;
 * skipped rows keep their current values. ET_ERR_STATE outside a commit of
 * `tensor`; ET_ERR_ARG for NULL rows, rows out of range or out of order
 * (nothing written). A HAL failure (ET_ERR_IO: power lost) abandons the
 * commit and is returned; the active tensor is unchanged.
 */
et_status_t et_commit_rows(et_commit_t *c, uint16_t tensor, uint32_t first_row, uint32_t n_rows, const int8_t *rows);

/*
 * Finish: copy rows not streamed, then append the commit record. On ET_OK
 * the new contents are active. ET_ERR_STATE outside a commit of `tensor`; a HAL
 * failure is returned and leaves the old weights active; ET_ERR_WORN when no
 * ring slot would hold the record (old weights stay active).
 */
et_status_t et_commit_end(et_commit_t *c, uint16_t tensor);

/* Drop an open commit of `tensor`; the old contents stay active. ET_ERR_STATE if none is open. */
et_status_t et_commit_abort(et_commit_t *c, uint16_t tensor);

/*
 * The active cells of `tensor` were changed outside the commit (device physics
 * such as drift, a scrub, a test): take the active bank's CRC anew from its
 * cells, and let the next commit compare the whole bank so that it carries the
 * changed cells over as a commit always did. Otherwise a commit trusts the
 * active bank to hold what its record describes (it derives the new CRC from
 * the record's and skips chunks known to be equal). Reads the bank once.
 * ET_ERR_ARG for NULL or an id that names no tensor; ET_ERR_STATE while a
 * commit of that tensor is open.
 */
et_status_t et_commit_refresh(et_commit_t *c, uint16_t tensor);

/* Copy the protocol's counters. ET_ERR_ARG for NULL. */
et_status_t et_commit_get_stats(const et_commit_t *c, et_commit_stats_t *stats);

#endif /* EDGETRAIN_ET_COMMIT_H */
