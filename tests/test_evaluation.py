"""Meta-test evaluation: the confidence interval, the per-step scores, batching and formatting."""

from __future__ import annotations

import math

import pytest
import torch

from fomaml_utils.algorithms.maml import adapt
from fomaml_utils.algorithms.models import MLP, ConvNet
from fomaml_utils.data.taskbatch import TaskBatch
from fomaml_utils.training import evaluation
from fomaml_utils.training.evaluation import Evaluation, evaluate, mean_confidence_interval, student_t_quantile


class ToySampler:
    """Random few-shot tasks from a seeded generator; records how many tasks each call asked for."""

    def __init__(self, shape=(784,), ways=3, shots=2, queries=4, seed=0, regression=False):
        self.generator = torch.Generator().manual_seed(seed)
        self.shape, self.ways, self.shots, self.queries, self.regression = shape, ways, shots, queries, regression
        self.calls: list[int] = []

    def sample(self, num_tasks: int) -> TaskBatch:
        self.calls.append(num_tasks)
        g = self.generator
        if self.regression:
            x = torch.rand(num_tasks, self.shots + self.queries, 1, generator=g) * 10 - 5
            y = torch.sin(x + torch.rand(num_tasks, 1, 1, generator=g))
            return TaskBatch(x[:, :self.shots], y[:, :self.shots], x[:, self.shots:], y[:, self.shots:])
        centres = torch.randn(num_tasks, self.ways, *self.shape, generator=g)

        def draw(per_class):
            y = torch.arange(self.ways).repeat_interleave(per_class).repeat(num_tasks, 1)
            x = centres[torch.arange(num_tasks)[:, None], y] + 0.5 * torch.randn(
                num_tasks, self.ways * per_class, *self.shape, generator=g)
            return x, y

        return TaskBatch(*draw(self.shots), *draw(self.queries))


