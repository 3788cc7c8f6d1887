"""The transfer matrix: how well adversarial clips crafted on surrogate(s) fool each victim.

One matrix per dataset x budget x early-stopping rule x step rule (the rule, step size and iterations
every cell states; a preset's protocol, such as ``tasar-paper``, counts as one rule; ``mix_step_rules``
puts them together with a step column); rows ``attack@surrogate`` (an ensemble reads
``attack@s1+s2``; one attack at two hyperparameter settings gives two rows, told apart by a short hash
of the setting), columns the victims. The average over victims leaves out a victim that *is* one of
the row's surrogates (same checkpoint): that cell measures white-box success, not transfer.

Each cell is tested against the best cell of its column (same victim) with the exact McNemar test
on the clips both attacked (:mod:`robustbench_skel.board.paired`), where the two records pair.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .model import Cell, Row, Section, attack_label, budget_label, dataset_label, is_missing, tell_apart
from .sections import budget_groups, significance_mark, stem, victims_matrix
from .paired import versus_best

__all__ = ["transfer_sections", "alignment_sections", "is_own_surrogate"]

_ROW_KEY = ["attack", "attack_config", "surrogates", "surrogates_sha256", "protocol"]


def is_own_surrogate(r: pd.Series) -> bool:
    """The victim is one of the surrogates: the same checkpoint (or, without hashes, the same name)."""
    shas = [s for s in str(r.get("surrogates_sha256") or "").split("+") if s]
    if shas and not is_missing(r.get("checkpoint_sha256")):
        return r["checkpoint_sha256"] in shas
    return r["victim"] in str(r.get("surrogates") or "").split("+")


def _row_labels(rows: list[tuple], options: dict[str, str]) -> list[str]:
    """``attack@surrogates``; rows that would share a label add the options their records set
    (``tasar@ctrgcn (swag=reference)``, ``tasar@ctrgcn (defaults)``), then the setting's short hash."""
    configs = [cfg for _, cfg, *_ in rows]

    def worded(i: int, group: list[int]) -> str:
        return f" ({options.get(configs[i]) or 'defaults'})" if any(options.get(configs[j]) for j in group) else ""

    def setting(i: int, group: list[int]) -> str:
        return f" [setting {str(configs[i])[:6]}]" if configs[i] else ""

    return tell_apart([attack_label(attack, surrogates) for attack, _, surrogates, _, _ in rows], [worded, setting])


def _step_group(r: pd.Series, mix: bool) -> str:
    """What a matrix may not mix: the step rule, or a preset's whole protocol (its rules are part of it)."""
    if mix:
        return "mixed"
    if r.get("protocol") not in (None, "quick", "standard") and not is_missing(r.get("protocol")):
        return f"protocol {r['protocol']}"
    return str(r.get("step") or "no step rule")


