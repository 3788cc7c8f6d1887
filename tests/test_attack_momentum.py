"""Faithfulness tests of the momentum family: MI-FGSM, NI-FGSM and MIG (Momentum Integrated Gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robustbench_skel.attacks.mifgsm  # noqa: F401  (registers the attacks)
import robustbench_skel.attacks.mig  # noqa: F401
import robustbench_skel.attacks.nifgsm  # noqa: F401
from robustbench_skel.attack import is_adversarial
from robustbench_skel.attacks.mifgsm import MIFGSM, l1_normalize
from robustbench_skel.attacks.mig import MIG, integrated_gradients
from robustbench_skel.attacks.nifgsm import NIFGSM
from robustbench_skel.budget import budget_size, valid_mask
from robustbench_skel.errors import UserError
from robustbench_skel.registry import ATTACKS

from conftest import make_clips

MOMENTUM = ["mifgsm", "nifgsm", "mig"]


def _labels(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


class Recorder(nn.Module):
    """Passes clips to the victim and keeps a copy of every batch it is asked to classify."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.inner(x)


# --- MI-FGSM ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mifgsm", "nifgsm"])
def test_without_momentum_the_attack_is_ifgsm(name, tiny_victim):
    """mu = 0: g = grad / ||grad||_1 has the sign of grad, and NI's look-ahead vanishes."""
    x = make_clips(n=6, t=10, seed=7)
    y = _labels(tiny_victim, x)
    ifgsm = ATTACKS.get("ifgsm")(eps=0.05, steps=8, step_size=0.01)
    reference = ifgsm(tiny_victim, x, y)
    attack = ATTACKS.get(name)(eps=0.05, steps=8, step_size=0.01, decay=0.0)
    assert torch.equal(attack(tiny_victim, x, y), reference)
    assert torch.equal(attack.last_iterations, ifgsm.last_iterations)
    with_momentum = ATTACKS.get(name)(eps=0.05, steps=8, step_size=0.01)(tiny_victim, x, y)
    assert not torch.equal(with_momentum, reference), "momentum must change the trajectory"


def test_momentum_buffer_after_two_steps_matches_the_formula():
    """g_2 = mu * g1/||g1||_1 + g2/||g2||_1 over the valid coordinates (hand-computed), steps alpha*sign(g)."""
    mask = torch.zeros(1, 1, 2, 1, 1)
    mask[0, 0, 0] = 1  # frame 0 valid: 3 * 25 = 75 coordinates; frame 1 is padding
    a, b, pad = (0, 0, 0, 0, 0), (0, 1, 0, 3, 0), (0, 2, 1, 5, 0)
    g1, g2 = torch.zeros(1, 3, 2, 25, 1), torch.zeros(1, 3, 2, 25, 1)
    g1[a], g1[b], g1[pad] = 2.0, -1.0, 100.0  # mean |g1| over valid = 3/75 = 0.04 -> (50, -25)
    g2[a], g2[b], g2[pad] = 1.0, 0.2, -7.0  # mean |g2| = 1.2/75 = 0.016 -> (62.5, 12.5)
    attack = MIFGSM(eps=0.05, steps=10, decay=1.0)
    alpha = attack.step_size
    state: dict[str, torch.Tensor] = {}
    delta = attack.update(torch.zeros_like(g1), g1, mask, state)
    assert state["momentum"][a] == pytest.approx(50.0) and state["momentum"][b] == pytest.approx(-25.0)
    assert delta[a] == pytest.approx(alpha) and delta[b] == pytest.approx(-alpha)
    delta = attack.update(delta, g2, mask, state)
    expected = torch.zeros_like(g1)
    expected[a], expected[b] = 50.0 + 62.5, -25.0 + 12.5
    assert torch.allclose(state["momentum"], expected, rtol=1e-6, atol=0)
    # the raw gradient at b is now positive, the momentum keeps the step negative
    assert delta[a] == pytest.approx(2 * alpha) and delta[b] == pytest.approx(-2 * alpha)
    assert torch.count_nonzero(delta) == 2, "padding never moves"
    # the reference benchmark's decay 0.1 would have flipped b: the test can tell the two apart
    state_01: dict[str, torch.Tensor] = {}
    weak = MIFGSM(eps=0.05, steps=10, decay=0.1)
    weak.update(torch.zeros_like(g1), g1, mask, state_01)
    assert weak.update(torch.zeros_like(g1), g2, mask, state_01)[b] > 0


def test_l1_normalisation_ignores_padding_and_zero_gradients():
    x = make_clips(n=2, t=6)
    mask = valid_mask(x)
    grad = torch.randn_like(x) + 5 * (1 - mask)
    normalized = l1_normalize(grad, mask)
    n_valid = mask.flatten(1).sum(1) * 75
    assert torch.allclose(normalized.abs().flatten(1).sum(1), n_valid)
    assert torch.all(normalized * (1 - mask) == 0)
    assert torch.equal(l1_normalize(torch.zeros_like(x), mask), torch.zeros_like(x))


