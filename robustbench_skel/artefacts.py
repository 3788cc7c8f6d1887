"""Costly artefacts, built once and content-addressed by what they depend on.

Bayesian heads, SWAG moments, motion manifolds, adversarial clips crafted on a surrogate: each is a
pure function of its inputs (checkpoint sha256, dataset version, sample ids, hyperparameters, seed).
:meth:`ArtefactStore.load_or_build` names an artefact by the sha256 of a canonical JSON of those
inputs, builds it on first use, writes it atomically under the user cache, and returns it with the
entry a record carries: the kind, the key, the sha256 of the file and the command that rebuilds it.

Artefacts are dicts of tensors and plain values saved with ``torch.save`` and read back with
``torch.load(weights_only=True)``, like every checkpoint in this project.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .atomic import save_torch_atomic
from .checkpoint import sha256_file
from .errors import UserError

__all__ = ["artefact_key", "ArtefactStore", "tensor_sha256"]


def artefact_key(kind: str, spec: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``{"kind": kind, **spec}`` (the artefact's identity)."""
    text = json.dumps({"kind": kind, **spec}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _default_root() -> Path:
    from .datasets.synthetic import cache_dir

    return cache_dir() / "artefacts"


class ArtefactStore:
    """A folder of content-addressed artefacts (default: ``<cache>/artefacts``, see ROBUSTBENCH_SKEL_CACHE)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else _default_root()

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key[:32]}.pt"

    def load_or_build(
        self, kind: str, spec: dict[str, Any], build: Callable[[], dict[str, Any]], command: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The artefact for ``spec`` (built and saved if absent) and its record entry."""
        key = artefact_key(kind, spec)
        path = self.path(kind, key)
        content = None
        if path.is_file():
            try:
                content = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # a truncated or foreign file: rebuild it rather than fail the run
                content = None
            if not (isinstance(content, dict) and content.get("__key__") == key):
                content = None
        if content is None:
            content = dict(build())
            content["__key__"] = key
            self._save(path, content)
        content = {k: v for k, v in content.items() if k != "__key__"}
        entry = {"kind": kind, "key": key, "file": f"{kind}/{path.name}", "sha256": sha256_file(path), "command": command}
        return content, entry

    @staticmethod
    def _save(path: Path, content: dict[str, Any]) -> None:
        try:
            save_torch_atomic(content, path)
        except OSError as exc:
            raise UserError(f"cannot write the artefact cache {str(path.parent)!r}: {exc.strerror}; "
                            "set ROBUSTBENCH_SKEL_CACHE to a writable folder") from None


def tensor_sha256(*tensors: torch.Tensor) -> str:
    """sha256 of the bytes of ``tensors`` (float32, contiguous, on CPU), in order."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()

