"""MAML on quadratic task losses, where every quantity has a closed form.

Task ``i`` has a symmetric positive-definite curvature ``A_i`` (``[d, d]``), a support optimum ``c_i``
and a query optimum ``q_i`` (``[d]``; ``q_i = c_i`` unless given)::

    L_S_i(θ) = ½ (θ − c_i)ᵀ A_i (θ − c_i)          support loss
    L_Q_i(θ) = ½ (θ − q_i)ᵀ A_i (θ − q_i)          query loss (same curvature)

``k`` inner gradient steps of size ``α`` on the support loss contract towards ``c_i`` by ``P_i = I − αA_i``::

    θ′_i − c_i = P_iᵏ (θ − c_i)

so the MAML meta-objective ``F(θ) = Σ_i L_Q_i(θ′_i)`` is again a quadratic in ``θ``, with

    ∇F(θ) = Σ_i P_iᵏ A_i (θ′_i − q_i)                               (the chain rule; P_i is symmetric)
    θ*    = (Σ_i M_i)⁻¹ Σ_i [M_i c_i + P_iᵏ A_i (q_i − c_i)],   M_i = P_iᵏ A_i P_iᵏ,

which is ``(Σ M_i)⁻¹ Σ M_i c_i`` when query and support agree. ``α = 0`` or ``k = 0`` gives ``M_i = A_i``:
the optimum of joint training on all tasks. The inner loop converges for every task only if
``0 < α < 2 / λ_max`` (``α = 0`` does not move).

Everything is float64 so that the closed forms, autograd and finite differences agree to ~1e-12.
The slider callbacks of notebook 01 are :func:`landscape` (pure data) and :func:`plot_landscape`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.axes import Axes

DTYPE = torch.float64
INNER_STEPS_RANGE = (0, 10)  # the notebook's slider over k, both ends included
INNER_LR_STEP = 0.01  # the notebook's slider step for α


@dataclass(frozen=True)
class QuadraticTasks:
    """``n`` quadratic tasks in ``d`` dimensions.

    curvatures:    ``[n, d, d]`` symmetric positive definite ``A_i`` (shared by support and query loss).
    centres:       ``[n, d]`` support optima ``c_i``.
    query_centres: ``[n, d]`` query optima ``q_i``; ``None`` means ``q_i = c_i``.
    """

    curvatures: torch.Tensor
    centres: torch.Tensor
    query_centres: torch.Tensor | None = None

    def __post_init__(self) -> None:
        A = torch.as_tensor(self.curvatures, dtype=DTYPE)
        c = torch.as_tensor(self.centres, dtype=DTYPE)
        if A.ndim != 3 or A.shape[1] != A.shape[2] or A.shape[0] < 1:
            raise ValueError(f"curvatures must have shape [n, d, d] with n >= 1, got {tuple(A.shape)}")
        if c.shape != A.shape[:2]:
            raise ValueError(f"centres must have shape {tuple(A.shape[:2])} (= [n, d]), got {tuple(c.shape)}")
        q = c if self.query_centres is None else torch.as_tensor(self.query_centres, dtype=DTYPE)
        if q.shape != c.shape:
            raise ValueError(f"query_centres must have shape {tuple(c.shape)}, got {tuple(q.shape)}")
        if not (torch.isfinite(A).all() and torch.isfinite(c).all() and torch.isfinite(q).all()):
            raise ValueError("curvatures, centres and query_centres must be finite")
        if not torch.allclose(A, A.transpose(1, 2), rtol=0, atol=1e-12):
            raise ValueError("curvatures must be symmetric (A_i = A_iᵀ)")
        smallest = torch.linalg.eigvalsh(A).min().item()
        if smallest <= 0:
            raise ValueError(f"curvatures must be positive definite; smallest eigenvalue is {smallest:.3g} (limit: > 0)")
        object.__setattr__(self, "curvatures", A)
        object.__setattr__(self, "centres", c)
        object.__setattr__(self, "query_centres", q)

    @property
    def num_tasks(self) -> int:
        return self.curvatures.shape[0]

    @property
    def dim(self) -> int:
        return self.curvatures.shape[1]


def rotated_curvature(eigenvalues: tuple[float, float], angle_deg: float) -> torch.Tensor:
    """The ``[2, 2]`` matrix ``R diag(eigenvalues) Rᵀ``, ``R`` a rotation by ``angle_deg`` degrees."""
    t = math.radians(angle_deg)
    R = torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]], dtype=DTYPE)
    return R @ torch.diag(torch.tensor(eigenvalues, dtype=DTYPE)) @ R.T


def example_tasks() -> QuadraticTasks:
    """The three 2-D tasks of notebook 01, axis-aligned so each coordinate can be read on its own.

    Task 1 is steep along θ₁, task 2 steep along θ₂, task 3 flat in both; ``λ_max = 4``, so ``α < 0.5``.
    """
    curvatures = torch.stack([
        torch.diag(torch.tensor([4.0, 1.0], dtype=DTYPE)),
        torch.diag(torch.tensor([1.0, 3.0], dtype=DTYPE)),
        torch.diag(torch.tensor([0.4, 0.3], dtype=DTYPE)),
    ])
    centres = torch.tensor([[-2.0, 1.5], [2.0, 1.5], [0.0, -2.0]], dtype=DTYPE)
    return QuadraticTasks(curvatures, centres)


# --------------------------------------------------------------------------------------- checks


def _check_inner_steps(inner_steps: int) -> None:
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, (int, np.integer)) or inner_steps < 0:
        raise ValueError(f"inner_steps must be an integer >= 0, got {inner_steps!r}")


def _check_inner_lr(inner_lr: float, *, allow_negative: bool = False) -> None:
    if isinstance(inner_lr, bool) or not isinstance(inner_lr, (int, float, np.floating)) or not math.isfinite(inner_lr):
        raise ValueError(f"inner_lr must be a finite number, got {inner_lr!r}")
    if inner_lr < 0 and not allow_negative:
        raise ValueError(f"inner_lr must be >= 0 (the inner loop descends), got {inner_lr!r}")


def _check_inner(inner_lr: float, inner_steps: int) -> None:
    _check_inner_steps(inner_steps)
    _check_inner_lr(inner_lr)


def _as_params(tasks: QuadraticTasks, params: torch.Tensor | np.ndarray | list) -> torch.Tensor:
    p = torch.as_tensor(params, dtype=DTYPE)
    if p.ndim < 1 or p.shape[-1] != tasks.dim:
        raise ValueError(f"params must have shape [..., {tasks.dim}], got {tuple(p.shape)}")
    return p


# -------------------------------------------------------------------------------- closed forms


def _apply(matrices: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Per-task matrix-vector products: ``[n, d, d]`` and ``[..., n, d]`` -> ``[..., n, d]``."""
    # One ordinary matmul per task: much faster on CPU than a batched matmul of many 2 × 2 products.
    return torch.stack([vectors[..., i, :] @ m.T for i, m in enumerate(matrices)], dim=-2)


