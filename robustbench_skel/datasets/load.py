"""A dataset by name: its source, a split or a data file, every clip checked, coordinates in metres.

Used by benchmark runs (``run/``) and by training (``learn/``) alike.
"""

from __future__ import annotations

from ..registry import DATASETS
from .base import SkeletonDataset, check_clip_values
from .units import check_units

__all__ = ["load_dataset"]


def load_dataset(name: str, split: str | None, data_path: str | None, seed: int = 0, unit: str = "m") -> SkeletonDataset:
    from ..datasets.units import check_units

    source_cls = DATASETS.get(name)
    source = source_cls()
    dataset = source(split, data_path)
    check_clip_values(dataset.clips, dataset.sample_ids, dataset.source or dataset.name)  # every clip, in chunks
    return check_units(dataset, unit)  # refuses an empty file or clips not in metres
