"""NVM technologies as data, and an emulated NVM region whose accounting runs in C.

``Technology`` holds one technology's figures (loaded from
``firmware_sim/data/technologies.toml``, every figure with its source);
``NvmRegion`` is a region of that technology: the C HAL of
``csrc/host/nvm_sim.c`` over buffers owned here, with its counters visible as
NumPy views (no Python runs per write).
"""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgetrain.core import ffi, lib
from edgetrain.errors import ArgumentError, raise_for_status

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DATA = Path(__file__).resolve().parent / "data" / "technologies.toml"

CELLS = {"inplace": 0, "flash": 1}
WEAROUT = {"stuck_last": 0, "stuck_pattern": 1}
ENERGY_BASIS = {"bit": 0, "flip": 1}

# Upper bounds of the figures, so that the emulator's 64-bit femtojoule and nanosecond counters hold any
# run (1e6 pJ/bit: 100x any NVM we know), with their units.
FIGURE_LIMITS = {
    "program_energy": (1e6, "pJ per bit"),
    "read_energy": (1e6, "pJ per bit"),
    "program_latency": (1e9, "ns per program unit"),
    "erase_energy": (1e6, "uJ per erase unit"),
    "erase_latency": (1e7, "us per erase unit"),
    "endurance_sigma": (10, "decades"),
}
MAX_ENDURANCE = 1e30  # wear events; anything above 2^32-1 already means "never wears out"

# Fields a memory map may override, with their types.
OVERRIDABLE = {
    "program_unit": int,
    "erase_unit": int,
    "erased_value": int,
    "program_energy": float,
    "energy_basis": str,
    "read_energy": float,
    "program_latency": float,
    "erase_energy": float,
    "erase_latency": float,
    "endurance": float,
    "endurance_sigma": float,
    "wearout": str,
    "stuck_pattern": int,
}


@dataclass(frozen=True)
class Figure:
    """One number with where it comes from."""

    value: object
    what: str
    source: str
    year: int
    assumption: bool


@dataclass(frozen=True)
class Technology:
    """An NVM technology. Units: bytes, pJ per bit, ns per program unit, uJ and us per erase unit."""

    name: str
    description: str
    cell: str
    program_unit: int
    program_energy: float
    energy_basis: str
    read_energy: float
    program_latency: float
    endurance: float
    endurance_sigma: float
    wearout: str
    erase_unit: int = 0
    erased_value: int = 0xFF
    erase_energy: float = 0.0
    erase_latency: float = 0.0
    stuck_pattern: int = 0
    figures: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_flash(self) -> bool:
        return self.cell == "flash"

    @property
    def align(self) -> int:
        """Bytes a region of this technology must be aligned to (erase unit for flash)."""
        return self.erase_unit if self.is_flash else self.program_unit

    def validate(self) -> "Technology":
        where = f"technology {self.name!r}"
        if self.cell not in CELLS:
            raise ArgumentError(f"{where}: cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        pu = self.program_unit
        if not (isinstance(pu, int) and 1 <= pu <= 4096 and pu & (pu - 1) == 0):
            raise ArgumentError(f"{where}: program_unit must be a power of two in 1..4096 bytes, got {pu!r}")
        if self.is_flash:
            eu = self.erase_unit
            if not (isinstance(eu, int) and pu <= eu <= 2**24 and eu % pu == 0):
                raise ArgumentError(f"{where}: flash needs erase_unit, a multiple of program_unit ({pu}) up to 16 MiB, "
                                    f"got {eu!r}")
            if not (isinstance(self.erased_value, int) and 0 <= self.erased_value <= 255):
                raise ArgumentError(f"{where}: erased_value must be a byte, got {self.erased_value!r}")
        elif self.erase_unit not in (0, None):
            raise ArgumentError(f"{where}: an in-place technology has no erase_unit; remove it (got {self.erase_unit})")
        for name, (limit, unit) in FIGURE_LIMITS.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                    and 0 <= value <= limit):
                raise ArgumentError(f"{where}: {name} must be a number in 0..{limit:g} {unit}, got {value!r}; "
                                    "fix the figure in the technology table or the memory map's overrides")
        if not (isinstance(self.endurance, (int, float)) and not isinstance(self.endurance, bool)
                and 1 <= self.endurance <= MAX_ENDURANCE):
            raise ArgumentError(f"{where}: endurance must be 1..{MAX_ENDURANCE:g} wear events, got {self.endurance!r}")
        if self.energy_basis not in ENERGY_BASIS:
            raise ArgumentError(f"{where}: energy_basis must be one of {sorted(ENERGY_BASIS)}, got {self.energy_basis!r}")
        if self.wearout not in WEAROUT:
            raise ArgumentError(f"{where}: wearout must be one of {sorted(WEAROUT)}, got {self.wearout!r}")
        if not (isinstance(self.stuck_pattern, int) and 0 <= self.stuck_pattern <= 255):
            raise ArgumentError(f"{where}: stuck_pattern must be a byte, got {self.stuck_pattern!r}")
        return self

    def replace(self, **overrides) -> "Technology":
        """A copy with some figures changed (e.g. a tiny endurance for a wear test)."""
        for key, value in overrides.items():
            if key not in OVERRIDABLE:
                raise ArgumentError(
                    f"technology {self.name!r}: {key!r} cannot be overridden; choose from {sorted(OVERRIDABLE)}"
                )
            kind = OVERRIDABLE[key]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                continue
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ArgumentError(f"technology {self.name!r}: {key} must be {kind.__name__}, got {value!r}")
        changed = {k: v for k, v in overrides.items()}
        figures = {k: v for k, v in self.figures.items() if k not in changed}
        return dataclasses.replace(self, figures=figures, **changed).validate()

    def sim_config(self, size: int, seed: int = 0) -> dict:
        """The et_nvm_sim_config_t fields for a region of ``size`` bytes."""
        return {
            "size": size,
            "program_unit": self.program_unit,
            "erase_unit": self.erase_unit if self.is_flash else 0,
            "erased_value": self.erased_value,
            "cell": CELLS[self.cell],
            "wear": WEAROUT[self.wearout],
            "stuck_pattern": self.stuck_pattern,
            "energy_basis": ENERGY_BASIS[self.energy_basis],
            "program_fj_per_bit": round(self.program_energy * 1000),
            "erase_fj_per_unit": round(self.erase_energy * 1e9),
            "program_ns_per_unit": round(self.program_latency),
            "erase_ns_per_unit": round(self.erase_latency * 1000),
            "seed": seed & 0xFFFFFFFF,
        }


