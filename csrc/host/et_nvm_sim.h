/*
 * edgetrain — host-only NVM emulator HAL (firmware_sim).
 *
 * An et_nvm_t over a caller-provided region buffer that accounts for every
 * program and erase in caller-provided arrays (the Python side sees them as
 * NumPy views): per-byte program counts, per-wear-unit wear and endurance,
 * per-byte stuck-bit masks, and running totals (bytes, bits flipped,
 * energy, busy time). It models two cell kinds:
 *
 *   ET_SIM_CELL_INPLACE  (RRAM, MRAM, PCM): a program overwrites the bytes;
 *                        a wear unit is one byte, worn by every program of it.
 *   ET_SIM_CELL_FLASH    (NOR flash): a program can only clear bits (1 -> 0);
 *                        erase sets a whole erase unit to erased_value; a
 *                        wear unit is one erase unit, worn by every erase.
 *
 * Wear-out: when a wear unit's wear count exceeds its endurance, its bytes
 * become stuck (every bit of the stuck mask set). ET_SIM_WEAR_STUCK_LAST
 * keeps the value the bytes held before the failing operation;
 * ET_SIM_WEAR_STUCK_PATTERN forces them to cfg.stuck_pattern. Stuck bits never
 * change again. Verify-after-write: a program or erase whose result differs
 * from what was asked returns ET_ERR_WORN (the other bytes were written).
 *
 * Flash programming rule: a program that would need a 0 -> 1 transition on a
 * bit that is not stuck is a protocol error (the caller forgot to erase):
 * ET_ERR_ARG, nothing is written, totals.rejected_programs counts it. If every
 * such bit is a stuck bit the program goes ahead and returns ET_ERR_WORN.
 *
 * Power loss: a device operation is one program unit programmed or one
 * erase unit erased; a HAL call of several units performs them in address
 * order. et_nvm_sim_set_powerloss(sim, n) makes the n-th device operation
 * from now fail midway: the units before it landed, the units after it are
 * untouched, and the torn unit follows the cell kind's rule:
 *   in place: the bytes before a cut point land, the byte at the cut gets a
 *             random mix of old and new bits, the rest keep their old value;
 *             the cut is uniform over 0..program_unit (0 = nothing lands,
 *             program_unit = all landed but the operation was not acknowledged);
 *   flash program: bytes before the cut land; at and after it each bit the
 *             program would clear is cleared with probability 1/2;
 *   flash erase: each bit of the unit that differs from erased_value takes
 *             it with probability 1/2.
 * The random choices come from an xorshift32 stream seeded by cfg.seed. The
 * interrupted operation returns ET_ERR_IO and so does every call after it
 * until et_nvm_sim_reboot().
 *
 * Host only: uses nothing but <stdint.h>/<string.h>, no allocation.
 */
#ifndef EDGETRAIN_ET_NVM_SIM_H
#define EDGETRAIN_ET_NVM_SIM_H

#include <stdint.h>

#include "edgetrain/et_nvm.h"

typedef enum {
    ET_SIM_CELL_INPLACE = 0, /* RRAM, MRAM, PCM: program overwrites, no erase */
    ET_SIM_CELL_FLASH = 1    /* NOR flash: program clears bits, erase in units */
} et_sim_cell_t;

typedef enum {
    ET_SIM_WEAR_STUCK_LAST = 0,   /* a worn byte keeps the value it held */
    ET_SIM_WEAR_STUCK_PATTERN = 1 /* a worn byte is forced to cfg.stuck_pattern */
} et_sim_wear_t;

typedef enum {
    ET_SIM_ENERGY_PER_BIT = 0,    /* program energy charged for every bit of every programmed byte */
    ET_SIM_ENERGY_PER_FLIP = 1    /* program energy charged only for bits that change */
} et_sim_energy_basis_t;

typedef struct {
    uint32_t size;           /* region bytes, a multiple of program_unit (and erase_unit for flash) */
    uint32_t program_unit;   /* bytes, 1..4096, a power of two */
    uint32_t erase_unit;     /* bytes; flash: a multiple of program_unit; in place: 0 */
    uint8_t erased_value;    /* value of an erased byte (flash); unused in place */
    uint8_t cell;            /* et_sim_cell_t */
    uint8_t wear;            /* et_sim_wear_t */
    uint8_t stuck_pattern;   /* byte value of a worn byte under ET_SIM_WEAR_STUCK_PATTERN */
    uint8_t energy_basis;    /* et_sim_energy_basis_t */
    uint64_t program_fj_per_bit; /* program energy, femtojoules per bit (see energy_basis) */
    uint64_t erase_fj_per_unit;  /* erase energy, femtojoules per erase unit (flash) */
    uint64_t program_ns_per_unit; /* busy time of one program unit, nanoseconds */
    uint64_t erase_ns_per_unit;   /* busy time of one erase unit, nanoseconds */
    uint32_t seed;           /* seed of the power-loss tearing stream */
} et_nvm_sim_config_t;

