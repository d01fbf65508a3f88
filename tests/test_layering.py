"""One-way layering (docs/architecture.md): edgetrain is the bottom layer and reaches firmware_sim only
through its device plug-in point (edgetrain.devices, an entry-point registry); no module reads another
module's private attributes or imports its private names."""
from __future__ import annotations

import ast
from pathlib import Path

from edgetrain import devices

ROOT = Path(__file__).resolve().parent.parent


def sources(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def test_edgetrain_never_imports_firmware_sim():
    found = []
    for name, tree in sources("edgetrain"):
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            found += [f"{name}:{node.lineno} imports {m}" for m in modules if m.split(".")[0] == "firmware_sim"]
    assert found == []


def test_no_private_attribute_of_another_object_or_module():
    found = []
    for package in ("edgetrain", "firmware_sim"):
        for name, tree in sources(package):
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                    if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                        found.append(f"{name}:{node.lineno} {ast.unparse(node)}")
                if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                    found += [f"{name}:{node.lineno} imports {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert found == []


def test_the_memory_map_provider_comes_through_the_plug_in_point():
    provider = devices.provider("memory-map")
    assert provider.__module__ == "firmware_sim.device"
    assert "memory-map" in devices.providers()
    calls = []
    devices.register("probe", lambda *a: calls.append(a) or "device")
    try:
        assert devices.open_device("x.toml", "model", "config", 3, name="probe") == "device" and calls == [("x.toml", "model", "config", 3)]
    finally:
        devices.unregister("probe")
    assert "probe" not in devices.providers()


def test_mirrored_constants_match_their_source():
    """Constants the Python side mirrors: the rank limit from the compiled core, the estimate's 10.9 pJ/bit
    from the RRAM figure of the technology table."""
    from edgetrain.core import lib
    from edgetrain.reference import lrt
    from edgetrain.session import RRAM_WRITE_J_PER_BIT
    from firmware_sim.nvm import technology

    assert lrt.MAX_RANK == lib.ET_LRT_MAX_RANK
    assert round(RRAM_WRITE_J_PER_BIT * 1e15) == round(technology("rram").program_energy * 1e3) == 10900  # fJ per bit
