/*
 * edgetrain — the NVM hardware abstraction layer (HAL).
 *
 * The core reads NVM where it lies (through `base`, memory-mapped) and changes
 * it only through `program` and `erase`. An implementation is a struct of
 * geometry plus two function pointers; the firmware supplies one for its
 * part, the host emulator (firmware_sim) one that accounts for every write,
 * and et_nvm_ram_init() below gives a plain-memory one with counters.
 */
#ifndef EDGETRAIN_ET_NVM_H
#define EDGETRAIN_ET_NVM_H

#include <stdint.h>

#include "et_status.h"

typedef struct et_nvm et_nvm_t;

struct et_nvm {
    const uint8_t *base;     /* memory-mapped read view of the region, size bytes */
    uint32_t size;           /* region size in bytes */
    uint32_t program_unit;   /* program offsets and lengths are multiples of this (bytes, >= 1) */
    uint32_t erase_unit;     /* bytes erased at once; 0 = cells are programmed in place, no erase */
    uint8_t erased_value;    /* value of an erased byte (0xFF for NOR flash) */
    /*
     * Program len bytes of data at byte offset `offset`. Returns ET_OK,
     * ET_ERR_ARG (out of range or misaligned), ET_ERR_IO (the device failed,
     * or power was lost), or ET_ERR_WORN (verify-after-write found cells
     * that did not take their value; the others were written).
     */
    et_status_t (*program)(et_nvm_t *nvm, uint32_t offset, const uint8_t *data, uint32_t len);
    /* Erase [offset, offset + len), aligned to erase_unit; NULL when erase_unit is 0. */
    et_status_t (*erase)(et_nvm_t *nvm, uint32_t offset, uint32_t len);
    void *ctx;               /* the implementation's own state */
};

/* Counters of the plain-memory HAL. */
typedef struct {
    uint64_t program_calls;  /* program operations */
    uint64_t bytes_programmed; /* bytes passed to program */
    uint64_t bytes_changed;  /* programmed bytes whose value changed */
    uint64_t erase_calls;    /* erase operations */
} et_nvm_ram_stats_t;

/*
 * A plain-memory HAL over `mem` (size bytes): program copies and counts,
 * erase fills with erased_value. program_unit 1, no erase unit. The
 * statistics struct is owned by the caller and zeroed here.
 * ET_ERR_ARG for NULL pointers or size 0.
 */
et_status_t et_nvm_ram_init(et_nvm_t *nvm, uint8_t *mem, uint32_t size, et_nvm_ram_stats_t *stats);

#endif /* EDGETRAIN_ET_NVM_H */
