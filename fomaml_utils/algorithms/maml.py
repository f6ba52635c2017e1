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
``torch.func.grad``), ``"lowrank"`` (``fomaml_utils.algorithms.mlp_lowrank``, MLPs only) and ``"auto"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from fomaml_utils.algorithms.losses import loss_and_accuracy, output_loss, query_output, task_accuracy, task_loss
from fomaml_utils.algorithms.mlp_lowrank import lowrank_meta_gradient
from fomaml_utils.algorithms.models import MLP
from fomaml_utils.algorithms.registry import (ALGORITHMS, Algorithm, MetaGradient, Params, check_hyperparameters,
                                              check_meta_state, functional_inner_step, get_algorithm, inner_loop)
from fomaml_utils.data.taskbatch import TaskBatch

Implementation = Literal["auto", "loop", "vmap", "lowrank"]

IMPLEMENTATIONS: tuple[str, ...] = ("auto", "loop", "vmap", "lowrank")

__all__ = [
    "Params", "MetaGradient", "ALGORITHMS", "IMPLEMENTATIONS",
    "output_loss", "task_loss", "task_accuracy", "adapt", "meta_gradient", "check_hyperparameters",
    "resolve_implementation",
]


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
    differentiable w.r.t. θ, which is what evaluation wants). This is MAML's inner loop; other
    algorithms' (ANIL, Meta-SGD) are ``fomaml_utils.algorithms.inner_loop`` with their ``Algorithm``.
    """
    check_hyperparameters(inner_lr=inner_lr, inner_steps=inner_steps)
    algorithm = get_algorithm("fomaml" if first_order else "maml")
    return inner_loop(model, algorithm, params, {}, support_x, support_y, inner_lr=inner_lr,
                      inner_steps=inner_steps, first_order=first_order)


# --------------------------------------------------------------------------------------------------
# Meta-gradients: the per-task reference


def _loop_meta_gradient(model: nn.Module, algorithm: Algorithm, params: Params, meta_state: Params,
                        batch: TaskBatch, *, inner_lr: float, inner_steps: int) -> MetaGradient:
    """One task at a time: adapt, then differentiate the query loss (or take θ − θ′)."""
    params = {k: p.detach().requires_grad_(True) for k, p in params.items()}
    meta_state = {k: s.detach().requires_grad_(True) for k, s in meta_state.items()}
    leaves = [*params.values(), *meta_state.values()]
    total = [torch.zeros_like(p) for p in leaves]
    losses, accuracies = [], []
    for sx, sy, qx, qy in zip(*batch):
        adapted = inner_loop(model, algorithm, params, meta_state, sx, sy, inner_lr=inner_lr,
                             inner_steps=inner_steps, first_order=algorithm.first_order)
        if algorithm.kind == "reptile":
            with torch.no_grad():
                loss, accuracy = loss_and_accuracy(model, adapted, qx, qy, sx)
                for t, k in zip(total, params):
                    t += params[k] - adapted[k]
        else:
            loss, accuracy = loss_and_accuracy(model, adapted, qx, qy, sx)
            # First order: ∂θ′/∂θ = I here, so this is ∇L_Q(θ′); exact: the chain rule through the inner loop.
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
            for t, g in zip(total, grads):
                if g is not None:  # None: a weight the query loss does not reach (e.g. 0 inner steps, Meta-SGD's α)
                    t += g
        losses.append(loss.detach())
        accuracies.append(accuracy)
    n = len(losses)
    means = [t / n for t in total]
    return MetaGradient(
        grads=dict(zip(params, means[: len(params)])),
        query_loss=torch.stack(losses).mean(),
        query_accuracy=None if accuracies[0] is None else torch.stack(accuracies).mean(),
        meta_state_grads=dict(zip(meta_state, means[len(params):])),
    )


# --------------------------------------------------------------------------------------------------
# Meta-gradients: vectorised over tasks with torch.func


def _vmap_meta_gradient(model: nn.Module, algorithm: Algorithm, params: Params, meta_state: Params,
                        batch: TaskBatch, *, inner_lr: float, inner_steps: int) -> MetaGradient:
    """The same maths as the loop, written as pure functions of one task and ``vmap``-ed over tasks."""
    params = {k: p.detach() for k, p in params.items()}
    meta_state = {k: s.detach() for k, s in meta_state.items()}
    names = algorithm.adapted_names(model, params)
    classification = not batch.query_y.is_floating_point()

    def inner(p: Params, s: Params, sx: torch.Tensor, sy: torch.Tensor) -> Params:
        for _ in range(inner_steps):
            p = functional_inner_step(model, algorithm, p, s, sx, sy, names=names, inner_lr=inner_lr,
                                      first_order=algorithm.first_order)
        return p

    def query(p: Params, sx: torch.Tensor, qx: torch.Tensor,
              qy: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out = query_output(model, p, qx, sx)
        loss = output_loss(out, qy)
        if classification:
            accuracy = (out.argmax(dim=-1) == qy).float().mean()
        else:
            accuracy = torch.zeros((), device=loss.device)
        return loss, (loss.detach(), accuracy.detach())

    def one_task(p: Params, s: Params, sx, sy, qx, qy):
        if algorithm.kind == "reptile":
            adapted = inner(p, s, sx, sy)
            _, aux = query(adapted, sx, qx, qy)
            return ({k: p[k] - adapted[k] for k in p}, s), aux
        if algorithm.first_order and not s:  # ∂θ′/∂θ = I: the query-loss gradient at θ′ is the meta-gradient
            grads, aux = torch.func.grad(query, has_aux=True)(inner(p, s, sx, sy), sx, qx, qy)
            return (grads, s), aux
        # Differentiate through the inner loop (exact), or through its steps' dependence on the meta-state.
        return torch.func.grad(lambda p0, s0: query(inner(p0, s0, sx, sy), sx, qx, qy), argnums=(0, 1),
                               has_aux=True)(p, s)

    (grads, state_grads), (losses, accuracies) = torch.func.vmap(one_task, in_dims=(None, None, 0, 0, 0, 0))(
        params, meta_state, *batch)
    return MetaGradient(
        grads={k: g.mean(dim=0) for k, g in grads.items()},
        query_loss=losses.mean(),
        query_accuracy=accuracies.mean() if classification else None,
        meta_state_grads={k: g.mean(dim=0) for k, g in state_grads.items()},
    )


# --------------------------------------------------------------------------------------------------
# The public entry point


def resolve_implementation(model: nn.Module, implementation: str = "auto",
                           algorithm: str | Algorithm | None = None) -> str:
    """Which code path ``meta_gradient`` uses for ``model`` and ``algorithm``: ``"loop"``, ``"vmap"`` or
    ``"lowrank"``. Raises ``ValueError`` if ``implementation`` cannot serve the algorithm."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {', '.join(map(repr, IMPLEMENTATIONS))}, "
                         f"got {implementation!r}")
    plain_sgd = algorithm is None or get_algorithm(algorithm).plain_sgd
    if implementation == "lowrank" and not plain_sgd:
        served = ", ".join(repr(a) for a in ALGORITHMS if get_algorithm(a).plain_sgd)
        raise ValueError(f"implementation 'lowrank' serves the algorithms that take plain SGD steps with one step "
                         f"size ({served}), not {get_algorithm(algorithm).name!r}; use 'vmap', 'loop' or 'auto'")
    if implementation != "auto":
        return implementation
    # Measured on this project's 2-core CPU (torch 2.14.1, 1 thread, machine shared and loaded), meta-batch
    # 16, 5-way 1-shot 15 queries, 5 inner steps; tasks/s loop / vmap / lowrank, two runs:
    #   MLP 784-256-128-5: fomaml 74 / 77 and 43 / 67 / 395; maml 38 / 51 and 35 / 37 / 263;
    #                      reptile 87 / 126 and 58 / 75 / 561              -> lowrank, else vmap
    #   ConvNet(5):        fomaml 5.7 / 3.6 and 3.0 / 2.4; maml 4.9 / 2.8 and 2.6 / 2.6;
    #                      reptile 6.9 / 8.4 and 5.0 / 5.2                  -> loop
    #   (vmapped convolutions with per-task weights run as slower grouped convolutions on CPU)
    if isinstance(model, MLP):
        return "lowrank" if plain_sgd else "vmap"
    return "loop"


