"""Sinusoid regression, the MAML paper's toy problem (Finn et al. 2017, section 5.1).

A task is a sine wave ``y = A sin(x - φ)`` with amplitude ``A ~ U[0.1, 5]`` and phase ``φ ~ U[0, π]``;
inputs are drawn ``x ~ U[-5, 5]``. A learner sees ``shots`` points of a new wave (the support set)
and is scored by its mean squared error on ``queries`` other points of the same wave (the query set).

This module holds three things the sinusoid notebook needs and nothing else:

* :class:`SinusoidSampler` – draws batches of tasks as a :class:`~fomaml_utils.data.taskbatch.TaskBatch`;
* :func:`train_pretrained` – the "pretrained" baseline: one regressor fitted to all tasks jointly;
* :func:`plot_adaptation` – the slider callback: a task's curve before and after ``steps`` gradient
  steps from each initialisation (no training inside; it only runs the inner loop).

Example::

    sampler = SinusoidSampler(shots=10, queries=10, seed=0)
    batch = sampler.sample(25)                     # support_x, support_y, ...: [25, 10, 1]
    batch, amplitude, phase = sampler.sample(25, return_params=True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn
from torch.nn import functional as F

from fomaml_utils.algorithms.maml import Params, adapt
from fomaml_utils.data.taskbatch import TaskBatch

AMPLITUDE_RANGE: tuple[float, float] = (0.1, 5.0)
PHASE_RANGE: tuple[float, float] = (0.0, math.pi)
X_RANGE: tuple[float, float] = (-5.0, 5.0)


def sinusoid(x: torch.Tensor, amplitude: torch.Tensor | float, phase: torch.Tensor | float) -> torch.Tensor:
    """``amplitude * sin(x - phase)``, broadcasting (e.g. ``x`` ``[T, K, 1]``, amplitude ``[T, 1, 1]``)."""
    return amplitude * torch.sin(x - phase)


class SampledTasks(NamedTuple):
    """A batch of sinusoid tasks with the wave behind each one.

    batch:     the tasks; every tensor ``[T, shots or queries, 1]`` float32.
    amplitude: ``[T]`` float32, ``A`` of each task.
    phase:     ``[T]`` float32, ``φ`` of each task (radians).
    """

    batch: TaskBatch
    amplitude: torch.Tensor
    phase: torch.Tensor


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_range(name: str, value: object, *, min_low: float | None = None) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) of numbers, got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(f"{name} must satisfy low < high (both finite), got {value!r}")
    if min_low is not None and low < min_low:
        raise ValueError(f"{name} must start at {min_low} or above, got {value!r}")
    return low, high


class SinusoidSampler:
    """Draws sinusoid regression tasks from its own seeded random stream.

    Two samplers built with the same arguments return the same tasks in the same order, whatever
    else the program does with torch's global generator. Use different seeds for the tasks you
    meta-train on and the held-out tasks you evaluate on.

    Args:
        shots:   support points per task, ``K`` (positive integer).
        queries: query points per task (positive integer); drawn independently of the support points.
        seed:    non-negative integer seeding this sampler's ``torch.Generator``.
        amplitude_range, phase_range, x_range: ``(low, high)`` of the uniform distributions; the
            defaults are the MAML paper's ``[0.1, 5]``, ``[0, π]`` and ``[-5, 5]``.
    """

    def __init__(
        self,
        shots: int,
        queries: int,
        seed: int = 0,
        *,
        amplitude_range: tuple[float, float] = AMPLITUDE_RANGE,
        phase_range: tuple[float, float] = PHASE_RANGE,
        x_range: tuple[float, float] = X_RANGE,
    ):
        self.shots = _check_positive_int("shots", shots)
        self.queries = _check_positive_int("queries", queries)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self.amplitude_range = _check_range("amplitude_range", amplitude_range, min_low=0.0)
        self.phase_range = _check_range("phase_range", phase_range)
        self.x_range = _check_range("x_range", x_range)
        self.generator = torch.Generator().manual_seed(seed)

    def __repr__(self) -> str:
        return f"SinusoidSampler(shots={self.shots}, queries={self.queries}, seed={self.seed})"

    def reset(self) -> None:
        """Rewind to the first batch this sampler ever returned."""
        self.generator.manual_seed(self.seed)

    def _uniform(self, shape: tuple[int, ...], bounds: tuple[float, float]) -> torch.Tensor:
        low, high = bounds
        return low + (high - low) * torch.rand(shape, generator=self.generator, dtype=torch.float32)

    def sample(self, num_tasks: int, return_params: bool = False) -> TaskBatch | SampledTasks:
        """Draw ``num_tasks`` new tasks.

        Returns a :class:`TaskBatch` whose four tensors are ``[num_tasks, shots|queries, 1]`` float32,
        or, with ``return_params=True``, a :class:`SampledTasks` ``(batch, amplitude, phase)``.
        """
        _check_positive_int("num_tasks", num_tasks)
        amplitude = self._uniform((num_tasks,), self.amplitude_range)
        phase = self._uniform((num_tasks,), self.phase_range)
        x = self._uniform((num_tasks, self.shots + self.queries, 1), self.x_range)
        y = sinusoid(x, amplitude[:, None, None], phase[:, None, None])
        k = self.shots
        batch = TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:])
        return SampledTasks(batch, amplitude, phase) if return_params else batch


# --------------------------------------------------------------------------------------------------
# The pretrained baseline
# --------------------------------------------------------------------------------------------------


def pooled(batch: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """All points of all tasks in ``batch`` as one regression data set: ``x``, ``y`` both ``[N, 1]``."""
    x = torch.cat([batch.support_x, batch.query_x], dim=1).reshape(-1, 1)
    y = torch.cat([batch.support_y, batch.query_y], dim=1).reshape(-1, 1)
    return x, y


def pooled_mse(model: nn.Module, batch: TaskBatch) -> float:
    """Mean squared error of ``model`` on the pooled points of ``batch`` (no adaptation)."""
    x, y = pooled(batch)
    with torch.no_grad():
        return F.mse_loss(model(x), y).item()


def train_pretrained(
    model: nn.Module,
    sampler: SinusoidSampler,
    *,
    lr: float = 1e-3,
    iterations: int = 2000,
    tasks_per_step: int = 25,
) -> torch.Tensor:
    """Fit ``model`` to all tasks jointly: plain regression on pooled task data, with Adam.

    Each iteration draws ``tasks_per_step`` fresh tasks from ``sampler``, pools their support and
    query points (the task identity is thrown away) and takes one Adam step on the mean squared
    error. This is the MAML paper's "pretrained" baseline: the best single curve for all sine waves,
    which a few gradient steps on a new task must then fine-tune. Trains ``model`` in place.

    Returns the training loss of every iteration, ``[iterations]``.
    """
    if not (isinstance(lr, (int, float)) and 0 < lr < math.inf):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    _check_positive_int("iterations", iterations)
    _check_positive_int("tasks_per_step", tasks_per_step)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = torch.empty(iterations)
    for i in range(iterations):
        x, y = pooled(sampler.sample(tasks_per_step))
        loss = F.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses[i] = loss.detach()
    return losses


# --------------------------------------------------------------------------------------------------
# Fitted curves and the slider callback
# --------------------------------------------------------------------------------------------------

#: Ranges of the notebook's sliders; :func:`plot_adaptation` accepts exactly these.
SLIDER_LIMITS: dict[str, tuple[float, float]] = {
    "amplitude": AMPLITUDE_RANGE,
    "phase": PHASE_RANGE,
    "shots": (1, 20),
    "steps": (0, 10),
}
_GRID = torch.linspace(X_RANGE[0], X_RANGE[1], 200).unsqueeze(1)  # [200, 1], where curves are drawn


def _check_slider(name: str, value: float, *, integer: bool = False) -> None:
    low, high = SLIDER_LIMITS[name]
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise ValueError(f"{name} must lie in [{low:.3g}, {high:.3g}], got {value!r}")


def support_points(amplitude: float, phase: float, shots: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``shots`` of a fixed pool of support points of the wave ``(amplitude, phase)``.

    The ``x`` pool depends only on ``seed``, so moving the shots slider adds or removes points
    instead of redrawing them all. Returns ``x``, ``y`` both ``[shots, 1]`` float32.
    """
    _check_slider("shots", shots, integer=True)
    generator = torch.Generator().manual_seed(seed)
    low, high = X_RANGE
    pool = low + (high - low) * torch.rand(int(SLIDER_LIMITS["shots"][1]), 1, generator=generator)
    x = pool[:shots]
    return x, sinusoid(x, amplitude, phase)


