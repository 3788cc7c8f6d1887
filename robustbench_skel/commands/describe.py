"""``describe DATASET``: what a dataset holds, as a user needs to know before trusting numbers on it.

For the generated benchmark (``synth``) it prints the class list with the fine-grained groups, the clip
counts per split and the sensor model's parameters, and writes one figure with a still of every class;
for a dataset read from files it prints the source's description.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import save_figure_atomic
from ..errors import UserError
from ..registry import DATASETS

__all__ = ["describe_dataset", "class_stills_figure"]


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
