"""Speed benchmarks, reported as figures measured in one run (these machines are noisy: compare ratios).

- Victims: forward and forward+backward (input gradient only, as attacks need) time per clip.
- Attacks: the time of one attack iteration against one bare forward+backward pass of the model it
  is handed (the victim, or the surrogates of a transfer attack) on the same batch (the overhead the
  attack adds), and the effective iterations per sample when successful samples leave the batch.
- PGD against torchattacks' PGD (when torchattacks is installed): the same model, clips, steps and step
  size, run alternately; the figure is the median of the per-pair time ratios.
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..attack import Attack, IterativeGradientAttack, copy_run_settings

__all__ = ["time_call", "VictimTiming", "time_victim", "AttackTiming", "time_attack", "ParityTiming", "time_against_torchattacks"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _forward_backward(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        xr = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(xr).logsumexp(dim=1).sum(), xr)
        del grad

    return run


@dataclass
class VictimTiming:
    batch_size: int
    forward_ms_per_clip: float
    forward_backward_ms_per_clip: float


def time_victim(model: nn.Module, x: torch.Tensor, repeats: int = 3) -> VictimTiming:
    """Per-clip forward and forward+backward times of ``model`` in eval mode on the batch ``x``."""
    model.eval()
    device = x.device

    def forward() -> None:
        with torch.no_grad():
            model(x)

    fwd = time_call(forward, device, repeats)
    fwd_bwd = time_call(_forward_backward(model, x), device, repeats)
    n = x.shape[0]
    return VictimTiming(n, 1000 * fwd / n, 1000 * fwd_bwd / n)


@dataclass
class AttackTiming:
    batch_size: int
    steps: int
    forward_backward_s: float  # one bare forward+backward of the victim on the batch
    iteration_s: float  # one attack iteration on the full batch (nobody succeeds)
    ratio: float  # iteration_s / forward_backward_s
    effective_iterations_per_sample: float | None  # at the attack's own budget, with early stopping
    attack_s: float  # the whole attack at its own budget on the batch


def time_attack(attack: Attack, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None,
                repeats: int = 3, prepare: Callable[[Attack], object] | None = None) -> AttackTiming:
    """Cost of one iteration of ``attack`` relative to a bare forward+backward pass, in one run.

    ``model`` is what the attack is handed: the victim for a white-box attack, the surrogate
    ensemble for a transfer attack (whose bare pass is then the surrogates'). An attack that trains
    artefacts first is timed after ``prepare(attack_copy)`` readies the copy used for the timing
    (``attack`` itself must be prepared by the caller). The per-iteration cost is measured with a
    budget so small that no sample succeeds and early stopping off (a clip misclassified unattacked
    would leave at once), so every iteration runs on the full batch; the
    effective iterations per sample are then measured at the attack's own budget, where successful
    samples leave the batch (unless the attack's ``early_stop`` is ``none``, as for transfer runs).
    """
    model.eval()
    device = x.device
    fwd_bwd = time_call(_forward_backward(model, x), device, repeats)
    steps = getattr(attack, "steps", 1)
    tiny = type(attack)(**{**attack.hyperparameters(), "eps": 1e-9, **({"step_size": 1e-10} if "step_size" in attack.hyperparameters() else {})})
    copy_run_settings(attack, tiny)
    tiny.early_stop = "none"  # clips the victim already misclassifies would leave the batch at once
    if prepare is not None:
        prepare(tiny)
    full = time_call(lambda: tiny(model, x, labels, targets), device, repeats=max(1, repeats - 1))
    # The loop evaluates steps+1 forwards and steps backwards; attribute the whole call to the steps.
    iteration = full / max(steps, 1)
    start = time.perf_counter()
    attack(model, x, labels, targets)
    _sync(device)
    whole = time.perf_counter() - start
    effective = float(attack.last_iterations.float().mean()) if attack.last_iterations is not None else None
    return AttackTiming(x.shape[0], steps, fwd_bwd, iteration, iteration / fwd_bwd, effective, whole)


def is_gradient_attack(attack: Attack) -> bool:
    return isinstance(attack, IterativeGradientAttack)


@dataclass
class ParityTiming:
    """Our PGD against torchattacks' on the same work; ``ratios`` pair one call of each, run back to back."""

    version: str
    clock: str  # "process CPU time" on a CPU (other processes on a shared machine do not count), else "wall"
    batch_size: int
    steps: int
    ours_s: list[float] = field(default_factory=list)
    theirs_s: list[float] = field(default_factory=list)
    # the loops alone: the same calls on a linear stand-in for the model, seconds per call
    loop_ours_s: list[float] = field(default_factory=list)
    loop_theirs_s: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.ours_s, self.theirs_s)]

    @property
    def median_ratio(self) -> float:
        return statistics.median_high(self.ratios)

    def loop_share(self) -> float:
        """Our loop's own cost (on the stand-in) as a share of our median call on the real model."""
        return statistics.median_high(self.loop_ours_s) / statistics.median_high(self.ours_s)


