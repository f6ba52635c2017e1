"""Two ways to measure how much memory a computation needs, for tests, benchmarks and tables.

``saved_tensor_bytes`` counts the tensors autograd keeps for the backward pass. It is exact and
deterministic (the same on every machine and run), and it is the quantity that separates the
algorithms: second-order MAML keeps every inner step's activations alive until the meta-backward,
first-order MAML (FOMAML) and Reptile do not.

``peak_memory_bytes`` is the allocator's view: the peak of all bytes allocated while ``fn`` runs
(activations, gradients, temporaries), on CUDA from the caching allocator's statistics and on CPU
from the profiler's allocation events. It depends on the torch build, kernels and threads, so use it
for tables and rough comparisons, and ``saved_tensor_bytes`` for tests. On the CPU the profiler's C++
side prints timestamped ``profiler_start``/``profiler_stop`` lines and a GPU-probe error straight to file
descriptor 2 (past Python's ``sys.stderr``, so into terminals and notebook outputs), and while ``fn``
runs the CPU allocator may warn there that a block freed was "allocated before the profiling started";
``peak_memory_bytes`` drops exactly those lines and passes on everything else ``fn`` writes.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch.profiler import ProfilerActivity, profile

R = TypeVar("R")

__all__ = ["saved_tensor_bytes", "peak_memory_bytes", "native_stderr_silenced"]


class _LiveSavedBytes:
    """Reference-counts the storages of tensors autograd has saved and that are still alive."""

    def __init__(self) -> None:
        self.refcount: dict[tuple[str, int, int], int] = {}
        self.live = 0
        self.peak = 0

    def add(self, key: tuple[str, int, int]) -> None:
        if self.refcount.get(key, 0) == 0:
            self.live += key[2]
            self.peak = max(self.peak, self.live)
        self.refcount[key] = self.refcount.get(key, 0) + 1

    def remove(self, key: tuple[str, int, int]) -> None:
        self.refcount[key] -= 1
        if self.refcount[key] == 0:
            del self.refcount[key]
            self.live -= key[2]


class _Packed:
    """What autograd stores instead of a saved tensor; its death means the graph let go of it."""

    __slots__ = ("tensor", "key", "counter")

    def __init__(self, tensor: torch.Tensor, counter: _LiveSavedBytes) -> None:
        storage = tensor.untyped_storage()
        self.tensor = tensor
        self.key = (str(tensor.device), storage.data_ptr(), storage.nbytes())
        self.counter = counter
        counter.add(self.key)

    def __del__(self) -> None:
        self.counter.remove(self.key)


def saved_tensor_bytes(fn: Callable[..., R], *args: Any, **kwargs: Any) -> tuple[R, int]:
    """Run ``fn(*args, **kwargs)`` and return ``(result, bytes)``.

    ``bytes`` is the peak, over the run, of the total size of the distinct storages that autograd
    holds saved for a backward pass (via ``torch.autograd.graph.saved_tensors_hooks``). A storage
    saved several times (a weight used by many ops, views of one tensor) counts once; a saved tensor
    stops counting when the graph that saved it is freed (e.g. by ``torch.autograd.grad`` without
    ``retain_graph``). Parameters saved by the graph count too, so the number is never zero for a
    network that needs a backward pass. Tensors created without autograd recording (``no_grad``,
    or ops whose backward needs no inputs) do not count. Graphs still alive when ``fn`` returns
    (e.g. one attached to its result) are included in the peak.
    """
    counter = _LiveSavedBytes()

    def pack(tensor: torch.Tensor) -> _Packed:
        return _Packed(tensor, counter)

    def unpack(packed: _Packed) -> torch.Tensor:
        return packed.tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        try:
            result = fn(*args, **kwargs)
        except RuntimeError as error:
            if "saved tensor hooks" not in str(error):
                raise
            raise ValueError(
                "saved_tensor_bytes cannot see inside torch.func transforms (grad, vmap): measure a "
                "code path without them, e.g. meta_gradient(..., implementation=\"loop\")") from None
    return result, counter.peak


def peak_memory_bytes(fn: Callable[..., R], *args: Any, device: torch.device | str | None = None,
                      **kwargs: Any) -> tuple[R, int]:
    """Run ``fn(*args, **kwargs)`` and return ``(result, peak bytes allocated above the start)``.

    ``device`` is this function's own keyword (where to measure), not passed on to ``fn``; to give
    ``fn`` a ``device`` argument, bind it first with ``functools.partial``.

    CUDA (``device`` a CUDA device, or ``None`` when CUDA is available): ``torch.cuda.max_memory_allocated``
    after resetting the peak statistics, minus what was allocated before the call.

    CPU: ``torch.profiler.profile(profile_memory=True)`` records every allocation and free made by
    torch's CPU allocator (from any thread, including autograd's); we replay them in time order and
    return the highest running total. Limits: memory allocated outside torch's allocator (Python
    objects, NumPy arrays, oneDNN scratch space) is invisible; tensors allocated before the call
    and freed inside it make the running total dip below zero, which can hide their reuse; the
    profiler slows ``fn`` down, so do not time the same call. The number can vary slightly between
    torch versions and thread counts.
    """
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn(*args, **kwargs)
        torch.cuda.synchronize(device)
        return result, int(torch.cuda.max_memory_allocated(device) - before)
    if device.type != "cpu":
        raise ValueError(f"device must be 'cpu' or a CUDA device, got {device}")
    with _cpu_memory_profile() as prof:
        result = fn(*args, **kwargs)
    events = [
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    ]
    live = peak = 0
    for _, nbytes in sorted(events):
        live += nbytes
        peak = max(peak, live)
    return result, int(peak)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Drop whatever is written to file descriptor 2 (by C++ code or Python) inside the block.

    Python's ``sys.stderr`` is flushed first, so nothing written before the block is lost. If the
    process has no file descriptor 2 the block runs unchanged.
    """
    with _native_stderr_filtered(None):
        yield


_ALLOCATOR_NOTICE = re.compile(rb"allocated before the profiling started")


@contextlib.contextmanager
def _native_stderr_filtered(drop: re.Pattern[bytes] | None) -> Iterator[None]:
    """Hold back what is written to file descriptor 2 inside the block; afterwards write back every line
    that does not match ``drop`` (``None``: drop everything), in order, when the block ends."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # fd 2 closed: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if drop is not None:
                held.seek(0)
                kept = [line for line in held.read().splitlines(keepends=True) if not drop.search(line)]
                if kept:
                    os.write(2, b"".join(kept))


@contextlib.contextmanager
def _cpu_memory_profile() -> Iterator[profile]:
    """torch's CPU profiler recording allocations, started and stopped with file descriptor 2 silenced.

    Only the start and the stop are silenced (that is where the profiler prints); inside the block
    only the allocator's "allocated before the profiling started" lines are dropped, so the block's own
    output, Python warnings and exception tracebacks stay visible.
    """
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with native_stderr_silenced():
        prof.__enter__()
    try:
        with _native_stderr_filtered(_ALLOCATOR_NOTICE):
            yield prof
    finally:
        with native_stderr_silenced():
            prof.__exit__(None, None, None)
