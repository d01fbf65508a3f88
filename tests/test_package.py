"""Packaging: the extension imports, headers ship and compile, statuses map to exceptions."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import edgetrain
from edgetrain import errors
from conftest import ROOT

HEADER_DIR = Path(edgetrain.include_dir()) / "edgetrain"
CC = shutil.which("cc") or shutil.which("gcc")


def test_core_extension_imports():
    import edgetrain._core as core

    assert core.lib.et_round_shift_s64(3, 1) == 2


def test_include_dir_holds_every_public_header():
    shipped = sorted(p.name for p in HEADER_DIR.glob("*.h"))
    source = sorted(p.name for p in (ROOT / "csrc" / "include" / "edgetrain").glob("*.h"))
    assert "edgetrain.h" in shipped and "et_fixed.h" in shipped
    assert shipped == source


@pytest.mark.skipif(CC is None, reason="no host C compiler")
@pytest.mark.parametrize("header", sorted(p.name for p in (ROOT / "csrc" / "include" / "edgetrain").glob("*.h")))
def test_each_header_compiles_alone_as_strict_c99(tmp_path, header):
    src = tmp_path / "use.c"
    src.write_text(f'#include "edgetrain/{header}"\nint main(void) {{ return 0; }}\n')
    proc = subprocess.run(
        [CC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{edgetrain.include_dir()}", "-c", str(src), "-o", str(tmp_path / "use.o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(CC is None, reason="no host C compiler")
def test_core_sources_compile_strictly_on_the_host(tmp_path):
    for src in sorted((ROOT / "csrc" / "src").glob("*.c")):
        proc = subprocess.run(
            [CC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", f"-I{ROOT / 'csrc' / 'include'}", "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"{src.name}:\n{proc.stderr}"


def test_status_enum_and_exceptions_agree(core):
    ffi, lib = core
    text = (ROOT / "csrc" / "include" / "edgetrain" / "et_status.h").read_text()
    names = re.findall(r"\b(ET_(?:OK|ERR_\w+))\s*=\s*(-?\d+)", text)
    assert len(names) >= 10
    for name, value in names:
        assert getattr(lib, name) == int(value)
        assert ffi.string(lib.et_status_name(int(value))).decode() == name
        if int(value) != 0:
            cls = errors.BY_STATUS[int(value)]
            assert cls.name == name and cls.status == int(value)
    assert ffi.string(lib.et_status_name(-999)).decode() == "ET_ERR_UNKNOWN"


@pytest.mark.parametrize("status", sorted(errors.BY_STATUS))
def test_raise_for_status_gives_typed_error_with_hint(status):
    cls = errors.BY_STATUS[status]
    with pytest.raises(cls) as info:
        errors.raise_for_status(status, "et_something(1, 2)")
    message = str(info.value)
    assert "et_something(1, 2)" in message and cls.name in message
    assert errors.HINTS[status] in message
    assert isinstance(info.value, errors.EdgetrainError)


def test_raise_for_status_ok_and_unknown():
    assert errors.raise_for_status(0, "x") is None
    with pytest.raises(errors.EdgetrainError) as info:
        errors.raise_for_status(-77, "et_mystery()")
    assert info.value.status == -77


def test_checked_call_raises_typed_error(core):
    from edgetrain.core import call, ffi

    out = ffi.new("int64_t *")
    assert call("et_div_trunc_s64", 7, 2, out) == 0 and out[0] == 3
    with pytest.raises(edgetrain.ArgumentError, match=r"et_div_trunc_s64\(7, 0, <ptr>\) failed with ET_ERR_ARG"):
        call("et_div_trunc_s64", 7, 0, out)
    with pytest.raises(edgetrain.RangeError):
        call("et_div_trunc_s64", -(2**63), -1, out)


def test_no_memory_error_carries_required_size():
    with pytest.raises(edgetrain.NoMemoryError) as info:
        errors.raise_for_status(-2, "et_init(arena, 100)", required_bytes=4096)
    assert info.value.required_bytes == 4096


@pytest.mark.skipif(not __import__("os").environ.get("EDGETRAIN_EXPECT_SANITIZED"), reason="only in the sanitizer pass (make test-asan)")
def test_sanitizer_pass_really_runs_a_sanitized_installed_core():
    import edgetrain._core as core

    assert "site-packages" in core.__file__, core.__file__
    binary = Path(core.__file__).read_bytes()
    assert b"__asan_report" in binary and b"__ubsan_handle" in binary


@pytest.mark.skipif(not __import__("os").environ.get("EDGETRAIN_EXPECT_SANITIZED"), reason="only in the sanitizer pass (make test-asan)")
def test_sanitizer_pass_catches_an_out_of_bounds_read():
    import sys

    # A BFP vector that claims 64 entries over a 4-entry buffer: the dot product reads past it.
    code = (
        "from edgetrain.core import ffi, lib\n"
        "buf = ffi.new('int16_t[]', 4)\n"
        "v = ffi.new('et_bfp16_t *', {'mant': buf, 'len': 64, 'exp': 0})\n"
        "lib.et_bfp16_dot(v, v, ffi.new('int64_t *'), ffi.new('int *'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "AddressSanitizer" in proc.stderr


UB_PROBE = r"""
#include <limits.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
    volatile int x = argc > 2 ? atoi(argv[2]) : -3;
    volatile int r;
    if (argc > 1 && argv[1][0] == 's') {
        r = x << 12;      /* x < 0: left shift of a negative value */
    } else {
        r = INT_MAX - 2 - x; /* x < 0: signed overflow */
    }
    return r == 0;
}
"""


def _sanitizer_compile_line(monkeypatch, *, fno_wrapv: bool) -> list[str]:
    """The compile line setuptools uses for the sanitized core: CPython's CFLAGS first (with its
    -fwrapv), then edgetrain._build's flags; fno_wrapv=False drops our -fno-wrapv (the control)."""
    import importlib.util
    import sysconfig

    # The checkout's build script (an installed, non-editable edgetrain has no csrc/ beside it).
    spec = importlib.util.spec_from_file_location("edgetrain_build_script", ROOT / "edgetrain" / "_build.py")
    _build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(_build)
    monkeypatch.setenv("EDGETRAIN_SANITIZE", "1")
    monkeypatch.delenv("EDGETRAIN_DEBUG", raising=False)
    cflags, ldflags = _build.compile_args()
    assert "-fno-sanitize-recover=all" in cflags
    if not fno_wrapv:
        cflags = [f for f in cflags if f != "-fno-wrapv"]
    python_cflags = (sysconfig.get_config_var("CFLAGS") or "").split()
    return [CC, *python_cflags, *cflags, *ldflags]


