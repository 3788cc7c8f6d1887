"""The action classes of ``synth`` 2.0, modelled on NTU RGB+D 60's taxonomy.

Each class is a function that writes one performer's motion (two performers' for interactions) into
:class:`~.synth_body.Pose` objects, given the action's phase ``p`` in [0, 1] per frame and per-clip
parameters. One-hand actions use the performer's dominant hand ``d`` (``'r'`` or ``'l'``) and the other
hand ``o``. Wrist targets are chest-frame landmarks scaled by the performer's height, jittered per clip.

Classes come in fine-grained groups whose members differ mainly by a few centimetres of hand and
forearm motion (``GROUPS``), as NTU's hard classes do (reading / writing / typing, drink / eat / brush
teeth / phone call, wave / salute, thumb up / victory / OK), next to whole-body actions and two-person
interactions in which both people move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .synth_body import (
    L_ANKLE, L_ELBOW, L_HIP, L_KNEE, L_SHOULDER, NECK, R_ANKLE, R_ELBOW, R_HIP, R_KNEE, R_SHOULDER,
    SPINE_BASE, SPINE_MID, SPINE_SHOULDER, Pose, landmark,
)

__all__ = ["Action", "ACTIONS", "ACTION_NAMES", "GROUPS", "TWO_PERSON"]

Params = dict[str, np.ndarray]  # per-clip scalars, each (n, 1)


def ramp(p, a: float, b: float):
    """Smoothstep from 0 (p <= a) to 1 (p >= b)."""
    x = np.clip((p - a) / (b - a), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def bump(p, rise: float = 0.3, fall: float = 0.3):
    """0 -> 1 over [0, rise], hold, back to 0 over [1 - fall, 1]: reach, hold, release."""
    return ramp(p, 0.0, rise) * (1.0 - ramp(p, 1.0 - fall, 1.0))


def osc(p, q: Params, base: float, spread: float = 1.0):
    """A per-clip oscillation: ``base + spread * cycles`` periods over the action, random phase."""
    return np.sin(2 * np.pi * (base + spread * q["cycles"]) * p + q["phase"])


def vec(side: str, x: float, y: float, z: float) -> np.ndarray:
    """A chest-frame offset for hand ``side`` (x mirrored for the left hand)."""
    return np.array([x if side == "r" else -x, y, z])


CLIP_JITTER_M = 0.03  # a hand target moves by up to this much from clip to clip (uniform, per axis)
HABIT_M = 0.03  # and by this much (std, per axis) from performer to performer, the same in all their clips


def target(name: str, side: str, q: Params, sc, extra=(0.0, 0.0, 0.0)):
    """Landmark ``name`` for hand ``side``, scaled, plus the performer's habit, a per-clip jitter and ``extra``.

    The habit makes the test performers' hands go where no training performer's did: a classifier has
    to generalise over people, as on NTU's cross-subject split.
    """
    jitter = CLIP_JITTER_M * np.stack([q["tx"], q["ty"], q["tz"]], axis=-1)  # (n, 1, 3)
    habit = HABIT_M * np.stack([q["hx"], q["hy"], q["hz"]], axis=-1)
    return landmark(name, side, sc) + jitter + habit + vec(side, *extra)


def moving(offset_dir: np.ndarray, amount) -> np.ndarray:
    """``(n, T, 3)`` offsets ``amount[..., None] * offset_dir``."""
    return np.asarray(amount)[..., None] * offset_dir


FORWARD = np.array([0.0, 0.0, -1.0])
UP = np.array([0.0, 1.0, 0.0])
PALM_DOWN, PALM_UP, PALM_FWD, PALM_BACK = (0.0, -1.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (0.0, 0.0, 1.0)


def palm_in(side: str):
    """The palm facing the body's midline."""
    return (-1.0, 0.0, 0.0) if side == "r" else (1.0, 0.0, 0.0)


def palm_out(side: str):
    return (1.0, 0.0, 0.0) if side == "r" else (-1.0, 0.0, 0.0)


# ---------------------------------------------------------------------------------------------
# Hand to head (drink / eat / brush teeth / phone call / touch head / touch neck / salute / wipe face)
# ---------------------------------------------------------------------------------------------
def drink_water(m, p, q, d, o, sc):
    e = bump(p, 0.35, 0.3)
    m.reach(d, target("mouth", d, q, sc, (0.0, -0.03, -0.02)), e)
    m.hand(d, "grip", e, palm=palm_in(d), direction=0.4 * UP)
    m.add(NECK, rx=-15 * ramp(p, 0.35, 0.5) * (1 - ramp(p, 0.65, 0.75)))  # head tilts back to drink


