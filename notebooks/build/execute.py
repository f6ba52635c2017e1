"""Re-execute notebooks top to bottom, in place, as nbval will (``make outputs``).

Equivalent to ``jupyter nbconvert --to notebook --execute --inplace`` with no per-cell timestamps and
no stored widget state, so that notebook diffs show only real changes. Run from anywhere::

    .venv/bin/python notebooks/build/execute.py notebooks/01_maml_objective.ipynb ...
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor


def execute(path: Path) -> float:
    """Execute the notebook at ``path`` in its own folder with the ``python3`` kernel; return seconds."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    start = time.perf_counter()
    ExecutePreprocessor(timeout=1800, kernel_name="python3", record_timing=False).preprocess(
        nb, {"metadata": {"path": str(path.parent)}})
    # Widget state is needed while widgets draw (nbclient fails on interact cells without it), not in the file.
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: executed in {execute(Path(name)):.0f} s", flush=True)
