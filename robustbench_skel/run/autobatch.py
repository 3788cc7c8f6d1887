"""``--batch-size auto``: the largest power of two whose forward+backward pass fits on the GPU.

A gradient attack holds one batch's activations for its backward pass at every iteration, so the
probe runs exactly that (under bfloat16 autocast when the attack will) on copies of a real clip and
stops at the first out-of-memory error. On a CPU there is nothing to probe: memory is rarely the
limit there and larger batches stop paying off early, so ``auto`` means 32.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError

__all__ = ["AUTO_CPU_BATCH", "MAX_AUTO_BATCH", "parse_batch_size", "resolve_batch_size"]

AUTO_CPU_BATCH = 32
MAX_AUTO_BATCH = 1024


def parse_batch_size(value: int | str) -> int | str:
    """``value`` checked: a whole number of at least 1, or ``"auto"``."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"--batch-size must be a whole number of at least 1 or 'auto', got {value!r}")
    return value


def _fits(model: nn.Module, clip: torch.Tensor, size: int, device: torch.device, amp: bool) -> bool:
    try:
        x = clip.expand(size, *clip.shape[1:]).to(device).clone().requires_grad_(True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = model(x).float().logsumexp(dim=1).sum()
        loss.backward()
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def resolve_batch_size(value: int | str, model: nn.Module, clips: torch.Tensor, device: torch.device,
                       amp: bool = False) -> int:
    """The batch size to use: ``value`` itself, or for ``"auto"`` the probe's answer (see the module docstring).

    The probe stops at the number of clips (rounded up to a power of two): a larger batch buys nothing.
    """
    value = parse_batch_size(value)
    if value != "auto":
        return int(value)
    if device.type != "cuda" or clips.shape[0] == 0:
        return AUTO_CPU_BATCH
    limit = min(MAX_AUTO_BATCH, 1 << max(0, int(clips.shape[0]) - 1).bit_length())
    best, size = 0, 1
    was_training = model.training
    model.eval()
    try:
        while size <= limit and _fits(model, clips[:1], size, device, amp):
            best, size = size, size * 2
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    if best == 0:
        raise UserError("--batch-size auto: not even one clip fits in GPU memory; free the GPU or use --device cpu")
    return best
