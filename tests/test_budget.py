"""Budget projection and random starts stay inside the budget, for any input."""

from __future__ import annotations

import hypothesis.strategies as st
import torch
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays

from robustbench_skel.budget import budget_size, normalize_step, project, random_in_ball, valid_mask

from conftest import make_clips

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    delta=arrays("float32", (2, 3, 6, 25, 2), elements=finite),
    eps=st.floats(min_value=1e-4, max_value=1.0),
    norm=st.sampled_from(["linf", "l2"]),
    pad=st.integers(0, 5),
)
def test_projection_keeps_every_output_within_budget(delta, eps, norm, pad):
    clean = make_clips(n=2, t=6, pad=pad)
    mask = valid_mask(clean)
    projected = project(torch.from_numpy(delta), mask, norm, eps)
    size = budget_size(projected, mask, norm)
    assert torch.all(size <= eps * (1 + 1e-5) + 1e-7)
    assert torch.all(projected * (1 - mask) == 0), "invalid joints must never move"
    again = project(projected, mask, norm, eps)
    assert torch.allclose(again, projected, atol=1e-6), "projection must be idempotent"


@settings(max_examples=30, deadline=None)
@given(eps=st.floats(min_value=1e-4, max_value=0.5), norm=st.sampled_from(["linf", "l2"]), seed=st.integers(0, 2**31))
def test_random_start_is_inside_the_ball(eps, norm, seed):
    clean = make_clips(n=3, t=8)
    mask = valid_mask(clean)
    start = random_in_ball(clean, mask, norm, eps, torch.Generator().manual_seed(seed))
    assert torch.all(budget_size(start, mask, norm) <= eps * (1 + 1e-5))
    assert torch.all(start * (1 - mask) == 0)
    assert start.abs().sum() > 0


def test_projection_inside_the_ball_changes_nothing():
    clean = make_clips(n=2, t=6)
    mask = valid_mask(clean)
    small = torch.full_like(clean, 1e-3) * mask
    for norm in ("linf", "l2"):
        assert torch.allclose(project(small, mask, norm, 0.01), small)


def test_l2_budget_is_rms_per_valid_coordinate():
    clean = make_clips(n=1, t=10, pad=4)
    mask = valid_mask(clean)
    delta = torch.full_like(clean, 0.02) * mask  # every valid coordinate moves 2 cm
    assert abs(float(budget_size(delta, mask, "l2")) - 0.02) < 1e-6
    assert abs(float(budget_size(delta, mask, "linf")) - 0.02) < 1e-6


def test_normalized_step_has_unit_size():
    clean = make_clips(n=2, t=8)
    mask = valid_mask(clean)
    grad = torch.randn_like(clean)
    assert torch.allclose(budget_size(normalize_step(grad, mask, "linf"), mask, "linf"), torch.ones(2))
    assert torch.allclose(budget_size(normalize_step(grad, mask, "l2"), mask, "l2"), torch.ones(2), atol=1e-5)


def test_valid_mask_marks_padding_and_empty_person():
    clean = make_clips(n=1, t=10, pad=3)
    mask = valid_mask(clean)
    assert mask.shape == (1, 1, 10, 1, 2)
    assert mask[0, 0, :7, 0, 0].eq(1).all() and mask[0, 0, 7:, 0, 0].eq(0).all()
    assert mask[..., 1].eq(0).all()
