"""CTR-GCN, FR-Head and TASAR's HDM05 CTR-GCN: strict loading, the CTR-GCN test-time pipeline, persons."""

from __future__ import annotations

import logging

import pytest
import torch

import robustbench_skel.victims.ctrgcn  # noqa: F401  (registers the victims)
import robustbench_skel.victims.frhead  # noqa: F401
from robustbench_skel.errors import UserError
from robustbench_skel.layout import HDM05_25, NTU25
from robustbench_skel.victim import create_victim, load_victim
from robustbench_skel.victims.ctrgcn import spatial_graph

from conftest import load_manifest, make_clips, random_state_dict, training_losses


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared, busy CPU two threads spin-wait and run many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CASES = [("ctrgcn", "ctrgcn", NTU25), ("frhead", "frhead", NTU25), ("ctrgcn-tasar-hdm05", "tasar_ctrgcn_hdm05", HDM05_25)]


def _model(name: str = "ctrgcn", classes: int = 7, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_victim(name, num_classes=classes, layout=NTU25, **kwargs).eval()


def _present(x: torch.Tensor) -> torch.Tensor:
    return x.ne(0).any(dim=1, keepdim=True).any(dim=3, keepdim=True).expand_as(x)


@pytest.mark.parametrize("name,manifest_name,layout", CASES)
def test_official_manifest_loads_strictly_with_the_listed_output(name, manifest_name, layout):
    manifest = load_manifest(manifest_name)
    model = create_victim(name, num_classes=manifest["output_shape"][1], layout=layout)
    state = random_state_dict(manifest)
    assert list(model.state_dict()) == list(state), "key order should follow the official model"
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    model.eval()
    n, c, t, v, m = manifest["input_shape"]
    with torch.no_grad():
        assert list(model(torch.randn(n, c, 20, v, m)).shape) == manifest["output_shape"]


def test_graph_is_the_spatial_ntu_graph_and_not_saved():
    a = spatial_graph(NTU25)
    assert a.shape == (3, 25, 25)
    assert (a[0] == torch.eye(25).numpy()).all()
    for sub in (a[1], a[2]):  # column-normalised over the 24 edges, inward and outward
        assert (sub > 0).sum() == 24 and set(sub.sum(axis=0).round(5)) <= {0.0, 1.0}
    model = _model()
    assert not any(k.endswith(".A") for k in model.state_dict())
    assert torch.allclose(model.l1.gcn1.PA, torch.from_numpy(a))


def test_frhead_drops_training_only_heads_and_takes_its_class_count(tmp_path, caplog):
    manifest = load_manifest("frhead")
    base = random_state_dict(manifest)
    gen = torch.Generator().manual_seed(1)
    extra = {k: torch.randn(s, generator=gen) for k, s, _ in manifest["training_only_state_dict"]}
    state = {k: v for k, v in base.items() if not k.startswith("fc.")} | extra
    for key, shape in manifest["released_checkpoint_num_class_120_diff"]:  # released NTU-60 files are 120-way
        state[key] = torch.randn(shape, generator=gen)
    path = tmp_path / "runs.pt"
    torch.save(state, path)
    with caplog.at_level(logging.INFO, logger="robustbench_skel.victims.frhead"):
        loaded = load_victim("frhead", num_classes=60, layout=NTU25, dataset="ntu60", checkpoint=path)
    notes = [r for r in caplog.records if r.name == "robustbench_skel.victims.frhead"]
    assert len(notes) == 1 and f"dropped {len(extra)}" in notes[0].getMessage()
    assert loaded.model.num_classes == 120 and loaded.num_parameters == manifest["num_parameters"] + 60 * 257
    with torch.no_grad():
        assert loaded.model(make_clips(n=2)).shape == (2, 120)


def test_raw_clips_give_finite_logits_and_gradients_on_present_joints_only():
    model = _model()
    x = make_clips(n=3, t=14, pad=3).requires_grad_(True)
    logits = model(x)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    present = _present(x.detach())
    assert torch.isfinite(x.grad).all()
    assert (x.grad[present] != 0).float().mean() > 0.95
    assert (x.grad[~present] == 0).all()


def test_logits_ignore_a_global_translation_and_the_padding_length():
    model = _model()
    x = make_clips(n=3, t=20, pad=5)
    x[1, ..., 1] = x[1, ..., 0] * 0.8  # a second actor
    shift = torch.tensor([0.7, -0.3, 1.5])[None, :, None, None, None]
    moved = (x + shift) * _present(x)
    padded = torch.cat([x, torch.zeros(3, 3, 17, 25, 2)], dim=2)
    with torch.no_grad():
        ref = model(x)
        assert torch.allclose(model(moved), ref, atol=1e-4)
        assert torch.allclose(model(padded), ref, atol=1e-5)
        assert torch.equal(model(x), ref), "eval mode should be deterministic"


def test_skipping_empty_persons_and_per_slot_data_bn_match_the_official_order():
    model = _model()
    x = make_clips(n=4, t=12)
    x[0, ..., 1] = x[0, ..., 0] * 0.5
    with torch.no_grad():
        bn = model.data_bn
        for tensor, low, high in ((bn.running_mean, -1, 1), (bn.running_var, 0.5, 2), (bn.weight, 0.5, 2), (bn.bias, -1, 1)):
            tensor.uniform_(low, high)  # distinct statistics per person slot
        fast = model(x)
        model.skip_empty_persons = False
        slow = model(x)
        # official order: data_bn over (N, M*V*C, T), then persons folded into the batch
        z = model.pipeline(x)
        n, c, t, v, m = z.shape
        z = bn(z.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)).view(n, m, v, c, t).permute(0, 1, 3, 4, 2)
        official = model.fc(model.person_features(z.reshape(n * m, c, t, v)).view(n, m, -1).mean(1))
    assert torch.allclose(fast, slow, atol=1e-5)
    assert torch.allclose(slow, official, atol=1e-5)


def test_tasar_hdm05_variant_feeds_clips_as_they_are():
    with pytest.raises(UserError):
        create_victim("ctrgcn-tasar-hdm05", num_classes=65, layout=NTU25)
    torch.manual_seed(0)
    model = create_victim("ctrgcn-tasar-hdm05", num_classes=65, layout=HDM05_25).eval()
    assert model.num_persons == 1 and model.data_bn.num_features == 75
    assert torch.allclose(model.l1.gcn1.PA, torch.from_numpy(spatial_graph(NTU25)))  # TASAR keeps the NTU graph
    x = torch.randn(2, 3, 15, 25, 1)
    with torch.no_grad():
        assert torch.equal(model(x), model.network(x))
        assert not torch.allclose(model(x + 1.0), model(x), atol=1e-3)  # no centring


def test_training_steps_run_with_finite_gradients_and_reduce_the_loss():
    torch.manual_seed(0)
    model = create_victim("frhead", num_classes=2, layout=NTU25, window=12).train()
    x, y = make_clips(n=4, t=14, seed=3), torch.arange(4) % 2
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = training_losses(model, x, y, opt, steps=4)
    assert min(losses[1:]) < losses[0]
