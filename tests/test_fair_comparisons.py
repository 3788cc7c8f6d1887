"""Fair comparisons (issue 25): one step rule, the tasar-paper preset, the reference SWAG bookkeeping,
the Bayesian-term diagnostic and paired McNemar tests."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

import robustbench_skel.attacks.ifgsm  # noqa: F401  (registers the attacks)
import robustbench_skel.attacks.tasar  # noqa: F401
from robustbench_skel.attack import IterativeGradientAttack, parse_early_stop
from robustbench_skel.learn.bayes_diagnostic import degenerate_check
from robustbench_skel.learn.bayesian_heads import PARAM_NAMES, ReferenceSwagMoments, SwagMoments
from robustbench_skel.budget import valid_mask
from robustbench_skel.commands.cli import main
from robustbench_skel.errors import UserError
from robustbench_skel.board.paired import PairedTable, compare_records, mcnemar_exact, newcombe_interval, versus_best
from robustbench_skel.run.presets import apply_preset
from robustbench_skel.registry import ATTACKS
from robustbench_skel.run.runner import RunConfig, with_transfer_step
from robustbench_skel.step_rule import mean_abs_normalize, step_summary

from conftest import make_clips
from test_attack_tasar import _batch, _prepared


# --- 1. the step rule ------------------------------------------------------------------------------
def test_mean_abs_step_on_a_hand_computed_case():
    """alpha * g / mean|g| over the valid coordinates only: padding neither counts in the mean nor moves."""
    g = torch.zeros(1, 3, 2, 25, 2)
    g[0, 0, 0, 0, 0], g[0, 1, 0, 1, 0], g[0, 2, 1, 3, 0] = 3.0, -1.5, 0.0
    g[0, 0, 1, 2, 1] = 100.0  # in the absent second actor: must not count or move
    x = torch.zeros_like(g)
    x[..., 0] = 1.0  # actor 0 present in both frames, actor 1 absent
    mask = valid_mask(x)
    # valid coordinates: 2 frames x 25 joints x 3 channels = 150; sum |g| there = 4.5; mean = 0.03
    step = mean_abs_normalize(g, mask)
    assert step[0, 0, 0, 0, 0].item() == pytest.approx(100.0) and step[0, 1, 0, 1, 0].item() == pytest.approx(-50.0)
    assert step[..., 1].abs().sum() == 0
    attack = ATTACKS.get("ifgsm")(eps=0.01, steps=4, step_rule="mean-abs")
    assert attack.step_size == 0.01  # the reference's alpha = eps
    moved = attack.update(torch.zeros_like(g), g, mask, {})
    assert moved[0, 0, 0, 0, 0].item() == pytest.approx(1.0) and moved[0, 1, 0, 1, 0].item() == pytest.approx(-0.5)
    assert mean_abs_normalize(torch.zeros_like(g), mask).abs().sum() == 0  # no gradient: no step, no NaN


def test_step_rule_is_recorded_and_transfer_takes_the_shared_step():
    ifgsm = ATTACKS.get("ifgsm")(eps=0.02, steps=20)
    assert ifgsm.step_size == pytest.approx(2.5 * 0.02 / 20)  # white-box default unchanged
    config = RunConfig(attack="ifgsm", eps=0.02, steps=20, surrogates=["stgcn"])
    shared = with_transfer_step(ifgsm, config)
    assert shared.describe()["step"] == {"rule": "sign", "size": pytest.approx(0.001), "iterations": 20}
    mine = ATTACKS.get("ifgsm")(eps=0.02, steps=20, step_size=0.003)
    assert with_transfer_step(mine, RunConfig(attack="ifgsm", eps=0.02, steps=20, step_size=0.003)).step_size == 0.003
    mean_abs = with_transfer_step(ATTACKS.get("mifgsm")(eps=0.02, steps=20, step_rule="mean-abs"), config)
    assert mean_abs.describe()["step"]["rule"] == "mean-abs" and mean_abs.step_size == 0.02
    for name in ("mifgsm", "dim", "ens", "svre", "ba", "tasar"):
        assert ATTACKS.get(name)(eps=0.02, steps=20).describe()["step"]["size"] == pytest.approx(0.001), name
    with pytest.raises(UserError, match="step_rule must be one of"):
        ATTACKS.get("mifgsm")(step_rule="adam")
    old = {"hyperparameters": {"steps": 20, "step_size": 0.0025}}  # a record from before the rule was stated
    assert step_summary(old) == {"rule": "sign", "size": 0.0025, "iterations": 20}


# --- 2. the preset -----------------------------------------------------------------------------------
class _MeanAbove(nn.Module):
    """Class 1 once the clip's mean coordinate passes ``bar`` (class 0's constant logit)."""

    def __init__(self, bar: float) -> None:
        super().__init__()
        self.bar = bar
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, x):
        s = x.flatten(1).mean(dim=1) * self.weight
        return torch.stack([torch.full_like(s, self.bar), s], dim=1)


def test_batch_early_stop_leaves_once_every_clip_fools_the_surrogate():
    x = torch.ones(2, 3, 4, 25, 1)
    x[1] -= 2e-3  # each sign step of 1e-3 raises the mean by 1e-3: clip 0 is fooled after 1 step, clip 1 after 3
    labels = torch.zeros(2, dtype=torch.long)
    model = _MeanAbove(1.0 + 0.5e-3)
    attack = ATTACKS.get("ifgsm")(eps=0.01, steps=50, step_size=1e-3)
    attack.early_stop = parse_early_stop("batch")
    adv = attack(model, x, labels)
    assert attack.last_iterations.tolist() == [3, 3]  # both step until the whole batch is fooled, then stop
    assert (model(adv).argmax(1) == 1).all()
    assert (adv[0] - x[0]).amax().item() == pytest.approx(3e-3, abs=1e-6)  # clip 0 kept stepping with the batch
    attack.early_stop = "adversarial"
    attack(model, x, labels)
    assert attack.last_iterations.tolist() == [1, 3]  # the per-clip rule, for contrast


def test_tasar_paper_preset_pins_the_reference_protocol():
    config = apply_preset(RunConfig(attack="tasar", surrogates=["stgcn"], preset="tasar-paper",
                                    attack_options={"swag": "reference"}))
    assert (config.steps, config.step_size, config.early_stop) == (200, None, "batch")
    assert config.attack_options == {"swag": "reference", "step_rule": "mean-abs", "heads": 3, "samples": 20,
                                     "scale": 1.5, "bayes_weight": 0.8, "temporal": True, "accumulate": True}
    assert apply_preset(RunConfig(attack="dim", surrogates=["stgcn"], preset="tasar-paper")).attack_options == {"step_rule": "sign"}
    with pytest.raises(UserError, match="pins --attack-opt accumulate=True"):
        apply_preset(RunConfig(attack="tasar", preset="tasar-paper", attack_options={"accumulate": False}))
    with pytest.raises(UserError, match="pins --steps"):
        apply_preset(RunConfig(attack="ifgsm", preset="tasar-paper", steps=10))


# --- 3. the reference posterior --------------------------------------------------------------------
def test_reference_swag_bookkeeping_on_a_hand_made_case():
    """Head A starts its phase at 1 and snapshots 2, 4; head B starts at 10 and snapshots 3.

    Paper: A mean 3, sqmean 10; B mean 3, sqmean 9. Reference (counter shared, moments started at theta):
    A: the same (n starts at 0); B starts with n = 2 and mean = sqmean = 10, so mean = (2*10 + 3) / 3 and
    sqmean = (2*10 + 9) / 3.
    """
    def head(v: float) -> dict[str, torch.Tensor]:
        return {k: torch.tensor([v]) for k in PARAM_NAMES}

    paper_a, paper_b = SwagMoments(head(1.0)), SwagMoments(head(10.0))
    ref_a = ReferenceSwagMoments(head(1.0), start_count=0)
    for v in (2.0, 4.0):
        paper_a.collect(head(v))
        ref_a.collect(head(v))
    ref_b = ReferenceSwagMoments(head(10.0), start_count=ref_a.n)
    paper_b.collect(head(3.0))
    ref_b.collect(head(3.0))
    assert (paper_a.mean["w1"].item(), paper_a.sqmean["w1"].item()) == (3.0, 10.0)
    assert (ref_a.mean["w1"].item(), ref_a.sqmean["w1"].item()) == (3.0, 10.0)
    assert (paper_b.mean["w1"].item(), paper_b.sqmean["w1"].item()) == (3.0, 9.0)
    assert ref_b.n == 3
    assert ref_b.mean["w1"].item() == pytest.approx(23 / 3) and ref_b.sqmean["w1"].item() == pytest.approx(29 / 3)


def test_tasar_swag_reference_option_trains_other_moments(tmp_path):
    paper, _, _ = _prepared(tmp_path / "a")
    reference, _, entries = _prepared(tmp_path / "b", swag="reference")
    assert reference.hyperparameters()["swag"] == "reference"
    first_p, first_r = paper.posterior()[0], reference.posterior()[0]
    assert torch.equal(first_p["mean"]["w1"][0], first_r["mean"]["w1"][0])  # head 0: the counter starts at 0
    assert not torch.allclose(first_p["mean"]["w1"][1], first_r["mean"]["w1"][1])  # head 1 inherits the count
    with pytest.raises(UserError, match="swag must be one of"):
        ATTACKS.get("tasar")(swag="shared")


# --- 4. the diagnostic ----------------------------------------------------------------------------
def test_degenerate_flag_fires_when_all_heads_are_equal(tmp_path):
    attack, handed, _ = _prepared(tmp_path)
    x, y = _batch(handed)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    live = attack.bayesian_diagnostic(handed, x, y, None, gen())
    assert live["head_spread"] > 0 and live["median_cosine"] < 1 - 1e-6
    assert degenerate_check({**live, "median_cosine": 0.9})["passed"] is True
    post = attack.posterior()[0]
    one = {k: v[:1].expand_as(v).clone() for k, v in post["mean"].items()}  # every head equals head 0
    attack._posterior = [{"mean": one, "sqmean": {k: v * v for k, v in one.items()}}]  # and no spread
    dead = attack.bayesian_diagnostic(handed, x, y, None, gen())
    check = degenerate_check(dead)
    assert dead["median_cosine"] > live["median_cosine"] and dead["median_cosine"] > 0.98 and dead["head_spread"] < 1e-6
    assert check["passed"] is False and check["message"] == "Bayesian term degenerate"


# --- 5. paired tests ------------------------------------------------------------------------------
def test_mcnemar_exact_against_a_hand_computed_table():
    # 1 of 8 discordant clips for A: p = 2 * P(X <= 1), X ~ Bin(8, 1/2) = 2 * (1 + 8) / 256
    assert mcnemar_exact(1, 7) == pytest.approx(18 / 256)
    assert mcnemar_exact(7, 1) == pytest.approx(18 / 256)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == pytest.approx(1.0)
    # Newcombe's interval: the published Cavo et al. example (Fagerland, Lydersen and Laake 2017), -0.1186 to -0.0046
    low, high = newcombe_interval(PairedTable(59, 6, 16, 80))
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)


def _record(success: list[bool], victim: str = "v", ids: list[str] | None = None, eps: float = 0.01) -> dict:
    n = len(success)
    ids = ids or [f"s{i}" for i in range(n)]
    return {"victim": {"name": victim, "checkpoint_sha256": "0" * 64}, "defense": None,
            "dataset": {"name": "toy", "version": "1", "split": "test"},
            "attack": {"name": "a", "norm": "linf", "eps": eps, "targeted": False,
                       "hyperparameters": {"steps": 10, "step_size": eps / 10}},
            "metrics": {"attack_success_rate": {"value": sum(success) / n}},
            "samples": {"id": ids, "attacked": [True] * n, "success": success}}


def test_compare_builds_the_paired_table_and_refuses_records_that_do_not_pair(tmp_path, capsys):
    a = _record([True] * 5 + [False] * 3 + [True, False])
    b = _record([True] * 3 + [False] * 5 + [False, False])
    result = compare_records(a, b)
    assert result["table"] == PairedTable(both=3, a_only=3, b_only=0, neither=4)
    assert result["p_value"] == pytest.approx(0.25) and not result["significant"]
    low, high = result["ci95"]
    assert low < 0.3 < high
    standing = versus_best({"a": a, "b": b, "c": _record([True] * 10, victim="other")})
    assert standing["a"] == {"is_best": True} and standing["b"]["p_value"] == pytest.approx(0.25)
    assert "unpaired" in standing["c"]

    paths = []
    for name, rec in (("a", a), ("b", b), ("c", _record([True] * 10, eps=0.02))):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(rec))
        paths.append(str(path))
    from robustbench_skel import record as record_module

    original = record_module.validate_record
    record_module.validate_record = lambda r, source=None, needs=(): r  # hand-made records carry only what compare reads
    try:
        assert main(["compare", paths[0], paths[1]]) == 0
        out = capsys.readouterr().out
        assert "exact McNemar" in out and "p = 0.25" in out and "Newcombe" in out
        assert main(["compare", paths[0], paths[2]]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "do not pair: different budgets" in err[0]
    finally:
        record_module.validate_record = original


def test_compare_names_the_settings_that_tell_two_records_of_one_attack_apart():
    from robustbench_skel.board.paired import differing_settings, format_comparison

    a, b = _record([True, False, True]), _record([False, False, True])
    assert differing_settings(a, b) == []
    b["attack"]["hyperparameters"] = {**b["attack"]["hyperparameters"], "swag": "reference", "step_size": 0.5}
    a["attack"]["hyperparameters"]["swag"] = "paper"
    assert differing_settings(a, b) == ["swag: paper (A), reference (B)"]  # the step size has its own note
    header = format_comparison(a, b).splitlines()[:3]
    assert header[2].strip() == "swag: paper (A), reference (B)"


def test_transfer_matrix_states_its_step_rule_and_refuses_mixed_rules():
    from robustbench_skel.commands.transfer_matrix import _step_line

    a, b = _record([True, False]), _record([False, False])
    assert _step_line([a, b]) == "step rule: sign, step 0.001 m, 10 iterations"
    b["attack"]["step"] = {"rule": "mean-abs", "size": 0.01, "iterations": 10}
    with pytest.raises(UserError, match="step differently"):
        _step_line([a, b])
