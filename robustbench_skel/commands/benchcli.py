"""The ``bench`` command: builds the inputs, runs :mod:`robustbench_skel.commands.bench`, prints Markdown tables."""

from __future__ import annotations

import platform
import tempfile
import time

import numpy as np
import torch

from ..artefacts import ArtefactStore
from ..attack import Attack, PrepareContext, ThreatModel
from .bench import time_against_torchattacks, time_attack, time_victim, torchattacks_version
from ..datasets import SkeletonDataset
from ..errors import UserError
from ..registry import VICTIMS
from ..run.runner import (RunConfig, build_attack, effective_threat_model, load_dataset, load_surrogates, resolve_device,
                     select_samples)
from ..victim import create_victim, load_victim

__all__ = ["bench_victims", "bench_attack"]

_AR_CLIPS = 1000  # clips in the motion-model timing (the training split's first ones)


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def _synth_batch(batch_size: int) -> tuple[torch.Tensor, torch.Tensor, object]:
    dataset = load_dataset("synth", "test", None)
    subset = dataset.subset(select_samples(dataset, batch_size))
    x, y = subset.tensors()
    return x, y, dataset


def bench_victims(names: str, batch_size: int, device_name: str, repeats: int) -> str:
    """Per-victim parameters and per-clip forward / forward+backward times on a synth batch."""
    device = resolve_device(device_name)
    chosen = VICTIMS.names() if names == "all" else [n.strip() for n in names.split(",")]
    x, _, dataset = _synth_batch(batch_size)
    x = x.to(device)
    lines = [
        f"victim timings on {_machine(device)}, torch {torch.__version__}, batch {x.shape[0]} synth clips {tuple(x.shape[1:])}",
        "",
        "| victim | parameters | forward (ms/clip) | forward+backward (ms/clip) |",
        "|---|---|---|---|",
    ]
    for name in chosen:
        cls = VICTIMS.get(name)
        if dataset.layout.name not in cls.layouts:
            lines.append(f"| {name} | - | (layouts {', '.join(cls.layouts)} only) | - |")
            continue
        model = create_victim(name, dataset.num_classes, dataset.layout).to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        t = time_victim(model, x, repeats)
        params = sum(p.numel() for p in model.parameters())
        lines.append(f"| {name} | {params:,} | {t.forward_ms_per_clip:.1f} | {t.forward_backward_ms_per_clip:.1f} |")
    return "\n".join(lines)


def bench_attack(attack_name: str, victim_name: str, batch_size: int, device_name: str, repeats: int,
                 eps: float | None, steps: int | None, surrogates: list[str] | None = None) -> str:
    """One attack iteration vs one bare forward+backward pass of what the attack is handed, on a synth batch.

    White-box: the (pretrained) victim. Transfer (``surrogates`` given, or an attack that needs them):
    the surrogate ensemble, as the runner hands it; the attack's preparation (e.g. TASAR's heads) is
    timed on a fresh artefact cache, and an attack with a motion model also times its fit on 1,000 clips.
    """
    device = resolve_device(device_name)
    x, y, dataset = _synth_batch(batch_size)
    config = RunConfig(attack=attack_name, eps=eps, steps=steps, surrogates=surrogates or None, device=device_name)
    attack = build_attack(config, dataset.layout.name)
    threat = effective_threat_model(attack, config.surrogates)
    x, y = x.to(device), y.to(device)
    if threat is ThreatModel.TRANSFER:
        return _bench_transfer(attack, config, dataset, x, y, device, repeats)
    if threat is not ThreatModel.WHITE_BOX:
        raise UserError(f"bench times white-box and transfer attacks; {attack_name!r} is {threat.value}")
    try:
        victim = load_victim(victim_name, dataset.num_classes, dataset.layout, "synth", None, device).model
        weights = "synth weights"
    except UserError:
        victim = create_victim(victim_name, dataset.num_classes, dataset.layout).to(device).eval()
        for p in victim.parameters():
            p.requires_grad_(False)
        weights = "random weights (no synth weights ship)"
    t = time_attack(attack, victim, x, y, repeats=repeats)
    effective = "n/a" if t.effective_iterations_per_sample is None else f"{t.effective_iterations_per_sample:.2f} of {t.steps}"
    lines = [
        f"{attack_name} ({attack.norm} eps={attack.eps:g}) on {victim_name} ({weights}), {_machine(device)}, torch {torch.__version__}, batch {x.shape[0]}",
        "",
        "| attack | victim | batch | fwd+bwd (s) | one iteration (s) | ratio | effective iterations/sample | whole attack (s) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {attack_name} | {victim_name} | {x.shape[0]} | {t.forward_backward_s:.3f} | {t.iteration_s:.3f} | {t.ratio:.3f} | {effective} | {t.attack_s:.2f} |",
        "",
        f"ratio: {t.ratio:.2f}",
    ]
    if attack_name == "pgd":
        lines += ["", *_parity_lines(attack, victim, x, y, repeats)]
    return "\n".join(lines)


