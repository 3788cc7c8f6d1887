"""Loading user and official checkpoints safely and strictly.

Every file goes through ``torch.load(weights_only=True)``: a checkpoint that needs arbitrary
unpickling is refused with a message, never executed. Wrappers (``{'state_dict': ...}``,
``{'model': ...}``) and ``module.`` prefixes (DataParallel) are removed; a victim may rename further
keys (PYSKL ``backbone.`` prefixes, say) before the strict load. A mismatch names the missing,
unexpected and mis-shaped keys instead of printing PyTorch's wall of text.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import UserError

__all__ = ["sha256_file", "read_state_dict", "unwrap_state_dict", "load_state_dict_strict", "StateDict"]

StateDict = dict[str, torch.Tensor]
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "weights")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_state_dict(path: str | Path) -> StateDict:
    """Read a checkpoint file with ``weights_only=True`` and return its bare state_dict."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist or is not a file; check --checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # PyTorch's own text suggests weights_only=False, which for a hostile file means running its code:
        # it is deliberately not passed on.
        raise UserError(
            f"checkpoint {str(path)!r} cannot be loaded safely and was NOT loaded: it holds code or Python objects that a plain weights file "
            "never needs, and loading it could run that code; from an environment you trust, re-save the weights "
            "alone with torch.save(model.state_dict(), path) and pass that file"
        ) from None
    except Exception as exc:  # truncated, not a torch file, zip errors, ...
        raise UserError(f"checkpoint {str(path)!r} is not a readable PyTorch file ({type(exc).__name__}: {_first_line(exc)})") from None
    return unwrap_state_dict(obj, source=str(path))


def _first_line(exc: Exception) -> str:
    """The first line of an exception's text, never one that advises ``weights_only=False``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return "refused by the safe loader" if "weights_only" in text else text


def unwrap_state_dict(obj: object, source: str = "checkpoint") -> StateDict:
    """Strip the usual wrappers and ``module.`` prefixes; keep only tensors."""
    for _ in range(3):  # nested wrappers, e.g. {'model': {'state_dict': ...}}
        # A wrapper holds the state_dict as a mapping under a known key, possibly next to a few scalar
        # tensors (SGN saves its best accuracy as a tensor beside 'state_dict').
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping) and obj[k]), None)
            if inner is not None:
                obj = inner
                continue
        break
    if not isinstance(obj, Mapping):
        raise UserError(f"{source} holds a {type(obj).__name__}, not a state_dict (a mapping of names to tensors)")
    state = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise UserError(f"{source} has a non-string key {key!r}; it is not a state_dict")
        if isinstance(value, torch.Tensor):
            state[key[len("module."):] if key.startswith("module.") else key] = value
    if not state:
        raise UserError(f"{source} contains no tensors; expected a state_dict")
    return state


def _describe(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_state_dict_strict(model: nn.Module, state: StateDict, source: str = "checkpoint") -> None:
    """Load ``state`` into ``model`` with strict key and shape checking; floats are cast to the model's dtype."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys (checkpoint vs model): {_describe(misshaped)}")
    if problems:
        raise UserError(
            f"{source} does not match {type(model).__name__}: " + "; ".join(problems)
            + ". Check that --victim, --dataset (number of classes) and --checkpoint belong together"
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"{source} has NaN or Inf values in {_describe(bad)}")
    model.load_state_dict(state, strict=True)
