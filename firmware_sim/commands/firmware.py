"""``edgetrain firmware``: build the Cortex-M training firmware (csrc/port/cortex-m) for a CPU and a
memory map (firmware_sim.firmware) and print its sizes."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("firmware", help="build the Cortex-M training firmware ELF",
                       description="Build the training firmware (the C core plus the mailbox runner) for a "
                                   "Cortex-M and a memory map; the linker script is generated from the map.")
    p.add_argument("--cpu", required=True, choices=("cortex-m0plus", "cortex-m4", "cortex-m33"))
    p.add_argument("--memory-map", default="rram-mcu", metavar="PRESET_OR_TOML",
                   help="where NVM and SRAM lie (default: rram-mcu)")
    p.add_argument("--board", default="emu", choices=("emu", "mps2"),
                   help="emu: firmware_sim's emulator (MMIO NVM controller); mps2: QEMU mps2-an386 (default: emu)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the ELF, linker script and map")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=main)


def main(args) -> int:
    from .. import firmware

    fw = firmware.build(args.cpu, args.output, args.memory_map, board=args.board)
    sizes = fw.sizes()
    if args.json:
        print(json.dumps({"elf": str(fw.elf), "cpu": fw.cpu, "board": fw.board, "memory_map": fw.memory_map.name,
                          **sizes}, indent=1))
    else:
        print(f"{fw.elf}: {fw.cpu}, board {fw.board}, memory map {fw.memory_map.name}; flash {sizes['flash']} bytes "
              f"(text {sizes['text']}, data {sizes['data']}), static RAM {sizes['static_ram']} bytes "
              f"(data + bss {sizes['data'] + sizes['bss']}, stack {sizes['stack']}) plus the arena")
    return 0
