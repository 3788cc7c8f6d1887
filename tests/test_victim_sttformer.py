"""STTFormer and TASAR's STTFormer: strict loading, the test-time pipeline, persons, training.

One forward of the official configuration costs ~38 GMACs per clip (the pipeline always resizes to
120 frames), so only the manifest and gradient tests use it; the pipeline properties use the same class
built for 12 frames (2 tuples), which changes nothing but the length the clips are resized to.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import robustbench_skel.victims.sttformer  # noqa: F401  (registers the victims)
from robustbench_skel.hparams import constructor_arguments
from robustbench_skel.layout import NTU25
from robustbench_skel.victim import create_victim, model_card
from robustbench_skel.victims.sttformer import fit_frames

from conftest import load_manifest, make_clips, random_state_dict, training_losses


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared, busy CPU two threads spin-wait and run many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _small(name: str = "sttformer", classes: int = 7) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {"num_frames": 12} if name == "sttformer" else {}
    return create_victim(name, num_classes=classes, layout=NTU25, **kwargs).eval()


def _present(x: torch.Tensor) -> torch.Tensor:
    return x.ne(0).any(dim=1, keepdim=True).any(dim=3, keepdim=True).expand_as(x)


@pytest.mark.parametrize("name,manifest_name,rows", [("sttformer", "sttformer", 20), ("sttformer-tasar", "tasar_sttformer", 10)])
def test_official_manifest_loads_strictly_with_the_listed_output(name, manifest_name, rows):
    manifest = load_manifest(manifest_name)
    model = create_victim(name, num_classes=manifest["output_shape"][1], layout=NTU25)
    state = random_state_dict(manifest)
    assert list(model.state_dict()) == list(state), "key order should follow the official model"
    assert model.state_dict()["blocks.0.pes.pe"].shape == (1, 64, rows, 150)
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    model.eval()
    x = torch.randn(*manifest["input_shape"])
    x[..., 1] = 0  # empty second persons: computed once
    with torch.no_grad():
        assert list(model(x).shape) == manifest["output_shape"]


def test_position_table_encodes_the_joint_within_the_tuple():
    pe = create_victim("sttformer", num_classes=3, layout=NTU25).blocks[2].pes.pe  # (1, 64, 20, 150)
    assert torch.equal(pe, pe[:, :, :1].expand_as(pe)), "every tuple row is the same"
    assert torch.allclose(pe[0, 0::2, 0, 0], torch.zeros(32)) and torch.allclose(pe[0, 1::2, 0, 0], torch.ones(32))
    assert torch.allclose(pe[0, 0, 0, 7], torch.sin(torch.tensor(7.0)))


def test_raw_clips_give_finite_logits_and_input_gradients_on_present_joints():
    model = create_victim("sttformer", num_classes=7, layout=NTU25).eval()
    x = make_clips(n=1, t=12).requires_grad_(True)
    logits = model(x)
    assert logits.shape == (1, 7) and torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    grad = x.grad
    assert torch.isfinite(grad).all()
    present = _present(x.detach())
    assert (grad.abs().sum(dim=1)[present[:, 0]] > 0).all(), "every present joint gets a gradient"
    assert grad[~present].abs().sum() == 0


def test_logits_ignore_global_translation_and_padding_length():
    model = _small()
    x = make_clips(n=3, t=20, pad=5)
    shift = torch.tensor([0.7, -0.3, 1.2])[None, :, None, None, None] * _present(x)
    padded = F.pad(x, (0, 0, 0, 0, 0, 9))
    with torch.no_grad():
        base, moved, longer = model(x), model(x + shift), model(padded)
    # A random STTFormer (no softmax in its attention) gives logits near 1e18; float32 rounding of the centred
    # input then differs by about 1e-5 of that scale on some CPUs, so compare relative to the logits' size.
    scale = base.abs().max().clamp_min(1.0)
    assert (base - moved).abs().max() / scale < 1e-4
    assert (base - longer).abs().max() / scale < 1e-5
    with torch.no_grad():
        assert torch.equal(model(x), base), "eval mode is deterministic"


def test_skipping_empty_persons_gives_the_same_logits_and_gradients():
    model = _small()
    x = make_clips(n=4, t=14)
    x[0, ..., 1] = x[0, ..., 0] * 0.5  # one clip with a real second person
    grads, outs = [], []
    for skip in (True, False):
        model.skip_empty_persons = skip
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        out.logsumexp(1).sum().backward()
        outs.append(out.detach())
        grads.append(xg.grad)
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    present = _present(x)
    assert torch.allclose(grads[0][present], grads[1][present], atol=1e-6)


def test_tasar_variant_feeds_clips_as_stored_padded_to_60_frames():
    model = _small("sttformer-tasar")
    x = make_clips(n=1, t=48, pad=8)
    x[..., 1] = x[..., 0] * 0.5
    shifted = x + 0.5 * _present(x)
    with torch.no_grad():
        base = model(x)  # 48 frames
        out = model(torch.cat([F.pad(x, (0, 0, 0, 0, 0, 12)), F.pad(shifted, (0, 0, 0, 0, 0, 12))]))  # stored with 60 frames
    assert torch.allclose(base[0], out[0], atol=1e-5)
    assert not torch.allclose(out[0], out[1], atol=1e-3), "TASAR does not centre the clips"
    padded = F.pad(x, (0, 0, 0, 0, 0, 40))  # 88 frames of which 40 valid: the first 60 are kept
    assert torch.equal(fit_frames(padded, 60), padded[:, :, :60])
    long = make_clips(n=1, t=90, pad=0)  # 90 valid frames: linearly resized to 60
    flat = long.permute(0, 3, 4, 1, 2).reshape(1, -1, 90)
    expected = F.interpolate(flat, size=60, mode="linear", align_corners=False).reshape(1, 25, 2, 3, 60).permute(0, 3, 4, 1, 2)
    assert torch.allclose(fit_frames(long, 60), expected, atol=1e-6)


def test_training_steps_run_with_finite_gradients_and_lower_the_loss():
    torch.manual_seed(0)
    model = create_victim("sttformer", num_classes=2, layout=NTU25, num_frames=6).train()
    x, y = make_clips(n=4, t=16, m=1, pad=3, seed=1), torch.arange(4) % 2  # one person slot: half the cost
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = training_losses(model, x, y, optimizer, steps=4)
    assert min(losses[1:]) < losses[0]


@pytest.mark.parametrize("name", ["sttformer", "sttformer-tasar"])
def test_card_matches_the_model_and_constructor_arguments_round_trip(name):
    card = model_card(name)
    model = create_victim(name, num_classes=60, layout=NTU25)
    assert card["name"] == name and card["parameters"]["ntu60"] == sum(p.numel() for p in model.parameters())
    assert card["official_repository"]["commit"] and set(card.get("pretrained", {})) <= {"synth"}  # test_pretrained.py checks the files
    args = constructor_arguments(model)
    assert args["num_frames"] == (120 if name == "sttformer" else 60)
    rebuilt = create_victim(name, **args)
    assert all(a.shape == b.shape for a, b in zip(rebuilt.state_dict().values(), model.state_dict().values()))
