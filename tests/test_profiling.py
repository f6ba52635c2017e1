"""Profiling helpers of notebook 05: which groups the time falls into (not how much, which varies)."""

from __future__ import annotations

import math

import pytest
import torch

from fomaml_utils.algorithms.maml import meta_gradient
from fomaml_utils.algorithms.models import MLP
from fomaml_utils.companions.profiling import matmul_throughput, median_seconds, time_shares
from fomaml_utils.data.taskbatch import TaskBatch

GROUPS = ["first layer's products", "other products", "weight updates", "everything else"]


@pytest.fixture
def step():
    torch.manual_seed(0)
    model = MLP(64, (32,), 5)
    params = dict(model.named_parameters())
    batch = TaskBatch(torch.randn(4, 5, 64), torch.randint(0, 5, (4, 5)), torch.randn(4, 15, 64),
                      torch.randint(0, 5, (4, 15)))

    def run(implementation):
        return lambda: meta_gradient(model, params, batch, algorithm="fomaml", inner_lr=0.1, inner_steps=2,
                                     implementation=implementation)
    return run, params


def test_shares_add_up_and_find_the_groups(step):
    run, params = step
    loop = time_shares(run("loop"), params, in_features=64)
    assert list(loop)[:4] == GROUPS and math.isclose(sum(loop[k] for k in GROUPS), 1.0)
    assert loop["first layer's products"] > 0 and loop["weight updates"] > 0 and 0 < loop["backward pass"] <= 1
    lowrank = time_shares(run("lowrank"), params, in_features=64)
    assert lowrank["weight updates"] == 0 and lowrank["backward pass"] == 0  # no per-task copies, no autograd


def test_nothing_to_profile_is_an_error(step):
    _, params = step
    with pytest.raises(ValueError, match="no torch operator"):
        time_shares(lambda: None, params, in_features=64)


def test_throughput_and_timing_are_positive_and_checked():
    assert matmul_throughput(32, 16, 8, repeats=2) > 0
    assert median_seconds(lambda: None, repeats=3, warmup=0) >= 0
    with pytest.raises(ValueError, match="positive"):
        matmul_throughput(0, 16, 8)
    with pytest.raises(ValueError, match="repeats"):
        median_seconds(lambda: None, repeats=0)
