"""BA: Bayesian surrogates (Li, Guo and Chen, "Making Substitute Models More Bayesian Can Enhance
Transferability of Adversarial Examples", ICLR 2023).

:meth:`BA.prepare` fine-tunes a copy of each surrogate on the attacker's training data with SGD
plus the paper's flatness term, and collects SWAG-diagonal moments of its weights along the way:

    g = grad L(theta);  theta' = theta + r g / ||g||;  g_add = grad L(theta')
    step along g + (lambda / r) (g_add - g)         (a finite-difference penalty on the curvature)
    mean   <- average of the collected theta,  sqmean <- average of theta ** 2

The attack then takes, every iteration, the mean loss gradient over ``n_models`` weight samples
theta = mean + scale * sqrt(max(sqmean - mean^2, 1e-30)) * N(0, I) per surrogate, and steps like
MI-FGSM (``decay=0``: I-FGSM). The samples are evaluated with ``torch.func.functional_call`` on the
surrogate itself: no model is copied per sample.

Defaults and where they come from:

- fine-tuning: SGD, momentum 0.9, weight decay 5e-4, lr 0.01, r = 0.1 and up to 300 evenly spaced
  SWAG snapshots (``swa_n``): the reference benchmark's (adapted from the authors' code). The
  reference runs 20 epochs; we default to ``epochs=1`` so that fine-tuning ST-GCN on the 1152 synth
  training clips takes minutes on a laptop CPU (raise it for paper-scale runs);
- lambda = 1 (``flat_lambda``): the authors' official code; the reference uses 1e-3, which all but
  switches the flatness term off;
- ``scale`` = 1.5: the reference's and the official code's;
- ``n_models`` = 1 fresh weight sample per iteration: the official attack draws one of 20 pre-sampled
  models per iteration (a finite pool from the same posterior); the reference averages 3 per iteration.
  The cost of an iteration is ``n_models`` forward and backward passes per surrogate;
- the step is MI-FGSM's sign step (alpha = eps / T); the reference steps 0.01 * g / mean|g|;
- ``max_grad_norm`` = 1: the fine-tuning update (plain gradient plus flatness term) is clipped to this
  norm before the SGD step, as in this project's defenses. Neither the paper nor the official code
  clips, but their radius r = 0.1 is set for ImageNet ResNets: on ST-GCN's synth weights a step of
  r = 0.1 in weight space lifts the batch loss from 0.16 to 2.8, the unclipped update has norm 269,
  and lr 0.01 with momentum 0.9 diverges to NaN within 3 steps (measured). Clipped, the loss stays
  below 0.2 and test accuracy holds. Fine-tuning that still produces a non-finite loss stops with an
  error instead of caching NaN moments (which would silently make every gradient NaN).

BatchNorm: the surrogates are victims in eval mode, and fine-tuning keeps them so (frozen running
statistics, dropout off), so the sampled weights need no BN re-estimation; the reference does none
either. The reference's two-stream bug (sampled models built, the gradient taken from the
deterministic model) cannot happen here: the only forward pass whose gradient is taken is the
functional call with the sampled weights. With several surrogates each has its own moments and the
gradient is averaged over members and samples.

The moments are cached as an ``ba-swag`` artefact per surrogate, keyed by its weights' hash, the
training data and every fine-tuning hyperparameter; they hold tensors only.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from robustbench_skel.attack import PrepareContext
from robustbench_skel.learn.bayes_diagnostic import diagnostic_entry, per_clip_cosine, relative_spread
from robustbench_skel.budget import valid_mask
from robustbench_skel.errors import UserError
from robustbench_skel.progress_meter import progress as show_progress
from robustbench_skel.registry import ATTACKS

from ._transfer import SeededTransfer, check_float, check_int, members_of

__all__ = ["BA", "SwagMoments", "finetune_swag"]


class SwagMoments:
    """Running mean and mean of squares of every parameter over the collected snapshots."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: dict[str, torch.Tensor] = {}
        self.sqmean: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def collect(self, named: dict[str, torch.Tensor]) -> None:
        self.count += 1
        w = 1.0 / self.count
        for name, p in named.items():
            p = p.detach().float().cpu()
            if name not in self.mean:
                self.mean[name], self.sqmean[name] = p.clone(), p.square()
            else:
                self.mean[name].mul_(1 - w).add_(p, alpha=w)
                self.sqmean[name].mul_(1 - w).add_(p.square(), alpha=w)


