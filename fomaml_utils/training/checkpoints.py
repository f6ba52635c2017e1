"""Save a meta-learned initialisation with what produced it, and load it back safely.

A checkpoint is one ``torch.save`` file holding a plain dict::

    {"format": 2, "spec": model_spec(model), "state_dict": {...tensors...}, "metadata": {...},
     "digest": "<SHA-256 of the spec and of every tensor's name, dtype, shape and bytes>"}

plus ``"meta_state": {...tensors...}`` when the algorithm meta-learns more than the weights (Meta-SGD's
step sizes); its tensors are in the digest too, under the names ``meta_state.<name>``.

``torch.load`` does not check the archive's CRCs, so a flipped byte in a tensor would load silently as a
wrong weight; loading recomputes the digest and refuses a file whose tensors do not match it. Format 1
(without a digest) is still read, with a warning that it cannot be verified.

``metadata`` is whatever the caller passes (split, algorithm, hyperparameters, ``History.to_dict()``, ...),
restricted to plain types so that loading works with ``torch.load(weights_only=True)``, which never
runs code from the file.

Usage::

    save_checkpoint("checkpoints/fomaml_mlp.pt", model, split="unseen-digits", algorithm="fomaml",
                    inner_lr=0.4, history=history)
    model, metadata = load_checkpoint("checkpoints/fomaml_mlp.pt", expected_arch="mlp")
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fomaml_utils.algorithms.models import model_from_spec, model_spec

__all__ = ["save_checkpoint", "load_checkpoint", "FORMAT"]

FORMAT = 2
READABLE_FORMATS = (1, 2)


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


def tensors_digest(spec: dict, state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of ``spec`` and of each tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256(repr(sorted(spec.items())).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _digested(state_dict: dict[str, torch.Tensor], meta_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**state_dict, **{f"meta_state.{k}": v for k, v in meta_state.items()}}


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *,
                    meta_state: dict[str, torch.Tensor] | None = None, **metadata: Any) -> Path:
    """Write ``model``'s weights, architecture, the algorithm's ``meta_state`` (if any) and ``metadata`` to
    ``path``; returns the path.

    Parent directories are created. The file is written to a temporary name and renamed, so an
    interrupted save never leaves a half-written checkpoint behind. Objects with a ``to_dict()``
    method (``History``, ``Evaluation``) are stored as their dicts.
    """
    path = Path(path)
    spec = model_spec(model)
    state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    extra = {k: v.detach().cpu().clone() for k, v in (meta_state or {}).items()}
    payload = {
        "format": FORMAT,
        "spec": spec,
        "state_dict": state_dict,
        "metadata": {k: _plain(v, k) for k, v in metadata.items()},
        "digest": tensors_digest(spec, _digested(state_dict, extra)),
    }
    if extra:
        payload["meta_state"] = extra
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would create it; mkstemp makes it private (0600)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(path: str | os.PathLike, expected_arch: str | None = None,
                    map_location: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path`` and return ``(model, metadata)``; a saved ``meta_state`` comes back
    as ``metadata["meta_state"]`` (tensors on ``map_location``).

    Loads with ``torch.load(weights_only=True)``. ``expected_arch`` (``"mlp"``, ``"mlp2"``, ``"cnn"``):
    if given and the checkpoint holds a different architecture, raise ``ValueError`` saying which
    it holds. The model comes back on ``map_location`` (default CPU). Every other fault of the file (missing,
    a directory, empty, unreadable, not written by ``save_checkpoint``, tensors that do not match their digest
    or do not fit the architecture) is also a ``ValueError`` that names the file and says what is wrong.
    """
    path = Path(path)
    name = repr(str(path))
    if path.is_dir():
        raise ValueError(f"path {name} is a directory, not a checkpoint file")
    if not path.is_file():
        raise ValueError(f"path {name} is not a checkpoint file (it does not exist)")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {name} is empty (0 bytes): it was not written completely; train it again")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - unpickling errors come in many types
        reason = str(error).strip() or type(error).__name__
        raise ValueError(f"path {name} could not be read as a checkpoint: {reason}") from None
    if (not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS
            or not {"spec", "state_dict", "metadata"} <= set(payload) or not isinstance(payload["spec"], dict)
            or not isinstance(payload["state_dict"], dict) or not isinstance(payload.get("meta_state", {}), dict)):
        raise ValueError(f"path {name} is not a checkpoint written by save_checkpoint (format {FORMAT})")
    spec = payload["spec"]
    if payload["format"] == 1:
        warnings.warn(f"checkpoint {name} has no digest (format 1), so damage to its weights cannot be detected; "
                      "save it again with save_checkpoint to add one", stacklevel=2)
    elif payload.get("digest") != tensors_digest(spec, _digested(payload["state_dict"], payload.get("meta_state", {}))):
        raise ValueError(f"checkpoint {name} is damaged: its tensors do not match the digest written with them; "
                         "restore the file or train it again")
    if expected_arch is not None and spec.get("arch") != expected_arch:
        held = spec.get("arch") or f"a custom {spec.get('class')}"
        raise ValueError(f"checkpoint {str(path)!r} holds architecture {held!r} ({spec}), "
                         f"but expected_arch is {expected_arch!r}")
    try:
        model = model_from_spec(spec)
        model.load_state_dict(payload["state_dict"])
    except Exception as error:  # noqa: BLE001 - a bad spec or mismatched weights fail in several ways
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"checkpoint {name}: its weights do not fit its architecture {spec}: {reason}") from None
    metadata = payload["metadata"]
    if payload.get("meta_state"):
        metadata = {**metadata, "meta_state": payload["meta_state"]}
    return model.to(map_location), metadata
