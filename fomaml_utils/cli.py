"""Argparse ``type=`` checkers for numbers, shared by the command lines (``train``, ``bench``).

Each takes the flag's text and returns the number, or raises ``argparse.ArgumentTypeError`` (or
``ValueError`` for text that is not a number), which argparse turns into a usage error naming the flag::

    parser.add_argument("--ways", type=positive_int)  # "--ways 0": invalid ... must be an integer >= 1
"""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (not ``nan``, not ``inf``)."""
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


# argparse names the type in its message ("invalid positive_int value: 'x'"); give it readable names.
positive_int.__name__ = "positive integer"
non_negative_int.__name__ = "non-negative integer"
positive_float.__name__ = "positive number"
