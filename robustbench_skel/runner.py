"""One benchmark run: dataset -> victim (-> defense) -> attack -> evaluator -> record.

The runner enforces the threat model (a white-box attack is handed the model under evaluation,
nothing else is implemented yet), fixes the evaluated samples independently of the attack and its
seed (so different attacks see the same clips), and writes the record only once everything has
been computed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .attack import Attack, ThreatModel
from .datasets import SkeletonDataset, check_clip_values
from .defense import Defense
from .errors import UserError
from .evaluator import BudgetSpec, evaluate_attack, predict
from .hparams import accepted_arguments
from .record import SCHEMA_VERSION, command_line, environment, new_run_id, utc_now, write_record
from .registry import ATTACKS, DATASETS, DEFENSES
from .sanity import run_sanity_checks
from .victim import LoadedVictim, load_victim

__all__ = ["RunConfig", "RunResult", "resolve_device", "load_dataset", "select_samples", "build_attack", "run_benchmark"]

# The evaluated samples are the first n of a fixed shuffle of the split, the same for every attack.
SAMPLE_ORDER_SEED = 0


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
    n_samples: int = 64
    seed: int = 0
    batch_size: int = 32
    device: str = "auto"
    results_dir: str = "results"
    sanity_samples: int = 16
    sweep: dict[str, Any] | None = None
    attack_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    record: dict
    path: Path | None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"--device must be auto, cpu or cuda[:N], got {name!r}")


def load_dataset(name: str, split: str | None, data_path: str | None, seed: int = 0) -> SkeletonDataset:
    source_cls = DATASETS.get(name)
    source = source_cls()
    return source(split, data_path)


def select_samples(dataset: SkeletonDataset, n_samples: int) -> np.ndarray:
    if n_samples < 1:
        raise UserError(f"--n-samples must be at least 1, got {n_samples}")
    order = np.random.default_rng(SAMPLE_ORDER_SEED).permutation(len(dataset))
    return order[: min(n_samples, len(dataset))]


def build_attack(config: RunConfig, layout: str | None = None) -> Attack:
    """The configured attack; an attack that takes a ``layout`` gets the dataset's unless told otherwise."""
    cls = ATTACKS.get(config.attack)
    accepted = set(accepted_arguments(cls))
    given = {
        "eps": config.eps,
        "steps": config.steps,
        "step_size": config.step_size,
        "targeted": config.targeted or None,
        "seed": config.seed,
        **config.attack_options,
    }
    kwargs = {}
    for key, value in given.items():
        if value is None:
            continue
        if key not in accepted:
            flag = f"--attack-opt {key}=..." if key in config.attack_options else "--" + key.replace("_", "-")
            raise UserError(f"attack {config.attack!r} has no {flag} option; its options: {', '.join(sorted(accepted))}")
        kwargs[key] = value
    if layout is not None and "layout" in accepted and "layout" not in kwargs:
        kwargs["layout"] = layout
    try:
        return cls(**kwargs)
    except TypeError as exc:  # e.g. a text --attack-opt value where a number belongs
        raise UserError(f"attack {config.attack!r}: bad option value ({exc})") from None


def _build_defense(name: str | None) -> Defense | None:
    return DEFENSES.get(name)() if name else None


