"""Measure how much each ≈ figure of a notebook varies: run it under several numeric settings, tabulate.

A figure printed by ``fomaml_utils.approx.approx`` comes from training or from scoring near-ties, so its last
digits differ between CPUs. Its tolerance must cover that spread. This script executes each notebook
given once per setting of ``SETTINGS`` below (each changes float results on an x86-64 CPU the way another
CPU would; ``python -m fomaml_utils.portability`` shows that they do), collects every ≈ figure, and writes a
Markdown table: the figure's line, its value under each setting, the mid-range and the half-range. The tolerances in the notebooks' generators are set
from these tables (``notebooks/build/spread-*.md``). Run from the repository root, about 15 minutes::

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

SETTINGS: dict[str, dict[str, str]] = {
    "as installed": {},
    "ATEN=default": {"ATEN_CPU_CAPABILITY": "default"},
    "CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "CBWR=AVX2": {"MKL_CBWR": "AVX2"},
    "ATEN=default CBWR=COMPATIBLE": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
    "ATEN=default CBWR=AVX2": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AVX2"},
}
"""Settings that give six different bit patterns on an AMD EPYC with AVX-512 (checked with the probe)."""

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


def run(notebook: Path, setting: str, workdir: Path) -> Path:
    """Execute a copy of ``notebook`` under ``setting`` in ``workdir`` (one level below the root)."""
    copy = workdir / f"{notebook.stem}--{setting.replace(' ', '_').replace('=', '-')}.ipynb"
    nb = json.loads(notebook.read_text())
    # Widget cells print no figure, and nbclient sometimes waits minutes on them: leave them out.
    nb["cells"] = [c for c in nb["cells"] if not re.search(r"\binteract(_manual)?\(", "".join(c["source"]))]
    copy.write_text(json.dumps(nb))
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")}
    env.update(SETTINGS[setting])
    subprocess.run([sys.executable, str(HERE / "execute.py"), str(copy)], env=env, check=True)
    return copy


def table(notebook: Path, runs: dict[str, Path]) -> str:
    measured = {setting: figures(path) for setting, path in runs.items()}
    first = next(iter(measured.values()))
    lines = [f"# Spread of the ≈ figures of `{notebook.name}`", "",
             "Values under each numeric setting of `notebooks/build/spread.py` on one machine. mid: the middle of",
             "the range; half: half its width.", "",
             "| cell | figure | " + " | ".join(runs) + " | mid | half |",
             "|---" * (len(runs) + 4) + "|"]
    for i, (cell, line, _) in enumerate(first):
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
