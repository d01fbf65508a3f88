"""csrc/src/maxnorm.c against edgetrain/reference/maxnorm.py (exact), and against
the paper's float formula (close)."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from edgetrain import ArgumentError
from edgetrain.reference import fixed as ref_fixed
from edgetrain.reference import maxnorm as ref

u64 = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1]), st.integers(0, 1000))
exps = st.integers(-(2**20), 2**20)
ufloats = st.builds(ref.ufloat_make, st.integers(0, 2**40), st.integers(-200, 200))


def as_c(ffi, u):
    return ffi.new("et_ufloat_t *", {"mant": u.mant, "exp": u.exp})[0]


def from_c(c):
    return ref.UFloat(c.mant, c.exp)


@given(u64, st.one_of(exps, st.sampled_from([-(2**31), 2**31 - 1, -(2**24), 2**24])))
@example(2**31 - 1, 0)
@example(2**32 - 1, 0)  # rounds up to 2^31 and renormalises
@example(3, 0)
def test_ufloat_make(core, twin, v, e):
    _, lib = core
    c = from_c(lib.et_ufloat_make(v, e))
    twin.equal(c, ref.ufloat_make(v, e))
    if v:
        assert 2**30 <= c.mant < 2**31
        if -(2**24) + 64 < e < 2**24 - 64:  # away from the exponent clamp: within half an ulp
            err = abs(Fraction(c.mant) * Fraction(2) ** c.exp - Fraction(v) * Fraction(2) ** e)
            assert err <= Fraction(2) ** (c.exp - 1)


@given(ufloats, ufloats)
def test_ufloat_add_and_cmp(core, twin, a, b):
    ffi, lib = core
    s = from_c(lib.et_ufloat_add(as_c(ffi, a), as_c(ffi, b)))
    twin.equal(s, ref.ufloat_add(a, b))
    twin.equal(lib.et_ufloat_cmp(as_c(ffi, a), as_c(ffi, b)), ref.ufloat_cmp(a, b))
    exact = a.mant * 2.0**a.exp + b.mant * 2.0**b.exp
    if exact:
        assert abs(s.value() - exact) <= 2.0 ** (s.exp - 1) * 1.000001
    assert ref.ufloat_cmp(a, b) == (a.value() > b.value()) - (a.value() < b.value())


@given(st.lists(st.tuples(u64, st.integers(-60, 20)), min_size=1, max_size=60))
def test_maxnorm_sequence(core, twin, feed):
    ffi, lib = core
    mn = ffi.new("et_maxnorm_t *")
    div = ffi.new("et_ufloat_t *")
    assert lib.et_maxnorm_init(mn) == 0
    r = ref.maxnorm_init()
    for max_abs, e in feed:
        assert lib.et_maxnorm_update(mn, max_abs, e, div) == 0
        d = ref.maxnorm_update(r, max_abs, e)
        twin.equal((from_c(div[0]), mn.count, mn.beta_pow, from_c(mn.moving)), (d, r.count, r.beta_pow, r.moving))


def float_maxnorm(feed, beta=0.999, eps=1e-4):
    """The paper's max-norm in float64 (lrt-paper-spec §4)."""
    k, mv, out = 0, eps, []
    for x in feed:
        k += 1
        x_max = x + eps
        mv = beta * mv + (1 - beta) * x_max
        out.append(max(x_max, mv / (1 - beta**k)))
    return out


def test_maxnorm_follows_the_papers_float_formula(core):
    ffi, lib = core
    # A gradient whose magnitude drifts over four octaves, with quiet stretches.
    feed = [0.5 * (1 + math.sin(i / 37.0)) * (0.05 if (i // 300) % 2 else 1.0) + 1e-3 for i in range(3000)]
    mn = ffi.new("et_maxnorm_t *")
    div = ffi.new("et_ufloat_t *")
    lib.et_maxnorm_init(mn)
    want = float_maxnorm(feed, beta=ref.BETA_Q30 / 2**30, eps=2.0**-13)
    worst = 0.0
    for x, w in zip(feed, want):
        q = round(x * 2**20)  # the tensor's max as an integer at 2^-20
        lib.et_maxnorm_update(mn, q, -20, div)
        got = div[0].mant * 2.0 ** div[0].exp
        worst = max(worst, abs(got - w) / w)
    # Input quantisation (2^-21 on values >= 1e-3) and 31-bit rounding keep the integer
    # tracker within 1e-3 of the float64 one over 3000 steps.
    assert worst < 1e-3, worst


@given(st.integers(-(2**31) + 1, 2**31 - 1), st.integers(-40, 40), st.integers(0, 2**31 - 1), st.integers(-40, 0), ufloats.filter(lambda u: u.mant), st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]))
@example(3, 0, 1, 0, ref.ufloat_make(2, 0), 7)  # 1.5 -> 2
@example(-3, 0, 1, 0, ref.ufloat_make(2, 0), 7)  # -1.5 -> -2
def test_maxnorm_scale(core, twin, x, x_exp, factor, factor_exp, divisor, fmt):
    ffi, lib = core
    out = ffi.new("int64_t *")
    assert lib.et_maxnorm_scale(x, x_exp, factor, factor_exp, as_c(ffi, divisor), fmt, out) == 0
    twin.equal(out[0], ref.maxnorm_scale(x, x_exp, factor, factor_exp, divisor, fmt))
    # Exact oracle: Fraction arithmetic and the rounding rule.
    f = ref_fixed.FORMATS[fmt]
    v = Fraction(x) * Fraction(2) ** x_exp * factor * Fraction(2) ** factor_exp / (Fraction(divisor.mant) * Fraction(2) ** divisor.exp) / Fraction(2) ** f.lsb_exp
    mag = math.floor(abs(v) + Fraction(1, 2))
    assert out[0] == max(f.qmin, min(f.qmax, mag if v >= 0 else -mag))


def test_maxnorm_rejects_bad_arguments_and_changes_nothing(core):
    ffi, lib = core
    mn = ffi.new("et_maxnorm_t *")
    div = ffi.new("et_ufloat_t *")
    lib.et_maxnorm_init(mn)
    before = (mn.count, mn.beta_pow, mn.moving.mant, mn.moving.exp)
    assert lib.et_maxnorm_update(mn, 5, 2**21, div) == -1
    assert lib.et_maxnorm_update(mn, 5, 0, ffi.NULL) == -1
    assert (mn.count, mn.beta_pow, mn.moving.mant, mn.moving.exp) == before
    with pytest.raises(ArgumentError):
        ref.maxnorm_update(ref.maxnorm_init(), 5, 2**21)
    out = ffi.new("int64_t *", 42)
    one = as_c(ffi, ref.ufloat_make(1, 0))
    zero = as_c(ffi, ref.ZERO)
    assert lib.et_maxnorm_scale(1, 0, 1, 0, zero, 0, out) == -1  # zero divisor
    assert lib.et_maxnorm_scale(1, 0, 1, 0, one, 8, out) == -1  # 64-bit format
    assert lib.et_maxnorm_scale(2**31, 0, 1, 0, one, 0, out) == -1  # |x| too large
    assert out[0] == 42
    with pytest.raises(ArgumentError):
        ref.maxnorm_scale(1, 0, 1, 0, ref.ZERO, 0)
