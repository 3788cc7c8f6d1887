"""The surrogate x victim matrix of a transfer attack (the ``transfer`` command).

Each row is a surrogate (or an ensemble of them); each column a victim. Adversarial clips are crafted
once per row: the runner's content-addressed cache hands the same clips to every victim, so a row
costs one crafting plus one forward pass of each victim. One record is written per cell; the table
and heatmap printed here are views of those records, as the leaderboard's are.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UserError
from ..preflight import check_writable_file
from ..progress_meter import progress as show_progress
from ..registry import VICTIMS
from ..board.report import fmt_pct
from ..run.run_checks import validate_run_config
from ..run.runner import RunConfig, load_dataset, run_benchmark
from ..step_rule import step_label, step_summary
from ..victim import model_card

__all__ = ["TransferMatrix", "victims_with_weights", "run_transfer_matrix"]


@dataclass
class TransferMatrix:
    table: str
    heatmap: Path
    paths: list[Path]
    records: list[dict]


def victims_with_weights(dataset: str, layout: str) -> list[str]:
    """Every registered victim that ships weights for ``dataset`` and reads its layout."""
    return [name for name, cls in VICTIMS.items()
            if dataset in model_card(name).get("pretrained", {}) and layout in cls.layouts]


def _resolve_victims(text: str, config: RunConfig) -> list[str]:
    if text != "all":
        names = [n.strip() for n in text.split(",") if n.strip()]
        if not names:
            raise UserError("--victims names no victim; give 'all' or comma-separated names")
        for name in names:
            VICTIMS.get(name)  # a clear error on an unknown name, before any work
        return names
    dataset = load_dataset(config.dataset, config.split, config.data_path)
    names = victims_with_weights(dataset.name, dataset.layout.name)
    if not names:
        raise UserError(f"no victim ships weights for {dataset.name!r}; name the victims with --victims and pass checkpoints via run")
    return names


def _row_label(record: dict) -> str:
    names = "+".join(s["name"] for s in record["threat"]["surrogates"])
    return f"{record['attack']['name']}@{names}"


def _step_line(records: list[dict]) -> str:
    """The matrix's step rule (every cell steps alike; the crafting is one attack configuration)."""
    steps = {step_label(step_summary(r["attack"])) for r in records}
    if len(steps) != 1:
        raise UserError(f"the cells of this matrix step differently ({'; '.join(sorted(steps))}); run one step rule per matrix")
    preset = records[0].get("preset")
    return f"step rule: {steps.pop()}" + (f" (preset {preset})" if preset else "")


def _table(records: list[dict], rows: list[list[str]], victims: list[str]) -> str:
    by_cell = {(tuple(s["name"] for s in r["threat"]["surrogates"]), r["victim"]["name"]): r for r in records}
    header = ["attack@surrogate", "surrogate (white-box)"] + victims + ["average (other victims)"]
    lines = [_step_line(records), "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [by_cell[(tuple(row), v)] for v in victims]
        own = cells[0]["metrics"]["surrogate_success_rate"]["value"]
        values = [c["metrics"]["attack_success_rate"] for c in cells]
        others = [m["value"] for v, m in zip(victims, values) if v not in row and m["value"] == m["value"]]
        average = sum(others) / len(others) if others else float("nan")
        text = [f"{fmt_pct(m['value'])} [{fmt_pct(m['ci95'][0], 0)}, {fmt_pct(m['ci95'][1], 0)}]" for m in values]
        lines.append("| " + " | ".join([_row_label(cells[0]), fmt_pct(own), *text, fmt_pct(average)]) + " |")
    return "\n".join(lines)


def _heatmap(records: list[dict], rows: list[list[str]], victims: list[str], path: Path) -> Path:
    """The leaderboard's heatmap (fixed 0-100 % scale, own-surrogate cells marked) of this matrix."""
    import numpy as np

    from ..board.plots import plot_heatmap

    by_cell = {(tuple(s["name"] for s in r["threat"]["surrogates"]), r["victim"]["name"]): r for r in records}
    rate = [[by_cell[(tuple(row), v)]["metrics"]["attack_success_rate"]["value"] for v in victims] for row in rows]
    values = np.array([[np.nan if x is None else x for x in line] for line in rate], dtype=float)
    own = np.array([[v in row for v in victims] for row in rows])
    first = records[0]
    title = f"{first['attack']['name']} transfer success (%), {first['dataset']['name']}, eps {first['attack']['eps']:g}"
    path.parent.mkdir(parents=True, exist_ok=True)  # checked before any work (run_transfer_matrix)
    return plot_heatmap(values, ["+".join(r) for r in rows], victims, own, path, title, row_title="surrogate(s)",
                        missing=np.zeros_like(own))


def run_transfer_matrix(config: RunConfig, rows: list[list[str]], victims: str = "all", heatmap: str | None = None,
                        progress: bool = False) -> TransferMatrix:
    """One transfer run per (surrogate row, victim); the matrix table, its heatmap and the record paths.

    With ``progress`` a meter counts the cells and each cell's crafting, evaluation and sanity re-runs
    show theirs (a bar on a terminal, log lines elsewhere)."""
    if not rows or any(not row for row in rows):
        raise UserError("--surrogates needs at least one surrogate name in every entry (a,b or a+b)")
    if any(len(set(row)) != len(row) for row in rows):
        raise UserError(f"--surrogates names a surrogate twice within one ensemble: {'+'.join(next(r for r in rows if len(set(r)) != len(r)))}")
    names = _resolve_victims(victims, config)
    cells = [replace(config, victim=victim, surrogates=row, surrogate_checkpoints=None) for row in rows for victim in names]
    for cell in cells:  # every surrogate, victim and option of the matrix, before the first cell runs
        validate_run_config(cell, allow_self_surrogate=True)
    out = Path(heatmap) if heatmap else None
    if out is not None:
        if out.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise UserError(f"--heatmap must end in .png, .pdf or .svg, got {str(out)!r}")
        check_writable_file(out, "--heatmap")
    records, paths = [], []
    with show_progress(total=len(cells), desc="transfer matrix", unit="cell", enabled=progress) as meter:
        for number, cell in enumerate(cells, 1):
            if progress:  # which cell the lines below belong to: crafting (first of a row), evaluation, sanity
                meter.write(f"transfer matrix cell {number}/{len(cells)}: {cell.attack} crafted on "
                            f"{'+'.join(cell.surrogates or [])}, evaluated on {cell.victim}", file=sys.stderr)
            result = run_benchmark(cell, progress=progress)
            records.append(result.record)
            paths.append(result.path)
            meter.update(1)
    first = records[0]
    out = out or Path(config.results_dir) / f"transfer_{first['attack']['name']}_{first['dataset']['name']}.png"
    return TransferMatrix(_table(records, rows, names), _heatmap(records, rows, names, out), paths, records)
