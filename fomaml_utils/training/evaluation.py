r"""Meta-test evaluation: adapt to many new tasks and report the query score after every step.

For each task, starting from the meta-learned initialisation θ, take ``inner_steps`` plain SGD steps
on the support set (first order, no graph kept — at test time nothing is backpropagated through the
adaptation) and record the query score at θ′₀ = θ, θ′₁, …, θ′ₖ: accuracy for classification, mean
squared error for regression. Scores are averaged over ``num_tasks`` tasks with a 95 % confidence
interval for the mean, ``t · s / √n`` (``s`` the sample standard deviation, ``t`` the 97.5 % quantile of
Student's t with ``n − 1`` degrees of freedom: 2.045 for 30 tasks, 1.962 for 1,000). The interval is over
test tasks only: it leaves out the spread over training seeds.

Usage::

    result = evaluate(model, FewShotSampler("unseen-digits", "test", 5, 1, 15, seed=1),
                      inner_lr=0.4, inner_steps=10, num_tasks=1000)
    print(result.summary())        # "78.4 % ± 0.9" after the last step
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn
from torch.nn import functional as F

from fomaml_utils.algorithms.losses import query_output
from fomaml_utils.algorithms.maml import Implementation, check_hyperparameters, resolve_implementation
from fomaml_utils.algorithms.mlp_lowrank import lowrank_query_scores
from fomaml_utils.algorithms.registry import Algorithm, check_meta_state, functional_inner_step, get_algorithm
from fomaml_utils.data.taskbatch import TaskBatch

__all__ = ["Evaluation", "evaluate", "mean_confidence_interval", "TaskSampler"]


class TaskSampler(Protocol):
    """Anything with ``.sample(num_tasks) -> TaskBatch`` (``FewShotSampler``, ``SinusoidSampler``)."""

    def sample(self, num_tasks: int) -> TaskBatch: ...


@functools.lru_cache(maxsize=None)
def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t distribution with ``df`` degrees of freedom.

    Newton's method on the distribution function, itself Simpson's rule over the density in float64:
    accurate to about 1e-9 (12.7062 for p = 0.975, df = 1; 2.0452 for df = 29; the normal 1.9600 as df grows).
    """
    if not 0.5 < p < 1 or df < 1:
        raise ValueError(f"need 0.5 < p < 1 and df >= 1, got p={p!r}, df={df!r}")
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(x: torch.Tensor | float):
        return torch.exp(log_norm - (df + 1) / 2 * torch.log1p(torch.as_tensor(x, dtype=torch.float64) ** 2 / df))

    def cdf(t: float) -> float:
        x = torch.linspace(0.0, t, 4001, dtype=torch.float64)  # Simpson's rule on 4,000 intervals
        w = torch.ones_like(x)
        w[1:-1:2], w[2:-1:2] = 4.0, 2.0
        return 0.5 + (t / 4000 / 3) * float((w * density(x)).sum())

    t = statistics.NormalDist().inv_cdf(p)
    for _ in range(100):
        step = (cdf(t) - p) / float(density(t))
        t -= step
        if abs(step) < 1e-12 * max(1.0, t):
            break
    return t


def mean_confidence_interval(values: Sequence[float] | torch.Tensor) -> tuple[float, float]:
    """``(mean, half_width)`` of a 95 % confidence interval for the mean of ``values``.

    ``half_width = t · s / √n`` with ``s`` the sample standard deviation (``n − 1`` in the denominator) and
    ``t`` Student's 97.5 % quantile with ``n − 1`` degrees of freedom (the normal 1.96 is too narrow for
    few values: 2.045 for 30). With a single value the half-width is ``nan`` (the spread is unknown).
    """
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    n = values.numel()
    if n == 0:
        raise ValueError("values must hold at least one number")
    mean = values.mean().item()
    if n == 1:
        return mean, math.nan
    return mean, student_t_quantile(0.975, n - 1) * values.std(correction=1).item() / math.sqrt(n)


@dataclass
class Evaluation:
    """Query scores after 0..k adaptation steps (or after k only), averaged over ``num_tasks`` tasks.

    steps:     the numbers of steps scored: ``[0, 1, ..., k]``, or ``[k]`` from ``evaluate(..., every_step=False)``.
    mean:      mean query score after each of ``steps``; accuracy as a fraction in [0, 1]
               (``metric == "accuracy"``) or mean squared error (``metric == "mse"``).
    ci95:      95 % confidence half-width of each mean (same units).
    metric:    ``"accuracy"`` or ``"mse"``.
    num_tasks: tasks evaluated.
    per_task:  ``[num_tasks, len(steps)]`` float64, each task's score after each of ``steps`` (not in ``to_dict``).
    """

    steps: list[int]
    mean: list[float]
    ci95: list[float]
    metric: str
    num_tasks: int
    per_task: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def summary(self, step: int | None = None) -> str:
        """The score after ``step`` steps (default: the last) as text: ``"78.4 % ± 0.9"`` or ``"0.123 ± 0.010"``."""
        if step is None:
            step = self.steps[-1]
        if step not in self.steps:
            scored = f"0..{self.steps[-1]}" if self.steps == list(range(len(self.steps))) else str(self.steps)[1:-1]
            raise ValueError(f"step must be one of {scored} (the steps scored), got {step!r}")
        i = self.steps.index(step)
        mean, ci = self.mean[i], self.ci95[i]
        scale, fmt, unit = (100, ".1f", " %") if self.metric == "accuracy" else (1, ".3f", "")
        if not math.isfinite(ci):  # one task: no spread to estimate an interval from
            return f"{scale * mean:{fmt}}{unit} (no interval from {self.num_tasks} task)"
        return f"{scale * mean:{fmt}}{unit} ± {scale * ci:{fmt}}"

    def to_dict(self) -> dict:
        """The summary numbers as plain Python types (JSON-friendly); ``per_task`` is left out."""
        return {"steps": list(self.steps), "mean": list(self.mean), "ci95": list(self.ci95),
                "metric": self.metric, "num_tasks": self.num_tasks}


