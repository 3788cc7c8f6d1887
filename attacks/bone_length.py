"""Adversarial Bone Length Attack (Tanaka, Kera and Kawamoto, AAAI 2022, arXiv 2109.05830).

The perturbation is restricted to the lengths of the bones: the optimisation variable is
``beta`` of shape ``(N, M, n_bones)``, one multiplicative scale per bone and person, shared by all
frames. The clip is rebuilt from the root outwards, ``child' = parent' + beta_k * (child - parent)``
of the clean clip, so the root stays put, every bone keeps its direction (joint angles never change)
and only present person-frames move (absent ones are all-zero and stay so). PGD on ``beta``:

    beta <- clip(beta + alpha * sign(grad_beta CE(label)), 1 - eps, 1 + eps)     (untargeted)
    beta <- clip(beta - alpha * sign(grad_beta CE(target)), 1 - eps, 1 + eps)    (targeted)

from ``beta = 1`` with the paper's alpha = 0.01 (``step_size``), eps = 0.1 (a relative budget: bones
change length by at most 10%) and 50 iterations; a sample stops at its first fooled iterate (the
paper stops at the first misclassification) and that iterate is returned. Cost: one victim forward
and backward pass per iteration of the samples still unbroken.

The budget is the norm ``"bone-scale"`` in ``"relative"`` units: :meth:`BoneLengthAttack.budget_size`
recovers ``beta`` from the clips (per bone and person, the ratio of adversarial to clean length summed
over the valid frames: the ratio is constant over frames) and reports ``max |beta - 1|``; a clip that
is not a bone rescaling of the clean one (a bone direction or the root changed, or the ratio varies
over frames) has size ``inf``. :meth:`BoneLengthAttack.constrain` rebuilds the clip with the recovered
``beta`` clipped into the bound, and leaves a clip that already satisfies the constraint untouched, so
it is idempotent. The attack and ``constrain`` keep ``beta`` a hair inside the bound (``BOUND_MARGIN``,
1e-4 of eps, i.e. 0.99999x of a 10% budget) so that float32 rounding of the rebuilt coordinates never
shows up as a budget overrun when the scales are recovered.

The kinematic tree is the layout's (``layout``, default NTU-25: 24 bones, root spine_base). The paper
optimises ``R^{2 x 24}`` on NTU's two persons with batch size 1; this batches samples and compacts the
batch as samples succeed. Its optional Adam and L2 variants are not implemented (the L-inf sign PGD
is its default).

Defaults: the paper's (alpha 0.01, eps 0.1, 50 iterations). On the default benchmark (64 clips through
ST-GCN, ~65 ms per clip per pass) 50 iterations cost up to ~3.5 minutes when nothing breaks early;
early stopping brings it down as success rises, and ``--steps 30`` halves the worst case.
"""

from __future__ import annotations

import math

import torch

from robustbench_skel.attack import IterativeGradientAttack
from robustbench_skel.errors import UserError
from robustbench_skel.layout import SkeletonLayout, get_layout
from robustbench_skel.registry import ATTACKS

__all__ = ["BoneLengthAttack", "rebuild_from_bone_scales", "recover_bone_scales"]

# A clip counts as a bone rescaling of the clean one when rebuilding it from its recovered scales
# reproduces it to within this many metres (float32 rounding of coordinates of a few metres is ~1e-7).
CONSISTENCY_TOLERANCE_M = 1e-5
_MIN_BONE_M = 1e-6  # bones shorter than this (summed over frames) have no defined scale
# The scales are kept this fraction of eps inside the bound, so that float32 rounding of the rebuilt
# coordinates (a few 1e-6 in a recovered scale of a short bone) never reads as a budget overrun.
BOUND_MARGIN = 1e-4


