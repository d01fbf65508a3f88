"""float64 statement of low-rank gradient approximation (docs/lga.md), for property tests of the
integer version (csrc/src/lga.c, reference/lga.py): the same operations on real numbers, with no
rounding but float64's. Values are real (a factor entry A[o][k] is ``a_int * 2^-15``).
"""
from __future__ import annotations

import numpy as np


def project(b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """u = B x."""
    return np.asarray(x, dtype=np.float64) @ np.asarray(b, dtype=np.float64).T


def correct(a: np.ndarray, u: np.ndarray, z: np.ndarray) -> np.ndarray:
    """z + A u."""
    return np.asarray(z, dtype=np.float64) + np.asarray(u, dtype=np.float64) @ np.asarray(a, dtype=np.float64).T


def grads(a: np.ndarray, b: np.ndarray, delta: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dL/dA = sum_t delta_t (B x_t)^T and dL/dB = sum_t (A^T delta_t) x_t^T, for terms delta [T, n], x [T, m]."""
    d = np.asarray(delta, dtype=np.float64)
    xv = np.asarray(x, dtype=np.float64)
    return d.T @ (xv @ b.T), (d @ a).T @ xv


def merged(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W + A B (real values of the effective weights)."""
    return np.asarray(w, dtype=np.float64) + a @ b


class Adam:
    """Adam in Kingma and Ba's efficient form: alpha_t = lr sqrt(1 - b2^t) / (1 - b1^t),
    theta -= alpha_t m / (sqrt(v) + eps)."""

    def __init__(self, shape, lr: float, beta1: float, beta2: float, eps: float):
        self.m = np.zeros(shape)
        self.v = np.zeros(shape)
        self.t = 0
        self.lr, self.b1, self.b2, self.eps = lr, beta1, beta2, eps

    def moments(self, g: np.ndarray) -> None:
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g

    def update(self) -> np.ndarray:
        """The step subtracted from theta for the current moments."""
        alpha = self.lr * np.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
        return alpha * self.m / (np.sqrt(self.v) + self.eps)


def normed_update(direction: np.ndarray, lr: float, divisor: float) -> np.ndarray:
    """The max-normed step lr * d / divisor (divisor: the max-norm tracker's output)."""
    return lr * np.asarray(direction, dtype=np.float64) / divisor
