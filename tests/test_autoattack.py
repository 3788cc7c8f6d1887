"""The AutoAttack-style cascade: worst case per sample, only unbroken samples go on, a breakdown per component."""

from __future__ import annotations

import pytest
import torch

from robustbench_skel.attack import is_adversarial
from robustbench_skel.commands.cli import main
from robustbench_skel.run.record import read_record
from robustbench_skel.registry import ATTACKS

import robustbench_skel.attacks.autoattack as aa
from conftest import make_clips


@pytest.fixture
def small_cascade(monkeypatch):
    monkeypatch.setitem(aa.CASCADES, "test-small", ("linf", (("fgsm", {}, None), ("pgd", {"steps": 8}, None), ("apgd-dlr", {"steps": 5}, 2))))
    return "test-small"


class CountingModel(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.batch_sizes = []

    def forward(self, x):
        self.batch_sizes.append(x.shape[0])
        return self.model(x)


def test_components_expand_the_targeted_ranks(small_cascade):
    attack = ATTACKS.get("autoattack")(version=small_cascade)
    assert attack.components() == ["fgsm", "pgd", "apgd-dlr-t1", "apgd-dlr-t2"]
    targeted = ATTACKS.get("autoattack")(version=small_cascade, targeted=True)
    assert targeted.components() == ["fgsm", "pgd", "apgd-dlr"]


def test_worst_case_and_only_unbroken_samples_go_on(tiny_victim, small_cascade):
    x = make_clips(n=12, t=10, seed=11)
    with torch.no_grad():
        y = tiny_victim(x).argmax(1)
    counting = CountingModel(tiny_victim)
    attack = ATTACKS.get("autoattack")(eps=0.03, version=small_cascade)
    adv = attack(counting, x, y)
    by = attack.last_extra["succeeded_by"]
    with torch.no_grad():
        fooled = is_adversarial(tiny_victim(adv), y, None)
    assert torch.equal(fooled, by >= 0), "every sample marked broken is misclassified, and only those"
    assert torch.equal(attack.last_ever_adversarial, fooled)
    # the per-sample worst case is at least as strong as each component alone
    for name, params in (("fgsm", {}), ("pgd", {"steps": 8})):
        alone = ATTACKS.get(name)(eps=0.03, **params)(tiny_victim, x, y)
        with torch.no_grad():
            assert fooled.sum() >= is_adversarial(tiny_victim(alone), y, None).sum()
    # FGSM's first forward sees the whole batch; later components never see the samples FGSM broke
    broken_by_fgsm = int((by == 0).sum())
    assert counting.batch_sizes[1] == 12  # the clean ranking forward, then FGSM's gradient pass
    later = counting.batch_sizes[4:]
    assert broken_by_fgsm == 0 or max(later) <= 12 - broken_by_fgsm


def test_targeted_cascade_reaches_the_target(tiny_victim, small_cascade):
    x = make_clips(n=6, t=10, seed=12)
    with torch.no_grad():
        y = tiny_victim(x).argmax(1)
    targets = (y + 1) % 5
    attack = ATTACKS.get("autoattack")(eps=0.5, version=small_cascade, targeted=True)
    adv = attack(tiny_victim, x, y, targets)
    with torch.no_grad():
        assert tiny_victim(adv).argmax(1).eq(targets).all()


def test_record_has_the_breakdown(tmp_path, capsys, trained_tiny_checkpoint, small_cascade):
    code = main(["run", "--victim", "tiny-test-victim", "--checkpoint", str(trained_tiny_checkpoint), "--attack", "autoattack",
                 "--attack-opt", f"version={small_cascade}", "--n-samples", "10", "--sanity-samples", "0",
                 "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    record = read_record(out.strip().splitlines()[-1])
    breakdown = record["metrics"]["breakdown"]
    assert list(breakdown) == ["fgsm", "pgd", "apgd-dlr-t1", "apgd-dlr-t2"]
    assert sum(v["count"] for v in breakdown.values()) == record["metrics"]["attack_success_rate"]["count"]
    assert record["flags"]["no_success_lost"] is True


def test_pinned_version_is_the_default():
    attack = ATTACKS.get("autoattack")()
    assert attack.version == "skel-aa-v1"
    assert attack.components() == ["apgd-ce", "apgd-dlr-t1", "apgd-dlr-t2", "apgd-dlr-t3", "smart", "ciasa"]
