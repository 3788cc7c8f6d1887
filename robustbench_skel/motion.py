"""Time-varying autoregressive (TV-AR) motion model shared by TASAR and the SMI no-box attacks.

Both attack families (TASAR, Diao et al. ICLR 2025; SMI, Lu et al. ICCV 2023) model every joint
coordinate of every actor as a TV-AR series without intercept,

    S_t = A_t S_{t-1}                        (AR(1))
    S_t = C_t S_{t-1} + D_t S_{t-2}          (AR(2)),

and push the loss gradient of a frame back onto the frames that predict it (the "motion-aware"
gradient). The reference code fits these models with R's ``tvReg::tvAR(type="none", est="ll")`` one
series at a time; here the same local-linear kernel estimator runs in numpy, batched over clips,
coordinates, joints and actors.

Indexing convention (the one thing to get right): the coefficient tensors are shaped like the clip and
``a[..., t, ...]`` is the coefficient *of frame t* on its predecessors, i.e. ``a[t] = A_t``, ``c[t] = C_t``,
``d[t] = D_t``. They are non-zero only where the model applies inside a clip's valid prefix: ``a`` on
frames ``1..L-1``, ``c``/``d`` on ``2..L-1``, plus ``c[1] = A_1`` and ``d[1] = 0`` (frame 1 has a
single predecessor, so its AR(2) relation is the AR(1) one, which is what the reference code uses
there too). Everything else, padding and absent actors included, is zero, so the motion terms vanish
there and the SMI gradient falls back to the raw gradient.

Coefficients are always fitted on the very clips being attacked (:func:`ar_coefficients` on the
attack's own batch), so they line up with the clip frame by frame. The reference TASAR pipeline fits them on a shuffled loader
and attacks an unshuffled one, pairing each clip with another clip's motion model; that cannot happen
here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "DEFAULT_BANDWIDTH",
    "MotionCoefficients",
    "fit_tvar",
    "valid_prefix_lengths",
    "ar_coefficients",
    "smi_gradient",
    "tasar_coefficients",
    "temporal_gradient",
]

DEFAULT_BANDWIDTH = 0.3
"""Kernel half-width as a fraction of the regression's observations (rescaled time, as in tvReg).

