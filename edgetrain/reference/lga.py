"""NumPy twin of csrc/src/lga.c: low-rank gradient approximation (docs/lga.md).

``et_lga_<op>`` is ``<op>`` here. A state holds A (int16 [n, r]) and B
(int16 [r, m]) at LSB 2^-15, and the optimizer's states on them only; the
layer computes z = W x + A (B x), the optimizer steps on A and B, and
``merge_row`` folds A B into W. Every rounding is the one of the C, on whole
arrays; the tests compare the two with ``==``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import config as config_module
from ..config import LGA_ADAM, LGA_MAX_RANK, LGA_MOMENTUM, LGA_RESTART_REDRAW_B, LGA_SGD, LgaConfig, lga_config_check
from ..errors import ArgumentError
from . import fixed, layers, maxnorm

FACTOR_EXP, U_EXP, G_EXP = -15, -10, -24
HEADER_BYTES = 64
Q30 = 1 << 30
CORRECT_SHIFT, MERGE_SHIFT = 13, 23
I16_MIN, I16_MAX = -(1 << 15), (1 << 15) - 1
I32_MAX = (1 << 31) - 1


def _a8(n: int) -> int:
    return (n + 7) & ~7


def _dims_check(n: int, m: int, rank: int, optimizer: int) -> None:
    if not (0 < n < 1 << 16 and 0 < m < 1 << 16):
        raise ArgumentError(f"lga layer {n} x {m}: both sizes must be 1..65535")
    if not 1 <= rank <= LGA_MAX_RANK:
        raise ArgumentError(f"lga rank {rank} is outside 1..{LGA_MAX_RANK}")
    if optimizer not in (LGA_SGD, LGA_MOMENTUM, LGA_ADAM):
        raise ArgumentError(f"lga optimizer {optimizer} is unknown")


def state_get_size(n: int, m: int, rank: int, optimizer: int) -> int:
    """Bytes of a state (et_lga_state_get_size)."""
    _dims_check(n, m, rank, optimizer)
    nr, rm = n * rank, rank * m
    total = HEADER_BYTES + _a8(2 * nr) + _a8(2 * rm)
    if optimizer != LGA_SGD:
        total += _a8(4 * nr) + _a8(4 * rm)
    if optimizer == LGA_ADAM:
        total += _a8(8 * nr) + _a8(8 * rm)
    return total


def grad_get_buffer_size(n: int, m: int, rank: int) -> int:
    """Bytes of the gradient scratch (et_lga_grad_get_buffer_size)."""
    _dims_check(n, m, rank, LGA_SGD)
    return _a8(8 * n * rank) + _a8(8 * rank * m) + _a8(8 * rank) + _a8(2 * rank)


@dataclass
class State:
    n: int
    m: int
    rank: int
    optimizer: int
    a: np.ndarray  # int16 [n, r]
    b: np.ndarray  # int16 [r, m]
    mu_a: np.ndarray | None = None  # int32 (momentum, Adam)
    mu_b: np.ndarray | None = None
    nu_a: np.ndarray | None = None  # uint64 (Adam)
    nu_b: np.ndarray | None = None
    steps: int = 0
    samples: int = 0
    beta1_pow: int = Q30
    beta2_pow: int = Q30
    merges: int = 0
    norm_a: maxnorm.MaxNorm = field(default_factory=maxnorm.maxnorm_init)
    norm_b: maxnorm.MaxNorm = field(default_factory=maxnorm.maxnorm_init)
    ga: np.ndarray | None = field(default=None, repr=False)  # the gradient sums (the C scratch)
    gb: np.ndarray | None = field(default=None, repr=False)


def _draw_b(st: State, prng: fixed.Prng) -> None:
    s = min(I16_MAX, fixed.div_round_s64(1 << 15, fixed.isqrt_u64(st.m)))
    words = np.array([prng.next_u32() for _ in range(st.rank * st.m)], dtype=np.uint64)
    st.b = np.where(words >> np.uint64(31), -s, s).astype(np.int16).reshape(st.rank, st.m)


def _clear(st: State) -> None:
    st.a = np.zeros((st.n, st.rank), dtype=np.int16)
    if st.optimizer != LGA_SGD:
        st.mu_a = np.zeros((st.n, st.rank), dtype=np.int32)
        st.mu_b = np.zeros((st.rank, st.m), dtype=np.int32)
    if st.optimizer == LGA_ADAM:
        st.nu_a = np.zeros((st.n, st.rank), dtype=np.uint64)
        st.nu_b = np.zeros((st.rank, st.m), dtype=np.uint64)
    st.steps = st.samples = 0
    st.beta1_pow = st.beta2_pow = Q30
    st.norm_a, st.norm_b = maxnorm.maxnorm_init(), maxnorm.maxnorm_init()


def state_init(n: int, m: int, config: LgaConfig, prng: fixed.Prng) -> State:
    """A fresh state: A = 0, B drawn from prng, states zero (et_lga_state_init)."""
    lga_config_check(config)
    _dims_check(n, m, config.rank, config.optimizer)
    st = State(n, m, config.rank, config.optimizer, np.zeros((n, config.rank), np.int16),
               np.zeros((config.rank, m), np.int16))
    _clear(st)
    _draw_b(st, prng)
    return st


def _check_x_exp(x_exp: int) -> None:
    if not -16 <= x_exp <= 0:
        raise ArgumentError(f"x_exp {x_exp} is outside -16..0")


def project(st: State, x, x_exp: int) -> np.ndarray:
    """u = B x at LSB 2^-10, int16 (et_lga_project). x: [m] or [T, m] rows."""
    _check_x_exp(x_exp)
    xv = np.asarray(x, dtype=np.int64)
    acc = xv @ st.b.astype(np.int64).T
    return fixed.saturate_s64(fixed.round_shift_s64(acc, 5 - x_exp), I16_MIN, I16_MAX).astype(np.int16)


def correct(st: State, u, z, clips: dict | None = None) -> np.ndarray:
    """z + A u in the pre-activation format (et_lga_correct). u: [r] or [T, r]; z: [n] or [T, n].

    clips (layers.CLIP_FIELDS dict or None): clamped sums are counted as "pre"."""
    acc = np.asarray(u, dtype=np.int64) @ st.a.astype(np.int64).T
    out = np.asarray(z, dtype=np.int64) + fixed.round_shift_s64(acc, CORRECT_SHIFT)
    layers.count_clips(clips, "pre", (out < I16_MIN) | (out > I16_MAX))
    return fixed.saturate_s64(out, I16_MIN, I16_MAX).astype(np.int16)


def grad_zero(st: State) -> None:
    st.ga = np.zeros((st.n, st.rank), dtype=np.int64)
    st.gb = np.zeros((st.rank, st.m), dtype=np.int64)


def grad_add(st: State, delta, x, x_exp: int) -> None:
    """Add the terms (delta [T, n] int8, x [T, m]) to the sums: gA += delta u^T, gB += (A^T delta) x^T."""
    d = np.asarray(delta, dtype=np.int64).reshape(-1, st.n)
    xv = np.asarray(x, dtype=np.int64).reshape(-1, st.m)
    u = project(st, xv, x_exp).astype(np.int64)
    st.ga += d.T @ u
    v = d @ st.a.astype(np.int64)  # [T, r]
    st.gb += v.T @ xv


def _to_g(g: np.ndarray, g_exp: int) -> np.ndarray:
    return fixed.saturate_s64(fixed.round_shift_s64(g, G_EXP - g_exp), -I32_MAX, I32_MAX).astype(np.int64)


def _first_moment(mu: np.ndarray, g: np.ndarray, b1: int) -> np.ndarray:
    return fixed.round_shift_s64(b1 * mu.astype(np.int64) + (Q30 - b1) * g, 30).astype(np.int32)


def _mul_q30(x: np.ndarray, b: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.uint64)
    hi = (x >> np.uint64(32)).astype(np.int64)
    lo = (x & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return (hi * b * 4 + fixed.round_shift_s64(lo * b, 30)).astype(np.uint64)


def isqrt_u64_array(x: np.ndarray) -> np.ndarray:
    """floor(sqrt(x)) for uint64 x < 2^62, exactly (float estimate, then integer correction)."""
    x = np.asarray(x, dtype=np.uint64)
    s = np.floor(np.sqrt(x.astype(np.float64))).astype(np.int64)
    xi = x.astype(np.int64)
    for _ in range(3):
        s = np.where(s * s > xi, s - 1, s)
        s = np.where((s + 1) * (s + 1) <= xi, s + 1, s)
    return s


def _normed_step(theta: np.ndarray, direction: np.ndarray, mn: maxnorm.MaxNorm, c: LgaConfig) -> np.ndarray:
    dmax = int(np.abs(direction).max())
    if dmax == 0:
        return theta
    div = maxnorm.maxnorm_update(mn, dmax, G_EXP)
    d = np.asarray(maxnorm.maxnorm_scale(direction.reshape(-1), G_EXP, c.lr, c.lr_exp + 3, div, fixed.FMT_BIAS),
                   dtype=np.int64).reshape(theta.shape)
    return fixed.saturate_s64(theta.astype(np.int64) - d, I16_MIN, I16_MAX).astype(np.int16)


def _adam(theta, mu, nu, g, c: LgaConfig, alpha: int, alpha_exp: int):
    s = FACTOR_EXP - alpha_exp
    mu = _first_moment(mu, g, c.beta1_q30)
    g2 = (g * g).astype(np.uint64)
    nu = _mul_q30(nu, c.beta2_q30) + _mul_q30(g2, Q30 - c.beta2_q30)
    den = (isqrt_u64_array(nu) + c.eps) << s
    q = np.asarray(fixed.div_round_s64(alpha * mu.astype(np.int64).reshape(-1), den.reshape(-1)), dtype=np.int64)
    theta = fixed.saturate_s64(theta.astype(np.int64) - q.reshape(theta.shape), I16_MIN, I16_MAX).astype(np.int16)
    return theta, mu, nu


def _check_match(st: State, c: LgaConfig) -> None:
    lga_config_check(c)
    if c.rank != st.rank or c.optimizer != st.optimizer:
        raise ArgumentError(f"lga config (rank {c.rank}, optimizer {c.optimizer}) does not match the state "
                            f"(rank {st.rank}, optimizer {st.optimizer})")


def step(st: State, c: LgaConfig, x_exp: int) -> None:
    """One optimizer step on A and B from the gradient sums (et_lga_step)."""
    _check_match(st, c)
    _check_x_exp(x_exp)
    ga, gb = _to_g(st.ga, -17), _to_g(st.gb, -22 + x_exp)
    st.steps = min(st.steps + 1, 0xFFFFFFFF)
    if c.optimizer == LGA_SGD:
        st.a = _normed_step(st.a, ga, st.norm_a, c)
        st.b = _normed_step(st.b, gb, st.norm_b, c)
    elif c.optimizer == LGA_MOMENTUM:
        st.mu_a = _first_moment(st.mu_a, ga, c.beta1_q30)
        st.mu_b = _first_moment(st.mu_b, gb, c.beta1_q30)
        st.a = _normed_step(st.a, st.mu_a.astype(np.int64), st.norm_a, c)
        st.b = _normed_step(st.b, st.mu_b.astype(np.int64), st.norm_b, c)
    else:
        st.beta1_pow = fixed.round_shift_s64(st.beta1_pow * c.beta1_q30, 30)
        st.beta2_pow = fixed.round_shift_s64(st.beta2_pow * c.beta2_q30, 30)
        c1, c2 = Q30 - st.beta1_pow, Q30 - st.beta2_pow
        q = fixed.div_round_s64(c.lr * fixed.isqrt_u64(c2 << 30), c1)
        k = max(0, q.bit_length() - 30)
        alpha = fixed.round_shift_s64(q, k)
        st.a, st.mu_a, st.nu_a = _adam(st.a, st.mu_a, st.nu_a, ga, c, alpha, c.lr_exp + k)
        st.b, st.mu_b, st.nu_b = _adam(st.b, st.mu_b, st.nu_b, gb, c, alpha, c.lr_exp + k)


def merge(st: State, alpha_shift: int, w: np.ndarray, clips: dict | None = None) -> np.ndarray:
    """The merged weights, all rows (et_lga_merge_row row by row): sat8(W + round_shift(A B, 23 - alpha_shift)).

    clips (layers.CLIP_FIELDS dict or None): clamped cells are counted as "weight"."""
    if not 0 <= alpha_shift <= 15:
        raise ArgumentError(f"alpha_shift {alpha_shift} is outside 0..15")
    ab = st.a.astype(np.int64) @ st.b.astype(np.int64)
    out = np.asarray(w, dtype=np.int64) + fixed.round_shift_s64(ab, MERGE_SHIFT - alpha_shift)
    layers.count_clips(clips, "weight", (out < -128) | (out > 127))
    return fixed.saturate_s64(out, -128, 127).astype(np.int8)


def restart(st: State, c: LgaConfig, prng: fixed.Prng) -> None:
    """A = 0, states reset, merges += 1; B redrawn with LGA_RESTART_REDRAW_B (et_lga_restart)."""
    _check_match(st, c)
    _clear(st)
    st.merges = min(st.merges + 1, 0xFFFFFFFF)
    if c.restart == LGA_RESTART_REDRAW_B:
        _draw_b(st, prng)


# Config names this module held before they moved to edgetrain.config: still answered, with a warning.
_MOVED = {"Config": "LgaConfig", "config_check": "lga_config_check", "lr_pair": "lga_lr_pair",
          "FIELDS": "LGA_FIELDS", "MAX_RANK": "LGA_MAX_RANK", "OPTIMIZERS": "LGA_OPTIMIZERS",
          "RESTARTS": "LGA_RESTARTS", "SGD": "LGA_SGD", "MOMENTUM": "LGA_MOMENTUM", "ADAM": "LGA_ADAM",
          "RESTART_ZERO_A": "LGA_RESTART_ZERO_A", "RESTART_REDRAW_B": "LGA_RESTART_REDRAW_B",
          "BETA_MAX": "LGA_BETA_MAX", "LR_EXP_MIN": "LGA_LR_EXP_MIN", "LR_EXP_MAX": "LGA_LR_EXP_MAX"}


__getattr__ = config_module.moved_names(__name__, _MOVED)
