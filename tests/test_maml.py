"""Properties of the inner loop and of the three meta-gradients (tiny synthetic tasks, float64 where exact)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fomaml_utils.algorithms.maml import MetaGradient, adapt, meta_gradient, resolve_implementation, task_loss
from fomaml_utils.algorithms.models import MLP, ConvNet, build_model
from fomaml_utils.algorithms.registry import ALGORITHMS, get_algorithm, inner_loop
from fomaml_utils.data.taskbatch import TaskBatch
from fomaml_utils.data.tasks import FewShotSampler
from fomaml_utils.seeding import seed_everything


def state_for(algorithm: str, params: dict[str, torch.Tensor], inner_lr: float) -> dict[str, torch.Tensor]:
    """The algorithm's meta-state at its start (empty for most)."""
    return get_algorithm(algorithm).init_meta_state(params, inner_lr)


def classification_batch(tasks=3, ways=3, shots=2, queries=3, features=6, seed=0, dtype=torch.float32) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    return TaskBatch(
        torch.randn(tasks, ways * shots, features, generator=g, dtype=dtype),
        torch.arange(ways).repeat_interleave(shots).repeat(tasks, 1),
        torch.randn(tasks, ways * queries, features, generator=g, dtype=dtype),
        torch.arange(ways).repeat_interleave(queries).repeat(tasks, 1),
    )


def regression_batch(tasks=3, shots=4, queries=5, seed=0, dtype=torch.float32) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(tasks, shots + queries, 1, generator=g, dtype=dtype) * 10 - 5
    y = torch.sin(x + torch.rand(tasks, 1, 1, generator=g, dtype=dtype))
    return TaskBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])


def tiny_mlp(features=6, ways=3, hidden=(5,), dtype=torch.float32, seed=0) -> MLP:
    torch.manual_seed(seed)
    return MLP(features, hidden, ways).to(dtype)


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters()}


# ---- task_loss and adapt


def test_task_loss_is_cross_entropy_for_integer_labels_and_mse_for_float_targets():
    model = tiny_mlp()
    b = classification_batch()
    expected = nn.functional.cross_entropy(model(b.support_x[0]), b.support_y[0])
    torch.testing.assert_close(task_loss(model, params_of(model), b.support_x[0], b.support_y[0]), expected)
    reg = tiny_mlp(features=1, ways=1)
    r = regression_batch()
    expected = nn.functional.mse_loss(reg(r.support_x[0]), r.support_y[0])
    torch.testing.assert_close(task_loss(reg, params_of(reg), r.support_x[0], r.support_y[0]), expected)


def test_adapt_with_zero_steps_returns_the_params_unchanged():
    model = tiny_mlp()
    params = params_of(model)
    b = classification_batch()
    adapted = adapt(model, params, b.support_x[0], b.support_y[0], inner_lr=0.5, inner_steps=0)
    assert adapted.keys() == params.keys()
    assert all(adapted[k] is params[k] for k in params)


def test_one_adapt_step_is_one_sgd_step_on_the_support_loss():
    model = tiny_mlp()
    params = {k: p.requires_grad_(True) for k, p in params_of(model).items()}
    b = classification_batch()
    loss = task_loss(model, params, b.support_x[0], b.support_y[0])
    grads = torch.autograd.grad(loss, list(params.values()))
    adapted = adapt(model, params, b.support_x[0], b.support_y[0], inner_lr=0.3, inner_steps=1)
    for (k, p), g in zip(params.items(), grads):
        torch.testing.assert_close(adapted[k], p - 0.3 * g)


def test_adapt_works_under_no_grad_and_returns_tensors_without_a_graph():
    model = tiny_mlp()
    b = classification_batch()
    with torch.no_grad():
        adapted = adapt(model, params_of(model), b.support_x[0], b.support_y[0], inner_lr=0.3, inner_steps=2)
    assert not any(t.requires_grad for t in adapted.values())
    assert task_loss(model, adapted, b.support_x[0], b.support_y[0]) < task_loss(
        model, params_of(model), b.support_x[0], b.support_y[0])


# ---- the three meta-gradients


