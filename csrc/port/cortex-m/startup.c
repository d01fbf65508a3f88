/*
 * edgetrain — Cortex-M startup: the vector table, the reset handler (copy
 * .data, zero .bss, call main) and a fault handler that stops the firmware
 * with a non-zero code. The symbols come from the generated linker script.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "et_port.h"

extern uint32_t __stack_top[];
extern uint32_t __data_load[];
extern uint32_t __data_start[];
extern uint32_t __data_end[];
extern uint32_t __bss_start[];
extern uint32_t __bss_end[];

int main(void);
void et_reset_handler(void);
void et_fault_handler(void);

/* Exit code of a fault (HardFault, NMI, or any other exception the runner does not expect). */
#define ET_FW_EXIT_FAULT 0xFA

void et_reset_handler(void)
{
    memcpy(__data_start, __data_load, (uintptr_t)__data_end - (uintptr_t)__data_start);
    memset(__bss_start, 0, (uintptr_t)__bss_end - (uintptr_t)__bss_start);
    et_port_exit(main(), NULL, 0);
    for (;;) {
    }
}

void et_fault_handler(void)
{
    et_port_exit(ET_FW_EXIT_FAULT, NULL, 0);
    for (;;) {
    }
}

/* Initial stack pointer, then the 15 system exceptions (reset first). */
__attribute__((section(".vectors"), used)) static void (*const et_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top,
    et_reset_handler,
    et_fault_handler, et_fault_handler, et_fault_handler, et_fault_handler, et_fault_handler,
    0, 0, 0, 0,
    et_fault_handler, et_fault_handler, 0,
    et_fault_handler, et_fault_handler,
};
