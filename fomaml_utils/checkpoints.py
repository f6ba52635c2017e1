"""Save a meta-learned initialisation with what produced it, and load it back safely.

A checkpoint is one ``torch.save`` file holding a plain dict::

    {"format": 1, "spec": model_spec(model), "state_dict": {...tensors...}, "metadata": {...}}

``metadata`` is whatever the caller passes (split, algorithm, hyperparameters, ``History.to_dict()``, ...),
restricted to plain types so that loading works with ``torch.load(weights_only=True)``, which never
runs code from the file.

Usage::

    save_checkpoint("checkpoints/fomaml_mlp.pt", model, split="unseen-digits", algorithm="fomaml",
                    inner_lr=0.4, history=history)
    model, metadata = load_checkpoint("checkpoints/fomaml_mlp.pt", expected_arch="mlp")
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fomaml_utils.models import model_from_spec, model_spec

__all__ = ["save_checkpoint", "load_checkpoint", "FORMAT"]

FORMAT = 1


def _plain(value: Any, where: str) -> Any:
    """``value`` with dataclass-like objects (``.to_dict()``) and tuples turned into dicts and lists.

    Raises ``ValueError`` naming ``where`` for anything ``torch.load(weights_only=True)`` could not read back.
    """
    if hasattr(value, "to_dict") and callable(value.to_dict):
        value = value.to_dict()
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value.detach().cpu().clone() if isinstance(value, torch.Tensor) else value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError(f"metadata {where} must have string keys, got {list(value)!r}")
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise ValueError(f"metadata {where} must be None, a bool, number, string, tensor, list or dict "
                     f"(or have .to_dict()), got {type(value).__name__}")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **metadata: Any) -> Path:
    """Write ``model``'s weights, architecture and ``metadata`` to ``path``; returns the path.

    Parent directories are created. The file is written to a temporary name and renamed, so an
    interrupted save never leaves a half-written checkpoint behind. Objects with a ``to_dict()``
    method (``History``, ``Evaluation``) are stored as their dicts.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "spec": model_spec(model),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": {k: _plain(v, k) for k, v in metadata.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(path: str | os.PathLike, expected_arch: str | None = None,
                    map_location: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path`` and return ``(model, metadata)``.

    Loads with ``torch.load(weights_only=True)``. ``expected_arch`` (``"mlp"``, ``"mlp2"``, ``"cnn"``):
    if given and the checkpoint holds a different architecture, raise ``ValueError`` saying which
    it holds. The model comes back on ``map_location`` (default CPU).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a checkpoint file (it does not exist)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - unpickling errors come in many types
        raise ValueError(f"path {str(path)!r} could not be read as a checkpoint: {error}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "spec" not in payload:
        raise ValueError(f"path {str(path)!r} is not a checkpoint written by save_checkpoint (format {FORMAT})")
    spec = payload["spec"]
    if expected_arch is not None and spec.get("arch") != expected_arch:
        held = spec.get("arch") or f"a custom {spec.get('class')}"
        raise ValueError(f"checkpoint {str(path)!r} holds architecture {held!r} ({spec}), "
                         f"but expected_arch is {expected_arch!r}")
    model = model_from_spec(spec)
    model.load_state_dict(payload["state_dict"])
    return model.to(map_location), payload["metadata"]
