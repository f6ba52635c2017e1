"""Meta-train on few-shot MNIST from the command line: the experiment of notebook 03, outside Jupyter.

Example (about a minute on a laptop CPU)::

    python -m fomaml_utils.tools.train --algorithm fomaml --split unseen-digits --ways 5 --shots 1

It meta-trains with ``fomaml_utils.training.meta_train`` (showing a progress bar), meta-tests the
learned initialisation θ on ``--eval-tasks`` tasks of the split's test part with
``fomaml_utils.training.evaluation.evaluate``, and writes into ``--out`` (default ``runs/<name>``):

- ``checkpoint.pt``: the model θ with its architecture and this run's settings
  (``fomaml_utils.training.checkpoints.load_checkpoint`` reads it back);
- ``metrics.json``: the settings, meta-test accuracy (mean and 95 % confidence half-width, per number
  of adaptation steps), training time, the peak memory of one meta-step and the training history. Strict
  JSON: a number that is undefined (the half-width from a single meta-test task) is ``null``, never ``NaN``.

Bad flags or values give a usage message and exit status 2, before any training. That includes an
``--out`` that cannot be written (a file, a read-only folder) or that already holds a run: a run is never
overwritten unless ``--overwrite`` says so. The default folder name carries a short hash of all the
settings, so runs with other hyperparameters land in other folders. A run that diverges (a NaN or
infinite loss, or a finite one that blows up far above chance level; ``meta_train`` checks both) prints
one line and exits with status 1, writing nothing.

A ``--data-root`` is only read: one that does not hold MNIST is a usage error saying how to build it
(``python -m fomaml_utils.data.mnist --root DIR``); only the default root is built on first use. Damaged MNIST
files give the one line ``python -m fomaml_utils.data.mnist`` gives, and exit status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fomaml_utils.algorithms.maml import IMPLEMENTATIONS, meta_gradient, resolve_implementation
from fomaml_utils.algorithms.models import ARCHITECTURES, MLP, NORMS, build_model
from fomaml_utils.algorithms.registry import ALGORITHMS, REGISTRY, get_algorithm
from fomaml_utils.companions.memory import peak_memory_bytes
from fomaml_utils.data.mnist import IDX_FILES, MNISTDataError
from fomaml_utils.data.tasks import SPLITS, FewShotSampler
from fomaml_utils.seeding import MAX_SEED, seed_everything
from fomaml_utils.tools.cli import check_writable_folder, write_json_atomically
from fomaml_utils.tools.cli import positive_float as _positive_float
from fomaml_utils.tools.cli import positive_int as _positive_int
from fomaml_utils.tools.cli import seed as _seed
from fomaml_utils.training.checkpoints import save_checkpoint
from fomaml_utils.training.evaluation import Evaluation, evaluate
from fomaml_utils.training.loop import OPTIMIZERS, SCHEDULES, DivergenceError, History, meta_train


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` after each flag's help, except where the help already explains it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser; every flag documented, defaults shown by ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m fomaml_utils.tools.train",
        description="Meta-train a few-shot MNIST classifier with FOMAML, second-order MAML, Reptile, ANIL or "
        "Meta-SGD, then meta-test it and write a checkpoint and a metrics JSON.",
        formatter_class=_HelpFormatter,
        epilog="Example: python -m fomaml_utils.tools.train --algorithm fomaml --split unseen-digits "
        "--ways 5 --shots 1 --iterations 2000",
    )
    task = parser.add_argument_group("tasks")
    task.add_argument("--split", choices=tuple(SPLITS), default="unseen-digits",
                      help="which classes meta-training and meta-testing draw from: 'unseen-digits' "
                      "trains on digits 0-6 in 4 rotations (28 classes) and tests on 7-9 in 4 rotations "
                      "(12 classes); 'unseen-digits-5' trains on 0-4 and tests on 5-9; 'digits' uses all "
                      "ten digits in both (test images are new, classes are not)")
    task.add_argument("--ways", type=_positive_int, default=5, help="classes per task (N)")
    task.add_argument("--shots", type=_positive_int, default=1,
                      help="labelled support examples per class (K)")
    task.add_argument("--train-shots", type=_positive_int, default=None,
                      help="support examples per class in meta-training tasks only (default: --shots). "
                      "Reptile has no query set, and with one shot it has too little to learn from; "
                      "Nichol et al. (2018) meta-train 1-shot Omniglot with 10")
    task.add_argument("--queries", type=_positive_int, default=15,
                      help="query examples per class, on which a task's loss and accuracy are measured")

    learn = parser.add_argument_group("meta-training")
    learn.add_argument("--algorithm", choices=ALGORITHMS, default="fomaml",
                       help="; ".join(f"{name}: {algorithm.summary}" for name, algorithm in REGISTRY.items()))
    learn.add_argument("--arch", choices=ARCHITECTURES, default="mlp",
                       help="network: 'mlp' (784-256-N), 'mlp2' (two hidden layers), 'cnn' (small ConvNet)")
    learn.add_argument("--norm", choices=NORMS, default=None,
                       help="how the ConvNet (--arch cnn only) normalises each block: 'image' (default; each image's "
                       "own statistics), 'task' (batch statistics of the images at hand, as the MAML paper: the "
                       "query set is normalised with its own, so evaluation is transductive), 'support' (the task's "
                       "support-set statistics for support and query alike: not transductive)")
    learn.add_argument("--zero-head", action="store_true",
                       help="do not meta-learn the output layer: keep it at zero, so every task starts with all "
                       "classes equally likely (labels are shuffled per task, so a learned head only adds noise; "
                       "Kao et al. 2022). Default: meta-learn it, as in the MAML paper")
    learn.add_argument("--inner-lr", type=_positive_float, default=0.1,
                       help="alpha: step size of the inner (adaptation) gradient steps")
    learn.add_argument("--inner-steps", type=_positive_int, default=5,
                       help="adaptation steps on the support set during meta-training")
    learn.add_argument("--meta-lr", type=_positive_float, default=1e-3,
                       help="beta: step size of the outer (meta) optimiser")
    learn.add_argument("--meta-batch-size", type=_positive_int, default=32,
                       help="tasks per meta-step")
    learn.add_argument("--iterations", type=_positive_int, default=500, help="meta-steps")
    learn.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="outer optimiser")
    learn.add_argument("--meta-lr-schedule", choices=SCHEDULES, default="constant",
                       help="'constant' keeps beta for every meta-step; 'cosine' lowers it to 0 along half a cosine "
                       "over the run, so the final weights do not hinge on the last few noisy meta-batches")
    learn.add_argument("--implementation", choices=IMPLEMENTATIONS, default="auto",
                       help="how meta-gradients are computed: 'loop' (one task at a time), 'vmap' (vectorised over "
                       "tasks), 'lowrank' (fast; MLPs, with " + ", ".join(a for a in ALGORITHMS if get_algorithm(a).plain_sgd)
                       + " only), 'auto' (lowrank where it serves, "
                       "else vmap for MLPs; loop for the CNN)")
    learn.add_argument("--val-every", type=_positive_int, default=100,
                       help="meta-validate every this many meta-steps (on the split's 'val' part)")
    learn.add_argument("--val-tasks", type=_positive_int, default=200, help="tasks per meta-validation")

    test = parser.add_argument_group("meta-testing")
    test.add_argument("--eval-inner-steps", type=_positive_int, default=None,
                      help="adaptation steps at meta-test time and in meta-validation (default: the larger "
                      "of 10 and --inner-steps); accuracy is reported after every step from 0 to this")
    test.add_argument("--eval-tasks", type=_positive_int, default=1000,
                      help="meta-test tasks (the 95%% confidence interval shrinks like 1/sqrt of this)")

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=_seed, default=0,
                     help="seeds initialisation, task sampling and meta-test tasks (0 to 2**64 - 1)")
    run.add_argument("--out", type=Path, default=None,
                     help="output directory (default: runs/<name>-<hash of the settings>, e.g. "
                          "runs/fomaml-unseen-digits-5w1s-mlp-seed0-3f2a9c)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the run already in --out (without it, such an --out is refused)")
    run.add_argument("--data-root", type=Path, default=None,
                     help="folder holding MNIST/raw/, which must be there already: build it with "
                     "`python -m fomaml_utils.data.mnist --root DIR` (default: $FOMAML_DATA or the repository's "
                     "data/, built on first use as `make data` does)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar (shown by default)")
    run.add_argument("--threads", type=_positive_int, default=None,
                     help="torch CPU threads (default: torch's choice; 1 is often faster on a busy machine)")
    return parser


NOT_SETTINGS = ("out", "data_root", "no_progress", "threads", "overwrite")
"""Flags that do not change what a run computes (left out of its config and of its folder's hash)."""


def run_name(args: argparse.Namespace) -> str:
    """A folder name for the run: readable settings and a hash of all of them, e.g.
    ``fomaml-unseen-digits-5w1s-mlp-seed0-3f2a9c`` (``-zerohead`` added), so that two runs with different
    settings never share a folder."""
    head = "-zerohead" if getattr(args, "zero_head", False) else ""
    settings = json.dumps({k: str(v) for k, v in sorted(vars(args).items())
                           if k not in NOT_SETTINGS and not (k == "norm" and v is None)})  # names from before --norm
    digest = hashlib.sha256(settings.encode()).hexdigest()[:6]
    return f"{args.algorithm}-{args.split}-{args.ways}w{args.shots}s-{args.arch}{head}-seed{args.seed}-{digest}"


RUN_FILES = ("checkpoint.pt", "metrics.json")


def check_out(out: Path, overwrite: bool) -> bool:
    """Make sure the run can be written to ``out`` before any training; returns whether ``out`` was created.

    Raises ``ValueError`` with one sentence if ``out`` is not a folder, cannot be written, or already holds a
    run (``checkpoint.pt`` or ``metrics.json``) and ``overwrite`` is false.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a folder; choose another --out")
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and not overwrite:
        raise ValueError(f"--out {str(out)!r} already holds a run ({', '.join(held)}); pass --overwrite to "
                         f"replace it, or choose another --out")
    created = not out.exists()
    check_writable_folder(out, "--out")
    return created


def check_data_root(root: Path | None) -> None:
    """Refuse a ``--data-root`` that does not hold the four MNIST files, saying how to build them.

    A folder given on purpose is only read, never built: a typo must not create a folder and fetch 53 MB.
    ``None`` (the default root, ``$FOMAML_DATA`` or the repository's ``data/``) is built on first use, as
    ``make data`` does. Raises ``ValueError`` with one sentence.
    """
    if root is None:
        return
    build = (f"build MNIST there with `python -m fomaml_utils.data.mnist --root {root}`, or leave out --data-root "
             "to use the default")
    if not root.is_dir():
        raise ValueError(f"--data-root {str(root)!r} {'is not a folder' if root.exists() else 'does not exist'}; {build}")
    raw = root / "MNIST" / "raw"
    missing = [name for name in IDX_FILES if not (raw / name).is_file()]
    if missing:
        raise ValueError(f"--data-root {str(root)!r} holds no MNIST ({raw} lacks {', '.join(missing)}); {build}")


def eval_inner_steps(args: argparse.Namespace) -> int:
    """Meta-test adaptation steps: ``--eval-inner-steps``, or by default ``max(10, --inner-steps)``."""
    if args.eval_inner_steps is not None:
        return args.eval_inner_steps
    return max(10, args.inner_steps)


@dataclass
class RunResult:
    """Everything one command-line run produced.

    model:            the meta-learned initialisation θ (``ways`` outputs).
    config:           the run's settings (flag name -> value, JSON-friendly).
    history:          ``fomaml_utils.training.History`` of meta-training.
    evaluation:       meta-test ``Evaluation`` on ``eval_tasks`` tasks of the split's test part.
    train_seconds:    wall-clock meta-training time, validation excluded.
    peak_memory_bytes: allocator peak of one meta-step (``fomaml_utils.companions.memory.peak_memory_bytes``).
    meta_state:       what the algorithm learned besides θ (Meta-SGD's step sizes), else empty.
    """

    model: torch.nn.Module
    config: dict[str, Any]
    history: History
    evaluation: Evaluation
    train_seconds: float
    peak_memory_bytes: int
    meta_state: dict[str, torch.Tensor] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """The JSON written to ``metrics.json``; accuracies are fractions in [0, 1]."""
        last = self.evaluation.steps[-1]
        return {
            "config": self.config,
            "test_accuracy": self.evaluation.mean[-1],
            "test_ci95": self.evaluation.ci95[-1],
            "test_inner_steps": last,
            "evaluation": self.evaluation.to_dict(),
            "train_seconds": self.train_seconds,
            "peak_memory_bytes": self.peak_memory_bytes,
            "history": self.history.to_dict(),
        }

    def save(self, out: str | Path) -> tuple[Path, Path]:
        """Write ``out/checkpoint.pt`` and ``out/metrics.json``; returns their paths."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        metrics = self.metrics()
        checkpoint = save_checkpoint(out / "checkpoint.pt", self.model, meta_state=self.meta_state, **metrics)
        json_path = out / "metrics.json"
        write_json_atomically(json_path, metrics)  # strict JSON: an undefined number (NaN) is null
        return checkpoint, json_path

    def summary(self) -> str:
        """One line: algorithm, task, meta-test accuracy with its 95 % interval, time and memory."""
        c = self.config
        return (f"{c['algorithm']} on {c['split']} {c['ways']}-way {c['shots']}-shot: meta-test accuracy "
                f"{self.evaluation.summary()} ({self.evaluation.num_tasks} tasks, "
                f"{self.evaluation.steps[-1]} steps), meta-training {self.train_seconds:.0f} s, "
                f"peak memory of one meta-step {self.peak_memory_bytes / 2**20:.1f} MiB")


EVAL_TASKS_PER_BATCH = 25
"""Meta-test tasks drawn and adapted together. The sampler's draws depend on it, so it fixes which 1,000
tasks a seed gives (notebook 03 re-scores the checkpoints on the same ones); speed is about the same for
25 and 100 on the MLP's low-rank path (1.1–1.3 s per 1,000 tasks, 1 thread)."""

def make_samplers(split: str, *, ways: int, shots: int, queries: int, seed: int = 0,
                  root: str | Path | None = None, train_shots: int | None = None) -> dict[str, FewShotSampler]:
    """The three samplers of a run, ``{"train", "val", "test"}``, seeded ``seed``, ``seed + 1``, ``seed + 2``
    (modulo 2**64, torch's range).

    Meta-training tasks have ``train_shots`` support examples per class (default ``shots``), the
    others ``shots``. Raises ``ValueError`` (from ``FewShotSampler``) naming the argument, split and part if
    the split cannot supply such tasks. The meta-test parts are built first: they have the fewest classes
    and images, so a value too large is reported against the part that limits it (``ways=100`` names the
    12 classes of unseen-digits' test part, not the 28 of its train part).
    """
    shots_of = {"train": shots if train_shots is None else train_shots, "val": shots, "test": shots}
    seeds = {part: (seed + i) % (MAX_SEED + 1) for i, part in enumerate(("train", "val", "test"))}
    built = {part: FewShotSampler(split, part, ways, shots_of[part], queries, root=root, seed=seeds[part])
             for part in ("test", "val", "train")}
    return {part: built[part] for part in ("train", "val", "test")}


def prepare(args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, FewShotSampler]]:
    """Build the model and samplers for ``args``; ``ValueError`` if the values do not fit together."""
    if args.ways < 2:
        raise ValueError(f"--ways must be at least 2, got {args.ways}")
    samplers = make_samplers(args.split, ways=args.ways, shots=args.shots, queries=args.queries,
                             seed=args.seed, root=args.data_root, train_shots=args.train_shots)
    seed_everything(args.seed, threads=args.threads)
    if getattr(args, "norm", None) is not None and args.arch != "cnn":
        raise ValueError(f"--norm is a setting of the ConvNet (--arch cnn), not of --arch {args.arch}; leave it out")
    model = build_model(args.arch, args.ways, norm=getattr(args, "norm", None))
    resolve_implementation(model, args.implementation, args.algorithm)
    if args.implementation == "lowrank" and not isinstance(model, MLP):
        raise ValueError(f"--implementation lowrank works for MLPs only, not --arch {args.arch}")
    return model, samplers


def run_experiment(args: argparse.Namespace, model: torch.nn.Module,
                   samplers: dict[str, FewShotSampler]) -> RunResult:
    """Meta-train ``model`` as ``args`` say, measure one meta-step's memory, meta-test.

    Raises ``DivergenceError`` if meta-training diverges (NaN, infinity or a blow-up).
    """
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in NOT_SETTINGS}
    config["eval_inner_steps"] = eval_inner_steps(args)
    config["train_shots"] = samplers["train"].shots
    meta_state = get_algorithm(args.algorithm).init_meta_state(dict(model.named_parameters()), args.inner_lr)
    kwargs = dict(algorithm=args.algorithm, inner_lr=args.inner_lr, inner_steps=args.inner_steps,
                  implementation=args.implementation, meta_state=meta_state)
    # Memory of one meta-step, on tasks from a separately seeded sampler (training's stream is untouched).
    probe = FewShotSampler(args.split, "train", args.ways, samplers["train"].shots, args.queries,
                           root=args.data_root, seed=(args.seed + 3) % (MAX_SEED + 1)).sample(args.meta_batch_size)
    _, peak = peak_memory_bytes(meta_gradient, model, dict(model.named_parameters()), probe, **kwargs)
    history = meta_train(model, samplers["train"], meta_lr=args.meta_lr, meta_batch_size=args.meta_batch_size,
                         iterations=args.iterations, val_sampler=samplers["val"], val_every=args.val_every,
                         val_tasks=args.val_tasks, eval_inner_steps=eval_inner_steps(args),
                         optimizer=args.optimizer, seed=args.seed, progress=not args.no_progress,
                         zero_head=args.zero_head, meta_lr_schedule=args.meta_lr_schedule, **kwargs)
    evaluation = evaluate(model, samplers["test"], inner_lr=args.inner_lr, inner_steps=eval_inner_steps(args),
                          num_tasks=args.eval_tasks, tasks_per_batch=EVAL_TASKS_PER_BATCH, algorithm=args.algorithm,
                          meta_state=meta_state)
    return RunResult(model, config, history, evaluation, history.seconds[-1], peak,
                     {k: s.detach() for k, s in meta_state.items()})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_data_root(args.data_root)
        model, samplers = prepare(args)
    except ValueError as error:  # values only the data can check, e.g. more ways than classes
        parser.error(str(error))
    except MNISTDataError as error:  # damaged data: the one line `python -m fomaml_utils.data.mnist` gives
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    out = args.out if args.out is not None else Path("runs") / run_name(args)
    try:
        created = check_out(out, args.overwrite)
    except ValueError as error:
        parser.error(str(error))
    try:
        result = run_experiment(args, model, samplers)
    except DivergenceError as error:
        if created:
            shutil.rmtree(out, ignore_errors=True)  # the empty folder the check made
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 1
    paths = result.save(out)
    print(result.summary())
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
