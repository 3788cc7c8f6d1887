"""The public import paths keep working after the core moved into run/, board/, learn/ and commands/."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from robustbench_skel._moved import MOVED

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_an_old_flat_path_imports_the_moved_module_itself(old, new):
    module = importlib.import_module(f"robustbench_skel.{old}")
    assert module is importlib.import_module(f"robustbench_skel.{new}")
    assert module.__spec__.name == f"robustbench_skel.{new}"  # the alias does not rename the real module


def test_what_plugins_and_the_readme_import_still_imports():
    from robustbench_skel.artefacts import ArtefactStore  # noqa: F401
    from robustbench_skel.attack import IterativeGradientAttack, PrepareContext, ThreatModel  # noqa: F401
    from robustbench_skel.bayes_diagnostic import diagnostic_entry  # noqa: F401
    from robustbench_skel.bayesian_heads import HeadConfig  # noqa: F401
    from robustbench_skel.budget import normalize_step, project, valid_mask  # noqa: F401
    from robustbench_skel.defended import TrainingDefense
    from robustbench_skel.defense import Defense, DefenseContext  # noqa: F401
    from robustbench_skel.handed import LabelOracle, SurrogateEnsemble, UnlabelledPool  # noqa: F401
    from robustbench_skel.learn.defended import TrainingDefense as Moved
    from robustbench_skel.manifold import MotionManifold  # noqa: F401
    from robustbench_skel.registry import ATTACKS, DEFENSES, VICTIMS
    from robustbench_skel.runner import RunConfig, run_benchmark  # noqa: F401
    from robustbench_skel.victim import Victim  # noqa: F401

    assert TrainingDefense is Moved
    assert "pgd" in ATTACKS.names() and "stgcn" in VICTIMS.names() and "trades" in DEFENSES.names()


def test_the_console_script_entry_point_loads_under_its_old_and_new_names():
    from robustbench_skel.commands.cli import main

    for value in ("robustbench_skel.cli:main", "robustbench_skel.commands.cli:main"):
        assert EntryPoint(name="robustbench-skel", value=value, group="console_scripts").load() is main
    declared = (ROOT / "pyproject.toml").read_text()
    assert 'robustbench-skel = "robustbench_skel.commands.cli:main"' in declared


def test_load_results_is_still_a_package_attribute():
    import robustbench_skel
    from robustbench_skel.board.leaderboard import load_results

    assert robustbench_skel.load_results is load_results


def test_the_plugin_collections_import_from_outside_the_checkout(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    code = ("import robustbench_skel.attacks, robustbench_skel.defenses, robustbench_skel.victims; "
            "from robustbench_skel.cli import main; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
