"""Northwestern-UCLA Multiview Action3D skeletons as the CTR-GCN family uses them: ``--dataset nw-ucla``.

The raw folder ``all_sqe/`` (pass it, or the folder holding it) of ``a{AA}_s{SS}_e{EE}_v{VV}.json``
files, each with ``skeletons``: ``(T, 20, 3)`` Kinect v1 joint positions. Split as in the literature:
train = views 1 and 2, test = view 3. Labels from the action id: a01-a06, a08, a09, a11, a12 ->
0..9. One person; clips are zero-padded to the split's longest sequence (no resampling, no
normalisation: the 52-frame resampling and min-max scaling of the CTR-GCN feeder are the victims'
pre-processing, not the data's).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..layout import NWUCLA20
from ..registry import DATASETS
from .base import DatasetSource, SkeletonDataset
from .fileformat import sniff

__all__ = ["NwUclaSource", "NWUCLA_CLASSES", "ACTION_TO_LABEL"]

NWUCLA_CLASSES: tuple[str, ...] = (
    "pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down", "stand up",
    "donning", "doffing", "throw", "carry",
)
ACTION_TO_LABEL = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 8: 6, 9: 7, 11: 8, 12: 9}
VIEWS = {"train": (1, 2), "test": (3,)}
_NAME_RE = re.compile(r"^a(\d+)_s(\d+)_e(\d+)_v(\d+)\.json$")


def _sample_folder(path: Path) -> Path:
    if (path / "all_sqe").is_dir():
        return path / "all_sqe"
    return path


@DATASETS.register("nw-ucla")
class NwUclaSource(DatasetSource):
    description = (
        "Northwestern-UCLA (raw all_sqe/*.json; 10 classes, Kinect v1 20 joints, 1 person, metres): "
        "train = views 1+2, test = view 3"
    )
    fps = 30.0

    def load(self, split, data_path):
        path = Path(data_path)
        if sniff(path) != "dir":
            raise UserError(f"{path}: --dataset nw-ucla reads the folder all_sqe/ of a{{AA}}_s{{SS}}_e{{EE}}_v{{VV}}.json files (or its parent)")
        folder = _sample_folder(path)
        samples = []
        for p in sorted(folder.iterdir()):
            m = _NAME_RE.match(p.name)
            if m and p.is_file():
                action, view = int(m.group(1)), int(m.group(4))
                if view in VIEWS[split]:
                    samples.append((p, action))
        if not samples:
            raise UserError(
                f"{folder}: no a{{AA}}_s{{SS}}_e{{EE}}_v{{VV}}.json files of view(s) {', '.join(map(str, VIEWS[split]))} "
                f"(the {split} split); pass the NW-UCLA all_sqe folder"
            )
        sequences, labels = [], []
        for p, action in samples:
            if action not in ACTION_TO_LABEL:
                raise UserError(f"{p}: action a{action:02d} is not one of NW-UCLA's ten (a01-a06, a08, a09, a11, a12)")
            try:
                with open(p, encoding="utf-8") as f:
                    obj = json.load(f)
                seq = np.asarray(obj["skeletons"], dtype=np.float32)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UserError(f"{p}: not readable JSON ({exc})") from None
            except (TypeError, KeyError, ValueError):
                raise UserError(f"{p}: expected an object with 'skeletons': a list of frames of 20 joints x xyz") from None
            if seq.ndim != 3 or seq.shape[0] < 1 or seq.shape[1:] != (20, 3):
                raise UserError(f"{p}: 'skeletons' has shape {seq.shape}, expected (T >= 1, 20 joints, 3)")
            sequences.append(seq)
            labels.append(ACTION_TO_LABEL[action])
        t_max = max(s.shape[0] for s in sequences)
        clips = np.zeros((len(sequences), 3, t_max, 20, 1), dtype=np.float32)
        for i, seq in enumerate(sequences):
            clips[i, :, : seq.shape[0], :, 0] = seq.transpose(2, 0, 1)
        return SkeletonDataset(
            name=self.name,
            version="all_sqe-json",
            split=split,
            layout=NWUCLA20,
            fps=self.fps,
            class_names=NWUCLA_CLASSES,
            clips=clips,
            labels=np.asarray(labels, dtype=np.int64),
            sample_ids=tuple(p.stem for p, _ in samples),
            source=str(folder),
            notes={"format": "all_sqe-json", "views": list(VIEWS[split]), "max_frames": int(t_max), "memory_mapped": False,
                   "fps_note": "nominal 30 fps (Kinect v1)"},
        )
