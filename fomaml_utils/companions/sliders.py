"""Sliders that redraw a figure, safe whatever thread runs their callback.

``FigurePanel`` replaces ``ipywidgets.interact`` in the notebooks. ``interact`` runs the callback inside
an ``Output`` widget and shows what pyplot drew; with ipykernel 7, a comm message (a slider's value) can
run that callback on a subshell thread while the main thread runs the next cell, and pyplot's global list
of open figures is shared by both: one thread's figure could be shown, emptied or closed by the other
(seen in JupyterLab as a blank figure after Run All). Here the callback returns matplotlib ``Figure``
objects that pyplot never sees; the panel renders them to PNG and puts the bytes into ``Image`` widgets.
Redraws are serialised, and slider moves that arrive during one are folded into the next.

Before the notebook runs, stored outputs have no widget state to draw from. A panel's display data
therefore also carries the figures of its first drawing, with a line saying to run the cells above, as
HTML, PNG and plain text: JupyterLab shows those where it cannot show the live widget (an untrusted
notebook, a static rendering), and shows the sliders once the cell has run.
"""

from __future__ import annotations

import base64
import html
import io
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

__all__ = ["Drawing", "FigurePanel", "png_bytes", "STATIC_NOTE", "MANUAL_NOTE", "CHECKBOX_NOTE"]

Drawing = Figure | Sequence[Figure] | tuple[str, Figure | Sequence[Figure]]
"""What a panel's ``draw`` returns: figures, optionally after one line of text for the reader."""

STATIC_NOTE = "Run the cells above to use the sliders; until then, this is what they show at their starting values."
MANUAL_NOTE = "Run the cells above to use the sliders and the button."
CHECKBOX_NOTE = "Run the cells above to use the checkboxes and the button."
"""The note of a button panel whose controls are all checkboxes (``MANUAL_NOTE`` otherwise)."""


def png_bytes(fig: Figure, dpi: float = 100) -> bytes:
    """``fig`` rendered to PNG as the inline backend renders it (tight bounding box), without pyplot."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def _split(drawing: Drawing) -> tuple[str, list[Figure]]:
    """``(text, figures)`` of a ``Drawing``; raises ``TypeError`` for anything else."""
    text = ""
    if isinstance(drawing, tuple) and len(drawing) == 2 and isinstance(drawing[0], str):
        text, drawing = drawing
    figures = [drawing] if isinstance(drawing, Figure) else list(drawing)
    if not all(isinstance(f, Figure) for f in figures):
        raise TypeError("draw must return a matplotlib Figure, a list of them, or (text, figures); "
                        f"got {type(drawing).__name__}")
    return text, figures


class FigurePanel(widgets.VBox):
    """Controls, one line of text and the figures that ``draw(**values)`` returns for their values.

    Args:
        draw:     called with one keyword argument per control; returns a ``Drawing``. It must not use
                  pyplot (create ``matplotlib.figure.Figure`` objects directly).
        controls: name → widget with a ``value`` (sliders, checkboxes), in display order.
        button:   if given, ``draw`` runs only when this button (labelled so) is pressed, not on every move;
                  for callbacks that take seconds.
        busy:     the text shown while ``draw`` runs.

    Without a button, ``draw`` runs once at construction, so the panel shows the starting values' figures
    at once. Errors from ``draw`` (``ValueError`` and any other exception) are shown as the text line in
    red, with no figure, never raised into a thread nobody reads.
    """

    def __init__(self, draw: Callable[..., Drawing], controls: Mapping[str, widgets.ValueWidget], *,
                 button: str | None = None, busy: str = "Drawing…", dpi: float = 100) -> None:
        self._draw = draw
        self.controls = dict(controls)
        self.dpi = dpi
        self.busy = busy
        self.text = widgets.HTML()
        self.images = widgets.VBox()
        self.button = widgets.Button(description=button, button_style="primary") if button else None
        self.last_seconds: float | None = None
        self.last_error: str | None = None
        self.redraws = 0
        self._lock = threading.Lock()
        self._pending = False
        self._drawing = False
        self._static_pngs: list[bytes] = []
        for name, control in self.controls.items():
            if not getattr(control, "description", None) and hasattr(control, "description"):
                control.description = name  # as interact labels them
            if "description_width" in getattr(getattr(control, "style", None), "keys", ()):
                control.style.description_width = "initial"  # the whole label, not cut to a fixed width
        rows = list(self.controls.values()) + ([self.button] if self.button else [])
        super().__init__(children=[widgets.VBox(rows), self.text, self.images])
        self.add_class("fomaml-figure-panel")  # how the browser test finds panels
        if self.button:
            self.button.on_click(lambda _: self.request())
            only_checkboxes = all(isinstance(c, widgets.Checkbox) for c in self.controls.values())
            self._static_note = CHECKBOX_NOTE if only_checkboxes else MANUAL_NOTE
        else:
            for control in self.controls.values():
                control.observe(lambda _: self.request(), names="value")
            self._static_note = STATIC_NOTE
            self.redraw()
            self._static_pngs = [bytes(image.value) for image in self.images.children]

    @property
    def values(self) -> dict[str, Any]:
        """The controls' current values, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def request(self) -> None:
        """Redraw for the current values; if a redraw is running, fold this one into the next."""
        with self._lock:
            self._pending = True
            if self._drawing:
                return
            self._drawing = True
        while True:
            with self._lock:
                if not self._pending:
                    self._drawing = False
                    return
                self._pending = False
            self.redraw()

    def redraw(self) -> None:
        """Call ``draw`` with the current values and show its text and figures (or its error)."""
        start = time.perf_counter()
        self.text.value = f"<i>{html.escape(self.busy)}</i>"
        if self.button:
            self.button.disabled = True
        try:
            text, figures = _split(self._draw(**self.values))
            pngs = [png_bytes(f, self.dpi) for f in figures]
        except Exception as error:  # shown to the reader; a callback's exception would otherwise vanish
            self.last_error = f"{type(error).__name__}: {error}" if not isinstance(error, ValueError) else str(error)
            self.text.value = f'<span style="color:#b00">{html.escape(self.last_error)}</span>'
            self.images.children = []
        else:
            self.last_error = None
            self._show(pngs)
            self.text.value = html.escape(text)
        finally:
            if self.button:
                self.button.disabled = False
        self.last_seconds = time.perf_counter() - start
        self.redraws += 1

    def _show(self, pngs: Sequence[bytes]) -> None:
        images = list(self.images.children)
        if len(images) != len(pngs):
            images = [widgets.Image(format="png") for _ in pngs]
        for image, png in zip(images, pngs):
            image.value = png
        self.images.children = images

    def _repr_mimebundle_(self, **kwargs) -> dict:
        """The widget, plus a static stand-in (note and first figures) for renderers that cannot show it."""
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        note = html.escape(self._static_note)
        images = "".join(f'<br><img src="data:image/png;base64,{base64.b64encode(png).decode()}">'
                         for png in self._static_pngs)
        bundle["text/html"] = f"<p><i>{note}</i></p>{images}"
        if self._static_pngs:
            bundle["image/png"] = base64.b64encode(self._static_pngs[0]).decode()
        bundle["text/plain"] = self._static_note
        return bundle
