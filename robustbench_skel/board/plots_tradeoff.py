"""Success against imperceptibility, per victim: which attacks buy their success with visible motion.

A success rate alone rewards attacks that shake the body; acceleration deviation (m/s^2, the change
in joint acceleration of the successful examples) is what an observer notices first in skeleton
motion. One figure per dataset x victim x defense, one labelled point per attack (and budget, when an
attack was run at several), drawn from the leaderboard's records table and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import save_figure_atomic
from .model import dataset_label

__all__ = ["plot_tradeoff"]


def _safe(text: object) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in str(text))


def plot_tradeoff(df: pd.DataFrame, results_dir: Path) -> list[Path]:
    """``tradeoff_<dataset>_<victim>[_<defense>].png`` for every victim with two or more attack points;
    returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    points = df.dropna(subset=["success_rate", "acceleration_deviation"])
    for (dataset, synthetic, victim, defense), g in points.groupby(["dataset", "synthetic", "victim", "defense"], sort=True):
        if len(g) < 2:
            continue
        several = g.groupby("attack")["eps"].nunique()
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for _, r in g.sort_values(["attack", "eps", "targeted"]).iterrows():
            label = r["attack"] + (f" @{r['eps']:g}" if several.get(r["attack"], 0) > 1 else "")
            if r.get("targeted"):
                label += " targeted"
            if r.get("threat_model") not in (None, "white-box"):
                label += f" ({r['threat_model']})"
            ax.scatter(r["acceleration_deviation"], 100 * r["success_rate"], s=28, zorder=3)
            ax.annotate(label, (r["acceleration_deviation"], 100 * r["success_rate"]), xytext=(4, 3),
                        textcoords="offset points", fontsize=7)
        ax.set_xlabel("acceleration deviation of successful examples, mean (m/s²)")
        ax.set_ylabel("attack success rate (%)")
        ax.set_ylim(0, 105)
        ax.set_xlim(left=0)
        title = f"{victim}" + ("" if defense == "none" else f" + {defense}")
        ax.set_title(f"{dataset_label(dataset, synthetic).replace(' benchmark', '')}: {title}, success vs imperceptibility",
                     fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = Path(results_dir) / ("_".join(["tradeoff", _safe(dataset), _safe(victim)] + ([] if defense == "none" else [_safe(defense)])) + ".png")
        save_figure_atomic(fig, path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
