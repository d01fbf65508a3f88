"""The NumPy twin of the C core: one module per C file, same function names.

``et_round_shift_s64`` in csrc/src/fixed.c is ``reference.fixed.round_shift_s64``
here, and so on. Twin and C must agree bit for bit; tests/ compares them.
"""
from . import fixed

__all__ = ["fixed"]
