"""`reproduce` re-runs a record: identical here, a changed metric is named, changed weights are refused."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import torch

from robustbench_skel.commands.cli import main
from robustbench_skel.commands.reproduce import compare_metrics

from conftest import TinyVictim


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _record(tmp_path, capsys, checkpoint: Path) -> tuple[Path, list[str]]:
    argv = ["run", "--victim", "tiny-test-victim", "--checkpoint", str(checkpoint), "--attack", "pgd", "--eps", "0.05", "--n-samples", "8",
            "--steps", "2", "--sanity-samples", "0", "--results-dir", str(tmp_path / "results"), "--device", "cpu"]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    return Path(out.strip().splitlines()[-1]), argv


def test_reproduce_matches_then_names_an_edited_metric(tmp_path, capsys, trained_tiny_checkpoint):
    path, _ = _record(tmp_path, capsys, trained_tiny_checkpoint)
    code, out, err = _run(capsys, "reproduce", str(path))
    assert code == 0, err
    # identical from a clean checkout; from an uncommitted tree the code cannot be vouched for, so within tolerances
    assert out.splitlines()[0].startswith(("identical", "within tolerances")) and "DIFFERS" not in out
    assert "attack_success_rate" in out
    assert len(list((tmp_path / "results" / "runs").glob("*.json"))) == 1  # nothing written unless asked

    record = json.loads(path.read_text())
    record["metrics"]["attack_success_rate"]["count"] += 3
    record["metrics"]["mean_joint_displacement_cm"]["value"] *= 1.5
    path.write_text(json.dumps(record))
    code, out, err = _run(capsys, "reproduce", str(path))
    assert code == 1
    assert "attack_success_rate" in err and "mean_joint_displacement_cm" in err and "clean_accuracy" not in err
    assert "DIFFERS" in out


def test_changed_checkpoint_is_refused_in_one_line(tmp_path, capsys, trained_tiny_checkpoint):
    weights = tmp_path / "tiny.pt"
    shutil.copy(trained_tiny_checkpoint, weights)
    path, _ = _record(tmp_path, capsys, weights)
    torch.manual_seed(1)
    torch.save(TinyVictim(num_classes=51).state_dict(), weights)
    code, out, err = _run(capsys, "reproduce", str(path))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "checkpoint sha256" in lines[0] and "Traceback" not in err


def test_record_without_config_is_reproduced_from_its_command(tmp_path, capsys, trained_tiny_checkpoint):
    path, argv = _record(tmp_path, capsys, trained_tiny_checkpoint)
    record = json.loads(path.read_text())
    del record["config"]
    record["command"] = "python -m robustbench_skel " + " ".join(shlex.quote(a) for a in argv)
    path.write_text(json.dumps(record))
    code, out, err = _run(capsys, "reproduce", str(path), "--results-dir", str(tmp_path / "again"))
    assert code == 0, err
    assert len(list((tmp_path / "again" / "runs").glob("*.json"))) == 1


def test_tolerances_off_the_recorded_machine():
    old = {"metrics": {"attack_success_rate": {"value": 0.5, "ci95": [0.3, 0.7], "count": 32, "n": 64},
                       "linf_m": {"value": 0.0100, "ci95": [0.0098, 0.0102], "max": 0.01, "n": 32}}, "flags": {"sanity_converged": True}}
    near = {"metrics": {"attack_success_rate": {"value": 33 / 64, "ci95": [0.3, 0.7], "count": 33, "n": 64},
                        "linf_m": {"value": 0.0101, "ci95": [0.0099, 0.0103], "max": 0.01, "n": 33}}, "flags": {"sanity_converged": False}}
    assert compare_metrics(old, near, exact=False)[1] == []
    assert compare_metrics(old, near, exact=True)[1] == ["attack_success_rate", "linf_m", "flag sanity_converged"]
    far = json.loads(json.dumps(near))
    far["metrics"]["attack_success_rate"]["count"] = 36
    far["metrics"]["linf_m"]["value"] = 0.02
    assert compare_metrics(old, far, exact=False)[1] == ["attack_success_rate", "linf_m"]
