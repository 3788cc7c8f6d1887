"""The evaluator decides success, never the attack.

It re-classifies every returned clip with the target victim, checks that each one is finite and
within the declared budget, and measures the imperceptibility and the physical plausibility of the
successful ones (every threat model's record passes through here). Following the
field's convention, the attack set is the test samples the victim classifies correctly; the
success rate is over that set, and robust accuracy is over all evaluated samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..budget import budget_size, valid_mask
from ..layout import SkeletonLayout
from ..metrics import PER_CLIP_METRICS, imperceptibility, mean_interval, wilson_interval
from ..victim import predict  # re-exported: predict is the victim contract's, the evaluator uses it
from ..progress_meter import progress_enabled
from ..plausibility import NONNEGATIVE_CHANGES, PLAUSIBILITY_TOLERANCES, PLAUSIBILITY_UNITS, plausibility

__all__ = ["predict", "BudgetSpec", "evaluate_attack", "proportion", "plausibility_metrics", "BUDGET_TOLERANCE"]

# Slack for float32 rounding when checking the budget: a micrometre, or 1e-5 relative.
BUDGET_TOLERANCE = (1e-6, 1e-5)


@dataclass(frozen=True)
class BudgetSpec:
    """How to measure a perturbation against the budget: ``size(clean, adv, mask) -> (N,)`` vs ``eps``."""

    norm: str
    eps: float
    size: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None


def proportion(count: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(count, n)
    return {"value": count / n if n else float("nan"), "ci95": [lo, hi], "count": int(count), "n": int(n)}


def _summary(values: np.ndarray) -> dict[str, Any]:
    mean, lo, hi = mean_interval(values, nonnegative=True)  # distances, deviations
    return {
        "value": mean,
        "ci95": [lo, hi],
        "max": float(values.max()) if values.size else float("nan"),
        "n": int(values.size),
    }


def plausibility_metrics(clean: torch.Tensor, adv: torch.Tensor, ok: np.ndarray, layout: SkeletonLayout, fps: float
                         ) -> tuple[dict[str, Any], dict[str, list]]:
    """Record entries ``plausibility_<name>`` (mean change over the successful clips ``ok`` with its 95% interval,
    the clean and adversarial means, the tolerance and how many clips exceed it), ``plausibility_skipped``
    (name -> reason) and ``plausible_share`` (Wilson interval); and per-sample changes and verdicts."""
    result = plausibility(clean, adv, layout, fps)
    metrics: dict[str, Any] = {}
    samples: dict[str, list] = {}
    for name, values in result.values.items():
        change = values["change"][ok]
        # adversarial minus clean may be negative (an attack can also remove a violation); new overlaps cannot
        mean, lo, hi = mean_interval(change, nonnegative=name in NONNEGATIVE_CHANGES)
        tolerance = PLAUSIBILITY_TOLERANCES.get(name)
        metrics[f"plausibility_{name}"] = {
            "value": mean, "ci95": [lo, hi], "max": float(change.max()) if change.size else float("nan"), "n": int(change.size),
            "clean": float(values["clean"][ok].mean()) if change.size else float("nan"),
            "adversarial": float(values["adversarial"][ok].mean()) if change.size else float("nan"),
            "unit": PLAUSIBILITY_UNITS[name], "tolerance": tolerance,
            "exceeded": None if tolerance is None else int((change > tolerance + 1e-9).sum()),
        }
        samples[f"plausibility_{name}"] = [float(f"{v:.6g}") if s else None for v, s in zip(values["change"].tolist(), ok)]
    metrics["plausibility_skipped"] = dict(result.skipped)
    if result.plausible is None:
        metrics["plausible_share"] = {**proportion(0, 0), "not_measured": "no plausibility measure applies to this layout"}
        samples["plausible"] = [None] * len(ok)
    else:
        metrics["plausible_share"] = proportion(int(result.plausible[ok].sum()), int(ok.sum()))
        samples["plausible"] = [bool(p) if s else None for p, s in zip(result.plausible.tolist(), ok)]
    return metrics, samples


def evaluate_attack(
    model: nn.Module,
    clean: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None,
    clean_pred: torch.Tensor,
    adv: torch.Tensor,
    attacked: torch.Tensor,
    budget: BudgetSpec,
    layout: SkeletonLayout,
    fps: float,
    batch_size: int,
    device: torch.device | str,
    ever_adversarial: torch.Tensor | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics and per-sample results for one run.

    ``clean``/``adv`` hold every evaluated sample (``adv`` equals ``clean`` where nothing was
    attacked); ``attacked`` marks the samples the attack was run on.
    """
    n = clean.shape[0]
    finite = torch.isfinite(adv.flatten(1)).all(dim=1)
    adv_safe = torch.where(finite.view(-1, 1, 1, 1, 1), adv, clean)
    adv_pred = predict(model, adv_safe, batch_size, device,
                       progress="evaluation: re-classifying the returned clips" if progress_enabled() else None)
    fooled = adv_pred.eq(targets) if targets is not None else adv_pred.ne(labels)
    success = fooled & attacked & finite
    mask = valid_mask(clean)
    size = budget.size(clean, adv_safe, mask) if budget.size else budget_size(adv_safe - clean, mask, budget.norm)
    slack = BUDGET_TOLERANCE[0] + BUDGET_TOLERANCE[1] * budget.eps
    within = (size <= budget.eps + slack) & finite
    outside_valid = ((adv_safe - clean) * (1 - mask)).flatten(1).abs().amax(dim=1) > 0
    within &= ~outside_valid

    per_clip = imperceptibility(clean, adv_safe, layout, fps)
    ok = success.numpy()
    n_correct = int((clean_pred == labels).sum())
    n_attacked = int(attacked.sum())
    metrics: dict[str, Any] = {
        "clean_accuracy": proportion(n_correct, n),
        "attack_success_rate": proportion(int(success.sum()), n_attacked),
        "robust_accuracy": proportion(int(((clean_pred == labels) & ~success).sum()), n),
    }
    for name in PER_CLIP_METRICS:
        metrics[name] = _summary(per_clip[name][ok])
    plaus_metrics, plaus_samples = plausibility_metrics(clean, adv_safe, ok, layout, fps)
    metrics.update(plaus_metrics)
    att = attacked.numpy()
    metrics["within_budget"] = proportion(int(within[attacked].sum()), n_attacked)
    metrics["finite"] = proportion(int(finite[attacked].sum()), n_attacked)
    flags = {
        "all_within_budget": bool(within[attacked].all()),
        "all_finite": bool(finite[attacked].all()),
        "perturbs_only_valid_joints": bool(not outside_valid[attacked].any()),
    }
    if ever_adversarial is not None:
        # "Silent success": adversarial at some point of the optimisation, but not in what was returned.
        lost = ever_adversarial & attacked & ~success
        metrics["lost_successes"] = {"value": int(lost.sum()), "n": n_attacked}
        flags["no_success_lost"] = bool(not lost.any())
    samples: dict[str, Any] = {
        "label": labels.tolist(),
        "target": targets.tolist() if targets is not None else None,
        "clean_pred": clean_pred.tolist(),
        "adv_pred": adv_pred.tolist(),
        "attacked": att.tolist(),
        "success": ok.tolist(),
        "budget_size_m": [float(f"{v:.6g}") if a else None for v, a in zip(size.tolist(), att)],
    }
    for name in PER_CLIP_METRICS:
        samples[name] = [float(f"{v:.6g}") if s else None for v, s in zip(per_clip[name].tolist(), ok)]
    samples.update(plaus_samples)
    return {"metrics": metrics, "flags": flags}, samples
