"""No-box motion-manifold attacks: what they are handed, the SMI step, and the cached, deterministic manifold."""

from __future__ import annotations


import pytest
import torch
from torch import nn

from robustbench_skel.artefacts import ArtefactStore
from robustbench_skel.attack import PrepareContext
from robustbench_skel.handed import UnlabelledPool
from robustbench_skel.layout import NTU25
from robustbench_skel.learn.manifold import load_or_train_manifold, manifold_config
from robustbench_skel.motion import MotionCoefficients
from robustbench_skel.registry import ATTACKS
from robustbench_skel.run.runner import RunConfig, run_benchmark

from conftest import make_clips
from conftest import reachable as reachable_in

TINY = dict(epochs=1, channels=(8,), strides=(2,), dim=8, batch_size=32, crop_frames=8, n_clusters=4, drop_nearest=1)


def _pool(n: int = 16, t: int = 12) -> UnlabelledPool:
    clips = make_clips(n=n, t=t, seed=3)
    return UnlabelledPool(clips, NTU25, 30.0, "train", "pool-" + str(n))


def _tiny_attack(name: str, **kwargs):
    attack = ATTACKS.get(name)(steps=3, **kwargs)
    attack._config = manifold_config("fast", **TINY)
    return attack


def reachable(root, target) -> bool:
    return reachable_in(root, target, through_closures=True)


def test_nobox_attack_is_handed_no_victim_and_no_labels(tmp_path, monkeypatch, trained_tiny_checkpoint):
    seen = {}
    cls = ATTACKS.get("s2mi-fgsm")
    original_run, original_prepare = cls.run, cls.prepare

    def run(self, model, x, labels, targets, mask, generator):
        seen["run"], seen["labels"] = model, labels
        return original_run(self, model, x, labels, targets, mask, generator)

    def prepare(self, handed, context):
        seen["prepare"] = handed
        self._config = manifold_config("fast", **TINY)
        return original_prepare(self, handed, context)

    monkeypatch.setattr(cls, "run", run)
    monkeypatch.setattr(cls, "prepare", prepare)
    victims = []
    from robustbench_skel.run import runner

    original_load = runner.load_victim
    monkeypatch.setattr(runner, "load_victim", lambda *a, **k: victims.append(original_load(*a, **k)) or victims[-1])
    result = run_benchmark(RunConfig(victim="tiny-test-victim", checkpoint=str(trained_tiny_checkpoint), attack="s2mi-fgsm",
                                     steps=2, n_samples=4, sanity_samples=0, device="cpu", nobox_pool="test", results_dir=str(tmp_path)), write=False)
    victim = victims[0].model
    assert isinstance(seen["run"], UnlabelledPool) and seen["prepare"] is seen["run"]
    assert seen["labels"] is None
    assert not reachable(seen["run"], victim)
    assert result.record["threat"]["model"] == "no-box"
    assert result.record["threat"]["artefacts"][0]["kind"] == "motion-manifold"
    assert result.record["threat"]["pool"]["split"] == "test"


def test_reachable_finds_a_victim_through_a_closure_and_a_module():
    victim = nn.Linear(2, 2)
    assert reachable({"a": [nn.Sequential(victim)]}, victim)
    assert reachable(lambda x: victim(x), victim)


def test_smi_step_with_zero_coefficients_is_plain_ifgsm(monkeypatch):
    pool = _pool()
    x = make_clips(n=3, t=12, seed=5)
    zero = MotionCoefficients(torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x))
    from robustbench_skel.attacks import nobox

    monkeypatch.setattr(nobox, "ar_coefficients", lambda clips: zero)
    outs = {}
    for name in ("nobox-ifgsm", "s1i-fgsm", "s2i-fgsm"):
        outs[name] = _tiny_attack(name)(pool, x, None)
    assert torch.equal(outs["s2i-fgsm"], outs["nobox-ifgsm"]) and torch.equal(outs["s1i-fgsm"], outs["nobox-ifgsm"])
    assert (outs["nobox-ifgsm"] - x).abs().max() > 0


