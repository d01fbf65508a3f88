"""The rotation's scale (csrc/src/lrt.c, lrt_rot_bound and lrt_full_range_scale): the new basis' block
exponent and multiplier come from a bound on its entries, not from a pass that forms them. The bound
must never be below the peak, or a mantissa would clamp; tests/c/lrt_bound.c (which includes lrt.c to
reach the static functions) checks that on random rotations of every rank and mode, with the exact
entries of every row, and that the store pass then fills the int16 range as far as the bound allows.
The twin's equality with the C (tests/test_lrt_*.py) covers the bits; tests/test_lrt_accuracy.py how
tight the bound is on real streams."""
from __future__ import annotations

import re

import pytest

from digest_builds import build_all, digest

BUILDS = {
    "portable": ["-O3", "-DET_NO_MULTIVERSION"],  # the loops firmware gets (exact int64 rows)
    "wide": ["-O3", "-DET_NO_MULTIVERSION", "-DET_LRT_WIDE_NOCLONE"],  # the host's split-weight store pass
}
CASES = 50000


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    binaries = build_all(tmp_path_factory, "lrt_bound.c", ("fixed.c", "maxnorm.c"), BUILDS)
    out = {}
    for name, binary in binaries.items():
        (line,) = digest(binary, CASES, 1)
        m = re.fullmatch(r"cases (\d+) zero (\d+) tight (\d+) bad (\d+)", line)
        assert m, line
        out[name] = dict(zip(("cases", "zero", "tight", "bad"), map(int, m.groups())))
    return out


def test_the_bound_is_never_below_the_peak(runs):
    for name, c in runs.items():
        assert c["cases"] == CASES and c["bad"] == 0, (name, c)


def test_the_cases_reach_empty_and_tight_bounds(runs):
    for name, c in runs.items():
        assert c["zero"] > 0, (name, c)  # no residual and no old basis: an empty basis
        assert c["tight"] > CASES // 20, (name, c)  # rank 1 or one dominant row: bound = peak
    assert runs["portable"] == runs["wide"]
