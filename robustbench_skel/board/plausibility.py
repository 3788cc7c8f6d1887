"""Which attacks keep their examples human: the leaderboard's plausibility tables and scatter plots.

Per dataset x threat model x budget, every record's success next to its plausible share (the
successful clips whose every plausibility measure changed by at most its tolerance, with a Wilson
interval) and the measure most often broken; and one scatter per dataset x budget of success against
plausible share. Records written before plausibility was measured appear as "not measured".
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..atomic import save_figure_atomic
from .model import Cell, Row, Section, attack_label, budget_label, dataset_label, is_missing, tell_apart
from .plot_labels import add_figure_note, label_or_number
from .sections import THREAT_ORDER, _sort_protocol_first, _tags, budget_groups
from ..plausibility import PLAUSIBILITY_METRICS, PLAUSIBILITY_TOLERANCES

__all__ = ["plausibility_columns", "plausibility_sections", "plot_plausibility"]

_LABELS = {
    "joint_angle_excess_deg": "joint angle", "joint_angle_violation_frames": "joint-limit frames",
    "foot_skating_cm_s": "foot skating", "ground_penetration_cm": "ground penetration",
    "self_intersection_depth_cm": "limb overlap", "self_intersection_count": "limb overlaps",
    "speed_violation_frames": "joint speed",
}


def _worst_text(measured: bool, n: int | None, worst: str | None, count: int) -> str | None:
    """The most broken measure as ``foot skating (8/8)``; ``None`` when plausibility was not measured."""
    if not measured:
        return None
    if not n:
        return "no successful examples"
    return f"{_LABELS[worst]} ({count}/{n})" if worst else "none broken"


def plausibility_columns(metrics: dict) -> dict:
    """The records-table columns of one record's plausibility (all ``None`` for an older record)."""
    share = metrics.get("plausible_share") or {}
    ci = share.get("ci95") or [None, None]
    measured = bool(share) and not share.get("not_measured")
    worst, worst_count = None, 0
    for name in PLAUSIBILITY_TOLERANCES:
        exceeded = (metrics.get(f"plausibility_{name}") or {}).get("exceeded")
        if exceeded and exceeded > worst_count:
            worst, worst_count = name, exceeded
    out = {
        "plausible_share": share.get("value") if measured else None,
        "plausible_ci_low": ci[0] if measured else None,
        "plausible_ci_high": ci[1] if measured else None,
        "plausible_n": share.get("n") if measured else None,
        "plausibility_worst": _worst_text(measured, share.get("n"), worst, worst_count),
    }
    for name in PLAUSIBILITY_METRICS:
        out[f"plausibility_{name}"] = (metrics.get(f"plausibility_{name}") or {}).get("value")
    return out


def plausibility_sections(df: pd.DataFrame) -> list[Section]:
    """One table per dataset x threat model x norm x eps x targeted."""
    if "plausible_share" not in df.columns:
        return []
    sections = []
    for (synthetic, dataset, norm, eps, targeted, threat), g in budget_groups(df, extra=["threat_model"]):
        g = _sort_protocol_first(g, ["plausible_share", "success_rate"], [False, False])
        title = f"Physical plausibility, {dataset_label(dataset, synthetic)}: {threat}, {budget_label(norm, eps, targeted)}"
        section = Section("plausibility", title, dataset, bool(synthetic), threat,
                          ["victim", "defense", "attack", "success [95% CI]", "plausible [95% CI]", "most broken measure"])
        section.notes.append(
            "Plausible: the share of successful examples whose every physical measure (joint range of motion, planted-foot "
            "skating, ground penetration, new limb overlaps, human joint speeds) changed from the clean clip by at most its "
            "stated tolerance (robustbench_skel/plausibility.py), with its 95% Wilson interval; most broken: the measure the "
            "most successful examples exceed (count/successful). Records from before these measures read 'not measured'.")
        for _, r in g.iterrows():
            measured = not is_missing(r.get("plausible_share"))
            worst = r.get("plausibility_worst")
            plausible = (Cell.proportion(r["plausible_share"], r["plausible_ci_low"], r["plausible_ci_high"]) if measured
                         else Cell("not measured" if is_missing(worst) else "n/a", sort=None))
            cells = [Cell(r["victim"]), Cell(r["defense"]), Cell.link(r["attack"], r["record"]),
                     Cell.proportion(r["success_rate"], r["success_ci_low"], r["success_ci_high"]), plausible,
                     Cell("not measured" if is_missing(worst) else str(worst))]
            section.rows.append(Row(cells, _tags(dataset, threat, [r["victim"]], [r["attack"]]), [r["record"]]))
        sections.append(((bool(synthetic), dataset, THREAT_ORDER.get(threat, 9), threat, str(norm),
                          math.inf if is_missing(eps) else eps, bool(targeted)), section))
    return [s for _, s in sorted(sections, key=lambda kv: kv[0])]


