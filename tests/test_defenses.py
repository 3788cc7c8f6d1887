"""Defense plugins: purification, bone projection, randomized smoothing, and the training-time defenses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import beta as beta_dist
from scipy.stats import norm
from torch import nn

from conftest import TinyVictim, make_clips
from robustbench_skel.budget import num_valid_coordinates, valid_mask
from robustbench_skel.defense import DefenseContext
from robustbench_skel.errors import UserError
from robustbench_skel.layout import NTU25
from robustbench_skel.registry import DEFENSES


def context(num_classes: int = 5, checkpoint: str | None = None, bpda: bool = False, victim: str = "tiny-test-victim") -> DefenseContext:
    return DefenseContext(victim=victim, dataset="synth", layout=NTU25, num_classes=num_classes, fps=30.0,
                         device=torch.device("cpu"), checkpoint=checkpoint, bpda=bpda)


def smooth_clip(t: int = 40, valid: int = 32) -> torch.Tensor:
    """One person moving along a quadratic path in time (metres), zero padding after ``valid`` frames."""
    x = torch.zeros(1, 3, t, 25, 2)
    s = torch.arange(valid, dtype=torch.float32) / 30
    joints = torch.linspace(-0.5, 0.5, 25)
    for c in range(3):
        x[0, c, :valid, :, 0] = (0.2 * c + joints[None, :]) + (0.4 - 0.1 * c) * s[:, None] + 0.5 * s[:, None] ** 2
    x[0, 2] += 3.0 * (x[0, 2] != 0)
    return x


# --- smooth-purify ------------------------------------------------------------------------------------

def purifier(**options):
    return DEFENSES.get("smooth-purify")(**options).apply(nn.Identity(), context()).purifier


def test_purify_keeps_smooth_motion_and_padding():
    x = smooth_clip()
    y = purifier()(x)
    assert torch.allclose(y[:, :, 3:29], x[:, :, 3:29], atol=1e-5)  # Savitzky-Golay order 2 is exact on quadratics
    assert (y - x).abs().max() < 2e-3  # the odd reflection keeps the ends close too
    assert y[:, :, 32:].eq(0).all() and y[..., 1].eq(0).all()  # padding and the empty person stay zero


def test_purify_removes_high_frequency_noise():
    x = smooth_clip()
    noise = 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) * valid_mask(x)
    for options in ({}, {"method": "average", "window": 5}):
        residual = purifier(**options)(x + noise) - x
        assert residual[:, :, 3:29].std() < 0.6 * noise[:, :, 3:29].std()


def test_purify_rejects_bad_options():
    with pytest.raises(UserError):
        DEFENSES.get("smooth-purify")(window=4)
    with pytest.raises(UserError):
        DEFENSES.get("smooth-purify")(window=5, polyorder=5)


# --- bone-project -------------------------------------------------------------------------------------

def bones_of(x: torch.Tensor) -> torch.Tensor:
    child, parent = zip(*NTU25.bones)
    return (x[:, :, :, list(child)] - x[:, :, :, list(parent)]).norm(dim=1)


def test_bone_project_restores_median_lengths():
    x = make_clips(n=3, t=12, pad=2)
    y = DEFENSES.get("bone-project")().apply(nn.Identity(), context()).purifier(x)
    before, after = bones_of(x[:, :, :10, :, :1]), bones_of(y[:, :, :10, :, :1])
    median = before.median(dim=1, keepdim=True).values
    assert torch.allclose(after, median.expand_as(after), atol=1e-5)
    assert y[:, :, 10:].eq(0).all() and y[..., 1].eq(0).all()
    assert torch.allclose(y[:, :, :10, NTU25.root], x[:, :, :10, NTU25.root])


def test_bone_project_leaves_exact_skeleton_unchanged():
    x = make_clips(n=1, t=10, pad=0)
    projection = DEFENSES.get("bone-project")().apply(nn.Identity(), context()).purifier
    rigid = projection(x[:, :, :1]).repeat(1, 1, 10, 1, 1)  # constant bone lengths in every frame
    rigid = rigid + 0.01 * torch.arange(10.0).view(1, 1, 10, 1, 1) * valid_mask(rigid)  # moving as a whole
    assert torch.allclose(projection(rigid), rigid, atol=1e-5)


@pytest.mark.parametrize("name", ["smooth-purify", "bone-project"])
def test_gradients_flow_through_purifiers(tiny_victim, name):
    model = DEFENSES.get(name)().apply(tiny_victim, context())
    x = make_clips(n=2).requires_grad_(True)
    model(x).logsumexp(1).sum().backward()
    mask = valid_mask(x).expand_as(x).bool()
    assert torch.isfinite(x.grad).all() and x.grad[mask].abs().sum() > 0


# --- randomized smoothing -----------------------------------------------------------------------------

class CoinVictim(nn.Module):
    """Predicts class 0 or 1 from the sign of the noise on one coordinate: the two classes tie."""

    num_classes = 4

    def forward(self, x):
        s = x[:, 0, 0, 0, 0] - 0.5
        return torch.stack([s, -s, torch.full_like(s, -5), torch.full_like(s, -5)], 1)


class ConstantVictim(nn.Module):
    num_classes = 4

    def forward(self, x):
        return torch.tensor([0.0, 0.0, 3.0, 1.0]).expand(x.shape[0], 4) + 0 * x.sum()


def smoothed(victim, bpda=False, **options):
    return DEFENSES.get("randomized-smoothing")(**options).apply(victim, context(num_classes=4, bpda=bpda))


def test_smoothing_abstains_on_a_tie_and_predicts_the_majority():
    x = torch.zeros(3, 3, 4, 25, 2)
    x[:, :, :, :, 0] = 0.5  # the coin coordinate sits exactly on the decision boundary
    logits = smoothed(CoinVictim(), n=200)(x)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    assert logits.argmax(1).eq(4).all()  # the abstain column
    logits = smoothed(ConstantVictim())(x)
    assert logits.argmax(1).eq(2).all()


def test_certified_radius_matches_cohen_formula():
    from robustbench_skel.defenses.randomized_smoothing import certified_radius, lower_confidence_bound

    p_lower = beta_dist.ppf(0.001, 90, 11)  # one-sided Clopper-Pearson at 1 - alpha, by hand
    assert lower_confidence_bound(90, 100, 0.001) == pytest.approx(p_lower)
    assert certified_radius(90, 100, 0.01, 0.001) == pytest.approx(0.01 * norm.ppf(p_lower))
    assert math.isnan(certified_radius(55, 100, 0.01, 0.001))  # pA_lower < 1/2: abstain


def test_certify_reports_both_units_and_certified_accuracy():
    from robustbench_skel.defenses.randomized_smoothing import certified_accuracy, certify

    x = make_clips(n=2, t=6, pad=1)
    out = certify(ConstantVictim(), x, 0.01, 10, 100, 0.001, 4, torch.Generator().manual_seed(0))
    expected = 0.01 * norm.ppf(0.001 ** (1 / 100))  # all 100 draws agree
    assert out["prediction"].eq(2).all()
    assert torch.allclose(out["radius"], torch.full((2,), expected, dtype=torch.float64))
    n_valid = num_valid_coordinates(valid_mask(x)).double()
    assert torch.allclose(out["radius_rms"], out["radius"] / n_valid.sqrt())
    acc = certified_accuracy(ConstantVictim(), x, torch.tensor([2, 1]), [0.0, 1.0], 0.01, 10, 100, num_classes=4)
    assert acc == [0.5, 0.0]


def test_smoothing_defense_reports_certified_accuracy_in_both_units():
    """The record's certified accuracy: CERTIFY on the base classifier, at the configured total-L2 and RMS radii."""
    x = make_clips(n=2, t=6, pad=1)
    defense = DEFENSES.get("randomized-smoothing")(certify_n0=10, certify_n=100, certify_radii=[0.0, 0.02, 1.0],
                                                   certify_radii_rms=[0.0, 1.0])
    model = defense.apply(ConstantVictim(), context(num_classes=4))
    cert = defense.extra_metrics(model, x, torch.tensor([2, 1]))["certified_accuracy"]
    radius = 0.01 * norm.ppf(0.001 ** (1 / 100))  # every draw votes class 2: the largest radius n = 100 allows
    assert radius < 0.02
    assert cert["values"] == [0.5, 0.0, 0.0] and cert["values_rms"] == [0.5, 0.0]  # clip 1 is labelled 1: never certified
    assert cert["median_radius_m"] == pytest.approx(radius) and cert["abstained"] == 0 and cert["n_draws"] == 100


