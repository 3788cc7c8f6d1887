"""The configuration of one benchmark run, and rebuilding it from a record.

Every field is a plain value (JSON in the record's ``config``), so a record alone says how to re-run it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import UserError

__all__ = ["RunConfig", "config_from_record"]


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
