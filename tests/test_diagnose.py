"""The bug checks of ``fomaml_utils.companions.diagnose``: each flags a step that has its bug and passes a correct one.

Every buggy step below differs from the correct ``fomaml_step`` (or ``maml_step``) in the one place its
name says, and the check must name exactly that symptom. Tiny float64 MLPs and hand-built task batches
keep each test well under a second; only the split test reads MNIST.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from fomaml_utils.companions.diagnose import (
    DiagnosisError, Report, check_meta_step, check_split, check_task_labels, check_tasks,
    maml_objective_gradient,
)
from fomaml_utils.algorithms.maml import adapt, meta_gradient, task_loss
from fomaml_utils.algorithms.models import MLP
from fomaml_utils.data.taskbatch import TaskBatch
from fomaml_utils.data.tasks import FewShotSampler

INNER_LR, INNER_STEPS, META_LR = 0.5, 2, 0.1


def make_batch(tasks: int = 3, ways: int = 3, shots: int = 2, queries: int = 3, features: int = 4,
               seed: int = 0) -> TaskBatch:
    """Gaussian classes around random means: support ``[T, ways*shots, features]`` float64, label-major."""
    g = torch.Generator().manual_seed(seed)
    means = 2 * torch.randn(tasks, ways, features, generator=g, dtype=torch.float64)

    def draw(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(ways).repeat_interleave(per_class).repeat(tasks, 1)
        x = torch.stack([means[t, y[t]] for t in range(tasks)])
        return x + torch.randn(x.shape, generator=g, dtype=torch.float64), y

    return TaskBatch(*draw(shots), *draw(queries))


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MLP(in_features=4, hidden=(8,), out_features=3).double()


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=META_LR)


def check(step, model=None, batch=None, **kwargs) -> Report:
    return check_meta_step(make_model() if model is None else model, step, make_batch() if batch is None else batch,
                           make_optimizer=sgd, **kwargs)


# --------------------------------------------------------------------------- correct steps


def fomaml_step(model, batch, optimizer):
    """Correct FOMAML: every task adapted from θ, its query loss backpropagated, the mean over tasks."""
    optimizer.zero_grad()
    params = dict(model.named_parameters())
    for sx, sy, qx, qy in zip(*batch):
        adapted = adapt(model, params, sx, sy, inner_lr=INNER_LR, inner_steps=INNER_STEPS)
        (task_loss(model, adapted, qx, qy) / batch.num_tasks).backward()
    optimizer.step()


def maml_step(model, batch, optimizer):
    """Correct MAML: the same with the graph kept through the inner loop."""
    optimizer.zero_grad()
    params = dict(model.named_parameters())
    for sx, sy, qx, qy in zip(*batch):
        adapted = adapt(model, params, sx, sy, inner_lr=INNER_LR, inner_steps=INNER_STEPS, first_order=False)
        (task_loss(model, adapted, qx, qy) / batch.num_tasks).backward()
    optimizer.step()


def meta_gradient_step(model, batch, optimizer):
    """Correct FOMAML through the package: gradients assigned, not accumulated."""
    out = meta_gradient(model, dict(model.named_parameters()), batch, algorithm="fomaml", inner_lr=INNER_LR,
                        inner_steps=INNER_STEPS, implementation="loop")
    for name, p in model.named_parameters():
        p.grad = out.grads[name]
    optimizer.step()


# --------------------------------------------------------------------------- buggy steps, one bug each


def gradients_into_copy_step(model, batch, optimizer):
    """Bug 1: the meta-loss is a function of a deepcopy's parameters, so backward() fills the copy's .grad."""
    optimizer.zero_grad()
    fast = copy.deepcopy(model)
    params = dict(fast.named_parameters())
    for sx, sy, qx, qy in zip(*batch):
        adapted = adapt(fast, params, sx, sy, inner_lr=INNER_LR, inner_steps=INNER_STEPS)
        (task_loss(fast, adapted, qx, qy) / batch.num_tasks).backward()
    optimizer.step()


def no_zero_grad_step(model, batch, optimizer):
    """Bug 2: fomaml_step without optimizer.zero_grad()."""
    params = dict(model.named_parameters())
    for sx, sy, qx, qy in zip(*batch):
        adapted = adapt(model, params, sx, sy, inner_lr=INNER_LR, inner_steps=INNER_STEPS)
        (task_loss(model, adapted, qx, qy) / batch.num_tasks).backward()
    optimizer.step()


def shared_copy_step(model, batch, optimizer):
    """Bug 3: one adapted copy for all tasks; each task continues from where the previous one ended."""
    optimizer.zero_grad()
    adapted = dict(model.named_parameters())
    for sx, sy, qx, qy in zip(*batch):
        adapted = adapt(model, adapted, sx, sy, inner_lr=INNER_LR, inner_steps=INNER_STEPS)
        (task_loss(model, adapted, qx, qy) / batch.num_tasks).backward()
    optimizer.step()


def support_only_step(model, batch, optimizer):
    """Bug 4: the "meta-loss" on the support set; the query set is never used."""
    optimizer.zero_grad()
    params = dict(model.named_parameters())
    for sx, sy, qx, qy in zip(*batch):
        adapted = adapt(model, params, sx, sy, inner_lr=INNER_LR, inner_steps=INNER_STEPS)
        (task_loss(model, adapted, sx, sy) / batch.num_tasks).backward()
    optimizer.step()


def data_update_maml_step(model, batch, optimizer):
    """Bug 6: "MAML" whose inner updates go through .data, outside autograd's graph."""
    optimizer.zero_grad()
    params = dict(model.named_parameters())
    for sx, sy, qx, qy in zip(*batch):
        adapted = {k: p.clone() for k, p in params.items()}
        for _ in range(INNER_STEPS):
            grads = torch.autograd.grad(task_loss(model, adapted, sx, sy), list(adapted.values()), create_graph=True)
            for p, g in zip(adapted.values(), grads):
                p.data -= INNER_LR * g.data
        (task_loss(model, adapted, qx, qy) / batch.num_tasks).backward()
    optimizer.step()


