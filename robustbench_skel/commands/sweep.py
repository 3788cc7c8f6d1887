"""Grids of runs from one TOML file, run in this process or as Ray tasks, skipping what is already done.

A grid names its axes in the plural and everything else as the :class:`RunConfig` fields all runs share::

    victims = ["stgcn", "ctrgcn"]
    attacks = ["fgsm", "pgd"]
    budgets = [0.005, 0.01]          # eps; optional (the attack's default)
    surrogates = ["none", "stgcn"]   # optional; "a+b" is an ensemble; "none" runs without
    defenses = ["none", "tta"]       # optional
    n_samples = 64                   # shared RunConfig fields
    steps = 10
    results_dir = "results"
    plugins = ["my_package.attacks"] # optional: modules that register your plugins, imported first
    plugin_paths = ["src"]           # optional: folders (relative to the grid file) to import them from

Every run of the grid is checked (names, settings, results folder) before the first one starts. A
surrogate equal to the victim (the diagonal of a victims x surrogates grid) is allowed as a reference cell.
``steps`` and ``step_size`` apply to the attacks that have them (FGSM in a grid with ``steps = 10`` runs
as FGSM, and its record says ``steps`` null). The runs are the product victims x attacks x budgets x surrogates x defenses. A run whose configuration
(output-only fields aside) already has a record in its results folder is skipped, so a sweep that was
stopped continues where it stopped (and a run that was killed resumes from its last batch). Records are
written by this process, whichever executor ran them.

``sweep GRID --only victims=agcn,sgn`` runs the part of a grid on those axis values, with the grid's settings
unchanged, so its records are the grid's own: the whole grid later skips them. This is how a grid that names
a victim still without weights is worked through.

``sweep GRID --status`` runs nothing: it lists each run as recorded, to run, or blocked (with the reason, e.g. a
victim without weights yet), so a session can see what a grid still lacks before it spends hours on it.
"""

from __future__ import annotations

import importlib
import itertools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..hparams import accepted_arguments
from ..progress_meter import progress as show_progress
from ..run.progress import config_identity
from ..run.record import iter_records, new_run_id, write_record
from ..registry import ATTACKS
from ..run.run_checks import validate_run_config
from ..run.runner import RunConfig, run_benchmark

__all__ = ["Grid", "RunStatus", "SweepResult", "grid_status", "load_grid", "parse_grid", "pending", "restrict",
           "run_sweep", "status_lines"]

# grid key -> the RunConfig field each value sets
AXES = {"victims": "victim", "attacks": "attack", "budgets": "eps", "surrogates": "surrogates", "defenses": "defense"}
_NONE = ("", "none")
# Shared settings that apply only to the attacks that have them (an attack without iterations ignores them).
_SHARED_ITERATIONS = ("steps", "step_size")


@dataclass
class Grid:
    configs: list[RunConfig]
    plugins: list[str] = field(default_factory=list)
    plugin_paths: list[str] = field(default_factory=list)


@dataclass
class RunStatus:
    config: RunConfig
    state: str  # "recorded", "to run" or "blocked"
    reason: str = ""  # why a blocked run cannot start (the error a sweep would stop on)

    @property
    def label(self) -> str:
        return _label(self.config)


@dataclass
class SweepResult:
    paths: list[Path]  # the records written by this sweep, in the order the runs finished
    skipped: int  # runs that already had a record
    seconds: float


def _axis_value(key: str, value: Any) -> Any:
    if key == "surrogates":
        if isinstance(value, list):
            return [str(v) for v in value] or None
        return None if str(value).strip().lower() in _NONE else [n.strip() for n in str(value).split("+") if n.strip()]
    if key == "defenses":
        return None if str(value).strip().lower() in _NONE else str(value)
    if key == "budgets":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise UserError(f"grid: budgets must be positive numbers (metres), got {value!r}")
        return float(value)
    return str(value)


def parse_grid(data: dict[str, Any], source: str = "grid", base: Path | None = None) -> Grid:
    """The runs a parsed TOML grid describes (see the module docstring)."""
    known = {f.name for f in fields(RunConfig)}
    for key in ("plugins", "plugin_paths"):
        if not isinstance(data.get(key, []), list):
            raise UserError(f"{source}: {key} must be a list of strings, e.g. {key} = [\"...\"]")
    plugins = [str(m) for m in data.get("plugins", [])]
    paths = [str((base or Path(".")) / p) for p in data.get("plugin_paths", [])]
    axes: dict[str, list[Any]] = {}
    shared: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("plugins", "plugin_paths"):
            continue
        if key in AXES:
            if AXES[key] != key and AXES[key] in data:
                raise UserError(f"{source}: give {key} (an axis) or {AXES[key]} (shared), not both")
            values = value if isinstance(value, list) else [value]
            if not values:
                raise UserError(f"{source}: {key} is empty; list at least one value or leave it out")
            axes[key] = [_axis_value(key, v) for v in values]
        elif key in known:
            shared[key] = value
        else:
            raise UserError(f"{source}: unknown key {key!r}; axes: {', '.join(AXES)}; shared fields: {', '.join(sorted(known))}")
    for key in ("victims", "attacks"):
        if key not in axes and AXES[key] not in shared:
            raise UserError(f"{source}: name the {key} to run, e.g. {key} = [\"...\"]")
    _import_plugins(plugins, paths)
    sweep = {"id": new_run_id(), "grid": Path(source).name}
    names = [k for k in AXES if k in axes]
    configs = []
    try:
        for combo in itertools.product(*(axes[k] for k in names)):
            values = {**shared, **{AXES[k]: v for k, v in zip(names, combo)}, "sweep": sweep}
            accepted = accepted_arguments(ATTACKS.get(values.get("attack", RunConfig.attack)))
            for name in _SHARED_ITERATIONS:  # e.g. steps = 10 shared by pgd and fgsm: fgsm has none
                if name in shared and name not in accepted:
                    values[name] = None
            configs.append(RunConfig(**values))
    except TypeError as exc:
        raise UserError(f"{source}: {exc}") from None
    return Grid(configs, plugins, paths)


