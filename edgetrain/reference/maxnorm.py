"""NumPy twin of csrc/src/maxnorm.c: gradient max-norm and the unsigned software float.

Written on Python's exact integers: an ``UFloat`` is (mant, exp) with mant in
[2**30, 2**31) or zero, and every operation rounds once, ties away from zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ArgumentError
from . import fixed

BETA_Q30 = 1072668082  # 0.999 * 2**30, rounded
EPS_EXP = -13  # eps = 2**-13 (the paper's 1e-4, as a power of two)
Q30_ONE = 1 << 30
UFLOAT_EXP_LIMIT = 1 << 24
MAXNORM_EXP_LIMIT = 1 << 20


@dataclass(frozen=True)
class UFloat:
    mant: int
    exp: int

    def value(self) -> float:
        return self.mant * 2.0**self.exp


ZERO = UFloat(0, 0)


def _round_div_pos(num: int, den: int) -> int:
    """num / den for num >= 0, den > 0, rounded half up (ties away from zero)."""
    return (2 * num + den) // (2 * den)


def ufloat_make(v: int, exp: int) -> UFloat:
    v, exp = int(v), int(exp)
    if v == 0:
        return ZERO
    shift = v.bit_length() - 31
    if shift > 0:
        mant = _round_div_pos(v, 1 << shift)
        if mant == 1 << 31:
            mant, shift = 1 << 30, shift + 1
    else:
        mant = v << -shift
    return UFloat(mant, max(-UFLOAT_EXP_LIMIT, min(UFLOAT_EXP_LIMIT, exp + shift)))


def ufloat_add(a: UFloat, b: UFloat) -> UFloat:
    if a.mant == 0:
        return b
    if b.mant == 0:
        return a
    lo = min(a.exp, b.exp)
    if abs(a.exp - b.exp) >= 32:  # the smaller one is below half an LSB of the larger
        return a if a.exp > b.exp else b
    return ufloat_make((a.mant << (a.exp - lo)) + (b.mant << (b.exp - lo)), lo)


def ufloat_cmp(a: UFloat, b: UFloat) -> int:
    if a.mant == 0 or b.mant == 0:
        return (a.mant > b.mant) - (a.mant < b.mant)
    ka, kb = (a.exp, a.mant), (b.exp, b.mant)
    return (ka > kb) - (ka < kb)


@dataclass
class MaxNorm:
    """One max-norm tracker (et_maxnorm_t)."""

    count: int = 0
    beta_pow: int = Q30_ONE
    moving: UFloat = ufloat_make(1, EPS_EXP)


def maxnorm_init() -> MaxNorm:
    return MaxNorm()


def maxnorm_update(mn: MaxNorm, max_abs: int, exp: int) -> UFloat:
    """Feed a tensor whose largest magnitude is max_abs * 2**exp; return the divisor."""
    if not -MAXNORM_EXP_LIMIT <= int(exp) <= MAXNORM_EXP_LIMIT:
        raise ArgumentError(f"maxnorm_update: exp = {exp} is outside [-2^20, 2^20]")
    if not 0 <= int(max_abs) < 1 << 64:
        raise ArgumentError(f"maxnorm_update: max_abs = {max_abs} is not a uint64")
    mn.count = min(mn.count + 1, 0xFFFFFFFF)
    x_max = ufloat_add(ufloat_make(max_abs, exp), ufloat_make(1, EPS_EXP))
    mn.beta_pow = _round_div_pos(mn.beta_pow * BETA_Q30, Q30_ONE)
    decayed = ufloat_make(mn.moving.mant * BETA_Q30, mn.moving.exp - 30) if mn.moving.mant else ZERO
    fresh = ufloat_make(x_max.mant * (Q30_ONE - BETA_Q30), x_max.exp - 30)
    mn.moving = ufloat_add(decayed, fresh)
    correction = Q30_ONE - mn.beta_pow
    x_tilde = ufloat_make(_round_div_pos(mn.moving.mant << 32, correction), mn.moving.exp - 2) if mn.moving.mant else ZERO
    return x_max if ufloat_cmp(x_max, x_tilde) >= 0 else x_tilde


def maxnorm_scale(x, x_exp: int, factor: int, factor_exp: int, divisor: UFloat, fmt_id: int):
    """saturate(round(x * 2**x_exp * factor * 2**factor_exp / divisor)) in format fmt_id.

    ``x`` may be an integer array (every other argument a scalar): the result is
    then an int64 array, element for element what the scalar call gives.
    """
    if np.ndim(x) > 0:
        return _maxnorm_scale_array(np.asarray(x), x_exp, factor, factor_exp, divisor, fmt_id)
    fmt = fixed.format_get(fmt_id)
    x, factor = int(x), int(factor)
    if fmt.bits > 32:
        raise ArgumentError("maxnorm_scale: the target format must have at most 32 bits")
    if divisor.mant == 0:
        raise ArgumentError("maxnorm_scale: the divisor must not be zero")
    if not -(1 << 31) < x < 1 << 31 or not 0 <= factor < 1 << 31:
        raise ArgumentError("maxnorm_scale: x must satisfy |x| < 2^31 and factor 0..2^31-1")
    for name, e in (("x_exp", x_exp), ("factor_exp", factor_exp)):
        if not -MAXNORM_EXP_LIMIT <= int(e) <= MAXNORM_EXP_LIMIT:
            raise ArgumentError(f"maxnorm_scale: {name} = {e} is outside [-2^20, 2^20]")
    # value / lsb = x * factor * 2**s / divisor.mant, rounded half away from zero, exactly.
    s = int(x_exp) + int(factor_exp) - divisor.exp - fmt.lsb_exp
    num, den = abs(x * factor), divisor.mant
    if s >= 0:
        num <<= s
    else:
        den <<= -s
    q = _round_div_pos(num, den)
    q = q if x * factor >= 0 else -q
    return max(fmt.qmin, min(fmt.qmax, q))


def _maxnorm_scale_array(x: np.ndarray, x_exp: int, factor: int, factor_exp: int, divisor: UFloat, fmt_id: int) -> np.ndarray:
    """The array path of maxnorm_scale, in int64 without overflow.

    |x * factor| < 2^62. A left shift that would leave int64 means a quotient of
    at least 2^63 / 2^31 = 2^32, beyond every format of at most 32 bits; a
    divisor scaled past 2^63 rounds every quotient to 0.
    """
    fmt = fixed.format_get(fmt_id)
    factor = int(factor)
    if x.dtype.kind not in "iu":
        raise ArgumentError(f"maxnorm_scale: x must be integers, got {x.dtype}")
    if fmt.bits > 32:
        raise ArgumentError("maxnorm_scale: the target format must have at most 32 bits")
    if divisor.mant == 0:
        raise ArgumentError("maxnorm_scale: the divisor must not be zero")
    xv = x.astype(np.int64)
    if xv.size and (int(xv.min()) <= -(1 << 31) or int(xv.max()) >= 1 << 31) or not 0 <= factor < 1 << 31:
        raise ArgumentError("maxnorm_scale: x must satisfy |x| < 2^31 and factor 0..2^31-1")
    for name, e in (("x_exp", x_exp), ("factor_exp", factor_exp)):
        if not -MAXNORM_EXP_LIMIT <= int(e) <= MAXNORM_EXP_LIMIT:
            raise ArgumentError(f"maxnorm_scale: {name} = {e} is outside [-2^20, 2^20]")
    s = int(x_exp) + int(factor_exp) - divisor.exp - fmt.lsb_exp
    num = xv * np.int64(factor)
    out = np.zeros(num.shape, dtype=np.int64)
    nz = num != 0  # zero stays zero: divide only the rest
    mag = np.abs(num[nz])
    if s >= 0:
        big = mag > (fixed.INT64_MAX >> s) if s < 62 else mag > 0
        shifted = np.where(big, 0, mag) << np.int64(min(s, 62))
        q = np.where(big, np.int64(1 << 40), fixed.div_round_s64(shifted, np.int64(divisor.mant)))
    elif s <= -33:
        q = np.zeros_like(mag)
    else:
        q = fixed.div_round_s64(mag, np.int64(divisor.mant << -s))
    out[nz] = np.where(num[nz] < 0, -q, q)
    return np.clip(out, fmt.qmin, fmt.qmax)
