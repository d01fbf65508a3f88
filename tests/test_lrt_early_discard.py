"""The accumulator's early kappa discards (csrc/src/lrt.c, lrt_early_discard): before the first MGS
pass (from the input's norm) and after it (from the first residual's), a bound U on each side's
final residual norm (proved in the comment there) decides discards that the exact kappa test after
the last pass would make too, so a discarded term skips the passes left and nothing else changes.
tests/c/lrt_early.c runs many streams (uniform random terms, random valid states, bases at the
contraction limit, nearly repeated terms; one and two Gram-Schmidt passes) through two builds of the
core: as it is, and with -DET_LRT_EARLY_CHECK, where every term takes the exact path and the core
counts what the early tests would have done."""
from __future__ import annotations

import platform
import re
from pathlib import Path

import pytest

from digest_builds import build_all, digest

BUILDS = {
    "default": ["-O2"],
    "check": ["-O2", "-DET_LRT_EARLY_CHECK"],  # the early test compiled out, its decisions counted
    "check-portable": ["-O2", "-DET_LRT_EARLY_CHECK", "-DET_NO_MULTIVERSION"],
}
CASES = 400  # 5 shapes x 4 ranks x 5 modes x 4 stream kinds
TERMS = 80


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    binaries = build_all(tmp_path_factory, "lrt_early.c", ("lrt.c", "fixed.c", "maxnorm.c"), BUILDS)
    out = {}
    for name, binary in binaries.items():
        cases = CASES + 5 * (name != "default")  # the check builds add their counters
        out[name] = digest(binary, TERMS, cases)
    return out


def counters(lines, when="after"):
    """The check build's counters for the test after the first pass, before it, or with the shorter side
    after its first pass and the longer one before any (mixed)."""
    line = lines[{"after": -5, "before": -4, "mixed": -3}[when]]
    m = re.fullmatch(rf"{when} applied (\d+) exceeded (\d+) early (\d+) kept (\d+) margin (\d+)", line)
    assert m, line
    return dict(zip(("applied", "exceeded", "early", "kept", "margin"), map(int, m.groups())))


def test_outputs_equal_with_the_early_test_compiled_out(runs):
    """Every state, PRNG and status after every term is the same whether discards are decided early."""
    assert runs["check"][:-5] == runs["default"]
    assert runs["check-portable"][:-2] == runs["check"][:-2]  # the last lines: the Gram bound and sums below
    # the streams reach both outcomes of the kappa rule
    skipped = [int(re.search(r"skipped (\d+)", line).group(1)) for line in runs["default"]]
    assert sum(s > 0 for s in skipped) > CASES // 4 and sum(s == 0 for s in skipped) > 0


def test_every_early_discard_is_a_final_discard(runs):
    c = counters(runs["check"])
    assert c["kept"] == 0, c
    assert c["early"] > 5000, c  # many terms are decided early (about 11,000 on these streams)
    c0 = counters(runs["check"], "before")
    assert c0["kept"] == 0, c0
    assert c0["early"] > 5000, c0  # about 9,000 before any pass


def test_every_discard_with_one_side_past_its_first_pass_is_final(runs):
    """The shorter side's bound after its first pass times the longer side's before any: the test that
    lets a term skip the longer side's passes. Each side's U bounds its own rho, so the product bounds
    rho_L rho_R; on these streams it decides a good share of the discards."""
    c = counters(runs["check"], "mixed")
    assert c["exceeded"] == 0, c
    assert c["kept"] == 0, c
    assert c["applied"] > 20000, c
    assert c["early"] > 5000, c  # about 9,500 of the 11,000 the test after both first passes makes


def test_bound_holds_on_every_term_it_applies_to(runs):
    """The lemma itself, on every term (discarded or not): final rho 2^res_exp <= U 2^e1. The margin
    (1 + 2^-16) is needed: the final rho exceeds isqrt(s1) + 1 on hundreds of these terms (bases at
    the contraction limit, where the second pass nearly undoes the first)."""
    c = counters(runs["check"])
    assert c["exceeded"] == 0, c
    assert c["applied"] > 20000, c
    assert c["margin"] > 100, c


def test_bound_before_the_first_pass_holds_on_every_term_it_applies_to(runs):
    """The same lemma from the rescaled input's norm: final rho 2^res_exp <= U0 2^e0 with
    U0 = (isqrt(s0) + 1)(1 + 2^-15), for one and two passes, on every term whose bases contract."""
    c0 = counters(runs["check"], "before")
    assert c0["exceeded"] == 0, c0
    assert c0["applied"] > 25000, c0


def cpu_runs_scan_kernels() -> bool:
    """Where lrt_ext_unpack's scan and the Gram bound's kernels run: x86-64-v4's AVX-512 subsets (F, BW,
    CD, DQ, VL) or AVX2, as __builtin_cpu_supports reads them."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split()) if "flags" in text else set()
    return {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags or "avx2" in flags


def test_column_sums_from_the_unpack_give_the_passes_verdict(runs):
    """On CPUs with AVX2 or AVX-512 lrt_ext_unpack forms the contraction check's column sums while it
    unpacks column 1 (csrc/src/lrt.c, lrt_ext_unpack4_avx2 and _avx512), and the early test reads them
    instead of making a pass of its own; the check build compares the sums and their verdict with
    lrt_cols_contract's pass on every term, and the Gram bound's dot products and Gram sums (below) with
    plain loops. Elsewhere no term has them."""
    m = re.fullmatch(r"sums checked (\d+) differed (\d+)", runs["check"][-1])
    assert m, runs["check"][-1]
    checked, differed = map(int, m.groups())
    assert differed == 0
    if platform.machine() == "x86_64" and cpu_runs_scan_kernels():
        assert checked >= 5000  # the rank-4 cases (8,000 terms)
    else:
        assert checked == 0
    assert runs["check-portable"][-1] == "sums checked 0 differed 0"


def test_bound_from_dot_products_and_gram_matrix_holds(runs):
    """On CPUs with AVX2 or AVX-512, rank 4, a bound on each side's final rho from its input's dot
    products with the basis and the basis' Gram matrix (csrc/src/lrt.c, lrt_gram_bound) decides discards before
    either first pass. The check build counts, on every term where both sides have it: a final rho
    above its bound (never), the discards it would decide, those the exact test kept (never), and
    those the estimates that gate the Gram sweeps (lrt_dots_estimate) would have passed over.
    Elsewhere it never applies."""
    line = runs["check"][-2]
    m = re.fullmatch(r"gram applied (\d+) exceeded (\d+) early (\d+) kept (\d+) unsought (\d+)", line)
    assert m, line
    applied, exceeded, early, kept, unsought = map(int, m.groups())
    assert exceeded == 0 and kept == 0, line
    # the estimates from the dot products alone, which decide whether the Gram sweeps run, seek out
    # nearly every discard the bound can make
    assert unsought <= early // 50, line
    if platform.machine() == "x86_64" and cpu_runs_scan_kernels():
        assert applied > 5000, line  # about 7,700 of the rank-4 cases' 8,000 terms
        assert early > 2000, line  # about 3,200
    else:
        assert applied == 0, line
    assert runs["check-portable"][-2] == "gram applied 0 exceeded 0 early 0 kept 0 unsought 0"
