"""A plain ``.npz`` of clips and labels: the simplest way to bring your own data.

Keys: ``clips`` as ``(N, 3, T, V, M)`` (or ``(N, T, V*3)``, read as one person, the BEAT/TASAR
layout) and ``labels`` (or ``classes``) as integers or one-hot rows. Optional: ``sample_ids``,
``class_names``, ``layout`` (``ntu25``, ``hdm05``, ...; by default guessed from the joint count) and
``fps`` (default 30).
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..layout import LAYOUTS, get_layout
from ..registry import DATASETS
from .base import DatasetSource, SkeletonDataset
from .npzmap import MappedNpz

__all__ = ["NpzSource", "labels_from_array"]

_LAYOUT_BY_JOINTS = {25: "ntu25", 18: "openpose18", 17: "coco17", 20: "nw-ucla20"}


def labels_from_array(y: np.ndarray, where: str) -> np.ndarray:
    """Integer labels from integer or one-hot arrays."""
    y = np.asarray(y)
    if y.ndim == 2:
        if not np.all((y == 0) | (y == 1)) or not np.all(y.sum(axis=1) == 1):
            raise UserError(f"{where}: 2-D labels must be one-hot rows")
        return y.argmax(axis=1).astype(np.int64)
    if y.ndim != 1:
        raise UserError(f"{where}: labels must be 1-D integers or 2-D one-hot, got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise UserError(f"{where}: labels must be whole numbers")
    elif not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{where}: labels must be integers, got {y.dtype}")
    return y.astype(np.int64)


@DATASETS.register("npz")
class NpzSource(DatasetSource):
    description = "your own .npz: 'clips' (N,3,T,V,M) or (N,T,V*3) in metres and integer or one-hot 'labels'"
    splits = ("test",)

    def load(self, split, data_path):
        where = str(data_path)
        f = MappedNpz(data_path, where)
        keys = set(f.files)
        label_key = next((k for k in ("labels", "classes") if k in keys), None)
        if "clips" not in keys or label_key is None:
            raise UserError(f"{where}: expected arrays 'clips' and 'labels' (or 'classes'), found {sorted(keys)}")
        clips, mapped = f.array("clips")  # stays on disk until a run indexes its samples
        labels = labels_from_array(np.asarray(f.array(label_key)[0]), where)
        if clips.ndim == 3:  # (N, T, V*3): one person, joints-major xyz
            n, t, vc = clips.shape
            if vc % 3:
                raise UserError(f"{where}: 3-D clips must be (N, T, V*3); {vc} is not a multiple of 3")
            clips = clips.reshape(n, t, vc // 3, 3, 1).transpose(0, 3, 1, 2, 4)
        if not np.issubdtype(clips.dtype, np.floating):
            raise UserError(f"{where}: clips must be floating point, got {clips.dtype}")
        if clips.ndim != 5:
            raise UserError(f"{where}: clips must be (N, 3, T, V, M) or (N, T, V*3), got shape {clips.shape}")

        def optional(key):
            return np.asarray(f.array(key)[0]) if key in keys else None

        layout_name = str(optional("layout")) if "layout" in keys else _LAYOUT_BY_JOINTS.get(clips.shape[3])
        if layout_name not in LAYOUTS:
            raise UserError(f"{where}: cannot tell the skeleton layout of {clips.shape[3]} joints; add a 'layout' array naming one of {', '.join(LAYOUTS)}")
        names = optional("class_names")
        class_names = tuple(str(c) for c in names) if names is not None else tuple(f"class_{i}" for i in range(int(labels.max()) + 1 if labels.size else 0))
        ids = optional("sample_ids")
        sample_ids = tuple(str(s) for s in ids) if ids is not None else tuple(f"{i:06d}" for i in range(len(labels)))
        fps = float(optional("fps")) if "fps" in keys else 30.0
        notes = {} if mapped else {"memory": "clips were read into memory (compressed .npz members cannot be mapped)"}
        if "layout" not in keys:
            notes["layout"] = f"guessed from {clips.shape[3]} joints; add a 'layout' array if this is not {layout_name}"
        return SkeletonDataset(
            name="npz",
            version="file",
            split=split,
            layout=get_layout(layout_name),
            fps=fps,
            class_names=class_names,
            clips=clips,
            labels=labels,
            sample_ids=sample_ids,
            source=where,
            notes=notes,
        )