def eat_snack(m, p, q, d, o, sc):
    e = bump(p, 0.25, 0.3)
    bites = 0.5 + 0.5 * osc(p, q, 2.0)  # the hand returns from the mouth 2-3 times
    m.reach(d, target("mouth", d, q, sc) + moving(np.array([0.0, -0.07, -0.10]), (1 - bites) * e), e)
    m.hand(d, "ok", e, palm=PALM_BACK)
    m.add(NECK, rx=6 * e)


def brush_teeth(m, p, q, d, o, sc):
    e = bump(p, 0.25, 0.3)
    scrub = osc(p, q, 6.0, 3.0) * ramp(p, 0.2, 0.3)
    m.reach(d, target("mouth", d, q, sc, (-0.03, -0.01, -0.03)) + moving(vec(d, 0.025, 0.0, 0.0), scrub), e)
    m.hand(d, "fist", e, palm=PALM_BACK, direction=0.5 * vec(d, -1.0, 0.0, 0.0))


def phone_call(m, p, q, d, o, sc):
    e = bump(p, 0.3, 0.3)
    m.reach(d, target("ear", d, q, sc, (0.0, -0.05, -0.02)), e)
    m.hand(d, "grip", e, palm=palm_in(d), direction=0.3 * UP)
    m.add(NECK, rz=(6 if d == "r" else -6) * e)


def touch_head(m, p, q, d, o, sc):
    e = bump(p, 0.3, 0.3)
    m.reach(d, target("head_top", d, q, sc, (-0.03, -0.04, -0.02)), e)
    m.hand(d, "flat", e, palm=PALM_DOWN)
    m.add(NECK, rx=10 * e)


def touch_neck(m, p, q, d, o, sc):
    e = bump(p, 0.3, 0.3)
    m.reach(d, target("neck_back", d, q, sc), e)
    m.hand(d, "flat", e, palm=PALM_FWD)
    m.add(NECK, rx=-8 * e)


def salute(m, p, q, d, o, sc):
    e = bump(p, 0.3, 0.3)
    m.reach(d, target("forehead", d, q, sc, (0.06, -0.03, 0.02)), e)
    m.hand(d, "flat", e, palm=PALM_DOWN, direction=0.6 * vec(d, -1.0, 0.3, 0.0))
    m.pole[d] = m.pole[d] + moving(vec(d, 1.5, 0.5, 0.0), e)  # the elbow points out to the side


def wipe_face(m, p, q, d, o, sc):
    e = bump(p, 0.25, 0.3)
    down = ramp(p, 0.3, 0.7)
    circle = osc(p, q, 1.5, 0.5)
    m.reach(d, target("eyes_front", d, q, sc, (-0.04, 0.0, 0.14)) + moving(np.array([0.0, -0.12, 0.0]), down)
            + moving(vec(d, 0.03, 0.0, 0.0), circle * e), e)
    m.hand(d, "flat", e, palm=PALM_BACK, direction=0.5 * UP)


# ---------------------------------------------------------------------------------------------
# Hand signs in front of the shoulder: the arm does the same, the hand shape differs
# ---------------------------------------------------------------------------------------------
def _sign(m, p, q, d, sc, shape: str, palm):
    e = bump(p, 0.35, 0.3)
    m.reach(d, target("sign", d, q, sc), e)
    m.hand(d, shape, e, palm=palm, direction=0.8 * UP)


def thumb_up(m, p, q, d, o, sc):
    _sign(m, p, q, d, sc, "thumb_up", palm_in(d))


def victory_sign(m, p, q, d, o, sc):
    _sign(m, p, q, d, sc, "point", PALM_FWD)


def ok_sign(m, p, q, d, o, sc):
    _sign(m, p, q, d, sc, "ok", PALM_FWD)


def hand_waving(m, p, q, d, o, sc):
    e = bump(p, 0.3, 0.3)
    wave = osc(p, q, 2.5, 1.5) * ramp(p, 0.2, 0.35) * (1 - ramp(p, 0.65, 0.8))
    m.reach(d, target("sign", d, q, sc, (0.06, 0.16, 0.0)) + moving(vec(d, 0.09, 0.0, 0.0), wave), e)
    m.hand(d, "flat", e, palm=PALM_FWD, direction=0.9 * UP + moving(vec(d, 0.4, 0.0, 0.0), wave))


