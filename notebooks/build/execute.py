"""Re-execute notebooks top to bottom, in place, as nbval will (``make outputs``).

What ``jupyter nbconvert --to notebook --execute --inplace`` does, with no per-cell timestamps and no
stored widget state, so that notebook diffs show only real changes. It drives ``nbclient`` (the library
behind nbconvert's execution) directly: nbconvert's ``ExecutePreprocessor`` runs each cell in a fresh
event loop, and with it notebook 03's ``interact`` cell never got its reply in three runs out of three
(the kernel idle, the executor waiting; cf. jupyter/nbclient#312), while one ``NotebookClient.execute``
ran the same notebook through three times out of three. Run from anywhere::

    .venv/bin/python notebooks/build/execute.py notebooks/01_maml_objective.ipynb ...

Afterwards it names the code cells whose output *as the tests compare it* differs from the committed
notebook's (cells matched by id): text outputs after ``nbval-sanitize.cfg`` (the digits of ≈ figures
masked), without images, as nbval compares them. Re-running on another machine should name none; after
an edit, the cells the edit changed. Streams are stored joined and widget views get ids made from their
cell's id, so the file itself changes only where ≈ figures and plots differ in their last digits (not
compared) and where an edit changed something.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError
from nbval.plugin import get_sanitize_patterns

CELL_TIMEOUT = 300
"""Seconds a cell may run; the slowest cell of the series takes under a minute on 2 cores."""
ATTEMPTS = 3
"""Runs, each from a fresh kernel, before a cell that exceeds ``CELL_TIMEOUT`` is an error."""
SANITIZER = Path(__file__).resolve().parents[2] / "nbval-sanitize.cfg"
NOT_COMPARED = ("image/png", "image/jpeg", "application/vnd.jupyter.widget-view+json")
"""Output types nbval 0.11 leaves out of its comparison (besides metadata, execution counts and tracebacks)."""


def compared_outputs(nb) -> list[tuple[str, str | None]]:
    """Per code cell, ``(cell id, its outputs as the tests compare them)``; ``None`` for ignored cells."""
    patterns = get_sanitize_patterns(SANITIZER.read_text())
    compared = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "NBVAL_IGNORE_OUTPUT" in cell.source:
            compared.append((cell.get("id"), None))
            continue
        pieces, last_stream = [], None
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                if out.name == last_stream:  # the kernel splits a stream into messages as timing has it
                    pieces[-1] += out.text
                else:
                    pieces.append(f"{out.name}: {out.text}")
                last_stream = out.name
                continue
            last_stream = None
            parts = [out.get("ename", ""), out.get("evalue", "")]
            parts += [v if isinstance(v, str) else "".join(v)
                      for k, v in sorted(out.get("data", {}).items()) if k not in NOT_COMPARED]
            pieces.append("\x00".join(parts))
        text = "\x01".join(pieces)
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        compared.append((cell.get("id"), text))
    return compared


def committed(path: Path):
    """The notebook as last committed to git (its stored outputs), or as it is on disk if git has none."""
    try:
        result = subprocess.run(["git", "show", f"HEAD:./{path.name}"], cwd=path.parent, capture_output=True,
                                text=True, check=False)
    except OSError:  # no git
        return nbformat.read(path, as_version=4)
    return nbformat.reads(result.stdout, as_version=4) if result.returncode == 0 else nbformat.read(path, 4)


def report_changes(path: Path, before, after) -> None:
    """Print the code cells (numbered from 0, as nbval does) whose compared output differs from ``before``."""
    old = dict(compared_outputs(before))
    changed = [i for i, (cell_id, text) in enumerate(compared_outputs(after))
               if cell_id not in old or old[cell_id] != text]
    print(f"{path}: compared output differs from the committed notebook in code cells {changed}" if changed
          else f"{path}: no compared output differs from the committed notebook")


def stable_widget_ids(nb) -> None:
    """Replace each widget view's random model id by one made from its cell's id: the file stores no widget
    state for it to point to, and a new random id in every run would show in every diff."""
    for cell in nb.cells:
        for i, out in enumerate(cell.get("outputs", [])):
            view = out.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if view is not None:
                view["model_id"] = hashlib.sha256(f"{cell.get('id')}/{i}".encode()).hexdigest()[:32]


def execute(path: Path) -> float:
    """Execute the notebook at ``path`` in its own folder with the ``python3`` kernel; return seconds.

    Prints the code cells whose compared output differs from the committed notebook's.
    """
    before = committed(path)
    for attempt in range(1, ATTEMPTS + 1):
        nb = nbformat.read(path, as_version=4)
        nb.metadata.pop("widgets", None)
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        start = time.perf_counter()
        try:
            NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=False,
                           coalesce_streams=True, resources={"metadata": {"path": str(path.parent)}}).execute()
            break
        except CellTimeoutError:
            if attempt == ATTEMPTS:
                raise
            print(f"{path}: a cell ran over {CELL_TIMEOUT} s (attempt {attempt} of {ATTEMPTS}); starting again",
                  file=sys.stderr, flush=True)
    # Widget state is needed while widgets draw (nbclient fails on interact cells without it), not in the file.
    nb.metadata.pop("widgets", None)
    stable_widget_ids(nb)
    nbformat.write(nb, path)
    seconds = time.perf_counter() - start
    report_changes(path, before, nb)
    return seconds


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: executed in {execute(Path(name)):.0f} s", flush=True)
