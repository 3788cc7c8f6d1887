"""Bad input, command by command: one line on stderr, a non-zero exit, no traceback, nothing written.

Each row is a command line a user could type, run in-process through ``main(argv)``. Every row must be
refused while its inputs are checked, before any training, attack or write, so the whole table runs in
seconds. ``{ws}`` is a shared workspace (a results folder with one valid record, a plain file, data
files, bad records, a grid folder); nothing may appear in it or change while a row runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robustbench_skel.commands.cli import main

from conftest import write_npz  # noqa: F401  (also registers the tiny test victim)


class _Payload:
    """An arbitrary object inside a checkpoint: a safe loader must refuse it without importing this class."""

    def __init__(self) -> None:
        self.note = "not weights"


def _valid_record() -> dict:
    """A small schema-valid record of a quick sgn run (never re-run here: every row fails before that)."""
    ids = ["S000", "S001", "S002"]
    return {
        "schema_version": 1, "run_id": "20260101T000000-abcdef", "created": "2026-01-01T00:00:00+00:00",
        "command": "python -m robustbench_skel run --victim sgn --attack fgsm --n-samples 3",
        "config": {"victim": "sgn", "attack": "fgsm", "dataset": "synth", "n_samples": 3, "sanity_samples": 0,
                   "device": "cpu", "results_dir": "results"},
        "victim": {"name": "sgn", "checkpoint": "sgn:synth", "checkpoint_sha256": "0" * 64},
        "dataset": {"name": "synth", "version": "1", "split": "test", "synthetic": True, "num_evaluated": 3,
                    "sample_ids_sha256": "1" * 64},
        "attack": {"name": "fgsm", "threat_model": "white-box", "norm": "linf", "eps": 0.01, "targeted": False,
                   "hyperparameters": {"eps": 0.01}},
        "defense": None, "seed": 0, "environment": {"device": "cpu"}, "timing": {"wall_time_s": 1.0},
        "metrics": {"attack_success_rate": {"value": 0.5, "ci95": [0.1, 0.9], "count": 1, "n": 2}},
        "flags": {"all_finite": True},
        "samples": {"id": ids, "label": [0, 1, 2], "clean_pred": [0, 1, 0], "adv_pred": [1, 1, 0],
                    "attacked": [True, True, False], "success": [True, False, False]},
    }


def _write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def _results_with(folder: Path, record) -> Path:
    """A results folder whose only record is ``record`` (a dict, or raw text)."""
    runs = folder / "runs"
    runs.mkdir(parents=True)
    target = runs / "synth_sgn_fgsm_eps0.01_x.json"
    target.write_text(record if isinstance(record, str) else json.dumps(record))
    return folder


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("bad-input")
    (ws / "afile").write_text("a plain file standing where a folder must go\n")
    (ws / "adir").mkdir()
    (ws / "folder.gif").mkdir()
    good = _valid_record()
    _write_json(ws / "results" / "runs" / "good.json", good)
    # records that break the schema
    _write_json(ws / "rec" / "runs" / "wrong_type.json", {**good, "metrics": {"attack_success_rate": {"value": "high"}}})
    _write_json(ws / "rec" / "runs" / "missing_seed.json", {k: v for k, v in good.items() if k != "seed"})
    _write_json(ws / "rec" / "runs" / "seed_text.json", {**good, "seed": "0"})
    _write_json(ws / "rec" / "runs" / "version99.json", {**good, "schema_version": 99})
    _write_json(ws / "rec" / "runs" / "array.json", [good])
    _write_json(ws / "rec" / "runs" / "short_samples.json", {**good, "samples": {**good["samples"], "success": [True]}})
    _write_json(ws / "rec" / "runs" / "victim_name_int.json", {**good, "victim": {"name": 7}})
    _write_json(ws / "rec" / "runs" / "unknown_victim.json", {**good, "config": {**good["config"], "victim": "nosuch"}})
    _write_json(ws / "rec" / "runs" / "targeted_text.json", {**good, "config": {**good["config"], "targeted": "yes"}})
    _write_json(ws / "rec" / "runs" / "bad_n.json", {**good, "config": {**good["config"], "n_samples": -3}})
    _write_json(ws / "rec" / "runs" / "not_run.json", {**{k: v for k, v in good.items() if k != "config"},
                                                       "command": "python -m robustbench_skel leaderboard"})
    _write_json(ws / "rec" / "runs" / "no_adv.json", good)
    (ws / "rec" / "runs" / "garbage.json").write_text("{not json")
    # a record whose adversarial clips file is corrupt but matches its sha256 (so only reading it fails)
    corrupt = ws / "rec" / "adversarial" / "c.npz"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"PK\x03\x04 truncated zip")
    _write_json(ws / "rec" / "runs" / "corrupt_adv.json", {**good, "adversarial": {
        "file": "adversarial/c.npz", "sha256": hashlib.sha256(corrupt.read_bytes()).hexdigest()}})
    # leaderboard folders
    _results_with(ws / "board_wrong", {**good, "attack": {**good["attack"], "eps": "0.01"}})
    _results_with(ws / "board_array", [good])
    _results_with(ws / "board_garbage", "{")
    _results_with(ws / "board_nosplit", {**good, "dataset": {"name": "synth"}})
    (ws / "board_empty" / "runs").mkdir(parents=True)
    _results_with(ws / "board_mddir", good)
    (ws / "board_mddir" / "leaderboard.md").mkdir()
    # data and checkpoints
    rng = np.random.default_rng(0)
    clips = rng.normal(0, 0.3, (6, 3, 10, 25, 2)).astype(np.float32)
    some_inf = clips.copy()
    some_inf[4, 0, 2, 3, 0] = np.inf  # a clip a 4-sample run would not even evaluate
    write_npz(ws / "some_inf.npz", some_inf, np.arange(6) % 3)
    all_inf = clips.copy()
    all_inf[:, 1, 0, 0, 0] = np.inf  # once reported as "looks like millimetres, pass --unit mm"
    write_npz(ws / "all_inf.npz", all_inf, np.arange(6) % 3)
    nan = clips.copy()
    nan[0, 2, 5, 7, 0] = np.nan
    write_npz(ws / "nan.npz", nan, np.arange(6) % 3)
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": _Payload()}, ws / "unsafe.pt")
    torch.save({"w": torch.zeros(2)}, ws / "plain.pt")
    # grids
    grids = ws / "grids"
    grids.mkdir()
    base = 'attacks = ["fgsm"]\nn_samples = 4\nsanity_samples = 0\ndevice = "cpu"\nresults_dir = "{out}"\n'

    def grid(name: str, text: str) -> None:
        (grids / name).write_text(text + "\n" + base.format(out=str(ws / "sweep_out")))

    grid("second_victim.toml", 'victims = ["sgn", "nosuch"]')
    grid("surrogate.toml", 'victims = ["sgn"]\nsurrogates = ["none", "nosuch"]')
    grid("defense.toml", 'victims = ["sgn"]\ndefenses = ["none", "nosuch"]')
    grid("budget.toml", 'victims = ["sgn"]\nbudgets = [0.01, -1]')
    grid("key.toml", 'victims = ["sgn"]\nvictim_count = 3')
    grid("n_samples.toml", 'victims = ["sgn"]\nn_samples_typo = 1')
    (grids / "attack.toml").write_text('victims = ["sgn"]\nattacks = ["fgsm", "nosuch"]\n')
    (grids / "type.toml").write_text('victims = ["sgn"]\nattacks = ["fgsm"]\nn_samples = "many"\n')
    (grids / "device_type.toml").write_text('victims = ["sgn"]\nattacks = ["fgsm"]\ndevice = 5\n')
    (grids / "sanity.toml").write_text('victims = ["sgn"]\nattacks = ["fgsm"]\nsanity_samples = -1\n')
    (grids / "results_file.toml").write_text(f'victims = ["sgn"]\nattacks = ["fgsm"]\nresults_dir = "{ws / "afile"}"\n')
    (grids / "no_victims.toml").write_text('attacks = ["fgsm"]\n')
    (grids / "plugins.toml").write_text('victims = ["sgn"]\nattacks = ["fgsm"]\nplugins = "mine"\n')
    (grids / "broken.toml").write_text('victims = ["sgn"\n')
    (grids / "plugin_missing.toml").write_text('victims = ["sgn"]\nattacks = ["fgsm"]\nplugins = ["no_such_module_xyz"]\n')
    return ws


QUICK = ["--n-samples", "4", "--device", "cpu", "--sanity-samples", "0"]

# (id, argv, words the one line must contain). {ws} is the workspace.
CASES = [
    # ---- run: names (the kind of thing that is unknown is named)
    ("run-unknown-victim", ["run", "--victim", "nosuch", "--attack", "fgsm"], ["unknown victim 'nosuch'"]),
    ("run-unknown-attack", ["run", "--victim", "sgn", "--attack", "nosuch"], ["unknown attack 'nosuch'"]),
    ("run-unknown-defense", ["run", "--victim", "sgn", "--attack", "fgsm", "--defense", "nosuch"], ["unknown defense 'nosuch'"]),
    ("run-unknown-dataset", ["run", "--victim", "sgn", "--attack", "fgsm", "--dataset", "nosuch"], ["unknown dataset 'nosuch'"]),
    ("run-unknown-surrogate", ["run", "--victim", "sgn", "--attack", "fgsm", "--surrogate", "nosuch"], ["unknown surrogate 'nosuch'"]),
    ("run-unknown-second-surrogate", ["run", "--victim", "sgn", "--attack", "fgsm", "--surrogate", "stgcn,nosuch"],
     ["unknown surrogate 'nosuch'"]),
    ("run-dataset-needs-path", ["run", "--victim", "stgcn", "--attack", "fgsm", "--dataset", "npz"], ["--data-path"]),
    ("run-no-shipped-weights", ["run", "--victim", "stgcn", "--attack", "fgsm", "--data-path", "{ws}/nan.npz"],
     ["no pretrained weights of victim 'stgcn'", "--checkpoint"]),
    ("run-surrogate-without-weights", ["run", "--victim", "sgn", "--attack", "fgsm", "--surrogate", "stgcn,tiny-test-victim"],
     ["surrogate 'tiny-test-victim'", "--surrogate-checkpoint"]),
    # ---- run: options that would be ignored or make no sense
    ("run-own-surrogate", ["run", "--victim", "sgn", "--attack", "fgsm", "--surrogate", "sgn"], ["own surrogate", "drop --surrogate"]),
    ("run-surrogate-ckpt-without-surrogate", ["run", "--victim", "sgn", "--attack", "fgsm", "--surrogate-checkpoint", "{ws}/plain.pt"],
     ["--surrogate-checkpoint", "no --surrogate"]),
    ("run-surrogate-ckpt-count", ["run", "--victim", "sgn", "--attack", "fgsm", "--surrogate", "stgcn,ctrgcn",
                                  "--surrogate-checkpoint", "{ws}/plain.pt"], ["one per surrogate"]),
    ("run-surrogate-ckpt-missing", ["run", "--victim", "sgn", "--attack", "fgsm", "--surrogate", "stgcn",
                                    "--surrogate-checkpoint", "{ws}/nope.pt"], ["--surrogate-checkpoint", "does not exist"]),
    ("run-defense-ckpt-without-defense", ["run", "--victim", "sgn", "--attack", "fgsm", "--defense-checkpoint", "{ws}/plain.pt"],
     ["--defense-checkpoint", "no --defense"]),
    ("run-defense-ckpt-inference-defense", ["run", "--victim", "sgn", "--attack", "fgsm", "--defense", "bone-project",
                                            "--defense-checkpoint", "{ws}/plain.pt"], ["inference time", "--defense-checkpoint"]),
    ("run-defense-ckpt-missing", ["run", "--victim", "stgcn", "--attack", "fgsm", "--defense", "trades",
                                  "--defense-checkpoint", "{ws}/nope.pt"], ["--defense-checkpoint", "does not exist"]),
    ("run-training-defense-without-weights", ["run", "--victim", "agcn", "--attack", "fgsm", "--defense", "trades"],
     ["no trades weights ship for agcn", "--defense-checkpoint"]),
    ("run-queries-white-box", ["run", "--victim", "sgn", "--attack", "fgsm", "--queries", "100"], ["--queries", "ignored"]),
    ("run-nobox-pool-white-box", ["run", "--victim", "sgn", "--attack", "fgsm", "--nobox-pool", "test"], ["--nobox-pool", "ignored"]),
    ("run-eot-without-defense", ["run", "--victim", "sgn", "--attack", "pgd", "--eot-samples", "4"], ["--eot-samples", "ignored"]),
    ("run-transfer-attack-no-surrogate", ["run", "--victim", "sgn", "--attack", "tasar"], ["--surrogate"]),
    ("run-surrogate-for-decision-attack", ["run", "--victim", "sgn", "--attack", "basar", "--surrogate", "stgcn"], ["no surrogate"]),
    ("run-preset-pins-steps", ["run", "--victim", "sgn", "--preset", "standard", "--steps", "3"], ["--preset standard pins"]),
    ("run-bad-attack-opt-name", ["run", "--victim", "sgn", "--attack", "fgsm", "--attack-opt", "nosuch=1"], ["has no --attack-opt nosuch"]),
    ("run-attack-opt-no-value", ["run", "--victim", "sgn", "--attack", "fgsm", "--attack-opt", "decay"], ["key=value"]),
    ("run-early-stop", ["run", "--victim", "sgn", "--attack", "fgsm", "--early-stop", "sometimes"], ["--early-stop"]),
    # ---- run: numbers in range
    ("run-sanity-negative", ["run", "--victim", "sgn", "--attack", "fgsm", "--sanity-samples", "-1"], ["--sanity-samples", "at least 0"]),
    ("run-n-samples-zero", ["run", "--victim", "sgn", "--n-samples", "0"], ["--n-samples"]),
    ("run-n-samples-text", ["run", "--victim", "sgn", "--n-samples", "many"], ["--n-samples"]),
    ("run-eps-negative", ["run", "--victim", "sgn", "--eps", "-0.01"], ["--eps"]),
    ("run-eps-text", ["run", "--victim", "sgn", "--eps", "big"], ["--eps"]),
    ("run-steps-zero", ["run", "--victim", "sgn", "--steps", "0"], ["--steps"]),
    ("run-step-size-inf", ["run", "--victim", "sgn", "--step-size", "inf"], ["--step-size"]),
    ("run-batch-size-zero", ["run", "--victim", "sgn", "--batch-size", "0"], ["--batch-size"]),
    ("run-seed-negative", ["run", "--victim", "sgn", "--attack", "fgsm", "--seed", "-1"], ["--seed"]),
    ("run-device", ["run", "--victim", "sgn", "--device", "tpu"], ["--device"]),
    ("run-unit", ["run", "--victim", "sgn", "--unit", "km"], ["--unit"]),
    # ---- run: files and folders
    ("run-results-dir-is-file", ["run", "--victim", "sgn", "--attack", "fgsm", "--results-dir", "{ws}/afile"], ["--results-dir", "is a file"]),
    ("run-results-dir-under-file", ["run", "--victim", "sgn", "--attack", "fgsm", "--results-dir", "{ws}/afile/sub"],
     ["--results-dir", "is a file, not a folder"]),
    ("run-checkpoint-missing", ["run", "--victim", "sgn", "--attack", "fgsm", "--checkpoint", "{ws}/nope.pt"], ["--checkpoint", "does not exist"]),
    ("run-checkpoint-folder", ["run", "--victim", "sgn", "--attack", "fgsm", "--checkpoint", "{ws}/adir"], ["--checkpoint", "folder"]),
    ("run-checkpoint-unsafe", ["run", "--victim", "sgn", "--attack", "fgsm", "--checkpoint", "{ws}/unsafe.pt"],
     ["NOT loaded", "code or Python objects", "torch.save(model.state_dict(), path)"]),
    ("run-data-path-missing", ["run", "--victim", "sgn", "--attack", "fgsm", "--data-path", "{ws}/nope.npz"], ["--data-path", "does not exist"]),
    ("run-data-inf-outside-evaluated", ["run", "--victim", "stgcn", "--attack", "fgsm", "--data-path", "{ws}/some_inf.npz",
                                        "--checkpoint", "{ws}/plain.pt"], ["infinite or NaN coordinates", "000004"]),
    ("run-data-inf-everywhere", ["run", "--victim", "stgcn", "--attack", "fgsm", "--data-path", "{ws}/all_inf.npz",
                                 "--checkpoint", "{ws}/plain.pt"], ["infinite or NaN coordinates"]),
    ("run-data-nan", ["run", "--victim", "stgcn", "--attack", "fgsm", "--data-path", "{ws}/nan.npz", "--checkpoint", "{ws}/plain.pt"],
     ["infinite or NaN coordinates"]),
    # ---- transfer
    ("transfer-unknown-second-surrogate", ["transfer", "--attack", "ifgsm", "--surrogates", "sgn,nosuch", "--victims", "sgn"],
     ["unknown surrogate 'nosuch'"]),
    ("transfer-unknown-surrogate-in-ensemble", ["transfer", "--attack", "ifgsm", "--surrogates", "sgn+nosuch", "--victims", "sgn"],
     ["unknown surrogate 'nosuch'"]),
    ("transfer-unknown-second-victim", ["transfer", "--attack", "ifgsm", "--surrogates", "sgn", "--victims", "sgn,nosuch"],
     ["unknown victim 'nosuch'"]),
    ("transfer-second-victim-without-weights", ["transfer", "--attack", "ifgsm", "--surrogates", "sgn",
                                                "--victims", "sgn,tiny-test-victim"], ["victim 'tiny-test-victim'"]),
    ("transfer-heatmap-under-file", ["transfer", "--attack", "ifgsm", "--surrogates", "sgn", "--victims", "sgn",
                                     "--heatmap", "{ws}/afile/h.png"], ["--heatmap", "is a file"]),
    ("transfer-heatmap-folder", ["transfer", "--attack", "ifgsm", "--surrogates", "sgn", "--victims", "sgn",
                                 "--heatmap", "{ws}/adir"], ["--heatmap"]),
    ("transfer-heatmap-suffix", ["transfer", "--attack", "ifgsm", "--surrogates", "sgn", "--victims", "sgn",
                                 "--heatmap", "{ws}/h.txt"], ["--heatmap", ".png"]),
    ("transfer-two-budgets", ["transfer", "--attack", "ifgsm", "--surrogates", "sgn", "--eps", "0.01,0.02"], ["one --eps"]),
    ("transfer-results-dir-file", ["transfer", "--attack", "ifgsm", "--surrogates", "sgn", "--victims", "sgn",
                                   "--results-dir", "{ws}/afile"], ["--results-dir"]),
    ("transfer-empty-surrogates", ["transfer", "--attack", "ifgsm", "--surrogates", ",", "--victims", "sgn"], ["--surrogates"]),
    ("transfer-duplicate-in-ensemble", ["transfer", "--attack", "ifgsm", "--surrogates", "sgn+sgn", "--victims", "sgn"], ["twice"]),
    ("transfer-queries", ["transfer", "--attack", "ifgsm", "--surrogates", "sgn", "--victims", "sgn", "--queries", "9"], ["--queries"]),
    ("transfer-missing-surrogates", ["transfer", "--attack", "ifgsm"], ["--surrogates"]),
    # ---- sweep
    ("sweep-missing-grid", ["sweep", "{ws}/grids/nope.toml"], ["cannot read the grid"]),
    ("sweep-invalid-toml", ["sweep", "{ws}/grids/broken.toml"], ["not valid TOML"]),
    ("sweep-unknown-key", ["sweep", "{ws}/grids/key.toml"], ["unknown key 'victim_count'"]),
    ("sweep-unknown-second-victim", ["sweep", "{ws}/grids/second_victim.toml"], ["unknown victim 'nosuch'"]),
    ("sweep-unknown-surrogate", ["sweep", "{ws}/grids/surrogate.toml"], ["unknown surrogate 'nosuch'"]),
    ("sweep-unknown-defense", ["sweep", "{ws}/grids/defense.toml"], ["unknown defense 'nosuch'"]),
    ("sweep-unknown-attack", ["sweep", "{ws}/grids/attack.toml"], ["unknown attack 'nosuch'"]),
    ("sweep-negative-budget", ["sweep", "{ws}/grids/budget.toml"], ["budgets"]),
    ("sweep-wrong-type", ["sweep", "{ws}/grids/type.toml"], ["--n-samples"]),
    ("sweep-device-not-text", ["sweep", "{ws}/grids/device_type.toml"], ["'device'", "text"]),
    ("sweep-negative-sanity", ["sweep", "{ws}/grids/sanity.toml"], ["--sanity-samples"]),
    ("sweep-results-dir-file", ["sweep", "{ws}/grids/results_file.toml"], ["--results-dir", "is a file"]),
    ("sweep-no-victims", ["sweep", "{ws}/grids/no_victims.toml"], ["victims"]),
    ("sweep-plugins-not-list", ["sweep", "{ws}/grids/plugins.toml"], ["plugins must be a list"]),
    ("sweep-plugin-missing", ["sweep", "{ws}/grids/plugin_missing.toml"], ["no_such_module_xyz"]),
    ("sweep-address-without-ray", ["sweep", "{ws}/grids/second_victim.toml", "--address", "x:1"], ["--address"]),
    ("sweep-grid-is-folder", ["sweep", "{ws}/grids"], ["cannot read the grid"]),
    # ---- show
    ("show-missing-record", ["show", "{ws}/nope.json", "--sample", "S000"], ["does not exist"]),
    ("show-record-folder", ["show", "{ws}/adir", "--sample", "S000"], ["is a folder"]),
    ("show-record-garbage", ["show", "{ws}/rec/runs/garbage.json", "--sample", "S000"], ["cannot read record"]),
    ("show-record-wrong-type", ["show", "{ws}/rec/runs/wrong_type.json", "--sample", "S000"],
     ["wrong_type.json", "metrics.attack_success_rate.value"]),
    ("show-record-missing-field", ["show", "{ws}/rec/runs/missing_seed.json", "--sample", "S000"], ["missing_seed.json", "'seed'"]),
    ("show-record-short-samples", ["show", "{ws}/rec/runs/short_samples.json", "--sample", "S000"], ["samples.success"]),
    ("show-no-adversarial", ["show", "{ws}/rec/runs/no_adv.json", "--sample", "S000"], ["--save-adversarial"]),
    ("show-corrupt-adversarial", ["show", "{ws}/rec/runs/corrupt_adv.json", "--sample", "S000"], ["not a readable adversarial-clips file"]),
    ("show-out-under-file", ["show", "{ws}/rec/runs/corrupt_adv.json", "--sample", "S000", "--out", "{ws}/afile/x.gif"],
     ["--out", "is a file"]),
    ("show-out-folder", ["show", "{ws}/rec/runs/corrupt_adv.json", "--sample", "S000", "--out", "{ws}/folder.gif"], ["--out", "is a folder"]),
    ("show-out-suffix", ["show", "{ws}/rec/runs/corrupt_adv.json", "--sample", "S000", "--out", "{ws}/x.png"], [".gif or .mp4"]),
    ("show-missing-sample-flag", ["show", "{ws}/rec/runs/corrupt_adv.json"], ["--sample"]),
    # ---- reproduce
    ("reproduce-missing-record", ["reproduce", "{ws}/nope.json"], ["does not exist"]),
    ("reproduce-seed-text", ["reproduce", "{ws}/rec/runs/seed_text.json"], ["seed_text.json", "'seed'", "whole number"]),
    ("reproduce-schema-version", ["reproduce", "{ws}/rec/runs/version99.json"], ["schema version 99"]),
    ("reproduce-not-an-object", ["reproduce", "{ws}/rec/runs/array.json"], ["not a run record"]),
    ("reproduce-victim-name-type", ["reproduce", "{ws}/rec/runs/victim_name_int.json"], ["victim.name"]),
    ("reproduce-unknown-victim", ["reproduce", "{ws}/rec/runs/unknown_victim.json"], ["unknown victim 'nosuch'"]),
    ("reproduce-config-wrong-type", ["reproduce", "{ws}/rec/runs/targeted_text.json"], ["'targeted'", "true or false"]),
    ("reproduce-bad-n-samples", ["reproduce", "{ws}/rec/runs/bad_n.json"], ["--n-samples"]),
    ("reproduce-not-a-run", ["reproduce", "{ws}/rec/runs/not_run.json"], ["cannot be reproduced"]),
    ("reproduce-results-dir-file", ["reproduce", "{ws}/results/runs/good.json", "--results-dir", "{ws}/afile"], ["--results-dir"]),
    ("reproduce-device", ["reproduce", "{ws}/results/runs/good.json", "--device", "tpu"], ["--device"]),
    # ---- leaderboard
    ("leaderboard-missing-folder", ["leaderboard", "--results-dir", "{ws}/nope"], ["not a folder"]),
    ("leaderboard-wrong-type", ["leaderboard", "--results-dir", "{ws}/board_wrong"], ["attack.eps", "--skip-invalid"]),
    ("leaderboard-array", ["leaderboard", "--results-dir", "{ws}/board_array"], ["not a run record"]),
    ("leaderboard-garbage", ["leaderboard", "--results-dir", "{ws}/board_garbage"], ["cannot read record"]),
    ("leaderboard-needs-split", ["leaderboard", "--results-dir", "{ws}/board_nosplit"], ["dataset.split"]),
    ("leaderboard-empty", ["leaderboard", "--results-dir", "{ws}/board_empty"], ["no valid run records"]),
    ("leaderboard-only-invalid-skipped", ["leaderboard", "--results-dir", "{ws}/board_wrong", "--skip-invalid", "--formats", "csv"],
     ["no valid run records"]),
    ("leaderboard-format", ["leaderboard", "--results-dir", "{ws}/results", "--formats", "pdf"], ["unknown leaderboard format pdf"]),
    ("leaderboard-ci-style", ["leaderboard", "--results-dir", "{ws}/results", "--ci-style", "x"], ["--ci-style"]),
    ("leaderboard-output-is-folder", ["leaderboard", "--results-dir", "{ws}/board_mddir"], ["leaderboard.md", "is a folder"]),
    ("leaderboard-results-dir-file", ["leaderboard", "--results-dir", "{ws}/afile"], ["not a folder"]),
    # ---- train
    ("train-out-under-file", ["train", "--victim", "sgn", "--epochs", "1", "--out", "{ws}/afile/w.pt", "--device", "cpu"], ["--out", "is a file"]),
    ("train-out-folder", ["train", "--victim", "sgn", "--epochs", "1", "--out", "{ws}/adir", "--device", "cpu"], ["--out", "folder"]),
    ("train-unknown-victim", ["train", "--victim", "nosuch", "--out", "{ws}/w.pt"], ["unknown victim 'nosuch'"]),
    ("train-unknown-dataset", ["train", "--victim", "sgn", "--dataset", "nosuch", "--out", "{ws}/w.pt"], ["unknown dataset 'nosuch'"]),
    ("train-epochs-zero", ["train", "--victim", "sgn", "--epochs", "0"], ["--epochs"]),
    ("train-lr-negative", ["train", "--victim", "sgn", "--lr", "-1"], ["--lr"]),
    ("train-data-path-missing", ["train", "--victim", "sgn", "--data-path", "{ws}/nope.npz", "--out", "{ws}/w.pt"], ["--data-path"]),
    ("train-device", ["train", "--victim", "sgn", "--device", "tpu", "--out", "{ws}/w.pt"], ["--device"]),
    # ---- defend
    ("defend-opt-not-a-number", ["defend", "--victim", "stgcn", "--defense", "trades", "--defense-opt", "beta=abc",
                                 "--out", "{ws}/d.pt", "--device", "cpu"], ["--defense-opt", "abc"]),
    ("defend-opt-unknown", ["defend", "--victim", "stgcn", "--defense", "trades", "--defense-opt", "nosuch=1",
                            "--out", "{ws}/d.pt", "--device", "cpu"], ["--defense-opt"]),
    ("defend-inference-defense", ["defend", "--victim", "stgcn", "--defense", "bone-project", "--out", "{ws}/d.pt"], ["inference time"]),
    ("defend-unknown-defense", ["defend", "--victim", "stgcn", "--defense", "nosuch", "--out", "{ws}/d.pt"], ["unknown defense 'nosuch'"]),
    ("defend-out-under-file", ["defend", "--victim", "stgcn", "--defense", "trades", "--out", "{ws}/afile/d.pt", "--device", "cpu"],
     ["--out", "is a file"]),
    ("defend-checkpoint-missing", ["defend", "--victim", "stgcn", "--defense", "trades", "--checkpoint", "{ws}/nope.pt",
                                   "--out", "{ws}/d.pt", "--device", "cpu"], ["--checkpoint", "does not exist"]),
    ("defend-unknown-victim", ["defend", "--victim", "nosuch", "--defense", "trades", "--out", "{ws}/d.pt"], ["unknown victim 'nosuch'"]),
    ("defend-missing-defense", ["defend", "--victim", "stgcn"], ["--defense"]),
    # ---- prepare
    ("prepare-white-box", ["prepare", "--attack", "pgd", "--device", "cpu"], ["trains nothing ahead of time"]),
    ("prepare-unknown-surrogate", ["prepare", "--attack", "tasar", "--surrogate", "nosuch", "--device", "cpu"], ["unknown surrogate 'nosuch'"]),
    ("prepare-no-surrogate", ["prepare", "--attack", "tasar", "--device", "cpu"], ["--surrogate"]),
    ("prepare-unknown-attack", ["prepare", "--attack", "nosuch"], ["unknown attack 'nosuch'"]),
    # ---- list, bench, and the parser itself
    ("list-extra-argument", ["list", "--bogus"], ["unrecognized arguments"]),
    ("bench-nothing-to-time", ["bench"], ["exactly one of"]),
    ("bench-unknown-attack", ["bench", "--attack", "nosuch"], ["unknown attack 'nosuch'"]),
    ("bench-unknown-victim", ["bench", "--victims", "nosuch"], ["unknown victim 'nosuch'"]),
    ("bench-unknown-surrogate", ["bench", "--attack", "tasar", "--surrogate", "nosuch"], ["unknown surrogate 'nosuch'"]),
    # ---- describe
    ("describe-unknown-dataset", ["describe", "nosuch"], ["unknown dataset 'nosuch'"]),
    ("describe-out-under-file", ["describe", "synth", "--out", "{ws}/afile/classes.png"], ["--out", "is a file"]),
    ("describe-out-is-folder", ["describe", "synth", "--out", "{ws}/adir"], ["--out", "is a folder"]),
    ("no-command", [], ["command"]),
    ("unknown-command", ["frobnicate"], ["invalid choice"]),
]


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _argv(argv: list[str], ws: Path) -> list[str]:
    out = [a.replace("{ws}", str(ws)) for a in argv]
    if out and out[0] in ("run", "transfer") and "--results-dir" not in out:  # prepare writes to the artefact cache
        out += ["--results-dir", str(ws / "results")]
    if out and out[0] in ("run", "transfer"):
        for flag, value in zip(QUICK[::2], QUICK[1::2]):
            if flag not in out:
                out += [flag, value]
    return out


def test_the_table_covers_every_command_and_at_least_sixty_cases():
    commands = {argv[0] for _, argv, _ in CASES if argv}
    assert {"run", "transfer", "sweep", "show", "reproduce", "leaderboard", "train", "defend", "prepare", "list", "bench"} <= commands
    assert len(CASES) >= 60
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("argv,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing_behind(ws, capsys, argv, needles):
    before = _files(ws)
    code = main(_argv(argv, ws))
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code != 0 and code != 130
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "weights_only=False" not in lines[0]
    assert "millimetres" not in lines[0] or "infinite" not in " ".join(needles)
    assert _files(ws) == before, "a refused command changed the workspace"


def test_skip_invalid_lists_each_skipped_record(ws, tmp_path, capsys):
    """With --skip-invalid the leaderboard builds from the valid records and names every one it left out."""
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    (results / "runs" / "good.json").write_text(json.dumps(_valid_record()))
    (results / "runs" / "bad.json").write_text(json.dumps({**_valid_record(), "seed": "zero"}))
    code = main(["leaderboard", "--results-dir", str(results), "--formats", "csv"])
    err = capsys.readouterr().err
    assert code == 2 and "bad.json" in err and "'seed'" in err and "--skip-invalid" in err
    assert not (results / "leaderboard.csv").exists()
    code = main(["leaderboard", "--results-dir", str(results), "--formats", "csv", "--skip-invalid"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.count("skipped invalid record") == 1 and "bad.json" in captured.err
    assert "1 invalid record(s) skipped" in captured.out
    assert (results / "leaderboard.csv").is_file()
