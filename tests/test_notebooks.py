"""The notebooks are their own source: edited in JupyterLab, their outputs stored by ``make outputs``.

These checks read the files only (nbval executes them): what every notebook of the series must be, whoever
edited it last.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
INTERACTIVE = re.compile(r"\b(FigurePanel|interact|interact_manual|interactive)\(")
BASE64 = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]*")
ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:root|home|work|tmp|Users|private|var/folders)/")


def test_the_series_is_there():
    assert [p.name[:3] for p in NOTEBOOKS][:4] == ["00_", "01_", "02_", "03_"]


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request):
    path = request.param
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return path, nb


def test_name_and_kernel(notebook):
    path, nb = notebook
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), f"{path.name}: name it NN_words.ipynb"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec must be python3"


def test_opens_with_what_you_will_learn_and_closes_with_what_we_saw(notebook):
    path, nb = notebook
    first, markdown = nb.cells[0], [c for c in nb.cells if c.cell_type == "markdown"]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {path.name[:2]} · "), \
        f"{path.name}: the first cell is the title, '# {path.name[:2]} · ...'"
    assert "What you will learn" in first.source, f"{path.name}: the first cell says what the reader will learn"
    assert "## What we saw" in markdown[-1].source, f"{path.name}: the last text cell closes with '## What we saw'"


def test_outputs_come_from_one_top_to_bottom_run(notebook):
    path, nb = notebook
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts} are not 1, 2, 3, ...: store the outputs of one clean run "
        f"with `make outputs` (or `.venv/bin/python notebooks/build/execute.py {path.relative_to(path.parents[1])}`)")
    assert "widgets" not in nb.metadata, f"{path.name}: stored widget state (volatile ids); run `make outputs`"


def test_interactive_cells_are_left_out_of_the_comparison(notebook):
    path, nb = notebook
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        if INTERACTIVE.search(cell.source):
            assert cell.source.startswith("# NBVAL_IGNORE_OUTPUT"), \
                f"{path.name}, code cell {i}: a widget cell starts with '# NBVAL_IGNORE_OUTPUT'"


def test_no_absolute_paths_in_outputs(notebook):
    path, nb = notebook
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        for out in cell.get("outputs", []):
            texts = [out.get("text", "")] + [v for k, v in out.get("data", {}).items()
                                              if k.startswith("text/") and isinstance(v, str)]
            texts += out.get("traceback", [])
            for text in texts:
                text = BASE64.sub("", text)  # images embedded in HTML are not paths
                match = ABSOLUTE_PATH.search(text)
                assert not match, f"{path.name}, code cell {i}: an absolute path in an output: {text[max(0, match.start() - 40):match.end() + 40]!r}"


def test_cell_ids_are_unique(notebook):
    path, nb = notebook
    ids = [c.id for c in nb.cells]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate cell ids"
