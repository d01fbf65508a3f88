"""An MCU memory map: named SRAM and NVM regions, loaded from TOML and validated.

TOML format (see docs/firmware_sim.md)::

    name = "my-mcu"
    [[region]]
    name = "rram"            # unique
    kind = "nvm"             # "nvm" or "sram"
    technology = "rram"      # nvm only: rram, mram, pcm, flash
    base = 0x08000000
    size = "512 KiB"         # an int, or a string with B, KiB or MiB
    [region.technology_overrides]   # optional, nvm only
    endurance = 1000

Presets: rram-mcu, mram-mcu, pcm-mcu, flash-mcu (firmware_sim/data/maps/).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from edgetrain.errors import ArgumentError, NoMemoryError

from .nvm import NvmRegion, Technology, technology

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAPS = Path(__file__).resolve().parent / "data" / "maps"
KINDS = ("sram", "nvm")
SRAM_ALIGN = 4
REGION_KEYS = {"name", "kind", "technology", "base", "size", "technology_overrides"}
TOP_KEYS = {"name", "description", "region"}


def presets() -> list[str]:
    return sorted(p.stem for p in MAPS.glob("*.toml"))


def parse_size(value, where: str) -> int:
    """An int, or a string like "512 KiB", "2MiB", "4096", "0x1000"."""
    if isinstance(value, bool):
        raise ArgumentError(f"{where}: size must be a number of bytes, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(0x[0-9a-fA-F]+|\d+)\s*(B|KiB|MiB)?\s*", value)
        if m:
            return int(m.group(1), 0) * {None: 1, "B": 1, "KiB": 1024, "MiB": 1024 * 1024}[m.group(2)]
    raise ArgumentError(f"{where}: size {value!r} is not a byte count; write e.g. 131072, \"128 KiB\" or \"1 MiB\"")


def parse_address(value, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            pass
    raise ArgumentError(f"{where}: base {value!r} is not an address; write e.g. 0x08000000")


@dataclass(frozen=True)
class Region:
    name: str
    kind: str
    base: int
    size: int
    technology: Technology | None = None

    @property
    def end(self) -> int:
        return self.base + self.size

    def describe(self) -> str:
        what = self.technology.name if self.technology else "sram"
        return f"region {self.name!r} ({what}, {self.base:#010x}..{self.end:#010x})"


class MemoryMap:
    """Validated regions; ``nvm`` and ``sram`` are the first region of each kind."""

    def __init__(self, name: str, regions: list[Region], description: str = ""):
        self.name = name
        self.description = description
        self.regions = list(regions)
        self._validate()

    # -- construction ----------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source: str = "memory map") -> "MemoryMap":
        if not isinstance(data, dict):
            raise ArgumentError(f"{source}: expected a table, got {type(data).__name__}")
        unknown = set(data) - TOP_KEYS
        if unknown:
            raise ArgumentError(f"{source}: unknown keys {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
        name = data.get("name", source)
        raw_regions = data.get("region")
        if not isinstance(raw_regions, list) or not raw_regions:
            raise ArgumentError(f"{source}: needs at least one [[region]] table")
        regions = []
        for index, raw in enumerate(raw_regions):
            label = f"{source}: region {raw.get('name', index)!r}" if isinstance(raw, dict) else f"{source}: region {index}"
            if not isinstance(raw, dict):
                raise ArgumentError(f"{label}: must be a table")
            unknown = set(raw) - REGION_KEYS
            if unknown:
                raise ArgumentError(f"{label}: unknown keys {sorted(unknown)}; allowed: {sorted(REGION_KEYS)}")
            rname = raw.get("name")
            if not isinstance(rname, str) or not rname:
                raise ArgumentError(f"{source}: region {index} needs a non-empty name")
            kind = raw.get("kind")
            if kind not in KINDS:
                raise ArgumentError(f"{label}: kind must be one of {list(KINDS)}, got {kind!r}")
            if "base" not in raw or "size" not in raw:
                raise ArgumentError(f"{label}: needs base and size")
            base = parse_address(raw["base"], label)
            size = parse_size(raw["size"], label)
            tech = None
            if kind == "nvm":
                tname = raw.get("technology")
                if not isinstance(tname, str):
                    raise ArgumentError(f"{label}: an nvm region needs technology = one of rram, mram, pcm, flash")
                try:
                    tech = technology(tname)
                except ArgumentError as exc:
                    raise ArgumentError(f"{label}: {exc}") from None
                overrides = raw.get("technology_overrides", {})
                if not isinstance(overrides, dict):
                    raise ArgumentError(f"{label}: technology_overrides must be a table")
                if overrides:
                    try:
                        tech = tech.replace(**overrides)
                    except ArgumentError as exc:
                        raise ArgumentError(f"{label}: {exc}") from None
            elif "technology" in raw or "technology_overrides" in raw:
                raise ArgumentError(f"{label}: an sram region has no technology; remove it or make the region kind = \"nvm\"")
            regions.append(Region(rname, kind, base, size, tech))
        return cls(name, regions, data.get("description", ""))

    @classmethod
    def from_toml(cls, path: str | Path) -> "MemoryMap":
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ArgumentError(f"memory map file {str(path)!r} does not exist; give a preset ({', '.join(presets())}) or a TOML path") from None
        except IsADirectoryError:
            raise ArgumentError(f"memory map {str(path)!r} is a folder; give a preset ({', '.join(presets())}) or a "
                                "TOML file") from None
        except UnicodeDecodeError:
            raise ArgumentError(f"memory map file {str(path)!r} is not UTF-8 text (a binary file?); give a TOML "
                                "file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ArgumentError(f"memory map file {str(path)!r} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ArgumentError(f"memory map file {str(path)!r} cannot be read ({exc.strerror}); give a readable "
                                "TOML file or a preset") from None
        return cls.from_dict(data, source=f"memory map {path.name!r}")

    @classmethod
    def from_toml_string(cls, text: str, source: str = "memory map") -> "MemoryMap":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ArgumentError(f"{source} is not valid TOML: {exc}") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def preset(cls, name: str) -> "MemoryMap":
        if name not in presets():
            raise ArgumentError(f"unknown memory-map preset {name!r}; choose one of {presets()} or give a TOML file")
        return cls.from_toml(MAPS / f"{name}.toml")

    @classmethod
    def load(cls, spec: str | Path) -> "MemoryMap":
        """A preset name or a TOML file path."""
        if isinstance(spec, str) and spec in presets():
            return cls.preset(spec)
        return cls.from_toml(spec)

    # -- validation ----------------------------------------------------------------
    def _validate(self) -> None:
        seen = set()
        for r in self.regions:
            where = f"memory map {self.name!r}: {r.describe()}"
            if r.name in seen:
                raise ArgumentError(f"memory map {self.name!r}: two regions are named {r.name!r}; names must be unique")
            seen.add(r.name)
            if r.base < 0 or r.size <= 0:
                raise ArgumentError(f"memory map {self.name!r}: region {r.name!r} needs base >= 0 and size > 0 (got base {r.base}, size {r.size})")
            if r.end > 2**32:
                raise ArgumentError(f"{where}: ends past the 32-bit address space (4 GiB)")
            if r.kind == "nvm":
                unit = r.technology.align
                unit_name = "erase unit" if r.technology.is_flash else "program unit"
                if r.base % unit or r.size % unit:
                    raise ArgumentError(
                        f"{where}: base and size must be multiples of the {r.technology.name} {unit_name} "
                        f"({unit} bytes); got base {r.base:#x}, size {r.size}"
                    )
            elif r.base % SRAM_ALIGN or r.size % SRAM_ALIGN:
                raise ArgumentError(f"{where}: SRAM base and size must be multiples of {SRAM_ALIGN} bytes")
        ordered = sorted(self.regions, key=lambda r: r.base)
        for a, b in zip(ordered, ordered[1:]):
            if b.base < a.end:
                raise ArgumentError(f"memory map {self.name!r}: {a.describe()} overlaps {b.describe()}; move or shrink one")

    # -- queries --------------------------------------------------------------------
    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise ArgumentError(f"memory map {self.name!r} has no region {name!r}; regions: {[r.name for r in self.regions]}")

    def _first(self, kind: str, name: str | None) -> Region:
        if name is not None:
            r = self.region(name)
            if r.kind != kind:
                raise ArgumentError(f"memory map {self.name!r}: region {name!r} is {r.kind}, not {kind}")
            return r
        for r in self.regions:
            if r.kind == kind:
                return r
        raise ArgumentError(f"memory map {self.name!r} has no {kind} region; add a [[region]] with kind = \"{kind}\"")

    @property
    def nvm(self) -> Region:
        return self._first("nvm", None)

    @property
    def sram(self) -> Region:
        return self._first("sram", None)

    def check_arena(self, arena_bytes: int, region: str | None = None) -> None:
        """Raise NoMemoryError unless an arena of ``arena_bytes`` (et_plan's figure) fits the SRAM region."""
        sram = self._first("sram", region)
        if not isinstance(arena_bytes, int) or isinstance(arena_bytes, bool) or arena_bytes < 0:
            raise ArgumentError(f"arena size must be an int >= 0 (bytes from the planner), got {arena_bytes!r}")
        if arena_bytes > sram.size:
            raise NoMemoryError(
                f"memory map {self.name!r}: the training arena needs {arena_bytes} bytes but SRAM region "
                f"{sram.name!r} has {sram.size}; lower the rank or batch, or use a map with at least "
                f"{arena_bytes} bytes of SRAM",
                required_bytes=arena_bytes,
            )

    def check_image(self, image_bytes: int, area_bytes: int = 0, region: str | None = None) -> None:
        """Raise NoMemoryError unless a model image (plus a training area after it, aligned
        to the technology's unit) fits the NVM region."""
        nvm = self._first("nvm", region)
        for what, value in (("image size", image_bytes), ("training area size", area_bytes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ArgumentError(f"{what} must be an int >= 0, got {value!r}")
        unit = nvm.technology.align
        need = -(-image_bytes // unit) * unit + area_bytes
        if need > nvm.size:
            raise NoMemoryError(
                f"memory map {self.name!r}: the model image ({image_bytes} bytes) plus training area "
                f"({area_bytes} bytes) need {need} bytes but NVM region {nvm.name!r} has {nvm.size}; "
                f"use a smaller model or a larger NVM region",
                required_bytes=need,
            )

    def make_nvm(self, region: str | None = None, seed: int = 0) -> NvmRegion:
        """An emulated NvmRegion for an NVM region of this map."""
        r = self._first("nvm", region)
        return NvmRegion(r.technology, r.size, seed=seed, name=r.name)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "regions": [
                {"name": r.name, "kind": r.kind, "base": r.base, "size": r.size,
                 **({"technology": r.technology.name} if r.technology else {})}
                for r in self.regions
            ],
        }
