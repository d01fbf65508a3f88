"""csrc/src/fixed.c against edgetrain/reference/fixed.py: exact equality.

Each primitive is driven by hypothesis over random and edge inputs; where the
contract has a closed-form meaning (the rounding rule, floor square root,
C division) a third, exact oracle written from the spec checks both.
"""
from __future__ import annotations

import math
import weakref
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from edgetrain import ArgumentError, RangeError
from edgetrain.reference import fixed as ref

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1

EDGE64 = [I64_MIN, I64_MIN + 1, -(2**62), -(2**32), I32_MIN, -(2**15), -3, -2, -1, 0, 1, 2, 3, 2**15, I32_MAX, 2**32, 2**62, I64_MAX - 1, I64_MAX]
int64s = st.one_of(st.integers(I64_MIN, I64_MAX), st.sampled_from(EDGE64), st.integers(-1000, 1000))
int32s = st.one_of(st.integers(I32_MIN, I32_MAX), st.sampled_from([I32_MIN, I32_MIN + 1, -1, 0, 1, I32_MAX]))
shifts = st.one_of(st.integers(-70, 70), st.sampled_from([-(2**31), -65, -64, -63, -62, 0, 1, 62, 63, 64, 65, 2**31 - 1]))

ET_OK, ET_ERR_ARG, ET_ERR_RANGE = 0, -1, -5


def exact_round_shift(x: int, shift: int) -> int:
    """The rounding rule from the spec, on exact rationals."""
    value = Fraction(x) * Fraction(2) ** (-shift) if abs(shift) < 4096 else (Fraction(0) if shift > 0 else None)
    if value is None:  # huge left shift
        return 0 if x == 0 else (I64_MAX if x > 0 else I64_MIN)
    mag = abs(value)
    r = math.floor(mag + Fraction(1, 2))
    r = r if value >= 0 else -r
    return max(I64_MIN, min(I64_MAX, r))


# ---- formats ------------------------------------------------------------------

# The paper's format table (lrt-paper-spec §4), written out here as the spec states it.
SPEC_FORMATS = {
    "ET_FMT_WEIGHT": (8, 1, -7, -128, 127),
    "ET_FMT_BIAS": (16, 1, -12, -32768, 32767),
    "ET_FMT_ACT": (8, 0, -7, 0, 255),
    "ET_FMT_INPUT": (8, 0, -8, 0, 255),
    "ET_FMT_GRAD": (8, 1, -7, -128, 127),
    "ET_FMT_BN_OUT": (8, 1, -6, -128, 127),
    "ET_FMT_BN_SQ": (16, 1, -9, -32768, 32767),
    "ET_FMT_ACC32": (32, 1, 0, I32_MIN, I32_MAX),
    "ET_FMT_ACC64": (64, 1, 0, I64_MIN, I64_MAX),
}


def test_format_table_matches_spec_in_c_and_twin(core, twin):
    ffi, lib = core
    out = ffi.new("et_format_t *")
    for name, row in SPEC_FORMATS.items():
        fmt_id = getattr(lib, name)
        assert lib.et_format_get(fmt_id, out) == ET_OK
        c_row = (out.bits, out.is_signed, out.lsb_exp, out.qmin, out.qmax)
        assert c_row == row, name
        twin.equal(c_row, tuple(ref.format_get(fmt_id)), name)
    assert lib.ET_FMT_COUNT == ref.FMT_COUNT == len(SPEC_FORMATS)


def test_format_real_ranges_are_the_papers():
    assert ref.FORMATS[ref.FMT_WEIGHT].real_range == (-1.0, 1.0 - 2**-7)
    assert ref.FORMATS[ref.FMT_BIAS].real_range == (-8.0, 8.0 - 2**-12)
    assert ref.FORMATS[ref.FMT_ACT].real_range == (0.0, 2.0 - 2**-7)
    assert ref.FORMATS[ref.FMT_INPUT].real_range == (0.0, 1.0 - 2**-8)
    assert ref.FORMATS[ref.FMT_BN_OUT].real_range == (-2.0, 2.0 - 2**-6)
    assert ref.FORMATS[ref.FMT_BN_SQ].real_range == (-64.0, 64.0 - 2**-9)