def finetune_swag(
    model: nn.Module, clips: torch.Tensor, labels: torch.Tensor, *, epochs: int, lr: float, momentum: float,
    weight_decay: float, flat_lambda: float, flat_radius: float, batch_size: int, swa_n: int, seed: int,
    device: torch.device, max_grad_norm: float | None = 1.0,
    on_snapshot: Callable[[dict[str, torch.Tensor]], None] | None = None, progress: bool = False,
) -> SwagMoments:
    """Fine-tune a copy of ``model`` (BN frozen) with the flatness term; the SWAG moments of its weights.

    ``model`` itself is never modified. ``on_snapshot`` sees every collected set of weights (tests).
    """
    net = copy.deepcopy(model).to(device).eval()
    named = dict(net.named_parameters())
    params = list(named.values())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    n = clips.shape[0]
    per_epoch = math.ceil(n / batch_size)
    every = max(1, (epochs * per_epoch) // swa_n)
    gen = torch.Generator().manual_seed(seed)
    moments = SwagMoments()
    step = 0
    epochs_iter = show_progress(range(epochs), desc="ba: fine-tuning the surrogate", unit="epoch", enabled=progress)
    for _ in epochs_iter:
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            xb, yb = clips[idx].to(device), labels[idx].to(device)
            loss = F.cross_entropy(net(xb), yb)
            if not torch.isfinite(loss):
                raise UserError(f"ba: fine-tuning the surrogate diverged (loss {loss.item()} at step {step}); "
                                "lower --attack-opt lr or max_grad_norm, or flat_radius")
            grads = torch.autograd.grad(loss, params)
            if flat_lambda > 0:
                norm = torch.sqrt(sum(g.square().sum() for g in grads)).clamp_min(1e-12)
                saved = [p.detach().clone() for p in params]
                with torch.no_grad():
                    for p, g in zip(params, grads):
                        p.add_(g, alpha=flat_radius / float(norm))
                grads_add = torch.autograd.grad(F.cross_entropy(net(xb), yb), params)
                with torch.no_grad():
                    for p, s in zip(params, saved):
                        p.copy_(s)
                grads = [g + (flat_lambda / flat_radius) * (ga - g) for g, ga in zip(grads, grads_add)]
            for p, g in zip(params, grads):
                p.grad = g
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            opt.step()
            step += 1
            if step % every == 0:
                snapshot = {k: v.detach() for k, v in named.items()}
                moments.collect(snapshot)
                if on_snapshot is not None:
                    on_snapshot({k: v.clone().cpu() for k, v in snapshot.items()})
    if moments.count == 0:  # fewer steps than one snapshot interval: the final weights
        moments.collect({k: v.detach() for k, v in named.items()})
    return moments


@ATTACKS.register("ba")
class BA(SeededTransfer):
    """MI-FGSM on surrogates made Bayesian: each gradient averages sampled SWAG-diagonal weight sets."""

    description = "BA: MI-FGSM over SWAG samples of flatness-fine-tuned surrogates (Li, Guo and Chen 2023)"

    def __init__(
        self,
        eps: float = 0.01,
        steps: int = 10,
        step_size: float | None = None,
        decay: float = 1.0,
        n_models: int = 1,
        scale: float = 1.5,
        epochs: int = 1,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        flat_lambda: float = 1.0,
        flat_radius: float = 0.1,
        batch_size: int = 32,
        swa_n: int = 300,
        max_grad_norm: float = 1.0,
        targeted: bool = False,
        seed: int = 0,
        step_rule: str = "sign",
    ) -> None:
        super().__init__(eps=eps, steps=steps, step_size=step_size, decay=decay, targeted=targeted, seed=seed,
                         step_rule=step_rule)
        self.n_models = check_int("n_models", n_models, 1)
        self.scale = check_float("scale", scale, 0.0)
        self.epochs = check_int("epochs", epochs, 1)
        self.lr = check_float("lr", lr, 0.0, low_open=True)
        self.momentum = check_float("momentum", momentum, 0.0, 1.0)
        self.weight_decay = check_float("weight_decay", weight_decay, 0.0)
        self.flat_lambda = check_float("flat_lambda", flat_lambda, 0.0)
        self.flat_radius = check_float("flat_radius", flat_radius, 0.0, low_open=True)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.swa_n = check_int("swa_n", swa_n, 1)
        self.max_grad_norm = check_float("max_grad_norm", max_grad_norm, 0.0, low_open=True)
        self._swag: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] | None = None
        self._on_device: dict[str, list] = {}

    def finetune_spec(self) -> dict[str, Any]:
        """Every hyperparameter the moments depend on (part of the artefact key)."""
        return {k: getattr(self, k) for k in ("epochs", "lr", "momentum", "weight_decay", "flat_lambda",
                                               "flat_radius", "batch_size", "swa_n", "max_grad_norm")}

    def prepare(self, handed: Any, context: PrepareContext) -> list[dict[str, Any]]:
        members, infos = members_of(handed), getattr(handed, "infos", None)
        if infos is None:
            raise UserError("ba is a transfer attack: name its surrogate(s) with --surrogate stgcn[,ctrgcn,...]")
        data = handed.train_data()
        clips, labels = data.tensors()
        dataset = {"name": data.name, "version": data.version, "split": data.split, "num_clips": int(clips.shape[0]),
                   "sample_ids_sha256": data.ids_sha256()}
        swag, entries = [], []
        for member, info in zip(members, infos):
            spec = {"surrogate": f"{info.name}:{info.checkpoint_sha256}", "dataset": dataset,
                    "finetune": self.finetune_spec(), "seed": context.seed}

            def build(member: nn.Module = member) -> dict[str, Any]:
                m = finetune_swag(member, clips, labels, **self.finetune_spec(), seed=context.seed,
                                  device=context.device, progress=context.progress)
                return {"mean": m.mean, "sqmean": m.sqmean, "snapshots": m.count}

            content, entry = context.store.load_or_build("ba-swag", spec, build, context.command)
            std = {k: (content["sqmean"][k] - v.square()).clamp_min(1e-30).sqrt() for k, v in content["mean"].items()}
            swag.append((content["mean"], std))
            entries.append(entry)
        self._swag, self._on_device = swag, {}
        return entries

    def _moments(self, device: torch.device, count: int) -> list:
        if self._swag is None or len(self._swag) != count:
            raise RuntimeError("ba: prepare() must build the SWAG moments of these surrogates before the attack runs")
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = [({k: v.to(device) for k, v in mu.items()}, {k: v.to(device) for k, v in sd.items()})
                                    for mu, sd in self._swag]
        return self._on_device[key]

    def gradient(self, model, x, variable, mask, labels, targets, state):
        members = members_of(model)
        moments = self._moments(x.device, len(members))
        gen = self._generator
        gdev = gen.device if gen is not None else x.device
        grad, logits = None, None
        for member, (mean, std) in zip(members, moments):
            for _ in range(self.n_models):
                if self.scale == 0:
                    theta = mean
                else:
                    theta = {k: mu + self.scale * std[k] * torch.randn(mu.shape, generator=gen, device=gdev).to(mu.device)
                             for k, mu in mean.items()}
                v = variable.detach().requires_grad_(True)
                out = functional_call(member, theta, (self.clips(x, v, mask),))
                (g,) = torch.autograd.grad(self.loss(out, labels, targets).sum(), v)
                grad = g if grad is None else grad + g
                logits = out.detach() if logits is None else logits + out.detach()
        total = len(members) * self.n_models
        return grad / total, logits / total, self.clips(x, variable.detach(), mask)

    def bayesian_diagnostic(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                            targets: torch.Tensor | None, generator: torch.Generator) -> dict[str, Any]:
        """Cosine between this attack's gradient (``n_models`` SWAG samples per surrogate) and the plain
        surrogates' gradient at ``x``, per clip, and the relative spread of the sampled weights."""
        mask = valid_mask(x)
        self._generator = generator
        try:
            g_bayes = self.gradient(model, x, torch.zeros_like(x), mask, labels, targets, {})[0]
        finally:
            self._generator = None
        members = members_of(model)
        v = torch.zeros_like(x, requires_grad=True)
        loss = torch.stack([self.loss(m(x + v), labels, targets) for m in members]).mean(dim=0)
        (g_plain,) = torch.autograd.grad(loss.sum(), v)
        pairs = []
        gdev = generator.device
        for mean, std in self._moments(x.device, len(members)):
            mu = torch.cat([t.flatten() for t in mean.values()])
            for _ in range(self.n_models):
                theta = torch.cat([(t + self.scale * std[k] * torch.randn(t.shape, generator=generator, device=gdev)
                                    .to(t.device)).flatten() for k, t in mean.items()])
                pairs.append((theta, mu))
        return diagnostic_entry(per_clip_cosine(g_bayes, g_plain, mask), relative_spread(pairs),
                                "the surrogate(s) with their own (handed) weights")