def stable_inner_lr_limit(tasks: QuadraticTasks) -> float:
    """``2 / λ_max`` over all tasks: the inner loop converges for every task iff ``0 < α`` is below it."""
    return 2.0 / torch.linalg.eigvalsh(tasks.curvatures).max().item()


def contraction(tasks: QuadraticTasks, *, inner_lr: float, inner_steps: int) -> torch.Tensor:
    """``[n, d, d]``: ``P_iᵏ = (I − αA_i)ᵏ``, the Jacobian ``∂θ′_i/∂θ`` of ``k`` inner steps."""
    _check_inner(inner_lr, inner_steps)
    eye = torch.eye(tasks.dim, dtype=DTYPE)
    return torch.linalg.matrix_power(eye - inner_lr * tasks.curvatures, int(inner_steps))


def support_losses(tasks: QuadraticTasks, params: torch.Tensor) -> torch.Tensor:
    """``L_S_i(θ)`` for every task: params ``[..., d]`` -> ``[..., n]``."""
    d = _as_params(tasks, params)[..., None, :] - tasks.centres
    return 0.5 * (d * _apply(tasks.curvatures, d)).sum(-1)


def query_losses(tasks: QuadraticTasks, adapted: torch.Tensor) -> torch.Tensor:
    """``L_Q_i(θ′_i)``: adapted ``[..., n, d]`` (one point per task) -> ``[..., n]``."""
    d = torch.as_tensor(adapted, dtype=DTYPE) - tasks.query_centres
    return 0.5 * (d * _apply(tasks.curvatures, d)).sum(-1)


def adapt(tasks: QuadraticTasks, params: torch.Tensor, *, inner_lr: float, inner_steps: int) -> torch.Tensor:
    """``θ′_i = c_i + P_iᵏ (θ − c_i)`` for every task: params ``[..., d]`` -> adapted ``[..., n, d]``."""
    Pk = contraction(tasks, inner_lr=inner_lr, inner_steps=inner_steps)
    d = _as_params(tasks, params)[..., None, :] - tasks.centres
    return tasks.centres + _apply(Pk, d)


