r"""Checks that catch the classic silent bugs of MAML and FOMAML code, each reported in words.

A buggy meta-training loop usually runs, prints a falling loss and learns nothing. The checks here
treat a user's meta-step as a black box, run it on copies of the model, and compare what it does with
what a correct step must do::

    def step(model, batch, optimizer):          # your meta-step: one update of model from a TaskBatch
        ...

    report = check_meta_step(model, step, batch, make_optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
                             algorithm="maml", inner_lr=0.4, inner_steps=2)
    print(report)                                # which symptoms, what to look at, how to fix each
    report.raise_if_symptoms()                   # or fail loudly (DiagnosisError), e.g. in an assignment's test

Let θ be the model's parameters before the step and Δ = θ_after − θ the update it makes. A correct
meta-step computes g = (1/T) Σ_t ∇_θ L_Q,t(θ′_t(θ)) with every task adapted from θ itself, and moves θ
along −g. The symptoms, by the bug behind each:

1. ``no-update``: Δ = 0 bit for bit — the gradients landed in a copy of the model.
2. ``grad-accumulates``: Δ depends on the ``.grad`` left over by the previous step (no ``zero_grad``).
3. ``shared-adapted-copy``: Δ depends on the order of the tasks; a mean over tasks cannot.
4. ``query-ignored``: Δ does not change when only the query labels change.
5. ``fixed-labels`` (``check_tasks``): a class gets the same label in every task.
6. ``graph-cut`` / ``gradient-mismatch``: with plain SGD, Δ ∝ −g; for ``algorithm="maml"`` g is compared
   with central finite differences of the MAML objective, and a step that matches FOMAML's gradient
   instead has cut the graph (in-place or ``.data`` updates).
7. ``batchnorm-running-stats``: a meta-step changes BatchNorm running statistics, which then carry over
   from task to task (and into evaluation).
8. ``eval-on-train-classes`` (``check_split``): evaluation tasks use meta-training classes.

Every check of a step runs it on a float64 copy (``dtype``) under a fixed seed, so "equal" means equal up
to float rounding (relative tolerance √eps) and the caller's model, its ``.grad`` and the global random
state are left as they were.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from fomaml_utils.algorithms.maml import ALGORITHMS, adapt, check_hyperparameters, meta_gradient, task_loss
from fomaml_utils.data.taskbatch import TaskBatch

__all__ = [
    "Symptom", "Report", "DiagnosisError", "check_meta_step", "check_tasks", "check_split",
    "check_update", "check_grad_reset", "check_task_order", "check_query_used", "check_task_labels",
    "check_gradient", "check_running_stats", "maml_objective_gradient",
]

Params = dict[str, torch.Tensor]
StepFn = Callable[..., object]
MakeOptimizer = Callable[[nn.Module], torch.optim.Optimizer]


# --------------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class Symptom:
    """One thing a check found wrong.

    code:     short stable name, e.g. ``"no-update"``; bug: its number in the module docstring's list (1-8).
    summary:  what is wrong, one sentence; evidence: the numbers that show it.
    look_at:  where in the code the cause usually is; fix: what to change.
    """

    code: str
    bug: int
    summary: str
    evidence: str
    look_at: str
    fix: str

    def __str__(self) -> str:
        return (f"[{self.code}] (bug {self.bug}) {self.summary}\n"
                f"    evidence: {self.evidence}\n    look at:  {self.look_at}\n    fix:      {self.fix}")


@dataclass
class Report:
    """What a check found: ``symptoms`` (``ok`` when empty), what ``passed`` and what was ``skipped``, each in words."""

    subject: str
    symptoms: list[Symptom] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check found a symptom (skipped checks do not count either way)."""
        return not self.symptoms

    @property
    def codes(self) -> tuple[str, ...]:
        """The symptoms' codes, in the order found."""
        return tuple(s.code for s in self.symptoms)

    def __str__(self) -> str:
        head = (f"{self.subject}: no symptom found" if self.ok
                else f"{self.subject}: {len(self.symptoms)} symptom(s) found")
        lines = [head, *(str(s) for s in self.symptoms)]
        lines += [f"  ok:      {p}" for p in self.passed]
        lines += [f"  skipped: {s}" for s in self.skipped]
        return "\n".join(lines)

    def raise_if_symptoms(self) -> None:
        """Raise ``DiagnosisError`` with this report as its message if any symptom was found."""
        if self.symptoms:
            raise DiagnosisError(self)


