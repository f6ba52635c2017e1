"""Re-execute notebooks top to bottom, in place, as nbval will (``make outputs``).

What ``jupyter nbconvert --to notebook --execute --inplace`` does, with no per-cell timestamps and no
stored widget state, so that notebook diffs show only real changes. It drives ``nbclient`` (the library
behind nbconvert's execution) directly: nbconvert's ``ExecutePreprocessor`` runs each cell in a fresh
event loop, and with it notebook 03's ``interact`` cell never got its reply in three runs out of three
(the kernel idle, the executor waiting; cf. jupyter/nbclient#312), while one ``NotebookClient.execute``
ran the same notebook through three times out of three. Run from anywhere::

    .venv/bin/python notebooks/build/execute.py notebooks/01_maml_objective.ipynb ...

Afterwards it names the code cells whose output *as the tests compare it* differs from the committed
notebook's (cells matched by their code): text outputs after ``nbval-sanitize.cfg`` (the digits of ≈ figures
masked), without images, as nbval compares them. Re-running on another machine should name none; after
an edit, the cells the edit changed. Streams are stored joined and widget views get ids made from their
cell's id, so the file itself changes only where ≈ figures and plots differ in their last digits (not
compared) and where an edit changed something.
"""

from __future__ import annotations

import hashlib
import queue
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
"""Seconds a cell may run; the slowest cells of the series (notebook 03's evaluations) take about 80 s here."""
ATTEMPTS = 3
"""Runs, each from a fresh kernel, before a cell that exceeds ``CELL_TIMEOUT`` is an error."""
SANITIZER = Path(__file__).resolve().parents[2] / "nbval-sanitize.cfg"
NOT_COMPARED = ("image/png", "image/jpeg", "application/vnd.jupyter.widget-view+json")
"""Output types nbval 0.11 leaves out of its comparison (besides metadata, execution counts and tracebacks)."""


def compared_outputs(nb) -> list[tuple[str, str | None]]:
    """Per code cell, ``(its source, its outputs as the tests compare them)``; ``None`` for ignored cells."""
    patterns = get_sanitize_patterns(SANITIZER.read_text())
    compared = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "NBVAL_IGNORE_OUTPUT" in cell.source:
            compared.append((cell.source, None))
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
        compared.append((cell.source, text))
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
    old: dict[str, list] = {}
    for source, text in compared_outputs(before):
        old.setdefault(source, []).append(text)
    changed = [i for i, (source, text) in enumerate(compared_outputs(after))
               if text != (old[source].pop(0) if old.get(source) else "(a new or edited cell)")]
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


class ShortPollClient(NotebookClient):
    """A ``NotebookClient`` whose channels wait for a message at most a second at a time.

    Seen here several times at an ``interact`` cell: the kernel idle, its reply sent, and the executor still
    waiting until the cell timeout ran out, then carrying on with that reply (``executed in 331 s``, no error).
    An asyncio poll had missed the wake-up for a message that was already there; a new poll finds it at once.
    """

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        for channel in (kc.shell_channel, kc.iopub_channel):
            channel.get_msg = _in_short_polls(channel.get_msg)
        return kc


def _in_short_polls(get_msg):
    """``get_msg`` that polls for at most a second at a time until its own timeout (or forever) runs out."""
    async def get_msg_in_short_polls(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
            try:
                return await get_msg(timeout=left)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
    return get_msg_in_short_polls


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
            ShortPollClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=False,
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
