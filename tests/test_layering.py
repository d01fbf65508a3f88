"""One-way layering (docs/architecture.md): edgetrain is the bottom layer and reaches firmware_sim only
through its device plug-in point (edgetrain.devices, an entry-point registry); no module reads another
module's private attributes or imports its private names. Inside edgetrain, the training config
(edgetrain.config) sits below the NumPy twin (edgetrain.reference): everything takes its config from
edgetrain.config, and only the modules that run the twin import its engine."""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import edgetrain.config
from edgetrain import devices

ROOT = Path(__file__).resolve().parent.parent


def sources(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def imported(name: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` in file ``name`` (a path relative to ROOT) reads from."""
    if node.level == 0:
        return node.module or ""
    package = name.removesuffix(".py").split("/")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def reference_imports(name: str, tree: ast.AST):
    """(line, twin module, imported name or None) of every import of edgetrain.reference.<module>, and
    (line, twin module, attribute) of every attribute read on a name bound to such a module."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = imported(name, node)
            for a in node.names:
                if module == "edgetrain.reference":
                    aliases[a.asname or a.name] = a.name
                    yield node.lineno, a.name, None
                elif module.startswith("edgetrain.reference."):
                    yield node.lineno, module.split(".")[2], a.name
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("edgetrain.reference.") and a.asname:
                    aliases[a.asname] = a.name.split(".")[2]
                    yield node.lineno, a.name.split(".")[2], None
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            yield node.lineno, aliases[node.value.id], node.attr


# The twin's training config, under the names it had in the twin and has in edgetrain.config.
CONFIG_NAMES = set(edgetrain.config.__all__) | {
    "Config", "config_check", "config_default", "lr_pair", "MAX_RANK", "OPTIMIZERS", "RESTARTS", "FIELDS", "SGD",
    "MOMENTUM", "ADAM", "RESTART_ZERO_A", "RESTART_REDRAW_B", "BETA_MAX", "LR_EXP_MIN", "LR_EXP_MAX"}
# Twin modules any layer may read: the number formats and the image checksum, which the model
# description and the .etm format share with the twin.
FORMAT_MODULES = {"fixed", "crc"}
# The modules that run the twin (NumpyBackend, the planner's cross-check; the single-layer lrt/lga handles
# that compare the C with the twin).
RUN_THE_TWIN = {"edgetrain/backends.py", "edgetrain/lrt.py", "edgetrain/lga.py"}


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
    from edgetrain.config import LRT_MAX_RANK
    from edgetrain.core import lib
    from edgetrain.session import RRAM_WRITE_J_PER_BIT
    from firmware_sim.nvm import technology

    assert LRT_MAX_RANK == lib.ET_LRT_MAX_RANK
    assert round(RRAM_WRITE_J_PER_BIT * 1e15) == round(technology("rram").program_energy * 1e3) == 10900  # fJ per bit


def test_config_sits_below_the_twin():
    """edgetrain.config loads neither the twin, the compiled core, the backends nor the session."""
    code = "import sys, edgetrain.config; print(' '.join(sorted(m for m in sys.modules if m.startswith('edgetrain'))))"
    loaded = set(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.split())
    assert "edgetrain.config" in loaded
    assert loaded <= {"edgetrain", "edgetrain.config", "edgetrain.errors", "edgetrain.model", "edgetrain.model.description"}


def test_config_is_defined_once_and_taken_from_edgetrain_config():
    """No config class or check is defined outside edgetrain/config.py, and no module (the twin's own aside)
    takes a config name from the twin: not by import, not as an attribute of a twin module."""
    defined, taken = [], []
    for package in ("edgetrain", "firmware_sim", "tests", "tools", "bench"):
        for name, tree in sources(package):
            if name == "edgetrain/config.py":
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and (
                        node.name.endswith("Config") or node.name.endswith("config_check")):
                    defined.append(f"{name}:{node.lineno} defines {node.name}")
            if name.startswith("edgetrain/reference/"):
                continue
            taken += [f"{name}:{line} takes {what} from edgetrain.reference.{module}"
                      for line, module, what in reference_imports(name, tree) if what in CONFIG_NAMES]
    assert defined == [] and taken == []


def test_only_the_modules_that_run_the_twin_import_its_engine():
    found = []
    for package in ("edgetrain", "firmware_sim"):
        for name, tree in sources(package):
            if name.startswith("edgetrain/reference/") or name in RUN_THE_TWIN:
                continue
            found += [f"{name}:{line} imports edgetrain.reference.{module}"
                      for line, module, what in reference_imports(name, tree) if module not in FORMAT_MODULES]
    assert found == []


def test_the_layering_checks_can_fail():
    """The rules above catch what they are meant to catch (a check that cannot fail checks nothing)."""
    bad = ast.parse("from ..reference.train import TrainConfig\nfrom ..reference import lga as ref\nx = ref.Config()\n"
                    "from edgetrain.reference import plan\n")
    found = list(reference_imports("edgetrain/commands/x.py", bad))
    assert (1, "train", "TrainConfig") in found and (3, "lga", "Config") in found and (4, "plan", None) in found


def test_the_config_names_the_twin_held_still_answer_with_a_warning():
    """Code written against the old places (edgetrain.reference.lrt.Config, ...) keeps working, warned, with
    the very objects of edgetrain.config; a name that never was there still fails."""
    for module, old, new in (("lrt", "Config", "LrtConfig"), ("lga", "lr_pair", "lga_lr_pair"),
                             ("train", "OPTIMIZERS", "OPTIMIZERS"), ("lga", "MAX_RANK", "LGA_MAX_RANK")):
        twin = importlib.import_module(f"edgetrain.reference.{module}")
        with pytest.warns(DeprecationWarning, match=f"use edgetrain.config.{new}"):
            assert getattr(twin, old) is getattr(edgetrain.config, new)
        with pytest.raises(AttributeError):
            getattr(twin, "NoSuchConfig")
