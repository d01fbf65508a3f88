"""The ARM portability gate (tools/arm_gate.py), run as `make arm-check` does."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

pytestmark = [
    pytest.mark.arm,
    pytest.mark.skipif(
        shutil.which("arm-none-eabi-gcc") is None,
        reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)",
    ),
]

GATE = ROOT / "tools" / "arm_gate.py"


def run_gate(*args):
    return subprocess.run([sys.executable, str(GATE), *args], capture_output=True, text=True)


def test_core_passes_on_every_cpu(tmp_path):
    out = tmp_path / "gate.json"
    proc = run_gate("--json", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    cpus = {r["cpu"]: r for r in report["cpus"]}
    assert set(cpus) == {"cortex-m0plus", "cortex-m4", "cortex-m33"}
    core_files = sorted(p.name for p in (ROOT / "csrc" / "src").glob("*.c"))
    for r in cpus.values():
        assert r["ok"] and not r["errors"]
        assert sorted(r["files"]) == core_files
        assert r["total"]["text"] > 0
        assert r["total"]["data"] == 0  # the core keeps no mutable globals
    assert "cortex-m0plus" in proc.stdout and "text" in proc.stdout


@pytest.mark.parametrize(
    "body, expect",
    [
        ("int et_bad(int x) { float f = (float)x * 0.5f; return (int)f; }", "forbidden symbol"),
        ("double et_bad(long long x) { return (double)x / 3.0; }", "forbidden symbol"),
        ("#include <stdlib.h>\nvoid *et_bad(void) { return malloc(4); }", "forbidden symbol malloc"),
        ("#include <stdio.h>\nvoid et_bad(int x) { printf(\"%d\", x); }", "forbidden symbol"),
        ("extern int some_os_call(void);\nint et_bad(void) { return some_os_call(); }", "neither in the core nor allowed"),
        ("int et_bad(void) { int unused; return 0; }", "does not compile"),
    ],
)
def test_gate_catches_what_the_core_must_not_contain(tmp_path, body, expect):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "csrc" / "src" / "fixed.c", src / "fixed.c")
    (src / "bad.c").write_text(textwrap.dedent(body) + "\n")
    proc = run_gate("--src", str(src), "--cpu", "cortex-m0plus")
    assert proc.returncode == 1
    assert expect in proc.stderr
