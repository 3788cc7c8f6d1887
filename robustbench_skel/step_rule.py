"""One step rule for every gradient attack of a comparison (design.md, principle 9).

How far an iterative attack moves per iteration is part of how strong it is: an attack that steps
2.5 eps / T beats one that steps eps / T on the same gradient. A fair table therefore gives every
attack the same rule; the rule, the step and the iterations are written into each record
(``record["attack"]["step"]``) and shown by the transfer matrix.

- ``sign`` (default): ``alpha * sign(d)`` for L-inf (the unit-RMS direction for L2,
  :func:`robustbench_skel.budget.normalize_step`); the transfer default step is ``alpha = eps / T``
  (Dong et al.'s MI-FGSM rule).
- ``mean-abs``: ``alpha * d / mean|d|``, the mean taken over the *valid* coordinates only (absent
  joints and NTU's zero padding neither count nor move). This is the TASAR reference code's step for
  its iterative attacks, with ``alpha = eps`` (the whole budget, then clipped).

``d`` is whatever direction an attack has built (the gradient, a momentum buffer, TASAR's weighted
sum). White-box runs keep each attack's own default step size (I-FGSM and PGD: Madry et al.'s
``2.5 eps / T``); transfer runs without an explicit ``--step-size`` take :func:`transfer_step_size`.
"""

from __future__ import annotations

from typing import Any

import torch

from .budget import normalize_step, num_valid_coordinates
from .errors import UserError

__all__ = ["STEP_RULES", "check_step_rule", "mean_abs_normalize", "step_direction", "transfer_step_size",
           "step_summary", "step_label"]

STEP_RULES = ("sign", "mean-abs")


def check_step_rule(rule: Any) -> str:
    """``rule`` if it is a known step rule, else a UserError naming the choices."""
    if rule not in STEP_RULES:
        raise UserError(f"--attack-opt step_rule must be one of {', '.join(STEP_RULES)}, got {rule!r}")
    return rule


def mean_abs_normalize(direction: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``d / mean|d|`` per sample, the mean over the valid coordinates; zero where ``d`` is zero, zero off the mask."""
    d = direction * mask
    n_valid = num_valid_coordinates(mask, d.shape[1], d.shape[3]).clamp_min(1)
    mean_abs = d.abs().flatten(1).sum(dim=1) / n_valid
    scale = torch.where(mean_abs > 0, 1.0 / mean_abs.clamp_min(torch.finfo(d.dtype).tiny), torch.zeros_like(mean_abs))
    return d * scale.view(-1, *([1] * (d.dim() - 1)))


def step_direction(direction: torch.Tensor, mask: torch.Tensor, norm: str, rule: str) -> torch.Tensor:
    """The unit step of ``rule`` along ``direction`` (multiply by the step size)."""
    if rule == "sign":
        return normalize_step(direction, mask, norm)
    if rule == "mean-abs":
        return mean_abs_normalize(direction, mask)
    raise ValueError(f"unknown step rule {rule!r}")


def transfer_step_size(rule: str, eps: float, steps: int) -> float:
    """The shared transfer step: ``eps / T`` for ``sign``, ``eps`` (the reference's) for ``mean-abs``."""
    return float(eps) / steps if rule == "sign" else float(eps)


def step_summary(attack_section: dict[str, Any]) -> dict[str, Any] | None:
    """``{"rule", "size", "iterations"}`` of a record's attack section (older records: read from its
    hyperparameters, where an absent rule was ``sign``), or None for an attack without a step."""
    if attack_section.get("step"):
        return dict(attack_section["step"])
    hyper = attack_section.get("hyperparameters") or {}
    if not isinstance(hyper.get("step_size"), (int, float)) or not isinstance(hyper.get("steps"), int):
        return None
    return {"rule": hyper.get("step_rule", "sign"), "size": float(hyper["step_size"]), "iterations": hyper["steps"]}


def step_label(step: dict[str, Any] | None) -> str:
    """``sign, step 0.001 m, 20 iterations`` (or ``no step rule``)."""
    if not step:
        return "no step rule"
    return f"{step['rule']}, step {step['size']:g} m, {step['iterations']} iterations"