def pointing(m, p, q, d, o, sc):
    e = ramp(p, 0.0, 0.35) * (1 - ramp(p, 0.7, 1.0))
    m.reach(d, target("forward_far", d, q, sc) + moving(UP, 0.08 * q["style"]), e)
    m.hand(d, "point", e, palm=PALM_DOWN)


# ---------------------------------------------------------------------------------------------
# Desk work (reading / writing / typing / playing with a phone)
# ---------------------------------------------------------------------------------------------
def reading(m, p, q, d, o, sc):
    e = bump(p, 0.25, 0.3)
    page = bump(np.clip((p - 0.45) / 0.25, 0, 1), 0.4, 0.4)  # one page turn by the dominant hand
    for side in "lr":
        turn = page if side == d else 0.0 * page
        m.reach(side, target("desk", side, q, sc, (-0.06, 0.14, 0.12)) + moving(vec(side, -0.12, 0.03, 0.0), turn), e)
        m.hand(side, "grip", e, palm=palm_in(side), direction=0.6 * UP)
    m.add(NECK, rx=20 * e)


def writing(m, p, q, d, o, sc):
    e = bump(p, 0.25, 0.3)
    scribble = osc(p, q, 5.0, 2.0) * ramp(p, 0.2, 0.3)
    line = ramp(p, 0.25, 0.8)
    m.reach(d, target("desk", d, q, sc, (-0.04, 0.0, 0.0)) + moving(vec(d, 0.012, 0.012, 0.0), scribble)
            + moving(vec(d, 0.08, 0.0, 0.0), line), e)
    m.hand(d, "ok", e, palm=PALM_DOWN, direction=0.3 * FORWARD)
    m.reach(o, target("desk", o, q, sc, (-0.02, 0.0, 0.02)), e)
    m.hand(o, "flat", e, palm=PALM_DOWN)
    m.add(NECK, rx=22 * e)


def typing(m, p, q, d, o, sc):
    e = bump(p, 0.25, 0.3)
    for k, side in enumerate("lr"):
        tap = osc(p, {**q, "phase": q["phase"] + np.pi * k}, 7.0, 3.0) * ramp(p, 0.2, 0.3)
        m.reach(side, target("desk", side, q, sc, (-0.03, 0.02, 0.0)) + moving(np.array([0.0, 0.012, 0.0]), tap), e)
        m.hand(side, "relaxed", e, palm=PALM_DOWN, direction=0.2 * FORWARD)
    m.add(NECK, rx=14 * e)


def play_with_phone(m, p, q, d, o, sc):
    e = bump(p, 0.25, 0.3)
    thumbs = osc(p, q, 5.0, 2.0) * ramp(p, 0.2, 0.3)
    for side in "lr":
        m.reach(side, target("desk", side, q, sc, (-0.10, 0.10, 0.10)), e)
        m.hand(side, "grip", e, palm=PALM_UP, direction=0.4 * FORWARD)
    m.reach(d, target("desk", d, q, sc, (-0.10, 0.10, 0.10)) + moving(np.array([0.0, 0.01, 0.0]), thumbs), e)
    m.add(NECK, rx=25 * e)


# ---------------------------------------------------------------------------------------------
# Both hands together (clap / rub hands / palms together / cross hands)
# ---------------------------------------------------------------------------------------------
def clapping(m, p, q, d, o, sc):
    e = bump(p, 0.25, 0.3)
    apart = 0.5 + 0.5 * osc(p, q, 3.5, 1.5)
    for side in "lr":
        m.reach(side, target("chest_front", side, q, sc, (-0.03, 0.0, 0.0)) + moving(vec(side, 0.12, 0.0, 0.0), apart * e), e)
        m.hand(side, "flat", e, palm=palm_in(side), direction=0.5 * UP + 0.3 * FORWARD)


def rub_hands(m, p, q, d, o, sc):
    e = bump(p, 0.25, 0.3)
    rub = osc(p, q, 4.0, 2.0) * ramp(p, 0.2, 0.3)
    for k, side in enumerate("lr"):
        sign = 1.0 if k else -1.0
        m.reach(side, target("chest_front", side, q, sc, (-0.04, -0.03, 0.0)) + moving(np.array([0.0, 0.02, 0.015]), sign * rub), e)
        m.hand(side, "flat", e, palm=palm_in(side), direction=0.4 * FORWARD)


