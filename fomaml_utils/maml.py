r"""Inner loop and meta-gradients for MAML, first-order MAML (FOMAML) and Reptile.

A task has a support set :math:`S` (to adapt on) and a query set :math:`Q` (to judge the adapted
weights on). The inner loop takes ``inner_steps`` = :math:`k` plain gradient steps from the
meta-parameters :math:`\theta` (``params``) with step size :math:`\alpha` (``inner_lr``):

.. math::  \theta'_0 = \theta, \qquad \theta'_{j+1} = \theta'_j - \alpha \nabla L_S(\theta'_j),
           \qquad \theta' = \theta'_k \quad (\text{``adapted``}).

The meta-objective is the query loss after adaptation, :math:`L_Q(\theta'(\theta))`, averaged over
tasks. Its three classic gradients (Finn et al. 2017; Nichol et al. 2018):

* **MAML**, exact:  :math:`\nabla_\theta L_Q(\theta') = (I - \alpha H_S(\theta'_0))(I - \alpha H_S(\theta'_1))
  \cdots (I - \alpha H_S(\theta'_{k-1}))\,\nabla L_Q(\theta')` — backpropagates through the inner loop
  (Hessian-vector products, applied from the last step back to the first).
* **FOMAML**, first order: drop the Hessians, :math:`g = \nabla L_Q(\theta')` — the query-loss
  gradient at the adapted weights, applied to :math:`\theta`.
* **Reptile**: :math:`g = \theta - \theta'`, the direction from the adapted weights back to the start.

Usage::

    params = dict(model.named_parameters())
    out = meta_gradient(model, params, batch, algorithm="fomaml", inner_lr=0.4, inner_steps=5)
    for name, p in model.named_parameters():
        p.grad = out.grads[name]
    meta_optimizer.step()

Implementations of ``meta_gradient``: ``"loop"`` (one task at a time with ``adapt``, the readable
reference), ``"vmap"`` (the same maths vectorised over tasks with ``torch.func.vmap`` and
``torch.func.grad``), ``"lowrank"`` (``fomaml_utils.mlp_lowrank``, MLPs only) and ``"auto"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, NamedTuple

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from fomaml_utils.models import MLP
from fomaml_utils.taskbatch import TaskBatch

Algorithm = Literal["fomaml", "maml", "reptile"]
Implementation = Literal["auto", "loop", "vmap", "lowrank"]
Params = dict[str, torch.Tensor]

ALGORITHMS: tuple[str, ...] = ("fomaml", "maml", "reptile")
IMPLEMENTATIONS: tuple[str, ...] = ("auto", "loop", "vmap", "lowrank")

__all__ = [
    "Algorithm", "Params", "MetaGradient", "ALGORITHMS", "IMPLEMENTATIONS",
    "output_loss", "task_loss", "task_accuracy", "adapt", "meta_gradient", "check_hyperparameters",
    "resolve_implementation",
]


class MetaGradient(NamedTuple):
    """What one meta-step computes for a batch of tasks.

    grads:          same keys and shapes as ``params``; the mean over tasks of the algorithm's
                    meta-gradient (for Reptile, the mean of θ − θ′).
    query_loss:     scalar tensor, mean over tasks of the query loss at the adapted weights θ′ (detached).
    query_accuracy: scalar tensor, mean query accuracy at θ′ for classification, else ``None``.
    """

    grads: Params
    query_loss: torch.Tensor
    query_accuracy: torch.Tensor | None


# --------------------------------------------------------------------------------------------------
# Losses


def output_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The series' one loss rule, a scalar tensor: mean cross-entropy of the logits ``out [n, ways]`` for integer
    labels ``y [n]`` (classification), mean squared error for float targets ``y`` shaped like ``out`` (regression)."""
    return F.mse_loss(out, y) if y.is_floating_point() else F.cross_entropy(out, y)


