"""The leaderboard's figures (matplotlib, Agg backend), each a pure function of the records table.

Budget curves (success against eps), transfer heatmaps (attack@surrogate x victim) and, for
decision-based attacks, median perturbation against the query budget.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import save_figure_atomic
from .model import dataset_label

__all__ = ["plot_budget_curves", "plot_heatmap", "plot_queries"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_budget_curves(df: pd.DataFrame, results_dir: Path) -> list[Path]:
    """Success rate against budget, one figure per dataset x norm x targeted, one line per victim x attack
    x defense that was run at two or more budgets; PNG and SVG. Returns the files written."""
    plt = _pyplot()
    written: list[Path] = []
    df = df.dropna(subset=["eps"])
    for (dataset, synthetic, norm, targeted), group in df.groupby(["dataset", "synthetic", "norm", "targeted"], sort=True):
        curves = [(key, g.sort_values("eps")) for key, g in group.groupby(["victim", "attack", "defense", "threat_model"], sort=True)
                  if g["eps"].nunique() >= 2]
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for (victim, attack, defense, threat), g in curves:
            label = f"{victim} / {attack}" + ("" if defense == "none" else f" + {defense}") + ("" if threat == "white-box" else f" ({threat})")
            g = g.dropna(subset=["success_rate"])
            yerr = [(100 * (g["success_rate"] - g["success_ci_low"])).clip(lower=0),
                    (100 * (g["success_ci_high"] - g["success_rate"])).clip(lower=0)]
            ax.errorbar(g["eps"] * (100 if norm in ("linf", "l2") else 1), 100 * g["success_rate"], yerr=yerr,
                        marker="o", capsize=3, label=label)
        unit = {"linf": "L-inf budget (cm per coordinate)", "l2": "L2 budget (RMS cm per coordinate)"}.get(norm, f"{norm} budget")
        ax.set_xlabel(unit)
        ax.set_ylabel("attack success rate (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{dataset_label(dataset, synthetic).replace(' benchmark', '')}: {'targeted' if targeted else 'untargeted'}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        stem = f"budget_curve_{dataset}_{norm}_{'targeted' if targeted else 'untargeted'}"
        for suffix in (".png", ".svg"):
            path = results_dir / (stem + suffix)
            with plt.rc_context({"svg.hashsalt": stem}):  # same records, same bytes: no dates, no random ids
                save_figure_atomic(fig, path, dpi=120, metadata={"Date": None} if suffix == ".svg" else None)
            written.append(path)
        plt.close(fig)
    return written


def plot_heatmap(values: np.ndarray, rows: list[str], columns: list[str], own: np.ndarray, path: Path, title: str) -> Path:
    """Success (%) as a heatmap, annotated; cells where the victim is the row's surrogate are starred."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(columns), 1.4 + 0.5 * len(rows)))
    image = ax.imshow(100 * values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=35, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isnan(values[i, j]):
                continue
            v = 100 * values[i, j]
            ax.text(j, i, f"{v:.0f}{'*' if own[i, j] else ''}", ha="center", va="center", fontsize=8,
                    color="black" if v > 60 else "white")
    fig.colorbar(image, ax=ax, label="transfer success (%)")
    ax.set_title(textwrap.fill(title.replace(" benchmark", ""), 48 + 8 * len(columns)), fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
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
