r"""Fast meta-gradients for MLPs: every inner SGD step is a low-rank update.

This computes exactly what ``fomaml_utils.algorithms.maml.meta_gradient`` computes with its readable loop, for the
network that dominates the series (an ``MLP``), several times faster (``benchmarks/RESULTS.md``).
Read the loop first: this file only reorganises the same arithmetic. ``meta_gradient`` uses it for
every MLP when ``implementation="auto"`` (or ``"lowrank"``), and so does ``evaluation.evaluate``, whose
per-step query scores come from ``lowrank_query_scores`` (the same inner loop, scored after every step).

The fact that makes it fast
---------------------------
Take one linear layer ``z = x Wᵀ + b`` inside a task's network, with ``X_s`` ``[n, in]`` the inputs the
layer sees for the task's ``n`` support examples. Backpropagation gives the support loss's gradient at
the layer's pre-activation, ``Δ = ∂L_s/∂z`` ``[n, out]``, and then

.. math::

    \nabla_W L_s = \Delta^\top X_s, \qquad \nabla_b L_s = \Delta^\top \mathbf 1 ,

so one SGD step ``W ← W − α Δᵀ X_s`` changes ``W`` by a matrix of rank at most ``n``.

**First layer.** Its inputs are the images themselves, the same at every inner step. After ``k`` steps,
with ``A = Δ⁽¹⁾ + … + Δ⁽ᵏ⁾`` ``[n, h]`` the sum of the steps' ``Δ``s,

.. math::

    W' = W - \alpha A^\top X_s, \qquad b' = b - \alpha A^\top \mathbf 1, \qquad
    x W'^\top + b' = \underbrace{x W^\top + b}_{\text{shared by all tasks}}
                     - \alpha\, \underbrace{(x X_s^\top + 1)}_{\text{kernel } [m, n]} A .

The large product ``x Wᵀ`` (784 × 256 per image) no longer depends on the task or the step: it is
computed once per image, as one matrix product over all the meta-batch's support images and one over
all its query images. What is left per task is tiny: the
kernel ``x X_sᵀ + 1`` (``[m, n]``, computed once) times ``A`` (``[n, h]``, updated every step), batched
over tasks with ``torch.matmul``. No task ever materialises its own 784 × 256 matrix ``W'``.

**Deeper layers.** Their inputs ``H⁽ʲ⁾`` change from step to step, so the update is a sum of the steps'
rank-``n`` terms; we keep them stacked, ``H = [H⁽¹⁾; …; H⁽ᵏ⁾]`` ``[kn, in]`` and
``D = [Δ⁽¹⁾; …; Δ⁽ᵏ⁾]`` ``[kn, out]``:

.. math::

    h W'^\top + b' = h W^\top + b - \alpha\, (h H^\top + 1)\, D ,\qquad
    \frac{\partial L}{\partial h} = \delta W' = \delta W - \alpha\, (\delta D^\top) H .

Here ``h Wᵀ`` is again one product for all tasks (``W`` is shared), and the corrections are small
batched products of rank ``kn`` (5 per inner step for 5-way 1-shot tasks).

**The inner loop by hand.** The support gradients are written out with plain torch ops (``torch.baddbmm``
computes ``z − α K A`` in one call). For the mean loss over a task's ``n`` examples,

.. math::

    \Delta_{\text{out}} = \frac{\operatorname{softmax}(z) - \operatorname{onehot}(y)}{n}
    \ \text{(cross-entropy)}, \qquad
    \Delta_{\text{out}} = \frac{2 (z - y)}{n C} \ \text{(mean squared error, } C \text{ outputs)}, \qquad
    \Delta_{l} = (\Delta_{l+1} W'_{l+1}) \odot [z_l > 0] .

Measured alternatives (median CPU time of one meta-gradient, MLP 784-256-128-5, 16 tasks of 5-way
1-shot, 5 inner steps, 1 thread; ``benchmarks/RESULTS.md``): this file takes 14.1 ms for FOMAML and
25.7 ms for MAML; a dense ``W'`` per task for the deeper layers (``[T, 128, 256]``) took 16.1 and 38.2 ms;
taking the inner ``Δ``s from autograd (``torch.autograd.grad`` of the support loss with respect to the
pre-activations) took 15.4 and 27.1 ms.

**The three meta-gradients** (each the mean over the ``T`` tasks of the batch):

* FOMAML, ``∇_{θ'} L_q(θ')`` applied to ``θ``: the same backward pass at the query examples, and
  for every layer ``∇_W = Σ_tasks Δ_qᵀ X_q / T`` — for the first layer again ONE large product of the
  stacked query ``Δ``s and the stacked query images.
* MAML, exact second order: autograd differentiates the query loss through the hand-written inner loop
  (every op above is differentiable; ReLU's second derivative is zero, so the masks need none). The
  graph holds only the low-rank factors, never a task's dense ``W'``.
* Reptile, the mean of ``θ − θ'`` (unscaled): ``α Aᵀ X_s`` and ``α Dᵀ H``, again one product each for
  all tasks, plus the bias sums.

**ANIL** adapts only the output layer: the layers below keep no correction (``A`` and their ``D`` stay empty)
and the inner steps backpropagate no further than the output layer. Meta-SGD's step size per weight would
break the low-rank form (``α ⊙ ΔᵀX`` is in general of full rank); it is not served here.

Supported: ``fomaml_utils.algorithms.models.MLP`` (any number of hidden layers, ReLU) with integer class labels
(cross-entropy, as ``task_loss``) or float targets ``[T, n, out_features]`` (mean squared error, as
``task_loss``). There is no silent fallback: anything else (another model class, params that do not
match the model, labels out of range) raises ``ValueError`` naming the argument; use
``meta_gradient(..., implementation="loop")`` or ``"vmap"`` for other models.

Example::

    from fomaml_utils.algorithms.mlp_lowrank import lowrank_meta_gradient
    params = dict(model.named_parameters())
    out = lowrank_meta_gradient(model, params, batch, algorithm="fomaml", inner_lr=0.4, inner_steps=5)
    out.grads["layers.0.weight"].shape     # same as params["layers.0.weight"]
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from fomaml_utils.algorithms.models import MLP
from fomaml_utils.algorithms.registry import ALGORITHMS, Algorithm, MetaGradient, check_hyperparameters, get_algorithm
from fomaml_utils.data.taskbatch import TaskBatch


def _prepare(model: MLP, params: dict[str, torch.Tensor], batch: TaskBatch, algorithm: str | Algorithm,
             inner_lr: float, inner_steps: int) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor,
                                                          torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Checked weights and biases, the batch flattened to ``[T, n, in_features]`` on their device and dtype, and
    the index of the lowest layer the inner loop adapts."""
    weights, biases = _check_inputs(model, params, batch, algorithm, inner_lr, inner_steps)
    first_adapted = _first_adapted_layer(model, params, algorithm)
    like = weights[0]
    support_x = batch.support_x.flatten(2).to(device=like.device, dtype=like.dtype)
    query_x = batch.query_x.flatten(2).to(device=like.device, dtype=like.dtype)
    label_dtype = like.dtype if batch.support_y.is_floating_point() else torch.long  # one_hot wants int64
    support_y = batch.support_y.to(device=like.device, dtype=label_dtype)
    query_y = batch.query_y.to(device=like.device, dtype=label_dtype)
    return weights, biases, support_x, query_x, support_y, query_y, first_adapted