def test_smoothing_certificate_is_computed_once_per_victim_and_clips():
    """CERTIFY is the costly part of a smoothing record and independent of the attack: the next record reuses it."""

    class Counting(ConstantVictim):
        calls = 0

        def forward(self, x):
            Counting.calls += 1
            return super().forward(x)

    x = make_clips(n=2, t=6, pad=1)
    defense = DEFENSES.get("randomized-smoothing")(certify_n0=10, certify_n=100)
    model = defense.apply(Counting(), context(num_classes=4))
    first = defense.extra_metrics(model, x, torch.tensor([2, 1]))
    calls = Counting.calls
    assert calls > 0 and defense.extra_metrics(model, x, torch.tensor([2, 1])) == first and Counting.calls == calls
    defense.extra_metrics(model, x + 0.001, torch.tensor([2, 1]))  # other clips: certified afresh
    assert Counting.calls > calls


def test_smoothing_bpda_draws_fresh_noise_and_is_reproducible(tiny_victim):
    x = make_clips(n=2).requires_grad_(True)
    ctx = DefenseContext("tiny-test-victim", "synth", NTU25, 5, 30.0, torch.device("cpu"), bpda=True)
    a, b = (DEFENSES.get("randomized-smoothing")().apply(tiny_victim, ctx) for _ in range(2))
    first = a(x)
    assert first.shape == (2, 6)
    (grad,) = torch.autograd.grad(first[:, :5].logsumexp(1).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert not torch.equal(a(x), first)  # one new draw per forward: EOT averages over draws
    assert torch.equal(b(x), first)  # seeded: the same sequence of draws


# --- training-time defenses ---------------------------------------------------------------------------

def trained_losses(name: str, options: dict, steps: int = 4) -> list[float]:
    defense = DEFENSES.get(name)(**options)
    torch.manual_seed(0)
    model = defense.build(TinyVictim(num_classes=5), context())
    model.eval()
    part = defense.trainable(model)
    opt = torch.optim.Adam(part.parameters(), lr=0.02)
    x, y = make_clips(n=8, t=12, seed=1), torch.arange(8) % 5
    losses = []
    for _ in range(steps):
        loss, logits = defense.training_loss(model, x, y, torch.Generator().manual_seed(0))
        assert logits.shape == (8, 5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name,options", [("pgd-at", {"steps": 2}), ("trades", {"steps": 2}),
                                          ("beat", {"samples": 4, "heads": 2})])
