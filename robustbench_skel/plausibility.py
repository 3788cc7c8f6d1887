"""Is the adversarial motion still something a human body can do? Physical-plausibility metrics.

Norms and deviations (:mod:`robustbench_skel.metrics`) say how far a clip moved; these say whether
what it moved to is a body: elbows and knees bending the wrong way, planted feet sliding, joints
sinking into the floor, limbs passing through each other, joints moving faster than any person can.
Every measure is computed on the clean clip and on the adversarial one, per clip, over the valid
person-frames only (:func:`robustbench_skel.budget.valid_mask`: NTU's zero padding and an absent
second person never produce a value), so a record reports the change the attack causes rather than
the sensor's own noise.

The measures (``PLAUSIBILITY_METRICS``) and the joints each needs, by the layout's joint names:

- ``joint_angle_excess_deg`` / ``joint_angle_violation_frames``: elbow (shoulder, elbow, wrist) and
  knee (hip, knee, ankle) flexion outside the human range of motion: hyperextension beyond
  ``*_HYPEREXTENSION_DEG`` or flexion beyond ``*_MAX_FLEXION_DEG``; the worst excess in degrees and the
  share of valid frames with any excess. The sign of a bend needs a reference axis: for the knee the
  pelvis' left-right axis (left hip minus right hip: a knee flexes about it); for the elbow, whose
  hinge turns with the upper arm's rotation (not observable from three joints), the clean clip's own
  bending axis at the nearest frame where the clean elbow is flexed by ``ELBOW_AXIS_MIN_FLEXION_DEG``,
  else the shoulders' axis (anatomical position). So the elbow measure counts elbows the attack bends
  the other way, not the clean clip's own elbows.
- ``foot_skating_cm_s``: the peak horizontal speed of a foot joint (ankles, feet) while the clean
  clip has it planted: within ``CONTACT_HEIGHT_M`` of the lowest level that joint reaches in the clean
  clip (its ``FLOOR_PERCENTILE`` height, so an ankle is judged by its own level, not the toes') and
  moving horizontally slower than ``CONTACT_SPEED_M_S``, at both frames of a pair.
- ``ground_penetration_cm``: how far any joint goes below the floor, a horizontal plane at the
  ``FLOOR_PERCENTILE`` height of the clean clip's foot joints over its valid frames (both persons).
- ``self_intersection_depth_cm`` / ``self_intersection_count``: capsules of ``CAPSULE_RADIUS_M`` around
  upper arms, forearms, thighs and shins; for every pair that shares no joint, the overlap depth
  ``r1 + r2 - distance``. The change counts only person-frames where the clean pair did not overlap.
- ``speed_violation_frames``: share of valid frame pairs in which any joint moves faster than the
  human maximum of its group (``MAX_SPEED_M_S``), from first differences at the clip's frame rate.

The vertical axis and the unit come from the layout's coordinate frame (``COORDINATE_FRAMES``): NTU-25
and NW-UCLA are Kinect camera coordinates in metres with y up (a camera pitched by a few degrees tilts
the floor plane a little; the clean clip's own value absorbs that). A layout whose data are not 3-D,
not metric or whose up axis is unknown skips the measures that need it, and a layout without the
joints a measure needs skips it; each skip names its reason in the record.

``change``: adversarial minus clean value (for ``self_intersection_*``: the new overlaps only). A clip is
*plausible* when every measure with a tolerance (``PLAUSIBILITY_TOLERANCES``) changes by at most that
tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .budget import valid_mask
from .layout import SkeletonLayout

__all__ = [
    "PLAUSIBILITY_METRICS", "PLAUSIBILITY_UNITS", "PLAUSIBILITY_TOLERANCES", "NONNEGATIVE_CHANGES", "COORDINATE_FRAMES", "CoordinateFrame",
    "PlausibilityResult", "plausibility", "violating_joints",
    "ELBOW_HYPEREXTENSION_DEG", "KNEE_HYPEREXTENSION_DEG", "ELBOW_MAX_FLEXION_DEG", "KNEE_MAX_FLEXION_DEG",
    "ELBOW_AXIS_MIN_FLEXION_DEG", "ANGLE_TOLERANCE_DEG", "FLOOR_PERCENTILE", "CONTACT_HEIGHT_M", "CONTACT_SPEED_M_S",
    "POSITION_TOLERANCE_CM", "CAPSULE_RADIUS_M", "MAX_SPEED_M_S",
]

# --- Range of motion (degrees of flexion from the straight limb) ---------------------------------------
# Normal elbow extension is 0 deg, with up to about 15 deg of hyperextension within normal variation
# (Norkin & White, "Measurement of Joint Motion", elbow chapter; AAOS normal values 0-150 deg flexion).
ELBOW_HYPEREXTENSION_DEG = 15.0
# Knee: AAOS extension 0 deg; up to about 10 deg of hyperextension is normal, beyond it is genu recurvatum
# (Norkin & White, knee chapter).
KNEE_HYPEREXTENSION_DEG = 10.0
# Flexion ends where soft tissue meets: AAOS active elbow flexion 150 deg, passive about 10 deg more
# (Norkin & White: soft-tissue approximation end feel).
ELBOW_MAX_FLEXION_DEG = 160.0
# Deep squatting reaches about 155-160 deg of knee flexion (Hemmerich et al. 2006, J Orthop Res 24:770).
KNEE_MAX_FLEXION_DEG = 160.0
# Below this flexion the clean elbow's bending plane is too ill-defined to serve as its hinge axis (a
# convention of this module: a few degrees of sensor noise must not define a plane).
ELBOW_AXIS_MIN_FLEXION_DEG = 20.0
# Goniometric measurements of the same joint differ by about 5 deg between sessions and raters
# (Gajdosik & Bohannon 1987, Phys Ther 67:1867): a smaller change is not a measurable difference.
ANGLE_TOLERANCE_DEG = 5.0

# --- Floor and foot contact ----------------------------------------------------------------------
# The floor is a low percentile, not the minimum, of the clean foot heights: one noisy frame must
# not sink the floor (a convention of this module).
FLOOR_PERCENTILE = 5.0
# A foot within 5 cm of the ground counts as in contact, as in motion-synthesis evaluations of
# foot skating (e.g. PhysDiff, Yuan et al. ICCV 2023).
CONTACT_HEIGHT_M = 0.05
# Slower than this, a foot joint is planted (a convention of this module: above the few mm per frame
# that a Kinect reports for a still foot, far below a walking foot's swing speed of several m/s).
# It is also the skating tolerance: a planted foot may move as fast as "planted" allows.
CONTACT_SPEED_M_S = 0.2
# Kinect v2 joint positions of a still person scatter by about 1-2 cm (validation studies such as
# Otte et al. 2016, PLoS ONE 11:e0166532): a smaller change of a position-based measure is sensor noise.
POSITION_TOLERANCE_CM = 2.0

# --- Limb capsules (radius in metres) --------------------------------------------------------------
# Half the narrow-end circumference / (2 pi) of each segment in adult anthropometric surveys (ANSUR II,
# Gordon et al. 2014: wrist ~17 cm, elbow/forearm ~26 cm, knee ~38 cm, ankle ~22-25 cm): a lower bound,
# so an overlap is a certain interpenetration.
CAPSULE_RADIUS_M = {"upper_arm": 0.04, "forearm": 0.03, "thigh": 0.06, "shin": 0.04}
_SEGMENTS = (  # (name, proximal joint, distal joint, capsule)
    ("left_upper_arm", "left_shoulder", "left_elbow", "upper_arm"),
    ("left_forearm", "left_elbow", "left_wrist", "forearm"),
    ("right_upper_arm", "right_shoulder", "right_elbow", "upper_arm"),
    ("right_forearm", "right_elbow", "right_wrist", "forearm"),
    ("left_thigh", "left_hip", "left_knee", "thigh"),
    ("left_shin", "left_knee", "left_ankle", "shin"),
    ("right_thigh", "right_hip", "right_knee", "thigh"),
    ("right_shin", "right_knee", "right_ankle", "shin"),
)

# --- Human peak joint speeds (m/s), per joint group ------------------------------------------------
# hand: ball release speed of elite baseball pitchers, about 40 m/s (Fleisig et al. 1999, J Biomech
#   32:1371); the hand moves with the ball at release. The elbow is never faster than the hand.
# foot: peak foot speed of maximal soccer instep kicks, 18-24 m/s (Lees & Nolan 1998, J Sports Sci
#   16:211); the knee is never faster than the foot.
# trunk (spine, neck, head, face, shoulders, hips): the fastest human sprint, about 12.4 m/s (Bolt,
#   Berlin 2009 split analyses); the axial body rides on it.
MAX_SPEED_M_S = {"hand": 40.0, "foot": 25.0, "trunk": 12.5}
_HAND_WORDS = ("wrist", "hand", "thumb", "elbow", "finger")
_FOOT_WORDS = ("ankle", "foot", "toe", "knee", "heel")

PLAUSIBILITY_METRICS = (
    "joint_angle_excess_deg",
    "joint_angle_violation_frames",
    "foot_skating_cm_s",
    "ground_penetration_cm",
    "self_intersection_depth_cm",
    "self_intersection_count",
    "speed_violation_frames",
)
PLAUSIBILITY_UNITS = {
    "joint_angle_excess_deg": "deg", "joint_angle_violation_frames": "share", "foot_skating_cm_s": "cm/s",
    "ground_penetration_cm": "cm", "self_intersection_depth_cm": "cm", "self_intersection_count": "pair-frames",
    "speed_violation_frames": "share",
}
# Measures whose change cannot be negative (only new overlaps count), so their intervals stop at zero.
NONNEGATIVE_CHANGES = frozenset({"self_intersection_depth_cm", "self_intersection_count"})
# The largest change that still counts as plausible; measures absent here are reported, not judged.
PLAUSIBILITY_TOLERANCES = {
    "joint_angle_excess_deg": ANGLE_TOLERANCE_DEG,
    "foot_skating_cm_s": 100 * CONTACT_SPEED_M_S,
    "ground_penetration_cm": POSITION_TOLERANCE_CM,
    "self_intersection_depth_cm": POSITION_TOLERANCE_CM,
    "speed_violation_frames": 0.0,  # any new frame with a joint faster than a human can move
}
_SLACK = 1e-9  # float rounding when comparing a change with its tolerance
CHUNK_CLIPS = 256  # clips measured at once: bounds memory on long two-person clips (300 frames x 24 limb pairs)


@dataclass(frozen=True)
class CoordinateFrame:
    """What a layout's coordinates are: 3-D or not, in metres or not, and which axis points up."""

    three_d: bool
    metric: bool
    up_axis: int | None
    note: str


