"""Faithfulness tests of APGD-CE / APGD-DLR (Croce & Hein 2020) and Carlini-Wagner L2 (2017)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_skel.attack import is_adversarial, margin_loss
from robustbench_skel.attacks.apgd import StepSizeSchedule, apgd_checkpoints, apgd_step, dlr_loss
from robustbench_skel.attacks.cw import cw_objective_margin, update_constants
from robustbench_skel.budget import budget_size, valid_mask
from robustbench_skel.registry import ATTACKS

from conftest import make_clips

APGD_NAMES = ["apgd-ce", "apgd-dlr", "apgd-ce-l2", "apgd-dlr-l2"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The attacks here run on tiny tensors, where extra threads only contend for the shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _labels(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def _fooled(model, adv, y, targets=None):
    with torch.no_grad():
        return is_adversarial(model(adv), y, targets)


class Recorder(nn.Module):
    """Wraps a model and keeps every input it is evaluated on, with the logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.inputs: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []

    def forward(self, x):
        out = self.model(x)
        self.inputs.append(x.detach().clone())
        self.logits.append(out.detach().clone())
        return out


class Affine(nn.Module):
    """The same classifier with its logits scaled and shifted."""

    def __init__(self, model: nn.Module, scale: float, shift: float) -> None:
        super().__init__()
        self.model, self.scale, self.shift = model, scale, shift

    def forward(self, x):
        return self.model(x) * self.scale + self.shift


class Wiggly(nn.Module):
    """A deliberately non-monotone victim (sinusoidal features), so APGD's loss oscillates.

    ``bias`` favours class 0 by a margin the bounded features cannot overcome (an unbreakable victim).
    """

    def __init__(self, bias: float = 0.0) -> None:
        super().__init__()
        self.bias = bias
        gen = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(3 * 25, 16, generator=gen), requires_grad=False)
        self.w2 = nn.Parameter(torch.randn(16, 5, generator=gen), requires_grad=False)

    def forward(self, x):
        pooled = x[..., 0].mean(dim=2).flatten(1)  # (N, 3*25), first person, time-averaged
        logits = torch.sin(60 * pooled @ self.w1) @ self.w2 * (0.1 if self.bias else 1.0)
        return logits + self.bias * F.one_hot(torch.zeros_like(logits[:, 0], dtype=torch.long), logits.shape[1])


# --- APGD: the checkpoint schedule ---------------------------------------------------------------


def _paper_checkpoints(n: int) -> list[int]:
    p_prev, p = Fraction(0), Fraction(22, 100)
    out: set[int] = set()
    while p * n <= n:
        out.add(math.ceil(p * n))
        p_prev, p = p, p + max(p - p_prev - Fraction(3, 100), Fraction(6, 100))
    return sorted(w for w in out if w > 0)


def _autoattack_code_checkpoints(n: int) -> list[int]:
    """fra31/auto-attack's integer version: k = int(0.22 n), then k -= int(0.03 n) down to int(0.06 n)."""
    k, size_decr, k_min = max(int(0.22 * n), 1), max(int(0.03 * n), 1), max(int(0.06 * n), 1)
    out, at = [], 0
    while at + k <= n:
        at += k
        out.append(at)
        k = max(k - size_decr, k_min)
    return out


