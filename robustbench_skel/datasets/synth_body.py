"""The body model of ``synth`` 2.0: performers, forward kinematics, arm inverse kinematics and hand shapes.

A performer is a skeleton in the NTU-25 layout with their own bone lengths and handedness. A pose is
built in two steps: joint angles drive forward kinematics for the trunk, head and legs (bone lengths
exact by construction), then each arm is placed by two-link inverse kinematics on a wrist target, and
the hand tip and thumb take a hand shape. Fine-grained classes differ by where a wrist goes and which
shape a hand takes, a few centimetres, which is what makes NTU's hand classes hard.

Body frame: x = the performer's right, y = up, z = behind them (they face -z), metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..layout import NTU25

__all__ = ["Performer", "performer", "Pose", "pose_to_joints", "HAND_SHAPES", "LANDMARKS"]

# Joint indices (0-based NTU-25).
SPINE_BASE, SPINE_MID, NECK, HEAD = 0, 1, 2, 3
L_SHOULDER, L_ELBOW, L_WRIST, L_HAND = 4, 5, 6, 7
R_SHOULDER, R_ELBOW, R_WRIST, R_HAND = 8, 9, 10, 11
L_HIP, L_KNEE, L_ANKLE, L_FOOT = 12, 13, 14, 15
R_HIP, R_KNEE, R_ANKLE, R_FOOT = 16, 17, 18, 19
SPINE_SHOULDER, L_HAND_TIP, L_THUMB, R_HAND_TIP, R_THUMB = 20, 21, 22, 23, 24
V = NTU25.num_joints

# joint -> (rest direction of the bone from its parent, adult length in metres, proportion group)
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
LEFT_HANDED_SHARE = 0.15  # roughly the share of left-handed adults; a left-hander uses the left hand for one-hand actions

_SUBJECT_SALT = 0x5B1EC8
ANKLE_HEIGHT = 0.08  # metres from the floor to the ankle joint of a standing foot


def _rest_directions() -> np.ndarray:
    d = np.zeros((V, 3))
    for j, (direction, _, _) in _REST_BONES.items():
        d[j] = np.asarray(direction) / np.linalg.norm(direction)
    return d


REST_DIRS = _rest_directions()
_FK_ORDER = tuple(j for j in NTU25.topological_order if j != NTU25.root)
_HAS_CHILDREN = frozenset(NTU25.parents[j] for j in _FK_ORDER)


@dataclass(frozen=True)
class Performer:
    """One generated subject: bone lengths ``(25,)`` (entry j is the bone parent(j) -> j) and habits."""

    subject: int
    bone_lengths: np.ndarray
    left_handed: bool
    height_scale: float
    tempo: float  # the subject's own speed, multiplies every clip's tempo draw
    sway: float  # idle sway amplitude, degrees
    habit: tuple[float, float, float]  # a per-performer offset of every hand target, in units of HABIT_M


def performer(subject: int, seed: int = 0) -> Performer:
    """The performer ``subject``: a function of ``(seed, subject)`` only, the same in every split and view."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SUBJECT_SALT, subject]))
    height = rng.uniform(0.85, 1.15)
    factor = {g: rng.uniform(0.92, 1.08) for g in _GROUPS}
    lengths = np.zeros(V)
    for j, (_, base, group) in _REST_BONES.items():
        lengths[j] = base * height * factor[group]
    return Performer(
        subject=subject,
        bone_lengths=lengths,
        left_handed=bool(rng.uniform() < LEFT_HANDED_SHARE),
        height_scale=float(height),
        tempo=float(rng.uniform(0.85, 1.15)),
        sway=float(rng.uniform(0.5, 3.0)),
        habit=tuple(float(x) for x in rng.standard_normal(3)),
    )


# ---------------------------------------------------------------------------------------------
# Rotations and forward kinematics
# ---------------------------------------------------------------------------------------------
def mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched 3x3 matrix product, element-wise so a clip's numbers do not depend on its batch."""
    return a[..., :, 0:1] * b[..., 0:1, :] + a[..., :, 1:2] * b[..., 1:2, :] + a[..., :, 2:3] * b[..., 2:3, :]


