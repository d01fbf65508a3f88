"""NumPy twin of csrc/src/fixed.c: the numeric contract (docs/numerics.md).

Same names as the C functions without the ``et_`` prefix. The formulations
are deliberately not transliterations of the C: rounding works on a uint64
magnitude and the sign, divisions and square roots use Python's exact
integers. Agreement between the two is therefore evidence, not a tautology.

Scalars come back as Python ints; arrays as NumPy arrays of the C type.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import ArgumentError, RangeError

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MASK = (1 << 64) - 1

# ---- number formats ---------------------------------------------------------


class Format(NamedTuple):
    """One row of the format table: stored integer q means q * 2**lsb_exp."""

    bits: int
    is_signed: int
    lsb_exp: int  # 0 for accumulators (their scale is the operands' product)
    qmin: int
    qmax: int

    @property
    def lsb(self) -> float:
        return 2.0**self.lsb_exp

    @property
    def real_range(self) -> tuple[float, float]:
        """[min, max] of representable real values."""
        return self.qmin * self.lsb, self.qmax * self.lsb


def _signed(bits: int, lsb_exp: int) -> Format:
    return Format(bits, 1, lsb_exp, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _unsigned(bits: int, lsb_exp: int) -> Format:
    return Format(bits, 0, lsb_exp, 0, (1 << bits) - 1)


FMT_WEIGHT, FMT_BIAS, FMT_ACT, FMT_INPUT, FMT_GRAD, FMT_BN_OUT, FMT_BN_SQ, FMT_ACC32, FMT_ACC64 = range(9)
FMT_COUNT = 9

# The paper's defaults (lrt-paper-spec §4); the C table in fixed.c must match row for row.
FORMATS: dict[int, Format] = {
    FMT_WEIGHT: _signed(8, -7),  # [-1, 1)
    FMT_BIAS: _signed(16, -12),  # [-8, 8)
    FMT_ACT: _unsigned(8, -7),  # [0, 2)
    FMT_INPUT: _unsigned(8, -8),  # [0, 1)
    FMT_GRAD: _signed(8, -7),  # [-1, 1)
    FMT_BN_OUT: _signed(8, -6),  # [-2, 2)
    FMT_BN_SQ: _signed(16, -9),  # [-64, 64)
    FMT_ACC32: _signed(32, 0),
    FMT_ACC64: _signed(64, 0),
}

FORMAT_NAMES = {
    FMT_WEIGHT: "weight",
    FMT_BIAS: "bias",
    FMT_ACT: "activation",
    FMT_INPUT: "input",
    FMT_GRAD: "gradient",
    FMT_BN_OUT: "bn_out",
    FMT_BN_SQ: "bn_sq",
    FMT_ACC32: "acc32",
    FMT_ACC64: "acc64",
}


def format_get(fmt_id: int) -> Format:
    if fmt_id not in FORMATS:
        raise ArgumentError(f"unknown format id {fmt_id}: use 0..{FMT_COUNT - 1} (FMT_* constants)")
    return FORMATS[fmt_id]


# ---- the rounding rule and the saturation rule ------------------------------


def _as_int64_array(x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ArgumentError(f"expected integers, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > INT64_MAX:
        raise ArgumentError("value exceeds the int64 range")
    return arr.astype(np.int64)


def round_shift_s64(x, shift: int):
    """x * 2**-shift, rounded half away from zero, saturated to int64.

    Works on Python ints and on integer arrays (returned as int64).
    """
    shift = int(shift)
    if type(x) is int and INT64_MIN <= x <= INT64_MAX:
        # Python int fast path (the LRT twin calls this per scalar): exact integers, same rule.
        if shift <= 0:
            return max(INT64_MIN, min(INT64_MAX, x << min(-shift, 64)))
        if shift > 64:
            return 0
        mag = (abs(x) + (1 << (shift - 1))) >> shift
        return -mag if x < 0 else mag
    scalar = np.ndim(x) == 0
    v = _as_int64_array(x)
    if shift <= 0:
        k = -shift
        if k == 0:
            out = v
        elif k >= 64:
            out = np.where(v > 0, INT64_MAX, np.where(v < 0, INT64_MIN, 0)).astype(np.int64)
        else:
            lo, hi = -(1 << (63 - k)), (1 << (63 - k)) - 1
            inside = (v >= lo) & (v <= hi)
            # Inside [lo, hi] the product fits: compute it as a wrapping uint64 shift.
            shifted = (np.where(inside, v, 0).astype(np.int64).view(np.uint64) << np.uint64(k)).view(np.int64)
            out = np.where(inside, shifted, np.where(v > 0, INT64_MAX, INT64_MIN)).astype(np.int64)
    else:
        negative = v < 0
        with np.errstate(over="ignore"):  # two's complement negation wraps by design
            mag = np.where(negative, (~v.view(np.uint64)) + np.uint64(1), v.view(np.uint64))
        if shift < 64:
            rounded = (mag >> np.uint64(shift)) + ((mag >> np.uint64(shift - 1)) & np.uint64(1))
        elif shift == 64:
            rounded = (mag >> np.uint64(63)) & np.uint64(1)
        else:
            rounded = np.zeros_like(mag)
        rounded = rounded.astype(np.int64)  # at most 2^62 + 1: fits
        out = np.where(negative, -rounded, rounded)
    return int(out) if scalar else out


def saturate_s64(x, lo: int, hi: int):
    """x clamped to [lo, hi]; lo when lo > hi (as the C)."""
    if lo > hi:
        return int(lo) if np.ndim(x) == 0 else np.full(np.shape(x), lo, dtype=np.int64)
    if np.ndim(x) == 0:
        return max(int(lo), min(int(hi), int(x)))
    return np.clip(_as_int64_array(x), lo, hi)


def requantize(x, shift: int, fmt_id: int):
    """saturate(round_shift(x, shift)) to the range of format ``fmt_id``."""
    fmt = format_get(fmt_id)
    return saturate_s64(round_shift_s64(x, shift), fmt.qmin, fmt.qmax)


# ---- integer helpers ----------------------------------------------------------


def isqrt_u32(x: int) -> int:
    x = int(x)
    if not 0 <= x <= 0xFFFFFFFF:
        raise ArgumentError(f"isqrt_u32 takes 0..2^32-1, got {x}")
    return math.isqrt(x)


def isqrt_u64(x: int) -> int:
    x = int(x)
    if not 0 <= x <= UINT64_MASK:
        raise ArgumentError(f"isqrt_u64 takes 0..2^64-1, got {x}")
    return math.isqrt(x)


def _check_div(num: int, den: int, name: str) -> None:
    if den == 0:
        raise ArgumentError(f"{name}({num}, 0): the divisor must not be zero")
    if num == INT64_MIN and den == -1:
        raise RangeError(f"{name}({num}, -1): the quotient 2^63 does not fit int64")


def div_trunc_s64(num: int, den: int) -> int:
    """num / den truncated toward zero (C semantics, not Python's floor)."""
    num, den = int(num), int(den)
    _check_div(num, den, "div_trunc_s64")
    q = abs(num) // abs(den)
    return q if (num < 0) == (den < 0) else -q


def div_round_s64(num, den):
    """num / den rounded to nearest, ties away from zero.

    Python ints give a Python int; integer arrays (broadcast together) give an
    int64 array, computed on uint64 magnitudes so no step overflows.
    """
    if np.ndim(num) == 0 and np.ndim(den) == 0:
        num, den = int(num), int(den)
        _check_div(num, den, "div_round_s64")
        q, r = divmod(abs(num), abs(den))
        if 2 * r >= abs(den):
            q += 1
        return q if (num < 0) == (den < 0) else -q
    n, d = np.broadcast_arrays(_as_int64_array(num), _as_int64_array(den))
    if np.any(d == 0):
        raise ArgumentError("div_round_s64: the divisor must not be zero")
    if np.any((n == INT64_MIN) & (d == -1)):
        raise RangeError("div_round_s64: INT64_MIN / -1 does not fit int64")
    with np.errstate(over="ignore"):  # two's complement negation wraps by design
        n_mag = np.where(n < 0, (~n.view(np.uint64)) + np.uint64(1), n.view(np.uint64))
        d_mag = np.where(d < 0, (~d.view(np.uint64)) + np.uint64(1), d.view(np.uint64))
    q, r = np.divmod(n_mag, d_mag)
    q = q + (r >= d_mag - r).astype(np.uint64)
    negative = (n < 0) != (d < 0)
    with np.errstate(over="ignore"):
        out = np.where(negative, (~q) + np.uint64(1), q).view(np.int64)
    return out


def clz_u32(x: int) -> int:
    return 32 - (int(x) & 0xFFFFFFFF).bit_length()


def clz_u64(x: int) -> int:
    return 64 - (int(x) & UINT64_MASK).bit_length()


def norm_shift_u64(mag: int, bits: int) -> int:
    """s such that mag * 2**-s lies in [2**(bits-1), 2**bits); 0 for mag == 0."""
    mag = int(mag) & UINT64_MASK
    if mag == 0:
        return 0
    bits = min(63, max(1, int(bits)))
    return mag.bit_length() - bits


# ---- seeded integer PRNG (xorshift32: 13, 17, 5) -----------------------------


class Prng:
    """xorshift32 with a murmur3-finaliser seed mix; mirrors et_prng_t."""

    __slots__ = ("state",)

    def __init__(self, seed: int = 0):
        self.state = 0
        self.seed(seed)

    def seed(self, seed: int) -> None:
        h = int(seed) & 0xFFFFFFFF
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & 0xFFFFFFFF
        h ^= h >> 16
        self.state = h if h != 0 else 0x9E3779B9

    def next_u32(self) -> int:
        s = self.state
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.state = s
        return s


def prng_seed(seed: int) -> Prng:
    return Prng(seed)


def prng_next_u32(prng: Prng) -> int:
    return prng.next_u32()


# ---- block floating point -----------------------------------------------------

BFP16_MAX_LEN = 65535


@dataclass
class Bfp16:
    """int16 mantissas sharing one exponent: value[i] = mant[i] * 2**exp."""

    mant: np.ndarray  # int16
    exp: int

    def values(self) -> np.ndarray:
        """Exact real values (float64 is exact for int16 mantissas at sane exponents)."""
        return self.mant.astype(np.float64) * 2.0**self.exp


def _check_exp(e: int, what: str) -> None:
    if not INT16_MIN <= int(e) <= INT16_MAX:
        raise ArgumentError(f"{what} = {e} is outside [-32768, 32767]")


def _normalize(src: np.ndarray, src_exp: int) -> Bfp16:
    _check_exp(src_exp, "src_exp")
    if src.size == 0 or src.size > BFP16_MAX_LEN:
        raise ArgumentError(f"a BFP16 vector holds 1..{BFP16_MAX_LEN} entries, got {src.size}")
    peak = max(abs(int(src.max())), abs(int(src.min())))
    if peak == 0:
        return Bfp16(np.zeros(src.size, dtype=np.int16), 0)
    shift = norm_shift_u64(peak, 15)
    exp = int(src_exp) + shift
    if not INT16_MIN <= exp <= INT16_MAX:
        raise RangeError(f"normalised exponent {exp} leaves the int16 range")
    mant = saturate_s64(round_shift_s64(src.astype(np.int64), shift), INT16_MIN, INT16_MAX)
    return Bfp16(mant.astype(np.int16), exp)


def bfp16_normalize_s32(src, src_exp: int) -> Bfp16:
    """Normalise int32 values worth src * 2**src_exp into a Bfp16 vector."""
    arr = np.asarray(src)
    if arr.dtype != np.int32:
        raise ArgumentError(f"bfp16_normalize_s32 takes int32 values, got {arr.dtype}")
    return _normalize(arr.ravel(), src_exp)


def bfp16_normalize_s64(src, src_exp: int) -> Bfp16:
    """Normalise int64 values worth src * 2**src_exp into a Bfp16 vector."""
    arr = np.asarray(src)
    if arr.dtype != np.int64:
        raise ArgumentError(f"bfp16_normalize_s64 takes int64 values, got {arr.dtype}")
    return _normalize(arr.ravel(), src_exp)


def bfp16_renormalize(v: Bfp16) -> Bfp16:
    """Normalise again after arithmetic on the mantissas."""
    return _normalize(np.asarray(v.mant, dtype=np.int16), v.exp)


def bfp16_dot(a: Bfp16, b: Bfp16) -> tuple[int, int]:
    """Exact sum a[i]*b[i] as (acc, exp): value = acc * 2**exp."""
    if a.mant.size != b.mant.size:
        raise ArgumentError(f"bfp16_dot: lengths differ ({a.mant.size} vs {b.mant.size})")
    acc = int(np.dot(a.mant.astype(np.int64), b.mant.astype(np.int64)))
    return acc, int(a.exp) + int(b.exp)


def bfp16_dot_s32(a: Bfp16, x, x_exp: int) -> tuple[int, int]:
    """Exact sum a[i]*x[i] with x worth x * 2**x_exp, as (acc, exp)."""
    _check_exp(x_exp, "x_exp")
    xv = _as_int64_array(x).ravel()
    if xv.size != a.mant.size:
        raise ArgumentError(f"bfp16_dot_s32: lengths differ ({a.mant.size} vs {xv.size})")
    if xv.size and (int(xv.min()) < INT32_MIN or int(xv.max()) > INT32_MAX):
        raise ArgumentError("bfp16_dot_s32: x must fit int32")
    # |product| <= 2^46 and at most 65535 terms: the int64 sum is exact.
    acc = int(np.dot(a.mant.astype(np.int64), xv))
    return acc, int(a.exp) + int(x_exp)


def _axpy_terms(y_exp: int, alpha: int, alpha_exp: int, x: Bfp16) -> np.ndarray:
    _check_exp(y_exp, "y_exp")
    _check_exp(alpha_exp, "alpha_exp")
    if not INT32_MIN <= int(alpha) <= INT32_MAX:
        raise ArgumentError(f"alpha = {alpha} does not fit int32")
    products = np.int64(alpha) * x.mant.astype(np.int64)
    return round_shift_s64(products, int(y_exp) - int(alpha_exp) - int(x.exp))


def bfp16_axpy_s32(y, y_exp: int, alpha: int, alpha_exp: int, x: Bfp16) -> np.ndarray:
    """Return y + alpha*x as int32 worth y * 2**y_exp (saturating)."""
    yv = np.asarray(y, dtype=np.int32)
    terms = _axpy_terms(y_exp, alpha, alpha_exp, x)
    # Clipping the term far outside int32 first keeps the int64 sum exact and the
    # saturated result unchanged.
    terms = np.clip(terms, -(1 << 40), 1 << 40)
    return np.clip(yv.astype(np.int64) + terms, INT32_MIN, INT32_MAX).astype(np.int32)


def bfp16_axpy_s64(y, y_exp: int, alpha: int, alpha_exp: int, x: Bfp16) -> np.ndarray:
    """Return y + alpha*x as int64 worth y * 2**y_exp (saturating)."""
    yv = np.asarray(y, dtype=np.int64)
    terms = _axpy_terms(y_exp, alpha, alpha_exp, x)
    with np.errstate(over="ignore"):
        total = yv + terms  # wraps on overflow; detected below
    overflow = ((yv ^ total) & (terms ^ total)) < 0
    return np.where(overflow, np.where(terms > 0, INT64_MAX, INT64_MIN), total).astype(np.int64)
