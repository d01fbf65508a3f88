"""NumPy twin of csrc/src/lrt.c: the fixed-point low-rank gradient accumulator (LRT).

Same names as the C functions without the ``et_lrt_`` prefix (et_lrt_accumulate_s8 is
``accumulate_s8`` here). The integer algorithm, its formats and every rounding are described
in docs/lrt.md; this module reproduces them bit for bit, written in NumPy idiom: vectors as
int64 arrays (every product and sum is bounded below 2^63 by the formats), the small
(r+1) x (r+1) matrices as Python integers.

Memory model (mirrors the C): a layer's persistent state is a 60-byte header plus the int16
bases, Q_L (n x r) and Q_R (m x r), row-major, and the planes of column 1's low bits (State.lo_l,
lo_r here); transient work lives in one scratch buffer shared by all layers
(accumulate_get_buffer_size).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import config as config_module
from ..config import LRT_MAX_RANK, LrtConfig, lrt_config_check
from ..errors import ArgumentError, NoMemoryError, RangeError, StateError
from . import fixed
from . import maxnorm as mn
from .fixed import round_shift_s64 as rshift

MAX_DIM = 65535
JACOBI_SWEEPS = 8  # cap; docs/lrt.md: 6 reach the rounding floor for every q <= 9 tested
STATE_HEADER_BYTES = 60
KIND_DENSE, KIND_CONV = 0, 1
EXP_MIN, EXP_MAX = -128, 127  # accepted input exponents (delta_exp, x_exp)
Q30 = 1 << 30
RESIDUAL_NORM_BITS = 56  # residuals are rescaled so that sum(res^2) < 2^56
CORE_BITS = 25  # core matrix entries are < 2^25
WORK_EXP = -60  # rotation results are formed exactly at 2^-60, then rounded once to int16
BASIS_EXP_MIN, BASIS_EXP_MAX = -44, -14  # block exponents of a non-empty basis (0 = empty)
COEF_GUARD = 1 << 40  # |a_j| clamp; valid (orthonormal) bases give |a_j| < 2^29
F_BITS = 16  # a basis' multiplier f is a Q16 value in [1/2, 1): entries are worth q f 2^(exp - 16)
F_MIN, F_MAX = 1 << 15, (1 << 16) - 1
F_ONE = 1 << 16  # the multiplier of a batch's own frame columns (no scale)
MANT_TOP = (1 << 15) - 1  # a rotation scales its bound to this mantissa
BOUND_CAP = 1 << 62  # a rotation's entry bound is capped here (valid terms stay far below)
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
U64_MAX = (1 << 64) - 1


# ---- state ----------------------------------------------------------------------


@dataclass
class State:
    """et_lrt_state_t plus its bases. Values: Q_L = E_l * f_l * 2^(exp_l - 16 - b), c_k = c_mant[k] * 2^c_exp,
    with E_l = ql * 2^b plus lo_l in column 1 (the extended mantissas, ext(); b = low_bits(rank));
    f_l (f_r) is 0 for an empty basis (exp 0), else in [2^15, 2^16): the basis' full-range scale."""

    n: int
    m: int
    rank: int
    kind: int
    ql: np.ndarray = field(repr=False)  # int16, n x r
    qr: np.ndarray = field(repr=False)  # int16, m x r
    exp_l: int = 0
    exp_r: int = 0
    c_mant: list = field(default_factory=list)  # r ints, 0 .. 2^31, descending
    c_exp: int = 0
    b_eff: int = 0
    terms: int = 0
    skipped: int = 0
    f_l: int = 0
    f_r: int = 0
    lo_l: np.ndarray | None = field(default=None, repr=False)  # column 1's low bits, n values in 0 .. 2^b - 1
    lo_r: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        for name, rows in (("lo_l", self.n), ("lo_r", self.m)):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(rows, np.int64))

    def c_values(self) -> np.ndarray:
        return np.array(self.c_mant, dtype=np.float64) * 2.0**self.c_exp

    def estimate(self) -> np.ndarray:
        """Q_L diag(c) Q_R^T in float64 (exact up to float64 rounding)."""
        left = basis_values(self.ql, self.lo_l, self.exp_l, self.f_l)
        return (left * self.c_values()) @ basis_values(self.qr, self.lo_r, self.exp_r, self.f_r).T


def low_bits(rank: int) -> int:
    """Column 1's extra fraction bits b: two at r >= 3, one at r = 2, none at r = 1."""
    return 2 if rank >= 3 else (1 if rank == 2 else 0)


def plane_bytes(length: int, rank: int) -> int:
    """Bytes of one basis' plane of column-1 low bits (b bits per row, packed from bit 0 of byte 0)."""
    return (int(length) * low_bits(rank) + 7) // 8


