"""ST-GCN: the official state_dict loads strictly, and our speed-ups do not change the function."""

from __future__ import annotations

import torch

from robustbench_skel.layout import NTU25, HDM05_25
from robustbench_skel.victim import create_victim
from robustbench_skel.victims.stgcn import spatial_partition

from conftest import load_manifest, make_clips, random_state_dict


def test_official_manifest_loads_strictly_with_the_listed_output():
    manifest = load_manifest("stgcn")
    model = create_victim("stgcn", num_classes=manifest["output_shape"][1], layout=NTU25)
    state = random_state_dict(manifest)
    assert list(model.state_dict()) == list(state), "key order should follow the official model"
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    model.eval()
    x = torch.randn(*manifest["input_shape"][:2], 40, *manifest["input_shape"][3:])
    assert list(model(x).shape) == manifest["output_shape"]


def test_tasar_hdm05_variant_loads_with_the_hdm05_graph():
    manifest = load_manifest("tasar_stgcn_hdm05")
    model = create_victim("stgcn", num_classes=manifest["output_shape"][1], layout=HDM05_25, num_persons=1)
    model.load_state_dict(random_state_dict(manifest), strict=True)
    model.eval()
    assert list(model(torch.randn(*manifest["input_shape"])).shape) == manifest["output_shape"]


def test_partition_matches_the_official_structure():
    a = spatial_partition(NTU25)
    assert a.shape == (3, 25, 25)
    # column-normalised: every joint's incoming weights over all subsets sum to one
    assert torch.allclose(torch.from_numpy(a.sum(axis=(0, 1))), torch.ones(25))
    assert (a[0].diagonal() > 0).all()


def test_skipping_empty_persons_gives_the_same_logits_and_gradients():
    torch.manual_seed(0)
    model = create_victim("stgcn", num_classes=7, layout=NTU25).eval()
    x = make_clips(n=5, t=16)
    x[0, ..., 1] = x[0, ..., 0] * 0.5  # one clip with a real second person
    with torch.no_grad():
        fast = model(x)
        model.skip_empty_persons = False
        slow = model(x)
    assert torch.allclose(fast, slow, atol=1e-5)
    model.skip_empty_persons = True
    xg = x.clone().requires_grad_(True)
    model(xg).logsumexp(1).sum().backward()
    model.skip_empty_persons = False
    xs = x.clone().requires_grad_(True)
    model(xs).logsumexp(1).sum().backward()
    valid = x.ne(0).any(dim=1, keepdim=True).any(dim=3, keepdim=True).expand_as(x)
    assert torch.allclose(xg.grad[valid], xs.grad[valid], atol=1e-5)
