"""One notebook builder for the generators ``build_XX_*.py`` in this folder.

A generator collects its cells in order with ``md`` and ``code``, then writes them, without outputs::

    from nbbuild import NotebookBuilder

    notebook = NotebookBuilder()
    md, code = notebook.md, notebook.code

    md(r'''
    # 01 · Title
    ''')
    code("print(1)")

    if __name__ == "__main__":
        notebook.write(Path(__file__).resolve().parents[1] / "01_title.ipynb")
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


class NotebookBuilder:
    """Cells in the order they were added, and the notebook (kernel ``python3``) they make.

    Cell ``i`` gets the id ``cell-{i:02d}``, so that rebuilding does not change every cell's id in the diff.
    """

    def __init__(self) -> None:
        self.cells: list[tuple[str, str]] = []  # (kind, source), kind "md" or "code"

    def md(self, text: str) -> None:
        """Add a markdown cell; leading and trailing newlines of ``text`` are dropped."""
        self.cells.append(("md", text.strip("\n")))

    def code(self, text: str) -> None:
        """Add a code cell; leading and trailing newlines of ``text`` are dropped."""
        self.cells.append(("code", text.strip("\n")))

    def notebook(self) -> nbformat.NotebookNode:
        """The cells so far as a notebook without outputs."""
        nb = new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                     "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in self.cells]
        for i, cell in enumerate(nb.cells):
            cell.id = f"cell-{i:02d}"
        return nb

    def write(self, path: Path) -> None:
        """Write the notebook to ``path`` and say so (relative to the working directory where it can)."""
        path = Path(path).resolve()
        nbformat.write(self.notebook(), path)
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path.name}")