def test_checkpoints_for_100_iterations_are_autoattacks():
    expected = [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(100) == expected
    assert _autoattack_code_checkpoints(100) == expected
    assert _paper_checkpoints(100) == expected


@pytest.mark.parametrize("n", [1, 3, 10, 25, 37, 50, 137, 1000])
def test_checkpoints_follow_the_paper_recursion(n):
    assert apgd_checkpoints(n) == _paper_checkpoints(n)


# --- APGD: the step-size rule, driven by synthetic loss histories --------------------------------


def _drive(histories: list[list[float]], start: list[float], steps: int = 100, rho: float = 0.75):
    """Feed per-sample loss histories into a schedule; returns the step sizes after each iteration."""
    schedule = StepSizeSchedule(torch.tensor(start), 1.0, steps, rho)
    sizes, halves = [], []
    for losses in zip(*histories):
        _, halve = schedule.observe(torch.tensor(losses))
        sizes.append(schedule.step_size.clone())
        halves.append(halve.clone())
    return torch.stack(sizes), torch.stack(halves), schedule


def _increasing_then_falling(n_up: int, n_total: int, start: float = 0.0) -> list[float]:
    """``n_up`` increases, then small decreases that stay above the start (the best still improves)."""
    ups = [start + i + 1 for i in range(n_up)]
    downs = [ups[-1] - 0.01 * (i + 1) for i in range(n_total - n_up)]
    return ups + downs


def test_step_size_halves_at_the_checkpoint_when_fewer_than_rho_steps_increase():
    # 22 steps to the first checkpoint: 16 increases < 0.75 * 22 = 16.5 halves, 17 does not
    sizes, halves, _ = _drive([_increasing_then_falling(16, 22), _increasing_then_falling(17, 22)], [0.0, 0.0])
    assert torch.all(sizes[:21] == 1.0), "nothing changes between checkpoints"
    assert sizes[21].tolist() == [0.5, 1.0]
    assert halves[21].tolist() == [True, False] and not halves[:21].any()


def test_the_threshold_is_strict_as_in_the_paper():
    # checkpoints 22, 41, 57: the third period has 16 steps and 0.75 * 16 = 12 exactly
    first = [float(i) for i in range(1, 23)]  # 22 increases, no halving at 22
    second = [23.0 + i for i in range(19)]  # 19 increases, no halving at 41

    def third(n_up):  # n_up increases out of 16, the best improving
        return [42.0 + i for i in range(n_up)] + [41.0 + n_up - 0.001 * (i + 1) for i in range(16 - n_up)]

    _, halves, _ = _drive([first + second + third(12), first + second + third(11)], [0.0, 0.0])
    assert not halves[:56].any()
    assert halves[56].tolist() == [False, True], "12 of 16 is not fewer than 0.75 * 16 (AutoAttack's code would halve)"


def test_step_size_halves_when_neither_step_size_nor_best_loss_changed():
    first = list(map(float, range(1, 23)))  # improves, 22 increases: no halving at 22
    # second period (19 steps to 41): drop, then 18 increases that never beat the best (22)
    stalled = [-100.0 + i for i in range(19)]
    beaten = stalled[:-1] + [30.0]  # control: the last step beats the best
    sizes, halves, _ = _drive([first + stalled, first + beaten], [0.0, 0.0])
    assert not halves[:40].any()
    assert halves[40].tolist() == [True, False]  # 18 >= 0.75 * 19 increases, so only condition 2 can halve


def test_condition_two_does_not_apply_right_after_a_halving():
    first = _increasing_then_falling(16, 22)  # halves at 22 (condition 1)
    stalled = [-100.0 + i for i in range(19)]  # then many increases, best unchanged
    sizes, halves, _ = _drive([first + stalled], [0.0])
    assert halves[21].item() and not halves[40].item()
    assert sizes[40].item() == 0.5


def test_condition_two_applies_at_the_first_checkpoint_against_the_start():
    # 21 of 22 steps increase, but nothing ever beats the loss at x_0 (the paper compares with w_0 = 0)
    never_better = [float(i) for i in range(22)]
    sizes, halves, _ = _drive([never_better], [100.0])
    assert halves[21].item()


def test_after_a_restart_increases_are_counted_from_the_best_loss():
    first = _increasing_then_falling(16, 22)  # halves at 22; best 16, last loss 15.94
    # next period (19 steps): 15.97 beats the discarded iterate but not x_max, where the iterate now is;
    # then 14 increases, 4 decreases, the best improving: 14 < 0.75 * 19 halves
    second = [15.97] + [16.0 + i + 1 for i in range(14)] + [30.0 - 0.01 * (i + 1) for i in range(4)]
    _, halves, _ = _drive([first + second], [0.0])
    assert halves[21].item() and halves[40].item()


def test_schedule_compaction_keeps_rows_aligned():
    a, b = _increasing_then_falling(16, 22), _increasing_then_falling(17, 22)
    schedule = StepSizeSchedule(torch.zeros(3), 1.0, 100, 0.75)
    for i in range(22):
        if i == 5:
            schedule.keep(torch.tensor([False, True, True]))
        losses = [a[i], a[i], b[i]] if i < 5 else [a[i], b[i]]
        _, halve = schedule.observe(torch.tensor(losses))
    assert halve.tolist() == [True, False] and schedule.step_size.tolist() == [0.5, 1.0]


# --- APGD: the update ------------------------------------------------------------------------------


def test_apgd_step_matches_the_momentum_formula():
    # three samples, every coordinate of a sample alike; L-inf, eps = 1
    def clip(values):
        return torch.tensor(values).view(3, 1, 1, 1, 1).expand(3, 3, 2, 25, 1).clone()

    delta, prev, grad = clip([0.2, 0.9, 0.0]), clip([0.1, 0.5, 0.4]), clip([3.0, 0.1, -2.0])
    mask = torch.ones(3, 1, 2, 1, 1)
    out = apgd_step(delta, prev, grad, torch.tensor([0.5, 0.5, 0.5]), 0.75, mask, "linf", 1.0)
    # z = clip(0.7) = 0.7 -> 0.2 + 0.75*0.5 + 0.25*0.1 = 0.6
    # z = clip(1.4) = 1.0 -> 0.9 + 0.75*0.1 + 0.25*0.4 = 1.075 -> 1.0
    # z = -0.5 -> 0 + 0.75*(-0.5) + 0.25*(-0.4) = -0.475
    expected = clip([0.6, 1.0, -0.475])
    assert torch.allclose(out, expected, atol=1e-6)
    first = apgd_step(delta, prev, grad, torch.tensor([0.5, 0.5, 0.5]), 1.0, mask, "linf", 1.0)  # x_1: no momentum
    assert torch.allclose(first, clip([0.7, 1.0, -0.5]), atol=1e-6)


def test_unfooled_samples_come_back_at_their_highest_loss_point():
    model = Wiggly(bias=10.0)  # unbreakable, and its loss oscillates: the last iterate is not the best
    x = make_clips(n=1, t=6, seed=3, pad=0)
    y = _labels(model, x)
    rec = Recorder(model)
    attack = ATTACKS.get("apgd-ce")(eps=0.004, steps=12)
    adv = attack(rec, x, y)
    assert not _fooled(model, adv, y).any() and attack.last_iterations.tolist() == [12]
    assert len(rec.inputs) == 13  # x_0 .. x_12
    losses = torch.stack([F.cross_entropy(lg, y) for lg in rec.logits])
    best = int(losses.argmax())
    assert best != 12
    assert torch.allclose(adv, rec.inputs[best], atol=1e-7)


def test_the_first_iterates_follow_the_update_rule():
    """x_1 = P(x_0 + 2 eps sign(g_0)) without momentum, then the alpha = 0.75 rule, from the recorded run."""
    model = Wiggly(bias=10.0)
    x = make_clips(n=1, t=6, seed=3, pad=0)
    y = _labels(model, x)
    rec = Recorder(model)
    eps = 0.004
    ATTACKS.get("apgd-ce")(eps=eps, steps=30)(rec, x, y)  # first checkpoint at 7: fixed step size before it
    mask = valid_mask(x)
    start_size = budget_size(rec.inputs[0] - x, mask, "linf")
    assert torch.isclose(start_size, torch.tensor(eps), rtol=1e-3).all(), "AutoAttack's start touches the box"
    for k in range(0, 6):
        point = rec.inputs[k].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(point), y, reduction="sum"), point)
        prev = rec.inputs[k - 1] if k > 0 else rec.inputs[0]
        alpha = 1.0 if k == 0 else 0.75
        expected = x + apgd_step(rec.inputs[k] - x, prev - x, grad, torch.tensor([2 * eps]), alpha, mask, "linf", eps)
        assert torch.allclose(rec.inputs[k + 1], expected, atol=1e-6), f"iterate {k + 1}"


