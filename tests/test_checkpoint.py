"""Checkpoints: safe loading, the usual wrappers, and mismatches named key by key."""

from __future__ import annotations

import collections

import pytest
import torch

from robustbench_skel.checkpoint import load_state_dict_strict, read_state_dict
from robustbench_skel.errors import UserError

from conftest import TinyVictim


@pytest.fixture
def state():
    return TinyVictim(num_classes=5).state_dict()


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"state_dict": s},
        lambda s: {"model": s, "epoch": 3},
        lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}, "optimizer": {}},
        lambda s: collections.OrderedDict((f"module.{k}", v) for k, v in s.items()),
    ],
    ids=["raw", "state_dict", "model", "state_dict+module", "module"],
)
def test_wrappers_and_prefixes_are_unwrapped(tmp_path, state, wrap):
    path = tmp_path / "w.pt"
    torch.save(wrap(state), path)
    loaded = read_state_dict(path)
    assert set(loaded) == set(state)
    model = TinyVictim(num_classes=5)
    load_state_dict_strict(model, loaded)
    assert torch.equal(model.fc.weight, state["fc.weight"])


def test_mismatches_name_the_keys(state):
    broken = dict(state)
    del broken["fc.bias"]
    broken["extra.weight"] = torch.zeros(1)
    broken["conv.weight"] = torch.zeros(3, 3)
    with pytest.raises(UserError) as info:
        load_state_dict_strict(TinyVictim(num_classes=5), broken)
    msg = str(info.value)
    assert "missing keys: fc.bias" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "conv.weight (3, 3) vs (16, 3, 5, 1)" in msg


def test_nan_weights_are_refused(state):
    state = dict(state)
    state["fc.weight"] = torch.full_like(state["fc.weight"], float("nan"))
    with pytest.raises(UserError, match="NaN or Inf"):
        load_state_dict_strict(TinyVictim(num_classes=5), state)


class _Arbitrary:
    def __init__(self):
        self.payload = [1, 2, 3]


def test_unsafe_pickles_are_refused_not_executed(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"state_dict": _Arbitrary()}, path)
    with pytest.raises(UserError, match="cannot be loaded safely"):
        read_state_dict(path)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"<html>not a checkpoint</html>")
    with pytest.raises(UserError, match="not a readable PyTorch file|cannot be loaded safely"):
        read_state_dict(junk)
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(UserError, match="no tensors"):
        read_state_dict(empty)
