"""One place that seeds every random number generator the series uses."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

MAX_SEED = 2**64 - 1
"""The largest seed ``torch.manual_seed`` accepts (it stores seeds as unsigned 64-bit integers)."""


def seed_everything(seed: int, deterministic: bool = True, threads: int | None = None) -> torch.Generator:
    """Seed Python, NumPy and torch, and (by default) make torch deterministic.

    Returns a ``torch.Generator`` seeded with ``seed`` for code that wants its own stream.
    Deterministic mode makes torch raise on operations that have no deterministic
    implementation rather than silently giving run-to-run differences.

    ``threads`` fixes torch's intra-op thread count. Results depend on it (it changes the order of
    floating-point sums, and meta-training amplifies such differences), so the notebooks fix it (to one
    thread). ``None`` leaves it as it is.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be a non-negative integer up to 2**64 - 1 = {MAX_SEED}, got {seed!r}")
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # Needed by cuBLAS for deterministic matrix products on GPUs; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return torch.Generator().manual_seed(seed)
