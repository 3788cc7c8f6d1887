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
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

__all__ = [
    "SCHEMA_VERSION",
    "environment",
    "write_record",
    "read_record",
    "iter_records",
    "validate_record",
    "record_filename",
]

SCHEMA_VERSION = 1
_REQUIRED = ("schema_version", "run_id", "created", "victim", "dataset", "attack", "defense", "seed", "environment", "timing", "metrics")


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

    from . import __version__

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


def validate_record(record: Any, source: str = "record") -> dict:
    if not isinstance(record, dict):
        raise UserError(f"{source} is not a JSON object")
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise UserError(f"{source} is not a run record (missing {', '.join(missing)})")
    if record["schema_version"] != SCHEMA_VERSION:
        raise UserError(f"{source} has schema version {record['schema_version']}, this tool reads {SCHEMA_VERSION}")
    return record


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
    fd, tmp = tempfile.mkstemp(dir=runs, prefix=".partial-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_record(path: str | Path) -> dict:
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read record {str(path)!r}: {exc}") from None
    return validate_record(record, source=str(path))


def iter_records(results_dir: str | Path) -> list[tuple[Path, dict]]:
    runs = Path(results_dir) / "runs"
    if not runs.is_dir():
        return []
    return [(p, read_record(p)) for p in sorted(runs.glob("*.json")) if not p.name.startswith(".")]


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(3).hex()


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def command_line() -> str:
    return " ".join(["python -m robustbench_skel", *sys.argv[1:]])