def test_confidence_interval_is_students_t_times_sample_std_over_sqrt_n():
    mean, half_width = mean_confidence_interval([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert half_width == pytest.approx(3.182446 * math.sqrt(5 / 3) / 2)  # t(0.975, 3 degrees of freedom)
    assert mean_confidence_interval(torch.full((10,), 0.7)) == pytest.approx((0.7, 0.0))
    assert math.isnan(mean_confidence_interval([0.3])[1])
    with pytest.raises(ValueError, match="values"):
        mean_confidence_interval([])


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_evaluate_scores_each_step_as_plain_sgd_adaptation_does(arch):
    torch.manual_seed(0)
    model = MLP(144, (16,), 3) if arch == "mlp" else ConvNet(3, channels=4, blocks=2, image_size=12)
    sampler = lambda: ToySampler(shape=(1, 12, 12), seed=1)  # noqa: E731
    result = evaluate(model, sampler(), inner_lr=0.2, inner_steps=3, num_tasks=5, tasks_per_batch=2)
    batch = sampler().sample(2)  # the first two tasks evaluate() saw
    params = {k: p.detach() for k, p in model.named_parameters()}
    for i in range(2):
        for step in range(4):
            with torch.no_grad():
                adapted = adapt(model, params, batch.support_x[i], batch.support_y[i], inner_lr=0.2, inner_steps=step)
                predicted = torch.func.functional_call(model, adapted, (batch.query_x[i],)).argmax(-1)
            expected = (predicted == batch.query_y[i]).double().mean().item()
            assert result.per_task[i, step].item() == pytest.approx(expected)
    assert result.steps == [0, 1, 2, 3] and result.metric == "accuracy" and result.num_tasks == 5
    for step in result.steps:
        assert (result.mean[step], result.ci95[step]) == pytest.approx(mean_confidence_interval(result.per_task[:, step]))


def test_evaluate_draws_exactly_num_tasks_in_batches_of_tasks_per_batch():
    sampler = ToySampler()
    result = evaluate(MLP(784, (8,), 3), sampler, inner_lr=0.1, inner_steps=1, num_tasks=7, tasks_per_batch=3)
    assert sampler.calls == [3, 3, 1]
    assert result.per_task.shape == (7, 2)


def test_adaptation_improves_accuracy_on_separable_toy_tasks():
    torch.manual_seed(0)
    result = evaluate(MLP(784, (16,), 3), ToySampler(), inner_lr=0.5, inner_steps=5, num_tasks=40)
    assert result.mean[-1] > result.mean[0] + 0.2


def test_evaluate_reports_mse_for_regression():
    torch.manual_seed(0)
    result = evaluate(MLP(1, (16,), 1), ToySampler(regression=True, shots=10), inner_lr=0.01, inner_steps=2,
                      num_tasks=6)
    assert result.metric == "mse" and all(m > 0 for m in result.mean)


def test_evaluate_leaves_the_model_unchanged_and_uses_the_given_params():
    torch.manual_seed(0)
    model = MLP(784, (8,), 3)
    before = {k: p.detach().clone() for k, p in model.state_dict().items()}
    zeros = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    result = evaluate(model, ToySampler(), inner_lr=0.1, inner_steps=0, num_tasks=4, params=zeros)
    assert result.mean[0] == pytest.approx(1 / 3)  # all-zero logits: argmax is class 0, a third of the queries
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("hidden", [(16,), (16, 8)])
def test_lowrank_evaluation_gives_the_same_per_task_accuracy_as_vmap(hidden):
    torch.manual_seed(0)
    model = MLP(144, hidden, 5)
    run = lambda implementation: evaluate(  # noqa: E731
        model, ToySampler(shape=(1, 12, 12), ways=5, shots=1, queries=6, seed=3), inner_lr=0.3, inner_steps=6,
        num_tasks=30, tasks_per_batch=16, implementation=implementation)
    lowrank, vmap = run("lowrank"), run("vmap")
    assert lowrank.per_task.shape == (30, 7)
    assert torch.equal(lowrank.per_task, vmap.per_task)
    assert lowrank.per_task[:, -1].mean() > lowrank.per_task[:, 0].mean()  # adaptation happened: a real check


def test_lowrank_evaluation_gives_the_same_per_task_mse_as_vmap():
    torch.manual_seed(0)
    model = MLP(1, (32, 32), 1)
    run = lambda implementation: evaluate(  # noqa: E731
        model, ToySampler(regression=True, shots=10, seed=2), inner_lr=0.02, inner_steps=5, num_tasks=12,
        tasks_per_batch=5, implementation=implementation)
    lowrank, vmap = run("lowrank"), run("vmap")
    assert lowrank.metric == vmap.metric == "mse"
    torch.testing.assert_close(lowrank.per_task, vmap.per_task, rtol=1e-5, atol=0.0)
    assert not torch.equal(lowrank.per_task[:, 0], lowrank.per_task[:, -1])


def test_auto_evaluates_mlps_low_rank_and_convnets_one_task_at_a_time(monkeypatch):
    calls = []
    real = evaluation.lowrank_query_scores
    monkeypatch.setattr(evaluation, "lowrank_query_scores", lambda *a, **k: calls.append(1) or real(*a, **k))
    evaluate(MLP(144, (8,), 3), ToySampler(shape=(1, 12, 12)), inner_lr=0.1, inner_steps=1, num_tasks=4)
    assert calls == [1]
    evaluate(ConvNet(3, channels=4, blocks=2, image_size=12), ToySampler(shape=(1, 12, 12)), inner_lr=0.1,
             inner_steps=1, num_tasks=2)
    assert calls == [1]


@pytest.mark.parametrize(("arch", "implementation", "norm"), [
    ("cnn", "loop", "task"), ("cnn", "loop", "support"), ("cnn", "vmap", "task"), ("mlp", "lowrank", None),
    ("mlp", "vmap", None)])
def test_scoring_the_last_step_only_gives_the_last_column_bit_for_bit(arch, implementation, norm):
    torch.manual_seed(0)
    model = (ConvNet(3, channels=4, blocks=2, image_size=12, norm=norm) if arch == "cnn" else MLP(144, (16,), 3))
    run = lambda every_step: evaluate(  # noqa: E731
        model, ToySampler(shape=(1, 12, 12), seed=4), inner_lr=0.3, inner_steps=4, num_tasks=7, tasks_per_batch=3,
        implementation=implementation, every_step=every_step)
    every, last = run(True), run(False)
    assert last.steps == [4] and last.per_task.shape == (7, 1) and last.num_tasks == 7
    assert torch.equal(last.per_task[:, 0], every.per_task[:, -1])
    assert (last.mean, last.ci95) == ([every.mean[-1]], [every.ci95[-1]])
    assert last.summary() == last.summary(4) == every.summary()
    assert not torch.equal(every.per_task[:, 0], every.per_task[:, -1])  # the tasks adapted: a real check
    with pytest.raises(ValueError, match=r"step must be one of 4 \(the steps scored\), got 0"):
        last.summary(0)


def test_scoring_the_last_step_only_with_no_step_scores_the_initial_weights():
    torch.manual_seed(0)
    model = ConvNet(3, channels=4, blocks=2, image_size=12)
    run = lambda every_step: evaluate(model, ToySampler(shape=(1, 12, 12), seed=5), inner_lr=0.3,  # noqa: E731
                                      inner_steps=0, num_tasks=3, every_step=every_step)
    every, last = run(True), run(False)
    assert every.steps == last.steps == [0] and torch.equal(every.per_task, last.per_task)


def test_summary_formats_accuracy_in_percent_and_mse_with_three_decimals():
    accuracy = Evaluation(steps=[0, 1], mean=[0.2, 0.78412], ci95=[0.01, 0.0091], metric="accuracy", num_tasks=10)
    assert accuracy.summary() == "78.4 % ± 0.9"
    assert accuracy.summary(0) == "20.0 % ± 1.0"
    assert Evaluation([0], [0.12345], [0.0101], "mse", 3).summary(0) == "0.123 ± 0.010"
    assert Evaluation([0], [0.8], [float("nan")], "accuracy", 1).summary() == "80.0 % (no interval from 1 task)"
    assert Evaluation([0], [0.5], [float("nan")], "mse", 1).summary() == "0.500 (no interval from 1 task)"
    assert accuracy.to_dict() == {"steps": [0, 1], "mean": [0.2, 0.78412], "ci95": [0.01, 0.0091],
                                  "metric": "accuracy", "num_tasks": 10}
    with pytest.raises(ValueError, match="step"):
        accuracy.summary(5)


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"inner_lr": -1.0}, "inner_lr"), ({"inner_steps": -1}, "inner_steps"),
    ({"num_tasks": 0}, "num_tasks"), ({"tasks_per_batch": 0}, "tasks_per_batch"),
    ({"implementation": "fast"}, "implementation"), ({"every_step": "no"}, "every_step"),
])
def test_bad_evaluation_arguments_raise_value_error_naming_them(kwargs, argument):
    args = {"inner_lr": 0.1, "inner_steps": 1} | kwargs
    with pytest.raises(ValueError, match=argument):
        evaluate(MLP(784, (8,), 3), ToySampler(), **args)


def test_lowrank_evaluation_of_a_convnet_raises_value_error_naming_the_model():
    with pytest.raises(ValueError, match="model must be a fomaml_utils.algorithms.models.MLP"):
        evaluate(ConvNet(3, channels=4, blocks=2, image_size=12), ToySampler(shape=(1, 12, 12)), inner_lr=0.1,
                 inner_steps=1, num_tasks=2, implementation="lowrank")


@pytest.mark.parametrize("df, quantile", [(1, 12.706205), (2, 4.302653), (5, 2.570582), (29, 2.045230),
                                          (999, 1.962341), (10**7, 1.959964)])
def test_student_t_quantile_matches_the_published_table(df, quantile):
    assert student_t_quantile(0.975, df) == pytest.approx(quantile, abs=2e-6)


@pytest.mark.parametrize("p, df", [(0.5, 3), (1.0, 3), (0.975, 0)])
def test_student_t_quantile_rejects_a_probability_or_degrees_outside_its_range(p, df):
    with pytest.raises(ValueError, match="need 0.5 < p < 1"):
        student_t_quantile(p, df)
