"""robustbench_skel: how robust are skeleton-based action recognizers against adversarial attacks?

Data flow: a dataset yields clips ``(N, 3, T, V, M)`` in metres; a victim (its own preprocessing
inside ``forward``) maps them to logits; an attack, handed only what its threat model allows,
returns perturbed clips; the evaluator re-classifies them and writes one JSON record per run; the
leaderboard is built from records alone.

The Python API (README, "Python API"; :mod:`robustbench_skel.api`): ``load_victim``, ``load_clips``,
``get_attack``, ``benchmark`` and ``load_results``.
"""

from __future__ import annotations

from . import _checkout  # noqa: F401  (lets a source checkout import its plugin folders)
from ._moved import install as _install_moved
from ._version import __version__  # noqa: F401

_install_moved(__name__)  # the flat import paths of modules that moved into run/, board/, learn/, commands/

_API = ("load_victim", "load_clips", "get_attack", "benchmark", "load_results")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    """The API's names are imported on first use, so ``import robustbench_skel`` stays light (no torch, no pandas)."""
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
