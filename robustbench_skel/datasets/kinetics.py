"""Kinetics-skeleton as released with ST-GCN: ``--dataset kinetics-skeleton``.

Two forms are read:

* the converted ``<split>_data[_joint].npy`` + ``<split>_label.pkl`` pair ``(N, 3, 300, 18, 2)``
  (memory-mapped), found in the folder given or given directly;
* the raw JSON release: a folder ``kinetics_val/`` (or ``kinetics_train/``) of ``<video id>.json``
  files next to ``kinetics_val_label.json``; pass the folder holding both, or the ``kinetics_val``
  folder itself. It is converted the way ST-GCN's ``kinetics_gendata.py`` does: the first 5 people
  of each frame are observed, x and y shifted by -0.5 and zeroed where the score is 0, 300 frames,
  the people of each frame sorted by their summed score and the best 2 kept; videos whose label
  entry says ``has_skeleton: false`` are skipped.

C is ``(x, y, score)`` with x, y in frame-normalised units, **not metres**: budgets and
perceptibility numbers are in those units, and attacks perturb the score channel too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..layout import OPENPOSE18
from ..registry import DATASETS
from .base import DatasetSource, SkeletonDataset
from .fileformat import sniff
from .safe_pickle import load_pickle
from .stgcn_pair import DATA_NAMES, find_pair, pair_from_label_file, read_pair

__all__ = ["KineticsSkeletonSource", "convert_video", "NUM_CLASSES", "MAX_FRAMES"]

NUM_CLASSES = 400
MAX_FRAMES = 300
NUM_JOINTS = 18
PERSONS_OBSERVED = 5
PERSONS_KEPT = 2
_PREFIX = {"train": "train", "test": "val"}
COORDINATES_NOTE = "C = (x, y, score): x, y normalised to the frame and shifted by -0.5, score = OpenPose confidence; not metres"


def convert_video(video: dict, where: str) -> np.ndarray:
    """One video's JSON as ``(3, 300, 18, 2)`` float32, following ``kinetics_gendata.py``."""
    data = np.zeros((3, MAX_FRAMES, NUM_JOINTS, PERSONS_OBSERVED))
    frames = video.get("data") if isinstance(video, dict) else None
    if not isinstance(frames, list):
        raise UserError(f"{where}: expected a JSON object with a 'data' list of frames")
    for frame in frames:
        try:
            index = frame["frame_index"]
            people = frame["skeleton"]
        except (TypeError, KeyError):
            raise UserError(f"{where}: every frame needs 'frame_index' and 'skeleton'") from None
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise UserError(f"{where}: frame_index must be a non-negative integer, got {index!r}")
        if index >= MAX_FRAMES:  # the official converter has no room for them either
            continue
        for m, person in enumerate(people):
            if m >= PERSONS_OBSERVED:
                break
            try:
                pose = np.asarray(person["pose"], dtype=np.float64)
                score = np.asarray(person["score"], dtype=np.float64)
            except (TypeError, KeyError, ValueError):
                raise UserError(f"{where}: every skeleton needs numeric 'pose' and 'score' lists") from None
            if pose.shape != (2 * NUM_JOINTS,) or score.shape != (NUM_JOINTS,):
                raise UserError(
                    f"{where}: frame {index}: pose has {pose.size} values and score {score.size}; "
                    f"expected {2 * NUM_JOINTS} and {NUM_JOINTS} (OpenPose 18 joints)"
                )
            data[0, index, :, m] = pose[0::2]
            data[1, index, :, m] = pose[1::2]
            data[2, index, :, m] = score
    data[0:2] -= 0.5
    data[0][data[2] == 0] = 0
    data[1][data[2] == 0] = 0
    order = np.argsort(-data[2].sum(axis=1), axis=1, kind="stable")  # (T, M): people by summed score
    data = np.take_along_axis(data, order[None, :, None, :], axis=3)
    return data[..., :PERSONS_KEPT].astype(np.float32)