tvReg chooses it per series by leave-one-out cross-validation, which costs a full fit per candidate
bandwidth and per series; a fixed 0.3 (about 14 frames of a 48-frame clip on either side) keeps the
coefficients smooth over a motion phase while still following it, and makes the fit deterministic and fast.
"""

_RIDGE_REL = 1e-8  # times the mean diagonal of the normal matrix: keeps flat (barely moving) joints solvable
_RIDGE_ABS = 1e-12  # makes an all-zero series give exactly zero coefficients rather than NaN
_CHUNK = 4096  # series per batched solve: ~50 MB of float64 at T = 48, p = 2


def _kernel_weights(n: int, order: int, bandwidth: float) -> np.ndarray:
    """``(3, n, n)`` local-linear weights ``K(u) u^j``, ``j = 0, 1, 2``, ``u = (t - t0) / h``, rows ``t0``.

    ``h = max(b n, 2 p + 2)`` frames: the floor keeps more observations than the ``2 p`` unknowns
    inside the one-sided window at either end of a short series (it is inactive from ``n = 20`` frames at
    ``p = 2`` and the default ``b``).
    """
    idx = np.arange(n, dtype=np.float64)
    u = (idx[None, :] - idx[:, None]) / max(bandwidth * n, 2 * order + 2)
    k = np.where(np.abs(u) < 1, 0.75 * (1 - u * u), 0.0)  # Epanechnikov
    return np.stack([k, k * u, k * u * u])


def _solve_spd(matrix: list[list[np.ndarray]], rhs: list[np.ndarray], floor: np.ndarray) -> list[np.ndarray]:
    """Solve a batch of small symmetric positive definite systems given entry by entry (Cholesky).

    ``matrix[i][j]`` (``j <= i`` read) and ``rhs[i]`` are arrays over the batch. Unrolling the ``q x q``
    factorisation over whole batch arrays is several times faster than ``np.linalg.solve``'s loop over
    millions of 4 x 4 systems. Every pivot of ``G + lambda I`` is at least ``lambda`` in exact arithmetic;
    ``floor`` (that ``lambda``) guards the square roots against rounding.
    """
    q = len(rhs)
    chol: list[list[np.ndarray]] = [[None] * q for _ in range(q)]  # type: ignore[list-item]
    for j in range(q):
        pivot = matrix[j][j] - sum(chol[j][k] * chol[j][k] for k in range(j))
        chol[j][j] = np.sqrt(np.maximum(pivot, floor))
        for i in range(j + 1, q):
            chol[i][j] = (matrix[i][j] - sum(chol[i][k] * chol[j][k] for k in range(j))) / chol[j][j]
    y: list[np.ndarray] = []
    for i in range(q):
        y.append((rhs[i] - sum(chol[i][k] * y[k] for k in range(i))) / chol[i][i])
    x: list[np.ndarray] = [None] * q  # type: ignore[list-item]
    for i in reversed(range(q)):
        x[i] = (y[i] - sum(chol[k][i] * x[k] for k in range(i + 1, q))) / chol[i][i]
    return x


def _solve_level(block: np.ndarray, n: int, order: int, bandwidth: float) -> np.ndarray:
    """Level coefficients ``(S, n, p)`` of one group of series ``block`` ``(S, n + p)`` all valid throughout.

    The weighted normal equations at every target time are the kernel-weighted sums of ``x x^T`` and
    ``y x`` over the observations (``x`` the lagged values, the local-linear columns adding factors
    ``u`` and ``u^2``), so one matrix product of the ``(3 n, n)`` kernel with the per-observation
    products gives all of them at once.
    """
    s, p = block.shape[0], order
    series = block.T  # (n + p, S)
    y = series[p:]  # responses s_t, t = p .. L-1
    lags = [series[p - k : p - k + n] for k in range(1, p + 1)]  # s_{t-k}
    pairs = [(k, m) for k in range(p) for m in range(k + 1)]
    feats = np.empty((n, len(pairs) + p, s))
    for f, (k, m) in enumerate(pairs):
        np.multiply(lags[k], lags[m], out=feats[:, f])
    for k in range(p):
        np.multiply(y, lags[k], out=feats[:, len(pairs) + k])
    w = _kernel_weights(n, p, bandwidth).reshape(3 * n, n)
    moments = (w @ feats.reshape(n, -1)).reshape(3, n, len(pairs) + p, s)  # (moment j, t0, feature, series)
    gram = {pair: f for f, pair in enumerate(pairs)}
    q = 2 * p  # unknowns: p levels, then p slopes

    def entry(i: int, j: int) -> np.ndarray:
        k, m = max(i % p, j % p), min(i % p, j % p)
        return moments[i // p + j // p, :, gram[k, m]]

    matrix = [[entry(i, j) for j in range(q)] for i in range(q)]
    ridge = _RIDGE_REL * sum(matrix[i][i] for i in range(q)) / q + _RIDGE_ABS
    for i in range(q):
        matrix[i][i] = matrix[i][i] + ridge
    rhs = [moments[i // p, :, len(pairs) + i % p] for i in range(q)]
    levels = _solve_spd(matrix, rhs, ridge)[:p]  # p arrays (n, S)
    return np.stack(levels, axis=-1).transpose(1, 0, 2)


def fit_tvar(
    series: np.ndarray, valid_lengths: np.ndarray, order: int, bandwidth: float | None = None
) -> np.ndarray:
    """Local-linear TV-AR(``order``) coefficients ``phi_k(t)`` without intercept, ``(..., T, order)`` float64.

    ``series`` is ``(..., T)``; each is valid on its first ``valid_lengths[...]`` frames (same leading
    shape). As ``tvReg::tvAR(type="none", est="ll")``: the observations are ``t = p .. L-1`` (``n = L - p``
    of them); at every such ``t0`` the weighted least squares of ``s_t`` on ``[s_{t-k}, u s_{t-k}]_{k=1..p}``
    with Epanechnikov weights ``K(u)``, ``u = (t - t0) / (b n)``, gives ``phi_k(t0)`` as its level terms.
    The bandwidth ``b`` is :data:`DEFAULT_BANDWIDTH` unless given (tvReg's cross-validated choice is
    too slow here); the half-width ``b n`` is at least ``2 p + 2`` frames, so very short series stay
    well posed. A tiny ridge keeps flat series finite (an all-zero series gives zeros). Frames
    ``t < p`` and ``t >= L`` get zero.
    """
    x = np.ascontiguousarray(series, dtype=np.float64)  # one copy, so the reshape below is free
    if x.ndim < 1:
        raise ValueError("series must have a time axis")
    if not (isinstance(order, (int, np.integer)) and order >= 1):
        raise ValueError(f"order must be a positive integer, got {order!r}")
    b = DEFAULT_BANDWIDTH if bandwidth is None else float(bandwidth)
    if not (0 < b and np.isfinite(b)):
        raise ValueError(f"bandwidth must be positive, got {bandwidth!r}")
    lead, t = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, t)
    lengths = np.broadcast_to(np.asarray(valid_lengths), lead).reshape(-1)
    if np.any(lengths < 0) or np.any(lengths > t):
        raise ValueError(f"valid lengths must lie in [0, {t}]")
    lengths = lengths.astype(np.int64)
    out = np.zeros((flat.shape[0], t, order))
    for length in np.unique(lengths):
        n = int(length) - order
        if n < 1:
            continue  # no frame has all its predecessors: nothing to fit
        rows = np.flatnonzero(lengths == length)
        for start in range(0, rows.size, _CHUNK):
            chunk = rows[start : start + _CHUNK]
            out[chunk, order:length] = _solve_level(flat[chunk, :length], n, order, b)
    return out.reshape(*lead, t, order)


@dataclass(frozen=True)
class MotionCoefficients:
    """TV-AR coefficients of a batch of clips, each shaped like the clip ``(N, 3, T, V, M)``.

    ``a[t] = A_t`` of ``S_t = A_t S_{t-1}``; ``c[t] = C_t``, ``d[t] = D_t`` of
    ``S_t = C_t S_{t-1} + D_t S_{t-2}`` (``c[1] = A_1``, ``d[1] = 0``); zero outside the valid frames.
    """

    a: torch.Tensor
    c: torch.Tensor
    d: torch.Tensor

    def select(self, index: torch.Tensor | slice) -> MotionCoefficients:
        """The coefficients of a subset of the clips (e.g. those still unbroken)."""
        return MotionCoefficients(self.a[index], self.c[index], self.d[index])

    def to(self, *args, **kwargs) -> MotionCoefficients:
        """As :meth:`torch.Tensor.to`, applied to every field."""
        return MotionCoefficients(self.a.to(*args, **kwargs), self.c.to(*args, **kwargs), self.d.to(*args, **kwargs))


def valid_prefix_lengths(clips: np.ndarray) -> np.ndarray:
    """``(N, M)`` length of each actor's valid prefix: frames up to the first all-zero person-frame."""
    valid = np.any(clips != 0, axis=(1, 3))  # (N, T, M)
    return np.cumprod(valid, axis=1).sum(axis=1)


