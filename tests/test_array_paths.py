"""The array paths added to the twin's div_round_s64 and maxnorm_scale agree with the C
element for element (and with their own scalar paths)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgetrain import ArgumentError, RangeError
from edgetrain.reference import fixed, maxnorm

I64 = st.integers(-(2**63), 2**63 - 1)


@given(st.lists(st.one_of(I64, st.integers(-1000, 1000), st.sampled_from([-(2**63), 2**63 - 1, 0, -1, 1])), min_size=1, max_size=30),
       st.one_of(I64, st.integers(-50, 50)).filter(lambda d: d != 0))
def test_div_round_array(core, twin, nums, den):
    ffi, lib = core
    if den == -1 and -(2**63) in nums:
        with pytest.raises(RangeError):
            fixed.div_round_s64(np.array(nums, np.int64), den)
        return
    out = ffi.new("int64_t *")
    c = []
    for n in nums:
        assert lib.et_div_round_s64(n, den, out) == 0
        c.append(out[0])
    got = fixed.div_round_s64(np.array(nums, np.int64), np.int64(den))
    twin.equal(c, got.tolist(), "div_round_s64 array path")
    assert got.tolist() == [fixed.div_round_s64(n, den) for n in nums]


def test_div_round_array_rejects_zero():
    with pytest.raises(ArgumentError):
        fixed.div_round_s64(np.array([1, 2]), np.array([1, 0]))


@given(st.lists(st.integers(-(2**31) + 1, 2**31 - 1), min_size=1, max_size=30), st.integers(-40, 40), st.integers(0, 2**31 - 1),
       st.integers(-40, 0), st.builds(maxnorm.ufloat_make, st.integers(1, 2**40), st.integers(-60, 60)), st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]))
def test_maxnorm_scale_array(core, twin, xs, x_exp, factor, factor_exp, divisor, fmt):
    ffi, lib = core
    out = ffi.new("int64_t *")
    d = ffi.new("et_ufloat_t *", {"mant": divisor.mant, "exp": divisor.exp})[0]
    c = []
    for x in xs:
        assert lib.et_maxnorm_scale(x, x_exp, factor, factor_exp, d, fmt, out) == 0
        c.append(out[0])
    got = maxnorm.maxnorm_scale(np.array(xs, np.int64), x_exp, factor, factor_exp, divisor, fmt)
    twin.equal(c, got.tolist(), "maxnorm_scale array path")