def test_training_defense_lowers_its_loss(name, options):
    losses = trained_losses(name, options)
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


def test_trades_never_clamps_to_a_data_range(tiny_victim):
    trades = DEFENSES.get("trades")(eps=0.01, steps=3)
    x = make_clips(n=3) - 5.0 * valid_mask(make_clips(n=3))  # coordinates far below zero
    adv = trades.adversarial(tiny_victim, x, tiny_victim(x), torch.Generator().manual_seed(0))
    mask = valid_mask(x).expand_as(x).bool()
    assert adv[mask].min() < -1 and (adv - x).abs().max() <= 0.01 + 1e-6
    assert (adv - x).abs().max() > 0.005 and adv[~mask].eq(0).all()


def test_beat_replay_buffer_is_filled_and_reused():
    beat = DEFENSES.get("beat")(heads=2, samples=4)
    torch.manual_seed(0)
    model = beat.build(TinyVictim(num_classes=5), context())
    x, y = make_clips(n=6, seed=2), torch.arange(6) % 5
    gen = torch.Generator().manual_seed(0)
    beat.training_loss(model, x, y, gen)
    assert all(b.count == 4 and b.reused == 0 for b in beat.buffers)
    beat.training_loss(model, x, y, gen)
    assert all(b.count == 8 and b.reused > 0 for b in beat.buffers)
    state = beat.training_state()
    fresh = DEFENSES.get("beat")(heads=2, samples=4)
    fresh.load_training_state(state)
    assert torch.equal(fresh.buffers[0].data, beat.buffers[0].data) and fresh.buffers[1].count == 8


def test_missing_defended_weights_name_the_defend_command(tiny_victim):
    with pytest.raises(UserError, match="defend --victim tiny-test-victim --defense trades"):
        DEFENSES.get("trades")().apply(tiny_victim, context())


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny12.pt"
    torch.save(TinyVictim(num_classes=51).state_dict(), path)  # synth's class count
    return path