COORDINATE_FRAMES = {
    "ntu25": CoordinateFrame(True, True, 1, "Kinect v2 camera coordinates, metres, y up"),
    "nw-ucla20": CoordinateFrame(True, True, 1, "Kinect v1 camera coordinates, metres, y up"),
    "hdm05": CoordinateFrame(True, False, None, "BEAT's mean/std-normalised coordinates: not metres, up axis not stated"),
    "openpose18": CoordinateFrame(False, False, None, "2-D image coordinates with a confidence channel"),
    "coco17": CoordinateFrame(False, False, None, "2-D image coordinates with a confidence channel"),
}


@dataclass
class PlausibilityResult:
    """Per-clip values ``{metric: {"clean", "adversarial", "change": (N,) array}}`` of the measured metrics,
    the skipped ones with their reason, and which clips are plausible (``None`` when nothing was measured)."""

    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    plausible: np.ndarray | None = None


@dataclass
class _Measure:
    clean: torch.Tensor  # (N,)
    adv: torch.Tensor  # (N,)
    change: torch.Tensor  # (N,)
    joints: torch.Tensor  # (N, T, V, M) bool: joints whose new violation exceeds the tolerance


def _missing(layout: SkeletonLayout, names: list[str]) -> list[str]:
    return [n for n in names if n not in layout.joint_names]


