"""Leaderboard sections that are one record per row or per cell: the per-setting tables, the
decision-based table and the no-box victims x attacks matrix.

Each builder takes the de-duplicated records table (one row per record, see
:func:`robustbench_skel.board.leaderboard.records_table`) and returns :class:`Section` objects; it never
looks at a threat model's name beyond the one its section is about, so a record of a new kind still
lands in the per-setting tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .model import Cell, Row, Section, budget_label, dataset_label, fmt_value, is_missing

__all__ = ["setting_sections", "decision_sections", "nobox_sections", "victims_matrix", "threat_details",
           "THREAT_ORDER", "budget_groups", "stem", "significance_mark", "versus_best_text"]

THREAT_ORDER = {"white-box": 0, "transfer": 1, "no-box": 2, "decision-based": 3}
# (record metric, column header, unit); the L-inf size is recorded in metres and shown in cm like the
# displacements beside it (_SHOWN_SCALE)
IMPERCEPTIBILITY = [
    ("mean_joint_displacement_cm", "mean disp. (cm)", "cm"),
    ("max_joint_displacement_cm", "max disp. (cm)", "cm"),
    ("linf_m", "L-inf (cm)", ""),
    ("bone_length_deviation", "bone dev.", "%"),
    ("acceleration_deviation", "accel. dev. (m/s^2)", ""),
    ("jerk_deviation", "jerk dev. (m/s^3)", ""),
]
_SHOWN_SCALE = {"linf_m": 100.0}


def _scaled(value: object, scale: float) -> object:
    return value if scale == 1.0 or is_missing(value) else float(value) * scale


def significance_mark(standing: dict | None) -> str:
    """A cell's mark against the best of its group (:func:`robustbench_skel.board.paired.versus_best`)."""
    if not standing:
        return ""
    if standing.get("is_best"):
        return " (best)"
    if "unpaired" in standing:
        return " (unpaired)"
    return " †" if standing["significant"] else ""


def versus_best_text(standing: dict | None) -> str:
    """The "vs best" column: ``best``, ``p=0.0002 †``, ``p=0.41`` or ``unpaired``."""
    if not standing:
        return ""
    if standing.get("is_best"):
        return "best"
    if "unpaired" in standing:
        return "unpaired"
    return f"p={standing['p_value']:.2g}" + (" †" if standing["significant"] else "")


def stem(*parts: object) -> str:
    """A file-name-safe stem from parts: ``transfer_synth_linf_eps0.01_untargeted``."""
    text = "_".join(str(p) for p in parts if p not in (None, ""))
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text)


def _sort_protocol_first(df: pd.DataFrame, by: Sequence[str], ascending: Sequence[bool]) -> pd.DataFrame:
    """Standard-protocol rows rank above quick runs; within each, by ``by``."""
    df = df.assign(_quick=df["protocol"] != "standard")
    return df.sort_values(["_quick", *by], ascending=[True, *ascending], na_position="last").drop(columns="_quick")


def budget_groups(df: pd.DataFrame, extra: Sequence[str] = (), targeted: bool = True):
    """Yield ``(key, group)`` per dataset x norm x eps (x targeted) (x ``extra``), NaN budgets kept."""
    cols = ["synthetic", "dataset", "norm", "eps", *(["targeted"] if targeted else []), *extra]
    if df.empty:
        return
    yield from df.groupby(cols, sort=True, dropna=False)


def threat_details(r: pd.Series) -> str:
    """What the threat model handed the attack, and the options the user set on it, in a few words (empty for
    a plain white-box run)."""
    parts = []
    if not is_missing(r.get("attack_options")):
        parts.append(f"options {r['attack_options']}")
    if not is_missing(r.get("surrogates")):
        parts.append(f"surrogate {r['surrogates']}")
    if not is_missing(r.get("gradient_cosine")):  # the surrogate-victim gradient alignment (learn/gradient_alignment.py)
        parts.append(f"gradient cosine with the surrogate {r['gradient_cosine']:.2f}")
    if not is_missing(r.get("early_stop")):
        parts.append(f"early stop {r['early_stop']}")
    if not is_missing(r.get("pool_split")) or not is_missing(r.get("pool_num_clips")):
        clips = r.get("pool_num_clips")
        parts.append(f"pool {r.get('pool_split')}" + ("" if is_missing(clips) else f", {int(clips)} clips"))
    if not is_missing(r.get("max_queries")):
        parts.append(f"max {int(r['max_queries'])} queries")
    if not is_missing(r.get("adaptive_eot_samples")):
        parts.append(f"EOT {int(r['adaptive_eot_samples'])}")
    if not is_missing(r.get("adaptive_bpda")):
        parts.append(f"BPDA {r['adaptive_bpda']}")
    return "; ".join(parts)


