"""The accumulator's early kappa discards (csrc/src/lrt.c, lrt_early_discard): before the first MGS
pass (from the input's norm) and after it (from the first residual's), a bound U on each side's
final residual norm (proved in the comment there) decides discards that the exact kappa test after
the last pass would make too, so a discarded term skips the passes left and nothing else changes.
tests/c/lrt_early.c runs many streams (uniform random terms, random valid states, bases at the
contraction limit, nearly repeated terms; one and two Gram-Schmidt passes) through two builds of the
core: as it is, and with -DET_LRT_EARLY_CHECK, where every term takes the exact path and the core
counts what the early tests would have done."""
from __future__ import annotations

import re

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
        cases = CASES + 3 * (name != "default")  # the check builds add their counters
        out[name] = digest(binary, TERMS, cases)
    return out


def counters(lines, when="after"):
    """The check build's counters for the test after the first pass, before it, or with the shorter side
    after its first pass and the longer one before any (mixed)."""
    line = lines[{"after": -3, "before": -2, "mixed": -1}[when]]
    m = re.fullmatch(rf"{when} applied (\d+) exceeded (\d+) early (\d+) kept (\d+) margin (\d+)", line)
    assert m, line
    return dict(zip(("applied", "exceeded", "early", "kept", "margin"), map(int, m.groups())))


def test_outputs_equal_with_the_early_test_compiled_out(runs):
    """Every state, PRNG and status after every term is the same whether discards are decided early."""
    assert runs["check"][:-3] == runs["default"]
    assert runs["check-portable"] == runs["check"]
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
