"""Models that work both as ``nn.Module``s and as pure functions of a parameter dict.

Every model here can be called in two ways::

    logits = model(x)                                                # ordinary module
    logits = torch.func.functional_call(model, params, (x,))         # params: dict name -> tensor

The second form is what the inner loop uses: adapted weights θ' are just another dict.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class MLP(nn.Module):
    """A fully connected ReLU network, ``in_features → hidden... → out_features``.

    Inputs of any shape ``[B, ...]`` are flattened to ``[B, in_features]``; output ``[B, out_features]``.
    Parameters are named ``layers.{i}.weight`` (``[out, in]``) and ``layers.{i}.bias`` (``[out]``).
    """

    def __init__(self, in_features: int = 784, hidden: Sequence[int] = (256,), out_features: int = 5):
        super().__init__()
        sizes = [in_features, *hidden, out_features]
        self.in_features = in_features
        self.hidden = tuple(hidden)
        self.out_features = out_features
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x
