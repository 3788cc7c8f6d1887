"""Coordinates not in metres and files with no clips end in one clear line, or convert with --unit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustbench_skel.commands.cli import main
from robustbench_skel.datasets.units import body_extent_m, check_units
from robustbench_skel.errors import UserError
from robustbench_skel.run.runner import load_dataset

from conftest import TinyVictim, make_clips, write_npz


def _npz(tmp_path, scale: float = 1.0, n: int = 6):
    clips = make_clips(n=n, t=10, seed=1).numpy() * scale
    return write_npz(tmp_path / "data.npz", clips, np.arange(n) % 3)


def _run(capsys, path, *extra):
    checkpoint = path.parent / "tiny3.pt"
    torch.manual_seed(0)
    torch.save(TinyVictim(num_classes=3).state_dict(), checkpoint)
    code = main(["run", "--victim", "tiny-test-victim", "--checkpoint", str(checkpoint), "--data-path", str(path),
                 "--n-samples", "2", "--steps", "1",
                 "--sanity-samples", "0", "--results-dir", str(path.parent / "results"), *extra])
    return code, capsys.readouterr()


def test_metres_pass_and_extent_is_a_body():
    extent = body_extent_m(make_clips(n=6, t=10).numpy())
    assert 0.5 < extent < 3.0


@pytest.mark.parametrize("scale,unit,hint", [(1000.0, "mm", "--unit mm"), (100.0, "cm", "--unit cm")])
def test_millimetres_and_centimetres_are_refused_then_converted(tmp_path, scale, unit, hint):
    path = _npz(tmp_path, scale)
    with pytest.raises(UserError) as err:
        load_dataset("npz", None, str(path))
    message = str(err.value)
    assert hint in message and "per frame" in message and "\n" not in message
    metres = load_dataset("npz", None, str(path), unit=unit)
    reference = load_dataset("npz", None, str(_npz(tmp_path / "..", 1.0)))
    np.testing.assert_allclose(np.asarray(metres.clips[:]), np.asarray(reference.clips[:]), rtol=1e-5, atol=1e-6)
    assert "unit" in metres.notes


def test_a_wrong_unit_on_metres_is_refused(tmp_path):
    with pytest.raises(UserError, match="metres already"):
        load_dataset("npz", None, str(_npz(tmp_path)), unit="mm")


def test_empty_file_is_one_line_exit_2(tmp_path, capsys):
    path = write_npz(tmp_path / "empty.npz", np.zeros((0, 3, 10, 25, 2), np.float32), np.zeros(0, np.int64))
    code, out = _run(capsys, path)
    lines = out.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "holds no clips" in lines[0] and lines[0].startswith("error: ")


def test_cli_refuses_mm_and_records_the_unit(tmp_path, capsys):
    path = _npz(tmp_path, 1000.0)
    code, out = _run(capsys, path)
    assert code == 2 and "--unit mm" in out.err and len(out.err.strip().splitlines()) == 1
    code, out = _run(capsys, path, "--unit", "mm")
    assert code == 0, out.err
    import json

    record = json.loads(open(out.out.strip().splitlines()[-1]).read())
    assert record["config"]["unit"] == "mm" and "unit" in record["dataset"]["notes"]


def test_declared_non_metric_readers_are_left_alone():
    from dataclasses import replace

    dataset = load_dataset("synth", "test", None)
    scaled = replace(dataset, clips=dataset.clips[:4] * 1000, labels=dataset.labels[:4], sample_ids=dataset.sample_ids[:4],
                     notes={"coordinates": "normalised, not metres"})
    assert check_units(scaled) is scaled
