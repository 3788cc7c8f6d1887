"""2s-AGCN (``agcn``, ``agcn-2s``): official state_dict, the official NTU normalisation in forward, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import robustbench_skel.victims.agcn  # noqa: F401  (registers agcn, agcn-2s)
from robustbench_skel import preprocess
from robustbench_skel.layout import NTU25
from robustbench_skel.victim import create_victim, load_victim
from robustbench_skel.victims.agcn import UnitGCN, pre_normalization, spatial_graph

from conftest import load_manifest, make_clips, random_state_dict, training_losses


@pytest.fixture(autouse=True)
def _single_thread():
    """These models are small at test sizes; one thread avoids oversubscribing a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _loaded(name: str = "agcn") -> torch.nn.Module:
    model = create_victim(name, num_classes=60, layout=NTU25)
    state = random_state_dict(load_manifest("agcn"))
    if name.endswith("-2s"):
        state = {f"{part}.{k}": v for part in ("joint", "bone") for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def random_rotation(seed: int, dtype=torch.float64) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=dtype))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def body_like_clips(n: int = 3, t: int = 14, pad: int = 4, seed: int = 0) -> torch.Tensor:
    """Random clips whose person-0 shoulder line is perpendicular to its hip->spine bone in frame 0.

    The official alignment (spine to +z, then the minimal rotation of the shoulders to +x) is exactly
    invariant to a global rotation only in that case, which holds approximately for real bodies.
    """
    x = make_clips(n=n, t=t, pad=pad, seed=seed).double()
    x[0, ..., 1] = x[0, ..., 0].flip(1) * 0.8  # one clip with a second person
    x[0, :, t - pad - 3 :, :, 1] = 0
    spine = x[:, :, 0, 1, 0] - x[:, :, 0, 0, 0]
    shoulders = x[:, :, 0, 8, 0] - x[:, :, 0, 4, 0]
    x[:, :, 0, 8, 0] -= (shoulders * spine).sum(1, keepdim=True) / (spine * spine).sum(1, keepdim=True) * spine
    return x


def test_official_manifest_loads_strictly_with_the_listed_output():
    manifest = load_manifest("agcn")
    model = create_victim("agcn", num_classes=manifest["output_shape"][1], layout=NTU25)
    state = random_state_dict(manifest)
    assert list(model.state_dict()) == list(state), "key order should follow the official model"
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    model.eval()
    x = torch.randn(*manifest["input_shape"][:2], 12, *manifest["input_shape"][3:])
    assert list(model(x).shape) == manifest["output_shape"]


def test_two_stream_loads_one_official_file_per_stream(tmp_path):
    state = random_state_dict(load_manifest("agcn"))
    bone = {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, tmp_path / "joint.pt")
    torch.save(bone, tmp_path / "bone.pt")
    loaded = load_victim("agcn-2s", 60, NTU25, "ntu60", checkpoint=f"{tmp_path / 'joint.pt'},{tmp_path / 'bone.pt'}")
    model = loaded.model
    assert loaded.num_parameters == 2 * load_manifest("agcn")["num_parameters"]
    assert torch.equal(model.joint.fc.bias, state["fc.bias"]) and torch.equal(model.bone.fc.bias, bone["fc.bias"])
    x = make_clips(n=2, t=10)
    with torch.no_grad():
        joints = pre_normalization(x)
        expected = model.joint.network(joints) + model.bone.network(preprocess.bone_stream(joints))
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_spatial_graph_is_identity_inward_outward_column_normalised():
    a = torch.from_numpy(spatial_graph(NTU25))
    assert a.shape == (3, 25, 25)
    assert torch.equal(a[0], torch.eye(25))
    assert torch.allclose(a[1].sum(0)[a[1].sum(0) > 0], torch.ones(1))
    assert torch.allclose(a[2].sum(0)[a[2].sum(0) > 0], torch.ones(1))
    assert a[1][1, 0] > 0 and a[2][0, 1] > 0  # inward edge (child 0, parent 1) -> A_in[1, 0]
    assert int((a[1] > 0).sum()) == int((a[2] > 0).sum()) == len(NTU25.graph_edges)


def test_batched_unit_gcn_equals_the_per_subset_formula():
    torch.manual_seed(0)
    unit = UnitGCN(16, 32, spatial_graph(NTU25)).eval()
    with torch.no_grad():
        unit.PA.normal_(0, 0.1)
        unit.bn.weight.fill_(1.0)
    x = torch.randn(3, 16, 7, 25)
    n, c, t, v = x.shape
    y = 0
    for k in range(3):  # the paper's formula, subset by subset
        theta = unit.conv_a[k](x).permute(0, 3, 1, 2).reshape(n, v, -1)
        phi = unit.conv_b[k](x).reshape(n, -1, v)
        graph = unit.A[k] + unit.PA[k] + torch.softmax(theta @ phi / theta.shape[-1], dim=-2)
        y = y + unit.conv_d[k]((x.reshape(n, c * t, v) @ graph).view(n, c, t, v))
    expected = F.relu(unit.bn(y) + unit.down(x))
    assert torch.allclose(unit(x), expected, atol=1e-5)


