"""Where a meta-step's time goes, and how fast this machine multiplies matrices (notebook 05).

``time_shares`` runs a function under ``torch.profiler`` and sorts the time spent inside torch's operators
into a few named groups; ``overhead_share`` estimates the share of Python and dispatch overhead by timing
the same code on a network too small to do real arithmetic; ``matmul_throughput`` measures the floating-point
operations per second of one matrix product, the bound the notebook compares meta-steps with. Timings
depend on the machine and its load: compare figures measured in one run, never across machines.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping

import torch
from torch.profiler import ProfilerActivity, profile

from fomaml_utils.companions.memory import native_stderr_silenced

__all__ = ["MATRIX_PRODUCTS", "time_shares", "median_seconds", "matmul_throughput"]

MATRIX_PRODUCTS = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul"})
"""The operators that multiply matrices (``aten::matmul`` only where it does not call one of the others)."""
_ELEMENTWISE_UPDATE = frozenset({"aten::sub", "aten::mul", "aten::add", "aten::sub_", "aten::mul_", "aten::add_"})


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], *, repeats: int = 20, warmup: int = 3,
                   device: torch.device | str | None = None) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones (waiting
    for a CUDA ``device`` to finish each call)."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_throughput(rows: int, inner: int, cols: int, *, repeats: int = 20, dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu") -> float:
    """Floating-point operations per second of ``[rows, inner] × [inner, cols]`` (``2·rows·inner·cols`` per
    product), the median over ``repeats`` products of random matrices."""
    if min(rows, inner, cols) < 1:
        raise ValueError(f"rows, inner and cols must be positive, got {rows}, {inner}, {cols}")
    a = torch.randn(rows, inner, dtype=dtype, device=device)
    b = torch.randn(inner, cols, dtype=dtype, device=device)
    return 2 * rows * inner * cols / median_seconds(lambda: a @ b, repeats=repeats, device=device)


def _has_shape(event, shapes: Iterable[list[int]]) -> bool:
    return any(list(s) in shapes for s in event.input_shapes if isinstance(s, (list, tuple)))


def time_shares(fn: Callable[[], object], params: Mapping[str, torch.Tensor], *,
                in_features: int) -> dict[str, float]:
    """Run ``fn()`` once under ``torch.profiler`` and split the CPU time spent inside torch's operators.

    Returns fractions of that time (they add up to 1 over the first four keys):

    * ``"first layer's products"``: matrix products with a dimension of ``in_features`` (the images);
    * ``"other products"``: the remaining matrix products;
    * ``"weight updates"``: element-wise ``sub``/``mul``/``add`` on tensors shaped like a parameter (the
      inner loop's θ − α∇L, which writes a new copy of every weight);
    * ``"everything else"``: activations, losses, copies, reductions;

    and ``"backward pass"``: the share inside autograd's backward functions (it overlaps the others).
    Operators are attributed by their own (self) time. The profiler slows every call down a little, so use
    the shares, not the absolute times.
    """
    shapes = [list(p.shape) for p in params.values()]
    prof = profile(activities=[ProfilerActivity.CPU], record_shapes=True)
    with native_stderr_silenced():  # the profiler's own start/stop lines go to file descriptor 2
        prof.__enter__()
    try:
        fn()
    finally:
        with native_stderr_silenced():
            prof.__exit__(None, None, None)
    totals = dict.fromkeys(["first layer's products", "other products", "weight updates", "everything else"], 0.0)
    backward = 0.0
    for event in prof.events():
        if event.name.startswith("autograd::engine::evaluate_function") and event.cpu_parent is None:
            backward += event.cpu_time_total
        if event.name in MATRIX_PRODUCTS:
            dims = [d for s in event.input_shapes if isinstance(s, (list, tuple)) for d in s]
            key = "first layer's products" if in_features in dims else "other products"
        elif event.name in _ELEMENTWISE_UPDATE and _has_shape(event, shapes):
            key = "weight updates"
        else:
            key = "everything else"
        totals[key] += event.self_cpu_time_total
    total = sum(totals.values())
    if total <= 0:
        raise ValueError("fn ran no torch operator: nothing to profile")
    shares = {k: v / total for k, v in totals.items()}
    shares["backward pass"] = min(backward / total, 1.0)
    return shares