def test_defend_cli_writes_weights_that_load_and_resumes(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    from robustbench_skel.learn import adversarial_training
    from robustbench_skel.commands.cli import main

    real_load = adversarial_training.load_dataset  # 64 clips per split keep the test fast
    monkeypatch.setattr(adversarial_training, "load_dataset", lambda *a: real_load(*a).subset(np.arange(64)))
    common = ["defend", "--victim", "tiny-test-victim", "--defense", "pgd-at", "--checkpoint", str(tiny_checkpoint),
              "--epochs", "2", "--batch-size", "32", "--defense-opt", "steps=1", "--device", "cpu"]
    straight = tmp_path / "straight.pt"
    assert main(common + ["--out", str(straight)]) == 0
    assert straight.is_file() and "sha256" in capsys.readouterr().out

    out = tmp_path / "resumed.pt"
    real_save = adversarial_training.save_torch_atomic

    def save_then_stop(state, path):
        real_save(state, path)
        if path.name.endswith(".resume"):
            raise KeyboardInterrupt

    monkeypatch.setattr(adversarial_training, "save_torch_atomic", save_then_stop)
    assert main(common + ["--out", str(out)]) == 130
    monkeypatch.setattr(adversarial_training, "save_torch_atomic", real_save)
    assert main(common + ["--out", str(out), "--resume"]) == 0
    captured = capsys.readouterr()
    assert "resuming after epoch 1/2" in captured.out + captured.err
    assert out.read_bytes() == straight.read_bytes()

    from robustbench_skel.victim import load_victim

    victim = load_victim("tiny-test-victim", 12, NTU25, "synth", str(tiny_checkpoint)).model
    defense = DEFENSES.get("pgd-at")(steps=1)
    model = defense.apply(victim, context(num_classes=51, checkpoint=str(out)))
    described = defense.describe()
    assert described["weights_sha256"] and described["kind"] == "training"
    assert model(make_clips(n=2)).shape == (2, 51)
    assert not torch.equal(model.fc.weight, victim.fc.weight)  # the defended weights, not the victim's


def shipped_entries() -> list[tuple[str, str, str]]:
    from robustbench_skel.registry import VICTIMS
    from robustbench_skel.victim import model_card

    return [(victim, defense, dataset) for victim in VICTIMS.names()
            for defense, per_dataset in model_card(victim).get("defended", {}).items() for dataset in per_dataset]


@pytest.mark.parametrize("victim,defense,dataset", shipped_entries())
def test_shipped_defended_weights_load_and_match_their_card(victim, defense, dataset):
    from robustbench_skel.run.runner import load_dataset
    from robustbench_skel.victim import load_victim

    data = load_dataset(dataset, "test", None)
    loaded = load_victim(victim, data.num_classes, data.layout, dataset)
    plugin = DEFENSES.get(defense)()
    ctx = DefenseContext(victim, dataset, data.layout, data.num_classes, data.fps, torch.device("cpu"))
    model = plugin.apply(loaded.model, ctx)
    assert plugin.describe()["weights_sha256"]
    assert model(data.tensors()[0][:2]).shape == (2, data.num_classes)


@pytest.mark.parametrize("victim,defense,dataset", shipped_entries()[:1])
def test_shipped_defended_weights_refuse_another_victim_checkpoint(victim, defense, dataset):
    """Shipped defended weights were trained from the shipped victim; on your weights they would mislead."""
    from robustbench_skel.run.runner import load_dataset
    from robustbench_skel.victim import load_victim, model_card

    data = load_dataset(dataset, "test", None)
    loaded = load_victim(victim, data.num_classes, data.layout, dataset)
    plugin = DEFENSES.get(defense)()
    base = model_card(victim)["pretrained"][dataset]["sha256"]
    same = DefenseContext(victim, dataset, data.layout, data.num_classes, data.fps, torch.device("cpu"), base)
    plugin.apply(loaded.model, same)
    other = DefenseContext(victim, dataset, data.layout, data.num_classes, data.fps, torch.device("cpu"), "0" * 64)
    with pytest.raises(UserError, match="--defense-checkpoint"):
        plugin.apply(loaded.model, other)


@pytest.mark.parametrize("name", DEFENSES.names())
def test_every_defense_describes_itself_for_the_record(name):
    """A defense without its own __init__ (bone-project) once crashed the runner asking for ``args``."""
    entry = DEFENSES.get(name)().describe()
    assert entry["name"] == name
    assert "args" not in entry["hyperparameters"] and "kwargs" not in entry["hyperparameters"]
