"""FR-Head's training-only refinement heads: official shapes, the loss, and the train hook that uses them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import robustbench_skel.victims.ctrgcn  # noqa: F401  (registers the victims)
import robustbench_skel.victims.frhead  # noqa: F401
from robustbench_skel.learn import training
from robustbench_skel.datasets.base import SkeletonDataset
from robustbench_skel.layout import NTU25
from robustbench_skel.learn.training import TrainConfig, resume_path, train_victim, training_loss
from robustbench_skel.victim import create_victim, load_victim
from robustbench_skel.victims.frhead_refinement import LEVELS, PrototypeContrast, split_training_state

from conftest import load_manifest, make_clips, random_state_dict

WINDOW = 8  # tiny backbone input: 8, 4 and 2 frames after l1, l5 and l8
CLASSES = 3


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a shared, busy CPU two threads spin-wait and run many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(name: str = "frhead", seed: int = 0):
    torch.manual_seed(seed)
    model = create_victim(name, num_classes=CLASSES, layout=NTU25, window=WINDOW).train()
    return model, model.auxiliary_heads()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    x = make_clips(n=6, t=14, seed=3)
    x[1, ..., 1] = x[1, ..., 0] * 0.8  # one clip with a second actor
    return x, torch.arange(6) % CLASSES


def test_heads_have_the_official_training_only_keys_and_shapes():
    manifest = load_manifest("frhead")
    heads = create_victim("frhead", num_classes=60, layout=NTU25).auxiliary_heads()
    official = [(key, shape) for key, shape, _ in manifest["training_only_state_dict"]]
    assert [(k, list(v.shape)) for k, v in heads.state_dict().items()] == official
    assert sum(p.numel() for p in heads.parameters()) == manifest["num_training_only_parameters"]
    # the temporal widths follow the frames per level: 52 frames give 52, 26, 13 and 13
    shapes = {k: tuple(v.shape) for k, v in create_victim("frhead", 60, NTU25, window=52).auxiliary_heads().state_dict().items()}
    assert shapes["ren_low.tempor_cl_net.cl_fc.weight"] == (256, 4 * 52)
    assert shapes["ren_mid.tempor_squeeze.0.weight"] == (9, 128, 1, 1)
    assert shapes["ren_fin.tempor_cl_net.cl_fc.weight"] == (256, 19 * 13)


def test_a_released_checkpoint_loads_strictly_into_the_training_model():
    """A ``runs.pt`` holds the backbone and the ``ren_*`` heads: each part takes its keys strictly."""
    manifest = load_manifest("frhead")
    gen = torch.Generator().manual_seed(1)
    heads_state = {k: torch.zeros(s, dtype=torch.long) if d == "int64" else torch.randn(s, generator=gen)
                   for k, s, d in manifest["training_only_state_dict"]}
    released = random_state_dict(manifest) | heads_state
    model = create_victim("frhead", num_classes=manifest["output_shape"][1], layout=NTU25)
    heads = model.auxiliary_heads()
    backbone, refinement = split_training_state(released)
    model.load_state_dict(backbone, strict=True)
    heads.load_state_dict(refinement, strict=True)
    assert torch.equal(heads.ren_high.spatio_squeeze[0].weight, released["ren_high.spatio_squeeze.0.weight"])
    assert not any(k.startswith("ren_") for k in model.state_dict())


def test_stage_features_come_from_the_same_pass_and_leave_forward_unchanged():
    model, _ = _tiny()
    x, _ = _batch()
    torch.manual_seed(0)
    logits, stages = model.forward_with_stages(x, (1, 5, 8, 10))
    assert torch.allclose(logits, model(x), atol=1e-5)
    n_m = x.shape[0] * x.shape[-1]
    assert {u: tuple(s.shape) for u, s in stages.items()} == {
        1: (n_m, 64, 8, 25), 5: (n_m, 128, 4, 25), 8: (n_m, 256, 2, 25), 10: (n_m, 256, 2, 25)}
    with pytest.raises(RuntimeError, match="training"):
        model.eval().forward_with_stages(x, (1,))


def test_refinement_loss_is_positive_and_reaches_the_backbone_but_not_the_classifier():
    model, heads = _tiny()
    x, y = _batch()
    logits, losses = heads(model, x, y)
    assert list(losses) == [name for name, _, _ in LEVELS]
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.l1.gcn1.PA.grad is not None and model.l1.gcn1.PA.grad.abs().sum() > 0  # ren_low reaches l1
    assert model.l10.tcn1.branches[0][0].weight.grad.abs().sum() > 0
    assert model.fc.weight.grad is None, "the heads mine TP/FN/FP from detached logits"
    assert all(p.grad is not None for p in heads.parameters())


def test_prototypes_move_by_momentum_and_calibration_acts_only_on_ambiguous_samples():
    torch.manual_seed(0)
    contrast = PrototypeContrast(in_features=5, num_classes=3, hidden=4)
    z_in, labels = torch.randn(4, 5), torch.tensor([0, 0, 1, 1])
    right = F.one_hot(labels, 3).float() * 5  # every sample predicted correctly: all TP, no FN/FP
    before = contrast.prototypes.clone()
    loss_right = contrast(z_in, labels, right)
    z = contrast.cl_fc(z_in).detach()
    assert torch.allclose(contrast.prototypes[0], 0.9 * before[0] + 0.1 * z[:2].mean(0), atol=1e-6)
    assert torch.allclose(contrast.prototypes[1], 0.9 * before[1] + 0.1 * z[2:].mean(0), atol=1e-6)
    assert torch.equal(contrast.prototypes[2], before[2]), "a class without confident samples keeps its prototype"
    # with no FN/FP, both score copies are the plain prototype contrast
    cosine = F.normalize(z, dim=1) @ F.normalize(contrast.prototypes, dim=1).T
    assert torch.allclose(loss_right, 2 * F.cross_entropy(cosine / 0.125, labels), atol=1e-5)
    # a wrong prediction creates FN (class 1) and FP (class 0) terms that lower the true-class scores
    contrast.prototypes.copy_(before)
    wrong = right.clone()
    wrong[3] = torch.tensor([5.0, 0.0, 0.0])
    contrast_plain = PrototypeContrast(in_features=5, num_classes=3, hidden=4, alpha=0.0)
    contrast_plain.load_state_dict(contrast.state_dict())
    contrast_plain.prototypes.copy_(before)
    assert contrast(z_in, labels, wrong) > contrast_plain(z_in, labels, wrong)


def test_a_few_steps_lower_the_total_loss_on_a_toy_batch():
    model, heads = _tiny()
    x, y = _batch()
    opt = torch.optim.SGD([*model.parameters(), *heads.parameters()], lr=0.05, momentum=0.9)
    totals = []
    for _ in range(5):
        _, loss, extra = training_loss(model, heads, x, y)
        assert extra and torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        totals.append(loss.item())
    assert min(totals[2:]) < totals[0]


def test_train_hook_adds_the_heads_for_frhead_and_nothing_for_ctrgcn():
    x, y = _batch()
    ctrgcn, none = _tiny("ctrgcn")
    assert none is None
    torch.manual_seed(1)
    logits, loss, extra = training_loss(ctrgcn, None, x, y)
    assert extra == {} and torch.equal(loss, F.cross_entropy(logits, y))
    frhead, heads = _tiny("frhead")
    logits, loss, extra = training_loss(frhead, heads, x, y)
    assert set(extra) == {name for name, _, _ in LEVELS}
    assert torch.allclose(loss, F.cross_entropy(logits, y) + sum(extra.values()))
    assert loss > F.cross_entropy(logits, y)


def _toy_dataset(split: str) -> SkeletonDataset:
    n = 8
    clips = make_clips(n=n, t=12, seed=0 if split == "train" else 1).numpy()
    labels = np.arange(n) % CLASSES
    clips += labels[:, None, None, None, None].astype(np.float32) * 0.1 * (clips != 0)
    return SkeletonDataset(name="toy", version="1", split=split, layout=NTU25, fps=30.0,
                           class_names=tuple(f"c{i}" for i in range(CLASSES)), clips=clips,
                           labels=labels.astype(np.int64), sample_ids=tuple(f"{split}{i}" for i in range(n)))


@pytest.fixture
def tiny_training(monkeypatch):
    """``train_victim`` on an 8-clip toy dataset with the backbone's window cut to 8 frames."""
    monkeypatch.setattr(training, "load_dataset", lambda name, split, data_path: _toy_dataset(split))
    monkeypatch.setattr(training, "create_victim",
                        lambda name, classes, layout: create_victim(name, classes, layout, window=WINDOW))

    def config(out, **overrides) -> TrainConfig:
        settings = dict(victim="frhead", epochs=2, batch_size=4, lr=0.05, bf16=False, out=str(out), device="cpu")
        return TrainConfig(**{**settings, **overrides})

    return config


