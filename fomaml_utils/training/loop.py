r"""The meta-training loop: sample tasks, compute a meta-gradient, let a torch optimizer step.

One iteration, for meta-parameters θ (the model's own parameters) and meta step size β (``meta_lr``)::

    batch = sampler.sample(meta_batch_size)                  # T tasks
    g     = meta_gradient(model, θ, batch, algorithm, α, k)  # mean over tasks (see fomaml_utils.algorithms.maml)
    θ     ← optimizer step with gradient g                   # Adam by default, or plain SGD: θ ← θ − βg

The model is updated in place, so after ``meta_train`` it *is* the meta-learned initialisation.
Every ``val_every`` iterations the initialisation is scored on fresh tasks from ``val_sampler`` with
``fomaml_utils.training.evaluation.evaluate``. A NaN or infinite loss or gradient stops training with a
``DivergenceError`` that names the learning rates (the usual cause) and carries the history so far;
so does, for classification, a finite query loss above ``BLOWUP_FACTOR`` × chance level. With very
large step sizes (say α = 10, β = 1) the loss shoots up by many orders of magnitude and then falls
back to exactly chance level, ln(ways), with every ReLU dead: finite numbers, nothing learned.

``zero_head=True`` keeps the output layer at zero instead of meta-learning it (the "zeroing trick"
of Kao et al. 2022): task labels are assigned at random, so a learned head can at best treat all labels
alike and in practice holds a guess the inner loop must undo, while a zero head starts every class equal
and its first inner step makes each class's row proportional to the mean features of that class's
support images minus the mean over all of them: logits are dot products with the class means
(nearest-class-mean would also subtract half each mean's squared norm). That step changes only the head:
at W = 0 no gradient reaches the layers below.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from fomaml_utils.algorithms.maml import Implementation, check_hyperparameters, meta_gradient, resolve_implementation
from fomaml_utils.algorithms.models import head_name
from fomaml_utils.algorithms.registry import Algorithm, check_meta_state, get_algorithm
from fomaml_utils.seeding import seed_everything
from fomaml_utils.training.evaluation import TaskSampler, evaluate

__all__ = ["History", "DivergenceError", "meta_train", "OPTIMIZERS", "SCHEDULES", "BLOWUP_FACTOR"]

OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
SCHEDULES: tuple[str, ...] = ("constant", "cosine")

BLOWUP_FACTOR = 10.0
"""A classification run counts as diverged once a query loss exceeds this many times chance level, ln(ways):
16.1 for 5 ways, where a healthy run of this series stays below 3."""


@dataclass
class History:
    """What happened during meta-training, as plain lists (JSON-friendly via ``to_dict``).

    iteration:      meta-step numbers 1, 2, …; the entries below with the same index belong to it.
    query_loss:     mean query loss at the adapted weights over that step's meta-batch, measured
                    before the step's update.
    query_accuracy: the same for accuracy (fraction in [0, 1]); empty for regression.
    seconds:        training time (wall clock, validation excluded) since the start, after that step.
    val_iteration:  number of meta-steps taken when validation ran (0 = the initial weights).
    val_accuracy:   mean validation query accuracy after ``eval_inner_steps`` steps (classification).
    val_loss:       mean validation query MSE after ``eval_inner_steps`` steps (regression).
    val_ci95:       95 % confidence half-width of each validation mean.
    """

    iteration: list[int] = field(default_factory=list)
    query_loss: list[float] = field(default_factory=list)
    query_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    val_iteration: list[int] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_ci95: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        """Every field as a list of Python numbers (a fresh copy), ready for ``json.dump`` or a checkpoint."""
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> "History":
        """The inverse of ``to_dict`` (unknown keys are an error)."""
        return cls(**{k: list(v) for k, v in data.items()})


class DivergenceError(RuntimeError):
    """Meta-training produced a NaN or infinite loss or gradient, or (classification) a query loss above
    ``BLOWUP_FACTOR × ln(ways)``; ``.history`` holds what came before."""

    def __init__(self, message: str, history: History):
        super().__init__(message)
        self.history = history


def _check_positive_int(name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_arguments(*, meta_lr: float, meta_batch_size: int, iterations: int, val_every: int, val_tasks: int,
                     eval_inner_steps: int | None, optimizer: str, sampler: object,
                     val_sampler: object | None, zero_head: bool, meta_lr_schedule: str) -> None:
    if isinstance(meta_lr, bool) or not isinstance(meta_lr, (int, float)) or not math.isfinite(meta_lr) \
            or meta_lr <= 0:
        raise ValueError(f"meta_lr must be a finite number > 0, got {meta_lr!r}")
    _check_positive_int("meta_batch_size", meta_batch_size)
    _check_positive_int("iterations", iterations, minimum=0)
    _check_positive_int("val_every", val_every)
    _check_positive_int("val_tasks", val_tasks)
    if eval_inner_steps is not None:
        _check_positive_int("eval_inner_steps", eval_inner_steps, minimum=0)
    if not isinstance(zero_head, bool):
        raise ValueError(f"zero_head must be True or False, got {zero_head!r}")
    if meta_lr_schedule not in SCHEDULES:
        raise ValueError(f"meta_lr_schedule must be one of {', '.join(map(repr, SCHEDULES))}, "
                         f"got {meta_lr_schedule!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, got {optimizer!r}")
    for name, s in (("sampler", sampler), ("val_sampler", val_sampler)):
        if s is not None and not callable(getattr(s, "sample", None)):
            raise ValueError(f"{name} must have a .sample(num_tasks) method, got {type(s).__name__}")


def _divergence(history: History, iteration: int, problem: str, *, inner_lr: float,
                meta_lr: float) -> DivergenceError:
    return DivergenceError(
        f"meta-training diverged at iteration {iteration}: {problem} "
        f"(inner_lr={inner_lr:g}, meta_lr={meta_lr:g}). Try smaller learning rates, e.g. "
        f"inner_lr={inner_lr / 10:g} or meta_lr={meta_lr / 10:g}.",
        history,
    )


def _blowup_limit(ways: int) -> float:
    """The largest cross-entropy query loss a healthy ``ways``-way run reaches: ``BLOWUP_FACTOR × ln(ways)``."""
    return BLOWUP_FACTOR * math.log(ways)


def meta_train(model: nn.Module, sampler: TaskSampler, *, algorithm: str | Algorithm, inner_lr: float, meta_lr: float,
               inner_steps: int, meta_batch_size: int, iterations: int, val_sampler: TaskSampler | None = None,
               val_every: int = 100, val_tasks: int = 200, eval_inner_steps: int | None = None,
               optimizer: str = "adam", implementation: Implementation = "auto", seed: int = 0,
               progress: bool = True, device: torch.device | str | None = None, zero_head: bool = False,
               meta_lr_schedule: str = "constant", meta_state: dict[str, torch.Tensor] | None = None) -> History:
    r"""Meta-train ``model`` in place for ``iterations`` meta-steps and return the ``History``.

    ``sampler.sample(meta_batch_size)`` gives each step's ``TaskBatch``; ``algorithm`` is a name in
    ``fomaml_utils.algorithms.ALGORITHMS`` (``"fomaml"``, ``"maml"``, ``"reptile"``, ``"anil"``, ...)
    with ``inner_steps`` steps of size ``inner_lr`` (α) on each task's support set; ``optimizer``
    (``"adam"`` or ``"sgd"``) steps the model's parameters with learning rate ``meta_lr`` (β).
    ``meta_state``: what the algorithm learns besides the weights (Meta-SGD's step sizes, from
    ``get_algorithm(name).init_meta_state(params, inner_lr)``), required for such algorithms and updated
    in place by the same optimiser. With ``val_sampler``, the initialisation is evaluated on
    ``val_tasks`` fresh tasks (adapting ``eval_inner_steps`` steps, default ``inner_steps``) before
    training, every ``val_every`` steps and after the last step. ``seed`` goes to ``seed_everything``
    (the samplers have their own seeds). ``device``: where to train (default: where the model is);
    the model is moved there. ``progress``: show a ``tqdm`` bar with the running loss and accuracy.
    ``zero_head``: set the output layer (``fomaml_utils.algorithms.models.head_name``) to zero and leave it out
    of the meta-update, so every task starts from a zero head; the inner loop still adapts it.
    ``meta_lr_schedule``: ``"constant"`` keeps β; ``"cosine"`` lowers it from β to 0 along half a cosine
    over the ``iterations`` steps (``torch.optim.lr_scheduler.CosineAnnealingLR``), so the last steps are
    small and the final weights do not depend on the noise of the last few meta-batches.

    Raises ``DivergenceError`` (with ``.history`` up to the step before) on a NaN or infinite loss or
    meta-gradient, or, for classification (integer labels), as soon as a step's query loss exceeds
    ``BLOWUP_FACTOR × ln(ways)`` with ``ways`` the number of classes (largest label + 1). Regression has no
    chance level to compare with, so only NaN and infinity stop it. Raises ``ValueError`` naming the
    argument for out-of-range hyperparameters.
    """
    check_hyperparameters(inner_lr=inner_lr, inner_steps=inner_steps, algorithm=algorithm)
    algorithm = get_algorithm(algorithm)
    _check_arguments(meta_lr=meta_lr, meta_batch_size=meta_batch_size, iterations=iterations, val_every=val_every,
                     val_tasks=val_tasks, eval_inner_steps=eval_inner_steps, optimizer=optimizer, sampler=sampler,
                     val_sampler=val_sampler, zero_head=zero_head,
                     meta_lr_schedule=meta_lr_schedule)
    resolve_implementation(model, implementation, algorithm)  # validates the name before any work
    seed_everything(seed)
    if device is not None:
        model.to(device)
    params = dict(model.named_parameters())
    if not params:
        raise ValueError("model must have parameters to meta-train")
    meta_state = check_meta_state(algorithm, params, meta_state)
    device_of_model = next(iter(params.values())).device
    with torch.no_grad():
        for s in meta_state.values():
            if not s.is_leaf:
                raise ValueError("meta_state must hold leaf tensors (init_meta_state makes them), not results of ops")
            s.data = s.data.to(device_of_model)
    frozen: set[str] = set()
    if zero_head:
        head = head_name(model) + "."
        frozen = {k for k in params if k.startswith(head)}
        with torch.no_grad():
            for k in frozen:
                params[k].zero_()
    opt_class = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_class([p for k, p in params.items() if k not in frozen] + list(meta_state.values()), lr=meta_lr)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(iterations, 1))
                if meta_lr_schedule == "cosine" else None)
    eval_steps = inner_steps if eval_inner_steps is None else eval_inner_steps
    history = History()

    def validate(step: int) -> None:
        result = evaluate(model, val_sampler, inner_lr=inner_lr, inner_steps=eval_steps, num_tasks=val_tasks,
                          algorithm=algorithm, meta_state=meta_state)
        history.val_iteration.append(step)
        (history.val_accuracy if result.metric == "accuracy" else history.val_loss).append(result.mean[-1])
        history.val_ci95.append(result.ci95[-1])

    if val_sampler is not None:
        validate(0)
    elapsed = 0.0
    bar = tqdm(range(1, iterations + 1), desc=algorithm.name, disable=not progress, leave=True)
    for step in bar:
        start = time.perf_counter()
        batch = sampler.sample(meta_batch_size)
        out = meta_gradient(model, params, batch, algorithm=algorithm, inner_lr=inner_lr, inner_steps=inner_steps,
                            implementation=implementation, meta_state=meta_state)
        loss = out.query_loss.item()
        if not math.isfinite(loss):
            raise _divergence(history, step, f"the query loss ({loss}) is not finite", inner_lr=inner_lr,
                              meta_lr=meta_lr)
        if not batch.query_y.is_floating_point():  # classification: cross-entropy has a chance level
            ways = max(2, int(batch.support_y.max()) + 1)
            limit = _blowup_limit(ways)
            if loss > limit:
                raise _divergence(history, step, f"the query loss ({loss:.2g}) is above {limit:.1f}, "
                                  f"{BLOWUP_FACTOR:g} × chance level ln({ways})", inner_lr=inner_lr, meta_lr=meta_lr)
        if not all(torch.isfinite(g).all() for g in (*out.grads.values(), *out.meta_state_grads.values())):
            raise _divergence(history, step, "the meta-gradient is not finite", inner_lr=inner_lr, meta_lr=meta_lr)
        for name, p in params.items():
            if name not in frozen:
                p.grad = out.grads[name].to(p.dtype)
        for name, s in meta_state.items():
            s.grad = out.meta_state_grads[name].to(s.dtype)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if schedule is not None:
            schedule.step()
        if not all(torch.isfinite(p).all() for p in (*params.values(), *meta_state.values())):
            raise _divergence(history, step, "the updated meta-parameters are not finite", inner_lr=inner_lr,
                              meta_lr=meta_lr)
        elapsed += time.perf_counter() - start
        history.iteration.append(step)
        history.query_loss.append(loss)
        history.seconds.append(elapsed)
        postfix = {"loss": f"{loss:.3f}"}
        if out.query_accuracy is not None:
            history.query_accuracy.append(out.query_accuracy.item())
            postfix["acc"] = f"{100 * history.query_accuracy[-1]:.1f}%"
        if val_sampler is not None and (step % val_every == 0 or step == iterations):
            validate(step)
            metric = history.val_accuracy or history.val_loss
            postfix["val"] = f"{100 * metric[-1]:.1f}%" if history.val_accuracy else f"{metric[-1]:.3f}"
        bar.set_postfix(postfix, refresh=False)
    bar.close()
    return history
