"""Faithfulness tests of the transfer attacks: dim, ens, svre and ba."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import robustbench_skel.attacks  # noqa: F401  (registers the attacks)
from robustbench_skel.artefacts import ArtefactStore
from robustbench_skel.attack import PrepareContext, ThreatModel
from robustbench_skel.attacks.ba import BA, SwagMoments, finetune_swag
from robustbench_skel.attacks.dim import crop_resize, diversify
from robustbench_skel.budget import budget_size, valid_mask
from robustbench_skel.datasets import SkeletonDataset
from robustbench_skel.errors import UserError
from robustbench_skel.handed import SurrogateEnsemble, SurrogateInfo
from robustbench_skel.layout import NTU25
from robustbench_skel.registry import ATTACKS
from robustbench_skel.run.runner import RunConfig, run_benchmark

from conftest import TinyVictim, make_clips

TRANSFER = ["dim", "ens", "svre", "ba"]


def _victim(seed: int) -> TinyVictim:
    torch.manual_seed(seed)
    model = TinyVictim(num_classes=5).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _train_data(n: int = 8, seed: int = 3) -> SkeletonDataset:
    x = make_clips(n=n, t=10, seed=seed).numpy()
    labels = np.arange(n) % 5
    return SkeletonDataset(name="toy", version="1", split="train", layout=NTU25, fps=30.0,
                           class_names=tuple(f"c{i}" for i in range(5)), clips=x, labels=labels,
                           sample_ids=tuple(f"s{i}" for i in range(n)))


def _ensemble(*members: nn.Module) -> SurrogateEnsemble:
    infos = [SurrogateInfo(f"tiny{i}", "mem", f"sha{i}", None) for i in range(len(members))]
    data = _train_data()
    return SurrogateEnsemble(list(members), infos, lambda: data)


def _labels(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def _mifgsm(**kw):
    return ATTACKS.get("mifgsm")(**kw)


def test_all_four_are_transfer_attacks_with_suite_defaults():
    for name in TRANSFER:
        attack = ATTACKS.get(name)()
        assert attack.threat_model is ThreatModel.TRANSFER
        assert attack.eps == 0.01 and attack.steps == 10 and attack.step_size == pytest.approx(0.001)
        assert attack.hyperparameters()["decay"] == 1.0 and "\n" not in attack.description


# --- ens ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("combine", ["logits", "loss"])
def test_ens_with_one_member_is_mifgsm(combine):
    ens = _ensemble(_victim(0))
    x = make_clips(n=6, t=10, seed=7)
    y = _labels(ens, x)
    reference = _mifgsm(eps=0.05, steps=6)
    attack = ATTACKS.get("ens")(eps=0.05, steps=6, combine=combine)
    assert torch.equal(attack(ens, x, y), reference(ens, x, y))
    assert torch.equal(attack.last_iterations, reference.last_iterations)


def test_ens_loss_and_logit_fusion_differ_with_two_members():
    ens = _ensemble(_victim(0), _victim(1))
    x = make_clips(n=6, t=10, seed=7)
    y = _labels(ens, x)
    by_logits = ATTACKS.get("ens")(eps=0.05, steps=6)
    by_loss = ATTACKS.get("ens")(eps=0.05, steps=6, combine="loss")
    for a in (by_logits, by_loss):
        a.early_stop = "none"
    assert not torch.equal(by_logits(ens, x, y), by_loss(ens, x, y))
    with pytest.raises(UserError, match="combine"):
        ATTACKS.get("ens")(combine="sum")


# --- svre --------------------------------------------------------------------------------------


def test_svre_with_one_surrogate_and_one_inner_step_is_mifgsm():
    """K = 1, M = 1: g_vr = grad J(x_t) - grad J(x_t) + g_ens = the plain gradient at the outer point."""
    ens = _ensemble(_victim(0))
    x = make_clips(n=6, t=10, seed=5)
    y = _labels(ens, x)
    reference = _mifgsm(eps=0.05, steps=6)
    attack = ATTACKS.get("svre")(eps=0.05, steps=6, inner_steps=1)
    for a in (reference, attack):
        a.early_stop = "none"
    assert (attack(ens, x, y) - reference(ens, x, y)).abs().max() <= 1e-6


def test_svre_inner_loop_changes_the_attack_and_is_seeded():
    ens = _ensemble(_victim(0), _victim(1))
    x = make_clips(n=4, t=10, seed=5)
    y = _labels(ens, x)
    one = ATTACKS.get("svre")(eps=0.05, steps=3)
    again = ATTACKS.get("svre")(eps=0.05, steps=3)
    for a in (one, again):
        a.early_stop = "none"
    out = one(ens, x, y)
    assert torch.equal(out, again(ens, x, y))
    assert not torch.equal(out, ATTACKS.get("ens")(eps=0.05, steps=3, combine="loss")(ens, x, y))
    assert (budget_size(out - x, valid_mask(x), "linf") <= 0.05 + 1e-6).all()


# --- cost: forward passes per iteration -------------------------------------------------------


class Counting(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def _calls_during_attack(name, kwargs, k, tmp_path):
    members = [Counting(_victim(i)) for i in range(k)]
    ens = _ensemble(*members)
    attack = ATTACKS.get(name)(eps=0.05, steps=3, **kwargs)
    if name == "ba":
        attack.prepare(ens, PrepareContext(ArtefactStore(tmp_path), torch.device("cpu"), command="test"))
    attack.early_stop = "none"
    x = make_clips(n=4, t=10, seed=1)
    y = _labels(ens, x)
    for m in members:
        m.calls = 0
    attack(ens, x, y)
    return sum(m.calls for m in members)


@pytest.mark.parametrize("name, kwargs, k, per_step", [
    ("dim", {"prob": 1.0}, 1, 1), ("ens", {}, 2, 2), ("svre", {"inner_steps": 3}, 2, 2 + 3 - 1), ("ba", {"n_models": 2}, 1, 2),
])
def test_inherent_cost(name, kwargs, k, per_step, tmp_path):
    """Forwards per iteration, over all members: dim 1, ens K, svre K + M - 1, ba K * n_models; the last iterate
    costs nothing (the caller judges it)."""
    assert _calls_during_attack(name, kwargs, k, tmp_path) == 3 * per_step


# --- dim ---------------------------------------------------------------------------------------


def test_crop_resize_gradient_maps_back_to_the_source_frames():
    """d sum(out) / d x[t] = the summed interpolation weights of the output frames that read frame t."""
    t, valid = 9, 7
    x = torch.randn(1, 3, t, 25, 2, dtype=torch.float64)
    x[:, :, valid:] = 0
    x.requires_grad_(True)
    start, length = torch.tensor([1.3], dtype=torch.float64), torch.tensor([5.5], dtype=torch.float64)
    out = crop_resize(x, start, length, torch.tensor([valid]))
    (grad,) = torch.autograd.grad(out.sum(), x)
    expected = np.zeros(t)
    for j in range(valid):
        p = 1.3 + j * (5.5 - 1) / (valid - 1)
        lo = int(np.floor(p))
        expected[lo] += 1 - (p - lo)
        expected[min(lo + 1, valid - 1)] += p - lo
    per_frame = grad[0, :, :, :, :].permute(1, 0, 2, 3).reshape(t, -1)
    assert torch.allclose(per_frame, torch.tensor(expected).view(t, 1).expand_as(per_frame))
    assert expected[0] == 0 and expected[valid:].sum() == 0  # frame 0 lies before the window; padding is never read
    assert out[:, :, valid:].abs().sum() == 0
    # The full window at scale 1 is the identity on the valid frames.
    same = crop_resize(x.detach(), torch.tensor([0.0], dtype=torch.float64), torch.tensor([float(valid)], dtype=torch.float64),
                       torch.tensor([valid]))
    assert torch.allclose(same, x.detach())


def test_diversify_is_differentiable_and_keeps_absent_joints_absent():
    x = make_clips(n=6, t=12, seed=2).requires_grad_(True)
    mask = valid_mask(x)
    gen = torch.Generator().manual_seed(0)
    out = diversify(x, mask, gen, crop_scale=0.8, shear=1.0, corrupt_joints=15)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert (out * (1 - mask)).abs().sum() == 0  # padding and the empty second actor stay zero
    (grad,) = torch.autograd.grad((out * torch.randn_like(out)).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert (grad * (1 - mask)).abs().sum() == 0  # nor do they receive gradient
    again = diversify(x.detach(), mask, torch.Generator().manual_seed(0), 0.8, 1.0, 15)
    assert torch.equal(again, out.detach())


def test_dim_without_diversity_is_mifgsm():
    ens = _ensemble(_victim(0))
    x = make_clips(n=6, t=10, seed=7)
    y = _labels(ens, x)
    reference = _mifgsm(eps=0.05, steps=6, decay=0.0)
    attack = ATTACKS.get("dim")(eps=0.05, steps=6, prob=0.0, decay=0.0)
    assert torch.equal(attack(ens, x, y), reference(ens, x, y))
    assert torch.equal(ATTACKS.get("dim")(eps=0.05, steps=6, prob=0.0)(ens, x, y), _mifgsm(eps=0.05, steps=6)(ens, x, y))


def test_dim_is_seeded_and_diversity_changes_the_result():
    ens = _ensemble(_victim(0))
    x = make_clips(n=6, t=10, seed=7)
    y = _labels(ens, x)
    a, b = ATTACKS.get("dim")(eps=0.05, steps=4, prob=1.0), ATTACKS.get("dim")(eps=0.05, steps=4, prob=1.0)
    for atk in (a, b):
        atk.early_stop = "none"
    out = a(ens, x, y)
    assert torch.equal(out, b(ens, x, y))
    assert not torch.equal(out, _mifgsm(eps=0.05, steps=4)(ens, x, y))
    assert a.last_ever_adversarial is None  # judged on diversified copies: not reported
    assert (budget_size(out - x, valid_mask(x), "linf") <= 0.05 + 1e-6).all()
    with pytest.raises(UserError, match="prob"):
        ATTACKS.get("dim")(prob=1.5)


# --- ba ----------------------------------------------------------------------------------------


def test_swag_moments_are_the_average_of_the_snapshots():
    model = _victim(0)
    before = copy.deepcopy(model.state_dict())
    clips, labels = _train_data(n=8).tensors()
    snapshots: list[dict[str, torch.Tensor]] = []
    moments = finetune_swag(model, clips, labels, epochs=2, lr=0.05, momentum=0.9, weight_decay=5e-4, flat_lambda=1.0,
                            flat_radius=0.1, batch_size=3, swa_n=3, seed=0, device=torch.device("cpu"),
                            on_snapshot=snapshots.append)
    assert moments.count == len(snapshots) == 3  # 6 steps, every 2nd collected
    for name in moments.mean:
        stack = torch.stack([s[name] for s in snapshots])
        assert torch.allclose(moments.mean[name], stack.mean(0), atol=1e-6)
        assert torch.allclose(moments.sqmean[name], stack.square().mean(0), atol=1e-6)
    assert not torch.equal(snapshots[0]["fc.weight"], snapshots[-1]["fc.weight"])  # the weights moved
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the handed model is untouched
    running = SwagMoments()
    for w in (torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])):
        running.collect({"w": w})
    assert torch.equal(running.mean["w"], torch.tensor([2.0, 4.0])) and torch.equal(running.sqmean["w"], torch.tensor([5.0, 20.0]))


def test_ba_finetuning_clips_every_update_so_a_steep_surrogate_cannot_blow_up():
    """Regression: unclipped, lr 0.01 with the flatness term took ST-GCN's synth 1.0 weights to NaN within 3 steps,
    and the NaN moments made every BA gradient NaN (0% success). The fix clips the gradient norm (on by default), so
    no SGD step (momentum 0 here) moves the weights further than lr * max_grad_norm, while the unclipped run of the
    same case moves further every step and grows without bound."""
    clips, labels = _train_data(n=8).tensors()
    assert BA().finetune_spec()["max_grad_norm"] is not None
    lr, max_norm = 10.0, 1.0

    def moves(max_grad_norm):
        snapshots = []
        finetune_swag(_victim(0), clips, labels, epochs=3, lr=lr, momentum=0.0, weight_decay=0.0, flat_lambda=1.0,
                      flat_radius=0.1, batch_size=4, swa_n=100, seed=0, device=torch.device("cpu"),
                      max_grad_norm=max_grad_norm, on_snapshot=snapshots.append)
        assert len(snapshots) == 6  # one per step
        return [float(torch.sqrt(sum((b[k] - a[k]).square().sum() for k in a))) for a, b in zip(snapshots, snapshots[1:])]

    clipped, unclipped = moves(max_norm), moves(None)
    assert max(clipped) <= lr * max_norm * (1 + 1e-5)
    assert min(unclipped) > lr * max_norm and unclipped[-1] > 100 * unclipped[0]


def test_ba_finetuning_that_diverges_stops_with_a_clear_error():
    clips, labels = _train_data(n=8).tensors()
    with pytest.raises(UserError, match="diverged"):
        finetune_swag(_victim(0), clips, labels, epochs=3, lr=1e30, momentum=0.9, weight_decay=0.0, flat_lambda=1.0,
                      flat_radius=0.1, batch_size=4, swa_n=3, seed=0, device=torch.device("cpu"), max_grad_norm=None)


def test_ba_with_scale_zero_is_mifgsm_on_the_mean_weights(tmp_path):
    member = _victim(0)
    ens = _ensemble(member)
    store = ArtefactStore(tmp_path)
    attack = BA(eps=0.05, steps=5, scale=0.0, n_models=1, epochs=1, lr=0.05, batch_size=4)
    entries = attack.prepare(ens, PrepareContext(store, torch.device("cpu"), command="prepare ba"))
    assert len(entries) == 1 and entries[0]["kind"] == "ba-swag" and entries[0]["command"] == "prepare ba"
    content = torch.load(store.root / entries[0]["file"], weights_only=True)
    assert set(content) == {"mean", "sqmean", "snapshots", "__key__"}
    mean_model = copy.deepcopy(member)
    mean_model.load_state_dict(content["mean"], strict=False)
    x = make_clips(n=6, t=10, seed=4)
    y = _labels(member, x)
    attack.early_stop = reference_stop = "none"
    reference = _mifgsm(eps=0.05, steps=5)
    reference.early_stop = reference_stop
    assert torch.equal(attack(ens, x, y), reference(_ensemble(mean_model), x, y))
    # The second prepare loads the cached moments: same key, same file.
    again = BA(eps=0.05, steps=5, scale=0.0, n_models=1, epochs=1, lr=0.05, batch_size=4)
    assert again.prepare(ens, PrepareContext(store, torch.device("cpu"), command="prepare ba")) == entries
    # Another fine-tuning hyperparameter is another artefact.
    other = BA(epochs=1, lr=0.02, batch_size=4).prepare(ens, PrepareContext(store, torch.device("cpu")))
    assert other[0]["key"] != entries[0]["key"]


def test_ba_samples_weights_and_needs_prepare(tmp_path):
    ens = _ensemble(_victim(0), _victim(1))
    x = make_clips(n=4, t=10, seed=4)
    y = _labels(ens, x)
    attack = BA(eps=0.05, steps=3, epochs=1, batch_size=4, n_models=2)
    with pytest.raises(RuntimeError, match="prepare"):
        attack(ens, x, y)
    entries = attack.prepare(ens, PrepareContext(ArtefactStore(tmp_path), torch.device("cpu")))
    assert len(entries) == 2 and entries[0]["key"] != entries[1]["key"]  # one set of moments per member
    attack.early_stop = "none"
    out = attack(ens, x, y)
    deterministic = BA(eps=0.05, steps=3, epochs=1, batch_size=4, n_models=2, scale=0.0)
    deterministic.prepare(ens, PrepareContext(ArtefactStore(tmp_path), torch.device("cpu")))
    deterministic.early_stop = "none"
    assert not torch.equal(out, deterministic(ens, x, y))
    assert (budget_size(out - x, valid_mask(x), "linf") <= 0.05 + 1e-6).all()


# --- through the runner ------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRANSFER)
def test_refuses_to_run_without_a_surrogate(name, tmp_path, trained_tiny_checkpoint):
    config = RunConfig(victim="tiny-test-victim", attack=name, checkpoint=str(trained_tiny_checkpoint), n_samples=4,
                       device="cpu", results_dir=str(tmp_path), sanity_samples=0)
    with pytest.raises(UserError, match="surrogate"):
        run_benchmark(config, write=False)


@pytest.mark.parametrize("name", TRANSFER)
def test_end_to_end_transfer_run(name, tmp_path, trained_tiny_checkpoint):
    options = {"epochs": 1, "batch_size": 128} if name == "ba" else {}
    config = RunConfig(victim="tiny-test-victim", attack=name, checkpoint=str(trained_tiny_checkpoint), n_samples=6,
                       steps=2, device="cpu", results_dir=str(tmp_path), sanity_samples=2, attack_options=options,
                       surrogates=["tiny-test-victim"], surrogate_checkpoints=[str(trained_tiny_checkpoint)])
    result = run_benchmark(config)
    record = result.record
    assert result.path is not None and result.path.is_file()
    assert record["threat"]["model"] == "transfer" and record["attack"]["threat_model"] == "transfer"
    assert "surrogate_success_rate" in record["metrics"]
    assert record["flags"]["all_within_budget"] and record["flags"]["all_finite"]
    assert record["attack"]["hyperparameters"]["steps"] == 2
    alignment = record["metrics"]["gradient_alignment"]  # the surrogate is the victim's own checkpoint
    assert alignment["n"] > 0 and alignment["median_cosine"] == pytest.approx(1.0, abs=1e-4)
    if name == "ba":
        (entry,) = record["threat"]["artefacts"]
        assert entry["kind"] == "ba-swag" and "--attack ba" in entry["command"]