class _LinearStandIn(nn.Module):
    """A model that costs next to nothing, so that timing an attack on it times the attack's own loop."""

    def __init__(self, clip_size: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(clip_size, num_classes)
        self.linear.requires_grad_(False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.linear(u.flatten(1))


class _UnitBox(nn.Module):
    """The model on clips mapped affinely into [0, 1]: torchattacks clamps every iterate to that box."""

    def __init__(self, model: nn.Module, low: float, span: float) -> None:
        super().__init__()
        self.model, self.low, self.span = model, low, span

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.model(u * self.span + self.low)


def torchattacks_version() -> str | None:
    """The installed torchattacks' version, or None when it is not installed."""
    try:
        return importlib.import_module("torchattacks").__version__
    except ImportError:
        return None


def time_against_torchattacks(attack: Attack, model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                              repeats: int = 5) -> ParityTiming:
    """Time ``attack`` (our ``pgd``) and ``torchattacks.PGD`` with the same steps, step size and random start.

    Both are handed the same model wrapped to take clips scaled into [0, 1] (torchattacks' PGD clamps its
    iterates to that box; coordinates in metres would be cut), with the budget scaled alike and so small
    that no clip succeeds, and our early stopping off (a clip misclassified unattacked would leave the
    batch at once): both do the same forward and backward passes, and the ratio is the cost of the loop
    around them. After one warm-up call of each, calls alternate in ABBA order (ours first in even pairs,
    theirs first in odd ones). On a CPU the clock is this process's CPU time, which other jobs on a
    shared machine disturb less than wall time (they still do: run it on a quiet machine).
    """
    torchattacks = importlib.import_module("torchattacks")
    model.eval()
    device = x.device
    low, span = float(x.min()) - 1.0, float(x.max() - x.min()) + 2.0
    unit_model = _UnitBox(model, low, span).eval()
    u = (x - low) / span
    eps = 1e-9 / span
    ours = type(attack)(**{**attack.hyperparameters(), "eps": eps, "step_size": 2.5 * eps / attack.steps})
    copy_run_settings(attack, ours)
    ours.early_stop = "none"  # the clips the victim misclassifies unattacked must not leave our batch either
    theirs = torchattacks.PGD(unit_model, eps=eps, alpha=ours.step_size, steps=ours.steps, random_start=True)
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    stand_in = _LinearStandIn(u[0].numel(), int(labels.max()) + 1).to(device).eval()
    theirs_on_stand_in = torchattacks.PGD(stand_in, eps=eps, alpha=ours.step_size, steps=ours.steps, random_start=True)

    def timed(fn: Callable[[], object]) -> float:
        _sync(device)
        start = clock()
        fn()
        _sync(device)
        return clock() - start

    run_ours, run_theirs = (lambda: ours(unit_model, u, labels)), (lambda: theirs(u, labels))
    timed(run_ours), timed(run_theirs)
    result = ParityTiming(torchattacks.__version__, "process CPU time" if device.type == "cpu" else "wall",
                          x.shape[0], ours.steps)
    for k in range(repeats):  # ABBA: who goes first alternates, so a drift of the machine cancels out
        if k % 2 == 0:
            result.ours_s.append(timed(run_ours))
            result.theirs_s.append(timed(run_theirs))
        else:
            result.theirs_s.append(timed(run_theirs))
            result.ours_s.append(timed(run_ours))
    # the loops alone (masking, projection, bookkeeping): the same calls on the linear stand-in
    loop_ours, loop_theirs = (lambda: ours(stand_in, u, labels)), (lambda: theirs_on_stand_in(u, labels))
    timed(loop_ours), timed(loop_theirs)
    for k in range(max(5, repeats)):
        pair = (loop_ours, loop_theirs) if k % 2 == 0 else (loop_theirs, loop_ours)
        for fn in pair:
            (result.loop_ours_s if fn is loop_ours else result.loop_theirs_s).append(timed(fn))
    return result