def ar_coefficients(clips: torch.Tensor | np.ndarray, bandwidth: float | None = None) -> MotionCoefficients:
    """Fit the TV-AR(1) and TV-AR(2) models on every joint coordinate of every actor of ``clips``.

    ``clips`` is ``(N, 3, T, V, M)``; each actor is fitted on its own valid prefix (see
    :func:`valid_prefix_lengths`; a frame after a gap counts as invalid). Returns torch tensors on the device
    and in the dtype of a torch input (a numpy input keeps its dtype, on the CPU). The fit is a constant
    of the attack: no gradient flows through it.
    """
    if isinstance(clips, torch.Tensor):
        device, dtype = clips.device, clips.dtype
        x = clips.detach().cpu().numpy()
    else:
        x = np.asarray(clips)
        device, dtype = torch.device("cpu"), torch.from_numpy(np.zeros(0, dtype=x.dtype)).dtype
    if x.ndim != 5:
        raise ValueError(f"clips must be (N, 3, T, V, M), got shape {tuple(x.shape)}")
    n, ch, t, v, m = x.shape
    lengths = valid_prefix_lengths(x)  # (N, M)
    series = x.transpose(0, 4, 1, 3, 2)  # (N, M, 3, V, T)
    per_series = np.broadcast_to(lengths[:, :, None, None], (n, m, ch, v))
    ar1 = fit_tvar(series, per_series, 1, bandwidth)[..., 0]
    ar2 = fit_tvar(series, per_series, 2, bandwidth)
    c, d = ar2[..., 0], ar2[..., 1]
    c[..., 1] = ar1[..., 1]  # frame 1 has one predecessor: its AR(2) relation is the AR(1) one (d[1] = 0)

    def back(a: np.ndarray) -> torch.Tensor:  # (N, M, 3, V, T) -> (N, 3, T, V, M)
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 2, 4, 3, 1))).to(device=device, dtype=dtype)

    return MotionCoefficients(back(ar1), back(c), back(d))