def palms_together(m, p, q, d, o, sc):
    e = bump(p, 0.3, 0.3)
    for side in "lr":
        m.reach(side, target("chest_front", side, q, sc, (-0.04, 0.05, 0.08)), e)
        m.hand(side, "flat", e, palm=palm_in(side), direction=0.9 * UP)
    m.add(NECK, rx=10 * e)


def cross_hands(m, p, q, d, o, sc):
    e = bump(p, 0.3, 0.3)
    for side in "lr":
        m.reach(side, target("chest_front", side, q, sc, (-0.16, 0.03, 0.03)), e)
        m.hand(side, "fist", e, palm=PALM_FWD, direction=0.5 * UP)


# ---------------------------------------------------------------------------------------------
# Glasses and hats: the same places, the order in time tells putting on from taking off
# ---------------------------------------------------------------------------------------------
def _glasses(m, p, q, sc, on: bool):
    e = bump(p, 0.3, 0.3)
    slide = ramp(p, 0.35, 0.65)
    slide = 1 - slide if on else slide  # wearing: front -> temples; taking off: temples -> front
    for side in "lr":
        m.reach(side, target("temple", side, q, sc, (0.0, -0.03, 0.0)) + moving(np.array([0.0, -0.02, -0.14]), slide), e)
        m.hand(side, "ok", e, palm=palm_in(side), direction=0.4 * FORWARD)


def wear_glasses(m, p, q, d, o, sc):
    _glasses(m, p, q, sc, on=True)


def take_off_glasses(m, p, q, d, o, sc):
    _glasses(m, p, q, sc, on=False)


def _hat(m, p, q, sc, on: bool):
    e = bump(p, 0.3, 0.3)
    lift = ramp(p, 0.35, 0.65)
    lift = 1 - lift if on else lift  # putting on: above the head -> onto it
    for side in "lr":
        m.reach(side, target("head_top", side, q, sc, (0.02, -0.02, -0.04)) + moving(np.array([0.0, 0.14, -0.08]), lift), e)
        m.hand(side, "grip", e, palm=PALM_DOWN)


def put_on_hat(m, p, q, d, o, sc):
    _hat(m, p, q, sc, on=True)


def take_off_hat(m, p, q, d, o, sc):
    _hat(m, p, q, sc, on=False)


# ---------------------------------------------------------------------------------------------
# Other one- and two-hand daily actions
# ---------------------------------------------------------------------------------------------
def touch_chest(m, p, q, d, o, sc):
    e = bump(p, 0.3, 0.3)
    m.reach(d, target("chest", d, q, sc, (-0.05, 0.0, 0.0)), e)
    m.hand(d, "flat", e, palm=PALM_BACK, direction=0.3 * UP)
    m.add(SPINE_MID, rx=6 * e)


def check_time(m, p, q, d, o, sc):
    e = bump(p, 0.3, 0.3)
    m.reach(o, target("wrist_watch", o, q, sc), e)
    m.hand(o, "fist", e, palm=PALM_DOWN)
    m.add(NECK, rx=25 * e)


def taking_selfie(m, p, q, d, o, sc):
    e = bump(p, 0.35, 0.3)
    m.reach(d, target("selfie", d, q, sc), e)
    m.hand(d, "grip", e, palm=PALM_BACK, direction=0.7 * UP)
    m.add(NECK, rx=-10 * e, ry=(-10 if d == "r" else 10) * e)


def put_in_pocket(m, p, q, d, o, sc):
    e = bump(p, 0.3, 0.35)
    m.reach(d, target("pocket", d, q, sc), e)
    m.hand(d, "flat", e, palm=palm_in(d))
    m.add(SPINE_MID, rz=(-5 if d == "r" else 5) * e)


def cheer_up(m, p, q, d, o, sc):
    e = ramp(p, 0.0, 0.35) * (1 - 0.5 * ramp(p, 0.75, 1.0))
    wave = osc(p, q, 2.0)
    for side in "lr":
        m.reach(side, target("overhead", side, q, sc, (0.08, 0.0, 0.0)) + moving(vec(side, 0.05, 0.0, 0.0), wave * e), e)
        m.hand(side, "fist", e, palm=PALM_FWD, direction=0.5 * UP)
    m.add(NECK, rx=-10 * e)