def _ancestor_matrix(layout: SkeletonLayout, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(V, B)``: 1 where bone ``k`` lies on the path from the root to joint ``j``."""
    bone_of_child = {c: k for k, (c, _) in enumerate(layout.bones)}
    a = torch.zeros(layout.num_joints, len(layout.bones), dtype=dtype)
    for j in range(layout.num_joints):
        k = j
        while layout.parents[k] != k:
            a[j, bone_of_child[k]] = 1.0
            k = layout.parents[k]
    return a.to(device)


def rebuild_from_bone_scales(x: torch.Tensor, beta: torch.Tensor, mask: torch.Tensor, layout: SkeletonLayout) -> torch.Tensor:
    """The clip with bone ``k`` of person ``m`` scaled by ``beta[:, m, k]`` in every frame, root fixed.

    Joint ``j`` becomes ``root + sum over the bones on its root path of beta_k * bone_k`` (the
    root-outwards recursion unrolled); differentiable in ``beta``. Absent person-frames are unchanged.
    """
    child = torch.tensor([c for c, _ in layout.bones], device=x.device)
    parent = torch.tensor([p for _, p in layout.bones], device=x.device)
    bones = x[:, :, :, child] - x[:, :, :, parent]  # (N, 3, T, B, M)
    scaled = bones * beta.permute(0, 2, 1)[:, None, None]  # beta (N, M, B) -> (N, 1, 1, B, M)
    ancestors = _ancestor_matrix(layout, x.device, x.dtype)
    root = layout.root
    rebuilt = x[:, :, :, root : root + 1] + torch.einsum("nctbm,vb->nctvm", scaled, ancestors)
    return x + (rebuilt - x) * mask


def recover_bone_scales(x: torch.Tensor, x_adv: torch.Tensor, mask: torch.Tensor, layout: SkeletonLayout) -> torch.Tensor:
    """``(N, M, B)`` per-bone scales of ``x_adv`` against ``x``: summed adversarial over summed clean
    length over the valid frames (1 where a bone has no length). Computed in float64."""
    child = torch.tensor([c for c, _ in layout.bones], device=x.device)
    parent = torch.tensor([p for _, p in layout.bones], device=x.device)
    x64, a64, m64 = x.double(), x_adv.double(), mask.double()
    len_clean = (x64[:, :, :, child] - x64[:, :, :, parent]).norm(dim=1) * m64[:, 0]  # (N, T, B, M)
    len_adv = (a64[:, :, :, child] - a64[:, :, :, parent]).norm(dim=1) * m64[:, 0]
    total_clean, total_adv = len_clean.sum(dim=1), len_adv.sum(dim=1)  # (N, B, M)
    beta = torch.where(total_clean > _MIN_BONE_M, total_adv / total_clean.clamp_min(_MIN_BONE_M), torch.ones_like(total_clean))
    return beta.permute(0, 2, 1)


@ATTACKS.register("bone-length")
class BoneLengthAttack(IterativeGradientAttack):
    """PGD with sign steps on per-bone, per-person length scales shared by all frames.

    The shared loop of :class:`IterativeGradientAttack` runs on the variable ``beta`` instead of an
    additive perturbation: :meth:`init_variable`, :meth:`clips` and :meth:`project_variable` say so.
    """

    description = "Adversarial Bone Length Attack (Tanaka et al. AAAI 2022): PGD on bone-length scales, |beta-1| <= eps"
    norm = "bone-scale"
    budget_unit = "relative"
    unbounded_eps = 5.0  # bones scaled anywhere in [-4, 6]: effectively unconstrained

    def __init__(
        self,
        eps: float = 0.1,
        steps: int = 50,
        step_size: float = 0.01,
        layout: str = "ntu25",
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(eps=eps, steps=steps, step_size=step_size, targeted=targeted, seed=seed)
        try:
            self._layout: SkeletonLayout = get_layout(layout)
        except KeyError as err:
            raise UserError(str(err)) from None
        self.layout = layout
        self._bound = self.eps * (1 - BOUND_MARGIN)

    # --- the budget --------------------------------------------------------------------------
    def _consistent(self, x: torch.Tensor, x_adv: torch.Tensor, mask: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        rebuilt = rebuild_from_bone_scales(x.double(), beta, mask.double(), self._layout)
        return (rebuilt - x_adv.double()).flatten(1).abs().amax(dim=1) <= CONSISTENCY_TOLERANCE_M

    def budget_size(self, x: torch.Tensor, x_adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``max |beta - 1|`` over bones and persons; ``inf`` if ``x_adv`` is not a bone rescaling of ``x``."""
        beta = recover_bone_scales(x, x_adv, mask, self._layout)
        size = (beta - 1).abs().flatten(1).amax(dim=1) if beta.numel() else beta.new_zeros(x.shape[0])
        size = torch.where(self._consistent(x, x_adv, mask, beta), size, torch.full_like(size, math.inf))
        return size.to(x.dtype)

    def constrain(self, x: torch.Tensor, x_adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Rebuild with the recovered scales clipped to ``[1 - eps, 1 + eps]``; clips already inside are kept as they are."""
        beta = recover_bone_scales(x, x_adv, mask, self._layout)
        inside = ((beta - 1).abs().flatten(1).amax(dim=1) <= self.eps) & self._consistent(x, x_adv, mask, beta)
        clipped = beta.clamp(1 - self._bound, 1 + self._bound)
        rebuilt = rebuild_from_bone_scales(x.double(), clipped, mask.double(), self._layout).to(x.dtype)
        return torch.where(inside.view(-1, 1, 1, 1, 1), x_adv, rebuilt)

    # --- the variable: bone scales --------------------------------------------------------------
    def init_variable(self, x, mask, generator):
        return torch.ones(x.shape[0], x.shape[4], len(self._layout.bones), device=x.device, dtype=x.dtype)

    def clips(self, x, variable, mask):
        return rebuild_from_bone_scales(x, variable, mask, self._layout)

    def project_variable(self, variable, mask):
        return variable.clamp(1 - self._bound, 1 + self._bound)

    def update(self, beta, grad, mask, state):
        """A sign step on the scales (ascending the loss: CE untargeted, minus CE to the target targeted)."""
        return beta + self.step_size * grad.sign()