@pytest.mark.parametrize("implementation", ["loop", "vmap"])
def test_fomaml_gradient_equals_query_loss_gradient_at_adapted_weights(implementation):
    model = tiny_mlp(dtype=torch.float64)
    params = params_of(model)
    b = classification_batch(dtype=torch.float64)
    out = meta_gradient(model, params, b, algorithm="fomaml", inner_lr=0.4, inner_steps=3,
                        implementation=implementation)
    # Independently: adapt by hand (plain SGD with torch.autograd.grad), then differentiate the query
    # loss with respect to the adapted tensors themselves.
    expected = {k: torch.zeros_like(p) for k, p in params.items()}
    for i in range(b.num_tasks):
        adapted = {k: p.clone().requires_grad_(True) for k, p in params.items()}
        for _ in range(3):
            loss = nn.functional.cross_entropy(torch.func.functional_call(model, adapted, (b.support_x[i],)),
                                               b.support_y[i])
            grads = torch.autograd.grad(loss, list(adapted.values()))
            adapted = {k: (a - 0.4 * g).detach().requires_grad_(True) for (k, a), g in zip(adapted.items(), grads)}
        query = nn.functional.cross_entropy(torch.func.functional_call(model, adapted, (b.query_x[i],)), b.query_y[i])
        for k, g in zip(adapted, torch.autograd.grad(query, list(adapted.values()))):
            expected[k] += g / b.num_tasks
    for k in params:
        torch.testing.assert_close(out.grads[k], expected[k])


def _meta_objective(model, flat, shapes, batch, inner_lr, inner_steps):
    """Mean query loss after exact adaptation, as a function of the flattened θ (for finite differences)."""
    params, i = {}, 0
    for k, s in shapes.items():
        n = s.numel()
        params[k] = flat[i:i + n].view(s)
        i += n
    losses = []
    for sx, sy, qx, qy in zip(*batch):
        adapted = adapt(model, params, sx, sy, inner_lr=inner_lr, inner_steps=inner_steps, first_order=False)
        losses.append(task_loss(model, adapted, qx, qy))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("implementation", ["loop", "vmap"])
def test_maml_gradient_matches_central_finite_differences_and_differs_from_fomaml(implementation):
    model = tiny_mlp(features=3, ways=2, hidden=(3,), dtype=torch.float64)
    params = params_of(model)
    b = classification_batch(tasks=2, ways=2, features=3, dtype=torch.float64)
    out = meta_gradient(model, params, b, algorithm="maml", inner_lr=0.5, inner_steps=2,
                        implementation=implementation)
    flat = torch.cat([p.reshape(-1) for p in params.values()])
    shapes = {k: p.shape for k, p in params.items()}
    eps = 1e-6
    numeric = torch.empty_like(flat)
    for j in range(flat.numel()):
        e = torch.zeros_like(flat)
        e[j] = eps
        with torch.no_grad():
            numeric[j] = (_meta_objective(model, flat + e, shapes, b, 0.5, 2)
                          - _meta_objective(model, flat - e, shapes, b, 0.5, 2)) / (2 * eps)
    analytic = torch.cat([out.grads[k].reshape(-1) for k in params])
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-7)
    fomaml = meta_gradient(model, params, b, algorithm="fomaml", inner_lr=0.5, inner_steps=2,
                           implementation=implementation)
    first_order = torch.cat([fomaml.grads[k].reshape(-1) for k in params])
    assert (analytic - first_order).norm() > 1e-3 * analytic.norm()


