"""Measure how much each ≈ figure of a notebook varies: run it under several numeric settings, tabulate.

A figure printed by ``fomaml_utils.companions.approx.approx`` comes from training or from scoring near-ties,
so its last digits differ between CPUs. Its tolerance must cover that spread. This script executes each notebook
given once per setting of ``SETTINGS`` below (each changes float results on an x86-64 CPU the way another
CPU would; ``python -m fomaml_utils.tools.portability`` shows that they do), collects every ≈ figure, and
writes a Markdown table (``notebooks/build/spread-<notebook>.md``): each figure's line, its value under each setting,
the middle of the range and its half-width. ``notebooks/build/tolerances.md`` gives the rule that turns these
tables into the expected values and tolerances written in the notebooks. Widget cells are left out of the runs.
Run from the repository root (about ten minutes for notebooks 02 and 03)::

    .venv/bin/python notebooks/build/spread.py notebooks/02_first_order_maml.ipynb notebooks/03_fomaml_mnist.ipynb
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from fomaml_utils.tools.portability import NUMERIC_VARIABLES

SETTINGS: dict[str, dict[str, str]] = {
    "as installed": {},
    "ATEN=default": {"ATEN_CPU_CAPABILITY": "default"},
    "CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "CBWR=AVX2": {"MKL_CBWR": "AVX2"},
    "ATEN=default CBWR=COMPATIBLE": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
    "ATEN=default CBWR=AVX2": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AVX2"},
}
"""Settings that give six different bit patterns on an AMD EPYC with AVX-512 (checked with the probe); the first
three are those of the portability check (``fomaml_utils.tools.portability.SETTINGS``)."""

FIGURE = re.compile(r"≈([-+]?[0-9][0-9.,]*(?:e[-+]?[0-9]+)?)")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def figures(path: Path) -> list[tuple[int, str, float]]:
    """``[(code cell index, line, value)]`` for every ≈ figure in the notebook's outputs, in order."""
    nb = json.loads(path.read_text())
    found = []
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for index, cell in enumerate(code_cells):
        text = ""
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                text += "".join(out["text"])
            elif "data" in out:
                text += "".join(out["data"].get("text/plain", ""))
        for line in text.splitlines():
            for match in FIGURE.finditer(line):
                found.append((index, line.strip(), float(match.group(1).replace(",", ""))))
    return found


def is_widget_cell(cell: dict) -> bool:
    """Widget cells print no figure, and nbclient sometimes waits minutes on them: the runs leave them out."""
    return bool(re.search(r"\binteract(_manual)?\(", "".join(cell["source"])))


def kept_code_cells(notebook: Path) -> list[int]:
    """The index (among code cells, as nbval counts) of each code cell the runs keep."""
    code = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    return [i for i, c in enumerate(code) if not is_widget_cell(c)]


def run(notebook: Path, setting: str, workdir: Path) -> Path:
    """Execute a copy of ``notebook`` under ``setting`` in ``workdir`` (one level below the root)."""
    copy = workdir / f"{notebook.stem}--{setting.replace(' ', '_').replace('=', '-')}.ipynb"
    nb = json.loads(notebook.read_text())
    nb["cells"] = [c for c in nb["cells"] if not is_widget_cell(c)]
    copy.write_text(json.dumps(nb))
    env = {k: v for k, v in os.environ.items() if k not in NUMERIC_VARIABLES}
    env.update(SETTINGS[setting])
    subprocess.run([sys.executable, str(HERE / "execute.py"), str(copy)], env=env, check=True)
    return copy


def table(notebook: Path, runs: dict[str, Path]) -> str:
    measured = {setting: figures(path) for setting, path in runs.items()}
    first = next(iter(measured.values()))
    lines = [f"# Spread of the ≈ figures of `{notebook.name}`", "",
             "Values under each numeric setting of `notebooks/build/spread.py` on one machine. cell: the code cell",
             "(numbered from 0, as nbval does); mid: the middle of the range; half: half its width.", "",
             "| cell | figure | " + " | ".join(runs) + " | mid | half |",
             "|---" * (len(runs) + 4) + "|"]
    original = kept_code_cells(notebook)
    for i, (cell, line, _) in enumerate(first):
        cell = original[cell]
        values = [measured[s][i][2] if i < len(measured[s]) else float("nan") for s in runs]
        low, high = min(values), max(values)
        lines.append(f"| {cell} | {line[:90].replace('|', '/')} | " + " | ".join(f"{v:g}" for v in values)
                     + f" | {(low + high) / 2:.4g} | {(high - low) / 2:.3g} |")
    return "\n".join(lines) + "\n"


def main(paths: list[str]) -> None:
    workdir = ROOT / f".spread-{os.getpid()}"
    workdir.mkdir(exist_ok=True)
    try:
        for name in paths:
            notebook = Path(name).resolve()
            runs = {setting: run(notebook, setting, workdir) for setting in SETTINGS}
            out = HERE / f"spread-{notebook.stem}.md"
            out.write_text(table(notebook, runs))
            print(f"wrote {out.relative_to(ROOT)}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
