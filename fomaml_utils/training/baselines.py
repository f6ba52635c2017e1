r"""The transfer-learning baseline: pretrain on the meta-training classes, then a fresh head per task.

Meta-learning has to beat the obvious alternative. Here it is:

1. **Pretrain** one network by plain supervised learning on *all* meta-training classes at once
   (28-way on ``unseen-digits``: digits 0–6 in four rotations), minimising cross-entropy with Adam.
   Mini-batches come from the same ``FewShotSampler`` the meta-learners use (its ``train`` part): one
   ``C``-way task over all ``C`` classes, relabelled from the task's random labels to the global class
   index, is a class-balanced batch with the same images and rotations meta-training sees.
2. **Replace the head**: keep every layer but the last, and put a new ``ways``-way output layer on top
   (``with_fresh_head``), zero or freshly random.
3. **Fine-tune** on each test task's support set exactly as the meta-learned initialisations are:
   ``inner_steps`` steps of SGD with step size ``inner_lr`` on all weights (``fomaml_utils.training.evaluation``).

With a zero head, every class starts with the same logit, and the first SGD step on the head alone
sets row :math:`c` of the head's weight to :math:`\tfrac{\alpha}{n}\sum_{i}(\mathbb 1[y_i=c]-\tfrac1N)\,h(x_i)`
(:math:`h` the penultimate features): logits are dot products with the class means of the support
features (a nearest-class-mean classifier would also subtract :math:`\tfrac12\lVert\mu_c\rVert^2`), a strong start. A random head starts from arbitrary logits that the few support examples must undo.

Usage::

    body = pretrain("unseen-digits", arch="mlp", iterations=1000, seed=0)   # 28 outputs
    model = with_fresh_head(body, ways=5)                                   # 5 outputs, head zero
    evaluate(model, test_sampler, inner_lr=0.4, inner_steps=10)
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from fomaml_utils.algorithms.models import MLP, build_model, head_name
from fomaml_utils.data.tasks import SPLITS, FewShotSampler
from fomaml_utils.seeding import seed_everything

HeadInit = Literal["zeros", "random"]
_CHUNK = 50  # pretraining batches drawn per call of the sampler

__all__ = ["pretrain", "with_fresh_head", "head_name", "HeadInit"]


def pretrain(split: str, *, arch: str = "mlp", iterations: int = 1000, images_per_class: int = 8,
             lr: float = 1e-3, seed: int = 0, root: str | Path | None = None) -> nn.Module:
    """Supervised pretraining on every meta-training class of ``split`` at once.

    Builds ``build_model(arch, C)`` with ``C = len(SPLITS[split].train_classes)`` outputs (28 for
    ``unseen-digits``) and takes ``iterations`` Adam steps (step size ``lr``) of cross-entropy on
    class-balanced batches of ``images_per_class × C`` images ``[C*k, 1, 28, 28]`` from the split's
    ``train`` part. Seeds everything with ``seed`` first. Returns the trained model (in eval mode,
    on the CPU); its class ``c`` is ``FewShotSampler(split, "train", ...).classes[c]``.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is unknown; known splits: {', '.join(map(repr, SPLITS))}")
    for name, value in (("iterations", iterations), ("images_per_class", images_per_class)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 < lr < math.inf):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    num_classes = len(SPLITS[split].train_classes)
    if num_classes < 2:
        raise ValueError(f"split {split!r} has {num_classes} training class; pretraining needs at least 2")
    seed_everything(seed)
    model = build_model(arch, num_classes)
    # One C-way "task" with shots=k and no use for its query set is a balanced batch of C*k images.
    sampler = FewShotSampler(split, "train", ways=num_classes, shots=images_per_class, queries=1,
                             root=root, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for step in range(iterations):
        if step % _CHUNK == 0:  # sampling many tasks per call is much faster than one at a time
            batch, class_idx = sampler.sample(min(_CHUNK, iterations - step), return_classes=True)
        t = step % _CHUNK
        x = batch.support_x[t]                              # [C*k, 1, 28, 28]
        y = class_idx[t].gather(0, batch.support_y[t])      # task label -> global class index, [C*k]
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def with_fresh_head(model: nn.Module, ways: int, *, head: HeadInit = "zeros", seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose output layer is replaced by a new ``ways``-way one.

    Every other parameter is copied unchanged. ``head="zeros"``: the new layer's weight ``[ways, d]``
    and bias ``[ways]`` are zero (all classes equally likely until the first fine-tuning step);
    ``head="random"``: PyTorch's default initialisation, drawn from ``torch.Generator`` seeded with
    ``seed`` (the global RNG is not touched). ``model`` itself is not modified.
    """
    if isinstance(ways, bool) or not isinstance(ways, int) or ways < 2:
        raise ValueError(f"ways must be an integer >= 2, got {ways!r}")
    if head not in ("zeros", "random"):
        raise ValueError(f"head must be 'zeros' or 'random', got {head!r}")
    name = head_name(model)
    old = model.get_submodule(name)
    new = torch.nn.utils.skip_init(nn.Linear, old.in_features, ways)  # no draw from the global RNG
    with torch.no_grad():
        if head == "zeros":
            new.weight.zero_()
            new.bias.zero_()
        else:  # nn.Linear's default: U(-1/sqrt(d), 1/sqrt(d)) for weight and bias
            bound = 1 / math.sqrt(old.in_features)
            g = torch.Generator().manual_seed(seed)
            new.weight.copy_(torch.rand(new.weight.shape, generator=g) * 2 * bound - bound)
            new.bias.copy_(torch.rand(new.bias.shape, generator=g) * 2 * bound - bound)
    fresh = copy.deepcopy(model)
    parent_name, _, attr = name.rpartition(".")
    setattr(fresh.get_submodule(parent_name) if parent_name else fresh, attr, new.to(old.weight.device))
    if isinstance(fresh, MLP):
        fresh.out_features = ways
    else:
        fresh.ways = ways
    return fresh.eval()
