"""Procedural skeleton action clips: the embedded default benchmark ``synth``.

SYNTHETIC data, not NTU RGB+D: 12 NTU-like actions performed by 48 generated subjects, written in the
NTU-25 Kinect layout (metres, camera coordinates, 30 fps, zero-padded, second person empty). Motion
comes from joint-angle trajectories through forward kinematics, so bone lengths are exactly constant
within a clip; every clip is reproducible from (seed, subject, action, repetition) alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from ..layout import NTU25

__all__ = [
    "SYNTH_VERSION",
    "SYNTH_FPS",
    "SYNTH_FRAMES",
    "SYNTH_ACTIONS",
    "NUM_SUBJECTS",
    "TRAIN_SUBJECTS",
    "TEST_SUBJECTS",
    "TRAIN_REPETITIONS",
    "TEST_REPETITIONS",
    "SynthClips",
    "subject_bone_lengths",
    "generate_clips",
    "generate_split",
]

SYNTH_VERSION: str = "1.0"
SYNTH_FPS: int = 30
SYNTH_FRAMES: int = 48
MIN_VALID_FRAMES: int = 32
SYNTH_ACTIONS: tuple[str, ...] = (
    "hand_wave", "clap", "punch", "kick", "jump_up", "squat",
    "bow", "throw", "point", "cheer", "cross_arms", "hop_one_leg",
)
NUM_SUBJECTS: int = 48
TRAIN_SUBJECTS: tuple[int, ...] = tuple(s for s in range(1, NUM_SUBJECTS + 1) if s % 3 != 0)
TEST_SUBJECTS: tuple[int, ...] = tuple(s for s in range(1, NUM_SUBJECTS + 1) if s % 3 == 0)
TRAIN_REPETITIONS: int = 3
TEST_REPETITIONS: int = 2

# Salts keep the subject and clip random streams apart even when their integer keys coincide.
_SUBJECT_SALT = 0x5B1EC7
_CLIP_SALT = 0xC11B5

# Joint indices (0-based NTU-25).
SPINE_BASE, SPINE_MID, NECK, HEAD = 0, 1, 2, 3
L_SHOULDER, L_ELBOW, L_WRIST, L_HAND = 4, 5, 6, 7
R_SHOULDER, R_ELBOW, R_WRIST, R_HAND = 8, 9, 10, 11
L_HIP, L_KNEE, L_ANKLE, L_FOOT = 12, 13, 14, 15
R_HIP, R_KNEE, R_ANKLE, R_FOOT = 16, 17, 18, 19
SPINE_SHOULDER, L_HAND_TIP, L_THUMB, R_HAND_TIP, R_THUMB = 20, 21, 22, 23, 24
_V = NTU25.num_joints

# ---------------------------------------------------------------------------------------------
# Rest pose and subjects
# ---------------------------------------------------------------------------------------------
# Body frame = camera frame of a subject facing the camera: x = subject's right, y = up, z = away
# from the camera (so "forward" for the subject is -z). Each entry: joint -> (rest direction of the
# bone from its parent, adult length in metres, proportion group).
_REST_BONES: dict[int, tuple[tuple[float, float, float], float, str]] = {
    SPINE_MID: ((0.0, 1.0, 0.0), 0.25, "torso"),
    SPINE_SHOULDER: ((0.0, 1.0, 0.0), 0.22, "torso"),
    NECK: ((0.0, 1.0, 0.0), 0.08, "head"),
    HEAD: ((0.0, 1.0, -0.05), 0.12, "head"),
    L_SHOULDER: ((-1.0, -0.15, 0.0), 0.17, "shoulders"),
    R_SHOULDER: ((1.0, -0.15, 0.0), 0.17, "shoulders"),
    L_ELBOW: ((-0.06, -1.0, 0.0), 0.28, "upper_arm"),
    R_ELBOW: ((0.06, -1.0, 0.0), 0.28, "upper_arm"),
    L_WRIST: ((0.0, -1.0, 0.0), 0.25, "forearm"),
    R_WRIST: ((0.0, -1.0, 0.0), 0.25, "forearm"),
    L_HAND: ((0.0, -1.0, 0.0), 0.07, "hand"),
    R_HAND: ((0.0, -1.0, 0.0), 0.07, "hand"),
    L_HAND_TIP: ((0.0, -1.0, 0.0), 0.07, "hand"),
    R_HAND_TIP: ((0.0, -1.0, 0.0), 0.07, "hand"),
    L_THUMB: ((0.0, -0.5, -0.85), 0.04, "hand"),
    R_THUMB: ((0.0, -0.5, -0.85), 0.04, "hand"),
    L_HIP: ((-1.0, -0.35, 0.0), 0.09, "hips"),
    R_HIP: ((1.0, -0.35, 0.0), 0.09, "hips"),
    L_KNEE: ((0.0, -1.0, 0.0), 0.42, "thigh"),
    R_KNEE: ((0.0, -1.0, 0.0), 0.42, "thigh"),
    L_ANKLE: ((0.0, -1.0, 0.0), 0.40, "shin"),
    R_ANKLE: ((0.0, -1.0, 0.0), 0.40, "shin"),
    L_FOOT: ((0.0, -0.25, -1.0), 0.10, "foot"),
    R_FOOT: ((0.0, -0.25, -1.0), 0.10, "foot"),
}
_GROUPS = ("torso", "head", "shoulders", "upper_arm", "forearm", "hand", "hips", "thigh", "shin", "foot")


def _rest_directions() -> np.ndarray:
    d = np.zeros((_V, 3))
    for j, (direction, _, _) in _REST_BONES.items():
        d[j] = np.asarray(direction) / np.linalg.norm(direction)
    return d


_REST_DIRS = _rest_directions()
# Joints whose rotation moves something (they have children); leaves need no rotation matrix.
_FK_ORDER = tuple(j for j in NTU25.topological_order if j != NTU25.root)
_HAS_CHILDREN = frozenset(NTU25.parents[j] for j in _FK_ORDER)


def _check_seed(seed: int) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_id(value: int, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 1 <= value <= 999:
        raise ValueError(f"{what} must be an integer in [1, 999], got {value!r}")
    return int(value)


def subject_bone_lengths(subject: int, seed: int = 0) -> np.ndarray:
    """Bone lengths ``(25,)`` of one subject: entry ``j`` is the bone from ``parents[j]`` to ``j`` (0 for the root).

    An overall height scale in [0.85, 1.15] times independent per-segment factors of +-8%, left and
    right kept equal; a function of ``(seed, subject)`` only, so a subject looks the same in every split.
    """
    seed, subject = _check_seed(seed), _check_id(subject, "subject")
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SUBJECT_SALT, subject]))
    height = rng.uniform(0.85, 1.15)
    factor = {g: rng.uniform(0.92, 1.08) for g in _GROUPS}
    lengths = np.zeros(_V)
    for j, (_, base, group) in _REST_BONES.items():
        lengths[j] = base * height * factor[group]
    return lengths


# ---------------------------------------------------------------------------------------------
# Rotations and forward kinematics (explicit element-wise products: a clip's numbers do not depend
# on how many other clips share the batch)
# ---------------------------------------------------------------------------------------------
def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched 3x3 matrix product."""
    return a[..., :, 0:1] * b[..., 0:1, :] + a[..., :, 1:2] * b[..., 1:2, :] + a[..., :, 2:3] * b[..., 2:3, :]


