"""``synth`` 2.0: a procedural NTU-like benchmark with the difficulty of real skeleton data.

SYNTHETIC data, not NTU RGB+D. 51 classes modelled on NTU-60 (41 one-person, 10 two-person
interactions with both people moving), in fine-grained groups that differ by a few centimetres of hand
motion; 30 generated performers with their own proportions, handedness and tempo; per-clip tempo
(0.7-1.4x), amplitude, onset and offset, partial execution, idle sway and valid lengths of 32-64 frames
zero-padded to 64; three Kinect views (0 and +-45 degrees, distance and height drawn per setup) and a
Kinect v2-like sensor model (:mod:`.synth_sensor`). NTU-25 layout, metres, 30 fps, ``M = 2``.

Every clip is a function of ``(seed, subject, action, repetition, view)`` alone. Splits:
- ``xsub`` (default; ``train``/``test``): 20 training and 10 test performers, every class, one
  repetition each, seen by one of the three cameras (the camera rotates with subject and class);
- ``xview``: every performer, training on cameras 2 and 3 (+-45 degrees), testing on camera 1 (front).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from . import synth_actions as acts
from .synth_body import Pose, V, performer, pose_to_joints, rot_y
from .synth_sensor import SENSOR, VIEW_YAW_DEG, camera_transform, observe

__all__ = [
    "SYNTH_VERSION", "SYNTH_FPS", "SYNTH_FRAMES", "MIN_VALID_FRAMES", "SYNTH_ACTIONS", "NUM_SUBJECTS",
    "TEST_SUBJECTS", "TRAIN_SUBJECTS", "SPLITS", "DIFFICULTY_TARGETS", "SynthClips", "clip_keys", "generate_clips",
    "generate_split",
]

SYNTH_VERSION: str = "2.0"
SYNTH_FPS: int = 30
SYNTH_FRAMES: int = 64
MIN_VALID_FRAMES: int = 32
SYNTH_ACTIONS: tuple[str, ...] = acts.ACTION_NAMES
NUM_SUBJECTS: int = 30
TEST_SUBJECTS: tuple[int, ...] = tuple(range(3, NUM_SUBJECTS + 1, 3))  # 10 performers spread over the ids
TRAIN_SUBJECTS: tuple[int, ...] = tuple(s for s in range(1, NUM_SUBJECTS + 1) if s not in TEST_SUBJECTS)
REPETITIONS: tuple[int, ...] = (1,)
TRAIN_VIEWS_XVIEW: tuple[int, ...] = (2, 3)
TEST_VIEWS_XVIEW: tuple[int, ...] = (1,)
SPLITS: tuple[str, ...] = ("train", "test", "xsub-train", "xsub-test", "xview-train", "xview-test")

# The difficulty the generator was designed for, on the full test split with the shipped weights, at the default
# L-inf budget of 1 cm (NTU-60 x-sub accuracies of these models are 81-92%; published attacks on NTU fool nearly
# every clip at comparable budgets). They describe the data, not any attack's ranking; `describe synth` checks
# them against the records. (key, what, lowest, highest)
DIFFICULTY_TARGETS: tuple[tuple[str, str, float | None, float | None], ...] = (
    ("clean", "clean accuracy of every victim", 0.70, 0.95),
    ("clean:stgcn", "clean accuracy of stgcn", None, 0.92),
    ("pgd:stgcn", "PGD-10 success on stgcn", 0.80, None),
    ("pgd:median", "PGD-10 success on the median victim", 0.50, None),
    ("surrogate:stgcn,ctrgcn", "surrogates stgcn and ctrgcn fooled by their own transfer I-FGSM", 0.80, None),
)

_CLIP_SALT = 0xC11B6
_SENSOR_SALT = 0x5E7503
_SETUP_SALT = 0x5E7
# Interactions start this far apart (chest to chest, metres); walking towards starts far, hugging close.
_GAP = {"walking_towards": (2.3, 2.7), "push_other": (0.75, 0.9), "hugging": (0.9, 1.1)}
_DEFAULT_GAP = (0.85, 1.1)


def view_of(subject: int, action: int, repetition: int) -> int:
    """The camera (1, 2 or 3) that records a performance: it rotates with subject, class and repetition.

    ``subject // 3`` keeps the rotation going inside a split whose performers are every third id, so that
    no class is seen from a camera in one split that the other split never shows it from.
    """
    return 1 + (subject + subject // 3 + action + repetition) % 3


def partner_of(subject: int) -> int:
    """The partner in two-person classes: the next performer of the same split, so no split leaks a person."""
    pool = TEST_SUBJECTS if subject in TEST_SUBJECTS else TRAIN_SUBJECTS
    return pool[(pool.index(subject) + 1) % len(pool)]


def clip_keys(split: str) -> list[tuple[int, int, int, int]]:
    """``(subject, action, repetition, view)`` of every clip of ``split``, in a fixed order."""
    if split not in SPLITS:
        raise ValueError(f"unknown synth split {split!r}; expected one of {', '.join(SPLITS)}")
    protocol, _, part = split.rpartition("-")
    protocol = protocol or "xsub"
    keys = [(s, a, r, view_of(s, a, r)) for s in range(1, NUM_SUBJECTS + 1) for a in range(len(SYNTH_ACTIONS)) for r in REPETITIONS]
    if protocol == "xsub":
        subjects = TRAIN_SUBJECTS if part == "train" else TEST_SUBJECTS
        return [k for k in keys if k[0] in subjects]
    views = TRAIN_VIEWS_XVIEW if part == "train" else TEST_VIEWS_XVIEW
    return [k for k in keys if k[3] in views]


_SCALARS = (
    "tempo", "onset", "offset", "amp", "partial", "phase", "cycles", "style", "tx", "ty", "tz", "warp",
    "facing", "sway_phase", "sway_freq", "lean", "twist", "head_turn", "stance", "knees", "gap",
    "idle_out_l", "idle_out_r", "idle_elbow_l", "idle_elbow_r",
)


def _clip_params(seed: int, subject: int, action: int, repetition: int) -> dict[str, float]:
    """Everything random about one performance (not its camera or sensor), drawn in a fixed order."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _CLIP_SALT, subject, action, repetition]))
    who = performer(subject, seed)
    name = SYNTH_ACTIONS[action]
    v = {
        "tempo": float(np.clip(who.tempo * rng.uniform(0.75, 1.25), 0.7, 1.4)),
        "onset": rng.uniform(0.0, 18.0),  # idle frames before the action
        "offset": rng.uniform(0.0, 10.0),  # idle frames after it
        "amp": rng.uniform(0.7, 1.3),
        "partial": float(rng.uniform() < 0.4),  # a half-hearted, smaller execution
        "phase": rng.uniform(0.0, 2 * np.pi),
        "cycles": rng.uniform(0.0, 1.0),
        "style": rng.uniform(-1.0, 1.0),
        "tx": rng.uniform(-1.0, 1.0), "ty": rng.uniform(-1.0, 1.0), "tz": rng.uniform(-1.0, 1.0),
        "warp": rng.uniform(-0.12, 0.12),
        "facing": rng.uniform(-12.0, 12.0),  # degrees off the front camera
        "sway_phase": rng.uniform(0.0, 2 * np.pi),
        "sway_freq": rng.uniform(0.2, 0.5),  # Hz
        "lean": rng.uniform(-6.0, 6.0), "twist": rng.uniform(-10.0, 10.0), "head_turn": rng.uniform(-20.0, 20.0),
        "stance": rng.uniform(0.0, 8.0), "knees": rng.uniform(0.0, 8.0),
        "gap": rng.uniform(*_GAP.get(name, _DEFAULT_GAP)),
        "idle_out_l": rng.uniform(0.0, 15.0), "idle_out_r": rng.uniform(0.0, 15.0),
        "idle_elbow_l": rng.uniform(0.0, 30.0), "idle_elbow_r": rng.uniform(0.0, 30.0),
    }
    if v["partial"]:
        v["amp"] *= 0.55
    v["sway"] = who.sway
    v["hx"], v["hy"], v["hz"] = who.habit  # where this performer habitually puts a hand, whatever the class
    return v


