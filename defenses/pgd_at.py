"""PGD adversarial training (Madry et al., ICLR 2018): the training loss on L-inf PGD clips.

The inner maximisation is the benchmark's own threat model: L-inf in metres (default 1 cm), a uniform
random start in the box, ``sign`` steps, absent person-frames never moved. Madry et al. train on the
adversarial clips alone; so do we (fine-tuning from the victim's clean weights, which keeps clean accuracy).
Defaults are sized for a 2-core CPU: 2 steps of 2.5 * eps / steps, one epoch (Madry et al. use 7 steps on
CIFAR-10 and train from scratch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_skel.budget import project, random_in_ball, valid_mask
from robustbench_skel.learn.defended import TrainingDefense
from robustbench_skel.registry import DEFENSES


def linf_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, step_size: float,
             generator: torch.Generator) -> torch.Tensor:
    """Untargeted L-inf PGD on the cross-entropy from a random start; returns detached clips."""
    mask = valid_mask(x)
    delta = random_in_ball(x, mask, "linf", eps, generator)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = project(delta.detach() + step_size * grad.sign(), mask, "linf", eps)
    return (x + delta).detach()


@DEFENSES.register("pgd-at")
class PGDAdversarialTraining(TrainingDefense):
    description = "PGD adversarial training, L-inf in metres (Madry et al. 2018); fine-tunes the victim"
    default_epochs = 1
    default_lr = 0.01

    def __init__(self, eps: float = 0.01, steps: int = 2, step_size: float | None = None) -> None:
        super().__init__()
        self.eps = float(eps)
        self.steps = int(steps)
        self.step_size = float(step_size) if step_size is not None else 2.5 * self.eps / self.steps

    def training_loss(self, model, x, y, generator):
        x_adv = linf_pgd(model, x, y, self.eps, self.steps, self.step_size, generator)
        logits = model(x_adv)
        with torch.no_grad():
            clean = model(x)
        return F.cross_entropy(logits, y), clean
