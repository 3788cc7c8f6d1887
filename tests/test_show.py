"""`run --save-adversarial` then `show`: the stored perturbations, the animation, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustbench_skel.run.adversarial_store import _toward_zero_float16
from robustbench_skel.commands.cli import main
from robustbench_skel.board.plots_tradeoff import plot_tradeoff


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def saved(tmp_path_factory, trained_tiny_checkpoint) -> Path:
    """One tiny run with --save-adversarial (module-wide: a few seconds once)."""
    results = tmp_path_factory.mktemp("show") / "results"
    code = main(["run", "--victim", "tiny-test-victim", "--checkpoint", str(trained_tiny_checkpoint), "--eps", "0.05",
                 "--n-samples", "8", "--steps", "3", "--sanity-samples", "0", "--results-dir", str(results),
                 "--device", "cpu", "--save-adversarial"])
    assert code == 0
    return next((results / "runs").glob("*.json"))


def _successful(record: dict) -> str:
    s = record["samples"]
    return next(i for i, ok in zip(s["id"], s["success"]) if ok)


def test_saved_npz_is_referenced_and_complete(saved):
    record = json.loads(saved.read_text())
    entry = record["adversarial"]
    npz = saved.parent.parent / entry["file"]
    assert entry["file"] == f"adversarial/{saved.stem}.npz" and npz.is_file()
    assert entry["num_samples"] == sum(record["samples"]["attacked"]) and entry["verdicts_preserved"] is True
    with np.load(npz, allow_pickle=False) as f:
        assert f["delta"].dtype == np.dtype(entry["dtype"]) and len(f["sample_ids"]) == entry["num_samples"]
        assert np.abs(f["delta"].astype(np.float32)).max() <= 0.05 + 1e-6


def test_float16_rounds_toward_zero():
    delta = np.array([0.01, -0.01, 0.0123456, 1e-7], dtype=np.float32)
    half = _toward_zero_float16(delta)
    assert half.dtype == np.float16 and np.all(np.abs(half.astype(np.float32)) <= np.abs(delta))
    assert np.allclose(half, delta, atol=1e-5)


def test_show_writes_gif_and_stills(saved, capsys, tmp_path):
    sample = _successful(json.loads(saved.read_text()))
    out = tmp_path / "clip.gif"
    code, stdout, err = _run(capsys, "show", str(saved), "--sample", sample, "--out", str(out), "--frames", "0,10")
    assert code == 0, err
    from PIL import Image

    with Image.open(out) as im:
        assert im.n_frames > 5
    still = tmp_path / "clip_frames.png"
    assert still.is_file() and str(still) in stdout


def test_show_refusals_are_one_line(saved, capsys, tmp_path):
    record = json.loads(saved.read_text())
    sample = _successful(record)
    cases = []
    without = tmp_path / "runs" / "plain.json"
    without.parent.mkdir()
    without.write_text(json.dumps({k: v for k, v in record.items() if k != "adversarial"}))
    cases.append((without, sample, "--save-adversarial"))
    cases.append((saved, "no-such-id", "not among"))
    other = dict(record, dataset={**record["dataset"], "sample_ids_sha256": "0" * 64})
    moved = tmp_path / "runs" / "other.json"
    moved.write_text(json.dumps(other))
    (tmp_path / "adversarial").mkdir()
    npz = saved.parent.parent / record["adversarial"]["file"]
    (tmp_path / record["adversarial"]["file"]).write_bytes(npz.read_bytes())
    cases.append((moved, sample, "sample ids hash differs"))
    tampered = tmp_path / "runs" / "tampered.json"
    tampered.write_text(json.dumps(dict(record, adversarial={**record["adversarial"], "sha256": "1" * 64})))
    cases.append((tampered, sample, "sha256"))
    for path, sample_id, needle in cases:
        code, _, err = _run(capsys, "show", str(path), "--sample", sample_id, "--out", str(tmp_path / "x.gif"))
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and needle in lines[0], (needle, err)


def test_tradeoff_plot_one_point_per_attack(tmp_path):
    df = pd.DataFrame([
        {"dataset": "synth", "synthetic": True, "victim": "stgcn", "defense": "none", "attack": a, "eps": 0.01,
         "targeted": False, "threat_model": "white-box", "success_rate": s, "acceleration_deviation": x}
        for a, s, x in (("pgd", 0.4, 14.0), ("smart", 0.3, 1.5), ("fgsm", 0.3, 11.0))
    ] + [{"dataset": "synth", "synthetic": True, "victim": "sgn", "defense": "none", "attack": "pgd", "eps": 0.01,
          "targeted": False, "threat_model": "white-box", "success_rate": 0.5, "acceleration_deviation": 20.0}])
    written = plot_tradeoff(df, tmp_path)
    assert [p.name for p in written] == ["tradeoff_synth_stgcn.png"] and written[0].stat().st_size > 1000