/* Running totals; zeroed by et_nvm_sim_init, never by reboot. */
typedef struct {
    uint64_t program_calls;     /* program operations that changed or tried to change the region */
    uint64_t erase_calls;       /* erase operations */
    uint64_t bytes_programmed;  /* bytes covered by program operations (whole program units) */
    uint64_t bytes_erased;      /* bytes covered by erase operations */
    uint64_t bits_flipped;      /* stored bits whose value changed through program or erase */
    uint64_t energy_fj;         /* program + erase energy, femtojoules */
    uint64_t busy_ns;           /* program + erase busy time, nanoseconds */
    uint64_t worn_reports;      /* operations that returned ET_ERR_WORN */
    uint64_t cells_worn;        /* bytes that became stuck */
    uint64_t rejected_programs; /* flash programs refused for a 0 -> 1 transition (ET_ERR_ARG) */
    uint64_t power_losses;      /* operations interrupted by a power loss */
    uint64_t device_ops;        /* device operations: program units programmed plus erase units erased */
} et_nvm_sim_totals_t;

/* Caller-provided arrays. mem, writes, flips and stuck have cfg.size entries; wear and
 * endurance have et_nvm_sim_wear_units() entries. */
typedef struct {
    uint8_t *mem;        /* the region contents (read view: nvm->base) */
    uint32_t *writes;    /* per byte: program operations that covered it (saturates) */
    uint32_t *flips;     /* per byte: stored bits changed by program and erase (saturates) */
    uint32_t *wear;      /* per wear unit: wear events (in place: programs; flash: erases) */
    uint16_t *endurance; /* per wear unit: wear events it survives, as an endurance code (see
                          * et_nvm_sim_endurance; filled by the caller) */
    uint8_t *stuck;      /* per byte: mask of bits that no longer change */
} et_nvm_sim_buffers_t;

typedef struct {
    et_nvm_sim_config_t cfg;
    et_nvm_sim_buffers_t buf;
    et_nvm_sim_totals_t *totals;
    uint64_t powerloss_countdown; /* 0 = disarmed; else operations until (and including) the failing one */
    uint32_t prng;                /* tearing stream state */
    uint8_t powered;              /* 0 after a power loss until et_nvm_sim_reboot */
} et_nvm_sim_t;

/*
 * Endurance codes: 16 bits per wear unit, so that a region's endurance costs 2 bytes per byte of an
 * in-place technology rather than 4. A code below 2048 is the count itself; a code c with
 * e = c >> 11 in 1..21 is (2048 + (c & 0x7FF)) << (e - 1) (a 12-bit mantissa: counts above 2047 are
 * kept to within 1 part in 4096); a code of (22 << 11) or more means "never wears out" (UINT32_MAX).
 */
#define ET_NVM_SIM_ENDURANCE_NEVER 0xFFFFu
uint32_t et_nvm_sim_endurance(uint16_t code);

/* Wear units of a configuration: size (in place) or size / erase_unit (flash).
 * ET_ERR_ARG for NULL or an invalid configuration. */
et_status_t et_nvm_sim_wear_units(const et_nvm_sim_config_t *cfg, uint32_t *units);

/*
 * Check cfg, zero writes, flips, wear, stuck and *totals, and fill *nvm with a HAL
 * whose ctx is sim. mem and endurance are left as the caller filled them.
 * ET_ERR_ARG for NULL pointers or an invalid configuration (nothing changed).
 */
et_status_t et_nvm_sim_init(et_nvm_sim_t *sim, et_nvm_t *nvm, const et_nvm_sim_config_t *cfg,
                            const et_nvm_sim_buffers_t *buf, et_nvm_sim_totals_t *totals);

/* Arm the power-loss countdown: the ops-th device operation from now fails
 * (1 = the next one). 0 disarms. ET_ERR_ARG for NULL. */
et_status_t et_nvm_sim_set_powerloss(et_nvm_sim_t *sim, uint64_t ops);

/* Power back on: HAL calls work again, the countdown is disarmed. Counters,
 * contents and wear are kept. ET_ERR_ARG for NULL. */
et_status_t et_nvm_sim_reboot(et_nvm_sim_t *sim);

/* *powered = 1 while powered, 0 after a power loss. ET_ERR_ARG for NULL. */
et_status_t et_nvm_sim_powered(const et_nvm_sim_t *sim, uint8_t *powered);

#endif /* EDGETRAIN_ET_NVM_SIM_H */
