"""The README's plugin example works as printed."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from robustbench_skel.budget import budget_size, valid_mask
from robustbench_skel.registry import ATTACKS

from conftest import make_clips

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_attack_example_registers_and_runs(tiny_victim):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "ATTACKS.register" in b)
    if "my-momentum-pgd" not in ATTACKS:
        exec(compile(example, "README.md", "exec"), {})
    attack = ATTACKS.get("my-momentum-pgd")(eps=0.05, steps=5)
    x = make_clips(n=4, t=10)
    y = tiny_victim(x).argmax(1)
    adv = attack(tiny_victim, x, y)
    assert torch.all(budget_size(adv - x, valid_mask(x), "linf") <= 0.05 + 1e-7)
    assert attack.hyperparameters()["decay"] == 0.9


def test_readme_states_the_setup_commands():
    text = README.read_text()
    assert 'python -m pip install "torch==2.13.0" -e ".[test]"' in text
    assert "python -m pytest -q" in text
    assert "python -m robustbench_skel run --victim stgcn --attack pgd" in text
