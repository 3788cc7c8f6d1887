"""The defense contract: a plugin that wraps a victim or produces a new one.

A defense is registered by name (``@DEFENSES.register("my-defense")``) and turns a loaded victim
into the model that is attacked and evaluated. It must keep the victim's input convention (raw
clips in metres) and output logits, so every attack and metric applies unchanged. Whether a defense
is attacked adaptively is the attack's business: a white-box attack receives the defended model.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from .hparams import constructor_arguments

__all__ = ["Defense"]


class Defense:
    """Base class of every defense; subclasses implement :meth:`apply`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def apply(self, victim: nn.Module) -> nn.Module:
        """The defended model: clips ``(N, 3, T, V, M)`` in metres -> logits."""
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, Any]:
        return constructor_arguments(self)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "hyperparameters": self.hyperparameters()}
