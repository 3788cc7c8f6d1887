"""SGN: the official state_dict loads strictly, the per-sample pipeline matches SGN's data loader, any batch size works."""

from __future__ import annotations

import numpy as np
import torch

import robustbench_skel.victims.sgn  # noqa: F401  (registers the victim)
from robustbench_skel.layout import NTU25
from robustbench_skel.learn.profile import count_macs, count_parameters
from robustbench_skel.victim import create_victim, load_victim, model_card
from robustbench_skel.victims.sgn import sgn_segment_indices, sgn_sequence

from conftest import load_manifest, make_clips, random_state_dict, training_losses


def _model(num_classes: int = 7, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_victim("sgn", num_classes=num_classes, layout=NTU25).eval()


def _reference_sequence(clip: np.ndarray, seg: int = 20) -> np.ndarray:
    """SGN's test loader for one ``(3, T, 25, 2)`` clip, written after its description, segment centres."""
    c, t, v, m = clip.shape
    rows = clip.transpose(1, 3, 2, 0).reshape(t, m, v * c).copy()  # (T, person, 75), joint-major xyz
    present = np.abs(rows).sum(-1) > 0
    first = np.argmax(present[:, 0])
    origin = rows[first, 0, 3:6].copy()  # joint 2 of actor 1 in its first frame
    rows = (rows - np.tile(origin, v)) * present[..., None]
    seq = []
    for f in range(t):  # drop empty frames, one frame per present person
        seq += [rows[f, p] for p in range(m) if present[f, p]]
    seq = np.array(seq).reshape(-1, v * c)
    if len(seq) < seg:
        seq = np.concatenate([seq, np.zeros((seg - len(seq), v * c))])
    d = len(seq) // seg
    return seq[np.arange(seg) * d + d // 2]


def test_official_manifest_loads_strictly_with_the_listed_output():
    manifest = load_manifest("sgn")
    model = create_victim("sgn", num_classes=manifest["output_shape"][1], layout=NTU25)
    state = random_state_dict(manifest)
    assert list(model.state_dict()) == list(state), "key order should follow the official model"
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    model.eval()
    seq = torch.randn(8, *manifest["input_shape"][1:])  # the official (N, 20, 75) input, N need not be 160
    assert list(model.network(seq).shape) == [8, manifest["output_shape"][1]]
    assert list(model(make_clips(n=2, t=30)).shape) == [2, manifest["output_shape"][1]]


def test_sequence_matches_the_official_loader_for_one_and_two_persons():
    x = make_clips(n=4, t=60, pad=10, seed=1)
    x[1, ..., 1] = x[1, ..., 0].flip(1) * 0.9 + 0.1  # a second actor in every frame of clip 1
    x[2, :, 5:30, :, 1] = 0.2 + x[2, :, 5:30, :, 0]  # a second actor in frames 5-29 of clip 2
    x[3, :, 7:] = 0  # seven frames: zero-padded to 20
    got = sgn_sequence(x).numpy()
    for i in range(x.shape[0]):
        np.testing.assert_allclose(got[i], _reference_sequence(x[i].numpy()), atol=1e-5)


def test_segment_indices_follow_sub_seq():
    idx = sgn_segment_indices(torch.tensor([7, 20, 39, 40, 300]), 20)
    assert idx[0].tolist() == list(range(20)) and idx[1].tolist() == list(range(20))
    assert idx[2].tolist() == list(range(20))  # 39 // 20 = 1: the last 19 frames are never sampled
    assert idx[3].tolist() == [2 * i + 1 for i in range(20)]
    assert idx[4].tolist() == [15 * i + 7 for i in range(20)]


def test_any_batch_size_gives_the_same_per_sample_logits():
    model = _model(num_classes=60)
    seq = torch.randn(160, 20, 75)
    with torch.no_grad():
        full = model.network(seq)
        assert torch.allclose(model.network(seq[:1]), full[:1], atol=1e-4)
        assert torch.allclose(model.network(seq[5:8]), full[5:8], atol=1e-4)


def test_raw_clips_give_finite_logits_and_gradients_on_present_joints():
    model = _model()
    x = make_clips(n=3, t=40, pad=5).requires_grad_(True)
    logits = model(x)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    assert torch.isfinite(x.grad).all()
    present = x.detach().ne(0).any(dim=1)  # (N, T, V, M)
    assert x.grad.abs().sum() > 0 and (x.grad.abs().sum(dim=1)[present] > 0).float().mean() > 0.3
    assert x.grad[:, :, :, :, 1].abs().sum() == 0  # the empty slot is never sampled


def test_pipeline_invariances_and_determinism():
    model = _model()
    x = make_clips(n=3, t=45, pad=4, seed=2)
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(model(x), ref)
        shifted = x + torch.tensor([0.4, -0.2, 1.0])[None, :, None, None, None] * (x.ne(0).any(1, keepdim=True).any(3, keepdim=True))
        assert torch.allclose(model(shifted), ref, atol=1e-4)  # translated to the first frame's spine joint
        padded = torch.cat([x, torch.zeros(3, 3, 50, 25, 2)], dim=2)
        assert torch.allclose(model(padded), ref, atol=1e-5)  # empty frames are dropped


def test_training_steps_run_with_finite_gradients():
    torch.manual_seed(0)
    model = create_victim("sgn", num_classes=5, layout=NTU25).train()
    x, y = make_clips(n=4, t=30, seed=3), torch.arange(4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # the official optimizer
    losses = training_losses(model, x, y, opt, steps=5)
    assert losses[-1] < losses[0]


def test_card_matches_the_model():
    card = model_card("sgn")
    model = create_victim("sgn", num_classes=60, layout=NTU25)
    assert card["parameters"]["ntu60"] == count_parameters(model)
    assert card["macs"]["gmacs"] == round(count_macs(model, torch.zeros(card["macs"]["input_shape"]).normal_()) / 1e9, 2)


def _official_checkpoint(path, best):
    state = random_state_dict(load_manifest("sgn"))
    torch.save({"epoch": 80, "state_dict": state, "best": best, "monitor": "val_acc", "optimizer": {"state": {}, "param_groups": []}}, path)
    return state


def test_official_checkpoint_dict_loads(tmp_path):
    state = _official_checkpoint(tmp_path / "0_best.pth", best=89.0)
    loaded = load_victim("sgn", num_classes=60, layout=NTU25, dataset="ntu60", checkpoint=tmp_path / "0_best.pth")
    assert torch.equal(loaded.model.fc.weight, state["fc.weight"])


def test_official_checkpoint_with_a_tensor_best_loads(tmp_path):
    state = _official_checkpoint(tmp_path / "0_best.pth", best=torch.tensor([89.0]))
    loaded = load_victim("sgn", num_classes=60, layout=NTU25, dataset="ntu60", checkpoint=tmp_path / "0_best.pth")
    assert torch.equal(loaded.model.fc.weight, state["fc.weight"])