def meta_gradient(model: nn.Module, params: Mapping[str, torch.Tensor], batch: TaskBatch, *,
                  algorithm: str | Algorithm, inner_lr: float, inner_steps: int,
                  implementation: Implementation = "auto",
                  meta_state: Mapping[str, torch.Tensor] | None = None) -> MetaGradient:
    r"""The meta-gradient of one batch of tasks, averaged over tasks.

    ``params``: the meta-parameters θ (e.g. ``dict(model.named_parameters())``); they are not
    modified and their ``.grad`` is not touched. ``batch``: a ``TaskBatch`` of ``T ≥ 1`` tasks,
    moved to the device of ``params``. Returns a ``MetaGradient`` whose ``grads`` have the keys and
    shapes of ``params`` (detached), plus the mean query loss and accuracy at the adapted weights and
    the gradient of the meta-state.

    ``algorithm``: a name in ``ALGORITHMS`` or an ``Algorithm`` (``fomaml_utils.algorithms``):
      * ``"fomaml"`` — ∇L_Q(θ′), the query-loss gradient at the adapted weights, applied to θ.
      * ``"maml"`` — the exact gradient of L_Q(θ′(θ)), second order through the inner loop.
      * ``"reptile"`` — the direction θ − θ′, unscaled. Plain SGD with ``meta_lr`` = β then moves θ a
        fraction β of the way to the mean adapted point, θ ← θ + β·mean(θ′ − θ), which is exactly the
        batched Reptile update of Nichol et al. (2018) with their outer step size ε = β. Their analysis
        (Sec. 5) calls (θ − θ′)/α the "Reptile gradient": the sum of the k support gradients along the
        inner path, so ours is α times theirs, and dividing by α·k gives a per-step gradient on
        FOMAML's scale. (With Adam the overall scale matters little.) Reptile adapts on the support
        set only; the query set is used just to report the loss at θ′.
      * ``"anil"``, ``"fo-anil"`` — only the output layer adapts; exact or first-order gradient.
      * ``"metasgd"``, ``"fo-metasgd"`` — steps α ⊙ g with ``meta_state`` the learned α (required, from
        ``get_algorithm(...).init_meta_state(params, inner_lr)``); ``inner_lr`` is then unused.

    ``implementation``: ``"loop"``, ``"vmap"``, ``"lowrank"`` (MLPs and plain-SGD algorithms,
    ``fomaml_utils.algorithms.mlp_lowrank``) or ``"auto"`` (see ``resolve_implementation``). All give the same
    numbers up to float rounding.
    """
    check_hyperparameters(inner_lr=inner_lr, inner_steps=inner_steps, algorithm=algorithm)
    algorithm = get_algorithm(algorithm)
    _check_batch(batch)
    params = dict(params)
    if not params:
        raise ValueError("params must hold at least one tensor")
    meta_state = check_meta_state(algorithm, params, meta_state)
    implementation = resolve_implementation(model, implementation, algorithm)
    device = next(iter(params.values())).device
    batch = batch.to(device)
    with torch.enable_grad():  # also when called under torch.no_grad()
        if implementation == "lowrank":
            return lowrank_meta_gradient(model, params, batch, algorithm=algorithm.name, inner_lr=inner_lr,
                                         inner_steps=inner_steps)
        compute = _loop_meta_gradient if implementation == "loop" else _vmap_meta_gradient
        return compute(model, algorithm, params, meta_state, batch, inner_lr=inner_lr, inner_steps=inner_steps)
