"""AutoAttack-style worst case over a pinned, named cascade of attacks (after Croce & Hein, ICML 2020).

Each component attacks only the samples still unbroken, always starting from the clean clip, and a
sample counts as broken by the first component whose result the victim misclassifies (or, targeted,
classifies as the target). The result per sample is therefore the worst case over the cascade, and
the record carries which component broke each sample (the per-attack breakdown).

The cascade is pinned by name so that a number in the leaderboard means one fixed evaluation:

``skel-aa-v1`` (L-inf): APGD-CE (100 iterations); APGD-DLR targeted at each of the 3 classes the
victim ranks highest after the true one (100 iterations each), the targeted-DLR part of AutoAttack
that survives logit rescaling; then the skeleton-perceptual attacks SMART and CIASA (100 iterations
each), which search along smooth, bone-preserving directions that the Lp attacks do not favour.
AutoAttack proper runs 9 target classes, FAB-T and Square; we keep 3 targets for the cost of a
CPU run and leave the black-box component to the decision-based family.

Against a randomized defense every component inherits the cascade's EOT draws (and early-stop rule),
and "broken" is decided on the logits averaged over as many draws: a single noisy draw would drop
clips from the cascade that the evaluator's PREDICT then finds unbroken.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from robustbench_skel.attack import Attack, copy_run_settings, is_adversarial, no_loss
from robustbench_skel.errors import UserError
from robustbench_skel.hparams import accepted_arguments
from robustbench_skel.registry import ATTACKS

__all__ = ["AutoAttack", "CASCADES"]

# name -> (norm, [(attack, hyperparameters, number of top classes to target or None)])
CASCADES: dict[str, tuple[str, tuple[tuple[str, dict[str, Any], int | None], ...]]] = {
    "skel-aa-v1": (
        "linf",
        (
            ("apgd-ce", {"steps": 100}, None),
            ("apgd-dlr", {"steps": 100}, 3),
            ("smart", {"steps": 100}, None),
            ("ciasa", {"steps": 100}, None),
        ),
    ),
}


@ATTACKS.register("autoattack")
class AutoAttack(Attack):
    """Per-sample worst case over the cascade ``version`` (see the module docstring)."""

    description = "worst case over the pinned cascade skel-aa-v1: APGD-CE, APGD-DLR targeted (top-3), SMART, CIASA; L-inf"
    norm: ClassVar[str] = "linf"
    supports_eot: ClassVar[bool] = True  # passed on to every component (all support it)

    def __init__(self, eps: float = 0.01, version: str = "skel-aa-v1", targeted: bool = False, seed: int = 0,
                 layout: str = "ntu25") -> None:
        super().__init__(eps=eps, targeted=targeted, seed=seed)
        if version not in CASCADES:
            raise UserError(f"unknown autoattack version {version!r}; known: {', '.join(CASCADES)}")
        if CASCADES[version][0] != self.norm:
            raise ValueError(f"cascade {version} is {CASCADES[version][0]}, not {self.norm}")
        self.version = version
        self.layout = layout

    def _plan(self) -> list[tuple[str, str, dict[str, Any], int | None]]:
        """(component label, attack name, hyperparameters, rank of the target class or None)."""
        plan = []
        for name, params, top in CASCADES[self.version][1]:
            if top is None or self.targeted:  # a targeted cascade aims every component at the given target
                plan.append((name, name, params, None))
            else:
                plan.extend((f"{name}-t{k}", name, params, k) for k in range(1, top + 1))
        return plan

    def components(self) -> list[str]:
        return [label for label, *_ in self._plan()]

    def _build(self, name: str, params: dict[str, Any], targeted: bool) -> Attack:
        cls = ATTACKS.get(name)
        kwargs = {"eps": self.eps, "seed": self.seed, "targeted": targeted, **params}
        if "layout" in accepted_arguments(cls):
            kwargs["layout"] = self.layout
        return copy_run_settings(self, cls(**kwargs))

    def _logits(self, model, x: torch.Tensor) -> torch.Tensor:
        """The model's logits, averaged over the EOT draws (one pass for a deterministic model)."""
        return self.eot_evaluate(model, x, no_loss, need_grad=False)[0]

    def run(self, model, x, labels, targets, mask, generator):
        n = x.shape[0]
        result = x.clone()
        broken = torch.zeros(n, dtype=torch.bool, device=x.device)
        succeeded_by = torch.full((n,), -1, dtype=torch.long, device=x.device)
        ranked = self._logits(model, x).argsort(dim=1, descending=True)
        for index, (_, name, params, rank) in enumerate(self._plan()):
            remaining = (~broken).nonzero().squeeze(1)
            if remaining.numel() == 0:
                break
            if rank is None:
                attack = self._build(name, params, self.targeted)
                aim = targets[remaining] if self.targeted else None
            else:  # the rank-th most likely class other than the true one
                attack = self._build(name, params, True)
                order = ranked[remaining]
                others = order[order != labels[remaining, None]].view(remaining.numel(), -1)
                aim = others[:, rank - 1]
            adv = attack(model, x[remaining], labels[remaining], aim, generator=generator)
            fooled = is_adversarial(self._logits(model, adv), labels[remaining], targets[remaining] if self.targeted else None)
            hit = remaining[fooled]
            result[hit] = adv[fooled]
            broken[hit] = True
            succeeded_by[hit] = index
        self.last_ever_adversarial = broken.cpu()
        self.last_extra = {"succeeded_by": succeeded_by.cpu()}
        return result