@pytest.mark.parametrize("bad", [-1, 9, 100, -(2**31)])
def test_format_unknown_id_is_rejected(core, bad):
    ffi, lib = core
    out = ffi.new("et_format_t *", {"bits": 77})
    assert lib.et_format_get(bad, out) == ET_ERR_ARG
    assert out.bits == 77  # untouched
    with pytest.raises(ArgumentError, match="unknown format id"):
        ref.format_get(bad)
    assert lib.et_format_get(0, ffi.NULL) == ET_ERR_ARG


# ---- rounding and saturation ------------------------------------------------


@given(int64s, shifts)
@example(3, 1)  # 1.5 -> 2
@example(-3, 1)  # -1.5 -> -2
@example(-1, 1)  # -0.5 -> -1
@example(1, 1)  # 0.5 -> 1
@example(I64_MIN, 64)  # -0.5 -> -1
@example(I64_MAX, 64)  # just under 0.5 -> 0
@example(I64_MIN, 63)
@example(-1, -63)  # -2^63 fits
@example(1, -63)  # 2^63 does not
def test_round_shift_s64(core, twin, x, shift):
    _, lib = core
    c = lib.et_round_shift_s64(x, shift)
    twin.equal(c, ref.round_shift_s64(x, shift), f"round_shift_s64({x}, {shift})")
    assert c == exact_round_shift(x, shift)


@given(st.integers(-(2**20), 2**20), st.integers(1, 40))
def test_round_shift_ties_go_away_from_zero(core, twin, k, shift):
    _, lib = core
    x = (2 * k + 1) * 2 ** (shift - 1)  # exactly halfway between two integers
    c = lib.et_round_shift_s64(x, shift)
    twin.equal(c, ref.round_shift_s64(x, shift))
    assert c == (k + 1 if k >= 0 else k)  # k + 1/2 rounds away from zero
    assert c == exact_round_shift(x, shift)


@given(st.lists(int64s, min_size=1, max_size=40), shifts)
def test_round_shift_vectorised_twin_matches_elementwise_c(core, twin, xs, shift):
    _, lib = core
    got = ref.round_shift_s64(np.array(xs, dtype=np.int64), shift)
    twin.equal([lib.et_round_shift_s64(x, shift) for x in xs], got.tolist())


@given(int64s, int64s, int64s)
def test_saturate_s64(core, twin, x, lo, hi):
    _, lib = core
    twin.equal(lib.et_saturate_s64(x, lo, hi), ref.saturate_s64(x, lo, hi))


@given(int64s, shifts, st.integers(0, 8))
def test_requantize_every_format(core, twin, x, shift, fmt):
    ffi, lib = core
    out = ffi.new("int64_t *")
    assert lib.et_requantize(x, shift, fmt, out) == ET_OK
    twin.equal(out[0], ref.requantize(x, shift, fmt))
    row = ref.FORMATS[fmt]
    assert out[0] == max(row.qmin, min(row.qmax, exact_round_shift(x, shift)))


def test_requantize_rejects_bad_format(core):
    ffi, lib = core
    out = ffi.new("int64_t *", 5)
    assert lib.et_requantize(1, 0, 9, out) == ET_ERR_ARG
    assert out[0] == 5
    assert lib.et_requantize(1, 0, 0, ffi.NULL) == ET_ERR_ARG
    with pytest.raises(ArgumentError):
        ref.requantize(1, 0, 9)


# ---- integer helpers --------------------------------------------------------


@given(st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2, 3, 4, 2**32 - 1, 65535**2, 65535**2 - 1, 65536**2 - 1])))
def test_isqrt_u32(core, twin, x):
    _, lib = core
    c = lib.et_isqrt_u32(x)
    twin.equal(c, ref.isqrt_u32(x))
    assert c * c <= x < (c + 1) * (c + 1)


@given(st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**64 - 1, (2**32 - 1) ** 2, (2**32 - 1) ** 2 - 1, 2**62, 2**63])))
def test_isqrt_u64(core, twin, x):
    _, lib = core
    c = lib.et_isqrt_u64(x)
    twin.equal(c, ref.isqrt_u64(x))
    assert c * c <= x < (c + 1) * (c + 1)