def test_after_a_halving_the_iterate_restarts_from_the_best_point(monkeypatch):
    model = Wiggly(bias=10.0)
    x = make_clips(n=1, t=6, seed=3, pad=0)
    y = _labels(model, x)
    halvings = []
    observe = StepSizeSchedule.observe

    def spy(self, loss):
        improved, halve = observe(self, loss)
        halvings.append((self.iteration, bool(halve[0]), float(self.step_size[0])))
        return improved, halve

    monkeypatch.setattr(StepSizeSchedule, "observe", spy)
    rec = Recorder(model)
    attack = ATTACKS.get("apgd-ce")(eps=0.004, steps=30)
    adv = attack(rec, x, y)
    assert not _fooled(model, adv, y).any(), "the test needs a sample that survives"
    losses = torch.stack([F.cross_entropy(lg, y) for lg in rec.logits])
    checked = 0
    for w, halved, step_size in halvings:
        if not halved or w >= 30:
            continue
        best = int(losses[: w + 1].argmax())
        if best == w:
            continue  # the restart point is the current iterate: nothing to distinguish
        x_max = rec.inputs[best].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_max), y, reduction="sum"), x_max)
        restarted = apgd_step(
            rec.inputs[best] - x, rec.inputs[w - 1] - x, grad, torch.tensor([step_size]), 0.75, valid_mask(x), "linf", 0.004
        )
        expected = x + restarted
        assert torch.allclose(rec.inputs[w + 1], expected, atol=1e-6)
        checked += 1
    assert checked >= 1, f"no halving away from the best point happened: {halvings}"


