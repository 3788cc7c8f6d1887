"""Running an attack over rows of clips in batches, resumable per batch (every threat setting and sanity check).

It lives apart from :mod:`robustbench_skel.run.threats` and :mod:`robustbench_skel.run.sanity` because
both use it: the threat settings run the sanity checks, and the checks re-run attacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..attack import Attack
from ..progress_meter import progress as show_progress
from .progress import BatchCheckpoint, generator_states, restore_generators

__all__ = ["Crafted", "attack_rows"]


@dataclass
class Crafted:
    """Adversarial clips for every evaluated sample (the clean clip where none was crafted) and per-sample extras."""

    adv: torch.Tensor
    iterations: torch.Tensor | None = None  # gradient steps of the crafted samples
    ever_adversarial: torch.Tensor | None = None  # None when the attack does not track it
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


def attack_rows(
    attack: Attack, handed: Any | Callable[[int], Any], clips: torch.Tensor, labels: torch.Tensor | None,
    targets: torch.Tensor | None, rows: torch.Tensor, batch_size: int, device: torch.device, seed: int,
    progress: str | None = None, after_batch: Callable[[torch.Tensor, Any], dict[str, torch.Tensor] | None] | None = None,
    checkpoint: BatchCheckpoint | None = None, amp: bool = False,
) -> Crafted:
    """Run ``attack`` on ``clips[rows]`` in batches; ``handed`` is the handed object or a factory ``(batch size) -> object``.

    ``progress`` is the label of its progress (:mod:`robustbench_skel.progress_meter`; none without it).
    ``after_batch`` may return per-sample tensors to keep with the batch's extras. With ``checkpoint``
    every finished batch is saved and batches saved by an interrupted attempt are taken back instead of
    re-run (:mod:`robustbench_skel.run.progress`); ``amp`` runs the attack under bfloat16 autocast.
    """
    adv = clips.clone()
    generator = torch.Generator(device=device).manual_seed(seed)
    iterations: list[torch.Tensor] = []
    extra: dict[str, torch.Tensor] = {}
    ever = torch.zeros(clips.shape[0], dtype=torch.bool)
    tracks = True
    batches = show_progress(range(0, rows.numel(), batch_size), desc=progress or "", unit="batch",
                            enabled=bool(progress))
    taking_back, rng_after = checkpoint is not None, None
    for index, start in enumerate(batches):
        b = rows[start : start + batch_size]
        done = checkpoint.load(index, b) if taking_back else None
        if done is None:
            if taking_back and rng_after is not None:
                # later batches draw what an uninterrupted run drew; a handed object made anew per batch starts
                # its own streams afresh in both runs, one kept across batches continues them
                restore_generators(generator, rng_after, handed)
            taking_back = False
            given = handed(b.numel()) if callable(handed) and not isinstance(handed, nn.Module) else handed
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = attack(given, clips[b], None if labels is None else labels[b],
                             None if targets is None else targets[b], generator=generator)
            done = {"adv": out.to("cpu", clips.dtype), "iterations": attack.last_iterations,
                    "extra": {k: v.cpu() for k, v in attack.last_extra.items()}, "ever": attack.last_ever_adversarial}
            if after_batch is not None:
                done["extra"].update({k: v.cpu() for k, v in (after_batch(b, given) or {}).items()})
            if checkpoint is not None:
                checkpoint.save(index, {"rows": b.cpu(), **done, "rng": generator_states(generator, handed)})
        else:
            rng_after = done["rng"]
        adv[b] = done["adv"]
        if done["iterations"] is not None:
            iterations.append(done["iterations"])
        for key, values in done["extra"].items():
            extra.setdefault(key, torch.full((clips.shape[0],), -1, dtype=values.dtype))[b] = values
        if done["ever"] is not None:
            ever[b] = done["ever"]
        else:
            tracks = False
    if taking_back and rng_after is not None:  # every batch taken back: leave the streams where the run left them
        restore_generators(generator, rng_after, handed)
    return Crafted(adv, torch.cat(iterations) if iterations else None, ever if tracks else None, extra)
