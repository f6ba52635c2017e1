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


class ConvBlock(nn.Module):
    """``conv 3×3 (padding 1) → GroupNorm → ReLU → max-pool 2``: ``[B, C_in, H, W] → [B, C, H//2, W//2]``.

    Computed as pool, then ReLU: ``relu(maxpool(x)) = maxpool(relu(x))`` exactly, values and gradients
    (ReLU is monotone, so the maximum stays where it was), with a quarter of the ReLU's work.
    """

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)
        # One group: LayerNorm over (channels, height, width) of each image, with a learned scale and
        # shift per channel. Unlike BatchNorm it uses no statistics of other images and keeps no
        # running averages, so a prediction depends only on its own image and the weights.
        self.norm = nn.GroupNorm(1, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.max_pool2d(self.norm(self.conv(x)), 2))


class ConvNet(nn.Module):
    """The Omniglot-style network of the MAML paper, with per-image normalisation.

    ``blocks`` × (conv 3×3 → norm → ReLU → max-pool 2), then a linear head. With 28×28 inputs and
    4 blocks the feature maps shrink 28 → 14 → 7 → 3 → 1, so the head sees ``channels`` features.
    Input ``[B, in_channels, 28, 28]`` (or ``[B, 784]`` for one channel, reshaped); output ``[B, ways]``.

    Normalisation: the paper's BatchNorm normalises with the statistics of whatever images share the
    batch (and keeps running averages that leak between tasks), so a query's prediction would
    depend on the other queries. We use ``GroupNorm(1, channels)`` — a LayerNorm over each image's
    feature map — instead: every prediction depends only on its own image, in training and at test
    time alike. Parameters: ``blocks.{i}.conv.weight/bias``, ``blocks.{i}.norm.weight/bias``,
    ``head.weight/bias``.
    """

    def __init__(self, ways: int = 5, channels: int = 32, blocks: int = 4, in_channels: int = 1,
                 image_size: int = 28):
        super().__init__()
        for name, value in (("ways", ways), ("channels", channels), ("blocks", blocks),
                            ("in_channels", in_channels), ("image_size", image_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if image_size >> blocks < 1:
            raise ValueError(f"blocks must be at most {image_size.bit_length() - 1} for {image_size}×{image_size} "
                             f"images (each block halves the size), got {blocks}")
        self.ways, self.channels, self.num_blocks = ways, channels, blocks
        self.in_channels, self.image_size = in_channels, image_size
        self.blocks = nn.Sequential(*(ConvBlock(in_channels if i == 0 else channels, channels) for i in range(blocks)))
        self.head = nn.Linear(channels * (image_size >> blocks) ** 2, ways)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], self.in_channels, self.image_size, self.image_size)
        return self.head(self.blocks(x).flatten(1))


ARCHITECTURES: tuple[str, ...] = ("mlp", "mlp2", "cnn")


def head_name(model: nn.Module) -> str:
    """The name of the output layer of ``model``: ``"layers.{L-1}"`` for an ``MLP``, ``"head"`` for a ``ConvNet``."""
    if isinstance(model, MLP):
        return f"layers.{len(model.layers) - 1}"
    if isinstance(model, ConvNet):
        return "head"
    raise ValueError(f"model must be an MLP or a ConvNet, got {type(model).__name__}")


def build_model(arch: str, ways: int) -> nn.Module:
    """The series' three networks for 28×28 images and ``ways`` classes.

    ``"mlp"``: 784 → 256 → ways; ``"mlp2"``: 784 → 256 → 128 → ways; ``"cnn"``: ``ConvNet(ways)``
    (4 blocks of 32 channels). Seed torch first (``seed_everything``) for reproducible initial weights.
    """
    if isinstance(ways, bool) or not isinstance(ways, int) or ways < 2:
        raise ValueError(f"ways must be an integer >= 2, got {ways!r}")
    if arch == "mlp":
        return MLP(784, (256,), ways)
    if arch == "mlp2":
        return MLP(784, (256, 128), ways)
    if arch == "cnn":
        return ConvNet(ways)
    raise ValueError(f"arch must be one of {', '.join(map(repr, ARCHITECTURES))}, got {arch!r}")


def model_spec(model: nn.Module) -> dict:
    """A JSON-friendly description from which ``model_from_spec`` rebuilds the same architecture.

    ``{"class": "MLP" | "ConvNet", ...constructor arguments..., "arch": "mlp" | "mlp2" | "cnn" | None}``;
    ``arch`` names the ``build_model`` preset the model matches, if any.
    """
    if isinstance(model, MLP):
        spec = {"class": "MLP", "in_features": model.in_features, "hidden": list(model.hidden),
                "out_features": model.out_features}
        presets = {(784, (256,)): "mlp", (784, (256, 128)): "mlp2"}
        arch = presets.get((model.in_features, model.hidden)) if model.out_features >= 2 else None
    elif isinstance(model, ConvNet):
        spec = {"class": "ConvNet", "ways": model.ways, "channels": model.channels, "blocks": model.num_blocks,
                "in_channels": model.in_channels, "image_size": model.image_size}
        preset = (model.channels, model.num_blocks, model.in_channels, model.image_size) == (32, 4, 1, 28)
        arch = "cnn" if preset and model.ways >= 2 else None
    else:
        raise ValueError(f"model must be an MLP or a ConvNet, got {type(model).__name__}")
    return {**spec, "arch": arch}


def model_from_spec(spec: dict) -> nn.Module:
    """A freshly initialised model with the architecture ``spec`` (from ``model_spec``) describes."""
    if not isinstance(spec, dict) or spec.get("class") not in ("MLP", "ConvNet"):
        raise ValueError(f"spec must be a dict from model_spec with class 'MLP' or 'ConvNet', got {spec!r}")
    args = {k: v for k, v in spec.items() if k not in ("class", "arch")}
    try:
        if spec["class"] == "MLP":
            return MLP(args["in_features"], tuple(args["hidden"]), args["out_features"])
        return ConvNet(**args)
    except (KeyError, TypeError) as error:
        raise ValueError(f"spec does not describe a {spec['class']}: {spec!r} ({error})") from None
