"""Firmware's int32-lane MGS sweep for the shifts 15 and 16 (lrt_mgs_sweep16, low, csrc/src/lrt.c): the
bases of layers with few rows have unit columns with entries near 1, so their sweeps shift by 15 or
16, where the int32-lane sweep's split of the rounding offset (2^(sh-17)) is no integer and a
different split carries it. tests/c/lrt_sweep_lo.c (which includes lrt.c to reach the sweeps)
compares it with the 32 x 32 -> 64-bit sweep firmware took before, on inputs made to land on
rounding ties (negative ones too), with the coefficient's high half at its top and the mantissas'
int16 extremes: the firmware's digests and tests/test_arm.py, built from real streams, would not see
a wrong tie."""
from __future__ import annotations

import subprocess

import pytest

from digest_builds import build_all, child_env

CASES = 20000


@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    """{field: count} from the driver's line ("sweep16lo cases N ties N negative N big N bad N")."""
    binaries = build_all(tmp_path_factory, "lrt_sweep_lo.c", ("fixed.c", "maxnorm.c"), {"host": ["-O2"]})
    line = subprocess.run([str(binaries["host"]), str(CASES)], capture_output=True, text=True, check=True,
                          env=child_env()).stdout.split()
    assert line[0] == "sweep16lo", line
    return {k: int(v) for k, v in zip(line[1::2], line[2::2])}


def test_the_sweep_reaches_ties_and_the_top_of_its_range(counts):
    assert counts["cases"] == CASES
    assert counts["ties"] > CASES and counts["negative"] > CASES // 4
    assert counts["big"] > CASES // 8


def test_the_int32_lane_sweep_equals_the_64_bit_one(counts):
    assert counts["bad"] == 0, counts
