"""Bone-length projection: rebuild every frame with the clip's median bone lengths, keeping bone directions.

A person's bones do not change length; many perturbations (and all sensor jitter) do change them. Per
clip and per person, each bone's length is set to its median over the valid frames (torch's lower
median for an even count), walking the kinematic tree from the root so that every child hangs off its
already-projected parent: ``x'[child] = x'[parent] + L_median * unit(x[child] - x[parent])``. The root
keeps its position. All torch ops, so attacks differentiate through it. A zero-length bone has no
direction; its child then sits on its parent.
"""

from __future__ import annotations

import torch
from torch import nn

from robustbench_skel.budget import valid_mask
from robustbench_skel.defense import Defense, DefenseContext
from robustbench_skel.layout import SkeletonLayout
from robustbench_skel.registry import DEFENSES

from .smooth_purify import Purified

__all__ = ["BoneProjection", "BoneProject"]


class BoneProjection(nn.Module):
    """Clips -> clips whose bone lengths are each clip's per-person median lengths."""

    def __init__(self, layout: SkeletonLayout) -> None:
        super().__init__()
        self.root = layout.root
        parent_of = dict(layout.bones)
        # (child, parent) pairs in an order where every parent is placed before its children
        self.order = [(j, parent_of[j]) for j in layout.topological_order if j in parent_of]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = valid_mask(x)  # (N, 1, T, 1, M)
        child = [c for c, _ in self.order]
        parent = [p for _, p in self.order]
        bone = x[:, :, :, child] - x[:, :, :, parent]  # (N, 3, T, B, M)
        length = bone.norm(dim=1, keepdim=True)
        valid = mask.expand_as(length).bool()
        median = torch.where(valid, length, torch.full_like(length, float("nan"))).nanmedian(dim=2, keepdim=True).values
        median = torch.nan_to_num(median, nan=0.0)  # persons with no valid frame
        unit = bone / length.clamp_min(1e-12)
        joints: list[torch.Tensor | None] = [None] * x.shape[3]
        joints[self.root] = x[:, :, :, self.root]
        for b, (c, p) in enumerate(self.order):
            joints[c] = joints[p] + median[:, :, :, b] * unit[:, :, :, b]
        return torch.stack(joints, dim=3) * mask


@DEFENSES.register("bone-project")
class BoneProject(Defense):
    description = "project every frame onto the clip's median bone lengths (per person) before the victim"
    kind = "inference"

    def apply(self, victim: nn.Module, context: DefenseContext) -> nn.Module:
        return Purified(BoneProjection(context.layout), victim).to(context.device).eval()
