"""What the decision-based attacks (``basar``, ``boundary``) share: budgeted queries and starting points.

Both walk along the decision boundary of a label oracle (:class:`robustbench_skel.handed.LabelOracle`)
from an adversarial starting clip towards the clean one, and return the closest adversarial clip
found (minimum L2 norm; the base class then projects it into the run's budget, and the evaluator
decides success there). Every query goes through :class:`Queries`, which asks the oracle for all the
rows of a batch at once and never for a row that has no query left.
"""

from __future__ import annotations

import torch

from robustbench_skel.budget import num_valid_coordinates
from robustbench_skel.errors import UserError
from robustbench_skel.handed import LabelOracle

__all__ = ["Queries", "rms", "start_points", "INITS"]

INITS = ("other-clip", "noise")


def rms(delta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample root-mean-square displacement over the valid coordinates, metres ``(N,)``."""
    n = num_valid_coordinates(mask, delta.shape[1], delta.shape[3]).clamp_min(1)
    return ((delta * mask).flatten(1).pow(2).sum(1) / n).sqrt()


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


class Queries:
    """The oracle of one batch, answering "is this candidate adversarial for its row?"."""

    def __init__(self, oracle: LabelOracle, labels: torch.Tensor | None, targets: torch.Tensor | None) -> None:
        if not isinstance(oracle, LabelOracle):
            raise TypeError(f"a decision-based attack is handed a LabelOracle, got {type(oracle).__name__}")
        self._oracle = oracle
        self._labels = labels
        self._targets = targets

    def left(self, rows: torch.Tensor) -> torch.Tensor:
        """Queries left for each of ``rows`` (on ``rows``' device)."""
        return self._oracle.remaining(rows).to(rows.device)

    def labels(self, clips: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The oracle's top-1 labels (one query per candidate, charged to its row)."""
        if rows.numel() == 0:
            return torch.zeros(0, dtype=torch.long, device=clips.device)
        return self._oracle.labels(clips, rows).to(clips.device)

    def judge(self, pred: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Untargeted: the label differs from the row's; targeted: it is the row's target."""
        if self._targets is not None:
            return pred.eq(self._targets[rows])
        return pred.ne(self._labels[rows])

    def adversarial(self, clips: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Whether each candidate is adversarial for its row (one query each)."""
        return self.judge(self.labels(clips, rows), rows)


def start_points(queries: Queries, x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
                 mask: torch.Tensor, init: str, init_box: float, generator: torch.Generator,
                 rows: torch.Tensor, tries: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """An adversarial starting clip per row and whether one was found.

    ``other-clip``: the nearest other clips of the batch of another class (the target's, when
    targeted), up to ``tries`` of them, laid on the row's valid frames; then, as with ``noise``,
    uniform noise in a box of half-width ``init_box`` metres around the clip, doubled up to three
    times. One query per try; a row with no query left stops trying.
    """
    if init not in INITS:
        raise UserError(f"--attack-opt init must be one of {', '.join(INITS)}, got {init!r}")
    start = x.clone()
    found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    if init == "other-clip":
        wanted = labels.ne(labels[None].t()) if targets is None else labels[None].eq(targets[:, None])  # (row, clip)
        wanted.fill_diagonal_(False)
        dist = torch.cdist(x.flatten(1), x.flatten(1))
        dist = dist.masked_fill(~wanted, float("inf"))
        order = dist.argsort(dim=1)
        for k in range(min(tries, x.shape[0] - 1)):
            pick = order[:, k]
            todo = rows[~found[rows] & torch.isfinite(dist[rows, pick[rows]])]
            todo = todo[queries.left(todo) > 0]
            if todo.numel() == 0:
                break
            cand = x[pick[todo]] * mask[todo]
            ok = queries.adversarial(cand, todo)
            start[todo[ok]] = cand[ok]
            found[todo[ok]] = True
    for k in range(4):
        todo = rows[~found[rows]]
        todo = todo[queries.left(todo) > 0]
        if todo.numel() == 0:
            break
        u = torch.rand(x[todo].shape, generator=generator, device=x.device, dtype=x.dtype)
        cand = x[todo] + (2 * u - 1) * init_box * 2**k * mask[todo]
        ok = queries.adversarial(cand, todo)
        start[todo[ok]] = cand[ok]
        found[todo[ok]] = True
    return start, found


def towards(a: torch.Tensor, b: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
    """``a + fraction (b - a)`` with a per-sample ``fraction``."""
    return a + _view(fraction, a) * (b - a)