@pytest.mark.skipif(CC is None, reason="no host C compiler")
def test_sanitizer_build_flags_trap_signed_overflow_and_negative_shifts(tmp_path, monkeypatch):
    src = tmp_path / "ub.c"
    src.write_text(UB_PROBE)
    built = {}
    for fno_wrapv in (True, False):
        exe = tmp_path / f"ub-{fno_wrapv}"
        cmd = _sanitizer_compile_line(monkeypatch, fno_wrapv=fno_wrapv) + [str(src), "-o", str(exe)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"the sanitizer build cannot link ({' '.join(cmd)}):\n{proc.stderr}"
        built[fno_wrapv] = exe
    env = {"PATH": "/usr/bin:/bin", "ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=0"}
    for what, args, message in (("shift", ["s", "-3"], "left shift of negative value"),
                                ("overflow", ["o", "-3"], "signed integer overflow")):
        proc = subprocess.run([str(built[True]), *args], capture_output=True, text=True, env=env)
        assert proc.returncode != 0 and message in proc.stderr, f"{what} not trapped: {proc.returncode} {proc.stderr}"
        clean = subprocess.run([str(built[True]), args[0], "3"], capture_output=True, text=True, env=env)
        assert clean.returncode == 0 and "runtime error" not in clean.stderr, clean.stderr
    # The control: with CPython's -fwrapv left in force, the overflow goes unseen.
    proc = subprocess.run([str(built[False]), "o", "-3"], capture_output=True, text=True, env=env)
    assert "signed integer overflow" not in proc.stderr


@pytest.mark.skipif(not __import__("os").environ.get("EDGETRAIN_EXPECT_SANITIZED"), reason="only in the sanitizer pass (make test-asan)")
def test_sanitized_core_was_built_without_wrapv():
    import edgetrain._core as core

    # gcc records the compile options of each unit in its debug info (DW_AT_producer).
    binary = Path(core.__file__).read_bytes()
    assert b"-fno-wrapv" in binary and b"-fno-sanitize-recover=all" in binary