class DiagnosisError(Exception):
    """A check found symptoms; the message is the whole report and ``.report`` holds it."""

    def __init__(self, report: Report):
        super().__init__(str(report))
        self.report = report


# --------------------------------------------------------------------------------------------------
# Comparing updates


def _rtol(tensors: Mapping[str, torch.Tensor]) -> float:
    """√eps of the tensors' dtype: 1.5e-8 for float64, 3.5e-4 for float32."""
    return torch.finfo(next(iter(tensors.values())).dtype).eps ** 0.5


def _difference(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> tuple[float, float]:
    """``(max |a − b|, max(max |a|, max |b|))`` over all tensors of two dicts with the same keys."""
    if a.keys() != b.keys():
        raise ValueError(f"the two updates must have the same parameter names, got {sorted(a)} and {sorted(b)}")
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    scale = max(max(float(a[k].abs().max()), float(b[k].abs().max())) for k in a)
    return diff, scale


def _same(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], rtol: float) -> tuple[bool, str]:
    diff, scale = _difference(a, b)
    return diff <= rtol * scale, f"largest difference {diff:.3g} against largest update entry {scale:.3g}"


def _flat(tensors: Mapping[str, torch.Tensor], keys: list[str]) -> torch.Tensor:
    return torch.cat([tensors[k].reshape(-1).to(torch.float64) for k in keys])


# --------------------------------------------------------------------------------------------------
# The checks, each a pure function of what the step did


def check_update(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor],
                 grads: Mapping[str, torch.Tensor | None]) -> Symptom | None:
    """Bug 1: every parameter bit-for-bit unchanged by a step (``before``/``after``/``grads`` keyed by name)."""
    if any(not torch.equal(before[k], after[k]) for k in before):
        return None
    missing = sum(g is None for g in grads.values())
    zero = sum(g is not None and not bool(g.any()) for g in grads.values())
    return Symptom(
        "no-update", 1, "The step did not change the model: the meta-gradient never reached its parameters.",
        f"all {len(before)} parameter tensors are bit-for-bit unchanged after one step; {missing} of them have "
        f".grad None and {zero} an all-zero .grad",
        "where backward() sends the gradient. A copy made with copy.deepcopy or load_state_dict has "
        "parameters of its own: backward() fills the copy's .grad, and an optimizer over model.parameters() "
        "then steps with nothing.",
        "make the meta-loss a function of the model's own parameters (adapt a dict of them with "
        "torch.func.functional_call, as fomaml_utils.algorithms.maml.adapt does), or copy the copy's gradients back "
        "(p.grad = p_copy.grad) before optimizer.step().")


def check_grad_reset(update_with_leftover: Mapping[str, torch.Tensor],
                     update_from_clean: Mapping[str, torch.Tensor], rtol: float | None = None) -> Symptom | None:
    """Bug 2: two steps from the same weights and optimizer state, one starting with the ``.grad`` the
    previous step left, one with ``.grad`` cleared, must make the same update."""
    rtol = _rtol(update_from_clean) if rtol is None else rtol
    same, evidence = _same(update_with_leftover, update_from_clean, rtol)
    if same:
        return None
    return Symptom(
        "grad-accumulates", 2, "Gradients accumulate: the update depends on the .grad left by the previous step.",
        f"two steps from the same weights and optimizer state differ when .grad is left as the previous step "
        f"left it instead of cleared ({evidence})",
        "backward() adds to .grad; the meta-step never clears it before its own backward().",
        "call optimizer.zero_grad() (or set p.grad = None) at the start of every meta-step, and in the inner "
        "loop before each backward() if it uses an optimizer too.")


def check_task_order(update: Mapping[str, torch.Tensor], update_reordered: Mapping[str, torch.Tensor],
                     rtol: float | None = None) -> Symptom | None:
    """Bug 3: the update for a batch and for the same tasks in another order must agree (a mean is
    symmetric); a shared adapted copy makes each task start where the previous one ended."""
    rtol = _rtol(update) if rtol is None else rtol
    same, evidence = _same(update, update_reordered, rtol)
    if same:
        return None
    return Symptom(
        "shared-adapted-copy", 3, "The update depends on the order of the tasks: tasks do not all start from θ.",
        f"the same tasks in reverse order give a different update ({evidence})",
        "the inner loop: one adapted copy (or one fast-weights dict) reused for every task, so each task is "
        "fine-tuned from where the previous one ended (or the meta-parameters are updated after each task).",
        "adapt every task from the meta-parameters θ themselves (adapted = adapt(model, params, ...) inside "
        "the task loop), average the tasks' meta-gradients, and update θ once per meta-batch. (Serial Reptile, "
        "which is meant to update after each task, is the one exception.)")