def task_loss(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss of ``model`` with weights ``params`` on one task's examples (``output_loss``); a scalar tensor.

    Classification (``y`` integer, ``[n]``; ``x [n, ...]``): mean cross-entropy of the logits ``[n, ways]``.
    Regression (``y`` float, ``[n, 1]``): mean squared error of the predictions ``[n, 1]``.
    """
    return output_loss(functional_call(model, dict(params), (x,)), y)


def _loss_and_accuracy(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor,
                       y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``task_loss`` and ``task_accuracy`` from one forward pass (the accuracy detached)."""
    out = functional_call(model, dict(params), (x,))
    loss = output_loss(out, y)
    if y.is_floating_point():
        return loss, None
    with torch.no_grad():
        accuracy = (out.argmax(dim=-1) == y).float().mean()
    return loss, accuracy


def task_accuracy(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor,
                  y: torch.Tensor) -> torch.Tensor | None:
    """Fraction of ``x [n, ...]`` classified as ``y [n]`` (scalar tensor), or ``None`` for regression."""
    if y.is_floating_point():
        return None
    with torch.no_grad():
        out = functional_call(model, dict(params), (x,))
        return (out.argmax(dim=-1) == y).float().mean()


# --------------------------------------------------------------------------------------------------
# Checks


def check_hyperparameters(*, inner_lr: float, inner_steps: int, algorithm: str | None = None) -> None:
    """Raise ``ValueError`` naming the argument if a hyperparameter is out of range."""
    if isinstance(inner_lr, bool) or not isinstance(inner_lr, (int, float)) or not math.isfinite(inner_lr) \
            or inner_lr <= 0:
        raise ValueError(f"inner_lr must be a finite number > 0, got {inner_lr!r}")
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 0:
        raise ValueError(f"inner_steps must be an integer >= 0, got {inner_steps!r}")
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))}, got {algorithm!r}")


def _check_batch(batch: TaskBatch) -> None:
    if not isinstance(batch, TaskBatch):
        raise ValueError(f"batch must be a TaskBatch, got {type(batch).__name__}")
    sx, sy, qx, qy = batch
    if sx.dim() < 2 or sx.shape[0] == 0:
        raise ValueError(f"batch must hold at least one task, got support_x of shape {tuple(sx.shape)}")
    if not (sx.shape[0] == sy.shape[0] == qx.shape[0] == qy.shape[0]):
        raise ValueError("batch tensors must have the same number of tasks, got "
                         f"{[tuple(t.shape) for t in batch]}")
    if sx.shape[1] == 0 or qx.shape[1] == 0:
        raise ValueError("batch must have at least one support and one query example per task, got "
                         f"support_x {tuple(sx.shape)} and query_x {tuple(qx.shape)}")


# --------------------------------------------------------------------------------------------------
# The inner loop


def adapt(model: nn.Module, params: Mapping[str, torch.Tensor], support_x: torch.Tensor, support_y: torch.Tensor,
          *, inner_lr: float, inner_steps: int, first_order: bool = True) -> Params:
    r"""``inner_steps`` steps of plain SGD, θ′ ← θ′ − α∇L_S(θ′), on one task's support set.

    ``support_x [n, ...]`` and ``support_y [n]`` (classes) or ``[n, 1]`` (regression), one task,
    no task dimension. Returns the adapted weights θ′, same keys and shapes as ``params``.

    ``first_order=False`` keeps the graph through the inner gradients (``create_graph=True``), so
    θ′ is a differentiable function of θ and backpropagating a query loss through it gives MAML's
    exact gradient. ``first_order=True`` takes each inner gradient as a constant: θ′ = θ − α Σ g_j
    with the g_j detached, so ∂θ′/∂θ = I and the gradient of a query loss w.r.t. θ is the query-loss
    gradient at θ′ (FOMAML); memory does not grow with ``inner_steps``. ``inner_steps=0`` returns
    ``params`` unchanged (as a new dict). Works under ``torch.no_grad()`` too (then nothing is
    differentiable w.r.t. θ, which is what evaluation wants).
    """
    check_hyperparameters(inner_lr=inner_lr, inner_steps=inner_steps)
    adapted = dict(params)
    for _ in range(inner_steps):
        with torch.enable_grad():
            if first_order:
                # The gradient is taken at a detached copy: it is a constant for any outer backward.
                inputs = {k: p.detach().requires_grad_(True) for k, p in adapted.items()}
            else:
                inputs = {k: p if p.requires_grad else p.detach().requires_grad_(True) for k, p in adapted.items()}
            loss = task_loss(model, inputs, support_x, support_y)
            grads = torch.autograd.grad(loss, list(inputs.values()), create_graph=not first_order)
            base = adapted if first_order else inputs
            adapted = {k: base[k] - inner_lr * g for k, g in zip(inputs, grads)}
    return adapted


