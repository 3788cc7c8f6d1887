"""Boundary attack (Brendel, Rauber and Bethge, "Decision-Based Adversarial Attacks", ICLR 2018).

The plain decision-based baseline BASAR is compared with: from an adversarial start (the nearest
clip of another class in the batch, else uniform noise; then a binary search towards the clean clip),
every step draws one Gaussian perturbation, removes its component towards the clean clip, scales it
to ``delta`` times the current distance and puts the result back on the sphere around the clean clip
(the orthogonal, spherical step), then moves a fraction ``epsilon`` of the distance towards the clean
clip (the source step). Both the spherical and the full candidate are queried; the full one replaces
the iterate when it is adversarial. Every ``adapt_every`` steps the classic rule adapts the step sizes
from the success rates of those steps: the spherical rate above 0.5 multiplies delta by 1.5, below 0.2
divides it by 1.5; the same for epsilon with the full candidates' rate. Defaults follow Foolbox (both
steps 0.01, factor 1.5). Distances are RMS metres over the valid coordinates; the result is the
closest adversarial clip, ``perturbation_l2_rms_m`` its distance (inf where no start was found).
"""

from __future__ import annotations

import math

import torch

from robustbench_skel.attack import Attack, ThreatModel
from robustbench_skel.errors import UserError
from robustbench_skel.registry import ATTACKS

from ._decision import INITS, Queries, rms, start_points, towards

__all__ = ["BoundaryAttack"]


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


@ATTACKS.register("boundary")
class BoundaryAttack(Attack):
    """Brendel et al.'s boundary attack: spherical and source steps with success-rate step adaptation."""

    description = "Boundary attack: decision-based random walk along the boundary (Brendel et al. 2018)"
    threat_model = ThreatModel.DECISION_BASED

    def __init__(self, eps: float = 0.01, steps: int = 10000, init: str = "other-clip", init_box: float = 0.5,
                 delta: float = 0.01, epsilon: float = 0.01, adapt_every: int = 10, factor: float = 1.5,
                 search_steps: int = 10, targeted: bool = False, seed: int = 0) -> None:
        super().__init__(eps=eps, targeted=targeted, seed=seed)
        for name, value in (("steps", steps), ("adapt_every", adapt_every), ("search_steps", search_steps)):
            if not (isinstance(value, int) and value >= 1):
                raise UserError(f"--attack-opt {name} must be a positive integer, got {value!r}")
        for name, value in (("init_box", init_box), ("delta", delta)):
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise UserError(f"--attack-opt {name} must be a positive number, got {value!r}")
        if not (isinstance(epsilon, (int, float)) and 0 < epsilon < 1):
            raise UserError(f"--attack-opt epsilon must lie in (0, 1), got {epsilon!r}")
        if not (isinstance(factor, (int, float)) and factor > 1 and math.isfinite(factor)):
            raise UserError(f"--attack-opt factor must be a number above 1, got {factor!r}")
        if init not in INITS:
            raise UserError(f"--attack-opt init must be one of {', '.join(INITS)}, got {init!r}")
        self.steps, self.init, self.init_box = steps, init, float(init_box)
        self.delta, self.epsilon, self.adapt_every, self.factor = float(delta), float(epsilon), adapt_every, float(factor)
        self.search_steps = search_steps

    def run(self, model, x, labels, targets, mask, generator):
        queries = Queries(model, labels, targets)
        n = x.shape[0]
        rows = torch.arange(n, device=x.device)
        start, found = start_points(queries, x, labels, targets, mask, self.init, self.init_box, generator, rows)
        # Binary search between the clean clip (0) and the start (1) for the boundary.
        lo = torch.zeros(n, device=x.device, dtype=x.dtype)
        hi = torch.ones(n, device=x.device, dtype=x.dtype)
        for _ in range(self.search_steps):
            todo = rows[found]
            todo = todo[queries.left(todo) > 0]
            if todo.numel() == 0:
                break
            mid = (lo[todo] + hi[todo]) / 2
            ok = queries.adversarial(towards(x[todo], start[todo], mid), todo)
            hi[todo[ok]], lo[todo[~ok]] = mid[ok], mid[~ok]
        adv = towards(x, start, hi)
        best_d = torch.where(found, rms(adv - x, mask), torch.full_like(hi, float("inf")))
        delta = torch.full((n,), self.delta, device=x.device, dtype=x.dtype)
        eps_ = torch.full((n,), self.epsilon, device=x.device, dtype=x.dtype)
        sph_hits = torch.zeros(n, device=x.device)
        src_hits = torch.zeros(n, device=x.device)
        tried = torch.zeros(n, dtype=torch.long, device=x.device)
        for _ in range(self.steps):
            act = rows[found]
            act = act[queries.left(act) >= 2]
            if act.numel() == 0:
                break
            xa, aa, ma = x[act], adv[act], mask[act]
            diff = (xa - aa) * ma
            dist = diff.flatten(1).norm(dim=1).clamp_min(1e-12)
            unit = diff / _view(dist, diff)
            eta = torch.randn(aa.shape, generator=generator, device=x.device, dtype=x.dtype) * ma
            eta = eta - _view((eta * unit).flatten(1).sum(1), eta) * unit
            eta = eta * _view(delta[act] * dist / eta.flatten(1).norm(dim=1).clamp_min(1e-12), eta)
            spherical = aa + eta
            radial = ((spherical - xa) * ma).flatten(1).norm(dim=1).clamp_min(1e-12)
            spherical = xa + (spherical - xa) * _view(dist / radial, eta)  # back on the sphere around the clean clip
            candidate = xa + (spherical - xa) * _view(1 - eps_[act], eta)  # the source step
            verdict = queries.adversarial(torch.cat([spherical, candidate]), torch.cat([act, act]))
            sph_ok, cand_ok = verdict[: act.numel()], verdict[act.numel() :]
            adv[act[cand_ok]] = candidate[cand_ok]
            sph_hits[act] += sph_ok.float()
            src_hits[act] += cand_ok.float()
            tried[act] += 1
            due = act[tried[act] % self.adapt_every == 0]
            if due.numel():
                p_sph, p_src = sph_hits[due] / self.adapt_every, src_hits[due] / self.adapt_every
                delta[due] = torch.where(p_sph > 0.5, delta[due] * self.factor,
                                         torch.where(p_sph < 0.2, delta[due] / self.factor, delta[due]))
                eps_[due] = torch.where(p_src > 0.5, eps_[due] * self.factor,
                                        torch.where(p_src < 0.2, eps_[due] / self.factor, eps_[due])).clamp(max=0.5)
                sph_hits[due], src_hits[due] = 0, 0
        best_d = torch.where(found, rms(adv - x, mask), best_d)  # the iterate only ever gets closer
        self.last_iterations = tried.cpu()
        self.last_ever_adversarial = None  # a min-norm result outside the budget is a failure, not a lost success
        self.last_extra = {"perturbation_l2_rms_m": best_d.detach().cpu().double()}
        return torch.where(found.view(-1, 1, 1, 1, 1), adv, x)