def load_grid(path: str | Path) -> Grid:
    """Read a TOML grid file."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise UserError("reading a grid needs Python 3.11+ (tomllib) or `pip install tomli`") from None
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read the grid {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    return parse_grid(data, str(path), path.parent)


def _axis_key(key: str, config: RunConfig) -> Any:
    """The value a run has on the grid axis ``key``, in the form ``_axis_value`` gives."""
    value = getattr(config, AXES[key])
    if key == "surrogates":
        return list(value) if value else None
    return value


def _shown(value: Any) -> str:
    """An axis value as a grid file writes it: ``none``, ``stgcn+ctrgcn``, ``0.01``, ``pgd``."""
    if value is None:
        return "none"
    if isinstance(value, list):
        return "+".join(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text  # _axis_value names it


def restrict(grid: Grid, only: dict[str, list[str]]) -> Grid:
    """The runs of ``grid`` whose value on each named axis is one of the given ones (``sweep --only``).

    A value the grid does not have on that axis is an error, so a misspelt name never runs an empty sweep."""
    configs = grid.configs
    for key, raw in only.items():
        if key not in AXES:
            raise UserError(f"--only {key}=...: not a grid axis; axes: {', '.join(AXES)}")
        have = [_axis_key(key, c) for c in grid.configs]
        wanted = [_axis_value(key, _number(v) if key == "budgets" else v) for v in raw]
        missing = [r for v, r in zip(wanted, raw) if v not in have]
        if missing:
            present = sorted({_shown(h) for h in have})
            raise UserError(f"--only {key}: {', '.join(missing)} not in the grid; its {key}: {', '.join(present)}")
        configs = [c for c in configs if _axis_key(key, c) in wanted]
    return Grid(configs, grid.plugins, grid.plugin_paths)


def parse_only(specs: list[str]) -> dict[str, list[str]]:
    """``["victims=agcn,sgn", "budgets=0.01"]`` -> ``{"victims": ["agcn", "sgn"], "budgets": ["0.01"]}``."""
    only: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        names = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not names:
            raise UserError(f"--only {spec!r}: give AXIS=VALUE[,VALUE...], e.g. --only victims=stgcn,sgn")
        only.setdefault(key.strip(), []).extend(names)
    return only


def _identity(config: Any) -> str:
    return json.dumps(config_identity(config), sort_keys=True)


def pending(configs: list[RunConfig]) -> list[RunConfig]:
    """The configurations without a record in their results folder."""
    done: dict[str, set[str]] = {}
    todo = []
    for config in configs:
        if config.results_dir not in done:
            done[config.results_dir] = {_identity(r["config"]) for _, r in iter_records(config.results_dir) if r.get("config")}
        if _identity(config) not in done[config.results_dir]:
            todo.append(config)
    return todo


def _import_plugins(plugins: list[str], paths: list[str]) -> None:
    for folder in reversed(paths):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    for name in plugins:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UserError(f"grid plugin {name!r} cannot be imported ({exc}); check plugins and plugin_paths") from None


def _run_one(config: dict[str, Any], plugins: list[str], paths: list[str]) -> dict[str, Any]:
    """One run as a Ray task: the record (not written: the driver writes it), or the user error."""
    try:
        _import_plugins(plugins, paths)
        return {"record": run_benchmark(RunConfig(**config), write=False).record}
    except UserError as exc:
        return {"error": str(exc)}


def _label(config: RunConfig) -> str:
    eps = config.eps if isinstance(config.eps, (int, float)) and not isinstance(config.eps, bool) else None
    parts = [str(config.victim), str(config.attack), f"eps {eps:g}" if eps is not None else None,
             "+".join(map(str, config.surrogates)) if isinstance(config.surrogates, list) else None,
             str(config.defense) if config.defense else None]
    return " ".join(p for p in parts if p)


def _local(todo: list[RunConfig], done: Callable[[Path], None], grid: Grid) -> None:
    _import_plugins(grid.plugins, grid.plugin_paths)
    for config in todo:
        done(run_benchmark(config).path)


def _uses_gpu(device: str) -> bool:
    if device.startswith("cuda"):
        return True
    if device == "auto":
        import torch

        return torch.cuda.is_available()
    return False


def _ray(todo: list[RunConfig], done: Callable[[Path], None], grid: Grid, address: str | None, cpus: int) -> None:
    try:
        import ray
    except ImportError:
        raise UserError('--executor ray needs Ray: pip install -e ".[distributed]"') from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UserError(f"cannot reach the Ray cluster at {address or 'a new local instance'}: {exc}") from None
    tasks = {}
    for config in todo:
        task = ray.remote(num_cpus=cpus, num_gpus=1 if _uses_gpu(config.device) else 0)(_run_one)
        tasks[task.remote(asdict(config), grid.plugins, grid.plugin_paths)] = config
    waiting = list(tasks)
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        config = tasks[ready[0]]
        outcome = ray.get(ready[0])
        if "error" in outcome:
            for ref in waiting:
                ray.cancel(ref)
            raise UserError(f"{_label(config)}: {outcome['error']}")
        done(write_record(outcome["record"], config.results_dir))


def _prepared(grid: Grid | str | Path, results_dir: str | None, only: dict[str, list[str]] | None) -> Grid:
    if not isinstance(grid, Grid):
        grid = load_grid(grid)
    if only:
        grid = restrict(grid, only)
    if results_dir is not None:
        grid = Grid([replace(c, results_dir=results_dir) for c in grid.configs], grid.plugins, grid.plugin_paths)
    return grid


def grid_status(grid: Grid | str | Path, results_dir: str | None = None,
                only: dict[str, list[str]] | None = None) -> list[RunStatus]:
    """Where each run of ``grid`` stands, without running or writing anything (``sweep --status``).

    A run is *recorded* when its results folder holds a record of its configuration, *blocked* when the checks a
    sweep makes before its first run refuse it (the reason is the error the sweep would stop on), else *to run*.
    """
    grid = _prepared(grid, results_dir, only)
    _import_plugins(grid.plugins, grid.plugin_paths)
    left = {id(c) for c in pending(grid.configs)}
    statuses = []
    for config in grid.configs:
        if id(config) not in left:
            statuses.append(RunStatus(config, "recorded"))
            continue
        try:
            validate_run_config(config, write=False, allow_self_surrogate=True)
        except UserError as exc:
            statuses.append(RunStatus(config, "blocked", str(exc)))
            continue
        statuses.append(RunStatus(config, "to run"))
    return statuses


def status_lines(name: str | Path, statuses: list[RunStatus]) -> list[str]:
    """``sweep --status``'s report: the counts, each run still to do, and each cause of blocked runs once."""
    counts = {state: sum(s.state == state for s in statuses) for state in ("recorded", "to run", "blocked")}
    lines = [f"{name}: {len(statuses)} run(s): " + ", ".join(f"{n} {state}" for state, n in counts.items())]
    lines += [f"  to run   {s.label}" for s in statuses if s.state == "to run"]
    causes: dict[str, list[str]] = {}
    for s in statuses:
        if s.state == "blocked":
            causes.setdefault(s.reason, []).append(s.label)
    lines += [f"  blocked  {len(labels)} run(s), e.g. {labels[0]}: {reason}" for reason, labels in causes.items()]
    return lines


