"""Per-batch progress: a killed run resumes from its last finished batch and gives the same record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from conftest import make_clips
from robustbench_skel.run.progress import BatchCheckpoint, progress_key
from robustbench_skel.run.record import read_record
from robustbench_skel.registry import ATTACKS
from robustbench_skel.run.runner import RunConfig, run_benchmark
from robustbench_skel.run.crafting import attack_rows

TESTS_DIR = Path(__file__).parent


def test_progress_key_ignores_where_the_record_goes():
    base = RunConfig(victim="tiny-test-victim")
    key = progress_key(base, 32, "abc", "ids")
    assert progress_key(replace(base, results_dir="elsewhere", sweep={"id": "x"}, resume=False), 32, "abc", "ids") == key
    assert progress_key(replace(base, seed=1), 32, "abc", "ids") != key
    assert progress_key(base, 16, "abc", "ids") != key  # another batch size: other batch boundaries
    assert progress_key(base, 32, "other weights", "ids") != key


def test_attack_rows_takes_back_finished_batches(tiny_victim, tmp_path):
    x, y = make_clips(n=6), torch.arange(6) % 5
    rows = torch.arange(6)
    attack = ATTACKS.get("pgd")(eps=0.02, steps=3)  # random start: later batches depend on the generator state
    cpu = torch.device("cpu")
    whole = attack_rows(attack, tiny_victim, x, y, None, rows, 2, cpu, 0)
    first = BatchCheckpoint(tmp_path / "p")
    attack_rows(attack, tiny_victim, x, y, None, rows, 2, cpu, 0, checkpoint=first,
                after_batch=lambda b, given: {"visited": b * 10})
    assert len(list((tmp_path / "p").glob("batch-*.pt"))) == 3
    (tmp_path / "p" / "batch-000002.pt").unlink()  # as if killed during the last batch
    again = BatchCheckpoint(tmp_path / "p")
    resumed = attack_rows(attack, tiny_victim, x, y, None, rows, 2, cpu, 0, checkpoint=again,
                          after_batch=lambda b, given: {"visited": b * 10})
    assert again.resumed == 2
    assert torch.equal(resumed.adv, whole.adv)
    assert torch.equal(resumed.iterations, whole.iterations)
    assert resumed.extra["visited"].tolist() == [0, 10, 20, 30, 40, 50]
    again.discard()
    assert not (tmp_path / "p").exists()


def test_a_resumed_run_continues_the_noise_streams_of_a_randomized_defense(tiny_victim, tmp_path):
    """Randomized smoothing draws from generators of its own: the progress saves them, and a resumed run
    (a fresh model, as a new process builds) draws the noise an uninterrupted run drew."""
    from robustbench_skel.defenses.randomized_smoothing import SmoothedClassifier

    def smoothed() -> SmoothedClassifier:
        return SmoothedClassifier(tiny_victim, 5, sigma=0.05, n=4, alpha=0.001, seed=3, batch_size=8, bpda=True)

    x, y = make_clips(n=6), torch.arange(6) % 5
    rows, cpu = torch.arange(6), torch.device("cpu")
    attack = ATTACKS.get("pgd")(eps=0.02, steps=3)
    attack.eot_samples, attack.early_stop = 2, "none"  # every step draws noise, whatever the clip
    whole = attack_rows(attack, smoothed(), x, y, None, rows, 2, cpu, 0)

    def resumed(restart_streams: bool) -> torch.Tensor:
        folder = tmp_path / f"p{restart_streams}"
        attack_rows(attack, smoothed(), x, y, None, rows, 2, cpu, 0, checkpoint=BatchCheckpoint(folder))
        (folder / "batch-000002.pt").unlink()  # as if killed during the last batch
        model = smoothed()
        if restart_streams:  # what a resume without the saved streams would do
            model.set_random_state = lambda states: None
        again = BatchCheckpoint(folder)
        out = attack_rows(attack, model, x, y, None, rows, 2, cpu, 0, checkpoint=again).adv
        assert again.resumed == 2
        return out

    assert torch.equal(resumed(restart_streams=False), whole.adv)
    assert not torch.equal(resumed(restart_streams=True), whole.adv)  # so the test above can fail


def _launcher(tmp_path: Path) -> Path:
    """A script that registers the test victim (tests/conftest.py) and runs the CLI."""
    script = tmp_path / "launch.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(TESTS_DIR)!r})\nimport conftest  # noqa: F401\n"
                      "from robustbench_skel.commands.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    return script


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _results(record: dict) -> dict:
    return {k: record[k] for k in ("metrics", "samples", "flags", "sanity", "attack", "dataset")}


ARGS = ["--victim", "tiny-test-victim", "--attack", "pgd", "--steps", "100", "--n-samples", "32", "--batch-size", "2",
        "--device", "cpu", "--sanity-samples", "0"]


def test_kill_9_then_resume_gives_the_uninterrupted_record(tmp_path, trained_tiny_checkpoint):
    results = tmp_path / "results"
    command = [sys.executable, str(_launcher(tmp_path)), "run", *ARGS, "--checkpoint", str(trained_tiny_checkpoint),
               "--results-dir", str(results)]
    victim = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not list(results.glob(".progress/*/batch-*.pt")):
        assert victim.poll() is None, f"the run ended before it could be killed: {victim.stderr.read().decode()[-500:]}"
        assert time.monotonic() < deadline, "no batch finished within 180 s"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not list(results.glob("runs/*.json")), "a killed run wrote no record"
    finished = len(list(results.glob(".progress/*/batch-*.pt")))

    done = subprocess.run([*command, "--resume"], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = results.glob("runs/*.json")
    resumed = read_record(path)
    assert resumed["timing"]["resumed_batches"] >= finished >= 1
    assert not (results / ".progress").exists(), "the progress folder goes once the record is written"

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = RunConfig(victim="tiny-test-victim", attack="pgd", steps=100, n_samples=32, batch_size=2, device="cpu",
                           sanity_samples=0, checkpoint=str(trained_tiny_checkpoint), results_dir=str(tmp_path / "ref"))
        reference = run_benchmark(config, write=False).record
    finally:
        torch.set_num_threads(threads)
    assert reference["timing"]["resumed_batches"] == 0
    assert json.dumps(_results(resumed), sort_keys=True) == json.dumps(json.loads(json.dumps(_results(reference))), sort_keys=True)


def test_two_runs_into_one_results_folder_keep_both_records(tmp_path, trained_tiny_checkpoint):
    results = tmp_path / "results"
    command = [sys.executable, str(_launcher(tmp_path)), "run", "--victim", "tiny-test-victim", "--attack", "fgsm",
               "--n-samples", "24", "--batch-size", "4", "--device", "cpu", "--sanity-samples", "0",
               "--checkpoint", str(trained_tiny_checkpoint), "--results-dir", str(results)]
    runs = [subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [r.communicate(timeout=300) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], [err[-1000:] for _, err in outputs]
    paths = sorted(results.glob("runs/*.json"))
    assert len(paths) == 2
    first, second = (read_record(p) for p in paths)
    assert first["run_id"] != second["run_id"]
    assert first["metrics"] == second["metrics"] and first["samples"] == second["samples"]
    assert not list(results.glob("runs/.partial-*")), "no temporary file is left behind"
