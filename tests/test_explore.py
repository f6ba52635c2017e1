"""Notebook 03's slider and button callbacks, run headless over their ranges."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fomaml_utils.algorithms.registry import ALGORITHMS, get_algorithm  # noqa: E402
from fomaml_utils.companions.explore import (MetaTrainingPlayground, adaptation_view, adapted_predictions,  # noqa: E402
                                  head_size)
from fomaml_utils.algorithms.models import build_model  # noqa: E402
from fomaml_utils.data.tasks import FewShotSampler  # noqa: E402
from fomaml_utils.seeding import seed_everything  # noqa: E402


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    seed_everything(0)
    return build_model("mlp", 5)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("ways, shots, inner_steps, inner_lr", [
    (2, 1, 0, 0.01),     # slider minimums
    (5, 1, 10, 0.1),     # the notebook's setting
    (5, 5, 20, 2.0),     # slider maximums
    (3, 3, 1, 0.4),
])
def test_adaptation_view_works_over_the_slider_ranges(model, ways, shots, inner_steps, inner_lr):
    view = adaptation_view(model, ways=ways, shots=shots, inner_steps=inner_steps, inner_lr=inner_lr,
                           num_tasks=4)
    ev = view.evaluation
    assert ev.steps == list(range(inner_steps + 1)) and ev.num_tasks == 4
    assert all(0 <= m <= 1 for m in ev.mean)
    assert f"{ways}-way {shots}-shot" in view.text and ev.summary() in view.text
    assert view.curve.axes[0].get_xlabel() and view.curve.axes[0].get_ylabel() and view.curve.axes[0].get_title()
    assert view.grid.get_suptitle()


def test_adaptation_view_shows_the_same_tasks_for_the_same_settings(model):
    a = adaptation_view(model, ways=4, shots=1, inner_steps=2, inner_lr=0.1, num_tasks=3)
    b = adaptation_view(model, ways=4, shots=1, inner_steps=2, inner_lr=0.1, num_tasks=3)
    assert a.evaluation.mean == b.evaluation.mean


def test_adaptation_view_does_not_change_the_model(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adaptation_view(model, ways=5, shots=1, inner_steps=3, inner_lr=0.4, num_tasks=2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("ways", [1, 6, 2.0])
def test_ways_beyond_the_head_is_a_value_error_naming_the_head_size(model, ways):
    with pytest.raises(ValueError, match=r"ways must be an integer from 2 to 5 \(the model's head has 5"):
        adaptation_view(model, ways=ways, shots=1, inner_steps=1, inner_lr=0.1, num_tasks=2)


def test_head_size_is_the_number_of_outputs():
    assert head_size(build_model("mlp", 7)) == 7
    assert head_size(build_model("cnn", 3)) == 3


def test_adapted_predictions_with_zero_steps_are_the_initialisation_s(model):
    batch = FewShotSampler("unseen-digits", "test", 5, 1, 2, seed=0).sample(1)
    predictions, finite = adapted_predictions(model, batch, inner_lr=0.1, inner_steps=0)
    assert finite and torch.equal(predictions, model(batch.query_x[0]).argmax(dim=-1))


def test_huge_inner_lr_at_evaluation_is_reported_not_raised(model):
    view = adaptation_view(model, ways=5, shots=1, inner_steps=5, inner_lr=1e30, num_tasks=2)
    assert "too large" in view.text


def _tiny_playground() -> MetaTrainingPlayground:
    return MetaTrainingPlayground(tasks_per_run=40, val_tasks=4, val_points=2, queries=2)


@pytest.mark.parametrize("algorithm, zero_head", [(a, True) for a in ALGORITHMS] + [("fomaml", False)])
def test_short_run_learns_and_reports_validation_accuracy(algorithm, zero_head):
    playground = _tiny_playground()
    run = playground.run(inner_lr=0.1, meta_lr=1e-3, inner_steps=2, meta_batch_size=4, algorithm=algorithm,
                         zero_head=zero_head)
    assert run.settings["zero_head"] is zero_head and ("zero head" in run.label) is zero_head
    assert run.label.startswith(get_algorithm(algorithm).title + ",")
    assert not run.diverged and "meta-validation accuracy" in run.message
    assert run.settings["iterations"] == 10 and run.history.iteration[-1] == 10
    assert all(math.isfinite(v) for v in run.history.query_loss)


@pytest.mark.parametrize("inner_lr, meta_lr, algorithm", [
    (10.0, 1.0, "fomaml"),    # the slider extremes: a blow-up that ends at chance level, not a NaN
    (10.0, 1.0, "maml"),
    (1e30, 1e-3, "fomaml"),   # NaN at once
])
def test_extreme_step_sizes_end_in_a_divergence_message_not_an_exception(inner_lr, meta_lr, algorithm):
    playground = _tiny_playground()
    run = playground.run(inner_lr=inner_lr, meta_lr=meta_lr, inner_steps=5, meta_batch_size=4,
                         algorithm=algorithm)
    assert run.diverged and run.message.startswith("Diverged") and "learning rate" in run.message
    fig = playground.figure()
    assert any(t.get_text() == "diverged" for ax in fig.axes for t in ax.texts)
    for ax in fig.axes:
        for line in ax.get_lines():
            assert all(math.isfinite(y) for y in line.get_ydata()), "no NaN reaches the plot"


def test_figure_draws_the_latest_run_beside_the_previous_one():
    playground = _tiny_playground()
    playground.run(inner_lr=0.1, meta_lr=1e-3, inner_steps=1, meta_batch_size=4)
    playground.run(inner_lr=0.05, meta_lr=1e-3, inner_steps=1, meta_batch_size=8, zero_head=False)
    assert len(playground.runs) == 2
    fig = playground.figure()
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert any(label.startswith("latest: FOMAML, α=0.05") for label in labels)
    assert any(label.startswith("previous: FOMAML, zero head, α=0.1") for label in labels)
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_running_mean_averages_the_last_window_values_and_fewer_at_the_start():
    from fomaml_utils.companions.explore import running_mean

    assert running_mean([1.0, 3.0, 5.0, 7.0], window=2).tolist() == [1.0, 2.0, 4.0, 6.0]
    assert running_mean([]).numel() == 0