def test_momentum_does_not_leak_across_batches(tiny_victim):
    """The reference benchmark initialises its buffer once for all batches; here every call starts at g = 0."""
    first, second = make_clips(n=4, t=10, seed=8), make_clips(n=4, t=10, seed=9)
    attack = MIFGSM(eps=0.05, steps=6)
    attack(tiny_victim, first, _labels(tiny_victim, first))
    after_other_batch = attack(tiny_victim, second, _labels(tiny_victim, second))
    fresh = MIFGSM(eps=0.05, steps=6)(tiny_victim, second, _labels(tiny_victim, second))
    assert torch.equal(after_other_batch, fresh)


@pytest.mark.parametrize("name", MOMENTUM)
def test_default_step_is_eps_over_steps_and_decay_one(name):
    attack = ATTACKS.get(name)(eps=0.02)
    assert attack.step_size == pytest.approx(0.02 / attack.steps)
    assert attack.decay == 1.0


# --- NI-FGSM ---------------------------------------------------------------------------------


def test_nifgsm_takes_the_gradient_at_the_nesterov_lookahead(tiny_victim):
    x = make_clips(n=1, t=10, seed=2)
    y = _labels(tiny_victim, x)
    mask = valid_mask(x)
    n_valid = mask.sum() * 75
    alpha, eps = 0.003, 1.0
    recorder = Recorder(tiny_victim)
    adv = NIFGSM(eps=eps, steps=2, step_size=alpha, decay=1.0)(recorder, x, y)
    assert len(recorder.inputs) == 2, "two gradient points; the last iterate is judged by the caller"

    def grad_at(point):
        point = point.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(tiny_victim(point), y), point)
        return g * mask

    def normalized(g):
        return g / (g.abs().sum() / n_valid)

    assert torch.equal(recorder.inputs[0], x)  # g_0 = 0: the first look-ahead is x itself
    g1 = normalized(grad_at(x))
    delta1 = (alpha * g1.sign()).clamp(-eps, eps)
    lookahead = (delta1 + alpha * 1.0 * g1).clamp(-eps, eps) * mask
    assert torch.allclose(recorder.inputs[1], x + lookahead, atol=1e-6)
    assert not torch.allclose(recorder.inputs[1], x + delta1, atol=1e-4), "the look-ahead is not the iterate"
    g2 = g1 + normalized(grad_at(recorder.inputs[1]))
    delta2 = (delta1 + alpha * g2.sign()).clamp(-eps, eps)
    assert torch.allclose(adv, x + delta2, atol=1e-6)


# --- MIG -------------------------------------------------------------------------------------


class Linear(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, x):
        return (x * self.weight).flatten(1).sum(1, keepdim=True)


