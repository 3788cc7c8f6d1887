"""Hard no-box attacks on a learned motion manifold (Lu et al., "Hard No-Box Adversarial Attack on
Skeleton-Based Human Action Recognition with Skeleton-Motion-Informed Gradient", ICCV 2023).

The attacker holds unlabelled clips only (:class:`robustbench_skel.handed.UnlabelledPool`): no victim,
no label, no query. ``prepare`` learns a contrastive motion manifold from the pool
(:mod:`robustbench_skel.learn.manifold`, cached); the attack then *maximises* (paper Eq. 2)

    CE(sims, 0),  sims = cos(f(x_adv), [f(x_i), f(x_j) for the other clips j of the batch, far centres])

(no temperature, as the code): the adversarial feature leaves its own clean feature for the other clips
and the k-means centres far from it. Each step normalises the raw gradient by its mean absolute value
per sample, optionally turns it into the skeleton-motion-informed gradient (first order, Eq. 9, or
second order, Eq. 10, :func:`robustbench_skel.motion.smi_gradient`, with TV-AR coefficients fitted on
the very clips attacked), optionally accumulates it with momentum ``g_t = g_smi + mu g_{t-1}`` (mu = 1),
and takes a sign step inside the L-inf budget. Every iteration runs (nothing tells the attacker when a
victim is fooled); the last iterate is returned.

Family: ``nobox-ifgsm``, ``nobox-mifgsm`` (plain gradients), ``s1i-fgsm``, ``s2i-fgsm``, ``s1mi-fgsm``,
``s2mi-fgsm``. Defaults: eps = 0.01 m (the paper's NTU budget) and 20 steps of ``4 eps / steps`` (2 mm);
the paper takes 400 steps of 1e-4 m, the same total travel of 4 eps, which ``--steps 400 --step-size
1e-4`` reproduces. The batch (``--batch-size``, the paper: 8) sets how many other clean clips act as
negatives.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from robustbench_skel.attack import Attack, PrepareContext, ThreatModel
from robustbench_skel.budget import project
from robustbench_skel.errors import UserError
from robustbench_skel.handed import UnlabelledPool
from robustbench_skel.learn.manifold import MotionManifold, load_or_train_manifold, manifold_config
from robustbench_skel.motion import ar_coefficients, smi_gradient
from robustbench_skel.registry import ATTACKS

from .mifgsm import l1_normalize

__all__ = ["NoBoxManifoldAttack", "manifold_loss"]


def manifold_loss(manifold: MotionManifold, adv: torch.Tensor, clean_features: torch.Tensor,
                  far: torch.Tensor) -> torch.Tensor:
    """Per-sample ``CE(sims, 0)`` over cosine similarities to [own clean, other clean features, far centres]."""
    f = manifold.features(adv)  # (B, C), unit norm
    b = f.shape[0]
    own = (f * clean_features).sum(1, keepdim=True)
    others = f @ clean_features.t()
    others = others.masked_select(~torch.eye(b, dtype=torch.bool, device=f.device)).view(b, b - 1)
    centres = torch.einsum("bc,bkc->bk", f, far)
    logits = torch.cat([own, others, centres], dim=1)
    return F.cross_entropy(logits, torch.zeros(b, dtype=torch.long, device=f.device), reduction="none")


class NoBoxManifoldAttack(Attack):
    """I-FGSM on the motion-manifold loss; ``order`` (0, 1, 2) picks the SMI gradient, ``momentum`` MI."""

    threat_model = ThreatModel.NO_BOX
    supports_targeted = False  # there is no label, so there is no target either
    order: ClassVar[int] = 0
    momentum: ClassVar[bool] = False

    def __init__(self, eps: float = 0.01, steps: int = 20, step_size: float | None = None, decay: float = 1.0,
                 manifold: str = "fast", manifold_epochs: int | None = None, seed: int = 0) -> None:
        super().__init__(eps=eps, targeted=False, seed=seed)
        if not (isinstance(steps, int) and steps >= 1):
            raise UserError(f"--steps must be a positive integer, got {steps!r}")
        if step_size is None:
            step_size = 4 * self.eps / steps  # the paper's total travel: 400 x 1e-4 = 4 eps at eps = 0.01
        if not (isinstance(step_size, (int, float)) and step_size > 0 and math.isfinite(step_size)):
            raise UserError(f"--step-size must be a positive number (m), got {step_size!r}")
        if not (isinstance(decay, (int, float)) and math.isfinite(decay) and decay >= 0):
            raise UserError(f"--attack-opt decay must be a non-negative number, got {decay!r}")
        self.steps = steps
        self.step_size = float(step_size)
        self.decay = float(decay)
        self.manifold = str(manifold)
        self.manifold_epochs = manifold_epochs
        self._config = manifold_config(self.manifold, seed=self.seed, epochs=manifold_epochs)
        self._trained: tuple[str, MotionManifold] | None = None  # (pool sha256, manifold)

    def _manifold(self, pool: UnlabelledPool, context: PrepareContext | None) -> tuple[MotionManifold, dict[str, Any] | None]:
        if self._trained is not None and self._trained[0] == pool.sha256 and context is None:
            return self._trained[1], None
        store = context.store if context is not None else None
        manifold, entry = load_or_train_manifold(pool, self._config, store, context.command if context else None,
                                                 bool(context and context.progress), context.device if context else None)
        self._trained = (pool.sha256, manifold)
        return manifold, entry

    def prepare(self, handed: Any, context: PrepareContext) -> list[dict[str, Any]]:
        """Train (or load) the motion manifold of the handed pool; its artefact entry for the record."""
        if not isinstance(handed, UnlabelledPool):
            raise UserError(f"attack {self.name!r} is no-box: it learns from an unlabelled pool, not {type(handed).__name__}")
        _, entry = self._manifold(handed, context)
        return [entry] if entry else []

    def direction(self, grad: torch.Tensor, mask: torch.Tensor, coefficients, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean-abs normalised gradient -> SMI gradient (order 1 or 2) -> momentum (if any)."""
        g = l1_normalize(grad, mask)
        if self.order:
            g = smi_gradient(g, coefficients, self.order)
        if self.momentum:
            g = g + self.decay * state["momentum"] if "momentum" in state else g
            state["momentum"] = g
        return g

    def run(self, model, x, labels, targets, mask, generator):
        if not isinstance(model, UnlabelledPool):
            raise TypeError(f"{self.name} is a no-box attack: it is handed an UnlabelledPool, got {type(model).__name__}")
        manifold, _ = self._manifold(model, None)
        manifold.to(x.device)
        coefficients = ar_coefficients(x) if self.order else None
        with torch.no_grad():
            clean = manifold.features(x)
            far = manifold.far_centres(clean)
        delta = torch.zeros_like(x)
        state: dict[str, torch.Tensor] = {}
        for _ in range(self.steps):
            d = delta.detach().requires_grad_(True)
            loss = manifold_loss(manifold, x + d, clean, far).sum()
            (grad,) = torch.autograd.grad(loss, d)
            g = self.direction(grad, mask, coefficients, state)
            delta = project(delta + self.step_size * (g * mask).sign(), mask, "linf", self.eps)
        self.last_iterations = torch.full((x.shape[0],), self.steps, dtype=torch.long)
        self.last_ever_adversarial = None
        return x + delta


