"""The CRC-32 on x86-64 hosts has a carry-less multiply path for inputs of 64 bytes and more
(csrc/src/crc.c, PCLMULQDQ, picked where the CPU has it): the same values as the table steps that
every other build takes. tests/c/crc_digest.c hashes et_crc32 and et_crc32_xor over every length up
to 700 bytes and some long ones, at four offsets and three starting values; the builds with and
without the path must print the same lines, and the values must be zlib's."""
from __future__ import annotations

import subprocess
import zlib

import numpy as np
import pytest

from digest_builds import VALGRIND, build_all, child_env, digest, require_valgrind, symbols
from edgetrain.commands.bench import cpu_flags
from edgetrain.core import ffi, lib

BUILDS = {
    "dispatched": ["-O2"],
    "no-clmul": ["-O2", "-DET_NO_CLMUL"],
    "portable": ["-O2", "-DET_NO_MULTIVERSION"],
    "slice4": ["-O2", "-DET_CRC_SLICE=4"],
}
LINES = 708


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    return build_all(tmp_path_factory, "crc_digest.c", ("crc.c",), BUILDS)


def test_builds_agree(binaries):
    out = {name: digest(b, 0, LINES) for name, b in binaries.items()}
    for name in BUILDS:
        assert out[name] == out["portable"], name
    assert len({line.split()[-1] for line in out["portable"]}) == LINES


def test_clmul_path_is_built_and_picked_by_the_cpu(binaries):
    names = symbols(binaries["dispatched"])
    assert "et_crc32_reg_clmul" in names
    assert "et_crc32_reg_clmul" not in symbols(binaries["no-clmul"])
    run = lambda name, wrap=(): subprocess.run([*wrap, str(binaries[name]), "isa"], capture_output=True, text=True,  # noqa: E731
                                                check=True, env=child_env()).stdout
    assert run("dispatched") == f"clmul built 1 picked {int('pclmulqdq' in cpu_flags())}\n"
    assert run("no-clmul") == "clmul built 0 picked 0\n"


def test_clmul_path_under_valgrind(binaries):
    """valgrind's CPU has PCLMULQDQ: the path runs there too, and must not read past the input."""
    symbols(binaries["dispatched"])
    require_valgrind()
    assert digest(binaries["dispatched"], 0, LINES, VALGRIND) == digest(binaries["portable"], 0, LINES)


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 127, 128, 129, 191, 192, 255, 256, 1000, 50816, 65537])
def test_the_loaded_core_gives_zlib_values(length):
    rng = np.random.default_rng(length)
    a = rng.integers(0, 256, length + 5, dtype=np.uint8).tobytes()
    b = rng.integers(0, 256, length + 5, dtype=np.uint8).tobytes()
    for off in (0, 5):
        crc = ffi.new("uint32_t *", 0xDEADBEEF)
        assert lib.et_crc32(crc, a[off:off + length], length) == 0
        assert crc[0] == zlib.crc32(a[off:off + length], 0xDEADBEEF)
        crc = ffi.new("uint32_t *", 3)
        assert lib.et_crc32_xor(crc, a[off:off + length], b[:length], length) == 0
        assert crc[0] == zlib.crc32(bytes(x ^ y for x, y in zip(a[off:off + length], b[:length])), 3)