def _official_pre_normalization(s: np.ndarray) -> np.ndarray:
    """A numpy re-statement of the offline steps for one sample ``(M, T, V, C)`` (bodies already chosen)."""
    s = s.copy()
    for p in s:
        if p.sum() == 0:
            continue
        if p[0].sum() == 0:
            tmp = p[p.sum(-1).sum(-1) != 0].copy()
            p[:] = 0
            p[: len(tmp)] = tmp
        for f in range(len(p)):
            if p[f].sum() == 0 and p[f:].sum() == 0:
                p[f:] = np.concatenate([p[:f]] * int(np.ceil((len(p) - f) / f)))[: len(p) - f]
                break
    center = s[0, :, 1:2].copy()
    for i in range(len(s)):
        if s[i].sum() != 0:
            s[i] = (s[i] - center) * (s[i].sum(-1) != 0)[..., None]
    for bottom, top, target in ((0, 1, np.array([0.0, 0.0, 1.0])), (4, 8, np.array([1.0, 0.0, 0.0]))):
        vec = s[0, 0, top] - s[0, 0, bottom]
        axis = np.cross(vec, target)
        angle = np.arccos(np.clip(vec @ target / np.linalg.norm(vec), -1, 1))
        u = axis / np.linalg.norm(axis)
        k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
        rotation = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
        s = s @ rotation.T
    return s


def test_pre_normalization_matches_the_official_offline_steps():
    x = make_clips(n=4, t=16, pad=3).double()
    x[0, ..., 1] = x[0, ..., 0].flip(2) * 1.5  # a second person
    x[1, ..., 1] = 0
    x[1, :, 6:12, :, 1] = x[1, :, :6, :, 0] * 0.5  # a body entering late
    x[2, :, 5] = 0  # a frame with nobody inside the clip
    x[3, :, 9:, :, 1] = 0
    x[3, ..., 1] += 0.3 * (x[3, ..., 1] != 0)
    out = pre_normalization(x)
    for i in range(x.shape[0]):
        ref = _official_pre_normalization(x[i].permute(3, 1, 2, 0).numpy())
        assert np.allclose(out[i].permute(3, 1, 2, 0).numpy(), ref, atol=1e-9), i
    shoulders = out[:, :, 0, 8, 0] - out[:, :, 0, 4, 0]  # right - left shoulder along +x
    assert shoulders[:, 1:].abs().max() < 1e-9 and (shoulders[:, 0] > 0).all()
    assert out[:, :, :, 1, 0].abs().max() == 0, "person 0's spine-middle joint is the origin of every frame"


def test_logits_are_invariant_to_a_global_rotation_and_translation():
    x = body_like_clips()
    moved = torch.einsum("ij,njtvm->nitvm", random_rotation(3), x) + torch.tensor([0.4, -1.1, 2.0], dtype=x.dtype)[
        None, :, None, None, None
    ]
    moved = moved * x.ne(0).any(dim=1, keepdim=True)  # absent joints stay zero
    for name in ("agcn", "agcn-2s"):
        model = _loaded(name).double()
        with torch.no_grad():
            a, b = model(x), model(moved)
        assert torch.allclose(a, b, atol=1e-8 * a.abs().max()), name


def test_input_gradient_is_finite_nonzero_on_the_clip_and_zero_on_padding():
    model = _loaded("agcn-2s")
    for p in model.parameters():
        p.requires_grad_(False)
    x = make_clips(n=3, t=12, pad=3).requires_grad_(True)
    logits = model(x)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3, 7])).backward()
    grad = x.grad
    assert torch.isfinite(grad).all()
    present = x.detach().ne(0).any(dim=1)  # (N, T, V, M)
    per_joint = grad.abs().sum(dim=1)
    assert (per_joint[present] > 0).float().mean() > 0.95
    assert per_joint[:, 9:].abs().sum() == 0, "zero padding is not an input of the pipeline"


def test_skipping_empty_persons_and_eval_mode_are_exact():
    model = _loaded("agcn-2s")
    x = make_clips(n=4, t=10)
    x[1, ..., 1] = x[1, ..., 0] * 0.7
    xa = x.clone().requires_grad_(True)
    fast = model(xa)
    fast.logsumexp(1).sum().backward()
    model.skip_empty_persons = False
    xb = x.clone().requires_grad_(True)
    slow = model(xb)
    slow.logsumexp(1).sum().backward()
    assert torch.allclose(fast, slow, atol=1e-5)
    present = x.ne(0).any(dim=1, keepdim=True).expand_as(x)
    assert torch.allclose(xa.grad[present], xb.grad[present], atol=1e-5)
    with torch.no_grad():
        assert torch.equal(model(x), slow.detach()), "eval mode is deterministic"


def test_a_few_training_steps_run_with_finite_gradients():
    torch.manual_seed(0)
    model = create_victim("agcn", num_classes=5, layout=NTU25)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = training_losses(model, make_clips(n=4, t=8, seed=1), torch.tensor([0, 1, 2, 3]), optimizer)
    assert min(losses[1:]) < losses[0]


def test_two_stream_is_the_sum_of_the_joint_and_bone_victims():
    from robustbench_skel.layout import NTU25
    from robustbench_skel.victim import create_victim

    from conftest import make_clips

    torch.manual_seed(0)
    joint = create_victim("agcn", 12, NTU25).eval()
    bone = create_victim("agcn-bone", 12, NTU25).eval()
    both = create_victim("agcn-2s", 12, NTU25).eval()
    both.joint.load_state_dict(joint.state_dict())
    both.bone.load_state_dict(bone.state_dict())
    x = make_clips(n=2, t=12)
    with torch.no_grad():
        assert torch.allclose(both(x), joint(x) + bone(x), atol=1e-5)
