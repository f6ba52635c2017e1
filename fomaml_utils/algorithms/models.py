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


NORMS: tuple[str, ...] = ("image", "task", "support")
"""How a ``ConvNet`` normalises each block (``ConvNet``'s docstring says what each one means)."""


class TaskNorm(nn.Module):
    """Batch normalisation with the statistics of the images at hand, and no running statistics.

    ``h [B, C, H, W]`` is normalised per channel with the mean and variance over ``(B, H, W)`` of
    ``stats_from`` (default: ``h`` itself), then scaled and shifted by the learned ``weight`` and
    ``bias`` ``[C]``. It keeps no buffers, so nothing carries from one call (one task) to the next; and
    it is written with plain tensor ops, so it runs unchanged under ``torch.func.vmap`` (one task per
    vmapped call) and MAML's second-order gradient.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, h: torch.Tensor, stats_from: torch.Tensor | None = None) -> torch.Tensor:
        if stats_from is None:  # torch's fused kernel, with the batch's own statistics
            return F.batch_norm(h, None, None, self.weight, self.bias, training=True, eps=self.eps)
        var, mean = torch.var_mean(stats_from, dim=(0, 2, 3), unbiased=False)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return torch.addcmul((self.bias - mean * scale)[:, None, None], h, scale[:, None, None])


class ConvBlock(nn.Module):
    """``conv 3×3 (padding 1) → norm → ReLU → max-pool 2``: ``[B, C_in, H, W] → [B, C, H//2, W//2]``.

    ``norm="image"``: ``GroupNorm(1, C)``, a LayerNorm over (channels, height, width) of each image, with a
    learned scale and shift per channel. ``"task"`` and ``"support"``: ``TaskNorm`` (batch statistics).
    Computed as pool, then ReLU: ``relu(maxpool(x)) = maxpool(relu(x))`` exactly, values and gradients
    (ReLU is monotone, so the maximum stays where it was), with a quarter of the ReLU's work.
    """

    def __init__(self, in_channels: int, channels: int, norm: str = "image"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)
        self.norm = nn.GroupNorm(1, channels) if norm == "image" else TaskNorm(channels)

    def forward(self, x: torch.Tensor, stats_from: torch.Tensor | None = None) -> torch.Tensor:
        """``stats_from``: the pre-normalisation feature map ``[B', C, H, W]`` whose batch statistics
        ``TaskNorm`` uses (ignored by ``GroupNorm``)."""
        h = self.conv(x)
        h = self.norm(h) if stats_from is None else self.norm(h, stats_from)
        return F.relu(F.max_pool2d(h, 2))

    def with_support(self, x: torch.Tensor, support: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block applied to ``x`` and to ``support``, both normalised with the support's statistics."""
        reference = self.conv(support)
        x = self.norm(self.conv(x), reference)
        return F.relu(F.max_pool2d(x, 2)), F.relu(F.max_pool2d(self.norm(reference), 2))


class ConvNet(nn.Module):
    """The Omniglot-style network of the MAML paper: ``blocks`` × (conv 3×3 → norm → ReLU → max-pool 2), then a
    linear head.

    With 28×28 inputs and 4 blocks the feature maps shrink 28 → 14 → 7 → 3 → 1, so the head sees
    ``channels`` features. Input ``[B, in_channels, 28, 28]`` (or ``[B, 784]`` for one channel, reshaped);
    output ``[B, ways]``. Parameters: ``blocks.{i}.conv.weight/bias``, ``blocks.{i}.norm.weight/bias``,
    ``head.weight/bias``. There are no buffers: no running statistics that could carry from one task to
    the next.

    ``norm`` says whose statistics normalise each block:

    * ``"image"`` (default): each image's own (``GroupNorm(1, C)``). A prediction depends only on its
      own image and the weights.
    * ``"task"``: the statistics of all the images in the call, per channel, as the MAML paper's
      BatchNorm uses them (with no running averages). The inner loop normalises the support set with
      its own statistics and the query set with the query set's: **transductive** — a query's prediction
      depends on the task's other queries (and, with balanced query sets, on how many there are of each class).
    * ``"support"``: the statistics of the task's support set, for the support and the query alike:
      each query is classified on its own, from the support set and the weights (not transductive).
      Call it as ``model(query_x, support=support_x)``; without ``support``, a call normalises with its
      own statistics, which is right for the support set itself. ``losses.query_output`` passes it.
    """

    def __init__(self, ways: int = 5, channels: int = 32, blocks: int = 4, in_channels: int = 1,
                 image_size: int = 28, norm: str = "image"):
        super().__init__()
        for name, value in (("ways", ways), ("channels", channels), ("blocks", blocks),
                            ("in_channels", in_channels), ("image_size", image_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if image_size >> blocks < 1:
            raise ValueError(f"blocks must be at most {image_size.bit_length() - 1} for {image_size}×{image_size} "
                             f"images (each block halves the size), got {blocks}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(map(repr, NORMS))}, got {norm!r}")
        self.ways, self.channels, self.num_blocks = ways, channels, blocks
        self.in_channels, self.image_size, self.norm = in_channels, image_size, norm
        self.blocks = nn.Sequential(*(ConvBlock(in_channels if i == 0 else channels, channels, norm)
                                      for i in range(blocks)))
        self.head = nn.Linear(channels * (image_size >> blocks) ** 2, ways)

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.in_channels, self.image_size, self.image_size)

    def forward(self, x: torch.Tensor, support: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, ways]`` for ``x``; ``support`` ``[n, ...]``: the task's support images, whose statistics
        normalise ``x`` when ``norm="support"`` (ignored otherwise)."""
        x = self._images(x)
        if support is None or self.norm != "support":
            return self.head(self.blocks(x).flatten(1))
        s = self._images(support)
        for block in self.blocks:
            x, s = block.with_support(x, s)
        return self.head(x.flatten(1))


ARCHITECTURES: tuple[str, ...] = ("mlp", "mlp2", "cnn")


def head_name(model: nn.Module) -> str:
    """The name of the output layer of ``model``: ``"layers.{L-1}"`` for an ``MLP``, ``"head"`` for a ``ConvNet``."""
    if isinstance(model, MLP):
        return f"layers.{len(model.layers) - 1}"
    if isinstance(model, ConvNet):
        return "head"
    raise ValueError(f"model must be an MLP or a ConvNet, got {type(model).__name__}")


def build_model(arch: str, ways: int, norm: str | None = None) -> nn.Module:
    """The series' three networks for 28×28 images and ``ways`` classes.

    ``"mlp"``: 784 → 256 → ways; ``"mlp2"``: 784 → 256 → 128 → ways; ``"cnn"``: ``ConvNet(ways, norm=norm)``
    (4 blocks of 32 channels; ``norm`` one of ``NORMS``, default ``"image"``; MLPs take no ``norm``).
    Seed torch first (``seed_everything``) for reproducible initial weights.
    """
    if norm is not None and arch != "cnn":
        raise ValueError(f"norm is a setting of the ConvNet ('cnn'), not of {arch!r}; leave it out")
    if isinstance(ways, bool) or not isinstance(ways, int) or ways < 2:
        raise ValueError(f"ways must be an integer >= 2, got {ways!r}")
    if arch == "mlp":
        return MLP(784, (256,), ways)
    if arch == "mlp2":
        return MLP(784, (256, 128), ways)
    if arch == "cnn":
        return ConvNet(ways, norm=norm or "image")
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
                "in_channels": model.in_channels, "image_size": model.image_size, "norm": model.norm}
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