def test_per_sample_state_survives_compaction(tiny_victim):
    """A sample's result does not depend on the samples after it in the batch (which break earlier or later)."""
    x = make_clips(n=10, t=10, seed=1)
    y = _labels(tiny_victim, x)
    for name in ("apgd-ce", "apgd-dlr"):
        attack = ATTACKS.get(name)(eps=0.02, steps=20)
        full = attack(tiny_victim, x, y)
        iterations = attack.last_iterations.clone()
        assert iterations.min() < iterations.max(), "the batch should shrink during the run"
        for k in (2, 6):
            part = attack(tiny_victim, x[:k], y[:k])  # the random start of the first k rows is the same
            assert torch.equal(part, full[:k]) and torch.equal(attack.last_iterations, iterations[:k])


@pytest.mark.parametrize("name", ["apgd-ce", "apgd-dlr"])
def test_apgd_follows_the_runs_early_stop_rule(tiny_victim, name):
    """Default: leave at the first adversarial iterate; ``none``: every sample runs all iterations and
    comes back at its highest-loss point; ``margin=K``: a sample leaves only once fooled by margin K."""
    x = make_clips(n=8, t=10, seed=4)
    y = _labels(tiny_victim, x)
    attack = ATTACKS.get(name)(eps=0.05, steps=12)
    first = attack(tiny_victim, x, y)
    stopped = attack.last_iterations.clone()
    assert stopped.min() < 12 and _fooled(tiny_victim, first, y).any()

    attack.early_stop = "none"
    attack(tiny_victim, x, y)
    assert bool((attack.last_iterations == 12).all())

    attack.early_stop = "margin=0.02"  # the tiny victim's logits are close: some clips reach it, some not
    adv = attack(tiny_victim, x, y)
    left = attack.last_iterations < 12
    assert left.any() and (~left).any() and bool((attack.last_iterations >= stopped).all())
    assert bool((margin_loss(tiny_victim(adv[left]), y[left]) >= 0.02).all())