def _first_adapted_layer(model: MLP, params: dict[str, torch.Tensor], algorithm: str | Algorithm) -> int:
    """``k`` such that the algorithm adapts exactly the layers ``k, …, L−1`` (0: every layer; ANIL: the last)."""
    adapted = set(get_algorithm(algorithm).adapted_names(model, params))
    num_layers = len(model.layers)
    for k in range(num_layers):
        if adapted == {f"layers.{i}.{kind}" for i in range(k, num_layers) for kind in ("weight", "bias")}:
            return k
    raise ValueError(f"the low-rank path adapts whole layers from one layer to the output, not "
                     f"{sorted(adapted)}; use implementation='vmap' or 'loop'")


def lowrank_meta_gradient(
    model: MLP,
    params: dict[str, torch.Tensor],
    batch: TaskBatch,
    *,
    algorithm: str,
    inner_lr: float,
    inner_steps: int,
) -> MetaGradient:
    """The meta-gradient of ``algorithm`` for an MLP, the mean over the batch's ``T`` tasks.

    model:       an ``MLP``; only its architecture is used (the weights come from ``params``).
    params:      θ, ``{"layers.{i}.weight": [out, in], "layers.{i}.bias": [out]}`` for every layer.
    batch:       ``support_x [T, n_s, ...]`` (each example flattens to ``in_features``) and either
                 ``support_y [T, n_s]`` integer labels in ``0..out_features-1`` (cross-entropy) or
                 ``support_y [T, n_s, out_features]`` float targets (mean squared error); likewise the query.
    algorithm:   ``"fomaml"``, ``"maml"`` (exact second order), ``"reptile"`` (mean of θ − θ′), or ANIL
                 (``"anil"``, ``"fo-anil"``: only the output layer adapts), as a name or an ``Algorithm``.
    inner_lr:    α, the inner SGD step size (finite, > 0).
    inner_steps: number of inner SGD steps on the support loss (≥ 0; 0 means θ′ = θ).

    Returns a ``MetaGradient``: ``grads`` with the keys and shapes of ``params``, and the query loss and
    accuracy (``None`` for regression) at θ′, means over tasks, detached. Raises ``ValueError`` for
    anything else (another model class, mismatched shapes, labels out of range).
    """
    weights, biases, support_x, query_x, support_y, query_y, first = _prepare(model, params, batch, algorithm,
                                                                              inner_lr, inner_steps)

    exact = not get_algorithm(algorithm).first_order
    if exact:
        # Exact second order: autograd differentiates through the hand-written inner loop.
        with torch.enable_grad():
            leaves = [p.detach().requires_grad_() for p in (*weights, *biases)]
            net = _adapt(leaves[: len(weights)], leaves[len(weights) :], support_x, query_x, support_y,
                         inner_lr, inner_steps, first)
            out = net.forward("query")[1][-1]
            grads = torch.autograd.grad(_loss(out, query_y), leaves)
        grad_w, grad_b = grads[: len(weights)], grads[len(weights) :]
        out = out.detach()
    else:
        with torch.no_grad():
            net = _adapt(weights, biases, support_x, query_x, support_y, inner_lr, inner_steps, first)
            inputs, pre = net.forward("query")
            out = pre[-1]
            if get_algorithm(algorithm).kind == "query-gradient":
                grad_w, grad_b = net.first_order_grads(query_x, inputs, pre, query_y)
            else:
                grad_w, grad_b = net.reptile_step(support_x)

    with torch.no_grad():
        query_loss = _loss(out, query_y)
        query_accuracy = None
        if not query_y.is_floating_point():
            query_accuracy = (out.argmax(dim=-1) == query_y).to(out.dtype).mean()
    grads = {}
    for i, (grad_weight, grad_bias) in enumerate(zip(grad_w, grad_b)):
        grads[f"layers.{i}.weight"] = grad_weight
        grads[f"layers.{i}.bias"] = grad_bias
    return MetaGradient(grads, query_loss, query_accuracy)