def inner_path(tasks: QuadraticTasks, params: torch.Tensor, *, inner_lr: float, inner_steps: int) -> torch.Tensor:
    """Every inner iterate ``θ⁽⁰⁾ = θ, …, θ⁽ᵏ⁾ = θ′_i``: params ``[d]`` -> ``[n, k + 1, d]``."""
    _check_inner(inner_lr, inner_steps)
    p = _as_params(tasks, params)
    if p.ndim != 1:
        raise ValueError(f"params must have shape [{tasks.dim}] here, got {tuple(p.shape)}")
    steps = [adapt(tasks, p, inner_lr=inner_lr, inner_steps=j) for j in range(int(inner_steps) + 1)]
    return torch.stack(steps, dim=1)


def meta_objective(tasks: QuadraticTasks, params: torch.Tensor, *, inner_lr: float, inner_steps: int) -> torch.Tensor:
    """``F(θ) = Σ_i L_Q_i(θ′_i)`` in closed form: params ``[..., d]`` -> ``[...]``."""
    adapted = adapt(tasks, params, inner_lr=inner_lr, inner_steps=inner_steps)
    return query_losses(tasks, adapted).sum(-1)


def meta_gradient(tasks: QuadraticTasks, params: torch.Tensor, *, inner_lr: float, inner_steps: int) -> torch.Tensor:
    """The derived ``∇F(θ) = Σ_i P_iᵏ A_i (θ′_i − q_i)``: params ``[..., d]`` -> ``[..., d]``.

    ``P_iᵏ`` is the product of the ``k`` factors ``(I − αH_j)`` with ``H_j = ∇²L_S_i = A_i``.
    """
    Pk = contraction(tasks, inner_lr=inner_lr, inner_steps=inner_steps)
    residual = adapt(tasks, params, inner_lr=inner_lr, inner_steps=inner_steps) - tasks.query_centres
    return _apply(Pk @ tasks.curvatures, residual).sum(-2)


def maml_curvatures(tasks: QuadraticTasks, *, inner_lr: float, inner_steps: int) -> torch.Tensor:
    """``[n, d, d]``: ``M_i = P_iᵏ A_i P_iᵏ``, the curvature of ``L_Q_i(θ′_i(θ))`` as a function of ``θ``."""
    Pk = contraction(tasks, inner_lr=inner_lr, inner_steps=inner_steps)
    return Pk @ tasks.curvatures @ Pk


def maml_optimum(tasks: QuadraticTasks, *, inner_lr: float, inner_steps: int) -> torch.Tensor:
    """``[d]``: ``θ* = (Σ M_i)⁻¹ Σ_i [M_i c_i + P_iᵏ A_i (q_i − c_i)]``, the minimiser of :func:`meta_objective`.

    Raises ``ValueError`` if ``Σ M_i`` is singular (then the minimiser is not unique), which happens
    only when ``α = 1/λ`` annihilates a direction shared by every task.
    """
    Pk = contraction(tasks, inner_lr=inner_lr, inner_steps=inner_steps)
    M = Pk @ tasks.curvatures @ Pk
    total = M.sum(0)
    cond = torch.linalg.cond(total).item()
    if not math.isfinite(cond) or cond > 1e12:
        raise ValueError(
            f"Σ M_i is singular (condition number {cond:.3g} > 1e12) at inner_lr={inner_lr}, "
            f"inner_steps={inner_steps}: the MAML optimum is not unique"
        )
    shift = torch.einsum("nij,njk,nk->ni", Pk, tasks.curvatures, tasks.query_centres - tasks.centres)
    rhs = torch.einsum("nij,nj->i", M, tasks.centres) + shift.sum(0)
    return torch.linalg.solve(total, rhs)


def joint_optimum(tasks: QuadraticTasks) -> torch.Tensor:
    """``[d]``: ``(Σ A_i)⁻¹ Σ A_i q_i``, the minimiser of ``Σ_i L_Q_i(θ)`` (one model for all tasks, no adaptation)."""
    rhs = torch.einsum("nij,nj->i", tasks.curvatures, tasks.query_centres)
    return torch.linalg.solve(tasks.curvatures.sum(0), rhs)


# ------------------------------------------------------------- the same thing the deep-learning way