def throw(m, p, q, d, o, sc):
    wind, swing = ramp(p, 0.0, 0.42), ramp(p, 0.42, 0.75)
    back = 1 - ramp(p, 0.8, 1.0)
    over = target("overhead", d, q, sc, (-0.05, -0.1, 0.3))
    front = target("forward_far", d, q, sc, (0.0, -0.2, 0.0))
    m.reach(d, over * (1 - swing)[..., None] + front * swing[..., None], wind * back)
    m.hand(d, "grip", wind * (1 - swing))
    m.add(SPINE_MID, rx=(10 * wind - 25 * swing) * back, ry=((-20 * wind + 30 * swing) * (1 if d == "r" else -1)) * back)


# ---------------------------------------------------------------------------------------------
# Whole-body actions
# ---------------------------------------------------------------------------------------------
def _arms_forward(m, p, q, sc, e):
    for side in "lr":
        m.reach(side, target("chest_front", side, q, sc, (0.08, -0.05, -0.05)), e)


def sit_down(m, p, q, d, o, sc):
    down = ramp(p, 0.15, 0.7)
    m.crouch(thigh=85 * down, shin=-8 * down, lean=30 * down * (1 - 0.6 * ramp(p, 0.7, 1.0)))
    for side in "lr":
        m.reach(side, target("lap", side, q, sc, (0.05, 0.0, 0.0)), 0.7 * ramp(p, 0.6, 1.0))


def stand_up(m, p, q, d, o, sc):
    up = 1 - ramp(p, 0.2, 0.75)
    m.crouch(thigh=85 * up, shin=-8 * up, lean=30 * up * (0.4 + 0.6 * ramp(p, 0.0, 0.35)) * (1 - ramp(p, 0.6, 0.85)))
    for side in "lr":
        m.reach(side, target("lap", side, q, sc, (0.05, 0.0, 0.0)), 0.7 * (1 - ramp(p, 0.1, 0.4)))


def pick_up(m, p, q, d, o, sc):
    e = bump(p, 0.4, 0.4)
    m.crouch(thigh=70 * e, shin=-30 * e, lean=45 * e)
    m.reach(d, target("forward_far", d, q, sc, (-0.05, -0.75, 0.25)), e)
    m.hand(d, "grip", ramp(p, 0.35, 0.5) * e)


def squat_down(m, p, q, d, o, sc):
    e = bump(p, 0.35, 0.35) * q["amp"]
    m.crouch(thigh=90 * e, shin=-(25 + 5 * q["style"]) * e, lean=30 * e)
    _arms_forward(m, p, q, sc, bump(p, 0.3, 0.3))


def bow(m, p, q, d, o, sc):
    e = bump(p, 0.35, 0.35)
    bend = np.clip(55 * q["amp"], 35, 70) * e
    m.add(SPINE_BASE, rx=-0.5 * bend)
    m.mirrored(L_HIP, R_HIP, rx=0.5 * bend)
    m.add(SPINE_MID, rx=-0.35 * bend)
    m.add(SPINE_SHOULDER, rx=-0.15 * bend)


def jump_up(m, p, q, d, o, sc):
    dip = ramp(p, 0.0, 0.24) * (1.0 - ramp(p, 0.22, 0.42))
    land = ramp(p, 0.66, 0.76) * (1.0 - ramp(p, 0.76, 1.0))
    crouch = dip + 0.5 * land
    m.crouch(thigh=55 * crouch, shin=-30 * crouch, lean=15 * crouch)
    arms_up = ramp(p, 0.0, 0.45) * (1.0 - 0.6 * ramp(p, 0.62, 1.0))
    m.mirrored(L_SHOULDER, R_SHOULDER, rx=-10 * dip + (90 + 15 * q["style"]) * arms_up, rz=10 * arms_up)
    x = np.clip((p - 0.38) / 0.3, 0.0, 1.0)
    m.lift = 0.18 * q["amp"] * 4.0 * x * (1.0 - x)
    m.mirrored(L_ANKLE, R_ANKLE, rx=-25 * np.sqrt(4.0 * x * (1.0 - x)))


def hopping(m, p, q, d, o, sc):
    e = bump(p, 0.25, 0.3)
    lift_hip, lift_knee = (L_HIP, L_KNEE) if d == "r" else (R_HIP, R_KNEE)
    hip, knee, ankle = (R_HIP, R_KNEE, R_ANKLE) if d == "r" else (L_HIP, L_KNEE, L_ANKLE)
    m.planted = (ankle,)
    m.add(lift_hip, rx=(15 + 10 * q["style"]) * e)
    m.add(lift_knee, rx=-85 * q["amp"] * e)
    x = np.clip((p - 0.2) / 0.65, 0.0, 1.0)
    hop = np.abs(np.sin(np.pi * (2.0 + 1.0 * q["cycles"]) * x))
    m.lift = 0.08 * q["amp"] * hop
    m.add(hip, rx=15 * (1.0 - hop) * e)
    m.add(knee, rx=-30 * (1.0 - hop) * e)
    m.add(ankle, rx=15 * (1.0 - hop) * e)
    m.mirrored(L_SHOULDER, R_SHOULDER, rz=30 * e)
    m.mirrored(L_ELBOW, R_ELBOW, rx=30 * e)


