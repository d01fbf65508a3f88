"""Every Python constant that mirrors a C one says so in a trailing comment (`NAME = value  # ET_NAME`,
or `A, B = 1, 2  # ET_A, ET_B`); each must equal the compiled core's value (cffi's lib), or, for a
constant private to a .c file, its #define in csrc/. A C constant changed without its mirror fails here."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from edgetrain.core import lib

ROOT = Path(__file__).resolve().parent.parent
COMMENT = re.compile(r":?\s*(ET_[A-Z0-9_]+(?:\s*,\s*ET_[A-Z0-9_]+)*)")  # what follows the '#'



def c_define(name: str):
    for path in (ROOT / "csrc").rglob("*.[ch]"):
        m = re.search(rf"^\s*#define\s+{name}\s+\(?\s*(-?(?:0x[0-9a-fA-F]+|\d+))[uU]?\s*\)?", path.read_text(), re.M)
        if m:
            return int(m.group(1), 0)
    return None


def mirrors():
    """(file:line, python name, python value, C name) of every annotated module-level constant."""
    for package in ("edgetrain", "firmware_sim"):
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text().splitlines()
            for node in ast.parse("\n".join(lines)).body:
                if not isinstance(node, ast.Assign) or len(node.targets) != 1:
                    continue
                m = COMMENT.match(lines[node.end_lineno - 1].partition("#")[2])
                if not m:
                    continue
                c_names = [n.strip() for n in m.group(1).split(",")]
                target = node.targets[0]
                names = [e.id for e in target.elts] if isinstance(target, ast.Tuple) else [target.id]
                values = ast.literal_eval(node.value)
                values = list(values) if isinstance(target, ast.Tuple) else [values]
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                for name, value, c_name in zip(names, values, c_names):
                    yield where, name, value, c_name


MIRRORS = list(mirrors())


def test_the_mirrors_are_found():
    found = {c for _, _, _, c in MIRRORS}
    assert {"ET_MAX_LAYERS", "ET_LRT_MAX_RANK", "ET_LGA_MAX_RANK", "ET_COMMIT_MAX_RING", "ET_COMMIT_PARAMS"} <= found


@pytest.mark.parametrize("where, name, value, c_name", MIRRORS, ids=[f"{w}:{n}" for w, n, _, _ in MIRRORS])
def test_a_mirrored_constant_equals_the_core(where, name, value, c_name):
    c_value = getattr(lib, c_name, None)
    if c_value is None:
        c_value = c_define(c_name)
    assert c_value is not None, f"{where}: {name} mirrors {c_name}, which neither the core nor csrc/ defines"
    assert value == c_value, f"{where}: {name} = {value}, but {c_name} = {c_value}"
