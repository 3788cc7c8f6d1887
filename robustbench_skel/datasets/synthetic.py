"""The embedded default benchmark ``synth``: generated on first use, then read from a cache.

The generator lives in :mod:`robustbench_skel.datasets.synth`; this module registers it as a dataset
source and caches each split as an ``.npz`` under the user cache directory (``$ROBUSTBENCH_SKEL_CACHE``
or ``~/.cache/robustbench_skel``), keyed by the generator version so a changed generator never
serves stale data.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..layout import NTU25
from ..registry import DATASETS
from . import synth, synth2
from .base import DatasetSource, SkeletonDataset

__all__ = ["SynthSource", "Synth2Source", "cache_dir"]


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


@DATASETS.register("synth")
class SynthSource(DatasetSource):
    description = (
        f"SYNTHETIC procedural benchmark (not real motion capture): {len(synth.SYNTH_ACTIONS)} NTU-like actions, "
        f"{synth.NUM_SUBJECTS} subjects, NTU-25 layout, metres, {synth.SYNTH_FPS} fps, cross-subject split; no download"
    )
    synthetic = True
    needs_path = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def load(self, split, data_path):
        if data_path is not None:
            from ..errors import UserError

            raise UserError("dataset 'synth' is generated, not read: drop --data-path or name your dataset with --dataset")
        path = cache_dir() / f"synth-v{synth.SYNTH_VERSION}-seed{self.seed}-{split}.npz"
        arrays = _cached_split(path, lambda: synth.generate_split(split, seed=self.seed))
        return SkeletonDataset(
            name="synth",
            version=synth.SYNTH_VERSION,
            split=split,
            layout=NTU25,
            fps=float(synth.SYNTH_FPS),
            class_names=tuple(synth.SYNTH_ACTIONS),
            clips=arrays["clips"],
            labels=arrays["labels"].astype(np.int64),
            sample_ids=tuple(str(s) for s in arrays["sample_ids"]),
            synthetic=True,
            source="synth (procedural)",
        )


def generator_sha256() -> str:
    """sha256 of the synth 2.0 generator's source: a changed generator never serves a stale cache, and a
    record says which generator made its clips."""
    from . import synth_actions, synth_body, synth_sensor

    digest = hashlib.sha256()
    for module in (synth2, synth_actions, synth_body, synth_sensor):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


@DATASETS.register("synth2")
class Synth2Source(DatasetSource):
    """``synth`` 2.0 under its preview name, while the victims are retrained on it.

    Once every shipped victim has synth 2.0 weights, 2.0 becomes ``synth`` and this name goes.
    """

    description = (
        f"SYNTHETIC procedural benchmark 2.0 (preview; not real motion capture): {len(synth2.SYNTH_ACTIONS)} NTU-like "
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

            raise UserError("dataset 'synth2' is generated, not read: drop --data-path or name your dataset with --dataset")
        generator = generator_sha256()
        path = cache_dir() / f"synth-v{synth2.SYNTH_VERSION}-{generator[:12]}-seed{self.seed}-{split}.npz"
        arrays = _cached_split(path, lambda: synth2.generate_split(split, seed=self.seed))
        return SkeletonDataset(
            name="synth",  # synth version 2.0: records name it so already, under its preview name too
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
            weights_key="synth2",  # shipped synth 2.0 weights sit beside the 1.0 ones until 2.0 becomes the default
        )