# --- APGD: the DLR loss -------------------------------------------------------------------------


@pytest.mark.parametrize("scale,shift", [(0.01, 0.0), (3.0, -50.0), (1000.0, 7.0)])
def test_dlr_is_invariant_to_shifting_and_scaling_the_logits(scale, shift):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 10, generator=gen) * 3
    labels = torch.randint(0, 10, (32,), generator=gen)
    targets = (labels + torch.randint(1, 10, (32,), generator=gen)) % 10
    for t in (None, targets):
        assert torch.allclose(dlr_loss(logits * scale + shift, labels, t), dlr_loss(logits, labels, t), rtol=1e-4, atol=1e-5)
    # cross-entropy is not: the reason DLR exists
    assert not torch.allclose(F.cross_entropy(logits * scale + shift, labels), F.cross_entropy(logits, labels), rtol=1e-3)


def test_dlr_values_and_sign():
    logits = torch.tensor([[4.0, 2.0, 1.0, 0.0], [1.0, 3.0, 0.0, -1.0]])
    labels = torch.tensor([0, 0])
    # untargeted: -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3)
    assert torch.allclose(dlr_loss(logits, labels), torch.tensor([-(4 - 2) / (4 - 1), -(1 - 3) / (3 - 0)]))
    # targeted (t = 2): -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)
    targets = torch.tensor([2, 2])
    assert torch.allclose(dlr_loss(logits, labels, targets), torch.tensor([-(4 - 1) / (4 - 0.5), -(1 - 0) / (3 - (0 - 1) / 2)]))
    gen = torch.Generator().manual_seed(1)
    z, y = torch.randn(200, 6, generator=gen), torch.randint(0, 6, (200,), generator=gen)
    assert torch.equal(dlr_loss(z, y) > 0, z.argmax(1) != y), "positive exactly when misclassified"


def test_apgd_dlr_is_unchanged_by_rescaling_the_victims_logits(tiny_victim):
    x = make_clips(n=12, t=10, seed=1)
    y = _labels(tiny_victim, x)
    base = ATTACKS.get("apgd-dlr")(eps=0.015, steps=20)(tiny_victim, x, y)
    scaled = ATTACKS.get("apgd-dlr")(eps=0.015, steps=20)(Affine(tiny_victim, 64.0, 0.0), x, y)
    assert torch.equal(_fooled(tiny_victim, base, y), _fooled(tiny_victim, scaled, y))
    assert torch.allclose(base, scaled, atol=1e-6)


# --- APGD: strength ---------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.01, 0.02])
def test_apgd_ce_is_at_least_as_strong_as_pgd(tiny_victim, eps):
    x = make_clips(n=24, t=10, seed=1)
    y = _labels(tiny_victim, x)
    pgd = _fooled(tiny_victim, ATTACKS.get("pgd")(eps=eps, steps=20)(tiny_victim, x, y), y).sum()
    apgd = _fooled(tiny_victim, ATTACKS.get("apgd-ce")(eps=eps, steps=20)(tiny_victim, x, y), y).sum()
    assert 0 < apgd and apgd >= pgd


def test_apgd_beats_pgd_on_a_non_monotone_victim():
    model = Wiggly()
    x = make_clips(n=24, t=6, seed=2, pad=0)
    y = _labels(model, x)
    pgd = _fooled(model, ATTACKS.get("pgd")(eps=3e-4, steps=30)(model, x, y), y).sum()
    apgd = _fooled(model, ATTACKS.get("apgd-ce")(eps=3e-4, steps=30)(model, x, y), y).sum()
    assert 0 < pgd < 24 and apgd >= pgd