# --------------------------------------------------------------------------------------------------
# Meta-gradients: the per-task reference


def _loop_meta_gradient(model: nn.Module, params: Params, batch: TaskBatch, *, algorithm: str,
                        inner_lr: float, inner_steps: int) -> MetaGradient:
    """One task at a time: adapt, then differentiate the query loss (or take θ − θ′)."""
    params = {k: p.detach().requires_grad_(True) for k, p in params.items()}
    total = {k: torch.zeros_like(p) for k, p in params.items()}
    losses, accuracies = [], []
    for sx, sy, qx, qy in zip(*batch):
        adapted = adapt(model, params, sx, sy, inner_lr=inner_lr, inner_steps=inner_steps,
                        first_order=algorithm != "maml")
        if algorithm == "reptile":
            with torch.no_grad():
                loss, accuracy = _loss_and_accuracy(model, adapted, qx, qy)
                for k in total:
                    total[k] += params[k] - adapted[k]
        else:
            loss, accuracy = _loss_and_accuracy(model, adapted, qx, qy)
            # FOMAML: ∂θ′/∂θ = I here, so this is ∇L_Q(θ′); MAML: the chain rule through the inner loop.
            grads = torch.autograd.grad(loss, list(params.values()))
            for k, g in zip(params, grads):
                total[k] += g
        losses.append(loss.detach())
        accuracies.append(accuracy)
    n = len(losses)
    return MetaGradient(
        grads={k: g / n for k, g in total.items()},
        query_loss=torch.stack(losses).mean(),
        query_accuracy=None if accuracies[0] is None else torch.stack(accuracies).mean(),
    )


# --------------------------------------------------------------------------------------------------
# Meta-gradients: vectorised over tasks with torch.func


