"""The transfer pair's gradient alignment (robustbench_skel.learn.gradient_alignment) on hand-made models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_skel.learn.gradient_alignment import gradient_alignment, loss_gradient


class _Linear(nn.Module):
    """Logits ``w_k . x``: the cross-entropy gradient at x = 0 is ``mean_k w_k - w_y`` (uniform softmax)."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.flatten(1).T


def _clips(n: int = 6) -> torch.Tensor:
    x = torch.zeros(n, 3, 4, 5, 2)
    x[:, :, :3, :, 0] = 1e-9  # three valid frames of the first person; the rest is padding
    return x


def test_loss_gradient_is_the_hand_computed_cross_entropy_gradient():
    torch.manual_seed(0)
    w = torch.randn(3, 3, 4, 5, 2)
    x, y = torch.zeros(2, 3, 4, 5, 2), torch.tensor([0, 2])
    grad = loss_gradient(_Linear(w), x, y, None, batch_size=1)
    for i, label in enumerate(y):
        assert torch.allclose(grad[i], w.mean(dim=0) - w[label], atol=1e-6)
    targeted = loss_gradient(_Linear(w), x, y, torch.tensor([1, 1]), batch_size=2)  # descends toward the target
    assert torch.allclose(targeted[0], -(w.mean(dim=0) - w[1]), atol=1e-6)


def test_alignment_is_one_for_the_same_model_minus_one_for_its_opposite_and_counts_valid_coordinates_only():
    torch.manual_seed(1)
    w = torch.randn(3, 3, 4, 5, 2)
    x, y = _clips(), torch.tensor([0, 1, 2, 0, 1, 2])
    model = _Linear(w)
    assert gradient_alignment(model, model, x, y, None, 4)["median_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert gradient_alignment(model, _Linear(-w), x, y, None, 4)["median_cosine"] == pytest.approx(-1.0, abs=1e-6)
    padded = w.clone()
    padded[:, :, 3:] = torch.randn(3, 3, 1, 5, 2)  # differs only where the clips are padding
    padded[:, :, :, :, 1] = torch.randn(3, 3, 4, 5)
    entry = gradient_alignment(model, _Linear(padded), x, y, None, 4)
    assert entry["median_cosine"] == pytest.approx(1.0, abs=1e-6) and entry["n"] == 6


def test_alignment_of_unrelated_models_is_near_zero_and_leaves_the_global_rng_alone():
    gen = torch.Generator().manual_seed(2)
    a, b = _Linear(torch.randn(3, 3, 4, 5, 2, generator=gen)), _Linear(torch.randn(3, 3, 4, 5, 2, generator=gen))
    x, y = _clips(), torch.tensor([0, 1, 2, 0, 1, 2])

    class _Noisy(nn.Module):  # a randomized defense: draws from the global RNG in forward
        def forward(self, clips):
            return b(clips + 1e-12 * torch.randn_like(clips))

    torch.manual_seed(3)
    before = torch.get_rng_state()
    entry = gradient_alignment(a, _Noisy(), x, y, None, 6)
    assert torch.equal(torch.get_rng_state(), before)
    assert abs(entry["median_cosine"]) < 0.5  # two random directions in 90 dimensions: cosine of order 0.1