def _tags(dataset: str, threat: str | Sequence[str], victims: Sequence[str], attacks: Sequence[str]) -> dict[str, list[str]]:
    threats = [threat] if isinstance(threat, str) else list(threat)
    return {"dataset": [dataset], "threat": sorted(set(threats)), "victim": sorted(set(victims)), "attack": sorted(set(attacks))}


def _num(x: object, unit: str = "") -> Cell:
    return Cell(text=fmt_value(None if is_missing(x) else float(x), unit), sort=None if is_missing(x) else float(x))


def _clean(r: pd.Series) -> Cell:
    """Clean accuracy with its 95% interval (the record's, else Wilson's from the clips evaluated)."""
    return Cell.proportion(r["clean_accuracy"], r.get("clean_ci_low"), r.get("clean_ci_high"))


def _int(x: object) -> Cell:
    return Cell(text="n/a", sort=None) if is_missing(x) else Cell(text=str(int(x)), sort=int(x))


def _standing(g: pd.DataFrame, records: dict[str, dict] | None) -> dict[str, dict]:
    """Each record's standing against the best attack on the same victim (weights, defense) and clips."""
    from .paired import versus_best

    if records is None:
        return {}
    standing: dict[str, dict] = {}
    keys = ["victim", "checkpoint_sha256", "defense", "defense_config", "sample_ids_sha256"]
    for _, same in g.groupby(keys, dropna=False, sort=False):
        standing.update(versus_best({name: records[name] for name in same["record"] if name in records}))
    return standing


def setting_sections(df: pd.DataFrame, records: dict[str, dict] | None = None) -> list[Section]:
    """One table per dataset x threat model x norm x eps x targeted: every record's headline figures; with
    ``records``, each row's exact McNemar test against the best attack on the same victim and clips."""
    sections = []
    for (synthetic, dataset, norm, eps, targeted, threat), g in budget_groups(df, extra=["threat_model"]):
        g = _sort_protocol_first(g, ["victim", "defense", "success_rate"], [True, True, False])
        details = [threat_details(r) for _, r in g.iterrows()]
        standing = _standing(g, records)
        columns = ["victim", "defense", "attack", "protocol", "n", "clean acc. [95% CI]", "success [95% CI]", "robust acc."]
        columns += [h for _, h, _ in IMPERCEPTIBILITY] + ["checks passed"] + (["vs best (McNemar)"] if standing else [])
        columns += ["threat details"] if any(details) else []
        section = Section("setting", f"{dataset_label(dataset, synthetic)}: {threat}, {budget_label(norm, eps, targeted)}",
                          dataset, bool(synthetic), threat, columns)
        if standing:
            section.notes.append("vs best: the exact McNemar test (paired, on the clips both attacked) of each attack "
                                 "against the most successful attack on the same victim, clips and budget; † p < 0.05; "
                                 "unpaired: not on the same clips, so untested.")
        for (_, r), detail in zip(g.iterrows(), details):
            cells = [Cell(r["victim"]), Cell(r["defense"]), Cell.link(r["attack"], r["record"]), Cell(r["protocol"]),
                     _int(r["n"]), _clean(r),
                     Cell.proportion(r["success_rate"], r["success_ci_low"], r["success_ci_high"]),
                     Cell.proportion(r["robust_accuracy"])]
            cells += [_num(_scaled(r[key], _SHOWN_SCALE.get(key, 1.0)), unit if unit == "%" else "")
                      for key, _, unit in IMPERCEPTIBILITY]
            cells.append(Cell(str(r["sanity"])))
            if standing:
                cells.append(Cell(versus_best_text(standing.get(r["record"]))))
            if any(details):
                cells.append(Cell(detail))
            section.rows.append(Row(cells, _tags(dataset, threat, [r["victim"]], [r["attack"]]), [r["record"]]))
        sections.append(((bool(synthetic), dataset, THREAT_ORDER.get(threat, 9), threat, str(norm),
                          math.inf if is_missing(eps) else eps, bool(targeted)), section))
    return [s for _, s in sorted(sections, key=lambda kv: kv[0])]


def victim_label(victim: str, defense: str) -> str:
    return victim if defense in (None, "none") else f"{victim}+{defense}"


