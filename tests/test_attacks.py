"""Contract tests run over every registered white-box attack, plus the behaviour of the shared loop."""

from __future__ import annotations

import pytest
import torch

from robustbench_skel.attack import Attack, ThreatModel, is_adversarial
from robustbench_skel.budget import budget_size, valid_mask
from robustbench_skel.errors import UserError
from robustbench_skel.hparams import accepted_arguments
from robustbench_skel.registry import ATTACKS

from conftest import make_clips

WHITE_BOX = [n for n, c in ATTACKS.items() if c.threat_model is ThreatModel.WHITE_BOX]


def _labels(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


@pytest.mark.parametrize("name", WHITE_BOX)
@pytest.mark.parametrize("targeted", [False, True])
def test_every_attack_returns_finite_clips_within_budget(name, targeted, tiny_victim):
    cls = ATTACKS.get(name)
    if targeted and not cls.supports_targeted:
        pytest.skip(f"{name} has no targeted mode")
    x = make_clips(n=6, t=10)
    y = _labels(tiny_victim, x)
    targets = (y + 1) % 5 if targeted else None
    attack = cls(eps=0.05, targeted=targeted, seed=3)
    adv = attack(tiny_victim, x, y, targets)
    mask = valid_mask(x)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert torch.isfinite(adv).all()
    assert torch.all(attack.budget_size(x, adv, mask) <= attack.eps * (1 + 1e-5) + 1e-7)
    assert torch.all((adv - x) * (1 - mask) == 0), "padding and the empty person must not move"
    again = cls(eps=0.05, targeted=targeted, seed=3)(tiny_victim, x, y, targets)
    assert torch.equal(adv, again), "same seed, same result"


@pytest.mark.parametrize("name", WHITE_BOX)
def test_hyperparameters_cover_every_constructor_argument(name):
    attack = ATTACKS.get(name)(eps=0.02)
    params = attack.hyperparameters()
    assert set(params) == set(accepted_arguments(type(attack)))
    assert params["eps"] == 0.02
    described = attack.describe()
    assert described["norm"] == attack.norm and described["threat_model"] == "white-box"
    if attack.norm not in ("linf", "l2"):
        assert type(attack).constrain is not Attack.constrain, "an attack with its own norm must enforce it"


def test_large_budget_pgd_fools_everything_and_beats_fgsm(tiny_victim):
    x = make_clips(n=16, t=10, seed=1)
    y = _labels(tiny_victim, x)
    pgd = ATTACKS.get("pgd")(eps=0.5, steps=20)
    adv = pgd(tiny_victim, x, y)
    assert is_adversarial(tiny_victim(adv), y, None).all()
    small_pgd = ATTACKS.get("pgd")(eps=0.02, steps=20)(tiny_victim, x, y)
    small_fgsm = ATTACKS.get("fgsm")(eps=0.02)(tiny_victim, x, y)
    with torch.no_grad():
        assert is_adversarial(tiny_victim(small_pgd), y, None).sum() >= is_adversarial(tiny_victim(small_fgsm), y, None).sum()


def test_targeted_attack_reaches_the_target(tiny_victim):
    x = make_clips(n=8, t=10, seed=2)
    y = _labels(tiny_victim, x)
    targets = (y + 2) % 5
    adv = ATTACKS.get("pgd")(eps=1.0, steps=40, targeted=True)(tiny_victim, x, y, targets)
    with torch.no_grad():
        assert tiny_victim(adv).argmax(1).eq(targets).all()


def test_early_stopping_and_compaction_keep_samples_independent(tiny_victim):
    """A sample's result must not depend on which other samples share its batch."""
    x = make_clips(n=6, t=10, seed=4)
    y = _labels(tiny_victim, x)
    attack = ATTACKS.get("ifgsm")(eps=0.1, steps=15)
    together = attack(tiny_victim, x, y)
    iters_together = attack.last_iterations.clone()
    for i in range(6):
        alone = attack(tiny_victim, x[i : i + 1], y[i : i + 1])
        assert torch.allclose(alone[0], together[i], atol=1e-6)
        assert int(attack.last_iterations[0]) == int(iters_together[i])
    assert iters_together.min() < iters_together.max() or iters_together.max() < 15


def test_early_stopping_returns_the_first_adversarial_iterate(tiny_victim):
    x = make_clips(n=8, t=10, seed=5)
    y = _labels(tiny_victim, x)
    attack = ATTACKS.get("ifgsm")(eps=0.5, steps=50)
    adv = attack(tiny_victim, x, y)
    fooled = is_adversarial(tiny_victim(adv), y, None)
    assert fooled.all()
    # stopping early means far fewer steps than allowed, and smaller perturbations than the budget
    assert attack.last_iterations.max() < 50
    assert torch.all(budget_size(adv - x, valid_mask(x), "linf") <= attack.step_size * attack.last_iterations + 1e-6)


@pytest.mark.parametrize("kwargs", [{"eps": 0}, {"eps": -1}, {"eps": float("nan")}, {"steps": 0}, {"step_size": -0.1}])
def test_bad_hyperparameters_are_user_errors(kwargs):
    with pytest.raises(UserError):
        ATTACKS.get("pgd")(**kwargs)


def test_attack_restores_training_mode(tiny_victim):
    tiny_victim.train()
    x = make_clips(n=2, t=8)
    ATTACKS.get("fgsm")(eps=0.01)(tiny_victim, x, torch.zeros(2, dtype=torch.long))
    assert tiny_victim.training
