"""TRADES (Zhang et al., ICML 2019): clean cross-entropy plus beta times KL(f(x_adv) || f(x)).

The inner maximisation ascends the KL with ``sign`` steps from a small random start inside the L-inf box
(metres), as in the paper. There is NO clamp to a data range: clips are coordinates in metres, partly
negative. The field's reference code clamps x_adv to [0, 1] after the start and after every step, which
on standardised (or metric) skeletons destroys the adversarial clip; that is a bug we do not reproduce.
Defaults are sized for a 2-core CPU: 2 sign steps of 2.5 * eps / steps, one epoch of fine-tuning (the paper:
10 steps; the skeleton reference: 20 steps of 1e-4 in standardised units, 80 epochs from scratch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustbench_skel.budget import project, valid_mask
from robustbench_skel.learn.defended import TrainingDefense
from robustbench_skel.registry import DEFENSES


def _kl(adv_logits: torch.Tensor, clean_logits: torch.Tensor) -> torch.Tensor:
    """The TRADES code's ``KLDivLoss(log p_adv, p_clean)``: batch mean of sum p_clean * (log p_clean - log p_adv)."""
    return F.kl_div(F.log_softmax(adv_logits, 1), F.log_softmax(clean_logits, 1), reduction="batchmean", log_target=True)


@DEFENSES.register("trades")
class TRADES(TrainingDefense):
    description = "TRADES adversarial training, beta 6, L-inf in metres (Zhang et al. 2019); fine-tunes the victim"
    default_epochs = 1
    default_lr = 0.01

    def __init__(self, eps: float = 0.01, beta: float = 6.0, steps: int = 2, step_size: float | None = None,
                 init_scale: float = 0.001) -> None:
        super().__init__()
        self.eps = float(eps)
        self.beta = float(beta)
        self.steps = int(steps)
        self.step_size = float(step_size) if step_size is not None else 2.5 * self.eps / self.steps
        self.init_scale = float(init_scale)  # the paper's small random start: 0.001 * N(0, 1)

    def adversarial(self, model, x: torch.Tensor, clean_logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The inner maximisation; returns detached clips (never clamped to any data range)."""
        mask = valid_mask(x)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        delta = project(self.init_scale * noise, mask, "linf", self.eps)
        target = clean_logits.detach()
        for _ in range(self.steps):
            delta.requires_grad_(True)
            (grad,) = torch.autograd.grad(_kl(model(x + delta), target), delta)
            delta = project(delta.detach() + self.step_size * grad.sign(), mask, "linf", self.eps)
        return (x + delta).detach()

    def training_loss(self, model, x, y, generator):
        logits = model(x)
        x_adv = self.adversarial(model, x, logits, generator)
        loss = F.cross_entropy(logits, y) + self.beta * _kl(model(x_adv), logits)
        return loss, logits
