/*
 * edgetrain — the firmware_sim board: a memory-mapped NVM controller and a
 * phase-marker register (firmware_sim/arm.py emulates both). The numbers are
 * mirrored in firmware_sim/firmware.py.
 *
 * NVM controller (NVMC) registers, 32-bit:
 *   ADDR   byte offset in the NVM region of the next operation
 *   SRC    address of the bytes to program (SRAM or NVM)
 *   LEN    bytes to program or erase
 *   CMD    write 1 = program, 2 = erase: the operation runs to completion
 *   STATUS et_status_t of the last operation (read)
 *   PROGRAM_UNIT, ERASE_UNIT, ERASED_VALUE, SIZE: the region's geometry (read)
 */
#ifndef EDGETRAIN_BOARD_EMU_H
#define EDGETRAIN_BOARD_EMU_H

#define ET_EMU_NVMC 0x40080000u
#define ET_EMU_NVMC_ADDR 0x00u
#define ET_EMU_NVMC_SRC 0x04u
#define ET_EMU_NVMC_LEN 0x08u
#define ET_EMU_NVMC_CMD 0x0Cu
#define ET_EMU_NVMC_STATUS 0x10u
#define ET_EMU_NVMC_PROGRAM_UNIT 0x14u
#define ET_EMU_NVMC_ERASE_UNIT 0x18u
#define ET_EMU_NVMC_ERASED_VALUE 0x1Cu
#define ET_EMU_NVMC_SIZE 0x20u
#define ET_EMU_CMD_PROGRAM 1u
#define ET_EMU_CMD_ERASE 2u

/* The phase marker (its own page): the core's ET_PORT_PHASE(p) stores p here. */
#define ET_EMU_PHASE 0x40081000u

#endif /* EDGETRAIN_BOARD_EMU_H */