def _safe(text: object) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in str(text))


def _point_label(r: pd.Series) -> str:
    """``pgd on stgcn``, ``pgd + trades on stgcn``; a transfer point names its surrogate(s) the board's way:
    ``ifgsm@stgcn on sgn``."""
    transfer = r.get("threat_model") == "transfer" and not is_missing(r.get("surrogates"))
    return f"{attack_label(r['attack'], r.get('surrogates') if transfer else None, r['defense'])} on {r['victim']}"


def _distinct(labels: list[str], n_attacked: list[int | None]) -> list[str]:
    """Labels that two records share (the same attack on the same victim, on different clip counts) get their n."""
    return tell_apart(labels, [lambda i, group: "" if n_attacked[i] is None else f" (n={n_attacked[i]})"])


def plot_plausibility(df: pd.DataFrame, results_dir: Path) -> list[Path]:
    """``plausibility_<dataset>_<norm>_<eps>_<targeted>.png``: success (y) against plausible share (x), one
    labelled point per record that measured it, a marker per threat model; returns the files written."""
    if "plausible_share" not in df.columns:
        return []
    points = df.dropna(subset=["success_rate", "plausible_share"])
    if points.empty:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"white-box": "o", "transfer": "s", "no-box": "^", "decision-based": "D"}
    written: list[Path] = []
    for (dataset, synthetic, norm, eps, targeted), g in points.groupby(["dataset", "synthetic", "norm", "eps", "targeted"],
                                                                      sort=True, dropna=False):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        xs, ys, labels, counts = [], [], [], []
        for threat, tg in g.groupby("threat_model", sort=True):
            ax.scatter(100 * tg["plausible_share"], 100 * tg["success_rate"], marker=markers.get(threat, "x"), s=30,
                       zorder=3, label=threat)
            for _, r in tg.iterrows():
                xs.append(100 * r["plausible_share"])
                ys.append(100 * r["success_rate"])
                labels.append(_point_label(r))
                counts.append(None if is_missing(r.get("n_attacked")) else int(r["n_attacked"]))
        labels = _distinct(labels, counts)
        ax.set_xlabel("plausible share of successful examples (%)")
        ax.set_ylabel("attack success rate (%)")
        ax.set_xlim(-3, 103)
        ax.set_ylim(-3, 103)
        ax.set_title(f"{dataset_label(dataset, synthetic).replace(' benchmark', '')}: {budget_label(norm, eps, targeted)}, "
                     "success vs physical plausibility", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.canvas.draw()
        fig.set_layout_engine("none")  # labels are placed in pixels: the layout must not move afterwards
        add_figure_note(fig, label_or_number(ax, xs, ys, labels, lambda x, y: f"{x:.0f}%, {y:.0f}%", drawn=True))
        budget = "minnorm" if is_missing(eps) else f"eps{eps:g}"
        path = Path(results_dir) / ("_".join(["plausibility", _safe(dataset), _safe(norm), budget,
                                              "targeted" if targeted else "untargeted"]) + ".png")
        save_figure_atomic(fig, path, dpi=120, bbox_inches="tight")  # with the note under the axes
        plt.close(fig)
        written.append(path)
    return written