def lowrank_query_scores(
    model: MLP,
    params: dict[str, torch.Tensor],
    batch: TaskBatch,
    *,
    inner_lr: float,
    inner_steps: int,
    algorithm: str | Algorithm = "fomaml",
) -> torch.Tensor:
    """Each task's query score at θ′₀ = θ, θ′₁, …, θ′ₖ (``k = inner_steps`` plain SGD steps on its support set).

    The same inner loop as ``lowrank_meta_gradient`` (no graph is kept), with the query set scored before the
    first step and after every step: for integer labels the fraction of query examples whose largest logit is
    the label, for float targets the mean squared error over the task's query examples and outputs. This is
    what ``fomaml_utils.training.evaluation.evaluate`` reports per task, computed for all ``T`` tasks at once.

    model, params, batch: as for ``lowrank_meta_gradient``. ``algorithm``: which weights adapt (FOMAML, MAML
    and Reptile adapt all of them, and differ only in training; ANIL adapts the output layer).
    Returns ``[T, inner_steps + 1]`` in the dtype of ``params``, detached. Raises ``ValueError`` as
    ``lowrank_meta_gradient`` does.
    """
    weights, biases, support_x, query_x, support_y, query_y, first = _prepare(model, params, batch, algorithm,
                                                                              inner_lr, inner_steps)

    with torch.no_grad():
        net = _AdaptedMLP([w.detach() for w in weights], [b.detach() for b in biases], inner_lr, support_x, query_x,
                          first)
        scores = []
        for step in range(inner_steps + 1):
            if step > 0:
                net.sgd_step(support_y)
            out = net.forward("query")[1][-1]                                     # [T, m, C]
            if query_y.is_floating_point():
                scores.append((out - query_y).square().mean(dim=(1, 2)))
            else:
                scores.append((out.argmax(dim=-1) == query_y).to(out.dtype).mean(dim=1))
        return torch.stack(scores, dim=1)


