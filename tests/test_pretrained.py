"""The shipped synth weights: intact, loadable, and as accurate as their card says."""

from __future__ import annotations

import numpy as np
import pytest

from robustbench_skel.checkpoint import sha256_file
from robustbench_skel.commands.cli import main
from robustbench_skel.run.record import read_record
from robustbench_skel.registry import VICTIMS
from robustbench_skel.datasets.load import load_dataset
from robustbench_skel.victim import load_victim, model_card, predict, pretrained_weights

SHIPPED = [name for name in VICTIMS.names() if "synth" in model_card(name).get("pretrained", {})]


def test_stgcn_ships_synth_weights():
    assert "stgcn" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_match_their_card(name):
    files, entry = pretrained_weights(name, "synth")
    for _, path, expected in files:
        assert sha256_file(path) == expected
    assert entry["command"].startswith("python -m robustbench_skel train --victim ")
    assert 0.9 <= entry["clean_test_accuracy"] <= 1.0


def _every_class(labels: np.ndarray, per_class: int) -> list[int]:
    """``per_class`` test clips of every class, spread over the class's clips (so over its subjects).

    A quick check of the card's figure: 36 clips of all 12 synth classes. (Every 6th clip, the former
    choice, held only 4 of the 12 classes, as the split cycles through them; and the heavy victims take
    most of a second per clip on one CPU thread.)"""
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        picked += members[np.linspace(0, len(members) - 1, per_class).round().astype(int)].tolist()
    return picked


def test_the_accuracy_check_holds_every_class():
    test = load_dataset("synth", "test", None)
    labels = test.tensors()[1].numpy()
    picked = _every_class(labels, per_class=3)
    assert len(set(picked)) == 3 * test.num_classes
    assert np.bincount(labels[picked], minlength=test.num_classes).tolist() == [3] * test.num_classes


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_classify_synth_well(name):
    test = load_dataset("synth", "test", None)
    victim = load_victim(name, test.num_classes, test.layout, "synth").model
    subset = test.subset(_every_class(test.tensors()[1].numpy(), per_class=3))
    x, y = subset.tensors()
    accuracy = float((predict(victim, x, 32, "cpu") == y).float().mean())
    card = model_card(name)["pretrained"]["synth"]["clean_test_accuracy"]
    assert accuracy >= card - 0.1, f"{name}: {accuracy:.3f} on a subset, card says {card:.3f}"


def test_default_victim_runs_end_to_end(tmp_path, capsys):
    code = main(["run", "--victim", "stgcn", "--attack", "fgsm", "--n-samples", "6", "--sanity-samples", "0",
                 "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    record = read_record(out.strip().splitlines()[-1])
    files, entry = pretrained_weights("stgcn", "synth")
    assert record["victim"]["checkpoint_sha256"] == entry["sha256"] == files[0][2]
    assert record["victim"]["pretrained_on"] == "synth"
    assert record["dataset"]["synthetic"] is True


SHIPPED_V2 = [name for name in VICTIMS.names() if "synth2" in model_card(name).get("pretrained", {})]


@pytest.mark.parametrize("name", SHIPPED_V2)
def test_shipped_synth2_weights_load_strictly_and_beat_chance(name):
    """synth 2.0 weights (shipped as each victim is retrained): intact, strict-loading, well above chance."""
    files, entry = pretrained_weights(name, "synth2")
    for _, path, expected in files:
        assert sha256_file(path) == expected
    assert entry["dataset_version"] == "2.0" and 0.7 <= entry["clean_test_accuracy"] <= 0.95
    test = load_dataset("synth2", "test", None)
    victim = load_victim(name, test.num_classes, test.layout, "synth2").model  # strict load
    subset = test.subset(_every_class(test.tensors()[1].numpy(), per_class=2))
    x, y = subset.tensors()
    accuracy = float((predict(victim, x, 32, "cpu") == y).float().mean())
    assert accuracy >= 5.0 / test.num_classes, f"{name}: {accuracy:.3f}, chance is {1 / test.num_classes:.3f}"
