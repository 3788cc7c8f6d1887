"""Which torch device a ``--device`` name means (``auto``, ``cpu``, ``cuda[:N]``), refused when absent."""

from __future__ import annotations

import torch

from .errors import UserError

__all__ = ["resolve_device"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"--device must be auto, cpu or cuda[:N], got {name!r}")
