"""TASAR's Bayesian heads on a frozen surrogate: post-training, Dual Bayesian moments, batched sampling.

TASAR (Diao et al., ICLR 2025) makes a pre-trained surrogate ``f`` Bayesian *without touching it*:
K small heads are appended to its logits,

    logits_k(x) = ReLU(f(x)) + MLP_k(ReLU(f(x))),   MLP = Linear(C, C) -> Linear(C, C) -> ReLU,

post-trained on the surrogate's training data, then smoothed ("Dual Bayesian": a flatness term and
SWAG-diagonal moments). Because ``f`` is frozen, the heads only ever see ``f(x)``: the backbone's
logits of the training clips are computed once (:func:`backbone_logits`, cached by the caller) and
training the heads costs seconds instead of the reference's backbone pass per head step.

Where this follows the paper against the reference code (``PDBATrainer.py``, ``optimisers.py``):

- the sampler is a faithful SG-HMC (Chen et al. 2014, Eq. 15): a persistent momentum with friction
  ``alpha``, a fresh gradient every step and injected noise of variance ``2 alpha lr T / N``. The
  reference's ``SGAdaHMC`` resets its momentum on every inner step and applies one gradient 30 times
  with negligible noise, i.e. a deterministic preconditioned step: no posterior sampling at all;
- the SWAG counter is reset for every head (the reference shares it, so heads after the first average
  with a large stale ``n`` and their ``sqmean`` keeps part of ``theta`` instead of ``theta^2``); the
  reference's bookkeeping is available, opt-in, as ``HeadConfig(swag="reference")``
  (:class:`ReferenceSwagMoments`; TASAR's ``--attack-opt swag=reference``), to measure what it changes;
- the collection interval is at least one step (the reference divides by zero when
  ``epochs * batches < swa_n``).

Sampling at attack time (:func:`sample_heads`) draws ``theta = mu + scale sqrt(var) eps`` for all heads
at once, and :func:`head_logits` evaluates any number of sampled heads on one tensor of backbone
logits with batched matrix products, so S x K heads cost one backbone pass, not S x K.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..progress_meter import progress as show_progress

__all__ = [
    "PARAM_NAMES",
    "HeadConfig",
    "head_logits",
    "init_head",
    "backbone_logits",
    "SwagMoments",
    "ReferenceSwagMoments",
    "SWAG_BOOKKEEPING",
    "SGHMC",
    "train_head",
    "train_heads",
    "sample_heads",
    "MeanHeads",
]

PARAM_NAMES = ("w1", "b1", "w2", "b2")
"""A head's parameters: ``Linear(C, C)`` (``w1``, ``b1``) then ``Linear(C, C)`` (``w2``, ``b2``)."""

Head = dict[str, torch.Tensor]


def head_logits(z: torch.Tensor, head: Head) -> torch.Tensor:
    """``ReLU(z) + ReLU(W2 (W1 ReLU(z) + b1) + b2)`` for one head (``w1`` ``(C, C)``) or many (``(H, C, C)``).

    ``z`` is ``(N, C)`` backbone logits; the result is ``(N, C)`` for one head and ``(H, N, C)`` for a
    stack of ``H`` heads (one batched matrix product per layer).
    """
    h = torch.relu(z)
    if head["w1"].dim() == 2:
        u = F.linear(h, head["w1"], head["b1"])
        return h + torch.relu(F.linear(u, head["w2"], head["b2"]))
    u = torch.matmul(h, head["w1"].transpose(1, 2)) + head["b1"][:, None, :]
    return h + torch.relu(torch.matmul(u, head["w2"].transpose(1, 2)) + head["b2"][:, None, :])


