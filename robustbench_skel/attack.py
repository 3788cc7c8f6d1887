"""The attack contract and the shared loop of iterative gradient attacks.

An attack is a class registered by name (``@ATTACKS.register("pgd")``) that declares its threat
model, its norm and its budget in metres. ``Attack.__call__`` owns what every attack needs and none
should re-implement: device placement, a seeded random generator, the validity mask (absent joints
never move), the final projection into the budget and the record of hyperparameters. A plugin
implements :meth:`Attack.run`; a gradient attack usually only implements
:meth:`IterativeGradientAttack.update` and inherits per-sample early stopping with batch compaction
(samples that have succeeded leave the batch, so the cost of an attack falls as its success rises).

The attack never reports its own success: the evaluator re-classifies what it returns.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .artefacts import ArtefactStore
from .budget import NORMS, budget_size, project, random_in_ball, valid_mask
from .errors import UserError
from .hparams import accepted_arguments, constructor_arguments
from .step_rule import check_step_rule, step_direction

__all__ = ["ThreatModel", "Attack", "IterativeGradientAttack", "PrepareContext", "margin_loss", "is_adversarial",
           "parse_early_stop", "copy_run_settings", "no_loss"]


@dataclass
class PrepareContext:
    """What :meth:`Attack.prepare` may use: where artefacts live, the device, and how to rebuild them."""

    store: ArtefactStore
    device: torch.device
    seed: int = 0
    progress: bool = False
    command: str = ""  # the command line that rebuilds this attack's artefacts (recorded with each)


def parse_early_stop(text: str) -> str:
    """``adversarial``, ``batch``, ``none`` or ``margin=K`` (K a non-negative logit margin), else a UserError."""
    if text in ("adversarial", "batch", "none"):
        return text
    if text.startswith("margin="):
        try:
            kappa = float(text.split("=", 1)[1])
        except ValueError:
            kappa = -1.0
        if kappa >= 0 and math.isfinite(kappa):
            return f"margin={kappa:g}"
    raise UserError(f"--early-stop must be adversarial, batch, none or margin=K with K >= 0, got {text!r}")


class ThreatModel(str, enum.Enum):
    """What an attack is handed: the victim, surrogates only, unlabeled clips only, or a label oracle."""

    WHITE_BOX = "white-box"
    TRANSFER = "transfer"
    NO_BOX = "no-box"
    DECISION_BASED = "decision-based"


def is_adversarial(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Untargeted: the prediction is not the true class. Targeted: the prediction is the target."""
    pred = logits.argmax(dim=1)
    return pred.eq(targets) if targets is not None else pred.ne(labels)


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Best other logit minus the labelled logit (positive once misclassified), per sample."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
    return other - true


