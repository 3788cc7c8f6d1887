"""NI-FGSM (Lin et al., "Nesterov Accelerated Gradient and Scale Invariance for Adversarial Attacks", ICLR 2020).

MI-FGSM whose gradient is taken at the Nesterov look-ahead point:

    x_nes   = x_t + alpha * mu * g_t
    g_{t+1} = mu * g_t + grad J(x_nes) / ||grad J(x_nes)||_1
    x_{t+1} = Proj_eps(x_t + alpha * sign(g_{t+1}))

with the paper's defaults mu = 1.0, alpha = eps / T, T = 10. The reference benchmark has no NI-FGSM
(its README links the NI-FGSM/SIM paper for MIG by mistake), so there is no reference code to deviate from.

Two points of detail:

- ``g`` accumulates ``grad / mean|grad|`` over the valid coordinates (the L1 norm divided by the
  number of valid coordinates, as the authors' released code does). With the literal ``||grad||_1``
  every entry of ``g`` is about ``1 / n`` and the look-ahead ``alpha * mu * g`` would be a vanishing
  fraction of a step; with the mean its size is of the order of one step ``alpha``, as Nesterov's
  method intends. The steps themselves (``sign(g)``) are the same either way.
- The look-ahead point is projected into the budget before the gradient is taken there (the
  :meth:`IterativeGradientAttack.lookahead` contract), so that a look-ahead point found adversarial is
  a valid adversarial example and is returned as such. The paper does not clip ``x_nes``; the two
  differ only where ``x_t`` already sits on the boundary of the eps box.
"""

from __future__ import annotations

import torch

from robustbench_skel.registry import ATTACKS

from .mifgsm import MIFGSM

__all__ = ["NIFGSM"]


@ATTACKS.register("nifgsm")
class NIFGSM(MIFGSM):
    """Nesterov Iterative FGSM, L-inf: MI-FGSM with the gradient at ``x_t + alpha * mu * g_t``.

    Costs the same as MI-FGSM: one forward and backward pass per iteration (at the look-ahead point),
    plus one forward of the final iterate. Early stopping and compaction come from the base class.
    """

    description = "Nesterov Iterative FGSM, L-inf, mu=1, alpha=eps/T (Lin et al. 2020)"

    def lookahead(self, delta: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        momentum = state.get("momentum")
        if momentum is None:  # g_0 = 0: the first gradient is taken at x_0 itself
            return delta
        return delta + self.step_size * self.decay * momentum