def adapted_curve(
    model: nn.Module,
    params: Params,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    *,
    inner_lr: float,
    steps: int,
    grid: torch.Tensor = _GRID,
) -> torch.Tensor:
    """Predictions on ``grid`` (``[G, 1]``) after ``steps`` gradient steps on the support set.

    ``support_x``, ``support_y``: ``[K, 1]``. ``params`` is left untouched. Returns ``[G, 1]``, detached.
    """
    adapted = adapt(model, params, support_x, support_y, inner_lr=inner_lr, inner_steps=steps) if steps else params
    with torch.no_grad():
        return torch.func.functional_call(model, adapted, (grid,)).detach()


def _draw_task(ax: Axes, amplitude: float, phase: float, support_x: torch.Tensor, support_y: torch.Tensor) -> None:
    ax.plot(_GRID.squeeze(1), sinusoid(_GRID, amplitude, phase).squeeze(1), color="black", lw=2,
            label="ground truth")
    ax.scatter(support_x.squeeze(1), support_y.squeeze(1), color="black", marker="^", s=50, zorder=5,
               label=f"{len(support_x)} support points")
    ax.set_xlabel("input x")
    ax.set_ylabel("output y")
    ax.set_xlim(*X_RANGE)
    ax.set_ylim(-6.5, 6.5)


