"""Per-batch progress of a run, so a killed run continues from its last finished batch.

After every finished batch of :func:`robustbench_skel.run.threats.attack_rows` the batch's adversarial
clips, its per-sample extras and the state of the run's random generators (a randomized defense's
noise streams included) go to one file under ``<results-dir>/.progress/<key>/``, written atomically
(temporary file + rename), so ``kill -9`` leaves either the whole batch or nothing. ``key`` is a
content hash of what determines the crafted clips: the run's configuration without its output-only
fields, the resolved batch size, the victim checkpoint's sha256 and the hash of the evaluated sample
ids; each sanity re-run keeps its batches in a sub-folder (:meth:`BatchCheckpoint.sub`). A re-run of
the same command finds the folder, skips the finished batches and restores the generator state after
the last one, so later batches draw the same numbers and the record equals that of an uninterrupted
run. The folder goes once the record is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_atomic
from .config import RunConfig

__all__ = ["OUTPUT_ONLY_FIELDS", "config_identity", "settings_digest", "progress_key", "BatchCheckpoint", "generator_states",
           "restore_generators", "module_random_states"]

# RunConfig fields that change where and how a result is written, never the result itself.
OUTPUT_ONLY_FIELDS = frozenset({"results_dir", "sweep", "resume"})
_FORMAT = 1


def config_identity(config: Any) -> dict[str, Any]:
    """The fields of a RunConfig that determine its result, as plain JSON values.

    ``config`` is a RunConfig or a record's ``config`` dict; fields missing from an older record take
    RunConfig's defaults, so a record written before a field existed still matches.
    """
    values = asdict(RunConfig())
    given = asdict(config) if not isinstance(config, dict) else config
    values.update({k: v for k, v in given.items() if k in values})
    names = [f.name for f in fields(RunConfig) if f.name not in OUTPUT_ONLY_FIELDS]
    return json.loads(json.dumps({k: values[k] for k in names}, sort_keys=True, default=str))


def settings_digest(settings: Any) -> str:
    """sha256 (hex) of a JSON-able description of settings, the same whatever the order of its keys."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def progress_key(config: Any, batch_size: int, checkpoint_sha256: str | None, sample_ids_sha256: str) -> str:
    """sha256 of what determines the crafted clips of a run (see the module docstring)."""
    spec = {"config": config_identity(config), "batch_size": int(batch_size), "victim_sha256": checkpoint_sha256,
            "sample_ids_sha256": sample_ids_sha256, "format": _FORMAT}
    return settings_digest(spec)


class BatchCheckpoint:
    """The progress folder of one run: one file per finished batch, read back on resume.

    ``fresh=True`` (``--no-resume``) discards what an earlier attempt left and starts over.
    """

    def __init__(self, folder: str | Path, fresh: bool = False) -> None:
        self.folder = Path(folder)
        self.resumed = 0  # batches taken from an earlier attempt
        if fresh:
            shutil.rmtree(self.folder, ignore_errors=True)

    @classmethod
    def for_run(cls, results_dir: str | Path, key: str, fresh: bool = False) -> "BatchCheckpoint":
        return cls(Path(results_dir) / ".progress" / key[:32], fresh=fresh)

    def sub(self, name: str) -> "BatchCheckpoint":
        """The progress of a later stage of the same run (a sanity re-run), in a folder of its own inside this one."""
        return BatchCheckpoint(self.folder / name)

    def _path(self, index: int) -> Path:
        return self.folder / f"batch-{index:06d}.pt"

    def load(self, index: int, rows: torch.Tensor) -> dict[str, Any] | None:
        """Batch ``index``'s saved content, or ``None`` when absent, unreadable or for other rows."""
        path = self._path(index)
        if not path.is_file():
            return None
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # vanished (a concurrent identical run finished) or foreign: recompute it
            return None
        if not isinstance(content, dict) or content.get("format") != _FORMAT or not torch.equal(content["rows"], rows.cpu()):
            return None
        self.resumed += 1
        return content

    def save(self, index: int, content: dict[str, Any]) -> None:
        """Write batch ``index`` atomically: a killed run leaves the whole file or none."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self._path(index), lambda handle: torch.save({"format": _FORMAT, **content}, handle), suffix=".pt")

    def discard(self) -> None:
        """Remove the folder (after the record is written), and ``.progress`` itself once empty."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()
        except OSError:
            pass


def generator_states(generator: torch.Generator, handed: Any = None) -> dict[str, Any]:
    """The run's generator, torch's global ones (randomized defenses may use the latter) and the noise
    streams of any module of ``handed`` that keeps its own (see :func:`module_random_states`), as saved
    after a batch."""
    states: dict[str, Any] = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if generator.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(generator.device)
    modules = module_random_states(handed)
    if modules:
        states["modules"] = modules
    return states


def restore_generators(generator: torch.Generator, states: dict[str, Any], handed: Any = None) -> None:
    generator.set_state(states["generator"])
    torch.set_rng_state(states["torch"])
    if generator.device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], generator.device)
    if isinstance(handed, torch.nn.Module) and states.get("modules"):
        by_name = dict(handed.named_modules())
        for name, state in states["modules"].items():
            if name in by_name:
                by_name[name].set_random_state(state)


def module_random_states(handed: Any) -> dict[str, dict[str, torch.Tensor]]:
    """``{module name: module.random_state()}`` over the modules of ``handed`` that draw from generators of
    their own (randomized smoothing's noise) and say so by defining ``random_state``/``set_random_state``:
    without them a resumed run would restart those streams and draw other noise than an uninterrupted one."""
    if not isinstance(handed, torch.nn.Module):
        return {}
    return {name: module.random_state() for name, module in handed.named_modules()
            if callable(getattr(module, "random_state", None)) and callable(getattr(module, "set_random_state", None))}
