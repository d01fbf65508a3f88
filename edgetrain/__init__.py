"""edgetrain: on-device training for microcontrollers whose weights live in NVM.

The C core (csrc/) is compiled into ``edgetrain._core`` at install time;
``edgetrain.reference`` is its NumPy twin, bit for bit.
"""
from __future__ import annotations

from pathlib import Path

from .errors import (
    ArgumentError,
    CorruptError,
    EdgetrainError,
    NoMemoryError,
    NvmIOError,
    RangeError,
    StateError,
    UnsupportedError,
    VersionError,
    WornCellsError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Session",
    "RunResult",
    "TaskOptions",
    "TrainConfig",
    "LrtConfig",
    "LgaConfig",
    "include_dir",
    "ArgumentError",
    "CorruptError",
    "EdgetrainError",
    "NoMemoryError",
    "NvmIOError",
    "RangeError",
    "StateError",
    "UnsupportedError",
    "VersionError",
    "WornCellsError",
]


def include_dir() -> str:
    """Folder holding the public C headers (``#include "edgetrain/edgetrain.h"``).

    An installed package carries its own copy; a source checkout uses csrc/include.
    """
    here = Path(__file__).resolve().parent
    shipped = here / "include"
    if (shipped / "edgetrain" / "edgetrain.h").is_file():
        return str(shipped)
    source = here.parent / "csrc" / "include"
    if (source / "edgetrain" / "edgetrain.h").is_file():
        return str(source)
    raise FileNotFoundError(
        "edgetrain's C headers are missing from this installation; reinstall with `pip install edgetrain`"
    )


def __getattr__(name: str):
    """The session API (it loads the compiled core) and the config classes, imported on first use."""
    if name in ("Session", "RunResult"):
        from . import session

        return getattr(session, name)
    if name in ("TrainConfig", "LrtConfig", "LgaConfig"):
        from . import config

        return getattr(config, name)
    if name == "TaskOptions":
        from .tasks import TaskOptions

        return TaskOptions
    raise AttributeError(f"module 'edgetrain' has no attribute {name!r}")
