"""InfoGCN: the official state_dict loads strictly, the aligned-data pipeline matches the official one, invariances hold."""

from __future__ import annotations

import math

import numpy as np
import torch

import robustbench_skel.victims.infogcn  # noqa: F401  (registers the victim)
from robustbench_skel.layout import NTU25
from robustbench_skel.victim import create_victim, model_card
from robustbench_skel.victims.infogcn import SAGC, align_skeleton, relative_mode_matrix

from conftest import load_manifest, make_clips, random_state_dict


def _model(window: int = 16, num_classes: int = 7, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_victim("infogcn", num_classes=num_classes, layout=NTU25, window=window).eval()


def _rotation(ax: float, ay: float, az: float) -> torch.Tensor:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _two_person_clips() -> torch.Tensor:
    x = make_clips(n=3, t=40, pad=6, seed=1)
    x[1, ..., 1] = (x[1, ..., 0] * 0.8 + 0.3) * x[1, ..., 0].ne(0)  # clip 1 has a second actor
    return x


def _reference_align(data: np.ndarray) -> np.ndarray:
    """The official per-person loop: basis from frame 0, coordinates = inverse(basis) @ joints."""
    out = np.zeros_like(data)
    for i in range(data.shape[0]):
        for p in range(data.shape[-1]):
            sample = data[i][..., p]
            u = sample[:, 0, 1] - sample[:, 0, 0]
            if np.linalg.norm(u) <= 0:
                continue
            u = u / np.linalg.norm(u)
            w = sample[:, 0, 12] - sample[:, 0, 16]
            w = w - (u @ w) * u
            w = w / np.linalg.norm(w)
            s = np.cross(w, u) / np.linalg.norm(np.cross(w, u))
            basis = np.stack([w, s, u], axis=1)
            out[i, ..., p] = np.einsum("ij,jtv->itv", np.linalg.inv(basis), sample)
    return out


def test_official_manifest_loads_strictly_with_the_listed_output():
    manifest = load_manifest("infogcn")
    model = create_victim("infogcn", num_classes=manifest["output_shape"][1], layout=NTU25)
    state = random_state_dict(manifest)
    assert list(model.state_dict()) == list(state), "key order should follow the official model"
    assert "A_vector" not in state and model.A_vector.dtype == torch.float32
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    model.eval()
    x = torch.randn(*manifest["input_shape"][:2], 30, *manifest["input_shape"][3:])  # resized to 64 inside
    x[1, ..., 1] = 0  # one absent second person (evaluated once)
    assert list(model(x).shape) == manifest["output_shape"]


def test_alignment_matches_the_official_loop_and_mirrors():
    x = _two_person_clips().double()
    x[2, :, 0, :, 0] = 0  # person 0 absent in frame 0: the official loop leaves it all zero
    got = align_skeleton(x)
    np.testing.assert_allclose(got.numpy(), _reference_align(x.numpy()), atol=1e-9)
    assert got[2, ..., 0].abs().sum() == 0
    first = got[0, :, 0, :, 0]
    spine, hips = first[:, 1] - first[:, 0], first[:, 12] - first[:, 16]
    assert torch.allclose(spine[:2], torch.zeros(2, dtype=spine.dtype), atol=1e-9) and spine[2] > 0
    assert abs(hips[1]) < 1e-9 and hips[0] > 0
    # a left-handed basis: the handedness of the skeleton flips (x . (y cross z) changes sign)
    a, b, c = (x[0, :, 0, j, 0] - x[0, :, 0, 1, 0] for j in (4, 8, 3))
    a2, b2, c2 = (got[0, :, 0, j, 0] - got[0, :, 0, 1, 0] for j in (4, 8, 3))
    assert torch.sign(a @ torch.cross(b, c, dim=0)) == -torch.sign(a2 @ torch.cross(b2, c2, dim=0))


def test_first_mode_representation_is_joint_minus_parent():
    a = relative_mode_matrix(1)
    joints = torch.randn(25, 3)
    rel = a @ joints
    assert torch.allclose(rel[1], joints[1])  # spine middle, the root, keeps its position
    assert torch.allclose(rel[0], joints[0] - joints[1]) and torch.allclose(rel[21], joints[21] - joints[22])
    assert torch.allclose(rel[3], joints[3] - joints[2]) and torch.allclose(rel[12], joints[12] - joints[0])


def test_fused_attention_graph_convolution_equals_per_head_sum():
    torch.manual_seed(0)
    layer = SAGC(64, 128, heads=3, num_joints=25).eval()
    torch.nn.init.normal_(layer.bn.weight)
    x = torch.randn(2, 64, 6, 25)
    graphs = layer.attn(x) * layer.shared_topology
    feature = x.permute(0, 2, 3, 1).reshape(12, 25, 64)
    out = sum(conv((graphs[:, h] @ feature).view(2, 6, 25, 64).permute(0, 3, 1, 2)) for h, conv in enumerate(layer.conv_d))
    expected = torch.relu(layer.bn(out) + layer.down(x))
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_raw_clips_give_finite_logits_and_gradients_on_present_joints():
    model = _model()
    x = make_clips(n=2, t=40, pad=4).requires_grad_(True)
    logits = model(x)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[:, :, :36, :, 0].abs().sum(dim=1) > 0).float().mean() > 0.5  # frames the resize reads
    assert x.grad[..., 1].abs().sum() == 0


def test_invariances_determinism_and_empty_person_skipping():
    model = _model()
    x = _two_person_clips()
    present = x.ne(0).any(dim=1, keepdim=True).any(dim=3, keepdim=True).float()
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(model(x), ref)
        shifted = x + torch.tensor([0.5, -0.3, 0.8])[None, :, None, None, None] * present
        assert torch.allclose(model(shifted), ref, atol=1e-4)
        rotated = torch.einsum("ij,njtvm->nitvm", _rotation(0.3, -1.1, 2.0), x)
        assert torch.allclose(model(rotated), ref, atol=1e-4)  # each person is aligned to its own axes
        padded = torch.cat([x, torch.zeros(3, 3, 30, 25, 2)], dim=2)
        assert torch.allclose(model(padded), ref, atol=1e-5)  # crop-resize of the valid frames only
        model.skip_empty_persons = False
        assert torch.allclose(model(x), ref, atol=1e-5)


def test_training_steps_run_with_finite_gradients():
    """Training mode samples z = mu + eps * std (std up to 100): the loss is noisy, but stays finite."""
    torch.manual_seed(0)
    model = create_victim("infogcn", num_classes=4, layout=NTU25, window=16).train()
    x, y = make_clips(n=3, t=24, seed=3), torch.arange(3)
    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        assert math.isfinite(loss.item())
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_overflowing_noise_scale_gives_zero_not_nan_gradients():
    model = _model()
    model.train()
    torch.nn.init.constant_(model.fc_logvar.bias, 1e4)  # exp would overflow: the official clamp at 100 applies
    x = make_clips(n=2, t=20)
    model(x).logsumexp(1).sum().backward()
    assert torch.isfinite(model.fc_logvar.bias.grad).all() and model.fc_logvar.bias.grad.abs().sum() == 0


def test_card_matches_the_model():
    card = model_card("infogcn")
    model = create_victim("infogcn", num_classes=60, layout=NTU25)
    assert card["parameters"]["ntu60"] == sum(p.numel() for p in model.parameters())
    assert card["macs"]["input_shape"][2] == 64