def _mv(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Batched 3x3 matrix times 3-vector."""
    return a[..., :, 0] * v[..., None, 0] + a[..., :, 1] * v[..., None, 1] + a[..., :, 2] * v[..., None, 2]


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices about a coordinate axis (right-handed), for an array of angles in radians."""
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(np.shape(angle) + (3, 3))
    i, k = [(1, 2), (2, 0), (0, 1)][axis]
    m[..., axis, axis] = 1.0
    m[..., i, i] = c
    m[..., k, k] = c
    m[..., i, k] = -s
    m[..., k, i] = s
    return m


def _euler(angles: np.ndarray) -> np.ndarray:
    """Local rotation ``Ry @ Rx @ Rz`` from ``(..., 3)`` angles (rx, ry, rz) in radians.

    In the parent's frame: rz first (sideways raise, e.g. abduction), then rx (forward raise, flexion),
    then ry (turn about the vertical), which keeps every action's angles readable. Written out in
    closed form (it is the generator's hot spot).
    """
    cx, cy, cz = np.cos(angles[..., 0]), np.cos(angles[..., 1]), np.cos(angles[..., 2])
    sx, sy, sz = np.sin(angles[..., 0]), np.sin(angles[..., 1]), np.sin(angles[..., 2])
    m = np.empty(angles.shape[:-1] + (3, 3))
    m[..., 0, 0] = cy * cz + sy * sx * sz
    m[..., 0, 1] = sy * sx * cz - cy * sz
    m[..., 0, 2] = sy * cx
    m[..., 1, 0] = cx * sz
    m[..., 1, 1] = cx * cz
    m[..., 1, 2] = -sx
    m[..., 2, 0] = cy * sx * sz - sy * cz
    m[..., 2, 1] = sy * sz + cy * sx * cz
    m[..., 2, 2] = cy * cx
    return m


def _forward_kinematics(local: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Joint positions ``(..., V, 3)`` with the root at the origin.

    ``local``: local rotations ``(..., V, 3, 3)`` (the root's is its global rotation); ``offsets``:
    rest offsets ``(..., V, 3)`` of each joint from its parent. A joint's global rotation is its
    parent's global rotation times its own local one; a child sits at its parent's position plus the
    parent's global rotation applied to the child's rest offset.
    """
    shape = np.broadcast_shapes(local.shape[:-3], offsets.shape[:-2])
    pos = np.zeros(shape + (_V, 3))
    glob: dict[int, np.ndarray] = {NTU25.root: local[..., NTU25.root, :, :]}
    for j in _FK_ORDER:
        p = NTU25.parents[j]
        pos[..., j, :] = pos[..., p, :] + _mv(glob[p], offsets[..., j, :])
        if j in _HAS_CHILDREN:
            glob[j] = _mm(glob[p], local[..., j, :, :])
    return pos


# ---------------------------------------------------------------------------------------------
# Actions: phase p in [0, 1] (+ per-clip parameters) -> local joint angles in degrees, root lift
# ---------------------------------------------------------------------------------------------
def _ramp(p: np.ndarray, a: float, b: float) -> np.ndarray:
    """Smoothstep from 0 (p <= a) to 1 (p >= b)."""
    x = np.clip((p - a) / (b - a), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _bump(p: np.ndarray, rise: float, fall: float) -> np.ndarray:
    """0 -> 1 over [0, rise], hold, back to 0 over [1 - fall, 1]: the envelope of most actions."""
    return _ramp(p, 0.0, rise) * (1.0 - _ramp(p, 1.0 - fall, 1.0))


class _Pose:
    """Accumulates local joint angles (degrees) and a vertical root lift (metres) for a batch of clips."""

    def __init__(self, p: np.ndarray) -> None:
        self.deg = np.zeros(p.shape + (_V, 3))
        self.lift = np.zeros(p.shape)

    def add(self, joint: int, rx=0.0, ry=0.0, rz=0.0) -> None:
        self.deg[..., joint, 0] += rx
        self.deg[..., joint, 1] += ry
        self.deg[..., joint, 2] += rz

    def mirrored(self, joint_l: int, joint_r: int, rx=0.0, ry=0.0, rz=0.0) -> None:
        """Mirror-symmetric angles for a left/right joint pair: ry and rz are the right side's, negated on the left."""
        self.add(joint_r, rx, ry, rz)
        self.add(joint_l, rx, -ry, -rz)

    def crouch(self, thigh: np.ndarray, shin: np.ndarray, lean: np.ndarray) -> None:
        """Both legs bent with the trunk leaning ``lean`` degrees forward and feet kept flat.

        ``thigh``/``shin``: global forward angles of the thigh and the knee->ankle segment (negative
        = the knee is in front of the ankle). The root's own rotation carries the lean, so the hips
        undo it.
        """
        self.add(SPINE_BASE, rx=-lean)
        for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
            self.add(hip, rx=thigh + lean)
            self.add(knee, rx=shin - thigh)
            self.add(ankle, rx=-shin)


# Per-clip parameters an action may read, each ``(n, 1)`` so it broadcasts over frames:
# amp (0.8-1.2), phase (0-2pi), cycles (0-1, mapped to a count per action), style (-1..1).
_Params = dict[str, np.ndarray]


def _hand_wave(p: np.ndarray, q: _Params) -> _Pose:
    """Right arm raised to the side, forearm up and waving side to side for 2-3.5 cycles."""
    m, e = _Pose(p), _bump(p, 0.38, 0.38)
    waving = _ramp(p, 0.2, 0.4) * (1.0 - _ramp(p, 0.6, 0.8))
    wave = np.sin(2 * np.pi * (2.0 + 1.5 * q["cycles"]) * p + q["phase"]) * waving
    m.add(R_SHOULDER, ry=(25 + 10 * q["style"]) * e, rz=90 * q["amp"] * e)
    m.add(R_ELBOW, rz=80 * e * e + 22 * q["amp"] * wave)  # the elbow bends as the arm rises
    m.add(R_WRIST, rz=10 * wave)
    m.add(NECK, ry=-8 * e)
    return m


def _clap(p: np.ndarray, q: _Params) -> _Pose:
    """Both arms forward, the hands meeting in front of the chest 3-4.5 times."""
    m, e = _Pose(p), _bump(p, 0.25, 0.25)
    closed = 0.5 - 0.5 * np.cos(2 * np.pi * (3.0 + 1.5 * q["cycles"]) * p + q["phase"])
    m.mirrored(L_SHOULDER, R_SHOULDER, rx=(55 + 15 * q["style"]) * q["amp"] * e, ry=(2 + 30 * closed) * e)
    m.mirrored(L_ELBOW, R_ELBOW, rx=45 * e)
    m.mirrored(L_WRIST, R_WRIST, ry=20 * e)
    return m


def _punch(p: np.ndarray, q: _Params) -> _Pose:
    """Fists up in a guard, the right arm thrusts forward fast with a torso twist, returns to guard."""
    m, guard = _Pose(p), _bump(p, 0.3, 0.25)
    out = _ramp(p, 0.36, 0.52) * (1.0 - _ramp(p, 0.56, 0.76))
    m.mirrored(L_SHOULDER, R_SHOULDER, rx=45 * guard, ry=15 * guard, rz=10 * guard)
    m.mirrored(L_ELBOW, R_ELBOW, rx=115 * guard)
    m.add(R_SHOULDER, rx=(40 + 10 * q["style"]) * q["amp"] * out, ry=-5 * out, rz=-10 * out)
    m.add(R_ELBOW, rx=-110 * out)
    m.add(SPINE_MID, ry=25 * q["amp"] * out)
    m.add(SPINE_BASE, ry=8 * out)
    return m


def _kick(p: np.ndarray, q: _Params) -> _Pose:
    """Right knee chambers up, the leg extends forward/up, then lowers; arms out for balance."""
    m = _Pose(p)
    chamber, extend, down = _ramp(p, 0.05, 0.38), _ramp(p, 0.36, 0.58), 1.0 - _ramp(p, 0.62, 0.95)
    m.add(R_HIP, rx=(45 * chamber + (25 + 10 * q["style"]) * q["amp"] * extend) * down)
    m.add(R_KNEE, rx=-75 * chamber * (1.0 - extend) * down)
    m.add(R_ANKLE, rx=-20 * extend * down)
    m.add(SPINE_MID, rx=12 * chamber * down)
    m.mirrored(L_SHOULDER, R_SHOULDER, rx=15 * chamber * down, rz=25 * chamber * down)
    m.mirrored(L_ELBOW, R_ELBOW, rx=40 * chamber * down)
    return m


def _jump_up(p: np.ndarray, q: _Params) -> _Pose:
    """Crouch with arms back, jump straight up swinging the arms overhead, land softly, stand."""
    m = _Pose(p)
    dip = _ramp(p, 0.0, 0.24) * (1.0 - _ramp(p, 0.22, 0.42))
    land = _ramp(p, 0.66, 0.76) * (1.0 - _ramp(p, 0.76, 1.0))
    crouch = dip + 0.5 * land
    m.crouch(thigh=55 * crouch, shin=-30 * crouch, lean=15 * crouch)
    arms_up = _ramp(p, 0.0, 0.45) * (1.0 - 0.6 * _ramp(p, 0.62, 1.0))
    m.mirrored(L_SHOULDER, R_SHOULDER, rx=-10 * dip + (90 + 15 * q["style"]) * arms_up, rz=10 * arms_up)
    x = np.clip((p - 0.38) / 0.3, 0.0, 1.0)
    m.lift = 0.18 * q["amp"] * 4.0 * x * (1.0 - x)  # ballistic flight, about 0.15-0.22 m
    m.mirrored(L_ANKLE, R_ANKLE, rx=-25 * np.sqrt(4.0 * x * (1.0 - x)))  # toes point down in the air
    return m


def _squat(p: np.ndarray, q: _Params) -> _Pose:
    """Knees and hips flex, the body goes down with the arms forward for balance, then back up."""
    m, e = _Pose(p), _bump(p, 0.35, 0.35)
    depth = q["amp"] * e
    m.crouch(thigh=80 * depth, shin=-(25 + 5 * q["style"]) * depth, lean=30 * depth)
    m.mirrored(L_SHOULDER, R_SHOULDER, rx=(80 + 30 * e) * e)
    m.add(NECK, rx=15 * e)
    return m


def _bow(p: np.ndarray, q: _Params) -> _Pose:
    """The spine flexes forward 40-70 degrees over the hips, holds briefly, straightens."""
    m, e = _Pose(p), _bump(p, 0.35, 0.35)
    bend = np.clip(55 * q["amp"], 40, 70) * e
    m.add(SPINE_BASE, rx=-0.5 * bend)
    m.mirrored(L_HIP, R_HIP, rx=0.5 * bend)
    m.add(SPINE_MID, rx=-0.35 * bend)
    m.add(SPINE_SHOULDER, rx=-0.15 * bend)
    m.mirrored(L_SHOULDER, R_SHOULDER, rx=(0.5 + 0.3 * q["style"]) * bend)
    return m


def _throw(p: np.ndarray, q: _Params) -> _Pose:
    """The right arm winds up overhead with the forearm back, then swings forward and down."""
    m = _Pose(p)
    wind, swing, back = _ramp(p, 0.0, 0.42), _ramp(p, 0.42, 0.8), 1.0 - _ramp(p, 0.8, 1.0)
    m.add(R_SHOULDER, rx=(125 * wind - 80 * q["amp"] * swing) * back, rz=20 * wind * (1.0 - swing) * back)
    m.add(R_ELBOW, rx=(90 * wind * wind * (1.0 - swing) + 10 * swing) * back)  # forearm drops back late
    m.add(SPINE_MID, rx=(10 * wind - 25 * swing) * back, ry=(-20 * wind + 30 * swing) * back)
    m.add(L_SHOULDER, rx=(40 + 10 * q["style"]) * wind * (1.0 - swing) * back)
    return m


def _point(p: np.ndarray, q: _Params) -> _Pose:
    """The straight right arm rises forward to about horizontal and holds (aim varies per clip)."""
    m, e = _Pose(p), _ramp(p, 0.0, 0.4)
    m.add(R_SHOULDER, rx=90 * q["amp"] * e, ry=25 * q["style"] * e)
    m.add(R_ELBOW, rx=5 * e)
    m.add(NECK, ry=-10 * q["style"] * e)
    return m


def _cheer(p: np.ndarray, q: _Params) -> _Pose:
    """Both arms up overhead in a V, waving gently 2-3 times, then partly lowered."""
    m, e = _Pose(p), _ramp(p, 0.0, 0.4) * (1.0 - 0.5 * _ramp(p, 0.7, 1.0))
    wave = np.sin(2 * np.pi * (2.0 + 1.0 * q["cycles"]) * p + q["phase"]) * _ramp(p, 0.2, 0.45)
    up = (150 + 15 * q["style"]) * (0.85 + 0.15 * q["amp"])
    m.mirrored(L_SHOULDER, R_SHOULDER, rx=up * e, rz=30 * e + 12 * wave)
    m.mirrored(L_ELBOW, R_ELBOW, rx=20 * e + 15 * wave)
    m.add(NECK, rx=-10 * e)
    return m


def _cross_arms(p: np.ndarray, q: _Params) -> _Pose:
    """Forearms fold across the chest, one over the other, and hold."""
    m, e = _Pose(p), _ramp(p, 0.0, 0.4)
    m.mirrored(L_SHOULDER, R_SHOULDER, rx=(20 + 8 * q["style"]) * e, ry=10 * e)
    m.add(R_ELBOW, rx=90 * e, ry=75 * q["amp"] * e)
    m.add(L_ELBOW, rx=105 * e, ry=-75 * q["amp"] * e)
    return m


def _hop_one_leg(p: np.ndarray, q: _Params) -> _Pose:
    """Left foot lifted behind (knee bent), 2-3 small vertical bounces on the right leg, arms out."""
    m, e = _Pose(p), _bump(p, 0.25, 0.2)
    m.add(L_HIP, rx=(15 + 10 * q["style"]) * e)
    m.add(L_KNEE, rx=-85 * q["amp"] * e)
    x = np.clip((p - 0.2) / 0.65, 0.0, 1.0)
    hop = np.abs(np.sin(np.pi * (2.0 + 1.0 * q["cycles"]) * x))
    m.lift = 0.08 * q["amp"] * hop
    m.add(R_HIP, rx=15 * (1.0 - hop) * e)
    m.add(R_KNEE, rx=-30 * (1.0 - hop) * e)
    m.add(R_ANKLE, rx=15 * (1.0 - hop) * e)
    m.mirrored(L_SHOULDER, R_SHOULDER, rz=30 * e)
    m.mirrored(L_ELBOW, R_ELBOW, rx=30 * e)
    return m


# Per action: its helper, the ankles that stay planted on the floor (the root moves to keep them
# there), and how free the (left, right) arm is to take a per-clip posture and fidget (0 = the
# action dictates the arm).
_BOTH_FEET = (L_ANKLE, R_ANKLE)
_ACTIONS: tuple[tuple[Callable[[np.ndarray, _Params], _Pose], tuple[int, ...], tuple[float, float]], ...] = (
    (_hand_wave, _BOTH_FEET, (1.0, 0.0)),
    (_clap, _BOTH_FEET, (0.0, 0.0)),
    (_punch, _BOTH_FEET, (0.0, 0.0)),
    (_kick, (L_ANKLE,), (0.5, 0.5)),
    (_jump_up, _BOTH_FEET, (0.0, 0.0)),
    (_squat, _BOTH_FEET, (0.3, 0.3)),
    (_bow, _BOTH_FEET, (0.6, 0.6)),
    (_throw, _BOTH_FEET, (0.3, 0.0)),
    (_point, _BOTH_FEET, (1.0, 0.0)),
    (_cheer, _BOTH_FEET, (0.3, 0.3)),
    (_cross_arms, _BOTH_FEET, (0.0, 0.0)),
    (_hop_one_leg, (R_ANKLE,), (0.5, 0.5)),
)
assert len(_ACTIONS) == len(SYNTH_ACTIONS)

# ---------------------------------------------------------------------------------------------
# Per-clip variation
# ---------------------------------------------------------------------------------------------
_JITTER_PAD = 4  # frames of noise lost to the smoothing kernel on each side
_JITTER_KERNEL = np.array([1.0, 8.0, 28.0, 56.0, 70.0, 56.0, 28.0, 8.0, 1.0]) / 256.0  # binomial, sd 1.4 frames
_SCALARS = (
    "length", "start", "span", "warp", "amp", "phase", "cycles", "style",
    "yaw", "tilt", "x", "y", "z", "idle_phase", "idle_freq", "breath", "swing", "jitter_deg",
    "lean", "side_lean", "twist", "nod", "head_turn", "stance", "knees", "fidget_freq",
    *(k + side for side in ("_l", "_r") for k in ("arm_fwd", "arm_out", "elbow", "fidget", "fidget_phase")),
)


def _clip_params(seed: int, subject: int, action: int, repetition: int) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Everything random about one clip, drawn in a fixed order from its own stream."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _CLIP_SALT, subject, action, repetition]))
    v = {
        "length": float(rng.integers(MIN_VALID_FRAMES, SYNTH_FRAMES + 1)),
        "start": rng.uniform(0.0, 3.0),  # idle frames before the action
        "span": rng.uniform(0.9, 1.0),  # share of the remaining valid frames the action takes
        "warp": rng.uniform(-0.1, 0.1),  # uneven tempo within the action
        "amp": rng.uniform(0.8, 1.2),
        "phase": rng.uniform(0.0, 2 * np.pi),
        "cycles": rng.uniform(0.0, 1.0),
        "style": rng.uniform(-1.0, 1.0),
        "yaw": np.deg2rad(rng.uniform(-60.0, 60.0)),  # facing direction relative to the camera
        "tilt": np.deg2rad(rng.uniform(-5.0, 5.0)),  # camera pitch
        "x": rng.uniform(-0.5, 0.5),
        "y": rng.uniform(-0.4, 0.1),  # spine base height relative to the camera
        "z": rng.uniform(2.3, 4.0),
        "idle_phase": rng.uniform(0.0, 2 * np.pi),
        "idle_freq": rng.uniform(0.2, 0.45),  # Hz
        "breath": rng.uniform(0.5, 1.5),  # degrees
        "swing": rng.uniform(0.0, 3.0),  # degrees
        "jitter_deg": rng.uniform(1.0, 2.0),  # before smoothing, which scales it by 0.44
        # posture nuisance (degrees), the same for every class
        "lean": rng.uniform(-8.0, 8.0),
        "side_lean": rng.uniform(-5.0, 5.0),
        "twist": rng.uniform(-12.0, 12.0),
        "nod": rng.uniform(-10.0, 10.0),
        "head_turn": rng.uniform(-25.0, 25.0),
        "stance": rng.uniform(0.0, 8.0),
        "knees": rng.uniform(0.0, 10.0),
        "fidget_freq": rng.uniform(0.3, 1.0),  # Hz
    }
    for side in "lr":  # a free arm's resting pose and fidget
        v["arm_fwd_" + side] = rng.uniform(-10.0, 25.0)
        v["arm_out_" + side] = rng.uniform(0.0, 20.0)
        v["elbow_" + side] = rng.uniform(0.0, 50.0)
        v["fidget_" + side] = rng.uniform(0.0, 12.0)
        v["fidget_phase_" + side] = rng.uniform(0.0, 2 * np.pi)
    frames = SYNTH_FRAMES + 2 * _JITTER_PAD
    angle_noise = rng.standard_normal((frames, _V, 3)) * v["jitter_deg"]
    root_noise = rng.standard_normal((frames, 3)) * 0.006
    return v, angle_noise, root_noise


def _smooth(noise: np.ndarray) -> np.ndarray:
    """Binomial low-pass along axis 1 (frames), dropping the padding: sensor noise is not white."""
    t = noise.shape[1] - 2 * _JITTER_PAD
    return sum(w * noise[:, i : i + t] for i, w in enumerate(_JITTER_KERNEL))


def _add_idle_posture(pose: _Pose, t: np.ndarray, q: _Params, free_arms: tuple[float, float]) -> None:
    """Class-independent nuisance: a per-clip posture (lean, twist, head, stance, free arms) and slow
    idle motion (breathing sway, arm swing, fidgeting of the free arms), so that no class is told
    apart by posture alone."""
    idle = np.sin(2 * np.pi * q["idle_freq"] * t / SYNTH_FPS + q["idle_phase"])
    pose.add(SPINE_MID, rx=q["lean"] + q["breath"] * idle, ry=q["twist"], rz=q["side_lean"])
    pose.add(NECK, rx=q["nod"] - 0.5 * q["breath"] * idle, ry=q["head_turn"])
    pose.mirrored(L_HIP, R_HIP, rz=q["stance"])
    pose.crouch(thigh=q["knees"], shin=-q["knees"], lean=0.0)
    pose.mirrored(L_SHOULDER, R_SHOULDER, rz=0.3 * q["swing"])
    pose.add(L_SHOULDER, rx=q["swing"] * idle)
    pose.add(R_SHOULDER, rx=-q["swing"] * idle)
    for w, side, shoulder, elbow in ((free_arms[0], "l", L_SHOULDER, L_ELBOW), (free_arms[1], "r", R_SHOULDER, R_ELBOW)):
        if w:
            fidget = q["fidget_" + side] * np.sin(2 * np.pi * q["fidget_freq"] * t / SYNTH_FPS + q["fidget_phase_" + side])
            out = q["arm_out_" + side] if side == "r" else -q["arm_out_" + side]
            pose.add(shoulder, rx=w * (q["arm_fwd_" + side] + fidget), rz=w * out)
            pose.add(elbow, rx=w * (q["elbow_" + side] + 1.5 * fidget))


def _render(action: int, q: _Params, angle_noise: np.ndarray, root_noise: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Camera-space joint positions ``(n, T, V, 3)`` for ``n`` clips of one action."""
    helper, stance, free_arms = _ACTIONS[action]
    t = np.arange(SYNTH_FRAMES, dtype=np.float64)[None, :]
    lin = np.clip((t - q["start"]) / (q["span"] * (q["length"] - q["start"])), 0.0, 1.0)
    phase = lin + q["warp"] * np.sin(2 * np.pi * lin) / (2 * np.pi)
    pose = helper(phase, q)

    _add_idle_posture(pose, t, q, free_arms)

    jitter = np.clip(_smooth(angle_noise), -3.0, 3.0)  # degrees, on the angles: bone lengths stay exact
    local = _euler(np.deg2rad(pose.deg + jitter))
    offsets = (_REST_DIRS[None] * lengths[:, :, None])[:, None]  # (n, 1, V, 3)
    body = _forward_kinematics(local, offsets)

    # Move the root so the planted ankles stay where they stand at rest, then add the action's lift.
    rest = _forward_kinematics(np.broadcast_to(np.eye(3), (1, _V, 3, 3)), offsets[:, 0])[:, None]
    ankles = [L_ANKLE, R_ANKLE]
    root = np.zeros(body.shape[:2] + (3,))
    root[..., 1] = -(body[..., ankles, 1].min(axis=-1) - rest[..., ankles, 1].min(axis=-1)) + pose.lift
    slide = (body[..., list(stance), :] - rest[..., list(stance), :]).mean(axis=-2)
    root[..., 0], root[..., 2] = -slide[..., 0], -slide[..., 2]
    body = body + (root + _smooth(root_noise))[:, :, None, :]

    # Camera: the subject turned by ``yaw`` about the vertical, a slightly pitched sensor, an offset.
    view = _mm(_rot(0, q["tilt"][:, 0]), _rot(1, q["yaw"][:, 0]))[:, None, None]  # (n, 1, 1, 3, 3)
    base = np.stack([q["x"][:, 0], q["y"][:, 0], q["z"][:, 0]], axis=-1)[:, None, None]
    return _mv(view, body) + base


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthClips:
    """A batch of generated clips and their metadata (rows aligned)."""

    clips: np.ndarray  # float32 (N, 3, T, 25, 2), metres, camera coordinates
    labels: np.ndarray  # int64 (N,), index into SYNTH_ACTIONS
    sample_ids: tuple[str, ...]  # "S007A003R02": subject, action (1-based), repetition
    subjects: np.ndarray  # int64 (N,)
    valid_lengths: np.ndarray  # int64 (N,); frames from here on are zero

    def __len__(self) -> int:
        return len(self.labels)


def _action_index(action: int | str) -> int:
    if isinstance(action, str):
        if action not in SYNTH_ACTIONS:
            raise ValueError(f"unknown synth action {action!r}; known: {', '.join(SYNTH_ACTIONS)}")
        return SYNTH_ACTIONS.index(action)
    if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)) or not 0 <= action < len(SYNTH_ACTIONS):
        raise ValueError(f"action must be a name or an index in [0, {len(SYNTH_ACTIONS)}), got {action!r}")
    return int(action)


def generate_clips(
    subjects: Iterable[int],
    actions: Iterable[int | str],
    repetitions: int | Iterable[int],
    seed: int = 0,
) -> SynthClips:
    """All (subject, action, repetition) combinations, ordered subject-major, then action, then repetition.

    ``actions`` are 0-based label indices or names; ``repetitions`` is a count (ids 1..n) or the
    1-based repetition ids themselves. Each clip depends only on its own key and ``seed``.
    """
    seed = _check_seed(seed)
    subj = [_check_id(s, "subject") for s in subjects]
    acts = [_action_index(a) for a in actions]
    if isinstance(repetitions, (int, np.integer)) and not isinstance(repetitions, (bool, np.bool_)):
        if repetitions < 0:
            raise ValueError(f"repetitions must be >= 0, got {repetitions}")
        reps = list(range(1, int(repetitions) + 1))
    else:
        reps = [_check_id(r, "repetition") for r in repetitions]
    keys = [(s, a, r) for s in subj for a in acts for r in reps]
    n = len(keys)

    bones = {s: subject_bone_lengths(s, seed) for s in set(subj)}
    drawn = [_clip_params(seed, s, a, r) for s, a, r in keys]
    scalars = {k: np.array([d[0][k] for d in drawn], dtype=np.float64).reshape(n, 1) for k in _SCALARS}
    angle_noise = np.array([d[1] for d in drawn]).reshape(n, SYNTH_FRAMES + 2 * _JITTER_PAD, _V, 3)
    root_noise = np.array([d[2] for d in drawn]).reshape(n, SYNTH_FRAMES + 2 * _JITTER_PAD, 3)
    labels = np.array([a for _, a, _ in keys], dtype=np.int64)
    lengths = scalars["length"][:, 0].astype(np.int64)

    clips = np.zeros((n, 3, SYNTH_FRAMES, _V, 2), dtype=np.float32)
    for a in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == a)
        q = {k: v[idx] for k, v in scalars.items()}
        bone_lengths = np.stack([bones[keys[i][0]] for i in idx])
        xyz = _render(a, q, angle_noise[idx], root_noise[idx], bone_lengths)  # (k, T, V, 3)
        xyz[np.arange(SYNTH_FRAMES)[None, :] >= lengths[idx, None]] = 0.0  # NTU-style zero padding
        clips[idx, :, :, :, 0] = xyz.transpose(0, 3, 1, 2)

    return SynthClips(
        clips=clips,
        labels=labels,
        sample_ids=tuple(f"S{s:03d}A{a + 1:03d}R{r:02d}" for s, a, r in keys),
        subjects=np.array([s for s, _, _ in keys], dtype=np.int64),
        valid_lengths=lengths,
    )


def generate_split(split: str, seed: int = 0) -> SynthClips:
    """The cross-subject ``"train"`` or ``"test"`` split of the benchmark."""
    if split == "train":
        return generate_clips(TRAIN_SUBJECTS, range(len(SYNTH_ACTIONS)), TRAIN_REPETITIONS, seed)
    if split == "test":
        return generate_clips(TEST_SUBJECTS, range(len(SYNTH_ACTIONS)), TEST_REPETITIONS, seed)
    raise ValueError(f"unknown synth split {split!r}; expected 'train' or 'test'")
