"""Data layer: MNIST on disk, few-shot tasks drawn from it, and the batch every sampler returns.

- ``mnist``: the real MNIST built offline from a hash-pinned source, and its preprocessing.
- ``tasks``: N-way K-shot tasks (``FewShotSampler``) over the splits of the digit classes.
- ``taskbatch``: ``TaskBatch``, the support and query tensors of a batch of tasks.

The names below are imported from their module on first use, not when this package is imported:
``python -m fomaml_utils.data.mnist`` must not import torch (seconds; the command returns in a fraction of
one when the data is there), nor find its own module imported already (runpy warns, and runs it twice).
"""

import importlib

_SOURCES = {
    "mnist": ("CLASS_COUNTS", "MNIST_MEAN", "MNIST_STD", "load_mnist", "normalize_images"),
    "tasks": ("FewShotSampler", "SPLITS", "TRAIN_IMAGES"),
    "taskbatch": ("TaskBatch",),
}

__all__ = [name for names in _SOURCES.values() for name in names]


def __getattr__(name: str):
    for module, names in _SOURCES.items():
        if name in names:
            return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
