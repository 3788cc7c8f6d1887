"""``bench``'s PGD parity figure against torchattacks, checked without torchattacks installed.

A stand-in ``torchattacks`` module records what its PGD is handed, so the test can check that both sides
do the same work: the same model, the same clips in [0, 1], the same steps and step size, and a budget so
small that our early stopping never shrinks the batch.
"""

from __future__ import annotations

import sys
import types

import torch

from robustbench_skel.commands import bench, benchcli
from robustbench_skel.registry import ATTACKS
import robustbench_skel.attacks  # noqa: F401  (registers pgd)

from conftest import make_clips


class _FakePGD:
    made: list["_FakePGD"] = []

    def __init__(self, model, eps, alpha, steps, random_start):
        self.model, self.eps, self.alpha, self.steps, self.random_start = model, eps, alpha, steps, random_start
        self.inputs: list[torch.Tensor] = []
        _FakePGD.made.append(self)

    def __call__(self, images, labels):
        self.inputs.append(images)
        for _ in range(self.steps):  # the same passes as the real loop: a forward and a backward per step
            x = images.detach().requires_grad_(True)
            torch.autograd.grad(torch.nn.functional.cross_entropy(self.model(x), labels), x)
        return images


def _fake_torchattacks(monkeypatch) -> None:
    module = types.ModuleType("torchattacks")
    module.__version__ = "0.0-test"
    module.PGD = _FakePGD
    monkeypatch.setitem(sys.modules, "torchattacks", module)
    _FakePGD.made.clear()


def test_both_sides_get_the_same_model_clips_steps_and_step_size(monkeypatch, tiny_victim):
    _fake_torchattacks(monkeypatch)
    x = make_clips(n=4, t=10)
    y = torch.tensor([0, 1, 2, 3])
    attack = ATTACKS.get("pgd")(eps=0.01, steps=3)
    seen_by_ours = []
    original = type(attack).run

    def spy(self, model, xs, *args):
        seen_by_ours.append((model, xs))
        return original(self, model, xs, *args)

    monkeypatch.setattr(type(attack), "run", spy)
    timing = bench.time_against_torchattacks(attack, tiny_victim, x, y, repeats=3)
    theirs = _FakePGD.made[0]
    assert len(timing.ours_s) == len(timing.theirs_s) == 3 and len(timing.ratios) == 3
    on_the_victim = [(m, c) for m, c in seen_by_ours if m is theirs.model]
    assert len(theirs.inputs) == 4 and len(on_the_victim) == 4  # one warm-up call each, then three pairs (ABBA)
    model, ours_clips = on_the_victim[0]
    assert model is theirs.model, "both are handed the same (unit-box) model"
    assert torch.equal(ours_clips, theirs.inputs[0])
    assert 0.0 < float(ours_clips.min()) and float(ours_clips.max()) < 1.0, "torchattacks clamps to [0, 1]"
    with torch.no_grad():  # the wrapped model on the scaled clips is the victim on the clips
        assert torch.allclose(model(ours_clips), tiny_victim(x), atol=1e-5)
    assert theirs.steps == attack.steps and theirs.random_start
    assert theirs.eps < 1e-6 and theirs.alpha == 2.5 * theirs.eps / attack.steps


def test_our_batch_never_shrinks_during_the_timing(monkeypatch, tiny_victim):
    _fake_torchattacks(monkeypatch)
    x = make_clips(n=4, t=10)
    y = torch.tensor([0, 1, 2, 3])
    attack = ATTACKS.get("pgd")(eps=0.01, steps=4)
    sizes = []
    hook = tiny_victim.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    try:
        bench.time_against_torchattacks(attack, tiny_victim, x, y, repeats=1)
    finally:
        hook.remove()
    # two calls of ours and two of theirs, four steps each, every pass on the whole batch
    assert sizes == [4] * 16


def test_the_loops_alone_are_timed_on_a_stand_in(monkeypatch, tiny_victim):
    _fake_torchattacks(monkeypatch)
    x = make_clips(n=4, t=10)
    y = torch.tensor([0, 1, 2, 3])
    timing = bench.time_against_torchattacks(ATTACKS.get("pgd")(eps=0.01, steps=2), tiny_victim, x, y, repeats=3)
    stand_in = _FakePGD.made[1]
    assert stand_in.model is not _FakePGD.made[0].model and not any(p.requires_grad for p in stand_in.model.parameters())
    assert len(timing.loop_ours_s) == len(timing.loop_theirs_s) == 5  # at least five of each
    assert torch.equal(stand_in.inputs[0], _FakePGD.made[0].inputs[0])  # the same clips
    assert 0 < timing.loop_share()


def test_median_ratio_pairs_the_calls():
    p = bench.ParityTiming("x", "wall", 4, 10, ours_s=[1.0, 3.0, 2.0], theirs_s=[2.0, 2.0, 2.0])
    assert p.ratios == [0.5, 1.5, 1.0]
    assert p.median_ratio == 1.0


def test_bench_says_how_to_install_torchattacks_when_missing(monkeypatch, tiny_victim):
    monkeypatch.setattr(benchcli, "torchattacks_version", lambda: None)
    lines = benchcli._parity_lines(ATTACKS.get("pgd")(), tiny_victim, make_clips(n=2), torch.tensor([0, 1]), 1)
    assert len(lines) == 1 and "torchattacks not installed" in lines[0] and "--no-deps" in lines[0]


def test_bench_prints_the_ratio_with_a_stand_in(monkeypatch, tiny_victim):
    _fake_torchattacks(monkeypatch)
    lines = benchcli._parity_lines(ATTACKS.get("pgd")(steps=2), tiny_victim, make_clips(n=2), torch.tensor([0, 1]), 3)
    text = "\n".join(lines)
    assert "torchattacks 0.0-test" in text and "3 alternating pairs" in text
    ratio = float(text.split("median of pairs): ")[1].split()[0])
    assert ratio > 0