def _idx(layout: SkeletonLayout, names: list[str], device) -> torch.Tensor:
    return torch.tensor([layout.index(n) for n in names], device=device, dtype=torch.long)


def _frame_reason(layout: SkeletonLayout, need: str) -> str | None:
    """Why ``layout``'s coordinates cannot carry a measure that needs ``need`` (3d, metric, up), or None."""
    frame = COORDINATE_FRAMES.get(layout.name)
    if frame is None:
        return f"the coordinate frame of layout {layout.name!r} is not known (add it to plausibility.COORDINATE_FRAMES)"
    if not frame.three_d:
        return f"layout {layout.name}: {frame.note}; lengths, angles and speeds of a projection are not the body's"
    if need in ("metric", "up") and not frame.metric:
        return f"layout {layout.name}: {frame.note}; the limits are in metres"
    if need == "up" and frame.up_axis is None:
        return f"layout {layout.name}: {frame.note}; no floor without a known vertical axis"
    return None


def _joint_reason(layout: SkeletonLayout, names: list[str]) -> str | None:
    missing = _missing(layout, names)
    return f"layout {layout.name} has no joint(s) {', '.join(missing)}" if missing else None


# ------------------------------------------------------------------------------------------------
# The measures: each takes (clean, adv) as (N, 3, T, V, M) float64 and the valid mask (N, T, M) bool
# ------------------------------------------------------------------------------------------------
def _max_over(values: torch.Tensor) -> torch.Tensor:
    """Per-clip maximum of a non-negative ``(N, ...)`` tensor (zero where nothing counts)."""
    return values.flatten(1).amax(dim=1) if math.prod(values.shape[1:]) else values.new_zeros(values.shape[0])


