"""One benchmark run: dataset -> victim (-> defense) -> attack -> evaluator -> record.

The runner enforces the threat model: it builds what the attack is handed (the victim, surrogates,
an unlabelled pool or a label oracle; :mod:`robustbench_skel.run.threats`) and nothing else reaches the
attack. It fixes the evaluated samples independently of the attack and its seed (so different attacks
see the same clips), and writes the record only once everything has been computed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..artefacts import ArtefactStore, tensor_sha256
from ..attack import PrepareContext, ThreatModel, parse_early_stop
from ..datasets import SkeletonDataset, check_clip_values
from ..datasets.load import load_dataset
from ..defense import Defense, DefenseContext
from ..device import resolve_device
from ..errors import UserError
from ..handed import SurrogateEnsemble, SurrogateInfo, UnlabelledPool
from ..progress_meter import progress_enabled, showing_progress
from ..registry import ATTACKS, DEFENSES
from ..victim import LoadedVictim, load_victim, predict
from .assemble import build_attack, effective_threat_model, with_transfer_step
from .autobatch import AUTO_CPU_BATCH, parse_batch_size, resolve_batch_size
from .config import RunConfig
from .evaluator import BudgetSpec, evaluate_attack
from .presets import PRESETS, apply_preset
from .progress import BatchCheckpoint, progress_key
from .record import SCHEMA_VERSION, command_line, environment, new_run_id, utc_now, write_record
from .run_checks import validate_run_config
from .threats import DecisionBased, NoBox, ThreatSetting, Transfer, WhiteBox, _Common

__all__ = ["RunConfig", "RunResult", "resolve_device", "load_dataset", "select_samples", "build_attack", "effective_threat_model",
           "load_surrogates", "build_setting", "prepare_attack", "run_benchmark", "with_transfer_step"]

# The evaluated samples are the first n of a fixed shuffle of the split, the same for every attack.
SAMPLE_ORDER_SEED = 0


@dataclass
class RunResult:
    record: dict
    path: Path | None


def select_samples(dataset: SkeletonDataset, n_samples: int | str) -> np.ndarray:
    if n_samples == "all":
        n_samples = len(dataset)
    elif isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise UserError(f"--n-samples must be a whole number of at least 1 or 'all', got {n_samples!r}")
    order = np.random.default_rng(SAMPLE_ORDER_SEED).permutation(len(dataset))
    return order[: min(n_samples, len(dataset))]


def _build_defense(name: str | None) -> Defense | None:
    return DEFENSES.get(name)() if name else None


def _draw_targets(labels: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """A random class different from the true one for every sample, from the run's seed."""
    gen = torch.Generator().manual_seed(seed)
    offset = torch.randint(1, num_classes, labels.shape, generator=gen)
    return (labels + offset) % num_classes


def load_surrogates(config: RunConfig, dataset: SkeletonDataset, device: torch.device) -> SurrogateEnsemble:
    """The surrogate model(s) of a transfer run, with the training data the attacker is assumed to hold."""
    names = list(config.surrogates or [])
    checkpoints = list(config.surrogate_checkpoints or [])
    if checkpoints and len(checkpoints) != len(names):
        raise UserError(f"{len(names)} surrogate(s) but {len(checkpoints)} --surrogate-checkpoint value(s); give one per surrogate, in order")
    members, infos = [], []
    for i, name in enumerate(names):
        loaded = load_victim(name, dataset.num_classes, dataset.layout, dataset.name, checkpoints[i] if checkpoints else None, device)
        members.append(loaded.model)
        infos.append(SurrogateInfo(loaded.name, loaded.checkpoint, loaded.checkpoint_sha256, loaded.pretrained_on))
    cache: dict[str, SkeletonDataset] = {}

    def train_data() -> SkeletonDataset:
        if "train" not in cache:
            cache["train"] = load_dataset(config.dataset, "train", config.data_path, unit=config.unit)
        return cache["train"]

    return SurrogateEnsemble(members, infos, train_data)


def _prepare_command(config: RunConfig, threat: ThreatModel) -> str:
    """The command that rebuilds an attack's artefacts ahead of time (recorded with each artefact)."""
    parts = ["python -m robustbench_skel prepare", f"--attack {config.attack}", f"--dataset {config.dataset}"]
    if config.data_path:
        parts.append(f"--data-path {Path(config.data_path).name}")
    if threat is ThreatModel.TRANSFER:
        parts.append("--surrogate " + ",".join(config.surrogates or []))
    if threat is ThreatModel.NO_BOX:
        parts.append(f"--nobox-pool {config.nobox_pool}")
    parts += [f"--attack-opt {k}={v}" for k, v in sorted(config.attack_options.items())]
    return " ".join(parts)


