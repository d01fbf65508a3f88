/*
 * edgetrain — the Cortex-M port layer: what the firmware runner (runner.c)
 * needs from a board. A board file (board_emu.c for the firmware_sim
 * emulator, board_mps2.c for QEMU's mps2 boards) implements these; the
 * linker script (generated from a memory map by firmware_sim.firmware)
 * defines the symbols below. docs/firmware.md describes the port.
 */
#ifndef EDGETRAIN_ET_PORT_H
#define EDGETRAIN_ET_PORT_H

#include <stdint.h>

#include "edgetrain/et_nvm.h"
#include "edgetrain/et_status.h"

/* Linker symbols: the NVM region holding the .etm blob and the training area, the
 * arena (SRAM between .bss and the stack), the host mailbox window. */
extern const uint8_t __et_nvm_start[];
extern const uint8_t __et_nvm_end[];
extern uint8_t __et_arena_start[];
extern uint8_t __et_arena_end[];
extern uint8_t __et_io_start[];

/* Set up the board's NVM HAL over [__et_nvm_start, __et_nvm_end). */
et_status_t et_port_nvm_init(et_nvm_t *nvm);

/* The runner has answered every queued command: the host may read the output
 * mailbox and queue more. Returns when there is new work. */
void et_port_wait(void);

/* Stop the firmware with `code` (0 = success); `out`/`len`: the output mailbox's payload,
 * which a board without a host debugger hands over its own way (QEMU: a semihosting file). */
void et_port_exit(int32_t code, const uint8_t *out, uint32_t len);

#endif /* EDGETRAIN_ET_PORT_H */
