"""NTU RGB+D 60 / 120 from the three formats users hold: ``ntu60-xsub``, ``ntu60-xview``, ``ntu120-xsub``, ``ntu120-xset``.

The format is recognised from ``--data-path``:

1. a CTR-GCN-family ``.npz`` (a zip with ``x_train``, ``y_train``, ``x_test``, ``y_test``; x float
   ``(N, T, 150)`` person-major, y one-hot): memory-mapped (uncompressed members), sample ids
   ``<split>-<index>``;
2. an ST-GCN / 2s-AGCN / MS-G3D folder, ``<split>_data[_joint].npy`` file or ``<split>_label.pkl``
   file: memory-mapped ``.npy``, names from the label pickle;
3. a PYSKL / mmaction2 annotation pickle (a dict with ``split`` and ``annotations``): read whole.

The dataset name picks the split family where the file holds several (PYSKL's ``xsub_val``...). An
``.npz`` or ``.npy`` *is* one family's split: it is read as given, but a file whose name says it is
another family or edition (``NTU60_CV.npz`` for ``ntu60-xsub``) is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import UserError
from ..layout import NTU25
from ..registry import DATASETS
from .base import DatasetSource, SkeletonDataset
from .fileformat import check_name_hints, sniff
from .npz import labels_from_array
from .npzmap import MappedNpz
from .pyskl import read_pyskl
from .safe_pickle import load_pickle
from .stgcn_pair import find_pair, pair_from_label_file, read_pair

__all__ = ["NTU120_CLASSES", "NtuSource"]

NTU120_CLASSES: tuple[str, ...] = (
    # A001-A060: NTU RGB+D 60
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw",
    "sitting down", "standing up (from sitting position)", "clapping", "reading", "writing", "tear up paper",
    "wear jacket", "take off jacket", "wear a shoe", "take off a shoe", "wear on glasses", "take off glasses",
    "put on a hat/cap", "take off a hat/cap", "cheer up", "hand waving", "kicking something", "reach into pocket",
    "hopping (one foot jumping)", "jump up", "make a phone call/answer phone", "playing with phone/tablet",
    "typing on a keyboard", "pointing to something with finger", "taking a selfie", "check time (from watch)",
    "rub two hands together", "nod head/bow", "shake head", "wipe face", "salute", "put the palms together",
    "cross hands in front (say stop)", "sneeze/cough", "staggering", "falling", "touch head (headache)",
    "touch chest (stomachache/heart pain)", "touch back (backache)", "touch neck (neckache)",
    "nausea or vomiting condition", "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
    "kicking other person", "pushing other person", "pat on back of other person", "point finger at the other person",
    "hugging other person", "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
    # A061-A120: added in NTU RGB+D 120
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball", "tennis bat swing",
    "juggling table tennis balls", "hush (quite)", "flick hair", "thumb up", "thumb down", "make ok sign",
    "make victory sign", "staple book", "counting money", "cutting nails", "cutting paper (using scissors)",
    "snapping fingers", "open bottle", "sniff (smell)", "squat down", "toss a coin", "fold paper", "ball up paper",
    "play magic cube", "apply cream on face", "apply cream on hand back", "put on bag", "take off bag",
    "put something into a bag", "take something out of a bag", "open a box", "move heavy objects", "shake fist",
    "throw up cap/hat", "hands up (both hands)", "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself", "blow nose",
    "hit other person with something", "wield knife towards other person", "knock over other person (hit with body)",
    "grab other person's stuff", "shoot at other person with a gun", "step on foot", "high-five", "cheers and drink",
    "carry something with other person", "take a photo of other person", "follow other person",
    "whisper in other person's ear", "exchange things with other person", "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",
)
assert len(NTU120_CLASSES) == 120

_FAMILY_TITLE = {"xsub": "cross-subject", "xview": "cross-view", "xset": "cross-setup"}
FORMATS_ACCEPTED = (
    "a CTR-GCN-family .npz (x_train/y_train/x_test/y_test), an ST-GCN/2s-AGCN/MS-G3D folder or "
    "<split>_data_joint.npy with its <split>_label.pkl, or a PYSKL/mmaction2 annotation .pkl"
)


class NtuSource(DatasetSource):
    """One NTU edition and split family; subclasses set :attr:`edition` and :attr:`family`."""

    edition: ClassVar[str] = ""
    family: ClassVar[str] = ""
    num_classes: ClassVar[int] = 0
    fps: ClassVar[float] = 30.0

    def load(self, split, data_path):
        path = Path(data_path)
        kind = sniff(path)
        if kind == "npz":
            self._check_names(path)
            clips, labels, ids, notes = self._read_ctrgcn_npz(path, split)
            source = path
        elif kind in ("dir", "npy"):
            try:
                data, label = find_pair(path, split)
            except UserError as exc:
                if kind == "npy":
                    raise
                raise UserError(f"{exc}; --dataset {self.name} reads {FORMATS_ACCEPTED}") from None
            self._check_names(data)
            clips, labels, ids = read_pair(data, label)
            notes = {"format": "stgcn-npy", "label_file": label.name, "memory_mapped": isinstance(clips, np.memmap)}
            source = data
        elif kind == "pickle":
            self._check_names(path)
            obj = load_pickle(path)
            if isinstance(obj, (tuple, list)) and path.name.endswith("_label.pkl"):  # an ST-GCN label file given directly
                data, label = pair_from_label_file(path, split)
                clips, labels, ids = read_pair(data, label)
                notes = {"format": "stgcn-npy", "label_file": label.name, "memory_mapped": isinstance(clips, np.memmap)}
                source = data
            else:
                clips, labels, ids, notes = self._read_pyskl(path, split, obj)
                source = path
        else:
            raise UserError(f"{path}: unrecognised format; --dataset {self.name} reads {FORMATS_ACCEPTED}")
        notes = {"file": source.name, **notes}
        return SkeletonDataset(
            name=self.name,
            version=notes["format"],
            split=split,
            layout=NTU25,
            fps=self.fps,
            class_names=NTU120_CLASSES[: self.num_classes],
            clips=clips,
            labels=labels,
            sample_ids=ids,
            source=str(source),
            notes=notes,
        )

    def _check_names(self, path: Path) -> None:
        check_name_hints(path, self.name, family=self.family, edition=self.edition)

    def _read_ctrgcn_npz(self, path: Path, split: str):
        npz = MappedNpz(path)
        xk, yk = f"x_{split}", f"y_{split}"
        if xk not in npz or yk not in npz:
            hint = "; it looks like a BEAT/TASAR file: read it with --dataset npz" if "clips" in npz else ""
            raise UserError(f"{path}: expected arrays {xk!r} and {yk!r} (CTR-GCN format), found {sorted(npz.files)}{hint}")
        x, mapped = npz.array(xk)
        where = f"{path} [{xk}]"
        if x.ndim != 3 or x.shape[2] != 2 * 25 * 3:
            raise UserError(f"{where}: expected (N, T, 150) = 2 persons x 25 joints x xyz, got shape {tuple(x.shape)}")
        if not np.issubdtype(x.dtype, np.floating):
            raise UserError(f"{where}: clips must be floating point, got {x.dtype}")
        if not x.flags.c_contiguous:  # a Fortran-ordered member would be copied by the reshape anyway
            x, mapped = np.ascontiguousarray(x), False
        n, t, _ = x.shape
        clips = x.reshape(n, t, 2, 25, 3).transpose(0, 4, 1, 3, 2)  # (N, T, M, V, C) -> (N, C, T, V, M), a view
        y, _ = npz.array(yk)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] != self.num_classes:
            raise UserError(
                f"{path} [{yk}]: one-hot labels over {y.shape[1]} classes, but {self.name} has {self.num_classes}; "
                "check --dataset (ntu60-* or ntu120-*)"
            )
        labels = labels_from_array(y, f"{path} [{yk}]")
        if labels.shape[0] != n:
            raise UserError(f"{path}: {n} clips in {xk} but {labels.shape[0]} labels in {yk}")
        notes = {"format": "ctrgcn-npz", "member": xk, "memory_mapped": bool(mapped)}
        if not mapped:
            notes["memory_note"] = f"{xk} is stored compressed, so it was read into memory (np.savez files are mapped)"
        return clips, labels, tuple(f"{split}-{i:06d}" for i in range(n)), notes

    def _read_pyskl(self, path: Path, split: str, obj: object):
        if isinstance(obj, dict) and isinstance(obj.get("split"), dict):
            keys = {str(k) for k in obj["split"]}
            other = {"ntu60": "xset", "ntu120": "xview"}[self.edition]  # a family only the other edition has
            if any(k.startswith(other + "_") for k in keys):
                edition = "ntu120" if other == "xset" else "ntu60"
                raise UserError(
                    f"{path}: has {other} splits, so it is {edition.upper()} data, but --dataset {self.name} reads "
                    f"{self.edition.upper()}; pick an {edition}-* dataset"
                )
        split_key = f"{self.family}_{'train' if split == 'train' else 'val'}"
        clips, labels, ids, notes = read_pyskl(path, split_key, num_joints=25, obj=obj)
        return clips, labels, ids, {"format": "pyskl-pkl", "memory_mapped": False, **notes}


def _register(edition: str, family: str, num_classes: int) -> None:
    name = f"{edition}-{family}"
    title = "NTU RGB+D 60" if edition == "ntu60" else "NTU RGB+D 120"
    cls = type(
        f"{edition.capitalize()}{family.capitalize()}Source",
        (NtuSource,),
        {
            "edition": edition,
            "family": family,
            "num_classes": num_classes,
            "__doc__": f"{title}, {_FAMILY_TITLE[family]} split.",
            "description": (
                f"{title} {_FAMILY_TITLE[family]} ({num_classes} classes, NTU-25, metres, 30 fps): "
                "CTR-GCN .npz, ST-GCN/2s-AGCN/MS-G3D .npy+_label.pkl, or PYSKL/mmaction2 .pkl"
            ),
            "__module__": __name__,
        },
    )
    DATASETS.register(name)(cls)
    globals()[cls.__name__] = cls


for _edition, _family, _k in (("ntu60", "xsub", 60), ("ntu60", "xview", 60), ("ntu120", "xsub", 120), ("ntu120", "xset", 120)):
    _register(_edition, _family, _k)
