"""The closed forms of MAML on quadratic tasks, checked against autograd, finite differences and descent,
and the notebook-01 slider callbacks driven headlessly over their whole range."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from fomaml_utils.companions.quadratic import (
    DTYPE,
    INNER_STEPS_RANGE,
    QuadraticTasks,
    adapt,
    autograd_meta_gradient,
    central_differences,
    contraction,
    example_tasks,
    inner_lr_slider_range,
    inner_path,
    joint_optimum,
    landscape,
    maml_curvatures,
    maml_optimum,
    meta_gradient,
    meta_gradient_descent,
    meta_objective,
    plot_landscape,
    query_losses,
    rotated_curvature,
    stable_inner_lr_limit,
    support_losses,
    unrolled_meta_objective,
)


def tilted_tasks(perturbed_query: bool) -> QuadraticTasks:
    """Three tilted (non-diagonal) tasks; optionally the query optimum is a shifted copy of the support's."""
    curvatures = torch.stack([
        rotated_curvature((3.0, 1.0), 30.0),
        rotated_curvature((4.0, 1.2), -40.0),
        rotated_curvature((0.5, 0.3), 10.0),
    ])
    centres = torch.tensor([[-2.0, 1.5], [2.0, 1.5], [0.0, -2.0]], dtype=DTYPE)
    shift = torch.tensor([[0.3, -0.2], [-0.1, 0.4], [0.25, 0.15]], dtype=DTYPE) if perturbed_query else 0.0
    return QuadraticTasks(curvatures, centres, centres + shift)


TASKS = {
    "example": example_tasks(),
    "tilted": tilted_tasks(perturbed_query=False),
    "tilted-perturbed-query": tilted_tasks(perturbed_query=True),
}
SETTINGS = [(0.0, 3), (0.1, 1), (0.2, 3), (0.3, 5), (0.45, 2)]  # (inner_lr, inner_steps), all stable
PARAMS = torch.tensor([0.3, -0.7], dtype=DTYPE)


# ---- the inner loop and the meta-gradient


