"""What the transfer attacks (dim, ens, svre, ba) share: the members they are handed and a seeded generator.

``IterativeGradientAttack.gradient`` does not receive the run's generator, and ``state`` cannot hold
one (its entries are per-sample tensors that follow the batch compaction), so :class:`SeededTransfer`
keeps the generator handed to :meth:`run` on the attack for the duration of the call.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from robustbench_skel.attack import ThreatModel
from robustbench_skel.attacks.mifgsm import MIFGSM
from robustbench_skel.errors import UserError

__all__ = ["members_of", "SeededTransfer", "check_int", "check_float"]


def members_of(model: nn.Module) -> list[nn.Module]:
    """The surrogates of a :class:`SurrogateEnsemble`; a plain module counts as a single member."""
    members = getattr(model, "members", None)
    return list(members) if members is not None else [model]


def check_int(name: str, value: object, minimum: int) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
        raise UserError(f"--attack-opt {name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_float(name: str, value: object, low: float, high: float = float("inf"), low_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and value <= high
    ok = ok and (value > low if low_open else value >= low)
    if not ok:
        bound = f"in ({low}, {high}]" if low_open else f"in [{low}, {high}]"
        raise UserError(f"--attack-opt {name} must be a number {bound}, got {value!r}")
    return float(value)


class SeededTransfer(MIFGSM):
    """MI-FGSM on the surrogates, with the run's generator reachable from :meth:`gradient` as ``self._generator``."""

    threat_model: ClassVar[ThreatModel] = ThreatModel.TRANSFER
    _generator: torch.Generator | None = None

    def run(self, model, x, labels, targets, mask, generator):
        self._generator = generator
        try:
            return super().run(model, x, labels, targets, mask, generator)
        finally:
            self._generator = None
