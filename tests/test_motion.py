"""The TV-AR motion model: the fit recovers known coefficients, respects padding, and the SMI/TASAR
gradients are the chain rule through the fitted model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustbench_skel.motion import (
    _RIDGE_ABS,
    _RIDGE_REL,
    DEFAULT_BANDWIDTH,
    MotionCoefficients,
    ar_coefficients,
    fit_tvar,
    smi_gradient,
    tasar_coefficients,
    temporal_gradient,
    valid_prefix_lengths,
)


def motion_clips(n: int = 2, t: int = 20, v: int = 25, m: int = 2, lengths=None, seed: int = 0) -> torch.Tensor:
    """Smooth random-walk motion in metres around a body position, zero after each clip's length.

    The second actor, if any, is absent (all zeros)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=0.01, size=(n, 3, t, v, m)).cumsum(axis=2).cumsum(axis=2) * 0.2
    x = steps + rng.normal(scale=0.3, size=(n, 3, 1, v, m)) + np.array([0.0, 0.0, 3.0]).reshape(1, 3, 1, 1, 1)
    if m > 1:
        x[..., 1:] = 0
    for i, length in enumerate(lengths if lengths is not None else [t] * n):
        x[i, :, length:] = 0
    return torch.from_numpy(x.astype(np.float32))


def simulate_tvar(phis, t: int, series: int, seed: int) -> np.ndarray:
    """``(series, t)`` draws of ``s_t = sum_k phi_k(t) s_{t-k} + e_t``, ``e ~ N(0, 0.01^2)``."""
    rng = np.random.default_rng(seed)
    s = np.zeros((series, t))
    noise = rng.normal(scale=0.01, size=(series, t))
    for i in range(t):
        s[:, i] = noise[:, i] + sum(phi[i] * s[:, i - k] for k, phi in enumerate(phis, 1) if i - k >= 0)
    return s