def _ahead(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x[t + k]`` along the time axis (dim 2), zero beyond the last frame."""
    out = torch.zeros_like(x)
    if k < x.shape[2]:
        out[:, :, : x.shape[2] - k] = x[:, :, k:]
    return out


def tasar_coefficients(coefficients: MotionCoefficients) -> tuple[torch.Tensor, torch.Tensor]:
    """TASAR's ``(AR1, AR2)``: ``AR1[t] = C_{t+1}``, ``AR2[t] = D_{t+2} + C_{t+2} C_{t+1}``, zero-padded.

    These are the reference's ``e`` and ``c``: there ``e = [a(0), phi1(0), phi1(1), ...]``, whose element
    ``t`` is the coefficient of frame ``t + 1`` on frame ``t`` (the AR(2) ``phi1`` series starts at frame 2,
    the AR(1) ``a`` at frame 1), and ``c(t) = e(t) phi1(t) + phi2(t)``, i.e. ``C_{t+1} C_{t+2} + D_{t+2}``.
    So TASAR's ``g[t] + AR1[t] g[t+1] + AR2[t] g[t+2]`` is SMI's Eq. 10 with the paper's ``t`` at our ``t + 2``,
    its coefficients indexed by the frame they predict.
    """
    c1, c2, d2 = _ahead(coefficients.c, 1), _ahead(coefficients.c, 2), _ahead(coefficients.d, 2)
    return c1, d2 + c2 * c1


def temporal_gradient(grad: torch.Tensor, coefficients: MotionCoefficients) -> torch.Tensor:
    """TASAR's ``AR_grad[t] = AR1[t] g[t+1] + AR2[t] g[t+2]``: the motion terms of Eq. 10, *without* ``g[t]``.

    TASAR's update direction is ``grad + temporal_gradient(grad, coefficients)``, which equals
    ``smi_gradient(grad, coefficients, 2)``.
    """
    ar1, ar2 = tasar_coefficients(coefficients)
    return ar1 * _ahead(grad, 1) + ar2 * _ahead(grad, 2)


def smi_gradient(grad: torch.Tensor, coefficients: MotionCoefficients, order: int) -> torch.Tensor:
    """SMI's motion-aware gradient of the raw loss gradient ``grad`` (shaped like the clip), identity term included.

    - ``order=1`` (Eq. 9): ``g[t] + A_{t+1} g[t+1]``;
    - ``order=2`` (Eq. 10): ``g[t] + C_{t+1} g[t+1] + (D_{t+2} + C_{t+2} C_{t+1}) g[t+2]``.

    This is the exact derivative of ``J`` with respect to a change of frame ``t`` that the AR model
    carries one (order 1) or two (order 2) frames forward. Terms beyond the valid frames vanish with
    the coefficients; ``g[t]`` itself is passed through unmasked (the attack masks its step).
    """
    if order == 1:
        return grad + _ahead(coefficients.a, 1) * _ahead(grad, 1)
    if order == 2:
        return grad + temporal_gradient(grad, coefficients)
    raise ValueError(f"order must be 1 or 2, got {order!r}")
