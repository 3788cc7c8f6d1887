"""Coordinate units: refuse clips that are clearly not in metres, or convert them when told the unit.

Budgets are in metres, so clips in millimetres (or centimetres, or pixels) would be attacked with a
budget a thousand times too small and the numbers would look meaningful. A body is about 2 m tall;
the median over clips of a person's extent in a frame tells the scale. Readers whose coordinates are
declared not to be metres (normalised HDM05, Kinetics frame units) say so in their notes and are
left alone.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import UserError
from .base import SkeletonDataset

__all__ = ["UNITS", "ScaledClips", "body_extent_m", "check_units"]

UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
# A person's extent in one frame above this (in metres) is not a human body in metres.
MAX_PLAUSIBLE_EXTENT_M = 10.0
# ... and below this after a conversion, the conversion was probably wrong (already metres).
MIN_PLAUSIBLE_EXTENT_M = 0.1
_PROBE_CLIPS = 64


class ScaledClips:
    """A lazy ``clips * factor`` that keeps a memory map on disk: only indexed clips are read."""

    def __init__(self, clips: np.ndarray, factor: float) -> None:
        self.base, self.factor = clips, factor
        self.shape, self.ndim, self.dtype = clips.shape, clips.ndim, clips.dtype

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, index):
        return (np.asarray(self.base[index]) * self.factor).astype(self.dtype, copy=False)

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out.astype(dtype, copy=False) if dtype is not None else out


def body_extent_m(clips: np.ndarray, probe: int = _PROBE_CLIPS) -> float | None:
    """Median over (up to ``probe`` evenly spaced) clips of the median per-frame extent of a present person.

    The extent of a person-frame is the largest of its x, y, z ranges over the joints; a person-frame
    whose coordinates are all zero is absent (NTU's padding). ``None`` when no person is present.
    """
    n = len(clips)
    if n == 0:
        return None
    picks = np.unique(np.linspace(0, n - 1, min(n, probe)).round().astype(np.int64))
    sample = np.asarray(clips[picks], dtype=np.float64)[:, :3]  # (k, 3, T, V, M)
    present = np.abs(sample).sum(axis=(1, 3)) > 0  # (k, T, M)
    extent = (sample.max(axis=3) - sample.min(axis=3)).max(axis=1)  # (k, T, M)
    per_clip = [float(np.median(e[p])) for e, p in zip(extent, present) if p.any()]
    return float(np.median(per_clip)) if per_clip else None


def _declared_not_metres(dataset: SkeletonDataset) -> bool:
    return dataset.coordinate_unit != "m" or any("not metres" in str(v).lower() for v in dataset.notes.values())


def _guess(extent: float) -> str:
    if extent > 300:
        return "millimetres (or pixels)"
    return "centimetres"


def check_units(dataset: SkeletonDataset, unit: str = "m") -> SkeletonDataset:
    """``dataset`` in metres: refuse an empty file or an implausible scale; convert when ``unit`` says so."""
    where = dataset.source or dataset.name
    if len(dataset) == 0:
        raise UserError(f"{where} holds no clips; give a file with at least one clip and its label")
    if unit not in UNITS:
        raise UserError(f"--unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if _declared_not_metres(dataset):
        if unit != "m":
            raise UserError(f"{where}: {dataset.name} coordinates are not metric, --unit cannot convert them; drop --unit {unit}")
        return dataset
    factor = UNITS[unit]
    converted = dataset if factor == 1.0 else replace(
        dataset, clips=ScaledClips(dataset.clips, factor), notes={**dataset.notes, "unit": f"converted from {unit} to metres"})
    extent = body_extent_m(converted.clips)
    if extent is None:
        return converted
    if not np.isfinite(extent):  # never a unit problem: say what it is
        raise UserError(f"{where}: the clips contain infinite or NaN coordinates; clean or drop those clips")
    if extent > MAX_PLAUSIBLE_EXTENT_M:
        raw = extent / factor
        hint = "--unit mm" if raw > 300 else "--unit cm"
        raise UserError(
            f"{where}: a person spans {raw:.4g} units per frame (median over clips), not the ~2 m of a body in metres; "
            f"the coordinates look like {_guess(raw)}: pass {hint} to convert (budgets stay in metres), "
            "or convert the file to metres (pixels cannot be converted: attack 3-D coordinates)")
    if factor != 1.0 and extent < MIN_PLAUSIBLE_EXTENT_M:
        raise UserError(
            f"{where}: with --unit {unit} a person spans only {extent:.3g} m per frame; the file looks to be in metres "
            "already: drop --unit")
    return converted
