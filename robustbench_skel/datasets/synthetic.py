"""The embedded default benchmark ``synth`` (version 2.0): generated on first use, then read from a cache.

The generator lives in :mod:`robustbench_skel.datasets.synth2` (with ``synth_actions``, ``synth_body`` and
``synth_sensor``); this module registers it as a dataset source and caches each split as an ``.npz``
under the user cache directory (``$ROBUSTBENCH_SKEL_CACHE`` or ``~/.cache/robustbench_skel``), keyed by
the version and the generator's source hash, so a changed generator never serves stale data. Version 1.0
(12 clean single-person actions) is in the project's history; its records and weights were removed when
2.0 became the default, so no table mixes the two.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..layout import NTU25
from ..registry import DATASETS
from . import synth2
from .base import DatasetSource, SkeletonDataset

__all__ = ["SynthSource", "cache_dir", "generator_sha256"]


def cache_dir() -> Path:
    root = os.environ.get("ROBUSTBENCH_SKEL_CACHE") or Path.home() / ".cache" / "robustbench_skel"
    return Path(root)


def _cached_split(path: Path, generate) -> dict[str, np.ndarray]:
    """The split's arrays from the cache at ``path``, else ``generate()`` (a ``SynthClips``) written there.

    A damaged cache is regenerated, not trusted; an unwritable one only costs regeneration next time.
    """
    if path.is_file():
        try:
            with np.load(path) as f:
                return {k: f[k] for k in ("clips", "labels", "sample_ids")}
        except Exception:
            pass
    data = generate()
    arrays = {"clips": data.clips, "labels": data.labels, "sample_ids": np.array(data.sample_ids)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda handle: np.savez(handle, **arrays), suffix=".npz")
    except OSError:
        pass
    return arrays


def generator_sha256() -> str:
    """sha256 of the synth 2.0 generator's source: a changed generator never serves a stale cache, and a
    record says which generator made its clips."""
    from . import synth_actions, synth_body, synth_sensor

    digest = hashlib.sha256()
    for module in (synth2, synth_actions, synth_body, synth_sensor):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


@DATASETS.register("synth")
class SynthSource(DatasetSource):
    """``synth`` version 2.0; ``synth2`` is the same data under the name it had while the victims were
    retrained on it (commands and records of that time keep working)."""

    description = (
        f"SYNTHETIC procedural benchmark 2.0 (not real motion capture): {len(synth2.SYNTH_ACTIONS)} NTU-like "
        f"classes incl. two-person interactions, {synth2.NUM_SUBJECTS} performers, 3 Kinect views with a Kinect v2 "
        "sensor model, NTU-25 layout, metres, 30 fps; splits train/test (cross-subject), xview-train/xview-test"
    )
    synthetic = True
    needs_path = False
    splits = synth2.SPLITS

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def load(self, split, data_path):
        if data_path is not None:
            from ..errors import UserError

            raise UserError("dataset 'synth' is generated, not read: drop --data-path or name your dataset with --dataset")
        generator = generator_sha256()
        path = cache_dir() / f"synth-v{synth2.SYNTH_VERSION}-{generator[:12]}-seed{self.seed}-{split}.npz"
        arrays = _cached_split(path, lambda: synth2.generate_split(split, seed=self.seed))
        return SkeletonDataset(
            name="synth",  # under either name: records of the preview name are synth 2.0 records
            version=synth2.SYNTH_VERSION,
            split=split,
            layout=NTU25,
            fps=float(synth2.SYNTH_FPS),
            class_names=tuple(synth2.SYNTH_ACTIONS),
            clips=arrays["clips"],
            labels=arrays["labels"].astype(np.int64),
            sample_ids=tuple(str(s) for s in arrays["sample_ids"]),
            synthetic=True,
            source="synth 2.0 (procedural)",
            notes={"generator_sha256": generator},
        )


DATASETS.alias("synth2", "synth")  # the name of synth 2.0 while the victims were retrained on it
