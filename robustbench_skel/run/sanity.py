"""Sanity checks of an attack evaluation, written into every record as flags.

The classic mistakes of robustness evaluation show up as violated expectations (Carlini et al. 2019;
Athalye et al. 2018; Pintor et al. 2022). On a fixed subset of the attacked samples the evaluator
re-runs the attack under changed settings and checks:

- ``unbounded``: with an effectively unlimited budget (``Attack.unbounded_eps``), searched as ART's
  security curve does (at least 100 iterations with steps of 1/50 of that budget), the attack succeeds
  on at least 99% of them (otherwise gradients are masked or the attack is broken). An attack with a
  random start draws it within the main run's budget, not the unlimited one: a draw in a 1 m box is
  noise, not a clip, and a model may answer one class on noise (hdgcn's synth weights give class 32 to
  17 of 20 such draws), so a search started there tested the model off the data, and a clip of that
  class then resisted 100 steps that fool it in under 25 from the clean clip;
- ``monotone_in_budget``: doubling the budget does not lower the success;
- ``stronger_than_fgsm``: an iterative L-inf attack is at least as strong as FGSM at the same budget;
- ``converged``: doubling the iterations (every component's, for a cascade) changes the number of
  successes by at most one, or by a number whose one-sided 95% Wilson lower bound, as a fraction of
  the subset, is at most ``CONVERGENCE_TOLERANCE`` (2%). Counting rather than comparing rates keeps
  the check meaningful on 16 samples, where one flipped sample is 6 points: 1 of 16 passes, 2 fail;
  on 1000 samples about 30 flips fail, 20 pass;
plus, on every attacked sample, ``within_budget``, ``finite`` and ``no_success_lost`` (nothing that
was adversarial during the optimisation went missing from the result).

Every re-run is re-classified by the evaluator's own forward pass on the evaluated (defended) model, never
taken from the attack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..attack import Attack, copy_run_settings
from ..victim import predict
from ..metrics import wilson_interval
from ..progress_meter import progress_enabled
from .crafting import attack_rows
from .progress import BatchCheckpoint, settings_digest
from ..registry import ATTACKS

__all__ = ["SANITY_CHECKS", "run_sanity_checks", "re_run_success", "variant", "converged", "doubled_iterations", "MORE_ITERATIONS"]

SANITY_CHECKS = ("unbounded", "monotone_in_budget", "stronger_than_fgsm", "converged")
UNBOUNDED_SUCCESS = 0.99
CONVERGENCE_TOLERANCE = 0.02

# How to double the iterations of an attack that has no ``steps`` hyperparameter (a cascade), by name.
MORE_ITERATIONS: dict[str, Callable[[Attack], Attack]] = {}


def converged(successes: int, doubled_successes: int, n: int) -> bool:
    """The ``converged`` rule (module docstring): at most one more (or fewer) success, or a change within tolerance."""
    changed = abs(doubled_successes - successes)
    if changed <= 1:
        return True
    return bool(wilson_interval(changed, n, confidence=0.90)[0] <= CONVERGENCE_TOLERANCE)  # one-sided 95% lower bound


def doubled_iterations(attack: Attack) -> tuple[Attack, dict[str, Any]] | None:
    """``attack`` with twice the iterations and what changed, or ``None`` when it has no iteration count."""
    params = attack.hyperparameters()
    if isinstance(params.get("steps"), int):
        return variant(attack, steps=2 * params["steps"]), {"steps": 2 * params["steps"]}
    if attack.name in MORE_ITERATIONS:
        doubled = copy_run_settings(attack, MORE_ITERATIONS[attack.name](attack))
        changed = {k: v for k, v in doubled.hyperparameters().items() if params.get(k) != v}
        return doubled, changed
    return None


def variant(attack: Attack, **changes: Any) -> Attack:
    """A copy of ``attack`` with some hyperparameters changed (the rest, resolved step sizes included, kept).

    The copy keeps the runner's settings too (EOT draws, early stop): a re-run against a randomized
    defense with one draw where the main run averaged eight would compare two different attacks.
    """
    params = attack.hyperparameters()
    unknown = set(changes) - set(params)
    if unknown:
        raise ValueError(f"{attack.name} has no hyperparameters {sorted(unknown)}")
    return copy_run_settings(attack, type(attack)(**{**params, **changes}))


def re_run_success(model: nn.Module, evaluated: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor,
                   t: torch.Tensor | None, batch_size: int, device: torch.device, generator_seed: int,
                   checkpoint: BatchCheckpoint | None = None, progress: str | None = None) -> float:
    """Success rate of ``attack`` re-run on ``x`` against ``model``, decided by ``evaluated`` (resumable with
    ``checkpoint``; its batches shown under the label ``progress``)."""
    adv = attack_rows(attack, model, x, y, t, torch.arange(x.shape[0]), batch_size, device, generator_seed,
                      checkpoint=checkpoint, progress=progress).adv
    pred = predict(evaluated, adv, batch_size, device)  # always re-classified, so a resumed run draws what it drew
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
    checkpoint: BatchCheckpoint | None = None,
    evaluated: nn.Module | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run the re-attack checks on ``clips`` (the subset), given the main run's per-sample success there.

    ``model`` is what the attack differentiates; ``evaluated`` (default ``model``) classifies the re-runs,
    as the evaluator classified the main run: under BPDA the two differ (randomized smoothing's attacked
    model is one soft noisy draw, its evaluated one the n-draw PREDICT), and success must be measured alike
    on both sides of every comparison.

    With ``checkpoint`` (the run's progress) every re-run saves its finished batches in a folder of its
    own, so a run killed during its sanity checks (hours against a randomized defense on a CPU) resumes them.
    Each re-run shows its progress, labelled "sanity re-run i/k: check", where ``progress`` (default: the
    run's setting, :func:`robustbench_skel.progress_meter.progress_enabled`) says so.
    """
    n = clips.shape[0]
    base = float(main_success.float().mean()) if n else float("nan")
    checks: dict[str, dict[str, Any]] = {}
    against_fgsm = attack.norm == "linf" and attack.iterative and attack.name != "fgsm" and "fgsm" in ATTACKS
    doubled = doubled_iterations(attack) if attack.iterative else None
    re_runs = 2 + against_fgsm + (doubled is not None)
    shown = progress_enabled() if progress is None else progress
    started = [0]

    def run(a: Attack, check: str) -> float:
        part = checkpoint.sub(_progress_folder(check, a)) if checkpoint is not None else None
        started[0] += 1
        label = f"sanity re-run {started[0]}/{re_runs}: {check} ({a.name})" if shown else None
        return re_run_success(model, evaluated if evaluated is not None else model, a, clips, labels, targets,
                              batch_size, device, seed, part, progress=label)

    unbounded_attack = variant(attack, **_unbounded_settings(attack))
    unbounded_attack.start_radius = attack.eps
    unbounded = run(unbounded_attack, "unbounded")
    checks["unbounded"] = {
        "passed": unbounded >= UNBOUNDED_SUCCESS, "success": unbounded, "eps": attack.unbounded_eps,
        "start_radius": attack.eps,
        "expect": f"success >= {UNBOUNDED_SUCCESS:.0%} with an effectively unlimited budget (any random start drawn within "
                  "the main run's budget)",
    }
    doubled_budget = run(variant(attack, eps=2 * attack.eps, **_step_for(attack, 2 * attack.eps)), "monotone_in_budget")
    checks["monotone_in_budget"] = {
        "passed": doubled_budget >= base, "success": doubled_budget, "reference": base,
        "expect": "success at 2*eps >= success at eps",
    }
    if against_fgsm:
        fgsm = copy_run_settings(attack, ATTACKS.get("fgsm")(eps=attack.eps, targeted=attack.targeted, seed=attack.seed))
        fgsm_success = run(fgsm, "stronger_than_fgsm")
        checks["stronger_than_fgsm"] = {
            "passed": base >= fgsm_success, "success": base, "reference": fgsm_success,
            "expect": "success >= FGSM's at the same eps",
        }
    else:
        checks["stronger_than_fgsm"] = {"passed": None, "expect": "applies to iterative L-inf attacks"}
    if doubled is not None:
        doubled_steps = run(doubled[0], "converged")
        checks["converged"] = {
            "passed": converged(round(base * n), round(doubled_steps * n), n), "success": doubled_steps, "reference": base,
            **doubled[1], "expect": "doubling the iterations changes at most one success, or a number whose one-sided 95% "
                                    f"Wilson lower bound is <= {CONVERGENCE_TOLERANCE:.0%} of the subset",
        }
    else:
        checks["converged"] = {"passed": None, "expect": "applies to attacks with a 'steps' hyperparameter"}
    return {"subset_size": n, "checks": checks}


def _progress_folder(check: str, attack: Attack) -> str:
    """The folder of a re-run's saved batches: the check and a hash of the re-run's settings, so that a run
    resumed after the checks changed (a new start radius, say) re-runs them rather than mixing two kinds."""
    return f"sanity-{check}-{settings_digest(attack.describe())[:12]}"


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