@pytest.mark.parametrize("name", TASKS)
def test_closed_form_adapt_equals_k_explicit_gradient_steps(name):
    tasks = TASKS[name]
    for inner_lr, inner_steps in SETTINGS:
        adapted = PARAMS.expand(tasks.num_tasks, 2).clone()
        for _ in range(inner_steps):
            adapted = adapted - inner_lr * torch.einsum("nij,nj->ni", tasks.curvatures, adapted - tasks.centres)
        torch.testing.assert_close(adapt(tasks, PARAMS, inner_lr=inner_lr, inner_steps=inner_steps), adapted,
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("closed_form, through_autograd", [
    (meta_objective, unrolled_meta_objective),  # the objective: the inner loop run step by step in autograd
    (meta_gradient, autograd_meta_gradient),  # its derived gradient: autograd back through that loop
], ids=["meta-objective", "meta-gradient"])
@pytest.mark.parametrize("name", TASKS)
def test_closed_form_equals_autograd_through_the_unrolled_inner_loop(closed_form, through_autograd, name):
    tasks = TASKS[name]
    for inner_lr, inner_steps in SETTINGS:
        closed = closed_form(tasks, PARAMS, inner_lr=inner_lr, inner_steps=inner_steps)
        unrolled = through_autograd(tasks, PARAMS, inner_lr=inner_lr, inner_steps=inner_steps)
        assert closed.shape == unrolled.shape
        assert (closed - unrolled).abs().max() < 1e-12


@pytest.mark.parametrize("name", TASKS)
def test_derived_meta_gradient_equals_central_differences_of_the_unrolled_objective(name):
    tasks = TASKS[name]
    for inner_lr, inner_steps in SETTINGS:
        derived = meta_gradient(tasks, PARAMS, inner_lr=inner_lr, inner_steps=inner_steps)
        fd = central_differences(
            lambda p: unrolled_meta_objective(tasks, p, inner_lr=inner_lr, inner_steps=inner_steps), PARAMS)
        assert (derived - fd).abs().max() < 1e-9


def test_meta_gradient_is_the_product_of_one_minus_alpha_hessian_factors_times_query_gradient():
    tasks = TASKS["tilted-perturbed-query"]
    inner_lr, inner_steps = 0.2, 3
    eye = torch.eye(2, dtype=DTYPE)
    adapted = adapt(tasks, PARAMS, inner_lr=inner_lr, inner_steps=inner_steps)
    expected = torch.zeros(2, dtype=DTYPE)
    for A, a, q in zip(tasks.curvatures, adapted, tasks.query_centres):
        v = A @ (a - q)  # ∇L_Q(θ′)
        for _ in range(inner_steps):  # the Hessian of the support loss is A at every inner step
            v = (eye - inner_lr * A) @ v
        expected += v
    torch.testing.assert_close(meta_gradient(tasks, PARAMS, inner_lr=inner_lr, inner_steps=inner_steps), expected,
                               rtol=0, atol=1e-12)


def test_meta_gradient_is_batched_over_leading_params_dimensions():
    tasks = example_tasks()
    grid = torch.randn(4, 3, 2, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    batched = meta_gradient(tasks, grid, inner_lr=0.2, inner_steps=2)
    one_by_one = torch.stack([meta_gradient(tasks, p, inner_lr=0.2, inner_steps=2) for p in grid.reshape(-1, 2)])
    torch.testing.assert_close(batched.reshape(-1, 2), one_by_one, rtol=0, atol=1e-12)
    assert meta_objective(tasks, grid, inner_lr=0.2, inner_steps=2).shape == (4, 3)


# ---- the MAML optimum


@pytest.mark.parametrize("name", TASKS)
def test_closed_form_optimum_equals_gradient_descent_on_the_meta_objective(name):
    tasks = TASKS[name]
    for inner_lr, inner_steps in [(0.1, 1), (0.3, 5), (0.45, 2)]:
        closed = maml_optimum(tasks, inner_lr=inner_lr, inner_steps=inner_steps)
        descended = meta_gradient_descent(tasks, torch.zeros(2, dtype=DTYPE), inner_lr=inner_lr,
                                          inner_steps=inner_steps)
        assert (closed - descended).abs().max() < 1e-9


@pytest.mark.parametrize("name", TASKS)
def test_meta_gradient_vanishes_at_the_closed_form_optimum(name):
    tasks = TASKS[name]
    for inner_lr, inner_steps in SETTINGS:
        theta = maml_optimum(tasks, inner_lr=inner_lr, inner_steps=inner_steps)
        assert meta_gradient(tasks, theta, inner_lr=inner_lr, inner_steps=inner_steps).abs().max() < 1e-12


def test_optimum_with_matching_query_is_the_M_weighted_mean_of_task_optima():
    tasks = TASKS["tilted"]
    M = maml_curvatures(tasks, inner_lr=0.3, inner_steps=2)
    expected = torch.linalg.solve(M.sum(0), torch.einsum("nij,nj->i", M, tasks.centres))
    torch.testing.assert_close(maml_optimum(tasks, inner_lr=0.3, inner_steps=2), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", TASKS)
def test_zero_inner_lr_or_zero_inner_steps_is_joint_training(name):
    tasks = TASKS[name]
    joint = joint_optimum(tasks)
    for inner_lr, inner_steps in [(0.0, 0), (0.0, 1), (0.0, 10), (0.3, 0)]:
        torch.testing.assert_close(maml_optimum(tasks, inner_lr=inner_lr, inner_steps=inner_steps), joint,
                                   rtol=0, atol=1e-12)
        torch.testing.assert_close(meta_objective(tasks, PARAMS, inner_lr=inner_lr, inner_steps=inner_steps),
                                   query_losses(tasks, PARAMS.expand(tasks.num_tasks, 2)).sum(), rtol=0, atol=1e-12)


def test_joint_optimum_minimises_the_sum_of_support_losses_when_query_matches_support():
    tasks = TASKS["tilted"]
    joint = joint_optimum(tasks)
    p = joint.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(support_losses(tasks, p).sum(), p)
    assert grad.abs().max() < 1e-12


def test_axis_aligned_example_weights_each_coordinate_by_lambda_times_contraction_squared():
    tasks = example_tasks()
    inner_lr, inner_steps = 0.2, 3
    lam = torch.diagonal(tasks.curvatures, dim1=1, dim2=2)  # [n, 2]
    w = lam * (1 - inner_lr * lam) ** (2 * inner_steps)
    expected = (w * tasks.centres).sum(0) / w.sum(0)
    torch.testing.assert_close(maml_optimum(tasks, inner_lr=inner_lr, inner_steps=inner_steps), expected,
                               rtol=0, atol=1e-12)


def test_singular_sum_of_M_raises_a_clear_value_error():
    tasks = QuadraticTasks(torch.eye(2, dtype=DTYPE)[None] * 2.0, torch.zeros(1, 2, dtype=DTYPE))
    with pytest.raises(ValueError, match="not unique"):
        maml_optimum(tasks, inner_lr=0.5, inner_steps=1)  # one step lands exactly on the optimum: F ≡ 0
    assert landscape(tasks, 0.5, 1).message is not None  # 0.5 < 2/λ_max = 1, so it is the singular case


# ---- slider callbacks


def slider_values() -> list[tuple[float, int]]:
    lo, hi, step = inner_lr_slider_range(example_tasks())
    lrs = [lo, step, round(hi / 3, 2), 0.25, round(2 * hi / 3, 2), hi]
    k0, k1 = INNER_STEPS_RANGE
    return [(a, k) for a in lrs for k in (k0, 1, 3, k1)]


def test_inner_lr_slider_stays_inside_the_stable_range():
    tasks = example_tasks()
    lo, hi, step = inner_lr_slider_range(tasks)
    assert lo == 0.0 and 0 < step and 0 < hi < stable_inner_lr_limit(tasks) == pytest.approx(0.5)
    assert math.isclose(hi / step, round(hi / step))  # the slider can reach its end exactly


@pytest.mark.parametrize("inner_lr,inner_steps", slider_values())
def test_landscape_over_the_slider_range_is_finite_and_complete(inner_lr, inner_steps):
    data = landscape(example_tasks(), inner_lr, inner_steps)
    assert data.message is None
    assert data.maml_optimum.shape == (2,) and data.inner_paths.shape == (3, inner_steps + 1, 2)
    assert data.meta_loss.shape == (data.grid_y.size, data.grid_x.size)
    for array in (data.maml_optimum, data.inner_paths, data.meta_loss, data.joint_optimum):
        assert np.isfinite(array).all()
    np.testing.assert_allclose(data.inner_paths[:, 0], np.broadcast_to(data.maml_optimum, (3, 2)))


def test_landscape_meta_loss_grid_matches_meta_objective_at_grid_points():
    tasks = example_tasks()
    data = landscape(tasks, 0.2, 2, grid=7)
    i, j = 2, 5  # row i is grid_y[i], column j is grid_x[j]
    point = torch.tensor([data.grid_x[j], data.grid_y[i]], dtype=DTYPE)
    assert data.meta_loss[i, j] == pytest.approx(meta_objective(tasks, point, inner_lr=0.2, inner_steps=2).item(),
                                                abs=1e-12)


def test_slider_at_zero_inner_lr_puts_maml_initialisation_on_joint_training():
    for inner_steps in range(INNER_STEPS_RANGE[0], INNER_STEPS_RANGE[1] + 1):
        data = landscape(example_tasks(), 0.0, inner_steps)
        np.testing.assert_allclose(data.maml_optimum, data.joint_optimum, rtol=0, atol=1e-12)


@pytest.mark.parametrize("inner_lr", [-0.1, 0.5, 0.6, 3.0])
def test_inner_lr_outside_the_stable_range_gives_a_message_instead_of_points(inner_lr):
    data = landscape(example_tasks(), inner_lr, 3)
    assert data.maml_optimum is None and data.inner_paths is None and data.meta_loss is None
    assert "0.5" in data.message and ("stable range" in data.message or "< 0" in data.message)
    fig = plot_landscape(example_tasks(), inner_lr, 3)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(data.message == t for t in texts)


@pytest.mark.parametrize("inner_lr,inner_steps", [(0.0, 0), (0.25, 1), (inner_lr_slider_range(example_tasks())[1], 10)])
def test_plot_landscape_renders_at_slider_ends_with_title_and_labelled_axes(inner_lr, inner_steps):
    fig = plot_landscape(example_tasks(), inner_lr, inner_steps)
    assert isinstance(fig, Figure)
    fig.canvas.draw()  # the full render, as the notebook would
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert f"k = {inner_steps}" in ax.get_title()


def test_plot_landscape_draws_into_a_given_axes():
    outer = Figure()
    ax = outer.add_subplot()
    assert plot_landscape(example_tasks(), 0.2, 2, ax=ax) is outer


# ---- clear errors


@pytest.mark.parametrize("kwargs,argument", [
    (dict(inner_lr=-0.1, inner_steps=1), "inner_lr"),
    (dict(inner_lr=float("nan"), inner_steps=1), "inner_lr"),
    (dict(inner_lr=0.1, inner_steps=-1), "inner_steps"),
    (dict(inner_lr=0.1, inner_steps=1.5), "inner_steps"),
    (dict(inner_lr=0.1, inner_steps=True), "inner_steps"),
])
def test_bad_hyperparameters_raise_value_error_naming_the_argument(kwargs, argument):
    tasks = example_tasks()
    for fn in (maml_optimum, contraction):
        with pytest.raises(ValueError, match=argument):
            fn(tasks, **kwargs)
    with pytest.raises(ValueError, match=argument):
        meta_gradient(tasks, PARAMS, **kwargs)


def test_bad_params_and_tasks_raise_value_error_naming_the_argument():
    tasks = example_tasks()
    with pytest.raises(ValueError, match="params"):
        meta_objective(tasks, torch.zeros(3), inner_lr=0.1, inner_steps=1)
    with pytest.raises(ValueError, match="params"):
        inner_path(tasks, torch.zeros(4, 2), inner_lr=0.1, inner_steps=1)
    with pytest.raises(ValueError, match="symmetric"):
        QuadraticTasks(torch.tensor([[[1.0, 0.5], [0.0, 1.0]]]), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="positive definite"):
        QuadraticTasks(torch.tensor([[[1.0, 0.0], [0.0, -1.0]]]), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="centres"):
        QuadraticTasks(torch.eye(2)[None], torch.zeros(2, 2))
    with pytest.raises(ValueError, match="query_centres"):
        QuadraticTasks(torch.eye(2)[None], torch.zeros(1, 2), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="inner_lr"):
        landscape(tasks, float("inf"), 1)
    with pytest.raises(ValueError, match="grid"):
        landscape(tasks, 0.1, 1, grid=1)
    with pytest.raises(ValueError, match="h"):
        central_differences(lambda p: p.sum(), PARAMS, h=0.0)
