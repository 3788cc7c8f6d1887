"""The PYSKL / mmaction2 skeleton annotation pickle (3D NTU: ``ntu60_3danno.pkl``, ``ntu120_3d.pkl``, ...).

Top level: ``{"split": {"xsub_train": [frame_dir, ...], "xsub_val": [...], ...}, "annotations":
[{"frame_dir", "label", "total_frames", "keypoint": (M, T, V, C) float16}, ...]}``. The pickle has to
be read whole (through the restricted unpickler); the chosen split is then padded to two persons and
to the split's longest clip with zeros and transposed to ``(N, 3, T, V, M)`` float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from .safe_pickle import load_pickle

__all__ = ["read_pyskl", "split_keys"]


def split_keys(obj: object) -> list[str]:
    return sorted(str(k) for k in obj["split"]) if isinstance(obj, dict) and isinstance(obj.get("split"), dict) else []


def read_pyskl(
    path: Path,
    split_key: str,
    num_joints: int,
    num_persons: int = 2,
    obj: object = None,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], dict]:
    """Clips, labels, sample ids and notes of ``split_key`` (e.g. ``xsub_val``)."""
    where = str(path)
    if obj is None:
        obj = load_pickle(path)
    if not (isinstance(obj, dict) and isinstance(obj.get("split"), dict) and isinstance(obj.get("annotations"), (list, tuple))):
        raise UserError(f"{where}: not a PYSKL/mmaction2 annotation pickle (expected a dict with a 'split' dict and an 'annotations' list)")
    if split_key not in obj["split"]:
        raise UserError(f"{where}: has no split {split_key!r} (it has {', '.join(split_keys(obj)) or 'none'}); check --dataset")
    ids = [str(i) for i in obj["split"][split_key]]
    wanted = set(ids)
    if len(wanted) != len(ids):
        raise UserError(f"{where}: split {split_key!r} lists some frame_dir twice")
    found: dict[str, dict] = {}
    for ann in obj["annotations"]:
        if not isinstance(ann, dict) or "frame_dir" not in ann:
            raise UserError(f"{where}: every annotation must be a dict with 'frame_dir', 'label' and 'keypoint'")
        name = str(ann["frame_dir"])
        if name in wanted:
            found[name] = ann
    missing = [i for i in ids if i not in found]
    if missing:
        raise UserError(f"{where}: {len(missing)} sample(s) of split {split_key!r} have no annotation (e.g. {missing[0]})")

    keypoints, labels = [], np.zeros(len(ids), dtype=np.int64)
    dropped_persons = 0
    for i, name in enumerate(ids):
        ann = found[name]
        kp = ann.get("keypoint")
        if not isinstance(kp, np.ndarray) or kp.ndim != 4:
            raise UserError(
                f"{where}: sample {name}: 'keypoint' must be an array (M, T, V, C), got "
                f"{getattr(kp, 'shape', type(kp).__name__)}"
                + ("; Kinetics-style index files keep keypoints in separate kpfiles, which are not read" if kp is None else "")
            )
        m, t, v, c = kp.shape
        if v != num_joints or c != 3:
            hint = " (2D keypoints, e.g. HRNet COCO-17: use the 3D pickle, e.g. ntu60_3danno.pkl)" if c == 2 else ""
            raise UserError(f"{where}: sample {name}: keypoint shape {kp.shape}, expected (M, T, {num_joints}, 3){hint}")
        if not np.issubdtype(kp.dtype, np.floating):
            raise UserError(f"{where}: sample {name}: keypoints must be floating point, got {kp.dtype}")
        label = ann.get("label")
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
            raise UserError(f"{where}: sample {name}: 'label' must be an integer, got {label!r}")
        labels[i] = int(label)
        dropped_persons += max(0, m - num_persons)
        keypoints.append(kp[:num_persons])
    t_max = max((k.shape[1] for k in keypoints), default=0)
    clips = np.zeros((len(ids), 3, t_max, num_joints, num_persons), dtype=np.float32)
    for i, kp in enumerate(keypoints):
        m, t = kp.shape[:2]
        clips[i, :, :t, :, :m] = kp.transpose(3, 1, 2, 0)
    notes = {"split_key": split_key, "max_frames": int(t_max)}
    if dropped_persons:
        notes["persons_dropped"] = int(dropped_persons)
    return clips, labels, tuple(ids), notes
