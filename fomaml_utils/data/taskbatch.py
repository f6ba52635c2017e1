"""The container every task sampler returns and every meta-learner consumes."""

from __future__ import annotations

from typing import NamedTuple

import torch


class TaskBatch(NamedTuple):
    """A batch of ``T`` few-shot tasks, stacked along the first dimension.

    Classification (MNIST), ``N`` ways, ``K`` shots, ``Q`` queries per class:
        support_x: ``[T, N*K, 1, 28, 28]`` float32, normalised images
        support_y: ``[T, N*K]`` int64 labels in ``0..N-1`` (assigned at random per task)
        query_x:   ``[T, N*Q, 1, 28, 28]``
        query_y:   ``[T, N*Q]``
    Regression (sinusoids): ``support_x``/``support_y`` are ``[T, K, 1]`` float32, and likewise
    the query. Support and query of one task never share an example.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    @property
    def num_tasks(self) -> int:
        return self.support_x.shape[0]

    def to(self, device: torch.device | str) -> "TaskBatch":
        """The same tasks on ``device``."""
        return TaskBatch(*(t.to(device) for t in self))

    def task(self, i: int) -> "TaskBatch":
        """Task ``i`` alone, keeping a leading batch dimension of 1."""
        return TaskBatch(*(t[i : i + 1] for t in self))