def mv(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Batched 3x3 matrix times 3-vector."""
    return a[..., :, 0] * v[..., None, 0] + a[..., :, 1] * v[..., None, 1] + a[..., :, 2] * v[..., None, 2]


def rot_y(angle: np.ndarray) -> np.ndarray:
    """Rotation about the vertical axis (radians), for an array of angles."""
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(np.shape(angle) + (3, 3))
    m[..., 0, 0], m[..., 0, 2], m[..., 1, 1], m[..., 2, 0], m[..., 2, 2] = c, s, 1.0, -s, c
    return m


def euler(angles: np.ndarray) -> np.ndarray:
    """Local rotation ``Ry @ Rx @ Rz`` from ``(..., 3)`` angles (rx, ry, rz) in radians.

    In the parent's frame: rz first (sideways raise), then rx (forward raise, flexion), then ry (turn
    about the bone's vertical).
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


def forward_kinematics(local: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Joint positions ``(..., V, 3)`` (root at the origin) and the global rotation of every parent joint."""
    shape = np.broadcast_shapes(local.shape[:-3], offsets.shape[:-2])
    pos = np.zeros(shape + (V, 3))
    glob: dict[int, np.ndarray] = {NTU25.root: np.broadcast_to(local[..., NTU25.root, :, :], shape + (3, 3))}
    for j in _FK_ORDER:
        p = NTU25.parents[j]
        pos[..., j, :] = pos[..., p, :] + mv(glob[p], offsets[..., j, :])
        if j in _HAS_CHILDREN:
            glob[j] = mm(glob[p], local[..., j, :, :])
    return pos, glob


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


# ---------------------------------------------------------------------------------------------
# Hands: tip and thumb directions in a hand frame (h along the hand, n the palm normal, s the thumb side)
# ---------------------------------------------------------------------------------------------
# name -> (finger curl towards the palm in degrees, thumb angle from h towards s, thumb angle towards n).
# The NTU hand tip follows the extended fingers, the thumb joint its tip: a fist pulls the hand tip back
# by about 5 cm, an extended thumb moves the thumb joint by 3-4 cm.
HAND_SHAPES: dict[str, tuple[float, float, float]] = {
    "relaxed": (25.0, 40.0, 15.0),
    "flat": (0.0, 35.0, 0.0),
    "fist": (150.0, 40.0, 55.0),
    "point": (5.0, 20.0, 70.0),  # extended fingers, thumb tucked across the palm
    "thumb_up": (150.0, 95.0, -10.0),  # fist, thumb straight out along s
    "ok": (95.0, 35.0, 60.0),  # fingers half-curled onto the thumb: tip and thumb nearly touch
    "grip": (80.0, 55.0, 45.0),  # holding a cup, a phone, a brush
}
_SHAPE_NAMES = tuple(HAND_SHAPES)
SHAPE_TABLE = np.deg2rad(np.array([HAND_SHAPES[k] for k in _SHAPE_NAMES]))


def shape_index(name: str) -> int:
    return _SHAPE_NAMES.index(name)


# ---------------------------------------------------------------------------------------------
# Poses
# ---------------------------------------------------------------------------------------------
class Pose:
    """One performer's motion over ``(n, T)`` frames: trunk/leg angles, root motion, arm and hand plans.

    ``deg`` holds local joint angles in degrees for forward kinematics. An arm either follows its
    angles (``ik[side] = 0``) or reaches for ``wrist[side]``, a wrist target in the chest frame
    (origin the spine-shoulder joint), blended by ``ik[side]`` in [0, 1]. ``hand_dir`` bends the hand
    off the forearm's line (chest frame), ``palm`` points the palm, ``shape`` weights the hand shapes.
    """

    def __init__(self, n: int, t: int) -> None:
        self.deg = np.zeros((n, t, V, 3))
        self.lift = np.zeros((n, t))  # vertical root lift (jumps), metres
        self.root = np.zeros((n, t, 3))  # horizontal root travel in the body frame (walking), metres
        self.yaw = np.zeros((n, t))  # turning of the whole body, degrees
        self.planted: tuple[int, ...] = (L_ANKLE, R_ANKLE)  # ankles the root keeps on the floor
        self.ik = {side: np.zeros((n, t, 1)) for side in "lr"}
        self.wrist = {side: np.zeros((n, t, 3)) for side in "lr"}
        self.pole = {side: np.broadcast_to(np.array([0.8 * (1 if side == "r" else -1), -0.3, 0.7]), (n, t, 3)).copy() for side in "lr"}
        self.hand_dir = {side: np.zeros((n, t, 3)) for side in "lr"}  # added to the forearm direction
        self.palm = {side: np.broadcast_to(np.array([-1.0 if side == "r" else 1.0, 0.0, 0.0]), (n, t, 3)).copy() for side in "lr"}
        self.shape = {side: np.zeros((n, t, len(_SHAPE_NAMES))) for side in "lr"}
        for side in "lr":
            self.shape[side][..., shape_index("relaxed")] = 1.0

    def add(self, joint: int, rx=0.0, ry=0.0, rz=0.0) -> None:
        self.deg[..., joint, 0] += rx
        self.deg[..., joint, 1] += ry
        self.deg[..., joint, 2] += rz

    def mirrored(self, joint_l: int, joint_r: int, rx=0.0, ry=0.0, rz=0.0) -> None:
        """Mirror-symmetric angles: ry and rz are the right side's, negated on the left."""
        self.add(joint_r, rx, ry, rz)
        self.add(joint_l, rx, -np.asarray(ry), -np.asarray(rz))

    def crouch(self, thigh, shin, lean) -> None:
        """Both legs bent (global thigh/shin forward angles, degrees), trunk leaning ``lean``, feet flat."""
        self.add(SPINE_BASE, rx=-np.asarray(lean))
        for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
            self.add(hip, rx=np.asarray(thigh) + lean)
            self.add(knee, rx=np.asarray(shin) - thigh)
            self.add(ankle, rx=-np.asarray(shin))

    def reach(self, side: str, target: np.ndarray, weight) -> None:
        """Blend arm ``side`` towards a wrist target ``(..., 3)`` in the chest frame with ``weight`` in [0, 1]."""
        w = np.asarray(weight)[..., None] if np.ndim(weight) else np.asarray(weight)
        w = np.broadcast_to(w, self.ik[side].shape)
        tgt = np.broadcast_to(target, self.wrist[side].shape)
        total = self.ik[side] + w
        self.wrist[side] = np.where(total > 0, (self.wrist[side] * self.ik[side] + tgt * w) / np.maximum(total, 1e-9), tgt)
        self.ik[side] = np.clip(total, 0.0, 1.0)

    def hand(self, side: str, shape: str, weight, palm=None, direction=None) -> None:
        """Blend hand ``side`` towards ``shape`` with ``weight``; optionally point the palm and bend the hand."""
        w = np.asarray(weight)
        w = w[..., None] if w.ndim else w
        one_hot = np.zeros(len(_SHAPE_NAMES))
        one_hot[shape_index(shape)] = 1.0
        self.shape[side] = self.shape[side] * (1.0 - w) + one_hot * w
        if palm is not None:
            self.palm[side] = self.palm[side] * (1.0 - w) + np.asarray(palm) * w
        if direction is not None:
            self.hand_dir[side] = self.hand_dir[side] + np.asarray(direction) * w


def _two_link_ik(shoulder, target, upper, lower, pole):
    """Elbow and wrist positions of a two-link arm reaching ``target`` from ``shoulder`` (lengths exact)."""
    d_vec = target - shoulder
    dist = np.linalg.norm(d_vec, axis=-1, keepdims=True)
    direction = d_vec / np.maximum(dist, 1e-9)
    reach = np.clip(dist, np.abs(upper - lower) + 1e-3, (upper + lower) * 0.995)
    along = (upper**2 - lower**2 + reach**2) / (2.0 * reach)
    radius = np.sqrt(np.maximum(upper**2 - along**2, 0.0))
    bend = _perpendicular_with_memory(direction, pole)
    elbow = shoulder + along * direction + radius * bend
    wrist = shoulder + reach * direction
    return elbow, wrist


def _perpendicular_with_memory(axis: np.ndarray, wanted: np.ndarray, memory: float = 0.5) -> np.ndarray:
    """Unit vectors ``(n, T, 3)`` perpendicular to ``axis``, as close to ``wanted`` as continuity allows.

    ``wanted`` is projected off the axis; where it nearly lines up with the axis (a palm turned
    "inwards" while the forearm itself points inwards, an elbow pole along the arm) the projection
    vanishes and would flip from frame to frame, so each frame also keeps ``memory`` of the previous one.
    """
    h = axis
    wanted = wanted - (wanted * h).sum(-1, keepdims=True) * h
    n = np.empty_like(wanted)
    previous = _unit(wanted[:, 0])
    for t in range(wanted.shape[1]):
        mixed = wanted[:, t] + memory * previous
        mixed = mixed - (mixed * h[:, t]).sum(-1, keepdims=True) * h[:, t]
        previous = n[:, t] = _unit(mixed)
    return n


def _place_hand(pos, wrist_j, hand_j, tip_j, thumb_j, lengths, forearm_dir, hand_dir, palm, shape_w, side_sign):
    """Hand, hand-tip and thumb positions from the forearm's direction, a hand bend, the palm and a shape mix."""
    h = _unit(forearm_dir + hand_dir)
    n = _perpendicular_with_memory(h, palm)
    s = side_sign * np.cross(h, n)
    angles = shape_w @ SHAPE_TABLE  # (..., 3): mixed shape
    curl, thumb_s, thumb_n = angles[..., 0:1], angles[..., 1:2], angles[..., 2:3]
    hand = pos[..., wrist_j, :] + lengths[..., hand_j, None] * h
    tip_dir = np.cos(curl) * h + np.sin(curl) * n
    thumb_dir = _unit(np.cos(thumb_s) * np.cos(thumb_n) * h + np.sin(thumb_s) * s + np.cos(thumb_s) * np.sin(thumb_n) * n)
    pos[..., hand_j, :] = hand
    pos[..., tip_j, :] = hand + lengths[..., tip_j, None] * tip_dir
    pos[..., thumb_j, :] = hand + lengths[..., thumb_j, None] * thumb_dir


# Where an elbow points when no action says otherwise (chest frame): out, a little down, back.
_REST_POLE = {"r": np.array([0.8, -0.3, 0.7]), "l": np.array([-0.8, -0.3, 0.7])}

_SWING_VIA = {"r": np.array([0.3, 0.0, -1.0]), "l": np.array([-0.3, 0.0, -1.0])}

_ARMS = {
    "l": (L_SHOULDER, L_ELBOW, L_WRIST, L_HAND, L_HAND_TIP, L_THUMB, -1.0),
    "r": (R_SHOULDER, R_ELBOW, R_WRIST, R_HAND, R_HAND_TIP, R_THUMB, 1.0),
}


def pose_to_joints(pose: Pose, lengths: np.ndarray) -> np.ndarray:
    """Body-frame joint positions ``(n, T, V, 3)`` of a pose for performers with bone ``lengths`` ``(n, V)``.

    The floor is y = 0: the root is placed so that the lowest ankle sits ``ANKLE_HEIGHT`` above it and
    the planted ankles keep their rest spot, then moved by the pose's lift, travel and turn.
    """
    offsets = (REST_DIRS[None] * lengths[:, :, None])[:, None]  # (n, 1, V, 3)
    pos, glob = forward_kinematics(euler(np.deg2rad(pose.deg)), offsets)

    chest_rot = glob[SPINE_SHOULDER]
    chest = pos[..., SPINE_SHOULDER, :]
    for side, (sh, el, wr, ha, tip, th, sign) in _ARMS.items():
        shoulder = pos[..., sh, :]
        fk_elbow, fk_wrist = pos[..., el, :], pos[..., wr, :]
        w = pose.ik[side]
        # The wrist travels from where the angles put it to the target around the shoulder (distance
        # and direction blended, through the front: a straight line from the hip to the head would
        # pass through the shoulder and flip the arm), and the elbow swings out and back unless the
        # action points it elsewhere.
        target = chest + mv(chest_rot, pose.wrist[side])
        d0, d1 = fk_wrist - shoulder, target - shoulder
        r0, r1 = np.linalg.norm(d0, axis=-1, keepdims=True), np.linalg.norm(d1, axis=-1, keepdims=True)
        via = mv(chest_rot, _SWING_VIA[side])  # a hand going from the hip to the head passes in front
        direction = _unit((1 - w) * d0 / np.maximum(r0, 1e-9) + w * d1 / np.maximum(r1, 1e-9) + 4 * w * (1 - w) * via)
        goal = shoulder + ((1 - w) * r0 + w * r1) * direction
        pole = mv(chest_rot, (1 - w) * _REST_POLE[side] + w * pose.pole[side])
        elbow, wrist = _two_link_ik(shoulder, goal, lengths[:, None, el, None], lengths[:, None, wr, None], pole)
        lower_dir = _unit(wrist - elbow)
        pos[..., el, :] = elbow
        pos[..., wr, :] = wrist
        _place_hand(
            pos, wr, ha, tip, th, lengths[:, None], lower_dir, mv(chest_rot, pose.hand_dir[side]),
            mv(chest_rot, pose.palm[side]), pose.shape[side], sign,
        )

    # Feet on the floor (y = 0): the lowest ankle at ANKLE_HEIGHT, planted ankles horizontally pinned.
    rest, _ = forward_kinematics(np.broadcast_to(np.eye(3), (1, V, 3, 3)), offsets[:, 0])
    ankles = [L_ANKLE, R_ANKLE]
    root = np.zeros(pos.shape[:2] + (3,))
    root[..., 1] = ANKLE_HEIGHT - pos[..., ankles, 1].min(axis=-1) + pose.lift
    planted = list(pose.planted)
    if planted:
        slide = (pos[..., planted, :] - rest[:, None, planted, :]).mean(axis=-2)
        root[..., 0], root[..., 2] = -slide[..., 0], -slide[..., 2]
    pos = pos + root[:, :, None, :]
    turn = rot_y(np.deg2rad(pose.yaw))[:, :, None]  # (n, T, 1, 3, 3)
    return mv(turn, pos) + pose.root[:, :, None, :]


# Wrist targets in the chest frame (origin the spine-shoulder joint; x right, y up, z back), metres for
# an adult of height scale 1; actions scale them by the performer's height. Right-hand versions; the
# left hand mirrors x.
LANDMARKS: dict[str, tuple[float, float, float]] = {
    "mouth": (0.02, 0.17, -0.16),
    "ear": (0.12, 0.23, -0.04),
    "forehead": (0.05, 0.30, -0.15),
    "head_top": (0.06, 0.42, -0.02),
    "neck_back": (0.08, 0.14, 0.06),
    "chest": (0.02, -0.12, -0.17),
    "temple": (0.10, 0.27, -0.12),
    "eyes_front": (0.04, 0.24, -0.30),
    "sign": (0.20, 0.02, -0.32),  # a raised hand in front of the shoulder
    "desk": (0.14, -0.32, -0.38),  # a book or keyboard at waist height in front
    "lap": (0.10, -0.38, -0.28),
    "pocket": (0.22, -0.52, 0.00),
    "chest_front": (0.05, -0.08, -0.30),
    "forward_far": (0.17, 0.0, -0.62),
    "overhead": (0.25, 0.62, -0.05),
    "wrist_watch": (-0.02, -0.08, -0.30),
    "selfie": (0.18, 0.30, -0.55),
}


def landmark(name: str, side: str, scale: np.ndarray) -> np.ndarray:
    """A landmark for hand ``side`` (``'l'`` mirrors x) scaled by the performers' ``scale`` ``(n, 1)``."""
    x, y, z = LANDMARKS[name]
    vec = np.array([x if side == "r" else -x, y, z])
    return np.asarray(scale)[..., None] * vec
