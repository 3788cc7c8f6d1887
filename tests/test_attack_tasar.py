"""TASAR: Bayesian heads on a frozen surrogate, per-head SWAG, one-pass Bayesian gradient, aligned motion model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robustbench_skel.attacks.ifgsm  # noqa: F401  (registers the attacks)
import robustbench_skel.attacks.tasar  # noqa: F401
from robustbench_skel.artefacts import ArtefactStore
from robustbench_skel.attack import PrepareContext
from robustbench_skel.attacks.mifgsm import l1_normalize
from robustbench_skel.attacks.tasar import TASAR
from robustbench_skel.learn.bayesian_heads import (HeadConfig, MeanHeads, SwagMoments, head_logits, sample_heads, train_head,
                                             train_heads)
from robustbench_skel.budget import budget_size, valid_mask
from robustbench_skel.datasets import SkeletonDataset
from robustbench_skel.errors import UserError
from robustbench_skel.handed import SurrogateEnsemble, SurrogateInfo
from robustbench_skel.layout import NTU25
from robustbench_skel.motion import MotionCoefficients, temporal_gradient
from robustbench_skel.registry import ATTACKS

from conftest import TinyVictim, make_clips

CLASSES = 5


def _backbone(requires_grad: bool = False) -> TinyVictim:
    torch.manual_seed(0)
    model = TinyVictim(num_classes=CLASSES).eval()
    for p in model.parameters():
        p.requires_grad_(requires_grad)
    return model


def _ensemble(backbone: nn.Module, n_train: int = 48) -> SurrogateEnsemble:
    clips = make_clips(n_train, t=10, seed=1)
    with torch.no_grad():
        labels = backbone(clips).argmax(1).numpy()
    data = SkeletonDataset(name="toy", version="1", split="train", layout=NTU25, fps=30.0,
                           class_names=tuple(f"c{i}" for i in range(CLASSES)), clips=clips.numpy(), labels=labels,
                           sample_ids=tuple(f"s{i}" for i in range(n_train)))
    info = SurrogateInfo("tiny-test-victim", "random", "0" * 64, None)
    return SurrogateEnsemble([backbone], [info], lambda: data)


def _prepared(tmp_path, **options) -> tuple[TASAR, SurrogateEnsemble, list]:
    handed = _ensemble(_backbone())
    options = {"head_epochs": 2, "samples": 3, "heads": 2, **options}
    attack = ATTACKS.get("tasar")(**options)
    entries = attack.prepare(handed, PrepareContext(ArtefactStore(tmp_path), torch.device("cpu"), 0, False, "rebuild me"))
    return attack, handed, entries


def _batch(handed: nn.Module, n: int = 5, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    x = make_clips(n, t=11, seed=seed)
    with torch.no_grad():
        y = handed(x).argmax(1)
    return x, y


def test_gradient_of_mean_head_loss_is_mean_of_per_head_gradients(tmp_path):
    """One backbone pass for S x K heads gives the same gradient as S x K separate passes (to 1e-5)."""
    attack, handed, _ = _prepared(tmp_path, samples=4, heads=2)
    x, y = _batch(handed)
    mask = valid_mask(x)
    grad, _, _ = attack.gradient(handed, x, torch.zeros_like(x), mask, y, None, {})

    post = attack.posterior()[0]
    sampled = sample_heads(post["mean"], post["sqmean"], 4, attack.scale, torch.Generator().manual_seed(attack.seed))
    assert sampled["w1"].shape == (8, CLASSES, CLASSES)
    assert not torch.allclose(sampled["w1"][0], sampled["w1"][2]), "the posterior must have spread"
    backbone = handed.members[0]
    total = torch.zeros_like(x)
    for h in range(8):
        mlp = nn.Sequential(nn.Linear(CLASSES, CLASSES), nn.Linear(CLASSES, CLASSES), nn.ReLU())
        with torch.no_grad():
            mlp[0].weight.copy_(sampled["w1"][h]), mlp[0].bias.copy_(sampled["b1"][h])
            mlp[1].weight.copy_(sampled["w2"][h]), mlp[1].bias.copy_(sampled["b2"][h])
        xr = x.clone().requires_grad_(True)
        r = torch.relu(backbone(xr))
        (g,) = torch.autograd.grad(F.cross_entropy(r + mlp(r), y, reduction="sum"), xr)
        total += g
    torch.testing.assert_close(grad, total / 8, atol=1e-5, rtol=1e-5)
    assert grad.abs().max() > 1e-3


def test_zero_noise_one_head_no_temporal_is_ifgsm_on_the_mean_head(tmp_path):
    attack, handed, _ = _prepared(tmp_path, heads=1, scale=0.0, temporal=False, steps=5, eps=0.02)
    attack.early_stop = "none"
    x, y = _batch(handed, n=6)
    mean_heads = MeanHeads(handed.members[0], attack.posterior()[0]["mean"]).eval()
    ifgsm = ATTACKS.get("ifgsm")(eps=0.02, steps=5, step_size=0.02 / 5)
    ifgsm.early_stop = "none"
    ours, reference = attack(handed, x, y), ifgsm(mean_heads, x, y)
    assert torch.equal(ours, reference)
    assert (ours - x).abs().max() > 0


def test_heads_train_on_a_frozen_backbone(tmp_path):
    backbone = _backbone(requires_grad=True)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    handed = _ensemble(backbone)
    attack = TASAR(head_epochs=1, samples=2)
    entries = attack.prepare(handed, PrepareContext(ArtefactStore(tmp_path), torch.device("cpu")))
    after = backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in backbone.parameters())
    assert [e["kind"] for e in entries] == ["surrogate-logits", "tasar-heads"]
    # A second prepare loads both artefacts from the cache (same keys, same files).
    again = TASAR(head_epochs=1, samples=2).prepare(handed, PrepareContext(ArtefactStore(tmp_path), torch.device("cpu")))
    assert [e["sha256"] for e in again] == [e["sha256"] for e in entries]


def test_post_training_fits_the_heads_to_the_labels():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(64, CLASSES, generator=gen)
    labels = (logits + 0.5 * torch.randn(64, CLASSES, generator=gen)).argmax(1)
    config = HeadConfig(heads=1, epochs=20, batch_size=16, lr=0.05)
    out = train_heads(logits, labels, config, seed=0)
    init = train_heads(logits, labels, HeadConfig(heads=1, epochs=1, batch_size=64, lr=1e-12, temperature=0), seed=0)
    loss = [F.cross_entropy(head_logits(logits, {k: v[0] for k, v in h["mean"].items()}), labels) for h in (out, init)]
    assert loss[0] < 0.8 * loss[1]


def test_swag_moments_are_per_head_with_their_own_counts():
    gen = torch.Generator().manual_seed(0)
    like = {"w": torch.zeros(3, 3)}
    snaps = [[{"w": torch.randn(3, 3, generator=gen)} for _ in range(n)] for n in (3, 5)]
    moments = [SwagMoments(like), SwagMoments(like)]
    for m, heads in zip(moments, snaps):
        for s in heads:
            m.collect(s)
    for m, heads in zip(moments, snaps):
        stacked = torch.stack([s["w"] for s in heads])
        torch.testing.assert_close(m.mean["w"], stacked.mean(0))
        torch.testing.assert_close(m.sqmean["w"], (stacked * stacked).mean(0))
    assert [m.n for m in moments] == [3, 5]


def test_train_heads_resets_the_swag_counter_for_every_head():
    gen = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(40, CLASSES, generator=gen), torch.randint(0, CLASSES, (40,), generator=gen)
    # 2 epochs x 4 batches = 8 steps < swa_n: the reference's interval would be 0 (ZeroDivisionError); here 1.
    config = HeadConfig(heads=2, epochs=2, batch_size=10, swa_n=300)
    out = train_heads(logits, labels, config, seed=7)
    assert out["n_collected"].tolist() == [8, 8]
    var = out["sqmean"]["w1"] - out["mean"]["w1"] ** 2
    assert var.min() > -1e-6 and var.max() > 0
    alone_final, alone = train_head(logits, labels, config, seed=7 * 1000 + 1)
    assert alone.n == 8
    torch.testing.assert_close(out["mean"]["w1"][1], alone.mean["w1"])
    torch.testing.assert_close(out["sqmean"]["b2"][1], alone.sqmean["b2"])
    # Coarser collection: swa_n = 3 snapshots over 8 steps -> every 2nd step, 4 snapshots per head.
    coarse = train_heads(logits, labels, HeadConfig(heads=2, epochs=2, batch_size=10, swa_n=3), seed=7)
    assert coarse["n_collected"].tolist() == [4, 4]


def test_motion_coefficients_follow_their_clip(tmp_path):
    attack, handed, _ = _prepared(tmp_path)
    x = make_clips(5, t=13, m=2, seed=4, empty_second=False, pad=3)
    perm = torch.tensor([3, 0, 4, 1, 2])
    state, permuted = attack.init_state(x, valid_mask(x), None), attack.init_state(x[perm], valid_mask(x[perm]), None)
    assert set(state) == {"ar_a", "ar_c", "ar_d"} and state["ar_c"].shape == x.shape
    for key in state:
        torch.testing.assert_close(permuted[key], state[key][perm])
    assert state["ar_c"].abs().sum() > 0
    # The whole attack is equivariant to the batch order: each clip keeps its own motion model.
    with torch.no_grad():
        y = handed(x).argmax(1)
    torch.testing.assert_close(attack(handed, x[perm], y[perm]), attack(handed, x, y)[perm], atol=1e-6, rtol=0)


def test_a_clip_gets_the_same_result_alone_or_in_a_compacted_batch(tmp_path):
    """Per-sample state (AR coefficients, momentum) follows the rows through early-stop compaction."""
    attack, handed, _ = _prepared(tmp_path, eps=0.05, steps=6)
    x, y = _batch(handed, n=5, seed=8)
    batch = attack(handed, x, y)
    iterations = attack.last_iterations
    assert iterations.min() < 6, "some samples should leave the batch early for this test to mean anything"
    for i in range(5):
        torch.testing.assert_close(attack(handed, x[i : i + 1], y[i : i + 1]), batch[i : i + 1], atol=1e-6, rtol=0)
    assert budget_size(batch - x, valid_mask(x), "linf").max() <= 0.05 + 1e-7


def test_direction_mixes_bayesian_and_temporal_terms_and_accumulates_on_request(tmp_path):
    gen = torch.Generator().manual_seed(0)
    x = make_clips(2, t=9, seed=5)
    mask = valid_mask(x)
    g1, g2 = torch.randn(x.shape, generator=gen), torch.randn(x.shape, generator=gen)
    plain = TASAR(temporal=False)
    summed = TASAR(temporal=False, accumulate=True)
    s1, s2 = {}, {}
    for g in (g1, g2):
        d_plain, d_sum = plain.direction(g, mask, s1), summed.direction(g, mask, s2)
    torch.testing.assert_close(d_plain, l1_normalize(g2, mask))
    torch.testing.assert_close(d_sum, l1_normalize(g1 + g2, mask))

    mixed = TASAR(bayes_weight=0.8)
    state = mixed.init_state(x, mask, None)
    coeffs = MotionCoefficients(state["ar_a"], state["ar_c"], state["ar_d"])
    first = mixed.direction(g1, mask, state)
    c1 = g1 + temporal_gradient(g1, coeffs)
    torch.testing.assert_close(first, 0.8 * l1_normalize(g1, mask) + 0.2 * l1_normalize(c1, mask))
    second = mixed.direction(g2, mask, state)
    c2 = c1 + g2 + temporal_gradient(g2, coeffs)  # the reference's cgs + momentum + AR_grad, decay 1
    torch.testing.assert_close(second, 0.8 * l1_normalize(g2, mask) + 0.2 * l1_normalize(c2, mask))


@pytest.mark.parametrize("options, words", [
    ({"heads": 0}, "heads"), ({"bayes_weight": 1.5}, "bayes_weight"), ({"scale": -1.0}, "scale"),
    ({"swa_start": 5}, "swa_start"), ({"temporal": "yes"}, "temporal"), ({"head_lr": 0}, "head_lr"),
])
def test_bad_options_are_one_clear_user_error(options, words):
    with pytest.raises(UserError, match=words):
        TASAR(**options)


def test_needs_surrogates_and_prepare(tmp_path):
    attack = TASAR()
    with pytest.raises(UserError, match="--surrogate"):
        attack.prepare(_backbone(), PrepareContext(ArtefactStore(tmp_path), torch.device("cpu")))
    handed = _ensemble(_backbone())
    x, y = _batch(handed, n=2)
    with pytest.raises(RuntimeError, match="prepare"):
        attack(handed, x, y)


def test_run_benchmark_records_the_heads_artefacts(tmp_path, trained_tiny_checkpoint):
    from robustbench_skel.run.record import read_record
    from robustbench_skel.run.runner import RunConfig, run_benchmark

    path = str(trained_tiny_checkpoint)
    config = RunConfig(victim="tiny-test-victim", checkpoint=path, attack="tasar", surrogates=["tiny-test-victim"],
                       surrogate_checkpoints=[path], n_samples=6, steps=2, sanity_samples=2,
                       results_dir=str(tmp_path / "results"), device="cpu",
                       attack_options={"samples": 2, "head_epochs": 1})
    result = run_benchmark(config)
    record = read_record(result.path)
    assert record["threat"]["model"] == "transfer" and record["attack"]["name"] == "tasar"
    artefacts = record["threat"]["artefacts"]
    assert [a["kind"] for a in artefacts] == ["surrogate-logits", "tasar-heads"]
    for a in artefacts:
        assert len(a["sha256"]) == 64 and a["command"].startswith("python -m robustbench_skel prepare --attack tasar")
        assert "--surrogate tiny-test-victim" in a["command"]
    hp = record["attack"]["hyperparameters"]
    assert hp["accumulate"] is False and hp["temporal"] is True and hp["samples"] == 2 and hp["heads"] == 3
    assert "surrogate_success_rate" in record["metrics"]
    assert np.isfinite(record["timing"]["prepare_time_s"])


def test_bench_times_a_prepared_transfer_attack_against_its_surrogate(tmp_path):
    from robustbench_skel.commands.bench import time_attack

    attack, handed, _ = _prepared(tmp_path, steps=2)
    attack.early_stop = "none"
    x, y = _batch(handed, n=3)
    context = PrepareContext(ArtefactStore(tmp_path), torch.device("cpu"))
    t = time_attack(attack, handed, x, y, repeats=1, prepare=lambda a: a.prepare(handed, context))
    assert t.ratio > 0 and t.steps == 2 and t.effective_iterations_per_sample == 2
