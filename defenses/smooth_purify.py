"""Temporal smoothing purification: low-pass filter every joint trajectory before the victim.

Adversarial perturbations of skeletons are largely high-frequency jitter, while human motion at 30 fps
is smooth; a Savitzky-Golay filter (a local polynomial fit, scipy's ``savgol_coeffs``) or a moving average
removes the one and keeps the other. The filter is a depthwise ``conv1d`` over time, so attacks
differentiate through it (the defense is fully differentiable: no BPDA needed).

Edges: each person's trajectory ends at its last valid frame (NTU pads with zeros after the clip). The
signal is extended past both ends by ODD reflection through the end frame (``2 x[end] - x[end - k]``),
never by the zero padding: it keeps position and velocity continuous, so linear motion is reproduced
exactly up to the last frame, whereas even mirroring would bend every moving joint back at the clip's
end. Padded and absent person-frames stay exactly zero.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import savgol_coeffs
from torch import nn

from robustbench_skel.budget import valid_mask
from robustbench_skel.defense import Defense, DefenseContext
from robustbench_skel.errors import UserError
from robustbench_skel.registry import DEFENSES

__all__ = ["SmoothPurify", "TemporalFilter", "filter_kernel"]


def filter_kernel(method: str, window: int, polyorder: int) -> np.ndarray:
    """The symmetric smoothing kernel: Savitzky-Golay coefficients or a flat moving average."""
    if window < 1 or window % 2 == 0:
        raise UserError(f"smooth-purify: window must be a positive odd number of frames, got {window}")
    if method == "savgol":
        if not 0 <= polyorder < window:
            raise UserError(f"smooth-purify: polyorder must be in [0, window), got {polyorder} for window {window}")
        return savgol_coeffs(window, polyorder, use="dot")
    if method == "average":
        return np.full(window, 1.0 / window)
    raise UserError(f"smooth-purify: method must be 'savgol' or 'average', got {method!r}")


def _odd_reflect_indices(lengths: torch.Tensor, t: int, half: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For padded positions ``-half .. t+half-1``: source frame, reflection anchor and whether reflected.

    A position ``p`` past the last valid frame ``e`` maps to ``2e - p`` (reflected), one before 0 to ``-p``.
    """
    p = torch.arange(-half, t + half, device=lengths.device)[None, :]
    end = (lengths - 1).clamp_min(0)[:, None]
    p = p.expand(end.shape[0], -1)
    low, high = p < 0, p > end
    src = torch.where(low, -p, torch.where(high, 2 * end - p, p))
    src = torch.minimum(src.clamp_min(0), end)  # very short sequences: reflect once, then hold
    anchor = torch.where(low, torch.zeros_like(p), end.expand_as(p))
    return src, anchor, (low | high)


class TemporalFilter(nn.Module):
    """Clips -> clips with every joint coordinate filtered along time within its valid frames."""

    def __init__(self, kernel: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("kernel", torch.as_tensor(kernel, dtype=torch.float32))  # conv1d correlates: "dot" order
        self.half = len(kernel) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        mask = valid_mask(x)  # (N, 1, T, 1, M)
        frames = mask[:, 0, :, 0, :]  # (N, T, M)
        ar = torch.arange(1, t + 1, device=x.device, dtype=x.dtype)[None, :, None]
        lengths = (frames * ar).amax(dim=1).long().reshape(-1)  # last valid frame + 1, per (n, m)
        seq = x.permute(0, 4, 1, 3, 2).reshape(n * m, c * v, t)  # (N*M, C*V, T)
        src, anchor, reflected = _odd_reflect_indices(lengths, t, self.half)
        gathered = seq.gather(2, src[:, None, :].expand(-1, c * v, -1))
        ends = seq.gather(2, anchor[:, None, :].expand(-1, c * v, -1))
        padded = torch.where(reflected[:, None, :], 2 * ends - gathered, gathered)
        weight = self.kernel.to(x.dtype).view(1, 1, -1).expand(c * v, 1, -1)
        out = F.conv1d(padded, weight, groups=c * v)  # (N*M, C*V, T)
        out = out.view(n, m, c, v, t).permute(0, 2, 4, 3, 1)
        return out * mask


class Purified(nn.Module):
    """The victim behind a purifier: ``victim(purifier(x))``."""

    def __init__(self, purifier: nn.Module, victim: nn.Module) -> None:
        super().__init__()
        self.purifier = purifier
        self.victim = victim
        self.num_classes = getattr(victim, "num_classes", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.victim(self.purifier(x))


@DEFENSES.register("smooth-purify")
class SmoothPurify(Defense):
    description = "temporal Savitzky-Golay (or moving-average) filtering of every joint before the victim"
    kind = "inference"

    def __init__(self, method: str = "savgol", window: int = 7, polyorder: int = 2) -> None:
        self.method = method
        self.window = int(window)
        self.polyorder = int(polyorder)
        filter_kernel(method, self.window, self.polyorder)  # fail on bad options at construction

    def apply(self, victim: nn.Module, context: DefenseContext | None = None) -> nn.Module:
        purifier = TemporalFilter(filter_kernel(self.method, self.window, self.polyorder))
        device = context.device if context is not None else next(victim.parameters()).device
        return Purified(purifier, victim).to(device).eval()
