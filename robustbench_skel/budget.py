"""Perturbation budgets in one physical unit: metres per joint coordinate.

Only joints that exist can move: a person-frame whose coordinates are all zero (NTU's zero padding
after the sequence, the empty second-person slot of single-actor clips) is outside the threat model,
because perturbing it would conjure up a ghost rather than alter the actor's motion. The validity
mask carries that rule into every projection and metric.

- ``linf``: every valid coordinate moves by at most ``eps`` metres.
- ``l2``: the root-mean-square displacement over the valid coordinates is at most ``eps`` metres,
  i.e. ``||delta||_2 <= eps * sqrt(n_valid)``. Normalising by the number of valid coordinates makes
  the same ``eps`` mean the same thing for clips of any length, joint count or number of actors.
"""

from __future__ import annotations

import torch

__all__ = ["NORMS", "valid_mask", "num_valid_coordinates", "budget_size", "project", "random_in_ball", "normalize_step"]

NORMS = ("linf", "l2")


def valid_mask(x: torch.Tensor) -> torch.Tensor:
    """``(N, 1, T, 1, M)`` float mask, 1 where the person exists in that frame (any non-zero coordinate)."""
    return x.ne(0).any(dim=1, keepdim=True).any(dim=3, keepdim=True).to(x.dtype)


def num_valid_coordinates(mask: torch.Tensor, channels: int = 3, joints: int = 25) -> torch.Tensor:
    """Per-sample count of perturbable coordinates, ``(N,)``."""
    return mask.flatten(1).sum(dim=1) * channels * joints


def _n_valid(delta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return num_valid_coordinates(mask, delta.shape[1], delta.shape[3]).clamp_min(1)


def budget_size(delta: torch.Tensor, mask: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample size of ``delta`` in budget units (metres), ``(N,)``."""
    d = (delta * mask).flatten(1)
    if norm == "linf":
        return d.abs().amax(dim=1)
    if norm == "l2":
        return d.norm(dim=1) / _n_valid(delta, mask).sqrt()
    raise ValueError(f"unknown norm {norm!r}")


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def project(delta: torch.Tensor, mask: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """The closest perturbation to ``delta`` inside the budget, zero on invalid coordinates."""
    delta = delta * mask
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        radius = eps * _n_valid(delta, mask).sqrt()
        scale = torch.clamp(radius / delta.flatten(1).norm(dim=1).clamp_min(1e-12), max=1.0)
        return delta * _per_sample(scale, delta)
    raise ValueError(f"unknown norm {norm!r}")


def random_in_ball(like: torch.Tensor, mask: torch.Tensor, norm: str, eps: float, generator: torch.Generator) -> torch.Tensor:
    """A random start: uniform in the L-inf box, or a uniformly random direction and radius in the L2 ball."""
    if norm == "linf":
        u = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        return (2 * u - 1) * eps * mask
    if norm == "l2":
        direction = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype) * mask
        direction = direction / _per_sample(direction.flatten(1).norm(dim=1).clamp_min(1e-12), like)
        radius = torch.rand(like.shape[0], generator=generator, device=like.device, dtype=like.dtype)
        return direction * _per_sample(radius * eps * _n_valid(like, mask).sqrt(), like)
    raise ValueError(f"unknown norm {norm!r}")


def normalize_step(grad: torch.Tensor, mask: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent direction of unit size for ``norm``: ``sign`` for L-inf, unit RMS for L2."""
    grad = grad * mask
    if norm == "linf":
        return grad.sign()
    if norm == "l2":
        length = _per_sample(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)
        return grad / length * _per_sample(_n_valid(grad, mask).sqrt(), grad)
    raise ValueError(f"unknown norm {norm!r}")
