"""The leaderboard: tables built from run records and nothing else.

One row per victim x attack x defense x dataset within each threat setting (norm, budget, targeted
or not); when several records share that key and the same sample set, the newest wins. Output:
``leaderboard.csv`` (every row, every column) and ``leaderboard.md`` (one table per dataset and
threat setting, synthetic datasets labelled as such).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from .errors import UserError
from .record import iter_records
from .report import fmt_num, fmt_pct, threat_setting

__all__ = ["records_table", "build_leaderboard"]

_KEY = ["dataset", "split", "victim", "checkpoint_sha256", "defense", "attack", "norm", "eps", "targeted", "sample_ids_sha256"]
_IMPERCEPTIBILITY = [
    ("mean_joint_displacement_cm", "mean disp. (cm)", "cm"),
    ("max_joint_displacement_cm", "max disp. (cm)", "cm"),
    ("linf_m", "L-inf (m)", ""),
    ("bone_length_deviation", "bone dev.", "%"),
    ("acceleration_deviation", "accel. dev. (m/s^2)", ""),
    ("jerk_deviation", "jerk dev. (m/s^3)", ""),
]


def _row(path: Path, record: dict) -> dict:
    m, attack, ds = record["metrics"], record["attack"], record["dataset"]
    row = {
        "dataset": ds["name"],
        "synthetic": bool(ds.get("synthetic")),
        "dataset_version": ds.get("version"),
        "split": ds["split"],
        "victim": record["victim"]["name"],
        "checkpoint_sha256": record["victim"]["checkpoint_sha256"],
        "defense": (record.get("defense") or {}).get("name") or "none",
        "attack": attack["name"],
        "threat_model": attack["threat_model"],
        "norm": attack["norm"],
        "eps": attack["eps"],
        "targeted": bool(attack["targeted"]),
        "n": ds["num_evaluated"],
        "sample_ids_sha256": ds["sample_ids_sha256"],
        "seed": record["seed"],
        "clean_accuracy": m["clean_accuracy"]["value"],
        "n_attacked": m["attack_success_rate"]["n"],
        "success_rate": m["attack_success_rate"]["value"],
        "success_ci_low": m["attack_success_rate"]["ci95"][0],
        "success_ci_high": m["attack_success_rate"]["ci95"][1],
        "robust_accuracy": m["robust_accuracy"]["value"],
        "within_budget": m["within_budget"]["value"],
        "all_within_budget": record.get("flags", {}).get("all_within_budget"),
        "all_finite": record.get("flags", {}).get("all_finite"),
        "sanity": _sanity_summary(record),
        "sweep_id": (record.get("sweep") or {}).get("id"),
        "created": record["created"],
        "record": path.name,
    }
    for key, _, _ in _IMPERCEPTIBILITY:
        row[key] = m[key]["value"]
    row["max_joint_displacement_cm_worst"] = m["max_joint_displacement_cm"]["max"]
    return row


def _sanity_summary(record: dict) -> str:
    """``passed/applicable`` over every check in the record, naming the failures: ``3/4 (converged)``."""
    flags = record.get("flags", {})
    checks = {k: v for k, v in flags.items() if v is not None}
    if not checks:
        return "n/a"
    failed = [k.removeprefix("sanity_").removeprefix("all_").replace("_", " ") for k, v in checks.items() if not v]
    text = f"{len(checks) - len(failed)}/{len(checks)}"
    return text + (f" (failed: {', '.join(failed)})" if failed else "")


def records_table(results_dir: str | Path) -> pd.DataFrame:
    """All records as rows, newest first within each key, duplicates removed."""
    rows = [_row(p, r) for p, r in iter_records(results_dir)]
    if not rows:
        return pd.DataFrame(columns=[*_KEY, "record"])
    df = pd.DataFrame(rows)
    df = df.sort_values("created", ascending=False).drop_duplicates(subset=_KEY, keep="first")
    return df.sort_values(["synthetic", "dataset", "norm", "eps", "targeted", "victim", "defense", "success_rate"]).reset_index(drop=True)


def _markdown_table(df: pd.DataFrame) -> list[str]:
    header = ["victim", "defense", "attack", "n", "clean acc.", "success [95% CI]", "robust acc."] + [h for _, h, _ in _IMPERCEPTIBILITY] + ["checks passed"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in df.iterrows():
        cells = [
            r["victim"], r["defense"], r["attack"], str(r["n"]), fmt_pct(r["clean_accuracy"]),
            f"{fmt_pct(r['success_rate'])} [{fmt_pct(r['success_ci_low'])}, {fmt_pct(r['success_ci_high'])}]",
            fmt_pct(r["robust_accuracy"]),
        ]
        cells += [fmt_num(r[key], unit if unit == "%" else "") for key, _, unit in _IMPERCEPTIBILITY]
        cells.append(str(r["sanity"]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot_budget_curves(df: pd.DataFrame, results_dir: Path) -> list[Path]:
    """Success rate against budget, one figure per dataset x norm x targeted, one line per victim x attack
    x defense that was run at two or more budgets; PNG and SVG. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    for (dataset, synthetic, norm, targeted), group in df.groupby(["dataset", "synthetic", "norm", "targeted"], sort=True):
        curves = [(key, g.sort_values("eps")) for key, g in group.groupby(["victim", "attack", "defense"], sort=True) if g["eps"].nunique() >= 2]
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for (victim, attack, defense), g in curves:
            label = f"{victim} / {attack}" + ("" if defense == "none" else f" + {defense}")
            g = g.dropna(subset=["success_rate"])
            yerr = [(100 * (g["success_rate"] - g["success_ci_low"])).clip(lower=0),
                    (100 * (g["success_ci_high"] - g["success_rate"])).clip(lower=0)]
            ax.errorbar(g["eps"] * (100 if norm in ("linf", "l2") else 1), 100 * g["success_rate"], yerr=yerr,
                        marker="o", capsize=3, label=label)
        unit = {"linf": "L-inf budget (cm per coordinate)", "l2": "L2 budget (RMS cm per coordinate)"}.get(norm, f"{norm} budget")
        ax.set_xlabel(unit)
        ax.set_ylabel("attack success rate (%)")
        ax.set_ylim(0, 100)
        title = f"{dataset}{' (SYNTHETIC)' if synthetic else ''}: {'targeted' if targeted else 'untargeted'}"
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        stem = f"budget_curve_{dataset}_{norm}_{'targeted' if targeted else 'untargeted'}"
        for suffix in (".png", ".svg"):
            path = results_dir / (stem + suffix)
            fig.savefig(path, dpi=120)
            written.append(path)
        plt.close(fig)
    return written


