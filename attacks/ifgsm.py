"""I-FGSM / BIM (Kurakin, Goodfellow and Bengio, 2017): repeated signed-gradient steps, clipped to the L-inf box."""

from __future__ import annotations

from robustbench_skel.attack import IterativeGradientAttack
from robustbench_skel.registry import ATTACKS


@ATTACKS.register("ifgsm")
class IFGSM(IterativeGradientAttack):
    """Iterative FGSM from the clean clip, no random start.

    The reference benchmark's "I-FGSM" steps along the mean-abs-normalised gradient with a step equal
    to the budget; this follows the paper: ``sign`` steps of ``step_size`` (default 2.5 * eps / steps),
    projected onto the eps box after every step.
    """

    description = "Iterative FGSM (BIM): signed-gradient steps projected onto the L-inf ball, no random start"
