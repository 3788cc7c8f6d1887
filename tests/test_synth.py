"""The procedural ``synth`` benchmark: shapes, determinism, exact bone lengths, plausibility, variation."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustbench_skel.datasets import synth
from robustbench_skel.layout import NTU25

T, V = synth.SYNTH_FRAMES, NTU25.num_joints
HEAD, SPINE_BASE, SPINE_MID, SPINE_SHOULDER = 3, 0, 1, 20
L_HAND, R_HAND, R_SHOULDER, R_HAND_TIP = 7, 11, 8, 23
L_HIP, R_HIP, L_ANKLE, R_ANKLE, L_FOOT, R_FOOT = 12, 16, 14, 18, 15, 19
ID_RE = re.compile(r"S(\d{3})A(\d{3})R(\d{2})")


@pytest.fixture(scope="module")
def test_split() -> synth.SynthClips:
    return synth.generate_split("test")


@pytest.fixture(scope="module")
def train_split() -> synth.SynthClips:
    return synth.generate_split("train")


def _valid(data: synth.SynthClips, i: int) -> np.ndarray:
    """Clip ``i`` over its valid frames as ``(L, V, 3)`` float64."""
    return data.clips[i, :, : data.valid_lengths[i], :, 0].transpose(1, 2, 0).astype(np.float64)


def _bone_lengths(p: np.ndarray) -> np.ndarray:
    """``(L, bones)`` lengths of the kinematic-tree bones of a ``(L, V, 3)`` clip."""
    child, parent = np.array(NTU25.bones).T
    return np.linalg.norm(p[:, child] - p[:, parent], axis=-1)


def _check_clip_structure(data: synth.SynthClips, i: int, max_speed: float, seed: int = 0) -> None:
    """Everything a single clip must satisfy, whatever its key."""
    length = data.valid_lengths[i]
    assert synth.MIN_VALID_FRAMES <= length <= T
    assert not data.clips[i, ..., 1].any(), "second person slot must be empty"
    assert not data.clips[i, :, length:].any(), "frames after the valid length must be zero"
    p = _valid(data, i)
    assert np.isfinite(p).all()
    assert (np.abs(p).sum(axis=-1) > 0).all(), "no joint may sit at the origin inside the valid frames"
    # exact skeleton: bone lengths constant over the clip and equal to the subject's
    bones = _bone_lengths(p)
    expected = synth.subject_bone_lengths(int(data.subjects[i]), seed)[[c for c, _ in NTU25.bones]]
    spread = (bones.max(axis=0) - bones.min(axis=0)) / bones.mean(axis=0)
    assert spread.max() < 1e-4
    np.testing.assert_allclose(bones.mean(axis=0), expected, rtol=1e-4)
    # plausible placement and motion
    # In front of the sensor, beyond a Kinect v2's 0.5 m near limit. The spine base stands at 2.3 m or more;
    # a kick brings a foot up to about a leg's length nearer (1.28 m was the nearest joint over 28,800
    # random draws), so a bound at 1.5 m, as this test once had, fails on unlucky draws of a correct clip.
    assert (p[..., 2] > 0.8).all(), "the subject stands in front of the sensor"
    assert (p[:, HEAD, 1] > np.maximum(p[:, L_FOOT, 1], p[:, R_FOOT, 1])).all(), "head above the feet"
    speed = np.linalg.norm(np.diff(p, axis=0), axis=-1) * synth.SYNTH_FPS
    assert speed.max() < max_speed


def test_constants_and_split_definition():
    assert synth.SYNTH_ACTIONS == (
        "hand_wave", "clap", "punch", "kick", "jump_up", "squat",
        "bow", "throw", "point", "cheer", "cross_arms", "hop_one_leg",
    )
    assert (synth.SYNTH_FPS, synth.SYNTH_FRAMES, synth.NUM_SUBJECTS) == (30, 48, 48)
    assert isinstance(synth.SYNTH_VERSION, str) and synth.SYNTH_VERSION
    train, test = set(synth.TRAIN_SUBJECTS), set(synth.TEST_SUBJECTS)
    assert len(train) == 32 and len(test) == 16 and not train & test
    assert train | test == set(range(1, synth.NUM_SUBJECTS + 1))
    assert min(test) <= 5 and max(test) >= 44, "test subjects are spread over the id range"


def test_split_shapes_dtypes_and_ids(test_split, train_split):
    for data, subjects, reps in (
        (test_split, synth.TEST_SUBJECTS, synth.TEST_REPETITIONS),
        (train_split, synth.TRAIN_SUBJECTS, synth.TRAIN_REPETITIONS),
    ):
        n = len(subjects) * len(synth.SYNTH_ACTIONS) * reps
        assert data.clips.shape == (n, 3, T, V, 2) and data.clips.dtype == np.float32
        for arr in (data.labels, data.subjects, data.valid_lengths):
            assert arr.shape == (n,) and arr.dtype == np.int64
        assert len(data.sample_ids) == len(set(data.sample_ids)) == n
        assert set(data.labels.tolist()) == set(range(12))
        assert set(data.subjects.tolist()) == set(subjects)
        assert data.valid_lengths.min() >= 32 and data.valid_lengths.max() <= T
        assert len(set(data.valid_lengths.tolist())) > 8, "valid lengths vary"
        for sid, s, a in zip(data.sample_ids, data.subjects, data.labels):
            m = ID_RE.fullmatch(sid)
            assert m and int(m[1]) == s and int(m[2]) == a + 1 and 1 <= int(m[3]) <= reps
        assert np.isfinite(data.clips).all()
        assert not data.clips[..., 1].any()
        pad = np.arange(T)[None, :] >= data.valid_lengths[:, None]
        assert not data.clips[..., 0].transpose(0, 2, 1, 3)[pad].any()
    assert not set(test_split.sample_ids) & set(train_split.sample_ids)
    assert not set(test_split.subjects.tolist()) & set(train_split.subjects.tolist())


def test_order_is_subject_then_action_then_repetition():
    data = synth.generate_clips([5, 2], ["clap", 0], 2)
    assert data.sample_ids == (
        "S005A002R01", "S005A002R02", "S005A001R01", "S005A001R02",
        "S002A002R01", "S002A002R02", "S002A001R01", "S002A001R02",
    )
    assert data.labels.tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    assert synth.generate_clips([3], [4], [2, 7]).sample_ids == ("S003A005R02", "S003A005R07")


def test_determinism_and_batch_independence():
    a = synth.generate_clips([1, 4], range(12), 2, seed=3)
    b = synth.generate_clips([1, 4], range(12), 2, seed=3)
    np.testing.assert_array_equal(a.clips, b.clips)
    np.testing.assert_array_equal(a.valid_lengths, b.valid_lengths)
    c = synth.generate_clips([1, 4], range(12), 2, seed=4)
    assert not np.array_equal(a.clips, c.clips)
    # one clip alone is bit-identical to the same clip generated inside a larger batch
    k = a.sample_ids.index("S004A008R02")
    alone = synth.generate_clips([4], ["throw"], [2], seed=3)
    np.testing.assert_array_equal(alone.clips[0], a.clips[k])
    assert alone.valid_lengths[0] == a.valid_lengths[k]


def test_split_matches_generate_clips(test_split):
    some = synth.generate_clips([synth.TEST_SUBJECTS[3]], [9], [2])
    k = test_split.sample_ids.index(some.sample_ids[0])
    np.testing.assert_array_equal(some.clips[0], test_split.clips[k])


def test_subject_bone_lengths():
    lengths = np.stack([synth.subject_bone_lengths(s) for s in range(1, synth.NUM_SUBJECTS + 1)])
    assert lengths.shape == (48, V)
    assert (lengths[:, NTU25.root] == 0).all() and (np.delete(lengths, NTU25.root, axis=1) > 0).all()
    np.testing.assert_array_equal(lengths[6], synth.subject_bone_lengths(7))
    np.testing.assert_array_equal(lengths[6], synth.subject_bone_lengths(7, seed=0))
    assert not np.array_equal(lengths[6], synth.subject_bone_lengths(7, seed=1))
    assert len({tuple(row) for row in lengths}) == 48, "every subject has its own proportions"
    # standing height (ankle to head along the body) stays adult-sized, with a real spread
    chain = [3, 2, 20, 1, 16, 17, 18]
    height = lengths[:, chain].sum(axis=1)
    assert 1.1 < height.min() and height.max() < 1.9 and height.max() / height.min() > 1.2
    for left, right in ((5, 9), (6, 10), (13, 17), (14, 18), (4, 8), (12, 16)):
        np.testing.assert_array_equal(lengths[:, left], lengths[:, right])
    # limb ratios vary independently of the overall scale
    ratio = lengths[:, 5] / lengths[:, 13]
    assert ratio.max() / ratio.min() > 1.08


def test_every_test_clip_is_a_valid_skeleton(test_split):
    for i in range(len(test_split.labels)):
        _check_clip_structure(test_split, i, max_speed=10.0)
    # the camera-placement ranges
    root0 = test_split.clips[:, :, 0, SPINE_BASE, 0]
    assert -0.65 < root0[:, 0].min() and root0[:, 0].max() < 0.65
    assert -0.55 < root0[:, 1].min() and root0[:, 1].max() < 0.25
    assert 2.1 < root0[:, 2].min() and root0[:, 2].max() < 4.2


@settings(max_examples=15, deadline=None)
@given(
    subject=st.integers(1, synth.NUM_SUBJECTS),
    action=st.integers(0, len(synth.SYNTH_ACTIONS) - 1),
    repetition=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_single_clip(subject, action, repetition, seed):
    data = synth.generate_clips([subject], [action], [repetition], seed=seed)
    assert data.clips.shape == (1, 3, T, V, 2) and data.labels.tolist() == [action]
    assert data.sample_ids == (f"S{subject:03d}A{action + 1:03d}R{repetition:02d}",)
    assert data.subjects.tolist() == [subject]
    _check_clip_structure(data, 0, max_speed=11.0, seed=seed)
    assert all(_action_checks(synth.SYNTH_ACTIONS[action], _valid(data, 0)))


def _facing_degrees(data: synth.SynthClips) -> np.ndarray:
    """Facing direction at the first frame from the hip line, 0 = towards the camera, in degrees."""
    right = data.clips[:, :, 0, R_HIP, 0] - data.clips[:, :, 0, L_HIP, 0]
    # facing = up x right = (right_z, 0, -right_x); the camera looks along +z, so "towards" is -z
    return np.degrees(np.arctan2(right[:, 2], right[:, 0]))


def test_yaw_variation_is_real(test_split):
    facing = _facing_degrees(test_split)
    assert facing.max() - facing.min() >= 80
    assert np.abs(facing).max() < 75
    assert abs(np.median(facing)) < 15, "subjects face the camera on average"


def test_motion_is_smooth(test_split):
    d1, d2, ratios = 0.0, 0.0, []
    for i in range(len(test_split.labels)):
        p = _valid(test_split, i)
        a, b = np.abs(np.diff(p, axis=0)).mean(), np.abs(np.diff(p, n=2, axis=0)).mean()
        ratios.append(b / a)
        d1, d2 = d1 + a, d2 + b
    assert d2 / d1 < 0.7  # white noise would give about 1.7, a teleport spikes far above
    assert max(ratios) < 1.0


def test_clips_move():
    """Every action moves the body well beyond the sensor jitter."""
    data = synth.generate_clips([2], range(12), [1])
    for i in range(12):
        p = _valid(data, i)
        assert np.abs(p - p[:1]).max() > 0.25, synth.SYNTH_ACTIONS[i]


def _action_checks(name: str, p: np.ndarray) -> list[bool]:
    """Coarse signatures of each action on a ``(L, V, 3)`` clip (camera frame, y up)."""
    y = p[..., 1]
    right = p[0, R_HIP] - p[0, L_HIP]
    right[1] = 0.0
    right /= np.linalg.norm(right)

    def horizontal(a: int, b: int) -> np.ndarray:
        return np.linalg.norm((p[:, a] - p[:, b])[:, [0, 2]], axis=-1)

    trunk = p[:, SPINE_SHOULDER] - p[:, SPINE_BASE]
    trunk_tilt = np.degrees(np.arccos(trunk[:, 1] / np.linalg.norm(trunk, axis=-1)))
    return {
        "hand_wave": [(y[:, R_HAND_TIP] - y[:, SPINE_SHOULDER]).max() > 0.1, (y[:, L_HAND] < y[:, SPINE_SHOULDER]).all()],
        "clap": [np.linalg.norm(p[:, L_HAND] - p[:, R_HAND], axis=-1).min() < 0.1],
        "punch": [horizontal(R_HAND, SPINE_SHOULDER).max() > 0.4],
        "kick": [(y[:, R_ANKLE] - y[:, L_ANKLE]).max() > 0.25],
        "jump_up": [y[:, SPINE_BASE].max() - y[0, SPINE_BASE] > 0.1],
        "squat": [y[0, SPINE_BASE] - y[:, SPINE_BASE].min() > 0.2],
        "bow": [trunk_tilt.max() > 25, y[0, HEAD] - y[:, HEAD].min() > 0.05],
        "throw": [(y[:, R_HAND] - y[:, HEAD]).max() > 0.05],
        "point": [abs(y[-1, R_HAND_TIP] - y[-1, R_SHOULDER]) < 0.35, horizontal(R_HAND_TIP, R_SHOULDER)[-1] > 0.45],
        "cheer": [(np.minimum(y[:, L_HAND], y[:, R_HAND]) - y[:, HEAD]).max() > 0.1],
        "cross_arms": [(p[-1, R_HAND] - p[-1, SPINE_MID]) @ right < 0, (p[-1, L_HAND] - p[-1, SPINE_MID]) @ right > 0],
        "hop_one_leg": [(y[:, L_ANKLE] - y[:, R_ANKLE]).max() > 0.08],
    }[name]


def test_actions_look_like_their_names(test_split):
    for i in range(len(test_split.labels)):
        name = synth.SYNTH_ACTIONS[test_split.labels[i]]
        assert all(_action_checks(name, _valid(test_split, i))), (test_split.sample_ids[i], name)


def test_not_separable_by_one_joint_mean_position(train_split, test_split):
    """A nearest-centroid rule on any single joint's mean camera position stays far from solving the task."""
    def mean_pos(data, j):
        return data.clips[:, :, :, j, 0].sum(axis=2) / data.valid_lengths[:, None]

    for j in range(V):
        x_tr, x_te = mean_pos(train_split, j), mean_pos(test_split, j)
        centroids = np.stack([x_tr[train_split.labels == c].mean(axis=0) for c in range(12)])
        pred = ((x_te[:, None] - centroids[None]) ** 2).sum(-1).argmin(axis=1)
        assert (pred == test_split.labels).mean() < 0.5, NTU25.joint_names[j]


def test_bad_arguments():
    with pytest.raises(ValueError):
        synth.generate_split("val")
    with pytest.raises(ValueError):
        synth.generate_clips([1], ["moonwalk"], 1)
    with pytest.raises(ValueError):
        synth.generate_clips([0], [0], 1)
    with pytest.raises(ValueError):
        synth.generate_clips([1], [12], 1)
    with pytest.raises(ValueError):
        synth.generate_clips([1], [0], 1, seed=-1)
    with pytest.raises(ValueError):
        synth.subject_bone_lengths(1, seed=1.5)
    empty = synth.generate_clips([], [0], 1)
    assert empty.clips.shape == (0, 3, T, V, 2) and empty.sample_ids == ()
