"""The C core through cffi: ``lib`` and ``ffi`` plus a checked-call helper.

Import this module (not ``edgetrain._core`` directly) so that a missing or
stale build gives an error that says how to fix it.
"""
from __future__ import annotations

from .errors import EdgetrainError, raise_for_status

try:
    from ._core import ffi, lib
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "edgetrain's C core (edgetrain._core) is not built: run `pip install -e .` "
        "(or `make install`) in the source tree; a C compiler is needed"
    ) from exc

__all__ = ["ffi", "lib", "call", "library_path", "EdgetrainError"]


def call(fn_name: str, *args, **extra):
    """Call ``lib.<fn_name>(*args)`` and raise the typed exception on failure."""
    status = getattr(lib, fn_name)(*args)
    if status != 0:
        shown = ", ".join(repr(a) if not isinstance(a, ffi.CData) else "<ptr>" for a in args)
        raise_for_status(status, f"{fn_name}({shown})", **extra)
    return status


def library_path() -> str:
    """The file of the built C core (edgetrain bench reads which instruction-set copies it holds)."""
    import sys

    return sys.modules[f"{__package__}._core"].__file__  # loaded by the import of lib above