@given(int64s, int64s.filter(lambda d: d != 0))
@example(7, -2)
@example(-7, 2)
@example(I64_MIN, 1)
@example(I64_MIN + 1, -1)
def test_div_trunc_s64(core, twin, num, den):
    ffi, lib = core
    out = ffi.new("int64_t *")
    status = lib.et_div_trunc_s64(num, den, out)
    if num == I64_MIN and den == -1:
        assert status == ET_ERR_RANGE
        with pytest.raises(RangeError):
            ref.div_trunc_s64(num, den)
        return
    assert status == ET_OK
    twin.equal(out[0], ref.div_trunc_s64(num, den))
    exact = Fraction(num, den)
    assert out[0] == math.trunc(exact)


@given(int64s, int64s.filter(lambda d: d != 0))
@example(5, 2)  # 2.5 -> 3
@example(-5, 2)  # -2.5 -> -3
@example(5, -2)
@example(1, 3)
@example(I64_MAX, I64_MIN)
@example(I64_MIN, I64_MAX)
def test_div_round_s64(core, twin, num, den):
    ffi, lib = core
    out = ffi.new("int64_t *")
    status = lib.et_div_round_s64(num, den, out)
    if num == I64_MIN and den == -1:
        assert status == ET_ERR_RANGE
        return
    assert status == ET_OK
    twin.equal(out[0], ref.div_round_s64(num, den))
    exact = Fraction(num, den)
    mag = math.floor(abs(exact) + Fraction(1, 2))
    assert out[0] == (mag if exact >= 0 else -mag)


@pytest.mark.parametrize("fn", ["et_div_trunc_s64", "et_div_round_s64"])
def test_division_by_zero_is_an_argument_error(core, fn):
    ffi, lib = core
    out = ffi.new("int64_t *", 11)
    assert getattr(lib, fn)(5, 0, out) == ET_ERR_ARG
    assert out[0] == 11
    assert getattr(lib, fn)(5, 1, ffi.NULL) == ET_ERR_ARG
    with pytest.raises(ArgumentError, match="divisor must not be zero"):
        getattr(ref, fn[3:])(5, 0)


@given(st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2**31, 2**32 - 1])))
def test_clz_u32(core, twin, x):
    _, lib = core
    c = lib.et_clz_u32(x)
    twin.equal(c, ref.clz_u32(x))
    assert c == (32 if x == 0 else 32 - x.bit_length())


@given(st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**63, 2**64 - 1, 2**32, 2**32 - 1])))
def test_clz_u64(core, twin, x):
    _, lib = core
    twin.equal(lib.et_clz_u64(x), ref.clz_u64(x))


@given(st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**63, 2**64 - 1])), st.integers(-5, 80))
def test_norm_shift_u64(core, twin, mag, bits):
    _, lib = core
    s = lib.et_norm_shift_u64(mag, bits)
    twin.equal(s, ref.norm_shift_u64(mag, bits))
    if mag:
        b = min(63, max(1, bits))
        scaled = Fraction(mag) / Fraction(2) ** s
        assert 2 ** (b - 1) <= scaled < 2**b


# ---- PRNG -------------------------------------------------------------------


@given(st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2**32 - 1])), st.integers(1, 300))
def test_prng_streams_match(core, twin, seed, n):
    ffi, lib = core
    prng = ffi.new("et_prng_t *")
    out = ffi.new("uint32_t *")
    assert lib.et_prng_seed(prng, seed) == ET_OK
    r = ref.Prng(seed)
    twin.equal(prng.state, r.state, "seeded state")
    c_vals = []
    for _ in range(n):
        assert lib.et_prng_next_u32(prng, out) == ET_OK
        c_vals.append(out[0])
    twin.equal(c_vals, [r.next_u32() for _ in range(n)])
    assert all(v != 0 for v in c_vals)  # xorshift never reaches 0 from a non-zero state


