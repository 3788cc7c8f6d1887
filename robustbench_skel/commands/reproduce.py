"""``reproduce RECORD``: re-run a record's exact configuration and compare every metric.

A record is only as good as its claim that the same command gives the same numbers. The configuration
comes from ``record["config"]`` (or, for records written before it existed, from parsing
``record["command"]`` with the CLI's own parser). Before spending any compute, the victim's checkpoint
sha256, the dataset version and the evaluated sample ids must match the record's; otherwise the run
would answer a different question and ``reproduce`` refuses.

Tolerances. With the same code (a clean git commit equal to the recorded one), torch build, machine
architecture, device and thread count as recorded, every metric and flag must be identical (bit for
bit after the JSON round trip). Otherwise floating-point sums round differently, and sign-based steps
(PGD) turn a last-bit change of a gradient into a whole step, so the comparison is statistical:

- counts (successes, correct clips, lost successes, ...) within ``max(1, 2% of n)`` samples;
  proportions are compared through their counts, and sample sizes ``n`` of proportions exactly;
- a mean over the successful clips (imperceptibility, iterations) within 1% relative when it is over
  the same number of clips, else inside the record's 95% confidence interval (the clips differ);
- flags exactly, except the sanity checks' (they re-attack small subsets and may flip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

from ..errors import UserError
from ..run.config import RunConfig, config_from_record
from ..run.record import _jsonable, read_record

__all__ = ["Reproduction", "reproduce_record", "compare_metrics"]

REL_TOL = 1e-2
ABS_TOL = 1e-9
COUNT_FRACTION = 0.02
_IDENTITY = ("robustbench_skel", "git_commit", "torch", "machine", "device", "torch_threads")


@dataclass
class Reproduction:
    table: str
    differing: list[str]
    mode: str
    record: dict


def _check_inputs(record: dict, config) -> None:
    """Refuse before any compute when the weights or the evaluated samples are not the record's."""
    from ..run.runner import load_dataset, resolve_device, select_samples
    from ..victim import load_victim

    dataset = load_dataset(config.dataset, config.split, config.data_path, config.seed, config.unit)
    want = record["dataset"]
    if str(dataset.version) != str(want.get("version")):
        raise UserError(f"dataset {dataset.name!r} is version {dataset.version} here but {want.get('version')} in the record; "
                        "reproduce needs the recorded data")
    subset = dataset.subset(select_samples(dataset, config.n_samples))
    if want.get("sample_ids_sha256") and subset.ids_sha256() != want["sample_ids_sha256"]:
        raise UserError(f"the evaluated sample ids hash {subset.ids_sha256()[:12]}... differs from the record's "
                        f"{want['sample_ids_sha256'][:12]}...; the data at hand is not the recorded data")
    victim = load_victim(config.victim, dataset.num_classes, dataset.layout, dataset.name, config.checkpoint,
                         resolve_device(config.device))
    recorded = record["victim"].get("checkpoint_sha256")
    if recorded and victim.checkpoint_sha256 != recorded:
        raise UserError(f"victim {victim.name!r} checkpoint sha256 {victim.checkpoint_sha256[:12]}... differs from the "
                        f"record's {recorded[:12]}...; reproduce needs the recorded weights")


def _leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and not all(isinstance(v, (int, float, type(None))) for v in obj):
        return {f"{prefix}[{i}]": v for i, v in enumerate(obj)}
    return {prefix: obj}


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return a == b


def _metric_matches(old: Any, new: Any, exact: bool) -> bool:
    """One top-level metric under the module's rules."""
    if exact or not isinstance(old, dict) or not isinstance(new, dict):
        return old == new if exact else _close(old, new)
    n_old, n_new = old.get("n"), new.get("n")
    slack = max(1, math.ceil(COUNT_FRACTION * (n_old or 0)))
    if "count" in old:  # a proportion: compare its count; the value and interval follow from it
        return n_old == n_new and abs(old["count"] - new.get("count", math.inf)) <= slack
    if n_old is not None and n_old != n_new:  # a mean over a different set of clips
        if n_new is None or abs(n_old - n_new) > slack:
            return False
        lo, hi = (old.get("ci95") or [None, None])[:2]
        v = new.get("value")
        if lo is None or hi is None or v is None:
            return _close(old.get("value"), v)
        return lo - ABS_TOL <= v <= hi + ABS_TOL
    if isinstance(old.get("value"), int) and isinstance(new.get("value"), int):  # a count stored as a value
        return abs(old["value"] - new["value"]) <= slack and all(_close(old[k], new.get(k)) for k in old if k != "value")
    old_l, new_l = _leaves(old), _leaves(new)
    return old_l.keys() == new_l.keys() and all(_close(old_l[k], new_l[k]) for k in old_l)


