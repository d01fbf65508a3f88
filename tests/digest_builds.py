"""Builds of the digest drivers in tests/c/ against several builds of the core, for the tests that
compare them line for line (tests/test_lrt_multiversion.py, tests/test_layers_multiversion.py)."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess

import pytest

from conftest import ROOT

CC = shutil.which("gcc") or shutil.which("cc")
INCLUDES = [f"-I{ROOT / 'csrc' / 'include'}", f"-I{ROOT / 'csrc' / 'src'}"]
VALGRIND = ("valgrind", "-q", "--error-exitcode=3")


def build_all(tmp_path_factory, driver: str, core: tuple[str, ...], builds: dict[str, list[str]]) -> dict:
    """tests/c/<driver> linked with the core files given, once per entry of builds (name: flags)."""
    if CC is None:
        pytest.skip("no host C compiler (gcc/cc)")
    tmp = tmp_path_factory.mktemp(driver.removesuffix(".c"))
    sources = [str(ROOT / "tests" / "c" / driver), *(str(ROOT / "csrc" / "src" / f) for f in core)]
    out = {}
    for name, flags in builds.items():
        out[name] = tmp / name
        subprocess.run([CC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fPIC", *flags, *INCLUDES,
                        *sources, "-o", str(out[name])], check=True)
    return out


def child_env() -> dict[str, str]:
    """The environment for running a driver: without the sanitizer pass's preloaded libasan, since
    the drivers are not built with ASan and valgrind cannot run a program that has it loaded."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def digest(binary, arg: int, cases: int, wrapper=(), extra=()) -> list[str]:
    """The driver's output lines, one per case (run in child_env()); extra: more arguments after arg."""
    proc = subprocess.run([*wrapper, str(binary), str(arg), *extra], capture_output=True, text=True, check=True,
                          env=child_env())
    lines = proc.stdout.splitlines()
    assert len(lines) == cases, proc.stdout[-2000:]
    return lines


def symbols(binary) -> str:
    """nm of a build, where csrc/src/hot_internal.h turns the clones on (gcc 11+, x86-64 Linux, glibc);
    skips elsewhere, where every build is the portable loops."""
    if not (platform.system() == "Linux" and platform.machine() == "x86_64" and shutil.which("nm")):
        pytest.skip("function multiversioning is built on x86-64 Linux only (needs nm to check)")
    if "clang" in subprocess.run([CC, "--version"], capture_output=True, text=True).stdout.lower():
        pytest.skip(f"{CC} is clang: the core builds its portable loops only")
    major = int(subprocess.run([CC, "-dumpversion"], capture_output=True, text=True).stdout.split(".")[0])
    if major < 11:
        pytest.skip(f"{CC} {major}: the core multiversions from gcc 11 on (the x86-64-v4 clone)")
    if "glibc" not in platform.libc_ver()[0]:
        pytest.skip("not glibc: the core multiversions only where an ifunc can pick the clone")
    return subprocess.run(["nm", str(binary)], capture_output=True, text=True, check=True).stdout


def require_valgrind() -> None:
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind not installed (the AVX2 clone is then compared only where the CPU lacks AVX-512)")
