"""The conv and dense kernels (csrc/src/layers.c) are compiled for several instruction sets on x86-64
hosts like the accumulator (csrc/src/hot_internal.h: AVX-512, AVX2, baseline, picked at load time).
The forward kernels have one more copy, for AVX-512 VNNI, picked by the CPU's feature bits (gcc's clones
cannot select it on every CPU that has it), and the conv forward one for AVX2 without VNNI. Integer arithmetic is exact, so every build must give the
same bits as the portable loops that
firmware and -DET_NO_MULTIVERSION builds get: tests/c/layers_digest.c hashes the forward outputs and
clip counters, the int8 and int16 input gradients and the conv weight gradient over layers that take
every loop, and the builds are compared line for line."""
from __future__ import annotations

import subprocess

import pytest

from digest_builds import VALGRIND, build_all, child_env, digest, require_valgrind, symbols
from edgetrain.commands.bench import V4_FLAGS, cpu_flags

BUILDS = {
    "dispatched": ["-O3"],  # x86-64 Linux gcc: AVX-512 / AVX2 / baseline clones, VNNI forward copy
    "no-vnni": ["-O3", "-DET_NO_VNNI"],  # the clones and the AVX2 lanes conv copy
    "no-lanes": ["-O3", "-DET_NO_VNNI", "-DET_NO_LANES"],  # the clones only: the AVX-512 one runs natively
    "portable": ["-O3", "-DET_NO_MULTIVERSION"],  # the loops firmware gets
    "portable-scalar": ["-O2", "-fno-tree-vectorize", "-DET_NO_MULTIVERSION"],
}
CASES = 720  # 20 layers x 3 input formats x 6 layer scales x 2 activations
VNNI = ("et_conv2d_forward_n", "et_dense_forward_n")  # ET_HOT_VNNI_DISPATCH: <name>_vnni and <name>_clones
HOT = ("et_conv2d_forward_n_clones", "et_dense_forward_n_clones", "et_conv2d_backward_input_n", "et_conv2d_backward_input_rows",
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


def isa(binary, wrapper=()) -> str:
    return subprocess.run([*wrapper, str(binary), "isa"], capture_output=True, text=True, check=True,
                          env=child_env()).stdout


def test_vnni_copy_is_built_and_picked_by_the_cpu(binaries):
    """The VNNI copies exist in the dispatched build only, and the dispatcher picks them exactly where
    /proc/cpuinfo lists AVX-512 VNNI with the rest of x86-64-v4: so on such a CPU the agreement above
    covers the VNNI copy, and the no-vnni build's the AVX-512 clone."""
    names = symbols(binaries["dispatched"])
    plain = symbols(binaries["no-vnni"])
    for fn in VNNI:
        assert f"{fn}_vnni" in names and f"{fn}_clones.arch_x86_64_v4" in names, fn
        assert f"{fn}_vnni" not in plain and f"{fn}_clones" not in plain, fn
        assert f"{fn}.arch_x86_64_v4" in plain, fn
    want = int((V4_FLAGS | {"avx512_vnni"}) <= cpu_flags())
    avx2 = int("avx2" in cpu_flags())
    assert isa(binaries["dispatched"]) == f"vnni built 1 picked {want}\nlanes built 1 picked {avx2}\n"
    assert isa(binaries["no-vnni"]) == f"vnni built 0 picked 0\nlanes built 1 picked {avx2}\n"
    assert isa(binaries["no-lanes"]) == "vnni built 0 picked 0\nlanes built 0 picked 0\n"


def test_lanes_copy_is_built_where_enabled(binaries):
    """The conv forward's AVX2 lanes copy exists unless -DET_NO_LANES (or a portable build) leaves it
    out, so the no-vnni build's agreement covers it natively and no-lanes the clones' window loops."""
    for name, built in (("dispatched", True), ("no-vnni", True), ("no-lanes", False), ("portable", False)):
        assert ("et_conv2d_forward_lanes" in symbols(binaries[name])) == built, name


def test_valgrind_runs_the_clones_not_the_vnni_copy(binaries):
    """valgrind's CPU has no AVX-512, so the dispatcher must fall back to the clones there, and to the
    AVX2 lanes copy of the conv forward (the AVX2 comparison above covers both)."""
    symbols(binaries["dispatched"])
    require_valgrind()
    assert isa(binaries["dispatched"], VALGRIND) == "vnni built 1 picked 0\nlanes built 1 picked 1\n"
