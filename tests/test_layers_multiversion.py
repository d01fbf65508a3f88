"""The conv and dense kernels (csrc/src/layers.c) are compiled for several instruction sets on x86-64
hosts like the accumulator (csrc/src/hot_internal.h: AVX-512, AVX2, baseline, picked at load time).
Integer arithmetic is exact, so every build must give the same bits as the portable loops that
firmware and -DET_NO_MULTIVERSION builds get: tests/c/layers_digest.c hashes the forward outputs and
clip counters, the int8 and int16 input gradients and the conv weight gradient over layers that take
every loop, and the builds are compared line for line."""
from __future__ import annotations

import pytest

from digest_builds import VALGRIND, build_all, digest, require_valgrind, symbols

BUILDS = {
    "dispatched": ["-O3"],  # x86-64 Linux gcc: AVX-512 / AVX2 / baseline clones of the kernels
    "portable": ["-O3", "-DET_NO_MULTIVERSION"],  # the loops firmware gets
    "portable-scalar": ["-O2", "-fno-tree-vectorize", "-DET_NO_MULTIVERSION"],
}
CASES = 576  # 16 layers x 3 input formats x 6 layer scales x 2 activations
HOT = ("et_conv2d_forward_n", "et_dense_forward_n", "et_conv2d_backward_input_n", "et_conv2d_backward_input_rows",
       "et_dense_backward_input_n", "et_conv2d_weight_grad_windows", "et_conv2d_weight_grad_wide",
       "et_conv2d_forward_thin")


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    return build_all(tmp_path_factory, "layers_digest.c", ("layers.c", "fixed.c", "model.c"), BUILDS)


def test_builds_agree_bit_for_bit(binaries):
    out = {name: digest(b, 6, CASES) for name, b in binaries.items()}
    for name in BUILDS:
        assert out[name] == out["portable"], name
    # every layer is valid and every call succeeds, and no two cases hash alike (the hash sees the data)
    assert all(" bad 0 " in line for line in out["portable"])
    assert len({line.split()[-1] for line in out["portable"]}) == CASES


def test_dispatch_builds_clones_on_x86_64(binaries):
    """Where the guard in hot_internal.h enables it (gcc 11+, x86-64 Linux, glibc), the clones exist:
    otherwise the dispatched build above would be one more copy of the baseline-ISA loops."""
    names = symbols(binaries["dispatched"])
    for fn in HOT:
        assert f"{fn}.avx2" in names and f"{fn}.arch_x86_64_v4" in names, fn
    # the kernels the clones call are inlined into each clone, not left as one baseline copy
    for fn in ("et_dot_c", "et_dot4_c", "et_axpy_c", "et_axpy2_c", "et_grad_rows"):
        assert f" {fn}\n" not in names, fn
    portable = symbols(binaries["portable"])
    assert ".avx2" not in portable


def test_avx2_clone_under_valgrind(binaries):
    """valgrind's virtual CPU has AVX2 but no AVX-512: the loader picks the AVX2 clones there, so
    this run covers the clone a native run on an AVX-512 machine does not take."""
    require_valgrind()
    assert digest(binaries["dispatched"], 3, CASES, VALGRIND) == digest(binaries["portable"], 3, CASES)