@pytest.mark.parametrize("name", APGD_NAMES)
def test_apgd_targeted_reaches_the_target_with_a_large_budget(name, tiny_victim):
    x = make_clips(n=6, t=10, seed=2)
    y = _labels(tiny_victim, x)
    targets = (y + 2) % 5
    adv = ATTACKS.get(name)(eps=1.0, steps=30, targeted=True)(tiny_victim, x, y, targets)
    assert _fooled(tiny_victim, adv, y, targets).all()


def test_dlr_refuses_too_few_classes():
    from robustbench_skel.errors import UserError

    model = Affine(nn.Identity(), 1.0, 0.0)
    x = torch.randn(2, 2)
    with pytest.raises(UserError):
        ATTACKS.get("apgd-dlr")(eps=0.1, steps=2).run(model, x, torch.tensor([0, 1]), None, torch.ones(2, 2), torch.Generator())


# --- Carlini-Wagner L2 ---------------------------------------------------------------------------


def test_cw_objective_is_the_papers_f6():
    gen = torch.Generator().manual_seed(0)
    z, y = torch.randn(300, 5, generator=gen), torch.randint(0, 5, (300,), generator=gen)
    t = (y + 1) % 5
    f_untargeted = cw_objective_margin(z, y, None, 0.0)
    f_targeted = cw_objective_margin(z, y, t, 0.0)
    # to minimise: positive while the label still wins (the target does not), zero once it does not (it does)
    assert torch.equal(f_untargeted > 0, z.argmax(1) == y) and torch.equal(f_untargeted == 0, z.argmax(1) != y)
    assert torch.equal(f_targeted > 0, z.argmax(1) != t) and torch.equal(f_targeted == 0, z.argmax(1) == t)
    assert torch.allclose(cw_objective_margin(z, y, None, 0.5), (-margin_loss(z, y)).clamp_min(-0.5))


def test_binary_search_raises_c_after_a_failure_and_lowers_it_after_a_success():
    inf = math.inf
    c, lo, up = update_constants(
        torch.tensor([1.0, 1.0, 1.0, 4.0]),
        torch.tensor([0.0, 0.0, 0.5, 2.0]),
        torch.tensor([inf, inf, 3.0, 8.0]),
        torch.tensor([False, True, False, True]),
    )
    assert c.tolist() == [10.0, 0.5, 2.0, 3.0]  # x10 unbounded; bisect after success; bisect when bounded
    assert lo.tolist() == [1.0, 0.0, 1.0, 2.0] and up.tolist() == [inf, 1.0, 3.0, 4.0]


def test_binary_search_in_a_run(tiny_victim):
    x = make_clips(n=4, t=10, seed=1)
    y = _labels(tiny_victim, x)
    weak = ATTACKS.get("cw")(initial_const=1e-9, binary_search_steps=3)
    weak(tiny_victim, x, y)
    assert torch.allclose(weak.last_constants, torch.tensor([1e-9, 1e-8, 1e-7]).expand(4, 3), rtol=1e-5)
    strong = ATTACKS.get("cw")(initial_const=100.0, binary_search_steps=3)
    adv = strong(tiny_victim, x, y)
    assert _fooled(tiny_victim, adv, y).all()
    assert torch.allclose(strong.last_constants, torch.tensor([100.0, 50.0, 25.0]).expand(4, 3))


def test_cw_finds_smaller_perturbations_than_pgd_l2(tiny_victim):
    x = make_clips(n=16, t=10, seed=1)
    y = _labels(tiny_victim, x)
    mask = valid_mask(x)
    cw = ATTACKS.get("cw")(eps=0.05)
    cw_adv = cw(tiny_victim, x, y)
    pgd_adv = ATTACKS.get("pgd-l2")(eps=0.05, steps=20)(tiny_victim, x, y)
    both = _fooled(tiny_victim, cw_adv, y) & _fooled(tiny_victim, pgd_adv, y)
    assert both.sum() >= 12
    cw_l2, pgd_l2 = budget_size(cw_adv - x, mask, "l2")[both], budget_size(pgd_adv - x, mask, "l2")[both]
    assert cw_l2.mean() < 0.8 * pgd_l2.mean()
    assert (cw_l2 < pgd_l2).float().mean() >= 0.75


