"""The command line as a user meets it: a real run end to end, and one clear line for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from robustbench_skel.commands.cli import main
from robustbench_skel.defense import Defense
from robustbench_skel.run.record import read_record
from robustbench_skel.registry import DEFENSES

from conftest import TinyVictim, write_npz

REPO = Path(__file__).resolve().parent.parent


@DEFENSES.register("test-input-scaling")
class InputScaling(Defense):
    """Trivial test defense: rescales the input clip before the victim sees it."""

    description = "test-only: multiply clips by a constant"

    def __init__(self, factor: float = 1.0) -> None:
        self.factor = factor

    def apply(self, victim, context):
        factor = self.factor

        class Scaled(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.victim = victim

            def forward(self, x):
                return self.victim(x * factor)

        return Scaled()


@pytest.fixture
def tiny_checkpoint(trained_tiny_checkpoint) -> Path:
    return trained_tiny_checkpoint


def _records(results: Path) -> list[Path]:
    return sorted((results / "runs").glob("*.json")) if (results / "runs").exists() else []


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_writes_a_valid_record_and_prints_its_path_last(tmp_path, capsys, tiny_checkpoint):
    results = tmp_path / "results"
    code, out, err = _run(
        capsys, "run", "--victim", "tiny-test-victim", "--checkpoint", str(tiny_checkpoint), "--attack", "pgd",
        "--n-samples", "12", "--steps", "3", "--results-dir", str(results), "--defense", "test-input-scaling",
    )
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    assert Path(last).is_file() and Path(last).parent == results / "runs"
    record = read_record(last)
    assert record["defense"] == {"name": "test-input-scaling", "kind": "inference", "randomized": False, "differentiable": True,
                                 "hyperparameters": {"factor": 1.0}}
    assert record["threat"]["model"] == "white-box" and record["attack"]["threat_model"] == "white-box"
    assert record["dataset"]["name"] == "synth" and record["dataset"]["synthetic"] is True
    assert record["attack"]["hyperparameters"]["steps"] == 3
    m = record["metrics"]
    assert m["clean_accuracy"]["n"] == 12 and m["attack_success_rate"]["n"] == m["clean_accuracy"]["count"] > 0
    assert 0 <= m["attack_success_rate"]["ci95"][0] <= m["attack_success_rate"]["value"] <= m["attack_success_rate"]["ci95"][1] <= 1
    assert record["flags"]["all_within_budget"] and record["flags"]["all_finite"]
    assert len(record["samples"]["id"]) == 12
    assert "SYNTHETIC" in out


def test_targeted_run_and_leaderboard(tmp_path, capsys, tiny_checkpoint):
    results = tmp_path / "results"
    for extra in ([], ["--targeted"]):
        code, _, err = _run(
            capsys, "run", "--victim", "tiny-test-victim", "--checkpoint", str(tiny_checkpoint), "--attack", "ifgsm",
            "--n-samples", "8", "--steps", "2", "--results-dir", str(results), *extra,
        )
        assert code == 0, err
    records = [read_record(p) for p in _records(results)]
    targeted = next(r for r in records if r["attack"]["targeted"])
    assert all(t != y for t, y in zip(targeted["samples"]["target"], targeted["samples"]["label"]))
    code, out, err = _run(capsys, "leaderboard", "--results-dir", str(results))
    assert code == 0, err
    md = (results / "leaderboard.md").read_text()
    csv = (results / "leaderboard.csv").read_text()
    # one row per run in its threat setting (untargeted, targeted) and in its plausibility table, one in the
    # robust-accuracy table (the worst case)
    assert "SYNTHETIC" in md and md.count("| tiny-test-victim |") == 5
    assert md.count("## Physical plausibility") == 2
    assert md.count("## Robust accuracy") == 1
    assert csv.count("\n") == 3  # header + two rows


def test_list_names_every_plugin_kind(capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0
    for word in ("victims:", "attacks:", "defenses:", "datasets:", "stgcn", "pgd-l2", "synth", "SYNTHETIC"):
        assert word in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "[weights: synth]" in lines["stgcn"]
    assert "[no shipped weights: --checkpoint]" in lines["ctrgcn-tasar-hdm05"]


def _assert_one_line_error(code, out, err, *needles):
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    "argv,needles",
    [
        (["run", "--victim", "stgnc"], ["unknown victim 'stgnc'", "'stgcn'"]),
        (["run", "--attack", "pdg"], ["unknown attack 'pdg'", "'pgd'"]),
        (["run", "--dataset", "synthh"], ["unknown dataset 'synthh'", "'synth'"]),
        (["run", "--defense", "nope"], ["unknown defense 'nope'"]),
        (["run", "--eps", "-1"], ["--eps"]),
        (["run", "--n-samples", "0"], ["--n-samples"]),
        (["run", "--attack", "fgsm", "--steps", "3"], ["has no --steps option"]),
        (["run", "--device", "tpu"], ["--device"]),
        (["run", "--checkpoint", "does-not-exist.pt"], ["does not exist"]),
        (["run", "--dataset", "npz"], ["--data-path"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_arguments_get_one_clear_line(tmp_path, capsys, argv, needles):
    code, out, err = _run(capsys, *argv, *(["--results-dir", str(tmp_path / "r")] if argv[0] == "run" else []))
    _assert_one_line_error(code, out, err, *needles)
    assert not _records(tmp_path / "r")


def _npz_case(tmp_path, kind):
    rng = np.random.default_rng(0)
    clips = rng.normal(0, 0.3, (6, 3, 10, 25, 2)).astype(np.float32)
    labels = np.arange(6) % 3
    if kind == "nan":
        clips[2, 0, 3, 4, 0] = np.nan
    elif kind == "inf":
        clips[1, 1, 0, 0, 0] = np.inf
    elif kind == "shape":
        clips = clips[:, :2]
    elif kind == "joints":
        clips = clips[:, :, :, :20]
        return write_npz(tmp_path / "d.npz", clips, labels, layout=np.array("ntu25"))
    elif kind == "labels":
        labels = labels.copy()
        labels[0] = -3
    elif kind == "ndim":
        clips = clips[:, 0]
    return write_npz(tmp_path / "d.npz", clips, labels)


@pytest.mark.parametrize(
    "kind,needle",
    [("nan", "infinite or NaN coordinates"), ("inf", "infinite or NaN coordinates"), ("shape", "3 coordinates"), ("joints", "20 joints"),
     ("labels", "labels must lie in"), ("ndim", "clips must be")],
)
def test_bad_data_gets_one_clear_line_and_no_record(tmp_path, capsys, tiny_checkpoint, kind, needle):
    path = _npz_case(tmp_path, kind)
    results = tmp_path / "r"
    code, out, err = _run(
        capsys, "run", "--victim", "tiny-test-victim", "--checkpoint", str(tiny_checkpoint), "--data-path", str(path),
        "--n-samples", "6", "--steps", "1", "--results-dir", str(results),
    )
    _assert_one_line_error(code, out, err, needle)
    assert not _records(results)


def test_labels_beyond_the_checkpoint_classes(tmp_path, capsys, tiny_checkpoint):
    clips = np.random.default_rng(0).normal(0, 0.3, (4, 3, 10, 25, 2)).astype(np.float32)
    path = write_npz(tmp_path / "d.npz", clips, np.array([0, 1, 2, 60]))  # the checkpoint knows synth's 51
    code, out, err = _run(capsys, "run", "--victim", "tiny-test-victim", "--checkpoint", str(tiny_checkpoint),
                          "--data-path", str(path), "--results-dir", str(tmp_path / "r"))
    _assert_one_line_error(code, out, err, "61 classes", "51")


class _TrainingConfig:
    lr = 0.1


@pytest.mark.parametrize("problem", ["missing", "unexpected", "misshaped", "unsafe"])
def test_bad_checkpoints_are_named(tmp_path, capsys, problem):
    state = TinyVictim(num_classes=51).state_dict()  # synth's class count
    if problem == "missing":
        del state["fc.bias"]
        needles = ["missing keys: fc.bias"]
    elif problem == "unexpected":
        state["head.extra"] = torch.zeros(2)
        needles = ["unexpected keys: head.extra"]
    elif problem == "misshaped":
        state["fc.weight"] = torch.zeros(60, 400)
        needles = ["mis-shaped", "fc.weight (60, 400) vs (51, 400)"]
    else:
        state = {"state_dict": state, "config": _TrainingConfig()}  # arbitrary objects are not unpickled
        needles = ["cannot be loaded safely"]
    path = tmp_path / "ckpt.pt"
    torch.save(state, path)
    code, out, err = _run(capsys, "run", "--victim", "tiny-test-victim", "--checkpoint", str(path),
                          "--results-dir", str(tmp_path / "r"))
    _assert_one_line_error(code, out, err, *needles)
    assert not _records(tmp_path / "r")


def test_ctrl_c_leaves_no_record(tmp_path, capsys, tiny_checkpoint, monkeypatch):
    from robustbench_skel.attack import IterativeGradientAttack

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(IterativeGradientAttack, "update", interrupt)
    results = tmp_path / "r"
    code, out, err = _run(capsys, "run", "--victim", "tiny-test-victim", "--checkpoint", str(tiny_checkpoint),
                          "--n-samples", "4", "--results-dir", str(results))
    assert code == 130 and "nothing was written" in err
    assert not _records(results)
    assert not list(results.rglob("*")) or all(p.is_dir() for p in results.rglob("*"))


def test_ctrl_c_while_writing_leaves_no_partial_file(tmp_path, monkeypatch):
    from robustbench_skel import record as record_module
    from robustbench_skel.run.record import SCHEMA_VERSION, write_record

    record = {k: {} for k in ("victim", "dataset", "attack", "environment", "timing", "metrics")}
    record.update(schema_version=SCHEMA_VERSION, run_id="x", created="now", defense=None, seed=0)
    record["dataset"]["name"] = "synth"
    record["victim"]["name"] = "v"
    record["attack"].update(name="a", eps=0.01)

    def boom(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(record_module.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_record(record, tmp_path)
    assert list((tmp_path / "runs").iterdir()) == []


def test_record_round_trip(tmp_path):
    from robustbench_skel.run.record import SCHEMA_VERSION, read_record, write_record

    record = {
        "schema_version": SCHEMA_VERSION, "run_id": "r1", "created": "2026-01-01T00:00:00+00:00", "defense": None,
        "seed": 3, "victim": {"name": "v"}, "dataset": {"name": "d"}, "attack": {"name": "a", "eps": 0.02},
        "environment": {"numpy_value": np.float32(1.5)}, "timing": {"wall_time_s": 1.0},
        "metrics": {"x": {"value": float("nan"), "ci95": [np.float64(0.1), 0.2]}},
    }
    path = write_record(record, tmp_path)
    back = read_record(path)
    assert back["metrics"]["x"]["value"] is None  # NaN becomes null: records are strict JSON
    assert back["environment"]["numpy_value"] == 1.5
    assert back["seed"] == 3 and back["attack"]["eps"] == 0.02
    json.loads(path.read_text())


def test_python_m_prints_no_traceback_on_bad_input(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "robustbench_skel", "run", "--victim", "stgcm", "--results-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown victim 'stgcm'; did you mean 'stgcn'")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_budget_sweep_writes_one_record_per_budget_and_a_plot(tmp_path, capsys, tiny_checkpoint):
    results = tmp_path / "results"
    code, out, err = _run(
        capsys, "run", "--victim", "tiny-test-victim", "--checkpoint", str(tiny_checkpoint), "--attack", "pgd",
        "--eps", "0.002,0.02,0.2", "--n-samples", "12", "--steps", "3", "--sanity-samples", "4", "--results-dir", str(results),
    )
    assert code == 0, err
    records = [read_record(p) for p in _records(results)]
    assert sorted(r["attack"]["eps"] for r in records) == [0.002, 0.02, 0.2]
    assert len({r["sweep"]["id"] for r in records}) == 1
    assert "budget sweep" in out
    assert all(Path(line).is_file() for line in out.strip().splitlines()[-3:])
    rates = [r["metrics"]["attack_success_rate"]["value"] for r in sorted(records, key=lambda r: r["attack"]["eps"])]
    assert rates[0] <= rates[-1]
    code, out, err = _run(capsys, "leaderboard", "--results-dir", str(results))
    assert code == 0, err
    png = results / "budget_curve_synth_linf_untargeted.png"
    assert png.is_file() and png.stat().st_size > 1000
    assert (results / "budget_curve_synth_linf_untargeted.svg").is_file()
    assert "budget_curve_synth_linf_untargeted.png" in (results / "leaderboard.md").read_text()


def test_eps_range_syntax(capsys):
    from robustbench_skel.commands.cli import _eps_values

    assert _eps_values("0.005:0.02:4") == pytest.approx([0.005, 0.01, 0.015, 0.02])
    assert _eps_values("0.02,0.01") == [0.01, 0.02]
    code, out, err = _run(capsys, "run", "--eps", "0.01:0.02")
    _assert_one_line_error(code, out, err, "--eps")


def test_records_carry_sanity_flags(tmp_path, capsys, tiny_checkpoint):
    results = tmp_path / "results"
    code, out, err = _run(capsys, "run", "--victim", "tiny-test-victim", "--checkpoint", str(tiny_checkpoint),
                          "--n-samples", "12", "--steps", "4", "--sanity-samples", "4", "--results-dir", str(results))
    assert code == 0, err
    record = read_record(out.strip().splitlines()[-1])
    for name in ("unbounded", "monotone_in_budget", "stronger_than_fgsm", "converged"):
        assert f"sanity_{name}" in record["flags"]
        assert name in record["sanity"]["checks"]
    assert record["flags"]["no_success_lost"] is True
    assert "sanity checks on" in out


def test_attack_specific_options(tmp_path, capsys, tiny_checkpoint):
    results = tmp_path / "results"
    code, out, err = _run(capsys, "run", "--victim", "tiny-test-victim", "--checkpoint", str(tiny_checkpoint),
                          "--attack", "mifgsm", "--attack-opt", "decay=0.5", "--n-samples", "6", "--steps", "2",
                          "--sanity-samples", "0", "--results-dir", str(results))
    assert code == 0, err
    assert read_record(out.strip().splitlines()[-1])["attack"]["hyperparameters"]["decay"] == 0.5
    code, out, err = _run(capsys, "run", "--attack", "pgd", "--attack-opt", "decay=0.5", "--results-dir", str(results))
    _assert_one_line_error(code, out, err, "has no --attack-opt decay=... option")
    code, out, err = _run(capsys, "run", "--attack", "pgd", "--attack-opt", "nonsense", "--results-dir", str(results))
    _assert_one_line_error(code, out, err, "key=value")


def test_threat_setting_gives_metres_only_to_distance_budgets():
    from robustbench_skel.board.report import threat_setting

    assert threat_setting({"norm": "linf", "eps": 0.01, "targeted": False}) == "L-inf eps=0.01 m, untargeted"
    assert threat_setting({"norm": "bone-scale", "eps": 0.1, "targeted": True}) == "bone-scale eps=0.1, targeted"


def test_usage_errors_name_the_program_once(capsys):
    from robustbench_skel.commands.cli import main

    assert main(["--bogus"]) == 2
    assert "see `python -m robustbench_skel --help`" in capsys.readouterr().err
    assert main(["list", "--bogus"]) == 2
    assert "robustbench_skel robustbench_skel" not in capsys.readouterr().err