def plot_fits(
    ax: Axes,
    model: nn.Module,
    params: Params,
    *,
    amplitude: float,
    phase: float,
    shots: int,
    inner_lr: float,
    steps: tuple[int, ...] = (0, 1, 10),
    seed: int = 0,
    title: str = "",
) -> Axes:
    """One initialisation's fit to one task before and after each number of ``steps`` (paper, fig. 2).

    Draws on ``ax`` the wave, its first ``shots`` support points (:func:`support_points`) and the
    prediction of ``params`` after each entry of ``steps`` gradient steps of size ``inner_lr``.
    ``amplitude``, ``phase``, ``shots`` and every entry of ``steps`` must lie within :data:`SLIDER_LIMITS`.
    """
    _check_slider("amplitude", amplitude)
    _check_slider("phase", phase)
    for k in steps:
        _check_slider("steps", k, integer=True)
    support_x, support_y = support_points(amplitude, phase, shots, seed=seed)
    _draw_task(ax, amplitude, phase, support_x, support_y)
    for k in steps:
        curve = adapted_curve(model, params, support_x, support_y, inner_lr=inner_lr, steps=k)
        ax.plot(_GRID.squeeze(1), curve.squeeze(1), ls="--" if k == 0 else "-",
                label="before adaptation" if k == 0 else f"after {k} step{'s' * (k > 1)}")
    ax.set_title(title or f"A = {amplitude:.2f}, φ = {phase:.2f}, K = {shots}")
    return ax


def plot_adaptation(
    model: nn.Module,
    initialisations: Mapping[str, Params],
    *,
    amplitude: float,
    phase: float,
    shots: int,
    steps: int,
    inner_lr: float,
    seed: int = 0,
    ax: Axes | None = None,
) -> Axes:
    """The slider callback: every initialisation's curve after ``steps`` steps on one task.

    Draws the wave ``amplitude * sin(x - phase)``, its first ``shots`` support points
    (:func:`support_points`) and, for each named initialisation, the prediction after ``steps``
    gradient steps of size ``inner_lr`` on those points. Nothing is trained: each call only runs
    the inner loop (a few milliseconds on this small MLP). Arguments must lie within
    :data:`SLIDER_LIMITS`. Draws on ``ax`` (if ``None``, on a new ``Figure`` that pyplot never sees, so a
    widget callback may call this on any thread) and returns it.
    """
    _check_slider("amplitude", amplitude)
    _check_slider("phase", phase)
    _check_slider("shots", shots, integer=True)
    _check_slider("steps", steps, integer=True)
    if not initialisations:
        raise ValueError("initialisations must name at least one set of parameters")
    if ax is None:
        ax = Figure(figsize=(7, 4)).add_subplot()
    support_x, support_y = support_points(amplitude, phase, shots, seed=seed)
    _draw_task(ax, amplitude, phase, support_x, support_y)
    for name, params in initialisations.items():
        curve = adapted_curve(model, params, support_x, support_y, inner_lr=inner_lr, steps=steps)
        ax.plot(_GRID.squeeze(1), curve.squeeze(1), label=name)
    ax.set_title(f"After {steps} step{'s' * (steps != 1)} on K = {shots} points (A = {amplitude:.2f}, φ = {phase:.2f})")
    ax.legend(loc="upper right", fontsize="small")
    return ax
