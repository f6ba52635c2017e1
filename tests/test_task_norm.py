"""The ConvNet's per-task normalisation (``norm="task"`` and ``"support"``): batch statistics of the data at
hand, no state that carries from one task to the next, batched = per task, and the gradients right through it."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from fomaml_utils.algorithms.losses import query_output, task_loss
from fomaml_utils.algorithms.maml import meta_gradient
from fomaml_utils.algorithms.models import NORMS, ConvNet, TaskNorm, build_model, model_from_spec, model_spec
from fomaml_utils.algorithms.registry import ALGORITHMS, REGISTRY, get_algorithm, inner_loop
from fomaml_utils.data.taskbatch import TaskBatch
from fomaml_utils.training.checkpoints import load_checkpoint, save_checkpoint
from fomaml_utils.training.evaluation import evaluate

BATCH_NORMS = [n for n in NORMS if n != "image"]


def small(norm: str, dtype=torch.float64, seed=0) -> ConvNet:
    torch.manual_seed(seed)
    return ConvNet(3, channels=3, blocks=2, image_size=8, norm=norm).to(dtype)


def tasks(num=3, shots=2, queries=2, dtype=torch.float64, seed=0) -> TaskBatch:
    """3-way tasks of random 8×8 images."""
    g = torch.Generator().manual_seed(seed)
    labels = lambda k: torch.arange(3).repeat_interleave(k).repeat(num, 1)  # noqa: E731
    return TaskBatch(torch.randn(num, 3 * shots, 1, 8, 8, generator=g, dtype=dtype), labels(shots),
                     torch.randn(num, 3 * queries, 1, 8, 8, generator=g, dtype=dtype), labels(queries))


def params_of(model) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters()}


def test_task_norm_is_batch_norm_with_batch_statistics_and_no_running_averages():
    torch.manual_seed(0)
    norm = TaskNorm(4)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.normal_()
    h = torch.randn(6, 4, 5, 5, dtype=torch.float64) * 3 + 1
    expected = F.batch_norm(h, None, None, norm.weight.double(), norm.bias.double(), training=True, eps=norm.eps)
    torch.testing.assert_close(norm.double()(h), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("norm", NORMS)
def test_no_state_carries_from_one_task_to_the_next(norm):
    model = small(norm)
    assert not list(model.buffers())
    b = tasks()
    first = query_output(model, params_of(model), b.query_x[1], b.support_x[1])
    for mode in (model.train, model.eval):
        mode()
        query_output(model, params_of(model), b.query_x[0], b.support_x[0])  # another task in between
        torch.testing.assert_close(query_output(model, params_of(model), b.query_x[1], b.support_x[1]), first,
                                   rtol=0, atol=0)


def test_task_norm_is_transductive_and_support_norm_is_not():
    b = tasks()
    qx, sx = b.query_x[0], b.support_x[0]
    changed = qx.clone()
    changed[1:] = torch.randn_like(changed[1:])  # every query but the first
    for norm, depends in (("task", True), ("support", False), ("image", False)):
        model = small(norm)
        params = params_of(model)
        before, after = query_output(model, params, qx, sx)[0], query_output(model, params, changed, sx)[0]
        assert (not torch.equal(before, after)) == depends, norm
    # With support statistics a query is classified from the support set and the weights alone.
    model = small("support")
    params = params_of(model)
    alone = torch.cat([query_output(model, params, qx[i:i + 1], sx) for i in range(len(qx))])
    torch.testing.assert_close(query_output(model, params, qx, sx), alone, rtol=1e-12, atol=1e-12)
    assert not torch.equal(query_output(model, params, qx, sx), query_output(model, params, qx, sx + 1))


def test_support_norm_on_the_support_set_itself_is_task_norm():
    b = tasks()
    task, support = small("task"), small("support")
    torch.testing.assert_close(support(b.support_x[0], support=b.support_x[0]), task(b.support_x[0]), rtol=1e-12,
                               atol=1e-12)
    torch.testing.assert_close(support(b.support_x[0]), task(b.support_x[0]), rtol=0, atol=0)


@pytest.mark.parametrize("name", ALGORITHMS)
@pytest.mark.parametrize("norm", BATCH_NORMS)
def test_batched_meta_gradient_is_the_mean_of_the_per_task_ones(norm, name):
    model = small(norm, dtype=torch.float32)
    b = tasks(dtype=torch.float32)
    params = params_of(model)
    algorithm = get_algorithm(name)
    state = algorithm.init_meta_state(params, 0.3)
    kwargs = dict(algorithm=name, inner_lr=0.3, inner_steps=2, meta_state=state)
    vmap = meta_gradient(model, params, b, implementation="vmap", **kwargs)
    loop = meta_gradient(model, params, b, implementation="loop", **kwargs)
    single = [meta_gradient(model, params, TaskBatch(*(t[i:i + 1] for t in b)), implementation="loop", **kwargs)
              for i in range(3)]
    for n in params:
        per_task = torch.stack([s.grads[n] for s in single]).mean(0)
        torch.testing.assert_close(vmap.grads[n], per_task, rtol=0, atol=2e-6)
        torch.testing.assert_close(loop.grads[n], per_task, rtol=0, atol=2e-6)


def objective(model, algorithm, params, b, inner_lr, inner_steps) -> torch.Tensor:
    losses = []
    for sx, sy, qx, qy in zip(*b):
        adapted = inner_loop(model, algorithm, params, {}, sx, sy, inner_lr=inner_lr, inner_steps=inner_steps,
                             first_order=False)
        losses.append(F.cross_entropy(query_output(model, adapted, qx, sx), qy))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("implementation", ["loop", "vmap"])
@pytest.mark.parametrize("norm", BATCH_NORMS)
def test_maml_gradient_through_batch_statistics_matches_finite_differences(norm, implementation):
    model, b = small(norm), tasks(num=2)
    params = params_of(model)
    out = meta_gradient(model, params, b, algorithm="maml", inner_lr=0.5, inner_steps=2,
                        implementation=implementation)
    eps = 1e-6
    for n, tensor in params.items():
        numeric = torch.zeros_like(tensor)
        for i in range(tensor.numel()):
            values = []
            for sign in (1, -1):
                moved = tensor.clone()
                moved.view(-1)[i] += sign * eps
                values.append(objective(model, get_algorithm("maml"), {**params, n: moved}, b, 0.5, 2).item())
            numeric.view(-1)[i] = (values[0] - values[1]) / (2 * eps)
        torch.testing.assert_close(out.grads[n], numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("norm", BATCH_NORMS)
def test_fomaml_gradient_is_the_query_gradient_at_the_adapted_weights(norm):
    model, b = small(norm), tasks(num=2)
    params = params_of(model)
    out = meta_gradient(model, params, b, algorithm="fomaml", inner_lr=0.5, inner_steps=2, implementation="loop")
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for sx, sy, qx, qy in zip(*b):
        adapted = {k: v.requires_grad_() for k, v in
                   inner_loop(model, get_algorithm("fomaml"), params, {}, sx, sy, inner_lr=0.5, inner_steps=2,
                              first_order=True).items()}
        adapted = {k: v.detach().requires_grad_() for k, v in adapted.items()}
        grads = torch.autograd.grad(F.cross_entropy(query_output(model, adapted, qx, sx), qy), list(adapted.values()))
        for n, g in zip(adapted, grads):
            expected[n] += g / 2
    for n in params:
        torch.testing.assert_close(out.grads[n], expected[n], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm", BATCH_NORMS)
def test_evaluation_is_the_same_batched_and_per_task_and_uses_the_support_statistics(norm):
    model = small(norm, dtype=torch.float32)
    b = tasks(num=4, queries=3, dtype=torch.float32)

    class Sampler:
        def sample(self, n):
            return TaskBatch(*(t[:n] for t in b))

    runs = {impl: evaluate(model, Sampler(), inner_lr=0.3, inner_steps=2, num_tasks=4, tasks_per_batch=4,
                           implementation=impl) for impl in ("loop", "vmap")}
    torch.testing.assert_close(runs["vmap"].per_task, runs["loop"].per_task)
    expected = []
    params = params_of(model)
    for sx, sy, qx, qy in zip(*b):
        adapted = inner_loop(model, get_algorithm("fomaml"), params, {}, sx, sy, inner_lr=0.3, inner_steps=2,
                             first_order=True)
        expected.append((query_output(model, adapted, qx, sx).argmax(-1) == qy).double().mean())
    torch.testing.assert_close(runs["loop"].per_task[:, -1], torch.stack(expected))


@pytest.mark.parametrize("norm", NORMS)
def test_the_norm_is_part_of_the_spec_and_survives_a_checkpoint(norm, tmp_path):
    model = build_model("cnn", 5, norm=norm)
    spec = model_spec(model)
    assert spec["norm"] == norm and spec["arch"] == "cnn"
    assert model_from_spec(spec).norm == norm
    save_checkpoint(tmp_path / "m.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    x, s = torch.randn(4, 1, 28, 28), torch.randn(5, 1, 28, 28)
    torch.testing.assert_close(query_output(loaded, params_of(loaded), x, s), query_output(model, params_of(model), x, s),
                               rtol=0, atol=0)


def test_a_spec_from_before_the_norm_setting_is_the_per_image_norm():
    spec = {k: v for k, v in model_spec(build_model("cnn", 5)).items() if k != "norm"}
    assert model_from_spec(spec).norm == "image"


def test_bad_norm_settings_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match="norm must be one of 'image', 'task', 'support'"):
        ConvNet(5, norm="batch")
    with pytest.raises(ValueError, match="setting of the ConvNet"):
        build_model("mlp", 5, norm="task")


def test_every_algorithm_trains_a_support_norm_convnet_one_step():
    """One meta-step moves every weight, including the normalisation's scale and shift."""
    for name in ALGORITHMS:
        model = small("support", dtype=torch.float32)
        before = params_of(model)
        algorithm = REGISTRY[name]
        state = algorithm.init_meta_state(before, 0.3)
        out = meta_gradient(model, params_of(model), tasks(dtype=torch.float32), algorithm=name, inner_lr=0.3,
                            inner_steps=1, meta_state=state)
        moved = [n for n in before if not torch.equal(out.grads[n], torch.zeros_like(out.grads[n]))]
        assert moved == list(before), (name, set(before) - set(moved))
