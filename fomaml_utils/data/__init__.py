"""Data layer: MNIST on disk, few-shot tasks drawn from it, and the batch every sampler returns.

- ``mnist``: the real MNIST built offline from a hash-pinned source, and its preprocessing.
- ``tasks``: N-way K-shot tasks (``FewShotSampler``) over the splits of the digit classes.
- ``taskbatch``: ``TaskBatch``, the support and query tensors of a batch of tasks.

The names of ``tasks`` and ``taskbatch`` are imported on first use: they import torch, which takes
seconds, and ``python -m fomaml_utils.data.mnist`` must stay fast when the data is already there.
"""

from fomaml_utils.data.mnist import CLASS_COUNTS, MNIST_MEAN, MNIST_STD, load_mnist, normalize_images

__all__ = [
    "CLASS_COUNTS", "MNIST_MEAN", "MNIST_STD", "load_mnist", "normalize_images",
    "FewShotSampler", "SPLITS", "TRAIN_IMAGES", "TaskBatch",
]

_FROM_TASKS = ("FewShotSampler", "SPLITS", "TRAIN_IMAGES")


def __getattr__(name: str):
    if name in _FROM_TASKS:
        from fomaml_utils.data import tasks
        return getattr(tasks, name)
    if name == "TaskBatch":
        from fomaml_utils.data.taskbatch import TaskBatch
        return TaskBatch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
