"""The victim contract: an ``nn.Module`` from raw clips in metres to logits.

A victim owns the test-time preprocessing of its official pipeline inside ``forward`` (centring,
view alignment, frame resampling, bone or motion streams), written in differentiable torch, so that
every attack perturbs the same physical quantity (joint positions in metres) and its gradient flows
through the preprocessing. Subclasses keep the official module names so the published checkpoints
load with ``strict=True``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .checkpoint import StateDict, load_state_dict_strict, read_state_dict, sha256_file
from .errors import UserError
from .layout import SkeletonLayout
from .progress_meter import progress as show_progress
from .registry import VICTIMS

__all__ = ["AuxiliaryHeads", "Victim", "LoadedVictim", "create_victim", "load_victim", "model_card", "pretrained_weights"]


class Victim(nn.Module):
    """Base class of every victim recognizer.

    Input ``(N, 3, T, V, M)`` float in metres; output logits ``(N, num_classes)``.
    Subclasses set ``name``, ``description`` and ``layouts`` and implement ``forward``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    layouts: ClassVar[tuple[str, ...]] = ("ntu25",)
    # State-dict key of the classifier bias, whose length gives a checkpoint's number of classes.
    head_key: ClassVar[str | None] = None
    # Multi-stream victims (joint + bone) name their parts; ``--checkpoint joint.pt,bone.pt`` loads
    # one official file per part under the prefixes ``joint.`` and ``bone.``.
    checkpoint_parts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, num_classes: int, layout: SkeletonLayout, num_persons: int = 2) -> None:
        super().__init__()
        if layout.name not in self.layouts:
            raise UserError(
                f"victim {self.name!r} supports the layouts {', '.join(self.layouts)}, not {layout.name!r}"
            )
        self.num_classes = num_classes
        self.layout = layout
        self.num_persons = num_persons
        # Absent persons (all-zero slots, as in NTU single-actor clips) give the same features for every
        # clip; in eval mode they are computed once per batch. Outputs are unchanged; the input gradient
        # of an empty slot is zero, which is fine because attacks never perturb empty slots.
        self.skip_empty_persons = True

    def remap_checkpoint_keys(self, state: StateDict) -> StateDict:
        """Rename keys of a foreign checkpoint format to this module's names (default: unchanged)."""
        return state

    def auxiliary_heads(self) -> "AuxiliaryHeads | None":
        """Fresh training-only heads whose losses ``train`` adds to cross-entropy (default: none).

        Methods such as FR-Head shape the features with extra losses during training only; their heads live
        outside the victim, so the victim's state_dict (what ``train`` saves and ``load_victim`` loads) is
        the test-time network alone.
        """
        return None

    def map_persons(self, fn: Callable[[torch.Tensor], torch.Tensor], persons: torch.Tensor) -> torch.Tensor:
        """Apply a per-person network ``fn`` to ``(N*M, ...)`` person clips, evaluating empty ones once."""
        if self.training or not self.skip_empty_persons or persons.shape[0] < 2:
            return fn(persons)
        empty = ~persons.detach().flatten(1).ne(0).any(dim=1)
        n_empty = int(empty.sum())
        if n_empty < 2:
            return fn(persons)
        full_idx = (~empty).nonzero().squeeze(1)
        first_empty = empty.nonzero()[0]
        out = fn(torch.cat([persons[full_idx], persons[first_empty]]))
        gather = torch.full((persons.shape[0],), full_idx.numel(), dtype=torch.long, device=persons.device)
        gather[full_idx] = torch.arange(full_idx.numel(), device=persons.device)
        return out[gather]


