"""Resolve a ``--model`` argument: a preset name, a shipped pretrained model, or a .etm model file.

Every command that takes a model (run, plan, verify-commit, ...) calls
``load_model`` so that presets and files behave the same everywhere.

Pretrained models ship inside the package (``edgetrain/model/pretrained/``,
written only by ``tools/pretrain.py --ship``): ``mcu-cnn-pretrained`` is the
``mcu-cnn`` preset trained on MNIST with quantization-aware training
(docs/export.md). Loading one needs neither TensorFlow nor a download.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import ArgumentError
from .description import LayerKind, Model
from .presets import PRESETS, preset

# name -> file in edgetrain/model/pretrained/
PRETRAINED = {"mcu-cnn-pretrained": "mcu-cnn.etm"}
MODEL_NAMES = (*PRESETS, *PRETRAINED)


def pretrained_path(name: str) -> Path:
    """The shipped .etm file of a pretrained model."""
    if name not in PRETRAINED:
        raise ArgumentError(f"unknown pretrained model {name!r}: choose one of {', '.join(PRETRAINED)}")
    path = Path(str(resources.files("edgetrain.model").joinpath("pretrained", PRETRAINED[name])))
    if not path.is_file():
        raise ArgumentError(f"pretrained model {name!r}: {path} is missing from this installation "
                            "(reinstall edgetrain, or regenerate it with tools/pretrain.py --ship)")
    return path


def load_model(spec: str, seed: int = 0) -> Model:
    """A preset initialised from ``seed``, a shipped pretrained model, or the model stored in a .etm file."""
    if spec in PRESETS:
        return preset(spec, seed)
    from . import etm

    if spec in PRETRAINED:
        return etm.load(pretrained_path(spec)).model
    path = Path(spec)
    if path.suffix == ".etm" or path.exists():
        if not path.is_file():
            raise ArgumentError(f"model file {spec!r} does not exist: give a .etm path or a model name ({', '.join(MODEL_NAMES)})")
        return etm.load(path).model
    raise ArgumentError(f"unknown model {spec!r}: use a preset ({', '.join(PRESETS)}), a pretrained model "
                        f"({', '.join(PRETRAINED)}) or a .etm file")


def has_bn_statistics(model: Model) -> bool:
    """Whether the model's batch norms carry statistics (a trained or exported model) rather than
    the zeros of a fresh one. Such a model runs with ``bn_warm``: the device uses the stored
    statistics at once and continues their moving averages while it trains (docs/layers.md)."""
    for layer in model.layers:
        if layer.kind == LayerKind.BATCHNORM and layer.bn is not None and np.any(np.asarray(layer.bn)[2:] != 0):
            return True
    return False
