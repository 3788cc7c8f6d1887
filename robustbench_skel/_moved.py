"""Old import paths of modules that moved into ``run/``, ``board/``, ``learn/`` and ``commands/``.

Plugins, scripts and installed entry points written against the flat layout (``robustbench_skel.cli:main``,
``from robustbench_skel.defended import TrainingDefense``) keep working: importing an old name returns the
module at its new place (the same module object, so patches and ``isinstance`` checks agree). New code
imports the new paths; this table only grows when a module moves.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

# old name -> new name, both relative to the package
MOVED: dict[str, str] = {
    "runner": "run.runner",
    "threats": "run.threats",
    "sanity": "run.sanity",
    "progress": "run.progress",
    "presets": "run.presets",
    "evaluator": "run.evaluator",
    "record": "run.record",
    "autobatch": "run.autobatch",
    "adversarial_store": "run.adversarial_store",
    "run_checks": "run.run_checks",
    "leaderboard": "board.leaderboard",
    "board_model": "board.model",
    "board_sections": "board.sections",
    "board_plausibility": "board.plausibility",
    "board_robust": "board.robust",
    "board_transfer": "board.transfer",
    "board_plots": "board.plots",
    "board_html": "board.html",
    "board_latex": "board.latex",
    "board_markdown": "board.markdown",
    "report": "board.report",
    "paired": "board.paired",
    "plots_tradeoff": "board.plots_tradeoff",
    "training": "learn.training",
    "adversarial_training": "learn.adversarial_training",
    "defended": "learn.defended",
    "bayesian_heads": "learn.bayesian_heads",
    "bayes_diagnostic": "learn.bayes_diagnostic",
    "manifold": "learn.manifold",
    "profile": "learn.profile",
    "cli": "commands.cli",
    "reproduce": "commands.reproduce",
    "show": "commands.show",
    "sweep": "commands.sweep",
    "transfer_matrix": "commands.transfer_matrix",
    "bench": "commands.bench",
    "benchcli": "commands.benchcli",
    "describe": "commands.describe",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``robustbench_skel.<old>`` and hands back the module imported from its new path."""

    def __init__(self, package: str) -> None:
        self.package = package
        self._specs: dict[str, object] = {}  # the moved modules' own specs, which the import system overwrites

    def find_spec(self, fullname: str, path=None, target=None):
        prefix = self.package + "."
        if not fullname.startswith(prefix) or fullname[len(prefix):] not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec) -> ModuleType:
        module = importlib.import_module(f"{self.package}.{MOVED[spec.name[len(self.package) + 1:]]}")
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the module at the new path is already imported); give it back its own spec."""
        module.__spec__ = self._specs[module.__name__]


def install(package: str) -> None:
    """Let the old flat names of moved modules import (once per process)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules(package))