def check_query_used(update: Mapping[str, torch.Tensor], update_relabelled: Mapping[str, torch.Tensor],
                     rtol: float | None = None) -> Symptom | None:
    """Bug 4: changing only the query labels must change the update, else the query set is ignored."""
    rtol = _rtol(update) if rtol is None else rtol
    same, evidence = _same(update, update_relabelled, rtol)
    if not same:
        return None
    return Symptom(
        "query-ignored", 4, "The query set is ignored: the meta-loss uses the support data only.",
        f"re-labelling every query example leaves the update unchanged ({evidence})",
        "the meta-loss: it is computed on support_x/support_y (or on the last task's own training data) "
        "instead of on query_x/query_y at the adapted weights.",
        "compute the meta-loss as task_loss(model, adapted, query_x, query_y) for each task. On the support "
        "set it is ordinary pretraining, not meta-learning.")


def check_task_labels(class_idx: torch.Tensor, min_count: int = 20) -> Symptom | None:
    """Bug 5: from ``class_idx`` int ``[T, ways]`` (label ``i`` of task ``t`` is class ``class_idx[t, i]``),
    flag classes that came up at least ``min_count`` times and had the same label every time.

    With labels shuffled per task that happens to a class with probability ``ways**(1 - count)``, under
    1e-5 for 20 appearances and 2 ways. Raises ``ValueError`` if no class came up ``min_count`` times.
    """
    if not isinstance(class_idx, torch.Tensor) or class_idx.dim() != 2 or class_idx.is_floating_point():
        raise ValueError(f"class_idx must be an integer tensor [num_tasks, ways], got {class_idx!r}")
    labels_of: dict[int, set[int]] = {}
    for row in class_idx.tolist():
        for label, c in enumerate(row):
            labels_of.setdefault(c, set()).add(label)
    counts = torch.bincount(class_idx.reshape(-1))
    frequent = [c for c in labels_of if counts[c] >= min_count]
    if not frequent:
        raise ValueError(f"no class came up {min_count} times in these {class_idx.shape[0]} tasks; draw more tasks")
    fixed = [c for c in frequent if len(labels_of[c]) == 1]
    if not fixed:
        return None
    examples = ", ".join(f"class {c} → label {next(iter(labels_of[c]))} ({int(counts[c])} times)" for c in fixed[:3])
    return Symptom(
        "fixed-labels", 5, "Labels are fixed across tasks: a class gets the same label in every task.",
        f"over {class_idx.shape[0]} tasks, {len(fixed)} of the {len(frequent)} classes that came up at least "
        f"{min_count} times had one label every time: {examples}",
        "the task sampler: labels taken from the dataset (digit = label) or classes put in a fixed order "
        "before numbering them 0..ways-1.",
        "give each task's classes the labels 0..ways-1 in a fresh random order per task. Otherwise the network "
        "memorises label → class, needs no adaptation, and fails on new classes.")


def maml_objective_gradient(model: nn.Module, params: Mapping[str, torch.Tensor], batch: TaskBatch, *,
                            inner_lr: float, inner_steps: int, h: float = 1e-5) -> Params:
    r"""Central finite differences of the MAML objective F(θ) = (1/T) Σ_t L_Q,t(θ′_t(θ)), entry by entry.

    ``(F(θ + h e_i) − F(θ − h e_i)) / 2h`` for every parameter entry: 2·P evaluations of the inner loop,
    so for tiny float64 models only (error about h² in float64). Same keys and shapes as ``params``.
    """
    params = {k: p.detach().clone() for k, p in params.items()}

    def objective() -> float:
        total = 0.0
        for sx, sy, qx, qy in zip(*batch):
            adapted = adapt(model, params, sx, sy, inner_lr=inner_lr, inner_steps=inner_steps)
            with torch.no_grad():
                total += float(task_loss(model, adapted, qx, qy))
        return total / batch.num_tasks

    grads = {}
    for k, p in params.items():
        g = torch.zeros_like(p)
        flat, gflat = p.view(-1), g.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + h
            up = objective()
            flat[i] = old - h
            down = objective()
            flat[i] = old
            gflat[i] = (up - down) / (2 * h)
        grads[k] = g
    return grads


