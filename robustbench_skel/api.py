"""The Python API: load a victim and clips, attack your own tensors, run a benchmark, read the records.

In the style of RobustBench (``load_model``, ``benchmark``) and torchattacks (``attack(model, x, y)``),
over the same internals as the command line: the registries, the victim and dataset loaders, and the
runner. ``benchmark`` builds its configuration with the ``run`` command's own parser and checks, so a
call and the equivalent command line give the same record.

This module is an entry point, like the CLI (it may import every layer); the package imports it lazily,
on first use of one of its names, so ``import robustbench_skel`` stays light.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UserError, suggest

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["load_victim", "load_clips", "get_attack", "benchmark", "load_results"]

PROGRAM = "python -m robustbench_skel"


def load_victim(name: str, dataset: str = "synth", checkpoint: str | Path | None = None, device: str = "cpu",
                data_path: str | Path | None = None) -> "nn.Module":
    """The victim ``name`` in eval mode, with its shipped weights for ``dataset`` (or ``checkpoint``, loaded
    strictly through ``torch.load(weights_only=True)``), on ``device`` (``cpu``, ``cuda[:N]`` or ``auto``).

    It maps clips ``(N, 3, T, V, M)`` in metres to logits; its preprocessing is inside ``forward``, so input
    gradients reach the raw coordinates. ``data_path`` is needed only for a dataset read from your files
    (its class count and layout come from them); nothing of the clips is read.
    """
    from .device import resolve_device
    from .registry import DATASETS
    from .victim import load_victim as load

    source = DATASETS.get(dataset)()
    data = source(None, data_path)  # the default split: a memory map for real data, only metadata is read
    return load(name, data.num_classes, data.layout, data.name, checkpoint, resolve_device(device)).model


def load_clips(dataset: str = "synth", split: str = "test", n: int | None = None,
               data_path: str | Path | None = None, unit: str = "m") -> tuple["torch.Tensor", "torch.Tensor"]:
    """``(clips, labels)`` of a dataset split: float32 ``(N, 3, T, V, M)`` in metres and int64 ``(N,)``.

    The clips come in the order a run evaluates them (a fixed shuffle of the split, the same for every
    attack), so ``n=8`` gives exactly the 8 clips of ``run --n-samples 8``; ``n=None`` gives every clip.
    Every clip is checked for NaN or infinite coordinates; ``unit`` converts a data file in cm or mm.
    """
    from .datasets.load import load_dataset
    from .run.runner import select_samples

    data = load_dataset(dataset, split, None if data_path is None else str(data_path), unit=unit)
    return data.subset(select_samples(data, "all" if n is None else n)).tensors()


def get_attack(name: str, **hp: Any) -> Callable[..., "torch.Tensor"]:
    """The white-box attack ``name``, called as ``attack(model, clips, labels)`` (torchattacks' convention).

    It returns adversarial clips within its budget (``eps`` in metres per coordinate for L-inf, RMS for L2),
    on the clips' device; absent joints never move. ``hp`` overrides the attack's defaults (``eps``,
    ``steps``, ``step_size``, ``targeted``, ``seed`` and its own hyperparameters: see
    ``python -m robustbench_skel info NAME``); a targeted attack takes ``attack(model, clips, labels, targets)``.
    Transfer, no-box and decision-based attacks need what the runner builds for their threat model
    (surrogates, a clip pool, a query-counting oracle): run them with :func:`benchmark`.
    """
    from .attack import ThreatModel
    from .hparams import accepted_arguments
    from .registry import ATTACKS
    from .run.assemble import build_attack
    from .run.config import RunConfig

    cls = ATTACKS.get(name)
    if cls.threat_model is not ThreatModel.WHITE_BOX:
        surrogate = ", surrogate='stgcn'" if cls.threat_model is ThreatModel.TRANSFER else ""
        raise UserError(f"attack {name!r} is {cls.threat_model.value}: get_attack takes white-box attacks, called on a "
                        f"model you hold; run it with robustbench_skel.benchmark(victim=..., attack={name!r}{surrogate})")
    allowed = accepted_arguments(cls)
    unknown = sorted(set(hp) - set(allowed))
    if unknown:
        raise UserError(f"attack {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
                        f"its hyperparameters: {', '.join(allowed)}")
    return build_attack(RunConfig(attack=name, attack_options=dict(hp)))  # an Attack: callable, with .eps, .norm


def benchmark(victim: str = "stgcn", attack: str = "pgd", write: bool = True, progress: bool = False,
              **run_options: Any) -> dict:
    """Run exactly what ``python -m robustbench_skel run`` runs and return its record (a JSON-ready dict).

    ``run_options`` are the ``run`` command's options, spelled as Python keywords: ``eps=0.01``,
    ``steps=10``, ``n_samples=64``, ``dataset="synth"``, ``surrogate="stgcn"`` (or a list for an
    ensemble), ``attack_opt={"decay": 0.5}``, ``results_dir="results"``, ``resume=False``, ... They are
    read by the command's own parser and checked by its own checks, so each error names the option the
    way the command does (``--n-samples`` for ``n_samples``). One budget per call.

    Like ``run``, the record is written under ``results_dir/runs/`` (default ``results/``); ``write=False``
    keeps it in memory only (nothing is written, and ``save_adversarial`` is refused). The record's
    ``command`` is the equivalent command line.
    """
    from .commands.cli import run_configs
    from .run.record import as_json
    from .run.runner import run_benchmark

    if isinstance(run_options.get("eps"), (list, tuple)):
        raise UserError("benchmark runs one budget: give eps as one number and call it once per budget "
                        "(`run --eps 0.005,0.01` sweeps budgets on the command line)")
    if not write and run_options.get("save_adversarial"):
        raise UserError("save_adversarial stores the perturbations beside the record, but write=False writes "
                        "nothing; drop one of them")
    args, words = _run_arguments({"victim": victim, "attack": attack, **run_options})
    (config,) = run_configs(args, write=write)
    result = run_benchmark(config, progress=progress, write=write, command=shlex.join([*PROGRAM.split(), *words]))
    return as_json(result.record)


def __getattr__(name: str) -> Any:
    """``load_results`` (the leaderboard's reader, which needs pandas) is imported on first use.

    ``load_results(path="results")``: every record under ``path/runs/`` as one DataFrame row (the
    leaderboard's columns), oldest first; a record that breaks the schema, or a path that holds no
    records, is a :class:`~robustbench_skel.errors.UserError`.
    """
    if name == "load_results":
        from .board.leaderboard import load_results

        return load_results
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _run_arguments(options: dict[str, Any]) -> tuple[Any, list[str]]:
    """The ``run`` command's parsed arguments for keyword ``options``, and the command-line words they stand for."""
    from .commands.cli import build_parser

    parser = build_parser()
    defaults = vars(parser.parse_args(["run"]))
    known = sorted(k for k in defaults if k != "command")
    words = ["run"]
    attack_opt = None
    for key, value in options.items():
        if key not in defaults or key == "command":
            raise UserError(f"benchmark has no option {key!r}; {suggest(key, known)}")
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if key == "attack_opt":
            if not isinstance(value, dict):
                raise UserError(f"attack_opt takes a dict of the attack's hyperparameters, e.g. {{'decay': 0.5}}; "
                                f"got {value!r}")
            attack_opt = [(str(k).strip().replace("-", "_"), v) for k, v in value.items()]
            words += [w for k, v in attack_opt for w in (flag, f"{k}={_word(v)}")]
        elif isinstance(value, bool):
            if value:
                words.append(flag)
            elif defaults[key] is True:  # an option on by default (--resume) is turned off with --no-...
                words.append(f"--no-{key.replace('_', '-')}")
        elif key == "surrogate_checkpoint":
            for path in [value] if isinstance(value, (str, Path)) else value:
                words += [flag, str(path)]
        elif isinstance(value, (list, tuple)):
            words += [flag, ",".join(str(v) for v in value)]
        else:
            words += [flag, _word(value)]
    args = parser.parse_args(words)
    args.argv = words  # as the CLI does: tells the options given from the defaults
    if attack_opt is not None:  # the Python values themselves, not their text read back
        args.attack_opt = attack_opt
    return args, words


def _word(value: Any) -> str:
    """A value as the command line spells it (``repr`` of a float round-trips exactly; a numpy float is one)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return repr(float(value)) if isinstance(value, float) else str(value)
