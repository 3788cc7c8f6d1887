"""Is the Bayesian term of a Bayesian transfer attack (TASAR, BA) doing anything?

Both attacks replace the surrogate's gradient by an average over sampled weights (TASAR: sampled
heads; BA: sampled network weights). When the posterior has collapsed (SWAG moments with no spread,
a scale of zero, heads that all agree), that average is the surrogate's own gradient and the attack
is I-FGSM / MI-FGSM under another name. Each record of these attacks therefore carries, measured at
the clean clips (the first iterate) of the attacked samples:

- ``median_cosine``: the median over clips of the cosine, over the valid coordinates, between the
  Bayesian gradient and the plain gradient of the deterministic surrogate the samples are drawn around
  (TASAR: the mean heads, the reference's ``modelEval``; BA: the surrogate's own weights);
- ``head_spread``: the mean relative distance ``||theta_s - mu|| / ||mu||`` of the sampled weights from
  their posterior mean (0 when every sample is the mean);

and the sanity check ``bayesian_term`` fails ("Bayesian term degenerate") when the median cosine
exceeds :data:`DEGENERATE_COSINE`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["DEGENERATE_COSINE", "DIAGNOSTIC_CLIPS", "per_clip_cosine", "relative_spread", "diagnostic_entry",
           "degenerate_check"]

DEGENERATE_COSINE = 0.98
DIAGNOSTIC_CLIPS = 32  # attacked clips the diagnostic is measured on (one batch)


def per_clip_cosine(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cosine between ``a`` and ``b`` per clip over the valid coordinates, ``(N,)``; 1 where both are zero."""
    a, b = (a * mask).flatten(1).double(), (b * mask).flatten(1).double()
    na, nb = a.norm(dim=1), b.norm(dim=1)
    cos = (a * b).sum(dim=1) / (na * nb).clamp_min(1e-300)
    both_zero = (na == 0) & (nb == 0)
    return torch.where(both_zero, torch.ones_like(cos), cos).float()


def relative_spread(samples: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean over sampled weight sets of ``||theta_s - mu|| / ||mu||``; ``samples`` yields ``(theta_s, mu)``
    pairs, each flattened over every parameter of one weight set."""
    ratios = [float((t - m).norm() / m.norm().clamp_min(1e-12)) for t, m in samples]
    return sum(ratios) / len(ratios) if ratios else float("nan")


def diagnostic_entry(cosines: torch.Tensor, spread: float, plain: str) -> dict[str, Any]:
    """The record's ``metrics.bayesian_diagnostic``."""
    return {"median_cosine": float(cosines.median()) if cosines.numel() else float("nan"),
            "min_cosine": float(cosines.min()) if cosines.numel() else float("nan"),
            "head_spread": spread, "n": int(cosines.numel()), "plain_gradient": plain,
            "measured_at": "the clean clips (first iterate) of the first attacked samples"}


def degenerate_check(diagnostic: dict[str, Any]) -> dict[str, Any]:
    """The ``bayesian_term`` sanity check: fails when the median cosine exceeds :data:`DEGENERATE_COSINE`."""
    cos = diagnostic["median_cosine"]
    passed = None if cos != cos else bool(cos <= DEGENERATE_COSINE)
    check = {"passed": passed, "median_cosine": cos, "head_spread": diagnostic["head_spread"],
             "expect": f"median cosine between the Bayesian and the plain gradient <= {DEGENERATE_COSINE} "
                       "(else the Bayesian term is degenerate: the smoothing changed nothing)"}
    if passed is False:
        check["message"] = "Bayesian term degenerate"
    return check
