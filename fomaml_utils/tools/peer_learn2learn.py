"""learn2learn's MAML wrapper as a benchmark peer, never a dependency of the package.

learn2learn 0.2.0 installs only where its compiled extensions build; its ``MAML`` wrapper, though, is three
pure-Python files. So ``python -m fomaml_utils.tools.bench`` uses the installed package when there is one, and
otherwise loads exactly those three files from the source archive on PyPI (``learn2learn-0.2.0.tar.gz``,
checked against its SHA-256 before any of it runs):

* ``learn2learn/utils/__init__.py`` (``clone_module``, ``update_module``),
* ``learn2learn/algorithms/base_learner.py``,
* ``learn2learn/algorithms/maml.py`` (``MAML``).

``python -m fomaml_utils.tools.peer_learn2learn FOLDER`` downloads the archive into ``FOLDER`` with pip (``make
bench`` does this). ``learn2learn_meta_gradient`` runs FOMAML or MAML the way learn2learn's own examples do:
``learner = maml.clone()``, ``learner.adapt(loss)`` per inner step, and the query loss's ``backward()`` per task.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import subprocess
import sys
import tarfile
import types
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from fomaml_utils.algorithms.losses import output_loss
from fomaml_utils.algorithms.registry import MetaGradient
from fomaml_utils.data.taskbatch import TaskBatch

__all__ = ["SDIST_NAME", "SDIST_SHA256", "DEFAULT_SDIST", "fetch_sdist", "load_learn2learn",
           "learn2learn_meta_gradient"]

VERSION = "0.2.0"
SDIST_NAME = f"learn2learn-{VERSION}.tar.gz"
SDIST_SHA256 = "69f1d7cb0d0a6be7a2c6ad8e83e2ebbe70fb05e51d61e45e63078b40c75ea419"
DEFAULT_SDIST = Path(__file__).resolve().parents[2] / "benchmarks" / ".cache" / SDIST_NAME
MODULES = {  # module name → file inside the archive, in load order
    "learn2learn.utils": "learn2learn/utils/__init__.py",
    "learn2learn.algorithms.base_learner": "learn2learn/algorithms/base_learner.py",
    "learn2learn.algorithms.maml": "learn2learn/algorithms/maml.py",
}

_maml_class: type | None = None


def fetch_sdist(folder: Path) -> Path:
    """Download learn2learn's source archive into ``folder`` with pip (no install, no dependencies) and
    check its SHA-256; returns its path. Does nothing if a checked copy is already there."""
    path = Path(folder) / SDIST_NAME
    if not path.exists():
        Path(folder).mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "--no-build-isolation", f"learn2learn=={VERSION}", "-d", str(folder)], check=True,
                       timeout=300)
    _check_sha256(path.read_bytes(), path)
    return path


def _check_sha256(data: bytes, where: Path) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != SDIST_SHA256:
        raise ValueError(f"{where} has SHA-256 {digest}, not learn2learn {VERSION}'s {SDIST_SHA256}: delete it "
                         "and run `python -m fomaml_utils.tools.peer_learn2learn` again")


def load_learn2learn(sdist: Path | None = None) -> type:
    """learn2learn's ``MAML`` class: from the installed package if it imports, else from ``sdist`` (default
    ``benchmarks/.cache/learn2learn-0.2.0.tar.gz``). Raises ``FileNotFoundError`` saying how to get it."""
    global _maml_class
    if _maml_class is not None:
        return _maml_class
    try:
        from learn2learn.algorithms import MAML  # the installed package, where there is one
        _maml_class = MAML
        return MAML
    except ImportError:
        pass
    sdist = Path(sdist) if sdist is not None else DEFAULT_SDIST
    if not sdist.exists():
        raise FileNotFoundError(f"learn2learn is not installed and {sdist} is missing: run "
                                f"`python -m fomaml_utils.tools.peer_learn2learn {sdist.parent}` "
                                "(make test and make bench do)")
    data = sdist.read_bytes()
    _check_sha256(data, sdist)
    prefix = f"learn2learn-{VERSION}/"
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:  # the very bytes just checked
        sources = {name: archive.extractfile(prefix + member).read() for name, member in MODULES.items()}
    for package in ("learn2learn", "learn2learn.algorithms"):  # empty parents: nothing else is loaded
        module = types.ModuleType(package)
        module.__path__ = []
        sys.modules[package] = module
    for name, source in sources.items():
        module = types.ModuleType(name)
        module.__file__ = f"{sdist}/{MODULES[name]}"
        sys.modules[name] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)  # hash-checked above
    _maml_class = importlib.import_module("learn2learn.algorithms.maml").MAML
    return _maml_class


def learn2learn_meta_gradient(model: nn.Module, params: dict[str, torch.Tensor], batch: TaskBatch, *,
                              algorithm: str, inner_lr: float, inner_steps: int) -> MetaGradient:
    """FOMAML (``first_order=True``) or MAML with learn2learn's ``MAML`` wrapper, one task at a time.

    ``params`` must be ``dict(model.named_parameters())``: the wrapper differentiates the model's own
    parameters, whose ``.grad`` this function uses and then clears. Reptile raises ``ValueError`` (the wrapper
    has none).
    """
    if algorithm not in ("fomaml", "maml"):
        raise ValueError(f"learn2learn's MAML wrapper computes 'fomaml' and 'maml', not {algorithm!r}")
    maml = load_learn2learn()(model, lr=inner_lr, first_order=algorithm == "fomaml")
    for p in params.values():
        p.grad = None
    num_tasks = batch.support_x.shape[0]
    losses, accuracies = [], []
    for sx, sy, qx, qy in zip(*batch):
        learner = maml.clone()
        for _ in range(inner_steps):
            learner.adapt(output_loss(learner(sx), sy))
        out = learner(qx)
        loss = output_loss(out, qy)
        (loss / num_tasks).backward()
        losses.append(loss.detach())
        accuracies.append((out.argmax(-1) == qy).float().mean())
    grads = {k: p.grad for k, p in params.items()}
    for p in params.values():
        p.grad = None
    return MetaGradient(grads, torch.stack(losses).mean(), torch.stack(accuracies).mean())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fomaml_utils.tools.peer_learn2learn",
                                     description="Download learn2learn's source archive for the benchmark.")
    parser.add_argument("folder", type=Path, nargs="?", default=DEFAULT_SDIST.parent)
    args = parser.parse_args(argv)
    print(fetch_sdist(args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
