"""Float64 low-rank training (LRT): the same algorithm as csrc/src/lrt.c, without quantization.

This is the yardstick for the fixed-point accumulator (docs/lrt.md): same steps in the same
order (modified Gram-Schmidt, the kappa skip rule, the (r+1)x(r+1) core, one-sided Jacobi SVD,
biased or unbiased (OK) truncation, rotation of both bases), the same random signs drawn from the
same PRNG, but every quantity a float64 and no rounding to int16 / integer formats. The Jacobi
SVD here runs to convergence (float64 precision) instead of a fixed sweep count.

Conventions (lrt-paper-spec §2): state Q_L (n x r), Q_R (m x r) with orthonormal (or zero)
columns and c >= 0 (descending); the estimate of the summed gradient is Q_L diag(c) Q_R^T.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ArgumentError
from .fixed import Prng

# sigma_q below this fraction of sigma_1 counts as zero: the biased rule is exact then (spec §2.2).
ZERO_SIGMA_REL = 1e-12


@dataclass
class FloatState:
    """LRT state of one n x m layer in float64."""

    n: int
    m: int
    rank: int
    ql: np.ndarray = field(repr=False)  # n x r
    qr: np.ndarray = field(repr=False)  # m x r
    c: np.ndarray  # r, descending, >= 0
    b_eff: int = 0
    terms: int = 0
    skipped: int = 0

    def estimate(self) -> np.ndarray:
        """The current estimate of the summed gradient, Q_L diag(c) Q_R^T (n x m)."""
        return (self.ql * self.c) @ self.qr.T


def state_init(n: int, m: int, rank: int) -> FloatState:
    if not 1 <= rank <= 8:
        raise ArgumentError(f"rank {rank} is outside 1..8")
    if n < 1 or m < 1:
        raise ArgumentError(f"layer shape {n} x {m}: both dimensions must be >= 1")
    return FloatState(n, m, rank, np.zeros((n, rank)), np.zeros((m, rank)), np.zeros(rank))


def reset(st: FloatState) -> None:
    st.ql[:] = 0.0
    st.qr[:] = 0.0
    st.c[:] = 0.0
    st.b_eff = st.terms = st.skipped = 0


def sign_vector(bits: int, count: int) -> np.ndarray:
    """Signs s_t = -1 where bit t of ``bits`` is set (the C draws one u32 per mixing term)."""
    return np.where((int(bits) >> np.arange(count)) & 1, -1.0, 1.0)


def ok_split(sigma: np.ndarray) -> tuple[int, int, float]:
    """OK truncation parameters for q = r+1 sorted singular values: (p, k, s1), p 1-based.

    p is the smallest i with (q - i) * sigma_i <= sum_{j >= i} sigma_j, k = q - p, and
    s1 = sum_{j >= p} sigma_j (spec §2.2 step 5).
    """
    q = len(sigma)
    tail = np.cumsum(sigma[::-1])[::-1]  # tail[i] = sum_{j >= i} sigma_j (0-based)
    for i in range(q):
        if (q - 1 - i) * sigma[i] <= tail[i]:
            return i + 1, q - 1 - i, float(tail[i])
    raise AssertionError("unreachable: i = q always qualifies")


def truncate(sigma, rank: int, unbiased: bool, sign_bits: int = 0):
    """Rank-r truncation of sorted singular values sigma (length q = rank+1).

    Returns (p, c_new, T): p is 1-based (p = q means "no mixing"), c_new the r new singular
    values, T the q x r matrix with orthonormal columns such that the new bases are
    [Q u] U T and [Q w] V T. Biased: T = first r columns of I. Unbiased: OK (Benzing et al.),
    with the random signs taken from sign_bits (bit t set -> row t of the mixed block negated).
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    q = rank + 1
    if sigma.shape != (q,):
        raise ArgumentError(f"truncate: expected {q} singular values, got {sigma.shape}")
    if not unbiased or sigma[-1] <= ZERO_SIGMA_REL * sigma[0]:
        return q, sigma[:rank].copy(), np.eye(q)[:, :rank]
    p, k, s1 = ok_split(sigma)
    block = sigma[p - 1 :]
    x0 = np.sqrt(np.maximum(0.0, 1.0 - k * block / s1))
    v = x0.copy()
    v[0] -= 1.0
    h = np.eye(k + 1) + np.outer(v, v) / v[0]  # Householder: h e1 = x0
    xs = sign_vector(sign_bits, k + 1)[:, None] * h[:, 1:]
    t = np.zeros((q, rank))
    t[: p - 1, : p - 1] = np.eye(p - 1)
    t[p - 1 :, p - 1 :] = xs
    c_new = np.concatenate([sigma[: p - 1], np.full(k, s1 / k)])
    return p, c_new, t