def _misalignment(update: torch.Tensor, g: torch.Tensor) -> float:
    """sin of the angle between ``update`` and ``−g`` (0: parallel and descending; 1 or more: not)."""
    cos = float(-(update @ g) / (update.norm() * g.norm()).clamp_min(1e-300))
    return (max(0.0, 1 - cos * cos)) ** 0.5 if cos > 0 else 1 + abs(cos)


def check_gradient(update: Mapping[str, torch.Tensor], model: nn.Module, params: Mapping[str, torch.Tensor],
                   batch: TaskBatch, *, algorithm: str, inner_lr: float, inner_steps: int,
                   tol: float = 1e-5, max_finite_difference_params: int = 2000) -> tuple[Symptom | None, str]:
    """Bug 6 (and other wrong gradients): the update of a plain-SGD step must point along −g.

    g is, for ``"maml"``, central finite differences of the MAML objective (``maml_objective_gradient``),
    and for ``"fomaml"``/``"reptile"`` ``meta_gradient``'s loop reference. Directions are compared (the
    step's learning rate is unknown): sin of the angle below ``tol``. A "MAML" update that matches FOMAML's
    gradient instead is ``graph-cut``; one that matches neither is ``gradient-mismatch``. Returns
    ``(symptom or None, a sentence saying what was compared)``; raises ``ValueError`` when the check
    cannot decide (too many parameters for finite differences, MAML and FOMAML indistinguishable here).
    """
    check_hyperparameters(inner_lr=inner_lr, inner_steps=inner_steps, algorithm=algorithm)
    keys = list(params)
    n = sum(p.numel() for p in params.values())
    fomaml = meta_gradient(model, params, batch, algorithm="fomaml", inner_lr=inner_lr, inner_steps=inner_steps,
                           implementation="loop").grads
    if algorithm == "maml":
        if n > max_finite_difference_params:
            raise ValueError(f"the model has {n} parameters, too many for finite differences "
                             f"(limit {max_finite_difference_params}); run the check on a tiny model, "
                             "e.g. MLP(in_features=4, hidden=(8,), out_features=3)")
        reference = maml_objective_gradient(model, params, batch, inner_lr=inner_lr, inner_steps=inner_steps)
        what = "central finite differences of the MAML objective"
    else:
        reference = meta_gradient(model, params, batch, algorithm=algorithm, inner_lr=inner_lr,
                                  inner_steps=inner_steps, implementation="loop").grads
        what = f"meta_gradient(algorithm={algorithm!r})"
    u, ref, fo = _flat(update, keys), _flat(reference, keys), _flat(fomaml, keys)
    off_ref = _misalignment(u, ref)
    said = f"the update's direction against {what}: sin of the angle {off_ref:.2g} (tolerance {tol:g})"
    if off_ref <= tol:
        return None, said
    if algorithm == "maml":
        gap = _misalignment(-fo, ref)
        if gap <= 10 * tol:
            raise ValueError(f"MAML's and FOMAML's gradients point the same way here (sin of the angle {gap:.2g}), "
                             "so a cut graph cannot be told apart; use a larger inner_lr or more inner_steps")
        off_fo = _misalignment(u, fo)
        if off_fo <= tol:
            return Symptom(
                "graph-cut", 6, "The step claims exact MAML but computes FOMAML's gradient: the graph is cut.",
                f"the update is parallel to FOMAML's gradient (sin of the angle {off_fo:.2g}) and not to the "
                f"finite-difference gradient of the MAML objective ({off_ref:.2g}; the two differ by {gap:.2g})",
                "the inner loop: weights updated through .data, or in place under torch.no_grad() (as an "
                "optimizer's step() does), .detach(), or autograd.grad without create_graph=True. The update then "
                "happens outside autograd's graph.",
                "write each inner step out of place, adapted = {k: p - inner_lr * g[k]} with grads from "
                "torch.autograd.grad(loss, ..., create_graph=True) (fomaml_utils.algorithms.maml.adapt with "
                "first_order=False)."), said
    return Symptom(
        "gradient-mismatch", 6, f"The update does not point along the {algorithm.upper()} meta-gradient.",
        said,
        "the step's optimizer first: this comparison needs plain SGD (Adam and momentum change the direction). "
        "Then the inner loop (an inner optimizer without zero_grad, a wrong inner_lr or inner_steps) and the "
        "loss (task_loss: cross-entropy for classes, MSE for regression).",
        "check with make_optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=...), the same inner_lr and "
        "inner_steps as the step, and compare your gradient with fomaml_utils.algorithms.maml.meta_gradient."), said