def init_head(num_classes: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Head:
    """PyTorch's ``nn.Linear`` initialisation (uniform in +-1/sqrt(C)), from an explicit generator."""
    bound = 1.0 / math.sqrt(num_classes)

    def draw(*shape: int) -> torch.Tensor:
        return ((torch.rand(*shape, generator=generator) * 2 - 1) * bound).to(device)

    c = num_classes
    return {"w1": draw(c, c), "b1": draw(c), "w2": draw(c, c), "b2": draw(c)}


@torch.no_grad()
def backbone_logits(model: nn.Module, clips: torch.Tensor, batch_size: int, device: torch.device,
                    progress: bool = False) -> torch.Tensor:
    """``f(x)`` of every clip, batched and without gradient (the frozen surrogate's part of every head)."""
    batches = show_progress(range(0, clips.shape[0], batch_size), desc="surrogate logits of the training clips",
                            unit="batch", enabled=progress)
    out = [model(clips[s : s + batch_size].to(device)).float().cpu() for s in batches]
    return torch.cat(out) if out else torch.zeros(0, int(getattr(model, "num_classes", 0)))


class SwagMoments:
    """Running mean and mean of squares of one head's parameters (SWAG-diagonal, Maddox et al. 2019)."""

    def __init__(self, like: Head) -> None:
        self.n = 0
        self.mean = {k: torch.zeros_like(v) for k, v in like.items()}
        self.sqmean = {k: torch.zeros_like(v) for k, v in like.items()}

    def collect(self, head: Head) -> None:
        self.n += 1
        w = 1.0 / self.n
        for k, v in head.items():
            v = v.detach()
            self.mean[k].mul_(1 - w).add_(v, alpha=w)
            self.sqmean[k].mul_(1 - w).add_(v * v, alpha=w)


class ReferenceSwagMoments(SwagMoments):
    """The TASAR reference's SWAG bookkeeping (``PDBATrainer.py``), reproduced on purpose: opt-in only.

    The mean and the second moment both start as copies of the head at the start of its Dual Bayesian
    phase (``theta``, not ``theta^2``), and the snapshot counter ``n`` is shared by all heads: head k
    starts with the count head k-1 ended with. A snapshot is merged as ``m <- m n/(n+1) + theta/(n+1)``.
    For the first head (``n = 0``) this is the paper's average; for later heads the start value keeps
    the weight ``n0 / (n0 + n)``, so their mean is pulled towards where the phase started and their
    ``sqmean - mean^2`` is not a variance (it is clamped at sampling).
    """

    def __init__(self, like: Head, start_count: int = 0) -> None:
        super().__init__(like)
        self.n = int(start_count)
        self.mean = {k: v.detach().clone() for k, v in like.items()}
        self.sqmean = {k: v.detach().clone() for k, v in like.items()}  # theta, as the reference: not theta^2

    def collect(self, head: Head) -> None:
        w = 1.0 / (self.n + 1)
        for k, v in head.items():
            v = v.detach()
            self.mean[k].mul_(1 - w).add_(v, alpha=w)
            self.sqmean[k].mul_(1 - w).add_(v * v, alpha=w)
        self.n += 1


SWAG_BOOKKEEPING = ("paper", "reference")


class SGHMC:
    """Stochastic-gradient HMC in its SGD-with-momentum form (Chen et al. 2014, Eq. 15).

    ``v <- (1 - alpha) v - lr g + N(0, 2 alpha lr T / N)``, ``theta <- theta + v``, with ``g`` the
    gradient of the *mean* loss over a batch (so the noise variance carries the ``1 / N`` of the
    posterior ``exp(-N L / T)``). Momentum persists across steps and every step takes a fresh gradient.
    """

    def __init__(self, params: Head, lr: float, friction: float, temperature: float, num_data: int,
                 generator: torch.Generator) -> None:
        self.params, self.lr, self.friction = params, lr, friction
        self.noise_std = math.sqrt(2 * friction * lr * temperature / max(num_data, 1))
        self.generator = generator
        self.velocity = {k: torch.zeros_like(v) for k, v in params.items()}

    @torch.no_grad()
    def step(self, grads: Head) -> None:
        for k, p in self.params.items():
            v = self.velocity[k]
            v.mul_(1 - self.friction).add_(grads[k], alpha=-self.lr)
            if self.noise_std > 0:
                v.add_(torch.randn(p.shape, generator=self.generator).to(p.device), alpha=self.noise_std)
            p.add_(v)


@dataclass(frozen=True)
class HeadConfig:
    """How the heads are trained (TASAR README: 5 epochs, batch 32, lr 2e-3, K = 3; BA: lam, radius, SWAG)."""

    heads: int = 3
    epochs: int = 5  # for each phase: post-training, then Dual Bayesian
    batch_size: int = 32
    lr: float = 2e-3
    friction: float = 0.1
    temperature: float = 1.0
    lam: float = 1e-3  # weight of the flatness term
    radius: float = 0.1  # step of the finite-difference flatness probe (the reference's 0.1)
    swa_start: int = 0  # Dual Bayesian epochs before moments are collected
    swa_n: int = 300  # about how many snapshots to collect
    swag: str = "paper"  # SWAG bookkeeping: "paper" (per head), or "reference" (ReferenceSwagMoments)


def _ce(z: torch.Tensor, y: torch.Tensor, head: Head) -> torch.Tensor:
    return F.cross_entropy(head_logits(z, head), y)


def _flat_gradient(z: torch.Tensor, y: torch.Tensor, head: Head, lam: float, radius: float) -> Head:
    """``g + (lam / r)(grad L(theta + r g / ||g||) - g)``: the finite-difference gradient-norm (flatness) penalty."""
    names = list(head)
    g = torch.autograd.grad(_ce(z, y, head), [head[k] for k in names])
    if lam == 0:
        return dict(zip(names, g))
    norm = torch.sqrt(sum((t * t).sum() for t in g))
    if float(norm) == 0:
        return dict(zip(names, g))
    probe = {k: (head[k] + radius * gk / norm).detach().requires_grad_(True) for k, gk in zip(names, g)}
    g_add = torch.autograd.grad(_ce(z, y, probe), [probe[k] for k in names])
    return {k: gk + (lam / radius) * (ga - gk) for k, gk, ga in zip(names, g, g_add)}


def train_head(logits: torch.Tensor, labels: torch.Tensor, config: HeadConfig, seed: int,
               tick: Callable[[], None] | None = None, start_count: int = 0) -> tuple[Head, SwagMoments]:
    """Post-train one head, then run its Dual Bayesian phase; its final weights and its own SWAG moments.

    Everything random (initialisation, batch order, sampler noise) comes from ``seed``, so a head is
    the same whether trained alone or among others. ``start_count`` is the shared snapshot counter the
    reference bookkeeping (``config.swag == "reference"``) starts this head's moments with.
    """
    gen = torch.Generator().manual_seed(seed)
    device = logits.device
    head = {k: v.requires_grad_(True) for k, v in init_head(logits.shape[1], gen, device).items()}
    sampler = SGHMC(head, config.lr, config.friction, config.temperature, logits.shape[0], gen)
    n, b = logits.shape[0], config.batch_size
    per_epoch = max(1, math.ceil(n / b))
    collect_steps = (config.epochs - config.swa_start) * per_epoch
    interval = max(1, collect_steps // max(config.swa_n, 1))  # never 0 (the reference divides by zero)
    moments = SwagMoments(head)  # one per head: its counter starts at 0 here
    for phase in ("post-train", "dual-bayesian"):
        if phase == "dual-bayesian" and config.swag == "reference":
            moments = ReferenceSwagMoments(head, start_count)  # starts at this head's weights, shared counter
        seen = 0
        for epoch in range(config.epochs):
            order = torch.randperm(n, generator=gen).to(device)
            for s in range(0, n, b):
                idx = order[s : s + b]
                z, y = logits[idx], labels[idx]
                if phase == "post-train":
                    names = list(head)
                    g = dict(zip(names, torch.autograd.grad(_ce(z, y, head), [head[k] for k in names])))
                else:
                    g = _flat_gradient(z, y, head, config.lam, config.radius)
                sampler.step(g)
                if phase == "dual-bayesian" and epoch >= config.swa_start:
                    seen += 1
                    if seen % interval == 0:
                        moments.collect(head)
                if tick is not None:
                    tick()
    return {k: v.detach() for k, v in head.items()}, moments


def train_heads(logits: torch.Tensor, labels: torch.Tensor, config: HeadConfig, seed: int,
                progress: bool = False, desc: str = "Bayesian heads") -> dict[str, object]:
    """Train ``config.heads`` heads; stacked ``mean``/``sqmean``/``final`` weights ``(K, ...)`` and per-head ``n_collected``."""
    per_epoch = max(1, math.ceil(logits.shape[0] / config.batch_size))
    bar = show_progress(total=config.heads * 2 * config.epochs * per_epoch, desc=desc, unit="step", enabled=progress)
    tick = bar.update if progress else None
    finals, means, sqmeans, counts = [], [], [], []
    try:
        shared = 0  # the reference's snapshot counter, carried from head to head (swag="reference" only)
        for k in range(config.heads):
            final, moments = train_head(logits, labels, config, seed * 1000 + k, tick, start_count=shared)
            finals.append(final)
            means.append(moments.mean)
            sqmeans.append(moments.sqmean)
            counts.append(moments.n - shared)
            if config.swag == "reference":
                shared = moments.n
    finally:
        bar.close()

    def stack(heads: list[Head]) -> Head:
        return {k: torch.stack([h[k] for h in heads]).cpu() for k in PARAM_NAMES}

    return {"mean": stack(means), "sqmean": stack(sqmeans), "final": stack(finals),
            "n_collected": torch.tensor(counts, dtype=torch.long)}


def sample_heads(mean: Head, sqmean: Head, samples: int, scale: float, generator: torch.Generator) -> Head:
    """``samples`` draws per head of ``theta = mu + scale sqrt(clamp(sqmean - mu^2, 1e-30) + 1e-30) eps``.

    ``mean``/``sqmean`` hold ``K`` stacked heads; the result stacks ``samples * K`` heads, sample-major
    (the reference's formula, as in BA's SWAG sampling).
    """
    out = {}
    for k in PARAM_NAMES:
        mu = mean[k]
        std = torch.sqrt(torch.clamp(sqmean[k] - mu * mu, min=1e-30) + 1e-30)
        eps = torch.randn((samples, *mu.shape), generator=generator, device=generator.device).to(mu.device, mu.dtype)
        out[k] = (mu + scale * std * eps).reshape(samples * mu.shape[0], *mu.shape[1:])
    return out


class MeanHeads(nn.Module):
    """The deterministic TASAR surrogate: a backbone followed by the mean of its SWAG-mean heads' logits."""

    def __init__(self, backbone: nn.Module, mean: Head) -> None:
        super().__init__()
        self.backbone = backbone
        for k in PARAM_NAMES:
            self.register_buffer(k, mean[k].clone())
        self.num_classes = int(mean["w1"].shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return head_logits(self.backbone(x), {k: getattr(self, k) for k in PARAM_NAMES}).mean(dim=0)
