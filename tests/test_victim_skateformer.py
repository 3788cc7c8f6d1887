"""SkateFormer and TASAR's SkateFormer: strict loading, valid_crop_uniform, joint partition, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import robustbench_skel.victims.skateformer  # noqa: F401  (registers the victims)
from robustbench_skel.hparams import constructor_arguments
from robustbench_skel.layout import NTU25
from robustbench_skel.victim import create_victim, model_card
from robustbench_skel.victims.skateformer import PARTITION_ORDER, PartitionAttention, UniformMaskDropout, valid_crop_uniform

from conftest import load_manifest, make_clips, random_state_dict, training_losses


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared, busy CPU two threads spin-wait and run many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(name: str = "skateformer", classes: int = 7) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_victim(name, num_classes=classes, layout=NTU25).eval()


def _present(x: torch.Tensor) -> torch.Tensor:
    return x.ne(0).any(dim=1, keepdim=True).any(dim=3, keepdim=True).expand_as(x)


@pytest.mark.parametrize("name,manifest_name", [("skateformer", "skateformer"), ("skateformer-tasar", "tasar_skateformer")])
def test_official_manifest_loads_strictly_with_the_listed_output(name, manifest_name):
    manifest = load_manifest(manifest_name)
    model = create_victim(name, num_classes=manifest["output_shape"][1], layout=NTU25)
    state = random_state_dict(manifest)
    assert list(model.state_dict()) == list(state), "key order should follow the official model"
    assert torch.equal(model.state_dict()["stages.0.blocks.0.transformer.attention.0.relative_position_index"][3, 1], torch.tensor(9))
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    model.eval()
    n, c, t, v, m = manifest["input_shape"]  # the official network input: 64 frames, 24 partition-ordered joints
    with torch.no_grad():
        assert list(model.network(torch.randn(n, c, t, v, m), torch.rand(n, t) * 2 - 1).shape) == manifest["output_shape"]
        assert list(model(torch.randn(n, c, 30, 25, m)).shape) == manifest["output_shape"]  # raw 25-joint clips


def _official_indices(valid: int, window: int = 64, p: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The official test rule, in numpy: frame pairs, blend weights and index_t for one clip."""
    cropped = min(max(int(np.floor(valid * p)), window), valid)
    bias = int((1 - p) * valid / 2)
    if cropped >= window:
        inds = np.array([i * cropped // window for i in range(window)]) + bias
        return inds, inds, np.zeros(window)
    src = np.maximum((np.arange(window) + 0.5) * cropped / window - 0.5, 0)
    lo = np.floor(src).astype(int)
    return lo + bias, np.minimum(lo + 1, cropped - 1) + bias, src - lo


@pytest.mark.parametrize("valid", [1, 10, 33, 39, 40, 48, 63, 64, 67, 100, 250])
def test_valid_crop_uniform_follows_the_official_test_rule(valid):
    t = max(valid, 260)
    x = torch.zeros(1, 3, t, 25, 2)
    x[:, :, :valid] = torch.randn(1, 3, valid, 25, 2)
    frames, index_t = valid_crop_uniform(x)
    lo, hi, w = _official_indices(valid)
    padded = F.pad(x, (0, 0, 0, 0, 0, 1))[0].numpy()
    expected = padded[:, lo] * (1 - w)[None, :, None, None] + padded[:, hi] * w[None, :, None, None]
    assert np.allclose(frames[0].numpy(), expected, atol=1e-6)
    assert np.allclose(index_t[0].numpy(), 2 * (lo + w * (hi - lo)) / valid - 1, atol=1e-6)
    if 40 <= valid < 64:  # official quirk: the crop starts one frame late and its last index is the padding frame
        assert lo[0] == 1 and hi[-1] == valid and frames[0, :, -1].abs().sum() == 0


def test_partition_order_drops_the_spine_shoulder_and_groups_body_parts():
    assert len(PARTITION_ORDER) == 24 and 20 not in PARTITION_ORDER and sorted(PARTITION_ORDER) == [j for j in range(25) if j != 20]
    assert PARTITION_ORDER[:4] == (6, 7, 21, 22) and PARTITION_ORDER[-4:] == (1, 2, 0, 3)


def test_type1_relative_bias_tiles_the_frame_table_like_the_official_code():
    attention = PartitionAttention(num_heads=4, size=(8, 4), far_joints=False, attn_drop=0.0)
    bias = attention.relative_bias()  # (4, 32, 32); token i = frame * 4 + joint
    table = attention.relative_position_bias_table
    i = torch.arange(32)
    expected = table[(i[:, None] % 8) - (i[None, :] % 8) + 7].permute(2, 0, 1)
    assert torch.equal(bias, expected)


def test_raw_clips_give_finite_logits_and_input_gradients():
    model = _model()
    x = make_clips(n=2, t=12).requires_grad_(True)
    logits = model(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    grad = x.grad.abs().sum(dim=1)  # (N, T, V, M)
    present = _present(x.detach())[:, 0]
    assert torch.isfinite(x.grad).all()
    used = present.clone()
    used[:, :, 20] = False  # the spine shoulder is dropped by the partition order
    assert (grad[used] > 0).all() and grad[:, :, 20].sum() == 0 and grad[~present].sum() == 0


def test_logits_ignore_global_translation_and_padding_length_and_eval_is_deterministic():
    model = _model()
    x = make_clips(n=2, t=50, pad=4)
    x[1, :, 30:] = 0  # valid lengths 46 and 30
    shift = torch.tensor([0.4, 1.1, -0.6])[None, :, None, None, None] * _present(x)
    with torch.no_grad():
        base = model(x)
        assert torch.allclose(base, model(x + shift), atol=1e-4)
        assert torch.allclose(base, model(F.pad(x, (0, 0, 0, 0, 0, 20))), atol=1e-5)
        assert torch.equal(base, model(x))


def test_tasar_variant_pads_to_64_frames_with_a_fixed_index():
    model = _model("skateformer-tasar")
    x = make_clips(n=1, t=60, pad=5)
    x, index_t = model.pipeline(x)
    assert x.shape == (1, 3, 64, 24, 2) and x[:, :, 55:].abs().sum() == 0
    assert torch.allclose(index_t[0], torch.arange(64) / 32 - 1)
    clip = make_clips(n=1, t=60, pad=5)
    with torch.no_grad():
        assert torch.allclose(model(clip), model(F.pad(clip, (0, 0, 0, 0, 0, 4))), atol=1e-5)
        assert not torch.allclose(model(clip), model(clip + 0.5 * _present(clip)), atol=1e-3), "TASAR does not centre"


def test_training_steps_run_with_finite_gradients_and_lower_the_loss():
    torch.manual_seed(0)
    model = create_victim("skateformer", num_classes=2, layout=NTU25).train()  # official dropouts on
    x, y = make_clips(n=2, t=20, pad=3, seed=2), torch.arange(2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = training_losses(model, x, y, optimizer, steps=3)
    assert min(losses[1:]) < losses[0]


@pytest.mark.parametrize("name", ["skateformer", "skateformer-tasar"])
def test_card_matches_the_model_and_constructor_arguments_round_trip(name):
    card = model_card(name)
    model = create_victim(name, num_classes=60, layout=NTU25)
    assert card["name"] == name and card["parameters"]["ntu60"] == sum(p.numel() for p in model.parameters())
    assert card["official_repository"]["commit"] and set(card.get("pretrained", {})) <= {"synth"}  # test_pretrained.py checks the files
    args = constructor_arguments(model)
    assert args["type_1_size"] == ((8, 8) if name == "skateformer" else (8, 4))
    rebuilt = create_victim(name, **args)
    assert rebuilt.type_3_size == model.type_3_size and list(rebuilt.state_dict()) == list(model.state_dict())


def test_uniform_mask_dropout_matches_dropout_in_distribution_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop = UniformMaskDropout(0.5)
    x = torch.ones(400, 500, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert set(torch.unique(y).tolist()) == {0.0, 2.0}, "kept entries are scaled by 1 / (1 - p)"
    assert abs(kept.float().mean().item() - 0.5) < 0.01
    y.sum().backward()
    assert torch.equal(x.grad, y.detach()), "the gradient flows only through the kept entries, scaled alike"
    drop.eval()
    assert drop(x) is x
    assert UniformMaskDropout(0.0).train()(x) is x