class _AdaptedMLP:
    """θ′ of ``T`` tasks at once, stored as the shared θ plus each task's low-rank corrections.

    First layer:      z₀ = (x W₀ᵀ + b₀) − α (x X_sᵀ + 1) A          A: [T, n_s, h₁]
    Layer l ≥ 1:      z_l = h W_lᵀ + b_l − α (h H_lᵀ + 1) D_l        H_l: [T, r, in_l], D_l: [T, r, out_l]

    with ``r = n_s × (steps taken)``. ``split`` is ``"support"`` or ``"query"``; the first layer's shared
    product and kernel are precomputed for both. Only layers ``first_adapted`` and above are adapted (ANIL:
    the last one); the others keep no correction, and the inner steps backpropagate no further than them.
    """

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor], inner_lr: float,
                 support_x: torch.Tensor, query_x: torch.Tensor, first_adapted: int = 0):
        self.weights, self.biases, self.lr, self.first_adapted = weights, biases, inner_lr, first_adapted
        w0, b0 = weights[0], biases[0]
        # x W₀ᵀ + b₀: one large product per split covering every task (W₀ is shared by all of them).
        self.shared = {"support": F.linear(support_x, w0, b0)}
        self.kernel = {"support": _kernel(support_x, support_x)}
        self.support_x = support_x
        self.add_split("query", query_x)
        self.A: torch.Tensor | None = None            # Σ_steps Δ₀ at the support, [T, n_s, h₁]
        self.H: list[torch.Tensor | None] = [None] * len(weights)  # stacked layer inputs, index l ≥ 1
        self.D: list[torch.Tensor | None] = [None] * len(weights)  # stacked Δ_l, index l ≥ 1

    def add_split(self, split: str, x: torch.Tensor) -> None:
        """Precompute the first layer's shared product and kernel for inputs ``x`` ``[T, m, in]``."""
        self.shared[split] = F.linear(x, self.weights[0], self.biases[0])
        self.kernel[split] = _kernel(x, self.support_x)

    def forward(self, split: str) -> tuple[list, list]:
        """Pre-activations ``pre[l]`` ``[T, m, out_l]`` of every layer at θ′, and the inputs ``inputs[l]``
        of layers l ≥ 1 (``inputs[0]`` is ``None``: the first layer's input is the image)."""
        z = self.shared[split]
        if self.A is not None:
            z = torch.baddbmm(z, self.kernel[split], self.A, alpha=-self.lr)      # z − α K A
        inputs, pre = [None], [z]
        for l in range(1, len(self.weights)):
            h = torch.relu(z)
            z = F.linear(h, self.weights[l], self.biases[l])                     # h Wᵀ + b
            if self.D[l] is not None:
                kernel = torch.baddbmm(torch.ones((), dtype=h.dtype), h, self.H[l].mT)   # h Hᵀ + 1
                z = torch.baddbmm(z, kernel, self.D[l], alpha=-self.lr)          # − α (h Hᵀ + 1) D
            inputs.append(h)
            pre.append(z)
        return inputs, pre

    def backward(self, delta: torch.Tensor, pre: list, down_to: int = 0) -> list:
        """Backpropagate ``delta = ∂L/∂(logits)`` ``[T, m, out]`` through θ′; returns ``Δ_l = ∂L/∂z_l``
        ``[T, m, out_l]`` for the layers ``l ≥ down_to`` (``None`` for those below)."""
        deltas = [delta]
        for l in range(len(self.weights) - 1, down_to, -1):
            grad_h = delta @ self.weights[l]                                     # δ W
            if self.D[l] is not None:
                grad_h = torch.baddbmm(grad_h, delta @ self.D[l].mT, self.H[l], alpha=-self.lr)  # − α (δ Dᵀ) H
            delta = _relu_backward(grad_h, pre[l - 1])
            deltas.insert(0, delta)
        return [None] * down_to + deltas

    def sgd_step(self, labels: torch.Tensor) -> None:
        """One inner SGD step on every task's support loss (``task_loss``: cross-entropy for integer labels,
        else mean squared error; mean over its ``n_s`` examples)."""
        inputs, pre = self.forward("support")
        deltas = self.backward(_loss_delta(pre[-1], labels, scale=1.0), pre, down_to=self.first_adapted)
        if self.first_adapted == 0:
            self.A = deltas[0] if self.A is None else self.A + deltas[0]
        for l in range(max(1, self.first_adapted), len(self.weights)):
            self.H[l] = inputs[l] if self.H[l] is None else torch.cat([self.H[l], inputs[l]], dim=1)
            self.D[l] = deltas[l] if self.D[l] is None else torch.cat([self.D[l], deltas[l]], dim=1)

    def first_order_grads(self, query_x: torch.Tensor, inputs: list, pre: list,
                          labels: torch.Tensor) -> tuple[list, list]:
        """FOMAML: the mean over tasks of ∇_θ′ L_q(θ′); each weight gradient is one large product
        ``Σ_tasks Δ_lᵀ h_l`` over the stacked query examples of all tasks."""
        num_tasks = labels.shape[0]
        deltas = self.backward(_loss_delta(pre[-1], labels, scale=1.0 / num_tasks), pre)
        inputs = [query_x, *inputs[1:]]
        grad_w = [d.flatten(0, 1).T @ x.flatten(0, 1) for d, x in zip(deltas, inputs)]
        grad_b = [d.sum(dim=(0, 1)) for d in deltas]
        return grad_w, grad_b

    def reptile_step(self, support_x: torch.Tensor) -> tuple[list, list]:
        """Reptile: the mean over tasks of θ − θ′ = α Σ_steps (Δᵀ X) — for the first layer α Aᵀ X_s."""
        scale = self.lr / support_x.shape[0]
        grad_w, grad_b = [], []
        for w, b, d, x in zip(self.weights, self.biases, [self.A, *self.D[1:]], [support_x, *self.H[1:]]):
            if d is None:                                          # not adapted, or no inner steps: θ′ = θ
                grad_w.append(torch.zeros_like(w))
                grad_b.append(torch.zeros_like(b))
            else:
                grad_w.append(scale * (d.flatten(0, 1).T @ x.flatten(0, 1)))
                grad_b.append(scale * d.sum(dim=(0, 1)))
        return grad_w, grad_b


