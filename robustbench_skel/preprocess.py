"""Differentiable versions of the official data pipelines, for victims to call inside ``forward``.

The published recognizers were trained on data that went through offline scripts and feeders
(centring, view alignment, loop padding, crop-and-resize to a fixed length, bone and motion streams).
A victim here receives raw clips in metres and applies the same transformations in torch, so the
gradient of an attack flows through them. Every function takes and returns ``(N, C, T, V, M)``
tensors unless it says otherwise; absent person-frames (all zeros) stay zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "NTU_BONE_PAIRS",
    "frame_mask",
    "joint_mask",
    "valid_frame_count",
    "person_lengths",
    "translate_to_origin",
    "center_per_frame",
    "loop_pad",
    "align_rotation",
    "align_body_axes",
    "crop_resize",
    "uniform_sample_indices",
    "gather_frames",
    "bone_stream",
    "motion_stream",
]

# 2s-AGCN / MS-G3D / CTR-GCN / PYSKL bone pairs for NTU-25 (0-based (joint, reference joint));
# joint 21 (spine shoulder, index 20) is its own reference, so its bone is zero.
NTU_BONE_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (a - 1, b - 1)
    for a, b in (
        (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10), (12, 11),
        (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (21, 21), (22, 23), (23, 8),
        (24, 25), (25, 12),
    )
)


def frame_mask(x: torch.Tensor) -> torch.Tensor:
    """``(N, 1, T, 1, M)`` float: 1 where the person has any non-zero coordinate in that frame."""
    return x.ne(0).any(dim=1, keepdim=True).any(dim=3, keepdim=True).to(x.dtype)


def joint_mask(x: torch.Tensor) -> torch.Tensor:
    """``(N, 1, T, V, M)`` float: 1 where the joint has any non-zero coordinate."""
    return x.ne(0).any(dim=1, keepdim=True).to(x.dtype)


def valid_frame_count(x: torch.Tensor) -> torch.Tensor:
    """Frames in which anybody is present, ``(N,)`` long (the feeders' ``valid_frame_num``)."""
    return x.ne(0).any(dim=1).any(dim=2).any(dim=2).sum(dim=1)


def person_lengths(x: torch.Tensor) -> torch.Tensor:
    """Frames in which each person is present, ``(N, M)`` long."""
    return frame_mask(x)[:, 0, :, 0, :].sum(dim=1).long()


def translate_to_origin(x: torch.Tensor, joint: int = 1, person: int = 0) -> torch.Tensor:
    """Subtract one joint of one person in its first present frame from every present joint.

    The SGN / CTR-GCN-family preprocessing (spine-middle of actor 1 in the first frame becomes the
    origin of the whole sequence); zero frames stay zero.
    """
    present = frame_mask(x)[:, 0, :, 0, person]  # (N, T)
    first = torch.where(present.any(dim=1), present.argmax(dim=1), torch.zeros_like(present[:, 0], dtype=torch.long))
    origin = x[torch.arange(x.shape[0], device=x.device), :, first, joint, person]  # (N, C)
    return (x - origin[:, :, None, None, None]) * frame_mask(x)


def center_per_frame(x: torch.Tensor, joint: int = 1, person: int = 0) -> torch.Tensor:
    """Subtract, frame by frame, one joint of one person from every present joint (2s-AGCN)."""
    center = x[:, :, :, joint : joint + 1, person : person + 1]
    return (x - center) * joint_mask(x)


def loop_pad(x: torch.Tensor) -> torch.Tensor:
    """Fill each person's trailing empty frames by looping its frames, as 2s-AGCN's ``pre_normalization``.

    The official step first moves a person's present frames to the start when its frame 0 is empty
    (a body that enters late), then fills the frames after the last present one with frames
    ``0, 1, ...`` of the recorded span (gaps inside it included). Empty persons stay empty.
    """
    n, c, t, v, m = x.shape
    present = frame_mask(x)[:, 0, :, 0, :].transpose(1, 2).bool()  # (N, M, T)
    steps = torch.arange(t, device=x.device)
    # present frames first (stable), for persons whose first frame is empty; identity otherwise
    compact = torch.sort((~present).to(torch.uint8), dim=2, stable=True).indices
    late = ~present[:, :, :1]
    source = torch.where(late, compact, steps)
    shifted = torch.gather(present, 2, source)
    span = torch.where(shifted, steps + 1, 0).amax(dim=2, keepdim=True).clamp_min(1)  # last present + 1
    index = torch.gather(source, 2, torch.where(steps < span, steps, steps % span))  # (N, M, T)
    index = index.transpose(1, 2)[:, None, :, None, :].expand(n, c, t, v, m)
    return torch.gather(x, 2, index)


def align_rotation(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(N, 3, 3)`` rotations taking the direction of each ``source`` vector onto ``target`` ``(3,)``.

    Uses ``R = I + K + K^2 / (1 + cos)`` with ``K`` the cross-product matrix of ``s x t`` (unit
    vectors): smooth and differentiable everywhere except for exactly opposite vectors, where the
    identity is returned as the official code does for degenerate axes.
    """
    s = source / source.norm(dim=1, keepdim=True).clamp_min(1e-12)
    t = (target / target.norm()).to(s).expand_as(s)
    cross = torch.cross(s, t, dim=1)
    cos = (s * t).sum(dim=1)
    zero = torch.zeros_like(cos)
    k = torch.stack(
        [
            torch.stack([zero, -cross[:, 2], cross[:, 1]], dim=1),
            torch.stack([cross[:, 2], zero, -cross[:, 0]], dim=1),
            torch.stack([-cross[:, 1], cross[:, 0], zero], dim=1),
        ],
        dim=1,
    )
    eye = torch.eye(3, dtype=s.dtype, device=s.device).expand_as(k)
    scale = torch.where(cos > -1 + 1e-6, 1.0 / (1.0 + cos).clamp_min(1e-6), zero)
    rotation = eye + k + (k @ k) * scale[:, None, None]
    degenerate = (source.norm(dim=1) < 1e-9) | (cos <= -1 + 1e-6)
    return torch.where(degenerate[:, None, None], eye, rotation)


def _rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nij,njtvm->nitvm", rotation, x)


def align_body_axes(
    x: torch.Tensor,
    z_joints: tuple[int, int] = (0, 1),
    x_joints: tuple[int, int] | None = (4, 8),
    person: int = 0,
    frame: int = 0,
) -> torch.Tensor:
    """Rotate every clip so that, in one frame of one person, the vector from ``z_joints[0]`` to
    ``z_joints[1]`` points along +z and then the one from ``x_joints[0]`` to ``x_joints[1]`` along +x
    (2s-AGCN / MS-G3D / PYSKL: hip (0) -> spine (1) to +z; left (4) -> right shoulder (8), i.e. the
    official ``right - left`` shoulder vector, to +x).

    As in the official code the second rotation is the minimal one for the shoulders, so it may tilt
    the spine away from z again.
    """
    zb, zt = z_joints
    x = _rotate(x, align_rotation(x[:, :, frame, zt, person] - x[:, :, frame, zb, person], torch.tensor([0.0, 0.0, 1.0])))
    if x_joints is None:
        return x
    xb, xt = x_joints
    return _rotate(x, align_rotation(x[:, :, frame, xt, person] - x[:, :, frame, xb, person], torch.tensor([1.0, 0.0, 0.0])))


def crop_resize(x: torch.Tensor, window: int, keep: float = 0.95) -> torch.Tensor:
    """Test-time ``valid_crop_resize`` of the CTR-GCN family: centre-crop ``keep`` of the valid frames,
    then linearly resize them to ``window`` frames (``F.interpolate`` bilinear, ``align_corners=False``).
    """
    n, c, t, v, m = x.shape
    valid = valid_frame_count(x)
    bias = torch.floor((1 - keep) * valid.double() / 2).long()
    length = (valid - 2 * bias).clamp_min(1)
    dst = torch.arange(window, device=x.device, dtype=torch.float64)[None, :]
    src = ((dst + 0.5) * (length.double()[:, None] / window) - 0.5).clamp_min(0)
    lo = src.floor().long()
    hi = torch.minimum(lo + 1, length[:, None] - 1)
    weight = (src - lo.double()).to(x.dtype)
    lo, hi = lo + bias[:, None], hi + bias[:, None]
    out = gather_frames(x, lo) * (1 - weight)[:, None, :, None, None] + gather_frames(x, hi) * weight[:, None, :, None, None]
    return out * (valid > 0).to(x.dtype)[:, None, None, None, None]


def uniform_sample_indices(lengths: torch.Tensor, clip_len: int) -> torch.Tensor:
    """Deterministic segment sampling ``(N, clip_len)``: the middle frame of each of ``clip_len`` equal
    segments of the valid frames, or the valid frames looped when there are fewer than ``clip_len``.

    PYSKL's ``UniformSample`` and SGN's sampler draw a random frame per segment; at test time we take
    the segment centre so that the victim is a deterministic function (a requirement of a fair
    white-box evaluation).
    """
    lengths = lengths.clamp_min(1)[:, None]
    i = torch.arange(clip_len, device=lengths.device)[None, :]
    start = (i * lengths) // clip_len
    stop = ((i + 1) * lengths) // clip_len
    segment = (start + stop) // 2
    return torch.where(lengths >= clip_len, segment, i % lengths)


def gather_frames(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[n, :, index[n, k]]`` for every sample: ``(N, C, K, V, M)``."""
    n, c, _, v, m = x.shape
    k = index.shape[1]
    return torch.gather(x, 2, index[:, None, :, None, None].expand(n, c, k, v, m))


def bone_stream(x: torch.Tensor, pairs: Sequence[tuple[int, int]] = NTU_BONE_PAIRS) -> torch.Tensor:
    """Bone vectors ``joint - reference joint`` for each pair, in the joints' order."""
    joints = torch.tensor([a for a, _ in pairs], device=x.device)
    refs = torch.tensor([b for _, b in pairs], device=x.device)
    bones = torch.zeros_like(x)
    bones[:, :, :, joints] = x[:, :, :, joints] - x[:, :, :, refs]
    return bones


def motion_stream(x: torch.Tensor) -> torch.Tensor:
    """Frame differences ``x[t+1] - x[t]``, zero in the last frame (the feeders' motion modality)."""
    motion = torch.zeros_like(x)
    motion[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    return motion
