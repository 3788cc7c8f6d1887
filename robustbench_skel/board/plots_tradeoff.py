"""Success against imperceptibility, per victim: which attacks buy their success with visible motion.

A success rate alone rewards attacks that shake the body; acceleration deviation (m/s^2, the change
in joint acceleration of the successful examples) is what an observer notices first in skeleton
motion. One figure per dataset x victim x defense, one panel per norm and budget (points at different
budgets or norms are not comparable), one labelled point per attack with its 95% Wilson interval; the
marker says the threat model. Drawn from the leaderboard's records table and nothing else.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from ..atomic import save_figure_atomic
from .model import attack_label, dataset_label, is_missing, tell_apart
from .plot_labels import THREAT_STYLE, add_figure_note, label_or_number, threat_style

__all__ = ["plot_tradeoff", "tradeoff_figures", "panel_title"]

_NORM_ORDER = {"linf": 0, "l2": 1}
_PANEL_INCHES = (4.6, 3.7)
DPI = 150
_MARKER_PT = 5


def _safe(text: object) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in str(text))


def panel_title(norm: object, eps: object) -> str:
    """``L-inf ε = 1 cm``; bone-scale budgets are relative (no unit); no budget reads minimum-norm."""
    name = {"linf": "L-inf", "l2": "L2"}.get(str(norm), str(norm))
    if is_missing(eps):
        return f"{name} minimum-norm"
    if norm in ("linf", "l2"):
        return f"{name} ε = {100 * float(eps):g} cm"
    return f"{name} ε = {float(eps):g}"


def _panel_key(key: tuple) -> tuple:
    norm, eps = key
    return (_NORM_ORDER.get(norm, 2), str(norm), math.inf if is_missing(eps) else float(eps))


def _point_labels(g: pd.DataFrame) -> list[str]:
    """``attack``, ``attack@surrogate`` for transfer, `` targeted``; labels that clash get the protocol, then the
    options their records set (``(swag=reference)``, ``(defaults)``), then the setting's short hash."""
    rows = [r for _, r in g.iterrows()]
    labels = [attack_label(r["attack"], r.get("surrogates") if r.get("threat_model") == "transfer" else None)
              + (" targeted" if bool(r.get("targeted")) else "") for r in rows]
    options = [None if is_missing(r.get("attack_options")) else str(r["attack_options"]) for r in rows]

    def protocol(i: int, group: list[int]) -> str:
        value = rows[i].get("protocol")
        return "" if value in (None, "quick") or is_missing(value) else f" ({value})"

    def worded(i: int, group: list[int]) -> str:
        return f" ({options[i] or 'defaults'})" if any(options[j] for j in group) else ""

    def setting(i: int, group: list[int]) -> str:
        config = rows[i].get("attack_config")
        return "" if is_missing(config) else f" [{str(config)[:6]}]"

    return tell_apart(labels, [protocol, worded, setting])


