"""Memory maps: presets, TOML loading, validation errors that name the region, fit checks."""
from __future__ import annotations

import pytest

from edgetrain import ArgumentError, NoMemoryError
from firmware_sim.memory_map import MemoryMap, parse_size, presets
from firmware_sim.nvm import load_technologies, technology

GOOD = """
name = "test-mcu"
[[region]]
name = "weights"
kind = "nvm"
technology = "flash"
base = 0x08000000
size = "64 KiB"
[[region]]
name = "ram"
kind = "sram"
base = 0x20000000
size = 16384
"""


def test_presets_are_the_four_documented_ones():
    assert presets() == ["flash-mcu", "mram-mcu", "pcm-mcu", "rram-mcu"]
    rram = MemoryMap.preset("rram-mcu")
    assert (rram.nvm.base, rram.nvm.size, rram.nvm.technology.name) == (0x08000000, 512 * 1024, "rram")
    assert (rram.sram.base, rram.sram.size) == (0x20000000, 128 * 1024)
    flash = MemoryMap.preset("flash-mcu").nvm.technology
    assert (flash.cell, flash.erase_unit, flash.erased_value) == ("flash", 2048, 0xFF)
    for name in presets():
        assert MemoryMap.load(name).nvm.technology.name == name.split("-")[0]


def test_toml_loads(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(GOOD)
    m = MemoryMap.load(str(path))
    assert m.name == "test-mcu" and m.region("weights").size == 65536 and m.sram.name == "ram"


@pytest.mark.parametrize(
    "edit, message",
    [
        (("base = 0x20000000", "base = 0x08008000"), r"region 'weights' .*overlaps region 'ram'"),
        (("base = 0x08000000", "base = 0x08000100"), r"region 'weights' \(flash.*multiples of the flash erase unit \(2048 bytes\)"),
        (('size = "64 KiB"', 'size = 5000'), r"region 'weights'.*erase unit \(2048 bytes\)"),
        (('technology = "flash"', 'technology = "fram"'), r"region 'weights'.*unknown NVM technology 'fram'"),
        (('kind = "sram"', 'kind = "dram"'), r"region 'ram'.*kind must be one of"),
        (('name = "ram"', 'name = "weights"'), r"two regions are named 'weights'"),
        (('size = 16384', 'size = 16386'), r"region 'ram'.*multiples of 4 bytes"),
        (('size = 16384', 'size = "lots"'), r"region 'ram'.*not a byte count"),
        (('size = 16384', 'size = 0'), r"region 'ram' needs base >= 0 and size > 0"),
        (("base = 0x20000000", "base = 0xFFFFF000"), r"region 'ram'.*32-bit address space"),
        (('kind = "sram"', 'kind = "sram"\ntechnology = "rram"'), r"region 'ram'.*sram region has no technology"),
        (('kind = "sram"', 'kind = "sram"\ncolour = 3'), r"region 'ram'.*unknown keys \['colour'\]"),
    ],
)
def test_bad_maps_give_clear_errors(edit, message):
    with pytest.raises(ArgumentError, match=message):
        MemoryMap.from_toml_string(GOOD.replace(*edit), source="m")


def test_file_errors(tmp_path):
    with pytest.raises(ArgumentError, match="does not exist"):
        MemoryMap.load(str(tmp_path / "nope.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(ArgumentError, match="not valid TOML"):
        MemoryMap.load(str(bad))
    with pytest.raises(ArgumentError, match="at least one"):
        MemoryMap.from_toml_string('name = "x"')


def test_technology_overrides():
    text = GOOD.replace('size = "64 KiB"', 'size = "64 KiB"\n[region.technology_overrides]\nendurance = 10\nendurance_sigma = 0.0')
    m = MemoryMap.from_toml_string(text)
    assert m.nvm.technology.endurance == 10 and technology("flash").endurance == 1e4
    region = m.make_nvm()
    assert (region.endurance == 10).all()
    with pytest.raises(ArgumentError, match="region 'weights'.*cannot be overridden"):
        MemoryMap.from_toml_string(GOOD.replace('size = "64 KiB"', 'size = "64 KiB"\n[region.technology_overrides]\ncell = "inplace"'))


def test_arena_and_image_fit_checks():
    m = MemoryMap.preset("rram-mcu")
    m.check_arena(128 * 1024)
    with pytest.raises(NoMemoryError, match=r"arena needs 131073 bytes but SRAM region 'sram' has 131072") as info:
        m.check_arena(128 * 1024 + 1)
    assert info.value.required_bytes == 131073
    with pytest.raises(ArgumentError, match="int >= 0"):
        m.check_arena(-1)
    m.check_image(400 * 1024, 112 * 1024)
    with pytest.raises(NoMemoryError, match=r"NVM region 'rram' has 524288"):
        m.check_image(400 * 1024, 112 * 1024 + 1)
    flash = MemoryMap.preset("flash-mcu")
    with pytest.raises(NoMemoryError):  # the image is rounded up to a whole page before the area
        flash.check_image(2049, 512 * 1024 - 4096 + 1)
    with pytest.raises(ArgumentError, match="has no region 'x'"):
        m.region("x")


def test_parse_size():
    assert parse_size("512 KiB", "r") == 512 * 1024 and parse_size("1MiB", "r") == 2**20 and parse_size("0x100", "r") == 256


def test_every_figure_carries_its_source():
    for tech in load_technologies().values():
        assert tech.figures, tech.name
        for key, fig in tech.figures.items():
            assert fig.what and fig.source and 1990 < fig.year < 2100, (tech.name, key)
            if not fig.assumption:
                assert not fig.source.startswith("chosen"), (tech.name, key)
    rram = technology("rram")
    # the paper's RRAM figures (lrt-paper-spec §1): 10.9 / 1.76 pJ per bit, ~1e6 writes
    assert (rram.program_energy, rram.read_energy, rram.endurance) == (10.9, 1.76, 1e6)
    assert not rram.figures["program_energy"].assumption
