"""PGD under an L2 budget (Madry et al., ICLR 2018), budget and step as RMS metres per coordinate."""

from __future__ import annotations

from robustbench_skel.attack import IterativeGradientAttack
from robustbench_skel.registry import ATTACKS


@ATTACKS.register("pgd-l2")
class PGDL2(IterativeGradientAttack):
    """Steps along the L2-normalised gradient, projected onto the L2 ball, from a random start.

    ``eps`` and ``step_size`` are root-mean-square displacements over the valid coordinates (see
    :mod:`robustbench_skel.budget`), so the same numbers mean the same thing on every clip length.
    """

    description = "Projected Gradient Descent, L2 (RMS metres per coordinate), random start"
    norm = "l2"
    random_start = True