def _valid_length(q: dict[str, float], action: int) -> int:
    duration = acts.ACTIONS[action].frames / q["tempo"]
    return int(np.clip(round(q["onset"] + duration + q["offset"]), MIN_VALID_FRAMES, SYNTH_FRAMES))


def _phase(q: dict[str, np.ndarray], action: int) -> np.ndarray:
    """Action phase in [0, 1] per frame: onset, tempo and an uneven pace; an overlong action is cut off."""
    t = np.arange(SYNTH_FRAMES, dtype=np.float64)[None, :]
    duration = acts.ACTIONS[action].frames / q["tempo"]
    lin = np.clip((t - q["onset"]) / duration, 0.0, 1.0)
    return lin + q["warp"] * np.sin(2 * np.pi * lin) / (2 * np.pi)


def _idle(pose: Pose, q: dict[str, np.ndarray], amp_scale: np.ndarray) -> None:
    """Class-independent posture and sway, so that no class is told apart by how a person stands."""
    t = np.arange(SYNTH_FRAMES, dtype=np.float64)[None, :]
    sway = np.sin(2 * np.pi * q["sway_freq"] * t / SYNTH_FPS + q["sway_phase"])
    pose.add(acts.SPINE_MID, rx=q["lean"] + q["sway"] * sway, ry=q["twist"], rz=0.5 * q["sway"] * sway)
    pose.add(acts.NECK, ry=q["head_turn"])
    pose.mirrored(acts.L_HIP, acts.R_HIP, rz=q["stance"])
    pose.crouch(thigh=q["knees"], shin=-q["knees"], lean=0.0 * q["knees"])
    pose.add(acts.L_SHOULDER, rz=-q["idle_out_l"])
    pose.add(acts.R_SHOULDER, rz=q["idle_out_r"])
    pose.add(acts.L_ELBOW, rx=q["idle_elbow_l"])
    pose.add(acts.R_ELBOW, rx=q["idle_elbow_r"])


