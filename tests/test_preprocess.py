"""The differentiable pipelines match straightforward re-statements of the official feeders."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustbench_skel import preprocess as P

from conftest import make_clips


def _clips(n=3, t=20, pad=6, seed=0):
    x = make_clips(n=n, t=t, pad=pad, seed=seed).double()
    x[1, :, t - pad - 3 :] = 0  # a shorter clip
    return x


def test_crop_resize_matches_official_crop_then_interpolate():
    x = _clips()
    out = P.crop_resize(x, window=16, keep=0.95)
    for i in range(x.shape[0]):
        valid = int(P.valid_frame_count(x[i : i + 1]))
        bias = int((1 - 0.95) * valid / 2)
        crop = x[i][:, bias : valid - bias]  # C, L, V, M
        c, length, v, m = crop.shape
        flat = crop.permute(0, 2, 3, 1).reshape(c * v * m, length)[None, None]
        ref = F.interpolate(flat, size=(c * v * m, 16), mode="bilinear", align_corners=False)[0, 0]
        ref = ref.reshape(c, v, m, 16).permute(0, 3, 1, 2)
        assert torch.allclose(out[i], ref, atol=1e-10)


def test_crop_resize_downsamples_long_clips_too():
    x = _clips(t=90, pad=10)
    out = P.crop_resize(x, window=20)
    assert out.shape == (3, 3, 20, 25, 2)
    assert torch.isfinite(out).all()


def test_uniform_sample_indices():
    idx = P.uniform_sample_indices(torch.tensor([100, 7, 20]), 20)
    assert idx.shape == (3, 20)
    assert torch.equal(idx[0], torch.arange(20) * 5 + 2)  # middle of each 5-frame segment
    assert torch.equal(idx[1], torch.arange(20) % 7)  # fewer frames than needed: loop
    assert torch.equal(idx[2], torch.arange(20))
    assert (idx[0][1:] > idx[0][:-1]).all()


def test_loop_pad_repeats_present_frames():
    x = _clips()
    out = P.loop_pad(x)
    length = int(P.person_lengths(x)[0, 0])
    assert torch.equal(out[0, :, :length], x[0, :, :length])
    assert torch.equal(out[0, :, length : 2 * length], x[0, :, : min(length, 20 - length)])
    assert out[..., 1].eq(0).all(), "an empty person stays empty"


def test_loop_pad_moves_a_late_body_to_the_start_like_the_official_step():
    x = torch.zeros(1, 3, 8, 25, 1)
    x[0, :, 3:6] = torch.arange(1.0, 4.0)[None, :, None, None]  # present in frames 3..5 only
    out = P.loop_pad(x)
    # official: frames 3..5 move to 0..2, then 0..2 repeat to fill the clip
    assert out[0, 0, :, 0, 0].tolist() == [1, 2, 3, 1, 2, 3, 1, 2]


def test_center_per_frame_and_translate():
    x = _clips()
    centred = P.center_per_frame(x, joint=1)
    present = P.frame_mask(x)[:, 0, :, 0, 0].bool()
    assert centred[:, :, :, 1, 0].abs().max() == 0
    translated = P.translate_to_origin(x, joint=1)
    assert translated[:, :, 0, 1, 0].abs().max() == 0
    # translation keeps relative positions and the zeros
    assert torch.allclose((translated - x)[0, :, 3, 5, 0], (translated - x)[0, :, 7, 9, 0])
    assert translated[~present[:, None, :, None, None].expand(-1, 3, -1, 25, 2) & (torch.arange(2) == 0)].abs().max() == 0
    assert translated[..., 1].eq(0).all()


def test_align_body_axes_points_the_bones_along_the_axes():
    x = _clips()
    out = P.align_body_axes(x, x_joints=None)
    spine = out[:, :, 0, 1, 0] - out[:, :, 0, 0, 0]
    assert torch.allclose(spine / spine.norm(dim=1, keepdim=True), torch.tensor([0.0, 0.0, 1.0], dtype=x.dtype).expand(3, 3), atol=1e-9)
    out = P.align_body_axes(x)
    shoulders = out[:, :, 0, 8, 0] - out[:, :, 0, 4, 0]  # right minus left shoulder, as the official code
    assert torch.allclose(shoulders / shoulders.norm(dim=1, keepdim=True), torch.tensor([1.0, 0.0, 0.0], dtype=x.dtype).expand(3, 3), atol=1e-9)
    # a rotation: all pairwise distances within a frame are kept
    d_in = torch.cdist(x[0, :, 2, :, 0].T, x[0, :, 2, :, 0].T)
    d_out = torch.cdist(out[0, :, 2, :, 0].T, out[0, :, 2, :, 0].T)
    assert torch.allclose(d_in, d_out, atol=1e-9)


def test_align_rotation_is_a_proper_rotation():
    src = torch.randn(50, 3, dtype=torch.float64)
    r = P.align_rotation(src, torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3), atol=1e-9)
    assert torch.allclose(torch.linalg.det(r), torch.ones(50, dtype=torch.float64))
    mapped = (r @ src[:, :, None])[:, :, 0]
    assert torch.allclose(mapped[:, :2], torch.zeros(50, 2, dtype=torch.float64), atol=1e-9)


def test_bone_and_motion_streams():
    x = _clips()
    bones = P.bone_stream(x)
    assert torch.equal(bones[:, :, :, 20], torch.zeros_like(bones[:, :, :, 20]))
    assert torch.allclose(bones[:, :, :, 0], x[:, :, :, 0] - x[:, :, :, 1])
    motion = P.motion_stream(x)
    assert torch.allclose(motion[:, :, 3], x[:, :, 4] - x[:, :, 3])
    assert motion[:, :, -1].eq(0).all()


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: P.crop_resize(x, 8),
        lambda x: P.align_body_axes(P.center_per_frame(P.loop_pad(x))),
        lambda x: P.translate_to_origin(x),
        lambda x: P.bone_stream(x) + P.motion_stream(x),
        lambda x: P.gather_frames(x, P.uniform_sample_indices(P.valid_frame_count(x), 6)),
    ],
    ids=["crop_resize", "agcn_pipeline", "translate", "streams", "uniform_sample"],
)
def test_pipelines_are_differentiable(fn):
    base = make_clips(n=2, t=8, pad=2, seed=3).double()
    present = base.ne(0)  # the gradient is checked at the present coordinates, where attacks act

    def on_present(values):
        return fn(torch.zeros_like(base).masked_scatter(present, values))

    values = base[present].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(on_present, (values,), eps=1e-6, atol=1e-5, fast_mode=True)