def unrolled_meta_objective(tasks: QuadraticTasks, params: torch.Tensor, *, inner_lr: float, inner_steps: int) -> torch.Tensor:
    """``F(θ)`` computed as a network would: ``k`` autograd steps per task with ``create_graph=True``.

    params: ``[d]`` (may require grad). Returns a scalar whose graph reaches back through every inner
    step, so ``torch.autograd.grad`` of it is the exact (second-order) MAML meta-gradient.
    """
    _check_inner(inner_lr, inner_steps)
    params = _as_params(tasks, params)
    if params.ndim != 1:
        raise ValueError(f"params must have shape [{tasks.dim}] here, got {tuple(params.shape)}")
    if not params.requires_grad:  # a plain evaluation (e.g. finite differences) still needs inner gradients
        params = params.detach().requires_grad_(True)
    total = torch.zeros((), dtype=DTYPE)
    for A, c, q in zip(tasks.curvatures, tasks.centres, tasks.query_centres):
        adapted = params
        for _ in range(inner_steps):
            support_loss = 0.5 * (adapted - c) @ A @ (adapted - c)
            (grad,) = torch.autograd.grad(support_loss, adapted, create_graph=True)
            adapted = adapted - inner_lr * grad
        total = total + 0.5 * (adapted - q) @ A @ (adapted - q)  # query loss at θ′
    return total


def autograd_meta_gradient(tasks: QuadraticTasks, params: torch.Tensor, *, inner_lr: float, inner_steps: int) -> torch.Tensor:
    """``[d]``: ``∇F(θ)`` by backpropagating through :func:`unrolled_meta_objective`."""
    p = _as_params(tasks, params).detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(unrolled_meta_objective(tasks, p, inner_lr=inner_lr, inner_steps=inner_steps), p)
    return grad


def central_differences(f: Callable[[torch.Tensor], torch.Tensor], params: torch.Tensor, h: float = 1e-3) -> torch.Tensor:
    """``[d]``: ``(f(θ + h e_j) − f(θ − h e_j)) / 2h`` for each coordinate ``j``; ``f`` maps ``[d]`` to a scalar.

    For a quadratic ``f`` the truncation error is exactly zero, so a large ``h`` only reduces round-off.
    """
    if not (isinstance(h, (int, float)) and math.isfinite(h) and h > 0):
        raise ValueError(f"h must be a finite number > 0, got {h!r}")
    p = torch.as_tensor(params, dtype=DTYPE)
    eye = torch.eye(p.shape[-1], dtype=DTYPE)
    return torch.stack([(f(p + h * e) - f(p - h * e)) / (2 * h) for e in eye])


def meta_gradient_descent(
    tasks: QuadraticTasks,
    params: torch.Tensor,
    *,
    inner_lr: float,
    inner_steps: int,
    meta_lr: float | None = None,
    meta_steps: int = 500,
    tolerance: float = 1e-13,
) -> torch.Tensor:
    """Plain gradient descent ``θ ← θ − β ∇F(θ)`` with autograd through the unrolled inner loop; returns ``[d]``.

    ``meta_lr`` defaults to ``1 / λ_max(Σ M_i)``, the largest step that is safe for this quadratic.
    Stops after ``meta_steps`` steps or once ``‖∇F(θ)‖_∞ < tolerance``.
    """
    _check_inner(inner_lr, inner_steps)
    if meta_lr is None:
        total = maml_curvatures(tasks, inner_lr=inner_lr, inner_steps=inner_steps).sum(0)
        meta_lr = 1.0 / torch.linalg.eigvalsh(total).max().item()
    if not (math.isfinite(meta_lr) and meta_lr > 0):
        raise ValueError(f"meta_lr must be a finite number > 0, got {meta_lr!r}")
    if isinstance(meta_steps, bool) or not isinstance(meta_steps, int) or meta_steps < 0:
        raise ValueError(f"meta_steps must be an integer >= 0, got {meta_steps!r}")
    p = _as_params(tasks, params).detach().clone()
    for _ in range(meta_steps):
        grad = autograd_meta_gradient(tasks, p, inner_lr=inner_lr, inner_steps=inner_steps)
        if grad.abs().max() < tolerance:
            break
        p = p - meta_lr * grad
    return p


# ------------------------------------------------------------------------------ slider callbacks