def check_running_stats(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor]) -> Symptom | None:
    """Bug 7: the BatchNorm running-statistics buffers (by name) must be unchanged by a meta-step."""
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if not changed:
        return None
    return Symptom(
        "batchnorm-running-stats", 7, "BatchNorm running statistics change during the meta-step and carry over "
        "from task to task.",
        f"{len(changed)} of {len(before)} running-statistics buffers changed in one step: {', '.join(changed)}",
        "BatchNorm layers in training mode with track_running_stats=True: every forward pass of every task "
        "(support and query, each inner step) updates the model's running_mean/running_var in place, and "
        "evaluation in eval mode then normalises with a mix of all training tasks.",
        "use BatchNorm(track_running_stats=False) (batch statistics per task, as in the MAML paper) or a "
        "per-image norm such as GroupNorm, or pass copies of the buffers to functional_call for each task.")


# --------------------------------------------------------------------------------------------------
# Running a step on copies


@dataclass
class _Stepper:
    """Runs the user's step on a copy of the model, with its own optimizer, under a fixed seed."""

    step_fn: StepFn
    make_optimizer: MakeOptimizer | None
    dtype: torch.dtype | None
    seed: int

    def copy(self, model: nn.Module, grads: Mapping[str, torch.Tensor | None] | None = None) -> nn.Module:
        """A deep copy (in ``dtype``) whose parameters have ``.grad`` = ``grads`` (default: None)."""
        twin = copy.deepcopy(model)
        if self.dtype is not None:
            twin = twin.to(self.dtype)
        for k, p in twin.named_parameters():
            g = None if grads is None else grads.get(k)
            p.grad = None if g is None else g.detach().clone()
        return twin

    def batch(self, batch: TaskBatch, model: nn.Module) -> TaskBatch:
        """``batch`` on the model's device, floating tensors in ``dtype``."""
        device = next(model.parameters()).device
        return TaskBatch(*(t.to(device, self.dtype) if t.is_floating_point() and self.dtype is not None
                           else t.to(device) for t in batch))

    def optimizer(self, model: nn.Module, state: dict | None = None) -> torch.optim.Optimizer | None:
        if self.make_optimizer is None:
            return None
        opt = self.make_optimizer(model)
        if not isinstance(opt, torch.optim.Optimizer):
            raise ValueError(f"make_optimizer must return a torch.optim.Optimizer, got {type(opt).__name__}")
        if state is not None:
            opt.load_state_dict(copy.deepcopy(state))
        return opt

    def step(self, model: nn.Module, batch: TaskBatch, opt: torch.optim.Optimizer | None) -> None:
        """One call of the user's step; its exceptions are re-raised saying where they happened."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            try:
                if opt is None:
                    self.step_fn(model, batch)
                else:
                    self.step_fn(model, batch, opt)
            except Exception as error:
                where = f"on a {self.dtype} copy of the model" if self.dtype is not None else "on a copy of the model"
                hint = " (pass dtype=None to keep the model's dtype)" if self.dtype is not None else ""
                raise RuntimeError(f"step_fn raised {type(error).__name__}: {error} — while the check ran it "
                                   f"{where}{hint}") from error

    def update(self, model: nn.Module, batch: TaskBatch, opt_state: dict | None = None) -> Params:
        """Δ = θ_after − θ of one step from ``model``'s weights, on a copy with ``.grad`` cleared."""
        twin = self.copy(model)
        before = _params(twin)
        self.step(twin, self.batch(batch, twin), self.optimizer(twin, opt_state))
        return {k: p.detach() - before[k] for k, p in twin.named_parameters()}


def _params(model: nn.Module) -> Params:
    return {k: p.detach().clone() for k, p in model.named_parameters()}


def _grads(model: nn.Module) -> dict[str, torch.Tensor | None]:
    return {k: None if p.grad is None else p.grad.detach().clone() for k, p in model.named_parameters()}


