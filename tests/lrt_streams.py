"""Deterministic rank-1 term streams for the LRT tests (shared by the test modules)."""
from __future__ import annotations

import numpy as np


def structured_terms(rng: np.random.Generator, n: int, m: int, count: int, *, x_signed: bool = False,
                     rank: int = 3, noise: float = 0.25, edge_every: int = 37):
    """(delta int8, x uint8/int8) pairs: a rank-`rank` signal plus noise, with edge cases mixed in.

    Every `edge_every`-th term is an edge case in rotation: zero delta, zero x, saturated
    values, a single +-1 entry, the previous term repeated, alternating extreme signs.
    """
    a = rng.normal(size=(n, rank))
    b = rng.normal(size=(m, rank))
    prev = None
    lo_x, hi_x = (-128, 127) if x_signed else (0, 255)
    xdt = np.int8 if x_signed else np.uint8
    for t in range(count):
        z = rng.normal(size=rank) * np.linspace(1.0, 0.3, rank)
        d = np.clip(np.round(a @ z * 25 + rng.normal(size=n) * 25 * noise), -128, 127).astype(np.int8)
        xr = b @ z * 40 + rng.normal(size=m) * 40 * noise
        x = np.clip(np.round(xr if x_signed else np.abs(xr)), lo_x, hi_x).astype(xdt)
        if edge_every and t % edge_every == edge_every - 1:
            kind = (t // edge_every) % 6
            if kind == 0:
                d = np.zeros(n, np.int8)
            elif kind == 1:
                x = np.zeros(m, xdt)
            elif kind == 2:
                d = np.where(rng.random(n) < 0.5, -128, 127).astype(np.int8)
                x = np.full(m, hi_x, xdt)
            elif kind == 3:
                d = np.zeros(n, np.int8)
                d[rng.integers(n)] = rng.choice([-1, 1])
                x = np.zeros(m, xdt)
                x[rng.integers(m)] = 1
            elif kind == 4 and prev is not None:
                d, x = prev
            else:
                d = np.where(np.arange(n) % 2, -128, 127).astype(np.int8)
                x = np.where(np.arange(m) % 2, lo_x, hi_x).astype(xdt)
        prev = (d, x)
        yield d, x


def random_terms(rng: np.random.Generator, n: int, m: int, count: int, x_signed: bool = False):
    """Independent uniform int8 / uint8 terms (no structure: the hardest case for the core)."""
    for _ in range(count):
        d = rng.integers(-128, 128, n).astype(np.int8)
        x = rng.integers(-128, 128, m).astype(np.int8) if x_signed else rng.integers(0, 256, m).astype(np.uint8)
        yield d, x


def exact_sum(terms, d_exp: int, x_exp: int) -> np.ndarray:
    """sum delta x^T in float64 (exact: int8 products of at most a few thousand terms)."""
    g = None
    for d, x in terms:
        t = np.outer(d.astype(np.float64), x.astype(np.float64))
        g = t if g is None else g + t
    return g * 2.0 ** (d_exp + x_exp)
