"""Labelled image grids of few-shot tasks.

``plot_task`` draws one task of a ``TaskBatch``: the support set on top (one column per label, one row
per shot), the query set below (the first few queries per label), each image titled with its label and,
when known, the class behind it ("digit 3, 90°"). Given the model's predictions it marks the wrong
queries with a red frame and title naming the predicted label::

    batch, class_idx = sampler.sample(1, return_classes=True)
    fig = plot_task(batch, classes=sampler.task_classes(class_idx[0]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fomaml_utils.data.mnist import MNIST_MEAN, MNIST_STD
from fomaml_utils.data.taskbatch import TaskBatch

WRONG_COLOR = "tab:red"
_FRAME_COLOR = "0.8"


def _as_labels(name: str, values: torch.Tensor | Sequence[int], length: int) -> torch.Tensor:
    """``values`` as int64 ``[length]``, or a ValueError naming ``name``."""
    t = torch.as_tensor(values).detach().cpu()
    if t.is_floating_point() or t.shape != (length,):
        raise ValueError(f"{name} must be {length} integer labels ([ways*queries]), "
                         f"got shape {list(t.shape)}")
    return t.long()


def _show(ax: Axes, image: torch.Tensor, caption: str, wrong: bool = False) -> None:
    """Draw one normalised image ``[1, 28, 28]`` in pixel units [0, 1], with a caption and a frame."""
    pixels = (image[0] * MNIST_STD + MNIST_MEAN).clamp(0, 1)
    ax.imshow(pixels.numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    color = WRONG_COLOR if wrong else "black"
    ax.set_title(caption, fontsize=8, color=color)
    for spine in ax.spines.values():
        spine.set_color(WRONG_COLOR if wrong else _FRAME_COLOR)
        spine.set_linewidth(2.5 if wrong else 0.8)


def plot_task(
    batch: TaskBatch,
    index: int = 0,
    classes: Sequence[tuple[int, int]] | None = None,
    predictions: torch.Tensor | Sequence[int] | None = None,
    title: str | None = None,
    max_queries_per_class: int = 5,
) -> Figure:
    """Draw task ``index`` of ``batch`` as a grid of labelled images and return the figure.

    Args:
        batch:       a ``TaskBatch`` of images, ``support_x`` ``[T, ways*shots, 1, 28, 28]`` normalised
                     with ``MNIST_MEAN``/``MNIST_STD`` (undone for display), labels ``0..ways-1``.
        index:       which task of the batch to draw.
        classes:     ``(digit, rotation)`` of each label, length ``ways`` (``sampler.task_classes(...)``).
        predictions: predicted label of each query of this task, ``[ways*queries]`` int, in the order of
                     ``query_y[index]``; wrong ones get a red frame and a red title.
        title:       the figure title (default: "Task {index}: {ways}-way {shots}-shot").
        max_queries_per_class: draw at most this many queries per label (all are used for nothing else).

    Returns a ``matplotlib.figure.Figure`` with ``ways * (shots + min(queries, max_queries_per_class))``
    image axes (fewer only if some label has fewer images). The figure is not registered with pyplot
    (safe to draw from a widget callback on any thread); a notebook shows it when it is a cell's value.
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < batch.num_tasks:
        raise ValueError(f"index={index!r} but the batch has only {batch.num_tasks} tasks "
                         f"(0..{batch.num_tasks - 1})")
    limit = max_queries_per_class
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"max_queries_per_class must be a non-negative integer, got {limit!r}")
    support_x, support_y, query_x, query_y = (t[index].detach().cpu() for t in batch)
    ways = int(max(support_y.max(), query_y.max())) + 1
    if classes is not None and len(classes) != ways:
        raise ValueError(f"classes must give one (digit, rotation) per label, {ways} in all; "
                         f"got {len(classes)}")
    if predictions is not None:
        predictions = _as_labels("predictions", predictions, len(query_y))

    support_rows = [(support_y == c).nonzero().squeeze(1) for c in range(ways)]
    query_rows = [(query_y == c).nonzero().squeeze(1)[:max_queries_per_class] for c in range(ways)]
    shots = max(len(r) for r in support_rows)
    shown = max(len(r) for r in query_rows)
    queries = len(query_y) // ways

    fig = Figure(figsize=(1.3 * ways + 0.4, 1.45 * (shots + shown) + 1.2), layout="constrained")
    fig.suptitle(title if title is not None else f"Task {index}: {ways}-way {shots}-shot")
    parts = [("Support", support_x, support_rows, shots, f"{shots} per label")]
    if shown:
        note = f"first {shown} of {queries} per label" if shown < queries else f"{queries} per label"
        if predictions is not None:
            wrong = int((predictions != query_y).sum())
            note += f"; red: misclassified ({wrong} of {len(query_y)})"
        parts.append(("Query", query_x, query_rows, shown, note))
    subfigs = fig.subfigures(len(parts), 1, height_ratios=[p[3] for p in parts], squeeze=False)[:, 0]
    for subfig, (name, images, rows, n_rows, note) in zip(subfigs, parts):
        subfig.suptitle(f"{name} set ({note})", fontsize=10)
        axes = subfig.subplots(n_rows, ways, squeeze=False)
        for label in range(ways):
            for row in range(n_rows):
                ax = axes[row, label]
                if row >= len(rows[label]):
                    ax.axis("off")
                    continue
                i = int(rows[label][row])
                caption = f"label {label}"
                if classes is not None:
                    caption += f"\ndigit {classes[label][0]}, {classes[label][1]}°"
                wrong = name == "Query" and predictions is not None and int(predictions[i]) != label
                if wrong:
                    said = f"label {label}, predicted {int(predictions[i])}"
                    caption = caption.replace(f"label {label}", said)
                _show(ax, images[i], caption, wrong)
    return fig
