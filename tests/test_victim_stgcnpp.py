"""ST-GCN++ (PYSKL): mmcv/mmaction2 checkpoints load strictly, PreNormalize3D is reproduced, invariances hold."""

from __future__ import annotations

import math

import torch

import robustbench_skel.victims.stgcnpp  # noqa: F401  (registers the victim)
from robustbench_skel.layout import NTU25
from robustbench_skel.victim import create_victim, load_victim, model_card
from robustbench_skel.victims.stgcnpp import pre_normalize_3d, pyskl_spatial_graph

from conftest import load_manifest, make_clips, random_state_dict, training_losses


def _model(clip_len: int = 12, num_classes: int = 7, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_victim("stgcnpp", num_classes=num_classes, layout=NTU25, clip_len=clip_len).eval()


def _rotation(ax: float, ay: float, az: float) -> torch.Tensor:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _onto(v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rodrigues: the rotation by the angle between ``v`` and ``target`` about ``v x target`` (right hand)."""
    axis = torch.linalg.cross(v, target)
    angle = torch.atan2(axis.norm(), v @ target)
    k = axis / axis.norm()
    kx = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=v.dtype)
    return torch.eye(3, dtype=v.dtype) + torch.sin(angle) * kx + (1 - torch.cos(angle)) * kx @ kx


def test_official_manifest_loads_strictly_with_the_listed_output():
    manifest = load_manifest("stgcnpp")
    model = create_victim("stgcnpp", num_classes=manifest["output_shape"][1], layout=NTU25)
    state = random_state_dict(manifest)
    assert list(model.state_dict()) == list(state), "key order should follow the PYSKL recognizer"
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    assert sum(p.numel() for p in model.backbone.parameters()) == 1_387_724  # "1.39 M" backbone
    model.eval()
    with torch.no_grad():
        kp = torch.randn(2, 2, 20, 25, 3)  # backbone convention (N, M, T, V, C); T shortened
        assert list(model.cls_head(model.backbone(kp)).shape) == manifest["output_shape"]
        assert list(model(make_clips(n=2, t=30)).shape) == manifest["output_shape"]


def test_mmaction2_checkpoint_is_renamed_and_loads(tmp_path):
    manifest = load_manifest("stgcnpp")
    state = random_state_dict(manifest)
    mmaction = {(k.replace("cls_head.fc_cls.", "cls_head.fc.")): v for k, v in state.items()}
    path = tmp_path / "stgcnpp_mmaction2.pth"
    torch.save({"meta": {"mmaction_version": "1.2.0"}, "state_dict": mmaction}, path)
    loaded = load_victim("stgcnpp", num_classes=60, layout=NTU25, dataset="ntu60", checkpoint=path)
    assert torch.equal(loaded.model.cls_head.fc_cls.weight, state["cls_head.fc_cls.weight"])
    pyskl = tmp_path / "j.pth"
    torch.save({"meta": {}, "state_dict": state}, pyskl)
    loaded = load_victim("stgcnpp", num_classes=60, layout=NTU25, dataset="ntu60", checkpoint=pyskl)
    assert torch.equal(loaded.model.backbone.gcn[3].gcn.A, state["backbone.gcn.3.gcn.A"])


def test_spatial_graph_uses_the_pyskl_hand_edges():
    a = pyskl_spatial_graph()
    assert a.shape == (3, 25, 25) and torch.equal(a[0], torch.eye(25))
    assert a[1][7, 21] > 0 and a[1][7, 22] > 0 and a[1][22, 21] == 0  # tip and thumb both hang off the hand
    for k in (1, 2):
        cols = a[k].sum(dim=0)
        assert torch.allclose(cols[cols > 0], torch.ones(int((cols > 0).sum())))


def test_pre_normalize_matches_pyskl():
    x = make_clips(n=3, t=20, pad=3, seed=4).double()
    x[0, :, 2:9, :, 1] = x[0, :, 2:9, :, 0] + 0.5  # a short second person: no swap
    x[1, ..., 1] = make_clips(n=1, t=20, pad=0, seed=9)[0, ..., 0].double()  # person 1 present in 20 frames
    x[1, :, :5, :, 0] = 0  # person 0 only in frames 5..16: swapped, frames 17..19 dropped
    out = pre_normalize_3d(x)
    for i, (first_person, frames) in enumerate([(0, range(0, 17)), (1, range(0, 20)), (0, range(0, 17))]):
        clip = x[i][..., [first_person, 1 - first_person]][:, list(frames)]
        kept = len(frames)
        clip = (clip - clip[:, 0, 1, 0][:, None, None, None]) * clip.ne(0).any(0, keepdim=True)
        r1 = _onto(clip[:, 0, 1, 0] - clip[:, 0, 0, 0], torch.tensor([0.0, 0.0, 1.0], dtype=x.dtype))
        clip = torch.einsum("ij,jtvm->itvm", r1, clip)
        r2 = _onto(clip[:, 0, 8, 0] - clip[:, 0, 4, 0], torch.tensor([1.0, 0.0, 0.0], dtype=x.dtype))
        clip = torch.einsum("ij,jtvm->itvm", r2, clip)
        assert torch.allclose(out[i, :, :kept], clip, atol=1e-9)
        assert out[i, :, kept:].abs().sum() == 0
    shoulders = out[:, :, 0, 8, 0] - out[:, :, 0, 4, 0]
    assert torch.allclose(shoulders[:, 1:], torch.zeros(3, 2, dtype=x.dtype), atol=1e-9) and (shoulders[:, 0] > 0).all()


def test_raw_clips_give_finite_logits_and_gradients_on_present_joints():
    model = _model(clip_len=100)
    x = make_clips(n=1, t=48, pad=6).requires_grad_(True)
    logits = model(x)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[:, :, :42, :, 0].abs().sum(dim=1) > 0).all()  # 42 valid frames, all looped into 100
    assert x.grad[..., 1].abs().sum() == 0


def test_invariances_determinism_and_empty_person_skipping():
    """Translations and empty frames do not matter. Global rotations do, a little: PreNormalize3D's two
    minimal rotations (spine to z, then shoulders to x) are not rotation-equivariant, as in PYSKL."""
    model = _model()
    x = make_clips(n=3, t=40, pad=6, seed=1)
    x[1, ..., 1] = (x[1, ..., 0] * 0.8 + 0.3) * x[1, ..., 0].ne(0)  # clip 1 has a second actor
    present = x.ne(0).any(dim=1, keepdim=True).any(dim=3, keepdim=True).float()
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(model(x), ref)
        shifted = x + torch.tensor([0.5, -0.3, 0.8])[None, :, None, None, None] * present
        assert torch.allclose(model(shifted), ref, atol=1e-5)
        padded = torch.cat([torch.zeros(3, 3, 7, 25, 2), x, torch.zeros(3, 3, 30, 25, 2)], dim=2)
        assert torch.allclose(model(padded), ref, atol=1e-5)  # empty frames are dropped, wherever they are
        model.skip_empty_persons = False
        assert torch.allclose(model(x), ref, atol=1e-5)
    rotated = pre_normalize_3d(torch.einsum("ij,njtvm->nitvm", _rotation(0.3, -1.1, 2.0), x))
    shoulders = rotated[:, :, 0, 8, 0] - rotated[:, :, 0, 4, 0]  # still along +x after any rotation
    assert torch.allclose(shoulders[:, 1:], torch.zeros(3, 2), atol=1e-5) and (shoulders[:, 0] > 0).all()


def test_training_steps_decrease_the_loss():
    torch.manual_seed(0)
    model = create_victim("stgcnpp", num_classes=3, layout=NTU25, clip_len=12).train()
    x, y = make_clips(n=3, t=24, seed=3), torch.arange(3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = training_losses(model, x, y, opt, steps=3)
    assert losses[-1] < losses[0]


def test_card_matches_the_model():
    card = model_card("stgcnpp")
    model = create_victim("stgcnpp", num_classes=60, layout=NTU25)
    assert card["parameters"]["ntu60"] == sum(p.numel() for p in model.parameters())
    assert card["macs"]["input_shape"][2] == 100


def test_mvc_data_bn_variant_runs():
    model = create_victim("stgcnpp", num_classes=5, layout=NTU25, clip_len=8, data_bn_type="MVC").eval()
    assert model.backbone.data_bn.num_features == 150
    with torch.no_grad():
        assert list(model(make_clips(n=2, t=12)).shape) == [2, 5]
