"""The pinned standard evaluation and the converged rule that makes its sanity check meaningful."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import make_clips, write_npz
from robustbench_skel.commands.cli import build_parser, run_config
from robustbench_skel.errors import UserError
from robustbench_skel.run.presets import apply_preset
from robustbench_skel.registry import ATTACKS
from robustbench_skel.run.runner import RunConfig, run_benchmark
from robustbench_skel.run.sanity import converged, doubled_iterations


@pytest.mark.parametrize("base, doubled, n, passed", [
    (8, 9, 16, True),  # one sample of 16 flips: 6 points, but nothing a converged attack could not do
    (8, 8, 16, True),
    (8, 12, 16, False),  # four of 16
    (8, 10, 16, False),  # two of 16: the one-sided Wilson lower bound (4.2%) is above 2%
    (8, 7, 16, True),
    (500, 520, 1000, True),  # 2% of a large subset is within tolerance
    (500, 540, 1000, False),
])
def test_converged_counts_flips(base, doubled, n, passed):
    assert converged(base, doubled, n) is passed


def test_converged_doubles_every_component_of_a_cascade():
    attack = ATTACKS.get("autoattack")(eps=0.01)
    doubled, changed = doubled_iterations(attack)
    assert changed == {"version": "skel-aa-v1-x2"}
    from robustbench_skel.attacks.autoattack import CASCADES

    assert [p["steps"] for _, p, _ in CASCADES["skel-aa-v1-x2"][1]] == [200, 200, 200, 200]
    assert doubled.components() == attack.components()
    assert doubled_iterations(ATTACKS.get("pgd")(steps=7))[1] == {"steps": 14}


def test_standard_preset_pins_the_evaluation():
    config = apply_preset(RunConfig(victim="stgcn", preset="standard", eps=0.005))
    assert (config.attack, config.n_samples, config.attack_options, config.eps) == ("autoattack", "all", {"version": "skel-aa-v1"}, 0.005)
    with pytest.raises(UserError, match="pins --attack to 'autoattack'"):
        apply_preset(RunConfig(attack="fgsm", preset="standard"))
    with pytest.raises(UserError, match="pins --n-samples"):
        apply_preset(RunConfig(n_samples=10, preset="standard"))
    with pytest.raises(UserError, match="sanity checks"):
        apply_preset(RunConfig(sanity_samples=0, preset="standard"))
    with pytest.raises(UserError, match="unknown --preset"):
        apply_preset(RunConfig(preset="quick"))


def test_cli_accepts_all_and_auto():
    args = build_parser().parse_args(["run", "--n-samples", "all", "--batch-size", "auto", "--preset", "standard", "--amp"])
    config = run_config(args)
    assert (config.n_samples, config.batch_size, config.preset, config.amp, config.resume) == ("all", "auto", "standard", True, True)
    assert run_config(build_parser().parse_args(["run", "--no-resume"])).resume is False
    with pytest.raises(UserError, match="expected a whole number"):
        build_parser().parse_args(["run", "--n-samples", "many"])


def test_standard_run_evaluates_every_clip_and_says_so(tmp_path, trained_tiny_checkpoint, monkeypatch):
    from robustbench_skel.attacks import autoattack

    # The pinned cascade (600 iterations per clip, more in the sanity checks) is too slow for a unit test:
    # the preset's plumbing is what is checked here, on a two-iteration stand-in under the same name.
    monkeypatch.setattr(autoattack, "CASCADES", {"skel-aa-v1": ("linf", (("apgd-ce", {"steps": 2}, None),))})
    clips = make_clips(n=5, t=12).numpy()
    path = write_npz(tmp_path / "five.npz", clips, np.array([0, 1, 2, 3, 11]))
    config = RunConfig(victim="tiny-test-victim", checkpoint=str(trained_tiny_checkpoint), dataset="npz",
                       data_path=str(path), preset="standard", device="cpu", results_dir=str(tmp_path / "r"))
    record = run_benchmark(config, write=False).record
    assert record["preset"] == "standard"
    assert record["config"]["preset"] == "standard" and record["config"]["attack"] == "pgd"  # as given
    assert record["attack"]["name"] == "autoattack" and record["attack"]["hyperparameters"]["version"] == "skel-aa-v1"
    assert record["dataset"]["num_evaluated"] == 5
    if record["sanity"]:
        assert record["sanity"]["checks"]["converged"]["version"] == "skel-aa-v1-x2"
    plain = run_benchmark(replace(config, preset=None, attack="fgsm", n_samples=2), write=False).record
    assert plain["preset"] is None
