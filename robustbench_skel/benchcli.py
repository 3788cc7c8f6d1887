"""The ``bench`` command: builds the inputs, runs :mod:`robustbench_skel.bench`, prints Markdown tables."""

from __future__ import annotations

import platform

import torch

from .bench import time_attack, time_victim
from .errors import UserError
from .registry import VICTIMS
from .runner import RunConfig, build_attack, load_dataset, resolve_device, select_samples
from .victim import create_victim, load_victim

__all__ = ["bench_victims", "bench_attack"]


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
                 eps: float | None, steps: int | None) -> str:
    """One attack iteration vs one bare forward+backward pass of the (pretrained) victim on a synth batch."""
    device = resolve_device(device_name)
    x, y, dataset = _synth_batch(batch_size)
    try:
        victim = load_victim(victim_name, dataset.num_classes, dataset.layout, "synth", None, device).model
        weights = "synth weights"
    except UserError:
        victim = create_victim(victim_name, dataset.num_classes, dataset.layout).to(device).eval()
        for p in victim.parameters():
            p.requires_grad_(False)
        weights = "random weights (no synth weights ship)"
    attack = build_attack(RunConfig(attack=attack_name, eps=eps, steps=steps), dataset.layout.name)
    x, y = x.to(device), y.to(device)
    t = time_attack(attack, victim, x, y, repeats=repeats)
    effective = "n/a" if t.effective_iterations_per_sample is None else f"{t.effective_iterations_per_sample:.2f} of {t.steps}"
    return "\n".join([
        f"{attack_name} ({attack.norm} eps={attack.eps:g}) on {victim_name} ({weights}), {_machine(device)}, torch {torch.__version__}, batch {x.shape[0]}",
        "",
        "| attack | victim | batch | fwd+bwd (s) | one iteration (s) | ratio | effective iterations/sample | whole attack (s) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {attack_name} | {victim_name} | {x.shape[0]} | {t.forward_backward_s:.3f} | {t.iteration_s:.3f} | {t.ratio:.3f} | {effective} | {t.attack_s:.2f} |",
    ])
