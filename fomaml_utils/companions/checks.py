"""Checks for the course assignments: each failure says in words what is wrong and where to look.

The assignments' test cells call these helpers on a student's functions. A failed check raises
``CheckFailed`` (an ``AssertionError``, which is what nbgrader grades as a failed test) whose message
names the property that does not hold and the part of the notebook to look at::

    with running("maml_gradient_by_hand", where="Part 1"):
        mine = maml_gradient_by_hand(tasks, params, inner_lr=0.1, inner_steps=2)
    close(mine, reference, name="your meta-gradient", expected="fomaml_utils.companions.quadratic.meta_gradient",
          where="Part 1: the factor (I - αH)^k", rtol=1e-10)

``running`` turns what a student's unfinished or crashing function raises (``NotImplementedError`` from a
released notebook's stub, a ``NameError`` from a cell not run, any other exception) into one such message.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import NoReturn

import torch
from torch import nn

from fomaml_utils.algorithms.maml import meta_gradient
from fomaml_utils.algorithms.models import build_model
from fomaml_utils.companions.diagnose import check_meta_step
from fomaml_utils.data.taskbatch import TaskBatch
from fomaml_utils.data.tasks import FewShotSampler
from fomaml_utils.seeding import seed_everything
from fomaml_utils.training.evaluation import evaluate

__all__ = [
    "CheckFailed", "fail", "check", "close", "running", "STEP_SYMPTOMS", "check_meta_step_symptom",
    "check_query_gradient_at_adapted_weights", "meta_step_passes", "check_meta_training", "reference_fomaml_step",
]


class CheckFailed(AssertionError):
    """A check of an assignment failed; the message says what is wrong and where to look."""


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!", ".)")) else text + "."


def fail(what: str, where: str) -> NoReturn:
    """Raise ``CheckFailed("<what> Look at <where>.")``."""
    raise CheckFailed(f"{_sentence(what)} Look at {_sentence(where)}")


def check(condition: object, what: str, where: str) -> None:
    """``fail(what, where)`` unless ``condition`` is true."""
    if not condition:
        fail(what, where)


def _as_tensors(value: object, name: str, where: str) -> dict[str, torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return {"": value}
    if isinstance(value, Mapping) and all(isinstance(v, torch.Tensor) for v in value.values()):
        return dict(value)
    fail(f"{name} should be a tensor or a dict of tensors, but it is a {type(value).__name__}", where)


def close(actual: object, expected: torch.Tensor | Mapping[str, torch.Tensor], *, name: str, expected_name: str,
          where: str, rtol: float, atol: float = 0.0) -> None:
    """Check that ``actual`` equals ``expected`` (a tensor, or a dict of tensors by name) within
    ``|a - e| <= atol + rtol * |e|`` elementwise, with the same shapes; the message gives the largest
    difference and where it is."""
    got = _as_tensors(actual, name, where)
    want = _as_tensors(expected, expected_name, where)
    if got.keys() != want.keys():
        missing, extra = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
        fail(f"{name} should have the entries {sorted(want)}; missing {missing}, unexpected {extra}", where)
    for key, e in want.items():
        a = got[key]
        label = f"{name}[{key!r}]" if key else name
        if a.shape != e.shape:
            fail(f"{label} has shape {tuple(a.shape)}, but {expected_name} has shape {tuple(e.shape)}", where)
        a64, e64 = a.detach().to(torch.float64), e.detach().to(torch.float64)
        if not torch.isfinite(a64).all():
            fail(f"{label} contains NaN or infinite values", where)
        excess = (a64 - e64).abs() - (atol + rtol * e64.abs())
        if (excess > 0).any():
            i = int(excess.flatten().argmax())
            at = tuple(int(j) for j in torch.unravel_index(torch.tensor(i), e.shape)) if e.dim() else ()
            fail(f"{label} differs from {expected_name}: at index {at} it is {a64.flatten()[i].item():.6g}, "
                 f"expected {e64.flatten()[i].item():.6g} (allowed: {atol:g} + {rtol:g} × |expected|)", where)


def _raised(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``error`` or an exception it was raised from (``__cause__``/``__context__``) is a ``kind``."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def running(name: str, where: str) -> Iterator[None]:
    """Run a student's code; turn what it raises into a ``CheckFailed`` that names ``name`` and ``where``.

    ``CheckFailed`` itself passes through unchanged.
    """
    try:
        yield
    except CheckFailed:
        raise
    except Exception as error:
        if _raised(error, NotImplementedError):
            place = where.split(": ", 1)[0]  # the place, without a hint such as "which weights does ... use?"
            raise CheckFailed(f"{name} is not written yet: it still raises NotImplementedError. Replace the line "
                              f"`raise NotImplementedError()` with your code in {_sentence(place)}") from None
        if isinstance(error, NameError):
            raise CheckFailed(f"{name} could not run: {error}. Run the cells above this one from the top "
                              f"(Run > Run All Above Selected Cell), and check {_sentence(where)}") from None
        raise CheckFailed(f"{name} raised {type(error).__name__}: {error}. The traceback above shows the line; "
                          f"look at {_sentence(where)}") from error


# --------------------------------------------------------------------------------------------------
# Assignment 3: a student's FOMAML meta-step and meta-training loop, as black boxes

StepFn = Callable[..., object]

STEP_SYMPTOMS = {
    "no-update": "one meta-step leaves the meta-model's weights exactly as they were",
    "grad-accumulates": "a meta-step's update depends on the .grad the previous meta-step left behind",
    "shared-adapted-copy": "the update depends on the order of the tasks in the meta-batch",
}


NOT_JUDGED = ("Not judged: fomaml_step changes nothing, so there is no update to examine for this property; "
              "the check 'one meta-step changes the meta-model' reports that.")


def _step_config(ways: int, shots: int, queries: int, meta_batch_size: int, seed: int) -> tuple[nn.Module, TaskBatch]:
    seed_everything(seed)
    model = build_model("mlp", ways)
    batch = FewShotSampler("unseen-digits", "train", ways, shots, queries, seed=seed).sample(meta_batch_size)
    return model, batch


def _bound(step: StepFn, inner_lr: float, inner_steps: int) -> Callable[[nn.Module, TaskBatch, torch.optim.Optimizer], None]:
    def call(model: nn.Module, batch: TaskBatch, optimizer: torch.optim.Optimizer) -> None:
        step(model, batch, optimizer, inner_lr=inner_lr, inner_steps=inner_steps)
    return call


def check_meta_step_symptom(step: StepFn, code: str, *, where: str, ways: int = 3, shots: int = 1, queries: int = 4,
                            meta_batch_size: int = 3, inner_lr: float = 0.2, inner_steps: int = 2, seed: int = 0) -> None:
    """Run ``fomaml_utils.companions.diagnose.check_meta_step`` on
    ``step(model, batch, optimizer, inner_lr=, inner_steps=)`` (a fresh MLP for ``ways`` classes, plain SGD,
    float64) and fail if it shows the symptom ``code``, one of ``STEP_SYMPTOMS``.

    The other checks compare the updates of two steps; a step that changes nothing gives them nothing to
    compare, so for a code other than ``"no-update"`` such a step is not judged here (the message says so):
    the check for ``"no-update"`` takes its points.
    """
    if code not in STEP_SYMPTOMS:
        raise ValueError(f"code must be one of {sorted(STEP_SYMPTOMS)}, got {code!r}")
    model, batch = _step_config(ways, shots, queries, meta_batch_size, seed)
    with running("fomaml_step", where):
        report = check_meta_step(model, _bound(step, inner_lr, inner_steps), batch,
                                 make_optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1))
    if code != "no-update" and "no-update" in report.codes:
        print(NOT_JUDGED)
        return
    for symptom in report.symptoms:
        if symptom.code == code:
            fail(f"{STEP_SYMPTOMS[code]} ({symptom.evidence}). {symptom.fix[:1].upper()}{symptom.fix[1:]}", where)
    print(f"Passed ({ways}-way {shots}-shot, {meta_batch_size} tasks, inner_lr={inner_lr}, inner_steps={inner_steps}): "
          f"not the case that {STEP_SYMPTOMS[code]}.")


def check_query_gradient_at_adapted_weights(step: StepFn, *, where: str, ways: int = 3, shots: int = 1, queries: int = 4,
                                            inner_lr: float = 0.2, inner_steps: int = 2, seed: int = 0) -> None:
    """One step of ``step`` with plain SGD (learning rate 1) on one task, in float64, must move θ by
    −∇L_Q(θ′): the query-loss gradient at the adapted weights (``meta_gradient(..., algorithm="fomaml")``).

    One task, so that sharing an adapted copy across tasks (another check's subject) cannot show here; a
    step that changes nothing is not judged (see ``check_meta_step_symptom``).
    """
    model, batch = _step_config(ways, shots, queries, 1, seed)
    model = model.double()
    batch = TaskBatch(batch.support_x.double(), batch.support_y, batch.query_x.double(), batch.query_y)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    expected = meta_gradient(model, before, batch, algorithm="fomaml", inner_lr=inner_lr, inner_steps=inner_steps,
                             implementation="loop").grads
    with running("fomaml_step", where):
        step(model, batch, torch.optim.SGD(model.parameters(), lr=1.0), inner_lr=inner_lr, inner_steps=inner_steps)
    update = {k: before[k] - p.detach() for k, p in model.named_parameters()}
    if all(not bool(u.any()) for u in update.values()):
        print(NOT_JUDGED)
        return
    initial = meta_gradient(model, before, batch, algorithm="fomaml", inner_lr=inner_lr, inner_steps=0,
                            implementation="loop").grads
    if all(torch.allclose(update[k], initial[k], rtol=1e-6, atol=1e-10) for k in update):
        fail("the update is the query-loss gradient at the INITIAL weights θ, not at the adapted weights θ′: "
             "compute the query loss with the adapted weights that the inner loop returned", where)
    close(update, expected, name="the update of one meta-step with SGD(lr=1)",
          expected_name="−∇L_Q(θ′), the query-loss gradient at the adapted weights", where=where,
          rtol=1e-6, atol=1e-10)
    print(f"Passed ({ways}-way {shots}-shot, inner_lr={inner_lr}, inner_steps={inner_steps}): the update is the "
          f"query-loss gradient at the adapted weights, to float rounding.")


def meta_step_passes(step: StepFn) -> bool:
    """Whether ``step`` passes every check of this section at their default settings (printing nothing)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for code in STEP_SYMPTOMS:
                check_meta_step_symptom(step, code, where="")
            check_query_gradient_at_adapted_weights(step, where="")
    except CheckFailed:
        return False
    return True


def reference_fomaml_step(model: nn.Module, batch: TaskBatch, optimizer: torch.optim.Optimizer, *, inner_lr: float,
                          inner_steps: int) -> float:
    """A correct FOMAML meta-step through ``fomaml_utils.algorithms.maml.meta_gradient``; returns the mean query
    loss."""
    result = meta_gradient(model, dict(model.named_parameters()), batch, algorithm="fomaml", inner_lr=inner_lr,
                           inner_steps=inner_steps)
    optimizer.zero_grad()
    for name, p in model.named_parameters():
        p.grad = result.grads[name].clone()
    optimizer.step()
    return float(result.query_loss)


def check_meta_training(meta_train: Callable[..., object], step: StepFn, settings: Mapping[str, object], *, where: str,
                        min_accuracy: float, max_cpu_seconds: float, seed: int = 0, eval_seed: int = 1000,
                        num_tasks: int = 200) -> nn.Module:
    """Meta-train a fresh 5-way MLP (``build_model("mlp", 5)``, seeded ``seed``) with
    ``meta_train(model, sampler, step=step, **settings)`` on ``"unseen-digits"`` 1-shot tasks, then check that it
    called ``step`` ``settings["meta_steps"]`` times, returned one finite loss per meta-step, took at most
    ``max_cpu_seconds`` of CPU time (on one thread: ``torch.set_num_threads(1)`` while it trains) and scores at least ``min_accuracy`` on ``num_tasks`` test
    tasks (``evaluate``, seeded ``eval_seed``). Returns the trained model."""
    calls = 0

    def counted(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return step(*args, **kwargs)

    seed_everything(seed)
    model = build_model("mlp", 5)
    sampler = FewShotSampler("unseen-digits", "train", ways=5, shots=1, queries=15, seed=seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and CPU time does not count idle spinning
    try:
        start = time.process_time()
        with running("meta_train", where):
            losses = meta_train(model, sampler, step=counted, **settings)
        cpu = time.process_time() - start
    finally:
        torch.set_num_threads(threads)
    steps = settings["meta_steps"]
    check(calls == steps, f"meta_train called step {calls} times, but meta_steps={steps}: call "
          f"step(model, batch, optimizer, inner_lr=..., inner_steps=...) once per meta-step", where)
    check(isinstance(losses, (list, tuple)) and len(losses) == steps,
          f"meta_train should return a list of {steps} losses (one per meta-step), got "
          f"{type(losses).__name__}{'' if not hasattr(losses, '__len__') else f' of length {len(losses)}'}", where)
    bad = [i for i, loss in enumerate(losses) if not math.isfinite(float(loss))]
    check(not bad, f"the meta-loss is not finite from meta-step {bad[0] + 1 if bad else 0} on: training diverged", where)
    accuracy = evaluate(model, FewShotSampler("unseen-digits", "test", 5, 1, 15, seed=eval_seed),
                        inner_lr=settings["inner_lr"], inner_steps=settings["inner_steps"], num_tasks=num_tasks).mean[-1]
    print(f"Meta-trained in {cpu:.0f} s of CPU time on one thread (at most {max_cpu_seconds:g} s allowed); test accuracy after "
          f"adaptation on {num_tasks} new-digit tasks: {100 * accuracy:.1f} % (at least {100 * min_accuracy:g} % needed).")
    check(cpu <= max_cpu_seconds, f"meta-training took {cpu:.0f} s of CPU time, more than {max_cpu_seconds:g} s", where)
    check(accuracy >= min_accuracy, f"the meta-trained model reaches {100 * accuracy:.1f} % on new digits, below "
          f"{100 * min_accuracy:g} %", where)
    return model