def no_loss(logits: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """A zero loss, for :meth:`Attack.eot_evaluate` calls that only want the (averaged) logits."""
    return logits.new_zeros(logits.shape[0])


def copy_run_settings(source: "Attack", target: "Attack") -> "Attack":
    """Give ``target`` the settings the runner put on ``source`` (early stop, EOT draws, the radius of a
    random start), and return it.

    They are not constructor arguments, so a copy built from :meth:`Attack.hyperparameters` (a sanity
    re-run, a cascade's component) would otherwise silently fall back to the defaults.
    """
    target.early_stop, target.eot_samples = source.early_stop, source.eot_samples
    target.start_radius = source.start_radius
    return target


class Attack:
    """Base class of every attack.

    Subclasses set the class attributes and implement :meth:`run`. Every ``__init__`` parameter must
    be stored on ``self`` under its own name: :meth:`hyperparameters` reads them back for the record.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    threat_model: ClassVar[ThreatModel] = ThreatModel.WHITE_BOX
    # The budget: "linf" or "l2" (metres per coordinate, enforced by the base class), or an attack's
    # own constraint (e.g. "bone-scale"), for which the attack overrides budget_size and constrain.
    norm: ClassVar[str] = "linf"
    budget_unit: ClassVar[str] = "m"
    supports_targeted: ClassVar[bool] = True
    # Whether the attack iterates (the sanity checks compare it with FGSM and double its iterations).
    iterative: ClassVar[bool] = True
    # A budget so large that the attack is effectively unconstrained (the "unbounded" sanity check).
    unbounded_eps: ClassVar[float] = 1.0
    # Whether the attack honours ``eot_samples`` (averages its loss and gradient over draws of a
    # randomized model). The runner refuses a white-box attack without it against a randomized defense,
    # rather than record an EOT evaluation that did not happen.
    supports_eot: ClassVar[bool] = False

    def __init__(self, eps: float = 0.01, targeted: bool = False, seed: int = 0) -> None:
        if not (isinstance(eps, (int, float)) and eps > 0 and not math.isnan(eps)):
            raise UserError(f"--eps must be a positive number ({self.budget_unit}), got {eps!r}")
        if targeted and not self.supports_targeted:
            raise UserError(f"attack {self.name!r} has no targeted mode; drop --targeted")
        if self.norm not in NORMS and type(self).constrain is Attack.constrain:
            raise ValueError(f"attack {self.name!r} declares its own norm {self.norm!r} but does not override constrain()")
        self.eps = float(eps)
        self.targeted = bool(targeted)
        self.seed = int(seed)
        # Per-sample bookkeeping of the last call, read by the runner (None when an attack does not keep it):
        # gradient steps taken, and whether any point the attack evaluated was adversarial. The
        # evaluator flags a sample that was adversarial during the optimisation but is not in the result.
        self.last_iterations: torch.Tensor | None = None
        self.last_ever_adversarial: torch.Tensor | None = None
        # Further per-sample results an attack wants in the record, ``{name: (N,) tensor}``; a cascade
        # reports ``succeeded_by`` (index into ``components()``, -1 for none).
        self.last_extra: dict[str, torch.Tensor] = {}
        # Set by the runner, not by the user's hyperparameters, and recorded by describe():
        # when an iterate counts as done ("adversarial": the handed model misclassifies it, the
        # white-box default; "none": every iteration runs, the transfer default; "batch": the whole
        # batch stops together once the handed model misclassifies every clip of it, the TASAR
        # reference's rule; "margin=K": the handed model's logit margin reaches K), and how many
        # random draws of a randomized defense
        # each loss gradient averages (EOT, Athalye et al. 2018).
        self.early_stop = "adversarial"
        self.eot_samples = 1
        # Where an attack with a random start draws it: within this radius (budget units) when set and
        # smaller than the budget, else within the budget. Only the unbounded sanity re-run sets it.
        self.start_radius: float | None = None

    # --- what plugins implement -------------------------------------------------------------
    def run(
        self,
        model: Any,
        x: torch.Tensor,
        labels: torch.Tensor | None,
        targets: torch.Tensor | None,
        mask: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Return adversarial clips for the batch ``x``. ``mask`` marks the perturbable person-frames.

        ``model`` is what the threat model hands over (:mod:`robustbench_skel.handed`): the victim or
        the surrogate ensemble (``nn.Module``), an unlabelled pool (no-box; ``labels`` is then None), or
        a label oracle (decision-based).
        """
        raise NotImplementedError

    def prepare(self, handed: Any, context: "PrepareContext") -> list[dict[str, Any]]:
        """Build (or load from the cache) what the attack trains before attacking, once per run.

        Returns the record entries of the artefacts used (:class:`robustbench_skel.artefacts.ArtefactStore`).
        The default attack needs nothing.
        """
        return []

    def components(self) -> list[str]:
        """Names of the sub-attacks of a composite attack (empty for a single attack)."""
        return []

    def budget_size(self, x: torch.Tensor, x_adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sample size of the perturbation in the unit of ``eps`` (the evaluator checks it)."""
        return budget_size(x_adv - x, mask, self.norm)

    def constrain(self, x: torch.Tensor, x_adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The closest clip to ``x_adv`` that satisfies the budget (applied to every returned clip)."""
        return x + project(x_adv - x, mask, self.norm, self.eps)

    def eot_evaluate(self, model: nn.Module, x: torch.Tensor, loss_fn: Any, need_grad: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Logits, per-sample loss ``loss_fn(logits, x)`` and its gradient at ``x``, each averaged over
        ``eot_samples`` forward passes (EOT, Athalye et al. 2018: the gradient of the expected loss).

        One backward per draw, so memory does not grow with the number of draws. With one draw this is a
        single plain forward (and backward), so EOT with ``n = 1`` is the plain attack.
        """
        logits_sum = loss_sum = grad_sum = None
        for _ in range(self.eot_samples):
            v = x.detach().requires_grad_(need_grad)
            with torch.set_grad_enabled(need_grad):
                logits = model(v)
                loss = loss_fn(logits, v)
            grad = torch.autograd.grad(loss.sum(), v)[0] if need_grad else None
            logits, loss = logits.detach(), loss.detach()
            logits_sum = logits if logits_sum is None else logits_sum + logits
            loss_sum = loss if loss_sum is None else loss_sum + loss
            if grad is not None:
                grad_sum = grad if grad_sum is None else grad_sum + grad
        n = self.eot_samples
        if n == 1:
            return logits_sum, loss_sum, grad_sum
        return logits_sum / n, loss_sum / n, None if grad_sum is None else grad_sum / n

    def _done(self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
              fooled: torch.Tensor) -> torch.Tensor:
        """Which samples leave the batch now, by the run's early-stop rule (see ``early_stop``);
        ``fooled`` is :func:`is_adversarial` of the same logits. Attacks with their own loop call it too."""
        if self.early_stop == "adversarial":
            return fooled
        if self.early_stop == "none":
            return torch.zeros_like(fooled)
        if self.early_stop == "batch":  # all leave at once, when every clip still in the batch is fooled
            return fooled if bool(fooled.all()) else torch.zeros_like(fooled)
        kappa = float(self.early_stop.split("=", 1)[1])
        margin = margin_loss(logits, labels) if targets is None else -margin_loss(logits, targets)
        return fooled & (margin >= kappa)

    def start_eps(self) -> float:
        """The radius of a random start: ``start_radius`` where it is set and smaller, else the budget."""
        return self.eps if self.start_radius is None else min(self.eps, self.start_radius)

    # --- the contract ------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """Every constructor argument with its value, for the run record."""
        return constructor_arguments(self)

    def describe(self) -> dict[str, Any]:
        described = {
            "name": self.name,
            "threat_model": self.threat_model.value,
            "norm": self.norm,
            "eps": self.eps,
            "budget_unit": self.budget_unit,
            "targeted": self.targeted,
            "hyperparameters": self.hyperparameters(),
        }
        if self.early_stop != "adversarial":
            described["early_stop"] = self.early_stop
        if self.eot_samples != 1:
            described["eot_samples"] = self.eot_samples
        if self.start_radius is not None:
            described["start_radius"] = self.start_radius
        return described

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    def __call__(
        self,
        model: Any,
        x: torch.Tensor,
        labels: torch.Tensor | None,
        targets: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Attack one batch; returns clips within the budget, on ``x``'s device, detached.

        ``model`` is what the threat model hands over (see :meth:`run`).
        """
        if self.targeted and targets is None:
            raise ValueError(f"{self.name}: a targeted attack needs targets")
        if not self.targeted:
            targets = None
        device = next((p.device for p in model.parameters()), x.device) if isinstance(model, nn.Module) else x.device
        x_dev = x.detach().to(device)
        labels = labels.to(device) if labels is not None else None
        targets = targets.to(device) if targets is not None else None
        if generator is None:
            generator = torch.Generator(device=device).manual_seed(self.seed)
        was_training = model.training if isinstance(model, nn.Module) else False
        if isinstance(model, nn.Module):
            model.eval()
        mask = valid_mask(x_dev)
        try:
            with torch.enable_grad():
                x_adv = self.run(model, x_dev, labels, targets, mask, generator)
        finally:
            if was_training:
                model.train()
        return self.constrain(x_dev, x_adv.detach(), mask).to(x.device)


class IterativeGradientAttack(Attack):
    """Projected gradient ascent on a per-sample loss, with per-sample early stopping.

    Each iteration costs one forward and one backward pass of the samples still unbroken; a sample
    leaves the batch at the first iterate the victim misclassifies (or classifies as the target), and
    that iterate is what is returned for it. A plugin implements :meth:`update` and may override:

    - :meth:`loss` (what to ascend), :meth:`init_delta` (random start) and :meth:`lookahead` (where
      the gradient is taken, e.g. the Nesterov point; an in-budget point found adversarial there is
      returned as the example);
    - the optimisation variable: by default an additive perturbation ``delta`` of the clip; an
      attack searching another space (bone scales, say) overrides :meth:`init_variable`,
      :meth:`clips` and :meth:`project_variable`;
    - :meth:`gradient` (e.g. integrated gradients) and :meth:`init_state` (per-sample tensors kept
      across iterations, such as momentum or the clean clips; their rows follow the compaction).
    """

    random_start: ClassVar[bool] = False
    supports_eot: ClassVar[bool] = True  # :meth:`_averaged_gradient`

    def __init__(
        self,
        eps: float = 0.01,
        steps: int = 10,
        step_size: float | None = None,
        targeted: bool = False,
        seed: int = 0,
        step_rule: str = "sign",
    ) -> None:
        super().__init__(eps=eps, targeted=targeted, seed=seed)
        if not (isinstance(steps, int) and steps >= 1):
            raise UserError(f"--steps must be a positive integer, got {steps!r}")
        self.step_rule = check_step_rule(step_rule)
        if step_size is None and self.step_rule == "mean-abs":
            step_size = self.eps  # the TASAR reference's alpha: the whole budget, then clipped
        if step_size is None:
            step_size = 2.5 * self.eps / steps  # Madry et al.'s rule of thumb
        if not (isinstance(step_size, (int, float)) and step_size > 0 and math.isfinite(step_size)):
            raise UserError(f"--step-size must be a positive number ({self.budget_unit}), got {step_size!r}")
        self.steps = steps
        self.step_size = float(step_size)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        """Per-sample loss to ascend: cross-entropy of the label, or minus that of the target."""
        if targets is not None:
            return -F.cross_entropy(logits, targets, reduction="none")
        return F.cross_entropy(logits, labels, reduction="none")

    def init_delta(self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.random_start:
            return random_in_ball(x, mask, self.norm, self.start_eps(), generator)
        return torch.zeros_like(x)

    def step(self, direction: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``step_size`` times the unit step of the attack's ``step_rule`` along ``direction``
        (:mod:`robustbench_skel.step_rule`): sign (L-inf) / unit RMS (L2), or ``d / mean|d|``."""
        return self.step_size * step_direction(direction, mask, self.norm, self.step_rule)

    def update(self, delta: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """One ascent step from ``delta`` given the loss gradient; the base class projects afterwards."""
        return delta + self.step(grad, mask)

    def describe(self) -> dict[str, Any]:
        """The attack section, with the step rule, its size and the iterations stated (``step``)."""
        described = super().describe()
        if "step_rule" in accepted_arguments(type(self)):
            described["step"] = {"rule": self.step_rule, "size": self.step_size, "iterations": self.steps}
        return described

    def lookahead(self, delta: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """The variable at which the next gradient is taken (default: the iterate itself)."""
        return delta

    # --- the optimisation variable (default: an additive perturbation) ----------------------
    def init_variable(self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.project_variable(self.init_delta(x, mask, generator), mask)

    def init_state(self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Per-sample tensors (first axis = samples) that persist across iterations."""
        return {}

    def clips(self, x: torch.Tensor, variable: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The clips the variable stands for (differentiable in ``variable``)."""
        return x + variable

    def project_variable(self, variable: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The variable brought back into the budget after a step."""
        return project(variable, mask, self.norm, self.eps)

    def gradient(
        self, model: nn.Module, x: torch.Tensor, variable: torch.Tensor, mask: torch.Tensor,
        labels: torch.Tensor, targets: torch.Tensor | None, state: dict[str, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gradient of the summed loss w.r.t. ``variable``, and the (detached) logits and clips at it."""
        v = variable.detach().requires_grad_(True)
        clips = self.clips(x, v, mask)
        logits = model(clips)
        (grad,) = torch.autograd.grad(self.loss(logits, labels, targets).sum(), v)
        return grad, logits.detach(), clips.detach()

    def _averaged_gradient(self, model, x, variable, mask, labels, targets, state):
        """:meth:`gradient`, averaged over ``eot_samples`` forward passes of a randomized model (EOT).

        With one draw this is :meth:`gradient` itself, so EOT with ``n = 1`` is the plain attack.
        """
        grad, logits, clips = self.gradient(model, x, variable, mask, labels, targets, state)
        for _ in range(self.eot_samples - 1):
            g, lg, _ = self.gradient(model, x, variable, mask, labels, targets, state)
            grad, logits = grad + g, logits + lg
        n = self.eot_samples
        return (grad / n, logits / n, clips) if n > 1 else (grad, logits, clips)

    def run(self, model, x, labels, targets, mask, generator):
        """``steps`` forward+backward passes, as in the paper's loop; nothing else touches the model.

        The last iterate is returned without a forward pass of its own: whoever asked for the attack
        judges it (the runner's evaluator does), so ``last_ever_adversarial`` covers the iterates at
        which a gradient was taken. The batch tensors are re-indexed only when samples leave it.
        """
        n = x.shape[0]
        x_adv = x.clone()
        iterations = torch.zeros(n, dtype=torch.long, device=x.device)
        ever = torch.zeros(n, dtype=torch.bool, device=x.device)
        active = torch.arange(n, device=x.device)
        variable = self.init_variable(x, mask, generator)
        state = self.init_state(x, mask, generator)
        plain = type(self).lookahead is IterativeGradientAttack.lookahead
        m, xa, lab, tgt = mask, x, labels, targets
        for it in range(self.steps):
            probe = variable if plain else self.project_variable(self.lookahead(variable, state), m)
            grad, logits, clips = self._averaged_gradient(model, xa, probe, m, lab, tgt, state)
            fooled = is_adversarial(logits, lab, tgt)
            ever[active] |= fooled
            done = self._done(logits, lab, tgt, fooled)
            if done.any():
                x_adv[active[done]] = clips[done]
                iterations[active[done]] = it
                keep = ~done
                active, variable, grad = active[keep], variable[keep], grad[keep]
                m, xa, lab = m[keep], xa[keep], lab[keep]
                tgt = tgt[keep] if tgt is not None else None
                state = {k: v[keep] for k, v in state.items()}
                if active.numel() == 0:
                    break
            variable = self.project_variable(self.update(variable, grad, m, state), m).detach()
        else:  # the samples that never left: their last iterate, after every step
            iterations[active] = self.steps
            with torch.no_grad():
                x_adv[active] = self.clips(xa, variable, m)
        self.last_iterations = iterations.cpu()
        self.last_ever_adversarial = ever.cpu()
        return x_adv