def _register(name: str, order: int, momentum: bool, description: str) -> type[NoBoxManifoldAttack]:
    cls = type(name.replace("-", "_").upper(), (NoBoxManifoldAttack,),
               {"order": order, "momentum": momentum, "description": description, "__module__": __name__,
                "__doc__": description})
    return ATTACKS.register(name)(cls)


NOBOX_IFGSM = _register("nobox-ifgsm", 0, False, "no-box I-FGSM on a contrastive motion manifold (Lu et al. 2023 baseline)")
NOBOX_MIFGSM = _register("nobox-mifgsm", 0, True, "no-box MI-FGSM on a contrastive motion manifold (Lu et al. 2023 baseline)")
S1I_FGSM = _register("s1i-fgsm", 1, False, "no-box I-FGSM with the first-order SMI gradient (Lu et al. 2023, Eq. 9)")
S2I_FGSM = _register("s2i-fgsm", 2, False, "no-box I-FGSM with the second-order SMI gradient (Lu et al. 2023, Eq. 10)")
S1MI_FGSM = _register("s1mi-fgsm", 1, True, "no-box MI-FGSM with the first-order SMI gradient (Lu et al. 2023)")
S2MI_FGSM = _register("s2mi-fgsm", 2, True, "no-box MI-FGSM with the second-order SMI gradient, mu=1 (Lu et al. 2023)")