def kicking(m, p, q, d, o, sc):
    chamber, extend, down = ramp(p, 0.05, 0.38), ramp(p, 0.36, 0.58), 1.0 - ramp(p, 0.62, 0.95)
    hip, knee, ankle, stand = (R_HIP, R_KNEE, R_ANKLE, L_ANKLE) if d == "r" else (L_HIP, L_KNEE, L_ANKLE, R_ANKLE)
    m.planted = (stand,)
    m.add(hip, rx=(45 * chamber + (25 + 10 * q["style"]) * q["amp"] * extend) * down)
    m.add(knee, rx=-75 * chamber * (1.0 - extend) * down)
    m.add(ankle, rx=-20 * extend * down)
    m.add(SPINE_MID, rx=12 * chamber * down)
    m.mirrored(L_SHOULDER, R_SHOULDER, rx=15 * chamber * down, rz=25 * chamber * down)


def falling(m, p, q, d, o, sc):
    fall = ramp(p, 0.2, 0.55)
    m.crouch(thigh=15 * fall, shin=-90 * fall, lean=45 * fall)  # down onto the knees, shins on the floor
    for side in "lr":
        m.reach(side, target("forward_far", side, q, sc, (0.05, -0.45, 0.05)), ramp(p, 0.3, 0.6))
        m.hand(side, "flat", ramp(p, 0.3, 0.6), palm=PALM_DOWN)


def _walk_legs(m, p, q, steps, amount):
    """Alternating leg swing for ``steps`` steps over the action, scaled by ``amount`` (n, T)."""
    gait = np.sin(np.pi * steps * p + q["phase"])
    m.add(R_HIP, rx=25 * gait * amount)
    m.add(L_HIP, rx=-25 * gait * amount)
    m.add(R_KNEE, rx=-35 * np.clip(gait, 0, None) * amount)
    m.add(L_KNEE, rx=-35 * np.clip(-gait, 0, None) * amount)
    m.add(R_SHOULDER, rx=-18 * gait * amount)
    m.add(L_SHOULDER, rx=18 * gait * amount)
    m.planted = ()


def walking(m, p, q, d, o, sc):
    go = ramp(p, 0.0, 0.15) * (1 - ramp(p, 0.9, 1.0))
    _walk_legs(m, p, q, 4.0 + 2.0 * q["cycles"], go)
    m.root[..., 2] = -1.1 * q["amp"] * sc * p  # towards the camera, about 1 m over the clip


# ---------------------------------------------------------------------------------------------
# Two-person interactions: ``a`` acts, ``b`` answers; both face each other ``gap`` metres apart
# ---------------------------------------------------------------------------------------------
def _toward(gap, sc, lateral: float = 0.0, height: float = 0.0, reach: float = 0.0):
    """A chest-frame wrist target ``reach`` metres short of the partner's mid-line (``gap`` between chests)."""
    g = np.asarray(gap)[..., None]
    z = -(g / 2.0 - reach)
    return np.concatenate([np.full_like(g, lateral), np.full_like(g, height), z], axis=-1) * np.ones_like(np.asarray(sc)[..., None])


def punch_other(a, b, p, q, d, o, sa, sb, gap):
    guard, out = bump(p, 0.3, 0.3), ramp(p, 0.38, 0.5) * (1 - ramp(p, 0.55, 0.75))
    for side in "lr":
        a.reach(side, target("chest_front", side, q, sa, (-0.05, 0.15, 0.12)), guard)
        a.hand(side, "fist", guard, palm=palm_in(side))
    a.reach(d, _toward(gap, sa, 0.0, 0.15, 0.0), out)
    a.add(SPINE_MID, ry=(20 if d == "r" else -20) * out)
    flinch = ramp(p, 0.45, 0.6) * (1 - ramp(p, 0.75, 1.0))
    b.add(SPINE_MID, rx=-15 * flinch)
    b.add(NECK, rx=-15 * flinch)
    b.root[..., 2] = 0.08 * flinch


