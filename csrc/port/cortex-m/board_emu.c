/*
 * edgetrain — the firmware_sim board (firmware_sim/arm.py): the NVM HAL
 * drives the memory-mapped NVM controller of board_emu.h; et_port_wait and
 * et_port_exit are the points where the emulator takes over (it stops at
 * their first instruction, serves the mailboxes and resumes at the return
 * address, or ends the run).
 */
#include <stddef.h>
#include <stdint.h>

#include "board_emu.h"
#include "et_port.h"

#define ET_NVMC_REG(off) (*(volatile uint32_t *)(ET_EMU_NVMC + (off)))

static et_status_t et_emu_program(et_nvm_t *nvm, uint32_t offset, const uint8_t *data, uint32_t len)
{
    if (nvm == NULL || data == NULL || offset > nvm->size || len > nvm->size - offset) {
        return ET_ERR_ARG;
    }
    ET_NVMC_REG(ET_EMU_NVMC_ADDR) = offset;
    ET_NVMC_REG(ET_EMU_NVMC_SRC) = (uint32_t)(uintptr_t)data;
    ET_NVMC_REG(ET_EMU_NVMC_LEN) = len;
    ET_NVMC_REG(ET_EMU_NVMC_CMD) = ET_EMU_CMD_PROGRAM;
    return (et_status_t)(int32_t)ET_NVMC_REG(ET_EMU_NVMC_STATUS);
}

static et_status_t et_emu_erase(et_nvm_t *nvm, uint32_t offset, uint32_t len)
{
    if (nvm == NULL || offset > nvm->size || len > nvm->size - offset) {
        return ET_ERR_ARG;
    }
    ET_NVMC_REG(ET_EMU_NVMC_ADDR) = offset;
    ET_NVMC_REG(ET_EMU_NVMC_LEN) = len;
    ET_NVMC_REG(ET_EMU_NVMC_CMD) = ET_EMU_CMD_ERASE;
    return (et_status_t)(int32_t)ET_NVMC_REG(ET_EMU_NVMC_STATUS);
}

et_status_t et_port_nvm_init(et_nvm_t *nvm)
{
    uint32_t size = ET_NVMC_REG(ET_EMU_NVMC_SIZE);
    if (nvm == NULL || size == 0 || size > (uint32_t)(__et_nvm_end - __et_nvm_start)) {
        return ET_ERR_ARG;
    }
    nvm->base = __et_nvm_start;
    nvm->size = size;
    nvm->program_unit = ET_NVMC_REG(ET_EMU_NVMC_PROGRAM_UNIT);
    nvm->erase_unit = ET_NVMC_REG(ET_EMU_NVMC_ERASE_UNIT);
    nvm->erased_value = (uint8_t)ET_NVMC_REG(ET_EMU_NVMC_ERASED_VALUE);
    nvm->program = et_emu_program;
    nvm->erase = nvm->erase_unit ? et_emu_erase : NULL;
    nvm->ctx = NULL;
    return ET_OK;
}

__attribute__((noinline, used)) void et_port_wait(void)
{
    __asm volatile("" ::: "memory");
}

__attribute__((noinline, used)) void et_port_exit(int32_t code, const uint8_t *out, uint32_t len)
{
    (void)code;
    (void)out;
    (void)len;
    for (;;) {
        __asm volatile("" ::: "memory");
    }
}
