"""MI-FGSM (Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018).

Iterative FGSM with a momentum buffer of L1-normalised gradients:

    g_{t+1} = mu * g_t + grad_t / ||grad_t||_1        (per sample, over the valid coordinates)
    x_{t+1} = Proj_eps(x_t + alpha * sign(g_{t+1}))

with the paper's defaults mu = 1.0 and alpha = eps / T (T = ``steps`` = 10).

Where this follows the paper against the reference benchmark (``MI_FGSM.py``):

- the decay is mu = 1.0 (the paper's value); the reference uses 0.1;
- the buffer is reset for every batch (per call); the reference initialises it once outside the batch
  loop, so one batch's momentum leaks into the next, and a sample's result depends on what was
  attacked before it;
- each gradient is L1-normalised *before* it enters the buffer (the paper's formula); the reference
  accumulates raw gradients and normalises the sum;
- the step is ``alpha * sign(g)`` (the paper's FGSM-style step), not the reference's
  ``0.01 * g / mean|g|``.

The L1 norm is divided by the number of valid coordinates (i.e. the buffer accumulates
``grad / mean|grad|``, as the authors' released code does). That is a per-sample constant, so the sign
of the buffer, and hence every step of MI-FGSM, is exactly that of the literal ``||grad||_1``; it only
fixes the scale of ``g``, which matters to NI-FGSM's look-ahead ``alpha * mu * g`` (see ``nifgsm``).
Padding and the empty second actor (``mask`` = 0) neither count in the norm nor move.
"""

from __future__ import annotations

import math

import torch

from robustbench_skel.attack import IterativeGradientAttack
from robustbench_skel.budget import num_valid_coordinates
from robustbench_skel.errors import UserError
from robustbench_skel.registry import ATTACKS

__all__ = ["MIFGSM", "l1_normalize"]


def l1_normalize(grad: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``grad / (||grad||_1 / n_valid)`` per sample over the valid coordinates; zero where the gradient is zero."""
    grad = grad * mask
    n_valid = num_valid_coordinates(mask, grad.shape[1], grad.shape[3]).clamp_min(1)
    mean_abs = grad.abs().flatten(1).sum(dim=1) / n_valid
    scale = torch.where(mean_abs > 0, 1.0 / mean_abs.clamp_min(torch.finfo(grad.dtype).tiny), torch.zeros_like(mean_abs))
    return grad * scale.view(-1, *([1] * (grad.dim() - 1)))


@ATTACKS.register("mifgsm")
class MIFGSM(IterativeGradientAttack):
    """Momentum Iterative FGSM, L-inf: sign steps along a decaying sum of L1-normalised gradients.

    Per-sample early stopping comes from :class:`IterativeGradientAttack`: a sample leaves the batch
    at its first misclassified iterate (the benchmark measures success on the attacked model itself).
    Cost: one forward and backward pass per iteration of the samples still unbroken.
    """

    description = "Momentum Iterative FGSM, L-inf, mu=1, alpha=eps/T (Dong et al. 2018)"

    def __init__(
        self,
        eps: float = 0.01,
        steps: int = 10,
        step_size: float | None = None,
        decay: float = 1.0,
        targeted: bool = False,
        seed: int = 0,
        step_rule: str = "sign",
    ) -> None:
        if step_size is None and step_rule == "sign" and isinstance(steps, int) and steps >= 1 and isinstance(eps, (int, float)):
            step_size = eps / steps  # the paper's alpha = eps / T (mean-abs: the base class's eps)
        super().__init__(eps=eps, steps=steps, step_size=step_size, targeted=targeted, seed=seed, step_rule=step_rule)
        if not (isinstance(decay, (int, float)) and math.isfinite(decay) and decay >= 0):
            raise UserError(f"--decay must be a non-negative number, got {decay!r}")
        self.decay = float(decay)

    def accumulate(self, grad: torch.Tensor, mask: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """``g <- mu * g + grad / ||grad||_1``, stored in ``state["momentum"]`` and returned."""
        normalized = l1_normalize(grad, mask)
        momentum = state.get("momentum")
        momentum = normalized if momentum is None else self.decay * momentum + normalized
        state["momentum"] = momentum
        return momentum

    def update(self, delta: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        momentum = self.accumulate(grad, mask, state)
        return delta + self.step(momentum, mask)