def kick_other(a, b, p, q, d, o, sa, sb, gap):
    kicking(a, p, q, d, o, sa)
    hit = ramp(p, 0.4, 0.6) * (1 - ramp(p, 0.7, 1.0))
    b.add(SPINE_MID, rx=15 * hit)
    b.root[..., 2] = 0.12 * hit
    for side in "lr":
        b.reach(side, target("chest_front", side, q, sb, (0.0, -0.2, 0.05)), hit)


def push_other(a, b, p, q, d, o, sa, sb, gap):
    e = bump(p, 0.4, 0.3)
    for side in "lr":
        a.reach(side, _toward(gap, sa, 0.15 if side == "r" else -0.15, 0.0, -0.15), e)
        a.hand(side, "flat", e, palm=PALM_FWD, direction=0.6 * UP)
    a.add(SPINE_MID, rx=10 * e)
    shove = ramp(p, 0.4, 0.7)
    b.root[..., 2] = 0.35 * shove
    _walk_legs(b, p, q, 2.0, shove * (1 - ramp(p, 0.7, 0.9)))
    b.add(SPINE_MID, rx=-12 * bump(np.clip((p - 0.35) / 0.5, 0, 1), 0.3, 0.4))


def pat_on_back(a, b, p, q, d, o, sa, sb, gap):
    e = bump(p, 0.3, 0.3)
    pats = 0.5 + 0.5 * osc(p, q, 3.0)
    a.reach(d, _toward(gap, sa, -0.12, 0.12, -0.12) + moving(UP * 0.04, pats * e), e)
    a.hand(d, "flat", e, palm=PALM_DOWN)
    b.add(NECK, rx=10 * e)
    b.add(SPINE_MID, rx=8 * e)


def point_at_other(a, b, p, q, d, o, sa, sb, gap):
    e = ramp(p, 0.0, 0.35) * (1 - ramp(p, 0.7, 1.0))
    a.reach(d, _toward(gap, sa, 0.0, 0.2, -0.1), e)
    a.hand(d, "point", e, palm=PALM_DOWN)
    shrug = ramp(p, 0.3, 0.55) * (1 - ramp(p, 0.7, 1.0))
    for side in "lr":
        b.reach(side, target("chest_front", side, q, sb, (0.05, 0.0, 0.05)), shrug)
        b.hand(side, "flat", shrug, palm=PALM_UP)


def hugging(a, b, p, q, d, o, sa, sb, gap):
    close = ramp(p, 0.0, 0.35) * (1 - ramp(p, 0.7, 1.0))
    for person, scale, high in ((a, sa, 0.12), (b, sb, 0.0)):
        person.root[..., 2] = -(np.asarray(gap) / 2.0 - 0.18) * close
        _walk_legs(person, p, q, 2.0, ramp(p, 0.0, 0.3) * (1 - ramp(p, 0.3, 0.4)))
        for side in "lr":
            person.reach(side, _toward(np.full_like(gap, 0.36), scale, 0.18 if side == "r" else -0.18, high, -0.25), close)
            person.hand(side, "flat", close, palm=PALM_BACK)
            person.pole[side] = person.pole[side] + moving(vec(side, 1.5, 0.8, 0.0), close)


def giving_object(a, b, p, q, d, o, sa, sb, gap):
    give = bump(p, 0.35, 0.3)
    a.reach(d, _toward(gap, sa, 0.0, -0.05, -0.04), give)
    a.hand(d, "grip", give, palm=PALM_UP)
    take = bump(np.clip((p - 0.15) / 0.85, 0, 1), 0.3, 0.3)
    b.reach(d, _toward(gap, sb, 0.0, -0.05, -0.04), take)
    b.hand(d, "grip", take, palm=PALM_DOWN)


def handshaking(a, b, p, q, d, o, sa, sb, gap):
    e = bump(p, 0.3, 0.3)
    pump = osc(p, q, 3.0) * ramp(p, 0.3, 0.4) * (1 - ramp(p, 0.7, 0.75))
    for person, scale in ((a, sa), (b, sb)):
        person.reach("r", _toward(gap, scale, 0.0, -0.18, 0.0) + moving(UP * 0.035, pump), e)
        person.hand("r", "grip", e, palm=(-1.0, 0.0, 0.0), direction=0.3 * FORWARD)


def walking_towards(a, b, p, q, d, o, sa, sb, gap):
    for person, scale in ((a, sa), (b, sb)):
        go = ramp(p, 0.0, 0.1) * (1 - ramp(p, 0.85, 1.0))
        _walk_legs(person, p, q, 4.0 + 2.0 * q["cycles"], go)
        person.root[..., 2] = -0.9 * scale * ramp(p, 0.0, 0.95)


