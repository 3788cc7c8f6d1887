"""Run records: one schema-versioned JSON file per run, the single source of truth.

A record holds everything needed to reproduce and to trust a number: victim (name, checkpoint
sha256), dataset (name, version, split, sample ids and their hash), attack (name, threat model,
every hyperparameter), defense, seed, versions, device, git commit, wall time, and each metric with
its 95% confidence interval. Records are written atomically (temporary file + rename), so an
interrupted run leaves no half-written record behind.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_text_atomic
from ..errors import UserError
from ..record_schema import SCHEMA_VERSION, check_record

__all__ = [
    "SCHEMA_VERSION",
    "environment",
    "write_record",
    "as_json",
    "read_record",
    "iter_records",
    "scan_records",
    "validate_record",
    "record_filename",
]



def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return out + ("-dirty" if dirty else "") if out else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str) -> dict[str, Any]:
    import scipy
    import torch

    from .._version import __version__

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "robustbench_skel": __version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "git_commit": _git_commit(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def _jsonable(obj: Any) -> Any:
    """Plain JSON types; NaN and Inf become ``null`` so every record is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def as_json(record: dict) -> dict:
    """The record as :func:`write_record` stores it: plain JSON types, NaN and Inf as ``null``."""
    return _jsonable(record)


def record_filename(record: dict) -> str:
    attack = record["attack"]
    parts = [
        record["dataset"]["name"],
        record["victim"]["name"],
        attack["name"] + ("-targeted" if attack.get("targeted") else ""),
        f"eps{attack['eps']:g}" if attack.get("eps") is not None else None,
        (record.get("defense") or {}).get("name"),
        record["run_id"],
    ]
    return "_".join(p.replace("/", "-") for p in parts if p) + ".json"


def validate_record(record: Any, source: str = "record", needs: tuple[str, ...] = ()) -> dict:
    """``record`` checked against the one record schema (:mod:`robustbench_skel.record_schema`)."""
    return check_record(record, source, needs)


def write_record(record: dict, results_dir: str | Path) -> Path:
    """Write ``record`` under ``results_dir/runs/`` atomically and return its path."""
    record = _jsonable(record)
    validate_record(record)
    runs = Path(results_dir) / "runs"
    try:
        runs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the results folder {str(runs)!r}: {exc.strerror}; check --results-dir") from None
    path = runs / record_filename(record)
    text = json.dumps(record, indent=1, sort_keys=False, allow_nan=False) + "\n"
    write_text_atomic(path, text, sync=True)
    return path


def read_record(path: str | Path, needs: tuple[str, ...] = ()) -> dict:
    """The record at ``path``, checked against the schema (plus the fields in ``needs``), or a UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{str(path)!r} is a folder; give a record file (results/runs/<name>.json)")
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"record {str(path)!r} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read record {str(path)!r}: {exc}") from None
    return validate_record(record, source=str(path), needs=needs)


def _record_files(results_dir: str | Path) -> list[Path]:
    runs = Path(results_dir) / "runs"
    if not runs.is_dir():
        return []
    return [p for p in sorted(runs.glob("*.json")) if not p.name.startswith(".")]


def iter_records(results_dir: str | Path, needs: tuple[str, ...] = ()) -> list[tuple[Path, dict]]:
    """Every record under ``results_dir/runs/``; the first one that breaks the schema is a UserError."""
    return [(p, read_record(p, needs)) for p in _record_files(results_dir)]


def scan_records(results_dir: str | Path, needs: tuple[str, ...] = ()) -> tuple[list[tuple[Path, dict]], list[tuple[Path, str]]]:
    """Like :func:`iter_records`, but a record that breaks the schema is set aside with the reason:
    ``(records, [(path, why), ...])``, so a caller can list what it skipped instead of stopping."""
    good, skipped = [], []
    for path in _record_files(results_dir):
        try:
            good.append((path, read_record(path, needs)))
        except UserError as exc:
            skipped.append((path, str(exc)))
    return good, skipped


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(3).hex()


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def command_line() -> str:
    return " ".join(["python -m robustbench_skel", *sys.argv[1:]])