def test_trained_frhead_saves_the_backbone_only_and_loads_strictly(tiny_training, tmp_path):
    result = train_victim(tiny_training(tmp_path / "frhead.pt"), progress=False)
    saved = torch.load(result.path, weights_only=True)
    assert not any(k.startswith("ren_") for k in saved)
    assert list(saved) == list(create_victim("frhead", CLASSES, NTU25).state_dict())
    loaded = load_victim("frhead", num_classes=CLASSES, layout=NTU25, dataset="toy", checkpoint=result.path)
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in saved.items())


def test_resume_restores_the_heads_and_their_prototypes(tiny_training, tmp_path, monkeypatch):
    straight = train_victim(tiny_training(tmp_path / "straight.pt"), progress=False)
    out = tmp_path / "resumed.pt"
    real_save = training.save_torch_atomic

    def save_then_die(state, path):
        real_save(state, path)
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(training, "save_torch_atomic", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            train_victim(tiny_training(out, resume=True), progress=False)
    state = torch.load(resume_path(out), weights_only=True)
    assert set(state["heads"]["buffers"]) == {f"{name}.{part}.prototypes" for name, _, _ in LEVELS
                                              for part in ("spatio_cl_net", "tempor_cl_net")}
    resumed = train_victim(tiny_training(out, resume=True), progress=False)
    assert resumed.sha256 == straight.sha256
