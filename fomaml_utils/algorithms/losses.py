"""The series' one loss rule and the per-task loss and accuracy built on it.

Classification (integer labels ``y [n]``): mean cross-entropy of the logits ``[n, ways]``.
Regression (float targets shaped like the output): mean squared error.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

__all__ = ["output_loss", "query_output", "task_loss", "task_accuracy", "loss_and_accuracy"]


def output_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The series' one loss rule, a scalar tensor: mean cross-entropy of the logits ``out [n, ways]`` for integer
    labels ``y [n]`` (classification), mean squared error for float targets ``y`` shaped like ``out`` (regression)."""
    return F.mse_loss(out, y) if y.is_floating_point() else F.cross_entropy(out, y)


def query_output(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor,
                 support_x: torch.Tensor | None) -> torch.Tensor:
    """The output of ``model`` with weights ``params`` for one task's query examples ``x [m, ...]``.

    ``support_x [n, ...]``: the task's support examples. A ``ConvNet`` with ``norm="support"`` normalises the
    queries with their statistics; every other model ignores them (``None`` is then fine too).
    """
    if support_x is not None and getattr(model, "norm", None) == "support":
        return functional_call(model, dict(params), (x,), {"support": support_x})
    return functional_call(model, dict(params), (x,))


def task_loss(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss of ``model`` with weights ``params`` on one task's examples (``output_loss``); a scalar tensor.

    Classification (``y`` integer, ``[n]``; ``x [n, ...]``): mean cross-entropy of the logits ``[n, ways]``.
    Regression (``y`` float, ``[n, 1]``): mean squared error of the predictions ``[n, 1]``.
    """
    return output_loss(functional_call(model, dict(params), (x,)), y)


def loss_and_accuracy(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor,
                      y: torch.Tensor, support_x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``task_loss`` and ``task_accuracy`` from one forward pass (the accuracy detached); for query examples,
    pass the task's ``support_x`` (see ``query_output``)."""
    out = query_output(model, params, x, support_x)
    loss = output_loss(out, y)
    if y.is_floating_point():
        return loss, None
    with torch.no_grad():
        accuracy = (out.argmax(dim=-1) == y).float().mean()
    return loss, accuracy


def task_accuracy(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor,
                  y: torch.Tensor, support_x: torch.Tensor | None = None) -> torch.Tensor | None:
    """Fraction of ``x [n, ...]`` classified as ``y [n]`` (scalar tensor), or ``None`` for regression; for query
    examples, pass the task's ``support_x`` (see ``query_output``)."""
    if y.is_floating_point():
        return None
    with torch.no_grad():
        out = query_output(model, params, x, support_x)
        return (out.argmax(dim=-1) == y).float().mean()
