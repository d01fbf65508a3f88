"""Image transforms of the paper's online streams (lrt-paper-spec §6.2), on 28x28 images in [0, 1].

* ``elastic``: Simard et al.'s elastic distortion, (sigma, alpha) drawn from the
  paper's list ``ELASTIC``: a uniform random displacement field per axis,
  smoothed by a Gaussian of width sigma (zero outside the image), scaled by alpha.
* ``spatial`` (ST): scale log-normal with std 0.1 per axis, rotation with std
  10 degrees, shift with std 2 px.
* ``background`` (BG): contrast U[0.3, 1], offset U[0, 0.7] and a plane
  gradient whose deviation across the image is at most 0.5.
* ``white_noise`` (WN): Gaussian noise of std log-uniform in [0.03, 0.3].

Each takes a ``numpy.random.Generator``; results are clipped to [0, 1].
Sampling is bilinear with zeros outside the image.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

ELASTIC = ((1, 0), (2, 25), (2, 50), (3, 100), (3, 150), (4, 200), (4, 300), (5, 300), (5, 500), (6, 600), (7, 1200))
ST_LOG_SCALE, ST_ROTATION_DEG, ST_SHIFT_PX = 0.1, 10.0, 2.0
BG_CONTRAST, BG_OFFSET, BG_GRADIENT = (0.3, 1.0), (0.0, 0.7), 0.5
WN_SIGMA = (0.03, 0.3)


@lru_cache(maxsize=None)
def _gauss_matrix(size: int, sigma: float) -> np.ndarray:
    """The [size, size] matrix of a 1-D Gaussian filter (truncated at 4 sigma, zero outside)."""
    radius = int(4 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    g = np.zeros((size, size))
    for i in range(size):
        for k, t in enumerate(taps):
            j = i + k - radius
            if 0 <= j < size:
                g[i, j] = t
    return g


def sample(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at (rows, cols), zero outside."""
    h, w = image.shape
    padded = np.zeros((h + 2, w + 2))
    padded[1:-1, 1:-1] = image
    r = np.clip(rows + 1, 0, h + 1 - 1e-9)
    c = np.clip(cols + 1, 0, w + 1 - 1e-9)
    r0, c0 = np.floor(r).astype(int), np.floor(c).astype(int)
    fr, fc = r - r0, c - c0
    r1, c1 = np.minimum(r0 + 1, h + 1), np.minimum(c0 + 1, w + 1)
    return ((1 - fr) * (1 - fc) * padded[r0, c0] + (1 - fr) * fc * padded[r0, c1]
            + fr * (1 - fc) * padded[r1, c0] + fr * fc * padded[r1, c1])


def elastic(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma, alpha = ELASTIC[rng.integers(len(ELASTIC))]
    h, w = image.shape
    fields = rng.uniform(-1.0, 1.0, (2, h, w))
    if alpha == 0:
        return image
    gh, gw = _gauss_matrix(h, float(sigma)), _gauss_matrix(w, float(sigma))
    dy, dx = (alpha * (gh @ f @ gw.T) for f in fields)
    rows, cols = np.mgrid[0:h, 0:w]
    return np.clip(sample(image, rows + dy, cols + dx), 0.0, 1.0)


def spatial(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sy, sx = np.exp(rng.normal(0.0, ST_LOG_SCALE, 2))
    angle = np.deg2rad(rng.normal(0.0, ST_ROTATION_DEG))
    ty, tx = rng.normal(0.0, ST_SHIFT_PX, 2)
    h, w = image.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    rows, cols = np.mgrid[0:h, 0:w]
    y, x = rows - cy - ty, cols - cx - tx  # output pixel -> source pixel: invert shift, rotation, scale
    cos, sin = np.cos(angle), np.sin(angle)
    src_y = (cos * y - sin * x) / sy + cy
    src_x = (sin * y + cos * x) / sx + cx
    return np.clip(sample(image, src_y, src_x), 0.0, 1.0)


def background(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    contrast = rng.uniform(*BG_CONTRAST)
    offset = rng.uniform(*BG_OFFSET)
    h, w = image.shape
    gy, gx = rng.uniform(-1.0, 1.0, 2)
    rows, cols = np.mgrid[0:h, 0:w]
    plane = gy * (rows / (h - 1) - 0.5) + gx * (cols / (w - 1) - 0.5)  # spans at most |gy| + |gx| <= 2
    plane *= BG_GRADIENT / 2
    return np.clip(image * contrast + offset + plane, 0.0, 1.0)


def white_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = np.exp(rng.uniform(np.log(WN_SIGMA[0]), np.log(WN_SIGMA[1])))
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0.0, 1.0)


TRANSFORMS = {"ST": spatial, "BG": background, "WN": white_noise}


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
