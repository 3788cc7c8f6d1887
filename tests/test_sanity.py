"""The sanity checks catch what they are meant to catch, and pass on a sound attack."""

from __future__ import annotations

import torch

from robustbench_skel.attack import Attack
from robustbench_skel.registry import ATTACKS
from robustbench_skel.run.sanity import run_sanity_checks, variant

from conftest import make_clips


@ATTACKS.register("test-do-nothing")
class DoNothing(Attack):
    """A broken attack: returns the clean clips."""

    description = "test-only: no perturbation"

    def __init__(self, eps: float = 0.01, steps: int = 5, targeted: bool = False, seed: int = 0) -> None:
        super().__init__(eps=eps, targeted=targeted, seed=seed)
        self.steps = steps

    def run(self, model, x, labels, targets, mask, generator):
        return x.clone()


class MaskedGradients(torch.nn.Module):
    """Wraps a model so that its input gradient is zero (quantised input): a gradient-masking defense."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        quantised = torch.round(x * 2).detach() / 2  # half-metre grid, no gradient flows through rounding
        return self.model(quantised + 0 * x)


def _setup(tiny_victim, n=10):
    x = make_clips(n=n, t=10, seed=7)
    with torch.no_grad():
        y = tiny_victim(x).argmax(1)
    return x, y


def _checks(attack, model, x, y):
    generator = torch.Generator().manual_seed(0)
    adv = attack(model, x, y, generator=generator)
    with torch.no_grad():
        success = model(adv).argmax(1).ne(y)
    return run_sanity_checks(attack, model, x, y, None, success, batch_size=8, device=torch.device("cpu"), seed=0)["checks"]


def test_a_sound_attack_passes(tiny_victim):
    x, y = _setup(tiny_victim)
    checks = _checks(ATTACKS.get("pgd")(eps=0.05, steps=10), tiny_victim, x, y)
    assert checks["unbounded"]["passed"] is True
    assert checks["monotone_in_budget"]["passed"] is True
    assert checks["stronger_than_fgsm"]["passed"] is True
    assert checks["converged"]["passed"] in (True, False)  # computed, whatever the tiny model does


def test_a_broken_attack_fails_the_unbounded_check(tiny_victim):
    x, y = _setup(tiny_victim)
    checks = _checks(ATTACKS.get("test-do-nothing")(eps=0.05), tiny_victim, x, y)
    assert checks["unbounded"]["passed"] is False and checks["unbounded"]["success"] == 0.0


def test_gradient_masking_is_flagged(tiny_victim):
    x, y = _setup(tiny_victim)
    masked = MaskedGradients(tiny_victim)
    with torch.no_grad():
        y = masked(x).argmax(1)
    checks = _checks(ATTACKS.get("pgd")(eps=0.05, steps=5), masked, x, y)
    assert checks["unbounded"]["passed"] is False


def test_fgsm_is_not_compared_with_itself_and_variants_keep_hyperparameters():
    fgsm = ATTACKS.get("fgsm")(eps=0.02)
    assert variant(fgsm, eps=0.04).hyperparameters() == {"eps": 0.04, "targeted": False, "seed": 0}
    pgd = ATTACKS.get("pgd")(eps=0.02, steps=4)
    doubled = variant(pgd, steps=8)
    assert doubled.step_size == pgd.step_size and doubled.steps == 8


class _Counting(torch.nn.Module):
    """The wrapped model, counting the clips it is run on."""

    def __init__(self, model, shift: float = 0.0):
        super().__init__()
        self.model, self.shift, self.clips = model, shift, 0

    def forward(self, x):
        self.clips += x.shape[0]
        return self.model(x) + self.shift


def test_re_runs_are_classified_by_the_evaluated_model(tiny_victim):
    """Under BPDA the attacked model is not the evaluated one: success is the evaluated model's, as in the main run."""
    x, y = _setup(tiny_victim)
    with torch.no_grad():
        stubborn_bias = torch.nn.functional.one_hot(y, tiny_victim(x).shape[1]) * 1e4
    stubborn = lambda clips: tiny_victim(clips) + stubborn_bias[: clips.shape[0]]  # noqa: E731  (the same rows, in order)
    evaluated = _Counting(stubborn)
    attack = ATTACKS.get("pgd")(eps=0.05, steps=10)
    checks = run_sanity_checks(attack, tiny_victim, x, y, None, torch.zeros(len(y), dtype=torch.bool), batch_size=len(y),
                               device=torch.device("cpu"), seed=0, evaluated=evaluated)["checks"]
    assert evaluated.clips > 0 and checks["unbounded"]["success"] == 0.0  # the attacked model alone would be fooled
    assert _checks(attack, tiny_victim, x, y)["unbounded"]["success"] > 0.9


