"""Sinusoid tasks: the sampler, the pretrained baseline, and the notebook's slider callback."""

from __future__ import annotations

import itertools
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fomaml_utils.algorithms.models import MLP  # noqa: E402
from fomaml_utils.companions.sinusoid import (  # noqa: E402
    SLIDER_LIMITS,
    SinusoidSampler,
    adapted_curve,
    plot_adaptation,
    plot_fits,
    pooled_mse,
    sinusoid,
    support_points,
    train_pretrained,
)


# ---------------------------------------------------------------- sampler


def test_sample_shapes_and_dtype_are_tasks_by_points_by_one():
    batch = SinusoidSampler(shots=5, queries=7).sample(3)
    assert [tuple(t.shape) for t in batch] == [(3, 5, 1), (3, 5, 1), (3, 7, 1), (3, 7, 1)]
    assert all(t.dtype == torch.float32 for t in batch)
    assert batch.num_tasks == 3


def test_amplitude_phase_and_inputs_lie_in_the_paper_ranges():
    batch, amplitude, phase = SinusoidSampler(shots=10, queries=10).sample(2000, return_params=True)
    assert amplitude.shape == phase.shape == (2000,)
    assert 0.1 <= amplitude.min() and amplitude.max() <= 5.0
    assert 0.0 <= phase.min() and phase.max() <= math.pi
    x = torch.cat([batch.support_x, batch.query_x], dim=1)
    assert -5.0 <= x.min() and x.max() <= 5.0
    # uniform, not squeezed into a corner: the extremes come close to the bounds
    assert amplitude.min() < 0.2 and amplitude.max() > 4.9 and x.min() < -4.9 and x.max() > 4.9


def test_targets_are_the_returned_wave_at_the_inputs():
    batch, amplitude, phase = SinusoidSampler(shots=4, queries=6).sample(8, return_params=True)
    a, p = amplitude[:, None, None], phase[:, None, None]
    torch.testing.assert_close(batch.support_y, a * torch.sin(batch.support_x - p))
    torch.testing.assert_close(batch.query_y, sinusoid(batch.query_x, a, p))


def test_support_and_query_points_are_distinct_draws():
    batch = SinusoidSampler(shots=10, queries=10).sample(50)
    assert not torch.isin(batch.query_x, batch.support_x).any()


def test_same_seed_gives_same_tasks_regardless_of_global_rng():
    first = SinusoidSampler(5, 5, seed=3).sample(4)
    torch.manual_seed(1234)
    torch.rand(10)
    second = SinusoidSampler(5, 5, seed=3).sample(4)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_different_seeds_and_successive_batches_differ():
    sampler = SinusoidSampler(5, 5, seed=0)
    a, b = sampler.sample(4), sampler.sample(4)
    c = SinusoidSampler(5, 5, seed=1).sample(4)
    assert not torch.equal(a.support_x, b.support_x)
    assert not torch.equal(a.support_x, c.support_x)


def test_reset_rewinds_to_the_first_batch():
    sampler = SinusoidSampler(5, 5, seed=2)
    first = sampler.sample(4)
    sampler.sample(4)
    sampler.reset()
    assert torch.equal(sampler.sample(4).query_y, first.query_y)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(shots=0, queries=5), "shots"),
        (dict(shots=2.5, queries=5), "shots"),
        (dict(shots=True, queries=5), "shots"),
        (dict(shots=5, queries=-1), "queries"),
        (dict(shots=5, queries=5, seed=-1), "seed"),
        (dict(shots=5, queries=5, amplitude_range=(5.0, 0.1)), "amplitude_range"),
        (dict(shots=5, queries=5, amplitude_range=(-1.0, 1.0)), "amplitude_range"),
        (dict(shots=5, queries=5, phase_range=(0.0,)), "phase_range"),
        (dict(shots=5, queries=5, x_range=(0.0, float("inf"))), "x_range"),
    ],
)
def test_bad_sampler_arguments_raise_value_error_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SinusoidSampler(**kwargs)


@pytest.mark.parametrize("num_tasks", [0, -3, 1.5])
def test_bad_num_tasks_raises_value_error(num_tasks):
    with pytest.raises(ValueError, match="num_tasks"):
        SinusoidSampler(5, 5).sample(num_tasks)


# ---------------------------------------------------------------- pretrained baseline


def test_pretrained_baseline_reduces_mse_on_pooled_held_out_data():
    torch.manual_seed(0)
    model = MLP(1, (40, 40), 1)
    held_out = SinusoidSampler(10, 10, seed=99).sample(200)
    before = pooled_mse(model, held_out)
    losses = train_pretrained(model, SinusoidSampler(10, 10, seed=0), lr=3e-3, iterations=200, tasks_per_step=10)
    after = pooled_mse(model, held_out)
    assert losses.shape == (200,) and torch.isfinite(losses).all()
    # The best single curve is E[A sin(x - φ)] = -(2 E[A] / π) cos x, which explains about a
    # quarter of the variance; plain regression should get most of the way there.
    assert after < 0.8 * before


