"""The accumulator's hot loops (csrc/src/lrt.c) are compiled for several instruction sets on x86-64
hosts (gcc function multiversioning: AVX-512, AVX2, baseline) and picked at load time. Integer
arithmetic is exact, so every build must give the same bits, and so must the portable loops that
firmware and -DET_NO_MULTIVERSION builds get: tests/c/lrt_digest.c hashes the state,
PRNG and flushed rows after every term over many shapes, ranks and modes (valid streams and random
states), and the builds are compared line for line. So are fixed.c's square root and clz paths for
32-bit targets (built here on the host)."""
from __future__ import annotations

import pytest

from digest_builds import VALGRIND, build_all, digest, require_valgrind, symbols

BUILDS = {
    "dispatched": ["-O3"],  # x86-64 Linux gcc: AVX-512 / AVX2 / baseline clones of the wide loops
    "portable": ["-O3", "-DET_NO_MULTIVERSION"],  # the loops firmware gets
    "portable-scalar": ["-O2", "-fno-tree-vectorize", "-DET_NO_MULTIVERSION"],
    "wide": ["-O3", "-DET_NO_MULTIVERSION", "-DET_LRT_WIDE_NOCLONE"],  # the wide loops for the baseline ISA
    "wide-scalar": ["-O2", "-fno-tree-vectorize", "-DET_NO_MULTIVERSION", "-DET_LRT_WIDE_NOCLONE"],
    "no-early-discard": ["-O3", "-DET_LRT_EARLY_CHECK"],
    "no-lrt-avx2": ["-O3", "-DET_NO_LRT_AVX2"],  # the compiler's clones where the AVX2 kernels run
    "no-avx512-plane": ["-O3", "-DET_NO_LRT_AVX512"],  # column 1's plane byte-wise on AVX-512 CPUs too
    "no-lrt-simd": ["-O3", "-DET_NO_LRT_AVX512", "-DET_NO_LRT_AVX2"],  # no scan: every kappa discard after a pass
    # fixed.c's 32-bit-target square root and the clz without an instruction (Cortex-M0+)
    "mcu-isqrt-clz": ["-O2", "-DET_NO_MULTIVERSION", "-DET_ISQRT_SPLIT", "-DET_CLZ_PORTABLE"],
}
CASES = 216  # 9 shapes x 8 ranks x 3 modes


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    return build_all(tmp_path_factory, "lrt_digest.c", ("lrt.c", "fixed.c", "maxnorm.c"), BUILDS)


def test_builds_agree_bit_for_bit(binaries):
    out = {name: digest(b, 60, CASES) for name, b in binaries.items()}
    for name in BUILDS:
        assert out[name] == out["portable"], name
    # the stream reaches both outcomes: accepted terms and refused (ET_ERR_RANGE) random states
    assert any(" err 0 " in line for line in out["portable"])
    assert any(" err 0 " not in line for line in out["portable"])


def test_builds_agree_bit_for_bit_in_batches(binaries):
    """The same streams through et_lrt_accumulate_batch_u8 in batches of 1..16 (the frame passes, the
    blocked rotation: 32 rows per block in wide builds, 8 in portable ones)."""
    out = {name: digest(b, 60, CASES, extra=("batch",)) for name, b in binaries.items()}
    for name in BUILDS:
        assert out[name] == out["portable"], name
    assert any(" err 0 " in line for line in out["portable"])
    assert out["portable"] != digest(binaries["portable"], 60, CASES)  # the batches took another path


def test_dispatch_builds_clones_on_x86_64(binaries):
    """Where the guard in hot_internal.h enables it (gcc, x86-64 Linux), the clones exist: otherwise the
    dispatched build above would be one more copy of the baseline-ISA loops."""
    names = symbols(binaries["dispatched"])
    for fn in ("lrt_mgs_pass_cols", "lrt_abs_max16", "lrt_abs_max32", "lrt_rot_commit_side", "lrt_rescale", "lrt_sumsq", "lrt_frame_peak",
               "lrt_frame_store"):
        assert f"{fn}.avx2" in names and f"{fn}.arch_x86_64_v4" in names, fn
    portable = symbols(binaries["portable"])
    assert ".avx2" not in portable
    # column 1's plane: the AVX-512 unpack and pack, picked at run time, unless built out
    for fn in ("lrt_ext_unpack4_avx512", "lrt_ext_pack2_avx512"):
        assert fn in names and fn not in symbols(binaries["no-avx512-plane"]) and fn not in portable, fn
    # the AVX2 kernels (store and sweeps on every AVX2 CPU, scan and Gram without AVX-512), picked at
    # run time, unless built out
    for fn in ("lrt_rot_write4_avx2", "lrt_ext_unpack4_avx2", "lrt_dots4_avx2", "lrt_gram4_avx2"):
        assert fn in names and fn not in symbols(binaries["no-lrt-avx2"]) and fn not in portable, fn


def test_avx2_clone_under_valgrind(binaries):
    """valgrind's virtual CPU has AVX2 but no AVX-512: the loader picks the AVX2 clones there, so
    this run covers the clone a native run on an AVX-512 machine does not take."""
    require_valgrind()
    assert digest(binaries["dispatched"], 30, CASES, VALGRIND) == digest(binaries["portable"], 30, CASES)
    assert (digest(binaries["dispatched"], 30, CASES, VALGRIND, extra=("batch",))
            == digest(binaries["portable"], 30, CASES, extra=("batch",)))