def build_setting(
    threat: ThreatModel, config: RunConfig, dataset: SkeletonDataset, common: _Common, attack_model: nn.Module,
    adaptive: dict[str, Any] | None,
) -> ThreatSetting:
    """What the attack is handed for ``threat``, and how it crafts: nothing else reaches the attack."""
    if threat is ThreatModel.WHITE_BOX:
        return WhiteBox(common, attack_model, adaptive)
    if threat is ThreatModel.TRANSFER:
        return Transfer(common, load_surrogates(config, dataset, common.device))
    if threat is ThreatModel.NO_BOX:
        if config.nobox_pool not in ("train", "test"):
            raise UserError(f"--nobox-pool must be train or test, got {config.nobox_pool!r}")
        pool = dataset if config.nobox_pool == dataset.split else load_dataset(config.dataset, config.nobox_pool, config.data_path, unit=config.unit)
        return NoBox(common, UnlabelledPool.from_dataset(pool))
    if config.max_queries < 1:
        raise UserError(f"--queries must be at least 1, got {config.max_queries}")
    return DecisionBased(common, config.max_queries)


def _defended_models(defense: Defense | None, victim: LoadedVictim, dataset: SkeletonDataset, config: RunConfig,
                     device: torch.device) -> tuple[nn.Module, nn.Module, dict[str, Any] | None]:
    """The evaluated model, the model white-box attacks differentiate, and the adaptive settings used."""
    if defense is None:
        return victim.model, victim.model, None
    context = DefenseContext(victim.name, dataset.name, dataset.layout, victim.model.num_classes, dataset.fps, device,
                             victim.checkpoint_sha256, config.defense_checkpoint)
    evaluated = defense.apply(victim.model, context).eval()
    attacked = evaluated
    adaptive = {"eot_samples": config.eot_samples if defense.randomized else None,
                "bpda": "defense approximation" if not defense.differentiable else None}
    if not defense.differentiable:
        context.bpda = True
        attacked = defense.apply(victim.model, context).eval()
    return evaluated, attacked, adaptive


def _clean_predictions(model: nn.Module, clips: torch.Tensor, subset: SkeletonDataset, victim_fingerprint: str,
                       defense: Defense | None, config: RunConfig, device: torch.device) -> torch.Tensor:
    """The victim's predictions on the clean clips, cached by victim and samples: a transfer matrix evaluates
    the same victim on the same clips once per surrogate row. A randomized defense is always re-evaluated."""
    label = "evaluation: classifying the clean clips" if progress_enabled() else None
    if defense is not None and defense.randomized:
        return predict(model, clips, config.batch_size, device, label)
    spec = {"victim": victim_fingerprint, "clips_sha256": tensor_sha256(clips)}
    content, _ = ArtefactStore().load_or_build(
        "clean-predictions", spec, lambda: {"pred": predict(model, clips, config.batch_size, device, label)})
    return content["pred"]


def prepare_attack(config: RunConfig, progress: bool = False) -> list[dict[str, Any]]:
    """Build the artefacts the configured attack trains before attacking (``prepare`` command); their record entries."""
    validate_run_config(config, write=False, allow_self_surrogate=True)  # prepare never attacks the victim
    device = resolve_device(config.device)
    attack = build_attack(config)
    threat = effective_threat_model(attack, config.surrogates)
    if threat in (ThreatModel.WHITE_BOX, ThreatModel.DECISION_BASED):
        raise UserError(f"attack {attack.name!r} ({threat.value}) trains nothing ahead of time; run it directly")
    dataset = load_dataset(config.dataset, config.split, config.data_path, config.seed, config.unit)
    attack = build_attack(config, dataset.layout.name)
    if parse_batch_size(config.batch_size) == "auto":
        config = replace(config, batch_size=AUTO_CPU_BATCH)  # nothing here is probed on a GPU
    common = _Common(eval_model=None, batch_size=config.batch_size, device=device, seed=config.seed, store=ArtefactStore(),
                     victim_fingerprint="", data_fingerprint={"name": dataset.name, "version": dataset.version})
    setting = build_setting(threat, config, dataset, common, None, None)
    return attack.prepare(setting.handed, PrepareContext(common.store, device, config.seed, progress, _prepare_command(config, threat)))


