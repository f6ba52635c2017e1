"""Re-execute notebooks top to bottom, in place, as nbval will (``make outputs``).

What ``jupyter nbconvert --to notebook --execute --inplace`` does, with no per-cell timestamps and no
stored widget state, so that notebook diffs show only real changes. It drives ``nbclient`` (the library
behind nbconvert's execution) directly: nbconvert's ``ExecutePreprocessor`` runs each cell in a fresh
event loop, and with it notebook 03's ``interact`` cell never got its reply in three runs out of three
(the kernel idle, the executor waiting; cf. jupyter/nbclient#312), while one ``NotebookClient.execute``
ran the same notebook through three times out of three. Run from anywhere::

    .venv/bin/python notebooks/build/execute.py notebooks/01_maml_objective.ipynb ...
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError

CELL_TIMEOUT = 300
"""Seconds a cell may run; the slowest cell of the series takes under a minute on 2 cores."""
ATTEMPTS = 3
"""Runs, each from a fresh kernel, before a cell that exceeds ``CELL_TIMEOUT`` is an error."""


def execute(path: Path) -> float:
    """Execute the notebook at ``path`` in its own folder with the ``python3`` kernel; return seconds."""
    for attempt in range(1, ATTEMPTS + 1):
        nb = nbformat.read(path, as_version=4)
        nb.metadata.pop("widgets", None)
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        start = time.perf_counter()
        try:
            NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=False,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            break
        except CellTimeoutError:
            if attempt == ATTEMPTS:
                raise
            print(f"{path}: a cell ran over {CELL_TIMEOUT} s (attempt {attempt} of {ATTEMPTS}); starting again",
                  file=sys.stderr, flush=True)
    # Widget state is needed while widgets draw (nbclient fails on interact cells without it), not in the file.
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: executed in {execute(Path(name)):.0f} s", flush=True)