def test_pretrained_rejects_bad_arguments():
    with pytest.raises(ValueError, match="lr"):
        train_pretrained(MLP(1, (4,), 1), SinusoidSampler(2, 2), lr=0.0, iterations=1)
    with pytest.raises(ValueError, match="iterations"):
        train_pretrained(MLP(1, (4,), 1), SinusoidSampler(2, 2), iterations=0)


# ---------------------------------------------------------------- slider callback


@pytest.fixture(scope="module")
def slider_setup():
    torch.manual_seed(0)
    model = MLP(1, (40, 40), 1)
    first = {k: v.detach().clone() for k, v in model.named_parameters()}
    second = {k: torch.randn_like(v) * 0.1 for k, v in first.items()}
    return model, {"first": first, "second": second}


def _corners() -> list[dict[str, float]]:
    names = ["amplitude", "phase", "shots", "steps"]
    values = [SLIDER_LIMITS[n] for n in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


@pytest.mark.parametrize("corner", _corners(), ids=lambda c: "-".join(f"{v:g}" for v in c.values()))
def test_slider_callback_draws_finite_curves_at_every_corner_of_its_range(slider_setup, corner):
    model, inits = slider_setup
    corner = {**corner, "shots": int(corner["shots"]), "steps": int(corner["steps"])}
    ax = plot_adaptation(model, inits, inner_lr=0.01, **corner)
    curves = ax.get_lines()
    assert len(curves) == 1 + len(inits)  # ground truth + one per initialisation
    assert all(torch.isfinite(torch.as_tensor(line.get_ydata())).all() for line in curves)
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    plt.close(ax.figure)


def test_slider_callback_does_not_change_the_initialisations(slider_setup):
    model, inits = slider_setup
    before = {name: {k: v.clone() for k, v in p.items()} for name, p in inits.items()}
    plt.close(plot_adaptation(model, inits, amplitude=3.0, phase=1.0, shots=5, steps=10, inner_lr=0.01).figure)
    for name in inits:
        for k in inits[name]:
            assert torch.equal(inits[name][k], before[name][k])


def test_zero_steps_draws_the_unadapted_prediction(slider_setup):
    model, inits = slider_setup
    x, y = support_points(2.0, 0.5, 5)
    grid = torch.linspace(-5, 5, 11).unsqueeze(1)
    curve = adapted_curve(model, inits["first"], x, y, inner_lr=0.01, steps=0, grid=grid)
    torch.testing.assert_close(curve, torch.func.functional_call(model, inits["first"], (grid,)))


def test_gradient_steps_fit_the_support_points_better(slider_setup):
    model, inits = slider_setup
    x, y = support_points(4.0, 1.0, 10)
    errors = [((adapted_curve(model, inits["first"], x, y, inner_lr=0.01, steps=k, grid=x) - y) ** 2).mean()
              for k in (0, 10)]
    assert errors[1] < errors[0]


def test_more_shots_add_points_without_moving_the_earlier_ones():
    x5, _ = support_points(1.0, 0.0, 5)
    x20, y20 = support_points(1.0, 0.0, 20)
    assert torch.equal(x20[:5], x5)
    torch.testing.assert_close(y20, sinusoid(x20, 1.0, 0.0))


@pytest.mark.parametrize(
    "override, message",
    [
        (dict(amplitude=5.5), "amplitude"),
        (dict(phase=-0.1), "phase"),
        (dict(shots=0), "shots"),
        (dict(shots=21), "shots"),
        (dict(steps=11), "steps"),
        (dict(steps=2.0), "steps"),
        (dict(amplitude="3"), "amplitude"),
        (dict(phase=float("nan")), "phase"),
    ],
)
def test_slider_callback_rejects_values_outside_its_range(slider_setup, override, message):
    model, inits = slider_setup
    kwargs = dict(amplitude=1.0, phase=1.0, shots=5, steps=1, inner_lr=0.01) | override
    with pytest.raises(ValueError, match=message):
        plot_adaptation(model, inits, **kwargs)


def test_plot_fits_draws_one_curve_per_step_count(slider_setup):
    model, inits = slider_setup
    fig, ax = plt.subplots()
    plot_fits(ax, model, inits["first"], amplitude=2.0, phase=0.3, shots=5, inner_lr=0.01, steps=(0, 1, 10))
    assert len(ax.get_lines()) == 1 + 3
    plt.close(fig)


def test_plot_fits_rejects_step_counts_outside_the_slider_range(slider_setup):
    model, inits = slider_setup
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="steps"):
        plot_fits(ax, model, inits["first"], amplitude=2.0, phase=0.3, shots=5, inner_lr=0.01, steps=(0, 11))
    plt.close(fig)
