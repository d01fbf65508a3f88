"""et_maxnorm_scaler (a prepared et_maxnorm_scale without a per-call division, used by SGD's per-cell
update in train.c) against et_maxnorm_scale itself: the same status and the same *out for every x,
over hypothesis-drawn arguments with the edge cases pinned, and exhaustively over x ranges around
rounding ties, the saturation threshold and the fast range's ends."""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from edgetrain.reference import fixed as ref_fixed

SENTINEL = -0x5A5A5A5A5A5A5A5A
LIMIT = 2**20
FORMATS = list(range(len(ref_fixed.FORMATS)))


def _ufloat(ffi, mant, exp):
    return ffi.new("et_ufloat_t *", {"mant": mant, "exp": exp})[0]


def _scaler(core, x_exp, factor, factor_exp, mant, d_exp, fmt, xmax):
    ffi, lib = core
    sc = ffi.new("et_maxnorm_scaler_t *")
    assert lib.et_maxnorm_scaler_init(sc, x_exp, factor, factor_exp, _ufloat(ffi, mant, d_exp), fmt, xmax) == 0
    return sc


def _check(core, sc, args, xs):
    """Compare apply(x) with et_maxnorm_scale(x, *args) for each x; return how many took the fast path."""
    ffi, lib = core
    x_exp, factor, factor_exp, mant, d_exp, fmt = args
    div = _ufloat(ffi, mant, d_exp)
    want = ffi.new("int64_t *")
    got = ffi.new("int64_t *")
    fast = 0
    for x in xs:
        if not -(2**63) <= x < 2**63:
            continue
        want[0] = got[0] = SENTINEL
        st_want = lib.et_maxnorm_scale(x, x_exp, factor, factor_exp, div, fmt, want)
        st_got = lib.et_maxnorm_scaler_apply(sc, x, got)
        assert (st_got, got[0]) == (st_want, want[0]), (x, args, st_want, want[0], st_got, got[0])
        fast += bool(sc.fast) and abs(x) <= sc.xmax
    return fast


def _edges(sc, extra=()):
    pts = {0, 1, 2, 3, sc.xmax, sc.xmax + 1, sc.sat_from, sc.sat_from - 1, sc.sat_from + 1, 2**31 - 1, 2**31,
           2**31 + 1, 2**62, 2**63 - 1, *extra}
    return sorted({s * p for p in pts if p >= 0 for s in (1, -1)})


mants = st.one_of(st.integers(2**30, 2**31 - 1), st.sampled_from([2**30, 2**30 + 1, 2**31 - 1, 2**31 - 2, 0, 1, 5,
                                                                     2**31, 2**32 - 1]))
factors = st.one_of(st.integers(0, 2**31 - 1), st.sampled_from([0, 1, 2, 167772, 2**30, 2**31 - 1, 2**31, 2**32 - 1]))
shifts = st.integers(-36, 66)  # s = x_exp + factor_exp - divisor.exp - lsb_exp: both fast-path ends and beyond
xmaxes = st.one_of(st.integers(0, 2**31 + 2), st.sampled_from([0, 1, 2**31 - 2, 2**31 - 1, 2**31, 2**63, 2**64 - 1]))


@settings(max_examples=600, deadline=None)
@given(shifts, factors, st.integers(-64, 0), mants, st.integers(-200, 200), st.sampled_from(FORMATS + [8, -1, 99]),
       xmaxes, st.lists(st.integers(-(2**31) - 2, 2**31 + 2), max_size=40), st.integers(-LIMIT - 2, LIMIT + 2))