class Quadratic(nn.Module):
    """A linear model x ↦ x·w; with the MSE task loss, every task's loss is quadratic in w."""

    def __init__(self, dim: int):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(dim, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w.unsqueeze(-1)  # [n, dim] -> [n, 1]


@pytest.mark.parametrize("implementation", ["loop", "vmap"])
def test_maml_gradient_on_a_quadratic_loss_with_one_step_is_the_closed_form(implementation):
    # Linear regression with MSE is quadratic in w: L(w) = ½(w−w*)ᵀH(w−w*) + c with H = 2XᵀX/n.
    # One inner step: w′ = w − α∇L_S(w), and the MAML gradient is (I − αH_S)∇L_Q(w′).
    g = torch.Generator().manual_seed(1)
    dim, alpha = 3, 0.1
    model = Quadratic(dim)
    w = torch.randn(dim, generator=g, dtype=torch.float64)
    sx, qx = torch.randn(1, 6, dim, generator=g, dtype=torch.float64), torch.randn(1, 7, dim, generator=g, dtype=torch.float64)
    sy, qy = torch.randn(1, 6, 1, generator=g, dtype=torch.float64), torch.randn(1, 7, 1, generator=g, dtype=torch.float64)
    out = meta_gradient(model, {"w": w}, TaskBatch(sx, sy, qx, qy), algorithm="maml", inner_lr=alpha,
                        inner_steps=1, implementation=implementation)

    def grad_mse(x, y, w):  # ∇ mean((xw − y)²) = 2xᵀ(xw − y)/n
        return 2 * x.T @ (x @ w - y[:, 0]) / x.shape[0]

    hessian_support = 2 * sx[0].T @ sx[0] / sx.shape[1]
    adapted = w - alpha * grad_mse(sx[0], sy[0], w)
    expected = (torch.eye(dim, dtype=torch.float64) - alpha * hessian_support) @ grad_mse(qx[0], qy[0], adapted)
    torch.testing.assert_close(out.grads["w"], expected)


@pytest.mark.parametrize("implementation", ["loop", "vmap"])
def test_reptile_direction_for_one_task_is_params_minus_adapted(implementation):
    model = tiny_mlp()
    params = params_of(model)
    b = classification_batch(tasks=1)
    out = meta_gradient(model, params, b, algorithm="reptile", inner_lr=0.3, inner_steps=4,
                        implementation=implementation)
    with torch.no_grad():
        adapted = adapt(model, params, b.support_x[0], b.support_y[0], inner_lr=0.3, inner_steps=4)
    for k in params:
        torch.testing.assert_close(out.grads[k], params[k] - adapted[k])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_meta_gradient_reports_query_loss_and_accuracy_at_the_adapted_weights(algorithm):
    model = tiny_mlp()
    params = params_of(model)
    b = classification_batch(tasks=2)
    state = state_for(algorithm, params, 0.3)
    out = meta_gradient(model, params, b, algorithm=algorithm, inner_lr=0.3, inner_steps=2, implementation="loop",
                        meta_state=state)
    assert isinstance(out, MetaGradient)
    losses, accuracies = [], []
    with torch.no_grad():
        for sx, sy, qx, qy in zip(*b):
            adapted = inner_loop(model, get_algorithm(algorithm), params, state, sx, sy, inner_lr=0.3, inner_steps=2,
                                 first_order=True)
            losses.append(task_loss(model, adapted, qx, qy))
            accuracies.append((torch.func.functional_call(model, adapted, (qx,)).argmax(-1) == qy).float().mean())
    torch.testing.assert_close(out.query_loss, torch.stack(losses).mean())
    torch.testing.assert_close(out.query_accuracy, torch.stack(accuracies).mean())
    assert not out.query_loss.requires_grad and not any(g.requires_grad for g in out.grads.values())
    assert not any(g.requires_grad for g in out.meta_state_grads.values())


def test_meta_gradient_for_regression_reports_no_accuracy():
    model = tiny_mlp(features=1, ways=1)
    out = meta_gradient(model, params_of(model), regression_batch(), algorithm="fomaml", inner_lr=0.01,
                        inner_steps=1, implementation="loop")
    assert out.query_accuracy is None


def test_meta_gradient_does_not_touch_the_params_or_their_grad():
    model = tiny_mlp()
    before = params_of(model)
    meta_gradient(model, dict(model.named_parameters()), classification_batch(), algorithm="maml", inner_lr=0.3,
                  inner_steps=2, implementation="loop")
    for k, p in model.named_parameters():
        assert torch.equal(p, before[k]) and p.grad is None


# ---- validation


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"inner_lr": 0.0}, "inner_lr"),
    ({"inner_lr": -0.1}, "inner_lr"),
    ({"inner_lr": float("nan")}, "inner_lr"),
    ({"inner_steps": -1}, "inner_steps"),
    ({"inner_steps": 1.5}, "inner_steps"),
    ({"algorithm": "sgd"}, "algorithm"),
    ({"implementation": "fast"}, "implementation"),
])
def test_bad_hyperparameters_raise_value_error_naming_the_argument(kwargs, argument):
    model = tiny_mlp()
    args = {"algorithm": "fomaml", "inner_lr": 0.1, "inner_steps": 1, "implementation": "loop"} | kwargs
    with pytest.raises(ValueError, match=argument):
        meta_gradient(model, params_of(model), classification_batch(), **args)