@pytest.mark.parametrize("order", [1, 2])
def test_fit_recovers_a_simulated_time_varying_process(order):
    t = 1000
    z = np.arange(t) / t
    phis = [0.5 + 0.3 * np.sin(np.pi * z), -0.3 + 0.2 * np.cos(np.pi * z)][:order]  # stationary at every t
    s = simulate_tvar(phis, t, series=32, seed=order)
    est = fit_tvar(s, np.full(32, t), order)  # default bandwidth
    interior = slice(t // 10, t - t // 10)
    mean_est = est.mean(axis=0)  # averaging over 32 independent draws leaves mostly the estimator's bias
    for k, phi in enumerate(phis):
        # what is left is the kernel's smoothing bias plus the finite-sample bias of any AR estimate
        # (about -(1 + 3 phi) / n_eff, 0.01 here); a constant fit would be off by 0.05 to 0.1
        mae = np.abs(mean_est[interior, k] - phi[interior]).mean()
        assert mae < 0.04, (k, mae)
        single = np.abs(est[:, interior, k] - phi[None, interior]).mean()
        assert single < 0.06, (k, single)  # one series alone is still close
        assert np.corrcoef(mean_est[interior, k], phi[interior])[0, 1] > 0.95  # and it follows the variation
    assert np.all(est[:, :order] == 0)


def loop_fit(s: np.ndarray, length: int, order: int, bandwidth: float) -> np.ndarray:
    """The estimator written one series and one target time at a time, straight from its definition."""
    out = np.zeros((s.shape[0], order))
    n = length - order
    times = np.arange(order, length)
    for t0 in times:
        u = (times - t0) / max(bandwidth * n, 2 * order + 2)
        w = np.where(np.abs(u) < 1, 0.75 * (1 - u**2), 0.0)
        lags = np.stack([s[times - k] for k in range(1, order + 1)], axis=1)
        design = np.concatenate([lags, lags * u[:, None]], axis=1)
        normal = design.T @ (w[:, None] * design)
        normal += (_RIDGE_REL * np.trace(normal) / (2 * order) + _RIDGE_ABS) * np.eye(2 * order)
        beta = np.linalg.solve(normal, design.T @ (w * s[times]))
        out[t0] = beta[:order]
    return out


@pytest.mark.parametrize("order", [1, 2, 3])
def test_vectorised_fit_equals_a_per_series_loop(order):
    rng = np.random.default_rng(7)
    t = 30
    s = rng.normal(size=(5, t)).cumsum(axis=1) * 0.05 + rng.normal(size=(5, 1))
    lengths = np.array([30, 17, 9, 30, 4])
    s[np.arange(t)[None, :] >= lengths[:, None]] = 0
    for bandwidth in (None, 0.5):
        est = fit_tvar(s, lengths, order, bandwidth)
        for i, length in enumerate(lengths):
            expected = np.zeros((t, order))
            expected[:length] = loop_fit(s[i, :length], length, order, bandwidth or DEFAULT_BANDWIDTH)
            # L = 4 leaves fewer observations than unknowns: only the ridge decides, and two solvers agree
            # to the ~1e-8 the ridge's conditioning allows; every well-posed series agrees to rounding
            tol = 1e-6 if length - order < 2 * order else 1e-8
            np.testing.assert_allclose(est[i], expected, rtol=tol, atol=tol)


def test_padding_gives_zeros_after_the_valid_length_and_the_prefix_fit_on_it():
    clips = motion_clips(n=3, t=24, m=2, lengths=[24, 15, 9], seed=1)
    coeffs = ar_coefficients(clips)
    for i, length in enumerate([24, 15, 9]):
        alone = ar_coefficients(clips[i : i + 1, :, :length])
        for field in ("a", "c", "d"):
            full = getattr(coeffs, field)[i : i + 1]
            assert torch.all(full[:, :, length:] == 0)
            assert torch.all(full[..., 1] == 0), "the absent second actor has no motion model"
            torch.testing.assert_close(full[:, :, :length], getattr(alone, field), rtol=1e-6, atol=1e-6)
    # 1-D series: the same prefix rule
    s = np.random.default_rng(3).normal(size=40).cumsum()
    padded = np.concatenate([s[:25], np.zeros(15)])
    est = fit_tvar(padded[None], np.array([25]), 2)[0]
    np.testing.assert_array_equal(est[25:], 0)
    np.testing.assert_allclose(est[:25], fit_tvar(s[None, :25], np.array([25]), 2)[0], rtol=1e-12, atol=1e-12)


def test_flat_series_give_finite_coefficients():
    t = 20
    zeros = fit_tvar(np.zeros((2, t)), np.array([t, 12]), 2)
    assert np.all(zeros == 0)
    constant = fit_tvar(np.full((1, t), 0.7), np.array([t]), 2)
    assert np.all(np.isfinite(constant))
    np.testing.assert_allclose(constant[0, 2:].sum(axis=-1), 1.0, atol=1e-6)  # still predicts the constant
    tiny = fit_tvar(0.7 + 1e-9 * np.arange(t)[None], np.array([t]), 2)
    assert np.all(np.isfinite(tiny))
    # a clip whose root joint sits exactly at the origin, and a clip that is all padding
    clips = motion_clips(n=2, t=t, m=1)
    clips[0, :, :, 0] = 0
    clips[1] = 0
    coeffs = ar_coefficients(clips)
    for field in (coeffs.a, coeffs.c, coeffs.d):
        assert torch.isfinite(field).all()
        assert torch.all(field[0, :, :, 0] == 0) and torch.all(field[1] == 0)


@pytest.mark.parametrize("n,t,m", [(1, 20, 1), (3, 20, 2), (1, 48, 2), (3, 48, 1)])
def test_shapes_dtype_and_validity(n, t, m):
    clips = motion_clips(n=n, t=t, m=m, lengths=[t - 3 * i for i in range(n)])
    coeffs = ar_coefficients(clips)
    for field in (coeffs.a, coeffs.c, coeffs.d):
        assert field.shape == clips.shape and field.dtype == clips.dtype
        assert torch.isfinite(field).all()
        assert torch.all(field[:, :, 0] == 0)
    assert torch.all(coeffs.d[:, :, 1] == 0)
    torch.testing.assert_close(coeffs.c[:, :, 1], coeffs.a[:, :, 1])
    lengths = valid_prefix_lengths(clips.numpy())
    assert lengths.shape == (n, m) and list(lengths[:, 0]) == [t - 3 * i for i in range(n)]
    as_numpy = ar_coefficients(clips.double().numpy())
    assert as_numpy.a.dtype == torch.float64
    torch.testing.assert_close(as_numpy.a.float(), coeffs.a)
    grad = torch.randn(clips.shape, generator=torch.Generator().manual_seed(0))
    for order in (1, 2):
        assert smi_gradient(grad, coeffs, order).shape == clips.shape
    assert coeffs.select(slice(0, 1)).a.shape[0] == 1


def test_zero_coefficients_make_the_smi_gradient_the_identity():
    grad = torch.randn(2, 3, 6, 4, 2, generator=torch.Generator().manual_seed(1))
    zero = MotionCoefficients(*(torch.zeros_like(grad) for _ in range(3)))
    for order in (1, 2):
        assert torch.equal(smi_gradient(grad, zero, order), grad)
    assert torch.equal(temporal_gradient(grad, zero), torch.zeros_like(grad))


def test_smi_gradient_on_a_hand_built_case():
    """T = 4, one coordinate: Eq. 9 and Eq. 10 written out frame by frame."""
    g = [1.0, 2.0, 3.0, 4.0]
    a = [0.0, 0.5, -1.0, 2.0]
    c = [0.0, 0.5, 0.3, -0.7]  # c[1] = a[1], as the fit sets it
    d = [0.0, 0.0, 0.2, 0.4]

    def clip(v):
        return torch.tensor(v, dtype=torch.float64).view(1, 1, 4, 1, 1)

    coeffs = MotionCoefficients(clip(a), clip(c), clip(d))
    eq9 = [g[0] + g[1] * a[1], g[1] + g[2] * a[2], g[2] + g[3] * a[3], g[3]]
    eq10 = [
        g[0] + g[1] * c[1] + g[2] * (d[2] + c[2] * c[1]),
        g[1] + g[2] * c[2] + g[3] * (d[3] + c[3] * c[2]),
        g[2] + g[3] * c[3],
        g[3],
    ]
    torch.testing.assert_close(smi_gradient(clip(g), coeffs, 1), clip(eq9), rtol=0, atol=1e-12)
    torch.testing.assert_close(smi_gradient(clip(g), coeffs, 2), clip(eq10), rtol=0, atol=1e-12)
    ar1, ar2 = tasar_coefficients(coeffs)
    torch.testing.assert_close(ar1, clip([c[1], c[2], c[3], 0.0]))
    torch.testing.assert_close(ar2, clip([d[2] + c[2] * c[1], d[3] + c[3] * c[2], 0.0, 0.0]))


def test_tasar_form_matches_the_reference_construction():
    """``e = [a(0), phi1(0), phi1(1), ...]``, ``c = e * phi1 + phi2`` over the tvAR output series."""
    length, t = 15, 18
    clips = motion_clips(n=1, t=t, v=2, m=1, lengths=[length], seed=4)
    coeffs = ar_coefficients(clips.double())
    x = clips.double()[0, 0, :, 0, 0].numpy()
    a_ref = fit_tvar(x[None, :length], np.array([length]), 1)[0, 1:, 0]  # tvAR(p=1): L-1 values, frames 1..L-1
    phi = fit_tvar(x[None, :length], np.array([length]), 2)[0, 2:]  # tvAR(p=2): L-2 values, frames 2..L-1
    e = np.concatenate([a_ref[:1], phi[:, 0]])  # L-1 values
    c = e[: length - 2] * phi[:, 0] + phi[:, 1]  # L-2 values
    ar1, ar2 = tasar_coefficients(coeffs)
    np.testing.assert_allclose(ar1[0, 0, :, 0, 0].numpy(), np.pad(e, (0, t - e.size)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ar2[0, 0, :, 0, 0].numpy(), np.pad(c, (0, t - c.size)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_smi_gradient_is_the_chain_rule_through_the_fitted_model(order):
    """Move frame tau by delta and let the fitted AR model carry the change ``order`` frames forward
    (``S_{tau+1} += C_{tau+1} delta``, ``S_{tau+2} += C_{tau+2} C_{tau+1} delta + D_{tau+2} delta``):
    autograd's ``dJ/d delta`` at 0 is the SMI gradient at frame tau."""
    clips = motion_clips(n=2, t=12, v=3, m=2, lengths=[12, 8], seed=5).double()
    coeffs = ar_coefficients(clips)
    weights = torch.randn(clips.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def loss(x):
        return (torch.sin(3 * x) * weights).sum() + (x**2).sum()

    x = clips.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(x), x)
    smi = smi_gradient(grad, coeffs, order)
    t = clips.shape[2]
    for tau in range(t):
        delta = torch.zeros_like(clips[:, :, 0], requires_grad=True)
        moved = [torch.zeros_like(delta) for _ in range(t)]
        moved[tau] = delta
        if order == 1 and tau + 1 < t:
            moved[tau + 1] = coeffs.a[:, :, tau + 1] * moved[tau]
        if order == 2 and tau + 1 < t:
            moved[tau + 1] = coeffs.c[:, :, tau + 1] * moved[tau]
        if order == 2 and tau + 2 < t:
            moved[tau + 2] = coeffs.c[:, :, tau + 2] * moved[tau + 1] + coeffs.d[:, :, tau + 2] * moved[tau]
        (chain,) = torch.autograd.grad(loss(clips + torch.stack(moved, dim=2)), delta)
        torch.testing.assert_close(smi[:, :, tau], chain, rtol=0, atol=1e-6)
    if order == 2:
        torch.testing.assert_close(smi, grad + temporal_gradient(grad, coeffs), rtol=0, atol=1e-12)
