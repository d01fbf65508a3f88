"""Where the emulator's commands get their models.

The emulator has two built-in synthetic models (random int8 weights, fixed
seed) that exercise the commit on small conv and dense tensors. ``load_model``
looks a name up in ``MODEL_SOURCES`` first and otherwise resolves it as every
command does (a preset name or a .etm file: edgetrain.model.loader).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from edgetrain.model.loader import load_model as edgetrain_load_model
from edgetrain.model import Activation, Layer, LayerKind, Model, Padding, Shape
from edgetrain.model.validate import check_model
from edgetrain.reference.fixed import FMT_ACT, FMT_BIAS, FMT_INPUT


def _rand(rng, *shape, dtype=np.int8, lo=-100, hi=100):
    return rng.integers(lo, hi, shape, dtype=dtype)


def sim_tiny(seed: int = 0) -> Model:
    """8x8x1 -> conv3x3 (4) -> pool -> flatten (36) -> dense 36->10 -> head: 396 weight bytes."""
    rng = np.random.default_rng(seed)
    return Model("sim-tiny", [
        Layer(LayerKind.CONV2D, Shape(8, 8, 1, FMT_INPUT), Shape(6, 6, 4, FMT_ACT), "conv", Activation.RELU,
              Padding.VALID, 3, 1, _rand(rng, 4, 3, 3, 1), _rand(rng, 4, dtype=np.int16)),
        Layer(LayerKind.MAXPOOL2, Shape(6, 6, 4, FMT_ACT), Shape(3, 3, 4, FMT_ACT), "pool"),
        Layer(LayerKind.FLATTEN, Shape(3, 3, 4, FMT_ACT), Shape(1, 1, 36, FMT_ACT), "flatten"),
        Layer(LayerKind.DENSE, Shape(1, 1, 36, FMT_ACT), Shape(1, 1, 10, FMT_BIAS), "fc", Activation.NONE,
              alpha_shift=3, weights=_rand(rng, 10, 36), bias=_rand(rng, 10, dtype=np.int16)),
        Layer(LayerKind.SOFTMAX_CE, Shape(1, 1, 10, FMT_BIAS), Shape(1, 1, 10, FMT_BIAS), "head"),
    ])


def sim_small(seed: int = 0) -> Model:
    """12x12x1 -> conv (8) -> conv (8) -> pool -> dense 128->32 -> dense 32->10: 5,064 weight bytes."""
    rng = np.random.default_rng(seed)
    return Model("sim-small", [
        Layer(LayerKind.CONV2D, Shape(12, 12, 1, FMT_INPUT), Shape(10, 10, 8, FMT_ACT), "conv1", Activation.RELU,
              Padding.VALID, 3, 1, _rand(rng, 8, 3, 3, 1), _rand(rng, 8, dtype=np.int16)),
        Layer(LayerKind.CONV2D, Shape(10, 10, 8, FMT_ACT), Shape(8, 8, 8, FMT_ACT), "conv2", Activation.RELU,
              Padding.VALID, 3, 4, _rand(rng, 8, 3, 3, 8), _rand(rng, 8, dtype=np.int16)),
        Layer(LayerKind.MAXPOOL2, Shape(8, 8, 8, FMT_ACT), Shape(4, 4, 8, FMT_ACT), "pool"),
        Layer(LayerKind.FLATTEN, Shape(4, 4, 8, FMT_ACT), Shape(1, 1, 128, FMT_ACT), "flatten"),
        Layer(LayerKind.DENSE, Shape(1, 1, 128, FMT_ACT), Shape(1, 1, 32, FMT_ACT), "fc1", Activation.RELU,
              alpha_shift=4, weights=_rand(rng, 32, 128), bias=_rand(rng, 32, dtype=np.int16)),
        Layer(LayerKind.DENSE, Shape(1, 1, 32, FMT_ACT), Shape(1, 1, 10, FMT_BIAS), "fc2", Activation.NONE,
              alpha_shift=3, weights=_rand(rng, 10, 32), bias=_rand(rng, 10, dtype=np.int16)),
        Layer(LayerKind.SOFTMAX_CE, Shape(1, 1, 10, FMT_BIAS), Shape(1, 1, 10, FMT_BIAS), "head"),
    ])


MODEL_SOURCES: dict[str, Callable[[], Model]] = {"sim-tiny": sim_tiny, "sim-small": sim_small}


def load_model(name: str) -> Model:
    """A model by name: the emulator's synthetic models, then edgetrain's presets or a .etm file."""
    if name in MODEL_SOURCES:
        model = MODEL_SOURCES[name]()
    else:
        model = edgetrain_load_model(name)
    check_model(model)
    return model
