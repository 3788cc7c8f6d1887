"""The adversarial clips of a run, stored as compressed perturbations next to its record.

``run --save-adversarial`` keeps what the attack returned for the attacked samples as ``adv - clean``
(float16 when re-adding it to the clean clips leaves every evaluator verdict unchanged, else float32)
in ``results/adversarial/<record stem>.npz``, referenced from the record with its sha256. The clean
clips are not stored: they are reloaded from the dataset, which the record pins by its sample ids
hash. The npz is written (atomically) before the record, so a record never names a missing file.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_atomic
from ..budget import budget_size, valid_mask
from ..checkpoint import sha256_file
from ..errors import UserError
from .evaluator import BUDGET_TOLERANCE, BudgetSpec
from .record import record_filename

__all__ = ["save_adversarial", "load_adversarial", "ADVERSARIAL_DIR"]

ADVERSARIAL_DIR = "adversarial"


def _toward_zero_float16(delta: np.ndarray) -> np.ndarray:
    """``delta`` in float16, rounded toward zero so no coordinate grows (a budget met stays met)."""
    half = delta.astype(np.float16)
    grew = np.abs(half.astype(np.float32)) > np.abs(delta)
    half[grew] = np.nextafter(half[grew], np.float16(0))
    return half


def _verdicts(clean: torch.Tensor, adv: torch.Tensor, predict: Callable[[torch.Tensor], torch.Tensor],
              budget: BudgetSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the evaluator decides per clip: finite, predicted class, within budget."""
    finite = torch.isfinite(adv.flatten(1)).all(dim=1)
    safe = torch.where(finite.view(-1, 1, 1, 1, 1), adv, clean)
    mask = valid_mask(clean)
    size = budget.size(clean, safe, mask) if budget.size else budget_size(safe - clean, mask, budget.norm)
    within = size <= budget.eps + BUDGET_TOLERANCE[0] + BUDGET_TOLERANCE[1] * budget.eps
    return finite, predict(safe), within


def save_adversarial(record: dict, clean: torch.Tensor, adv: torch.Tensor, attacked: torch.Tensor,
                     results_dir: str | Path, predict: Callable[[torch.Tensor], torch.Tensor],
                     budget: BudgetSpec) -> dict[str, Any]:
    """Write the attacked samples' perturbations for ``record``; the entry ``record["adversarial"]`` holds."""
    idx = torch.nonzero(attacked).flatten()
    ids = [record["samples"]["id"][i] for i in idx.tolist()]
    clean_a, adv_a = clean[idx].float(), adv[idx].detach().cpu().float()
    delta32 = (adv_a - clean_a).numpy()
    reference = _verdicts(clean_a, adv_a, predict, budget)
    delta, preserved = _toward_zero_float16(delta32), False
    for _ in range(2):
        rebuilt = _verdicts(clean_a, clean_a + torch.from_numpy(delta.astype(np.float32)), predict, budget)
        preserved = all(torch.equal(a, b) for a, b in zip(reference, rebuilt))
        if preserved or delta.dtype == np.float32:
            break
        delta = delta32
    folder = Path(results_dir) / ADVERSARIAL_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {str(folder)!r}: {exc.strerror}; check --results-dir") from None
    name = Path(record_filename(record)).stem + ".npz"
    path = folder / name
    arrays = {"delta": delta, "sample_ids": np.array(ids, dtype=str)}
    write_atomic(path, lambda handle: np.savez_compressed(handle, **arrays), suffix=".npz", public=True, sync=True)
    return {"file": f"{ADVERSARIAL_DIR}/{name}", "sha256": sha256_file(path), "dtype": str(delta.dtype),
            "num_samples": len(ids), "verdicts_preserved": preserved}


def load_adversarial(record: dict, record_path: str | Path) -> tuple[list[str], np.ndarray]:
    """The sample ids and float32 perturbations a record saved, after checking the file's sha256."""
    entry = record.get("adversarial")
    if not entry:
        raise UserError(f"{record_path} has no saved adversarial clips; re-run it with `run --save-adversarial`")
    results = Path(record_path).resolve().parent.parent  # <results>/runs/<record>.json
    path = (results / entry["file"]).resolve()
    if not path.is_relative_to(results):
        raise UserError(f"{record_path}: field 'adversarial.file' {entry['file']!r} points outside the results folder")
    if not path.is_file():
        raise UserError(f"the record's adversarial clips {str(path)!r} are missing; re-run it with --save-adversarial")
    if sha256_file(path) != entry["sha256"]:
        raise UserError(f"{str(path)!r} does not match the sha256 in its record (changed or truncated); re-run with --save-adversarial")
    try:
        with np.load(path, allow_pickle=False) as f:
            ids, delta = [str(s) for s in f["sample_ids"]], f["delta"].astype(np.float32)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # not an npz, truncated, no array
        raise UserError(f"{str(path)!r} is not a readable adversarial-clips file ({type(exc).__name__}); "
                        "re-run the record's command with --save-adversarial") from None
    if delta.ndim != 5 or delta.shape[0] != len(ids):
        raise UserError(f"{str(path)!r} holds {len(ids)} sample ids but perturbations of shape {tuple(delta.shape)}; "
                        "re-run the record's command with --save-adversarial")
    return ids, delta
