"""The accumulator's hot loops (csrc/src/lrt.c) are compiled for several instruction sets on x86-64
hosts (gcc function multiversioning: AVX-512, AVX2, baseline) and picked at load time. Integer
arithmetic is exact, so every build must give the same bits, and so must the portable loops that
firmware and -DET_NO_MULTIVERSION builds get: tests/c/lrt_digest.c hashes the state,
PRNG and flushed rows after every term over many shapes, ranks and modes (valid streams and random
states), and the builds are compared line for line."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess

import pytest

from conftest import ROOT

DRIVER = ROOT / "tests" / "c" / "lrt_digest.c"
CORE = [str(ROOT / "csrc" / "src" / f) for f in ("lrt.c", "fixed.c", "maxnorm.c")]
CC = shutil.which("gcc") or shutil.which("cc")
INCLUDES = [f"-I{ROOT / 'csrc' / 'include'}", f"-I{ROOT / 'csrc' / 'src'}"]
BUILDS = {
    "dispatched": ["-O3"],  # x86-64 Linux gcc: AVX-512 / AVX2 / baseline clones of the wide loops
    "portable": ["-O3", "-DET_NO_MULTIVERSION"],  # the loops firmware gets
    "portable-scalar": ["-O2", "-fno-tree-vectorize", "-DET_NO_MULTIVERSION"],
    "wide": ["-O3", "-DET_NO_MULTIVERSION", "-DET_LRT_WIDE_NOCLONE"],  # the wide loops for the baseline ISA
    "wide-scalar": ["-O2", "-fno-tree-vectorize", "-DET_NO_MULTIVERSION", "-DET_LRT_WIDE_NOCLONE"],
}
CASES = 216  # 9 shapes x 8 ranks x 3 modes


def build(tmp_path, name):
    binary = tmp_path / name
    subprocess.run([CC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", *BUILDS[name], *INCLUDES, str(DRIVER),
                    *CORE, "-o", str(binary)], check=True)
    return binary


def digest(binary, terms, wrapper=()):
    # The sanitizer pass preloads libasan into every child; the digest is not built with ASan, and
    # valgrind cannot run a program that has ASan loaded, so the children run without it.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    proc = subprocess.run([*wrapper, str(binary), str(terms)], capture_output=True, text=True, check=True, env=env)
    lines = proc.stdout.splitlines()
    assert len(lines) == CASES, proc.stdout[-2000:]
    return lines


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    if CC is None:
        pytest.skip("no host C compiler (gcc/cc)")
    tmp = tmp_path_factory.mktemp("lrt_digest")
    return {name: build(tmp, name) for name in BUILDS}


def test_builds_agree_bit_for_bit(binaries):
    out = {name: digest(b, 60) for name, b in binaries.items()}
    for name in BUILDS:
        assert out[name] == out["portable"], name
    # the stream reaches both outcomes: accepted terms and refused (ET_ERR_RANGE) random states
    assert any(" err 0 " in line for line in out["portable"])
    assert any(" err 0 " not in line for line in out["portable"])


def test_dispatch_builds_clones_on_x86_64(binaries):
    """Where the guard in hot_internal.h enables it (gcc, x86-64 Linux), the clones exist: otherwise the
    dispatched build above would be one more copy of the baseline-ISA loops."""
    if not (platform.system() == "Linux" and platform.machine() == "x86_64" and shutil.which("nm")):
        pytest.skip("function multiversioning is built on x86-64 Linux only (needs nm to check)")
    version = subprocess.run([CC, "--version"], capture_output=True, text=True).stdout
    if "clang" in version.lower():
        pytest.skip(f"{CC} is clang: lrt.c builds its portable loops only")
    major = int(subprocess.run([CC, "-dumpversion"], capture_output=True, text=True).stdout.split(".")[0])
    if major < 11:
        pytest.skip(f"{CC} {major}: lrt.c multiversions from gcc 11 on (the x86-64-v4 clone)")
    if "glibc" not in platform.libc_ver()[0]:
        pytest.skip("not glibc: lrt.c multiversions only where an ifunc can pick the clone")
    names = subprocess.run(["nm", str(binaries["dispatched"])], capture_output=True, text=True, check=True).stdout
    for fn in ("lrt_mgs_pass", "lrt_rot_peak", "lrt_rot_store", "lrt_rescale", "lrt_sumsq"):
        assert f"{fn}.avx2" in names and f"{fn}.arch_x86_64_v4" in names, fn
    portable = subprocess.run(["nm", str(binaries["portable"])], capture_output=True, text=True, check=True).stdout
    assert ".avx2" not in portable


def test_avx2_clone_under_valgrind(binaries):
    """valgrind's virtual CPU has AVX2 but no AVX-512: the loader picks the AVX2 clones there, so
    this run covers the clone a native run on an AVX-512 machine does not take."""
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind not installed (the AVX2 clone is then compared only where the CPU lacks AVX-512)")
    assert digest(binaries["dispatched"], 30, ("valgrind", "-q", "--error-exitcode=3")) == \
        digest(binaries["portable"], 30)
