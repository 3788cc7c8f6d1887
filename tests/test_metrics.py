"""Imperceptibility metrics and confidence intervals."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from scipy import stats

from robustbench_skel.budget import valid_mask
from robustbench_skel.layout import NTU25
from robustbench_skel.metrics import PER_CLIP_METRICS, imperceptibility, mean_interval, wilson_interval

from conftest import make_clips


def test_identical_clips_score_zero():
    clean = make_clips(n=3, t=10)
    m = imperceptibility(clean, clean.clone(), NTU25, fps=30)
    assert set(m) == set(PER_CLIP_METRICS)
    for name, values in m.items():
        assert np.all(values == 0), name


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000), scale=st.floats(0.001, 0.05))
def test_metrics_grow_with_the_perturbation(seed, scale):
    clean = make_clips(n=2, t=12, seed=seed)
    mask = valid_mask(clean)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed)) * mask
    small = imperceptibility(clean, clean + scale * noise, NTU25, fps=30)
    large = imperceptibility(clean, clean + 2 * scale * noise, NTU25, fps=30)
    for name in PER_CLIP_METRICS:
        assert np.all(small[name] > 0), name
        if name != "bone_length_deviation":  # bone lengths are not linear in the perturbation
            assert np.allclose(large[name], 2 * small[name], rtol=1e-4), name
        assert np.all(large[name] > small[name]), name


def test_rigid_translation_moves_joints_but_not_bones_or_dynamics():
    clean = make_clips(n=2, t=12).double()
    mask = valid_mask(clean)
    shifted = clean + torch.tensor([0.03, 0.0, -0.04], dtype=torch.float64).view(1, 3, 1, 1, 1) * mask
    m = imperceptibility(clean, shifted, NTU25, fps=30)
    assert np.allclose(m["mean_joint_displacement_cm"], 5.0, atol=1e-6)
    assert np.allclose(m["linf_m"], 0.04, atol=1e-7)
    assert np.allclose(m["bone_length_deviation"], 0, atol=1e-12)
    # padding frames do not move, so only differences inside the valid frames count
    assert np.allclose(m["acceleration_deviation"], 0, atol=1e-6)
    assert np.allclose(m["jerk_deviation"], 0, atol=1e-6)


def test_acceleration_uses_the_frame_rate():
    clean = make_clips(n=1, t=12, pad=0)
    bump = clean.clone()
    bump[:, :, 5, 3, 0] += 0.01
    a30 = imperceptibility(clean, bump, NTU25, fps=30)["acceleration_deviation"]
    a60 = imperceptibility(clean, bump, NTU25, fps=60)["acceleration_deviation"]
    assert np.allclose(a60, 4 * a30)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (57, 64), (1, 1)])
def test_wilson_interval_matches_scipy(k, n):
    ours = wilson_interval(k, n)
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert ours == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_wilson_interval_holds_its_estimate_at_the_ends():
    for n in range(1, 200):  # 0 of 6 once had a lower bound of 3e-17, 10 of 10 an upper one of 1 - 1e-16
        assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0
        for k in range(n + 1):
            low, high = wilson_interval(k, n)
            assert low <= k / n <= high


def test_wilson_interval_empty():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_mean_interval_contains_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = mean_interval(rng.normal(1.0, 1.0, 10))
    large = mean_interval(rng.normal(1.0, 1.0, 1000))
    assert small[1] < small[0] < small[2]
    assert (large[2] - large[1]) < (small[2] - small[1])
    assert mean_interval([2.0]) == (2.0, 2.0, 2.0)


def test_mean_interval_of_a_nonnegative_quantity_stays_nonnegative():
    skewed = [0.01, 0.02, 0.01, 4.0]  # four successes, one far off: the t interval reaches below zero
    assert mean_interval(skewed)[1] < 0
    mean, low, high = mean_interval(skewed, nonnegative=True)
    assert low == 0.0 and high == mean_interval(skewed)[2]