def _figure(name: str, key: str, raw) -> Figure:
    if not isinstance(raw, dict) or not {"value", "what", "source", "year", "assumption"} <= set(raw):
        raise ArgumentError(
            f"technology {name!r}: figure {key!r} must be a table with value, what, source, year, assumption"
        )
    return Figure(raw["value"], raw["what"], raw["source"], int(raw["year"]), bool(raw["assumption"]))


def load_technologies(path: str | Path = DATA) -> dict[str, Technology]:
    """Parse a technology table (the shipped one by default)."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    out = {}
    for name, entry in data.items():
        figures = {k: _figure(name, k, v) for k, v in entry.items() if k not in ("description", "cell")}
        values = {k: f.value for k, f in figures.items()}
        unknown = set(values) - set(OVERRIDABLE)
        if unknown:
            raise ArgumentError(f"technology {name!r}: unknown fields {sorted(unknown)}")
        out[name] = Technology(
            name=name, description=entry.get("description", ""), cell=entry.get("cell", ""), figures=figures, **values
        ).validate()
    return out


_TECHNOLOGIES: dict[str, Technology] | None = None


def technologies() -> dict[str, Technology]:
    """The shipped technologies by name (rram, mram, pcm, flash)."""
    global _TECHNOLOGIES
    if _TECHNOLOGIES is None:
        _TECHNOLOGIES = load_technologies()
    return dict(_TECHNOLOGIES)


def technology(name: str) -> Technology:
    known = technologies()
    if name not in known:
        raise ArgumentError(f"unknown NVM technology {name!r}; choose one of {sorted(known)}")
    return known[name]


ENDURANCE_CHUNK = 1 << 16  # units drawn at a time: float temporaries stay small for any region size


ENDURANCE_NEVER = 0xFFFF  # the code of "does not wear out in any run" (et_nvm_sim_endurance: UINT32_MAX)
ENDURANCE_NEVER_FROM = 22 << 11  # every code from here on means the same
UINT32_MAX = 2**32 - 1


def endurance_values(codes: np.ndarray) -> np.ndarray:
    """Wear events per wear unit (uint64) of 16-bit endurance codes, as et_nvm_sim_endurance decodes
    them: c < 2048 is c; c with e = c >> 11 in 1..21 is (2048 + (c & 0x7FF)) << (e - 1); from 22 << 11
    on, 2^32 - 1 (never wears out)."""
    c = np.asarray(codes).astype(np.uint64)
    e = c >> np.uint64(11)
    scaled = (np.uint64(2048) + (c & np.uint64(0x7FF))) << np.maximum(e, np.uint64(1)) - np.uint64(1)
    return np.where(e == 0, c, np.where(c >= ENDURANCE_NEVER_FROM, np.uint64(UINT32_MAX), scaled))


def endurance_codes(values: np.ndarray) -> np.ndarray:
    """The 16-bit codes of wear-event counts (1..2^32-1): exact below 2048, else the nearest count
    with a 12-bit mantissa (half up; within 1 part in 4096); 2^32 - 1, or a count past the largest
    code, becomes ENDURANCE_NEVER."""
    v = np.asarray(values).astype(np.uint64)
    bits = np.frexp(v.astype(np.float64))[1].astype(np.int64)  # bit length, exact below 2^53
    shift = np.maximum(bits - 12, 0).astype(np.uint64)  # v >> shift lies in 2048..4095 for v >= 2048
    half = np.where(shift > 0, np.uint64(1) << np.maximum(shift, np.uint64(1)) - np.uint64(1), np.uint64(0))
    mant = (v + half) >> shift
    carry = mant >= 4096  # rounded up to the next power of two
    mant = np.where(carry, mant >> np.uint64(1), mant)
    exp = shift + carry + np.uint64(1)  # the code's exponent field for v >= 2048
    codes = np.where(v >= 2048, (exp << np.uint64(11)) | (mant & np.uint64(0x7FF)), v)
    never = (v >= UINT32_MAX) | ((v >= 2048) & (exp >= 22))
    return np.where(never, ENDURANCE_NEVER, codes).astype(np.uint16)


def draw_endurance(tech: Technology, units: int, seed: int, out: np.ndarray | None = None) -> np.ndarray:
    """Per-wear-unit endurance codes (``endurance_codes``) of counts with
    log10(e) ~ Normal(log10(median), sigma), rounded, clipped to 1..2^32-1 (2^32-1 means "does not
    wear out in any run"). Drawn in chunks from one stream (the same values as one draw of
    ``units``), into ``out`` (uint16) if given."""
    out = np.empty(units, np.uint16) if out is None else out
    rng = np.random.default_rng(seed)
    mu = math.log10(tech.endurance)
    for start in range(0, units, ENDURANCE_CHUNK):
        n = min(ENDURANCE_CHUNK, units - start)
        log_e = rng.normal(mu, tech.endurance_sigma, n) if tech.endurance_sigma > 0 else np.full(n, mu)
        out[start:start + n] = endurance_codes(np.clip(np.rint(10.0 ** np.minimum(log_e, 10.0)), 1, UINT32_MAX))
    return out


TOTAL_FIELDS = (
    "program_calls",
    "erase_calls",
    "bytes_programmed",
    "bytes_erased",
    "bits_flipped",
    "energy_fj",
    "busy_ns",
    "worn_reports",
    "cells_worn",
    "rejected_programs",
    "power_losses",
    "device_ops",
)


class NvmRegion:
    """An emulated NVM region of one technology.

    ``mem``, ``writes`` (per byte: program operations that covered it), ``flips``
    (per byte: bits changed by program and erase),
    ``wear`` and ``endurance`` (per wear unit: a byte in place, an erase unit on
    flash) and ``stuck`` (per byte: bits that no longer change) are NumPy views
    of the C buffers. ``nvm`` is the ``et_nvm_t *`` to hand to the core and
    ``c_mem`` the cffi buffer behind ``mem`` (for the core's model table).
    The initial content is ``fill`` (default: erased_value on flash, 0x00 in place).
    """

    def __init__(self, tech: Technology, size: int, seed: int = 0, fill: int | None = None, name: str = "nvm"):
        tech.validate()
        self.tech = tech
        self.name = name
        if not isinstance(size, int) or size <= 0 or size % tech.align:
            raise ArgumentError(
                f"NVM region {name!r}: size {size!r} must be a positive multiple of {tech.align} bytes "
                f"({'erase' if tech.is_flash else 'program'} unit of {tech.name})"
            )
        if size >= 2**32:
            raise ArgumentError(f"NVM region {name!r}: size {size} does not fit a 32-bit address space")
        self.size = size
        self.seed = seed
        cfg = ffi.new("et_nvm_sim_config_t *", tech.sim_config(size, seed))
        units = ffi.new("uint32_t *")
        raise_for_status(lib.et_nvm_sim_wear_units(cfg, units), f"et_nvm_sim_wear_units({tech.name}, size {size})")
        self.wear_units = units[0]
        # Zeroed NumPy buffers (calloc: the OS maps their pages on first write, so cells never
        # programmed cost no host memory; et_nvm_sim_init only reads them), handed to C by pointer.
        self.mem = np.zeros(size, np.uint8)
        self.writes = np.zeros(size, np.uint32)
        self.flips = np.zeros(size, np.uint32)
        self.wear = np.zeros(self.wear_units, np.uint32)
        self.endurance = np.empty(self.wear_units, np.uint16)  # codes: endurance_values() decodes them
        self.stuck = np.zeros(size, np.uint8)
        self._mem = ffi.from_buffer("uint8_t[]", self.mem)
        self._writes = ffi.from_buffer("uint32_t[]", self.writes)
        self._flips = ffi.from_buffer("uint32_t[]", self.flips)
        self._wear = ffi.from_buffer("uint32_t[]", self.wear)
        self._endurance = ffi.from_buffer("uint16_t[]", self.endurance)
        self._stuck = ffi.from_buffer("uint8_t[]", self.stuck)
        self._buffers = ffi.new(
            "et_nvm_sim_buffers_t *",
            {"mem": self._mem, "writes": self._writes, "flips": self._flips, "wear": self._wear, "endurance": self._endurance, "stuck": self._stuck},
        )
        self._totals = ffi.new("et_nvm_sim_totals_t *")
        self.sim = ffi.new("et_nvm_sim_t *")
        self.nvm = ffi.new("et_nvm_t *")
        self._cfg = cfg
        self.c_mem = self._mem  # the cffi buffer behind mem (the core's model table points into it)
        initial = (tech.erased_value if tech.is_flash else 0) if fill is None else fill
        if initial:
            self.mem[:] = initial
        draw_endurance(tech, self.wear_units, seed, out=self.endurance)
        raise_for_status(lib.et_nvm_sim_init(self.sim, self.nvm, cfg, self._buffers, self._totals), f"et_nvm_sim_init({name})")

    def host_address(self) -> int:
        """Host address of the region's contents (size bytes), for an emulator that maps them into a
        target's address space (firmware_sim.arm); they stay valid as long as this object lives."""
        return int(ffi.cast("uintptr_t", self._mem))

    # -- device operations ---------------------------------------------------
    def _check_span(self, what: str, offset, length: int) -> None:
        """ArgumentError unless offset and length are HAL values (uint32); the HAL itself answers a span
        outside the region or misaligned with ET_ERR_ARG, as on a device."""
        if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
            raise ArgumentError(f"{what} on {self.name!r}: offset must be an int, got {offset!r}")
        if not 0 <= offset < 2**32 or length >= 2**32:
            raise ArgumentError(f"{what} of {length} bytes at offset {offset} is outside NVM region {self.name!r} "
                                f"(0..{self.size}); give an offset and length inside it")

    def program_status(self, offset: int, data: bytes) -> int:
        """Program through the HAL and return the raw et_status_t (ArgumentError outside the region)."""
        data = bytes(data)
        self._check_span("program", offset, len(data))
        return self.nvm.program(self.nvm, int(offset), data, len(data))

    def erase_status(self, offset: int, length: int) -> int:
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise ArgumentError(f"erase on {self.name!r}: length must be an int >= 0, got {length!r}")
        self._check_span("erase", offset, int(length))
        if self.nvm.erase == ffi.NULL:
            return lib.ET_ERR_ARG
        return self.nvm.erase(self.nvm, int(offset), int(length))

    def program(self, offset: int, data: bytes) -> None:
        raise_for_status(self.program_status(offset, data), f"program of {len(data)} bytes at {self.name}+{offset:#x}")

    def erase(self, offset: int, length: int) -> None:
        raise_for_status(self.erase_status(offset, length), f"erase of {length} bytes at {self.name}+{offset:#x}")

    # -- power ---------------------------------------------------------------
    def arm_power_loss(self, ops: int) -> None:
        """Make the ops-th device operation (program unit or erase unit) from now fail midway (0 disarms)."""
        if not isinstance(ops, int) or isinstance(ops, bool) or not 0 <= ops < 2**64:
            raise ArgumentError(f"power-loss countdown must be an int in 0..2^64-1, got {ops!r}")
        raise_for_status(lib.et_nvm_sim_set_powerloss(self.sim, ops), "et_nvm_sim_set_powerloss")

    def reboot(self) -> None:
        raise_for_status(lib.et_nvm_sim_reboot(self.sim), "et_nvm_sim_reboot")

    @property
    def powered(self) -> bool:
        return bool(self.sim.powered)

    # -- accounting ----------------------------------------------------------
    def totals(self) -> dict[str, int]:
        return {name: int(getattr(self._totals, name)) for name in TOTAL_FIELDS}

    @property
    def energy_j(self) -> float:
        return self._totals.energy_fj * 1e-15

    def wear_unit_bytes(self) -> int:
        return self.tech.erase_unit if self.tech.is_flash else 1

    def snapshot(self) -> dict[str, np.ndarray]:
        """Copies of contents, wear and stuck masks (counters of writes and totals are not rewound)."""
        return {"mem": self.mem.copy(), "wear": self.wear.copy(), "stuck": self.stuck.copy()}

    def restore(self, snap: dict[str, np.ndarray]) -> None:
        self.mem[:] = snap["mem"]
        self.wear[:] = snap["wear"]
        self.stuck[:] = snap["stuck"]
        self.reboot()