# --------------------------------------------------------------------------- the entry point


def test_correct_steps_show_no_symptom():
    for step in (fomaml_step, meta_gradient_step):
        report = check(step, algorithm="fomaml", inner_lr=INNER_LR, inner_steps=INNER_STEPS)
        assert report.ok, str(report)
        assert not report.skipped[1:], report.skipped  # only the BatchNorm check has nothing to look at


def test_gradients_in_a_copy_are_no_update():
    report = check(gradients_into_copy_step)
    assert report.codes == ("no-update",), str(report)
    assert ".grad None" in str(report) and "copy.deepcopy" in str(report)
    assert check(fomaml_step).ok


def test_missing_zero_grad_is_grad_accumulates():
    report = check(no_zero_grad_step)
    assert report.codes == ("grad-accumulates",), str(report)
    assert check(fomaml_step).ok


def test_a_step_that_clears_grad_at_its_end_is_not_flagged():
    def clears_at_end(model, batch, optimizer):
        meta_gradient_step(model, batch, optimizer)
        optimizer.zero_grad(set_to_none=True)

    report = check(clears_at_end)
    assert report.ok and any("leaves no gradient" in p for p in report.passed), str(report)


def test_shared_adapted_copy_makes_the_update_depend_on_task_order():
    report = check(shared_copy_step)
    assert report.codes == ("shared-adapted-copy",), str(report)
    assert check(fomaml_step).ok


def test_support_only_loss_is_query_ignored():
    report = check(support_only_step)
    assert report.codes == ("query-ignored",), str(report)
    assert check(fomaml_step).ok


def test_query_check_also_works_for_regression():
    batch = make_batch()
    g = torch.Generator().manual_seed(1)
    regression = TaskBatch(batch.support_x, torch.randn(3, 6, 3, generator=g, dtype=torch.float64),
                           batch.query_x, torch.randn(3, 9, 3, generator=g, dtype=torch.float64))
    assert check(support_only_step, batch=regression).codes == ("query-ignored",)
    assert check(fomaml_step, batch=regression).ok


