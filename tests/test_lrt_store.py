"""The rotation's store pass at rank 4 with AVX2 (csrc/src/lrt.c, lrt_rot_write4_avx2, run on CPUs
without AVX-512) keeps the rows' sums in 64-bit lanes but takes the rounded values from their low 32
bits and clamps them by vpackssdw's saturation. tests/c/lrt_store.c (which includes lrt.c to reach
the kernels) compares it with the exact int64 rows firmware runs, on random rotations with shifts
chosen so that the rounding's ties and both clamps occur often: the streams of a real term reach
them rarely, so the digests of tests/test_lrt_multiversion.py alone would not see a wrong tie or
clamp."""
from __future__ import annotations

import platform
import re

import pytest

from digest_builds import build_all, digest

CASES = 20000


@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    if platform.machine() != "x86_64":
        pytest.skip("the AVX2 store kernel is built on x86-64 hosts only")
    binaries = build_all(tmp_path_factory, "lrt_store.c", ("fixed.c", "maxnorm.c"), {"dispatched": ["-O2"]})
    (line,) = digest(binaries["dispatched"], CASES, 1)
    if line == "no avx2":
        pytest.skip("this CPU has no AVX2 (or gcc built no clones): the AVX2 store kernel does not run here")
    m = re.fullmatch(r"cases (\d+) ties (\d+) negative (\d+) clamped (\d+) column1 (\d+) bad (\d+)", line)
    assert m, line
    return dict(zip(("cases", "ties", "negative", "clamped", "column1", "bad"), map(int, m.groups())))


def test_avx2_store_equals_the_exact_rows(counts):
    assert counts["cases"] == CASES and counts["bad"] == 0, counts


def test_the_cases_reach_ties_and_clamps(counts):
    assert counts["ties"] > 1000 and counts["negative"] > 500, counts
    assert counts["clamped"] > 1000 and counts["column1"] > 1000, counts