def test_empty_batch_raises_value_error_naming_the_batch():
    model = tiny_mlp()
    empty = TaskBatch(*(t[:0] for t in classification_batch()))
    with pytest.raises(ValueError, match="batch"):
        meta_gradient(model, params_of(model), empty, algorithm="fomaml", inner_lr=0.1, inner_steps=1)


def test_adapt_rejects_bad_inner_lr_and_inner_steps():
    model = tiny_mlp()
    b = classification_batch()
    with pytest.raises(ValueError, match="inner_lr"):
        adapt(model, params_of(model), b.support_x[0], b.support_y[0], inner_lr=0, inner_steps=1)
    with pytest.raises(ValueError, match="inner_steps"):
        adapt(model, params_of(model), b.support_x[0], b.support_y[0], inner_lr=0.1, inner_steps=-2)


# ---- the batched path


def image_batch(tasks=2, ways=3, shots=2, queries=2, size=12, seed=0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    return TaskBatch(torch.randn(tasks, ways * shots, 1, size, size, generator=g),
                     torch.arange(ways).repeat_interleave(shots).repeat(tasks, 1),
                     torch.randn(tasks, ways * queries, 1, size, size, generator=g),
                     torch.arange(ways).repeat_interleave(queries).repeat(tasks, 1))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_vmap_and_loop_meta_gradients_agree(arch, algorithm):
    torch.manual_seed(0)
    # Small images keep the test fast; the ConvNet is the same class at a smaller size (12 → 6 → 3).
    model = MLP(144, (16, 8), 3) if arch == "mlp" else ConvNet(3, channels=4, blocks=2, image_size=12)
    params = params_of(model)
    b = image_batch()
    kwargs = dict(algorithm=algorithm, inner_lr=0.3, inner_steps=2, meta_state=state_for(algorithm, params, 0.3))
    loop = meta_gradient(model, params, b, implementation="loop", **kwargs)
    vmap = meta_gradient(model, params, b, implementation="vmap", **kwargs)
    for k in params:
        torch.testing.assert_close(vmap.grads[k], loop.grads[k], rtol=0, atol=1e-6)
    for k in loop.meta_state_grads:
        torch.testing.assert_close(vmap.meta_state_grads[k], loop.meta_state_grads[k], rtol=0, atol=1e-6)
    torch.testing.assert_close(vmap.query_loss, loop.query_loss, rtol=0, atol=1e-6)
    torch.testing.assert_close(vmap.query_accuracy, loop.query_accuracy)


def test_vmap_meta_gradient_handles_regression_tasks():
    model = tiny_mlp(features=1, ways=1)
    params = params_of(model)
    b = regression_batch()
    for algorithm in ALGORITHMS:
        kwargs = dict(algorithm=algorithm, inner_lr=0.01, inner_steps=2, meta_state=state_for(algorithm, params, 0.01))
        loop = meta_gradient(model, params, b, implementation="loop", **kwargs)
        vmap = meta_gradient(model, params, b, implementation="vmap", **kwargs)
        assert vmap.query_accuracy is None
        for k in params:
            torch.testing.assert_close(vmap.grads[k], loop.grads[k], rtol=0, atol=1e-6)


def test_auto_implementation_uses_the_loop_for_convnets():
    assert resolve_implementation(ConvNet(3, channels=4)) == "loop"
    assert resolve_implementation(MLP(4, (3,), 2)) == "lowrank"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_loop_runs_one_forward_pass_per_inner_step_and_one_for_the_query_set(algorithm):
    """The query loss and accuracy come from the same forward pass: k + 1 passes per task, not k + 2."""
    seed_everything(0)
    model = build_model("mlp", 5)
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    batch = FewShotSampler("unseen-digits", "train", 5, 1, 3, seed=0).sample(2)
    params = dict(model.named_parameters())
    meta_gradient(model, params, batch, algorithm=algorithm, inner_lr=0.1, inner_steps=2, implementation="loop",
                  meta_state=state_for(algorithm, params, 0.1))
    assert calls == [5, 5, 15] * 2  # per task: two support passes (5 images), one query pass (15 images)
