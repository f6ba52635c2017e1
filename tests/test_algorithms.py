"""Property tests of every algorithm in ``fomaml_utils.algorithms.ALGORITHMS`` (a new one is tested here
without editing this file): first order = the query gradient at the adapted weights; exact = central
finite differences on a tiny float64 model; batched (vmap) = per task (loop); one meta-step changes every
meta-learned tensor."""

from __future__ import annotations

import pytest
import torch

from fomaml_utils.algorithms.registry import (ALGORITHMS, REGISTRY, Algorithm, check_meta_state, get_algorithm,
                                              inner_loop, register)
from fomaml_utils.algorithms.losses import task_loss
from fomaml_utils.algorithms.maml import meta_gradient, resolve_implementation
from fomaml_utils.algorithms.models import MLP, ConvNet, head_name
from fomaml_utils.data.taskbatch import TaskBatch
from fomaml_utils.training.evaluation import evaluate
from fomaml_utils.training.loop import meta_train
from test_maml import classification_batch  # tests/ is on sys.path under pytest's default import mode

FIRST_ORDER = [a for a in ALGORITHMS if REGISTRY[a].first_order and REGISTRY[a].kind == "query-gradient"]
EXACT = [a for a in ALGORITHMS if not REGISTRY[a].first_order]
REPTILE_LIKE = [a for a in ALGORITHMS if REGISTRY[a].kind == "reptile"]
WITH_STATE = [a for a in ALGORITHMS if REGISTRY[a].init_meta_state({"w": torch.zeros(1)}, 0.1)]


def batch(tasks=3, dtype=torch.float64, **kwargs) -> TaskBatch:
    """3-way 2-shot tasks of random 6-feature inputs, float64 unless said."""
    return classification_batch(tasks=tasks, dtype=dtype, **kwargs)


def tiny(dtype=torch.float64, seed=0) -> MLP:
    torch.manual_seed(seed)
    return MLP(6, (5,), 3).to(dtype)


def params_of(model) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in model.named_parameters()}


def state_of(algorithm: Algorithm, params, inner_lr: float, seed: int = 1) -> dict[str, torch.Tensor]:
    """The algorithm's meta-state with every entry moved off its start value (so per-entry use is tested)."""
    state = algorithm.init_meta_state(params, inner_lr)
    g = torch.Generator().manual_seed(seed)
    return {k: (s.detach() * (0.5 + torch.rand(s.shape, generator=g, dtype=s.dtype))) for k, s in state.items()}


def objective(model, algorithm, params, state, b, inner_lr, inner_steps) -> torch.Tensor:
    """The meta-objective: mean over tasks of the query loss at θ′(θ, meta-state)."""
    losses = []
    for sx, sy, qx, qy in zip(*b):
        adapted = inner_loop(model, algorithm, params, state, sx, sy, inner_lr=inner_lr, inner_steps=inner_steps,
                             first_order=algorithm.first_order)
        losses.append(task_loss(model, adapted, qx, qy))
    return torch.stack(losses).mean()


# ---- the registry


def test_every_algorithm_is_registered_under_its_name_and_found_by_it():
    assert set(ALGORITHMS) >= {"fomaml", "maml", "reptile", "anil", "fo-anil", "metasgd", "fo-metasgd"}
    for name in ALGORITHMS:
        algorithm = get_algorithm(name)
        assert algorithm.name == name and get_algorithm(algorithm) is algorithm
        assert algorithm.title and algorithm.summary


def test_an_unknown_name_is_refused_with_the_list_of_names():
    with pytest.raises(ValueError, match="algorithm must be one of 'fomaml'"):
        get_algorithm("sgd")


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="registered already"):
        register(type("Again", (Algorithm,), {"name": "fomaml"}))
    assert type(REGISTRY["fomaml"]).__name__ == "FOMAML"


# ---- first order: the query gradient at the adapted weights