def tradeoff_figures(df: pd.DataFrame) -> Iterator[tuple[str, Any]]:
    """Yield ``(file stem, figure)`` for every dataset x victim x defense with two or more attack points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    points = df.dropna(subset=["success_rate", "acceleration_deviation"])
    for column in ("norm", "eps", "targeted", "threat_model", "surrogates", "protocol", "attack_config", "attack_options",
                   "success_ci_low", "success_ci_high"):  # older or hand-made tables may lack some
        if column not in points.columns:
            points = points.assign(**{column: None})
    for (dataset, synthetic, victim, defense), g in points.groupby(["dataset", "synthetic", "victim", "defense"], sort=True):
        if len(g) < 2:
            continue
        panels = sorted(g.groupby(["norm", "eps"], sort=False, dropna=False), key=lambda kv: _panel_key(kv[0]))
        ncols = min(3, len(panels))
        nrows = math.ceil(len(panels) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(_PANEL_INCHES[0] * ncols, _PANEL_INCHES[1] * nrows + 0.9),
                                 dpi=DPI, squeeze=False, layout="constrained")
        threats = sorted(set(g["threat_model"].fillna("white-box")), key=lambda t: list(THREAT_STYLE).index(t)
                         if t in THREAT_STYLE else len(THREAT_STYLE))
        placements = []
        for ax, ((norm, eps), pg) in zip(axes.flat, panels):
            pg = pg.sort_values(["threat_model", "attack", "targeted"])
            xs = pg["acceleration_deviation"].astype(float).tolist()
            ys = (100 * pg["success_rate"].astype(float)).tolist()
            spans = []
            for (_, r), x, y in zip(pg.iterrows(), xs, ys):
                style = threat_style(r.get("threat_model"))
                low = 100 * r["success_ci_low"] if not is_missing(r.get("success_ci_low")) else y
                high = 100 * r["success_ci_high"] if not is_missing(r.get("success_ci_high")) else y
                spans.append((low, high))
                ax.errorbar([x], [y], yerr=[[max(y - low, 0)], [max(high - y, 0)]], fmt=style["marker"],
                            color=style["color"], markersize=_MARKER_PT, elinewidth=0.8, capsize=2, zorder=3,
                            markerfacecolor="none" if bool(r.get("targeted")) else style["color"])
            ax.set_title(panel_title(norm, eps), fontsize=9)
            ax.set_xlim(0, max(xs) * 1.12 if max(xs) > 0 else 1)
            ax.set_ylim(-4, 108)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
            ax.set_xlabel("acceleration deviation (m/s²)", fontsize=8)
            if ax.get_subplotspec().is_first_col():
                ax.set_ylabel("attack success rate (%)", fontsize=8)
            placements.append((ax, xs, ys, spans, _point_labels(pg), panel_title(norm, eps)))
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        handles = [Line2D([], [], linestyle="none", marker=threat_style(t)["marker"], color=threat_style(t)["color"],
                          label=t) for t in threats]
        if g["targeted"].fillna(False).astype(bool).any():
            handles.append(Line2D([], [], linestyle="none", marker="o", color="0.3", markerfacecolor="none",
                                  label="targeted (open marker)"))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
        who = f"{victim}" + ("" if defense == "none" else f" + {defense}")
        fig.suptitle(f"{dataset_label(dataset, synthetic).replace(' benchmark', '')}: {who}, success vs imperceptibility "
                     "(bars: 95% Wilson interval)", fontsize=10)
        fig.canvas.draw()
        fig.set_layout_engine("none")  # freeze the layout: labels are placed in pixels
        legend = fig.legends[0]  # pin the legend where the layout put it, in figure fractions, so that a
        where = legend.get_window_extent().transformed(fig.transFigure.inverted())  # taller saved image keeps it
        legend.set_bbox_to_anchor(where, transform=fig.transFigure)
        legend.set_loc("center")
        left_off: list[str] = []  # a name with no room gets a number by its point, and the note says whose
        for ax, xs, ys, spans, labels, title in placements:
            numbered = sum(note.startswith("(") for note in left_off)  # the numbers go on across the panels
            left_off += label_or_number(ax, xs, ys, labels, lambda x, y: f"{x:.1f}, {y:.0f}%",
                                        first_number=numbered + 1, prefix=title, spans=spans,
                                        marker_px=_MARKER_PT * DPI / 72, drawn=True)
        add_figure_note(fig, left_off)
        stem = "_".join(["tradeoff", _safe(dataset), _safe(victim)] + ([] if defense == "none" else [_safe(defense)]))
        yield stem, fig


def plot_tradeoff(df: pd.DataFrame, results_dir: Path) -> list[Path]:
    """``tradeoff_<dataset>_<victim>[_<defense>].png`` for every victim with two or more attack points;
    returns the files written."""
    import matplotlib.pyplot as plt

    written: list[Path] = []
    for stem, fig in tradeoff_figures(df):
        path = Path(results_dir) / (stem + ".png")
        save_figure_atomic(fig, path, dpi=DPI, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
