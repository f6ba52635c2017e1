"""The low-rank MLP meta-gradient computes exactly what the readable reference computes, only faster.

Every equality is checked against ``meta_gradient(..., implementation="loop")`` (one task at a time,
autograd through ``adapt``) and, on the benchmark's network, against ``implementation="vmap"``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from fomaml_utils.algorithms.maml import meta_gradient
from fomaml_utils.algorithms.mlp_lowrank import lowrank_meta_gradient
from fomaml_utils.algorithms.models import MLP
from fomaml_utils.algorithms.registry import REGISTRY
from fomaml_utils.data.taskbatch import TaskBatch
from fomaml_utils.tools import bench

ALGORITHMS = tuple(name for name, a in REGISTRY.items() if a.plain_sgd)  # what the low-rank path serves


def classification_batch(tasks=3, ways=3, shots=2, queries=4, features=12, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    labels = lambda k: torch.stack([torch.randperm(ways, generator=g).repeat_interleave(k) for _ in range(tasks)])
    return TaskBatch(
        torch.randn(tasks, ways * shots, features, generator=g, dtype=dtype),
        labels(shots),
        torch.randn(tasks, ways * queries, features, generator=g, dtype=dtype),
        labels(queries),
    )


def regression_batch(tasks=3, shots=5, queries=7, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(tasks, shots + queries, 1, generator=g, dtype=dtype) * 10 - 5
    y = torch.sin(x + torch.rand(tasks, 1, 1, generator=g, dtype=dtype))
    return TaskBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])


def make_mlp(features=12, hidden=(16,), ways=3, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    model = MLP(features, hidden, ways).to(dtype)
    return model, {k: p.detach().clone() for k, p in model.named_parameters()}


def assert_same_meta_gradient(got, want, atol, rtol=0.0):
    assert got.grads.keys() == want.grads.keys()
    for k in want.grads:
        torch.testing.assert_close(got.grads[k], want.grads[k], atol=atol, rtol=rtol, msg=k)
    torch.testing.assert_close(got.query_loss, want.query_loss, atol=atol, rtol=rtol)
    if want.query_accuracy is None:
        assert got.query_accuracy is None
    else:
        torch.testing.assert_close(got.query_accuracy, want.query_accuracy.to(got.query_accuracy.dtype))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("inner_steps", [0, 1, 5])
@pytest.mark.parametrize("hidden", [(16,), (16, 12)], ids=["1-hidden", "2-hidden"])
@pytest.mark.parametrize("ways,shots", [(3, 1), (5, 2)])
def test_lowrank_equals_the_loop_reference_in_float64(algorithm, inner_steps, hidden, ways, shots):
    model, params = make_mlp(hidden=hidden, ways=ways, dtype=torch.float64)
    batch = classification_batch(ways=ways, shots=shots, dtype=torch.float64)
    args = dict(algorithm=algorithm, inner_lr=0.5, inner_steps=inner_steps)
    got = lowrank_meta_gradient(model, params, batch, **args)
    want = meta_gradient(model, params, batch, implementation="loop", **args)
    assert_same_meta_gradient(got, want, atol=1e-12)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("inner_steps", [0, 1, 5])
def test_lowrank_equals_the_loop_reference_to_1e_6_in_float32(algorithm, inner_steps):
    model, params = make_mlp(hidden=(32, 16), ways=5)
    batch = classification_batch(tasks=4, ways=5, shots=1, queries=3)
    args = dict(algorithm=algorithm, inner_lr=0.4, inner_steps=inner_steps)
    got = lowrank_meta_gradient(model, params, batch, **args)
    want = meta_gradient(model, params, batch, implementation="loop", **args)
    assert_same_meta_gradient(got, want, atol=1e-6)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_lowrank_equals_vmap_on_the_benchmark_network(algorithm):
    """MLP 784-256-128-5, 5-way 1-shot, 5 inner steps, float32: the configuration the benchmark times."""
    model, params = make_mlp(features=784, hidden=(256, 128), ways=5)
    batch = classification_batch(tasks=4, ways=5, shots=1, queries=15, features=784)
    batch = batch._replace(support_x=batch.support_x.reshape(4, 5, 1, 28, 28),
                           query_x=batch.query_x.reshape(4, 75, 1, 28, 28))
    args = dict(algorithm=algorithm, inner_lr=0.1, inner_steps=5)
    got = lowrank_meta_gradient(model, params, batch, **args)
    want = meta_gradient(model, params, batch, implementation="vmap", **args)
    assert_same_meta_gradient(got, want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_lowrank_equals_the_loop_reference_for_regression_with_mse(algorithm):
    model, params = make_mlp(features=1, hidden=(20, 20), ways=1, dtype=torch.float64)
    batch = regression_batch(dtype=torch.float64)
    args = dict(algorithm=algorithm, inner_lr=0.05, inner_steps=3)
    got = lowrank_meta_gradient(model, params, batch, **args)
    want = meta_gradient(model, params, batch, implementation="loop", **args)
    assert_same_meta_gradient(got, want, atol=1e-12)


def test_auto_implementation_on_an_mlp_gives_the_lowrank_numbers():
    model, params = make_mlp(hidden=(16, 12))
    batch = classification_batch()
    args = dict(algorithm="maml", inner_lr=0.5, inner_steps=2)
    got = meta_gradient(model, params, batch, implementation="auto", **args)
    assert_same_meta_gradient(got, lowrank_meta_gradient(model, params, batch, **args), atol=0.0)


def test_fomaml_and_maml_coincide_and_reptile_is_zero_without_inner_steps():
    model, params = make_mlp(dtype=torch.float64)
    batch = classification_batch(dtype=torch.float64)
    out = {a: lowrank_meta_gradient(model, params, batch, algorithm=a, inner_lr=0.5, inner_steps=0) for a in ALGORITHMS}
    for k in params:
        torch.testing.assert_close(out["fomaml"].grads[k], out["maml"].grads[k], atol=1e-14, rtol=0)
        assert torch.count_nonzero(out["reptile"].grads[k]) == 0


def test_each_task_moves_the_first_layer_by_a_matrix_of_rank_at_most_its_support_size():
    """θ − θ′ for W₀ is α Aᵀ X_s: rank ≤ n_s however many steps; deeper layers reach rank ≤ steps × n_s."""
    model, params = make_mlp(features=40, hidden=(30, 30), ways=3, dtype=torch.float64)
    batch = classification_batch(tasks=1, ways=3, shots=1, features=40, dtype=torch.float64)
    out = lowrank_meta_gradient(model, params, batch, algorithm="reptile", inner_lr=0.5, inner_steps=4)
    assert torch.linalg.matrix_rank(out.grads["layers.0.weight"]) <= 3
    assert torch.linalg.matrix_rank(out.grads["layers.1.weight"]) <= 4 * 3


def test_int32_labels_give_the_same_meta_gradient_as_int64():
    model, params = make_mlp()
    batch = classification_batch()
    narrow = batch._replace(support_y=batch.support_y.int(), query_y=batch.query_y.int())
    args = dict(algorithm="fomaml", inner_lr=0.5, inner_steps=2)
    assert_same_meta_gradient(lowrank_meta_gradient(model, params, narrow, **args),
                              lowrank_meta_gradient(model, params, batch, **args), atol=0.0)


def test_params_are_left_untouched_and_grads_carry_no_graph():
    model, params = make_mlp(hidden=(16, 12))
    before = {k: p.clone() for k, p in params.items()}
    leaves = {k: p.clone().requires_grad_() for k, p in params.items()}
    for algorithm in ALGORITHMS:
        out = lowrank_meta_gradient(model, leaves, classification_batch(), algorithm=algorithm, inner_lr=0.5,
                                    inner_steps=2)
        assert all(g.grad_fn is None and not g.requires_grad for g in out.grads.values())
        assert out.query_loss.grad_fn is None
    assert all(p.grad is None for p in leaves.values())
    for k in params:
        assert torch.equal(leaves[k].detach(), before[k])


def test_maml_works_when_called_under_no_grad():
    model, params = make_mlp()
    batch = classification_batch()
    args = dict(algorithm="maml", inner_lr=0.5, inner_steps=2)
    with torch.no_grad():
        got = lowrank_meta_gradient(model, params, batch, **args)
    assert_same_meta_gradient(got, lowrank_meta_gradient(model, params, batch, **args), atol=0.0)


# ---- unsupported inputs raise ValueError naming the argument (no fallback inside this function:
# ---- meta_gradient's "loop" and "vmap" paths handle every other model)


class NotAnMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(12, 3)])


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda m, p, b: (NotAnMLP(), p, b), "model must be a fomaml_utils.algorithms.models.MLP"),
        (lambda m, p, b: (m, {k: v for k, v in p.items() if k != "layers.1.bias"}, b), "params must have"),
        (lambda m, p, b: (m, {**p, "layers.0.weight": p["layers.0.weight"][:, :5]}, b), r"params\['layers.0.weight'\]"),
        (lambda m, p, b: (m, p, b._replace(support_y=b.support_y + 3)), r"batch.support_y must be labels in 0..2"),
        (lambda m, p, b: (m, p, b._replace(query_y=b.query_y[:, :2])), "batch.query_y must be integer class labels"),
        (lambda m, p, b: (m, p, b._replace(query_x=b.query_x[..., :7])), "batch.query_x must be"),
        (lambda m, p, b: (m, p, b._replace(support_y=b.support_y.float())), "batch.support_y must be float"),
    ],
    ids=["other-model", "missing-key", "wrong-shape", "label-range", "label-shape", "features", "regression-shape"],
)
def test_unsupported_inputs_raise_value_error_naming_the_problem(change, match):
    model, params = make_mlp(hidden=(16,))
    args = change(model, params, classification_batch())
    with pytest.raises(ValueError, match=match):
        lowrank_meta_gradient(*args, algorithm="fomaml", inner_lr=0.5, inner_steps=1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(algorithm="sgd", inner_lr=0.5, inner_steps=1), "algorithm"),
        (dict(algorithm="maml", inner_lr=-1.0, inner_steps=1), "inner_lr"),
        (dict(algorithm="maml", inner_lr=0.5, inner_steps=-1), "inner_steps"),
    ],
)
def test_bad_hyperparameters_raise_value_error_naming_the_argument(kwargs, match):
    model, params = make_mlp()
    with pytest.raises(ValueError, match=match):
        lowrank_meta_gradient(model, params, classification_batch(), **kwargs)


# ---- the benchmark


@pytest.mark.parametrize("algorithm", ["fomaml", "reptile"])
def test_tutorial_baseline_computes_the_same_meta_gradient_as_the_loop(algorithm):
    model, params = make_mlp(hidden=(16, 12), dtype=torch.float64)
    params = dict(model.named_parameters())  # the deepcopy baseline starts from the model's own weights
    batch = classification_batch(dtype=torch.float64)
    args = dict(algorithm=algorithm, inner_lr=0.5, inner_steps=3)
    got = bench.tutorial_meta_gradient(model, params, batch, **args)
    assert_same_meta_gradient(got, meta_gradient(model, params, batch, implementation="loop", **args), atol=1e-12)
    assert all(p.grad is None for p in params.values())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_higher_baseline_computes_the_same_meta_gradient_as_the_loop(algorithm):
    pytest.importorskip("higher")
    model, params = make_mlp(hidden=(16, 12), dtype=torch.float64)
    params = dict(model.named_parameters())
    batch = classification_batch(dtype=torch.float64)
    args = dict(algorithm=algorithm, inner_lr=0.5, inner_steps=3)
    got = bench.higher_meta_gradient(model, params, batch, **args)
    assert_same_meta_gradient(got, meta_gradient(model, params, batch, implementation="loop", **args), atol=1e-12)


def test_bench_quick_smoke_run_prints_a_table_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    bench.main(["--quick", "--data", "random", "--models", "mlp", "--steps", "1", "--algorithms", "fomaml,maml",
                "--implementations", "auto,loop,tutorial,higher", "--json", str(path)])
    printed = capsys.readouterr().out
    assert "tasks/s" in printed and "torch" in printed
    report = json.loads(path.read_text())
    rows = {(r["algorithm"], r["implementation"]): r for r in report["results"]}
    assert rows[("fomaml", "auto")]["tasks_per_second"] > 0
    assert rows[("fomaml", "tutorial")]["tasks_per_second"] > 0
    assert rows[("maml", "tutorial")]["tasks_per_second"] is None  # deepcopy + SGD cannot do second order
    assert report["machine"]["threads"] == 2


def test_bench_refuses_an_unwritable_json_before_it_runs(tmp_path, capsys):
    from fomaml_utils.tools.bench import main as bench_main

    (tmp_path / "folder").mkdir()
    for path, message in ((tmp_path / "folder", "is a folder"), (Path("/proc/bench.json"), "cannot write to --json")):
        with pytest.raises(SystemExit) as exit_info:
            bench_main(["--json", str(path), "--steps", "5"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
