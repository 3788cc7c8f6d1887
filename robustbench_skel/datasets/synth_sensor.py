"""Cameras and a Kinect v2-like sensor model for ``synth`` 2.0.

Real skeleton data is hard partly because the sensor is: joints jitter, more at the hands and feet than
at the torso, the jitter is correlated over frames, skeleton fitting leaves a per-clip offset on every
joint, fingers flicker, a joint now and then snaps away for a few frames, and a body seen side-on gets
its legs swapped (the tracker cannot tell front from back). :class:`SensorModel` holds these effects'
parameters (``describe synth`` prints them); :func:`observe` applies them in camera coordinates.

Cameras: three Kinects at -45, 0 and +45 degrees around the performer (view 1 in front), at a distance
and height drawn per setup, looking at the performers' middle. Camera coordinates follow Kinect: z away
from the sensor, y up, x to the sensor's left (the right of a person facing it), metres.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .synth_body import V

__all__ = ["SensorModel", "SENSOR", "VIEW_YAW_DEG", "camera_transform", "observe"]

VIEW_YAW_DEG: dict[int, float] = {1: 0.0, 2: -45.0, 3: 45.0}  # camera azimuth around the performer


def _default_noise_cm() -> tuple[float, ...]:
    """Per-joint jitter std in cm: 0.5 at the trunk growing to 2 at the hand tips and thumbs."""
    groups = {
        0.5: (0, 1, 2, 20),  # spine base, mid, neck, spine shoulder
        0.7: (3, 4, 8, 12, 16),  # head, shoulders, hips
        1.0: (5, 9, 13, 17),  # elbows, knees
        1.3: (6, 10, 14, 18),  # wrists, ankles
        1.6: (7, 11, 15, 19),  # hands, feet
        2.0: (21, 22, 23, 24),  # hand tips, thumbs
    }
    noise = [0.0] * V
    for std, joints in groups.items():
        for j in joints:
            noise[j] = std
    return tuple(noise)


@dataclass(frozen=True)
class SensorModel:
    """Parameters of the simulated sensor (lengths in cm, rates per clip unless said otherwise)."""

    joint_noise_cm: tuple[float, ...] = field(default_factory=_default_noise_cm)
    noise_frame_correlation: float = 0.7  # AR(1) coefficient of the jitter between consecutive frames
    noise_reference_depth_m: float = 3.0  # jitter scales with depth / this (the sensor's depth error grows with distance)
    fitting_offset_share: float = 1.2  # a per-clip constant offset per joint, std = share x that joint's jitter std
    glitch_rate: float = 0.2  # probability that a clip has a joint snap away (front view)
    glitch_side_factor: float = 2.0  # side-on views fail this many times more often
    glitch_cm: tuple[float, float] = (8.0, 25.0)
    glitch_frames: tuple[int, int] = (2, 6)
    flicker_rate_per_frame: float = 0.03  # per hand: hand tip and thumb jump (lost fingers) for one frame
    flicker_cm: tuple[float, float] = (2.0, 5.0)
    leg_swap_rate: float = 0.25  # probability of a left/right leg swap in a side-on (+-45 degree) view
    leg_swap_frames: tuple[int, int] = (4, 12)

    def describe(self) -> dict:
        return asdict(self)


SENSOR = SensorModel()
_LIMB_JOINTS = np.array([5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19, 21, 22, 23, 24])
_LEFT_LEG, _RIGHT_LEG = np.array([12, 13, 14, 15]), np.array([16, 17, 18, 19])
_HANDS = ((7, (21, 22)), (11, (23, 24)))


def camera_transform(view_yaw_deg: np.ndarray, distance: np.ndarray, height: np.ndarray, look_at: np.ndarray):
    """Rotation ``(n, 3, 3)`` and position ``(n, 3)`` of cameras around ``look_at`` ``(n, 3)`` (world, y up).

    View 0 degrees stands in front of a performer facing -z, i.e. at ``look_at + (0, ., -distance)``.
    """
    yaw = np.deg2rad(view_yaw_deg)
    position = np.stack([look_at[:, 0] - distance * np.sin(yaw), height, look_at[:, 2] - distance * np.cos(yaw)], axis=-1)
    forward = look_at - position
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    up = np.array([0.0, 1.0, 0.0])
    right = np.cross(up, forward)
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    true_up = np.cross(forward, right)
    rotation = np.stack([right, true_up, forward], axis=1)  # rows: camera x, y, z in world coordinates
    return rotation, position


def observe(xyz: np.ndarray, valid: np.ndarray, oblique: np.ndarray, rng_list: list[np.random.Generator],
            sensor: SensorModel = SENSOR) -> np.ndarray:
    """Sensor view of camera-space joints ``xyz`` ``(n, T, V, 3)`` per clip and person.

    ``valid``: ``(n, T)`` frames the person is tracked; ``oblique``: ``(n,)`` side-on views. Each clip
    draws from its own generator in ``rng_list`` so a clip never depends on its batch.
    """
    out = xyz.copy()
    n, t = xyz.shape[:2]
    base = np.asarray(sensor.joint_noise_cm) / 100.0  # metres
    rho = sensor.noise_frame_correlation
    for i in range(n):
        rng = rng_list[i]
        frames = int(valid[i].sum())
        if frames == 0:
            continue
        depth = np.clip(xyz[i, :frames, 0, 2], 0.5, None)[:, None, None] / sensor.noise_reference_depth_m
        white = rng.standard_normal((frames, V, 3))
        jitter = np.empty_like(white)
        jitter[0] = white[0]
        for k in range(1, frames):
            jitter[k] = rho * jitter[k - 1] + np.sqrt(1.0 - rho * rho) * white[k]
        offset = rng.standard_normal((V, 3)) * sensor.fitting_offset_share
        clip = out[i, :frames]
        clip += (jitter + offset) * base[None, :, None] * depth

        # A joint snaps away for a few frames.
        rate = sensor.glitch_rate * (sensor.glitch_side_factor if oblique[i] else 1.0)
        if rng.uniform() < rate:
            j = int(rng.choice(_LIMB_JOINTS))
            length = int(rng.integers(sensor.glitch_frames[0], sensor.glitch_frames[1] + 1))
            start = int(rng.integers(0, max(frames - length, 1)))
            direction = rng.standard_normal(3)
            direction /= np.linalg.norm(direction)
            clip[start : start + length, j] += direction * rng.uniform(*sensor.glitch_cm) / 100.0
        # Lost fingers: hand tip and thumb jump near the hand for single frames.
        for hand, fingers in _HANDS:
            hit = np.flatnonzero(rng.uniform(size=frames) < sensor.flicker_rate_per_frame)
            for k in hit:
                for f in fingers:
                    direction = rng.standard_normal(3)
                    direction /= np.linalg.norm(direction)
                    clip[k, f] = clip[k, hand] + direction * rng.uniform(*sensor.flicker_cm) / 100.0
        # Side-on: the tracker swaps the legs for a stretch of frames.
        if oblique[i] and rng.uniform() < sensor.leg_swap_rate:
            length = int(rng.integers(sensor.leg_swap_frames[0], sensor.leg_swap_frames[1] + 1))
            start = int(rng.integers(0, max(frames - length, 1)))
            seg = slice(start, start + length)
            left = clip[seg][:, _LEFT_LEG].copy()
            clip[seg, _LEFT_LEG] = clip[seg][:, _RIGHT_LEG]
            clip[seg, _RIGHT_LEG] = left
    return out
