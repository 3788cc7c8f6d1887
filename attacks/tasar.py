"""TASAR (Diao et al., "TASAR: Transfer-based Attack on Skeletal Action Recognition", ICLR 2025).

A transfer attack on a *Bayesian* surrogate built after the fact, with a motion-aware gradient:

1. **Post-train** K heads on the frozen surrogate's logits and **Dual Bayesian** smoothing (a flatness
   term and SWAG-diagonal moments; :mod:`robustbench_skel.learn.bayesian_heads`), done once per surrogate
   in :meth:`TASAR.prepare` and cached as artefacts (the backbone logits of the training split, then
   the heads' moments).
2. Every iteration, **S x K heads** are sampled, ``theta = mu + scale sqrt(var) eps``, and the
   Bayesian gradient ``g_B`` is the gradient of their mean loss. All of them sit on top of one
   backbone forward and one backward (batched matrix products over the heads): by linearity the
   gradient of the mean loss is the mean of the per-head gradients, which the reference computes with
   S x K + K backbone passes and 2 S K deep copies per iteration (about 68 x the cost of one pass).
3. **Motion dynamics**: time-varying AR(1)/AR(2) coefficients fitted on the very clips attacked
   (:func:`robustbench_skel.motion.ar_coefficients`, once per batch in :meth:`TASAR.init_state`, kept
   as per-sample state so they follow the batch compaction), for any T, M and batch size. The temporal
   gradient is the reference's ``cgs <- cgs + momentum + AR_grad`` (SMI's motion-aware gradient with
   momentum of decay 1), applied to ``g_B``.
4. The direction ``bayes_weight * g_B / mean|g_B| + (1 - bayes_weight) * g_T / mean|g_T|``; a sign step
   of ``step_size`` (default ``eps / steps``), projected onto the L-inf box.

Where this follows the paper (or the suite's conventions) against the reference code (``TASAR.py``,
``ARCal.py``):

- the AR coefficients belong to the clip being attacked; the reference fits them on a shuffled loader
  and attacks an unshuffled one (each clip gets another clip's motion model), and hard-codes a batch
  of 8, 60 frames and M = 1 (it fails on NTU's M = 2);
- ``g_B`` is the mean over *this* iteration's sampled heads (the paper's expectation over the
  posterior); the reference initialises ``ce_grad_sum`` once per batch, so its ``g_B`` is the running
  sum over all past iterations (momentum of decay 1). That behaviour is the option ``accumulate=True``;
- the temporal term is built on ``g_B`` rather than on a separate gradient of the deterministic
  heads: the reference's extra K backbone passes buy a gradient that the posterior mean already
  smooths, and the budget here is one pass per iteration;
- steps are ``step_size * sign(direction)`` with ``step_size = eps / steps`` and 10 steps, as MI-FGSM
  and I-FGSM in this suite (so the transfer matrix compares attacks at equal iterations and budget);
  the reference steps ``0.01 * direction`` (the whole budget) 200 times and clips. ``steps`` and
  ``step_size`` are options.

``swag="reference"`` trains the heads' moments with the reference's SWAG bookkeeping (one snapshot
counter shared by all heads, the second moment started at theta;
:class:`robustbench_skel.learn.bayesian_heads.ReferenceSwagMoments`), opt-in; the default is the paper's.
``step_rule="mean-abs"`` steps ``step_size * direction / mean|direction|`` (the reference's, with
``step_size = eps``) instead of the sign (:mod:`robustbench_skel.step_rule`); ``--preset tasar-paper``
runs the reference's whole protocol.

With ``scale=0``, ``heads=1`` and ``temporal=False`` this is exactly I-FGSM on the mean-head model
(:class:`robustbench_skel.learn.bayesian_heads.MeanHeads`), which the tests check.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from robustbench_skel.artefacts import ArtefactStore
from robustbench_skel.attack import IterativeGradientAttack, PrepareContext, ThreatModel
from robustbench_skel.learn.bayes_diagnostic import diagnostic_entry, per_clip_cosine, relative_spread
from robustbench_skel.learn.bayesian_heads import (PARAM_NAMES, SWAG_BOOKKEEPING, HeadConfig, backbone_logits, head_logits,
                                             sample_heads, train_heads)
from robustbench_skel.budget import valid_mask
from robustbench_skel.errors import UserError
from robustbench_skel.handed import SurrogateEnsemble
from robustbench_skel.motion import MotionCoefficients, ar_coefficients, temporal_gradient
from robustbench_skel.registry import ATTACKS

from .mifgsm import l1_normalize

__all__ = ["TASAR", "surrogate_logits"]

_LOGITS_BATCH = 64  # clips per no-grad backbone pass when caching the training split's logits


def surrogate_logits(store: ArtefactStore, member: torch.nn.Module, fingerprint: str, handed: SurrogateEnsemble,
                     device: torch.device, progress: bool, command: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The frozen surrogate's logits of its whole training split, computed once and cached as an artefact."""
    data = handed.train_data()
    spec = {"surrogate": fingerprint,
            "data": {"name": data.name, "version": data.version, "split": data.split, "sample_ids_sha256": data.ids_sha256()}}

    def build() -> dict[str, Any]:
        clips, labels = data.tensors()
        return {"logits": backbone_logits(member, clips, _LOGITS_BATCH, device, progress), "labels": labels}

    return store.load_or_build("surrogate-logits", spec, build, command)