def inner_lr_slider_range(tasks: QuadraticTasks) -> tuple[float, float, float]:
    """``(min, max, step)`` for the α slider: from 0 (joint training) to just below ``2 / λ_max``."""
    top = math.floor((stable_inner_lr_limit(tasks) - 1e-9) / INNER_LR_STEP - 1) * INNER_LR_STEP
    return 0.0, round(top, 10), INNER_LR_STEP


def plot_extent(tasks: QuadraticTasks, margin: float = 1.5) -> tuple[float, float, float, float]:
    """``(xmin, xmax, ymin, ymax)``: a fixed window around every task optimum, so slider moves don't rescale."""
    pts = torch.cat([tasks.centres, tasks.query_centres])
    lo, hi = pts.min(0).values - margin, pts.max(0).values + margin
    return lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item()


@dataclass(frozen=True)
class Landscape:
    """Everything the notebook's contour figure shows for one ``(α, k)``; numpy arrays, ``n`` tasks.

    maml_optimum, inner_paths (``[n, k+1, 2]``, starting at the MAML optimum) and meta_loss
    (``[G, G]`` on ``grid_x × grid_y``) are ``None`` when ``message`` explains why they cannot be drawn.
    """

    inner_lr: float
    inner_steps: int
    stable_limit: float
    task_centres: np.ndarray
    task_curvatures: np.ndarray
    joint_optimum: np.ndarray
    maml_optimum: np.ndarray | None
    inner_paths: np.ndarray | None
    grid_x: np.ndarray
    grid_y: np.ndarray
    meta_loss: np.ndarray | None
    message: str | None


def landscape(tasks: QuadraticTasks, inner_lr: float, inner_steps: int, *, grid: int = 120) -> Landscape:
    """Slider callback, data half: the MAML picture at ``(inner_lr, inner_steps)`` for 2-D tasks.

    ``inner_lr`` outside ``[0, 2/λ_max)`` is not an error here: the picture carries a ``message`` instead.
    """
    if tasks.dim != 2:
        raise ValueError(f"landscape draws 2-D tasks only, got dimension {tasks.dim}")
    _check_inner_lr(inner_lr, allow_negative=True)  # a negative α gets a message in the figure
    _check_inner_steps(inner_steps)
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an integer >= 2, got {grid!r}")
    limit = stable_inner_lr_limit(tasks)
    x0, x1, y0, y1 = plot_extent(tasks)
    gx, gy = np.linspace(x0, x1, grid), np.linspace(y0, y1, grid)
    common = dict(
        inner_lr=float(inner_lr), inner_steps=int(inner_steps), stable_limit=limit,
        task_centres=tasks.centres.numpy(), task_curvatures=tasks.curvatures.numpy(),
        joint_optimum=joint_optimum(tasks).numpy(), grid_x=gx, grid_y=gy,
    )
    if inner_lr < 0:
        msg = f"α = {inner_lr:.3g} < 0: the inner loop would climb the support loss.\nChoose 0 ≤ α < 2/λ_max = {limit:.3g}."
        return Landscape(**common, maml_optimum=None, inner_paths=None, meta_loss=None, message=msg)
    if inner_lr >= limit:
        msg = (f"α = {inner_lr:.3g} is outside the stable range 0 ≤ α < 2/λ_max = {limit:.3g}:\n"
               f"|1 − αλ_max| ≥ 1, so the inner loop does not converge. Choose a smaller α.")
        return Landscape(**common, maml_optimum=None, inner_paths=None, meta_loss=None, message=msg)
    try:
        theta = maml_optimum(tasks, inner_lr=inner_lr, inner_steps=int(inner_steps))
    except ValueError:
        msg = f"At α = {inner_lr:.3g}, k = {inner_steps} the meta-objective is flat in some direction:\nthe MAML optimum is not unique."
        return Landscape(**common, maml_optimum=None, inner_paths=None, meta_loss=None, message=msg)
    return Landscape(
        **common,
        maml_optimum=theta.numpy(),
        inner_paths=inner_path(tasks, theta, inner_lr=inner_lr, inner_steps=int(inner_steps)).numpy(),
        meta_loss=_meta_loss_on_grid(tasks, contraction(tasks, inner_lr=inner_lr, inner_steps=int(inner_steps)), gx, gy),
        message=None,
    )