def walking_apart(a, b, p, q, d, o, sa, sb, gap):
    for person, scale in ((a, sa), (b, sb)):
        turn = ramp(p, 0.0, 0.25)
        person.yaw = person.yaw + 180.0 * turn
        go = ramp(p, 0.15, 0.3) * (1 - ramp(p, 0.9, 1.0))
        _walk_legs(person, p, q, 4.0 + 2.0 * q["cycles"], go)
        person.root[..., 2] = 0.9 * scale * ramp(p, 0.25, 1.0)  # away from the partner: the turn is in ``yaw``


@dataclass(frozen=True)
class Action:
    """One class: its name, fine-grained group, motion writer, base duration (frames at tempo 1)."""

    name: str
    group: str
    write: Callable
    frames: int
    two_person: bool = False


_ONE = [
    ("drink_water", "hand_to_head", drink_water, 50), ("eat_snack", "hand_to_head", eat_snack, 54),
    ("brush_teeth", "hand_to_head", brush_teeth, 52), ("phone_call", "hand_to_head", phone_call, 50),
    ("touch_head", "head_touch", touch_head, 44), ("touch_neck", "head_touch", touch_neck, 44),
    ("wipe_face", "head_touch", wipe_face, 44), ("salute", "arm_gesture", salute, 40),
    ("hand_waving", "arm_gesture", hand_waving, 50), ("pointing", "arm_gesture", pointing, 40),
    ("thumb_up", "hand_sign", thumb_up, 40), ("victory_sign", "hand_sign", victory_sign, 40),
    ("ok_sign", "hand_sign", ok_sign, 40), ("reading", "desk_work", reading, 56),
    ("writing", "desk_work", writing, 56), ("typing", "desk_work", typing, 56),
    ("play_with_phone", "desk_work", play_with_phone, 56), ("clapping", "hands_together", clapping, 44),
    ("rub_hands", "hands_together", rub_hands, 44), ("palms_together", "hands_together", palms_together, 40),
    ("cross_hands", "hands_together", cross_hands, 40), ("wear_glasses", "glasses", wear_glasses, 48),
    ("take_off_glasses", "glasses", take_off_glasses, 48), ("put_on_hat", "hat", put_on_hat, 48),
    ("take_off_hat", "hat", take_off_hat, 48), ("touch_chest", "torso_touch", touch_chest, 44),
    ("check_time", "torso_touch", check_time, 44), ("put_in_pocket", "torso_touch", put_in_pocket, 46),
    ("taking_selfie", "arm_raise", taking_selfie, 46), ("cheer_up", "arm_raise", cheer_up, 44),
    ("throw", "arm_raise", throw, 40),
    ("sit_down", "sit_stand", sit_down, 50), ("stand_up", "sit_stand", stand_up, 50),
    ("pick_up", "bend", pick_up, 50), ("squat_down", "bend", squat_down, 46), ("bow", "bend", bow, 44),
    ("jump_up", "jump", jump_up, 40), ("hopping", "jump", hopping, 48), ("kicking", "leg", kicking, 40),
    ("falling", "leg", falling, 44), ("walking", "locomotion", walking, 56),
]
_TWO = [
    ("punch_other", "strike", punch_other, 44), ("kick_other", "strike", kick_other, 44),
    ("push_other", "strike", push_other, 46), ("pat_on_back", "touch_other", pat_on_back, 48),
    ("point_at_other", "touch_other", point_at_other, 44), ("hugging", "embrace", hugging, 52),
    ("giving_object", "hand_over", giving_object, 50), ("handshaking", "hand_over", handshaking, 50),
    ("walking_towards", "walk_pair", walking_towards, 56), ("walking_apart", "walk_pair", walking_apart, 56),
]
ACTIONS: tuple[Action, ...] = tuple(Action(*row) for row in _ONE) + tuple(Action(*row, two_person=True) for row in _TWO)
ACTION_NAMES: tuple[str, ...] = tuple(a.name for a in ACTIONS)
GROUPS: dict[str, tuple[str, ...]] = {}
for _a in ACTIONS:
    GROUPS.setdefault(_a.group, ())
    GROUPS[_a.group] += (_a.name,)
TWO_PERSON: frozenset[int] = frozenset(i for i, a in enumerate(ACTIONS) if a.two_person)