def _parity_lines(attack: Attack, victim: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> list[str]:
    """Our PGD per iteration against torchattacks' on the same work, when torchattacks is installed."""
    if torchattacks_version() is None:
        return ["torchattacks not installed: no parity figure (pip install --no-deps torchattacks==3.5.1; see the README)"]
    p = time_against_torchattacks(attack, victim, x, y, repeats=repeats)
    per_iteration = lambda seconds: 1000 * sorted(seconds)[len(seconds) // 2] / p.steps  # noqa: E731
    return [
        f"PGD per iteration against torchattacks {p.version} PGD (same model, {p.batch_size} clips, {p.steps} steps, "
        f"same step size and random start; {p.clock}, {len(p.ours_s)} alternating pairs, ABBA order):",
        "",
        "| | ours | torchattacks |",
        "|---|---|---|",
        f"| median per iteration (ms) | {per_iteration(p.ours_s):.1f} | {per_iteration(p.theirs_s):.1f} |",
        "",
        f"pair ratios (ours / torchattacks): {', '.join(f'{r:.3f}' for r in p.ratios)}",
        f"ratio to torchattacks per iteration (median of pairs): {p.median_ratio:.3f}",
        f"the loops alone (a linear stand-in for the model): ours {per_iteration(p.loop_ours_s):.3f} ms, torchattacks "
        f"{per_iteration(p.loop_theirs_s):.3f} ms per iteration; our loop is {100 * p.loop_share():.2f}% of our "
        "iteration on this victim, the rest is the model's own passes",
    ]


def _bench_transfer(attack: Attack, config: RunConfig, dataset: SkeletonDataset, x: torch.Tensor, y: torch.Tensor,
                    device: torch.device, repeats: int) -> str:
    """A transfer attack against a bare pass of its surrogates; its preparation and motion fit timed on their own."""
    handed = load_surrogates(config, dataset, device)
    attack.early_stop = "none"  # the runner's transfer default: every iteration runs
    names = "+".join(handed.names)
    with tempfile.TemporaryDirectory() as root:
        store = ArtefactStore(root)

        def prepare(a: Attack) -> list:
            return a.prepare(handed, PrepareContext(store, device, config.seed, False, "bench"))

        start = time.perf_counter()
        entries = prepare(attack)  # a fresh cache: everything is built
        prepare_s = time.perf_counter() - start
        t = time_attack(attack, handed, x, y, repeats=repeats, prepare=prepare)
    lines = [
        f"{attack.name} ({attack.norm} eps={attack.eps:g}) on surrogate {names} (synth weights), {_machine(device)}, "
        f"torch {torch.__version__}, batch {x.shape[0]}",
        "",
        "| attack | surrogate | batch | fwd+bwd (s) | one iteration (s) | ratio | whole attack (s) |",
        "|---|---|---|---|---|---|---|",
        f"| {attack.name} | {names} | {x.shape[0]} | {t.forward_backward_s:.3f} | {t.iteration_s:.3f} | {t.ratio:.3f} | {t.attack_s:.2f} |",
        "",
        f"ratio: {t.ratio:.2f}",
        f"prepare: {prepare_s:.1f} s ({', '.join(e['kind'] for e in entries) or 'nothing'}; fresh artefact cache)",
    ]
    motion = getattr(attack, "motion", None)
    if callable(motion):
        clips = torch.from_numpy(np.ascontiguousarray(handed.train_data().clips[:_AR_CLIPS], dtype=np.float32))
        start = time.perf_counter()
        motion(clips)
        ar_s = time.perf_counter() - start
        lines.append(f"AR fit of {clips.shape[0]} clips {tuple(clips.shape[1:])}: {ar_s:.1f} s")
        lines.append(f"preparation total (prepare + AR fit): {prepare_s + ar_s:.1f} s")
    return "\n".join(lines)
