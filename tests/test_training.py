"""The meta-training loop: it updates the model, records a history, stops on divergence, checks its inputs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fomaml_utils.algorithms.maml import meta_gradient
from fomaml_utils.algorithms.models import MLP
from fomaml_utils.algorithms.registry import ALGORITHMS, get_algorithm
from fomaml_utils.data.taskbatch import TaskBatch
from fomaml_utils.training.loop import BLOWUP_FACTOR, DivergenceError, History, meta_train
from test_evaluation import ToySampler  # tests/ is on sys.path under pytest's default import mode


SMALL = {"inner_lr": 0.3, "meta_lr": 0.01, "inner_steps": 2, "meta_batch_size": 2, "progress": False}


def toy_model(seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP(784, (8,), 3)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_zero_head_keeps_the_output_layer_at_zero_and_moves_every_other_tensor(algorithm):
    model = toy_model()
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    state = get_algorithm(algorithm).init_meta_state(dict(model.named_parameters()), SMALL["inner_lr"]) or None
    meta_train(model, ToySampler(), algorithm=algorithm, iterations=2, zero_head=True, meta_state=state, **SMALL)
    for k, p in model.named_parameters():
        if k.startswith("layers.1."):  # the head of MLP(784, (8,), 3)
            assert torch.count_nonzero(p) == 0, k
        else:
            assert not torch.equal(p, before[k]), k


def test_zero_head_sgd_step_is_the_meta_gradient_at_a_zero_head():
    # The meta-gradient is taken with the head at zero (the start of every task), and only the body moves.
    model = toy_model()
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    for k in ("layers.1.weight", "layers.1.bias"):
        params[k].zero_()
    expected = meta_gradient(model, params, ToySampler(seed=3).sample(2), algorithm="maml", inner_lr=0.3,
                             inner_steps=2)
    meta_train(model, ToySampler(seed=3), algorithm="maml", iterations=1, optimizer="sgd", zero_head=True,
               **(SMALL | {"meta_lr": 0.5}))
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), params[k] - (0.0 if k.startswith("layers.1.") else 0.5) * expected.grads[k])


def test_cosine_schedule_takes_the_first_step_with_meta_lr_and_the_second_with_half_of_it():
    # Over 2 iterations the cosine goes from β (step 1) to β·(1 + cos(π/2))/2 = β/2 (step 2).
    model = toy_model()
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    sampler = ToySampler(seed=3)
    for lr in (0.5, 0.25):
        g = meta_gradient(model, params, sampler.sample(2), algorithm="fomaml", inner_lr=0.3, inner_steps=2).grads
        params = {k: params[k] - lr * g[k] for k in params}
    meta_train(model, ToySampler(seed=3), algorithm="fomaml", iterations=2, optimizer="sgd",
               meta_lr_schedule="cosine", **(SMALL | {"meta_lr": 0.5}))
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), params[k])


def test_sgd_meta_step_is_params_minus_meta_lr_times_the_meta_gradient():
    model = toy_model()
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    expected = meta_gradient(model, params, ToySampler(seed=3).sample(2), algorithm="fomaml", inner_lr=0.3,
                             inner_steps=2)
    meta_train(model, ToySampler(seed=3), algorithm="fomaml", iterations=1, optimizer="sgd",
               **(SMALL | {"meta_lr": 0.5}))
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), params[k] - 0.5 * expected.grads[k])


def test_history_records_every_step_and_validation_at_start_every_val_every_and_end():
    history = meta_train(toy_model(), ToySampler(), algorithm="fomaml", iterations=5, val_sampler=ToySampler(seed=9),
                         val_every=2, val_tasks=4, eval_inner_steps=1, **SMALL)
    assert history.iteration == [1, 2, 3, 4, 5]
    assert len(history.query_loss) == len(history.query_accuracy) == len(history.seconds) == 5
    assert history.seconds == sorted(history.seconds)
    assert history.val_iteration == [0, 2, 4, 5]
    assert len(history.val_accuracy) == len(history.val_ci95) == 4 and history.val_loss == []
    restored = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert restored == history


def test_regression_history_records_validation_loss_not_accuracy():
    torch.manual_seed(0)
    history = meta_train(MLP(1, (8,), 1), ToySampler(regression=True), algorithm="maml", iterations=2,
                         val_sampler=ToySampler(regression=True, seed=1), val_every=1, val_tasks=3,
                         **(SMALL | {"inner_lr": 0.01}))
    assert history.query_accuracy == [] and history.val_accuracy == [] and len(history.val_loss) == 3


def test_same_seeds_give_identical_meta_parameters():
    runs = []
    for _ in range(2):
        model = toy_model()
        meta_train(model, ToySampler(seed=5), algorithm="maml", iterations=3, seed=1, **SMALL)
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


@pytest.mark.parametrize("algorithm", ["fomaml", "maml"])
def test_meta_training_lowers_the_query_loss_after_adaptation_on_toy_tasks(algorithm):
    history = meta_train(toy_model(), ToySampler(), algorithm=algorithm, iterations=40,
                         **(SMALL | {"meta_batch_size": 4, "inner_steps": 1, "inner_lr": 0.1}))
    first, last = history.query_loss[:10], history.query_loss[-10:]
    assert sum(last) < 0.8 * sum(first)


def test_divergence_raises_an_error_naming_both_learning_rates_with_the_history_attached():
    model = toy_model()
    with pytest.raises(DivergenceError, match=r"inner_lr=1e\+30.*meta_lr=0\.01.*smaller") as info:
        meta_train(model, ToySampler(), algorithm="fomaml", iterations=5, **(SMALL | {"inner_lr": 1e30}))
    assert isinstance(info.value.history, History)
    assert info.value.history.iteration == []  # it diverged at the first step: nothing came before it


class Louder:
    """A sampler whose tasks, from call ``after + 1`` on, have inputs (and targets) ``scale`` times larger."""

    def __init__(self, sampler, *, after: int = 0, x_scale: float = 1.0, y_scale: float = 1.0):
        self.sampler, self.after, self.x_scale, self.y_scale, self.calls = sampler, after, x_scale, y_scale, 0

    def sample(self, num_tasks: int) -> TaskBatch:
        self.calls += 1
        sx, sy, qx, qy = self.sampler.sample(num_tasks)
        if self.calls <= self.after:
            return TaskBatch(sx, sy, qx, qy)
        scale_y = (lambda y: y * self.y_scale) if sy.is_floating_point() else (lambda y: y)  # noqa: E731
        return TaskBatch(sx * self.x_scale, scale_y(sy), qx * self.x_scale, scale_y(qy))


def test_a_finite_blow_up_stops_training_at_that_step_naming_both_learning_rates():
    # Inputs ten times larger from step 3 on: the inner step overshoots and the query loss is huge but finite.
    limit = BLOWUP_FACTOR * math.log(3)
    with pytest.raises(DivergenceError, match=r"iteration 3: the query loss \(\S+\) is above 11\.0, "
                                              r"10 × chance level ln\(3\) \(inner_lr=0\.3, meta_lr=0\.01\)\. "
                                              r"Try smaller") as info:
        meta_train(toy_model(), Louder(ToySampler(), after=2, x_scale=10.0), algorithm="fomaml", iterations=5,
                   **SMALL)
    assert info.value.history.iteration == [1, 2]  # the steps before, none after
    assert all(loss < limit for loss in info.value.history.query_loss)


@pytest.mark.parametrize("algorithm", ["fomaml", "maml"])
def test_the_largest_slider_step_sizes_blow_up_and_stop_with_divergence_error(algorithm):
    with pytest.raises(DivergenceError, match=r"is above .*inner_lr=10, meta_lr=1\).*smaller"):
        meta_train(toy_model(), ToySampler(), algorithm=algorithm, iterations=10,
                   **(SMALL | {"inner_lr": 10.0, "meta_lr": 1.0, "inner_steps": 5}))


def test_a_healthy_toy_run_stays_below_the_blow_up_limit_and_finishes():
    history = meta_train(toy_model(), ToySampler(), algorithm="fomaml", iterations=20, **SMALL)
    assert history.iteration == list(range(1, 21))
    assert max(history.query_loss) < BLOWUP_FACTOR * math.log(3)


def test_regression_losses_above_the_classification_limit_do_not_stop_training():
    torch.manual_seed(0)
    sampler = Louder(ToySampler(regression=True, shots=10), y_scale=10.0)  # targets 10 sin(x + φ): MSE ~ 50
    history = meta_train(MLP(1, (16,), 1), sampler, algorithm="fomaml", iterations=3,
                         **(SMALL | {"inner_lr": 0.001}))
    assert history.iteration == [1, 2, 3]
    assert min(history.query_loss) > BLOWUP_FACTOR * math.log(5)  # would stop a 5-way classification run


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"meta_lr": 0.0}, "meta_lr"), ({"meta_lr": float("inf")}, "meta_lr"), ({"inner_lr": -0.1}, "inner_lr"),
    ({"inner_steps": -1}, "inner_steps"), ({"meta_batch_size": 0}, "meta_batch_size"),
    ({"iterations": -1}, "iterations"), ({"val_every": 0}, "val_every"), ({"val_tasks": 0}, "val_tasks"),
    ({"eval_inner_steps": -1}, "eval_inner_steps"), ({"optimizer": "rmsprop"}, "optimizer"),
    ({"algorithm": "protonet"}, "algorithm"), ({"implementation": "gpu"}, "implementation"),
    ({"zero_head": 1}, "zero_head"), ({"meta_lr_schedule": "step"}, "meta_lr_schedule"),
])
def test_bad_hyperparameters_raise_value_error_naming_the_argument(kwargs, argument):
    args = {"algorithm": "fomaml", "iterations": 1} | SMALL | kwargs
    with pytest.raises(ValueError, match=argument):
        meta_train(toy_model(), ToySampler(), **args)


def test_a_sampler_without_sample_method_is_refused():
    with pytest.raises(ValueError, match="sampler"):
        meta_train(toy_model(), [1, 2, 3], algorithm="fomaml", iterations=1, **SMALL)
