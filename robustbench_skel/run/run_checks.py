"""Everything about a run's configuration that can be checked without loading data or models.

``run``, ``transfer``, ``sweep``, ``prepare`` and ``reproduce`` call :func:`validate_run_config` on every
configuration they are about to run, before the first of them starts, so a bad name in the second entry
of a grid or matrix is refused before the first entry writes its record. It checks names (victim,
surrogate, attack, defense, dataset: the message says which kind is unknown), numbers in range, files
that must exist, the results folder, and options that the run would otherwise ignore or misread.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..attack import ThreatModel, parse_early_stop
from .autobatch import parse_batch_size
from ..errors import UserError, suggest
from ..preflight import check_input_file, check_writable_dir
from ..device import resolve_device
from ..registry import DATASETS, DEFENSES, VICTIMS
from .assemble import build_attack, effective_threat_model
from .presets import apply_preset

__all__ = ["validate_run_config"]


def _whole(value: object, flag: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{flag} must be a whole number of at least {minimum}, got {value!r}")


def _positive(value: object, flag: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise UserError(f"{flag} must be a positive finite number, got {value!r}")


def _same_weights(victim_checkpoint: str | None, surrogate_checkpoint: str | None) -> bool:
    if victim_checkpoint is None or surrogate_checkpoint is None:
        return victim_checkpoint is None and surrogate_checkpoint is None
    return Path(victim_checkpoint).resolve() == Path(surrogate_checkpoint).resolve()


# Settings that come as text from a grid file or a record's saved configuration: their JSON type first.
_TEXT = ("victim", "attack", "dataset", "device", "results_dir", "unit", "nobox_pool")
_TEXT_OR_NONE = ("split", "data_path", "checkpoint", "defense", "defense_checkpoint", "early_stop", "preset")
_FLAGS = ("targeted", "resume", "amp", "save_adversarial")


def _check_types(config) -> None:
    def wrong(name: str, expected: str, value: object) -> UserError:
        return UserError(f"setting {name!r} must be {expected}, got {type(value).__name__} {value!r}")

    for name in _TEXT:
        if not isinstance(getattr(config, name), str):
            raise wrong(name, "text", getattr(config, name))
    for name in _TEXT_OR_NONE:
        if getattr(config, name) is not None and not isinstance(getattr(config, name), str):
            raise wrong(name, "text or absent", getattr(config, name))
    for name in _FLAGS:
        if not isinstance(getattr(config, name), bool):
            raise wrong(name, "true or false", getattr(config, name))
    if not isinstance(config.attack_options, dict):
        raise wrong("attack_options", "a table of option = value", config.attack_options)
    for name in ("surrogates", "surrogate_checkpoints"):
        value = getattr(config, name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise wrong(name, "a list of names", value)


def _check_numbers(config) -> None:
    if config.n_samples != "all":
        _whole(config.n_samples, "--n-samples", 1)
    parse_batch_size(config.batch_size)
    _whole(config.seed, "--seed", 0)
    _whole(config.sanity_samples, "--sanity-samples", 0)
    _whole(config.eot_samples, "--eot-samples", 1)
    _whole(config.max_queries, "--queries", 1)
    if config.steps is not None:
        _whole(config.steps, "--steps", 1)
    _positive(config.eps, "--eps")
    _positive(config.step_size, "--step-size")
    if config.nobox_pool not in ("train", "test"):
        raise UserError(f"--nobox-pool must be train or test, got {config.nobox_pool!r}")
    from ..datasets.units import UNITS

    if config.unit not in UNITS:
        raise UserError(f"--unit must be one of {', '.join(UNITS)}, got {config.unit!r}")
    if config.early_stop is not None:
        parse_early_stop(config.early_stop)


def _check_surrogates(config, threat: ThreatModel, allow_self_surrogate: bool) -> None:
    names = list(config.surrogates or [])
    checkpoints = list(config.surrogate_checkpoints or [])
    for name in names:
        if name not in VICTIMS:
            raise UserError(f"unknown surrogate {name!r}; {suggest(name, VICTIMS.names())}")
    if checkpoints and not names:
        raise UserError("--surrogate-checkpoint gives weights for a surrogate, but no --surrogate is named, so they "
                        "would be ignored; add --surrogate NAME or drop --surrogate-checkpoint")
    if checkpoints and len(checkpoints) != len(names):
        raise UserError(f"{len(names)} surrogate(s) but {len(checkpoints)} --surrogate-checkpoint value(s); "
                        "give one per surrogate, in order")
    for path in checkpoints:
        check_input_file(path, "--surrogate-checkpoint")
    if not checkpoints:
        for name in names:
            _check_shipped(name, config.dataset, "surrogate", "--surrogate-checkpoint")
    if threat is ThreatModel.TRANSFER and not allow_self_surrogate:
        for i, name in enumerate(names):
            if name == config.victim and _same_weights(config.checkpoint, checkpoints[i] if checkpoints else None):
                raise UserError(f"victim {name!r} is named as its own surrogate with the same weights: that is a white-box "
                                "attack, not a transfer; drop --surrogate (or give the surrogate other weights with "
                                "--surrogate-checkpoint)")


def _check_shipped(name: str, dataset: str, kind: str, flag: str) -> None:
    """A victim used without a checkpoint needs shipped weights for the dataset (checked by name, nothing is read)."""
    from ..victim import model_card

    if dataset not in (model_card(name).get("pretrained") or {}):
        raise UserError(f"no pretrained weights of {kind} {name!r} ship for dataset {dataset!r}; pass {flag} PATH or "
                        f"train them with: python -m robustbench_skel train --victim {name} --dataset {dataset}")


def _check_defense(config) -> None:
    if config.defense is not None:
        if config.defense not in DEFENSES:
            raise UserError(f"unknown defense {config.defense!r}; {suggest(config.defense, DEFENSES.names())}")
    if config.defense_checkpoint is None:
        if config.defense is not None and getattr(DEFENSES.get(config.defense), "kind", "inference") == "training":
            from ..learn.defended import defend_command, shipped_defended_weights

            if shipped_defended_weights(config.victim, config.defense, config.dataset) is None:
                raise UserError(f"no {config.defense} weights ship for {config.victim} on {config.dataset}; build them "
                                f"with: {defend_command(config.victim, config.defense, config.dataset)} and pass "
                                "--defense-checkpoint PATH")
        return
    if config.defense is None:
        raise UserError("--defense-checkpoint gives defended weights, but no --defense is named, so they would be "
                        "ignored; add --defense NAME (a training-time defense: see `list`) or drop --defense-checkpoint")
    kind = getattr(DEFENSES.get(config.defense), "kind", "inference")
    if kind != "training":
        raise UserError(f"defense {config.defense!r} is applied at inference time and has no weights of its own, so "
                        "--defense-checkpoint would be ignored; drop it (it is for training-time defenses: see `list`)")
    check_input_file(config.defense_checkpoint, "--defense-checkpoint")


def validate_run_config(config, write: bool = True, allow_self_surrogate: bool = False) -> None:
    """Refuse ``config`` (a :class:`~robustbench_skel.run.runner.RunConfig`) before any work when something is wrong.

    ``write``: the run will write into ``config.results_dir`` (checked, not created). ``allow_self_surrogate``:
    a transfer matrix's diagonal (the victim crafted on itself) is a deliberate reference cell there.
    """
    _check_types(config)
    resolve_device(config.device)
    _check_numbers(config)
    config = apply_preset(config)
    if config.dataset not in DATASETS:
        raise UserError(f"unknown dataset {config.dataset!r}; {suggest(config.dataset, DATASETS.names())}")
    if config.data_path is not None and not Path(config.data_path).exists():
        raise UserError(f"--data-path {str(config.data_path)!r} does not exist")
    if config.data_path is None and getattr(DATASETS.get(config.dataset), "needs_path", False):
        raise UserError(f"dataset {config.dataset!r} reads your files: pass --data-path")
    if config.victim not in VICTIMS:
        raise UserError(f"unknown victim {config.victim!r}; {suggest(config.victim, VICTIMS.names())}")
    if config.checkpoint is not None:
        check_input_file(config.checkpoint, "--checkpoint")
    else:
        _check_shipped(config.victim, config.dataset, "victim", "--checkpoint")
    attack = build_attack(config)  # unknown attack or option
    threat = effective_threat_model(attack, config.surrogates)
    _check_surrogates(config, threat, allow_self_surrogate)
    _check_defense(config)
    if write:
        check_writable_dir(config.results_dir, "--results-dir")