def build_leaderboard(results_dir: str | Path) -> tuple[Path, Path, int]:
    """Write ``leaderboard.md`` and ``leaderboard.csv`` in ``results_dir``; returns their paths and the row count."""
    results_dir = Path(results_dir)
    df = records_table(results_dir)
    if df.empty:
        raise UserError(f"no run records in {str(results_dir / 'runs')!r}; run `python -m robustbench_skel run` first")
    md = [
        "# robustbench_skel leaderboard",
        "",
        "Generated by `python -m robustbench_skel leaderboard` from the run records in `runs/`; do not edit by hand.",
        "Success rate is over the test samples the victim classifies correctly; robust accuracy over all evaluated samples.",
        "Imperceptibility columns are means over the successful examples.",
        "Checks passed: the evaluator's flags (within budget, finite, nothing lost, sanity re-attacks: unbounded budget,",
        "monotone in budget, at least as strong as FGSM, converged); see each record's `sanity` for the figures.",
        "",
    ]
    for (dataset, synthetic, norm, eps, targeted), group in df.groupby(["dataset", "synthetic", "norm", "eps", "targeted"], sort=True):
        label = f"{dataset} (SYNTHETIC benchmark)" if synthetic else dataset
        md += [f"## {label}: {threat_setting({'norm': norm, 'eps': eps, 'targeted': targeted})}", ""]
        md += _markdown_table(group.sort_values(["victim", "defense", "success_rate"], ascending=[True, True, False]))
        md.append("")
    plots = plot_budget_curves(df, results_dir)
    if plots:
        md += ["## Success rate against budget", ""]
        md += [f"![{p.stem}]({p.name})" for p in plots if p.suffix == ".png"]
        md.append("")
    md_path, csv_path = results_dir / "leaderboard.md", results_dir / "leaderboard.csv"
    _write_atomic(md_path, "\n".join(md))
    _write_atomic(csv_path, df.to_csv(index=False))
    return md_path, csv_path, len(df)