@pytest.mark.parametrize("max_rows", [1000, 5])
def test_ig_of_a_linear_model_is_displacement_times_weight(max_rows):
    """IG_i = (x_i - b_i) * w_i exactly, for any K: the (x - b) factor is applied and each gradient is taken at
    its path point (differentiating through the scaling k/K would shrink it by (K+1)/(2K))."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 4, 25, 1, generator=gen)
    baseline = torch.randn(3, 3, 4, 25, 1, generator=gen)
    weight = torch.randn(1, 3, 4, 25, 1, generator=gen)
    ig, logits = integrated_gradients(lambda out, rows: out[:, 0], Linear(weight), x, baseline, 3, max_rows)
    assert torch.allclose(ig, (x - baseline) * weight, atol=1e-5)
    assert torch.allclose(logits[:, 0], (x * weight).flatten(1).sum(1), atol=1e-4), "logits of the iterate itself"


def test_ig_completeness_on_the_tiny_victim(tiny_victim):
    """Sum of attributions = f(x) - f(b), up to a Riemann error that shrinks with K."""
    x = make_clips(n=3, t=10, seed=2)
    y = _labels(tiny_victim, x)
    attack = MIG(eps=0.01)
    baseline = attack.make_baseline(x, valid_mask(x))

    def prob(logits, rows):
        return logits.softmax(1).gather(1, y[rows % 3][:, None]).squeeze(1)

    with torch.no_grad():
        exact = prob(tiny_victim(x), torch.arange(3)) - prob(tiny_victim(baseline), torch.arange(3))
    errors = {}
    for k in (2, 128):
        ig, _ = integrated_gradients(prob, tiny_victim, x, baseline, k, 512)
        errors[k] = (ig.flatten(1).sum(1) - exact).abs()
    assert torch.all(errors[128] <= 0.02 * exact.abs() + 1e-6)
    assert errors[128].sum() < errors[2].sum()


def test_probability_ig_is_confidence_weighted_ce_ig(tiny_victim):
    """d p_y / dx = -p_y * d CE / dx pointwise: at K = 1 the two losses give IGs that differ by the factor p_y."""
    x = make_clips(n=4, t=10, seed=5)
    y = _labels(tiny_victim, x)
    zero = torch.zeros_like(x)
    prob_attack, ce_attack = MIG(ig_loss="probability"), MIG(ig_loss="ce")
    ig_prob, logits = integrated_gradients(lambda out, rows: prob_attack.path_objective(out, y, None), tiny_victim, x, zero, 1)
    ig_ce, _ = integrated_gradients(lambda out, rows: ce_attack.path_objective(out, y, None), tiny_victim, x, zero, 1)
    p_y = logits.softmax(1).gather(1, y[:, None]).view(-1, 1, 1, 1, 1)
    assert torch.allclose(ig_prob, p_y * ig_ce, atol=1e-7, rtol=1e-4)


def test_mig_objective_is_the_class_probability_in_both_modes():
    """The reference benchmark ascends a raw logit when targeted; here both modes use the probability."""
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 5.0, 1.0]])
    labels, targets = torch.tensor([0, 1]), torch.tensor([2, 0])
    probs = logits.softmax(1)
    attack = MIG()
    assert torch.allclose(attack.path_objective(logits, labels, None), -probs[[0, 1], [0, 1]])
    assert torch.allclose(attack.path_objective(logits, labels, targets), probs[[0, 1], [2, 0]])


def test_corner_baseline_lies_below_every_iterate():
    """x_t - b >= 0 on every valid coordinate (as black is below every image), so sign(IG) = sign(path gradient)."""
    x = make_clips(n=3, t=8, seed=6)
    mask = valid_mask(x)
    attack = MIG(eps=0.02)
    baseline = attack.make_baseline(x, mask)
    lowest_iterate = x - attack.eps
    assert torch.all((lowest_iterate - baseline) * mask >= -1e-6)
    assert torch.all(baseline * (1 - mask) == 0), "padding stays zero along the path"
    assert (x * mask < 0).any(), "camera coordinates are signed: the zero clip is not below them"
    assert torch.equal(MIG(baseline="zero").make_baseline(x, mask), torch.zeros_like(x))


def test_mig_batches_the_path_points_and_costs_k_passes_per_iteration(tiny_victim):
    x = make_clips(n=4, t=10, seed=4)
    y = _labels(tiny_victim, x)
    recorder = Recorder(tiny_victim)
    attack = MIG(eps=1e-4, steps=2, path_points=3)
    attack(recorder, x, y)
    assert [len(batch) for batch in recorder.inputs] == [12, 12]  # K x batch per iteration; the last iterate is judged by the caller
    assert attack.last_iterations.tolist() == [2, 2, 2, 2]
    chunked = MIG(eps=1e-4, steps=2, path_points=3)
    chunked.max_forward_rows = 5
    recorder.inputs.clear()
    chunked(recorder, x, y)
    assert [len(batch) for batch in recorder.inputs] == [5, 5, 2, 5, 5, 2]


def test_mig_targeted_reaches_the_target(tiny_victim):
    x = make_clips(n=6, t=10, seed=2)
    y = _labels(tiny_victim, x)
    targets = (y + 2) % 5
    adv = MIG(eps=1.0, steps=12, targeted=True)(tiny_victim, x, y, targets)
    with torch.no_grad():
        assert tiny_victim(adv).argmax(1).eq(targets).all()


# --- all three ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MOMENTUM)
def test_at_least_as_strong_as_fgsm_at_the_same_eps(name, tiny_victim):
    x = make_clips(n=16, t=10, seed=1)
    y = _labels(tiny_victim, x)
    eps = 0.03
    fgsm = ATTACKS.get("fgsm")(eps=eps)(tiny_victim, x, y)
    attack = ATTACKS.get(name)(eps=eps)
    adv = attack(tiny_victim, x, y)
    with torch.no_grad():
        fooled_fgsm = is_adversarial(tiny_victim(fgsm), y, None)
        fooled = is_adversarial(tiny_victim(adv), y, None)
    assert 0 < fooled_fgsm.sum() < len(y), "the budget must discriminate"
    assert fooled.sum() >= fooled_fgsm.sum()
    assert torch.all(budget_size(adv - x, valid_mask(x), "linf") <= eps * (1 + 1e-5) + 1e-7)
    ever = attack.last_ever_adversarial
    assert not (ever & ~fooled).any(), "every adversarial point found is returned"
    # an adversarial result the loop never saw can only be the last iterate, which the caller judges
    assert torch.equal(ever | (fooled & (attack.last_iterations == attack.steps)), fooled)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("mifgsm", {"decay": -1.0}),
        ("nifgsm", {"decay": float("nan")}),
        ("mig", {"path_points": 0}),
        ("mig", {"ig_loss": "logit"}),
        ("mig", {"baseline": "mean"}),
        ("mig", {"steps": 0}),
    ],
)
def test_bad_hyperparameters_are_user_errors(name, kwargs):
    with pytest.raises(UserError):
        ATTACKS.get(name)(**kwargs)
