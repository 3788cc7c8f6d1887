"""BASAR (Diao et al., "BASAR: Black-box Attack on Skeletal Action Recognition", CVPR 2021).

A decision-based (hard-label) attack: a boundary walk from an adversarial starting clip towards the
clean one, interleaved with a projection onto natural motion. As the authors' code does it
(reference notes §2.2):

1. **Start.** A clip the oracle labels differently (``init="other-clip"``: the nearest clips of the
   batch of another class, then uniform noise; ``init="noise"``), pulled towards the clean clip,
   ``x = s + e (clean - s)`` from e = 0.95, shrinking e x0.9 while the oracle gives the clean label.
2. **Orthogonal (delta) step.** 5 Gaussian candidates, each normalised per channel, scaled by
   ``delta * mean_c ||clean_c - adv_c||`` and stripped of its component along ``clean_c - adv_c`` per
   channel. No adversarial candidate: delta x0.9 and retry (at most 300 times). Otherwise, for each
   adversarial label with share p of the 5: delta x0.9 if p <= 0.2, /0.9 if p >= 0.8 (at most
   theta = 0.4); one candidate per label is kept.
3. **Forward (epsilon) step.** Each kept candidate moves by e towards the clean clip: if still
   adversarial it is accepted and e /= 0.5 (back to 0.9 once it reaches 1), else e x0.5 and retry (at
   most 500 times). The closest candidate becomes the iterate; delta is then capped by the distance
   (0.1 below 0.1, 0.05 below 0.05, 0.025 below 0.025). The reference's thresholds are absolute
   distances in HDM05's normalised units, meaningless in metres; here they apply to the distance
   relative to the starting one.
4. **Manifold projection** every ``project_every`` steps and once at the end. The reference solves
   IK onto a rest skeleton and an IPOPT problem over joint angles; in our layout's terms: bone lengths
   restored by forward kinematics from the layout's tree (each bone keeps its direction, takes the
   clean clip's length at that frame), then every joint coordinate series smoothed towards the clean
   clip's accelerations, ``min ||X - X_adv||^2 + w ||Acc(X) - Acc(X_clean)||^2`` (a banded linear
   system, :func:`smooth_accelerations`), then bone lengths restored again. A projected clip the oracle
   no longer finds adversarial is interpolated back towards the walk's iterate (0.95, x0.95, at most
   ``interp_tries`` queries).

The distance is the RMS displacement over the valid coordinates (the reference's mean over xyz of the
Frobenius norm differs by a per-clip constant only when channels carry equal weight; RMS is the
benchmark's L2). Every query goes through the oracle, batched over the rows of the batch, and a row
never asks past its budget: queries for the final projection are kept in reserve. The reference's
HDM05-specific noise ties between joints and its ``randn(3, T, T)`` noise shape are not reproduced.
Returns the minimum-norm adversarial clip found; ``perturbation_l2_rms_m`` reports its RMS distance
(inf where no adversarial clip was found).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from scipy.linalg import solve_banded

from robustbench_skel.attack import Attack, ThreatModel
from robustbench_skel.errors import UserError
from robustbench_skel.layout import SkeletonLayout, get_layout
from robustbench_skel.motion import valid_prefix_lengths
from robustbench_skel.registry import ATTACKS

from ._decision import INITS, Queries, rms, start_points, towards

__all__ = ["BASAR", "restore_bone_lengths", "smooth_accelerations", "acceleration_system", "project_to_manifold"]


def restore_bone_lengths(adv: torch.Tensor, clean: torch.Tensor, layout: SkeletonLayout) -> torch.Tensor:
    """Forward kinematics: each bone of ``adv`` keeps its direction and takes ``clean``'s length at that frame.

    Walks the layout's tree from the root (which stays where ``adv`` has it). A zero-length bone of
    ``adv`` takes the clean bone's direction.
    """
    out = adv.clone()
    parents = layout.parents
    for j in layout.topological_order:
        p = parents[j]
        if p == j:
            continue
        length = (clean[:, :, :, j] - clean[:, :, :, p]).norm(dim=1, keepdim=True)
        direction = adv[:, :, :, j] - adv[:, :, :, p]
        norm = direction.norm(dim=1, keepdim=True)
        fallback = clean[:, :, :, j] - clean[:, :, :, p]
        unit = torch.where(norm > 1e-12, direction / norm.clamp_min(1e-12), fallback / length.clamp_min(1e-12))
        out[:, :, :, j] = out[:, :, :, p] + length * unit
    return out


@lru_cache(maxsize=64)
def acceleration_system(length: int, weight: float) -> np.ndarray:
    """The banded form (2 below, 2 above) of ``I + w D2^T D2``, ``D2`` the ``(L-2, L)`` second difference."""
    d2 = np.zeros((length - 2, length))
    for i in range(length - 2):
        d2[i, i : i + 3] = (1.0, -2.0, 1.0)
    matrix = np.eye(length) + weight * d2.T @ d2
    bands = np.zeros((5, length))
    for k in range(-2, 3):  # bands[2 + i - j, j] = matrix[i, j]
        diag = np.diagonal(matrix, offset=-k)
        if k >= 0:
            bands[2 + k, : length - k] = diag
        else:
            bands[2 + k, -k:] = diag
    return bands


def smooth_accelerations(adv: np.ndarray, clean: np.ndarray, weight: float) -> np.ndarray:
    """``argmin_X ||X - adv||^2 + w ||D2 X - D2 clean||^2`` column by column, ``(L, S)`` arrays (frames first).

    The normal equations ``(I + w D2^T D2) X = adv + w D2^T D2 clean`` are pentadiagonal: one banded
    solve for every column at once.
    """
    length = adv.shape[0]
    if length < 3 or weight == 0:
        return adv.copy()
    d2c = clean[2:] - 2 * clean[1:-1] + clean[:-2]
    rhs = adv.astype(np.float64).copy()
    rhs[:-2] += weight * d2c  # D2^T applied to D2 clean: rows i, i+1, i+2 get (1, -2, 1) x d2c[i]
    rhs[1:-1] -= 2 * weight * d2c
    rhs[2:] += weight * d2c
    return solve_banded((2, 2), acceleration_system(length, float(weight)), rhs)


def project_to_manifold(adv: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor, layout: SkeletonLayout,
                        weight: float) -> torch.Tensor:
    """Bone lengths, acceleration smoothing towards the clean clip, bone lengths again; absent frames stay zero."""
    x = restore_bone_lengths(adv, clean, layout) * mask
    lengths = valid_prefix_lengths(clean.detach().cpu().numpy())  # (N, M)
    xs, cs = x.detach().cpu().double().numpy(), clean.detach().cpu().double().numpy()
    out = xs.copy()
    for i in range(x.shape[0]):
        for m in range(x.shape[4]):
            length = int(lengths[i, m])
            if length < 3:
                continue
            a = xs[i, :, :length, :, m].transpose(1, 0, 2).reshape(length, -1)
            c = cs[i, :, :length, :, m].transpose(1, 0, 2).reshape(length, -1)
            s = smooth_accelerations(a, c, weight)
            out[i, :, :length, :, m] = s.reshape(length, 3, -1).transpose(1, 0, 2)
    x = torch.from_numpy(out).to(device=adv.device, dtype=adv.dtype)
    return restore_bone_lengths(x, clean, layout) * mask


@ATTACKS.register("basar")
class BASAR(Attack):
    """Boundary walk with orthogonal and forward steps and periodic projection onto natural motion."""

    description = "BASAR: decision-based boundary walk with motion-manifold projection (Diao et al. 2021)"
    threat_model = ThreatModel.DECISION_BASED
    norm = "linf"

    def __init__(self, eps: float = 0.01, steps: int = 500, init: str = "other-clip", init_box: float = 0.5,
                 candidates: int = 5, delta: float = 0.1, epsilon: float = 0.95, theta: float = 0.4,
                 delta_tries: int = 300, epsilon_tries: int = 500, project_every: int = 50, weight: float = 1.0,
                 interp_tries: int = 10, layout: str = "ntu25", targeted: bool = False, seed: int = 0) -> None:
        super().__init__(eps=eps, targeted=targeted, seed=seed)
        for name, value in (("steps", steps), ("candidates", candidates), ("delta_tries", delta_tries),
                            ("epsilon_tries", epsilon_tries), ("interp_tries", interp_tries)):
            if not (isinstance(value, int) and value >= 1):
                raise UserError(f"--attack-opt {name} must be a positive integer, got {value!r}")
        if not (isinstance(project_every, int) and project_every >= 0):
            raise UserError(f"--attack-opt project_every must be a non-negative integer (0: never), got {project_every!r}")
        for name, value in (("init_box", init_box), ("delta", delta), ("theta", theta)):
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise UserError(f"--attack-opt {name} must be a positive number, got {value!r}")
        if not (isinstance(epsilon, (int, float)) and 0 < epsilon < 1):
            raise UserError(f"--attack-opt epsilon must lie in (0, 1), got {epsilon!r}")
        if not (isinstance(weight, (int, float)) and weight >= 0 and math.isfinite(weight)):
            raise UserError(f"--attack-opt weight must be a non-negative number, got {weight!r}")
        if init not in INITS:
            raise UserError(f"--attack-opt init must be one of {', '.join(INITS)}, got {init!r}")
        self.steps, self.init, self.init_box, self.candidates = steps, init, float(init_box), candidates
        self.delta, self.epsilon, self.theta = float(delta), float(epsilon), float(theta)
        self.delta_tries, self.epsilon_tries = delta_tries, epsilon_tries
        self.project_every, self.weight, self.interp_tries = project_every, float(weight), interp_tries
        self.layout = layout
        self._layout = get_layout(layout)

    # --- the pieces of one outer step ---------------------------------------------------------
    def _orthogonal(self, x: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, delta: torch.Tensor,
                    generator: torch.Generator) -> torch.Tensor:
        """``candidates`` orthogonal perturbations of every row's iterate, ``(R, K, 3, T, V, M)``."""
        k = self.candidates
        diff = ((x - adv) * mask)[:, None]
        noise = torch.randn((x.shape[0], k, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype) * mask[:, None]
        noise = noise / noise.flatten(3).norm(dim=3).clamp_min(1e-12)[..., None, None, None]
        scale = delta * diff.flatten(3).norm(dim=3).mean(dim=2).squeeze(1)  # delta * mean_c ||clean_c - adv_c||
        noise = noise * scale.view(-1, 1, 1, 1, 1, 1)
        unit = diff / diff.flatten(3).norm(dim=3).clamp_min(1e-12)[..., None, None, None]
        noise = noise - (noise * unit).flatten(3).sum(dim=3)[..., None, None, None] * unit
        return adv[:, None] + noise

    def _project_check(self, queries: Queries, x, adv, mask, rows) -> torch.Tensor:
        """Project ``adv[rows]``; keep it if adversarial, else interpolate back towards ``adv``."""
        out = adv.clone()
        proj = project_to_manifold(adv[rows], x[rows], mask[rows], self._layout, self.weight)
        ok = queries.adversarial(proj, rows)
        out[rows[ok]] = proj[ok]
        todo, pending = rows[~ok], proj[~ok]
        fraction = 0.95
        for _ in range(self.interp_tries):
            live = queries.left(todo) > 0
            todo, pending = todo[live], pending[live]
            if todo.numel() == 0:
                break
            cand = adv[todo] + fraction * (pending - adv[todo])
            hit = queries.adversarial(cand, todo)
            out[todo[hit]] = cand[hit]
            todo, pending = todo[~hit], pending[~hit]
            fraction *= 0.95
        return out

    def run(self, model, x, labels, targets, mask, generator):
        queries = Queries(model, labels, targets)
        n = x.shape[0]
        rows = torch.arange(n, device=x.device)
        start, found = start_points(queries, x, labels, targets, mask, self.init, self.init_box, generator, rows)
        # Pull the start towards the clean clip: e = 0.95, x0.9 while the oracle gives the clean label.
        adv = start.clone()
        e = torch.full((n,), self.epsilon, device=x.device, dtype=x.dtype)
        todo = rows[found]
        for _ in range(60):  # 0.95 * 0.9^60 < 0.002: the start itself
            todo = todo[queries.left(todo) > 0]
            if todo.numel() == 0:
                break
            cand = towards(start[todo], x[todo], e[todo])
            ok = queries.adversarial(cand, todo)
            adv[todo[ok]] = cand[ok]
            todo = todo[~ok]
            e[todo] *= 0.9
        best, best_d = adv.clone(), torch.where(found, rms(adv - x, mask), torch.full_like(e, float("inf")))
        d0 = best_d.clone()
        delta = torch.full((n,), self.delta, device=x.device, dtype=x.dtype)
        eps_ = torch.full((n,), self.epsilon, device=x.device, dtype=x.dtype)  # the reference: epsilon = 0.95 for both
        reserve = (1 + self.interp_tries) if self.project_every else 0
        steps_done = torch.zeros(n, dtype=torch.long)
        for step in range(self.steps):
            act = rows[found]
            act = act[queries.left(act) >= reserve + self.candidates]
            if act.numel() == 0:
                break
            kept = self._delta_phase(queries, x, adv, mask, delta, act, reserve, generator)
            self._epsilon_phase(queries, x, mask, kept, eps_, reserve)
            for i, cands in kept.items():  # the closest kept candidate is the new iterate
                d = rms(cands - x[i], mask[i].expand(cands.shape[0], *mask.shape[1:]))
                adv[i] = cands[int(d.argmin())]
            moved = torch.tensor(sorted(kept), dtype=torch.long, device=x.device)
            if moved.numel():
                steps_done[moved.cpu()] += 1
                rel = rms(adv[moved] - x[moved], mask[moved]) / d0[moved].clamp_min(1e-12)
                dl = delta[moved]
                dl = torch.where((rel <= 0.1) & (dl > 0.2), torch.full_like(dl, 0.1), dl)
                dl = torch.where((rel <= 0.05) & (dl > 0.1), torch.full_like(dl, 0.05), dl)
                dl = torch.where((rel < 0.025) & (dl > 0.05), torch.full_like(dl, 0.025), dl)
                delta[moved] = dl
                if self.project_every and (step + 1) % self.project_every == 0:
                    ready = moved[queries.left(moved) >= 1]
                    adv = self._project_check(queries, x, adv, mask, ready)
                d = rms(adv[moved] - x[moved], mask[moved])
                better = d < best_d[moved]
                best[moved[better]], best_d[moved[better]] = adv[moved[better]], d[better]
        if self.project_every:  # the final projection, of the best clip, from the reserved queries
            ready = rows[found]
            ready = ready[queries.left(ready) >= 1]
            if ready.numel():
                projected = self._project_check(queries, x, best, mask, ready)
                d = rms(projected[ready] - x[ready], mask[ready])
                better = d < best_d[ready]
                best[ready[better]], best_d[ready[better]] = projected[ready[better]], d[better]
        self.last_iterations = steps_done
        self.last_ever_adversarial = None  # a min-norm result outside the budget is a failure, not a lost success
        self.last_extra = {"perturbation_l2_rms_m": best_d.detach().cpu().double()}
        return torch.where(found.view(-1, 1, 1, 1, 1), best, x)

    def _delta_phase(self, queries, x, adv, mask, delta, act, reserve, generator) -> dict[int, torch.Tensor]:
        """Orthogonal candidates until one is adversarial per row; ``{row: kept candidates (one per label)}``."""
        kept: dict[int, torch.Tensor] = {}
        pending = act
        k = self.candidates
        for _ in range(self.delta_tries):
            pending = pending[queries.left(pending) >= reserve + k]
            if pending.numel() == 0:
                break
            cands = self._orthogonal(x[pending], adv[pending], mask[pending], delta[pending], generator)
            flat_rows = pending.repeat_interleave(k)
            flat_pred = queries.labels(cands.flatten(0, 1), flat_rows)
            pred, hit = flat_pred.view(-1, k), queries.judge(flat_pred, flat_rows).view(-1, k)
            for r in range(pending.numel()):
                i = int(pending[r])
                if not bool(hit[r].any()):
                    delta[i] *= 0.9
                    continue
                chosen = []
                for label in torch.unique(pred[r][hit[r]]).tolist():
                    share = float(pred[r].eq(label).float().mean())
                    if share <= 0.2:
                        delta[i] *= 0.9
                    elif share >= 0.8:
                        delta[i] = min(float(delta[i]) / 0.9, self.theta)
                    chosen.append(int(pred[r].eq(label).nonzero()[0]))
                kept[i] = cands[r, chosen]
            pending = pending[~hit.any(dim=1)]
        return kept

    def _epsilon_phase(self, queries, x, mask, kept: dict[int, torch.Tensor], eps_: torch.Tensor, reserve: int) -> None:
        """Each kept candidate steps towards the clean clip by e (adapted as the reference); updates ``kept`` in place."""
        slots = max((c.shape[0] for c in kept.values()), default=0)
        for s in range(slots):
            todo = torch.tensor([i for i, c in kept.items() if c.shape[0] > s], dtype=torch.long, device=x.device)
            for _ in range(self.epsilon_tries):
                todo = todo[queries.left(todo) >= reserve + 1]
                if todo.numel() == 0:
                    break
                base = torch.stack([kept[int(i)][s] for i in todo])
                cand = towards(base, x[todo], eps_[todo])
                ok = queries.adversarial(cand, todo)
                for r in range(todo.numel()):
                    i = int(todo[r])
                    if ok[r]:
                        kept[i][s] = cand[r]
                        eps_[i] = eps_[i] / 0.5
                        if eps_[i] >= 1:
                            eps_[i] = 0.9
                    else:
                        eps_[i] = eps_[i] * 0.5
                todo = todo[~ok]
