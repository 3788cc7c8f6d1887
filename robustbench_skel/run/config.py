"""The configuration of one benchmark run, reading it from a TOML file, and rebuilding it from a record.

Every field is a plain value (JSON in the record's ``config``), so a record alone says how to re-run it,
and a TOML file with the same keys (``run --config FILE.toml``, a sweep grid's shared settings) keeps one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import UserError

__all__ = ["RunConfig", "config_from_record", "read_config_file", "FILE_KEYS"]


@dataclass
class RunConfig:
    victim: str = "stgcn"
    attack: str = "pgd"
    dataset: str = "synth"
    data_path: str | None = None
    split: str | None = None
    checkpoint: str | None = None
    defense: str | None = None
    eps: float | None = None
    steps: int | None = None
    step_size: float | None = None
    targeted: bool = False
    n_samples: int | str = 64  # or "all": every clip of the split
    seed: int = 0
    batch_size: int | str = 32  # or "auto": the largest power of two that fits on the GPU (32 on a CPU)
    device: str = "auto"
    results_dir: str = "results"
    sanity_samples: int = 16
    sweep: dict[str, Any] | None = None
    attack_options: dict[str, Any] = field(default_factory=dict)
    surrogates: list[str] | None = None  # transfer: the surrogate victims' names
    surrogate_checkpoints: list[str] | None = None  # one per surrogate, or None for the shipped weights
    early_stop: str | None = None  # None: "adversarial" for white-box, "none" for transfer and no-box
    nobox_pool: str = "train"  # no-box: the split whose clips (labels removed) the attacker holds
    max_queries: int = 1000  # decision-based: the query budget per sample
    defense_checkpoint: str | None = None  # the user's defended weights for a training-time defense
    eot_samples: int = 8  # draws per gradient against a randomized defense (EOT)
    resume: bool = True  # continue from the batches an interrupted identical run finished (progress.py)
    preset: str | None = None  # a named, pinned evaluation (presets.py), e.g. "standard"
    amp: bool = False  # bfloat16 autocast for the attack's passes; the evaluator stays float32
    save_adversarial: bool = False  # store the attacked clips' perturbations under results/adversarial/
    unit: str = "m"  # the unit of the data file's coordinates (m, cm, mm); the loader converts to metres


def config_from_record(record: dict, from_command: Callable[[dict], RunConfig] | None = None) -> RunConfig:
    """The record's :class:`RunConfig`, from its ``config`` (fields a newer version dropped are ignored,
    fields an older record lacks take their defaults).

    A record written before records kept their configuration has only its ``command``; reading that needs
    the command line's parser, which the command layer passes in as ``from_command`` (run/ never imports it).
    """
    config = record.get("config")
    if not isinstance(config, dict):
        if from_command is not None:
            return from_command(record)
        raise UserError("the record has no 'config' (it was written before records kept their configuration); "
                        "re-run its command to get a record that can be reproduced")
    known = {f.name for f in fields(RunConfig)}
    return RunConfig(**{k: v for k, v in config.items() if k in known})


# The keys of a run's TOML file: every RunConfig field but ``sweep`` (which a sweep fills in itself).
FILE_KEYS = tuple(f.name for f in fields(RunConfig) if f.name != "sweep")
# A sweep grid's axes: in a run's file they are a mistake worth naming.
_GRID_AXES = ("victims", "attacks", "budgets", "defenses", "plugins", "plugin_paths")


def _budgets(value: Any, source: str) -> list[float]:
    values = value if isinstance(value, list) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in values):
        raise UserError(f"{source}: eps must be a positive number or a list of them (a budget sweep), got {value!r}")
    return sorted({float(v) for v in values})


def _surrogates(value: Any, source: str) -> list[str] | None:
    """One run's surrogates: ``"stgcn"``, ``"stgcn+ctrgcn"`` or ``["stgcn", "ctrgcn"]`` (an ensemble)."""
    if isinstance(value, str):
        names = [n.strip() for n in value.replace(",", "+").split("+") if n.strip()]
        return None if names in ([], ["none"]) else names
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()] or None
    raise UserError(f"{source}: surrogates must be a name, names joined by + or a list of names, got {value!r}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings a run's TOML file gives, ``{RunConfig field: value}`` (``eps`` as a sorted list of budgets).

    Names and types are checked here only as far as reading needs; the run checks every value as it checks
    the command line's (:func:`robustbench_skel.run.run_checks.validate_run_config`).
    """
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read the run configuration {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; --config takes a TOML file of run settings") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    source = str(path)
    for key in data:
        if key in _GRID_AXES:
            raise UserError(f"{source}: {key!r} belongs to a sweep grid (run it with `python -m robustbench_skel sweep "
                            f"{path.name}`); a run's file takes one value per setting: {', '.join(FILE_KEYS)}")
        if key not in FILE_KEYS:
            raise UserError(f"{source}: unknown key {key!r}; allowed keys: {', '.join(FILE_KEYS)}")
    settings = dict(data)
    if "eps" in settings:
        settings["eps"] = _budgets(settings["eps"], source)
    if "surrogates" in settings:
        settings["surrogates"] = _surrogates(settings["surrogates"], source)
    if "attack_options" in settings and not isinstance(settings["attack_options"], dict):
        raise UserError(f"{source}: attack_options must be a table, e.g. attack_options = {{ decay = 0.5 }}")
    return settings