def test_prng_bits_are_balanced_and_seeds_differ(core):
    ffi, lib = core
    prng = ffi.new("et_prng_t *")
    out = ffi.new("uint32_t *")
    streams = []
    for seed in (0, 1, 2):
        lib.et_prng_seed(prng, seed)
        vals = []
        for _ in range(4096):
            lib.et_prng_next_u32(prng, out)
            vals.append(out[0])
        streams.append(vals)
        ones = sum(bin(v).count("1") for v in vals) / (32 * len(vals))
        assert 0.49 < ones < 0.51  # 131072 bits: 0.01 is ~7 standard deviations
        low = sum(v & 1 for v in vals) / len(vals)
        assert 0.46 < low < 0.54
    assert streams[0][:8] != streams[1][:8] != streams[2][:8]


def test_prng_rejects_null_and_zero_state(core):
    ffi, lib = core
    out = ffi.new("uint32_t *")
    assert lib.et_prng_seed(ffi.NULL, 1) == ET_ERR_ARG
    zero = ffi.new("et_prng_t *", {"state": 0})
    assert lib.et_prng_next_u32(zero, out) == ET_ERR_ARG
    assert zero.state == 0


# ---- block floating point ---------------------------------------------------


# A cffi struct does not own the buffer it points to: tie each buffer's life to its struct.
_BUFFER_OF = weakref.WeakKeyDictionary()


def c_bfp(ffi, mant=None, n=None, exp=0):
    n = len(mant) if mant is not None else n
    buf = ffi.new("int16_t[]", list(mant) if mant is not None else n)
    v = ffi.new("et_bfp16_t *", {"mant": buf, "len": n, "exp": exp})
    _BUFFER_OF[v] = buf
    return v


def c_mant(v):
    return [v.mant[i] for i in range(v.len)]


vec32 = st.one_of(
    st.lists(int32s, min_size=1, max_size=64),
    st.lists(st.integers(I32_MIN, -1), min_size=1, max_size=16),  # all negative
    st.lists(st.just(0), min_size=1, max_size=4),
    st.lists(st.integers(-3, 3), min_size=1, max_size=16),
)
vec64 = st.one_of(st.lists(int64s, min_size=1, max_size=64), st.lists(st.integers(I64_MIN, -1), min_size=1, max_size=16))
exps = st.integers(-200, 200)


def check_normalised(mant, exp, src, src_exp):
    """Spec properties: full int16 use and at most 1/2 LSB error (plus saturation at 2^15)."""
    peak = max(abs(m) for m in mant)
    if all(s == 0 for s in src):
        assert peak == 0 and exp == 0
        return
    assert 2**14 <= peak <= 2**15
    for m, s in zip(mant, src):
        err = abs(Fraction(m) * Fraction(2) ** exp - Fraction(s) * Fraction(2) ** src_exp)
        assert err <= Fraction(2) ** exp  # half an LSB, or one LSB where 32767.5 saturated


@given(vec32, exps)
def test_bfp16_normalize_s32(core, twin, src, src_exp):
    ffi, lib = core
    v = c_bfp(ffi, n=len(src))
    assert lib.et_bfp16_normalize_s32(v, ffi.new("int32_t[]", src), src_exp) == ET_OK
    t = ref.bfp16_normalize_s32(np.array(src, dtype=np.int32), src_exp)
    twin.equal((c_mant(v), v.exp), (t.mant.tolist(), t.exp))
    check_normalised(c_mant(v), v.exp, src, src_exp)


@given(vec64, exps)
def test_bfp16_normalize_s64(core, twin, src, src_exp):
    ffi, lib = core
    v = c_bfp(ffi, n=len(src))
    assert lib.et_bfp16_normalize_s64(v, ffi.new("int64_t[]", src), src_exp) == ET_OK
    t = ref.bfp16_normalize_s64(np.array(src, dtype=np.int64), src_exp)
    twin.equal((c_mant(v), v.exp), (t.mant.tolist(), t.exp))
    check_normalised(c_mant(v), v.exp, src, src_exp)


@given(st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=64), exps)
@example([-(2**15)], 0)  # magnitude 2^15 needs a right shift
@example([1, -1, 0], 5)
def test_bfp16_renormalize(core, twin, mant, exp):
    ffi, lib = core
    v = c_bfp(ffi, mant=mant, exp=exp)
    assert lib.et_bfp16_renormalize(v) == ET_OK
    t = ref.bfp16_renormalize(ref.Bfp16(np.array(mant, dtype=np.int16), exp))
    twin.equal((c_mant(v), v.exp), (t.mant.tolist(), t.exp))