def test_maml_objective_gradient_matches_autograd_through_the_inner_loop():
    model, batch = make_model(), make_batch()
    params = dict(model.named_parameters())
    fd = maml_objective_gradient(model, params, batch, inner_lr=INNER_LR, inner_steps=INNER_STEPS)
    exact = meta_gradient(model, params, batch, algorithm="maml", inner_lr=INNER_LR, inner_steps=INNER_STEPS,
                          implementation="loop").grads
    for k in params:
        torch.testing.assert_close(fd[k], exact[k], rtol=1e-6, atol=1e-8)


def test_data_updates_in_a_maml_step_are_graph_cut():
    kwargs = dict(algorithm="maml", inner_lr=INNER_LR, inner_steps=INNER_STEPS)
    report = check(data_update_maml_step, **kwargs)
    assert report.codes == ("graph-cut",), str(report)
    assert check(maml_step, **kwargs).ok


def test_a_fomaml_step_called_maml_is_graph_cut_and_a_wrong_gradient_is_a_mismatch():
    kwargs = dict(algorithm="maml", inner_lr=INNER_LR, inner_steps=INNER_STEPS)
    assert check(fomaml_step, **kwargs).codes == ("graph-cut",)
    # Inner step size 0.25 instead of 0.5: a gradient, but not the one claimed.
    assert check(fomaml_step, algorithm="fomaml", inner_lr=0.25, inner_steps=INNER_STEPS).codes == (
        "gradient-mismatch",)


class BatchNormNet(nn.Module):
    """``Linear(4, 8) → BatchNorm1d(8) → ReLU → Linear(8, 3)``: ``[B, 4] → [B, 3]``."""

    def __init__(self):
        super().__init__()
        self.hidden, self.norm, self.out = nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.norm(self.hidden(x))))


def _batchnorm_step(model, batch, optimizer, *, copy_buffers: bool):
    """FOMAML with a loss that hands functional_call copies of the buffers, or the model's own."""
    def loss(p, x, y):
        buffers = {k: b.clone() for k, b in model.named_buffers()} if copy_buffers else {}
        return F.cross_entropy(functional_call(model, {**p, **buffers}, (x,)), y)

    optimizer.zero_grad()
    params = dict(model.named_parameters())
    for sx, sy, qx, qy in zip(*batch):
        adapted = params
        for _ in range(INNER_STEPS):
            grads = torch.autograd.grad(loss(adapted, sx, sy), list(adapted.values()))
            adapted = {k: p - INNER_LR * g for (k, p), g in zip(adapted.items(), grads)}
        (loss(adapted, qx, qy) / batch.num_tasks).backward()
    optimizer.step()


def test_batchnorm_running_statistics_carried_between_tasks():
    torch.manual_seed(0)
    model = BatchNormNet().double()
    buggy = check(lambda m, b, o: _batchnorm_step(m, b, o, copy_buffers=False), model=model)
    assert buggy.codes == ("batchnorm-running-stats",), str(buggy)
    assert "norm.running_mean" in str(buggy)
    correct = check(lambda m, b, o: _batchnorm_step(m, b, o, copy_buffers=True), model=model)
    assert correct.ok and any(p.startswith("7 ") for p in correct.passed), str(correct)


def popular_loop_step(model, batch, optimizer):
    """A popular blog tutorial's loop: one copy (load_state_dict) fine-tuned on every task in turn with a fresh SGD
    and no zero_grad, then a "meta loss" on the last task's own support data; backward() fills the copy."""
    fast = MLP(in_features=4, hidden=(8,), out_features=3).double()
    fast.load_state_dict(model.state_dict())
    for sx, sy, qx, qy in zip(*batch):
        inner = torch.optim.SGD(fast.parameters(), lr=INNER_LR)
        for _ in range(INNER_STEPS):
            F.cross_entropy(fast(sx), sy).backward()
            inner.step()
    F.cross_entropy(fast(sx), sy).backward()
    optimizer.step()


