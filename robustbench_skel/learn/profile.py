"""Model size and cost: parameter counts and multiply-accumulates for a given input."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_macs"]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``x`` (PyTorch's FLOP counter divided by two).

    Empty-person skipping is switched off while counting, so the figure is the cost of the
    architecture itself, comparable with published numbers.
    """
    skip = getattr(model, "skip_empty_persons", None)
    if skip is not None:
        model.skip_empty_persons = False
    try:
        model.eval()
        with FlopCounterMode(display=False) as counter:
            model(x)
        return counter.get_total_flops() // 2
    finally:
        if skip is not None:
            model.skip_empty_persons = skip