def test_bfp16_normalize_rejects_bad_arguments_and_touches_nothing(core):
    ffi, lib = core
    v = c_bfp(ffi, mant=[7, 7], exp=3)
    src = ffi.new("int32_t[]", [1, 2])
    assert lib.et_bfp16_normalize_s32(v, ffi.NULL, 0) == ET_ERR_ARG
    assert lib.et_bfp16_normalize_s32(v, src, 40000) == ET_ERR_ARG
    assert lib.et_bfp16_normalize_s32(ffi.NULL, src, 0) == ET_ERR_ARG
    assert (c_mant(v), v.exp) == ([7, 7], 3)
    # An exponent that would leave int16: 2^31 at exp 32767 needs exp 32767 + 17.
    big = ffi.new("int32_t[]", [I32_MAX, 0])
    assert lib.et_bfp16_normalize_s32(v, big, 32767) == ET_ERR_RANGE
    assert (c_mant(v), v.exp) == ([7, 7], 3)
    with pytest.raises(RangeError):
        ref.bfp16_normalize_s32(np.array([I32_MAX, 0], dtype=np.int32), 32767)
    with pytest.raises(ArgumentError):
        ref.bfp16_normalize_s32(np.array([1, 2], dtype=np.int32), 40000)
    empty = c_bfp(ffi, n=1)
    empty.len = 0
    assert lib.et_bfp16_normalize_s32(empty, src, 0) == ET_ERR_ARG


mant16 = st.integers(-(2**15), 2**15 - 1)


@given(st.integers(1, 64).flatmap(lambda n: st.tuples(st.lists(mant16, min_size=n, max_size=n), st.lists(mant16, min_size=n, max_size=n))), exps, exps)
def test_bfp16_dot(core, twin, ab, ea, eb):
    ffi, lib = core
    a_m, b_m = ab
    a = c_bfp(ffi, mant=a_m, exp=ea)
    b = c_bfp(ffi, mant=b_m, exp=eb)
    acc, exp = ffi.new("int64_t *"), ffi.new("int *")
    assert lib.et_bfp16_dot(a, b, acc, exp) == ET_OK
    got = ref.bfp16_dot(ref.Bfp16(np.array(a_m, np.int16), ea), ref.Bfp16(np.array(b_m, np.int16), eb))
    twin.equal((acc[0], exp[0]), got)
    assert acc[0] == sum(x * y for x, y in zip(a_m, b_m)) and exp[0] == ea + eb


def test_bfp16_dot_length_mismatch(core):
    ffi, lib = core
    a = c_bfp(ffi, mant=[1, 2])
    b = c_bfp(ffi, mant=[1, 2, 3])
    acc = ffi.new("int64_t *", 9)
    assert lib.et_bfp16_dot(a, b, acc, ffi.new("int *")) == ET_ERR_ARG
    assert acc[0] == 9
    with pytest.raises(ArgumentError, match="lengths differ"):
        ref.bfp16_dot(ref.Bfp16(np.zeros(2, np.int16), 0), ref.Bfp16(np.zeros(3, np.int16), 0))


@given(st.integers(1, 64).flatmap(lambda n: st.tuples(st.lists(mant16, min_size=n, max_size=n), st.lists(int32s, min_size=n, max_size=n))), exps, exps)
def test_bfp16_dot_s32(core, twin, ax, ea, ex):
    ffi, lib = core
    a_m, x = ax
    a = c_bfp(ffi, mant=a_m, exp=ea)
    acc, exp = ffi.new("int64_t *"), ffi.new("int *")
    assert lib.et_bfp16_dot_s32(a, ffi.new("int32_t[]", x), ex, acc, exp) == ET_OK
    twin.equal((acc[0], exp[0]), ref.bfp16_dot_s32(ref.Bfp16(np.array(a_m, np.int16), ea), np.array(x, np.int32), ex))
    assert acc[0] == sum(p * q for p, q in zip(a_m, x))