@pytest.mark.parametrize("implementation", ["loop", "vmap"])
@pytest.mark.parametrize("name", FIRST_ORDER)
def test_first_order_gradient_is_the_query_gradient_at_the_adapted_weights(name, implementation):
    algorithm = get_algorithm(name)
    model, b, lr, k = tiny(), batch(), 0.3, 3
    params = params_of(model)
    state = state_of(algorithm, params, lr)
    out = meta_gradient(model, params, b, algorithm=name, inner_lr=lr, inner_steps=k, implementation=implementation,
                        meta_state=state)
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    expected_state = {n: torch.zeros_like(s) for n, s in state.items()}
    names = algorithm.adapted_names(model, params)
    for sx, sy, qx, qy in zip(*b):
        # The inner path by hand, keeping each support gradient g_j.
        adapted, support_grads = dict(params), {n: torch.zeros_like(p) for n, p in params.items()}
        for _ in range(k):
            leaves = {n: p.clone().requires_grad_(n in names) for n, p in adapted.items()}
            gs = torch.autograd.grad(task_loss(model, leaves, sx, sy), [leaves[n] for n in names])
            for n, g in zip(names, gs):
                step = state[n] if state else lr
                adapted[n] = adapted[n] - step * g
                support_grads[n] += g
        at = {n: p.clone().requires_grad_(True) for n, p in adapted.items()}
        query_grads = torch.autograd.grad(task_loss(model, at, qx, qy), list(at.values()))
        for n, g in zip(at, query_grads):
            expected[n] += g / b.num_tasks
            if state:  # θ′ = θ − α ⊙ Σ g_j with the g_j constants, so ∂L/∂α = −Σ g_j ⊙ ∇L_Q(θ′)
                expected_state[n] += -support_grads[n] * g / b.num_tasks
    for n in params:
        torch.testing.assert_close(out.grads[n], expected[n], rtol=1e-10, atol=1e-12)
    for n in state:
        torch.testing.assert_close(out.meta_state_grads[n], expected_state[n], rtol=1e-10, atol=1e-12)
    assert sorted(out.meta_state_grads) == sorted(state)


# ---- exact: central finite differences