def _show(metric: Any) -> str:
    if isinstance(metric, dict):
        if "count" in metric and "n" in metric:
            return f"{metric['count']}/{metric['n']}"
        if "value" in metric:
            v = metric["value"]
            return ("n/a" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)) + (f" (n={metric['n']})" if "n" in metric else "")
        return f"{len(metric)} entries"
    return "n/a" if metric is None else f"{metric:.6g}" if isinstance(metric, float) else str(metric)


def _measured_later(name: str) -> bool:
    """Metrics added to records after schema version 1 was fixed (physical plausibility, the transfer pair's
    gradient alignment): an older record lacks them, which is no difference."""
    return name.startswith("plausib") or name == "gradient_alignment"


def compare_metrics(old: dict, new: dict, exact: bool) -> tuple[list[tuple[str, str, str, bool]], list[str]]:
    """Rows ``(name, recorded, reproduced, matches)`` over metrics and flags, and the differing names."""
    new = _jsonable(new)
    rows, differing = [], []
    for name in sorted(set(old["metrics"]) | set(new["metrics"])):
        a, b = old["metrics"].get(name), new["metrics"].get(name)
        if name not in old["metrics"] and _measured_later(name):  # the record predates the measure: nothing to compare
            rows.append((name, "not recorded", _show(b), True))
            continue
        ok = a is not None and b is not None and _metric_matches(a, b, exact)
        rows.append((name, _show(a), _show(b), ok))
        differing += [] if ok else [name]
    for name in sorted(set(old.get("flags") or {}) | set(new.get("flags") or {})):
        a, b = (old.get("flags") or {}).get(name), (new.get("flags") or {}).get(name)
        ok = a == b or (not exact and name.startswith("sanity_"))
        rows.append((f"flag {name}", str(a), str(b), ok))
        differing += [] if ok else [f"flag {name}"]
    return rows, differing


def _mode(old_env: dict, new_env: dict) -> tuple[bool, str]:
    changed = [f"{k} {old_env.get(k)} -> {new_env.get(k)}" for k in _IDENTITY if str(old_env.get(k)) != str(new_env.get(k))]
    if str(old_env.get("git_commit", "")).endswith("-dirty") and "git_commit" not in " ".join(changed):
        changed.append("git_commit: the record was made from uncommitted code")
    if not changed:
        return True, "identical: same code, torch build, machine, device and threads"
    return False, "within tolerances (" + "; ".join(changed) + ")"


def _table(rows: list[tuple[str, str, str, bool]]) -> str:
    w = [max(len(r[i]) for r in rows + [("metric", "recorded", "reproduced", True)]) for i in range(3)]
    lines = [f"{'metric':<{w[0]}}  {'recorded':>{w[1]}}  {'reproduced':>{w[2]}}  status"]
    lines += [f"{n:<{w[0]}}  {a:>{w[1]}}  {b:>{w[2]}}  {'match' if ok else 'DIFFERS'}" for n, a, b, ok in rows]
    return "\n".join(lines)


def reproduce_record(path: str | Path, results_dir: str | Path | None = None, device: str | None = None,
                     from_command: Callable[[dict], RunConfig] | None = None, progress: bool = False) -> Reproduction:
    """Re-run ``path``'s configuration (writing a new record only under ``results_dir``) and compare.

    ``from_command``: how to read the configuration of an old record that has only its command (the CLI's);
    ``progress``: show the re-run's progress (as ``run`` does).
    """
    from ..run.runner import run_benchmark

    from ..run.run_checks import validate_run_config

    record = read_record(path)
    config = config_from_record(record, from_command)
    config.save_adversarial = False
    if device:
        config.device = device
    if results_dir is not None:
        config.results_dir = str(results_dir)
    try:  # the recorded configuration, checked like a command line before anything is loaded
        validate_run_config(config, write=results_dir is not None, allow_self_surrogate=True)
    except UserError as exc:
        if results_dir is not None and "--results-dir" in str(exc):
            raise
        raise UserError(f"{path}: the recorded configuration cannot run here: {exc}") from None
    _check_inputs(record, config)
    result = run_benchmark(config, progress=progress, write=results_dir is not None)
    exact, mode = _mode(record.get("environment") or {}, result.record["environment"])
    rows, differing = compare_metrics(record, result.record, exact)
    table = _table(rows)
    if result.path is not None:
        table += f"\nnew record: {result.path}"
    return Reproduction(table=f"{mode}\n{table}", differing=differing, mode=mode, record=result.record)