def test_the_popular_blog_loop_shows_no_update_first():
    report = check(popular_loop_step)
    assert report.codes == ("no-update",), str(report)
    assert any(s.startswith("2, 3, 4, 6") for s in report.skipped)


def inner_optimizer_step(model, batch, optimizer, *, inner_zero_grad: bool = True):
    """FOMAML with an inner SGD on a per-task copy whose query gradient is added to the model's .grad."""
    optimizer.zero_grad()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    for sx, sy, qx, qy in zip(*batch):
        fast = copy.deepcopy(model)
        inner = torch.optim.SGD(fast.parameters(), lr=INNER_LR)
        for _ in range(INNER_STEPS):
            if inner_zero_grad:
                inner.zero_grad()
            F.cross_entropy(fast(sx), sy).backward()
            inner.step()
        inner.zero_grad()
        (F.cross_entropy(fast(qx), qy) / batch.num_tasks).backward()
        for p, q in zip(model.parameters(), fast.parameters()):
            p.grad += q.grad
    optimizer.step()


def test_inner_loop_without_zero_grad_is_a_gradient_mismatch():
    # Accumulation inside the inner loop never reaches the next meta-step: only the comparison with the
    # true meta-gradient sees it.
    kwargs = dict(algorithm="fomaml", inner_lr=INNER_LR, inner_steps=INNER_STEPS)
    assert check(lambda m, b, o: inner_optimizer_step(m, b, o, inner_zero_grad=False), **kwargs).codes == (
        "gradient-mismatch",)
    assert check(inner_optimizer_step, **kwargs).ok


@pytest.mark.parametrize("step, code", [(fomaml_step, None), (gradients_into_copy_step, "no-update"),
                                        (no_zero_grad_step, "grad-accumulates"),
                                        (shared_copy_step, "shared-adapted-copy"),
                                        (support_only_step, "query-ignored")])
def test_symptoms_1_to_4_are_found_under_adam_too(step, code):
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=0.01)  # noqa: E731
    report = check_meta_step(make_model(), step, make_batch(), make_optimizer=adam)
    assert report.codes == (() if code is None else (code,)), str(report)


# --------------------------------------------------------------------------- what the check promises


def test_the_callers_model_grad_and_random_state_are_left_alone():
    model = make_model()
    model.layers[0].weight.grad = torch.ones_like(model.layers[0].weight)
    state = copy.deepcopy(model.state_dict())
    rng = torch.random.get_rng_state()
    check(no_zero_grad_step, model=model, algorithm="fomaml", inner_lr=INNER_LR, inner_steps=INNER_STEPS)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert torch.equal(model.layers[0].weight.grad, torch.ones_like(model.layers[0].weight))
    assert model.layers[1].weight.grad is None
    assert torch.equal(rng, torch.random.get_rng_state())


def test_a_step_that_changes_the_callers_model_is_refused_and_undone():
    model = make_model()
    state = copy.deepcopy(model.state_dict())
    outside = sgd(model)  # bound to the caller's parameters, not to the copies the check passes

    def step(m, batch):
        fomaml_step(model, batch, outside)

    with pytest.raises(ValueError, match="changed the caller's model"):
        check_meta_step(model, step, make_batch())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_steps_without_an_optimizer_argument_are_accepted():
    def own_optimizer(model, batch):
        fomaml_step(model, batch, sgd(model))

    def shared(model, batch):
        shared_copy_step(model, batch, sgd(model))

    assert check_meta_step(make_model(), own_optimizer, make_batch()).ok
    assert check_meta_step(make_model(), shared, make_batch()).codes == ("shared-adapted-copy",)


def test_report_reads_in_words_and_raises_with_its_message():
    report = check(support_only_step)
    text = str(report)
    assert text.startswith("meta-step: 1 symptom(s) found")
    for part in ("[query-ignored] (bug 4)", "evidence:", "look at:", "fix:", "ok:", "skipped:"):
        assert part in text
    with pytest.raises(DiagnosisError, match="query-ignored") as caught:
        report.raise_if_symptoms()
    assert caught.value.report is report
    check(fomaml_step).raise_if_symptoms()  # ok: nothing raised