def _frame_share(bad: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Share of the valid frames (``frames``: (N, T') bool) in which ``bad`` (N, T', ...) holds anywhere."""
    any_bad = bad.flatten(2).any(dim=2) & frames
    return any_bad.sum(dim=1).double() / frames.sum(dim=1).clamp_min(1).double()


def _nearest_filled(axis: torch.Tensor, ok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``axis`` (N, 3, T, J, M) taken, at every frame, from the nearest frame where ``ok`` (N, T, J, M)."""
    n, _, t, j, m = axis.shape
    frames = torch.arange(t, device=axis.device).view(1, t, 1, 1).expand(n, t, j, m)
    prev = torch.where(ok, frames, torch.full_like(frames, -1)).cummax(dim=1).values
    nxt = torch.where(ok, frames, torch.full_like(frames, 2 * t)).flip(1).cummin(dim=1).values.flip(1)
    use_prev = (prev >= 0) & ((nxt >= t) | (frames - prev <= nxt - frames))
    source = torch.where(use_prev, prev, nxt).clamp(0, t - 1)
    found = (prev >= 0) | (nxt < t)
    return axis.gather(2, source.unsqueeze(1).expand(n, 3, t, j, m)), found


def _joint_angles(clean: torch.Tensor, adv: torch.Tensor, valid: torch.Tensor, layout: SkeletonLayout
                  ) -> tuple[_Measure, torch.Tensor, torch.Tensor]:
    chains = [("left_shoulder", "left_elbow", "left_wrist"), ("right_shoulder", "right_elbow", "right_wrist"),
              ("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle")]
    dev = clean.device
    a, b, c = (_idx(layout, [ch[k] for ch in chains], dev) for k in range(3))
    hyper = torch.tensor([ELBOW_HYPEREXTENSION_DEG] * 2 + [KNEE_HYPEREXTENSION_DEG] * 2, device=dev, dtype=clean.dtype)
    max_flex = torch.tensor([ELBOW_MAX_FLEXION_DEG] * 2 + [KNEE_MAX_FLEXION_DEG] * 2, device=dev, dtype=clean.dtype)

    def bend(x):
        u, w = x[:, :, :, b] - x[:, :, :, a], x[:, :, :, c] - x[:, :, :, b]  # (N, 3, T, J, M)
        cross = torch.linalg.cross(u, w, dim=1)
        return cross, torch.rad2deg(torch.atan2(cross.norm(dim=1), (u * w).sum(dim=1)))  # unsigned flexion

    cross_c, flex_c = bend(clean)
    lr = lambda left, right: clean[:, :, :, layout.index(left)] - clean[:, :, :, layout.index(right)]  # noqa: E731
    pelvis = lr("left_hip", "right_hip").unsqueeze(3)  # a knee flexes about the subject's left axis
    shoulders = -lr("left_shoulder", "right_shoulder").unsqueeze(3)  # an elbow, in anatomical position, about the right
    hinge, found = _nearest_filled(cross_c[:, :, :, :2], flex_c[:, :, :2] >= ELBOW_AXIS_MIN_FLEXION_DEG)
    elbow_axis = torch.where(found.unsqueeze(1), hinge, shoulders.expand_as(hinge))
    axis = torch.cat([elbow_axis, pelvis.expand_as(elbow_axis)], dim=3)

    def excess(x):
        cross, flex = bend(x)
        signed = torch.where((cross * axis).sum(dim=1) < 0, -flex, flex)
        over = (-signed - hyper.view(1, 1, -1, 1)).clamp_min(0) + (signed - max_flex.view(1, 1, -1, 1)).clamp_min(0)
        return over * valid.unsqueeze(2)  # (N, T, J, M)

    ex_c, ex_a = excess(clean), excess(adv)
    joints = torch.zeros(clean.shape[0], clean.shape[2], clean.shape[3], clean.shape[4], dtype=torch.bool, device=dev)
    joints[:, :, b] = ex_a - ex_c > ANGLE_TOLERANCE_DEG
    worst_c, worst_a = _max_over(ex_c), _max_over(ex_a)
    return _Measure(worst_c, worst_a, worst_a - worst_c, joints), ex_c, ex_a


def _floor(clean: torch.Tensor, valid: torch.Tensor, feet: torch.Tensor, up: int) -> torch.Tensor:
    """Per-clip floor height ``(N,)``: the ``FLOOR_PERCENTILE`` of the clean foot joints' heights."""
    h = clean[:, up][:, :, feet]  # (N, T, F, M)
    h = torch.where(valid.unsqueeze(2), h, torch.full_like(h, float("nan")))
    floor = torch.nanquantile(h.flatten(1), FLOOR_PERCENTILE / 100, dim=1)
    return torch.nan_to_num(floor, nan=0.0)


def _penetration(clean, adv, valid, floor, up) -> _Measure:
    def depth(x):
        return (floor.view(-1, 1, 1, 1) - x[:, up]).clamp_min(0) * valid.unsqueeze(2) * 100  # (N, T, V, M), cm

    d_c, d_a = depth(clean), depth(adv)
    worst_c, worst_a = _max_over(d_c), _max_over(d_a)
    return _Measure(worst_c, worst_a, worst_a - worst_c, d_a - d_c > POSITION_TOLERANCE_CM)


def _foot_skating(clean, adv, valid, feet, up, fps) -> _Measure:
    n, _, t, v, m = clean.shape
    h = clean[:, up][:, :, feet]  # (N, T, F, M)
    low = torch.nanquantile(torch.where(valid.unsqueeze(2), h, torch.full_like(h, float("nan"))).permute(0, 2, 3, 1),
                            FLOOR_PERCENTILE / 100, dim=3)  # (N, F, M)
    low = torch.nan_to_num(low, nan=0.0).unsqueeze(1)
    near = (h - low < CONTACT_HEIGHT_M) & valid.unsqueeze(2)
    horizontal = [k for k in range(3) if k != up]

    def speed(x):  # horizontal speed between consecutive frames, (N, T-1, F, M), m/s
        p = x[:, horizontal][:, :, :, feet]
        return (p[:, :, 1:] - p[:, :, :-1]).norm(dim=1) * fps

    s_c, s_a = speed(clean), speed(adv)
    contact = near[:, 1:] & near[:, :-1] & (s_c < CONTACT_SPEED_M_S)
    c_c, c_a = s_c * contact * 100, s_a * contact * 100  # cm/s
    joints = torch.zeros(n, t, v, m, dtype=torch.bool, device=clean.device)
    joints[:, 1:, feet] = c_a - c_c > 100 * CONTACT_SPEED_M_S
    worst_c, worst_a = _max_over(c_c), _max_over(c_a)
    return _Measure(worst_c, worst_a, worst_a - worst_c, joints)


def _segment_distance(p1, q1, p2, q2) -> torch.Tensor:
    """Closest distance between segments ``p1q1`` and ``p2q2`` (coordinates on dim 1), as in Ericson,
    Real-Time Collision Detection, 5.1.9; degenerate segments are points."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a, e, f = (d1 * d1).sum(1), (d2 * d2).sum(1), (d2 * r).sum(1)
    c, b = (d1 * r).sum(1), (d1 * d2).sum(1)
    tiny = 1e-12
    denom = a * e - b * b
    s = torch.where(denom > tiny, ((b * f - c * e) / denom.clamp_min(tiny)).clamp(0, 1), torch.zeros_like(a))
    t = (b * s + f) / e.clamp_min(tiny)
    s = torch.where(t < 0, (-c / a.clamp_min(tiny)).clamp(0, 1), torch.where(t > 1, ((b - c) / a.clamp_min(tiny)).clamp(0, 1), s))
    t = t.clamp(0, 1)
    s = torch.where(a > tiny, s, torch.zeros_like(s))
    t = torch.where(e > tiny, t, torch.zeros_like(t))
    return (p1 + d1 * s.unsqueeze(1) - p2 - d2 * t.unsqueeze(1)).norm(dim=1)


def _segment_pairs() -> list[tuple[int, int]]:
    """Pairs of limb segments that share no joint (an upper arm and its own forearm do)."""
    return [(i, j) for i in range(len(_SEGMENTS)) for j in range(i + 1, len(_SEGMENTS))
            if not {_SEGMENTS[i][1], _SEGMENTS[i][2]} & {_SEGMENTS[j][1], _SEGMENTS[j][2]}]


def _self_intersection(clean, adv, valid, layout) -> tuple[_Measure, _Measure]:
    dev = clean.device
    pairs = _segment_pairs()
    prox = _idx(layout, [s[1] for s in _SEGMENTS], dev)
    dist = _idx(layout, [s[2] for s in _SEGMENTS], dev)
    radius = torch.tensor([CAPSULE_RADIUS_M[s[3]] for s in _SEGMENTS], device=dev, dtype=clean.dtype)
    i = torch.tensor([p[0] for p in pairs], device=dev)
    j = torch.tensor([p[1] for p in pairs], device=dev)

    def depth(x):  # (N, T, P, M), cm
        p, q = x[:, :, :, prox], x[:, :, :, dist]  # (N, 3, T, S, M)
        d = _segment_distance(p[:, :, :, i], q[:, :, :, i], p[:, :, :, j], q[:, :, :, j])
        return (radius[i].view(1, 1, -1, 1) + radius[j].view(1, 1, -1, 1) - d).clamp_min(0) * valid.unsqueeze(2) * 100

    d_c, d_a = depth(clean), depth(adv)
    new = (d_c <= 0) & (d_a > 0)
    new_depth = d_a * new
    n, _, t, v, m = clean.shape
    joints = torch.zeros(n, t, v, m, dtype=torch.bool, device=dev)
    deep = new_depth > POSITION_TOLERANCE_CM
    for k, (a, b) in enumerate(pairs):
        for seg in (a, b):
            for joint in (int(prox[seg]), int(dist[seg])):
                joints[:, :, joint] |= deep[:, :, k]
    depth_m = _Measure(_max_over(d_c), _max_over(d_a), _max_over(new_depth), joints)
    count_c, count_a = (d_c > 0).flatten(1).sum(1).double(), (d_a > 0).flatten(1).sum(1).double()
    count_m = _Measure(count_c, count_a, new.flatten(1).sum(1).double(), joints)
    return depth_m, count_m


def _speed_groups(layout: SkeletonLayout) -> list[float]:
    limits = []
    for name in layout.joint_names:
        group = "hand" if any(w in name for w in _HAND_WORDS) else "foot" if any(w in name for w in _FOOT_WORDS) else "trunk"
        limits.append(MAX_SPEED_M_S[group])
    return limits


def _speed(clean, adv, valid, layout, fps) -> _Measure:
    limit = torch.tensor(_speed_groups(layout), device=clean.device, dtype=clean.dtype).view(1, 1, -1, 1)
    pair_valid = valid[:, 1:] & valid[:, :-1]  # (N, T-1, M)

    def too_fast(x):
        s = (x[:, :, 1:] - x[:, :, :-1]).norm(dim=1) * fps  # (N, T-1, V, M)
        return (s > limit) & pair_valid.unsqueeze(2)

    f_c, f_a = too_fast(clean), too_fast(adv)
    frames = pair_valid.any(dim=2)
    share_c, share_a = _frame_share(f_c, frames), _frame_share(f_a, frames)
    n, _, t, v, m = clean.shape
    joints = torch.zeros(n, t, v, m, dtype=torch.bool, device=clean.device)
    joints[:, 1:] = f_a & ~f_c
    return _Measure(share_c, share_a, share_a - share_c, joints)


# ------------------------------------------------------------------------------------------------
def _measure_all(clean: torch.Tensor, adv: torch.Tensor, layout: SkeletonLayout, fps: float
                 ) -> tuple[dict[str, _Measure], dict[str, str]]:
    clean, adv = clean.double(), adv.double()
    valid = valid_mask(clean)[:, 0, :, 0, :].bool()  # (N, T, M)
    measures: dict[str, _Measure] = {}
    skipped: dict[str, str] = {}
    frame = COORDINATE_FRAMES.get(layout.name)
    up = frame.up_axis if frame else None
    feet_names = ["left_ankle", "left_foot", "right_ankle", "right_foot"]

    limbs = ["left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
             "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle"]
    reason = _frame_reason(layout, "3d") or _joint_reason(layout, limbs)
    if reason:
        skipped["joint_angle_excess_deg"] = skipped["joint_angle_violation_frames"] = reason
    else:
        worst, ex_c, ex_a = _joint_angles(clean, adv, valid, layout)
        measures["joint_angle_excess_deg"] = worst
        frames = valid.any(dim=2)
        share_c = _frame_share(ex_c > 0, frames)
        share_a = _frame_share(ex_a > 0, frames)
        measures["joint_angle_violation_frames"] = _Measure(share_c, share_a, share_a - share_c, worst.joints)

    reason = _frame_reason(layout, "up") or _joint_reason(layout, feet_names)
    if reason:
        skipped["foot_skating_cm_s"] = skipped["ground_penetration_cm"] = reason
    else:
        feet = _idx(layout, feet_names, clean.device)
        measures["foot_skating_cm_s"] = _foot_skating(clean, adv, valid, feet, up, fps)
        measures["ground_penetration_cm"] = _penetration(clean, adv, valid, _floor(clean, valid, feet, up), up)

    reason = _frame_reason(layout, "metric") or _joint_reason(layout, sorted({j for s in _SEGMENTS for j in s[1:3]}))
    if reason:
        skipped["self_intersection_depth_cm"] = skipped["self_intersection_count"] = reason
    else:
        measures["self_intersection_depth_cm"], measures["self_intersection_count"] = _self_intersection(clean, adv, valid, layout)

    reason = _frame_reason(layout, "metric")
    if reason:
        skipped["speed_violation_frames"] = reason
    elif clean.shape[2] < 2:
        skipped["speed_violation_frames"] = "clips of one frame have no speed"
    else:
        measures["speed_violation_frames"] = _speed(clean, adv, valid, layout, fps)
    return measures, skipped


@torch.no_grad()
def plausibility(clean: torch.Tensor, adv: torch.Tensor, layout: SkeletonLayout, fps: float,
                 chunk: int = CHUNK_CLIPS) -> PlausibilityResult:
    """Per-clip plausibility of ``adv`` against ``clean`` (both ``(N, 3, T, V, M)``, in the layout's unit),
    measured ``chunk`` clips at a time so that a whole test split fits in memory."""
    result = PlausibilityResult()
    parts: dict[str, dict[str, list[np.ndarray]]] = {}
    for start in range(0, max(clean.shape[0], 1), chunk):
        c, a = clean[start : start + chunk], adv[start : start + chunk]
        keep = c.shape[0]
        if not keep:  # no clips: measure an empty one so that the skips are still stated, keep nothing
            c = a = clean.new_zeros((1, *clean.shape[1:]))
        measures, skipped = _measure_all(c, a, layout, fps)
        result.skipped = {k: skipped[k] for k in PLAUSIBILITY_METRICS if k in skipped}
        for name, m in measures.items():
            for kind, values in (("clean", m.clean), ("adversarial", m.adv), ("change", m.change)):
                parts.setdefault(name, {}).setdefault(kind, []).append(values[:keep].cpu().numpy())
    for name in PLAUSIBILITY_METRICS:
        if name in parts:
            result.values[name] = {kind: np.concatenate(v) for kind, v in parts[name].items()}
    judged = [n for n in PLAUSIBILITY_TOLERANCES if n in result.values]
    if judged:
        result.plausible = np.all([result.values[n]["change"] <= PLAUSIBILITY_TOLERANCES[n] + _SLACK for n in judged], axis=0)
    return result


@torch.no_grad()
def violating_joints(clean: torch.Tensor, adv: torch.Tensor, layout: SkeletonLayout, fps: float) -> torch.Tensor:
    """``(N, T, V, M)`` bool: joints whose adversarial motion breaks a limit beyond the clean clip plus its
    tolerance at that frame (the elbow/knee of an impossible bend, a sliding planted foot, a joint under
    the floor, the ends of newly overlapping limbs, a joint moving faster than a human can)."""
    measures, _ = _measure_all(clean, adv, layout, fps)
    out = torch.zeros(clean.shape[0], clean.shape[2], clean.shape[3], clean.shape[4], dtype=torch.bool, device=clean.device)
    for m in measures.values():
        out |= m.joints
    return out