def _vmap_meta_gradient(model: nn.Module, params: Params, batch: TaskBatch, *, algorithm: str,
                        inner_lr: float, inner_steps: int) -> MetaGradient:
    """The same maths as the loop, written as pure functions of one task and ``vmap``-ed over tasks."""
    params = {k: p.detach() for k, p in params.items()}
    classification = not batch.query_y.is_floating_point()

    def inner(p: Params, sx: torch.Tensor, sy: torch.Tensor) -> Params:
        for _ in range(inner_steps):
            g = torch.func.grad(task_loss, argnums=1)(model, p, sx, sy)
            p = {k: p[k] - inner_lr * g[k] for k in p}
        return p

    def query(p: Params, qx: torch.Tensor, qy: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out = functional_call(model, p, (qx,))
        loss = output_loss(out, qy)
        if classification:
            accuracy = (out.argmax(dim=-1) == qy).float().mean()
        else:
            accuracy = torch.zeros((), device=loss.device)
        return loss, (loss.detach(), accuracy.detach())

    def one_task(p: Params, sx, sy, qx, qy):
        if algorithm == "maml":  # differentiate through the inner loop
            return torch.func.grad(lambda p0: query(inner(p0, sx, sy), qx, qy), has_aux=True)(p)
        adapted = inner(p, sx, sy)
        if algorithm == "fomaml":  # the query-loss gradient at θ′
            return torch.func.grad(query, has_aux=True)(adapted, qx, qy)
        _, aux = query(adapted, qx, qy)  # reptile
        return {k: p[k] - adapted[k] for k in p}, aux

    grads, (losses, accuracies) = torch.func.vmap(one_task, in_dims=(None, 0, 0, 0, 0))(params, *batch)
    return MetaGradient(
        grads={k: g.mean(dim=0) for k, g in grads.items()},
        query_loss=losses.mean(),
        query_accuracy=accuracies.mean() if classification else None,
    )


# --------------------------------------------------------------------------------------------------
# The public entry point


def resolve_implementation(model: nn.Module, implementation: str = "auto") -> str:
    """Which code path ``meta_gradient`` uses for ``model``: ``"loop"``, ``"vmap"`` or ``"lowrank"``."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {', '.join(map(repr, IMPLEMENTATIONS))}, "
                         f"got {implementation!r}")
    if implementation != "auto":
        return implementation
    # Measured on this project's 2-core CPU (torch 2.14.1, 1 thread, machine shared and loaded), meta-batch
    # 16, 5-way 1-shot 15 queries, 5 inner steps; tasks/s loop / vmap / lowrank, two runs:
    #   MLP 784-256-128-5: fomaml 74 / 77 and 43 / 67 / 395; maml 38 / 51 and 35 / 37 / 263;
    #                      reptile 87 / 126 and 58 / 75 / 561              -> lowrank, else vmap
    #   ConvNet(5):        fomaml 5.7 / 3.6 and 3.0 / 2.4; maml 4.9 / 2.8 and 2.6 / 2.6;
    #                      reptile 6.9 / 8.4 and 5.0 / 5.2                  -> loop
    #   (vmapped convolutions with per-task weights run as slower grouped convolutions on CPU)
    return "lowrank" if isinstance(model, MLP) else "loop"


def meta_gradient(model: nn.Module, params: Mapping[str, torch.Tensor], batch: TaskBatch, *,
                  algorithm: Algorithm, inner_lr: float, inner_steps: int,
                  implementation: Implementation = "auto") -> MetaGradient:
    r"""The meta-gradient of one batch of tasks, averaged over tasks.

    ``params``: the meta-parameters θ (e.g. ``dict(model.named_parameters())``); they are not
    modified and their ``.grad`` is not touched. ``batch``: a ``TaskBatch`` of ``T ≥ 1`` tasks,
    moved to the device of ``params``. Returns a ``MetaGradient`` whose ``grads`` have the keys and
    shapes of ``params`` (detached), plus the mean query loss and accuracy at the adapted weights.

    ``algorithm``:
      * ``"fomaml"`` — ∇L_Q(θ′), the query-loss gradient at the adapted weights, applied to θ.
      * ``"maml"`` — the exact gradient of L_Q(θ′(θ)), second order through the inner loop.
      * ``"reptile"`` — the direction θ − θ′, unscaled. Plain SGD with ``meta_lr`` = β then moves θ a
        fraction β of the way to the mean adapted point, θ ← θ + β·mean(θ′ − θ), which is exactly the
        batched Reptile update of Nichol et al. (2018) with their outer step size ε = β. Their analysis
        (Sec. 5) calls (θ − θ′)/α the "Reptile gradient": the sum of the k support gradients along the
        inner path, so ours is α times theirs, and dividing by α·k gives a per-step gradient on
        FOMAML's scale. (With Adam the overall scale matters little.) Reptile adapts on the support
        set only; the query set is used just to report the loss at θ′.

    ``implementation``: ``"loop"``, ``"vmap"``, ``"lowrank"`` (MLPs, ``fomaml_utils.mlp_lowrank``)
    or ``"auto"`` (see ``resolve_implementation``). All give the same numbers up to float rounding.
    """
    check_hyperparameters(inner_lr=inner_lr, inner_steps=inner_steps, algorithm=algorithm)
    _check_batch(batch)
    params = dict(params)
    if not params:
        raise ValueError("params must hold at least one tensor")
    implementation = resolve_implementation(model, implementation)
    device = next(iter(params.values())).device
    batch = batch.to(device)
    with torch.enable_grad():  # also when called under torch.no_grad()
        return _dispatch(model, params, batch, implementation, algorithm=algorithm, inner_lr=inner_lr,
                         inner_steps=inner_steps)


def _dispatch(model: nn.Module, params: Params, batch: TaskBatch, implementation: str, *, algorithm: str,
              inner_lr: float, inner_steps: int) -> MetaGradient:
    if implementation == "loop":
        return _loop_meta_gradient(model, params, batch, algorithm=algorithm, inner_lr=inner_lr,
                                   inner_steps=inner_steps)
    if implementation == "vmap":
        return _vmap_meta_gradient(model, params, batch, algorithm=algorithm, inner_lr=inner_lr,
                                   inner_steps=inner_steps)
    from fomaml_utils.mlp_lowrank import lowrank_meta_gradient  # written separately, for MLPs

    return lowrank_meta_gradient(model, params, batch, algorithm=algorithm, inner_lr=inner_lr,
                                 inner_steps=inner_steps)