def run_benchmark(config: RunConfig, progress: bool = False, write: bool = True, command: str | None = None) -> RunResult:
    """Run one victim x attack x defense x dataset configuration under its threat model and write its record.

    ``command``: the command line the record names (default: this process's; the Python API passes the
    equivalent ``run`` command).

    The whole configuration is checked first (:func:`validate_run_config`). A surrogate equal to the victim
    is allowed here (a transfer matrix's diagonal, a reference cell); the ``run`` command refuses it.
    ``progress`` shows the progress of every long step (crafting, sanity re-runs, a defense's CERTIFY):
    a bar on a terminal, log lines elsewhere (:mod:`robustbench_skel.progress_meter`)."""
    with showing_progress(progress):
        return _run_benchmark(config, progress, write, command)


def _run_benchmark(config: RunConfig, progress: bool, write: bool, command: str | None) -> RunResult:
    started = time.perf_counter()
    validate_run_config(config, write=write, allow_self_surrogate=True)
    device = resolve_device(config.device)
    requested = config  # recorded as given; the preset and "auto" are resolved below
    config = apply_preset(config)
    parse_batch_size(config.batch_size)
    attack = build_attack(config)  # fail on a bad attack name or option before touching any data
    threat = effective_threat_model(attack, config.surrogates)
    preset = PRESETS.get(config.preset) if config.preset else None
    if preset is not None and preset.threat_model and threat.value != preset.threat_model:
        raise UserError(f"--preset {preset.name} is a {preset.threat_model} protocol: name the surrogate(s) with "
                        f"--surrogate (this run is {threat.value})")
    early_stop = parse_early_stop(config.early_stop) if config.early_stop else None
    defense = _build_defense(config.defense)
    eot = threat is ThreatModel.WHITE_BOX and defense is not None and defense.randomized
    if eot and not attack.supports_eot:
        usable = ", ".join(name for name, cls in ATTACKS.items()
                           if cls.supports_eot and cls.threat_model is ThreatModel.WHITE_BOX)
        raise UserError(f"attack {attack.name!r} cannot average its gradients over the random draws of the randomized "
                        f"defense {config.defense!r} (EOT), so its result would overstate the defense; use one of: {usable}")
    dataset = load_dataset(config.dataset, config.split, config.data_path, config.seed, config.unit)
    attack = build_attack(config, dataset.layout.name)
    if threat is ThreatModel.TRANSFER:
        attack = with_transfer_step(attack, config, dataset.layout.name, whole_budget=bool(preset and preset.step_is_eps))
    attack.early_stop = early_stop or ("adversarial" if threat is ThreatModel.WHITE_BOX else "none")

    indices = select_samples(dataset, config.n_samples)
    subset = dataset.subset(indices)
    check_clip_values(subset.clips, subset.sample_ids, subset.source or subset.name)
    victim: LoadedVictim = load_victim(
        config.victim, dataset.num_classes, dataset.layout, dataset.name, config.checkpoint, device
    )
    model, attack_model, adaptive = _defended_models(defense, victim, dataset, config, device)
    if eot:  # EOT is for white-box gradients; a transfer attack's surrogates are not randomized
        attack.eot_samples = int(config.eot_samples)

    clips, labels = subset.tensors()
    config = replace(config, batch_size=resolve_batch_size(config.batch_size, attack_model, clips, device, config.amp))
    if attack.targeted and victim.model.num_classes < 2:
        raise UserError("a targeted attack needs at least two classes")
    targets = _draw_targets(labels, victim.model.num_classes, config.seed) if attack.targeted else None
    victim_fingerprint = f"{victim.name}:{victim.checkpoint_sha256}:{json.dumps(defense.describe() if defense else None, sort_keys=True)}"
    clean_pred = _clean_predictions(model, clips, subset, victim_fingerprint, defense, config, device)
    attacked = clean_pred.eq(labels)

    common = _Common(
        eval_model=model, batch_size=config.batch_size, device=device, seed=config.seed, store=ArtefactStore(),
        victim_fingerprint=victim_fingerprint,
        data_fingerprint={"name": dataset.name, "version": dataset.version, "split": dataset.split,
                          "sample_ids_sha256": subset.ids_sha256()},
        attack_model=attack_model, eot_samples=int(adaptive["eot_samples"]) if adaptive and adaptive["eot_samples"] else 1,
    )
    common.amp = config.amp
    common.reference_success = bool(preset and preset.reference_success)
    common.checkpoint = BatchCheckpoint.for_run(config.results_dir, progress_key(
        requested, config.batch_size, victim.checkpoint_sha256, subset.ids_sha256()), fresh=not config.resume)
    setting = build_setting(threat, config, dataset, common, attack_model, adaptive)
    prepare_started = time.perf_counter()
    artefacts = attack.prepare(setting.handed, PrepareContext(common.store, device, config.seed, progress,
                                                              _prepare_command(config, threat)))
    attack_started = time.perf_counter()
    crafted = setting.craft(attack, clips, labels, targets, attacked, progress)
    attack_seconds = time.perf_counter() - attack_started

    summary, samples = evaluate_attack(
        model, clips, labels, targets, clean_pred, crafted.adv, attacked,
        BudgetSpec(attack.norm, attack.eps, attack.budget_size), dataset.layout, dataset.fps, config.batch_size, device,
        ever_adversarial=crafted.ever_adversarial,
    )
    success = torch.tensor(samples["success"], dtype=torch.bool)
    if crafted.iterations is not None and crafted.iterations.numel():
        it = crafted.iterations.float()
        summary["metrics"]["mean_iterations"] = {"value": float(it.mean()), "max": float(it.max()), "n": int(it.numel())}
    extra_metrics, extra_samples = setting.extra_metrics(crafted, clips, labels, targets, attacked, success)
    summary["metrics"].update(extra_metrics)
    if defense is not None:
        summary["metrics"].update(defense.extra_metrics(model, clips, labels))
    sanity_started = time.perf_counter()
    sanity = setting.sanity(attack, clips, labels, targets, attacked, success, config.sanity_samples)
    if sanity:
        summary["flags"].update({f"sanity_{name}": check["passed"] for name, check in sanity["checks"].items()})
    sanity_seconds = time.perf_counter() - sanity_started
    extra = {k: v.tolist() for k, v in crafted.extra.items()}
    samples = {"id": list(subset.sample_ids), **samples, **extra, **extra_samples}
    if "succeeded_by" in crafted.extra and attack.components():
        # Per-attack breakdown of a cascade: which component broke each sample the evaluator confirms.
        by = crafted.extra["succeeded_by"]
        summary["metrics"]["breakdown"] = {
            name: {"count": int(((by == i) & success).sum()), "n": int(attacked.sum())} for i, name in enumerate(attack.components())
        }
    described_attack = {**attack.describe(), "threat_model": threat.value}
    if described_attack["budget_unit"] == "m":  # a distance budget is in the data's unit, which may not be metres
        described_attack["budget_unit"] = dataset.coordinate_unit
    threat_entry = {**setting.describe(), "artefacts": artefacts}
    if threat in (ThreatModel.TRANSFER, ThreatModel.NO_BOX):
        threat_entry["early_stop"] = attack.early_stop
    if getattr(setting, "artefact", None):
        threat_entry["crafted"] = setting.artefact
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": new_run_id(),
        "created": utc_now(),
        "command": command or command_line(),
        "config": asdict(requested),  # the exact configuration, so `reproduce` re-runs it
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
        "attack": described_attack,
        "threat": threat_entry,
        "defense": defense.describe() if defense else None,
        "sweep": config.sweep,
        "seed": config.seed,
        "batch_size": config.batch_size,
        "environment": environment(str(device)),
        "timing": {"wall_time_s": time.perf_counter() - started, "prepare_time_s": attack_started - prepare_started,
                   "attack_time_s": attack_seconds, "sanity_time_s": sanity_seconds},
        "metrics": summary["metrics"],
        "flags": summary["flags"],
        "sanity": sanity,
        "samples": samples,
    }
    if config.save_adversarial and write:  # the npz first: a record never names a missing file
        from .adversarial_store import save_adversarial

        record["adversarial"] = save_adversarial(record, clips, crafted.adv, attacked, config.results_dir,
                                                 lambda x: predict(model, x, config.batch_size, device),
                                                 BudgetSpec(attack.norm, attack.eps, attack.budget_size))
    record["preset"] = config.preset
    record["timing"]["resumed_batches"] = common.checkpoint.resumed
    if config.amp:
        record["attack"]["amp"] = "bf16"  # the attack's passes; the evaluator re-classified in float32
    path = write_record(record, config.results_dir) if write else None
    common.checkpoint.discard()  # the record holds everything now
    return RunResult(record=record, path=path)
