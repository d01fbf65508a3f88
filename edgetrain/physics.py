"""Weight drift physics of NVM cells (LRT spec §6.2): analog Gaussian drift and digital bit-flip drift.

Both act on stored int8 weights (LSB 2^-7, offset-binary bit order for the
digital case) in place, seeded by a ``numpy.random.Generator``. Drift is
physics, not a write: it changes NVM contents directly, bypassing the HAL, so
it never counts as a programmed write, a bit flip in the write figures,
energy or wear. Stuck (worn) bits do not drift. The paper applies drift every
``d`` = 10 samples with the per-application strength scaled by 10^6/d.

Analog: each weight q gets q + N(0, σ) with σ = σ₀ / sqrt(10^6 / d) in real
units (σ₀ = 10, so 0.0316 = 4.05 LSB per application), rounded to the nearest
integer and clipped to [-128, 127] (the weight range [-1, 1)). The reference
keeps float weights between drift steps, so sub-LSB drift accumulates there;
stored int8 weights round at every step (rounding noise has zero mean).

Digital: each of the 8 bits of the offset-binary code u = q + 128 flips with
p = p₀ / (10^6 / d) (p₀ = 10, so 1e-4 per application). In offset binary
and two's complement the bits differ only by an inverted MSB, so flipping bit
k of u flips bit k of the stored byte. mode="bernoulli" (default) flips each
bit independently with probability p, the model the paper describes.
mode="reference" reproduces the reference code's quirk: per bit a count
b_k ~ Binomial(2, p) is drawn, the integer sum Σ b_k 2^k (which can carry
into the next bit) is XORed into u and the result clipped to 0..255, which
makes each bit flip with about 2p.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import ArgumentError

SIGMA0 = 10.0
P0 = 10.0
EVERY = 10  # d: samples between drift applications
WEIGHT_SCALE = 128  # 1 / LSB of the weight format


def _check(weights: np.ndarray, stuck: np.ndarray | None) -> None:
    if not isinstance(weights, np.ndarray) or weights.dtype != np.int8 or not weights.flags.writeable:
        raise ArgumentError("drift needs a writable int8 NumPy array of stored weights (e.g. a view of the NVM)")
    if stuck is not None and (stuck.shape != weights.shape or stuck.dtype != np.uint8):
        raise ArgumentError(f"stuck mask must be uint8 of shape {weights.shape}, got {stuck.dtype} {stuck.shape}")


def _store(weights: np.ndarray, new_bytes: np.ndarray, stuck: np.ndarray | None) -> int:
    old = weights.view(np.uint8)
    if stuck is not None:
        new_bytes = (new_bytes & ~stuck) | (old & stuck)
    changed = int(np.count_nonzero(new_bytes != old))
    old[...] = new_bytes
    return changed


def _finite_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def analog_drift(weights: np.ndarray, rng: np.random.Generator, sigma0: float = SIGMA0, every: int = EVERY,
                 stuck: np.ndarray | None = None) -> int:
    """Apply one analog drift step in place; returns the number of weights that changed."""
    _check(weights, stuck)
    if not (_finite_number(sigma0) and sigma0 >= 0) or not _count(every):
        raise ArgumentError(f"sigma0 must be a finite number >= 0 and every an integer >= 1 (got {sigma0!r}, {every!r})")
    sigma_lsb = sigma0 / math.sqrt(1e6 / every) * WEIGHT_SCALE
    noisy = weights.astype(np.float64) + rng.normal(0.0, sigma_lsb, weights.shape)
    new = np.clip(np.rint(noisy), -128, 127).astype(np.int8).view(np.uint8)
    return _store(weights, new, stuck)


def digital_drift(weights: np.ndarray, rng: np.random.Generator, p0: float = P0, every: int = EVERY,
                  mode: str = "bernoulli", stuck: np.ndarray | None = None) -> int:
    """Apply one bit-flip drift step in place; returns the number of weights that changed."""
    _check(weights, stuck)
    if not _finite_number(p0) or not _count(every):
        raise ArgumentError(f"p0 must be a finite number and every an integer >= 1 (got {p0!r}, {every!r})")
    p = p0 / (1e6 / every)
    if not 0 <= p <= 1:
        raise ArgumentError(f"flip probability p0 / (1e6 / every) must lie in [0, 1] (got {p})")
    u = weights.view(np.uint8).astype(np.int32) ^ 0x80  # offset binary
    weights_of_bits = 1 << np.arange(8)
    if mode == "bernoulli":
        flips = rng.random(weights.shape + (8,)) < p
        mask = (flips * weights_of_bits).sum(axis=-1)
        new_u = u ^ mask
    elif mode == "reference":
        counts = rng.binomial(2, p, weights.shape + (8,))
        mask = (counts * weights_of_bits).sum(axis=-1)
        new_u = np.clip(u ^ mask, 0, 255)
    else:
        raise ArgumentError(f"digital drift mode must be 'bernoulli' or 'reference', got {mode!r}")
    new = (new_u ^ 0x80).astype(np.uint8)
    return _store(weights, new, stuck)


DRIFT_KINDS = {"analog": analog_drift, "digital": digital_drift}
