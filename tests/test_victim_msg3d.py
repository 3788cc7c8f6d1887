"""MS-G3D (``msg3d``, ``msg3d-2s``): official state_dict, graphs, the NTU normalisation in forward, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robustbench_skel.victims.msg3d  # noqa: F401  (registers msg3d, msg3d-2s)
from robustbench_skel import preprocess
from robustbench_skel.layout import NTU25
from robustbench_skel.victim import create_victim
from robustbench_skel.victims.agcn import pre_normalization
from robustbench_skel.victims.msg3d import UnfoldTemporalWindows, k_hop_adjacency, multiscale_adjacency, spacetime_adjacency

from conftest import load_manifest, make_clips, random_state_dict, training_losses


@pytest.fixture(autouse=True)
def _single_thread():
    """These models are small at test sizes; one thread avoids oversubscribing a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _loaded(name: str = "msg3d") -> torch.nn.Module:
    model = create_victim(name, num_classes=60, layout=NTU25)
    manifest = load_manifest("msg3d")
    state = random_state_dict(manifest)
    if name.endswith("-2s"):
        streams = {"joint": state, "bone": random_state_dict(manifest, seed=1)}
        state = {f"{part}.{k}": v for part, sd in streams.items() for k, v in sd.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def test_official_manifest_loads_strictly_with_the_listed_output():
    manifest = load_manifest("msg3d")
    model = create_victim("msg3d", num_classes=manifest["output_shape"][1], layout=NTU25)
    state = random_state_dict(manifest)
    assert list(model.state_dict()) == list(state), "key order should follow the official model"
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    model.eval()
    x = torch.randn(*manifest["input_shape"][:2], 9, *manifest["input_shape"][3:])
    assert list(model(x).shape) == manifest["output_shape"]


def test_two_stream_is_the_sum_of_a_joint_and_a_bone_network():
    model = _loaded("msg3d-2s")
    assert model.checkpoint_parts == ("joint", "bone") and model.head_key == "joint.fc.bias"
    x = make_clips(n=2, t=8)
    with torch.no_grad():
        joints = pre_normalization(x)
        expected = model.joint.network(joints) + model.bone.network(preprocess.bone_stream(joints))
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_disentangled_k_hop_graphs():
    a = NTU25.adjacency().astype(np.float64)
    assert np.array_equal(k_hop_adjacency(a, 0), np.eye(25))
    assert np.array_equal(k_hop_adjacency(a, 1), a + np.eye(25))
    off = [k_hop_adjacency(a, k) - np.eye(25) for k in range(1, 13)]
    total = sum(off)
    assert total.max() == 1 and (total + np.eye(25)).min() == 1, "every pair at exactly one hop distance (diameter <= 12)"
    powers = multiscale_adjacency(a, 13)
    assert powers.shape == (325, 25) and np.allclose(powers[25:50], powers[25:50].T)
    ones = np.ones(25)  # D^-1/2 (A_k + I) D^-1/2: rows of (A_k + I) sum to the degree
    assert np.allclose((powers[25:50] * np.sqrt(np.outer(a.sum(1) + 1, a.sum(1) + 1))) @ ones, a.sum(1) + 1)
    g3d = multiscale_adjacency(spacetime_adjacency(a, 3), 6)
    assert g3d.shape == (450, 75)
    assert np.array_equal(k_hop_adjacency(spacetime_adjacency(a, 3), 1) > 0, spacetime_adjacency(a, 3) > 0)


@pytest.mark.parametrize("window,stride", [(3, 1), (5, 1), (3, 2), (5, 2)])
def test_temporal_windows_match_an_unfold_over_time(window, stride):
    x = torch.randn(2, 4, 11, 25)
    pad = (window - 1) // 2
    cols = nn.Unfold((window, 1), stride=(stride, 1), padding=(pad, 0))(x)  # (N, C*W, T'*V)
    ref = cols.view(2, 4, window, -1, 25).permute(0, 1, 3, 2, 4).reshape(2, 4, -1, window * 25)
    assert torch.equal(UnfoldTemporalWindows(window, stride)(x), ref)


def test_logits_are_invariant_to_a_global_rotation_and_translation():
    from test_victim_agcn import body_like_clips, random_rotation

    x = body_like_clips(n=2, t=8, pad=2)
    moved = torch.einsum("ij,njtvm->nitvm", random_rotation(5), x) - torch.tensor([1.0, 0.2, -3.0], dtype=x.dtype)[
        None, :, None, None, None
    ]
    moved = moved * x.ne(0).any(dim=1, keepdim=True)
    model = _loaded("msg3d-2s").double()
    with torch.no_grad():
        a, b = model(x), model(moved)
    assert torch.allclose(a, b, atol=1e-8 * a.abs().max())


def test_input_gradient_skipping_and_determinism():
    model = _loaded("msg3d")
    for p in model.parameters():
        p.requires_grad_(False)
    x = make_clips(n=3, t=9, pad=2)
    x[2, ..., 1] = x[2, ..., 0] * 0.6
    grads, outs = [], []
    for skip in (True, False):
        model.skip_empty_persons = skip
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        F.cross_entropy(out, torch.tensor([1, 2, 3])).backward()
        outs.append(out.detach())
        grads.append(xg.grad)
    assert torch.isfinite(outs[0]).all() and torch.allclose(outs[0], outs[1], atol=1e-5)
    present = x.ne(0).any(dim=1)
    assert torch.isfinite(grads[0]).all() and (grads[0].abs().sum(1)[present] > 0).float().mean() > 0.95
    assert grads[0][:, :, 7:].abs().sum() == 0, "zero padding is not an input of the pipeline"
    mask = present[:, None].expand_as(x)
    assert torch.allclose(grads[0][mask], grads[1][mask], atol=1e-5)
    with torch.no_grad():
        assert torch.equal(model(x), outs[1]), "eval mode is deterministic"


def test_a_few_training_steps_run_with_finite_gradients():
    torch.manual_seed(0)
    model = create_victim("msg3d", num_classes=4, layout=NTU25)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = training_losses(model, make_clips(n=4, t=6, seed=2), torch.tensor([0, 1, 2, 3]), optimizer)
    assert min(losses[1:]) < losses[0]
