"""The training firmware (firmware_sim.firmware) in Unicorn: a Cortex-M0, M4 or M33 core over the
memory map's regions, with the map's NVM region emulated by firmware_sim.nvm.

* The NVM region's contents are the ``NvmRegion``'s own buffer, mapped read-only into the target:
  the firmware reads weights where they lie and changes them only through the memory-mapped NVM
  controller (board_emu.h), whose program and erase commands go to ``NvmRegion.program_status`` /
  ``erase_status`` -- the accounting the C backend uses (writes, flips, energy, wear, power loss).
* Samples and results travel through the mailboxes (et_mailbox.h); the emulator stops where the
  firmware calls ``et_port_wait``/``et_port_exit`` (Unicorn exits, no hooks).
* ``count=True`` counts instructions: a block hook adds each translated block's instruction count
  to the phase the firmware last marked (ET_PORT_PHASE: a store to the phase register). Without it
  no Python runs between mailbox exchanges. ``profile=True`` (implies counting) also keeps the
  counts per block, which ``instruction_profile`` sums per function of the ELF's symbol table.

``ArmBackend`` is the ``arm`` engine of ``edgetrain run`` (the interface of edgetrain.backends).
"""
from __future__ import annotations

import bisect
import struct
from pathlib import Path

import numpy as np

from edgetrain.backends import Backend, tensor_spans
from edgetrain.errors import ArgumentError, EdgetrainError, UnsupportedError, raise_for_status
from edgetrain.model.etm import write_etm
from edgetrain.model.image import layout

from . import firmware as fwb
from .memory_map import MemoryMap

try:
    import unicorn
    from unicorn import arm_const
except ImportError:  # pragma: no cover - the arm extra is not installed
    unicorn = None

CPU_MODELS = {"cortex-m0plus": "UC_CPU_ARM_CORTEX_M0", "cortex-m4": "UC_CPU_ARM_CORTEX_M4",
              "cortex-m33": "UC_CPU_ARM_CORTEX_M33"}
PHASES = ("other", "forward", "backward", "accumulate", "update")
PAGE = 0x1000
_INIT = struct.Struct("<4IIiIiI11I32I3I")
_OUT = struct.Struct("<IiIIIIII")


class FirmwareError(EdgetrainError):
    """The firmware stopped in a way the host did not ask for (fault, exit, emulation error)."""


def require_unicorn() -> None:
    if unicorn is None:
        raise UnsupportedError("the ARM emulator needs unicorn and pyelftools: pip install 'edgetrain[arm]'")


def _symtab(elf: Path) -> list[tuple[str, int, int, bool]]:
    """(name, value, size, is a function) of every named symbol of the ELF."""
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as fh:
        table = ELFFile(fh).get_section_by_name(".symtab")
        return [(s.name, s["st_value"], s["st_size"], s["st_info"]["type"] == "STT_FUNC")
                for s in table.iter_symbols() if s.name]


def _functions(symtab) -> list[tuple[int, int, str]]:
    """(start, size, name) of the functions of a _symtab, by start address (Thumb bit cleared)."""
    return sorted((value & ~1, size, name) for name, value, size, func in symtab if func and size)


def _segments(elf: Path) -> list[tuple[int, bytes]]:
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as fh:
        f = ELFFile(fh)
        return [(seg["p_paddr"], seg.data()) for seg in f.iter_segments()
                if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]]


