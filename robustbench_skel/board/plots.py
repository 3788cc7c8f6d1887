"""The leaderboard's figures (matplotlib, Agg backend), each a pure function of the records table.

Budget curves (success against eps), transfer heatmaps (attack@surrogate x victim) and, for
decision-based attacks, median perturbation against the query budget.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..atomic import save_figure_atomic
from .model import dataset_label, is_missing
from .plot_labels import threat_style

__all__ = ["budget_curve_figures", "heatmap_figure", "plot_budget_curves", "plot_heatmap", "plot_queries"]

_DPI = 150


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series_label(victim: str, attack: str, defense: str, threat: str, surrogates: object, protocol: object) -> str:
    label = f"{victim} / {attack}"
    if threat == "transfer" and not is_missing(surrogates):
        label += f"@{surrogates}"
        if victim in str(surrogates).split("+"):
            label += " (own surrogate: white-box)"
    if defense != "none":
        label += f" + {defense}"
    if threat not in ("white-box", "transfer"):
        label += f" ({threat})"
    if protocol == "standard":
        label += " [standard]"
    return label


def budget_curve_figures(df: pd.DataFrame) -> Iterator[tuple[str, Any]]:
    """Yield ``(file stem, figure)`` per dataset x norm x targeted: success against the budget, one series per
    victim x attack x defense x threat model x surrogate(s) x protocol run at two or more budgets (a
    transfer attack from two surrogates is two series), with 95% Wilson intervals; the line style and
    marker say the threat model. At a budget a series holds twice (another step setting), the newest counts."""
    plt = _pyplot()
    from matplotlib.transforms import offset_copy

    df = df.dropna(subset=["eps", "success_rate"])
    series_key = ["victim", "attack", "defense", "threat_model", "surrogates", "protocol"]
    for (dataset, synthetic, norm, targeted), group in df.groupby(["dataset", "synthetic", "norm", "targeted"], sort=True):
        curves = []
        for key, g in group.groupby(series_key, sort=True, dropna=False):
            g = g.sort_values("created", ascending=False).drop_duplicates("eps").sort_values("eps")
            if len(g) >= 2:
                curves.append((key, g))
        if not curves:
            continue
        scale = 100 if norm in ("linf", "l2") else 1
        fig, ax = plt.subplots(figsize=(9.0, 4.8), dpi=_DPI, layout="constrained")
        colours = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20").colors
        for index, ((victim, attack, defense, threat, surrogates, protocol), g) in enumerate(curves):
            style = threat_style(threat)
            # a few points apart sideways, so that error bars at one budget do not hide each other
            dodge = offset_copy(ax.transData, fig=fig, x=3.0 * (index - (len(curves) - 1) / 2), units="points")
            yerr = [(100 * (g["success_rate"] - g["success_ci_low"])).clip(lower=0).fillna(0),
                    (100 * (g["success_ci_high"] - g["success_rate"])).clip(lower=0).fillna(0)]
            ax.errorbar(g["eps"] * scale, 100 * g["success_rate"], yerr=yerr, transform=dodge, marker=style["marker"],
                        linestyle=style["linestyle"], color=colours[index % len(colours)], capsize=3, markersize=5,
                        label=_series_label(victim, attack, defense, threat, surrogates, protocol))
        budgets = sorted({float(e) for _, g in curves for e in g["eps"]})
        ax.set_xticks([b * scale for b in budgets], [f"{b * scale:g}" for b in budgets])
        margin = 0.08 * (budgets[-1] - budgets[0]) * scale  # room for the dodged points at both ends
        ax.set_xlim(budgets[0] * scale - margin, budgets[-1] * scale + margin)
        unit = {"linf": "L-inf budget ε (cm per coordinate)", "l2": "L2 budget ε (RMS cm per coordinate)"}.get(norm, f"{norm} budget ε")
        ax.set_xlabel(unit)
        ax.set_ylabel("attack success rate (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{dataset_label(dataset, synthetic).replace(' benchmark', '')}: "
                     f"{'targeted' if targeted else 'untargeted'}, success against budget (bars: 95% Wilson interval)",
                     fontsize=10)
        ax.grid(alpha=0.3)
        fig.legend(fontsize="small", loc="outside right upper", title="victim / attack@surrogate", title_fontsize="small")
        yield f"budget_curve_{dataset}_{norm}_{'targeted' if targeted else 'untargeted'}", fig


def plot_budget_curves(df: pd.DataFrame, results_dir: Path) -> list[Path]:
    """Write :func:`budget_curve_figures` as PNG and SVG; returns the files written."""
    plt = _pyplot()
    written: list[Path] = []
    for stem, fig in budget_curve_figures(df):
        for suffix in (".png", ".svg"):
            path = results_dir / (stem + suffix)
            with plt.rc_context({"svg.hashsalt": stem}):  # same records, same bytes: no dates, no random ids
                save_figure_atomic(fig, path, dpi=_DPI, metadata={"Date": None} if suffix == ".svg" else None)
            written.append(path)
        plt.close(fig)
    return written


# The transfer heatmap: a fixed 0-100 % scale (two heatmaps read alike), cells big enough to read at print
# size, and every cell that is not a transfer result marked as such.
HEATMAP_DPI = 150
HEATMAP_MIN_WIDTH_PX = 1000
_CELL_INCHES = (0.78, 0.42)
SELF_HATCH = "///"
MISSING_HATCH = "xx"


def heatmap_figure(values: np.ndarray, rows: list[str], columns: list[str], own: np.ndarray, title: str,
                   row_title: str = "attack@surrogate(s)", column_title: str = "victim",
                   missing: np.ndarray | None = None) -> Any:
    """Transfer success (%) per row x victim on a fixed 0-100 % scale, each cell annotated; cells where the
    victim is one of the row's surrogates are hatched and starred (white-box, not transfer); cells with no
    record (``missing``, by default every NaN) are grey, cross-hatched and read "not run"; a NaN cell that
    was run (nothing attacked) reads "n/a". The legend under the matrix says what each mark means."""
    plt = _pyplot()
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch, Rectangle

    values = np.asarray(values, dtype=float)
    own = np.asarray(own, dtype=bool)
    missing = np.isnan(values) if missing is None else np.asarray(missing, dtype=bool)
    label_inches = 0.075 * max([len(r) for r in rows] + [8])  # room for the row names
    width = max(HEATMAP_MIN_WIDTH_PX / HEATMAP_DPI, label_inches + 1.6 + _CELL_INCHES[0] * len(columns))
    height = 2.4 + max(_CELL_INCHES[1] * len(rows), 1.8)  # a few rows still get a colour bar one can read
    fig, ax = plt.subplots(figsize=(width, height), dpi=HEATMAP_DPI, layout="constrained")
    cmap = plt.get_cmap("viridis").with_extremes(bad="#d9d9d9")
    norm = Normalize(vmin=0, vmax=100)
    image = ax.imshow(np.ma.masked_invalid(100 * values), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(columns)), columns, rotation=35, ha="right", rotation_mode="anchor", fontsize=9)
    ax.set_yticks(range(len(rows)), rows, fontsize=9)
    ax.set_xlabel(column_title)
    ax.set_ylabel(row_title)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if missing[i, j]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="none", hatch=MISSING_HATCH,
                                       hatchcolor="#a6a6a6", edgecolor="none", linewidth=0, gid="missing"))
                ax.text(j, i, "not run", ha="center", va="center", fontsize=7, color="#404040")
                continue
            if np.isnan(values[i, j]):
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="#404040")
                continue
            v = 100 * values[i, j]
            if own[i, j]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="none", hatch=SELF_HATCH,
                                       hatchcolor="white", edgecolor="white", linewidth=1.2, alpha=0.55, gid="self"))
            red, green, blue, _ = cmap(norm(v))
            light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
            ax.text(j, i, f"{v:.0f}{'*' if own[i, j] else ''}", ha="center", va="center", fontsize=8,
                    color="black" if light else "white", fontweight="bold" if own[i, j] else "normal",
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": cmap(norm(v)), "edgecolor": "none"} if own[i, j] else None)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("transfer success (%)")
    bar.set_ticks(range(0, 101, 20))
    handles = []
    if own.any():
        handles.append(Patch(facecolor="#3b528b", hatch=SELF_HATCH, edgecolor="white",
                             label="* victim is one of the row's surrogates: white-box success, not transfer"))
    if missing.any():
        handles.append(Patch(facecolor="#d9d9d9", hatch=MISSING_HATCH, edgecolor="#a6a6a6",
                             label="not run: no record for this cell"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    ax.set_title(textwrap.fill(title.replace(" benchmark", ""), int(width * 72 / 5.5)), fontsize=10)
    return fig


def plot_heatmap(values: np.ndarray, rows: list[str], columns: list[str], own: np.ndarray, path: Path, title: str,
                 row_title: str = "attack@surrogate(s)", missing: np.ndarray | None = None) -> Path:
    """Write :func:`heatmap_figure` to ``path`` (PNG unless its suffix names another format)."""
    plt = _pyplot()
    fig = heatmap_figure(values, rows, columns, own, title, row_title, missing=missing)
    save_figure_atomic(fig, path, dpi=HEATMAP_DPI)
    plt.close(fig)
    return path


def plot_queries(df: pd.DataFrame, path: Path, title: str) -> Path | None:
    """Median perturbation reached (y, RMS cm) against the query budget (x), one line per victim x attack
    x defense run at two or more budgets; ``None`` when there is no such line."""
    curves = [(key, g.sort_values("max_queries")) for key, g in df.dropna(subset=["max_queries", "median_l2_rms_m"])
              .groupby(["victim", "attack", "defense"], sort=True) if g["max_queries"].nunique() >= 2]
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (victim, attack, defense), g in curves:
        label = f"{victim} / {attack}" + ("" if defense == "none" else f" + {defense}")
        ax.plot(g["max_queries"], 100 * g["median_l2_rms_m"], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("query budget (max queries per clip)")
    ax.set_ylabel("median perturbation (RMS cm per coordinate)")
    ax.set_title(textwrap.fill(title.replace(" benchmark", ""), 70), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)
    plt.close(fig)
    return path
