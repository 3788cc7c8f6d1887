"""SVRE (Xiong et al., "Stochastic Variance Reduced Ensemble Adversarial Attack", CVPR 2022), L-inf.

Each outer iteration t at the iterate x_t (Algorithm 1 of the paper):

    g_ens = (1/K) sum_k grad J_k(x_t)                              (the K surrogates' loss gradients)
    x~_0 = x_t,  G_0 = 0
    for m = 0 .. M-1:  pick a member k at random
        g_vr    = grad J_k(x~_m) - grad J_k(x_t) + g_ens            (variance-reduced gradient)
        G_{m+1} = mu2 * G_m + g_vr / ||g_vr||_1
        x~_{m+1} = Proj_eps(x~_m + beta * sign(G_{m+1}))            (around the clean clip)
    g_{t+1} = mu1 * g_t + G_M / ||G_M||_1,   x_{t+1} = Proj_eps(x_t + alpha * sign(g_{t+1}))

Defaults are the paper's: M = 4 K inner steps (``inner_steps=None``), beta = alpha (``inner_step_size``
= ``step_size`` = eps / T; the inner steps follow the attack's ``step_rule`` too), mu1 = mu2 = 1 (``decay``, ``inner_decay``); eps = 0.01 m and T = 10 are
the suite's L-inf transfer defaults. One member is drawn per inner step for the whole batch, as in
the paper, from the run's seeded generator.

The reference benchmark's ``SVRE.py`` is a byte-for-byte copy of its ensemble attack (no inner
loop); this is the algorithm of the paper. ``grad J_k(x_t)`` is kept from the outer gradient, so
the first inner step (x~_0 = x_t) costs nothing: an outer iteration costs K + M - 1 forward and
backward passes (the naive count is K + 2M). With one surrogate and M = 1 the variance-reduced
gradient is the plain gradient at x_t and the attack is MI-FGSM.
"""

from __future__ import annotations

import math

import torch

from robustbench_skel.attacks.mifgsm import l1_normalize
from robustbench_skel.step_rule import step_direction
from robustbench_skel.errors import UserError
from robustbench_skel.registry import ATTACKS

from ._transfer import SeededTransfer, check_int, members_of

__all__ = ["SVRE"]


@ATTACKS.register("svre")
class SVRE(SeededTransfer):
    """Stochastic variance-reduced ensemble attack with MI-FGSM outer and inner updates."""

    description = "SVRE: variance-reduced inner loop over random surrogates, MI-FGSM outer step (Xiong et al. 2022)"

    def __init__(
        self,
        eps: float = 0.01,
        steps: int = 10,
        step_size: float | None = None,
        decay: float = 1.0,
        inner_steps: int | None = None,
        inner_step_size: float | None = None,
        inner_decay: float = 1.0,
        targeted: bool = False,
        seed: int = 0,
        step_rule: str = "sign",
    ) -> None:
        super().__init__(eps=eps, steps=steps, step_size=step_size, decay=decay, targeted=targeted, seed=seed,
                         step_rule=step_rule)
        if inner_steps is not None:
            check_int("inner_steps", inner_steps, 1)
        if inner_step_size is not None and not (
            isinstance(inner_step_size, (int, float)) and inner_step_size > 0 and math.isfinite(inner_step_size)
        ):
            raise UserError(f"--attack-opt inner_step_size must be a positive number (m), got {inner_step_size!r}")
        if not (isinstance(inner_decay, (int, float)) and math.isfinite(inner_decay) and inner_decay >= 0):
            raise UserError(f"--attack-opt inner_decay must be a non-negative number, got {inner_decay!r}")
        self.inner_steps = inner_steps
        self.inner_step_size = None if inner_step_size is None else float(inner_step_size)
        self.inner_decay = float(inner_decay)

    def _member_gradient(self, member, x, v, mask, labels, targets):
        v = v.detach().requires_grad_(True)
        logits = member(self.clips(x, v, mask))
        (grad,) = torch.autograd.grad(self.loss(logits, labels, targets).sum(), v)
        return grad, logits.detach()

    def gradient(self, model, x, variable, mask, labels, targets, state):
        members = members_of(model)
        k_count = len(members)
        at_outer = [self._member_gradient(m, x, variable, mask, labels, targets) for m in members]
        g_outer = [g for g, _ in at_outer]
        g_ens = torch.stack(g_outer).sum(dim=0) / k_count
        logits = torch.stack([lg for _, lg in at_outer]).sum(dim=0) / k_count
        inner_steps = self.inner_steps if self.inner_steps is not None else 4 * k_count
        beta = self.inner_step_size if self.inner_step_size is not None else self.step_size
        gen = self._generator
        device = gen.device if gen is not None else x.device
        picks = torch.randint(k_count, (inner_steps,), generator=gen, device=device).tolist()
        inner = variable.detach()
        momentum = torch.zeros_like(inner)
        for m, k in enumerate(picks):
            g_k = g_outer[k] if m == 0 else self._member_gradient(members[k], x, inner, mask, labels, targets)[0]
            g_vr = g_k - g_outer[k] + g_ens
            momentum = self.inner_decay * momentum + l1_normalize(g_vr, mask)
            if m + 1 < inner_steps:  # x~_M itself is never used
                inner = self.project_variable(inner + beta * step_direction(momentum, mask, self.norm, self.step_rule),
                                              mask).detach()
        clips = self.clips(x, variable.detach(), mask)
        return momentum, logits, clips
