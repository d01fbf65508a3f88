"""Image transforms of the paper's online streams (lrt-paper-spec §6.2).

* ``elastic`` (the online pool's augmentation): Simard et al.'s elastic distortion of uint8
  images, deterministic and seeded per (seed, index). Each image gets a displacement field
  of independent uniform values in [-1, 1] per pixel and axis, smoothed by a Gaussian of
  standard deviation sigma (zero beyond the edges), scaled by alpha pixels, then the image is
  resampled at the displaced positions with bilinear interpolation (zero outside the image).
  The paper's generator smooths a (28, 28, 1) field, so its Gaussian also runs along the
  channel axis of length 1 with zero padding, which multiplies the field by the kernel's
  centre weight 1/(sqrt(2 pi) sigma); the same factor is applied here, so that alpha means
  what it means there (sigma 4, alpha 300 moves pixels by about one pixel, rms). The pair
  (sigma, alpha) is drawn uniformly from the paper's list; (1, 0) leaves the image as it is.
  The draws come from ``numpy.random.default_rng((seed, index))``: the augmented image of a
  given (seed, index) is the same in every run and on every platform, whatever the batch it
  is computed in.
* The shift scenario's transforms on 28x28 float images in [0, 1], each taking a
  ``numpy.random.Generator`` and clipping to [0, 1] (bilinear sampling, zeros outside):
  ``spatial`` (ST): scale log-normal with std 0.1 per axis, rotation with std 10 degrees,
  shift with std 2 px; ``background`` (BG): contrast U[0.3, 1], offset U[0, 0.7] and a plane
  gradient whose deviation across the image is at most 0.5; ``white_noise`` (WN): Gaussian
  noise of std log-uniform in [0.03, 0.3].

    >>> from edgetrain.data import augment, mnist
    >>> images, labels = mnist.load("test")
    >>> batch = augment.elastic(images[:500], seed=0, first_index=0)   # uint8, same shape
"""
from __future__ import annotations

import numpy as np

from ..errors import ArgumentError

#: (sigma, alpha) pairs the generator draws from, uniformly (lrt-paper-spec §6.2).
SIGMA_ALPHA = ((1, 0), (2, 25), (2, 50), (3, 100), (3, 150), (4, 200), (4, 300), (5, 300), (5, 500), (6, 600),
               (7, 1200))
TRUNCATE = 4.0  # the Gaussian kernel reaches 4 sigma on each side
ST_LOG_SCALE, ST_ROTATION_DEG, ST_SHIFT_PX = 0.1, 10.0, 2.0
BG_CONTRAST, BG_OFFSET, BG_GRADIENT = (0.3, 1.0), (0.0, 0.7), 0.5
WN_SIGMA = (0.03, 0.3)


def _kernel(sigma: float) -> np.ndarray:
    radius = int(TRUNCATE * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _smooth(field: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a (N, H, W) array over H, W and a unit channel axis, zero beyond the edges."""
    k = _kernel(sigma)
    r = len(k) // 2
    out = field
    for axis in (1, 2):
        pad = [(0, 0)] * 3
        pad[axis] = (r, r)
        padded = np.pad(out, pad)
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for i, w in enumerate(k):
            acc += w * np.take(padded, np.arange(i, i + n), axis=axis)
        out = acc
    return out * k[r]  # the channel axis of length 1


def _resample(images: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Bilinear sample of each (H, W) image at (y + dy, x + dx); zero outside."""
    n, h, w = images.shape
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    y = yy[None] + dy
    x = xx[None] + dx
    y0 = np.floor(y).astype(np.int64)
    x0 = np.floor(x).astype(np.int64)
    fy = y - y0
    fx = x - x0
    src = np.pad(images.astype(np.float64), ((0, 0), (1, 1), (1, 1)))  # a zero border
    idx = np.arange(n)[:, None, None]

    def at(yi, xi):
        inside = (yi >= -1) & (yi <= h) & (xi >= -1) & (xi <= w)
        return np.where(inside, src[idx, np.clip(yi + 1, 0, h + 1), np.clip(xi + 1, 0, w + 1)], 0.0)

    return ((1 - fy) * (1 - fx) * at(y0, x0) + (1 - fy) * fx * at(y0, x0 + 1)
            + fy * (1 - fx) * at(y0 + 1, x0) + fy * fx * at(y0 + 1, x0 + 1))


def elastic(images: np.ndarray, seed: int, first_index: int = 0) -> np.ndarray:
    """The elastically augmented copies of ``images`` ((N, 28, 28) or (N, 28, 28, 1) uint8).

    Image ``i`` of the batch is distorted with the draws of stream ``(seed, first_index + i)``.
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[3] != 1):
        raise ArgumentError(f"elastic takes (N, H, W) or (N, H, W, 1) uint8 images, not {arr.dtype} {arr.shape}: "
                            "pass the arrays edgetrain.data.mnist.load returns")
    if seed < 0 or first_index < 0:
        raise ArgumentError(f"seed {seed} and first_index {first_index} must be non-negative")
    flat = arr.reshape(arr.shape[:3])
    n, h, w = flat.shape
    fields = np.empty((n, 2, h, w))
    choice = np.empty(n, dtype=np.int64)
    for i in range(n):
        rng = np.random.default_rng((seed, first_index + i))
        choice[i] = rng.integers(len(SIGMA_ALPHA))
        fields[i] = rng.uniform(-1.0, 1.0, size=(2, h, w))
    out = flat.astype(np.float64)
    for c, (sigma, alpha) in enumerate(SIGMA_ALPHA):
        sel = np.nonzero(choice == c)[0]
        if alpha == 0 or sel.size == 0:
            continue
        dy = alpha * _smooth(fields[sel, 0], sigma)
        dx = alpha * _smooth(fields[sel, 1], sigma)
        out[sel] = _resample(flat[sel], dy, dx)
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8).reshape(arr.shape)


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
    return np.clip(_resample(image[None], (src_y - rows)[None], (src_x - cols)[None])[0], 0.0, 1.0)


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
