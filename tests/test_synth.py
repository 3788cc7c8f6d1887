"""``synth`` 2.0: determinism, splits, two-person classes, exact clean skeletons, the sensor model's statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustbench_skel.datasets import synth2, synth_actions
from robustbench_skel.datasets.synth_body import performer
from robustbench_skel.datasets.synth_sensor import SENSOR, SensorModel
from robustbench_skel.layout import NTU25

T, V = synth2.SYNTH_FRAMES, NTU25.num_joints
HEAD, L_FOOT, R_FOOT = 3, 15, 19
TORSO = [0, 1, 2, 20]


@pytest.fixture(scope="module")
def test_split() -> synth2.SynthClips:
    return synth2.generate_split("test")


def _xyz(arr: np.ndarray, i: int, m: int, length: int) -> np.ndarray:
    """``(L, V, 3)`` float64 of clip ``i``, person ``m``, over its valid frames."""
    return arr[i, :, :length, :, m].transpose(1, 2, 0).astype(np.float64)


def test_class_taxonomy_meets_the_benchmark_definition():
    assert len(synth2.SYNTH_ACTIONS) >= 40 and len(set(synth2.SYNTH_ACTIONS)) == len(synth2.SYNTH_ACTIONS)
    assert len(synth_actions.TWO_PERSON) >= 8
    hand_groups = [g for g, names in synth_actions.GROUPS.items()
                   if len(names) >= 2 and not any(synth_actions.ACTION_NAMES.index(n) in synth_actions.TWO_PERSON for n in names)]
    assert len([g for g in synth_actions.GROUPS if len(synth_actions.GROUPS[g]) >= 2]) >= 10
    assert {"thumb_up", "victory_sign", "ok_sign"} <= set(synth_actions.GROUPS["hand_sign"])
    assert {"reading", "writing", "typing"} <= set(synth_actions.GROUPS["desk_work"])
    assert hand_groups


def test_a_clip_depends_only_on_its_key_and_seed():
    keys = [(5, 3, 1, 2), (30, 46, 1, 1), (12, 0, 1, 3)]
    together = synth2.generate_clips(keys)
    for i, key in enumerate(keys):
        alone = synth2.generate_clips([key])
        np.testing.assert_array_equal(alone.clips[0], together.clips[i])
    again = synth2.generate_clips(keys)
    np.testing.assert_array_equal(again.clips, together.clips)
    other_seed = synth2.generate_clips(keys, seed=1)
    assert not np.array_equal(other_seed.clips, together.clips)


def test_every_class_is_in_every_split_and_subjects_do_not_leak():
    for split in ("xsub-train", "xsub-test", "xview-train", "xview-test"):
        labels = {a for _, a, _, _ in synth2.clip_keys(split)}
        assert labels == set(range(len(synth2.SYNTH_ACTIONS))), split
    train = {s for s, *_ in synth2.clip_keys("train")}
    test = {s for s, *_ in synth2.clip_keys("test")}
    assert not train & test and train | test == set(range(1, synth2.NUM_SUBJECTS + 1))
    for s in range(1, synth2.NUM_SUBJECTS + 1):  # the partner of a two-person clip is in the performer's split
        assert (synth2.partner_of(s) in test) == (s in test) and synth2.partner_of(s) != s
    assert synth2.clip_keys("train") == synth2.clip_keys("xsub-train")


def test_every_class_is_seen_from_every_camera_in_both_cross_subject_splits():
    for split in ("xsub-train", "xsub-test"):
        keys = synth2.clip_keys(split)
        for a in range(len(synth2.SYNTH_ACTIONS)):
            views = [c for _, b, _, c in keys if b == a]
            counts = [views.count(c) for c in (1, 2, 3)]
            assert min(counts) >= len(views) // 3 - 1, (split, a, counts)


def test_the_cross_view_split_holds_the_views_it_says():
    train_views = {c for *_, c in synth2.clip_keys("xview-train")}
    test_views = {c for *_, c in synth2.clip_keys("xview-test")}
    assert train_views == set(synth2.TRAIN_VIEWS_XVIEW) and test_views == set(synth2.TEST_VIEWS_XVIEW)
    data = synth2.generate_clips(synth2.clip_keys("xview-test")[:20])
    assert set(data.views.tolist()) == {1}
    assert all(f"C{v:03d}" in sid for sid, v in zip(data.sample_ids, data.views))


def test_two_person_classes_move_both_people_and_others_leave_the_slot_empty(test_split):
    d = test_split
    for i in range(len(d)):
        second = d.clips[i, ..., 1]
        if int(d.labels[i]) in synth_actions.TWO_PERSON:
            b = _xyz(d.clean, i, 1, int(d.valid_lengths[i]))
            travel = np.linalg.norm(b - b[:1], axis=-1).max()
            assert travel > 0.05, f"{d.sample_ids[i]}: the second person barely moves ({travel:.3f} m)"
        else:
            assert not second.any(), d.sample_ids[i]


def test_padding_lengths_and_placement(test_split):
    d = test_split
    assert d.clips.shape == (len(d), 3, T, V, 2) and d.clips.dtype == np.float32
    assert d.valid_lengths.min() >= synth2.MIN_VALID_FRAMES and d.valid_lengths.max() <= T
    assert len(set(d.valid_lengths.tolist())) > 10, "valid lengths vary"
    for i in range(len(d)):
        length = int(d.valid_lengths[i])
        assert not d.clips[i, :, length:].any()
        a = _xyz(d.clips, i, 0, length)
        assert np.isfinite(a).all() and (a[..., 2] > 0.5).all(), "in front of the sensor, beyond Kinect's near limit"


def _robust_std(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def test_noise_statistics_match_the_stated_model():
    """Residual (observed - clean) std per joint ~ stated jitter x sqrt(1 + offset_share^2) x depth/reference."""
    keys = [k for k in synth2.clip_keys("test")][::2]
    d = synth2.generate_clips(keys)
    share = SENSOR.fitting_offset_share
    for j in range(V):
        residual, scale = [], []
        for i in range(len(d)):
            length = int(d.valid_lengths[i])
            r = (d.clips[i, :, :length, j, 0] - d.clean[i, :, :length, j, 0]).astype(np.float64)
            depth = d.clean[i, 2, :length, 0, 0].astype(np.float64) / SENSOR.noise_reference_depth_m
            residual.append((r / depth).ravel())
        measured = _robust_std(np.concatenate(residual)) * 100.0
        expected = SENSOR.joint_noise_cm[j] * np.sqrt(1.0 + share**2)
        assert abs(measured - expected) / expected < 0.15, f"joint {j}: {measured:.2f} cm vs stated {expected:.2f} cm"
    torso, tips = np.mean([SENSOR.joint_noise_cm[j] for j in TORSO]), SENSOR.joint_noise_cm[23]
    assert tips >= 1.0 and torso <= 0.6 and tips / torso >= 2.0


def test_a_noiseless_sensor_returns_the_clean_motion():
    quiet = SensorModel(joint_noise_cm=(0.0,) * V, glitch_rate=0.0, flicker_rate_per_frame=0.0, leg_swap_rate=0.0)
    keys = [(3, 41, 1, 2), (7, 10, 1, 1)]
    d = synth2.generate_clips(keys, sensor=quiet)
    np.testing.assert_allclose(d.clips, d.clean, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    subject=st.integers(1, synth2.NUM_SUBJECTS),
    action=st.integers(0, len(synth2.SYNTH_ACTIONS) - 1),
    view=st.sampled_from([1, 2, 3]),
    seed=st.integers(0, 2**16),
)
def test_every_clean_clip_is_an_exact_upright_skeleton(subject, action, view, seed):
    d = synth2.generate_clips([(subject, action, 1, view)], seed=seed)
    length = int(d.valid_lengths[0])
    persons = [0, 1] if action in synth_actions.TWO_PERSON else [0]
    for m in persons:
        who = performer(subject if m == 0 else synth2.partner_of(subject), seed)
        p = _xyz(d.clean, 0, m, length)
        assert np.isfinite(p).all() and np.isfinite(d.clips).all()
        child, parent = np.array(NTU25.bones).T
        bones = np.linalg.norm(p[:, child] - p[:, parent], axis=-1)
        np.testing.assert_allclose(bones, np.broadcast_to(who.bone_lengths[child], bones.shape), rtol=1e-4, atol=1e-5)
        speed = np.linalg.norm(np.diff(p, axis=0), axis=-1) * synth2.SYNTH_FPS
        assert speed.max() < 12.0, "no joint of the clean motion moves faster than a fast punch"
        assert (p[..., 2] > 0.5).all()
        # head above the feet (camera y is up up to the camera's pitch): except while falling to the knees
        assert (p[:, HEAD, 1] > np.maximum(p[:, L_FOOT, 1], p[:, R_FOOT, 1])).all()


def test_the_dataset_source_serves_the_splits_and_says_its_version(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTBENCH_SKEL_CACHE", str(tmp_path))
    from robustbench_skel.runner import load_dataset

    test = load_dataset("synth", "test", None)
    assert test.version == "2.0" and test.num_classes == len(synth2.SYNTH_ACTIONS) and len(test) == 510
    again = load_dataset("synth2", "test", None)  # its preview name, from the cache now
    np.testing.assert_array_equal(test.clips, again.clips)
    assert again.name == "synth"  # the same dataset, so the same shipped weights (cards list them by name)
    assert len(load_dataset("synth", "xview-test", None)) == len(synth2.clip_keys("xview-test"))


def test_describe_prints_the_card_and_writes_one_still_per_class(tmp_path, capsys):
    from robustbench_skel.cli import main

    out = tmp_path / "classes.png"
    assert main(["describe", "synth", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for name in synth2.SYNTH_ACTIONS:
        assert name in text
    assert "xview-test" in text and "joint_noise_cm" in text
    assert out.is_file() and out.stat().st_size > 10_000


def test_the_leaderboard_never_mixes_synth_versions(tmp_path):
    import json
    import shutil
    from pathlib import Path

    from robustbench_skel.errors import UserError
    from robustbench_skel.leaderboard import build_leaderboard

    runs = tmp_path / "runs"
    runs.mkdir()
    committed = sorted((Path(__file__).resolve().parents[1] / "results" / "runs").glob("synth_*_pgd_eps0.01_*.json"))[:1]
    assert committed, "needs one committed synth record"
    shutil.copy(committed[0], runs / committed[0].name)
    build_leaderboard(tmp_path, formats="csv")  # one version: fine
    older = json.loads(committed[0].read_text())
    assert older["dataset"]["version"] == "2.0"
    older["dataset"]["version"] = "1.0"  # as the records of synth 1.0 (in the project's history) say
    (runs / ("v1_" + committed[0].name)).write_text(json.dumps(older))
    with pytest.raises(UserError, match="versions 1.0, 2.0"):
        build_leaderboard(tmp_path, formats="csv")


def test_the_cache_is_keyed_by_the_generator_source_and_records_name_it(tmp_path, monkeypatch):
    from robustbench_skel.datasets import synthetic
    from robustbench_skel.runner import load_dataset

    monkeypatch.setenv("ROBUSTBENCH_SKEL_CACHE", str(tmp_path))
    data = load_dataset("synth", "test", None)
    digest = synthetic.generator_sha256()
    assert data.describe()["notes"]["generator_sha256"] == digest
    assert [p.name for p in tmp_path.glob("*.npz")] == [f"synth-v2.0-{digest[:12]}-seed0-test.npz"]
    monkeypatch.setattr(synthetic, "generator_sha256", lambda: "f" * 64)  # as if the generator had changed
    load_dataset("synth", "test", None)
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_the_committed_grids_parse():
    """The grids later sessions (or a GPU) finish with ``sweep`` stay valid as the code moves on."""
    from pathlib import Path

    from robustbench_skel.commands.sweep import load_grid

    grids = sorted((Path(__file__).resolve().parents[1] / "results" / "grids").glob("*.toml"))
    assert any(p.name.startswith("synth_") for p in grids)
    for path in grids:
        configs = load_grid(path).configs
        assert configs, path.name
        assert {c.dataset for c in configs} == {"synth"} and {c.results_dir for c in configs} == {"results"}
