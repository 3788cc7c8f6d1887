"""PGD (Madry et al., ICLR 2018) under an L-inf budget, from a uniformly random start in the box."""

from __future__ import annotations

from robustbench_skel.attack import IterativeGradientAttack
from robustbench_skel.registry import ATTACKS


@ATTACKS.register("pgd")
class PGD(IterativeGradientAttack):
    """Projected gradient ascent on the cross-entropy with ``sign`` steps and a random start."""

    description = "Projected Gradient Descent, L-inf, random start (Madry et al. 2018)"
    random_start = True
