"""Argument types the commands share (argparse ``type=`` callables).

Each checks one option's value when the command line is parsed, before any work, and refuses a bad
value with a message that says what is wrong and what to give instead; argparse turns it into
``edgetrain COMMAND: error: argument --opt: ...`` and exit status 2.
"""
from __future__ import annotations

import argparse
import math
import re
from typing import Callable

from ..outputs import check_output_dir, check_output_file
from ..errors import EdgetrainError

LR_ONE = 2**24  # learning rates are stored with 24 fractional bits (reference.train)


def checked(parse: Callable, name: str | None = None) -> Callable:
    """``parse`` as an argparse type: the typed edgetrain errors it raises become argparse errors."""

    def convert(text: str):
        try:
            return parse(text)
        except EdgetrainError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name or getattr(parse, "__name__", "value")
    return convert


def int_range(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer in lo..hi (no upper bound when hi is None)."""
    span = f"{lo}..{hi}" if hi is not None else f">= {lo}"

    def convert(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer; give an integer {span}") from None
        if hi is None and value < lo:
            raise argparse.ArgumentTypeError(f"{value} is below {lo}; give an integer {span}")
        if hi is not None and not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {span}; give an integer in {span}")
        return value

    convert.__name__ = "integer"
    return convert


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a decimal number such as 0.01") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; give a decimal number such as 0.01")
    return value


def positive_number(text: str) -> float:
    """A finite number > 0."""
    value = _finite(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0")
    return value


def non_negative_number(text: str) -> float:
    """A finite number >= 0."""
    value = _finite(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def fraction(text: str) -> float:
    """A finite number in [0, 1]."""
    value = _finite(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} must lie in [0, 1]")
    return value


def learning_rate(text: str) -> float:
    """A rate in [0, 1] that keeps a non-zero value when stored with 24 fractional bits (or is 0)."""
    value = fraction(text)
    if value > 0 and round(value * LR_ONE) == 0:
        raise argparse.ArgumentTypeError(f"{value} rounds to 0 in the device's 24 fractional bits; "
                                         f"give 0 (no update) or at least 2^-24 = {2**-24:.3g}")
    return value


def int_list(text: str) -> str:
    """Comma-separated integers, at least one: '4,4,2,8' (returned as given; the command reads it)."""
    try:
        if not text.strip():
            raise ValueError
        [int(p.strip(), 10) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated integers, e.g. 4,4,2,8") from None
    return text


def c_identifier(text: str) -> str:
    """A C identifier: a letter or underscore, then letters, digits and underscores."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a C identifier; use a letter or _, then letters, digits and _")
    return text


def output_file(text: str) -> str:
    """A file path a report can be written to (checked now, before the command works)."""
    return str(checked(check_output_file)(text))


def output_file_or_stdout(text: str) -> str:
    """'-' (stdout) or a writable file path."""
    return text if text == "-" else output_file(text)


def output_dir(text: str) -> str:
    """A folder (existing, or creatable) files can be written into."""
    return str(checked(check_output_dir)(text))