def _sub(q: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in q.items()}


@dataclass(frozen=True)
class SynthClips:
    """A batch of generated clips and their metadata (rows aligned)."""

    clips: np.ndarray  # float32 (N, 3, T, 25, 2), metres, camera coordinates
    labels: np.ndarray  # int64 (N,)
    sample_ids: tuple[str, ...]  # "P007C002R001A013": performer, camera, repetition, action (1-based)
    subjects: np.ndarray  # int64 (N,)
    views: np.ndarray  # int64 (N,), camera 1-3
    valid_lengths: np.ndarray  # int64 (N,); frames from here on are zero
    clean: np.ndarray  # float32 like clips: the same motion before the sensor model (for tests and figures)

    def __len__(self) -> int:
        return len(self.labels)


def _render(keys: list[tuple[int, int, int, int]], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean world-space joints ``(n, T, V, 3, 2)`` and valid lengths for keys that share one action."""
    n = len(keys)
    action = keys[0][1]
    spec = acts.ACTIONS[action]
    drawn = [_clip_params(seed, s, a, r) for s, a, r, _ in keys]
    q = {k: np.array([d[k] for d in drawn], dtype=np.float64).reshape(n, 1) for k in drawn[0]}
    lengths = np.array([_valid_length(d, action) for d in drawn], dtype=np.int64)
    phase = _phase(q, action)
    actor = [performer(s, seed) for s, _, _, _ in keys]
    partner = [performer(partner_of(s), seed) for s, _, _, _ in keys]
    world = np.zeros((n, SYNTH_FRAMES, V, 3, 2))
    for left in (False, True):
        idx = np.flatnonzero([who.left_handed == left for who in actor])
        if idx.size == 0:
            continue
        d, o = ("l", "r") if left else ("r", "l")
        qi = _sub(q, idx)
        sa = np.array([[actor[i].height_scale] for i in idx])
        a = Pose(idx.size, SYNTH_FRAMES)
        _idle(a, qi, qi["amp"])
        if spec.two_person:
            sb = np.array([[partner[i].height_scale] for i in idx])
            b = Pose(idx.size, SYNTH_FRAMES)
            qb = dict(qi)
            qb["lean"], qb["twist"], qb["head_turn"] = -qi["lean"], -qi["twist"], -qi["head_turn"]
            _idle(b, qb, qi["amp"])
            spec.write(a, b, phase[idx], qi, d, o, sa, sb, qi["gap"])
            bodies = (
                (a, np.stack([actor[i].bone_lengths for i in idx]), -90.0, -0.5),
                (b, np.stack([partner[i].bone_lengths for i in idx]), 90.0, 0.5),
            )
        else:
            spec.write(a, phase[idx], qi, d, o, sa)
            bodies = ((a, np.stack([actor[i].bone_lengths for i in idx]), 0.0, 0.0),)
        for m, (pose, lengths_b, facing, side) in enumerate(bodies):
            joints = pose_to_joints(pose, lengths_b)  # body frame, floor at y = 0
            yaw = rot_y(np.deg2rad(facing + qi["facing"][:, 0] * (1.0 if m == 0 else -1.0)))[:, None, None]
            placed = np.einsum("nabij,ntvj->ntvi", yaw, joints)
            placed[..., 0] += side * qi["gap"][:, :, None]  # the two people face each other across x
            world[idx, ..., m] = placed
    return world, lengths, q["gap"][:, 0]


def generate_clips(keys: Iterable[tuple[int, int, int, int]], seed: int = 0, sensor=SENSOR) -> SynthClips:
    """The clips of ``(subject, action, repetition, view)`` keys, in the given order."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    keys = [tuple(int(x) for x in k) for k in keys]
    for s, a, r, c in keys:
        if not (1 <= s <= NUM_SUBJECTS and 0 <= a < len(SYNTH_ACTIONS) and 1 <= r <= 99 and c in VIEW_YAW_DEG):
            raise ValueError(f"invalid synth key (subject, action, repetition, view) = {(s, a, r, c)}")
    n = len(keys)
    clean = np.zeros((n, 3, SYNTH_FRAMES, V, 2), dtype=np.float32)
    clips = np.zeros_like(clean)
    labels = np.array([a for _, a, _, _ in keys], dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    for a in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == a)
        world, lengths[idx], gap = _render([keys[i] for i in idx], seed)
        # Camera per (subject, view) setup; it looks at the performers' middle at torso height.
        setups = [np.random.default_rng(np.random.SeedSequence([seed, _SETUP_SALT, keys[i][0], keys[i][3]])) for i in idx]
        distance = np.array([g.uniform(2.4, 3.6) for g in setups])
        height = np.array([g.uniform(0.7, 1.9) for g in setups])
        view = np.array([VIEW_YAW_DEG[keys[i][3]] + g.uniform(-5.0, 5.0) for i, g in zip(idx, setups)])
        look_at = np.stack([np.zeros_like(distance), np.full_like(distance, 0.9), np.zeros_like(distance)], axis=-1)
        rotation, position = camera_transform(view, distance, height, look_at)
        cam = np.einsum("nij,ntvjm->ntvim", rotation, world - position[:, None, None, :, None])
        valid = np.arange(SYNTH_FRAMES)[None, :] < lengths[idx, None]
        two = acts.ACTIONS[a].two_person
        oblique = np.array([keys[i][3] != 1 for i in idx])
        noisy = cam.copy()
        for m in range(2 if two else 1):
            rngs = [np.random.default_rng(np.random.SeedSequence([seed, _SENSOR_SALT, *keys[i], m])) for i in idx]
            noisy[..., m] = observe(cam[..., m], valid, oblique, rngs, sensor)
        for arr, out in ((cam, clean), (noisy, clips)):
            arr[~valid] = 0.0
            if not two:
                arr[..., 1] = 0.0
            out[idx] = arr.transpose(0, 3, 1, 2, 4)
    return SynthClips(
        clips=clips,
        labels=labels,
        sample_ids=tuple(f"P{s:03d}C{c:03d}R{r:03d}A{a + 1:03d}" for s, a, r, c in keys),
        subjects=np.array([s for s, _, _, _ in keys], dtype=np.int64),
        views=np.array([c for _, _, _, c in keys], dtype=np.int64),
        valid_lengths=lengths,
        clean=clean,
    )


def generate_split(split: str, seed: int = 0) -> SynthClips:
    """A split of the benchmark: ``train``/``test`` (cross-subject) or ``xsub-*``/``xview-*``."""
    return generate_clips(clip_keys(split), seed)


def describe(seed: int = 0) -> dict:
    """The card of the benchmark: classes with their groups, clip counts per split, the sensor model."""
    return {
        "version": SYNTH_VERSION,
        "fps": SYNTH_FPS,
        "frames": SYNTH_FRAMES,
        "valid_frames": [MIN_VALID_FRAMES, SYNTH_FRAMES],
        "persons": 2,
        "subjects": {"all": NUM_SUBJECTS, "xsub_train": list(TRAIN_SUBJECTS), "xsub_test": list(TEST_SUBJECTS)},
        "views": {str(k): v for k, v in VIEW_YAW_DEG.items()},
        "xview": {"train_views": list(TRAIN_VIEWS_XVIEW), "test_views": list(TEST_VIEWS_XVIEW)},
        "classes": [
            {"index": i, "name": a.name, "group": a.group, "two_person": a.two_person}
            for i, a in enumerate(acts.ACTIONS)
        ],
        "split_sizes": {split: len(clip_keys(split)) for split in SPLITS if "-" in split},
        "sensor": SENSOR.describe(),
    }
