"""N-way K-shot classification tasks drawn from MNIST.

A *class* is a pair ``(digit, rotation)``: a digit rotated by 90°, 180° or 270° counts as a new class,
as is standard for Omniglot (Santoro et al. 2016; Finn et al. 2017). A task picks ``ways`` distinct
classes, gives them the labels ``0..ways-1`` in random order, and draws ``shots`` support and
``queries`` query images per class, all distinct::

    sampler = FewShotSampler("unseen-digits", "train", ways=5, shots=1, queries=15, seed=0)
    batch = sampler.sample(16)                  # TaskBatch; support_x: [16, 5, 1, 28, 28]
    batch, class_idx = sampler.sample(16, return_classes=True)
    sampler.task_classes(class_idx[0])          # [(3, 90), (0, 0), ...]: the class behind each label

Splits (``SPLITS``) name which classes are for meta-training and which for meta-test; each has three
*parts* drawing on disjoint images:

* ``train``: the meta-training classes, images 0..49,999 of the MNIST training file;
* ``val``:   the meta-test classes, images 50,000..59,999 of the training file. Used only to draw
  monitoring curves during meta-training -- never for meta-training itself, and never as the
  meta-test result;
* ``test``:  the meta-test classes, the 10,000 images of the MNIST test file.

The images of a digit are dealt out round-robin among that digit's rotations in a part, so two classes
never share a source image: no image, in any orientation, appears twice in a task.

Speed. The images are normalised once per MNIST file and shared by all samplers. Rotations are applied
once too, when a sampler is built: each image is turned by the rotation of the class it was dealt to
(one ``torch.rot90`` call per rotation value) into a copy of the file that all samplers of that split
share (+188 MB for the training file, +31 MB for the test file, only for splits with rotations).
Turning the images after sampling instead cost more than the rest of sampling together (5,800 against
14,000 tasks/s, 5-way 1-shot 15-query, meta-batch 16). Sampling then touches index tensors only: class
choice is an ``argsort`` of random keys, image choice keeps the first distinct ones of a few draws with
replacement (vectorised over all (task, class) pairs), and one ``index_select`` gathers the images.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fomaml_utils.data.mnist import default_data_root, load_mnist_tensors, normalize_images
from fomaml_utils.data.taskbatch import TaskBatch
from fomaml_utils.seeding import MAX_SEED

Class = tuple[int, int]
"""A class: ``(digit, rotation in degrees)``, rotation one of 0, 90, 180, 270 (counter-clockwise)."""

PARTS: tuple[str, ...] = ("train", "val", "test")
TRAIN_IMAGES = 50_000
"""Images ``0..TRAIN_IMAGES-1`` of the MNIST training file are for meta-training, the rest for ``val``."""

ROTATIONS: tuple[int, ...] = (0, 90, 180, 270)


@dataclass(frozen=True)
class Split:
    """Which classes are for meta-training and which for meta-validation and meta-test."""

    name: str
    description: str
    train_classes: tuple[Class, ...]
    test_classes: tuple[Class, ...]

    def classes(self, part: str) -> tuple[Class, ...]:
        """The classes of ``part``: ``train_classes`` for "train", ``test_classes`` for "val" and "test"."""
        _check_part(part)
        return self.train_classes if part == "train" else self.test_classes


def _grid(digits: Sequence[int], rotations: Sequence[int]) -> tuple[Class, ...]:
    return tuple((d, r) for d in digits for r in rotations)


SPLITS: dict[str, Split] = {
    s.name: s
    for s in (
        Split(
            "digits",
            "All 10 digits, upright, in every part: meta-train and meta-test share their classes and "
            "differ only in the images. Checks that meta-learning works at all.",
            _grid(range(10), (0,)),
            _grid(range(10), (0,)),
        ),
        Split(
            "unseen-digits",
            "Meta-train on digits 0-6 in four rotations (28 classes), meta-test on digits 7-9 in the "
            "same four rotations (12 classes): test tasks are made of digits never seen in training.",
            _grid(range(7), ROTATIONS),
            _grid(range(7, 10), ROTATIONS),
        ),
        Split(
            "unseen-digits-5",
            "Meta-train on digits 0-4, meta-test on digits 5-9, upright. Kept on purpose as a warning: "
            "with only five training classes every 5-way training task contains the same five classes, "
            "so meta-learning overfits them and transfers poorly to the unseen digits.",
            _grid(range(5), (0,)),
            _grid(range(5, 10), (0,)),
        ),
    )
}

# (resolved data root, train file?) -> (normalised images float32 [N, 1, 28, 28], labels int64 [N]).
# Shared by every sampler so several samplers over the same file hold one copy of the images.
_POOL_CACHE: dict[tuple[str, bool], tuple[torch.Tensor, torch.Tensor]] = {}


# (resolved data root, train file?, split) -> that file's normalised images, each turned by the rotation
# of the class it was dealt to. The parts of a split use disjoint images, so they fill in one shared copy;
# _TURNED_PARTS records which (root, train file?, split, part) are filled in.
_TURNED_CACHE: dict[tuple[str, bool, str], torch.Tensor] = {}
_TURNED_PARTS: set[tuple[str, bool, str, str]] = set()


def _file_key(root: str | Path | None, train: bool) -> tuple[str, bool]:
    return str(Path(root if root is not None else default_data_root()).resolve()), train


def _load_pool(root: str | Path | None, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole MNIST file normalised once: ``(float32 [N, 1, 28, 28], int64 [N])``, cached."""
    key = _file_key(root, train)
    if key not in _POOL_CACHE:
        images, labels = load_mnist_tensors(root, train=train)
        _POOL_CACHE[key] = (normalize_images(images), labels.long())
    return _POOL_CACHE[key]


