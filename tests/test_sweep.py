"""Sweeps: a TOML grid expands into runs, recorded runs are skipped, Ray gives the in-process records."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from robustbench_skel.commands.cli import main
from robustbench_skel.errors import UserError
from robustbench_skel.run.record import read_record
from robustbench_skel.commands.sweep import load_grid, parse_grid, parse_only, pending, restrict, run_sweep

TESTS_DIR = Path(__file__).parent


def _grid(tmp_path: Path, checkpoint: Path, results: Path) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(
        'victims = ["tiny-test-victim"]\nattacks = ["fgsm", "pgd"]\nbudgets = [0.01, 0.02]\n'
        f'checkpoint = "{checkpoint.as_posix()}"\nn_samples = 8\nsteps = 3\nbatch_size = 4\ndevice = "cpu"\n'
        f'sanity_samples = 0\nresults_dir = "{results.as_posix()}"\n'
        f'plugins = ["conftest"]\nplugin_paths = ["{TESTS_DIR.as_posix()}"]\n'
    )
    return path


def test_grid_expands_the_product_of_its_axes():
    grid = parse_grid({"victims": ["a", "b"], "attacks": ["pgd"], "budgets": [0.01, 0.02], "defenses": ["none", "tta"],
                       "surrogates": ["stgcn+ctrgcn"], "n_samples": 5})
    assert len(grid.configs) == 8
    assert {c.defense for c in grid.configs} == {None, "tta"}
    assert all(c.surrogates == ["stgcn", "ctrgcn"] and c.n_samples == 5 for c in grid.configs)
    assert len({c.sweep["id"] for c in grid.configs}) == 1


@pytest.mark.parametrize("data, message", [
    ({"victims": ["a"], "attacks": ["pgd"], "epochs": 3}, "unknown key 'epochs'"),
    ({"victims": ["a"]}, "name the attacks"),
    ({"victims": ["a"], "attacks": ["pgd"], "budgets": [-1]}, "positive numbers"),
    ({"victims": ["a"], "victim": "b", "attacks": ["pgd"]}, "not both"),
])
def test_bad_grids_say_what_is_wrong(data, message):
    with pytest.raises(UserError, match=message):
        parse_grid(data)


def test_sweep_in_process_skips_what_is_recorded(tmp_path, trained_tiny_checkpoint, capsys):
    results = tmp_path / "results"
    grid_path = _grid(tmp_path, trained_tiny_checkpoint, results)
    assert main(["sweep", str(grid_path)]) == 0
    assert len(list(results.glob("runs/*.json"))) == 4
    assert "4 run(s) written, 0 already recorded" in capsys.readouterr().out
    assert pending(load_grid(grid_path).configs) == []
    assert main(["sweep", str(grid_path)]) == 0  # nothing left to run
    assert "0 run(s) written, 4 already recorded" in capsys.readouterr().out


def test_only_runs_part_of_the_grid_and_the_whole_grid_skips_it(tmp_path, trained_tiny_checkpoint, capsys):
    results = tmp_path / "results"
    grid_path = _grid(tmp_path, trained_tiny_checkpoint, results)
    assert main(["sweep", str(grid_path), "--only", "attacks=pgd", "--only", "budgets=0.02"]) == 0
    (written,) = results.glob("runs/*.json")
    record = read_record(written)
    assert (record["attack"]["name"], record["attack"]["eps"]) == ("pgd", 0.02)
    capsys.readouterr()
    assert main(["sweep", str(grid_path)]) == 0
    assert "3 run(s) written, 1 already recorded" in capsys.readouterr().out


@pytest.mark.parametrize("only, message", [
    ({"victims": ["c"]}, "victims: c not in the grid; its victims: a, b"),
    ({"models": ["a"]}, "not a grid axis"),
    ({"budgets": ["0.03"]}, "its budgets: 0.01, 0.02"),
    ({"surrogates": ["stgcn"]}, "its surrogates: none, stgcn\\+ctrgcn"),
])
def test_only_refuses_values_the_grid_lacks(only, message):
    grid = parse_grid({"victims": ["a", "b"], "attacks": ["pgd"], "budgets": [0.01, 0.02],
                       "surrogates": ["none", "stgcn+ctrgcn"]})
    with pytest.raises(UserError, match=message):
        restrict(grid, only)


def test_only_selects_ensembles_and_none():
    grid = parse_grid({"victims": ["a", "b"], "attacks": ["pgd"], "surrogates": ["none", "stgcn+ctrgcn"]})
    kept = restrict(grid, parse_only(["surrogates=stgcn+ctrgcn", "victims=b"]))
    assert [(c.victim, c.surrogates) for c in kept.configs] == [("b", ["stgcn", "ctrgcn"])]
    assert [c.surrogates for c in restrict(grid, {"surrogates": ["none"]}).configs] == [None, None]
    with pytest.raises(UserError, match="AXIS=VALUE"):
        parse_only(["victims"])


def _results(paths: list[Path]) -> dict:
    out = {}
    for path in paths:
        r = read_record(path)
        out[(r["attack"]["name"], r["attack"]["eps"])] = (r["metrics"], r["samples"])
    return out


def test_ray_executor_gives_the_in_process_records(tmp_path, trained_tiny_checkpoint):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[distributed]'")
    local_started = time.perf_counter()
    local = run_sweep(_grid(tmp_path, trained_tiny_checkpoint, tmp_path / "local"), progress=False)
    local_seconds = time.perf_counter() - local_started
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray_started = time.perf_counter()
        remote = run_sweep(_grid(tmp_path, trained_tiny_checkpoint, tmp_path / "ray"), executor="ray", progress=False)
        ray_seconds = time.perf_counter() - ray_started
    finally:
        ray.shutdown()
    print(f"sweep of 4 runs: in-process {local_seconds:.1f} s, ray {ray_seconds:.1f} s")
    assert len(remote.paths) == 4
    assert _results(remote.paths) == _results(local.paths)


def test_ray_missing_is_one_clear_line(tmp_path, monkeypatch, trained_tiny_checkpoint):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(UserError, match=r'pip install -e "\.\[distributed\]"'):
        run_sweep(_grid(tmp_path, trained_tiny_checkpoint, tmp_path / "r"), executor="ray", progress=False)


def test_status_lists_recorded_runs_runs_to_do_and_blocked_ones_without_running(tmp_path, trained_tiny_checkpoint, capsys):
    results = tmp_path / "results"
    grid_path = _grid(tmp_path, trained_tiny_checkpoint, results)
    grid_path.write_text(grid_path.read_text() + 'defenses = ["none", "trades"]\n')
    assert main(["sweep", str(grid_path), "--only", "attacks=fgsm", "--only", "budgets=0.01",
                 "--only", "defenses=none"]) == 0
    capsys.readouterr()
    assert main(["sweep", str(grid_path), "--status"]) == 0
    out = capsys.readouterr().out
    assert "8 run(s): 1 recorded, 3 to run, 4 blocked" in out
    assert "to run   tiny-test-victim pgd eps 0.02" in out
    assert "blocked  4 run(s)" in out and "no trades weights ship" in out  # one line per cause
    assert len(list(results.glob("runs/*.json"))) == 1  # nothing ran
    assert not (results / ".progress").exists() or not any((results / ".progress").iterdir())
