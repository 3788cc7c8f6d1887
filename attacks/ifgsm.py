"""I-FGSM / BIM (Kurakin, Goodfellow and Bengio, 2017): repeated signed-gradient steps, clipped to the L-inf box."""

from __future__ import annotations

from robustbench_skel.attack import IterativeGradientAttack
from robustbench_skel.registry import ATTACKS


@ATTACKS.register("ifgsm")
class IFGSM(IterativeGradientAttack):
    """Iterative FGSM from the clean clip, no random start.

    The reference benchmark's "I-FGSM" steps along the mean-abs-normalised gradient with a step equal
    to the budget; this follows the paper: ``sign`` steps of ``step_size``, projected onto the eps box
    after every step.

    Step size: as a *white-box* attack the default stays Madry et al.'s ``2.5 * eps / steps`` (the
    white-box tables and the sanity checks' reference runs keep their numbers). As a *transfer*
    attack (``--surrogate``) it takes the suite's shared rule like every other gradient attack
    (:mod:`robustbench_skel.step_rule`): ``eps / steps`` with ``sign`` steps, or ``eps`` with
    ``--attack-opt step_rule=mean-abs`` (the reference's), unless ``--step-size`` is given; the record's
    ``attack.step`` states which.
    """

    description = "Iterative FGSM (BIM): signed-gradient steps projected onto the L-inf ball, no random start"
