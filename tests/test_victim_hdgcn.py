"""HD-GCN: strict loading with the aliased conv_d keys, the hierarchy graphs, CTR-GCN's pipeline."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import robustbench_skel.victims.hdgcn  # noqa: F401  (registers the victim)
from robustbench_skel.layout import NTU25
from robustbench_skel.victim import create_victim
from robustbench_skel.victims.hdgcn import hierarchical_graph, hierarchy_groups

from conftest import load_manifest, make_clips, random_state_dict


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared, busy CPU two threads spin-wait and run many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(**kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_victim("hdgcn", num_classes=7, layout=NTU25, **kwargs).eval()


def _present(x: torch.Tensor) -> torch.Tensor:
    return x.ne(0).any(dim=1, keepdim=True).any(dim=3, keepdim=True).expand_as(x)


def test_official_manifest_loads_strictly_with_the_aliased_keys():
    manifest = load_manifest("hdgcn")
    model = create_victim("hdgcn", num_classes=manifest["output_shape"][1], layout=NTU25)
    state = random_state_dict(manifest)
    assert list(model.state_dict()) == list(state), "key order should follow the official model"
    assert sum(".gcn1.conv_d." in k for k in state) == 270
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    assert model.l3.gcn1.conv_d is model.l3.gcn1.conv[5], "conv_d is the last layer's modules, tied"
    model.eval()
    n, c, t, v, m = manifest["input_shape"]
    with torch.no_grad():
        assert list(model(torch.randn(n, c, 20, v, m)).shape) == manifest["output_shape"]
    # a file saved without the alias loads too
    bare = {k: w for k, w in state.items() if ".gcn1.conv_d." not in k}
    model.load_state_dict(model.remap_checkpoint_keys(bare), strict=True)


@pytest.mark.parametrize("com", [1, 2, 21])
def test_hierarchy_partitions_the_joints_and_keeps_the_key_shapes(com):
    groups = hierarchy_groups(com)
    assert groups[0] == [com - 1] and sorted(sum(groups, [])) == list(range(25))
    a = hierarchical_graph(com)
    assert a.shape == (6, 3, 25, 25)
    for layer, (inner, outer) in enumerate(zip(groups[:-1], groups[1:])):
        assert torch.equal(torch.from_numpy(a[layer, 0]).diagonal().nonzero().flatten(), torch.tensor(sorted(inner + outer)))
        forward, backward = torch.from_numpy(a[layer, 1]), torch.from_numpy(a[layer, 2])
        assert torch.allclose(forward.sum(0)[inner], torch.ones(len(inner)))  # column-normalised, inner -> outer
        assert torch.allclose(backward.sum(0)[outer], torch.ones(len(outer)))
        assert forward[outer][:, inner].gt(0).all() and forward.gt(0).sum() == len(inner) * len(outer)
    model = create_victim("hdgcn", num_classes=60, layout=NTU25, com=com)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: torch.Size(s) for k, s, _ in load_manifest("hdgcn")["state_dict"]}
    with pytest.raises(ValueError):
        hierarchy_groups(3)


def test_raw_clips_give_finite_logits_and_gradients_on_present_joints_only():
    model = _model()
    x = make_clips(n=2, t=14, pad=3).requires_grad_(True)
    logits = model(x)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    present = _present(x.detach())
    assert torch.isfinite(x.grad).all()
    assert (x.grad[present] != 0).float().mean() > 0.95
    assert (x.grad[~present] == 0).all()


def test_logits_ignore_translation_and_padding_and_empty_person_skipping():
    model = _model(window=32)
    x = make_clips(n=3, t=18, pad=4)
    x[1, ..., 1] = x[1, ..., 0] * 0.8
    shift = torch.tensor([-0.4, 0.9, 2.0])[None, :, None, None, None]
    with torch.no_grad():
        ref = model(x)
        assert torch.allclose(model((x + shift) * _present(x)), ref, atol=1e-4)
        assert torch.allclose(model(torch.cat([x, torch.zeros(3, 3, 9, 25, 2)], dim=2)), ref, atol=1e-5)
        assert torch.equal(model(x), ref)
        model.skip_empty_persons = False
        assert torch.allclose(model(x), ref, atol=1e-5)


def test_training_steps_run_with_finite_gradients():
    torch.manual_seed(0)
    model = create_victim("hdgcn", num_classes=2, layout=NTU25, window=8).train()
    x, y = make_clips(n=4, t=14, seed=3), torch.arange(4) % 2
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        assert model.l2.gcn1.conv[5][0][0].weight.grad is model.l2.gcn1.conv_d[0][0].weight.grad
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[1:]) < losses[0]
