"""The adaptation scenarios (docs/experiments.md; lrt-paper-spec §6.2 and §6.4).

A task turns a labelled image set into a seeded online stream and may act on
the device between samples:

* ``control``: the images in a seeded order, pass after pass (a fresh order
  each pass); with ``augment`` each is elastically augmented as in the paper's
  online pool (off by default: the shipped model was trained on plain MNIST,
  so the control stream keeps its offline statistics);
* ``shifts``: the stream cut into 10 equal blocks, each with one setting of the
  schedule ``SHIFT_SCHEDULE`` (CD, ST, BG, WN and their combinations; CD
  clusters the block's classes: each sample's rank is its class's place in a
  random order of the 10 classes plus N(0, cd_spread / 10), or with probability
  cd_epsilon uniform, and the block streams in rank order; the others
  transform the images);
* ``drift-analog`` / ``drift-digital``: the control stream while the stored
  weights drift every ``every`` samples (edgetrain.physics): device physics,
  not writes (no count, energy or wear; stuck bits stay put).

Everything is drawn from the run's seed, never from the backend, so the same
seed gives the same stream and the same drift on every backend and memory map.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import physics
from .data import augment
from .errors import ArgumentError
from .model.presets import hash_u64

ORDER_STREAM = 0xDA7A  # hash stream of the data order (the weights use streams 1, 2, ...)
AUGMENT_STREAM = 0xA06  # per-sample transform draws
CLUSTER_STREAM = 0xC1D  # class clustering draws, per block
DRIFT_STREAM = 0xD21F  # the drift draws
TASKS = ("control", "shifts", "drift-analog", "drift-digital")
SHIFT_SCHEDULE = (("CD",), ("ST",), ("BG",), ("WN",), ("ST", "WN"), ("ST", "BG"), ("BG", "WN"), ("ST", "BG", "WN"),
                  ("CD", "ST", "BG", "WN"), ())


@dataclass(frozen=True)
class TaskOptions:
    """Magnitudes of the scenarios; defaults are the paper's (lrt-paper-spec §6.2)."""

    augment: bool = False  # elastic augmentation of every streamed image (off: the offline data were not augmented)
    block: int = 0  # shifts: samples per block; 0 = a tenth of the run
    cd_spread: float = 1.0  # class clustering: spread of a class around its centre
    cd_epsilon: float = 0.3  # class clustering: probability of a uniform rank
    drift_every: int = physics.EVERY  # d: samples between drift applications
    sigma0: float = physics.SIGMA0  # analog drift strength
    p0: float = physics.P0  # digital drift strength
    digital_mode: str = "bernoulli"  # or "reference" (the reference code's Binomial(2, p) quirk)

    def check(self) -> "TaskOptions":
        if self.block < 0:
            raise ArgumentError(f"task option block {self.block} must be >= 0 (0: a tenth of the run)")
        if not self.cd_spread >= 0 or not 0 <= self.cd_epsilon <= 1:
            raise ArgumentError(f"task options cd_spread >= 0 and cd_epsilon in [0, 1] (got {self.cd_spread}, {self.cd_epsilon})")
        if self.drift_every < 1:
            raise ArgumentError(f"task option drift_every {self.drift_every} must be >= 1 sample")
        if not self.sigma0 >= 0 or not 0 <= self.p0 / (1e6 / self.drift_every) <= 1:
            raise ArgumentError(f"task options sigma0 >= 0 and p0 / (1e6 / drift_every) in [0, 1] (got {self.sigma0}, {self.p0})")
        if self.digital_mode not in ("bernoulli", "reference"):
            raise ArgumentError(f"task option digital_mode must be 'bernoulli' or 'reference', got {self.digital_mode!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def stream_order(n_total: int, seed: int, pass_index: int = 0) -> np.ndarray:
    """The seeded order of one pass over the images: a permutation from a portable hash."""
    return np.argsort(hash_u64(seed, ORDER_STREAM + pass_index, n_total), kind="stable")


class Stream:
    """The samples of one run of ``task`` over (images, labels): ``sample(k)`` and ``after_step(k, backend)``."""

    def __init__(self, task: str, images: np.ndarray, labels: np.ndarray, samples: int, seed: int,
                 options: TaskOptions | None = None):
        if task not in TASKS:
            raise ArgumentError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
        self.task, self.images, self.labels, self.seed = task, images, labels, seed
        self.options = (options or TaskOptions()).check()
        n = len(images)
        passes = -(-samples // n)
        self.indices = np.concatenate([stream_order(n, seed, p) for p in range(passes)])[:samples]
        self.block = (self.options.block or max(1, -(-samples // len(SHIFT_SCHEDULE)))) if task == "shifts" else 0
        if task == "shifts":
            self._cluster_blocks()
        self.drift = {"drift-analog": "analog", "drift-digital": "digital"}.get(task)
        self._drift_rng = np.random.default_rng([seed, DRIFT_STREAM]) if self.drift else None
        self.drift_changes = 0

    def setting(self, k: int) -> tuple[str, ...]:
        """The shift setting of sample k (shifts: its block's; other tasks: none)."""
        if not self.block:
            return ()
        return SHIFT_SCHEDULE[min(k // self.block, len(SHIFT_SCHEDULE) - 1)]

    def _cluster_blocks(self) -> None:
        """CD: within each block that enables it, order the samples by a noisy rank around their class centre."""
        o = self.options
        for b, setting in enumerate(SHIFT_SCHEDULE):
            lo = b * self.block
            hi = len(self.indices) if b == len(SHIFT_SCHEDULE) - 1 else min(len(self.indices), lo + self.block)
            if "CD" not in setting or lo >= hi:
                continue
            rng = np.random.default_rng([self.seed, CLUSTER_STREAM, b])
            centres = rng.permutation(10).astype(np.float64)  # the classes' places in the block, one apart
            part = self.indices[lo:hi]
            keys = centres[self.labels[part]] + rng.normal(0.0, o.cd_spread / 10, len(part))
            uniform = rng.random(len(part)) < o.cd_epsilon
            keys[uniform] = rng.uniform(-0.5, 9.5, int(uniform.sum()))
            self.indices[lo:hi] = part[np.argsort(keys, kind="stable")]

    def sample(self, k: int) -> tuple[np.ndarray, int]:
        """Sample k of the stream: (uint8 image, label)."""
        index = int(self.indices[k])
        image, label = self.images[index], int(self.labels[index])
        transforms = [t for t in self.setting(k) if t != "CD"]
        if self.options.augment:  # the draws of stream (seed, k): the same image on every backend and run
            image = augment.elastic(image[None], self.seed, k)[0]
        if not transforms:
            return image, label
        rng = np.random.default_rng([self.seed, AUGMENT_STREAM, k])
        x = image.astype(np.float64) / 255.0
        for name in transforms:
            x = augment.TRANSFORMS[name](x, rng)
        return augment.to_uint8(x), label

    def after_step(self, k: int, backend) -> None:
        """Device physics after sample k: drift every ``drift_every`` samples (drift tasks)."""
        if self.drift is None or (k + 1) % self.options.drift_every:
            return
        o = self.options
        for _, weights, stuck in backend.stored_weights():
            if self.drift == "analog":
                self.drift_changes += physics.analog_drift(weights, self._drift_rng, o.sigma0, o.drift_every, stuck)
            else:
                self.drift_changes += physics.digital_drift(weights, self._drift_rng, o.p0, o.drift_every,
                                                            o.digital_mode, stuck)