def _scores_along_adaptation(model: nn.Module, algorithm: Algorithm, params: dict[str, torch.Tensor],
                             meta_state: dict[str, torch.Tensor], support_x: torch.Tensor, support_y: torch.Tensor,
                             query_x: torch.Tensor, query_y: torch.Tensor, *, inner_lr: float,
                             inner_steps: int, every_step: bool = True) -> torch.Tensor:
    """One task (no task dimension): its query score at θ′₀ … θ′ₖ, ``[inner_steps + 1]``; with
    ``every_step=False`` at θ′ₖ only, ``[1]``.

    Written with ``torch.func.grad`` so that it can be ``vmap``-ed over tasks as it is.
    """
    classification = not query_y.is_floating_point()
    names = algorithm.adapted_names(model, params)

    def query_score(p: dict[str, torch.Tensor]) -> torch.Tensor:
        out = query_output(model, p, query_x, support_x)
        if classification:
            return (out.argmax(dim=-1) == query_y).to(out.dtype).mean()
        return F.mse_loss(out, query_y)

    scores = []
    for step in range(inner_steps + 1):
        if step > 0:
            params = functional_inner_step(model, algorithm, params, meta_state, support_x, support_y, names=names,
                                           inner_lr=inner_lr, first_order=True)
        if every_step or step == inner_steps:
            scores.append(query_score(params))
    return torch.stack(scores)


def evaluate(model: nn.Module, sampler: TaskSampler, *, inner_lr: float, inner_steps: int, num_tasks: int = 1000,
             tasks_per_batch: int = 100, params: Mapping[str, torch.Tensor] | None = None,
             implementation: Implementation = "auto", algorithm: str | Algorithm = "fomaml",
             meta_state: Mapping[str, torch.Tensor] | None = None, every_step: bool = True) -> Evaluation:
    """Adapt to ``num_tasks`` tasks from ``sampler`` and report the query score after 0..``inner_steps`` steps.

    ``params``: the initial weights θ (default: the model's own parameters, which are not modified).
    Tasks are drawn ``tasks_per_batch`` at a time. ``implementation`` picks how a batch is adapted, as for
    ``meta_gradient``; ``"auto"`` takes ``"lowrank"`` for MLPs (``mlp_lowrank.lowrank_query_scores``, all
    tasks at once with batched low-rank updates, several times faster than ``vmap``) and ``"loop"`` (one
    task at a time) for convolutional networks, which ``vmap`` slows down on CPU. All three give the same
    scores up to float rounding. The sampler's own generator decides which tasks are drawn, so a freshly
    seeded sampler gives the same numbers.

    ``algorithm`` says how a task adapts: plain SGD on every weight for ``"fomaml"``, ``"maml"`` and
    ``"reptile"`` (the default: they differ only in training), the output layer only for ANIL, the learned
    step sizes ``meta_state`` for Meta-SGD (then ``inner_lr`` is unused).

    ``every_step=False`` scores the queries after the last step only (``steps == [inner_steps]``): the same
    adaptation and the same final scores, bit for bit, without the ``inner_steps`` query passes before it. The
    per-task loop and ``vmap`` save the time of those passes; the low-rank path computes every step's scores
    anyway and keeps the last.
    """
    check_hyperparameters(inner_lr=inner_lr, inner_steps=inner_steps, algorithm=algorithm)
    algorithm = get_algorithm(algorithm)
    implementation = resolve_implementation(model, implementation, algorithm)
    for name, value in (("num_tasks", num_tasks), ("tasks_per_batch", tasks_per_batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(every_step, bool):
        raise ValueError(f"every_step must be True or False, got {every_step!r}")
    if not hasattr(sampler, "sample"):
        raise ValueError(f"sampler must have a .sample(num_tasks) method, got {type(sampler).__name__}")
    if params is None:
        params = dict(model.named_parameters())
    params = {k: p.detach() for k, p in params.items()}
    meta_state = {k: s.detach() for k, s in check_meta_state(algorithm, params, meta_state).items()}
    device = next(iter(params.values())).device
    score_one = lambda p, sx, sy, qx, qy: _scores_along_adaptation(  # noqa: E731
        model, algorithm, p, meta_state, sx, sy, qx, qy, inner_lr=inner_lr, inner_steps=inner_steps,
        every_step=every_step)
    chunks, metric, done = [], None, 0
    while done < num_tasks:
        batch = sampler.sample(min(tasks_per_batch, num_tasks - done)).to(device)
        metric = "mse" if batch.query_y.is_floating_point() else "accuracy"
        if implementation == "lowrank":
            chunk = lowrank_query_scores(model, params, batch, inner_lr=inner_lr, inner_steps=inner_steps,
                                         algorithm=algorithm)
            chunk = chunk if every_step else chunk[:, -1:]
        elif implementation == "vmap":
            chunk = torch.func.vmap(score_one, in_dims=(None, 0, 0, 0, 0))(params, *batch)
        else:
            chunk = torch.stack([score_one(params, *task) for task in zip(*batch)])
        chunks.append(chunk.detach().to("cpu", torch.float64))
        done += batch.num_tasks
    per_task = torch.cat(chunks)
    steps = list(range(inner_steps + 1)) if every_step else [inner_steps]
    means, cis = zip(*(mean_confidence_interval(per_task[:, i]) for i in range(len(steps))))
    return Evaluation(steps=steps, mean=list(means), ci95=list(cis), metric=metric,
                      num_tasks=per_task.shape[0], per_task=per_task)
