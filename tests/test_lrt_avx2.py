"""The accumulator's AVX2 store and sweep kernels (csrc/src/lrt.c, run on every CPU with AVX2) replace
loops whose exactness rests on details that real streams rarely reach: the store pass
(lrt_rot_write4_avx2) keeps the rows' sums in 64-bit lanes but takes the rounded values from their
low 32 bits and clamps them by vpackssdw's saturation; the MGS sweeps (lrt_mgs_sweep4_avx2,
lrt_mgs_sweep32_avx2) round at an offset with the [x < 0] correction that only decides ties.
tests/c/lrt_avx2.c (which includes lrt.c to reach the kernels) compares each with the loop it
replaces on inputs made to land on rounding ties, negative ones too, and on both of the store's
clamps: the digests of tests/test_lrt_multiversion.py, built from real streams, would not see a
wrong tie or clamp."""
from __future__ import annotations

import platform
import subprocess

import pytest

from digest_builds import build_all, child_env

CASES = 20000


@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    """{kernel: {field: count}} from the driver's lines ("store cases N ties N ... bad N")."""
    if platform.machine() != "x86_64":
        pytest.skip("the AVX2 kernels are built on x86-64 hosts only")
    binaries = build_all(tmp_path_factory, "lrt_avx2.c", ("fixed.c", "maxnorm.c"), {"dispatched": ["-O2"]})
    lines = subprocess.run([str(binaries["dispatched"]), str(CASES)], capture_output=True, text=True, check=True,
                           env=child_env()).stdout.splitlines()
    if lines == ["no avx2"]:
        pytest.skip("this CPU has no AVX2 (or gcc built no clones): the AVX2 kernels do not run here")
    out = {}
    for line in lines:
        name, *fields = line.split()
        out[name] = {k: int(v) for k, v in zip(fields[::2], fields[1::2])}
    assert sorted(out) == ["store", "sweep16", "sweep32"], lines
    return out


def test_avx2_store_equals_the_exact_rows(counts):
    c = counts["store"]
    assert c["cases"] == CASES and c["bad"] == 0, c
    assert c["ties"] > 1000 and c["negative"] > 500, c
    assert c["clamped"] > 1000 and c["column1"] > 1000, c


@pytest.mark.parametrize("kernel", ["sweep16", "sweep32"])
def test_avx2_sweeps_equal_the_loops_they_replace(counts, kernel):
    c = counts[kernel]
    assert c["cases"] == CASES and c["bad"] == 0, c
    assert c["ties"] > 10000 and c["negative"] > 5000, c
