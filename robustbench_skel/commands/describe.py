"""``describe DATASET``: what a dataset holds, as a user needs to know before trusting numbers on it.

For the generated benchmark (``synth``) it prints the class list with the fine-grained groups, the clip
counts per split and the sensor model's parameters, and writes one figure with a still of every class;
with records of the current version in the results folder, it also prints the difficulty they measure
(clean accuracy, PGD success, surrogates fooled) against the targets the generator was designed for.
For a dataset read from files it prints the source's description.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import save_figure_atomic
from ..errors import UserError
from ..registry import DATASETS

__all__ = ["describe_dataset", "class_stills_figure", "difficulty_lines"]

DEFAULT_EPS = 0.01  # the attacks' default L-inf budget (metres), at which the difficulty targets are set


def describe_dataset(name: str, out: str | Path | None = None, seed: int = 0, results_dir: str | Path = "results",
                     figure: bool = True) -> tuple[str, Path | None]:
    """The text card of dataset ``name`` and, for a generated one, the path of its stills figure (written under
    ``results_dir``/figures/ unless ``out`` names it; ``figure=False`` writes none)."""
    source = DATASETS.get(name)  # a UserError naming the known datasets when unknown
    if source is not DATASETS.get("synth"):
        where = ("read from your files (--data-path)" if source.needs_path
                 else "generated procedurally; only synth has a full generated card")
        return f"{name}: {source.description}\n(no generated card: {where})", None
    from ..datasets import synth2

    card = synth2.describe(seed)
    lines = [f"{name}: {source.description}", ""]
    lines.append(f"classes ({len(card['classes'])}; * = two-person interaction), by group:")
    groups: dict[str, list[str]] = {}
    for c in card["classes"]:
        groups.setdefault(c["group"], []).append(f"{c['index']}:{c['name']}{'*' if c['two_person'] else ''}")
    width = max(len(g) for g in groups)
    lines += [f"  {g:<{width}}  {', '.join(names)}" for g, names in groups.items()]
    lines += ["", "clips per split:"]
    lines += [f"  {split:<12} {n}" for split, n in card["split_sizes"].items()]
    lines += ["  (train/test are xsub-train/xsub-test)", ""]
    lines.append(f"frames: {card['frames']} at {card['fps']} fps, valid {card['valid_frames'][0]}-{card['valid_frames'][1]} "
                 f"then zero-padded; persons {card['persons']}; performers {card['subjects']['all']} "
                 f"(test: {', '.join(map(str, card['subjects']['xsub_test']))})")
    lines.append("cameras (azimuth around the performer, degrees): "
                 + ", ".join(f"{k}: {v:+.0f}" for k, v in card["views"].items())
                 + f"; xview trains on {card['xview']['train_views']} and tests on {card['xview']['test_views']}")
    lines += ["", "sensor model (Kinect v2-like):"]
    for key, value in card["sensor"].items():
        if key == "joint_noise_cm":
            value = ", ".join(f"{v:g}" for v in value) + "  (per NTU-25 joint)"
        lines.append(f"  {key}: {value}")
    lines += ["", *difficulty_lines(results_dir)]
    if not figure:
        return "\n".join(lines), None
    path = Path(out) if out else Path(results_dir) / "figures" / f"{name}_classes.png"
    return "\n".join(lines), class_stills_figure(path, seed)


def class_stills_figure(path: Path, seed: int = 0) -> Path:
    """One still per class (two frames of performer 1 as the front camera sees it), as a PNG grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..datasets import synth2
    from ..layout import NTU25
    from ..preflight import check_writable_file

    check_writable_file(path, "--out")  # before any work: a folder or a file in the way is refused
    path.parent.mkdir(parents=True, exist_ok=True)
    names = synth2.SYNTH_ACTIONS
    data = synth2.generate_clips([(1, a, 1, 1) for a in range(len(names))], seed)
    cols = 9
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.3 * rows))
    for a, ax in enumerate(axes.flat):
        ax.axis("off")
        if a >= len(names):
            continue
        length = int(data.valid_lengths[a])
        for frame, alpha in ((int(0.3 * length), 0.35), (int(0.55 * length), 1.0)):
            for m in range(2):
                x = data.clips[a, :, frame, :, m]
                if not x.any():
                    continue
                for c, p in NTU25.bones:  # x flipped: drawn as the camera sees it
                    ax.plot([-x[0, c], -x[0, p]], [x[1, c], x[1, p]], "-", color=f"C{m}", alpha=alpha, lw=1)
        ax.set_aspect("equal")
        ax.set_title(f"{a}: {names[a]}", fontsize=8)
    fig.suptitle(f"synth {synth2.SYNTH_VERSION} (synthetic): one performer, front camera, two frames per class", fontsize=10)
    fig.tight_layout()
    try:
        save_figure_atomic(fig, path, dpi=80)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return path


