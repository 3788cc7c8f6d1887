"""Random noise: the floor an attack has to beat before its success means anything.

``x + eps * s`` with ``s`` a uniformly random sign per valid coordinate, one draw per clip from the
run's seeded generator: a random corner of the L-inf box, the largest perturbation the budget allows
without looking at any model. Carlini et al. ("On Evaluating Adversarial Robustness", 2019) ask that
every black-box or transfer result be compared with random noise at the same budget. On the synth
benchmark this is the question transfer rates of a few percent raise: does the attack fool the victim
more often than a random perturbation as large as its own?

Threat model: no-box (no model, no label, no query), so it runs beside the no-box attacks and its
record pairs with any other record on the same victim, clips and budget (``compare``).
"""

from __future__ import annotations

import torch

from robustbench_skel.attack import Attack, ThreatModel
from robustbench_skel.registry import ATTACKS


@ATTACKS.register("random-noise")
class RandomNoise(Attack):
    """A random corner of the L-inf box per clip: ``x + eps * sign(U(-1, 1))`` on the valid person-frames."""

    description = "random corner of the L-inf box (eps * random sign per coordinate): the floor every attack must beat"
    threat_model = ThreatModel.NO_BOX
    supports_targeted = False  # noise has no target
    iterative = False

    def __init__(self, eps: float = 0.01, seed: int = 0) -> None:
        super().__init__(eps=eps, targeted=False, seed=seed)

    def run(self, model, x, labels, targets, mask, generator):
        signs = torch.randint(0, 2, x.shape, generator=generator, device=generator.device).to(x.device, x.dtype) * 2 - 1
        self.last_iterations = torch.zeros(x.shape[0], dtype=torch.long)
        self.last_ever_adversarial = None
        return x + self.eps * signs * mask
