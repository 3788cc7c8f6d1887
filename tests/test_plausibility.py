"""Physical plausibility on hand-made clips: impossible bends, sliding and sinking feet, finite on padding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustbench_skel.datasets import synth2
from robustbench_skel.run.evaluator import BudgetSpec, evaluate_attack, predict
from robustbench_skel.layout import HDM05_25, NTU25, OPENPOSE18
from robustbench_skel.plausibility import (
    ELBOW_HYPEREXTENSION_DEG, KNEE_HYPEREXTENSION_DEG, PLAUSIBILITY_METRICS, PLAUSIBILITY_TOLERANCES, plausibility,
    violating_joints,
)

FPS = 30.0
J = NTU25.index

# A person standing upright facing the camera (-z is forward, x is the subject's right, y up), feet on y = 0.
_STANDING = {
    "spine_base": (0.0, 1.00, 0.0), "spine_mid": (0.0, 1.25, 0.0), "spine_shoulder": (0.0, 1.47, 0.0),
    "neck": (0.0, 1.55, 0.0), "head": (0.0, 1.67, 0.0),
    "left_shoulder": (-0.17, 1.45, 0.0), "left_elbow": (-0.19, 1.17, 0.0), "left_wrist": (-0.19, 0.92, 0.0),
    "left_hand": (-0.19, 0.85, 0.0), "left_hand_tip": (-0.19, 0.78, 0.0), "left_thumb": (-0.19, 0.83, -0.03),
    "right_shoulder": (0.17, 1.45, 0.0), "right_elbow": (0.19, 1.17, 0.0), "right_wrist": (0.19, 0.92, 0.0),
    "right_hand": (0.19, 0.85, 0.0), "right_hand_tip": (0.19, 0.78, 0.0), "right_thumb": (0.19, 0.83, -0.03),
    "left_hip": (-0.09, 0.97, 0.0), "left_knee": (-0.09, 0.55, 0.0), "left_ankle": (-0.09, 0.08, 0.0),
    "left_foot": (-0.09, 0.0, -0.10),
    "right_hip": (0.09, 0.97, 0.0), "right_knee": (0.09, 0.55, 0.0), "right_ankle": (0.09, 0.08, 0.0),
    "right_foot": (0.09, 0.0, -0.10),
}
THIGH, SHIN = 0.42, 0.47


def standing(t: int = 30) -> torch.Tensor:
    """``(1, 3, T, 25, 2)``: one still person 3 m in front of the camera, the second person slot empty."""
    pose = torch.tensor([_STANDING[name] for name in NTU25.joint_names], dtype=torch.float64)  # (V, 3)
    pose[:, 2] += 3.0
    x = torch.zeros(1, 3, t, 25, 2, dtype=torch.float64)
    x[0, :, :, :, 0] = pose.T.unsqueeze(1)
    return x


def _set_leg(x: torch.Tensor, frame: int, side: str, thigh_fwd_deg: float, shin_back_deg: float) -> None:
    """Place the knee, ankle and foot of one leg: thigh tilted forward, shin tilted back from vertical."""
    hip = x[0, :, frame, J(f"{side}_hip"), 0]
    th, sh = math.radians(thigh_fwd_deg), math.radians(shin_back_deg)
    knee = hip + THIGH * torch.tensor([0.0, -math.cos(th), -math.sin(th)], dtype=x.dtype)
    ankle = knee + SHIN * torch.tensor([0.0, -math.cos(sh), math.sin(sh)], dtype=x.dtype)
    x[0, :, frame, J(f"{side}_knee"), 0] = knee
    x[0, :, frame, J(f"{side}_ankle"), 0] = ankle
    x[0, :, frame, J(f"{side}_foot"), 0] = ankle + torch.tensor([0.0, -0.08, -0.10], dtype=x.dtype)


def test_knee_bent_backwards_by_20_degrees_is_flagged():
    clean = standing()
    adv = clean.clone()
    for t in range(10, 20):
        _set_leg(adv, t, "left", thigh_fwd_deg=0.0, shin_back_deg=-20.0)  # shin forward of the thigh's line
    result = plausibility(clean, adv, NTU25, FPS)
    excess = result.values["joint_angle_excess_deg"]
    assert excess["clean"][0] == pytest.approx(0.0, abs=1e-6)
    assert excess["change"][0] == pytest.approx(20.0 - KNEE_HYPEREXTENSION_DEG, abs=1e-6)
    assert result.values["joint_angle_violation_frames"]["change"][0] == pytest.approx(10 / 30)
    assert not result.plausible[0]
    marked = violating_joints(clean, adv, NTU25, FPS)[0]
    assert marked[10:20, J("left_knee"), 0].all() and not marked[:10].any()
    assert not marked[:, J("right_knee")].any()


def test_a_normal_squat_is_not_flagged():
    clean = standing()
    squat = clean.clone()
    for t in range(30):
        depth = math.sin(math.pi * t / 29)  # down and up
        for side in ("left", "right"):  # thighs forward, shins back: knee flexion up to 110 degrees
            _set_leg(squat, t, side, thigh_fwd_deg=80 * depth, shin_back_deg=30 * depth)
    own = plausibility(squat, squat, NTU25, FPS).values
    assert own["joint_angle_excess_deg"]["clean"][0] == 0.0
    assert own["joint_angle_violation_frames"]["clean"][0] == 0.0
    against_standing = plausibility(clean, squat, NTU25, FPS).values
    assert against_standing["joint_angle_excess_deg"]["change"][0] == 0.0


def test_an_elbow_bent_the_wrong_way_is_flagged_and_its_own_bend_is_not():
    clean = standing()
    clean[0, 0, :, J("right_elbow"), 0] = clean[0, 0, :, J("right_shoulder"), 0]  # the upper arm hangs straight down
    elbow = clean[0, :, :, J("right_elbow"), 0].clone()
    for t in range(30):  # the clean right forearm is raised forward by 60 degrees
        for joint, length in (("right_wrist", 0.25), ("right_hand", 0.32)):
            clean[0, :, t, J(joint), 0] = elbow[:, t] + length * torch.tensor([0.0, -0.5, -math.sqrt(0.75)], dtype=clean.dtype)
    adv = clean.clone()
    bend = math.radians(30.0)  # the forearm 30 degrees behind the upper arm's line
    adv[0, :, 5:10, J("right_wrist"), 0] = elbow[:, 5:10] + 0.25 * torch.tensor(
        [0.0, -math.cos(bend), math.sin(bend)], dtype=clean.dtype).view(3, 1)
    result = plausibility(clean, adv, NTU25, FPS).values["joint_angle_excess_deg"]
    assert result["clean"][0] == 0.0
    assert result["change"][0] == pytest.approx(30.0 - ELBOW_HYPEREXTENSION_DEG, abs=1e-6)


def test_a_planted_foot_moved_5_cm_over_10_frames_skates_at_15_cm_per_second():
    clean = standing()
    adv = clean.clone()
    shift = torch.zeros(30, dtype=torch.float64)
    shift[10:20] = torch.arange(1, 11, dtype=torch.float64) * 0.005  # 5 cm in 10 frames
    shift[20:] = 0.05
    for joint in ("left_ankle", "left_foot"):
        adv[0, 0, :, J(joint), 0] += shift
    skating = plausibility(clean, adv, NTU25, FPS).values["foot_skating_cm_s"]
    assert skating["clean"][0] == 0.0
    assert skating["change"][0] == pytest.approx(0.005 * FPS * 100)  # 15 cm/s
    assert skating["change"][0] <= PLAUSIBILITY_TOLERANCES["foot_skating_cm_s"]  # slower than "planted" allows


def test_a_hand_pushed_3_cm_through_the_floor_penetrates_3_cm():
    clean = standing()
    for name in ("right_hand", "right_hand_tip", "right_thumb"):  # the hand touches the floor (a clean pick-up)
        clean[0, 1, :, J(name), 0] = 0.01
    clean[0, 1, :, J("right_hand_tip"), 0] = 0.0
    adv = clean.clone()
    adv[0, 1, 12:18, J("right_hand_tip"), 0] = -0.03
    result = plausibility(clean, adv, NTU25, FPS)
    pen = result.values["ground_penetration_cm"]
    assert pen["clean"][0] == pytest.approx(0.0, abs=1e-9)
    assert pen["change"][0] == pytest.approx(3.0)
    assert not result.plausible[0]  # beyond the 2 cm tolerance
    marked = violating_joints(clean, adv, NTU25, FPS)[0]
    assert marked[12:18, J("right_hand_tip"), 0].all() and marked.sum() == 6


@pytest.fixture(scope="module")
def synth_clips() -> torch.Tensor:
    # Whole-body actions as the sensor reports them (noise, jitter, glitches), and a two-person one: the records
    # judge the change from the clean clip, so the sensor's own errors must not count against it.
    names = ["squat_down", "kicking", "bow", "cheer_up", "hopping", "handshaking"]
    keys = [(s, synth2.SYNTH_ACTIONS.index(a), 1, 1) for s in (3, 6) for a in names]
    return torch.from_numpy(synth2.generate_clips(keys).clean)


def test_clean_synth_clips_score_within_tolerance_on_every_metric(synth_clips):
    result = plausibility(synth_clips, synth_clips, NTU25, FPS)
    assert not result.skipped and set(result.values) == set(PLAUSIBILITY_METRICS)
    assert result.plausible.all()
    for name, tolerance in PLAUSIBILITY_TOLERANCES.items():
        clean = result.values[name]["clean"]
        assert np.all(clean <= tolerance + 1e-9), f"{name}: clean values {clean.max():.3g} above {tolerance}"
        assert np.all(result.values[name]["change"] == 0)


def test_metrics_are_finite_and_ignore_padding_and_the_absent_person(synth_clips):
    gen = torch.Generator().manual_seed(0)
    clean = synth_clips[:4].double()
    valid = clean.ne(0).any(dim=1, keepdim=True).any(dim=3, keepdim=True)
    adv = clean + 0.01 * torch.randn(clean.shape, generator=gen, dtype=clean.dtype) * valid
    padded = plausibility(clean, adv, NTU25, FPS)
    for name, v in padded.values.items():
        for kind, values in v.items():
            assert np.isfinite(values).all(), f"{name} {kind}"
    # the same clips cut to their valid frames and to one person give the same numbers
    for i in range(4):
        length = int(valid[i, 0, :, 0, 0].sum())
        cut = plausibility(clean[i : i + 1, :, :length, :, :1], adv[i : i + 1, :, :length, :, :1], NTU25, FPS)
        for name in PLAUSIBILITY_METRICS:
            for kind in ("clean", "adversarial", "change"):
                assert cut.values[name][kind][0] == pytest.approx(padded.values[name][kind][i], abs=1e-9), (name, kind)


def test_two_person_clips_are_measured_per_person():
    one = standing(20)
    two = one.clone()
    two[..., 1] = one[..., 0]
    two[0, 0, :, :, 1] += 1.0  # a second person 1 m to the right, present only from frame 5
    two[0, :, :5, :, 1] = 0.0
    adv = two.clone()
    for t in range(8, 12):
        _set_leg(adv[..., 1:], t, "right", thigh_fwd_deg=0.0, shin_back_deg=-25.0)
    result = plausibility(two, adv, NTU25, FPS)
    for name, v in result.values.items():
        assert all(np.isfinite(values).all() for values in v.values()), name
    assert result.values["joint_angle_excess_deg"]["change"][0] == pytest.approx(25.0 - KNEE_HYPEREXTENSION_DEG, abs=1e-6)
    marked = violating_joints(two, adv, NTU25, FPS)[0]
    assert marked[8:12, J("right_knee"), 1].all() and not marked[..., 0].any()


def test_layouts_without_the_joints_or_a_known_frame_skip_with_a_reason():
    hdm = plausibility(torch.ones(1, 3, 6, 25, 1), torch.ones(1, 3, 6, 25, 1), HDM05_25, 120.0)
    assert "joint_angle_excess_deg" in hdm.skipped and "no joint" in hdm.skipped["joint_angle_excess_deg"]
    assert "not metres" in hdm.skipped["ground_penetration_cm"]
    assert hdm.plausible is None and not hdm.values
    kinetics = plausibility(torch.ones(1, 3, 6, 18, 1), torch.ones(1, 3, 6, 18, 1), OPENPOSE18, 30.0)
    assert set(kinetics.skipped) == set(PLAUSIBILITY_METRICS) and "2-D" in kinetics.skipped["speed_violation_frames"]


def test_the_evaluator_puts_plausibility_into_the_record(tiny_victim, synth_clips):
    clean = synth_clips.float()
    pred = predict(tiny_victim, clean, 8, "cpu")
    adv = clean.clone()
    feet = [J("left_foot"), J("right_foot")]
    adv[:, 1, 10:14, feet] -= 0.05 * (adv[:, 1, 10:14, feet] != 0)  # both feet sink 5 cm for 4 frames
    attacked = torch.ones(len(clean), dtype=torch.bool)
    labels = (pred + 1) % 5  # every clip "misclassified" after the attack: all are successes
    summary, samples = evaluate_attack(tiny_victim, clean, labels, None, pred, adv, attacked, BudgetSpec("linf", 0.1),
                                       NTU25, FPS, 8, "cpu")
    m = summary["metrics"]
    ok = np.array(samples["success"])
    assert ok.sum() >= 2
    direct = plausibility(clean, adv, NTU25, FPS)
    for name in PLAUSIBILITY_METRICS:
        entry, change = m[f"plausibility_{name}"], direct.values[name]["change"][ok]
        assert entry["n"] == ok.sum() and entry["value"] == pytest.approx(change.mean())
        assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1]
        assert entry["clean"] == pytest.approx(direct.values[name]["clean"][ok].mean())
        if name in PLAUSIBILITY_TOLERANCES:
            assert entry["exceeded"] == int((change > PLAUSIBILITY_TOLERANCES[name] + 1e-9).sum())
    pen = m["plausibility_ground_penetration_cm"]
    assert pen["value"] > PLAUSIBILITY_TOLERANCES["ground_penetration_cm"] and pen["max"] <= 5.0 + 1e-4
    share = m["plausible_share"]
    assert share["n"] == ok.sum() and share["count"] == int(direct.plausible[ok].sum()) < ok.sum()
    assert share["ci95"][0] <= share["value"] <= share["ci95"][1]
    assert m["plausibility_skipped"] == {}
    assert [p for p in samples["plausible"] if p is not None] == direct.plausible[ok].tolist()


def test_a_transfer_record_carries_plausibility_and_the_leaderboard_shows_it(tmp_path, trained_tiny_checkpoint):
    import copy

    from robustbench_skel.board.leaderboard import build_leaderboard
    from robustbench_skel.run.record import write_record
    from robustbench_skel.board.report import format_run_summary
    from robustbench_skel.run.runner import RunConfig, run_benchmark

    config = RunConfig(victim="tiny-test-victim", checkpoint=str(trained_tiny_checkpoint), attack="ifgsm", eps=0.1, steps=3,
                       n_samples=8, batch_size=8, sanity_samples=0, device="cpu", results_dir=str(tmp_path),
                       surrogates=["tiny-test-victim"], surrogate_checkpoints=[str(trained_tiny_checkpoint)])
    record = run_benchmark(config).record
    assert record["threat"]["model"] == "transfer"
    share = record["metrics"]["plausible_share"]
    assert share["n"] == record["metrics"]["attack_success_rate"]["count"] >= 1
    assert all(f"plausibility_{name}" in record["metrics"] for name in PLAUSIBILITY_METRICS)
    assert "plausible" in format_run_summary(record)

    older = copy.deepcopy(record)  # a record written before plausibility was measured, at another budget
    older["metrics"] = {k: v for k, v in older["metrics"].items() if not k.startswith("plausib")}
    older["run_id"], older["attack"]["eps"] = "older", 0.03
    write_record(older, tmp_path)
    written, rows = build_leaderboard(tmp_path)
    assert rows == 2
    md = (tmp_path / "leaderboard.md").read_text()
    assert md.count("## Physical plausibility") == 2 and "not measured" in md
    for fmt in ("tex", "html"):
        assert "Physical plausibility" in (tmp_path / f"leaderboard.{fmt}").read_text()
    assert "plausible_share" in (tmp_path / "leaderboard.csv").read_text().splitlines()[0]
    assert any(p.name.startswith("plausibility_") and p.suffix == ".png" for p in written)


def test_reproducing_a_record_from_before_plausibility_is_no_difference():
    from robustbench_skel.commands.reproduce import compare_metrics

    old = {"metrics": {"linf_m": {"value": 0.01, "ci95": [0.01, 0.01], "max": 0.01, "n": 3}}, "flags": {}}
    new = {"metrics": {**old["metrics"], "plausible_share": {"value": 0.5, "ci95": [0.1, 0.9], "count": 1, "n": 2}},
           "flags": {}}
    rows, differing = compare_metrics(old, new, exact=True)
    assert differing == [] and ("plausible_share", "not recorded", "1/2", True) in rows
    assert compare_metrics(new, old, exact=True)[1] == ["plausible_share"]  # a measured metric may not vanish


def test_show_crosses_out_the_joint_under_the_floor():
    from types import SimpleNamespace

    from robustbench_skel.commands.show import _violating

    clean = standing()
    clean[0, 1, :, J("right_hand_tip"), 0] = 0.0
    adv = clean.clone()
    adv[0, 1, 3:5, J("right_hand_tip"), 0] = -0.04
    marked = _violating(clean[0].float().numpy(), adv[0].float().numpy(), SimpleNamespace(layout=NTU25, fps=FPS))
    assert marked.shape == (30, 25, 2) and marked[3:5, J("right_hand_tip"), 0].all() and marked.sum() == 2


def test_measuring_in_chunks_gives_the_same_numbers(synth_clips):
    gen = torch.Generator().manual_seed(1)
    valid = synth_clips.ne(0).any(dim=1, keepdim=True).any(dim=3, keepdim=True)
    adv = synth_clips + 0.01 * torch.randn(synth_clips.shape, generator=gen) * valid
    whole, chunked = plausibility(synth_clips, adv, NTU25, FPS), plausibility(synth_clips, adv, NTU25, FPS, chunk=3)
    for name, v in whole.values.items():
        for kind, values in v.items():
            np.testing.assert_array_equal(values, chunked.values[name][kind])
    np.testing.assert_array_equal(whole.plausible, chunked.plausible)
    empty = plausibility(synth_clips[:0], adv[:0], NTU25, FPS)
    assert empty.plausible.shape == (0,) and not empty.skipped