def _read_json(path: Path, where: str | None = None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{where or path}: not readable JSON ({exc})") from None


def _json_release(path: Path, split: str) -> tuple[Path, Path] | None:
    """``(video folder, label file)`` when ``path`` is (or holds) the JSON release for ``split``."""
    prefix = _PREFIX[split]
    sub = path / f"kinetics_{prefix}"
    if sub.is_dir():
        return sub, path / f"kinetics_{prefix}_label.json"
    if any(p.is_file() and not p.name.endswith("_label.json") for p in path.glob("*.json")):
        other = {"train": "val", "val": "train"}[prefix]
        if path.name == f"kinetics_{other}":
            raise UserError(
                f"{path} is the {'test' if other == 'val' else 'train'} split by its name, but --split {split} was asked for"
            )
        return path, path.parent / f"{path.name}_label.json"
    return None


@DATASETS.register("kinetics-skeleton")
class KineticsSkeletonSource(DatasetSource):
    description = (
        "Kinetics-skeleton (ST-GCN release; 400 classes, OpenPose-18, 300 frames, 30 fps): JSON folder or "
        ".npy+_label.pkl; C = (x, y, score) in frame units, NOT metres"
    )
    fps = 30.0

    def load(self, split, data_path):
        path = Path(data_path)
        kind = sniff(path)
        class_names = [f"class_{k}" for k in range(NUM_CLASSES)]
        notes: dict = {"coordinates": COORDINATES_NOTE}
        if kind == "dir" and not any((path / p.format(p=_PREFIX[split])).is_file() for p in DATA_NAMES):
            release = _json_release(path, split)
            if release is None:
                raise UserError(
                    f"{path}: holds neither kinetics_{_PREFIX[split]}/ with kinetics_{_PREFIX[split]}_label.json nor "
                    f"{_PREFIX[split]}_data.npy with {_PREFIX[split]}_label.pkl; --dataset kinetics-skeleton reads "
                    "the ST-GCN JSON release or its .npy+_label.pkl conversion"
                )
            clips, labels, ids, found_names = self._read_json_release(*release)
            for k, label in found_names.items():
                class_names[k] = label
            notes.update(format="kinetics-json", file=release[0].name, label_file=release[1].name, memory_mapped=False)
            source = release[0]
        elif kind in ("dir", "npy", "pickle"):
            if kind == "pickle":
                obj = load_pickle(path)
                if not isinstance(obj, (tuple, list)):
                    raise UserError(f"{path}: expected the (sample_names, labels) tuple of an ST-GCN <split>_label.pkl")
                data, label = pair_from_label_file(path, split)
            else:
                data, label = find_pair(path, split)
            clips, labels, ids = read_pair(data, label)
            notes.update(format="stgcn-npy", file=data.name, label_file=label.name, memory_mapped=isinstance(clips, np.memmap))
            source = data
        else:
            raise UserError(
                f"{path}: unrecognised format; --dataset kinetics-skeleton reads the ST-GCN JSON release "
                "(kinetics_val/ + kinetics_val_label.json) or <split>_data.npy with <split>_label.pkl"
            )
        return SkeletonDataset(
            name=self.name,
            version=notes["format"],
            split=split,
            layout=OPENPOSE18,
            fps=self.fps,
            class_names=tuple(class_names),
            clips=clips,
            labels=labels,
            sample_ids=ids,
            source=str(source),
            notes=notes,
            coordinate_unit="frame units",
        )

    @staticmethod
    def _read_json_release(video_dir: Path, label_file: Path):
        if not label_file.is_file():
            raise UserError(f"{video_dir}: its label file {label_file.name} is missing from {label_file.parent}")
        info = _read_json(label_file)
        if not isinstance(info, dict):
            raise UserError(f"{label_file}: expected an object {{video_id: {{has_skeleton, label, label_index}}}}")
        files = sorted(p for p in video_dir.glob("*.json") if p.is_file())
        keep, labels, names = [], [], {}
        for p in files:
            entry = info.get(p.stem)
            if not isinstance(entry, dict) or "label_index" not in entry:
                raise UserError(f"{p}: video {p.stem!r} has no entry with a label_index in {label_file.name}")
            if not entry.get("has_skeleton", True):
                continue
            k = entry["label_index"]
            if isinstance(k, bool) or not isinstance(k, int):
                raise UserError(f"{label_file}: label_index of {p.stem!r} must be an integer, got {k!r}")
            keep.append(p)
            labels.append(k)
            if isinstance(entry.get("label"), str) and 0 <= k < NUM_CLASSES:
                names.setdefault(k, entry["label"])
        if not keep:
            raise UserError(f"{video_dir}: no video with a skeleton (has_skeleton true) to read")
        clips = np.zeros((len(keep), 3, MAX_FRAMES, NUM_JOINTS, PERSONS_KEPT), dtype=np.float32)
        for i, (p, k) in enumerate(zip(keep, labels)):
            video = _read_json(p)
            clips[i] = convert_video(video, str(p))
            own = video.get("label_index")
            if own is not None and own != k:
                raise UserError(f"{p}: label_index {own!r} disagrees with {k!r} in {label_file.name}")
        return clips, np.asarray(labels, dtype=np.int64), tuple(p.stem for p in keep), names
