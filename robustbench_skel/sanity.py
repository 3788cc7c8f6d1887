"""Sanity checks of an attack evaluation, written into every record as flags.

The classic mistakes of robustness evaluation show up as violated expectations (Carlini et al. 2019;
Athalye et al. 2018; Pintor et al. 2022). On a fixed subset of the attacked samples the evaluator
re-runs the attack under changed settings and checks:

- ``unbounded``: with an effectively unlimited budget (``Attack.unbounded_eps``), searched as ART's
  security curve does (at least 100 iterations with steps of 1/50 of that budget), the attack succeeds
  on at least 99% of them (otherwise gradients are masked or the attack is broken);
- ``monotone_in_budget``: doubling the budget does not lower the success;
- ``stronger_than_fgsm``: an iterative L-inf attack is at least as strong as FGSM at the same budget;
- ``converged``: doubling the iterations changes the success by less than 2 points;
plus, on every attacked sample, ``within_budget``, ``finite`` and ``no_success_lost`` (nothing that
was adversarial during the optimisation went missing from the result).

Every re-run is re-classified by the evaluator's own forward pass, never taken from the attack.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .attack import Attack
from .evaluator import predict
from .registry import ATTACKS

__all__ = ["SANITY_CHECKS", "run_sanity_checks", "variant"]

SANITY_CHECKS = ("unbounded", "monotone_in_budget", "stronger_than_fgsm", "converged")
UNBOUNDED_SUCCESS = 0.99
CONVERGENCE_TOLERANCE = 0.02


def variant(attack: Attack, **changes: Any) -> Attack:
    """A copy of ``attack`` with some hyperparameters changed (the rest, resolved step sizes included, kept)."""
    params = attack.hyperparameters()
    unknown = set(changes) - set(params)
    if unknown:
        raise ValueError(f"{attack.name} has no hyperparameters {sorted(unknown)}")
    return type(attack)(**{**params, **changes})


def _success(model: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None,
             batch_size: int, device: torch.device, generator_seed: int) -> float:
    generator = torch.Generator(device=device).manual_seed(generator_seed)
    adv = torch.cat([
        attack(model, x[i : i + batch_size], y[i : i + batch_size], None if t is None else t[i : i + batch_size], generator=generator).cpu()
        for i in range(0, x.shape[0], batch_size)
    ])
    pred = predict(model, adv, batch_size, device)
    fooled = pred.eq(t) if t is not None else pred.ne(y)
    return float(fooled.float().mean())


def run_sanity_checks(
    attack: Attack,
    model: nn.Module,
    clips: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor | None,
    main_success: torch.Tensor,
    batch_size: int,
    device: torch.device,
    seed: int,
) -> dict[str, Any]:
    """Run the re-attack checks on ``clips`` (the subset), given the main run's per-sample success there."""
    n = clips.shape[0]
    base = float(main_success.float().mean()) if n else float("nan")
    checks: dict[str, dict[str, Any]] = {}

    def run(a: Attack) -> float:
        return _success(model, a, clips, labels, targets, batch_size, device, seed)

    unbounded = run(variant(attack, **_unbounded_settings(attack)))
    checks["unbounded"] = {
        "passed": unbounded >= UNBOUNDED_SUCCESS, "success": unbounded, "eps": attack.unbounded_eps,
        "expect": f"success >= {UNBOUNDED_SUCCESS:.0%} with an effectively unlimited budget",
    }
    doubled_budget = run(variant(attack, eps=2 * attack.eps, **_step_for(attack, 2 * attack.eps)))
    checks["monotone_in_budget"] = {
        "passed": doubled_budget >= base, "success": doubled_budget, "reference": base,
        "expect": "success at 2*eps >= success at eps",
    }
    if attack.norm == "linf" and attack.iterative and attack.name != "fgsm" and "fgsm" in ATTACKS:
        fgsm = ATTACKS.get("fgsm")(eps=attack.eps, targeted=attack.targeted, seed=attack.seed)
        fgsm_success = run(fgsm)
        checks["stronger_than_fgsm"] = {
            "passed": base >= fgsm_success, "success": base, "reference": fgsm_success,
            "expect": "success >= FGSM's at the same eps",
        }
    else:
        checks["stronger_than_fgsm"] = {"passed": None, "expect": "applies to iterative L-inf attacks"}
    params = attack.hyperparameters()
    if attack.iterative and isinstance(params.get("steps"), int):
        doubled_steps = run(variant(attack, steps=2 * params["steps"]))
        checks["converged"] = {
            "passed": abs(doubled_steps - base) < CONVERGENCE_TOLERANCE, "success": doubled_steps, "reference": base,
            "steps": 2 * params["steps"], "expect": f"doubling the iterations changes success by < {CONVERGENCE_TOLERANCE:.0%}",
        }
    else:
        checks["converged"] = {"passed": None, "expect": "applies to attacks with a 'steps' hyperparameter"}
    return {"subset_size": n, "checks": checks}


def _unbounded_settings(attack: Attack) -> dict[str, Any]:
    """Budget ``unbounded_eps``, steps of a fiftieth of it, and at least 100 iterations, where the attack has them."""
    params = attack.hyperparameters()
    settings: dict[str, Any] = {"eps": attack.unbounded_eps}
    if isinstance(params.get("step_size"), float):
        settings["step_size"] = attack.unbounded_eps / 50
    if isinstance(params.get("steps"), int):
        settings["steps"] = max(params["steps"], 100)
    return settings


def _step_for(attack: Attack, eps: float) -> dict[str, float]:
    """Scale an explicit step size with the budget, so a bigger budget is searched with bigger steps."""
    params = attack.hyperparameters()
    if isinstance(params.get("step_size"), float) and attack.eps > 0:
        return {"step_size": params["step_size"] * eps / attack.eps}
    return {}