def transfer_sections(df: pd.DataFrame, results_dir: Path | None = None, records: dict[str, dict] | None = None,
                      mix_step_rules: bool = False) -> list[Section]:
    """One matrix (and, given ``results_dir``, one heatmap PNG) per dataset x budget x early-stop rule x step rule."""
    from .plots import plot_heatmap

    sections = []
    transfer = df[df["threat_model"] == "transfer"]
    transfer = transfer.assign(step_group=[_step_group(r, mix_step_rules) for _, r in transfer.iterrows()])
    for (synthetic, dataset, norm, eps, targeted, early_stop, step), g in budget_groups(
            transfer, extra=["early_stop", "step_group"]):
        rows, columns, cells, col_victim = victims_matrix(g, _ROW_KEY)
        options = {r["attack_config"]: r["attack_options"] for _, r in g.iterrows()
                   if not is_missing(r.get("attack_options")) and not is_missing(r.get("attack_config"))}
        labels = _row_labels(rows, options)
        stop = "" if is_missing(early_stop) else f", early stop {early_stop}"
        steps = "" if step == "mixed" else f", {step}"
        title = f"Transfer matrix, {dataset_label(dataset, synthetic)}: {budget_label(norm, eps, targeted)}{stop}{steps}"
        header = ["attack@surrogate", "protocol", *(["step"] if step == "mixed" else []), *columns,
                  "average (excl. own surrogate)", "surrogate success (white-box)"]
        section = Section("transfer", title, dataset, bool(synthetic), "transfer", header,
                          column_victims=[None, None, *([None] if step == "mixed" else []), *[col_victim[c] for c in columns],
                                          None, None])
        standing = {}
        if records is not None:
            for col in columns:
                in_column = {cells[(key, col)]["record"]: records[cells[(key, col)]["record"]] for key in rows
                             if (key, col) in cells and cells[(key, col)]["record"] in records
                             and not is_own_surrogate(cells[(key, col)])}  # white-box cells are not in the race
                standing.update(versus_best(in_column))
        section.notes += [
            "Step: every cell of a matrix steps by the rule in its title (rule, step size, iterations; "
            "`leaderboard --mix-step-rules` puts rules together with a step column).",
            "(best): the highest transfer success in its column (cells marked * are left out); †: differs from it significantly (exact McNemar test on the "
            "clips both attacked, p < 0.05); unmarked: not significant; (unpaired): not on the same clips, so untested.",
            "Cells: attack success rate (%) on the victim, with its 95% Wilson interval, of clips crafted on the surrogate(s) only.",
            "* the victim is one of the row's surrogates (same checkpoint): white-box, not transfer; "
            "the average over victims leaves these cells out.",
            "Surrogate success: the attack's white-box success on its own surrogate(s).",
        ]
        built = []
        for key, label in zip(rows, labels):
            row_cells, values, own, victims, row_records = [Cell(label), Cell(key[-1])], [], [], [], []
            missing = []
            newest = None
            for col in columns:
                r = cells.get((key, col))
                if r is None:
                    row_cells.append(Cell("", sort=None))
                    values.append(math.nan)
                    own.append(False)
                    missing.append(True)
                    continue
                newest = r if newest is None or r["created"] > newest["created"] else newest
                self_cell = is_own_surrogate(r)
                mark = ("*" if self_cell else "") + significance_mark(standing.get(r["record"]))
                row_cells.append(Cell.proportion(r["success_rate"], r["success_ci_low"], r["success_ci_high"],
                                                 record=r["record"], mark=mark))
                values.append(np.nan if is_missing(r["success_rate"]) else float(r["success_rate"]))
                own.append(self_cell)
                missing.append(False)
                victims.append(r["victim"])
                row_records.append(r["record"])
            others = [v for v, o in zip(values, own) if not o and not math.isnan(v)]
            average = float(np.mean(others)) if others else None
            if step == "mixed":
                row_cells.insert(2, Cell(str(newest["step"]) if newest is not None else ""))
            row_cells.append(Cell.proportion(average))
            row_cells.append(Cell.proportion(newest["surrogate_success_rate"], newest["surrogate_success_ci_low"],
                                             newest["surrogate_success_ci_high"]))
            built.append((-1 if average is None else average, Row(row_cells, {
                "dataset": [dataset], "threat": ["transfer"], "victim": sorted(set(victims)), "attack": [key[0]]}, row_records),
                label, values, own, missing))
        built.sort(key=lambda b: (b[1].cells[1].text != "standard", -b[0]))
        section.rows = [b[1] for b in built]
        if results_dir is not None and built:
            path = results_dir / (stem("transfer", dataset, norm, "minnorm" if is_missing(eps) else f"eps{eps:g}",
                                       "targeted" if targeted else "untargeted",
                                       None if is_missing(early_stop) else f"stop-{early_stop}",
                                       None if step == "mixed" else _step_stem(step)) + ".png")
            section.plots.append(plot_heatmap(np.array([b[3] for b in built]), [b[2] for b in built], columns,
                                              np.array([b[4] for b in built]), path, title,
                                              missing=np.array([b[5] for b in built])))
        sections.append(section)
    return sections


def alignment_sections(df: pd.DataFrame) -> list[Section]:
    """Per dataset, surrogate(s) x victim: the pair's gradient alignment (``metrics.gradient_alignment``,
    the newest transfer record of the pair that has it), whatever the attack or budget: it is the models'."""
    sections = []
    transfer = df[(df["threat_model"] == "transfer") & df["gradient_cosine"].notna()] if "gradient_cosine" in df else df.iloc[:0]
    for (synthetic, dataset), g in transfer.groupby(["synthetic", "dataset"], sort=True):
        rows, columns, cells, col_victim = victims_matrix(g, ["surrogates"])
        section = Section("transfer", f"Gradient alignment, {dataset_label(dataset, bool(synthetic))}", dataset,
                          bool(synthetic), "transfer", ["surrogate(s)", *columns],
                          column_victims=[None, *[col_victim[c] for c in columns]])
        section.notes.append("Cells: the median cosine, over the first 32 attacked clips, between the surrogate's and "
                             "the victim's loss gradients with respect to the clip (Demontis et al. 2019), from the "
                             "pair's newest transfer record. 1: the same direction; 0: unrelated, as two random "
                             "directions are. Near 0, a transfer attack has nothing to carry over and does no better "
                             "than random noise of its size; * the victim is the surrogate.")
        for (surrogates,) in rows:
            row_cells, victims, records = [Cell(str(surrogates))], [], []
            for col in columns:
                r = cells.get(((surrogates,), col))
                if r is None:
                    row_cells.append(Cell("", sort=None))
                    continue
                mark = "*" if is_own_surrogate(r) else ""
                row_cells.append(Cell.link(f"{r['gradient_cosine']:.2f}{mark}", r["record"], sort=float(r["gradient_cosine"])))
                victims.append(r["victim"])
                records.append(r["record"])
            section.rows.append(Row(row_cells, {"dataset": [dataset], "threat": ["transfer"], "victim": sorted(set(victims)),
                                                "attack": []}, records))
        sections.append(section)
    return sections


def _step_stem(step: str) -> str:
    """A short file-name part for a step group: ``sign-0.001-20`` or ``tasar-paper``."""
    if step.startswith("protocol "):
        return step.removeprefix("protocol ")
    parts = step.replace(",", "").split()
    return "-".join(p for p in parts if p not in ("step", "m", "iterations"))