def planes_unpack(raw: bytes, n: int, m: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Column 1's low bits of both bases from the state's planes (the bytes after the bases)."""
    b = low_bits(rank)
    bits = np.unpackbits(np.frombuffer(bytes(raw), np.uint8), bitorder="little").astype(np.int64)
    out = []
    for start, length in ((0, n), (8 * plane_bytes(n, rank), m)):
        vals = np.zeros(length, np.int64)
        for t in range(b):
            vals += bits[start + t: start + length * b: b][:length] << t
        out.append(vals)
    return out[0], out[1]


def ext(q: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """The extended mantissas E (int64): q 2^b, plus lo in column 1 (b = low_bits(rank))."""
    e = q.astype(np.int64) << low_bits(q.shape[1])
    if q.shape[1]:
        e[:, 0] += lo
    return e


def basis_values(q: np.ndarray, lo: np.ndarray, q_exp: int, f: int) -> np.ndarray:
    """A basis' entries E f 2^(q_exp - 16 - b) in float64 (exact: 33-bit products)."""
    return ext(q, lo).astype(np.float64) * (float(f) * 2.0 ** (q_exp - F_BITS - low_bits(q.shape[1])))


def check_dims(n: int, m: int, rank: int) -> None:
    if not 1 <= int(rank) <= LRT_MAX_RANK:
        raise ArgumentError(f"LRT rank {rank} is outside 1..{LRT_MAX_RANK}")
    for name, v in (("n (outputs)", n), ("m (inputs)", m)):
        if not 1 <= int(v) <= MAX_DIM:
            raise ArgumentError(f"LRT layer {name} = {v} is outside 1..{MAX_DIM}")


def state_get_size(n: int, m: int, rank: int) -> int:
    """Bytes of one layer's persistent state: the 60-byte header, 2 r (n + m) bytes of bases and the two
    planes of column 1's low bits."""
    check_dims(n, m, rank)
    return STATE_HEADER_BYTES + 2 * int(rank) * (int(n) + int(m)) + plane_bytes(n, rank) + plane_bytes(m, rank)


def state_init(n: int, m: int, cfg: LrtConfig, kind: int = KIND_DENSE, size: int | None = None) -> State:
    """A zero state (empty bases, c = 0). ``size`` mimics the C's buffer check."""
    lrt_config_check(cfg)
    check_dims(n, m, cfg.rank)
    if kind not in (KIND_DENSE, KIND_CONV):
        raise ArgumentError(f"LRT layer kind {kind} is neither KIND_DENSE (0) nor KIND_CONV (1)")
    need = state_get_size(n, m, cfg.rank)
    if size is not None and size < need:
        raise NoMemoryError(f"LRT state of a {n} x {m} layer at rank {cfg.rank} needs {need} bytes, got {size}", need)
    r = cfg.rank
    return State(n, m, r, kind, np.zeros((n, r), np.int16), np.zeros((m, r), np.int16), c_mant=[0] * r)


def reset(st: State) -> None:
    """Forget the accumulated gradient (after a successful weight write)."""
    st.ql[:] = 0
    st.qr[:] = 0
    st.lo_l[:] = 0
    st.lo_r[:] = 0
    st.exp_l = st.exp_r = st.c_exp = 0
    st.f_l = st.f_r = 0
    st.c_mant = [0] * st.rank
    st.b_eff = st.terms = st.skipped = 0


def accumulate_get_buffer_size(n_max: int, m_max: int, rank: int) -> int:
    """Bytes of the scratch shared by all layers: int32 residuals, each basis' column 1 as int32 extended
    mantissas, and the small matrices."""
    check_dims(n_max, m_max, rank)
    q = int(rank) + 1
    return 4 * (2 * (int(n_max) + int(m_max)) + 2 * q * q + 3 * q * int(rank))


# ---- integer helpers (built on reference.fixed) ----------------------------------


def sqrt_round(v: int) -> int:
    """sqrt(v) rounded to nearest (v >= 0)."""
    r = fixed.isqrt_u64(v)
    return r + 1 if v - r * r > r else r


def _bitlen(v: int) -> int:
    return abs(int(v)).bit_length()


def _rs(v: np.ndarray, shift: int) -> np.ndarray:
    """v * 2^-shift, rounded half away from zero, for int64 arrays whose results cannot
    saturate (|v| < 2^62 and a left shift that stays below 2^63, as the formats guarantee)."""
    shift = int(shift)
    if shift <= 0:
        return v << -shift
    mag = (np.abs(v) + (1 << (shift - 1))) >> shift
    return np.where(v < 0, -mag, mag)


def _sumsq(res: np.ndarray) -> int:
    """sum(res^2), saturated at 2^64 - 1 (as the C's saturating sum)."""
    if not res.size:
        return 0
    if float(np.max(np.abs(res))) ** 2 * res.size < 2.0**62:
        return int(np.dot(res, res))  # exact in int64
    return min(sum(int(v) * int(v) for v in res), U64_MAX)


def _norm_k(res: np.ndarray) -> int:
    """Left shift that brings sum(res^2) into [2^54, 2^56) (negative: a rounding right shift)."""
    s = _sumsq(res)
    if s == 0:
        return 0
    bl = s.bit_length()
    return (RESIDUAL_NORM_BITS - bl) // 2 if bl <= RESIDUAL_NORM_BITS else -((bl - RESIDUAL_NORM_BITS + 1) // 2)


def _scale(res: np.ndarray, k: int) -> np.ndarray:
    return np.clip(_rs(res, -k), INT32_MIN, INT32_MAX)


def _mgs_pass(e: np.ndarray, e_exp: int, f: int, res: np.ndarray) -> tuple[np.ndarray, list]:
    """One modified Gram-Schmidt pass against columns worth e f 2^(e_exp - 16) (e: extended mantissas,
    int64; e_exp = 0: an empty basis): coefficients in units of the residual's LSB. Column j's
    coefficient is a = round(round(e_j . res 2^e_exp) f 2^-16) and its update res -= round(s e_j 2^e_exp)
    with s = round(a f 2^-16): f enters through two scalar products. (Columns 2 .. r, e = q 2^b at
    q_exp - b, give exactly what q at q_exp gives: only column 1 gains from its low bits.)"""
    if e_exp == 0:  # empty basis
        return res, [0] * e.shape[1]
    coef = []
    for j in range(e.shape[1]):
        col = e[:, j]
        a = rshift(max(-COEF_GUARD, min(COEF_GUARD, rshift(int(col @ res), -e_exp))) * f, F_BITS)
        if a:
            res = np.clip(res - _rs(rshift(a * f, F_BITS) * col, -e_exp), INT32_MIN, INT32_MAX)
        coef.append(a)
    return res, coef


def _ext_exp(q: np.ndarray, q_exp: int) -> int:
    """The extended mantissas' exponent, q_exp - b (0 for an empty basis)."""
    return q_exp - low_bits(q.shape[1]) if q_exp else 0


@dataclass
class _Side:
    a: list  # projection coefficients, at exponent a_exp
    a_exp: int
    res: np.ndarray  # residual (int64 values in int32 range), at exponent res_exp
    res_exp: int
    rho: int  # ||res|| rounded, at res_exp


def _project_side(q: np.ndarray, lo: np.ndarray, q_exp: int, f: int, src: np.ndarray, src_exp: int,
                  passes: int) -> _Side:
    e, ee = ext(q, lo), _ext_exp(q, q_exp)
    res = src.astype(np.int64)
    k = _norm_k(res)
    res, r_exp = _scale(res, k), src_exp - k
    a_exp = r_exp
    res, a = _mgs_pass(e, ee, f, res)
    if passes == 2 and np.any(res):
        k = _norm_k(res)
        res, r_exp = _scale(res, k), r_exp - k
        res, a2 = _mgs_pass(e, ee, f, res)
        a = [x + rshift(y, a_exp - r_exp) for x, y in zip(a, a2)]
    k = _norm_k(res)
    res, r_exp = _scale(res, k), r_exp - k
    return _Side(a, a_exp, res, r_exp, sqrt_round(_sumsq(res)))


def _align(values: list, exps: list) -> tuple[list, int]:
    """Values v_j * 2^e_j on one exponent E, largest magnitude below 2^30 (one rounding each)."""
    tops = [_bitlen(v) + e for v, e in zip(values, exps) if v]
    if not tops:
        return [0] * len(values), 0
    big = max(tops) - 30
    return [rshift(v, big - e) for v, e in zip(values, exps)], big


# ---- the core SVD (one-sided Jacobi, fixed sweeps) -------------------------------


def _rotation(alpha: int, beta: int, gamma: int):
    """(cos, sin) in Q30 of the Jacobi rotation that orthogonalises two columns, or None.

    None when the columns are orthogonal to within the rounding noise of their integer
    entries: gamma^2 <= 4 (alpha + beta) (docs/lrt.md), or when the angle rounds to 0.
    """
    if abs(gamma) < 1 << 31 and gamma * gamma <= 4 * (alpha + beta):
        return None
    d, g = beta - alpha, 2 * gamma
    sh = max(0, max(_bitlen(d), _bitlen(g)) - 31)
    d, g = rshift(d, sh), rshift(g, sh)
    hyp = sqrt_round(d * d + g * g)
    t = fixed.div_round_s64(g << 30, abs(d) + hyp)
    t = -t if d < 0 else t
    if t == 0:
        return None
    cs = fixed.div_round_s64(1 << 60, sqrt_round((1 << 60) + t * t))
    return cs, rshift(cs * t, 30)


def _round_q30(v: np.ndarray) -> np.ndarray:
    """v * 2^-30 rounded half away from zero (|v| < 2^62)."""
    return _rs(v, 30)


def svd(c) -> tuple[list, list, list]:
    """et_lrt_svd: C (q x q ints, |entries| <= 2^25) = U diag(sigma) V^T.

    Returns sigma (q ints, descending), U and V (q x q lists of Q30 ints; column k is the k-th
    singular vector, a zero column where sigma_k = 0). At most JACOBI_SWEEPS cyclic sweeps; a
    sweep without a rotation ends early (nothing would change any more).
    """
    a = np.array(c, dtype=np.int64)
    q = a.shape[0] if a.ndim == 2 else 0
    if a.ndim != 2 or not 2 <= q <= LRT_MAX_RANK + 1 or a.shape[1] != q:
        raise ArgumentError(f"svd: the core must be square with 2..{LRT_MAX_RANK + 1} rows, got shape {a.shape}")
    if np.any(np.abs(a) > 1 << CORE_BITS):
        raise ArgumentError(f"svd: core entries must be at most 2^{CORE_BITS} in magnitude")
    v = np.eye(q, dtype=np.int64) * Q30
    for _ in range(JACOBI_SWEEPS):
        rotated = False
        for i in range(q - 1):
            for j in range(i + 1, q):
                rot = _rotation(int(a[:, i] @ a[:, i]), int(a[:, j] @ a[:, j]), int(a[:, i] @ a[:, j]))
                if rot is None:
                    continue
                rotated = True
                cs, sn = rot
                for mat in (a, v):
                    x, y = mat[:, i].copy(), mat[:, j].copy()
                    mat[:, i] = _round_q30(cs * x - sn * y)
                    mat[:, j] = _round_q30(sn * x + cs * y)
        if not rotated:
            break
    sigma = [sqrt_round(int(a[:, k] @ a[:, k])) for k in range(q)]
    order = np.argsort(-np.array(sigma, dtype=np.int64), kind="stable")
    sigma = [sigma[k] for k in order]
    a, v = a[:, order], v[:, order]
    u = np.zeros((q, q), dtype=np.int64)
    degenerate = False
    for k in range(q):
        if sigma[k] == 0:
            continue
        col = np.array([fixed.div_round_s64(int(x) << 30, sigma[k]) for x in a[:, k]], dtype=np.int64)
        for j in range(k):  # modified Gram-Schmidt against the larger singular vectors
            proj = rshift(int(u[:, j] @ col), 30)
            if proj:
                col = col - _round_q30(proj * u[:, j])
        nrm = sqrt_round(int(col @ col))
        if nrm < 1 << 29:  # sigma_k is rounding noise: the column lies in the span of the larger ones
            sigma[k] = 0
            degenerate = True
            continue
        u[:, k] = [fixed.div_round_s64(int(x) << 30, nrm) for x in col]
    if degenerate:
        order = np.argsort(-np.array(sigma, dtype=np.int64), kind="stable")
        sigma, u, v = [sigma[k] for k in order], u[:, order], v[:, order]
    zero = np.array(sigma) == 0
    u[:, zero] = 0
    v[:, zero] = 0
    return sigma, u.tolist(), v.tolist()


# ---- truncation to rank r -----------------------------------------------------------


def truncate(sigma, rank: int, unbiased: int, sign_bits: int = 0) -> tuple[int, list, list]:
    """et_lrt_truncate: (p, c_new, T) from q = rank+1 sorted singular values (ints).

    p is 1-based; p = q means no mixing (biased rule, or sigma_q = 0). c_new: r ints on the
    scale of sigma; T: q x r list of Q30 ints. Unbiased: the OK rule of spec §2.2 step 5 with
    s_t = -1 where bit t of sign_bits is set. Requires sum(sigma) < 2^32.
    """
    sig = [int(s) for s in sigma]
    q = int(rank) + 1
    if not 1 <= rank <= LRT_MAX_RANK or len(sig) != q:
        raise ArgumentError(f"truncate: rank {rank} needs {q} singular values, got {len(sig)}")
    if any(s < 0 for s in sig) or any(sig[i] < sig[i + 1] for i in range(q - 1)) or sum(sig) >= 1 << 32:
        raise ArgumentError("truncate: singular values must be >= 0, descending, with sum < 2^32")
    t = [[Q30 if i == k else 0 for k in range(rank)] for i in range(q)]
    if not unbiased or sig[-1] == 0:
        return q, sig[:rank], t
    tail = [sum(sig[i:]) for i in range(q)]
    p = next(i + 1 for i in range(q) if (q - 1 - i) * sig[i] <= tail[i])
    k, s1 = q - p, tail[p - 1]
    block = sig[p - 1 :]
    up = max(0, 32 - s1.bit_length())  # only sigma / s1 matters: scale s1 into [2^31, 2^32)
    s1u = s1 << up
    x0 = [fixed.div_round_s64(sqrt_round(((s1 - k * s) << up) * s1u) << 30, s1u) for s in block]
    v = [x0[0] - Q30] + x0[1:]
    signs = [-1 if (int(sign_bits) >> i) & 1 else 1 for i in range(k + 1)]
    for row in range(k + 1):
        for col in range(k):
            h = (Q30 if row == col + 1 else 0) + fixed.div_round_s64(v[row] * v[col + 1], v[0])
            t[p - 1 + row][p - 1 + col] = signs[row] * h
    share = fixed.div_round_s64(s1, k)
    return p, sig[: p - 1] + [share] * k, t


# ---- accumulate --------------------------------------------------------------------


def _check_vector(v, length: int, dtype, name: str) -> np.ndarray:
    arr = np.asarray(v)
    if arr.dtype != dtype:
        raise ArgumentError(f"{name} must be a {np.dtype(dtype).name} vector, got {arr.dtype}")
    if arr.shape != (length,):
        raise ArgumentError(f"{name} must have {length} entries (the layer's size), got shape {arr.shape}")
    return arr.astype(np.int64)


def full_range_scale(bound: int) -> tuple[int, int, int]:
    """(sh, f, inv) for a new basis whose entries (at 2^WORK_EXP or a frame's 2^x) are at most bound
    (> 0) in magnitude: bound 2^-sh in [2^14, 2^15), the multiplier f = ceil(bound 2^16 / (MANT_TOP
    2^sh)) (at most F_MAX) that brings the largest entry to MANT_TOP, and inv = round(2^46 / f), 2^16 / f
    in Q30. The store pass forms the entries again with every weight times inv 2^-31 and rounds them
    by sh - 1: each entry is rounded once, to q with q f 2^(sh - 16) its value."""
    sh = fixed.norm_shift_u64(bound, 15)
    num, den = (bound << F_BITS, MANT_TOP << sh) if sh >= 0 else (bound << (F_BITS - sh), MANT_TOP)
    f = min(F_MAX, -(-num // den))
    return sh, f, fixed.div_round_s64(1 << (F_BITS + 30), f)


def _scaled(w: int, inv: int) -> int:
    """A store pass' weight: w inv 2^-31, rounded (|w| < 2^63, inv <= 2^31: the product may pass 2^63)."""
    mag = (abs(int(w)) * inv + (1 << 30)) >> 31
    return -mag if w < 0 else mag


def _store(total, bound: int, rank: int, x: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A new basis from its entries at 2^x, at most bound (> 0) in magnitude: total(inv) forms them with
    every weight times inv 2^-31 (None: unscaled). Returns the int16 mantissas, column 1's low bits,
    the exponent and the multiplier (full_range_scale): each entry rounded once, column 1 by b more bits
    (its 16 + b-bit value split into q = v >> b and lo = v & (2^b - 1))."""
    b = low_bits(rank)
    sh, f_new, inv = full_range_scale(bound)
    t = total(inv)
    mant = np.clip(_rs(t, sh - 1), INT16_MIN, INT16_MAX).astype(np.int16)
    v = np.clip(_rs(t[:, 0], sh - 1 - b), -(1 << (15 + b)), (1 << (15 + b)) - 1)
    mant[:, 0] = (v >> b).astype(np.int16)
    return mant, v & ((1 << b) - 1), x + sh, f_new


def _empty(length: int, rank: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    return np.zeros((length, rank), np.int16), np.zeros(length, np.int64), 0, 0


def _rotate(q: np.ndarray, lo: np.ndarray, q_exp: int, f: int, side: _Side, m_cols: list,
            rank: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """New basis [Q, u] M (u = residual / rho): int16 mantissas, column 1's low bits, exponent and
    multiplier (_store; _empty when every entry is 0).

    Entry (i, k) is exact at 2^WORK_EXP: the old basis' part sum_j E_ij m_jk 2^up (E the extended
    mantissas, m_jk = round(M_jk f 2^-16), up = q_exp - b - WORK_EXP - 30; a rounding shift for up < 0),
    the residual's res_i g_k with g_k = M_rk 2^30 / rho. No pass finds the peak: the scale comes from
    the bound B = max_k (t sum_j |m_jk| 2^up + max|res| |g_k|), t = max|q| 2^b + 2^b - 1 >= max|E|,
    capped at BOUND_CAP. Where B would put the exponent above BASIS_EXP_MAX (entries near 1 and a
    loose bound), the exact peak is B.
    """
    n = q.shape[0]
    b = low_bits(rank)
    g = [fixed.div_round_s64(m_cols[rank][k] << 30, side.rho) for k in range(rank)] if side.rho else [0] * rank
    rmax = int(np.max(np.abs(side.res))) if side.rho and side.res.size else 0
    up = q_exp - b - WORK_EXP - 30
    mo = [[rshift(m_cols[j][k] * f, F_BITS) for k in range(rank)] for j in range(rank)] if q_exp else None
    top = (int(np.max(np.abs(q.astype(np.int64)))) << b) + (1 << b) - 1 if q_exp and n else 0
    e = ext(q, lo)
    bound = 0
    for k in range(rank):
        bk = rmax * abs(g[k])
        if mo is not None:
            t = top * sum(abs(mo[j][k]) for j in range(rank))
            bk += t << up if up >= 0 else (t >> -up) + (t != 0)
        bound = max(bound, min(bk, BOUND_CAP))

    def total(inv: int | None) -> np.ndarray:
        def w(v: int) -> int:
            return v if inv is None else _scaled(v, inv)

        out = np.zeros(q.shape, dtype=np.int64)
        if mo is not None:
            out = _rs(e @ np.array([[w(v) for v in row] for row in mo], dtype=np.int64), -up)
        if side.rho:
            out = out + side.res[:, None] * np.array([w(v) for v in g], dtype=np.int64)[None, :]
        return out

    if bound and WORK_EXP + fixed.norm_shift_u64(bound, 15) > BASIS_EXP_MAX:
        # a basis with entries near 1 (a few rows) and a loose bound: the exact peak instead
        bound = int(np.max(np.abs(total(None)))) if q.size else 0
    if bound == 0:
        return _empty(n, rank)
    return _store(total, bound, rank, WORK_EXP)


def _matmul_q30(a: list, b: list) -> list:
    """(q x q) @ (q x r), Q30 entries, one rounding per result."""
    return [[rshift(sum(a[i][t] * b[t][k] for t in range(len(b))), 30) for k in range(len(b[0]))] for i in range(len(a))]


def check_c_values(st) -> None:
    """c_mant descending and at most 2^31 (et_lrt.h): a state that breaks it was corrupted."""
    c = [int(st.c_mant[k]) for k in range(int(st.rank))]
    if c[0] > 1 << 31 or any(b > a for a, b in zip(c, c[1:])):
        raise ArgumentError(
            f"LRT state c_mant {c} is not descending with c_mant[0] <= 2^31: the state is corrupted; "
            "initialise it again (state_init) or load a saved good one"
        )


def _rotate_commit(st: State, left: _Side, ml: list, right: _Side, mr: list, c_new: list, e_c: int) -> None:
    """Rotate both bases and set c to c_new (on exponent e_c; c_new[0] = 0: all zero). The new exponents
    are checked before anything is written: RangeError then, with nothing changed."""
    r = st.rank
    new_ql, new_lol, new_el, new_fl = _rotate(st.ql, st.lo_l, st.exp_l, st.f_l, left, ml, r)
    new_qr, new_lor, new_er, new_fr = _rotate(st.qr, st.lo_r, st.exp_r, st.f_r, right, mr, r)
    top = c_new[0]
    sh = fixed.norm_shift_u64(top, 31) if top else 0
    new_c = [rshift(c, sh) for c in c_new[:r]] if top else [0] * r
    new_ce = e_c + sh if top else 0
    for name, e in (("Q_L", new_el), ("Q_R", new_er)):
        if e != 0 and not BASIS_EXP_MIN <= e <= BASIS_EXP_MAX:
            raise RangeError(f"LRT {name} block exponent {e} is outside {BASIS_EXP_MIN}..{BASIS_EXP_MAX}: the basis lost its unit columns")
    if not fixed.INT16_MIN <= new_ce <= fixed.INT16_MAX:
        raise RangeError(f"LRT c exponent {new_ce} leaves the int16 range: the inputs' exponents are extreme")
    st.ql, st.lo_l, st.exp_l, st.f_l = new_ql, new_lol, new_el, new_fl
    st.qr, st.lo_r, st.exp_r, st.f_r = new_qr, new_lor, new_er, new_fr
    st.c_mant, st.c_exp = new_c, new_ce


def _core_step(c_mant: list, c_exp: int, lv: list, el: int, rv: list, er: int, cfg: LrtConfig, prng):
    """Steps 3 to 5 of a term: the core diag(c, 0) + [a; rho_L][b; rho_R]^T (aligned vectors lv at 2^el,
    rv at 2^er), its SVD and truncation. Returns M_L, M_R (q x r, Q30), c_new and its exponent e_c."""
    r = len(c_mant)
    q = r + 1
    c1 = c_mant[0]
    e_p = el + er
    p_max = max(abs(v) for v in lv) * max(abs(v) for v in rv)
    tops = [_bitlen(p_max) + e_p] + ([_bitlen(c1) + c_exp] if c1 else [])
    e_c = max(tops) + 1 - CORE_BITS
    core = [[rshift(lv[i] * rv[k], e_c - e_p) for k in range(q)] for i in range(q)]
    for k in range(r):
        core[k][k] += rshift(c_mant[k], e_c - c_exp)
    sigma, u, v = svd(core)
    bits = 0
    if cfg.unbiased and sigma[-1]:
        bits = prng.next_u32() if isinstance(prng, fixed.Prng) else fixed.prng_next_u32(prng)
    _, c_new, t = truncate(sigma, r, cfg.unbiased, bits)
    return _matmul_q30(u, t), _matmul_q30(v, t), c_new, e_c


def _kappa_discards(c_mant: list, c_exp: int, kappa: int, rho_l: int, exp_l: int, rho_r: int, exp_r: int) -> bool:
    """c_1 > kappa rho_L rho_R, formed as the C forms it (compared, never divided)."""
    thr = mn.ufloat_make(rho_l * rho_r, exp_l + exp_r)
    if thr.mant:
        thr = mn.ufloat_make(thr.mant * kappa, thr.exp)
    return mn.ufloat_cmp(mn.ufloat_make(c_mant[0], c_exp), thr) > 0


def _accumulate(st: State, cfg: LrtConfig, delta, delta_exp: int, x, x_exp: int, x_dtype, prng) -> str:
    lrt_config_check(cfg)
    if cfg.rank != st.rank:
        raise ArgumentError(f"config rank {cfg.rank} differs from the state's rank {st.rank}")
    check_c_values(st)
    for name, e in (("delta_exp", delta_exp), ("x_exp", x_exp)):
        if not EXP_MIN <= int(e) <= EXP_MAX:
            raise ArgumentError(f"{name} = {e} is outside {EXP_MIN}..{EXP_MAX}")
    d = _check_vector(delta, st.n, np.int8, "delta")
    xv = _check_vector(x, st.m, x_dtype, "x")
    if cfg.unbiased and prng is None:
        raise ArgumentError("unbiased accumulation needs a PRNG (et_prng_t)")
    r = st.rank
    if not d.any() or not xv.any():
        st.terms = min(st.terms + 1, 0xFFFFFFFF)
        return "zero"
    left = _project_side(st.ql, st.lo_l, st.exp_l, st.f_l, d, int(delta_exp), cfg.gs_passes)
    right = _project_side(st.qr, st.lo_r, st.exp_r, st.f_r, xv, int(x_exp), cfg.gs_passes)
    if cfg.kappa_th and st.c_mant[0] and _kappa_discards(st.c_mant, st.c_exp, cfg.kappa_th, left.rho, left.res_exp,
                                                         right.rho, right.res_exp):
        st.skipped = min(st.skipped + 1, 0xFFFFFFFF)
        return "skipped"
    lv, el = _align(left.a + [left.rho], [left.a_exp] * r + [left.res_exp])
    rv, er = _align(right.a + [right.rho], [right.a_exp] * r + [right.res_exp])
    ml, mr, c_new, e_c = _core_step(st.c_mant, st.c_exp, lv, el, rv, er, cfg, prng)
    _rotate_commit(st, left, ml, right, mr, c_new, e_c)
    st.terms = min(st.terms + 1, 0xFFFFFFFF)
    if cfg.reorth_terms and st.terms < 0xFFFFFFFF and st.terms % cfg.reorth_terms == 0:
        try:
            reorthonormalize(st)
        except RangeError:  # bases far from orthonormal (never the accumulator's): left as they are
            pass
    return "ok"


def accumulate_s8(st: State, cfg: LrtConfig, delta, delta_exp: int, x, x_exp: int, prng=None) -> str:
    """Add delta x^T (delta int8 at 2^delta_exp, x int8 at 2^x_exp). Returns "ok", "zero" or "skipped"."""
    return _accumulate(st, cfg, delta, delta_exp, x, x_exp, np.int8, prng)


def accumulate_u8(st: State, cfg: LrtConfig, delta, delta_exp: int, x, x_exp: int, prng=None) -> str:
    """As accumulate_s8 with x uint8 (activations after ReLU, network input)."""
    return _accumulate(st, cfg, delta, delta_exp, x, x_exp, np.uint8, prng)


# ---- batches of terms (one rounding of the bases per batch) ---------------------------

BATCH_MAX = 16  # ET_LRT_BATCH_MAX: terms per accumulate_batch call
COORD_BITS = 28  # frame coordinates [a; rho] are aligned below 2^28 (docs/lrt.md, "Batches of terms")
FRAME_GUARD = 12  # the batch rotation works at 2^(largest frame exponent - 30 - FRAME_GUARD)
UNIT_EXP = 61  # a new frame column is formed as res * round(2^61 / rho)


def accumulate_batch_get_buffer_size(n_max: int, m_max: int, rank: int, count_max: int) -> int:
    """Bytes of the scratch for batches of up to count_max terms: the per-term scratch, the batch's
    int16 frame columns (count_max of each side) and the two coordinate matrices P_L, P_R."""
    check_dims(n_max, m_max, rank)
    if not 1 <= int(count_max) <= BATCH_MAX:
        raise ArgumentError(f"batch size {count_max} is outside 1..{BATCH_MAX}")
    cols = 2 * int(count_max) * (int(n_max) + int(m_max))
    return accumulate_get_buffer_size(n_max, m_max, rank) + ((cols + 3) & ~3) + 8 * (int(rank) + int(count_max)) * int(rank)


@dataclass
class _Frame:
    """One side of a batch: the basis Q0 it started from (multiplier f0), the new columns w_s (int16 mantissas at
    2^e_s, each close to a unit vector; e_s = 0: a zero column) and P, the coordinates of the current
    basis in [Q0, w_1 .. w_t] ((r + t) x r, Q30 ints)."""

    q0: np.ndarray
    lo0: np.ndarray
    exp0: int
    f0: int
    cols: list = field(default_factory=list)
    exps: list = field(default_factory=list)
    p: list = field(default_factory=list)


def _frame_init(q0: np.ndarray, lo0: np.ndarray, exp0: int, f0: int, rank: int) -> _Frame:
    return _Frame(q0, lo0, exp0, f0, [], [], [[Q30 if j == k else 0 for k in range(rank)] for j in range(rank)])


def _frame_pass(fr: _Frame, res: np.ndarray) -> tuple[np.ndarray, list]:
    """One Gram-Schmidt pass against Q0's columns, then each w_s in turn: coefficients in the residual's units."""
    res, coef = _mgs_pass(ext(fr.q0, fr.lo0), _ext_exp(fr.q0, fr.exp0), fr.f0, res)
    for w, e in zip(fr.cols, fr.exps):
        res, (a,) = _mgs_pass(w.astype(np.int64)[:, None], e, F_ONE, res)
        coef.append(a)
    return res, coef


def _frame_project(fr: _Frame, src: np.ndarray, src_exp: int, passes: int) -> _Side:
    """_project_side against the whole frame [Q0, w_1 .. w_t]."""
    res = src.astype(np.int64)
    k = _norm_k(res)
    res, e = _scale(res, k), src_exp - k
    a_exp = e
    res, a = _frame_pass(fr, res)
    if passes == 2 and np.any(res):
        k = _norm_k(res)
        res, e = _scale(res, k), e - k
        res, a2 = _frame_pass(fr, res)
        a = [x + rshift(y, a_exp - e) for x, y in zip(a, a2)]
    k = _norm_k(res)
    res, e = _scale(res, k), e - k
    return _Side(a, a_exp, res, e, sqrt_round(_sumsq(res)))


def _align_bits(values: list, exps: list, bits: int) -> tuple[list, int]:
    """_align with the largest magnitude below 2^bits."""
    tops = [_bitlen(v) + e for v, e in zip(values, exps) if v]
    if not tops:
        return [0] * len(values), 0
    big = max(tops) - bits
    return [rshift(v, big - e) for v, e in zip(values, exps)], big


def _frame_coords(fr: _Frame, side: _Side, rank: int) -> tuple[list, int, int, list]:
    """The term in the current basis Q = [Q0, w] P: a = P^T y (y: the frame coefficients and rho on one
    exponent ey, below 2^COORD_BITS), the residual against Q, z = [y - P a; y_rho], its norm rho_q and
    its direction's frame coordinates v = z / rho_q (Q30; all zero when rho_q = 0)."""
    t = len(side.a)
    y, ey = _align_bits(side.a + [side.rho], [side.a_exp] * t + [side.res_exp], COORD_BITS)
    a = [rshift(sum(fr.p[j][k] * y[j] for j in range(t)), 30) for k in range(rank)]
    z = [y[j] - rshift(sum(fr.p[j][k] * a[k] for k in range(rank)), 30) for j in range(t)] + [y[t]]
    rho_q = sqrt_round(sum(v * v for v in z))
    v = [fixed.div_round_s64(zj << 30, rho_q) for zj in z] if rho_q else [0] * (t + 1)
    return a, rho_q, ey, v


def _frame_advance(fr: _Frame, v: list, m: list, side: _Side, rank: int) -> None:
    """P <- [P, v] M (M (r + 1) x r, Q30; P gains a row for the new column), and the new column w_t: the
    residual's direction res / rho as int16 mantissas on a power of two (a zero column for rho = 0)."""
    t = len(fr.p)
    pn = [[rshift(sum(fr.p[j][i] * m[i][k] for i in range(rank)) + v[j] * m[rank][k], 30) for k in range(rank)]
          for j in range(t)]
    pn.append([rshift(v[t] * m[rank][k], 30) for k in range(rank)])
    fr.p = pn
    if side.rho == 0:
        fr.cols.append(np.zeros(side.res.shape, np.int16))
        fr.exps.append(0)
        return
    col, e = _frame_unit_col(side.res, side.rho)
    fr.cols.append(col)
    fr.exps.append(e)


def _frame_unit_col(res: np.ndarray, rho: int) -> tuple[np.ndarray, int]:
    """res / rho as int16 mantissas on a power of two and that exponent: res_i round(2^61 / rho), below
    2^62, rounded once (lrt_frame_unit_col)."""
    val = res * fixed.div_round_s64(1 << UNIT_EXP, rho)
    sh = fixed.norm_shift_u64(int(np.max(np.abs(val))), 15)
    return np.clip(_rs(val, sh), INT16_MIN, INT16_MAX).astype(np.int16), sh - UNIT_EXP


def _frame_rotate(fr: _Frame, rank: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The new basis [Q0, w] P (_store's four parts; _empty: no live column, or all zero). Q0 enters with
    its extended mantissas and the weights round(P f0 2^-16), each w_s with its row of P. Every product
    is taken to 2^X, X = (largest live frame exponent) - 30 - FRAME_GUARD: Q0's r products summed first
    (|sum| < 2^50.5, then a left shift of at most 10 or a rounding right shift), each w_s on its own
    (|w P| < 2^45.1, shifted likewise), so the total stays below 2^62. A peak pass finds the largest
    |entry|, and the store pass forms the entries again with the weights times inv 2^-31."""
    live = ([fr.exp0] if fr.exp0 else []) + [e for e in fr.exps if e]
    if not live:
        return _empty(fr.q0.shape[0], rank)
    x = max(live) - 30 - FRAME_GUARD
    w0 = [[rshift(fr.p[j][k] * fr.f0, F_BITS) for k in range(rank)] for j in range(rank)] if fr.exp0 else None
    e0 = ext(fr.q0, fr.lo0)

    def total(inv: int | None) -> np.ndarray:
        def weights(rows: list) -> np.ndarray:
            return np.array(rows if inv is None else [[_scaled(v, inv) for v in row] for row in rows], dtype=np.int64)

        out = np.zeros((fr.q0.shape[0], rank), dtype=np.int64)
        if w0 is not None:
            out += _rs(e0 @ weights(w0), x - (_ext_exp(fr.q0, fr.exp0) - 30))
        for s, (w, e) in enumerate(zip(fr.cols, fr.exps)):
            if e:
                out += _rs(w.astype(np.int64)[:, None] * weights([fr.p[rank + s]]), x - (e - 30))
        return out

    peak = int(np.max(np.abs(total(None))))
    if peak == 0:
        return _empty(fr.q0.shape[0], rank)
    return _store(total, peak, rank, x)


def _check_batch(arr, count: int, length: int, dtype, name: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype != dtype:
        raise ArgumentError(f"{name} must be a {np.dtype(dtype).name} array, got {a.dtype}")
    if a.shape != (count, length):
        raise ArgumentError(f"{name} must have shape ({count}, {length}) (terms x the layer's size), got {a.shape}")
    return a.astype(np.int64)


def _accumulate_batch(st: State, cfg: LrtConfig, deltas, delta_exps, xs, x_exps, x_dtype, prng) -> list:
    lrt_config_check(cfg)
    if cfg.rank != st.rank:
        raise ArgumentError(f"config rank {cfg.rank} differs from the state's rank {st.rank}")
    check_c_values(st)
    dexp = [int(e) for e in np.atleast_1d(delta_exps)]
    xexp = [int(e) for e in np.atleast_1d(x_exps)]
    count = len(dexp)
    if not 1 <= count <= BATCH_MAX or len(xexp) != count:
        raise ArgumentError(f"a batch has 1..{BATCH_MAX} terms with one delta_exp and one x_exp each, "
                            f"got {count} delta_exps and {len(xexp)} x_exps")
    for name, es in (("delta_exps", dexp), ("x_exps", xexp)):
        if any(not EXP_MIN <= e <= EXP_MAX for e in es):
            raise ArgumentError(f"{name} {es} has values outside {EXP_MIN}..{EXP_MAX}")
    d = _check_batch(deltas, count, st.n, np.int8, "deltas")
    xv = _check_batch(xs, count, st.m, x_dtype, "xs")
    if cfg.unbiased and prng is None:
        raise ArgumentError("unbiased accumulation needs a PRNG (et_prng_t)")
    r = st.rank
    rng = fixed.Prng(0)
    rng.state = prng.state if cfg.unbiased else 0
    left = _frame_init(st.ql, st.lo_l, st.exp_l, st.f_l, r)
    right = _frame_init(st.qr, st.lo_r, st.exp_r, st.f_r, r)
    c_mant, c_exp, terms, skipped, out = list(st.c_mant), st.c_exp, st.terms, st.skipped, []
    for i in range(count):
        if not d[i].any() or not xv[i].any():
            terms = min(terms + 1, 0xFFFFFFFF)
            out.append("zero")
            continue
        sl = _frame_project(left, d[i], dexp[i], cfg.gs_passes)
        sr = _frame_project(right, xv[i], xexp[i], cfg.gs_passes)
        al, rho_l, ey_l, vl = _frame_coords(left, sl, r)
        ar, rho_r, ey_r, vr = _frame_coords(right, sr, r)
        if cfg.kappa_th and c_mant[0] and _kappa_discards(c_mant, c_exp, cfg.kappa_th, rho_l, ey_l, rho_r, ey_r):
            skipped = min(skipped + 1, 0xFFFFFFFF)
            out.append("skipped")
            continue
        lv, el = _align(al + [rho_l], [ey_l] * (r + 1))
        rv, er = _align(ar + [rho_r], [ey_r] * (r + 1))
        ml, mr, c_new, e_c = _core_step(c_mant, c_exp, lv, el, rv, er, cfg, rng)
        _frame_advance(left, vl, ml, sl, r)
        _frame_advance(right, vr, mr, sr, r)
        top = c_new[0]
        sh = fixed.norm_shift_u64(top, 31) if top else 0
        c_mant = [rshift(c, sh) for c in c_new[:r]] if top else [0] * r
        c_exp = e_c + sh if top else 0
        if not fixed.INT16_MIN <= c_exp <= fixed.INT16_MAX:
            raise RangeError(f"LRT c exponent {c_exp} leaves the int16 range: the inputs' exponents are extreme")
        terms = min(terms + 1, 0xFFFFFFFF)
        out.append("ok")
    if left.cols:
        new_ql, new_lol, new_el, new_fl = _frame_rotate(left, r)
        new_qr, new_lor, new_er, new_fr = _frame_rotate(right, r)
        for name, e in (("Q_L", new_el), ("Q_R", new_er)):
            if e != 0 and not BASIS_EXP_MIN <= e <= BASIS_EXP_MAX:
                raise RangeError(f"LRT {name} block exponent {e} is outside {BASIS_EXP_MIN}..{BASIS_EXP_MAX}: "
                                 "the basis lost its unit columns")
        st.ql, st.lo_l, st.exp_l, st.f_l = new_ql, new_lol, new_el, new_fl
        st.qr, st.lo_r, st.exp_r, st.f_r = new_qr, new_lor, new_er, new_fr
        st.c_mant, st.c_exp = c_mant, c_exp
    if cfg.unbiased:
        prng.state = rng.state
    before, st.terms, st.skipped = st.terms, terms, skipped
    if cfg.reorth_terms and terms < 0xFFFFFFFF and terms // cfg.reorth_terms > before // cfg.reorth_terms:
        try:
            reorthonormalize(st)
        except RangeError:  # bases far from orthonormal (never the accumulator's): left as they are
            pass
    return out


def accumulate_batch_s8(st: State, cfg: LrtConfig, deltas, delta_exps, xs, x_exps, prng=None) -> list:
    """Add the k terms deltas[t] xs[t]^T (k = len(delta_exps), 1..BATCH_MAX; deltas k x n int8 at
    2^delta_exps[t], xs k x m int8 at 2^x_exps[t]) as accumulate_s8 would one by one, except that the
    bases are rounded once, after the last term (docs/lrt.md). Returns each term's outcome."""
    return _accumulate_batch(st, cfg, deltas, delta_exps, xs, x_exps, np.int8, prng)


def accumulate_batch_u8(st: State, cfg: LrtConfig, deltas, delta_exps, xs, x_exps, prng=None) -> list:
    """As accumulate_batch_s8 with xs uint8."""
    return _accumulate_batch(st, cfg, deltas, delta_exps, xs, x_exps, np.uint8, prng)


# ---- re-orthonormalisation -------------------------------------------------------------


def _gram_q30(q: np.ndarray, lo: np.ndarray, q_exp: int, f: int, p: int) -> list | None:
    """Upper triangle of the first p columns' Gram matrix in Q30 real units (E^T E at 2^(2 (q_exp - b) + 30),
    then times f 2^-16 twice, one rounding each), or None when an entry is more than 1/(4p) from the
    identity (eigenvalues then lie in [3/4, 5/4])."""
    cols = ext(q, lo)[:, :p]
    ee = _ext_exp(q, q_exp)
    gram = cols.T @ cols  # exact: |E| <= 2^17, n <= 65535
    tol = Q30 // (4 * p)
    out = [[0] * p for _ in range(p)]
    for j in range(p):
        for k in range(j, p):
            v = rshift(int(gram[j, k]), -(2 * ee + 30))
            v = rshift(rshift(v * f, F_BITS) * f, F_BITS)
            if abs(v - (Q30 if j == k else 0)) > tol:
                return None
            out[j][k] = v
    return out


def _cholesky(a: list, p: int) -> None:
    """In place: the upper Cholesky factor R (Q30) of the Gram matrix, G = R^T R."""
    for j in range(p):
        rjj = sqrt_round(a[j][j] * Q30 - sum(a[i][j] * a[i][j] for i in range(j)))
        a[j][j] = rjj
        for k in range(j + 1, p):
            a[j][k] = fixed.div_round_s64(a[j][k] * Q30 - sum(a[i][j] * a[i][k] for i in range(j)), rjj)


def _upper_inverse(a: list, p: int) -> None:
    """In place: R (upper, Q30) becomes R^-1 (Q30), from the bottom row up."""
    for j in range(p - 1, -1, -1):
        rjj = a[j][j]
        row = {j: fixed.div_round_s64(1 << 60, rjj)}
        for k in range(j + 1, p):
            row[k] = -fixed.div_round_s64(sum(a[j][i] * a[i][k] for i in range(j + 1, k + 1)), rjj)
        for k in range(j, p):
            a[j][k] = row[k]


def _core_entry(rl: list, rr: list, c24: list, p: int, j: int, k: int) -> int:
    """Entry (j, k) of R_L diag(c) R_R^T before scaling: sum over i of round(R_L[j][i] R_R[k][i] 2^-30) c24_i."""
    return sum(rshift(rl[j][i] * rr[k][i], 30) * c24[i] for i in range(max(j, k), p))


def reorthonormalize(st: State) -> str:
    """et_lrt_reorthonormalize: the same estimate on orthonormal bases (docs/lrt.md).

    Q = Q' R on each side (Cholesky of the Gram matrix of the p columns with c_k > 0), the SVD
    of R_L diag(c) R_R^T, one rotation per basis. Returns "ok" or "empty" (nothing held: the
    state is left as it is). RangeError, with nothing changed, when Q^T Q is more than 1/(4p)
    from the identity in some entry or an exponent would leave its range.
    """
    check_c_values(st)
    r = st.rank
    p = 0
    while p < r and st.c_mant[p] != 0:
        p += 1
    if p == 0 or st.exp_l == 0 or st.exp_r == 0:
        return "empty"
    rl, rr = _gram_q30(st.ql, st.lo_l, st.exp_l, st.f_l, p), _gram_q30(st.qr, st.lo_r, st.exp_r, st.f_r, p)
    if rl is None or rr is None:
        raise RangeError(
            f"LRT bases are more than 1/(4*{p}) from orthonormal in some entry of Q^T Q: not a basis the "
            "accumulator built (it stays far closer); reset the layer instead")
    _cholesky(rl, p)
    _cholesky(rr, p)
    cs = _bitlen(st.c_mant[0]) - 24
    c24 = [rshift(int(st.c_mant[k]), cs) for k in range(p)]

    raw = [[_core_entry(rl, rr, c24, p, j, k) for k in range(p)] for j in range(p)]
    ks = _bitlen(max(abs(v) for row in raw for v in row)) - 24
    qq = max(r, 2)
    core = [[rshift(raw[j][k], ks) if j < p and k < p else 0 for k in range(qq)] for j in range(qq)]
    e_k = st.c_exp + cs - 30 + ks
    sigma, u, v = svd(core)
    _upper_inverse(rl, p)
    _upper_inverse(rr, p)
    # M_L = X_L U and M_R = X_R V over the first r rows and columns (X is zero beyond p), as the C
    def first_r(a: list) -> list:
        return [[a[j][k] if j < len(a) and k < len(a) else 0 for k in range(r)] for j in range(r)]

    ml = _matmul_q30(first_r(rl), first_r(u)) + [[0] * r]
    mr = _matmul_q30(first_r(rr), first_r(v)) + [[0] * r]
    none = _Side([], 0, np.zeros(0, dtype=np.int64), 0, 0)
    _rotate_commit(st, none, ml, none, mr, sigma, e_k)  # sigma_1 > 0: K_11 is about c_1
    return "ok"


# ---- flush ---------------------------------------------------------------------------


@dataclass
class Flush:
    """et_lrt_flush_t: what flush_begin prepared for the row calls."""

    g: list  # per column coefficient, |g| <= 2^29
    shift: int  # delta row entries = requantize(sum_k g_k QL_ik QR_jk, shift, weight)
    nonzero: int  # non-zero entries of the quantized update over all rows
    apply: int  # 1: density above rho_min, write then reset
    eta: mn.UFloat
    div_l: mn.UFloat
    div_r: mn.UFloat
    stamp: tuple = ()


@dataclass
class Norms:
    """et_lrt_norms_t: the two max-norm trackers of one layer (optimizer state, persistent)."""

    l: mn.MaxNorm = field(default_factory=mn.maxnorm_init)
    r: mn.MaxNorm = field(default_factory=mn.maxnorm_init)


def norms_init() -> Norms:
    return Norms()


def _factor_max(q: np.ndarray, q_exp: int, f: int, c_mant: list, c_exp: int) -> tuple[int, int]:
    """max |Q diag(sqrt c)| as (integer, exponent), rounded: sqrt(max_k p_k^2 c_k) with p_k column k's
    largest |mantissa| (exact, then rounded), times f 2^-16 (rounded once more)."""
    peaks = np.max(np.abs(q.astype(np.int64)), axis=0)
    v = max(int(p) * int(p) * int(c) for p, c in zip(peaks, c_mant))
    e = 2 * q_exp + c_exp
    if e % 2:
        v, e = v << 1, e - 1
    return rshift(sqrt_round(v) * f, F_BITS), e // 2


def _stamp(st: State) -> tuple:
    """The fields et_lrt_flush_t.stamp records (a changed state invalidates the flush)."""
    return (st.terms, st.skipped, st.b_eff, st.exp_l, st.exp_r, st.c_exp, st.c_mant[0])


def flush_begin(st: State, cfg: LrtConfig, norms: Norms | None) -> Flush:
    """One flush attempt: B_eff += B, max-norm, eta = eta0 sqrt(B_eff), density of the update."""
    lrt_config_check(cfg)
    if cfg.rank != st.rank:
        raise ArgumentError(f"config rank {cfg.rank} differs from the state's rank {st.rank}")
    check_c_values(st)
    if cfg.maxnorm and norms is None:
        raise ArgumentError("max-norm is on: flush_begin needs the layer's trackers (norms_init)")
    st.b_eff = min(st.b_eff + (cfg.batch_conv if st.kind == KIND_CONV else cfg.batch_dense), 0xFFFFFFFF)
    if cfg.maxnorm:
        div_l = mn.maxnorm_update(norms.l, *_factor_max(st.ql, st.exp_l, st.f_l, st.c_mant, st.c_exp))
        div_r = mn.maxnorm_update(norms.r, *_factor_max(st.qr, st.exp_r, st.f_r, st.c_mant, st.c_exp))
    else:
        div_l = div_r = mn.ufloat_make(1, 0)
    root_s = (64 - st.b_eff.bit_length()) // 2  # B_eff * 4^s in [2^62, 2^64): 31 bits of sqrt
    eta = mn.ufloat_make(cfg.eta0_q24 * sqrt_round(st.b_eff << (2 * root_s)), -24 - root_s)
    den = rshift(div_l.mant * div_r.mant, 31)
    den_exp = div_l.exp + div_r.exp + 31
    quot = [fixed.div_round_s64(eta.mant * c, den) for c in st.c_mant]
    top = max(quot)
    b = low_bits(st.rank)
    sh = max(0, top.bit_length() - (29 - 2 * b))  # the rows' products take E, 2 b bits wider than q
    g = [rshift(rshift(v, sh) * (st.f_l * st.f_r), 2 * F_BITS) for v in quot]  # the bases' scales
    shift = -(eta.exp + st.c_exp - den_exp + sh + st.exp_l + st.exp_r - 2 * b - fixed.FORMATS[fixed.FMT_WEIGHT].lsb_exp)
    fl = Flush(g, shift, 0, 0, eta, div_l, div_r)
    nonzero = int(np.count_nonzero(_delta_matrix(st, fl)))
    fl.nonzero = nonzero
    fl.apply = int(nonzero * 1000000 > cfg.rho_min_ppm * st.n * st.m)
    fl.stamp = _stamp(st)
    return fl


def _delta_matrix(st: State, fl: Flush, rows=slice(None)) -> np.ndarray:
    h = ext(st.ql, st.lo_l)[rows] * np.array(fl.g, dtype=np.int64)[None, :]
    acc = h @ ext(st.qr, st.lo_r).T
    return np.clip(rshift(acc, fl.shift), -128, 127).astype(np.int8)


def delta_row(st: State, fl: Flush, i: int) -> np.ndarray:
    """Row i of the quantized update dW (int8, m entries); the caller writes sat(W_i - dW_i)."""
    if fl.stamp != _stamp(st):
        raise StateError("delta_row: the state changed since flush_begin; call flush_begin again")
    if not 0 <= int(i) < st.n:
        raise ArgumentError(f"delta_row: row {i} is outside 0..{st.n - 1}")
    return _delta_matrix(st, fl, slice(int(i), int(i) + 1))[0]


def delta_matrix(st: State, fl: Flush) -> np.ndarray:
    """All rows at once (tests and the host; the device streams rows)."""
    if fl.stamp != _stamp(st):
        raise StateError("delta_matrix: the state changed since flush_begin")
    return _delta_matrix(st, fl)


def orthonormality_error(q: np.ndarray, lo: np.ndarray, q_exp: int, f: int) -> float:
    """max |Q^T Q - I| over the non-zero columns of a basis worth E f 2^(q_exp - 16 - b) (exact
    products, then float)."""
    qi = ext(q, lo)
    keep = np.any(qi != 0, axis=0)
    scale = float(f) * 2.0 ** (q_exp - F_BITS - low_bits(q.shape[1]))
    gram = (qi[:, keep].T @ qi[:, keep]).astype(np.float64) * scale**2
    return float(np.max(np.abs(gram - np.eye(int(keep.sum()))))) if keep.any() else 0.0


__all__ = [
    "State", "Flush", "Norms", "state_get_size", "state_init",
    "reset", "accumulate_get_buffer_size", "accumulate_s8", "accumulate_u8", "svd", "truncate",
    "flush_begin", "delta_row", "delta_matrix", "norms_init", "sqrt_round", "orthonormality_error",
    "JACOBI_SWEEPS", "KIND_DENSE", "KIND_CONV",
]


# Config names this module held before they moved to edgetrain.config: still answered, with a warning.
_MOVED = {"Config": "LrtConfig", "config_check": "lrt_config_check", "config_default": "lrt_config_default",
          "MAX_RANK": "LRT_MAX_RANK"}


__getattr__ = config_module.moved_names(__name__, _MOVED)
