"""The ST-GCN / 2s-AGCN / MS-G3D release format: ``<split>_data[_joint].npy`` + ``<split>_label.pkl``.

The ``.npy`` holds float32 ``(N, 3, T, V, M)`` and is memory-mapped; the label file is a pickled
tuple ``(sample_names, labels)`` with 0-based integer labels (read with the restricted unpickler,
Python-2 pickles included). Split ``test`` is the ``val_*`` pair. NTU and Kinetics-skeleton share
the format; only ``V`` (25 or 18) and the meaning of C differ.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import UserError
from .fileformat import strip_sample_suffix
from .npz import labels_from_array
from .safe_pickle import load_pickle

__all__ = ["find_pair", "read_pair", "pair_from_label_file", "DATA_NAMES"]

_PREFIX = {"train": "train", "test": "val"}
DATA_NAMES = ("{p}_data_joint.npy", "{p}_data.npy")  # 2s-AGCN / MS-G3D, then ST-GCN
_DATA_RE = re.compile(r"^(?P<prefix>.+?)_data(?P<stream>_[a-z]+)?\.npy$")


def find_pair(path: Path, split: str) -> tuple[Path, Path]:
    """The data and label files for ``split`` given a folder or a ``.npy`` file."""
    prefix = _PREFIX[split]
    if path.is_dir():
        for pattern in DATA_NAMES:
            data = path / pattern.format(p=prefix)
            if data.is_file():
                return data, path / f"{prefix}_label.pkl"
        names = " or ".join(p.format(p=prefix) for p in DATA_NAMES)
        raise UserError(f"{path} holds no {names} (the ST-GCN / 2s-AGCN / MS-G3D {split} split)")
    m = _DATA_RE.match(path.name)
    if not m:
        raise UserError(f"{path}: expected a file named like {prefix}_data_joint.npy or {prefix}_data.npy next to {prefix}_label.pkl")
    if m.group("stream") not in (None, "_joint"):
        raise UserError(f"{path} holds the {m.group('stream')[1:]} stream, not joint coordinates; pass the _data_joint.npy file")
    file_prefix = m.group("prefix")
    if file_prefix in ("train", "val") and file_prefix != prefix:
        raise UserError(
            f"{path.name} is the {'test' if file_prefix == 'val' else 'train'} split, but --split {split} was asked for; "
            "pass the folder or the matching file"
        )
    return path, path.parent / f"{file_prefix}_label.pkl"


def pair_from_label_file(path: Path, split: str) -> tuple[Path, Path]:
    """The data file next to a ``<prefix>_label.pkl`` given directly."""
    if not path.name.endswith("_label.pkl"):
        raise UserError(f"{path}: a label pickle must be named <split>_label.pkl next to its <split>_data_joint.npy")
    file_prefix = path.name[: -len("_label.pkl")]
    for pattern in DATA_NAMES:
        data = path.parent / pattern.format(p=file_prefix)
        if data.is_file():
            return find_pair(data, split)
    raise UserError(f"{path}: no {file_prefix}_data_joint.npy or {file_prefix}_data.npy next to it")


def read_pair(data_file: Path, label_file: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Memory-mapped clips, int64 labels and sample names of one split."""
    if not label_file.is_file():
        raise UserError(f"{data_file}: its label file {label_file.name} is missing from {label_file.parent}")
    try:
        clips = np.load(data_file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{data_file} is not a readable .npy array ({exc})") from None
    where = str(data_file)
    if clips.ndim != 5 or clips.shape[1] != 3:
        raise UserError(f"{where}: expected (N, 3, T, V, M) clips, got shape {tuple(clips.shape)}")
    if not np.issubdtype(clips.dtype, np.floating):
        raise UserError(f"{where}: clips must be floating point, got {clips.dtype}")

    obj = load_pickle(label_file)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise UserError(
            f"{label_file}: expected a pickled tuple (sample_names, labels), got {type(obj).__name__}"
            + (f" of length {len(obj)}" if isinstance(obj, (tuple, list)) else "")
        )
    names, labels = obj
    if not isinstance(names, (list, tuple, np.ndarray)) or not all(isinstance(n, (str, np.str_)) for n in names):
        raise UserError(f"{label_file}: the first element must be a list of sample names (strings)")
    try:
        labels = np.asarray(labels)
    except Exception:
        raise UserError(f"{label_file}: the second element must be a list of integer labels") from None
    if labels.dtype == object or labels.ndim != 1:
        raise UserError(f"{label_file}: the second element must be a flat list of integer labels")
    labels = labels_from_array(labels, str(label_file))
    if not (len(names) == len(labels) == clips.shape[0]):
        raise UserError(f"{label_file}: {len(names)} names and {len(labels)} labels for {clips.shape[0]} clips in {data_file.name}")
    return clips, labels, tuple(strip_sample_suffix(str(n)) for n in names)
