/*
 * edgetrain — Arm's MPS2 boards under QEMU (mps2-an386 for Cortex-M4): the
 * NVM region is plain RAM (the plain-memory HAL, et_nvm_ram), the host
 * loads the .etm and the command chain into memory before reset, and the
 * firmware hands its output back through semihosting: the payload goes to
 * the host file "etfw-out.bin" in QEMU's working directory, the exit code
 * to QEMU's exit status.
 */
#include <stddef.h>
#include <stdint.h>

#include "et_port.h"

#define ET_SYS_OPEN 0x01
#define ET_SYS_CLOSE 0x02
#define ET_SYS_WRITE 0x05
#define ET_SYS_EXIT_EXTENDED 0x20
#define ET_ADP_APPLICATION_EXIT 0x20026
#define ET_OPEN_WB 5

/* The runner waited for more work: on this board nobody brings any. */
#define ET_FW_EXIT_NO_HOST 0xFE

static et_nvm_ram_stats_t et_mps2_stats;

static int32_t et_semihost(int32_t op, const void *arg)
{
    register int32_t r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

et_status_t et_port_nvm_init(et_nvm_t *nvm)
{
    return et_nvm_ram_init(nvm, (uint8_t *)(uintptr_t)__et_nvm_start, (uint32_t)(__et_nvm_end - __et_nvm_start),
                           &et_mps2_stats);
}

void et_port_wait(void)
{
    et_port_exit(ET_FW_EXIT_NO_HOST, NULL, 0);
}

void et_port_exit(int32_t code, const uint8_t *out, uint32_t len)
{
    static const char name[] = "etfw-out.bin";
    uint32_t args[3];
    int32_t fd;
    if (out != NULL) {
        args[0] = (uint32_t)(uintptr_t)name;
        args[1] = ET_OPEN_WB;
        args[2] = sizeof name - 1;
        fd = et_semihost(ET_SYS_OPEN, args);
        if (fd >= 0) {
            args[0] = (uint32_t)fd;
            args[1] = (uint32_t)(uintptr_t)out;
            args[2] = len;
            (void)et_semihost(ET_SYS_WRITE, args);
            (void)et_semihost(ET_SYS_CLOSE, args);
        }
    }
    args[0] = ET_ADP_APPLICATION_EXIT;
    args[1] = (uint32_t)code;
    (void)et_semihost(ET_SYS_EXIT_EXTENDED, args);
    for (;;) {
    }
}
