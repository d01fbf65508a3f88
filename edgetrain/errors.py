"""Typed exceptions, one per C status code (csrc/include/edgetrain/et_status.h).

The C core returns a negative status; ``raise_for_status`` turns it into the
matching exception. The NumPy twin raises the same exceptions for the same
inputs, so callers handle both backends alike.
"""
from __future__ import annotations


class EdgetrainError(Exception):
    """Base class of every error edgetrain raises on purpose."""

    status = None  # the C status code this class stands for
    name = "ET_ERR_UNKNOWN"


class ArgumentError(EdgetrainError, ValueError):
    """An argument is missing, out of its documented range, or inconsistent."""

    status = -1
    name = "ET_ERR_ARG"


class NoMemoryError(EdgetrainError, MemoryError):
    """The caller's buffer is smaller than the planned size.

    ``required_bytes`` holds the size that would have fitted, when known.
    """

    status = -2
    name = "ET_ERR_NOMEM"

    def __init__(self, message: str, required_bytes: int | None = None):
        super().__init__(message)
        self.required_bytes = required_bytes


class CorruptError(EdgetrainError):
    """Stored data fails its checks (magic, CRC, offsets)."""

    status = -3
    name = "ET_ERR_CORRUPT"


class VersionError(EdgetrainError):
    """Stored data has a format version this build does not read."""

    status = -4
    name = "ET_ERR_VERSION"


class RangeError(EdgetrainError, ValueError):
    """A value does not fit the numeric format it must be stored in."""

    status = -5
    name = "ET_ERR_RANGE"


class NvmIOError(EdgetrainError, OSError):
    """The NVM HAL reported a failed program or erase."""

    status = -6
    name = "ET_ERR_IO"


class UnsupportedError(EdgetrainError, NotImplementedError):
    """A valid request this build does not implement."""

    status = -7
    name = "ET_ERR_UNSUPPORTED"


class StateError(EdgetrainError, RuntimeError):
    """The call is not allowed in the object's current state."""

    status = -8
    name = "ET_ERR_STATE"


class WornCellsError(EdgetrainError):
    """Verify-after-write found NVM cells that no longer take a value."""

    status = -9
    name = "ET_ERR_WORN"


BY_STATUS = {
    cls.status: cls
    for cls in (
        ArgumentError,
        NoMemoryError,
        CorruptError,
        VersionError,
        RangeError,
        NvmIOError,
        UnsupportedError,
        StateError,
        WornCellsError,
    )
}

# What a user can do about each status, appended to the caller's message.
HINTS = {
    -1: "check the argument against its documented range",
    -2: "give a buffer at least as large as the plan (edgetrain plan)",
    -3: "the stored data is damaged; restore it from a known-good copy",
    -4: "write the data with this version of edgetrain or upgrade the reader",
    -5: "the value does not fit its numeric format; see docs/numerics.md",
    -6: "the NVM device failed a program or erase; check the HAL",
    -7: "this build does not support the request",
    -8: "call the functions in the documented order",
    -9: "NVM cells are worn out; see the wear report",
}


def raise_for_status(status: int, what: str, **extra) -> None:
    """Raise the exception for a negative C status; return for ET_OK.

    ``what`` says what was attempted and with which values, e.g.
    ``"et_div_trunc_s64(5, 0)"``; the message adds the status name and a hint.
    """
    if status == 0:
        return
    cls = BY_STATUS.get(status, EdgetrainError)
    hint = HINTS.get(status, "unexpected status")
    message = f"{what} failed with {cls.name} ({status}): {hint}"
    if cls is NoMemoryError:
        raise NoMemoryError(message, extra.get("required_bytes"))
    error = cls(message)
    if cls is EdgetrainError:
        error.status = status
    raise error