def victims_matrix(g: pd.DataFrame, row_key: Sequence[str],
                   ) -> tuple[list[tuple], list[str], dict, dict[str, str]]:
    """Rows ``row_key`` x columns victim(+defense) of a group; ``cells[(row, column)]`` is the newest
    record's row (standard protocol first). Returns ``(row keys, column labels, cells, column -> victim)``."""
    g = g.assign(_col=[victim_label(v, d) for v, d in zip(g["victim"], g["defense"])])
    collide = g.groupby("_col")["checkpoint_sha256"].nunique(dropna=False)
    g["_col"] = [c if collide[c] <= 1 else f"{c} ({str(sha)[:6]})" for c, sha in zip(g["_col"], g["checkpoint_sha256"])]
    g = g.assign(_quick=g["protocol"] != "standard").sort_values(["_quick", "created"], ascending=[True, False])
    cells: dict = {}
    rows: list = []
    for _, r in g.iterrows():
        key = tuple(r[k] for k in row_key)
        if key not in rows:
            rows.append(key)
        cells.setdefault((key, r["_col"]), r)
    columns = sorted(g["_col"].unique())
    return rows, columns, cells, dict(zip(g["_col"], g["victim"]))


def nobox_sections(df: pd.DataFrame) -> list[Section]:
    """Victims x attacks success for attacks that saw no model of the victim, the pool of clips noted."""
    sections = []
    for (synthetic, dataset, norm, eps, targeted), g in budget_groups(df[df["threat_model"] == "no-box"]):
        row_key = ["attack", "attack_config", "pool_split", "pool_num_clips", "pool_sha256", "protocol"]
        rows, columns, cells, col_victim = victims_matrix(g, row_key)
        section = Section("nobox", f"No-box attacks, {dataset_label(dataset, synthetic)}: {budget_label(norm, eps, targeted)}",
                          dataset, bool(synthetic), "no-box", ["attack", "pool", "protocol", *columns],
                          column_victims=[None, None, None, *[col_victim[c] for c in columns]])
        section.notes.append("Cells: attack success rate (%) with its 95% Wilson interval on the victim's correctly "
                             "classified test clips; the pool is the unlabelled clips the attack was handed.")
        for key in rows:
            attack, _, split, num, sha, protocol = key
            pool = f"{split}, {'?' if is_missing(num) else int(num)} clips" + ("" if is_missing(sha) else f", sha256 {str(sha)[:8]}")
            row_cells = [Cell(attack), Cell(pool), Cell(protocol)]
            victims, records = [], []
            for col in columns:
                r = cells.get((key, col))
                if r is None:
                    row_cells.append(Cell("", sort=None))
                    continue
                row_cells.append(Cell.proportion(r["success_rate"], r["success_ci_low"], r["success_ci_high"], record=r["record"]))
                victims.append(r["victim"])
                records.append(r["record"])
            section.rows.append(Row(row_cells, _tags(dataset, "no-box", victims, [attack]), records))
        sections.append(section)
    return sections


def decision_sections(df: pd.DataFrame, results_dir: Path | None = None) -> list[Section]:
    """Success, median perturbation reached and queries spent, per decision-based attack and victim; a
    perturbation-against-queries plot where an attack was run at several query budgets."""
    from .plots import plot_queries

    sections = []
    for (synthetic, dataset, norm, eps, targeted), g in budget_groups(df[df["threat_model"] == "decision-based"]):
        g = _sort_protocol_first(g, ["victim", "defense", "attack", "max_queries"], [True, True, True, True])
        columns = ["victim", "defense", "attack", "protocol", "max queries", "n", "clean acc. [95% CI]", "success [95% CI]",
                   "median L2 (RMS cm)", "mean queries", "median queries"]
        title = f"Decision-based attacks, {dataset_label(dataset, synthetic)}: {budget_label(norm, eps, targeted)}"
        section = Section("decision", title, dataset, bool(synthetic), "decision-based", columns)
        section.notes.append("Median L2: the median over attacked clips of the RMS perturbation per coordinate the attack "
                             "reached, in cm; queries: label-oracle calls per attacked clip.")
        for _, r in g.iterrows():
            l2 = r["median_l2_rms_m"]
            cells = [Cell(r["victim"]), Cell(r["defense"]), Cell.link(r["attack"], r["record"]), Cell(r["protocol"]),
                     _int(r["max_queries"]), _int(r["n"]), _clean(r),
                     Cell.proportion(r["success_rate"], r["success_ci_low"], r["success_ci_high"]),
                     _num(None if is_missing(l2) else 100 * l2), _num(r["queries_mean"]), _num(r["queries_median"])]
            section.rows.append(Row(cells, _tags(dataset, "decision-based", [r["victim"]], [r["attack"]]), [r["record"]]))
        if results_dir is not None:
            plot = plot_queries(g, results_dir / (stem("queries", dataset, norm, f"eps{eps:g}" if not is_missing(eps) else "minnorm",
                                                       "targeted" if targeted else "untargeted") + ".png"), title)
            if plot:
                section.plots.append(plot)
        sections.append(section)
    return sections