def test_bfp16_dot_s32_longest_vector_is_exact(core, twin):
    ffi, lib = core
    n = 65535
    a = c_bfp(ffi, mant=[-(2**15)] * n)
    x = ffi.new("int32_t[]", [I32_MIN] * n)
    acc, exp = ffi.new("int64_t *"), ffi.new("int *")
    assert lib.et_bfp16_dot_s32(a, x, 0, acc, exp) == ET_OK
    assert acc[0] == n * 2**15 * 2**31
    twin.equal(acc[0], ref.bfp16_dot_s32(ref.Bfp16(np.full(n, -(2**15), np.int16), 0), np.full(n, I32_MIN, np.int32), 0)[0])


axpy_case = st.integers(1, 48).flatmap(
    lambda n: st.tuples(st.lists(mant16, min_size=n, max_size=n), st.lists(int32s, min_size=n, max_size=n))
)


@given(axpy_case, exps, int32s, exps, exps)
@example(([2**15 - 1], [I32_MAX]), 0, I32_MAX, 0, 0)  # saturates high
@example(([-(2**15)], [I32_MIN]), 0, I32_MAX, 0, 0)  # saturates low
@example(([3], [0]), 1, 1, 0, 0)  # 1.5 -> 2
@example(([-3], [0]), 1, 1, 0, 0)  # -1.5 -> -2
def test_bfp16_axpy_s32(core, twin, xy, y_exp, alpha, alpha_exp, x_exp):
    ffi, lib = core
    x_m, y = xy
    x = c_bfp(ffi, mant=x_m, exp=x_exp)
    yc = ffi.new("int32_t[]", y)
    assert lib.et_bfp16_axpy_s32(yc, y_exp, alpha, alpha_exp, x) == ET_OK
    t = ref.bfp16_axpy_s32(np.array(y, np.int32), y_exp, alpha, alpha_exp, ref.Bfp16(np.array(x_m, np.int16), x_exp))
    c_out = [yc[i] for i in range(len(y))]
    twin.equal(c_out, t.tolist())
    shift = y_exp - alpha_exp - x_exp
    for yi, xi, out in zip(y, x_m, c_out):
        term = exact_round_shift(alpha * xi, shift)
        assert out == max(I32_MIN, min(I32_MAX, yi + term))


@given(st.integers(1, 48).flatmap(lambda n: st.tuples(st.lists(mant16, min_size=n, max_size=n), st.lists(int64s, min_size=n, max_size=n))), exps, int32s, exps, exps)
def test_bfp16_axpy_s64(core, twin, xy, y_exp, alpha, alpha_exp, x_exp):
    ffi, lib = core
    x_m, y = xy
    x = c_bfp(ffi, mant=x_m, exp=x_exp)
    yc = ffi.new("int64_t[]", y)
    assert lib.et_bfp16_axpy_s64(yc, y_exp, alpha, alpha_exp, x) == ET_OK
    t = ref.bfp16_axpy_s64(np.array(y, np.int64), y_exp, alpha, alpha_exp, ref.Bfp16(np.array(x_m, np.int16), x_exp))
    c_out = [yc[i] for i in range(len(y))]
    twin.equal(c_out, t.tolist())
    shift = y_exp - alpha_exp - x_exp
    for yi, xi, out in zip(y, x_m, c_out):
        assert out == max(I64_MIN, min(I64_MAX, yi + exact_round_shift(alpha * xi, shift)))


def test_bfp16_axpy_rejects_bad_exponent_and_touches_nothing(core):
    ffi, lib = core
    x = c_bfp(ffi, mant=[1, 2])
    y = ffi.new("int32_t[]", [5, 6])
    assert lib.et_bfp16_axpy_s32(y, 70000, 1, 0, x) == ET_ERR_ARG
    assert lib.et_bfp16_axpy_s32(ffi.NULL, 0, 1, 0, x) == ET_ERR_ARG
    assert [y[0], y[1]] == [5, 6]
    with pytest.raises(ArgumentError):
        ref.bfp16_axpy_s32(np.array([5, 6], np.int32), 70000, 1, 0, ref.Bfp16(np.array([1, 2], np.int16), 0))
