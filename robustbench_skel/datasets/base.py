"""The dataset contract: labelled clips ``(N, 3, T, V, M)`` in metres with their layout and frame rate.

A dataset source (registered by name, like attacks and victims) turns a split of the user's files, or
the embedded synthetic benchmark, into a :class:`SkeletonDataset`. Large files stay memory-mapped:
nothing reads a clip until a batch needs it, and validation of the values (NaN, Inf) reads the whole
file chunk by chunk when a split is loaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..errors import UserError
from ..layout import SkeletonLayout

__all__ = ["SkeletonDataset", "DatasetSource", "check_clip_values"]


@dataclass(frozen=True)
class SkeletonDataset:
    """One split of one dataset. ``clips`` may be a memory map; index it, don't copy it."""

    name: str
    version: str
    split: str
    layout: SkeletonLayout
    fps: float
    class_names: tuple[str, ...]
    clips: np.ndarray
    labels: np.ndarray
    sample_ids: tuple[str, ...]
    synthetic: bool = False
    source: str | None = None
    notes: dict = field(default_factory=dict)
    # The unit of the coordinates, hence of budgets and displacements on them: metres, or a reader's own
    # (Kinetics' frame-normalised x, y; HDM05's standardised values). Records and summaries state it.
    coordinate_unit: str = "m"

    def __post_init__(self) -> None:
        where = self.source or self.name
        if self.clips.ndim != 5:
            raise UserError(
                f"{where}: clips must have 5 dimensions (N, C=3, T, V, M), got shape {tuple(self.clips.shape)}"
            )
        n, c, t, v, m = self.clips.shape
        if c != 3:
            raise UserError(f"{where}: clips must have 3 coordinates per joint on axis 1, got shape {tuple(self.clips.shape)}")
        if v != self.layout.num_joints:
            raise UserError(
                f"{where}: clips have {v} joints but the {self.layout.name} layout has {self.layout.num_joints}; "
                "check --dataset or the file"
            )
        if self.labels.shape != (n,):
            raise UserError(f"{where}: {n} clips but labels have shape {tuple(self.labels.shape)}")
        if not np.issubdtype(self.labels.dtype, np.integer):
            raise UserError(f"{where}: labels must be integers, got {self.labels.dtype}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            bad = self.labels[(self.labels < 0) | (self.labels >= len(self.class_names))]
            raise UserError(
                f"{where}: labels must lie in [0, {len(self.class_names)}) but {bad.size} do not (e.g. {int(bad[0])})"
            )
        if len(self.sample_ids) != n:
            raise UserError(f"{where}: {n} clips but {len(self.sample_ids)} sample ids")
        if len(set(self.sample_ids)) != n:
            raise UserError(f"{where}: sample ids are not unique")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: np.ndarray) -> "SkeletonDataset":
        """The samples at ``indices`` (read into memory), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        clips = np.ascontiguousarray(self.clips[np.sort(indices)])[np.argsort(np.argsort(indices))]
        return replace(
            self,
            clips=clips.astype(np.float32, copy=False),
            labels=np.asarray(self.labels[indices], dtype=np.int64),
            sample_ids=tuple(self.sample_ids[i] for i in indices),
        )

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(self.clips, dtype=np.float32)), torch.from_numpy(self.labels.astype(np.int64))

    def ids_sha256(self) -> str:
        return hashlib.sha256("\n".join(self.sample_ids).encode()).hexdigest()

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "split": self.split,
            "synthetic": self.synthetic,
            "layout": self.layout.name,
            "fps": self.fps,
            "num_classes": self.num_classes,
            "num_samples": len(self),
            "clip_shape": list(self.clips.shape[1:]),
            "coordinate_unit": self.coordinate_unit,
            "notes": dict(self.notes),
        }


def check_clip_values(clips: np.ndarray, sample_ids: tuple[str, ...], where: str, chunk: int = 256) -> None:
    """Refuse infinite or NaN coordinates anywhere in ``clips``, naming the first offending samples.

    The clips are read ``chunk`` at a time, so a memory-mapped file stays on disk (only one chunk is in
    memory at once) while every clip of it is checked.
    """
    n = len(clips)
    bad: list[int] = []
    count = 0
    for start in range(0, n, chunk):
        block = np.asarray(clips[start : start + chunk])
        finite = np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1)
        if not finite.all():
            offending = np.flatnonzero(~finite)
            count += int(offending.size)
            bad += [start + int(i) for i in offending[: max(0, 3 - len(bad))]]
    if count:
        examples = ", ".join(str(sample_ids[i]) for i in bad)
        raise UserError(
            f"{where}: {count} of its {n} clip(s) contain infinite or NaN coordinates (e.g. {examples}); "
            "clean or drop them"
        )


class DatasetSource:
    """A registered way to obtain a :class:`SkeletonDataset` by name."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    synthetic: ClassVar[bool] = False
    needs_path: ClassVar[bool] = True
    default_split: ClassVar[str] = "test"
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def load(self, split: str, data_path: Path | None) -> SkeletonDataset:
        raise NotImplementedError

    def __call__(self, split: str | None = None, data_path: str | Path | None = None) -> SkeletonDataset:
        split = split or self.default_split
        if split not in self.splits:
            raise UserError(f"dataset {self.name!r} has no split {split!r}; choose one of {', '.join(self.splits)}")
        if self.needs_path and data_path is None:
            raise UserError(f"dataset {self.name!r} reads your files: pass --data-path")
        if data_path is not None:
            data_path = Path(data_path)
            if not data_path.exists():
                raise UserError(f"--data-path {str(data_path)!r} does not exist")
        return self.load(split, data_path)
