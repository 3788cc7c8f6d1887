"""HDM05 as prepared by BEAT and used by TASAR: ``--dataset hdm05``.

``classTrain.npz`` / ``classTest.npz`` (pass the folder holding them, or one file) with ``clips``
``(N, T, 75)`` (25 joints x xyz, one person) and ``classes`` (integers or one-hot) over 65 classes.
Uncompressed members are memory-mapped. The class names are BEAT's: the sorted set of its HDM05
motion-class map (``cartwheel``, ``clap``, ``clapAH``, ...), which is what its labels index.

The coordinates are **normalised** (BEAT subtracts a per-channel mean and divides by one global
standard deviation, saved in ``preprocess-core.npz``): they are not metres, so budgets and
perceptibility numbers are in normalised units. The frame rate is nominal (120 Hz, HDM05's capture
rate); BEAT's files do not state it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..layout import HDM05_25
from ..registry import DATASETS
from .base import DatasetSource, SkeletonDataset
from .fileformat import check_name_hints, sniff
from .npz import labels_from_array
from .npzmap import MappedNpz

__all__ = ["Hdm05Source", "HDM05_CLASSES"]

HDM05_CLASSES: tuple[str, ...] = (
    "cartwheel", "clap", "clapAH", "climbD", "climbU", "depositFR", "depositHR", "depositLR", "depositMR",
    "elbow_to_knee", "grabFR", "grabHR", "grabLR", "grabMR", "hit", "hop", "jogLC", "jogOP", "jogRC", "jumpD",
    "jumpJ", "kickLF", "kickLS", "kickRF", "kickRS", "lhop", "lie_down", "punchLF", "punchLS", "punchRF", "punchRS",
    "rhop", "rotate_armsBB", "rotate_armsBF", "rotate_armsLB", "rotate_armsLF", "rotate_armsRB", "rotate_armsRF",
    "run", "shuffle", "sit_downC", "sit_downF", "sit_downK", "sit_downT", "ski", "sneak", "squat", "stand_upK2S",
    "stand_upLF", "stand_upSC", "stand_upSF", "stand_upST", "throwB", "throwFR", "throwSD", "throwST", "turnL",
    "turnR", "walk_backward", "walk_forward", "walk_inplace", "walk_left", "walk_leftLC", "walk_right",
    "walk_rightRC",
)
assert len(HDM05_CLASSES) == 65

NORMALISATION_NOTE = "coordinates are BEAT's mean/std-normalised values, not metres (mean and std in preprocess-core.npz)"
_FILES = {"train": "classTrain.npz", "test": "classTest.npz"}


@DATASETS.register("hdm05")
class Hdm05Source(DatasetSource):
    description = (
        "HDM05 (BEAT/TASAR classTrain/classTest.npz): 65 classes, 25 joints, 1 person; "
        "coordinates mean/std-NORMALISED, not metres"
    )
    fps = 120.0

    def load(self, split, data_path):
        path = Path(data_path)
        kind = sniff(path)
        if kind == "dir":
            file = path / _FILES[split]
            if not file.is_file():
                raise UserError(f"{path} holds no {_FILES[split]} (the BEAT/TASAR HDM05 {split} split)")
        elif kind == "npz":
            file = path
            check_name_hints(file, self.name, split=split)
        else:
            raise UserError(f"{path}: unrecognised format; --dataset hdm05 reads a folder with classTrain.npz/classTest.npz or one such .npz")
        npz = MappedNpz(file)
        label_key = next((k for k in ("classes", "labels") if k in npz), None)
        if "clips" not in npz or label_key is None:
            raise UserError(f"{file}: expected arrays 'clips' and 'classes' (BEAT/TASAR format), found {sorted(npz.files)}")
        x, mapped = npz.array("clips")
        if x.ndim != 3 or x.shape[2] != 75:
            raise UserError(f"{file} [clips]: expected (N, T, 75) = 25 joints x xyz, got shape {tuple(x.shape)}")
        if not np.issubdtype(x.dtype, np.floating):
            raise UserError(f"{file} [clips]: clips must be floating point, got {x.dtype}")
        if not x.flags.c_contiguous:
            x, mapped = np.ascontiguousarray(x), False
        n, t, _ = x.shape
        clips = x.reshape(n, t, 25, 3, 1).transpose(0, 3, 1, 2, 4)  # (N, T, V, C, 1) -> (N, C, T, V, 1), a view
        y = np.asarray(npz.array(label_key)[0])
        if y.ndim == 2 and y.shape[1] != len(HDM05_CLASSES):
            raise UserError(f"{file} [{label_key}]: one-hot labels over {y.shape[1]} classes, but hdm05 has {len(HDM05_CLASSES)}")
        labels = labels_from_array(y, f"{file} [{label_key}]")
        if labels.shape[0] != n:
            raise UserError(f"{file}: {n} clips but {labels.shape[0]} labels")
        notes = {"format": "beat-npz", "file": file.name, "memory_mapped": bool(mapped), "coordinates": NORMALISATION_NOTE,
                 "fps_note": "nominal 120 Hz (HDM05 capture rate); BEAT's files do not state their rate"}
        return SkeletonDataset(
            name=self.name,
            version="beat-npz",
            split=split,
            layout=HDM05_25,
            fps=self.fps,
            class_names=HDM05_CLASSES,
            clips=clips,
            labels=labels,
            sample_ids=tuple(f"{split}-{i:06d}" for i in range(n)),
            source=str(file),
            notes=notes,
            coordinate_unit="normalised units",
        )
