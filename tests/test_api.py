"""The Python API (README, "Python API"): the example runs as printed, and each function keeps its contract."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import robustbench_skel as rb
from robustbench_skel.budget import budget_size, valid_mask
from robustbench_skel.errors import UserError

from conftest import make_clips

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VICTIM = "sgn"  # the fastest victim with shipped synth weights


def _api_example() -> str:
    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the README's Python API section holds one example"
    return blocks[0]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("api-results")


@pytest.fixture(scope="module")
def record(bench_dir) -> dict:
    """One tiny benchmark, shared by the tests of its record."""
    with pytest.MonkeyPatch.context() as mp:  # the module fixture cannot use conftest's per-test cache setting
        mp.setenv("ROBUSTBENCH_SKEL_CACHE", str(bench_dir.parent / "cache"))
        return rb.benchmark(victim=VICTIM, attack="pgd", eps=0.02, steps=2, n_samples=4, sanity_samples=0,
                            device="cpu", results_dir=str(bench_dir))


# --- the README example ---------------------------------------------------------------------------------

def test_the_readme_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the example writes into ./results, as `run` does
    namespace: dict = {}
    exec(compile(_api_example(), "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert re.search(r"accuracy: clean \d+%, under PGD \d+%", out)
    assert 0 <= namespace["robust"] <= namespace["clean"] <= 1
    written = list((tmp_path / "results" / "runs").glob("*.json"))
    assert len(written) == 1
    assert json.loads(written[0].read_text()) == namespace["record"]
    assert namespace["record"]["config"]["victim"] == "sgn" and namespace["record"]["config"]["n_samples"] == 8


# --- the package ------------------------------------------------------------------------------------------

def test_the_api_is_exported_and_the_package_import_stays_light():
    from robustbench_skel import api
    from robustbench_skel.board.leaderboard import load_results

    for name in ("load_victim", "load_clips", "get_attack", "benchmark", "load_results"):
        assert getattr(rb, name) is getattr(api, name) and name in rb.__all__ and name in dir(rb)
    assert rb.load_results is load_results
    code = ("import sys, robustbench_skel; "
            "print(sorted(m for m in ('robustbench_skel.api', 'pandas', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    with pytest.raises(AttributeError):
        rb.no_such_function  # noqa: B018


# --- load_victim ------------------------------------------------------------------------------------------

def test_load_victim_returns_the_shipped_model_in_eval_mode():
    model = rb.load_victim(VICTIM)
    assert not model.training and not any(m.training for m in model.modules())
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    clips, labels = rb.load_clips(n=4)
    with torch.no_grad():
        logits = model(clips)
    assert logits.shape == (4, model.num_classes)
    auto = rb.load_victim(VICTIM, device="auto")
    assert next(auto.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_load_victim_loads_a_checkpoint_strictly(tmp_path):
    shipped = rb.load_victim(VICTIM)
    path = tmp_path / "weights.pt"
    torch.save(shipped.state_dict(), path)
    mine = rb.load_victim(VICTIM, checkpoint=path)
    clips, _ = rb.load_clips(n=2)
    with torch.no_grad():
        assert torch.equal(mine(clips), shipped(clips))
    extra = tmp_path / "extra.pt"
    torch.save({**shipped.state_dict(), "stray.weight": torch.zeros(1)}, extra)
    with pytest.raises(UserError, match="stray.weight"):
        rb.load_victim(VICTIM, checkpoint=extra)
    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict": shipped.state_dict(), "note": Path("a python object")}, pickled)
    with pytest.raises(UserError, match="NOT loaded"):  # weights_only=True: no Python object is unpickled
        rb.load_victim(VICTIM, checkpoint=pickled)


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "stgnc"}, "unknown victim 'stgnc'; did you mean 'stgcn'"),
    ({"name": "sgn", "dataset": "synht"}, "unknown dataset 'synht'"),
    ({"name": "sgn", "checkpoint": "missing.pt"}, "checkpoint 'missing.pt' does not exist"),
    ({"name": "sgn", "device": "tpu"}, "must be auto, cpu or cuda"),
])
def test_load_victim_refuses_bad_input_in_one_line(kwargs, message):
    with pytest.raises(UserError, match=re.escape(message)) as caught:
        rb.load_victim(**kwargs)
    assert "\n" not in str(caught.value)


# --- load_clips -------------------------------------------------------------------------------------------

def test_load_clips_gives_metres_in_the_runs_order(record):
    clips, labels = rb.load_clips("synth", split="test", n=4)
    assert clips.shape == (4, 3, 64, 25, 2) and clips.dtype == torch.float32
    assert labels.shape == (4,) and labels.dtype == torch.int64
    assert clips.abs().max() < 5  # metres: a body fits in a few of them
    assert labels.tolist() == record["samples"]["label"]  # the clips `run --n-samples 4` evaluates
    every, every_label = rb.load_clips()
    assert every.shape[0] == record["dataset"]["num_samples"] and torch.equal(every[:4], clips)
    assert torch.equal(every_label[:4], labels)


@pytest.mark.parametrize("kwargs, message", [
    ({"dataset": "synht"}, "unknown dataset 'synht'"),
    ({"split": "val"}, "has no split 'val'"),
    ({"n": 0}, "must be a whole number of at least 1"),
    ({"dataset": "npz"}, "reads your files"),
    ({"dataset": "npz", "data_path": "missing.npz"}, "does not exist"),
])
def test_load_clips_refuses_bad_input(kwargs, message):
    with pytest.raises(UserError, match=re.escape(message)):
        rb.load_clips(**kwargs)


# --- get_attack -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, eps", [("pgd", 0.01), ("pgd-l2", 0.02), ("fgsm", 0.005)])
def test_get_attack_returns_a_callable_within_its_budget(tiny_victim, name, eps):
    attack = rb.get_attack(name, eps=eps)
    x = make_clips(n=4, t=10)
    labels = tiny_victim(x).argmax(1)
    adv = attack(tiny_victim, x, labels)
    assert adv.shape == x.shape and adv.device == x.device and not adv.requires_grad
    size = budget_size(adv - x, valid_mask(x), attack.norm)
    assert torch.all(size <= eps + 1e-6) and size.max() > eps / 2  # it moves, and stays within eps
    assert torch.equal(adv[..., 1], x[..., 1])  # the absent second person is never perturbed


def test_get_attack_hyperparameters_override_the_defaults(tiny_victim):
    attack = rb.get_attack("pgd", eps=0.03, steps=3, step_size=0.02)
    assert {k: attack.hyperparameters()[k] for k in ("eps", "steps", "step_size")} == {"eps": 0.03, "steps": 3, "step_size": 0.02}
    targeted = rb.get_attack("pgd", eps=0.05, steps=5, targeted=True)
    x = make_clips(n=4, t=10)
    labels = tiny_victim(x).argmax(1)
    adv = targeted(tiny_victim, x, labels, (labels + 1) % 5)
    assert adv.shape == x.shape


def test_get_attack_refuses_unknown_names_and_hyperparameters():
    with pytest.raises(UserError, match=re.escape("unknown attack 'pgx'; did you mean 'pgd'")):
        rb.get_attack("pgx")
    with pytest.raises(UserError) as caught:
        rb.get_attack("pgd", epsilon=0.01)
    assert "no hyperparameter 'epsilon'" in str(caught.value)
    assert "eps, steps, step_size, targeted, seed, step_rule" in str(caught.value)  # the allowed ones, named
    with pytest.raises(UserError, match=re.escape("benchmark(victim=..., attack='tasar', surrogate='stgcn')")):
        rb.get_attack("tasar")
    with pytest.raises(UserError, match="decision-based"):
        rb.get_attack("basar")


# --- benchmark --------------------------------------------------------------------------------------------

def test_benchmark_returns_the_record_it_writes(record, bench_dir):
    assert {"schema_version", "run_id", "command", "config", "victim", "dataset", "attack", "threat", "metrics",
            "flags", "samples", "timing", "environment"} <= set(record)
    assert record["victim"]["name"] == VICTIM and record["attack"]["name"] == "pgd"
    assert record["attack"]["eps"] == 0.02 and record["attack"]["hyperparameters"]["steps"] == 2
    assert record["dataset"]["num_evaluated"] == 4
    assert {"clean_accuracy", "attack_success_rate", "robust_accuracy"} <= set(record["metrics"])
    (path,) = [p for p in (bench_dir / "runs").glob("*.json") if json.loads(p.read_text())["run_id"] == record["run_id"]]
    assert json.loads(path.read_text()) == record
    assert record["command"].startswith(f"python -m robustbench_skel run --victim {VICTIM} --attack pgd --eps 0.02 ")


def test_benchmark_runs_exactly_what_the_command_runs(record, bench_dir, capsys):
    """The command line the record names, run through the CLI, gives the same configuration and results."""
    from robustbench_skel.commands.cli import main

    assert main(shlex.split(record["command"])[3:]) == 0
    printed = Path(capsys.readouterr().out.strip().splitlines()[-1])
    cli_record = json.loads(printed.read_text())
    assert cli_record["run_id"] != record["run_id"]
    for key in ("config", "attack", "victim", "dataset", "threat", "metrics", "flags", "samples"):
        assert cli_record[key] == record[key], key


def test_benchmark_with_write_false_writes_nothing(tmp_path):
    out = tmp_path / "results"
    record = rb.benchmark(victim=VICTIM, attack="fgsm", eps=np.float64(0.01), n_samples=2, sanity_samples=0,
                          device="cpu", results_dir=str(out), write=False, resume=False)
    assert record["attack"]["name"] == "fgsm" and record["attack"]["eps"] == 0.01
    assert record["config"]["resume"] is False and "--no-resume" in record["command"]
    assert not out.exists() or not any(out.rglob("*.json"))


def test_benchmark_passes_attack_options_as_python_values(tmp_path):
    record = rb.benchmark(victim=VICTIM, attack="mifgsm", eps=0.01, steps=1, n_samples=2, sanity_samples=0,
                          device="cpu", results_dir=str(tmp_path), write=False, attack_opt={"decay": 0.5})
    assert record["attack"]["hyperparameters"]["decay"] == 0.5
    assert "--attack-opt decay=0.5" in record["command"]


@pytest.mark.parametrize("kwargs, message", [
    ({"victim": "stgnc"}, "unknown victim 'stgnc'"),
    ({"attack": "pgx"}, "unknown attack 'pgx'"),
    ({"n_sample": 8}, "benchmark has no option 'n_sample'; did you mean 'n_samples'"),
    ({"steps": 0}, "--steps: expected a number of at least 1, got 0"),
    ({"eps": [0.01, 0.02]}, "benchmark runs one budget"),
    ({"attack_opt": {"bogus": 1}}, "has no --attack-opt bogus=... option"),
    ({"attack_opt": "decay=0.5"}, "attack_opt takes a dict"),
    ({"queries": 10}, "--queries is a decision-based attack's query budget"),
    ({"write": False, "save_adversarial": True}, "write=False writes nothing"),
])
def test_benchmark_refuses_bad_input_before_any_work(tmp_path, kwargs, message):
    out = tmp_path / "results"
    with pytest.raises(UserError, match=re.escape(message)) as caught:
        rb.benchmark(**{"victim": VICTIM, "results_dir": str(out), **kwargs})
    assert "\n" not in str(caught.value)
    assert not out.exists()


# --- load_results -----------------------------------------------------------------------------------------

def test_load_results_reads_the_records(record, bench_dir):
    files = {json.loads(p.read_text())["run_id"]: p.name for p in (bench_dir / "runs").glob("*.json")}
    df = rb.load_results(bench_dir)
    assert sorted(df["record"]) == sorted(files.values())  # one row per record
    row = df[df["record"] == files[record["run_id"]]].iloc[0]
    assert row["victim"] == VICTIM and row["attack"] == "pgd" and row["eps"] == 0.02
    assert row["robust_accuracy"] == pytest.approx(record["metrics"]["robust_accuracy"]["value"])


@pytest.mark.parametrize("where", ["empty", "missing"])
def test_load_results_refuses_a_path_without_records(tmp_path, where):
    path = tmp_path / where
    if where == "empty":
        (path / "runs").mkdir(parents=True)
    with pytest.raises(UserError, match="no run records in"):
        rb.load_results(path)
