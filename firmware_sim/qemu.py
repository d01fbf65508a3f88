"""A second oracle for the firmware: the same core and runner built for QEMU's mps2-an386 board
(board_mps2.c: the NVM region is RAM behind the plain-memory HAL, output through semihosting).

The host writes the .etm blob and a command chain (INIT, TRAIN, DUMP, HALT) to files that QEMU's
generic loader places at the NVM region and the mailbox window before reset; the firmware runs the
chain and writes the DUMP payload (every tensor's active bytes, model order) to ``etfw-out.bin``.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

from edgetrain.errors import EdgetrainError, UnsupportedError
from edgetrain.model.etm import write_etm

from . import firmware as fwb
from .arm import init_payload, sample_records
from .memory_map import MemoryMap

MACHINE = "mps2-an386"  # Cortex-M4; code RAM at 0x0 (4 MiB), SRAM at 0x20000000, PSRAM (the mailboxes) at 0x21000000
# The memory map QEMU can run: the NVM region lies in the board's code RAM, after the firmware.
MPS2_MAP = {"name": "mps2-an386", "description": "RRAM placed in the MPS2 board's code SSRAM so QEMU can run it",
            "region": [{"name": "rram", "kind": "nvm", "technology": "rram", "base": 0x00100000, "size": "512 KiB"},
                       {"name": "sram", "kind": "sram", "base": 0x20000000, "size": "128 KiB"}]}


def qemu() -> str:
    path = shutil.which("qemu-system-arm")
    if path is None:
        raise UnsupportedError("qemu-system-arm is not installed; on Debian: apt-get install -y "
                               "--no-install-recommends qemu-system-arm")
    return path


def command_chain(model, config, xs, labels) -> bytes:
    """INIT, TRAIN (all samples), DUMP, HALT, linked by their `next` offsets from the mailbox start."""
    parts = [(fwb.MB_INIT, init_payload(config, counters=False, check_crc=True), 0),
             (fwb.MB_TRAIN, sample_records(model, xs, labels), len(xs)), (fwb.MB_DUMP, b"", 0), (fwb.MB_HALT, b"", 0)]
    out = bytearray()
    for k, (command, payload, arg0) in enumerate(parts):
        size = fwb.MB_CMD_BYTES + len(payload)
        size += -size % 4
        nxt = len(out) + size if k + 1 < len(parts) else 0
        out += struct.pack("<8I", fwb.MB_MAGIC, command, nxt, arg0, len(payload), 0, 0, 0) + payload
        out += bytes(-len(out) % 4)
    if len(out) > fwb.MB_OUT - fwb.MB_IN:
        raise EdgetrainError(f"{len(xs)} samples do not fit the input mailbox; run fewer")
    return bytes(out)


def train_dump(model, config, xs, labels, work: str | Path, timeout: float = 600) -> bytes:
    """Train ``model`` on the samples under QEMU; the DUMP payload (active tensors, model order)."""
    work = Path(work)
    mmap = MemoryMap.from_dict(MPS2_MAP)
    fw = fwb.build("cortex-m4", work, mmap, board="mps2")
    blob, chain = work / "model.etm", work / "commands.bin"
    blob.write_bytes(write_etm(model, align=4, provenance="edgetrain qemu oracle"))
    chain.write_bytes(command_chain(model, config, xs, labels))
    out = work / "etfw-out.bin"
    out.unlink(missing_ok=True)
    cmd = [qemu(), "-machine", MACHINE, "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(fw.elf.resolve()),
           "-device", f"loader,file={blob.resolve()},addr={mmap.nvm.base:#x}",
           "-device", f"loader,file={chain.resolve()},addr={fwb.IO_BASE + fwb.MB_IN:#x}"]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.is_file():
        raise EdgetrainError(f"QEMU run failed with exit status {proc.returncode:#x} (firmware exit code; 0xfa = fault, "
                             f"0xfe = a command failed): {proc.stderr.strip()[-500:]}")
    return out.read_bytes()