def ok_error_sq(sigma) -> float:
    """The per-step squared Frobenius error of OK: s1^2 / k - sum_{j >= p} sigma_j^2 (spec §5)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    p, k, s1 = ok_split(sigma)
    return s1 * s1 / k - float(np.sum(sigma[p - 1 :] ** 2))


def jacobi_svd(c: np.ndarray, max_sweeps: int = 60, tol: float = 1e-15):
    """One-sided Jacobi SVD of a small square matrix, the rotation formulas of the C.

    Returns (sigma descending, U, V) with C = U diag(sigma) V^T; columns of U and V for zero
    singular values are zero (the accumulator's "empty slot" convention).
    """
    a = np.array(c, dtype=np.float64)
    q = a.shape[0]
    v = np.eye(q)
    for _ in range(max_sweeps):
        rotated = False
        for i in range(q - 1):
            for j in range(i + 1, q):
                alpha = a[:, i] @ a[:, i]
                beta = a[:, j] @ a[:, j]
                gamma = a[:, i] @ a[:, j]
                if gamma == 0.0 or abs(gamma) <= tol * np.sqrt(alpha * beta):
                    continue
                rotated = True
                d, g = beta - alpha, 2.0 * gamma
                t = (1.0 if d >= 0 else -1.0) * g / (abs(d) + np.hypot(d, g))
                cs = 1.0 / np.sqrt(1.0 + t * t)
                sn = cs * t
                ai, aj = a[:, i].copy(), a[:, j].copy()
                a[:, i], a[:, j] = cs * ai - sn * aj, sn * ai + cs * aj
                vi, vj = v[:, i].copy(), v[:, j].copy()
                v[:, i], v[:, j] = cs * vi - sn * vj, sn * vi + cs * vj
        if not rotated:
            break
    sigma = np.sqrt(np.sum(a * a, axis=0))
    order = np.argsort(-sigma, kind="stable")
    sigma, a, v = sigma[order], a[:, order], v[:, order]
    tiny = ZERO_SIGMA_REL * (sigma[0] if q else 0.0)
    u = np.zeros_like(a)
    for k in range(q):
        if sigma[k] <= tiny:
            sigma[k] = 0.0
            v[:, k] = 0.0
            continue
        col = a[:, k] / sigma[k]
        for j in range(k):  # modified Gram-Schmidt against the larger singular vectors
            col -= (u[:, j] @ col) * u[:, j]
        u[:, k] = col / np.linalg.norm(col)
    return sigma, u, v


def _project(q: np.ndarray, vec: np.ndarray, passes: int):
    """Modified Gram-Schmidt of vec against the columns of q; returns (coefficients, residual)."""
    res = vec.astype(np.float64).copy()
    coef = np.zeros(q.shape[1])
    for _ in range(passes):
        for j in range(q.shape[1]):
            a = q[:, j] @ res
            coef[j] += a
            res -= a * q[:, j]
    return coef, res


def accumulate(st: FloatState, delta, x, *, unbiased: bool = True, kappa_th: float = 100.0,
               gs_passes: int = 2, prng: Prng | None = None) -> str:
    """Add the rank-1 term delta x^T. Returns "ok", "zero" (a zero term) or "skipped" (kappa rule).

    kappa_th = 0 disables the skip rule. prng is needed in unbiased mode; one u32 is drawn per
    term that mixes (the same draws as the C).
    """
    delta = np.asarray(delta, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if not np.any(delta) or not np.any(x):
        st.terms += 1
        return "zero"
    a, res_l = _project(st.ql, delta, gs_passes)
    b, res_r = _project(st.qr, x, gs_passes)
    rho_l, rho_r = np.linalg.norm(res_l), np.linalg.norm(res_r)
    if kappa_th and st.c[0] > kappa_th * rho_l * rho_r:
        st.skipped += 1
        return "skipped"
    r = st.rank
    core = np.zeros((r + 1, r + 1))
    core[:r, :r] = np.diag(st.c)
    core += np.outer(np.append(a, rho_l), np.append(b, rho_r))
    sigma, u, v = jacobi_svd(core)
    bits = 0
    mixing = unbiased and sigma[-1] > ZERO_SIGMA_REL * sigma[0]
    if mixing:
        if prng is None:
            raise ArgumentError("unbiased accumulation needs a PRNG")
        bits = prng.next_u32()
    _, c_new, t = truncate(sigma, r, unbiased, bits)
    u_hat = res_l / rho_l if rho_l > 0 else np.zeros_like(res_l)
    w_hat = res_r / rho_r if rho_r > 0 else np.zeros_like(res_r)
    st.ql = np.column_stack([st.ql, u_hat]) @ (u @ t)
    st.qr = np.column_stack([st.qr, w_hat]) @ (v @ t)
    st.c = c_new
    st.terms += 1
    return "ok"


def truncate_many(sigma, rank: int, unbiased: bool, draw=None):
    """Rank-r truncation of q >= rank + 1 sorted singular values: (c_new, T), T q x rank.

    Biased: the first r (the best rank-r approximation). Unbiased: one OK step per dropped dimension
    (q -> q - 1 -> ... -> r), each with a fresh draw of signs from ``draw()`` (a u32) where it mixes;
    every step is unbiased given the one before, so the composition is (tower property). Each step
    leaves its values sorted (sigma_{p-1} > s1 / k by the choice of p), as the next one needs.
    """
    s = np.asarray(sigma, dtype=np.float64)
    t = np.eye(len(s))
    for dim in range(len(s) - 1, rank - 1, -1):
        mixing = unbiased and s[-1] > ZERO_SIGMA_REL * s[0]
        if mixing and draw is None:
            raise ArgumentError("unbiased truncation needs random draws")
        _, s, step = truncate(s, dim, unbiased, draw() if mixing else 0)
        t = t @ step
    return s, t


def project_block(q: np.ndarray, vecs: np.ndarray, passes: int = 2, round_res=None):
    """Block Gram-Schmidt of the columns of vecs (len x k) against q (len x r), then a QR of what is
    left: (coef r x k, u len x k with orthonormal columns, rfac k x k upper triangular with a
    non-negative diagonal), vecs = q coef + u rfac. round_res (the accuracy study's emulation of
    narrower formats) is applied to the residuals after each pass; None keeps them exact."""
    res = np.array(vecs, dtype=np.float64)
    coef = np.zeros((q.shape[1], res.shape[1]))
    for _ in range(passes):
        a = q.T @ res
        coef += a
        res -= q @ a
        if round_res is not None:
            res = round_res(res)
    u, rfac = np.linalg.qr(res)
    sign = np.where(np.diag(rfac) < 0, -1.0, 1.0)  # diag(rfac) >= 0: for k = 1, u = res / rho as per term
    return coef, u * sign, rfac * sign[:, None]


def batch_core(st: FloatState, deltas: np.ndarray, xs: np.ndarray, gs_passes: int = 2, round_res=None):
    """The (r + k) x (r + k) core of the estimate plus k terms, and the bases' new directions:
    L R^T + sum_t delta_t x_t^T = [Q_L U_L] core [Q_R U_R]^T (deltas k x n, xs k x m)."""
    a, u_l, r_l = project_block(st.ql, np.asarray(deltas, dtype=np.float64).T, gs_passes, round_res)
    b, u_r, r_r = project_block(st.qr, np.asarray(xs, dtype=np.float64).T, gs_passes, round_res)
    r, k = st.rank, len(deltas)
    core = np.zeros((r + k, r + k))
    core[:r, :r] = np.diag(st.c)
    core += np.vstack([a, r_l]) @ np.vstack([b, r_r]).T
    return core, u_l, u_r


def accumulate_batch(st: FloatState, deltas, xs, *, unbiased: bool = True, gs_passes: int = 2,
                     prng: Prng | None = None) -> int:
    """Add the k rank-1 terms delta_t x_t^T at once (rows of deltas, k x n, and xs, k x m): one
    rank-(r + k) core, one SVD, one truncation to rank r, one rotation of each basis. Biased, the new
    estimate is the best rank-r approximation of the old one plus the k terms; unbiased, its
    expectation is the old one plus the terms (truncate_many). Zero terms are dropped first; the
    kappa rule does not apply (it judges one term). Returns the number of terms added."""
    deltas = np.asarray(deltas, dtype=np.float64)
    xs = np.asarray(xs, dtype=np.float64)
    if deltas.ndim != 2 or xs.ndim != 2 or len(deltas) != len(xs) or deltas.shape[1] != st.n or xs.shape[1] != st.m:
        raise ArgumentError(f"accumulate_batch: deltas k x {st.n} and xs k x {st.m} expected (one row per term), "
                            f"got {deltas.shape} and {xs.shape}")
    if unbiased and prng is None:
        raise ArgumentError("unbiased accumulation needs a PRNG: pass prng=Prng(seed), or unbiased=False")
    live = np.any(deltas != 0, axis=1) & np.any(xs != 0, axis=1)
    st.terms += len(deltas)
    if not live.any():
        return 0
    core, u_l, u_r = batch_core(st, deltas[live], xs[live], gs_passes)
    sigma, u, v = jacobi_svd(core)
    c_new, t = truncate_many(sigma, st.rank, unbiased, prng.next_u32 if prng is not None else None)
    st.ql = np.column_stack([st.ql, u_l]) @ (u @ t)
    st.qr = np.column_stack([st.qr, u_r]) @ (v @ t)
    st.c = c_new
    return int(live.sum())


@dataclass
class FloatMaxNorm:
    """The paper's max-norm tracker in float64, with the integer version's constants."""

    beta: float = 1072668082 / 2**30
    eps: float = 2.0**-13
    count: int = 0
    moving: float = 2.0**-13

    def update(self, max_abs: float) -> float:
        self.count += 1
        x_max = max_abs + self.eps
        self.moving = self.beta * self.moving + (1.0 - self.beta) * x_max
        return max(x_max, self.moving / (1.0 - self.beta**self.count))


def round_half_away(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def flush(st: FloatState, *, eta0: float, batch: int, rho_min: float, norm_l: FloatMaxNorm | None,
          norm_r: FloatMaxNorm | None):
    """One flush attempt (spec §2.3). Returns (dW int64 n x m on the weight grid, apply flag).

    B_eff grows by batch; eta = eta0 * sqrt(B_eff); dW = clip(round(eta * L^ R^T / 2^-7));
    apply when count_nonzero(dW) > rho_min * n * m. The caller subtracts dW and calls reset().
    """
    st.b_eff += batch
    root_c = np.sqrt(st.c)
    lf, rf = st.ql * root_c, st.qr * root_c
    if norm_l is not None:
        lf = lf / norm_l.update(float(np.max(np.abs(lf))))
        rf = rf / norm_r.update(float(np.max(np.abs(rf))))
    eta = eta0 * np.sqrt(st.b_eff)
    dw = np.clip(round_half_away(eta * (lf @ rf.T) * 2.0**7), -128, 127).astype(np.int64)
    apply = np.count_nonzero(dw) > rho_min * st.n * st.m
    return dw, bool(apply)