@example(0, 1, 0, 2**30, 0, 7, 2**31 - 1, [], None)  # divisor 2^30: den = 2^31, recip = 2^32 - 1
@example(-1, 2**31 - 1, 0, 2**30, 0, 7, 2**31 - 1, [], None)  # s = -1: the one negative s that saturates
@example(61, 1, 0, 2**31 - 1, 0, 7, 2**31 - 1, [], None)  # largest fast s
@example(-32, 2**31 - 1, 0, 2**30, 0, 7, 2**31 - 1, [], None)  # smallest fast s
@example(29, 1, 0, 2**30, 0, 7, 2**16, list(range(-40, 41)), None)  # x / 2 exactly: ties away from zero
@example(10, 2**31 - 1, -64, 2**31 - 1, 200, 7, 2**31 - 1, [], LIMIT + 1)  # x_exp out of range: ET_ERR_ARG
def test_scaler_equals_maxnorm_scale(core, s, factor, factor_exp, mant, d_exp, fmt, xmax, xs, x_exp_override):
    lsb = ref_fixed.FORMATS[fmt].lsb_exp if fmt in FORMATS else 0
    x_exp = s - factor_exp + d_exp + lsb if x_exp_override is None else x_exp_override
    args = (x_exp, factor, factor_exp, mant, d_exp, fmt)
    sc = _scaler(core, *args, xmax)
    _check(core, sc, args, _edges(sc, [abs(x) for x in xs]) + xs)


def _sweep(core, args, xmax, lo, hi):
    sc = _scaler(core, *args, xmax)
    assert sc.fast
    return sc, _check(core, sc, args, range(lo, hi))


def test_exhaustive_ties_and_fine_steps(core):
    # factor * 2^s / mant = 1/2, 3/4, ~1/3, 1 - 2^-30: ties and near-ties at every few x
    for factor, s, mant in [(1, 29, 2**30), (3, 28, 2**30), (1, 31, 3 * 2**29), (2**30 - 1, 0, 2**30),
                            (167772, 30, 2**30 + 12345), (7, -3, 2**31 - 1)]:
        args = (s, factor, 0, mant, 0, 7)  # ACC32: lsb 2^0, so s = x_exp here
        _, fast = _sweep(core, args, 2**31 - 1, -(2**15), 2**15)
        assert fast == 2**16


def test_exhaustive_around_saturation(core):
    # sat_from inside the range: every x from 2^14 below it to 2^14 above, both signs
    for factor, s, mant, fmt in [(2**31 - 1, 20, 2**30, 7), (167772, 32, 2**30 + 99, 7), (2**31 - 1, 1, 2**30, 7),
                                 (2**31 - 1, 0, 2**30, 6), (2**31 - 1, 1, 2**31 - 1, 7)]:
        lsb = ref_fixed.FORMATS[fmt].lsb_exp
        args = (s + lsb, factor, 0, mant, 0, fmt)
        sc = _scaler(core, *args, 2**31 - 1)
        assert sc.fast and 1 < sc.sat_from < 2**31 - 1
        lo = max(1, sc.sat_from - 2**14)
        _check(core, sc, args, range(lo, sc.sat_from + 2**14))
        _check(core, sc, args, range(-sc.sat_from - 2**14, -lo + 1))


def test_sgd_fine_scale_setting(core):
    # The SGD cell's own arguments (ACC32, the default learning rate 167772 * 2^-24, exp + 23): every |g|
    # of a dense term (|delta| <= 127, |x| <= 255) under divisors around the term's own max-norm.
    for exp, mant, d_exp in [(-14, 2**30 + 777, -9), (-14, 2**31 - 1, -23), (-20, 2**30, -20), (-10, 1234567890, -30)]:
        args = (exp + 23, 167772, -24, mant, d_exp, 7)
        _sweep(core, args, 127 * 255, -127 * 255, 127 * 255 + 1)


def test_scaler_rejects_null(core):
    ffi, lib = core
    one = _ufloat(ffi, 2**30, 0)
    assert lib.et_maxnorm_scaler_init(ffi.NULL, 0, 1, 0, one, 7, 10) == -1
    sc = _scaler(core, 0, 1, 0, 2**30, 0, 7, 10)
    assert lib.et_maxnorm_scaler_apply(sc, 1, ffi.NULL) == -1
    assert lib.et_maxnorm_scaler_apply(ffi.NULL, 1, ffi.new("int64_t *")) == -1
