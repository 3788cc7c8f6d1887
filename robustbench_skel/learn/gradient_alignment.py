"""Do the surrogate and the victim agree on which way is uphill? The gradient alignment of a transfer pair.

A transfer attack climbs the surrogate's loss and hopes the victim's loss climbs too. Demontis et al.
(USENIX Security 2019, "Why do adversarial attacks transfer?") name the alignment of the two models'
input gradients as one of the factors that decide whether it does: orthogonal gradients leave a
transfer attack no better than random noise of the same size. Each transfer record therefore carries,
measured at the clean clips of its first attacked samples:

- ``median_cosine``: the median over clips of the cosine, over the valid coordinates, between the
  surrogate's and the victim's gradients of the attack's loss (cross-entropy on the label; on the target,
  negated, when targeted). 1: the same direction; 0: unrelated, as two random directions are.

The victim's gradient is the one a white-box attacker would take (through BPDA where the run has it; one
draw of a randomized defense). It is a diagnostic of the pair, not something the attack uses.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..budget import valid_mask
from .bayes_diagnostic import per_clip_cosine

__all__ = ["loss_gradient", "gradient_alignment"]


def loss_gradient(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
                  batch_size: int) -> torch.Tensor:
    """The gradient of the attack's loss (summed over clips) with respect to the clips, batch by batch."""
    grads = []
    for start in range(0, len(x), batch_size):
        clip = x[start:start + batch_size].detach().clone().requires_grad_(True)
        logits = model(clip)
        if targets is None:
            loss = F.cross_entropy(logits.float(), labels[start:start + batch_size], reduction="sum")
        else:
            loss = -F.cross_entropy(logits.float(), targets[start:start + batch_size], reduction="sum")
        (grad,) = torch.autograd.grad(loss, clip)
        grads.append(grad.detach())
    return torch.cat(grads)


def gradient_alignment(surrogate: nn.Module, victim: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                       targets: torch.Tensor | None, batch_size: int) -> dict[str, Any]:
    """The record's ``metrics.gradient_alignment`` for clips ``x`` (see the module docstring)."""
    cuda = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.enable_grad():  # a randomized defense's draws leave the run's RNG as it was
        g_surrogate = loss_gradient(surrogate, x, labels, targets, batch_size)
        g_victim = loss_gradient(victim, x, labels, targets, batch_size)
    cosines = per_clip_cosine(g_surrogate, g_victim, valid_mask(x))
    empty = not cosines.numel()
    return {"median_cosine": float("nan") if empty else float(cosines.median()),
            "quartiles": [float("nan")] * 2 if empty else [float(q) for q in cosines.quantile(torch.tensor([0.25, 0.75]))],
            "n": int(cosines.numel()),
            "measured_at": "the clean clips of the first attacked samples; loss of the attack, victim as a white-box attacker sees it"}