def _running_stats(model: nn.Module) -> Params:
    """Buffers of BatchNorm layers that track running statistics, by name."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            for b, value in module.named_buffers(recurse=False):
                if value is not None:
                    out[f"{name}.{b}" if name else b] = value.detach().clone()
    return out


def _snapshot(model: nn.Module) -> tuple[dict, dict, bool]:
    return ({k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}, _grads(model),
            model.training)


def _restore_if_changed(model: nn.Module, snapshot: tuple[dict, dict, bool]) -> bool:
    """Put back ``model``'s state, ``.grad`` and mode if they differ from ``snapshot``; True if they did."""
    state, grads, training = snapshot
    now_state, now_grads, now_training = _snapshot(model)
    def same_grad(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
        return a is b is None or (a is not None and b is not None and torch.equal(a, b))

    changed = (now_training != training or any(not torch.equal(state[k], now_state[k]) for k in state)
               or not all(same_grad(grads[k], now_grads[k]) for k in grads))
    if changed:
        with torch.no_grad():
            for k, v in model.state_dict(keep_vars=True).items():
                v.copy_(state[k])
        for k, p in model.named_parameters():
            p.grad = grads[k]
        model.train(training)
    return changed


def _reordered(batch: TaskBatch) -> TaskBatch:
    """The same tasks in reverse order."""
    return TaskBatch(*(t.flip(0) for t in batch))


def _relabelled(batch: TaskBatch) -> TaskBatch:
    """The same batch with every query label changed: class c → (c + 1) mod ways, regression y → 1 − y."""
    sx, sy, qx, qy = batch
    if qy.is_floating_point():
        return TaskBatch(sx, sy, qx, 1 - qy)
    ways = int(max(sy.max(), qy.max())) + 1
    return TaskBatch(sx, sy, qx, (qy + 1) % max(ways, 2))


def _check_step_arguments(model: object, step_fn: object, batch: object, make_optimizer: object,
                          algorithm: object, inner_lr: object, inner_steps: object) -> None:
    if not isinstance(model, nn.Module) or not list(model.parameters()):
        raise ValueError(f"model must be an nn.Module with parameters, got {type(model).__name__}")
    if not callable(step_fn):
        raise ValueError(f"step_fn must be callable as step_fn(model, batch) or, with make_optimizer, "
                         f"step_fn(model, batch, optimizer); got {type(step_fn).__name__}")
    if make_optimizer is not None and not callable(make_optimizer):
        raise ValueError(f"make_optimizer must be callable as make_optimizer(model) -> optimizer, "
                         f"got {type(make_optimizer).__name__}")
    try:
        n_args = 3 if make_optimizer is not None else 2
        inspect.signature(step_fn).bind(*range(n_args))
    except TypeError:
        want = "step_fn(model, batch, optimizer)" if make_optimizer is not None else "step_fn(model, batch)"
        raise ValueError(f"step_fn must accept {want}; its signature is {inspect.signature(step_fn)}") from None
    except ValueError:  # no signature to inspect (some builtins): let the call decide
        pass
    if not isinstance(batch, TaskBatch):
        raise ValueError(f"batch must be a TaskBatch, got {type(batch).__name__}")
    if batch.num_tasks < 2:
        raise ValueError(f"batch must hold at least 2 tasks, got {batch.num_tasks}: the task-order check "
                         "compares the step on the tasks in two orders")
    if algorithm is not None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))} or None, "
                             f"got {algorithm!r}")
        if inner_lr is None or inner_steps is None:
            raise ValueError("with algorithm, also give the step's inner_lr and inner_steps")
        check_hyperparameters(inner_lr=inner_lr, inner_steps=inner_steps)


# --------------------------------------------------------------------------------------------------
# Entry points