def _turned_pool(images: torch.Tensor, per_class: Sequence[torch.Tensor], classes: Sequence[Class],
                 key: tuple[str, bool, str, str] | None) -> torch.Tensor:
    """``images`` ``[N, 1, 28, 28]`` with the images of each class turned by its rotation.

    ``per_class[c]`` indexes the images of ``classes[c]``. Without rotations this is ``images`` itself;
    otherwise a copy, cached under ``key[:3]`` and filled in for part ``key[3]`` (``None``: not cached).
    """
    turns = sorted({r for _, r in classes} - {0})
    if not turns:
        return images
    if key is None:
        pool = images.clone()
    else:
        if key[:3] not in _TURNED_CACHE:
            _TURNED_CACHE[key[:3]] = images.clone()
        pool = _TURNED_CACHE[key[:3]]
        if key in _TURNED_PARTS:
            return pool
    for r in turns:
        idx = torch.cat([ix for ix, (_, rotation) in zip(per_class, classes) if rotation == r])
        pool[idx] = torch.rot90(images[idx], r // 90, dims=(-2, -1))  # counter-clockwise
    if key is not None:
        _TURNED_PARTS.add(key)
    return pool


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise ValueError(f"part={part!r} is unknown; use one of {', '.join(map(repr, PARTS))}")


def _integer(value: object) -> int | None:
    """``value`` as a Python int if it is an integer (also numpy's and torch's integer scalars, through
    ``operator.index``); ``None`` for anything else, bools included (``True`` is no count)."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _check_positive(name: str, value: object) -> int:
    """``value`` as an int, or ``ValueError`` unless it is an integer >= 1."""
    number = _integer(value)
    if number is None or number < 1:
        raise ValueError(f"{name} must be a positive integer (at least 1), got {value!r}")
    return number


def _check_seed(seed: object) -> int:
    """``seed`` as an int, or ``ValueError`` unless it is an integer in ``0..MAX_SEED`` (torch's range)."""
    number = _integer(seed)
    if number is None or not 0 <= number <= MAX_SEED:
        raise ValueError(f"seed must be a non-negative integer up to 2**64 - 1 = {MAX_SEED}, got {seed!r}")
    return number


def _check_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device``, or ``ValueError`` if this machine has no such device (``"cuda"``
    without a GPU), so that a sampler fails when it is built, not at its first ``sample``."""
    try:
        device = torch.device(device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, NotImplementedError, TypeError) as error:
        reason = str(error).strip().splitlines()[0].split(". ")[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"device={str(device)!r} is not available here: {reason}; use device='cpu'") from None
    return device


def _check_arguments(ways: object, shots: object, queries: object, seed: object,
                     device: torch.device | str) -> tuple[int, int, int, int, torch.device]:
    """A sampler's numbers as Python ints and its device, checked before any data is loaded."""
    counts = [_check_positive(name, value) for name, value in (("ways", ways), ("shots", shots), ("queries", queries))]
    return (*counts, _check_seed(seed), _check_device(device))


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch ops on one thread inside the block, then restore the thread count.

    Sampling is small copies: two threads gain little on an idle machine, and on a busy one every
    parallel op waits for the descheduled thread (measured under load: 1.1 ms on one thread against
    4.2 ms on two for ``sample(16)``, 5-way 1-shot 15-query).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _describe(c: Class) -> str:
    return f"(digit {c[0]}, {c[1]}°)"


class FewShotSampler:
    """Draws batches of ``ways``-way ``shots``-shot tasks with ``queries`` query images per class.

    Args:
        split:   a key of ``SPLITS``: "digits", "unseen-digits" or "unseen-digits-5".
        part:    "train", "val" or "test" (see the module docstring for which images each uses).
        ways:    classes per task, at most the number of classes in the part.
        shots:   support images per class.
        queries: query images per class; ``shots + queries`` must not exceed the smallest class.
        root:    MNIST data directory (default: ``fomaml_utils.data.mnist.default_data_root()``).
        seed:    seeds the sampler's own ``torch.Generator``; same seed, same tasks. The global RNG is
                 neither used nor advanced.
        device:  where the returned tensors live (sampling itself runs on the CPU).

    ``sample(T)`` returns a ``TaskBatch`` laid out *label-major*: ``support_x[t]`` holds the ``shots``
    images of label 0, then those of label 1, and so on (likewise the query). Labels are assigned to
    the task's classes at random, independently per task.

    Attributes:
        classes: the part's classes, a list of ``(digit, rotation)``; ``sample(..., return_classes=True)``
                 returns indices into it.
        images:  the image pool ``[N, 1, 28, 28]`` that ``sample_indices`` indexes into: normalised, and
                 each image already turned by its class's rotation (for a named split, the whole MNIST
                 training or test file; shared with the other samplers of the split).
    """

    def __init__(
        self,
        split: str,
        part: str,
        ways: int,
        shots: int,
        queries: int,
        *,
        root: str | Path | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ):
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is unknown; known splits: {', '.join(map(repr, SPLITS))}")
        _check_part(part)
        classes = SPLITS[split].classes(part)
        ways, shots, queries, seed, device = _check_arguments(ways, shots, queries, seed, device)
        images, labels = _load_pool(root, train=part != "test")  # only now: the slow part
        candidates = torch.arange(len(labels))
        if part == "train":
            candidates = candidates[:TRAIN_IMAGES]
        elif part == "val":
            candidates = candidates[TRAIN_IMAGES:]
        self._setup(images, labels, candidates, classes, ways, shots, queries, seed, device,
                    source=f"split {split!r} part {part!r}",
                    key=(*_file_key(root, part != "test"), split, part))
        self.split: str | None = split
        self.part: str | None = part

    @classmethod
    def from_tensors(
        cls,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: Sequence[Class],
        ways: int,
        shots: int,
        queries: int,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> "FewShotSampler":
        """A sampler over given images, for tests and notebooks.

        Args:
            images:  uint8 ``[N, 28, 28]`` raw pixels; normalised like MNIST.
            labels:  int ``[N]``, the digit of each image.
            classes: the ``(digit, rotation)`` pairs to draw tasks from; digits refer to ``labels``.
        """
        if (not isinstance(images, torch.Tensor) or images.dtype != torch.uint8
                or images.shape[1:] != (28, 28)):
            got = f"{images.dtype} {list(images.shape)}" if isinstance(images, torch.Tensor) else type(images)
            raise ValueError(f"images must be a uint8 tensor [N, 28, 28], got {got}")
        if (not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1]
                or labels.is_floating_point()):
            raise ValueError(f"labels must be an integer tensor [N] with N={len(images)} like images")
        classes = tuple((int(d), int(r)) for d, r in classes)
        ways, shots, queries, seed, device = _check_arguments(ways, shots, queries, seed, device)
        sampler = cls.__new__(cls)
        sampler._setup(normalize_images(images), labels.long().cpu(), torch.arange(len(labels)), classes,
                       ways, shots, queries, seed, device, source="the class list given to from_tensors",
                       key=None)
        sampler.split = None
        sampler.part = None
        return sampler

    def _setup(self, images: torch.Tensor, labels: torch.Tensor, candidates: torch.Tensor,
               classes: Sequence[Class], ways: int, shots: int, queries: int, seed: int,
               device: torch.device | str, source: str, key: tuple[str, bool, str, str] | None) -> None:
        """Validate the classes, build the padded index table ``[C, max_count]``, turn the images.

        ``ways``, ``shots``, ``queries``, ``seed`` and ``device`` come checked by ``_check_arguments``.
        """
        if len(classes) == 0:
            raise ValueError("classes must not be empty")
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes must be distinct, got {list(classes)}")
        bad = [c for c in classes if c[1] not in ROTATIONS]
        if bad:
            raise ValueError(f"classes: rotation must be one of {ROTATIONS} degrees, got {bad}")
        if ways > len(classes):
            raise ValueError(f"ways={ways} but {source} has only {len(classes)} classes")

        # Deal each digit's candidate images round-robin among its rotations: disjoint image sets.
        per_class: list[torch.Tensor] = []
        for digit, rotation in classes:
            rotations = [r for d, r in classes if d == digit]
            of_digit = candidates[labels[candidates] == digit]
            per_class.append(of_digit[rotations.index(rotation) :: len(rotations)])
        counts = torch.tensor([len(ix) for ix in per_class])
        smallest = int(counts.argmin())
        if shots + queries > counts[smallest]:
            raise ValueError(
                f"shots+queries={shots + queries} (shots={shots}, queries={queries}) but the smallest "
                f"class in {source}, {_describe(classes[smallest])}, has only {int(counts[smallest])} images"
            )
        table = torch.zeros(len(classes), int(counts.max()), dtype=torch.long)
        for c, ix in enumerate(per_class):
            table[c, : len(ix)] = ix

        self.images = _turned_pool(images, per_class, classes, key)
        self.classes: list[Class] = list(classes)
        self.class_counts = counts
        self.ways, self.shots, self.queries, self.seed = ways, shots, queries, seed
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self._table = table
        self._flat = self.images.view(len(self.images), -1)  # [N, 784]: index_select is fastest in 2-D

    def __repr__(self) -> str:
        where = f"split={self.split!r}, part={self.part!r}" if self.split else "from_tensors"
        return (f"FewShotSampler({where}, ways={self.ways}, shots={self.shots}, queries={self.queries}, "
                f"classes={len(self.classes)}, seed={self.seed})")

    def sample_indices(self, num_tasks: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw tasks as indices, advancing the sampler's generator exactly as ``sample`` does.

        Returns:
            class_idx: int64 ``[T, ways]``, indices into ``self.classes``; column ``i`` is label ``i``.
            image_idx: int64 ``[T, ways, shots + queries]``, indices into ``self.images``; the first
                       ``shots`` of each row are the support images, the rest the query images.
                       All ``ways * (shots + queries)`` indices of a task are distinct.
        """
        num_tasks = _check_positive("num_tasks", num_tasks)
        # Distinct classes in random order: the first `ways` of a random permutation per task.
        keys = torch.rand(num_tasks, len(self.classes), generator=self.generator, dtype=torch.float64)
        class_idx = keys.argsort(dim=1)[:, : self.ways]
        n = self.class_counts[class_idx].reshape(-1)  # size of each chosen class, [T*ways]
        pos = self._distinct_positions(n, self.shots + self.queries)
        image_idx = self._table[class_idx.reshape(-1, 1), pos].view(num_tasks, self.ways, -1)
        return class_idx, image_idx

    def _distinct_positions(self, n: torch.Tensor, m: int) -> torch.Tensor:
        """``[R, m]``: per row ``r``, ``m`` distinct positions in ``0..n[r]-1`` in uniformly random order.

        Draws ``2m`` positions with replacement and keeps the first ``m`` distinct ones in draw order,
        which is exactly sampling without replacement (given that ``m`` distinct ones came up; by
        symmetry every ordered ``m``-tuple stays equally likely). Rows short of ``m`` distinct draws --
        likely only when ``m`` is close to ``n[r]`` -- are drawn again: the ``m`` smallest of random keys
        over the row's ``n[r]`` positions.
        """
        g, rows, width = self.generator, len(n), self._table.shape[1]
        limit = n.unsqueeze(1)
        draws = (torch.rand(rows, 2 * m, generator=g, dtype=torch.float64) * limit).long().minimum(limit - 1)
        values, order = draws.sort(dim=1, stable=True)  # equal values stay in draw order
        first = torch.ones_like(values, dtype=torch.bool)
        first[:, 1:] = values[:, 1:] != values[:, :-1]
        first = torch.empty_like(first).scatter_(1, order, first)  # back to draw order
        pos = draws.gather(1, (~first).to(torch.uint8).argsort(dim=1, stable=True)[:, :m])
        short = (first.sum(dim=1) < m).nonzero().squeeze(1)
        if len(short):
            keys = torch.rand(len(short), width, generator=g)
            keys.masked_fill_(torch.arange(width) >= limit[short], 2.0)  # padding never wins
            pos[short] = keys.topk(m, dim=1, largest=False).indices
        return pos

    def sample(
        self, num_tasks: int, return_classes: bool = False
    ) -> TaskBatch | tuple[TaskBatch, torch.Tensor]:
        """Draw ``num_tasks`` tasks.

        Returns a ``TaskBatch`` with ``support_x`` float32 ``[T, ways*shots, 1, 28, 28]``, ``support_y``
        int64 ``[T, ways*shots]``, ``query_x`` ``[T, ways*queries, 1, 28, 28]``, ``query_y``
        ``[T, ways*queries]``, label-major. With ``return_classes=True`` also ``class_idx`` int64
        ``[T, ways]``: label ``i`` of task ``t`` is class ``self.classes[class_idx[t, i]]``.
        """
        num_tasks = _check_positive("num_tasks", num_tasks)
        with _one_thread():
            return self._sample(num_tasks, return_classes)

    def _sample(self, num_tasks: int, return_classes: bool) -> TaskBatch | tuple[TaskBatch, torch.Tensor]:
        class_idx, image_idx = self.sample_indices(num_tasks)
        batch = TaskBatch(
            self._gather(image_idx[..., : self.shots]),
            torch.arange(self.ways).repeat_interleave(self.shots).repeat(num_tasks, 1),
            self._gather(image_idx[..., self.shots :]),
            torch.arange(self.ways).repeat_interleave(self.queries).repeat(num_tasks, 1),
        )
        if self.device.type != "cpu":
            batch = batch.to(self.device)
        return (batch, class_idx.to(self.device)) if return_classes else batch

    def _gather(self, image_idx: torch.Tensor) -> torch.Tensor:
        """Images ``[T, ways*k, 1, 28, 28]`` for indices ``[T, ways, k]``, label-major."""
        T, ways, k = image_idx.shape
        x = self._flat.index_select(0, image_idx.reshape(-1))
        return x.view(T, ways * k, *self.images.shape[1:])

    def class_image_indices(self, class_index: int) -> torch.Tensor:
        """Indices into ``self.images`` of all images class ``class_index`` draws from, int64 ``[count]``."""
        return self._table[class_index, : int(self.class_counts[class_index])].clone()

    def task_classes(self, class_idx: torch.Tensor) -> list[Class]:
        """The ``(digit, rotation)`` behind each label of one task, from a row ``class_idx[t]`` ``[ways]``."""
        if class_idx.dim() != 1:
            raise ValueError(f"class_idx must be one task's row [ways], got shape {list(class_idx.shape)}")
        return [self.classes[i] for i in class_idx.tolist()]
