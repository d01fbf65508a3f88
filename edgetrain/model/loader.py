"""Resolve a ``--model`` argument: a preset name or a .etm model file.

Every command that takes a model (run, plan, verify-commit, ...) calls
``load_model`` so that presets and files behave the same everywhere.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ArgumentError
from .description import Model
from .presets import PRESETS, preset


def load_model(spec: str, seed: int = 0) -> Model:
    """A preset initialised from ``seed``, or the model stored in a .etm file."""
    if spec in PRESETS:
        return preset(spec, seed)
    path = Path(spec)
    if path.suffix == ".etm" or path.exists():
        if not path.is_file():
            raise ArgumentError(f"model file {spec!r} does not exist: give a .etm path or a preset ({', '.join(PRESETS)})")
        from . import etm

        return etm.load(path).model
    raise ArgumentError(f"unknown model {spec!r}: use a preset ({', '.join(PRESETS)}) or a .etm file")