def test_bad_input_is_a_value_error_in_words():
    model, batch = make_model(), make_batch()
    with pytest.raises(ValueError, match="step_fn must be callable"):
        check_meta_step(model, "step", batch)
    with pytest.raises(ValueError, match="at least 2 tasks"):
        check_meta_step(model, fomaml_step, batch.task(0), make_optimizer=sgd)
    with pytest.raises(ValueError, match=r"step_fn must accept step_fn\(model, batch\)"):
        check_meta_step(model, fomaml_step, batch)  # takes an optimizer but none is made
    with pytest.raises(ValueError, match="batch must be a TaskBatch"):
        check_meta_step(model, fomaml_step, tuple(batch), make_optimizer=sgd)
    with pytest.raises(ValueError, match="inner_lr and inner_steps"):
        check_meta_step(model, fomaml_step, batch, make_optimizer=sgd, algorithm="maml")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        check_meta_step(model, fomaml_step, batch, make_optimizer=sgd, algorithm="sgd", inner_lr=0.1, inner_steps=1)


def test_a_failing_step_says_where_it_failed():
    def broken(model, batch):
        raise KeyError("layers.9.weight")

    with pytest.raises(RuntimeError, match="step_fn raised KeyError.*float64 copy"):
        check_meta_step(make_model(), broken, make_batch())


# --------------------------------------------------------------------------- samplers and splits


def _synthetic_sampler(cls=FewShotSampler, ways: int = 3, digits: tuple[int, ...] = (0, 1, 2, 3, 4), seed: int = 0):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (60, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.arange(5).repeat(12)
    return cls.from_tensors(images, labels, [(d, 0) for d in digits], ways, 1, 1, seed=seed)


class SortedLabelsSampler(FewShotSampler):
    """Bug 5: a task's classes numbered in list order, so class 0 is label 0 whenever it comes up."""

    def sample_indices(self, num_tasks):
        class_idx, image_idx = super().sample_indices(num_tasks)
        order = class_idx.argsort(dim=1)
        return class_idx.gather(1, order), image_idx.gather(1, order[..., None].expand_as(image_idx))


def test_fixed_labels_are_flagged_and_shuffled_labels_pass():
    buggy = check_tasks(_synthetic_sampler(SortedLabelsSampler))
    assert buggy.codes == ("fixed-labels",), str(buggy)
    assert "class 0 → label 0" in str(buggy)
    correct = _synthetic_sampler()
    before = correct.generator.get_state()
    assert check_tasks(correct).ok
    assert torch.equal(before, correct.generator.get_state())  # the sampler draws the same tasks next


def test_task_label_check_needs_enough_tasks_and_class_identities():
    with pytest.raises(ValueError, match="draw more tasks"):
        check_task_labels(torch.tensor([[0, 1], [2, 3]]))
    with pytest.raises(ValueError, match="return_classes"):
        check_tasks(type("Plain", (), {"sample": lambda self, n: make_batch()})())


def test_evaluating_on_training_classes_is_flagged():
    train = _synthetic_sampler(ways=2, digits=(0, 1, 2))
    assert check_split(train, _synthetic_sampler(ways=2, digits=(3, 4))).ok
    report = check_split(train, _synthetic_sampler(ways=2, digits=(2, 3, 4)))
    assert report.codes == ("eval-on-train-classes",), str(report)
    assert "1 of the 3 evaluation classes" in str(report)


def test_split_check_on_mnist_splits():
    kwargs = dict(ways=5, shots=1, queries=1)
    train = FewShotSampler("unseen-digits-5", "train", **kwargs)
    assert check_split(train, FewShotSampler("unseen-digits-5", "test", **kwargs)).ok
    report = check_split(FewShotSampler("digits", "train", **kwargs), FewShotSampler("digits", "test", **kwargs))
    assert report.codes == ("eval-on-train-classes",) and "on purpose" in str(report)
    assert check_split(train, train).codes == ("eval-on-train-classes",)