def difficulty_lines(results_dir: str | Path = "results") -> list[str]:
    """The difficulty the records of the current synth version measure at the default budget, one line per
    victim, then each design target (:data:`synth2.DIFFICULTY_TARGETS`) with the figure that meets it or not."""
    import pandas as pd

    from ..board.difficulty import pgd_budget_curves, victim_difficulty
    from ..board.leaderboard import _load
    from ..datasets import synth2

    runs = Path(results_dir) / "runs"
    head = f"difficulty of synth {synth2.SYNTH_VERSION} at L-inf {DEFAULT_EPS * 100:g} cm (records in {runs}):"
    everything = _load(results_dir, skip_invalid=True)[0] if runs.is_dir() else None
    if everything is not None and not everything.empty:
        everything = everything[(everything["dataset"] == "synth")
                                & (everything["dataset_version"].astype(str) == synth2.SYNTH_VERSION)]
    if everything is None or everything.empty:
        rows = []
    else:
        rows = victim_difficulty(everything[(everything["norm"] == "linf")
                                            & ((pd.to_numeric(everything["eps"], errors="coerce") - DEFAULT_EPS).abs() < 1e-9)])
    if not rows:
        return [head, "  no PGD record yet: `python -m robustbench_skel sweep results/grids/synth_1_pgd.toml` measures it"]
    width = max(len(r.victim) for r in rows)
    lines = [head, f"  {'victim':<{width}}  clips  clean   PGD     strongest white-box (clips)   fooled as surrogate"]
    for r in rows:
        strongest = f"{r.strongest[0]} {r.strongest[2][0]:.1%} ({r.strongest[1]})" if r.strongest else ""
        surrogate = f"{r.as_surrogate[2][0]:.1%} ({r.as_surrogate[1]})" if r.as_surrogate else ""
        lines.append(f"  {r.victim:<{width}}  {r.clips:>5}  {r.clean[0]:>5.1%}  {r.pgd[0]:>5.1%}   "
                     f"{strongest:<28}  {surrogate}".rstrip())
    lines.append(f"  PGD: {'; '.join(sorted({r.pgd_step for r in rows}))}")
    for victim, curve in pgd_budget_curves(everything).items():
        points = ", ".join(f"{eps * 100:g} cm {rate[0]:.1%}" for eps, rate, _ in curve)
        lines.append(f"  PGD success against the budget, {victim} ({curve[0][2]} clips attacked): {points}")
    lines += ["", "design targets (met / NOT MET / not measured):"]
    for key, what, low, high in synth2.DIFFICULTY_TARGETS:
        figures = _measured(key, rows)
        bound = (f"{low:.0%}-{high:.0%}" if low is not None and high is not None
                 else f">= {low:.0%}" if low is not None else f"<= {high:.0%}")
        if not figures:
            lines.append(f"  not measured  {what} {bound}")
            continue
        met = all((low is None or v >= low) and (high is None or v <= high) for _, v in figures)
        shown = ", ".join(f"{name} {v:.1%}" for name, v in figures)
        lines.append(f"  {'met' if met else 'NOT MET':<12}  {what} {bound}: {shown}")
    return lines


def _measured(key: str, rows: list) -> list[tuple[str, float]]:
    """``[(name, value)]`` a target's key (``kind[:who]``) refers to, among the measured victims."""
    import statistics

    kind, _, who = key.partition(":")
    names = set(who.split(",")) if who and who != "median" else None
    if kind == "clean":
        return [(r.victim, r.clean[0]) for r in rows if names is None or r.victim in names]
    if kind == "pgd" and who == "median":
        return [(f"median of {len(rows)}", statistics.median(r.pgd[0] for r in rows))]
    if kind == "pgd":
        return [(r.victim, r.pgd[0]) for r in rows if names is None or r.victim in names]
    if kind == "surrogate":
        return [(r.victim, r.as_surrogate[2][0]) for r in rows if r.as_surrogate and (names is None or r.victim in names)]
    raise ValueError(f"unknown difficulty target {key!r}")
