"""Training-time defenses: the base class that trains new weights and loads them back for evaluation.

A training-time defense (adversarial training, BEAT's Bayesian heads) says three things: which module
it trains (:meth:`TrainingDefense.build`, the victim itself or the victim with added parts), which of
its parameters move (:meth:`trainable`), and the loss of one batch (:meth:`training_loss`). The shared
loop of :mod:`robustbench_skel.learn.adversarial_training` does the rest. :meth:`apply` then loads the defended
weights, the user's (``--defense-checkpoint``) or the ones shipped in the victim's card under
``"defended": {name: {dataset: {"file", "sha256", "command", ...}}}``, always through
``torch.load(weights_only=True)`` and, for shipped files, checked against their sha256.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..checkpoint import StateDict, load_state_dict_strict, read_state_dict, sha256_file
from ..defense import Defense, DefenseContext
from ..errors import UserError
from ..victim import model_card

__all__ = ["TrainingDefense", "defend_command", "shipped_defended_weights"]


def defend_command(victim: str, defense: str, dataset: str) -> str:
    """The command line that builds the defended weights of ``victim`` (for messages and cards)."""
    return f"python -m robustbench_skel defend --victim {victim} --defense {defense} --dataset {dataset}"


def shipped_defended_weights(victim: str, defense: str, dataset: str) -> tuple[Path, str] | None:
    """``(path, sha256)`` of the defended weights the victim's card lists, or ``None`` when it lists none.

    A card entry whose file is absent is an error (a broken installation or an unfinished build), with the
    command that rebuilds it.
    """
    entry = model_card(victim).get("defended", {}).get(defense, {}).get(dataset)
    if not entry:
        return None
    path = Path(str(resources.files("robustbench_skel.victims").joinpath("weights", entry["file"])))
    if not path.is_file():
        raise UserError(
            f"the {defense} weights of {victim} on {dataset} ({entry['file']}) are missing; build them with: "
            f"{defend_command(victim, defense, dataset)} --out victims/weights/{entry['file']} --half"
        )
    return path, entry["sha256"]


class TrainingDefense(Defense):
    """A defense that replaces or extends the victim's weights; subclasses implement the training loss.

    Class attributes give the training recipe's defaults (``defend --epochs/--batch-size/--lr`` override
    them): fine-tuning starts from the victim's shipped weights, so a few epochs at a small rate suffice.
    """

    kind: ClassVar[str] = "training"
    default_epochs: ClassVar[int] = 1
    default_batch_size: ClassVar[int] = 32
    default_lr: ClassVar[float] = 0.01
    optimizer: ClassVar[str] = "sgd"  # or "adam"
    grad_clip: ClassVar[float | None] = 1.0  # total gradient norm; fine-tuning with frozen BatchNorm needs it

    def __init__(self) -> None:
        self._weights: str | None = None
        self._weights_sha256: str | None = None

    # --- what subclasses implement ---------------------------------------------------------------
    def build(self, victim: nn.Module, context: DefenseContext | None = None) -> nn.Module:
        """The defended architecture around (a copy of) ``victim``; default: the victim itself."""
        return victim

    def trainable(self, model: nn.Module) -> nn.Module:
        """The sub-module whose parameters are trained and saved; default: the whole model."""
        return model

    def training_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, logits of the clean clips)`` for one batch; random draws come from ``generator``."""
        raise NotImplementedError

    def training_state(self) -> dict[str, Any]:
        """Extra state that a resumed run must restore (e.g. BEAT's replay buffers); default: none."""
        return {}

    def load_training_state(self, state: dict[str, Any]) -> None:
        pass

    # --- loading the defended weights ------------------------------------------------------------
    def apply(self, victim: nn.Module, context: DefenseContext) -> nn.Module:
        """The victim with the defended weights: ``context.checkpoint``, else the card's shipped file."""
        if context.checkpoint:
            path = Path(context.checkpoint)
            digest = sha256_file(path) if path.is_file() else None
            state = read_state_dict(path)
        else:
            shipped = shipped_defended_weights(context.victim, self.name, context.dataset)
            if shipped is None:
                raise UserError(
                    f"no {self.name} weights ship for {context.victim} on {context.dataset}; build them with: "
                    f"{defend_command(context.victim, self.name, context.dataset)} and pass --defense-checkpoint PATH"
                )
            path, expected = shipped
            base = model_card(context.victim).get("pretrained", {}).get(context.dataset, {}).get("sha256")
            if context.victim_checkpoint_sha256 and base and context.victim_checkpoint_sha256 != base:
                # The shipped defense was trained from the shipped victim: on other weights it would silently
                # replace them (pgd-at, trades) or sit on a backbone it never saw (beat's heads).
                raise UserError(
                    f"the shipped {self.name} weights of {context.victim} were trained from its shipped {context.dataset} "
                    f"weights, not from your --checkpoint; build them for yours with: "
                    f"{defend_command(context.victim, self.name, context.dataset)} --checkpoint PATH, then pass --defense-checkpoint"
                )
            digest = sha256_file(path)
            if digest != expected:
                raise UserError(f"the shipped weights {path.name} do not match their sha256 in the model card; reinstall the package")
            state = read_state_dict(path)
        model = self.build(copy.deepcopy(victim), context)
        self.load_weights(model, state, source=f"{self.name} weights {path.name}")
        self._weights, self._weights_sha256 = (str(path) if context.checkpoint else path.name), digest
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model.to(context.device)

    def load_weights(self, model: nn.Module, state: StateDict, source: str) -> None:
        target = self.trainable(model)
        like = target.state_dict()
        state = {k: v.to(like[k].dtype) if k in like and v.is_floating_point() else v for k, v in state.items()}
        load_state_dict_strict(target, state, source=source)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weights": self._weights, "weights_sha256": self._weights_sha256}
