"""What an attack is handed, one small object per threat model (design.md, last section).

- white-box: the (defended) victim itself, an ``nn.Module`` from clips to logits;
- transfer: a :class:`SurrogateEnsemble`, the surrogate model(s) and the data they were trained on;
- no-box: an :class:`UnlabelledPool` of clips, with no model, no label and no query;
- decision-based: a :class:`LabelOracle` that answers top-1 labels of the victim and counts every query.

The runner builds exactly one of these from the run's configuration and hands nothing else to the
attack, so an attack cannot peek past its threat model. The oracle keeps the victim in a closure, not
in an attribute, so no attribute path leads from what a decision-based attack holds to the model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .datasets import SkeletonDataset
from .layout import SkeletonLayout

__all__ = ["SurrogateInfo", "SurrogateEnsemble", "UnlabelledPool", "LabelOracle", "QueryBudgetExceeded"]


@dataclass(frozen=True)
class SurrogateInfo:
    """Which surrogate, with the hash of its weights (the record names every surrogate this way)."""

    name: str
    checkpoint: str
    checkpoint_sha256: str
    pretrained_on: str | None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "checkpoint": self.checkpoint, "checkpoint_sha256": self.checkpoint_sha256,
                "pretrained_on": self.pretrained_on}


class SurrogateEnsemble(nn.Module):
    """The surrogate(s) of a transfer attack: the mean of the members' logits, and the members themselves.

    Any white-box gradient attack runs on it unchanged (one surrogate: its logits; several: the
    logit ensemble of Liu et al. 2017). Attacks with a transfer algorithm of their own (``svre``,
    ``ba``, ``tasar``) read :attr:`members` and, to train what they need, :meth:`train_data` (the
    attacker is assumed to hold the surrogates' training data, as in the TASAR paper).
    """

    def __init__(self, members: list[nn.Module], infos: list[SurrogateInfo],
                 train_data: Callable[[], SkeletonDataset] | None = None) -> None:
        super().__init__()
        if not members or len(members) != len(infos):
            raise ValueError("a surrogate ensemble needs one info per member and at least one member")
        self.members = nn.ModuleList(members)
        self.infos = list(infos)
        self._train_data = train_data
        self.num_classes = int(getattr(members[0], "num_classes", 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.members) == 1:
            return self.members[0](x)
        return torch.stack([m(x) for m in self.members]).mean(dim=0)

    def train_data(self) -> SkeletonDataset:
        if self._train_data is None:
            raise RuntimeError("this surrogate ensemble was built without training data")
        return self._train_data()

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.infos]

    def fingerprint(self) -> str:
        """What the surrogates are, for cache keys: names and weight hashes in order."""
        return "+".join(f"{i.name}:{i.checkpoint_sha256}" for i in self.infos)

    def describe(self) -> list[dict[str, Any]]:
        return [i.describe() for i in self.infos]


@dataclass(frozen=True)
class UnlabelledPool:
    """Clips without labels: all a no-box attacker has (the manifold is learned from them)."""

    clips: torch.Tensor  # (P, 3, T, V, M), metres
    layout: SkeletonLayout
    fps: float
    split: str
    sha256: str

    @classmethod
    def from_dataset(cls, dataset: SkeletonDataset) -> "UnlabelledPool":
        clips = np.ascontiguousarray(dataset.clips, dtype=np.float32)
        digest = hashlib.sha256(clips.tobytes()).hexdigest()
        return cls(torch.from_numpy(clips), dataset.layout, float(dataset.fps), dataset.split, digest)

    def describe(self) -> dict[str, Any]:
        return {"split": self.split, "num_clips": int(self.clips.shape[0]), "sha256": self.sha256}


class QueryBudgetExceeded(RuntimeError):
    """An attack asked the oracle more often than the run allows: a bug in the attack."""


@dataclass
class LabelOracle:
    """Top-1 labels of the (defended) victim for one batch of attacked samples; counts every query.

    ``labels(clips, rows)`` classifies ``clips`` (one candidate per entry of ``rows``, the batch row of
    the sample each candidate belongs to) and charges one query to each of those rows. A row may not
    exceed ``max_queries``; :meth:`remaining` tells how many it has left.
    """

    _classify: Callable[[torch.Tensor], torch.Tensor]
    num_samples: int
    max_queries: int
    counts: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.counts = torch.zeros(self.num_samples, dtype=torch.long)

    def remaining(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        left = self.max_queries - self.counts
        return left if rows is None else left[rows.cpu()]

    def labels(self, clips: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        rows = torch.arange(self.num_samples) if rows is None else rows.detach().cpu().long()
        if rows.numel() != clips.shape[0]:
            raise ValueError(f"{clips.shape[0]} clips but {rows.numel()} rows")
        charged = self.counts.index_add(0, rows, torch.ones_like(rows))
        if bool((charged > self.max_queries).any()):
            raise QueryBudgetExceeded(f"a sample would exceed its budget of {self.max_queries} queries")
        self.counts = charged
        with torch.no_grad():
            return self._classify(clips.detach()).to(clips.device)
