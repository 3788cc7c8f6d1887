"""Ensemble transfer attack: MI-FGSM on several surrogates at once (Liu et al. 2017; Dong et al. 2018, Sec. 3.2).

Two ways to fuse the K surrogates, ``combine``:

- ``"logits"`` (default; Liu et al.'s and Dong et al.'s main form): ascend the cross-entropy of the
  mean of the members' logits. The reference benchmark's ``EnsembleModel`` *sums* the logits: that
  is a K-times sharper softmax, the same argmax, and a loss gradient of another scale and mixture; we
  take the mean (what :class:`SurrogateEnsemble` computes), so with one surrogate this is MI-FGSM;
- ``"loss"``: ascend the mean of the members' cross-entropies (Dong et al.'s "ensemble in loss").

The update is MI-FGSM's (mu = 1, alpha = eps / T, sign steps); the reference steps
``0.01 * sign(g / mean|g|)`` on the raw gradient, without momentum (see ``mifgsm`` for why we follow
the paper). Cost: one forward and backward pass per member and iteration.
"""

from __future__ import annotations

import torch

from robustbench_skel.errors import UserError
from robustbench_skel.registry import ATTACKS

from ._transfer import SeededTransfer, members_of

__all__ = ["Ensemble"]

COMBINE = ("logits", "loss")


@ATTACKS.register("ens")
class Ensemble(SeededTransfer):
    """MI-FGSM on the mean logits (or the mean loss) of the surrogate ensemble."""

    description = "Ensemble transfer: MI-FGSM on the surrogates' mean logits or mean loss (Liu et al. 2017)"

    def __init__(
        self,
        eps: float = 0.01,
        steps: int = 10,
        step_size: float | None = None,
        decay: float = 1.0,
        combine: str = "logits",
        targeted: bool = False,
        seed: int = 0,
        step_rule: str = "sign",
    ) -> None:
        super().__init__(eps=eps, steps=steps, step_size=step_size, decay=decay, targeted=targeted, seed=seed,
                         step_rule=step_rule)
        if combine not in COMBINE:
            raise UserError(f"--attack-opt combine must be logits or loss, got {combine!r}")
        self.combine = combine

    def gradient(self, model, x, variable, mask, labels, targets, state):
        members = members_of(model)
        v = variable.detach().requires_grad_(True)
        clips = self.clips(x, v, mask)
        if self.combine == "logits":
            logits = model(clips)  # the ensemble's own mean of logits (one member: its logits)
            loss = self.loss(logits, labels, targets).sum()
        else:
            each = [m(clips) for m in members]
            logits = torch.stack(each).mean(dim=0)
            loss = torch.stack([self.loss(lg, labels, targets).sum() for lg in each]).sum() / len(each)
        (grad,) = torch.autograd.grad(loss, v)
        return grad, logits.detach(), clips.detach()