def test_cw_returns_its_smallest_adversarial_point_and_loses_none(tiny_victim):
    x = make_clips(n=12, t=10, seed=4)
    y = _labels(tiny_victim, x)
    cw = ATTACKS.get("cw")(eps=0.05)
    adv = cw(tiny_victim, x, y)
    fooled = _fooled(tiny_victim, adv, y)
    size = budget_size(adv - x, valid_mask(x), "l2")
    min_l2 = cw.last_extra["min_l2"]
    assert fooled.any()
    assert torch.equal(cw.last_ever_adversarial, fooled), "every sample adversarial within the budget is returned as such"
    assert torch.allclose(size[fooled], min_l2[fooled], rtol=1e-4)
    # a tighter budget projects the same minimum-norm points: those above it are no longer counted
    tight = ATTACKS.get("cw")(eps=float(min_l2[fooled].median()))
    adv_tight = tight(tiny_victim, x, y)
    assert torch.equal(tight.last_ever_adversarial, (min_l2 > 0) & (min_l2 <= tight.eps))
    assert torch.all(budget_size(adv_tight - x, valid_mask(x), "l2") <= tight.eps * (1 + 1e-5))


def test_cw_keeps_the_smallest_adversarial_point_it_evaluated(tiny_victim):
    x = make_clips(n=6, t=10, seed=1)
    y = _labels(tiny_victim, x)
    mask = valid_mask(x)
    rec = Recorder(tiny_victim)
    cw = ATTACKS.get("cw")(eps=1.0, abort_early=False, steps=15)  # no aborts: every forward sees all rows
    adv = cw(rec, x, y)
    smallest = torch.full((6,), math.inf)
    for point, logits in zip(rec.inputs, rec.logits):
        size = budget_size(point - x, mask, "l2")
        smallest = torch.where(is_adversarial(logits, y, None), torch.minimum(smallest, size), smallest)
    found = torch.isfinite(smallest)
    assert found.sum() >= 4
    assert torch.allclose(budget_size(adv - x, mask, "l2")[found], smallest[found], rtol=1e-5)
    assert torch.allclose(cw.last_extra["min_l2"][found], smallest[found], rtol=1e-5)


def test_cw_does_not_stop_at_the_first_success(tiny_victim):
    x = make_clips(n=6, t=10, seed=1)
    y = _labels(tiny_victim, x)
    cw = ATTACKS.get("cw")(abort_early=False, binary_search_steps=2, steps=7)
    cw(tiny_victim, x, y)
    assert cw.last_iterations.tolist() == [14] * 6


def test_cw_kappa_demands_a_margin(tiny_victim):
    x = make_clips(n=8, t=10, seed=1)
    y = _labels(tiny_victim, x)
    kappa = 0.05
    cw = ATTACKS.get("cw")(eps=1.0, kappa=kappa, initial_const=10.0, steps=30)
    adv = cw(tiny_victim, x, y)
    with torch.no_grad():
        margin = margin_loss(tiny_victim(adv), y)
    fooled = margin > 0
    assert fooled.sum() >= 4
    assert torch.all(margin[fooled] >= kappa - 1e-4)
    targets = (y[:4] + 1) % 5  # targets lie ~20 cm RMS away on this victim: more iterations
    cw_t = ATTACKS.get("cw")(eps=1.0, kappa=kappa, initial_const=10.0, steps=100, binary_search_steps=2, targeted=True)
    adv_t = cw_t(tiny_victim, x[:4], y[:4], targets)
    with torch.no_grad():
        margin_t = -margin_loss(tiny_victim(adv_t), targets)
    assert torch.all(margin_t >= kappa - 1e-4)