class AuxiliaryHeads(nn.Module):
    """Training-only heads of a victim (see :meth:`Victim.auxiliary_heads`).

    ``train`` optimises their parameters together with the victim's and never saves them. ``forward``
    makes the training pass itself, because the heads usually need the victim's intermediate features
    from the same pass as the logits.
    """

    def forward(
        self, victim: Victim, clips: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The victim's logits of ``clips`` and the named, already weighted losses to add to cross-entropy."""
        raise NotImplementedError


def create_victim(name: str, num_classes: int, layout: SkeletonLayout, **kwargs: Any) -> Victim:
    cls = VICTIMS.get(name)
    return cls(num_classes=num_classes, layout=layout, **kwargs)


def model_card(name: str) -> dict:
    """The JSON card shipped beside the victim's module (``victims/<name>.json``), or ``{}``."""
    path = resources.files("robustbench_skel.victims").joinpath(f"{name}.json")
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def _weights_file(name: str) -> Path:
    path = Path(str(resources.files("robustbench_skel.victims").joinpath("weights", name)))
    if not path.is_file():
        raise UserError(f"the shipped weights file {name} is missing from the installation; reinstall the package")
    return path


def pretrained_weights(name: str, dataset: str) -> tuple[list[tuple[str | None, Path, str]], dict]:
    """The shipped weights of ``name`` trained on ``dataset``: ``[(part or None, path, sha256)]`` and the card entry.

    A multi-stream victim's entry lists one file per part (``"parts": {"joint": {...}, "bone": {...}}``),
    so that a stream trained once serves both its single-stream victim and the ensemble.
    """
    entry = model_card(name).get("pretrained", {}).get(dataset)
    if not entry:
        raise UserError(
            f"no pretrained {name} weights ship for dataset {dataset!r}; "
            f"pass --checkpoint PATH or train them with: python -m robustbench_skel train --victim {name} --dataset {dataset}"
        )
    if "parts" in entry:
        return [(part, _weights_file(spec["file"]), spec["sha256"]) for part, spec in entry["parts"].items()], entry
    return [(None, _weights_file(entry["file"]), entry["sha256"])], entry


@dataclass
class LoadedVictim:
    """A victim ready for evaluation, with where its weights came from."""

    model: Victim
    name: str
    checkpoint: str
    checkpoint_sha256: str
    pretrained_on: str | None
    num_parameters: int


def _read_checkpoints(cls: type[Victim], checkpoint: str | Path) -> tuple[StateDict, str, str]:
    """Read one checkpoint file, or one per part for multi-stream victims (``joint.pt,bone.pt``).

    Returns the state_dict, a label for messages and records, and the sha256 (of the file, or of
    the parts' hashes in order).
    """
    paths = [Path(p) for p in str(checkpoint).split(",")] if cls.checkpoint_parts else [Path(checkpoint)]
    if len(paths) == 1:
        return read_state_dict(paths[0]), str(paths[0]), sha256_file(paths[0])
    if len(paths) != len(cls.checkpoint_parts):
        parts = ", ".join(cls.checkpoint_parts)
        raise UserError(f"victim {cls.name!r} takes one combined checkpoint or {len(cls.checkpoint_parts)} files ({parts}), got {len(paths)}")
    state: StateDict = {}
    hashes = []
    for part, path in zip(cls.checkpoint_parts, paths):
        state.update({f"{part}.{k}": v for k, v in read_state_dict(path).items()})
        hashes.append(sha256_file(path))
    combined = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    return state, ",".join(str(p) for p in paths), combined


def load_victim(
    name: str,
    num_classes: int,
    layout: SkeletonLayout,
    dataset: str,
    checkpoint: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> LoadedVictim:
    """Build ``name`` and load either the user's checkpoint or the shipped weights for ``dataset``.

    A user checkpoint decides the number of classes (its classifier's size); the dataset's labels
    must then fit inside it.
    """
    cls = VICTIMS.get(name)
    pretrained_on = None
    if checkpoint is None:
        files, _ = pretrained_weights(name, dataset)
        state = {}
        for part, path, expected in files:
            if sha256_file(path) != expected:
                raise UserError(f"the shipped weights {path.name} do not match their sha256 in the model card; reinstall the package")
            prefix = f"{part}." if part else ""
            state.update({prefix + k: v for k, v in read_state_dict(path).items()})
        hashes = [expected for _, _, expected in files]
        digest = hashes[0] if len(hashes) == 1 else hashlib.sha256("\n".join(hashes).encode()).hexdigest()
        label, pretrained_on = f"{name}:{dataset}", dataset
    else:
        state, label, digest = _read_checkpoints(cls, checkpoint)
    head = state.get(cls.head_key) if cls.head_key else None
    if checkpoint is not None and head is not None and head.dim() >= 1:
        if head.shape[0] < num_classes:
            raise UserError(
                f"the dataset has {num_classes} classes but checkpoint {label} classifies only {head.shape[0]}; "
                "check that --dataset and --checkpoint belong together"
            )
        num_classes = head.shape[0]
    model = cls(num_classes=num_classes, layout=layout)
    state = model.remap_checkpoint_keys(state)
    load_state_dict_strict(model, state, source=f"checkpoint {label}")
    model.eval().to(device)
    for p in model.parameters():  # attacks need input gradients only
        p.requires_grad_(False)
    return LoadedVictim(
        model=model,
        name=name,
        checkpoint=label,
        checkpoint_sha256=digest,
        pretrained_on=pretrained_on,
        num_parameters=sum(p.numel() for p in model.parameters()),
    )


@torch.no_grad()
def predict(model: nn.Module, clips: torch.Tensor, batch_size: int, device: torch.device | str,
            progress: str | None = None) -> torch.Tensor:
    """Predicted classes of ``clips`` (on CPU), evaluated in batches on ``device``; ``progress`` labels its
    progress meter (none without it: most calls are quick, a randomized defense's may not be)."""
    model.eval()
    preds = []
    for start in show_progress(range(0, clips.shape[0], batch_size), desc=progress or "", unit="batch",
                               enabled=bool(progress)):
        batch = clips[start : start + batch_size].to(device)
        preds.append(model(batch).argmax(dim=1).cpu())
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)