def check_meta_step(model: nn.Module, step_fn: StepFn, batch: TaskBatch, *, make_optimizer: MakeOptimizer | None = None,
                    algorithm: str | None = None, inner_lr: float | None = None, inner_steps: int | None = None,
                    dtype: torch.dtype | None = torch.float64, seed: int = 0) -> Report:
    """Run the meta-step ``step_fn`` a few times on copies of ``model`` and report the symptoms it shows.

    ``step_fn(model, batch)`` — or ``step_fn(model, batch, optimizer)`` when ``make_optimizer(model)`` is
    given — performs one meta-update of ``model`` in place from ``batch``, a ``TaskBatch`` of at least 2
    tasks. The check makes up to five steps, each on a copy in ``dtype`` after ``torch.manual_seed(seed)``:
    from θ with a fresh optimizer (the batch as given, its tasks reversed, its query labels changed), and
    twice from the first step's weights and optimizer state (with and without the ``.grad`` it left).
    Use a small model and batch. ``model`` itself, its ``.grad`` and the
    global random state are unchanged afterwards; a step that changes them anyway (e.g. an optimizer made
    outside ``step_fn`` over ``model``'s parameters) is undone and refused with a ``ValueError``.

    Symptoms 1-4 (no update, accumulating gradients, shared adapted copy, ignored query set) are always
    checked, and 7 when the model has BatchNorm layers with running statistics. With ``algorithm``
    (``"maml"``, ``"fomaml"`` or ``"reptile"``), ``inner_lr`` and ``inner_steps``, the update's direction is
    also compared with the true meta-gradient (6): this needs a plain-SGD step, and for ``"maml"`` a tiny
    model (finite differences). Reptile uses no query set, so symptom 4 is not checked for it.
    """
    _check_step_arguments(model, step_fn, batch, make_optimizer, algorithm, inner_lr, inner_steps)
    snapshot = _snapshot(model)
    try:
        report = _check_meta_step(model, _Stepper(step_fn, make_optimizer, dtype, seed), batch,
                                  algorithm=algorithm, inner_lr=inner_lr, inner_steps=inner_steps)
    finally:
        changed = _restore_if_changed(model, snapshot)
    if changed:
        raise ValueError("step_fn changed the caller's model although the check gave it only copies (now put "
                         "back): it holds references to that model's parameters, e.g. an optimizer created "
                         "outside step_fn. Pass make_optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=...) "
                         "and write step_fn(model, batch, optimizer).")
    return report


def _check_meta_step(model: nn.Module, stepper: _Stepper, batch: TaskBatch, *, algorithm: str | None,
                     inner_lr: float | None, inner_steps: int | None) -> Report:
    report = Report("meta-step")

    def note(symptom: Symptom | None, passed: str) -> None:
        if symptom is None:
            report.passed.append(passed)
        else:
            report.symptoms.append(symptom)

    # 1. One step from θ, on a copy with no .grad.
    first = stepper.copy(model)
    before, stats_before = _params(first), _running_stats(first)
    opt = stepper.optimizer(first)
    stepper.step(first, stepper.batch(batch, first), opt)
    after, leftover = _params(first), _grads(first)
    update = {k: after[k] - before[k] for k in before}
    note(check_update(before, after, leftover), "1 no-update: the step changes the model's parameters")

    # 7. BatchNorm running statistics.
    if stats_before:
        note(check_running_stats(stats_before, _running_stats(first)),
             "7 batchnorm-running-stats: BatchNorm running statistics unchanged by the step")
    else:
        report.skipped.append("7 batchnorm-running-stats: the model has no BatchNorm layer that tracks running "
                              "statistics")

    if report.codes == ("no-update",):
        report.skipped.append("2, 3, 4, 6: they compare updates, and this step makes none (fix no-update first)")
        return report

    # 2. The next step from θ₁, once with the .grad the first step left, once with .grad cleared.
    if all(g is None or not bool(g.any()) for g in leftover.values()):
        report.passed.append("2 grad-accumulates: the step leaves no gradient behind for the next step")
    else:
        opt_state = None if opt is None else opt.state_dict()
        dirty = stepper.copy(first, grads=leftover)
        dirty_before = _params(dirty)
        stepper.step(dirty, stepper.batch(batch, dirty), stepper.optimizer(dirty, opt_state))
        with_leftover = {k: p.detach() - dirty_before[k] for k, p in dirty.named_parameters()}
        note(check_grad_reset(with_leftover, stepper.update(first, batch, opt_state)),
             "2 grad-accumulates: the next step's update ignores the .grad the previous step left")

    # 3. The same tasks in reverse order.
    note(check_task_order(update, stepper.update(model, _reordered(batch))),
         "3 shared-adapted-copy: the update does not depend on the order of the tasks")

    # 4. The same batch with the query labels changed.
    if algorithm == "reptile":
        report.skipped.append("4 query-ignored: Reptile uses no query set")
    else:
        note(check_query_used(update, stepper.update(model, _relabelled(batch))),
             "4 query-ignored: the update changes when the query labels change")

    # 6. The update's direction against the true meta-gradient.
    if algorithm is None:
        report.skipped.append("6 graph-cut: give algorithm, inner_lr and inner_steps to compare the update with "
                              "the true meta-gradient")
    else:
        twin = stepper.copy(model)
        try:
            symptom, said = check_gradient(update, twin, _params(twin), stepper.batch(batch, twin),
                                           algorithm=algorithm, inner_lr=inner_lr, inner_steps=inner_steps)
        except ValueError as error:
            report.skipped.append(f"6 graph-cut: {error}")
        else:
            note(symptom, f"6 graph-cut: {said}")
    return report


