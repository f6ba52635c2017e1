"""A short FOMAML meta-training on MNIST with classic bugs switched on, for notebook 04's switchboard.

``meta_train_with_bugs(bugs)`` meta-trains a fresh MLP (``build_model("mlp", 5)``) on 5-way 1-shot tasks of
split ``"unseen-digits"``, one task at a time, as the loop of notebook 04 writes it out, and scores the
initialisation on validation tasks every few meta-steps. Each name in ``bugs`` (a key of ``BUGS``) switches
on one bug:

* ``"copy"`` (bug 1): the meta-loss is a function of a deep copy of the model, so the gradients land in
  the copy and the meta-optimiser steps with nothing: the meta-model never changes.
* ``"no_zero_grad"`` (bug 2): no ``zero_grad``; every meta-step uses the sum of all meta-gradients so far.
* ``"shared_copy"`` (bug 3): each task is adapted from the previous task's adapted weights, not from θ.
* ``"no_query"`` (bug 4): the meta-loss is computed on the support set the task was adapted on.
* ``"fixed_labels"`` (bug 5): a task's classes get their labels in a fixed order (``FixedLabelsSampler``).
* ``"train_classes"`` (bug 8): the validation tasks are drawn from the meta-training classes (part
  ``"train"``) instead of the meta-test classes (part ``"val"``); the curve then shows that wrong score.

Two bugs of notebook 04 have no switch. Bug 6 (an inner update outside autograd's graph) only changes
second-order MAML, whose gradient it turns into FOMAML's; this loop is FOMAML, which takes the inner
gradients as constants anyway, so with the bug its updates would be the same. Bug 7 (BatchNorm running
statistics carried between tasks) needs a network with BatchNorm; the MLP here has none, and a second
architecture only for it would make the comparison with the correct loop depend on more than one bug.

A run that diverges (a NaN or infinite loss, or a query loss above ``BLOWUP_FACTOR`` × chance level, as
``meta_train`` defines divergence) stops there and says so in its message; it never raises. Figures are
``matplotlib.figure.Figure`` objects that pyplot never sees (``fomaml_utils.companions.sliders``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from matplotlib.figure import Figure

from fomaml_utils.algorithms.maml import adapt, task_accuracy, task_loss
from fomaml_utils.algorithms.models import build_model
from fomaml_utils.data.tasks import FewShotSampler
from fomaml_utils.seeding import seed_everything
from fomaml_utils.training.evaluation import evaluate
from fomaml_utils.training.loop import BLOWUP_FACTOR, History

__all__ = ["BUGS", "BugRun", "FixedLabelsSampler", "meta_train_with_bugs", "plot_bug_runs"]

BUGS: dict[str, str] = {
    "copy": "1 · gradients into a copy",
    "no_zero_grad": "2 · no zero_grad",
    "shared_copy": "3 · one adapted copy shared by all tasks",
    "no_query": "4 · no query set",
    "fixed_labels": "5 · fixed labels across tasks",
    "train_classes": "8 · scored on the training classes",
}
"""The bugs that can be switched on: name → a short description (number as in notebook 04)."""


class FixedLabelsSampler(FewShotSampler):
    """A ``FewShotSampler`` with bug 5: each task's classes are numbered 0..N-1 in the order of the part's
    class list, so a class that is in a task always gets the same label relative to the others."""

    def sample_indices(self, num_tasks: int) -> tuple[torch.Tensor, torch.Tensor]:
        class_idx, image_idx = super().sample_indices(num_tasks)
        order = class_idx.argsort(dim=1)
        return class_idx.gather(1, order), image_idx.gather(1, order[..., None].expand_as(image_idx))


# Building a sampler takes about half a second (its table of images per class); the switchboard builds the
# same ones on every run, so they are kept here and handed out as copies with a freshly seeded generator.
_SAMPLERS: dict[tuple, FewShotSampler] = {}


def _sampler(kind: type[FewShotSampler], part: str, ways: int, shots: int, queries: int,
             root: str | Path | None, seed: int) -> FewShotSampler:
    """A ``kind`` sampler of ``"unseen-digits"`` part ``part`` that draws exactly what a new one seeded ``seed`` would."""
    key = (kind, part, ways, shots, queries, None if root is None else str(Path(root).resolve()))
    if key not in _SAMPLERS:
        _SAMPLERS[key] = kind("unseen-digits", part, ways, shots, queries, root=root, seed=seed)
    fresh = copy.copy(_SAMPLERS[key])  # shares the (read-only) images; only the generator is its own
    fresh.seed, fresh.generator = seed, torch.Generator().manual_seed(seed)
    return fresh


@dataclass
class BugRun:
    """One run of ``meta_train_with_bugs``.

    bugs:     the bugs switched on, in the order of ``BUGS``.
    history:  the training history (``val_accuracy`` on the meta-test classes, or with ``"train_classes"``
              on the meta-training classes), up to the divergence if there was one.
    diverged: whether the run stopped early because it diverged.
    message:  one line for the reader.
    """

    bugs: tuple[str, ...]
    history: History
    diverged: bool
    message: str

    @property
    def label(self) -> str:
        if not self.bugs:
            return "correct loop"
        return "bugs " + ", ".join(BUGS[b].split(" · ")[0] for b in self.bugs)


def _check_bugs(bugs: Iterable[str]) -> tuple[str, ...]:
    if isinstance(bugs, str):
        bugs = [bugs]
    chosen = set(bugs)
    unknown = sorted(b for b in chosen if b not in BUGS)
    if unknown:
        raise ValueError(f"unknown bug {', '.join(map(repr, unknown))}; the bugs are "
                         f"{', '.join(map(repr, BUGS))}")
    return tuple(b for b in BUGS if b in chosen)


def meta_train_with_bugs(bugs: Iterable[str] = (), *, iterations: int = 100, meta_batch_size: int = 16,
                         inner_lr: float = 0.1, meta_lr: float = 1e-3, inner_steps: int = 5,
                         ways: int = 5, shots: int = 1, queries: int = 15, val_tasks: int = 100,
                         val_points: int = 5, seed: int = 0, root: str | Path | None = None) -> BugRun:
    """FOMAML on ``"unseen-digits"`` from a fresh ``build_model("mlp", ways)`` (seeded with ``seed``), with
    ``bugs`` (names from ``BUGS``) switched on; returns a ``BugRun`` and never raises on divergence.

    Each of ``iterations`` meta-steps adapts ``meta_batch_size`` tasks with ``inner_steps`` steps of size
    ``inner_lr`` and lets Adam (learning rate ``meta_lr``) step the model. The initialisation is scored
    (``evaluate``, ``inner_steps`` steps, on the same ``val_tasks`` tasks each time, from a sampler seeded
    ``seed + 1``) before training and ``val_points`` times during it, the last after the final step. Raises ``ValueError`` for
    an unknown bug name (listing the valid ones).
    """
    chosen = _check_bugs(bugs)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    train_kind = FixedLabelsSampler if "fixed_labels" in chosen else FewShotSampler
    train = _sampler(train_kind, "train", ways, shots, queries, root, seed)
    val_part = "train" if "train_classes" in chosen else "val"
    seed_everything(seed)
    model = build_model("mlp", ways)
    optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr)
    val_every = max(1, iterations // max(1, val_points))
    limit = BLOWUP_FACTOR * math.log(ways)
    history = History()

    def validate(step: int) -> None:
        # freshly seeded every time: the same tasks at every point, so the curve follows the model alone
        val = _sampler(FewShotSampler, val_part, ways, shots, queries, root, seed + 1)
        result = evaluate(model, val, inner_lr=inner_lr, inner_steps=inner_steps, num_tasks=val_tasks)
        history.val_iteration.append(step)
        history.val_accuracy.append(result.mean[-1])
        history.val_ci95.append(result.ci95[-1])

    validate(0)
    problem = None
    for step in range(1, iterations + 1):
        batch = train.sample(meta_batch_size)
        if "no_zero_grad" not in chosen:
            optimizer.zero_grad()
        net = copy.deepcopy(model) if "copy" in chosen else model
        params = dict(net.named_parameters())
        start = params
        losses, accuracies = [], []
        for support_x, support_y, query_x, query_y in zip(*batch):
            adapted = adapt(net, start, support_x, support_y, inner_lr=inner_lr, inner_steps=inner_steps)
            if "shared_copy" in chosen:
                start = adapted
            x, y = (support_x, support_y) if "no_query" in chosen else (query_x, query_y)
            loss = task_loss(net, adapted, x, y)
            (loss / batch.num_tasks).backward()
            losses.append(loss.item())
            with torch.no_grad():
                accuracies.append(float(task_accuracy(net, adapted, x, y)))
        loss = sum(losses) / len(losses)
        if not math.isfinite(loss) or loss > limit:
            problem = (f"the meta-loss ({loss:.2g}) is not finite" if not math.isfinite(loss) else
                       f"the meta-loss ({loss:.2g}) is above {limit:.1f}, {BLOWUP_FACTOR:g} × chance level")
            break
        optimizer.step()
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            problem = "the meta-parameters are not finite"
            break
        history.iteration.append(step)
        history.query_loss.append(loss)
        history.query_accuracy.append(sum(accuracies) / len(accuracies))
        if step % val_every == 0 or step == iterations:
            validate(step)
    where = "meta-training classes" if "train_classes" in chosen else "new classes"
    name = "with " + ", ".join(BUGS[b] for b in chosen) if chosen else "the correct loop"
    if problem is not None:
        return BugRun(chosen, history, True, f"Diverged at meta-step {step} ({name}): {problem}.")
    return BugRun(chosen, history, False,
                  f"Finished {iterations} meta-steps ({name}): validation accuracy on {where} "
                  f"{100 * history.val_accuracy[0]:.1f} % before, {100 * history.val_accuracy[-1]:.1f} % after "
                  f"(chance {100 / ways:.1f} %)")


def plot_bug_runs(run: BugRun, correct: BugRun, *, ways: int = 5, title: str | None = None) -> Figure:
    """Validation accuracy (%) against meta-step of ``run`` (solid) beside ``correct`` (dashed), chance dotted."""
    fig = Figure(figsize=(7.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for r, style in ((correct, dict(linestyle="--", color="0.4")), (run, dict(linestyle="-", color="tab:red"))):
        h = r.history
        where = "meta-training classes" if "train_classes" in r.bugs else "new classes"
        ax.plot(h.val_iteration, [100 * a for a in h.val_accuracy], marker="o", markersize=4,
                label=f"{r.label} ({where})" + (", diverged" if r.diverged else ""), **style)
    ax.axhline(100 / ways, color="0.5", linestyle=":", label=f"chance (1/{ways})")
    ax.set(xlabel="meta-step", ylabel="validation accuracy (%)",
           title=title or "Validation accuracy during meta-training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
