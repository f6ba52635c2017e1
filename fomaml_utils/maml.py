"""Inner loop and meta-gradients for MAML, first-order MAML (FOMAML) and Reptile.

(Interface fixed; the implementation is being written.)
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

Algorithm = Literal["fomaml", "maml", "reptile"]
Params = dict[str, torch.Tensor]


class MetaGradient(NamedTuple):
    """What one meta-step computes for a batch of tasks.

    grads:          same keys and shapes as ``params``; the mean over tasks of the algorithm's
                    meta-gradient (for Reptile, the mean of θ − θ′).
    query_loss:     scalar tensor, mean over tasks of the query loss at the adapted weights θ′ (detached).
    query_accuracy: scalar tensor, mean query accuracy at θ′ for classification, else ``None``.
    """

    grads: Params
    query_loss: torch.Tensor
    query_accuracy: torch.Tensor | None