def check_tasks(sampler: object, num_tasks: int = 200) -> Report:
    """Bug 5: draw ``num_tasks`` tasks from ``sampler`` and check that labels are shuffled per task.

    ``sampler.sample(n, return_classes=True)`` must return ``(TaskBatch, class_idx [n, ways])`` as
    ``FewShotSampler`` does. The sampler's generator (``.generator``) is put back afterwards, so the
    tasks it draws next are the ones it would have drawn anyway.
    """
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 2:
        raise ValueError(f"num_tasks must be an integer >= 2, got {num_tasks!r}")
    if not callable(getattr(sampler, "sample", None)):
        raise ValueError(f"sampler must have a .sample(num_tasks, return_classes=True) method, "
                         f"got {type(sampler).__name__}")
    generator = getattr(sampler, "generator", None)
    state = generator.get_state() if isinstance(generator, torch.Generator) else None
    try:
        drawn = sampler.sample(num_tasks, return_classes=True)
    except TypeError:
        raise ValueError("check_tasks needs sampler.sample(num_tasks, return_classes=True) to say which class "
                         f"is behind each label; {type(sampler).__name__} does not accept return_classes") from None
    finally:
        if state is not None:
            generator.set_state(state)
    if not (isinstance(drawn, tuple) and len(drawn) == 2):
        raise ValueError("sampler.sample(num_tasks, return_classes=True) must return (TaskBatch, class_idx)")
    report = Report(f"task sampler {sampler!r}")
    symptom = check_task_labels(drawn[1].cpu())
    if symptom is None:
        report.passed.append(f"5 fixed-labels: over {num_tasks} tasks, every frequent class got different "
                             "labels in different tasks")
    else:
        report.symptoms.append(symptom)
    return report


def check_split(train_sampler: object, eval_sampler: object) -> Report:
    """Bug 8: the classes ``eval_sampler`` draws must be disjoint from those ``train_sampler`` draws.

    Both need a ``.classes`` list (``FewShotSampler``: ``(digit, rotation)`` pairs); their ``.split`` and
    ``.part``, where known, make the message precise.
    """
    for name, s in (("train_sampler", train_sampler), ("eval_sampler", eval_sampler)):
        if not isinstance(getattr(s, "classes", None), (list, tuple)):
            raise ValueError(f"{name} must have a .classes list (as FewShotSampler has), got {type(s).__name__}")
    shared = [c for c in eval_sampler.classes if c in set(train_sampler.classes)]
    report = Report(f"evaluation {eval_sampler!r} against training {train_sampler!r}")
    if not shared:
        report.passed.append(f"8 eval-on-train-classes: the {len(eval_sampler.classes)} evaluation classes and "
                             f"the {len(train_sampler.classes)} training classes are disjoint")
        return report
    where = ""
    if getattr(eval_sampler, "part", None) == "train":
        where = " The evaluation sampler is a 'train' part."
    elif getattr(eval_sampler, "split", None) == "digits":
        where = " Split 'digits' shares its classes on purpose: it checks that learning works at all, not transfer."
    report.symptoms.append(Symptom(
        "eval-on-train-classes", 8, "Evaluation uses meta-training classes, which hides meta-overfitting.",
        f"{len(shared)} of the {len(eval_sampler.classes)} evaluation classes are meta-training classes, "
        f"e.g. {shared[:3]}.{where}",
        "the sampler given to evaluate (or meta_train's val_sampler): its split and part.",
        "evaluate on the meta-test classes, e.g. FewShotSampler('unseen-digits', 'test', ...) after training on "
        "part 'train' of the same split; use part 'val' for curves during training and 'test' once at the end."))
    return report
