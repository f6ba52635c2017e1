"""Slider and button callbacks of notebook 03, written as plain functions so tests can run them headless.

Two experiments the reader can steer:

* ``adaptation_view`` (instant, for sliders): take a trained initialisation θ, draw fresh test tasks
  with the chosen ``ways`` and ``shots``, adapt with ``inner_steps`` steps of size ``inner_lr`` and
  report the query accuracy after every step, plus one task's query grid with the adapted predictions.
  No training; a fraction of a second on a laptop CPU with the defaults.
* ``MetaTrainingPlayground.run`` (on a button): a short meta-training from a fresh initialisation with
  the chosen α, β, inner steps, meta-batch size and first-order switch, about 20 seconds; its learning
  curves are drawn beside those of the previous run. A run that diverges (NaN, or a loss blow-up
  that leaves the network at chance level) ends with a message saying so, never an exception.

Both return figures and text; the notebook only displays them. Figures are ``matplotlib.figure.Figure``
objects that pyplot never sees, so a widget callback may draw them on any thread (``fomaml_utils.companions.sliders``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import nn

from fomaml_utils.algorithms.losses import query_output
from fomaml_utils.algorithms.maml import adapt
from fomaml_utils.algorithms.models import MLP, ConvNet, build_model
from fomaml_utils.algorithms.registry import get_algorithm
from fomaml_utils.companions.plots import plot_task
from fomaml_utils.data.taskbatch import TaskBatch
from fomaml_utils.data.tasks import FewShotSampler
from fomaml_utils.seeding import seed_everything
from fomaml_utils.training.evaluation import Evaluation, evaluate
from fomaml_utils.training.loop import DivergenceError, History, meta_train

__all__ = ["head_size", "AdaptationView", "adaptation_view", "adapted_predictions", "plot_accuracy_curve",
           "running_mean", "ShortRun", "MetaTrainingPlayground"]


def head_size(model: nn.Module) -> int:
    """How many outputs (labels) ``model`` has: the largest ``ways`` it can be adapted to."""
    if isinstance(model, MLP):
        return model.out_features
    if isinstance(model, ConvNet):
        return model.ways
    raise ValueError(f"model must be an MLP or a ConvNet, got {type(model).__name__}")


# --------------------------------------------------------------------------------------------------
# Instant: adapt a trained initialisation to new tasks


@dataclass
class AdaptationView:
    """What ``adaptation_view`` computed.

    evaluation: query accuracy after 0..``inner_steps`` steps over ``num_tasks`` tasks.
    curve:      accuracy (%) against adaptation steps, with the 95 % confidence band.
    grid:       the first of those tasks, its queries marked with the predictions of θ′ (wrong ones red).
    text:       one line summarising the accuracy before and after adaptation.
    """

    evaluation: Evaluation
    curve: Figure
    grid: Figure
    text: str


def plot_accuracy_curve(results: dict[str, Evaluation], *, title: str, ways: int | None = None) -> Figure:
    """Accuracy (%) against adaptation steps for each named ``Evaluation``, with 95 % bands."""
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for name, ev in results.items():
        mean = torch.tensor(ev.mean) * 100
        ci = torch.tensor(ev.ci95).nan_to_num(0.0) * 100
        ax.plot(ev.steps, mean, marker="o", markersize=3, label=name)
        ax.fill_between(ev.steps, mean - ci, mean + ci, alpha=0.2)
    if ways is not None:
        ax.axhline(100 / ways, color="0.5", linestyle=":", label=f"chance (1/{ways})")
    ax.set(title=title, xlabel="adaptation steps on the support set", ylabel="query accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def adapted_predictions(model: nn.Module, batch: TaskBatch, index: int = 0, *, inner_lr: float,
                        inner_steps: int) -> tuple[torch.Tensor, bool]:
    """Adapt ``model``'s weights to task ``index`` of ``batch`` and predict its queries.

    Returns the predicted labels ``[ways*queries]`` and whether the adapted logits are all finite
    (a too-large ``inner_lr`` makes them overflow). ``inner_steps=0`` predicts with θ itself.
    """
    params = {k: p.detach() for k, p in model.named_parameters()}
    adapted = adapt(model, params, batch.support_x[index], batch.support_y[index], inner_lr=inner_lr,
                    inner_steps=inner_steps)
    with torch.no_grad():
        logits = query_output(model, adapted, batch.query_x[index], batch.support_x[index])
    return logits.argmax(dim=-1), bool(torch.isfinite(logits).all())


def adaptation_view(model: nn.Module, *, ways: int, shots: int, inner_steps: int, inner_lr: float,
                    split: str = "unseen-digits", queries: int = 5, num_tasks: int = 30, seed: int = 0,
                    root: str | Path | None = None, shown_queries: int = 3) -> AdaptationView:
    """Adapt ``model``'s weights θ to ``num_tasks`` fresh ``ways``-way ``shots``-shot test tasks.

    Tasks come from ``split``'s test part (``queries`` per class), seeded with ``seed``, so the same
    settings always show the same tasks. ``ways`` may be at most the model's head size: a network
    with 5 outputs has no output for a sixth label. The grid shows ``shown_queries`` queries per
    label of the first task. The model is not modified.
    """
    size = head_size(model)
    if isinstance(ways, bool) or not isinstance(ways, int) or not 2 <= ways <= size:
        raise ValueError(f"ways must be an integer from 2 to {size} (the model's head has {size} outputs, "
                         f"one per label), got {ways!r}")
    sampler = FewShotSampler(split, "test", ways, shots, queries, root=root, seed=seed)
    # The first task again, from an identically seeded sampler, to draw it.
    batch, class_idx = FewShotSampler(split, "test", ways, shots, queries, root=root, seed=seed).sample(
        1, return_classes=True)
    evaluation = evaluate(model, sampler, inner_lr=inner_lr, inner_steps=inner_steps, num_tasks=num_tasks,
                          tasks_per_batch=num_tasks)
    curve = plot_accuracy_curve({"this initialisation": evaluation}, ways=ways,
                                title=f"{ways}-way {shots}-shot test tasks, α = {inner_lr:g} "
                                      f"(mean of {num_tasks} tasks)")
    predictions, finite = adapted_predictions(model, batch, inner_lr=inner_lr, inner_steps=inner_steps)
    steps = f"{inner_steps} step{'s' * (inner_steps != 1)}"
    grid = plot_task(batch, classes=sampler.task_classes(class_idx[0]), predictions=predictions,
                     max_queries_per_class=shown_queries,
                     title=f"One test task after {steps} of size α = {inner_lr:g}")
    text = (f"{ways}-way {shots}-shot, α = {inner_lr:g}: query accuracy {evaluation.summary(0)} before "
            f"adaptation, {evaluation.summary()} after {steps} ({num_tasks} tasks; chance "
            f"{100 / ways:.1f} %)")
    if not finite:
        text += f". The adapted weights overflowed (NaN): α = {inner_lr:g} is too large"
    return AdaptationView(evaluation, curve, grid, text)


# --------------------------------------------------------------------------------------------------
# On a button: a short meta-training run


@dataclass
class ShortRun:
    """One run of ``MetaTrainingPlayground``.

    settings: the hyperparameters (``inner_lr``, ``meta_lr``, ``inner_steps``, ``meta_batch_size``,
              ``first_order``, ``zero_head``, ``iterations``).
    history:  the training history, up to the divergence if there was one.
    diverged: whether the run diverged (NaN, or the loss blew up); ``message`` then says how.
    message:  one line for the reader.
    """

    settings: dict
    history: History
    diverged: bool
    message: str

    @property
    def label(self) -> str:
        s = self.settings
        order = get_algorithm(s["algorithm"]).title
        head = ", zero head" if s.get("zero_head") else ""
        return (f"{order}{head}, α={s['inner_lr']:g}, β={s['meta_lr']:g}, {s['inner_steps']} steps, "
                f"batch {s['meta_batch_size']}")


def running_mean(values: Sequence[float], window: int = 20) -> torch.Tensor:
    """Running mean over the last ``window`` values (fewer at the start), float64 ``[len(values)]``."""
    x = torch.tensor(values, dtype=torch.float64)
    if len(x) == 0:
        return x
    c = torch.cat([torch.zeros(1, dtype=torch.float64), x.cumsum(0)])
    i = torch.arange(1, len(x) + 1)
    start = (i - window).clamp(min=0)
    return (c[i] - c[start]) / (i - start)


@dataclass
class MetaTrainingPlayground:
    """Short meta-training runs from the same fresh initialisation, remembered for comparison.

    Every run starts from ``build_model(arch, ways)`` seeded with ``seed`` and sees ``tasks_per_run``
    training tasks (``iterations = tasks_per_run // meta_batch_size``, at least 10), so runs with
    different meta-batch sizes cost about the same. Meta-validation (``val_tasks`` tasks from the
    split's val part, adapting ``inner_steps`` steps) runs ``val_points`` times.
    """

    split: str = "unseen-digits"
    arch: str = "mlp"
    ways: int = 5
    shots: int = 1
    queries: int = 15
    tasks_per_run: int = 6400
    val_tasks: int = 60
    val_points: int = 4
    seed: int = 0
    root: str | Path | None = None
    runs: list[ShortRun] = field(default_factory=list)

    def run(self, *, inner_lr: float, meta_lr: float, inner_steps: int, meta_batch_size: int,
            algorithm: str = "fomaml", zero_head: bool = True) -> ShortRun:
        """Meta-train a fresh model with these settings; never raises on divergence (see ``ShortRun``).

        ``algorithm``: a name in ``fomaml_utils.algorithms.ALGORITHMS`` (Meta-SGD's step sizes start at
        ``inner_lr``). ``zero_head``: keep the output layer at zero instead of meta-learning it (``meta_train``).
        """
        algorithm = get_algorithm(algorithm).name
        if isinstance(meta_batch_size, bool) or not isinstance(meta_batch_size, int) or meta_batch_size < 1:
            raise ValueError(f"meta_batch_size must be a positive integer (tasks per meta-step), got {meta_batch_size!r}")
        iterations = max(10, self.tasks_per_run // meta_batch_size)
        settings = dict(inner_lr=inner_lr, meta_lr=meta_lr, inner_steps=inner_steps,
                        meta_batch_size=meta_batch_size, algorithm=algorithm, zero_head=zero_head,
                        iterations=iterations)
        train = FewShotSampler(self.split, "train", self.ways, self.shots, self.queries, root=self.root,
                               seed=self.seed)
        val = FewShotSampler(self.split, "val", self.ways, self.shots, self.queries, root=self.root,
                             seed=self.seed + 1)
        seed_everything(self.seed)
        model = build_model(self.arch, self.ways)
        meta_state = get_algorithm(algorithm).init_meta_state(dict(model.named_parameters()), inner_lr) or None
        try:
            history = meta_train(model, train, algorithm=algorithm, meta_state=meta_state,
                                 inner_lr=inner_lr, meta_lr=meta_lr, inner_steps=inner_steps,
                                 meta_batch_size=meta_batch_size, iterations=iterations, val_sampler=val,
                                 val_every=max(1, iterations // self.val_points), val_tasks=self.val_tasks,
                                 seed=self.seed, progress=False, zero_head=zero_head)
        except DivergenceError as error:
            result = ShortRun(settings, error.history, True, f"Diverged: {error}")
        else:
            final = history.val_accuracy[-1]
            result = ShortRun(settings, history, False,
                              f"Finished {iterations} meta-steps: meta-validation accuracy "
                              f"{100 * history.val_accuracy[0]:.1f} % before, {100 * final:.1f} % after "
                              f"(chance {100 / self.ways:.1f} %)")
        self.runs.append(result)
        return result

    def figure(self) -> Figure:
        """Learning curves of the latest run (solid) beside the previous one (dashed)."""
        fig = Figure(figsize=(11, 3.6), layout="constrained")
        ax_train, ax_val = fig.subplots(1, 2)
        shown = self.runs[-2:]
        for k, run in enumerate(shown):
            latest = k == len(shown) - 1
            style = dict(linestyle="-" if latest else "--", color="tab:blue" if latest else "0.5",
                         label=("latest: " if latest else "previous: ") + run.label)
            h = run.history
            if h.query_accuracy:  # accuracies stay finite even when the loss does not (argmax of NaN)
                ax_train.plot(h.iteration, 100 * running_mean(h.query_accuracy), **style)
            if h.val_accuracy:
                ax_val.plot(h.val_iteration, [100 * a for a in h.val_accuracy], marker="o", **style)
            if run.diverged:
                ax_val.annotate("diverged", xy=(0.5, 0.5), xycoords="axes fraction", ha="center",
                                color="tab:red" if latest else "0.5", fontsize=14)
        for ax in (ax_train, ax_val):
            ax.axhline(100 / self.ways, color="0.6", linestyle=":", label="chance")
            ax.set(xlabel="meta-step", ylabel="query accuracy (%)", ylim=(0, 100))
            ax.grid(alpha=0.3)
        ax_train.set_title("Meta-training tasks (after adaptation, running mean of 20)")
        ax_val.set_title("Meta-validation tasks (the meta-test classes)")
        ax_val.legend(fontsize=7, loc="lower right")
        return fig
