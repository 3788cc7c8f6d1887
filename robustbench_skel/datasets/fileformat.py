"""Recognising the user's files: what a path holds (by its first bytes) and what its name says.

:func:`sniff` tells a zip (``.npz``), a ``.npy``, a pickle and JSON apart by content, falling back to
the suffix only where content cannot tell (protocol-0/1 pickles). :func:`name_hints` reads the split
family (``xsub``/``xview``/``xset``), the NTU edition (60/120) and the split (train/test) that the
usual file and folder names announce (``NTU60_CV.npz``, ``ntu120/xset/val_data_joint.npy``,
``classTest.npz``), so that a reader can refuse a file that plainly belongs to another dataset
instead of silently evaluating on it.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import UserError

__all__ = ["sniff", "name_hints", "check_name_hints", "strip_sample_suffix"]

_FAMILY_TOKENS = {
    "cs": "xsub", "csub": "xsub", "xsub": "xsub",
    "cv": "xview", "xview": "xview",
    "cset": "xset", "xset": "xset",
}
_EDITION_TOKENS = {"ntu60": "ntu60", "ntu120": "ntu120"}
# Folder names only count when they are unmistakable (data/ntu120/xsub/...), not short words like "cs".
_FOLDER_TOKENS = {"xsub", "xview", "xset", "ntu60", "ntu120"}
_SPLIT_TOKENS = {"train": "train", "classtrain": "train", "val": "test", "test": "test", "classtest": "test"}


def sniff(path: Path) -> str | None:
    """``'dir'``, ``'npz'``, ``'npy'``, ``'pickle'``, ``'json'``, or ``None`` when unrecognised."""
    if path.is_dir():
        return "dir"
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "npz"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        return "pickle"
    if suffix == ".json" or head.lstrip()[:1] in (b"{", b"["):
        return "json"
    return None


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


def name_hints(path: Path, levels: int = 2) -> dict[str, set[str]]:
    """Split family, NTU edition and split announced by the name of ``path`` and its parent folder.

    The file's own name counts in full (``NTU60_CV``, ``NTU120_CSub``, ``classTest``); the parent
    folder only with the unmistakable ``xsub``/``xview``/``xset``/``ntu60``/``ntu120``.
    """
    hints: dict[str, set[str]] = {"family": set(), "edition": set(), "split": set()}
    parts = [path.stem if path.suffix else path.name]
    if levels > 1 and path.parent.name:
        parts.append(path.parent.name)
    for i, part in enumerate(parts):
        for tok in _tokens(part):
            if i > 0 and tok not in _FOLDER_TOKENS:
                continue
            if tok in _FAMILY_TOKENS:
                hints["family"].add(_FAMILY_TOKENS[tok])
            if tok in _EDITION_TOKENS:
                hints["edition"].add(_EDITION_TOKENS[tok])
            if i == 0 and tok in _SPLIT_TOKENS:  # only the file itself names a split
                hints["split"].add(_SPLIT_TOKENS[tok])
    return hints


def check_name_hints(
    path: Path, dataset: str, *, family: str | None = None, edition: str | None = None, split: str | None = None
) -> None:
    """Refuse ``path`` when its name unambiguously announces another family, edition or split."""
    hints = name_hints(path)
    for kind, wanted in (("family", family), ("edition", edition), ("split", split)):
        said = hints[kind]
        if wanted is None or len(said) != 1 or wanted in said:
            continue
        (other,) = said
        if kind == "split":
            raise UserError(
                f"{path} is the {other} split by its name, but --split {wanted} was asked for; "
                "pass the folder, the matching file, or the matching --split"
            )
        raise UserError(
            f"{path} looks like {other} data by its name, but --dataset {dataset} reads {wanted}; "
            "pick the --dataset that matches the file (or rename the file if its name is wrong)"
        )


def strip_sample_suffix(name: str) -> str:
    """Sample names as the converters store them, without ``.skeleton`` / ``.json``."""
    for suffix in (".skeleton", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
