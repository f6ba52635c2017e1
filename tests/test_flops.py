"""The flop formulas of notebook 05 against torch's own flop counter run on the implementations they describe."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fomaml_utils.algorithms.maml import meta_gradient
from fomaml_utils.algorithms.mlp_lowrank import _adapt
from fomaml_utils.algorithms.models import MLP
from fomaml_utils.companions.flops import FORMS, adapted_weight_floats, dense_fomaml_flops, lowrank_fomaml_flops
from fomaml_utils.data.taskbatch import TaskBatch

SHAPES = [  # widths, tasks, support, query, inner steps
    ((784, 256, 128, 5), 4, 5, 75, 5),
    ((784, 256, 5), 3, 10, 20, 1),
    ((20, 7, 6, 3), 2, 3, 4, 0),
    ((20, 7, 6, 3), 2, 3, 4, 3),
    ((12, 3), 2, 4, 5, 2),
]


def _setup(widths, tasks, support, query):
    torch.manual_seed(0)
    model = MLP(widths[0], widths[1:-1], widths[-1])
    classes = widths[-1]
    batch = TaskBatch(torch.randn(tasks, support, widths[0]), torch.randint(0, classes, (tasks, support)),
                      torch.randn(tasks, query, widths[0]), torch.randint(0, classes, (tasks, query)))
    return model, dict(model.named_parameters()), batch


def _counted(model, params, batch, steps, implementation):
    with FlopCounterMode(display=False) as counter:
        meta_gradient(model, params, batch, algorithm="fomaml", inner_lr=0.1, inner_steps=steps,
                      implementation=implementation)
    return counter.get_total_flops()


@pytest.mark.parametrize("widths, tasks, support, query, steps", SHAPES)
def test_formulas_count_what_torch_counts(widths, tasks, support, query, steps):
    model, params, batch = _setup(widths, tasks, support, query)
    dense = dense_fomaml_flops(widths, tasks, support, query, steps)
    assert _counted(model, params, batch, steps, "loop") == dense
    assert _counted(model, params, batch, steps, "vmap") == dense
    assert _counted(model, params, batch, steps, "lowrank") == lowrank_fomaml_flops(widths, tasks, support, query, steps)


@pytest.mark.parametrize("widths, tasks, support, query, steps", SHAPES)
def test_lowrank_state_is_what_the_implementation_stores(widths, tasks, support, query, steps):
    model, params, batch = _setup(widths, tasks, support, query)
    weights = [params[f"layers.{i}.weight"] for i in range(len(model.layers))]
    biases = [params[f"layers.{i}.bias"] for i in range(len(model.layers))]
    with torch.no_grad():
        net = _adapt(weights, biases, batch.support_x, batch.query_x, batch.support_y, 0.1, steps)
    stored = sum(t.numel() for t in [net.A, *net.H, *net.D] if t is not None)
    assert adapted_weight_floats(widths, tasks, support, steps, "lowrank") == stored
    assert adapted_weight_floats(widths, tasks, support, steps, "loop") == sum(p.numel() for p in params.values())
    assert adapted_weight_floats(widths, tasks, support, steps, "vmap") == tasks * sum(p.numel() for p in params.values())


def test_the_mnist_network_saves_flops_only_on_the_support_passes():
    widths = (784, 256, 128, 5)
    for steps in (1, 5):
        dense, lowrank = (f(widths, 16, 5, 75, steps) for f in (dense_fomaml_flops, lowrank_fomaml_flops))
        assert lowrank < dense < 1.2 * lowrank  # the query pass (75 rows against 5) dominates both


@pytest.mark.parametrize("bad", [dict(widths=(784,)), dict(widths=(784, 0, 5)), dict(tasks=0), dict(support=-1),
                                 dict(query=1.5), dict(inner_steps=-1)])
def test_bad_shapes_say_what_is_wrong(bad):
    args = dict(widths=(784, 256, 5), tasks=16, support=5, query=75, inner_steps=5) | bad
    for fn in (dense_fomaml_flops, lowrank_fomaml_flops):
        with pytest.raises(ValueError, match=next(iter(bad))):
            fn(**args)


def test_unknown_form_is_refused():
    with pytest.raises(ValueError, match="form must be one of"):
        adapted_weight_floats((784, 256, 5), 16, 5, 5, "dense")
    assert FORMS == ("loop", "vmap", "lowrank")


def test_slider_figure_draws_the_three_panels_and_refuses_bad_sizes():
    from fomaml_utils.companions.flops_view import STEPS, flops_figure

    fig = flops_figure(widths=(784, 256, 128, 5), tasks=16, support=5, query=75, measured={1: 2.0, 5: 3.5},
                       measured_label="(here)")
    flops_ax, memory_ax, ratio_ax = fig.axes
    predicted = ratio_ax.lines[0].get_ydata()
    assert len(predicted) == len(STEPS)
    assert predicted[4] == pytest.approx(dense_fomaml_flops((784, 256, 128, 5), 16, 5, 75, 5)
                                         / lowrank_fomaml_flops((784, 256, 128, 5), 16, 5, 75, 5))
    assert list(ratio_ax.lines[1].get_xdata()) == [1, 5]  # the measured points
    assert [line.get_label() for line in memory_ax.lines] == ["per-task loop", "vmap", "low-rank"]
    with pytest.raises(ValueError, match="tasks"):
        flops_figure(widths=(784, 256, 5), tasks=0, support=5, query=75)
