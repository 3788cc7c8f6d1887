"""FGSM (Goodfellow, Shlens and Szegedy, ICLR 2015): one signed-gradient step of size eps."""

from __future__ import annotations

from robustbench_skel.attack import IterativeGradientAttack
from robustbench_skel.registry import ATTACKS


@ATTACKS.register("fgsm")
class FGSM(IterativeGradientAttack):
    """x_adv = x + eps * sign(grad of the loss), on the valid joints only.

    The step is the budget itself, so the result sits on a corner of the L-inf box. Unlike the field
    benchmark's "FGSM" (an iterative, mean-abs-normalised descent), this is the single-step attack of
    the paper; the iterative one is ``ifgsm``.
    """

    description = "Fast Gradient Sign Method: a single L-inf step of size eps"
    iterative = False

    def __init__(self, eps: float = 0.01, targeted: bool = False, seed: int = 0) -> None:
        super().__init__(eps=eps, steps=1, step_size=eps, targeted=targeted, seed=seed)