def test_smi_step_uses_the_chain_rule_through_the_ar_model(monkeypatch):
    from robustbench_skel.attacks import nobox

    attack = _tiny_attack("s2i-fgsm")
    grad = torch.randn(1, 3, 6, 25, 1)
    mask = torch.ones(1, 1, 6, 1, 1)
    c = torch.full_like(grad, 0.5)
    d = torch.full_like(grad, -0.25)
    coeffs = MotionCoefficients(torch.zeros_like(grad), c, d)
    g = grad / grad.abs().mean()
    step = attack.direction(grad, mask, coeffs, {})
    # S_t = C S_{t-1} + D S_{t-2}: dJ/dS_t picks up C dJ/dS_{t+1} and (D + C C) dJ/dS_{t+2}
    expected = g.clone()
    expected[:, :, :-1] += 0.5 * g[:, :, 1:]
    expected[:, :, :-2] += (-0.25 + 0.25) * g[:, :, 2:]
    assert torch.allclose(step, expected, atol=1e-6)
    state = {}
    mi = _tiny_attack("s2mi-fgsm")
    first = mi.direction(grad, mask, coeffs, state)
    second = mi.direction(grad, mask, coeffs, state)
    assert torch.allclose(second, 2 * first)  # g_t = g_smi + mu g_{t-1}, mu = 1


def test_nobox_result_stays_in_budget_and_absent_frames_stay_zero():
    pool = _pool()
    x = make_clips(n=3, t=12, seed=6)
    out = _tiny_attack("s2mi-fgsm", eps=0.005)(pool, x, None)
    assert (out - x).abs().max() <= 0.005 + 1e-6
    assert torch.equal(out[x.eq(0)], x[x.eq(0)])


def test_manifold_is_deterministic_and_cached(tmp_path, monkeypatch):
    pool = _pool()
    config = manifold_config("fast", **TINY)
    _, first = load_or_train_manifold(pool, config, ArtefactStore(tmp_path / "a"))
    _, again = load_or_train_manifold(pool, config, ArtefactStore(tmp_path / "b"))
    assert first["sha256"] == again["sha256"] and first["key"] == again["key"]
    from robustbench_skel.learn import manifold

    def no_training(*args, **kwargs):
        raise AssertionError("the manifold was trained again")

    monkeypatch.setattr(manifold, "train_manifold", no_training)
    attack = _tiny_attack("s2i-fgsm")
    context = PrepareContext(ArtefactStore(tmp_path / "a"), torch.device("cpu"), 0, False, "python -m robustbench_skel prepare")
    entries = attack.prepare(pool, context)
    assert entries[0]["sha256"] == first["sha256"] and entries[0]["command"].startswith("python -m robustbench_skel prepare")
    content = torch.load(tmp_path / "a" / entries[0]["file"], weights_only=True)
    assert content["centres"].shape == (4, 8)


def test_bad_manifold_preset_is_a_user_error():
    from robustbench_skel.errors import UserError

    with pytest.raises(UserError, match="preset"):
        ATTACKS.get("s2mi-fgsm")(manifold="huge")


def test_moco_queue_and_graph_encoder_train_and_cluster():
    from robustbench_skel.learn.manifold import train_manifold

    config = manifold_config("fast", **{**TINY, "queue": 16, "key_momentum": 0.9, "arch": "gcn", "optimizer": "sgd",
                                         "lr": 0.01, "lr_milestones": (1,)})
    content = train_manifold(_pool(), config)
    assert content["centres"].shape == (4, 8) and torch.isfinite(content["losses"]).all()


def test_random_noise_is_a_seeded_corner_of_the_box_on_valid_frames_only():
    """The floor of the no-box table: every valid coordinate moves by exactly +-eps, padding stays zero,
    the same seed gives the same noise and another seed other noise; no model, label or query is used."""
    x = make_clips(n=3, t=12, seed=6)
    noise = ATTACKS.get("random-noise")
    out = noise(eps=0.005, seed=1)(_pool(), x, None)
    valid = x.ne(0).any(dim=1, keepdim=True).expand_as(x)  # the person-frames the sensor saw
    moved = (out - x)[valid].abs()
    assert torch.allclose(moved, torch.full_like(moved, 0.005), atol=1e-6)
    assert torch.equal(out[~valid], x[~valid])
    signs = (out - x)[valid].sign()
    assert 0.4 < (signs > 0).float().mean() < 0.6  # both directions, about equally often
    assert torch.equal(out, noise(eps=0.005, seed=1)(_pool(), x, None))
    assert not torch.equal(out, noise(eps=0.005, seed=2)(_pool(), x, None))
