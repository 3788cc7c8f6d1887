"""Randomized smoothing (Cohen, Rosenfeld, Kolter, ICML 2019): classify by majority vote under Gaussian noise.

The smoothed classifier g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c), with the noise in metres on the
valid coordinates only (absent person-frames stay zero). Its Monte-Carlo PREDICT draws ``n`` noisy
copies, counts the two most frequent classes and abstains unless a two-sided binomial test at level
``alpha`` separates them; CERTIFY gives the certified L2 radius ``sigma * Phi^-1(pA_lower)``, with
pA_lower the one-sided Clopper-Pearson lower bound.

Abstention reaches the (unchanged) evaluator as an extra logit column: the wrapped model returns
``(N, num_classes + 1)`` logits whose last column, index ``num_classes``, is "abstain". Its argmax is
never a true label, so an abstention counts as an error for clean and robust accuracy (as Cohen et al.
count it) and as a success for an untargeted attacker, never for a targeted one. The model's
``num_classes`` attribute stays the victim's. PREDICT logits are the Laplace-smoothed log vote
frequencies, the abstain column one above the largest on abstention and one below the smallest
otherwise: finite, and argmax gives PREDICT's answer.

Attacks (``randomized``, not ``differentiable``): the BPDA variant (``context.bpda``) is the soft smoothed
classifier, one noise draw per forward: ``log_softmax(f(x + noise))`` (abstain column at -1e4), so EOT,
averaging gradients over forwards, averages over draws. Its forward is that draw, not the n-sample
PREDICT (which would cost n victim passes per attack step); the evaluator re-decides with PREDICT. The
evaluated model also lets a gradient through, the same single draw, when its input requires one.

Noise comes from generators seeded from ``seed`` when the model is built and advanced by every forward
(each PREDICT call draws fresh noise, as the algorithm requires), so a run is reproducible; their state
goes into a run's per-batch progress, so a resumed run is too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import beta as beta_dist
from scipy.stats import binomtest, norm
from torch import nn

from robustbench_skel.artefacts import ArtefactStore, tensor_sha256
from robustbench_skel.budget import num_valid_coordinates, valid_mask
from robustbench_skel.defense import Defense, DefenseContext
from robustbench_skel.progress_meter import progress as show_progress
from robustbench_skel.registry import DEFENSES

__all__ = ["RandomizedSmoothing", "SmoothedClassifier", "sample_counts", "predict_from_counts", "lower_confidence_bound",
           "certified_radius", "certify", "certify_clips", "accuracy_at_radii", "certified_accuracy", "ABSTAIN"]

ABSTAIN = -1  # the class returned by predict_from_counts / certify on abstention


def _noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * sigma * valid_mask(x)


@torch.no_grad()
def sample_counts(model: nn.Module, x: torch.Tensor, sigma: float, n: int, num_classes: int,
                  generator: torch.Generator, batch_size: int = 64,
                  tick: Callable[[int], object] | None = None) -> torch.Tensor:
    """``(N, num_classes)`` counts of the base classifier's predictions over ``n`` noisy copies of each clip.

    ``tick(k)`` is called after each pass of ``k`` draws (a progress meter's ``update``)."""
    counts = torch.zeros(x.shape[0], num_classes, dtype=torch.long, device=x.device)
    per_pass = max(1, batch_size // max(1, x.shape[0]))
    done = 0
    while done < n:
        k = min(per_pass, n - done)
        xs = x.repeat(k, 1, 1, 1, 1)
        pred = model(xs + _noise(xs, sigma, generator)).argmax(1).view(k, x.shape[0])
        counts += F.one_hot(pred, num_classes).sum(0)
        done += k
        if tick is not None:
            tick(k)
    return counts


def predict_from_counts(counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """Cohen et al.'s PREDICT decision per row: the top class, or ``ABSTAIN`` if the binomial test fails."""
    top2 = counts.topk(2, dim=1)
    out = top2.indices[:, 0].clone()
    for i, (na, nb) in enumerate(top2.values.tolist()):
        if na + nb == 0 or binomtest(na, na + nb, 0.5).pvalue > alpha:
            out[i] = ABSTAIN
    return out


def lower_confidence_bound(n_a: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion."""
    return float(beta_dist.ppf(alpha, n_a, n - n_a + 1)) if n_a > 0 else 0.0


def certified_radius(n_a: int, n: int, sigma: float, alpha: float) -> float:
    """``sigma * Phi^-1(pA_lower)`` in the noise's unit (total L2, metres), or ``nan`` (abstain) when pA_lower <= 1/2."""
    p = lower_confidence_bound(n_a, n, alpha)
    return sigma * float(norm.ppf(p)) if p > 0.5 else math.nan


def certify(model: nn.Module, x: torch.Tensor, sigma: float, n0: int, n: int, alpha: float, num_classes: int,
            generator: torch.Generator, batch_size: int = 64,
            tick: Callable[[int], object] | None = None) -> dict[str, torch.Tensor]:
    """Cohen et al.'s CERTIFY for a batch of clips (``tick(k)`` after every pass of ``k`` noisy draws).

    Returns ``prediction`` (``ABSTAIN`` = -1 where it abstains), ``radius`` (total L2 in metres, 0 on
    abstention) and ``radius_rms`` (the project's unit: radius / sqrt(number of valid coordinates)).
    """
    guess = sample_counts(model, x, sigma, n0, num_classes, generator, batch_size, tick).argmax(1)
    counts = sample_counts(model, x, sigma, n, num_classes, generator, batch_size, tick)
    n_a = counts.gather(1, guess[:, None]).squeeze(1).tolist()
    radius = torch.tensor([certified_radius(k, n, sigma, alpha) for k in n_a], dtype=torch.float64)
    prediction = torch.where(radius.isnan(), torch.full_like(guess.cpu(), ABSTAIN), guess.cpu())
    radius = torch.nan_to_num(radius, nan=0.0)
    n_valid = num_valid_coordinates(valid_mask(x), x.shape[1], x.shape[3]).cpu().double().clamp_min(1)
    return {"prediction": prediction, "radius": radius, "radius_rms": radius / n_valid.sqrt()}


def certify_clips(model: nn.Module, clips: torch.Tensor, sigma: float, n0: int = 100, n: int = 1000, alpha: float = 0.001,
                  num_classes: int | None = None, seed: int = 0, batch_size: int = 64,
                  progress: bool | None = None) -> dict[str, torch.Tensor]:
    """:func:`certify` over all ``clips`` in batches of ``batch_size``, with one generator seeded from ``seed``.

    Its progress counts noisy draws of all batches (``n0 + n`` per clip batch); ``progress=None`` follows
    the run's setting (:func:`robustbench_skel.progress_meter.progress`)."""
    device = next((p.device for p in model.parameters()), clips.device)
    num_classes = num_classes or int(getattr(model, "num_classes"))
    generator = torch.Generator(device=device).manual_seed(seed)
    starts = range(0, clips.shape[0], batch_size)
    with show_progress(total=len(starts) * (n0 + n), desc=f"CERTIFY (randomized smoothing, {clips.shape[0]} clips)",
                       unit="draw", enabled=progress) as meter:
        parts = [certify(model, clips[start : start + batch_size].to(device), sigma, n0, n, alpha, num_classes, generator,
                         batch_size, meter.update) for start in starts]
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def accuracy_at_radii(certified: dict[str, torch.Tensor], labels: torch.Tensor, radii: Sequence[float], unit: str = "rms") -> list[float]:
    """Fraction of clips certified correct with a radius of at least each of ``radii`` ("rms" or "l2" total, metres)."""
    correct = certified["prediction"].eq(labels.cpu())
    radius = certified["radius_rms" if unit == "rms" else "radius"]
    return [float((correct & (radius >= r)).double().mean()) for r in radii]


def certified_accuracy(model: nn.Module, clips: torch.Tensor, labels: torch.Tensor, radii: Sequence[float], sigma: float,
                       n0: int = 100, n: int = 1000, alpha: float = 0.001, num_classes: int | None = None, seed: int = 0,
                       batch_size: int = 64, unit: str = "rms") -> list[float]:
    """Fraction of clips certified correct at each radius (``unit``: "rms" per coordinate, or "l2" total, metres)."""
    out = certify_clips(model, clips, sigma, n0, n, alpha, num_classes, seed, batch_size)
    return accuracy_at_radii(out, labels, radii, unit)


class SmoothedClassifier(nn.Module):
    """The smoothed victim: PREDICT logits with an abstain column, or (``bpda``) one soft noisy draw."""

    def __init__(self, victim: nn.Module, num_classes: int, sigma: float, n: int, alpha: float, seed: int,
                 batch_size: int, bpda: bool) -> None:
        super().__init__()
        self.victim = victim
        self.num_classes = num_classes
        self.sigma, self.n, self.alpha, self.seed, self.batch_size, self.bpda = sigma, n, alpha, seed, batch_size, bpda
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, device: torch.device, stream: int) -> torch.Generator:
        key = f"{device}:{stream}"
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed + stream)
        return self._generators[key]

    def random_state(self) -> dict[str, torch.Tensor]:
        """The state of each noise stream drawn so far; a run's per-batch progress saves it, so a resumed
        run draws the same noise as an uninterrupted one (:mod:`robustbench_skel.run.progress`)."""
        return {key: generator.get_state() for key, generator in self._generators.items()}

    def set_random_state(self, states: dict[str, torch.Tensor]) -> None:
        for key, state in states.items():
            device, stream = key.rsplit(":", 1)
            self.generator(torch.device(device), int(stream)).set_state(state)

    def soft_logits(self, x: torch.Tensor) -> torch.Tensor:
        """One draw of the soft smoothed classifier, with a -1e4 abstain column (differentiable)."""
        logp = F.log_softmax(self.victim(x + _noise(x, self.sigma, self.generator(x.device, 1))), dim=1)
        return torch.cat([logp, logp.new_full((x.shape[0], 1), -1e4)], dim=1)

    def predict_logits(self, x: torch.Tensor) -> torch.Tensor:
        counts = sample_counts(self.victim, x.detach(), self.sigma, self.n, self.num_classes,
                               self.generator(x.device, 0), self.batch_size)
        decision = predict_from_counts(counts, self.alpha)
        logits = torch.log((counts.to(x.dtype) + 1) / (self.n + self.num_classes))
        abstain = torch.where(decision.eq(ABSTAIN), logits.amax(1) + 1, logits.amin(1) - 1)
        return torch.cat([logits, abstain[:, None]], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bpda:
            return self.soft_logits(x)
        hard = self.predict_logits(x)
        if torch.is_grad_enabled() and x.requires_grad:  # BPDA: PREDICT's values, the soft draw's gradient
            soft = self.soft_logits(x)
            return hard + (soft - soft.detach())
        return hard


@DEFENSES.register("randomized-smoothing")
class RandomizedSmoothing(Defense):
    description = "randomized smoothing: Gaussian noise in metres, Monte-Carlo PREDICT with abstention (Cohen et al. 2019)"
    kind = "inference"
    randomized = True
    differentiable = False

    def __init__(self, sigma: float = 0.01, n: int = 100, alpha: float = 0.001, seed: int = 0, batch_size: int = 256,
                 certify_n0: int = 100, certify_n: int = 500, certify_radii: Sequence[float] = (0.0, 0.005, 0.01, 0.02),
                 certify_radii_rms: Sequence[float] = (0.0, 0.0001, 0.0002, 0.0003)) -> None:
        self.sigma = float(sigma)
        self.n = int(n)
        self.alpha = float(alpha)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        # CERTIFY's sample sizes and the radii its accuracy is reported at: total L2 and RMS per coordinate,
        # metres. With n = 500 and alpha = 0.001 no radius above 2.2 sigma (total L2) can be certified; n is
        # small next to Cohen et al.'s 100,000 because every draw is a victim pass, which is slow on a CPU;
        # raise it on a GPU.
        self.certify_n0 = int(certify_n0)
        self.certify_n = int(certify_n)
        self.certify_radii = [float(r) for r in certify_radii]
        self.certify_radii_rms = [float(r) for r in certify_radii_rms]

    def apply(self, victim: nn.Module, context: DefenseContext) -> nn.Module:
        model = SmoothedClassifier(victim, context.num_classes, self.sigma, self.n, self.alpha, self.seed,
                                   self.batch_size, bpda=context.bpda)
        return model.to(context.device).eval()

    def extra_metrics(self, model: nn.Module, clips: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        """Certified accuracy (Cohen et al.'s CERTIFY, fresh noise) of the clean clips at the configured radii."""
        base = model.victim if isinstance(model, SmoothedClassifier) else model
        # CERTIFY costs n0 + n victim passes per clip and does not depend on the attack: cached by content, so
        # every attack on these clips (white-box, transfer, ...) reports the same certificate for one computation.
        spec = {"victim": type(base).__qualname__, "victim_sha256": tensor_sha256(*base.state_dict().values()),
                "clips_sha256": tensor_sha256(clips, labels), "sigma": self.sigma, "n0": self.certify_n0, "n": self.certify_n,
                "alpha": self.alpha, "seed": self.seed, "num_classes": int(model.num_classes)}
        out, _ = ArtefactStore().load_or_build("smoothing-certificates", spec, lambda: certify_clips(
            base, clips, self.sigma, self.certify_n0, self.certify_n, self.alpha, model.num_classes,
            seed=self.seed + 1_000_003, batch_size=self.batch_size))
        return {"certified_accuracy": {
            "radii": self.certify_radii, "values": accuracy_at_radii(out, labels, self.certify_radii, "l2"), "unit": "m",
            "radii_rms": self.certify_radii_rms, "values_rms": accuracy_at_radii(out, labels, self.certify_radii_rms, "rms"),
            "median_radius_m": float(out["radius"].median()), "median_radius_rms_m": float(out["radius_rms"].median()),
            "abstained": int(out["prediction"].eq(ABSTAIN).sum()), "n": int(clips.shape[0]),
            "sigma": self.sigma, "n0": self.certify_n0, "n_draws": self.certify_n, "alpha": self.alpha,
        }}