def _adapt(weights: list[torch.Tensor], biases: list[torch.Tensor], support_x: torch.Tensor,
           query_x: torch.Tensor, support_y: torch.Tensor, inner_lr: float, inner_steps: int,
           first_adapted: int = 0) -> _AdaptedMLP:
    """Run ``inner_steps`` SGD steps on every task's support set, adapting the layers ``first_adapted`` and
    above; returns θ′ in low-rank form, ready to be evaluated on the support and query inputs."""
    net = _AdaptedMLP(weights, biases, inner_lr, support_x, query_x, first_adapted)
    for _ in range(inner_steps):
        net.sgd_step(support_y)
    return net


def _relu_backward(grad_h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``grad_h ⊙ [z > 0]``: the gradient through ``h = relu(z)``. Computed by aten's own ReLU-backward
    kernel, which on CPU is about ten times faster than multiplying by the boolean mask, and is
    differentiable (as MAML needs) with zero derivative with respect to ``z``."""
    return torch.ops.aten.threshold_backward(grad_h, z, 0)


def _kernel(x: torch.Tensor, support_x: torch.Tensor) -> torch.Tensor:
    """``x X_sᵀ + 1`` per task, ``[T, m, n_s]``: how the first layer's low-rank update reaches ``x``."""
    return torch.baddbmm(torch.ones((), dtype=x.dtype), x, support_x.mT)


def _loss(out: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean over tasks of ``task_loss``: cross-entropy for integer labels, else mean squared error."""
    if labels.is_floating_point():
        return F.mse_loss(out, labels)
    return F.cross_entropy(out.flatten(0, 1), labels.flatten())


def _loss_delta(out: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale ×`` the gradient of each task's mean loss with respect to its outputs ``out [T, m, C]``.

    Cross-entropy: ``(softmax(out) − onehot(labels)) / m``; mean squared error: ``2 (out − labels) / (m C)``.
    """
    if labels.is_floating_point():
        return (out - labels) * (2.0 * scale / out[0].numel())
    delta = torch.softmax(out, dim=-1) - F.one_hot(labels, out.shape[-1]).to(out.dtype)
    return delta * (scale / labels.shape[1])


def _check_inputs(model: MLP, params: dict[str, torch.Tensor], batch: TaskBatch, algorithm: str | Algorithm,
                  inner_lr: float, inner_steps: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Validate everything up front; returns θ as lists
    ``weights[l] [out, in]`` and ``biases[l] [out]``."""
    if not isinstance(model, MLP):
        raise ValueError(
            f"model must be a fomaml_utils.algorithms.models.MLP for the low-rank path, got {type(model).__name__}; "
            "use implementation='loop' or 'vmap' for other models"
        )
    check_hyperparameters(inner_lr=inner_lr, inner_steps=inner_steps, algorithm=algorithm)
    if not get_algorithm(algorithm).plain_sgd:
        served = ", ".join(name for name in ALGORITHMS if get_algorithm(name).plain_sgd)
        raise ValueError(f"the low-rank path serves the algorithms that take plain SGD steps with one step size "
                         f"({served}), not {get_algorithm(algorithm).name!r}; use implementation='vmap' or 'loop'")
    if not isinstance(batch, TaskBatch):
        raise ValueError(f"batch must be a TaskBatch, got {type(batch).__name__}")
    num_layers = len(model.layers)
    expected = [f"layers.{i}.{kind}" for i in range(num_layers) for kind in ("weight", "bias")]
    if sorted(params) != sorted(expected):
        raise ValueError(f"params must have exactly the keys {expected}, got {sorted(params)}")
    for i, layer in enumerate(model.layers):
        for kind in ("weight", "bias"):
            got, want = params[f"layers.{i}.{kind}"].shape, getattr(layer, kind).shape
            if got != want:
                raise ValueError(f"params['layers.{i}.{kind}'] must have shape {tuple(want)}, got {tuple(got)}")
    num_tasks = batch.support_x.shape[0] if batch.support_x.dim() else 0
    regression = batch.support_y.is_floating_point()
    for split in ("support", "query"):
        x, y = getattr(batch, f"{split}_x"), getattr(batch, f"{split}_y")
        if x.dim() < 3 or x.shape[0] != num_tasks or x.shape[1] == 0 or x[0, 0].numel() != model.in_features:
            raise ValueError(
                f"batch.{split}_x must be [T, n, ...] with T = {num_tasks} tasks, n >= 1 examples and "
                f"{model.in_features} features per example (model.in_features), got shape {tuple(x.shape)}"
            )
        if regression:
            if not y.is_floating_point() or y.shape != (*x.shape[:2], model.out_features):
                raise ValueError(
                    f"batch.{split}_y must be float regression targets [T, n, {model.out_features}] like "
                    f"support_y, got dtype {y.dtype} and shape {tuple(y.shape)}"
                )
            continue
        if y.is_floating_point() or y.is_complex() or y.shape != x.shape[:2]:
            raise ValueError(
                f"batch.{split}_y must be integer class labels [T, n] = {tuple(x.shape[:2])}, got dtype "
                f"{y.dtype} and shape {tuple(y.shape)}"
            )
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= model.out_features:
            raise ValueError(
                f"batch.{split}_y must be labels in 0..{model.out_features - 1} (model.out_features = "
                f"{model.out_features}), got values from {low} to {high}"
            )
    if num_tasks == 0:
        raise ValueError("batch must hold at least one task, got T = 0")
    weights = [params[f"layers.{i}.weight"] for i in range(num_layers)]
    biases = [params[f"layers.{i}.bias"] for i in range(num_layers)]
    return weights, biases
