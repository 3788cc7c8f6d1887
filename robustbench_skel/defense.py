"""The defense contract: a plugin that wraps a victim or produces new weights for it.

A defense is registered by name (``@DEFENSES.register("my-defense")``) and turns a loaded victim
into the model that is attacked and evaluated. It must keep the victim's input convention (raw
clips in metres) and output logits, so every attack and metric applies unchanged.

Two kinds:

- ``inference``: wraps the victim (purification, randomized smoothing); :meth:`Defense.apply` returns
  a module around it.
- ``training``: new weights for the victim (adversarial training, BEAT's Bayesian heads); trained by
  the ``defend`` command, shipped or cached, and loaded by :meth:`Defense.apply`.

What an adaptive attacker needs is declared, not guessed: a ``randomized`` defense is attacked with
EOT (the loss gradient averaged over draws), a non-``differentiable`` one with BPDA (the runner asks
for the defended model with :meth:`Defense.apply` and ``bpda=True``; the defense then returns the
model an attacker differentiates: its differentiable approximation, see ``DefenseContext.bpda``). The
runner records which it used; the evaluator always re-classifies with the real defended model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .hparams import constructor_arguments
from .layout import SkeletonLayout

__all__ = ["Defense", "DefenseContext"]


@dataclass
class DefenseContext:
    """What a defense may need to build the defended model: which victim, trained on what, and where."""

    victim: str
    dataset: str
    layout: SkeletonLayout
    num_classes: int
    fps: float
    device: torch.device
    victim_checkpoint_sha256: str | None = None
    checkpoint: str | None = None  # --defense-checkpoint: the user's defended weights
    # Build the model a white-box attacker differentiates: for a non-differentiable component, its
    # differentiable approximation (BPDA); for randomized smoothing, one noisy draw of the base classifier
    # per forward (EOT averages over draws) rather than the n-sample vote. The evaluator always uses the
    # model built with bpda=False.
    bpda: bool = False


class Defense:
    """Base class of every defense; subclasses implement :meth:`apply`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    kind: ClassVar[str] = "inference"  # or "training"
    randomized: ClassVar[bool] = False  # outputs depend on random draws: attacks average gradients (EOT)
    differentiable: ClassVar[bool] = True  # False: attacks differentiate through an approximation (BPDA)

    def apply(self, victim: nn.Module, context: DefenseContext) -> nn.Module:
        """The defended model: clips ``(N, 3, T, V, M)`` in metres -> logits."""
        raise NotImplementedError

    def extra_metrics(self, model: nn.Module, clips: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        """Metrics only this defense defines, computed on the clean clips with the evaluated ``model`` and added
        to the record's ``metrics`` (randomized smoothing: certified accuracy). None by default."""
        return {}

    def hyperparameters(self) -> dict[str, Any]:
        return constructor_arguments(self)

    def describe(self) -> dict[str, Any]:
        """The record's ``defense`` entry; a defense that loads weights adds their sha256 in its override."""
        return {
            "name": self.name,
            "kind": self.kind,
            "randomized": self.randomized,
            "differentiable": self.differentiable,
            "hyperparameters": self.hyperparameters(),
        }