def _pages(n: int) -> int:
    return -(-n // PAGE) * PAGE


class ArmMachine:
    """One boot of the firmware over ``region`` (an NvmRegion of the map's NVM region). A reboot is a
    new machine over the same region."""

    def __init__(self, fw: fwb.Firmware, region, count: bool = False, profile: bool = False):
        require_unicorn()
        if fw.board != "emu":
            raise ArgumentError(f"firmware for board {fw.board!r} does not run in firmware_sim; build it with board='emu'")
        mmap = fw.memory_map
        nvm, sram = mmap.nvm, mmap.sram
        if region.size != nvm.size:
            raise ArgumentError(f"NVM region of {region.size} bytes does not match {nvm.describe()} of {nvm.size}")
        count = count or profile
        self.fw, self.region, self.counting = fw, region, count
        self.profile: list[dict[int, int]] | None = [{} for _ in PHASES] if profile else None
        symtab = _symtab(fw.elf)
        self.sym = {name: value for name, value, _, _ in symtab}
        self._funcs = _functions(symtab) if profile else []
        uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        uc.ctl_set_cpu_model(getattr(arm_const, CPU_MODELS[fw.cpu]))
        uc.mem_map(fwb.CODE_BASE, fwb.CODE_SIZE, unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC)
        uc.mem_map(sram.base, _pages(sram.size), unicorn.UC_PROT_READ | unicorn.UC_PROT_WRITE)
        uc.mem_map_ptr(nvm.base, _pages(nvm.size), unicorn.UC_PROT_READ, region.host_address())
        uc.mem_map(fwb.IO_BASE, fwb.MB_WINDOW, unicorn.UC_PROT_READ | unicorn.UC_PROT_WRITE)
        uc.mmio_map(fwb.NVMC_BASE, PAGE, self._nvmc_read, None, self._nvmc_write, None)
        if count:
            uc.mmio_map(fwb.PHASE_ADDR, PAGE, lambda *a: self.phase, None, self._phase_write, None)
        else:
            uc.mem_map(fwb.PHASE_ADDR, PAGE, unicorn.UC_PROT_READ | unicorn.UC_PROT_WRITE)
        uc.mem_map(0xE000E000, PAGE, unicorn.UC_PROT_READ | unicorn.UC_PROT_WRITE)  # SCB: not emulated, plain RAM
        self.code = bytearray(fwb.CODE_SIZE)
        for addr, data in _segments(fw.elf):
            uc.mem_write(addr, data)
            self.code[addr - fwb.CODE_BASE: addr - fwb.CODE_BASE + len(data)] = data
        self.uc = uc
        self.nvmc = {fwb.NVMC_ADDR: 0, fwb.NVMC_SRC: 0, fwb.NVMC_LEN: 0, fwb.NVMC_STATUS: 0}
        self.phase = 0
        self.counts = np.zeros(len(PHASES), dtype=np.int64)
        self._block_sizes: dict[tuple[int, int], int] = {}
        self.wait_at = self.sym["et_port_wait"] & ~1
        self.exit_at = self.sym["et_port_exit"] & ~1
        uc.ctl_exits_enabled(True)
        uc.ctl_set_exits([self.wait_at, self.exit_at])
        if count:
            uc.hook_add(unicorn.UC_HOOK_BLOCK, self._block, begin=fwb.CODE_BASE, end=fwb.CODE_BASE + fwb.CODE_SIZE - 1)
        uc.reg_write(arm_const.UC_ARM_REG_SP, self.sym["__stack_top"])
        self.resume = self.sym["et_reset_handler"] | 1
        self.exit_code: int | None = None
        self.run()  # boot: reset handler, then the runner waits for the first command

    # -- devices -----------------------------------------------------------------
    def _nvmc_read(self, uc, offset, size, user):
        r = self.region
        if offset == fwb.NVMC_PROGRAM_UNIT:
            return r.tech.program_unit
        if offset == fwb.NVMC_ERASE_UNIT:
            return r.tech.erase_unit if r.tech.is_flash else 0
        if offset == fwb.NVMC_ERASED_VALUE:
            return r.tech.erased_value
        if offset == fwb.NVMC_SIZE:
            return r.size
        return self.nvmc.get(offset, 0) & 0xFFFFFFFF

    def _nvmc_write(self, uc, offset, size, value, user):
        if offset != fwb.NVMC_CMD:
            self.nvmc[offset] = value
            return
        addr, length = self.nvmc[fwb.NVMC_ADDR], self.nvmc[fwb.NVMC_LEN]
        if value == fwb.NVMC_CMD_PROGRAM:
            data = bytes(uc.mem_read(self.nvmc[fwb.NVMC_SRC], length))
            status = self.region.program_status(addr, data)
        elif value == fwb.NVMC_CMD_ERASE:
            status = self.region.erase_status(addr, length)
        else:
            status = -1  # ET_ERR_ARG: unknown command
        self.nvmc[fwb.NVMC_STATUS] = status & 0xFFFFFFFF

    def _phase_write(self, uc, offset, size, value, user):
        self.phase = value if 0 <= value < len(PHASES) else 0

    def _block(self, uc, address, size, user):
        key = (address, size)
        n = self._block_sizes.get(key)
        if n is None:
            n, at, end = 0, address - fwb.CODE_BASE, address - fwb.CODE_BASE + size
            while at < end:  # Thumb: a first halfword 0b11101/0b11110/0b11111... starts a 32-bit instruction
                at += 4 if (self.code[at + 1] >> 3) in (0x1D, 0x1E, 0x1F) else 2
                n += 1
            self._block_sizes[key] = n
        self.counts[self.phase] += n
        if self.profile is not None:
            blocks = self.profile[self.phase]
            blocks[address] = blocks.get(address, 0) + n

    def function_counts(self) -> dict[str, dict[str, int]]:
        """profile=True: instructions per phase and function since boot (blocks outside every function
        symbol under their address)."""
        if self.profile is None:
            raise ArgumentError("a per-function profile needs profile=True")
        funcs = self._funcs
        starts = [f[0] for f in funcs]
        out: dict[str, dict[str, int]] = {}
        for phase, blocks in zip(PHASES, self.profile):
            per: dict[str, int] = {}
            for address, n in blocks.items():
                i = bisect.bisect_right(starts, address) - 1
                name = funcs[i][2] if i >= 0 and address < funcs[i][0] + funcs[i][1] else f"{address:#x}"
                per[name] = per.get(name, 0) + n
            out[phase] = per
        return out

    # -- running -----------------------------------------------------------------
    def run(self) -> None:
        """Run from where the firmware stopped until it waits for the host again (or exits)."""
        if self.exit_code is not None:
            raise FirmwareError(f"the firmware has exited (code {self.exit_code}); boot a new machine")
        try:
            self.uc.emu_start(self.resume, 0)
        except unicorn.UcError as exc:
            pc = self.uc.reg_read(arm_const.UC_ARM_REG_PC)
            raise FirmwareError(f"{self.fw.cpu} emulation stopped at pc {pc:#010x}: {exc}") from None
        pc = self.uc.reg_read(arm_const.UC_ARM_REG_PC) & ~1
        if pc == self.wait_at:
            self.resume = self.uc.reg_read(arm_const.UC_ARM_REG_LR) | 1
        elif pc == self.exit_at:
            self.exit_code = self.uc.reg_read(arm_const.UC_ARM_REG_R0)
        else:
            raise FirmwareError(f"{self.fw.cpu} emulation stopped at pc {pc:#010x}, outside et_port_wait/et_port_exit")

    def command(self, command: int, payload: bytes = b"", arg0: int = 0) -> tuple[tuple, bytes]:
        """Queue one command, run it, return (the output header fields, the output payload)."""
        head = struct.pack("<8I", fwb.MB_MAGIC, command, 0, arg0, len(payload), 0, 0, 0)
        self.uc.mem_write(fwb.IO_BASE + fwb.MB_IN, head + bytes(payload))
        self.run()
        if self.exit_code is not None:
            raise FirmwareError(f"the firmware exited with code {self.exit_code:#x} during command {command}")
        out = _OUT.unpack(bytes(self.uc.mem_read(fwb.IO_BASE + fwb.MB_OUT, _OUT.size)))
        payload_out = bytes(self.uc.mem_read(fwb.IO_BASE + fwb.MB_OUT + _OUT.size, out[4])) if out[4] else b""
        return out, payload_out

    def read_counters(self, n: int) -> np.ndarray:
        return np.frombuffer(bytes(self.uc.mem_read(fwb.IO_BASE + fwb.MB_COUNTERS, 4 * n)), np.uint32)


def init_payload(config, counters: bool, check_crc: bool) -> bytes:
    lrt = config.lrt
    if any(int(t) for t in config.lrt_truncation):
        raise UnsupportedError("the firmware's INIT mailbox carries no per-layer truncation (lrt_truncation): "
                            "use lrt.unbiased for every layer, or the host C backend")
    ranks = [int(r) for r in config.lrt_rank] + [0] * (32 - len(config.lrt_rank))
    return _INIT.pack(
        fwb.MB_INIT_CHECK_CRC if check_crc else 0, config.optimizer, int(config.conv_per_pixel), int(config.bn_warm),
        config.lr_weight, config.lr_weight_exp, config.lr_bias, config.lr_bias_exp, config.seed & 0xFFFFFFFF,
        lrt.rank, int(lrt.unbiased), int(lrt.maxnorm), lrt.gs_passes, lrt.batch_conv, lrt.batch_dense, lrt.eta0_q24,
        lrt.rho_min_ppm, lrt.kappa_th, lrt.reorth_terms, lrt.conv_term_batch, *ranks, config.commit_stage_bytes,
        config.ring_slots, int(counters))


def sample_records(model, xs, labels) -> bytes:
    """TRAIN/PREDICT payload: each input padded to 4 bytes, then its label as uint32."""
    n = model.input_shape.size
    pad = -n % 4
    out = bytearray()
    for x, y in zip(xs, labels):
        out += np.ascontiguousarray(x, dtype=np.uint8).reshape(-1).tobytes() + bytes(pad) + struct.pack("<I", int(y))
    return bytes(out)


class ArmBackend(Backend):
    """The firmware in Unicorn over an emulated NVM region of a memory map (``rram-mcu`` by default)."""

    name = "arm"

    def __init__(self, model, config, image: bytes | None = None, region=None, cpu: str = "cortex-m4",
                 memory_map: str | MemoryMap = fwb.DEFAULT_MAP, build_dir: str | Path | None = None,
                 count: bool = False, place_image: bool = True, profile: bool = False):
        super().__init__(model, config, image)
        require_unicorn()
        if image is not None:
            raise UnsupportedError("the arm backend programs the model's own tensors as a .etm blob; "
                                   "pass the model (not an image)")
        self.mmap = memory_map if isinstance(memory_map, MemoryMap) else MemoryMap.load(memory_map)
        self.region = region if region is not None else self.mmap.make_nvm(seed=config.seed)
        from .commit import commit_stage_bytes

        need, unit = commit_stage_bytes(self.region), self.region.tech.align
        if config.commit_stage_bytes < need or config.commit_stage_bytes % unit:
            raise ArgumentError(f"commit_stage_bytes {config.commit_stage_bytes} does not suit {self.region.tech.name}: "
                                f"set TrainConfig(commit_stage_bytes={need}) (a multiple of {unit}, at least {need})")
        self.fw = fwb.build(cpu, build_dir or default_build_dir(), self.mmap, board="emu")
        self.count, self.profile = count or profile, profile
        self.align = max(4, self.region.tech.program_unit)
        self.blob = write_etm(model, align=self.align, provenance=f"edgetrain arm backend, {cpu}")
        if len(self.blob) > self.region.size:
            raise ArgumentError(f"the model blob of {len(self.blob)} bytes does not fit NVM region {self.region.name!r} "
                                f"of {self.region.size} bytes: use a larger region")
        if place_image:  # factory programming: before deployment, not counted as device writes
            self.region.mem[:len(self.blob)] = np.frombuffer(self.blob, np.uint8)
        _, self.nvm_offsets = layout(model, align=self.align)
        self.nvm_image_size = len(layout(model, align=self.align)[0])
        self.boot(check_crc=place_image)

    def boot(self, check_crc: bool = False) -> None:
        """Power up: a new core over the same NVM; the runner parses the blob and recovers the trained state."""
        self.machine = ArmMachine(self.fw, self.region, count=self.count, profile=self.profile)
        out, _ = self.machine.command(fwb.MB_INIT, init_payload(self.config, True, check_crc))
        if out[1] != 0:
            raise_for_status(out[1], f"firmware INIT on {self.fw.cpu} (arena {out[6]} bytes, plan {out[5]} bytes)")
        self.arena_bytes, self.plan_bytes = out[6], out[5]
        self._base_counts = self.cell_writes.copy()

    def _expect(self, out, what: str) -> None:
        if out[1] != 0:
            raise_for_status(out[1], f"firmware {what} on {self.fw.cpu}")

    def _sync_counts(self) -> None:
        nvm_counts = self.machine.read_counters(self.nvm_image_size)
        for (_, src, size), (_, dst, _) in zip(tensor_spans(self.model, self.nvm_offsets),
                                               tensor_spans(self.model, self.offsets)):
            self.cell_writes[dst:dst + size] = self._base_counts[dst:dst + size] + nvm_counts[src:src + size]

    def steps(self, xs, labels) -> list[int]:
        """Train on a batch of samples in one mailbox exchange; the predictions before each update."""
        xs = [self._checked(x, y) for x, y in zip(xs, labels)]
        out, payload = self.machine.command(fwb.MB_TRAIN, sample_records(self.model, xs, labels), arg0=len(xs))
        self._sync_counts()
        self._expect(out, "TRAIN")
        return [int(v) for v in np.frombuffer(payload, np.uint16)]

    def _step(self, x, label):
        return self.steps([x], [label])[0]

    def _predict(self, x):
        out, payload = self.machine.command(fwb.MB_PREDICT, sample_records(self.model, [x], [0]), arg0=1)
        self._expect(out, "PREDICT")
        return int(np.frombuffer(payload, np.uint16)[0])

    def _checkpoint(self):
        out, _ = self.machine.command(fwb.MB_CHECKPOINT)
        self._sync_counts()
        self._expect(out, "CHECKPOINT")

    def image(self) -> np.ndarray:
        out, payload = self.machine.command(fwb.MB_DUMP)
        self._expect(out, "DUMP")
        image = np.frombuffer(bytearray(self.image_bytes), dtype=np.uint8)
        at = 0
        for _, off, size in tensor_spans(self.model, self.offsets):
            image[off:off + size] = np.frombuffer(payload[at:at + size], np.uint8)
            at += size
        if at != len(payload):
            raise FirmwareError(f"DUMP gave {len(payload)} bytes; the model's tensors are {at}")
        return image

    def _stats(self) -> tuple[dict, list]:
        out, payload = self.machine.command(fwb.MB_STATS)
        self._expect(out, "STATS")
        nvm = dict(zip(("commits", "commits_lost", "worn_reports", "bytes_programmed", "record_bytes"),
                       (int(v) for v in struct.unpack_from("<5Q", payload))))
        lrt = [tuple(int(v) for v in struct.unpack_from("<4I", payload, at)) for at in range(40, len(payload), 16)]
        return nvm, lrt

    def nvm_stats(self) -> dict[str, int]:
        return self._stats()[0]

    def _lrt_stats(self, layer: int) -> dict[str, int]:
        trainable = [i for i, l in enumerate(self.model.layers) if l.weights is not None]
        lrt = self._stats()[1]
        if not lrt:
            raise ArgumentError("LRT counters exist only with optimizer lrt")
        return dict(zip(("terms", "skipped", "flushes", "applied"), lrt[trainable.index(layer)]))

    def instruction_counts(self) -> dict[str, int]:
        """count=True: instructions executed per phase since boot (PHASES)."""
        if not self.count:
            raise ArgumentError("instruction counts need ArmBackend(..., count=True)")
        return {p: int(c) for p, c in zip(PHASES, self.machine.counts)}

    def instruction_profile(self) -> dict[str, dict[str, int]]:
        """profile=True: instructions per phase and firmware function since the last boot."""
        if not self.profile:
            raise ArgumentError("a per-function profile needs ArmBackend(..., profile=True)")
        return self.machine.function_counts()


def default_build_dir() -> Path:
    return Path.home() / ".cache" / "edgetrain" / "firmware"

