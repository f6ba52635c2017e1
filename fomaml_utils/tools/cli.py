"""What the command lines (``train``, ``bench``) share: argparse checkers for numbers, and output files.

Each number checker takes the flag's text and returns the number, or raises ``argparse.ArgumentTypeError``
(or ``ValueError`` for text that is not a number), which argparse turns into a usage error naming the flag::

    parser.add_argument("--ways", type=positive_int)  # "--ways 0": invalid ... must be an integer >= 1

``check_writable_folder`` is for before the work starts, ``write_text_atomically`` and
``write_json_atomically`` (strict JSON: no bare ``NaN``) for after it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


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


def seed(text: str) -> int:
    """An integer from 0 to 2**64 - 1, the seeds ``torch.manual_seed`` accepts (``seeding.MAX_SEED``)."""
    from fomaml_utils.seeding import MAX_SEED  # imports torch; the caller has already

    value = int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**64 - 1 = {MAX_SEED}, got {value}")
    return value


# argparse names the type in its message ("invalid positive_int value: 'x'"); give it readable names.
positive_int.__name__ = "positive integer"
non_negative_int.__name__ = "non-negative integer"
positive_float.__name__ = "positive number"
seed.__name__ = "non-negative integer"


def check_writable_folder(folder: Path, flag: str) -> None:
    """Create ``folder`` (with its parents) and write and delete a file in it, so that a run learns before it
    starts whether its results can be saved. Raises ``ValueError`` naming ``flag`` and the folder if not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        file = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        reason = f"{str(file)!r} is a file, not a folder" if file else error.strerror or error
        raise ValueError(f"cannot write to {flag} {str(folder)!r}: {reason}; choose a folder you can write to") from None


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it: ``path`` is whole or untouched."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN or infinite float, in nested dicts and lists, replaced by ``None``.

    JSON has no NaN: ``json.dumps`` would write a bare ``NaN`` that strict readers refuse. A non-finite
    number in our results means "undefined" (the confidence interval of a single task), so it is ``null``.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write_json_atomically(path: Path, value: Any) -> None:
    """Write ``value`` as strict JSON (non-finite numbers as ``null``, see ``finite_or_none``), atomically."""
    write_text_atomically(path, json.dumps(finite_or_none(value), indent=1, allow_nan=False) + "\n")