def _meta_loss_on_grid(tasks: QuadraticTasks, Pk: torch.Tensor, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """:func:`meta_objective` on the grid ``gx × gy`` -> ``[len(gy), len(gx)]``, in NumPy.

    (Torch would split these many tiny products over threads, which is slow when the CPU is busy.)
    """
    points = np.stack(np.meshgrid(gx, gy, indexing="xy"), axis=-1)  # [G_y, G_x, 2]
    total = np.zeros(points.shape[:-1])
    for P, A, c, q in zip(Pk.numpy(), tasks.curvatures.numpy(), tasks.centres.numpy(), tasks.query_centres.numpy()):
        residual = c - q + (points - c) @ P.T  # θ′_i − q_i
        total += 0.5 * ((residual @ A) * residual).sum(-1)
    return total


def _ellipse(centre: np.ndarray, curvature: np.ndarray, level: float = 0.5) -> np.ndarray:
    """``[100, 2]`` points on ``½(θ − c)ᵀA(θ − c) = level``."""
    vals, vecs = np.linalg.eigh(curvature)
    t = np.linspace(0, 2 * np.pi, 100)
    circle = np.stack([np.cos(t), np.sin(t)], axis=-1) * np.sqrt(2 * level / vals)
    return centre + circle @ vecs.T


def plot_landscape(tasks: QuadraticTasks, inner_lr: float, inner_steps: int, ax: Axes | None = None, *,
                   legend: bool = True) -> Figure:
    """Slider callback, drawing half: contours of the meta-objective ``F`` with the points of :func:`landscape`.

    Draws each task's optimum (star) and a level set of its loss (thin ellipse), the joint-training
    optimum (black cross), the MAML initialisation θ* (white circle) and the ``k`` inner steps from θ*
    to each adapted point θ′_i (arrows). Returns the figure (a new one if ``ax`` is ``None``; it is not
    registered with pyplot, so a notebook shows it once, when it is returned).
    """
    data = landscape(tasks, inner_lr, inner_steps)
    if ax is None:
        fig = Figure(figsize=(8.0, 5.2), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    if data.meta_loss is not None:
        lo, hi = float(data.meta_loss.min()), float(data.meta_loss.max())
        levels = lo + (hi - lo) * np.geomspace(1e-3, 1, 14)
        ax.contourf(data.grid_x, data.grid_y, data.meta_loss, levels=np.r_[lo, levels], cmap="Greys_r", alpha=0.3)
        ax.contour(data.grid_x, data.grid_y, data.meta_loss, levels=levels, colors="grey", linewidths=0.4)
    for i, (c, A) in enumerate(zip(data.task_centres, data.task_curvatures)):
        colour = colours[i % len(colours)]
        ring = _ellipse(c, A)
        ax.plot(ring[:, 0], ring[:, 1], color=colour, lw=1, alpha=0.8)
        ax.plot(*c, marker="*", ms=15, color=colour, mec="black", mew=0.6, ls="none", label=f"task {i + 1} optimum $c_{i + 1}$")
        if data.inner_paths is not None and data.inner_steps > 0:
            path = data.inner_paths[i]
            ax.plot(path[:, 0], path[:, 1], color=colour, lw=1, ls=":")
            for a, b in zip(path[:-1], path[1:]):
                ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="->", color=colour, lw=1.6))
            ax.plot(*path[-1], marker="o", ms=6, color=colour, mec="black", mew=0.6, ls="none")
    if data.maml_optimum is not None:
        ax.plot(*data.maml_optimum, marker="o", ms=13, color="white", mec="black", mew=1.5, ls="none", label="MAML initialisation θ*")
        ax.plot([], [], marker="o", ms=6, color="grey", mec="black", mew=0.6, ls="none", label="adapted θ′ᵢ after k steps")
    ax.plot(*data.joint_optimum, marker="X", ms=9, color="black", ls="none", zorder=5, label="joint training (α = 0)")
    if data.message is not None:
        ax.text(0.5, 0.5, data.message, transform=ax.transAxes, ha="center", va="center", fontsize=10,
                bbox=dict(boxstyle="round", fc="lightyellow", ec="firebrick"))
    ax.set_xlim(data.grid_x[0], data.grid_x[-1])
    ax.set_ylim(data.grid_y[0], data.grid_y[-1])
    ax.set_aspect("equal")
    ax.set_xlabel(r"$\theta_1$ (parameter units)")
    ax.set_ylabel(r"$\theta_2$ (parameter units)")
    ax.set_title(f"MAML on {len(data.task_centres)} quadratic tasks: α = {data.inner_lr:.2f}, k = {data.inner_steps} inner step(s)")
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, title="contours: meta-objective F(θ)", title_fontsize=9)
    return fig
