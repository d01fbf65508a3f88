"""fixed.c picks its 64-bit integer square root and its leading-zero count by target: Newton with
a 64-bit divide on x86-64 and AArch64 hosts, a split step on a 32-bit root elsewhere (Cortex-M);
the compiler's clz where there is an instruction, a binary search elsewhere (Cortex-M0+). Every
path is built here on the host (tests/c/fixed_int.c) and checked against Python's exact
math.isqrt and int.bit_length on edge values (0, 1, every 2^k and 2^k +- 1, squares and squares
+- 1 at every size, every square below 2^32 and its neighbours, every value below 2^18 (so every
16-bit root the 32-bit root's table gives), the top of the range, both ends of each entry of the
Newton start's table at every even shift) and random ones."""
from __future__ import annotations

import math
import random
import subprocess

import pytest

from digest_builds import build_all

BUILDS = {
    "host": ["-O2"],
    "split": ["-O2", "-DET_ISQRT_SPLIT"],  # the Cortex-M square root
    "portable-clz": ["-O2", "-DET_CLZ_PORTABLE"],  # the Cortex-M0+ clz (and other compilers')
    "split-portable-clz": ["-O2", "-DET_ISQRT_SPLIT", "-DET_CLZ_PORTABLE"],
}
U64 = 2**64 - 1


def edge_values() -> list[int]:
    vals = {0, 1, 2, 3, 4, 5, U64, U64 - 1, 2**32 - 1, 2**32, (2**32 - 1) ** 2, (2**32 - 1) ** 2 - 1}
    for k in range(64):
        vals.update({2**k - 1, 2**k, 2**k + 1})
    for k in range(1, 33):  # roots at every size: 2^k, 2^k - 1 and their neighbours, squared, +- 1
        for r in (2**k - 2, 2**k - 1, 2**k, 2**k + 1, 3 * 2 ** (k - 1)):
            if 0 < r < 2**32:
                vals.update({r * r - 1, r * r, r * r + 1, r * r + 2 * r, r * r + 2 * r + 1})
    for r in range(1, 2**16):  # the 32-bit root's split step: every square below 2^32, +- 1
        vals.update({r * r - 1, r * r, r * r + 1})
    vals.update(range(2**18))  # every 16-bit root of the table (h in [2^14, 2^16)) at each scaling
    for t in range(64, 256):  # the Newton start's table: each top byte's largest and smallest xn,
        for z in range(0, 63, 2):  # shifted down by every even amount, and their neighbours
            for v in ((t + 1) * 2**56 - 1, t * 2**56):
                vals.update({v >> z, (v >> z) + 1, (v >> z) - 1})
    rng = random.Random(20261206)
    for _ in range(20000):
        bits = rng.randint(1, 64)
        vals.add(rng.getrandbits(bits))
        r = rng.getrandbits(rng.randint(1, 32))
        vals.update({v for v in (r * r - 1, r * r, r * r + 1) if 0 <= v <= U64})
    return sorted(v for v in vals if 0 <= v <= U64)


def expected(v: int) -> str:
    lo = v & 0xFFFFFFFF
    return f"{math.isqrt(v)} {math.isqrt(lo)} {32 - lo.bit_length()} {64 - v.bit_length()}"


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    return build_all(tmp_path_factory, "fixed_int.c", ("fixed.c",), BUILDS)


@pytest.mark.parametrize("build", list(BUILDS))
def test_isqrt_and_clz_are_exact_on_every_path(binaries, build):
    vals = edge_values()
    proc = subprocess.run([str(binaries[build])], input="\n".join(map(str, vals)) + "\n", capture_output=True,
                          text=True, check=True)
    got = proc.stdout.splitlines()
    assert len(got) == len(vals)
    bad = [(v, g, expected(v)) for v, g in zip(vals, got) if g != expected(v)]
    assert not bad, bad[:5]


def test_the_checker_sees_a_wrong_root():
    """The comparison above can fail: an off-by-one root is a mismatch."""
    v = 2**40 + 12345
    right = expected(v).split()
    wrong = " ".join([str(int(right[0]) + 1), *right[1:]])
    assert wrong != expected(v)
