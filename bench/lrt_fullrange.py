"""The storage the study recommends for the bases, scheme (f'), carried in integers as the C would.

docs/lrt.md ("Recommendation") proposes int16 bases with one full-range scale per basis and two more
bits for column 1, and sketches how the C's integers would carry them. The study's emulation
(bench/lrt_accuracy.py) rounds float64 bases to that format; this module is the integer algorithm
itself, per term, so that the sketch's own roundings are measured before the C changes:

- a basis is int16 mantissas q (len x r), a block exponent e and a 16-bit multiplier f in
  [2^15, 2^16): entry (i, k) is worth q_ik f 2^(e - 16); column 1 also has ``low_bits`` (2 at
  r >= 3, 1 at r = 2, 0 at r = 1) more fraction bits, a plane of unsigned low bits lo_i, so that
  its entries are worth (2^b q_i0 + lo_i) f 2^(e - 16 - b). All columns are read as the extended
  mantissas E = 2^b q (+ lo in column 1) at the exponent e - b;
- the projection (the twin's Gram-Schmidt pass): a0 = round(E_j . res 2^(e - b)) as today, the
  coefficient a = round(a0 f 2^-16) and the update res -= round(round(a f 2^-16) E_j 2^(e - b)):
  f enters only through two scalar products per column and pass;
- the rotation: the old basis' weights M (Q30) times the old f, the entries formed exactly at
  2^-60 as today; the peak pass finds the largest |entry| P and with it the shift s (P 2^-s in
  [2^14, 2^15)) and the new multiplier f = ceil(P 2^16 / (32767 2^s)), at most 2^16 - 1. The store
  pass forms the entries again with M and g times round(2^46 / f) (2^16 / f in Q30), so it keeps
  its one rounding per entry (to int16, or for column 1 to 16 + b bits) and no divide;
- everything else (rescales, the core, its SVD and truncation, c) is the twin's
  (edgetrain.reference.lrt), unchanged.

The re-orthonormalisation is the twin's, with the Gram matrices formed in this format (E^T E, then
times f twice) and this rotation. The kappa rule is left out (the study runs kappa off). The C and
the twin (edgetrain.reference.lrt) now store this format, with the new scale taken from a bound on
the entries instead of their peak; this module keeps the peak form, and the loop options below, for
the speed studies.

Loops: the cheaper loops a faster C would need, each an option of run() and accumulate_u8().
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetrain.config import LrtConfig
from edgetrain.reference import fixed
from edgetrain.reference import lrt as ref
from edgetrain.reference.fixed import Prng
from edgetrain.reference.fixed import round_shift_s64 as rshift

F_BITS = 16  # the multiplier f is a Q16 value in [1/2, 1)
MANT_TOP = (1 << 15) - 1


@dataclass(frozen=True)
class Loops:
    """How the loops run; the defaults are the C's today (int32 residuals, exact weights, two passes).

    res16: int16 residuals, each rescale bringing the peak to [2^14, 2^15) instead of the sum of
      squares to [2^54, 2^56), each update saturated to int16 in place (no rescale within a pass);
    cgs_first: the first pass classical (cgs_pass), on the int32-scaled input: every coefficient a dot
      product of the 8-bit inputs with the mantissas; its result is rescaled as res16 says;
    coef_bits: each update's scalar (coefficient times f) narrowed to that many bits (0: as is); the
      coefficients handed to the core keep their width;
    one_pass: the rotation without its peak pass, scaled from a bound (rotate);
    weight_bits: the store pass's weights narrowed to that many bits (0: the exact Q30 weights).
    """

    res16: bool = False
    cgs_first: bool = False
    coef_bits: int = 0
    one_pass: bool = False
    weight_bits: int = 0


def low_bits(rank: int) -> int:
    """Extra fraction bits of column 1: two at r >= 3, one at r = 2, none at r = 1."""
    return 2 if rank >= 3 else (1 if rank == 2 else 0)


@dataclass
class Basis:
    q: np.ndarray  # int16 mantissas, len x r
    lo: np.ndarray  # column 1's low bits, 0 .. 2^b - 1 (int64 for arithmetic)
    exp: int  # block exponent e; 0: an empty basis
    f: int  # multiplier, 2^15 .. 2^16 - 1
    b: int  # low_bits(rank)

    @classmethod
    def empty(cls, length: int, rank: int) -> "Basis":
        return cls(np.zeros((length, rank), np.int16), np.zeros(length, np.int64), 0, 1 << 15, low_bits(rank))

    def ext(self) -> np.ndarray:
        """The extended mantissas E (int64, len x r) at exponent exp - b with multiplier f."""
        e = self.q.astype(np.int64) << self.b
        e[:, 0] += self.lo
        return e

    def values(self) -> np.ndarray:
        if self.exp == 0:
            return np.zeros(self.q.shape)
        return self.ext() * (self.f * 2.0 ** (self.exp - F_BITS - self.b))


@dataclass
class FullRangeState:
    left: Basis
    right: Basis
    c_mant: list
    c_exp: int = 0

    @property
    def rank(self) -> int:
        return len(self.c_mant)

    def c_values(self) -> np.ndarray:
        return np.array(self.c_mant, dtype=np.float64) * 2.0**self.c_exp

    def estimate(self) -> np.ndarray:
        return (self.left.values() * self.c_values()) @ self.right.values().T


def state_init(n: int, m: int, rank: int) -> FullRangeState:
    return FullRangeState(Basis.empty(n, rank), Basis.empty(m, rank), [0] * rank)


def _narrow(values: list, bits: int) -> list:
    """values (ints) to `bits`-bit mantissas on one shared power of two, rounded; bits = 0: unchanged."""
    top = max((abs(v) for v in values), default=0)
    sh = max(0, top.bit_length() - (bits - 1)) if bits and top else 0
    return [rshift(v, sh) << sh for v in values] if sh else list(values)


def _coef(basis: Basis, col: np.ndarray, ee: int, res: np.ndarray) -> int:
    """Column col's coefficient of res in res's units: E_j . res 2^(e - b) as today, then times f."""
    return rshift(max(-ref.COEF_GUARD, min(ref.COEF_GUARD, rshift(int(col @ res), -ee))) * basis.f, F_BITS)


def _update(basis: Basis, a: int, col: np.ndarray, ee: int, coef_bits: int) -> np.ndarray:
    """What an update takes off res for coefficient a: round(a f 2^-16), narrowed to coef_bits, times E_j."""
    return ref._rs(_narrow([rshift(a * basis.f, F_BITS)], coef_bits)[0] * col, -ee)


def mgs_pass(basis: Basis, res: np.ndarray, loops: Loops = Loops()) -> tuple[np.ndarray, list]:
    """One Gram-Schmidt pass against the basis: coefficients in units of the residual's LSB (loops:
    res16, coef_bits)."""
    r = basis.q.shape[1]
    if basis.exp == 0:
        return res, [0] * r
    ext, ee = basis.ext(), basis.exp - basis.b
    lo, hi = (ref.INT16_MIN, ref.INT16_MAX) if loops.res16 else (ref.INT32_MIN, ref.INT32_MAX)
    coef = []
    for j in range(r):
        a = _coef(basis, ext[:, j], ee, res)
        if a:
            res = np.clip(res - _update(basis, a, ext[:, j], ee, loops.coef_bits), lo, hi)
        coef.append(a)
    return res, coef


def cgs_pass(basis: Basis, res: np.ndarray, coef_bits: int) -> tuple[np.ndarray, list]:
    """A classical Gram-Schmidt pass: every coefficient from the same res, then one int32 update."""
    r = basis.q.shape[1]
    if basis.exp == 0:
        return res, [0] * r
    ext, ee = basis.ext(), basis.exp - basis.b
    coef = [_coef(basis, ext[:, j], ee, res) for j in range(r)]
    upd = sum(_update(basis, a, ext[:, j], ee, coef_bits) for j, a in enumerate(coef))
    return np.clip(res - upd, ref.INT32_MIN, ref.INT32_MAX), coef


def _rescale16(res: np.ndarray) -> tuple[np.ndarray, int]:
    """res 2^k as int16 with its largest |entry| in [2^14, 2^15) (a rounding shift for k < 0)."""
    peak = int(np.max(np.abs(res))) if res.size else 0
    if peak == 0:
        return res, 0
    k = 15 - peak.bit_length()
    return np.clip(ref._rs(res, -k), ref.INT16_MIN, ref.INT16_MAX), k


def project_side(basis: Basis, src: np.ndarray, src_exp: int, passes: int, loops: Loops = Loops()) -> ref._Side:
    """The twin's _project_side with this format's passes, run as loops says."""

    def rescale(v):
        if loops.res16:
            return _rescale16(v)
        k = ref._norm_k(v)
        return ref._scale(v, k), k

    src = src.astype(np.int64)
    if loops.cgs_first:  # the input on int32 as today, whatever res16 says
        k = ref._norm_k(src)
        res = ref._scale(src, k)
    else:
        res, k = rescale(src)
    e = src_exp - k
    a_exp = e
    res, a = cgs_pass(basis, res, loops.coef_bits) if loops.cgs_first else mgs_pass(basis, res, loops)
    if passes == 2 and np.any(res):
        res, k = rescale(res)
        e -= k
        res, a2 = mgs_pass(basis, res, loops)
        a = [x + rshift(y, a_exp - e) for x, y in zip(a, a2)]
    res, k = rescale(res)
    e -= k
    return ref._Side(a, a_exp, res, e, ref.sqrt_round(ref._sumsq(res)))


def _times_q30(v: int, scale: int) -> int:
    """v scale 2^-30, rounded half away from zero (Python ints: v scale may pass 2^63)."""
    mag = (abs(int(v)) * scale + (1 << 29)) >> 30
    return -mag if v < 0 else mag


def _entries(ext: np.ndarray, up: int, m_old: list | None, res: np.ndarray, g: list) -> np.ndarray:
    """ext M 2^up + res g (exact, at 2^-60): m_old r x r ints (None: an empty old basis), g r ints."""
    total = np.zeros(ext.shape, dtype=np.int64)
    if m_old is not None:
        mo = np.array(m_old, dtype=np.int64)
        total = ref._rs(ext @ mo, -up)
    return total + res[:, None] * np.array(g, dtype=np.int64)[None, :]


def store(total_fn, rank: int, length: int | None = None, bound: int | None = None) -> Basis:
    """Peak pass, then the store pass through total_fn(scale): the entries formed with every weight
    times scale (Q30; None: unscaled). Returns the new basis (empty when every entry is 0). With a
    bound (>= every |entry|) there is no peak pass: the scale comes from the bound instead."""
    if bound is None:
        total = total_fn(None)
        length = total.shape[0]
        peak = int(np.max(np.abs(total))) if total.size else 0
    else:
        peak = bound
    b = low_bits(rank)
    if peak == 0:
        return Basis.empty(length, rank)
    sh = fixed.norm_shift_u64(peak, 15)  # peak 2^-sh in [2^14, 2^15)
    f = min((1 << F_BITS) - 1, -(-(peak << F_BITS) // (MANT_TOP << sh)))
    inv = fixed.div_round_s64(1 << (F_BITS + 30), f)  # 2^16 / f in Q30, in (2^30, 2^31]
    scaled = total_fn(inv)
    q = np.clip(ref._rs(scaled, sh), ref.INT16_MIN, ref.INT16_MAX).astype(np.int16)
    v = np.clip(ref._rs(scaled[:, 0], sh - b), -(1 << (15 + b)), (1 << (15 + b)) - 1)
    q[:, 0] = (v >> b).astype(np.int16)
    return Basis(q, v & ((1 << b) - 1), ref.WORK_EXP + sh, f, b)


def rotate(basis: Basis, side: ref._Side, m_cols: list, rank: int, loops: Loops = Loops()) -> Basis:
    """[Q, u] M in this format (u = residual / rho): the old weights times the old f; two passes, or
    with loops.one_pass the store pass alone, its scale from a bound |entry (i, k)| <= t sum_j |M_jk f|
    2^up + max|res| |g_k|, t the old basis' largest mantissa (a max over int16, or the previous store
    pass's by-product). loops.weight_bits: the store pass's weights (the old part's r x r, the
    residual's r) each set narrowed to that many bits on one power of two (the width an int16 x int16
    kernel could take in two halves)."""
    ext = basis.ext()
    up = basis.exp - basis.b - ref.WORK_EXP - 30
    m_old = None
    if basis.exp != 0:
        m_old = [[rshift(m_cols[j][k] * basis.f, F_BITS) for k in range(rank)] for j in range(rank)]
    g = [fixed.div_round_s64(m_cols[rank][k] << 30, side.rho) for k in range(rank)] if side.rho else [0] * rank

    def total_fn(scale):
        if scale is None:
            return _entries(ext, up, m_old, side.res, g)
        ms = None
        if m_old is not None:
            flat = _narrow([_times_q30(v, scale) for row in m_old for v in row], loops.weight_bits)
            ms = [flat[j * rank:(j + 1) * rank] for j in range(rank)]
        return _entries(ext, up, ms, side.res, _narrow([_times_q30(v, scale) for v in g], loops.weight_bits))

    if not loops.one_pass:
        return store(total_fn, rank)
    rmax = int(np.max(np.abs(side.res))) if side.res.size else 0
    top = int(np.max(np.abs(ext))) if ext.size else 0
    bound = max((top * sum(abs(m_old[j][k]) for j in range(rank)) << up if m_old is not None else 0)
                + rmax * abs(g[k]) for k in range(rank))
    return store(total_fn, rank, ext.shape[0], bound)


def _set_c(st: FullRangeState, c_new: list, e_c: int) -> None:
    top = c_new[0]
    sh = fixed.norm_shift_u64(top, 31) if top else 0
    st.c_mant = [rshift(c, sh) for c in c_new[: st.rank]] if top else [0] * st.rank
    st.c_exp = e_c + sh if top else 0


def accumulate_u8(st: FullRangeState, cfg: LrtConfig, delta, delta_exp: int, x, x_exp: int, prng=None,
                  loops: Loops = Loops()) -> None:
    """One term delta x^T (int8 at 2^delta_exp, uint8 at 2^x_exp), kappa off, its loops run as loops says."""
    d, xv = np.asarray(delta, np.int64), np.asarray(x, np.int64)
    if not d.any() or not xv.any():
        return
    r = st.rank
    left = project_side(st.left, d, delta_exp, cfg.gs_passes, loops)
    right = project_side(st.right, xv, x_exp, cfg.gs_passes, loops)
    lv, el = ref._align(left.a + [left.rho], [left.a_exp] * r + [left.res_exp])
    rv, er = ref._align(right.a + [right.rho], [right.a_exp] * r + [right.res_exp])
    ml, mr, c_new, e_c = ref._core_step(st.c_mant, st.c_exp, lv, el, rv, er, cfg, prng)
    st.left = rotate(st.left, left, ml, r, loops)
    st.right = rotate(st.right, right, mr, r, loops)
    _set_c(st, c_new, e_c)


def store_values(v: np.ndarray, rank: int) -> Basis:
    """Float values (len x rank, entries below 2) in the format: the entries at 2^-60, then the same
    two passes as a rotation (for checks of the format)."""
    work = v * 2.0 ** -ref.WORK_EXP
    return store(lambda scale: np.round(work if scale is None else work * (scale / 2.0**30)).astype(np.int64), rank)


def _gram_q30(basis: Basis, p: int) -> list | None:
    """The twin's _gram_q30 in this format: the first p columns' Gram matrix in Q30 real units (E^T E
    at 2^(2e - 2b + 30) as today, then times f twice, one rounding each), None when an entry is more
    than 1/(4p) from the identity."""
    cols = basis.ext()[:, :p]
    gram = cols.T @ cols  # exact: |E| <= 2^17, so below 2^50 for len <= 65535
    tol = ref.Q30 // (4 * p)
    out = [[0] * p for _ in range(p)]
    for j in range(p):
        for k in range(j, p):
            v = rshift(int(gram[j, k]), -(2 * (basis.exp - basis.b) + 30))
            v = rshift(rshift(v * basis.f, F_BITS) * basis.f, F_BITS)
            if abs(v - (ref.Q30 if j == k else 0)) > tol:
                return None
            out[j][k] = v
    return out


def reorthonormalize(st: FullRangeState) -> None:
    """et_lrt_reorthonormalize in this format: the twin's steps (Cholesky of each Gram matrix, the SVD
    of R_L diag(c) R_R^T, one rotation per basis) with the Gram matrices above and this rotation."""
    r = st.rank
    p = 0
    while p < r and st.c_mant[p] != 0:
        p += 1
    if p == 0 or st.left.exp == 0 or st.right.exp == 0:
        return
    rl, rr = _gram_q30(st.left, p), _gram_q30(st.right, p)
    if rl is None or rr is None:
        return  # far from orthonormal: left as it is (never the accumulator's bases)
    ref._cholesky(rl, p)
    ref._cholesky(rr, p)
    cs = ref._bitlen(st.c_mant[0]) - 24
    c24 = [rshift(int(st.c_mant[k]), cs) for k in range(p)]
    raw = [[ref._core_entry(rl, rr, c24, p, j, k) for k in range(p)] for j in range(p)]
    ks = ref._bitlen(max(abs(v) for row in raw for v in row)) - 24
    qq = max(r, 2)
    core = [[rshift(raw[j][k], ks) if j < p and k < p else 0 for k in range(qq)] for j in range(qq)]
    e_k = st.c_exp + cs - 30 + ks
    sigma, u, v = ref.svd(core)
    ref._upper_inverse(rl, p)
    ref._upper_inverse(rr, p)

    def first_r(a: list) -> list:
        return [[a[j][k] if j < len(a) and k < len(a) else 0 for k in range(r)] for j in range(r)]

    ml = ref._matmul_q30(first_r(rl), first_r(u)) + [[0] * r]
    mr = ref._matmul_q30(first_r(rr), first_r(v)) + [[0] * r]
    none = ref._Side([], 0, np.zeros(st.left.q.shape[0], dtype=np.int64), 0, 0)
    st.left = rotate(st.left, none, ml, r)
    none = ref._Side([], 0, np.zeros(st.right.q.shape[0], dtype=np.int64), 0, 0)
    st.right = rotate(st.right, none, mr, r)
    _set_c(st, sigma, e_k)


def orth_error(basis: Basis) -> float:
    v = basis.values()
    keep = np.any(v != 0, axis=0)
    if not keep.any():
        return 0.0
    v = v[:, keep]
    return float(np.max(np.abs(v.T @ v - np.eye(v.shape[1]))))


def run(d, x, d_exp: int, x_exp: int, rank: int, unbiased: bool, seed: int, checkpoints: list,
        reorth: int = 0, loops: Loops = Loops()) -> dict:
    """{t: (estimate, orth_l, orth_r, drift)} at each checkpoint t, as the study's emu_run."""
    cfg = LrtConfig(rank=rank, unbiased=int(unbiased), kappa_th=0)
    st = state_init(d.shape[1], x.shape[1], rank)
    prng = Prng(seed) if unbiased else None
    out, done, drift = {}, 0, 0.0
    for t in checkpoints:
        for i in range(done, t):
            accumulate_u8(st, cfg, d[i], d_exp, x[i], x_exp, prng, loops)
            if reorth and (i + 1) % reorth == 0:
                drift = max(drift, orth_error(st.left), orth_error(st.right))
                reorthonormalize(st)
        done = t
        out[t] = (st.estimate(), orth_error(st.left), orth_error(st.right), drift)
    return out