def _draw_targets(labels: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """A random class different from the true one for every sample, from the run's seed."""
    gen = torch.Generator().manual_seed(seed)
    offset = torch.randint(1, num_classes, labels.shape, generator=gen)
    return (labels + offset) % num_classes


def run_benchmark(config: RunConfig, progress: bool = False, write: bool = True) -> RunResult:
    """Run one victim x attack x defense x dataset configuration and write its record."""
    started = time.perf_counter()
    device = resolve_device(config.device)
    if config.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {config.batch_size}")
    build_attack(config)  # fail on a bad attack name or option before touching any data
    defense = _build_defense(config.defense)
    dataset = load_dataset(config.dataset, config.split, config.data_path, config.seed)
    attack = build_attack(config, dataset.layout.name)
    if attack.threat_model is not ThreatModel.WHITE_BOX:
        raise UserError(f"attack {attack.name!r} is {attack.threat_model.value}; only white-box attacks run in this version")

    indices = select_samples(dataset, config.n_samples)
    subset = dataset.subset(indices)
    check_clip_values(subset.clips, subset.sample_ids, subset.source or subset.name)
    victim: LoadedVictim = load_victim(
        config.victim, dataset.num_classes, dataset.layout, dataset.name, config.checkpoint, device
    )
    model = defense.apply(victim.model) if defense else victim.model
    model.eval()

    clips, labels = subset.tensors()
    if attack.targeted and victim.model.num_classes < 2:
        raise UserError("a targeted attack needs at least two classes")
    targets = _draw_targets(labels, victim.model.num_classes, config.seed) if attack.targeted else None
    clean_pred = predict(model, clips, config.batch_size, device)
    attacked = clean_pred.eq(labels)

    attack_started = time.perf_counter()
    adv = clips.clone()
    generator = torch.Generator(device=device).manual_seed(config.seed)
    idx = attacked.nonzero().squeeze(1)
    iterations = []
    extra: dict[str, torch.Tensor] = {}
    ever_adversarial = torch.zeros(clips.shape[0], dtype=torch.bool)
    tracks_visits = True
    batches = range(0, idx.numel(), config.batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=f"{attack.name} on {config.victim}", unit="batch", leave=False)
    for start in batches:
        b = idx[start : start + config.batch_size]
        adv[b] = attack(model, clips[b], labels[b], targets[b] if targets is not None else None, generator=generator).cpu()
        if attack.last_iterations is not None:
            iterations.append(attack.last_iterations)
        for key, values in attack.last_extra.items():
            extra.setdefault(key, torch.full((clips.shape[0],), -1, dtype=values.dtype))[b] = values.cpu()
        if attack.last_ever_adversarial is not None:
            ever_adversarial[b] = attack.last_ever_adversarial
        else:
            tracks_visits = False
    attack_seconds = time.perf_counter() - attack_started

    summary, samples = evaluate_attack(
        model, clips, labels, targets, clean_pred, adv, attacked,
        BudgetSpec(attack.norm, attack.eps, attack.budget_size), dataset.layout, dataset.fps, config.batch_size, device,
        ever_adversarial=ever_adversarial if tracks_visits else None,
    )
    if iterations:
        it = torch.cat(iterations).float()
        summary["metrics"]["mean_iterations"] = {"value": float(it.mean()), "max": float(it.max()), "n": int(it.numel())}
    sanity_started = time.perf_counter()
    sanity = None
    if config.sanity_samples > 0 and idx.numel() > 0:
        sub = idx[: config.sanity_samples]
        success = torch.tensor(samples["success"], dtype=torch.bool)
        sanity = run_sanity_checks(
            attack, model, clips[sub], labels[sub], targets[sub] if targets is not None else None, success[sub],
            config.batch_size, device, config.seed,
        )
        summary["flags"].update({f"sanity_{name}": check["passed"] for name, check in sanity["checks"].items()})
    sanity_seconds = time.perf_counter() - sanity_started
    samples = {"id": list(subset.sample_ids), **samples, **{k: v.tolist() for k, v in extra.items()}}
    if "succeeded_by" in extra and attack.components():
        # Per-attack breakdown of a cascade: which component broke each sample the evaluator confirms.
        success = torch.tensor(samples["success"], dtype=torch.bool)
        by = extra["succeeded_by"]
        summary["metrics"]["breakdown"] = {
            name: {"count": int(((by == i) & success).sum()), "n": int(attacked.sum())} for i, name in enumerate(attack.components())
        }
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": new_run_id(),
        "created": utc_now(),
        "command": command_line(),
        "victim": {
            "name": victim.name,
            "checkpoint": victim.checkpoint,
            "checkpoint_sha256": victim.checkpoint_sha256,
            "pretrained_on": victim.pretrained_on,
            "num_parameters": victim.num_parameters,
            "num_classes": victim.model.num_classes,
        },
        "dataset": {
            **dataset.describe(),
            "source": dataset.source if dataset.synthetic else Path(dataset.source or "").name,
            "sample_selection": f"first {len(indices)} of a fixed permutation (seed {SAMPLE_ORDER_SEED}) of the split",
            "sample_ids_sha256": subset.ids_sha256(),
            "num_evaluated": len(indices),
        },
        "attack": attack.describe(),
        "defense": defense.describe() if defense else None,
        "sweep": config.sweep,
        "seed": config.seed,
        "batch_size": config.batch_size,
        "environment": environment(str(device)),
        "timing": {"wall_time_s": time.perf_counter() - started, "attack_time_s": attack_seconds, "sanity_time_s": sanity_seconds},
        "metrics": summary["metrics"],
        "flags": summary["flags"],
        "sanity": sanity,
        "samples": samples,
    }
    path = write_record(record, config.results_dir) if write else None
    return RunResult(record=record, path=path)
