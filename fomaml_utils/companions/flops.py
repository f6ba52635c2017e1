r"""Floating-point operations of one FOMAML meta-gradient for an MLP, in its dense and its low-rank form.

Counted as ``torch.utils.flop_counter.FlopCounterMode`` counts them: matrix products only (``mm``,
``addmm``, ``bmm``, ``baddbmm``), ``2·a·b·c`` for an ``[a, b] × [b, c]`` product; element-wise work
(activations, softmax, bias sums, the SGD update itself) is left out. ``tests/test_flops.py`` checks
both formulas against that counter run on ``meta_gradient(..., implementation="loop")`` and
``fomaml_utils.algorithms.mlp_lowrank``.

Notation: layer widths ``d₀, …, d_L`` (``d₀`` inputs, ``d_L`` classes), ``T`` tasks, ``n`` support and
``m`` query examples per task, ``k`` inner steps, ``S = Σ_l d_{l-1} d_l`` (the weights' entries).

**Dense** (the per-task loop, and ``vmap``, which runs the same products batched over tasks): an inner
step is a forward pass (``2nS``), the weight gradients (``2nS``) and the input gradients of every layer
but the first (``2n(S − d₀d₁)``, the images need none); the query pass costs the same with ``m``:

.. math::  T\,\big[k\,(6nS - 2n d_0 d_1) + (6mS - 2m d_0 d_1)\big].

**Low-rank** (``fomaml_utils.algorithms.mlp_lowrank``): the first layer's ``x W₀ᵀ`` once per image, a kernel
``x X_sᵀ`` per task, and per step products of rank ``r = n·(steps taken)`` instead of per-task weights;
the terms are listed in ``lowrank_fomaml_flops``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["dense_fomaml_flops", "lowrank_fomaml_flops", "adapted_weight_floats", "FORMS", "check_shape"]

FORMS: tuple[str, ...] = ("loop", "vmap", "lowrank")
"""The three forms of the inner loop: one task at a time, all tasks batched by ``vmap``, low-rank."""


def check_shape(widths: Sequence[int], tasks: int, support: int, query: int, inner_steps: int) -> None:
    """Raise ``ValueError`` unless the widths (at least two) and the sizes are positive integers (steps ≥ 0)."""
    if len(widths) < 2 or any(int(d) != d or d < 1 for d in widths):
        raise ValueError(f"widths must be at least two positive integers (inputs, ..., classes), got {list(widths)}")
    for name, value in (("tasks", tasks), ("support", support), ("query", query)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if int(inner_steps) != inner_steps or inner_steps < 0:
        raise ValueError(f"inner_steps must be an integer >= 0, got {inner_steps!r}")


def dense_fomaml_flops(widths: Sequence[int], tasks: int, support: int, query: int, inner_steps: int) -> int:
    """Matrix-product flops of one FOMAML meta-gradient with a dense copy of the weights per task.

    widths: ``[d₀, …, d_L]``, e.g. ``[784, 256, 128, 5]``; tasks ``T``, support ``n`` and query ``m``
    examples per task, ``inner_steps`` ``k``. The same for the per-task loop and for ``vmap``.
    """
    check_shape(widths, tasks, support, query, inner_steps)
    weights = sum(a * b for a, b in zip(widths, widths[1:]))
    first = widths[0] * widths[1]

    def one_pass(rows: int) -> int:  # forward, weight gradients, input gradients past the first layer
        return 6 * rows * weights - 2 * rows * first

    return tasks * (inner_steps * one_pass(support) + one_pass(query))


def lowrank_fomaml_flops(widths: Sequence[int], tasks: int, support: int, query: int, inner_steps: int) -> int:
    """Matrix-product flops of one FOMAML meta-gradient in low-rank form (``fomaml_utils.algorithms.mlp_lowrank``).

    Arguments as for ``dense_fomaml_flops``. With ``r = n·j`` after ``j`` steps, per task:

    * once: ``x W₀ᵀ`` for every support and query image, ``2(n + m) d₀ d₁``; the kernels ``X_s X_sᵀ`` and
      ``X_q X_sᵀ``, ``2(n + m) n d₀``;
    * inner step ``j = 0, …, k−1``, for every layer ``l ≥ 2``: ``h Wᵀ`` and ``δ W`` as in the dense form
      (``4 n d_{l-1} d_l``), and once ``j ≥ 1`` the corrections ``(h Hᵀ) D`` and ``(δ Dᵀ) H``
      (``4 n r (d_{l-1} + d_l)``); for the first layer ``K A`` (``2 n n d₁``) once ``j ≥ 1``;
    * query: the same forward and backward with ``m`` rows and ``r = nk``, then the weight gradients
      ``Σ_tasks Δᵀ x`` (``2 m S``, as dense).
    """
    check_shape(widths, tasks, support, query, inner_steps)
    d, n, m, k = list(widths), support, query, inner_steps
    deeper = list(zip(d[1:], d[2:]))  # (d_{l-1}, d_l) of layers l >= 2

    def pass_(rows: int, rank: int) -> int:  # forward and backward through θ′ at `rank` stacked updates
        flops = 2 * rows * n * d[1] if rank else 0
        for a, b in deeper:
            flops += 4 * rows * a * b + (4 * rows * rank * (a + b) if rank else 0)
        return flops

    once = 2 * (n + m) * d[0] * d[1] + 2 * (n + m) * n * d[0]
    steps = sum(pass_(n, n * j) for j in range(k))
    query_grads = 2 * m * sum(a * b for a, b in zip(d, d[1:]))
    return tasks * (once + steps + pass_(m, n * k) + query_grads)


def adapted_weight_floats(widths: Sequence[int], tasks: int, support: int, inner_steps: int, form: str) -> int:
    """How many numbers hold the adapted weights θ′ at the end of the inner loop, in each form.

    ``"loop"``: one task's dense copy of every weight and bias at a time; ``"vmap"``: a dense copy per task,
    all ``T`` at once; ``"lowrank"``: per task, the first layer's ``A`` ``[n, d₁]`` and, for every deeper
    layer, its stacked inputs ``H`` ``[nk, d_{l-1}]`` and gradients ``D`` ``[nk, d_l]`` (θ itself is shared).
    """
    check_shape(widths, tasks, support, 1, inner_steps)
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    params = sum(a * b + b for a, b in zip(widths, widths[1:]))
    if form == "loop":
        return params
    if form == "vmap":
        return tasks * params
    if inner_steps == 0:
        return 0
    rank = support * inner_steps
    return tasks * (support * widths[1] + sum(rank * (a + b) for a, b in zip(widths[1:], widths[2:])))
