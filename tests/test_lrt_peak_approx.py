"""The rotation's peak pass (csrc/src/lrt.c, lrt_rot_bitlen_approx): the block exponent of the new
basis needs only the bit length of the largest |entry|, so the core forms the entries in int32 with
a proven error bound and falls back to the exact int64 pass when the bound straddles a power of
two. Same exponent, so the same bits: tests/c/lrt_peak.c (which includes lrt.c to reach the static
functions) compares it with the exact pass on random rotations of every rank and mode, half of them
with a peak planted next to a power of two and some with a residual at its worst rounding; the
multiversion digest (tests/test_lrt_multiversion.py) compares whole streams with a build that runs
the exact pass for every term."""
from __future__ import annotations

import re

import pytest

from digest_builds import build_all, digest

BUILDS = {  # the approximation is in the host's wide builds only; the portable loops keep the exact pass
    "dispatched": ["-O3"],  # x86-64 Linux gcc: the clones (elsewhere a portable build, left out below)
    "wide": ["-O3", "-DET_NO_MULTIVERSION", "-DET_LRT_WIDE_NOCLONE"],
    "wide-scalar": ["-O2", "-fno-tree-vectorize", "-DET_NO_MULTIVERSION", "-DET_LRT_WIDE_NOCLONE"],
}
CASES = 100000


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    binaries = build_all(tmp_path_factory, "lrt_peak.c", ("fixed.c", "maxnorm.c"), BUILDS)
    out = {}
    for name, binary in binaries.items():
        (line,) = digest(binary, CASES, 1)
        if line.startswith("portable build"):
            assert name == "dispatched", line  # a host without the clones
            continue
        m = re.fullmatch(r"cases (\d+) decided (\d+) fallback (\d+) near (\d+) bad (\d+)", line)
        assert m, line
        out[name] = dict(zip(("cases", "decided", "fallback", "near", "bad"), map(int, m.groups())))
    return out


def test_approximate_peak_gives_the_exact_exponent(runs):
    for name, c in runs.items():
        assert c["cases"] == CASES, name
        assert c["bad"] == 0, (name, c)


def test_both_paths_and_the_boundary_are_reached(runs):
    for name, c in runs.items():
        assert c["decided"] > CASES // 3, (name, c)  # the approximation decides most
        assert c["fallback"] > CASES // 10, (name, c)  # mode 2, planted boundaries, extreme weights
        assert c["near"] > CASES // 10, (name, c)  # peaks inside the error bound of a power of two
    assert all(c == runs["wide"] for c in runs.values())
