"""Perceptual losses and gradient plumbing shared by the SMART-family attacks (``smart``, ``ciasa``).

All functions take clips ``(N, 3, T, V, M)`` in metres and the validity mask ``(N, 1, T, 1, M)`` of
:func:`robustbench_skel.budget.valid_mask`; absent person-frames contribute nothing. Every loss is
returned per sample, ``(N,)``, summed over frames, joints and persons as in SMART's reference code
(which averages over the batch; a per-sample sum has the same per-sample gradient direction).

- :func:`weighted_position_loss`: sum_t sum_j w_j ||x'_tj - x_tj||^2 with spinal joints weighted
  higher (SMART: 0.04 against 0.02). The spine is chosen from the layout's joint names
  (:func:`spine_joints`), not from fixed indices: the reference benchmark reused HDM05's indices 10-14
  on NTU-25, where they are elbows, hands and a hip.
- :func:`bone_length_loss`: sum over frames and bones of (|b'| - |b|)^2.
- :func:`acceleration_loss`: SMART's dynamics term, squared difference of the second temporal
  differences of the adversarial and the clean clip at the frame rate, a = (x[t+1] - 2x[t] + x[t-1]) * fps^2.
- :func:`smoothness_loss`: CIASA's (re-implementation's) term, the squared acceleration of the
  adversarial clip alone.
"""

from __future__ import annotations

import torch

from robustbench_skel.layout import SkeletonLayout

__all__ = [
    "spine_joints",
    "joint_weights",
    "bone_index",
    "bone_vectors",
    "safe_length",
    "acceleration",
    "weighted_position_loss",
    "bone_length_loss",
    "acceleration_loss",
    "smoothness_loss",
    "normalize_gradient",
    "clip_update",
]

# Joints of the spinal chain by layout (names where the layout has them, else indices).
_SPINE_NAMES = {
    "ntu25": ("spine_base", "spine_mid", "neck", "head", "spine_shoulder"),
    "nw-ucla20": ("hip_center", "spine", "shoulder_center", "head"),
    "openpose18": ("neck", "nose"),
}
_SPINE_INDICES = {"hdm05": (10, 11, 12, 13, 14)}  # the root and the spine/neck/head chain of SMART's HDM05 tree
_SPINE_KEYWORDS = ("spine", "neck", "head", "pelvis", "torso", "hip_center", "shoulder_center")


def spine_joints(layout: SkeletonLayout) -> tuple[int, ...]:
    """Indices of the layout's spinal chain (root included), the joints SMART weights higher."""
    if layout.name in _SPINE_INDICES:
        return _SPINE_INDICES[layout.name]
    if layout.name in _SPINE_NAMES:
        return tuple(sorted(layout.index(n) for n in _SPINE_NAMES[layout.name]))
    found = {layout.root} | {j for j, n in enumerate(layout.joint_names) if any(k in n for k in _SPINE_KEYWORDS)}
    return tuple(sorted(found))


def joint_weights(layout: SkeletonLayout, spine_weight: float, other_weight: float, like: torch.Tensor) -> torch.Tensor:
    """``(V,)`` per-joint weights of the position term: ``spine_weight`` on the spine, ``other_weight`` elsewhere."""
    w = torch.full((layout.num_joints,), float(other_weight), dtype=like.dtype, device=like.device)
    w[list(spine_joints(layout))] = float(spine_weight)
    return w


def bone_index(layout: SkeletonLayout, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(child, parent)`` index tensors of the layout's bones."""
    child = torch.tensor([c for c, _ in layout.bones], device=device)
    parent = torch.tensor([p for _, p in layout.bones], device=device)
    return child, parent


def bone_vectors(x: torch.Tensor, layout: SkeletonLayout) -> torch.Tensor:
    """``(N, 3, T, B, M)`` child-minus-parent vectors."""
    child, parent = bone_index(layout, x.device)
    return x[:, :, :, child] - x[:, :, :, parent]


def safe_length(v: torch.Tensor, dim: int = 1, keepdim: bool = True) -> torch.Tensor:
    """Euclidean length with a finite gradient at zero (padding frames have zero-length bones)."""
    return (v.pow(2).sum(dim=dim, keepdim=keepdim) + 1e-12).sqrt()


def acceleration(x: torch.Tensor, fps: float) -> torch.Tensor:
    """Second temporal differences at the frame rate, ``(N, 3, T-2, V, M)`` in m/s^2."""
    return (x[:, :, 2:] - 2 * x[:, :, 1:-1] + x[:, :, :-2]) * (fps * fps)


def _triple_valid(mask: torch.Tensor) -> torch.Tensor:
    return mask[:, :, 2:] * mask[:, :, 1:-1] * mask[:, :, :-2]


def weighted_position_loss(adv: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    sq = ((adv - clean) * mask).pow(2).sum(dim=1)  # (N, T, V, M)
    return (sq * weights.view(1, 1, -1, 1)).flatten(1).sum(dim=1)


def bone_length_loss(adv: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor, layout: SkeletonLayout) -> torch.Tensor:
    diff = safe_length(bone_vectors(adv, layout)) - safe_length(bone_vectors(clean, layout))
    return (diff.pow(2) * mask).flatten(1).sum(dim=1)


def acceleration_loss(adv: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor, fps: float) -> torch.Tensor:
    if adv.shape[2] < 3:
        return adv.new_zeros(adv.shape[0])
    diff = acceleration(adv, fps) - acceleration(clean, fps)
    return (diff.pow(2) * _triple_valid(mask)).flatten(1).sum(dim=1)


def smoothness_loss(adv: torch.Tensor, mask: torch.Tensor, fps: float) -> torch.Tensor:
    if adv.shape[2] < 3:
        return adv.new_zeros(adv.shape[0])
    return (acceleration(adv, fps).pow(2) * _triple_valid(mask)).flatten(1).sum(dim=1)


def normalize_gradient(grad: torch.Tensor, mask: torch.Tensor, per: str) -> torch.Tensor:
    """Unit L2 norm per person-frame (``"frame"``: over xyz and joints) or per sample (``"sample"``).

    A part whose gradient is zero stays zero (no division by zero, no direction invented).
    """
    grad = grad * mask
    if per == "frame":
        norm = grad.pow(2).sum(dim=(1, 3), keepdim=True).sqrt()  # (N, 1, T, 1, M)
    elif per == "sample":
        norm = grad.flatten(1).norm(dim=1).view(-1, *([1] * (grad.dim() - 1)))
    else:
        raise ValueError(f"unknown gradient normalisation {per!r}; use 'frame' or 'sample'")
    return torch.where(norm > 0, grad / norm.clamp_min(torch.finfo(grad.dtype).tiny), torch.zeros_like(grad))


def clip_update(update: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """Rescale each sample's update DOWN to L2 norm ``threshold`` when it is longer; ``None`` = no clip.

    (The reference benchmark rescales to ``5 * threshold``, which can lengthen the step; SMART's
    original code rescales to the threshold, as here.)
    """
    if threshold is None:
        return update
    norm = update.flatten(1).norm(dim=1)
    scale = torch.where(norm > threshold, threshold / norm.clamp_min(torch.finfo(update.dtype).tiny), torch.ones_like(norm))
    return update * scale.view(-1, *([1] * (update.dim() - 1)))