@ATTACKS.register("tasar")
class TASAR(IterativeGradientAttack):
    """TASAR: post-trained Bayesian heads on frozen surrogates, Dual Bayesian smoothing, motion-aware gradient.

    Cost per iteration: one forward and backward of each surrogate on the samples still unbroken, plus
    S x K tiny heads (C x C matrices) on its logits. :meth:`prepare` must run first (the runner and
    ``bench`` call it).
    """

    description = "TASAR (Diao et al. 2025): Bayesian heads on frozen surrogates + TV-AR motion gradient, L-inf (transfer)"
    threat_model = ThreatModel.TRANSFER

    def __init__(
        self,
        eps: float = 0.01,
        steps: int = 10,
        step_size: float | None = None,
        heads: int = 3,
        samples: int = 20,
        scale: float = 1.5,
        temporal: bool = True,
        bayes_weight: float = 0.8,
        accumulate: bool = False,
        head_epochs: int = 5,
        head_batch_size: int = 32,
        head_lr: float = 2e-3,
        friction: float = 0.1,
        temperature: float = 1.0,
        lam: float = 1e-3,
        radius: float = 0.1,
        swa_start: int = 0,
        swa_n: int = 300,
        swag: str = "paper",
        bandwidth: float | None = None,
        targeted: bool = False,
        seed: int = 0,
        step_rule: str = "sign",
    ) -> None:
        if step_size is None and step_rule == "sign" and isinstance(steps, int) and steps >= 1 and isinstance(eps, (int, float)):
            step_size = eps / steps  # as MI-FGSM: alpha = eps / T (mean-abs: the base class's eps)
        super().__init__(eps=eps, steps=steps, step_size=step_size, targeted=targeted, seed=seed, step_rule=step_rule)

        def positive_int(name: str, value: Any) -> int:
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise UserError(f"tasar: --attack-opt {name} must be a positive integer, got {value!r}")
            return value

        def number(name: str, value: Any, low: float, high: float = math.inf, low_open: bool = False) -> float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            ok = ok and (value > low if low_open else value >= low) and value <= high
            if not ok:
                bound = f"{'>' if low_open else '>='} {low:g}" + ("" if high == math.inf else f" and <= {high:g}")
                raise UserError(f"tasar: --attack-opt {name} must be a number {bound}, got {value!r}")
            return float(value)

        def flag(name: str, value: Any) -> bool:
            if not isinstance(value, bool):
                raise UserError(f"tasar: --attack-opt {name} must be true or false, got {value!r}")
            return value

        self.heads = positive_int("heads", heads)
        self.samples = positive_int("samples", samples)
        self.scale = number("scale", scale, 0)
        self.temporal = flag("temporal", temporal)
        self.bayes_weight = number("bayes_weight", bayes_weight, 0, 1)
        self.accumulate = flag("accumulate", accumulate)
        self.head_epochs = positive_int("head_epochs", head_epochs)
        self.head_batch_size = positive_int("head_batch_size", head_batch_size)
        self.head_lr = number("head_lr", head_lr, 0, low_open=True)
        self.friction = number("friction", friction, 0, 1)
        self.temperature = number("temperature", temperature, 0)
        self.lam = number("lam", lam, 0)
        self.radius = number("radius", radius, 0, low_open=True)
        if not (isinstance(swa_start, int) and not isinstance(swa_start, bool) and 0 <= swa_start < self.head_epochs):
            raise UserError(f"tasar: --attack-opt swa_start must be an integer in [0, head_epochs={self.head_epochs}), got {swa_start!r}")
        self.swa_start = swa_start
        self.swa_n = positive_int("swa_n", swa_n)
        if swag not in SWAG_BOOKKEEPING:
            raise UserError(f"tasar: --attack-opt swag must be one of {', '.join(SWAG_BOOKKEEPING)}, got {swag!r}")
        self.swag = swag
        self.bandwidth = None if bandwidth is None else number("bandwidth", bandwidth, 0, low_open=True)
        self._posterior: list[dict[str, dict[str, torch.Tensor]]] | None = None  # per member: mean, sqmean
        self._prepared_for: str | None = None
        self._generator: torch.Generator | None = None

    # --- preparation: heads + Dual Bayesian, cached ----------------------------------------------
    def head_config(self) -> HeadConfig:
        return HeadConfig(heads=self.heads, epochs=self.head_epochs, batch_size=self.head_batch_size, lr=self.head_lr,
                          friction=self.friction, temperature=self.temperature, lam=self.lam, radius=self.radius,
                          swa_start=self.swa_start, swa_n=self.swa_n, swag=self.swag)

    def prepare(self, handed: Any, context: PrepareContext) -> list[dict[str, Any]]:
        """Per surrogate: its training logits (artefact ``surrogate-logits``), then its heads (``tasar-heads``)."""
        if not isinstance(handed, SurrogateEnsemble):
            raise UserError("tasar is a transfer attack: run it with --surrogate NAME (it trains heads on the surrogate)")
        entries: list[dict[str, Any]] = []
        posterior = []
        config = self.head_config()
        command = context.command or None
        for member, info in zip(handed.members, handed.infos):
            fingerprint = f"{info.name}:{info.checkpoint_sha256}"
            data, logits_entry = surrogate_logits(context.store, member, fingerprint, handed, context.device,
                                                  context.progress, command)
            spec_config = dict(config.__dict__)
            if spec_config["swag"] == "paper":  # the default keeps the key it had before the option existed
                del spec_config["swag"]
            spec = {"surrogate": fingerprint, "logits": logits_entry["key"], "seed": context.seed,
                    "config": spec_config, "sampler": "sghmc", "algorithm": 1}

            def build(data: dict[str, Any] = data, name: str = info.name) -> dict[str, Any]:
                return train_heads(data["logits"].to(context.device), data["labels"].to(context.device), config,
                                   context.seed, context.progress, desc=f"TASAR heads on {name}")

            heads, heads_entry = context.store.load_or_build("tasar-heads", spec, build, command)
            entries += [logits_entry, heads_entry]
            posterior.append({"mean": heads["mean"], "sqmean": heads["sqmean"]})
        self._posterior = posterior
        self._prepared_for = handed.fingerprint()
        return entries

    def posterior(self) -> list[dict[str, dict[str, torch.Tensor]]]:
        """Per surrogate, the stacked SWAG ``mean`` and ``sqmean`` of its K heads (after :meth:`prepare`)."""
        if self._posterior is None:
            raise RuntimeError("tasar: call prepare(surrogates, context) before attacking")
        return self._posterior

    # --- the attack --------------------------------------------------------------------------------
    def run(self, model, x, labels, targets, mask, generator):
        if not isinstance(model, SurrogateEnsemble):
            raise UserError("tasar is a transfer attack: it must be handed a surrogate ensemble (--surrogate NAME)")
        if self._prepared_for != model.fingerprint():
            raise RuntimeError("tasar: prepare() was called for other surrogates than the ones handed to the attack")
        self._generator = generator
        try:
            return super().run(model, x, labels, targets, mask, generator)
        finally:
            self._generator = None

    def motion(self, x: torch.Tensor) -> MotionCoefficients:
        """TV-AR coefficients of the clips ``x`` themselves (fitted once per batch)."""
        return ar_coefficients(x, self.bandwidth)

    def init_state(self, x, mask, generator):
        if not self.temporal:
            return {}
        coeffs = self.motion(x)
        return {"ar_a": coeffs.a, "ar_c": coeffs.c, "ar_d": coeffs.d}

    def bayesian_loss(self, model: SurrogateEnsemble, clips: torch.Tensor, labels: torch.Tensor,
                      targets: torch.Tensor | None, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample loss averaged over S x K sampled heads and over surrogates, and the mean-head logits.

        One backbone forward per surrogate; every sampled head reads the same logits ``z``.
        """
        losses, shown = [], []
        for member, post in zip(model.members, self.posterior()):
            mean = {k: v.to(clips.device) for k, v in post["mean"].items()}
            sqmean = {k: v.to(clips.device) for k, v in post["sqmean"].items()}
            z = member(clips)
            sampled = sample_heads(mean, sqmean, self.samples, self.scale, generator)
            logits = head_logits(z, sampled)  # (S K, N, C)
            h, n = logits.shape[0], logits.shape[1]
            rep_labels = labels.repeat(h)
            rep_targets = None if targets is None else targets.repeat(h)
            losses.append(self.loss(logits.reshape(h * n, -1), rep_labels, rep_targets).view(h, n).mean(dim=0))
            with torch.no_grad():
                shown.append(head_logits(z.detach(), mean).mean(dim=0))
        return torch.stack(losses).mean(dim=0), torch.stack(shown).mean(dim=0)

    def gradient(self, model, x, variable, mask, labels, targets, state):
        generator = self._generator
        if generator is None:  # called outside run(): a fresh generator from the attack's seed
            generator = torch.Generator(device=x.device).manual_seed(self.seed)
        v = variable.detach().requires_grad_(True)
        clips = self.clips(x, v, mask)
        loss, logits = self.bayesian_loss(model, clips, labels, targets, generator)
        (grad,) = torch.autograd.grad(loss.sum(), v)
        return grad, logits, clips.detach()

    def direction(self, grad: torch.Tensor, mask: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """``w g_B / mean|g_B| + (1 - w) g_T / mean|g_T|`` (just ``g_B / mean|g_B|`` without the temporal term)."""
        g_b = grad
        if self.accumulate:  # the reference's ce_grad_sum: a running sum over iterations
            g_b = grad if "bayes_sum" not in state else state["bayes_sum"] + grad
            state["bayes_sum"] = g_b
        g_b = l1_normalize(g_b, mask)
        if not self.temporal:
            return g_b
        coeffs = MotionCoefficients(state["ar_a"], state["ar_c"], state["ar_d"])
        cgs = grad + temporal_gradient(grad, coeffs)  # SMI's motion-aware gradient of this iteration
        if "temporal_momentum" in state:
            cgs = cgs + state["temporal_momentum"]  # the reference's cgs + momentum, decay 1
        state["temporal_momentum"] = cgs
        return self.bayes_weight * g_b + (1 - self.bayes_weight) * l1_normalize(cgs, mask)

    def update(self, delta, grad, mask, state):
        return delta + self.step(self.direction(grad, mask, state), mask)

    # --- diagnostic: is the Bayesian term doing anything? (robustbench_skel.learn.bayes_diagnostic) ---------------
    def bayesian_diagnostic(self, model: SurrogateEnsemble, x: torch.Tensor, labels: torch.Tensor,
                            targets: torch.Tensor | None, generator: torch.Generator) -> dict[str, Any]:
        """Cosine between the Bayesian gradient (S x K sampled heads) and the mean heads' gradient at ``x``,
        per clip, and the relative spread of the sampled heads around their means."""
        mask = valid_mask(x)
        v = torch.zeros_like(x, requires_grad=True)
        loss, _ = self.bayesian_loss(model, x + v, labels, targets, generator)
        (g_bayes,) = torch.autograd.grad(loss.sum(), v)
        v = torch.zeros_like(x, requires_grad=True)
        plain = []
        for member, post in zip(model.members, self.posterior()):
            mean = {k: t.to(x.device) for k, t in post["mean"].items()}
            logits = head_logits(member(x + v), mean).mean(dim=0)  # the reference's modelEval (mean heads)
            plain.append(self.loss(logits, labels, targets))
        (g_plain,) = torch.autograd.grad(torch.stack(plain).mean(dim=0).sum(), v)
        pairs = []
        for post in self.posterior():
            drawn = sample_heads(post["mean"], post["sqmean"], self.samples, self.scale, generator)
            k = post["mean"]["w1"].shape[0]
            flat = torch.cat([drawn[n].reshape(self.samples, k, -1) for n in PARAM_NAMES], dim=2)
            mu = torch.cat([post["mean"][n].reshape(k, -1) for n in PARAM_NAMES], dim=1)
            pairs += [(flat[s, h], mu[h]) for s in range(self.samples) for h in range(k)]
        return diagnostic_entry(per_clip_cosine(g_bayes, g_plain, mask), relative_spread(pairs),
                                "the deterministic surrogate: the mean of the K heads' SWAG means")