@pytest.mark.parametrize("implementation", ["loop", "vmap"])
@pytest.mark.parametrize("name", EXACT)
def test_exact_gradient_matches_central_finite_differences(name, implementation):
    algorithm = get_algorithm(name)
    model, b, lr, k = tiny(), batch(tasks=2), 0.5, 2
    params = params_of(model)
    state = state_of(algorithm, params, lr)
    out = meta_gradient(model, params, b, algorithm=name, inner_lr=lr, inner_steps=k, implementation=implementation,
                        meta_state=state)
    eps = 1e-6
    for group, grads in ((params, out.grads), (state, out.meta_state_grads)):
        for n, tensor in group.items():
            numeric = torch.zeros_like(tensor)
            for i in range(tensor.numel()):
                values = []
                for sign in (1, -1):
                    moved = tensor.clone()
                    moved.view(-1)[i] += sign * eps
                    p, s = (({**params, n: moved}, state) if group is params else (params, {**state, n: moved}))
                    values.append(objective(model, algorithm, p, s, b, lr, k).item())
                numeric.view(-1)[i] = (values[0] - values[1]) / (2 * eps)
            torch.testing.assert_close(grads[n], numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", EXACT)
def test_exact_and_first_order_gradients_differ(name):
    """The second-order terms are really there (they are not zero on this model)."""
    first = [a for a in ALGORITHMS if REGISTRY[a].first_order and a in (f"fo-{name}", f"fo{name}")]
    if not first:
        pytest.skip(f"{name} has no first-order twin named fo-{name} or fo{name}")
    model, b = tiny(), batch()
    params = params_of(model)
    state = state_of(get_algorithm(name), params, 0.5)
    exact = meta_gradient(model, params, b, algorithm=name, inner_lr=0.5, inner_steps=2, implementation="loop",
                          meta_state=state)
    approx = meta_gradient(model, params, b, algorithm=first[0], inner_lr=0.5, inner_steps=2, implementation="loop",
                           meta_state=state)
    assert max((exact.grads[n] - approx.grads[n]).abs().max().item() for n in params) > 1e-4


# ---- what adapts


@pytest.mark.parametrize("name", ALGORITHMS)
def test_weights_outside_adapted_names_do_not_move_in_the_inner_loop(name):
    algorithm = get_algorithm(name)
    model, b = tiny(), batch()
    params = params_of(model)
    names = algorithm.adapted_names(model, params)
    adapted = inner_loop(model, algorithm, params, state_of(algorithm, params, 0.3), b.support_x[0], b.support_y[0],
                         inner_lr=0.3, inner_steps=2, first_order=True)
    for n in params:
        assert torch.equal(adapted[n], params[n]) == (n not in names), n


def test_anil_adapts_the_output_layer_only_of_both_architectures():
    for model in (MLP(6, (5, 4), 3), ConvNet(3, channels=4, blocks=2, image_size=12)):
        names = get_algorithm("anil").adapted_names(model, dict(model.named_parameters()))
        assert names == [f"{head_name(model)}.weight", f"{head_name(model)}.bias"]


@pytest.mark.parametrize("name", REPTILE_LIKE)
def test_reptile_like_gradient_is_params_minus_adapted(name):
    algorithm = get_algorithm(name)
    model, b = tiny(), batch(tasks=1)
    params = params_of(model)
    out = meta_gradient(model, params, b, algorithm=name, inner_lr=0.3, inner_steps=3, implementation="loop")
    adapted = inner_loop(model, algorithm, params, {}, b.support_x[0], b.support_y[0], inner_lr=0.3, inner_steps=3,
                         first_order=True)
    for n in params:
        torch.testing.assert_close(out.grads[n], params[n] - adapted[n])


# ---- batched = per task


@pytest.mark.parametrize("name", ALGORITHMS)
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_batched_meta_gradient_is_the_mean_of_the_per_task_ones(name, arch):
    algorithm = get_algorithm(name)
    torch.manual_seed(0)
    model = MLP(144, (16, 8), 3) if arch == "mlp" else ConvNet(3, channels=4, blocks=2, image_size=12)
    g = torch.Generator().manual_seed(0)
    b = TaskBatch(torch.randn(3, 6, 1, 12, 12, generator=g), torch.arange(3).repeat_interleave(2).repeat(3, 1),
                  torch.randn(3, 6, 1, 12, 12, generator=g), torch.arange(3).repeat_interleave(2).repeat(3, 1))
    params = params_of(model)
    state = state_of(algorithm, params, 0.3)
    kwargs = dict(algorithm=name, inner_lr=0.3, inner_steps=2, meta_state=state)
    vmap = meta_gradient(model, params, b, implementation="vmap", **kwargs)
    single = [meta_gradient(model, params, TaskBatch(*(t[i:i + 1] for t in b)), implementation="loop", **kwargs)
              for i in range(3)]
    for got, parts in ((vmap.grads, [s.grads for s in single]), (vmap.meta_state_grads,
                                                                  [s.meta_state_grads for s in single])):
        for n in got:
            torch.testing.assert_close(got[n], torch.stack([p[n] for p in parts]).mean(0), rtol=0, atol=2e-6)
    torch.testing.assert_close(vmap.query_loss, torch.stack([s.query_loss for s in single]).mean(), rtol=0, atol=1e-6)


# ---- the meta-step


@pytest.mark.parametrize("name", ALGORITHMS)
def test_one_meta_step_changes_every_meta_learned_tensor(name):
    # A popular tutorial loop adapts a deep copy and steps an optimizer whose parameters never receive
    # a gradient, so the meta-model never moves. Here one iteration must move every tensor.
    algorithm = get_algorithm(name)
    model = tiny(dtype=torch.float32)
    before = params_of(model)
    state = algorithm.init_meta_state(dict(model.named_parameters()), 0.3)
    state_before = {k: s.detach().clone() for k, s in state.items()}

    class Sampler:
        def sample(self, n):
            return batch(tasks=n, dtype=torch.float32)

    meta_train(model, Sampler(), algorithm=name, inner_lr=0.3, meta_lr=1e-2, inner_steps=2, meta_batch_size=2,
               iterations=1, progress=False, meta_state=state or None)
    for k, p in model.named_parameters():
        assert not torch.equal(p.detach(), before[k]), f"{name} did not change {k}"
    for k, s in state.items():
        assert not torch.equal(s.detach(), state_before[k]), f"{name} did not change its meta-state {k}"


@pytest.mark.parametrize("name", ALGORITHMS)
def test_evaluation_adapts_as_the_algorithm_does(name):
    """evaluate's query accuracy after k steps is the one at the algorithm's own θ′."""
    algorithm = get_algorithm(name)
    model = tiny(dtype=torch.float32)
    params = params_of(model)
    state = state_of(algorithm, params, 0.3)
    b = batch(tasks=4, dtype=torch.float32)

    class Sampler:
        def sample(self, n):
            return TaskBatch(*(t[:n] for t in b))

    result = evaluate(model, Sampler(), inner_lr=0.3, inner_steps=2, num_tasks=4, algorithm=name, meta_state=state)
    expected = []
    for sx, sy, qx, qy in zip(*b):
        adapted = inner_loop(model, algorithm, params, state, sx, sy, inner_lr=0.3, inner_steps=2, first_order=True)
        out = torch.func.functional_call(model, adapted, (qx,))
        expected.append((out.argmax(-1) == qy).double().mean())
    torch.testing.assert_close(result.per_task[:, -1], torch.stack(expected))


# ---- what an implementation cannot serve, and the meta-state's checks


@pytest.mark.parametrize("name", [a for a in ALGORITHMS if not REGISTRY[a].plain_sgd])
def test_lowrank_refuses_what_it_cannot_serve_and_auto_avoids_it(name):
    model, b = tiny(), batch()
    params = params_of(model)
    state = state_of(get_algorithm(name), params, 0.3)
    with pytest.raises(ValueError, match=f"serves the algorithms that take plain SGD steps with one step size.*not '{name}'"):
        meta_gradient(model, params, b, algorithm=name, inner_lr=0.3, inner_steps=1, implementation="lowrank",
                      meta_state=state)
    assert resolve_implementation(model, "auto", name) == "vmap"


@pytest.mark.parametrize("name", [a for a in ALGORITHMS if REGISTRY[a].plain_sgd])
def test_auto_takes_lowrank_for_plain_sgd_algorithms_on_mlps(name):
    assert resolve_implementation(tiny(), "auto", name) == "lowrank"


@pytest.mark.parametrize("name", WITH_STATE)
def test_a_missing_or_misshapen_meta_state_is_refused_with_what_to_pass(name):
    model, b = tiny(), batch()
    params = params_of(model)
    with pytest.raises(ValueError, match=r"pass meta_state=get_algorithm"):
        meta_gradient(model, params, b, algorithm=name, inner_lr=0.3, inner_steps=1)
    state = get_algorithm(name).init_meta_state(params, 0.3)
    first = next(iter(state))
    with pytest.raises(ValueError, match=rf"meta_state\['{first}'\] must have shape"):
        check_meta_state(get_algorithm(name), params, {**state, first: torch.zeros(2)})
    with pytest.raises(ValueError, match="must have the keys"):
        check_meta_state(get_algorithm(name), params, {first: state[first]})


def test_a_meta_state_given_to_an_algorithm_without_one_is_refused():
    model = tiny()
    with pytest.raises(ValueError, match="learns nothing besides the weights"):
        meta_gradient(model, params_of(model), batch(), algorithm="fomaml", inner_lr=0.3, inner_steps=1,
                      meta_state={"layers.0.weight": torch.ones(5, 6)})


@pytest.mark.parametrize("name", WITH_STATE)
def test_meta_sgd_starts_as_maml_with_every_step_size_inner_lr(name):
    model, b = tiny(), batch()
    params = params_of(model)
    state = get_algorithm(name).init_meta_state(params, 0.3)
    assert all(bool((s == 0.3).all()) for s in state.values())
    twin = "fomaml" if get_algorithm(name).first_order else "maml"
    ours = meta_gradient(model, params, b, algorithm=name, inner_lr=0.3, inner_steps=2, implementation="loop",
                         meta_state=state)
    theirs = meta_gradient(model, params, b, algorithm=twin, inner_lr=0.3, inner_steps=2, implementation="loop")
    for n in params:
        torch.testing.assert_close(ours.grads[n], theirs.grads[n], rtol=1e-12, atol=1e-14)
