"""Shared fixtures: a tiny registered victim and small clip tensors, so most tests run in milliseconds."""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import settings
from torch import nn

from robustbench_skel.layout import NTU25
from robustbench_skel.registry import VICTIMS
from robustbench_skel.victim import Victim

MANIFESTS = Path(__file__).parent / "manifests"

# Property tests explore random draws on a developer's machine but are pinned in CI (which sets CI=true):
# a landing must never depend on the luck of a draw. HYPOTHESIS_PROFILE=ci reproduces CI's draws locally.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

# The suite runs in parallel (pytest-xdist, one worker per core): a worker that also spread torch's intra-op
# threads over every core would oversubscribe the machine and slow the other workers down.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@VICTIMS.register("tiny-test-victim")
class TinyVictim(Victim):
    """A small linear-ish classifier on clips: enough structure for attacks to bite, fast on CPU."""

    description = "test-only tiny victim"
    layouts = ("ntu25",)
    head_key = "fc.bias"

    def __init__(self, num_classes: int, layout=NTU25, num_persons: int = 2) -> None:
        super().__init__(num_classes, layout, num_persons)
        self.conv = nn.Conv2d(3, 16, kernel_size=(5, 1), padding=(2, 0))
        self.fc = nn.Linear(16 * layout.num_joints, num_classes)

    def forward(self, x):
        n, c, t, v, m = x.shape
        p = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        p = p - p.mean(dim=(2, 3), keepdim=True)  # centring, like the preprocessing real victims own
        h = torch.relu(self.conv(p)).mean(dim=2).flatten(1)
        return self.fc(h).view(n, m, -1).mean(dim=1)


def random_state_dict(manifest: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict with the manifest's keys, shapes and dtypes, filled with plausible random values."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, dtype in manifest["state_dict"]:
        if dtype == "int64":
            state[key] = torch.zeros(shape, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    return state


def load_manifest(name: str) -> dict:
    return json.loads((MANIFESTS / f"{name}.json").read_text())


def make_clips(n: int = 4, t: int = 12, m: int = 2, seed: int = 0, empty_second: bool = True, pad: int = 2) -> torch.Tensor:
    """Random skeleton-like clips in metres with zero padding at the end and an empty second person."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, t, 25, m, generator=gen) * 0.3
    x[:, 2] += 3.0  # depth in front of the camera
    if empty_second and m > 1:
        x[..., 1:] = 0
    if pad:
        x[:, :, t - pad :] = 0
    return x


@pytest.fixture
def tiny_victim() -> TinyVictim:
    torch.manual_seed(0)
    model = TinyVictim(num_classes=5)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture
def clips() -> torch.Tensor:
    return make_clips()


@pytest.fixture(autouse=True)
def _seeded_global_rngs() -> None:
    """Every test starts from the same global random state, whichever worker runs it and whatever ran before:
    the parallel suite hands tests to workers in no fixed order, so no test may depend on its neighbours."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep the synth cache of the test session out of the user's home, shared across the tests of one worker."""
    monkeypatch.setenv("ROBUSTBENCH_SKEL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def trained_tiny_checkpoint(tmp_path_factory) -> Path:
    """The tiny victim trained briefly on synth through the real training code (a few seconds; about half of
    the test clips right, chance is 1 in 51)."""
    from robustbench_skel.learn.training import TrainConfig, train_victim

    out = tmp_path_factory.mktemp("tiny") / "tiny-synth.pt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROBUSTBENCH_SKEL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        result = train_victim(TrainConfig(victim="tiny-test-victim", epochs=12, lr=0.2, bf16=False, out=str(out), device="cpu"), progress=False)
    assert result.test_accuracy > 0.3, "the tiny victim should learn synth well above chance (1/51)"
    return out


def write_npz(path: Path, clips: np.ndarray, labels: np.ndarray, **extra) -> Path:
    np.savez(path, clips=clips, labels=labels, **extra)
    return path



def training_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
                    steps: int = 3) -> list[float]:
    """Train-mode optimisation steps, asserting every gradient is finite; the loss of each step."""
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    return losses


def reachable(root: Any, target: Any, through_closures: bool = False, seen: set[int] | None = None, depth: int = 0) -> bool:
    """Whether ``target`` can be reached from ``root`` through attributes, dataclass fields, module children,
    lists and dicts (and, with ``through_closures``, the cells of closures).

    The threat-model tests use it to show that what an attack is handed leads nowhere near the victim.
    """
    seen = set() if seen is None else seen
    if root is target:
        return True
    if id(root) in seen or depth > 12 or isinstance(root, (str, bytes, int, float, bool, torch.Tensor, np.ndarray, type)):
        return False
    seen.add(id(root))
    children: list[Any] = []
    if isinstance(root, dict):
        children += list(root.keys()) + list(root.values())
    elif isinstance(root, (list, tuple, set, frozenset)):
        children += list(root)
    if isinstance(root, nn.Module):
        children += list(root.children())
    if dataclasses.is_dataclass(root) and not isinstance(root, type):
        children += [getattr(root, f.name) for f in dataclasses.fields(root)]
    if hasattr(root, "__dict__"):
        children += list(vars(root).values())
    if through_closures:
        children += [c.cell_contents for c in (getattr(root, "__closure__", None) or ()) if c.cell_contents is not None]
    return any(reachable(c, target, through_closures, seen, depth + 1) for c in children)
