"""Imperceptibility of a perturbed clip, and the confidence intervals that go with every figure.

All per-clip measures compare an adversarial clip with its clean original over the valid
person-frames only (see :func:`robustbench_skel.budget.valid_mask`), in physical units:

- ``mean_joint_displacement_cm`` / ``max_joint_displacement_cm``: Euclidean 3-D displacement of a
  joint, averaged over (and maximised over) valid joints and frames.
- ``linf_m``: the largest change of a single coordinate; ``l2_rms_m``: the RMS change per coordinate
  (the units of the two budgets).
- ``bone_length_deviation``: mean relative change of bone lengths, ``| |b'| - |b| | / |b|``.
- ``acceleration_deviation``: mean Euclidean norm of the change in joint acceleration, from second
  differences at the clip's frame rate (m/s^2); ``jerk_deviation`` likewise from third differences
  (m/s^3). Only differences whose frames are all valid count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats

from .budget import budget_size, valid_mask
from .layout import SkeletonLayout

__all__ = ["PER_CLIP_METRICS", "imperceptibility", "wilson_interval", "mean_interval"]

PER_CLIP_METRICS = (
    "mean_joint_displacement_cm",
    "max_joint_displacement_cm",
    "linf_m",
    "l2_rms_m",
    "bone_length_deviation",
    "acceleration_deviation",
    "jerk_deviation",
)


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of ``values`` where ``weights`` is 1, ``(N,)``; zero where nothing is valid."""
    w = weights.expand_as(values)
    total = (values * w).flatten(1).sum(dim=1)
    return total / w.flatten(1).sum(dim=1).clamp_min(1)


def _difference_deviation(clean: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, order: int, fps: float) -> torch.Tensor:
    """Mean norm of the change in the ``order``-th temporal derivative, per sample."""
    if clean.shape[2] <= order:
        return torch.zeros(clean.shape[0], dtype=clean.dtype, device=clean.device)
    d_clean, d_adv, valid = clean, adv, mask
    for _ in range(order):
        d_clean = d_clean[:, :, 1:] - d_clean[:, :, :-1]
        d_adv = d_adv[:, :, 1:] - d_adv[:, :, :-1]
        valid = valid[:, :, 1:] * valid[:, :, :-1]
    change = (d_adv - d_clean).norm(dim=1, keepdim=True) * fps**order
    return _masked_mean(change, valid)


@torch.no_grad()
def imperceptibility(clean: torch.Tensor, adv: torch.Tensor, layout: SkeletonLayout, fps: float) -> dict[str, np.ndarray]:
    """Per-clip imperceptibility measures ``{name: (N,) array}`` of ``adv`` against ``clean``."""
    clean = clean.double()
    adv = adv.double()
    mask = valid_mask(clean)
    delta = (adv - clean) * mask
    displacement = delta.norm(dim=1, keepdim=True)  # (N, 1, T, V, M), metres
    child = torch.tensor([c for c, _ in layout.bones], device=clean.device)
    parent = torch.tensor([p for _, p in layout.bones], device=clean.device)
    len_clean = (clean[:, :, :, child] - clean[:, :, :, parent]).norm(dim=1, keepdim=True)
    len_adv = (adv[:, :, :, child] - adv[:, :, :, parent]).norm(dim=1, keepdim=True)
    bone_valid = mask * (len_clean > 1e-6)
    rel_bone = (len_adv - len_clean).abs() / len_clean.clamp_min(1e-6)
    out = {
        "mean_joint_displacement_cm": 100 * _masked_mean(displacement, mask),
        "max_joint_displacement_cm": 100 * displacement.flatten(1).amax(dim=1),
        "linf_m": budget_size(delta, mask, "linf"),
        "l2_rms_m": budget_size(delta, mask, "l2"),
        "bone_length_deviation": _masked_mean(rel_bone, bone_valid),
        "acceleration_deviation": _difference_deviation(clean, adv, mask, 2, fps),
        "jerk_deviation": _difference_deviation(clean, adv, mask, 3, fps),
    }
    return {k: v.cpu().numpy() for k, v in out.items()}


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; ``(nan, nan)`` when ``n`` is zero."""
    if n == 0:
        return (math.nan, math.nan)
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # min/max: in floating point, 0 of n gave a lower bound of 3e-17 and n of n an upper one just under 1,
    # an interval that missed its own estimate; the exact bounds there are 0 and 1
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95,
                  nonnegative: bool = False) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval ``(mean, low, high)``; a single value has a zero-width interval.

    ``nonnegative``: the quantity cannot be below zero (every imperceptibility metric), so the interval
    is clipped there; with a few skewed values the symmetric t interval would otherwise reach below it.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(v.mean())
    if v.size == 1:
        return (mean, mean, mean)
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    low = max(0.0, mean - half) if nonnegative else mean - half
    return (mean, low, mean + half)
