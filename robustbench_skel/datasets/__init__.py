"""Datasets: the embedded synthetic benchmark and readers for the files users hold.

Importing this package registers the built-in dataset sources.
"""

from .base import DatasetSource, SkeletonDataset, check_clip_values
from . import npz, synthetic  # noqa: F401  (registration)
from . import ntu  # noqa: F401  (registration)
from . import hdm05  # noqa: F401  (registration)
from . import kinetics  # noqa: F401  (registration)
from . import nwucla  # noqa: F401  (registration)

__all__ = ["DatasetSource", "SkeletonDataset", "check_clip_values"]