def run_sweep(grid: Grid | str | Path, executor: str = "local", address: str | None = None, cpus_per_run: int = 1,
              progress: bool = True, results_dir: str | None = None,
              only: dict[str, list[str]] | None = None) -> SweepResult:
    """Run every configuration of ``grid`` that has no record yet; one progress bar for the grid.

    ``results_dir`` (``sweep --results-dir``) overrides the grid's ``results_dir`` for every run; ``only``
    (``sweep --only``) keeps the runs with those axis values (see :func:`restrict`)."""
    grid = _prepared(grid, results_dir, only)
    if executor not in ("local", "ray"):
        raise UserError(f"--executor must be local or ray, got {executor!r}")
    if address and executor != "ray":
        raise UserError("--address names a Ray cluster; add --executor ray")
    started = time.perf_counter()
    _import_plugins(grid.plugins, grid.plugin_paths)
    for config in grid.configs:  # every name and setting of the grid, before the first run writes anything
        try:
            validate_run_config(config, allow_self_surrogate=True)
        except UserError as exc:
            raise UserError(f"grid run {_label(config)}: {exc}") from None
    todo = pending(grid.configs)
    skipped = len(grid.configs) - len(todo)
    written: list[Path] = []
    bar = show_progress(total=len(grid.configs), initial=skipped, desc="sweep", unit="run", enabled=progress)
    if skipped:
        bar.write(f"{skipped} of {len(grid.configs)} runs already have a record: skipped")

    def done(path: Path) -> None:
        written.append(path)
        bar.update(1)

    try:
        if executor == "local":
            _local(todo, done, grid)
        else:
            _ray(todo, done, grid, address, cpus_per_run)
    finally:
        bar.close()
    return SweepResult(written, skipped, time.perf_counter() - started)