def test_sanity_re_runs_resume_from_their_saved_batches(tiny_victim, tmp_path):
    from robustbench_skel.run.progress import BatchCheckpoint

    x, y = _setup(tiny_victim)
    attack = ATTACKS.get("pgd")(eps=0.05, steps=10)
    success = torch.zeros(len(y), dtype=torch.bool)

    def checks(model):
        return run_sanity_checks(attack, model, x, y, None, success, batch_size=4, device=torch.device("cpu"), seed=0,
                                 checkpoint=BatchCheckpoint(tmp_path / "run"), evaluated=tiny_victim)["checks"]

    first_model, again_model = _Counting(tiny_victim), _Counting(tiny_victim)
    first = checks(first_model)
    assert {p.parent.name.rsplit("-", 1)[0] for p in (tmp_path / "run").glob("*/batch-*.pt")} == {
        "sanity-unbounded", "sanity-monotone_in_budget", "sanity-stronger_than_fgsm", "sanity-converged"}
    again = checks(again_model)
    assert first_model.clips > 0 and again_model.clips == 0  # every re-run taken back, none attacked again
    assert again == first


class _Recording(torch.nn.Module):
    """The wrapped model, keeping every batch it is run on."""

    def __init__(self, model):
        super().__init__()
        self.model, self.inputs = model, []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.model(x)


def test_the_unbounded_re_run_draws_its_random_start_within_the_main_budget(tiny_victim):
    """A start drawn in the 1 m box is noise, not a clip: the search near the clip is what the check tests."""
    x, y = _setup(tiny_victim)
    attack = ATTACKS.get("pgd")(eps=0.05, steps=10)
    recording = _Recording(tiny_victim)
    checks = run_sanity_checks(attack, recording, x, y, None, torch.zeros(len(y), dtype=torch.bool), batch_size=len(y),
                               device=torch.device("cpu"), seed=0)["checks"]
    first = recording.inputs[0]  # the unbounded re-run runs first; its first forward pass is at its random start
    start = (first - x).abs().amax()
    assert 0.04 < start <= 0.05 + 1e-6  # a random start, inside the main run's 5 cm, not the unbounded 1 m
    assert checks["unbounded"]["start_radius"] == 0.05 and checks["unbounded"]["eps"] == attack.unbounded_eps
    assert attack.start_radius is None  # the main run's own attack is untouched


def test_start_radius_caps_the_random_start_and_travels_with_the_run_settings():
    pgd = ATTACKS.get("pgd")(eps=1.0, steps=5)
    pgd.start_radius = 0.01
    copy = variant(pgd, steps=10)
    assert copy.start_radius == 0.01 and copy.start_eps() == 0.01 and copy.describe()["start_radius"] == 0.01
    x = make_clips(n=2, t=6, seed=1)
    mask = torch.ones_like(x)
    delta = copy.init_delta(x, mask, torch.Generator().manual_seed(0))
    assert 0 < delta.abs().amax() <= 0.01
    pgd.start_radius = 5.0  # larger than the budget: the budget bounds the start
    assert pgd.start_eps() == 1.0
