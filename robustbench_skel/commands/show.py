"""``show RECORD --sample ID``: the clean and the adversarial skeleton of one sample, side by side.

A number in a record says an attack worked; a picture shows what it did to the body. The clean clip
is reloaded from the record's dataset (pinned by its sample ids hash) and the perturbation from the
npz that ``run --save-adversarial`` wrote. A centimetre on a 2 m body is invisible at the scale of the
body, so the most displaced joints are enlarged and their displacement is drawn as a magnified arrow.
Joints whose adversarial motion breaks a physical limit beyond the clean clip (an impossible bend, a
sliding planted foot, a joint under the floor, newly overlapping limbs, a superhuman speed; see
:mod:`robustbench_skel.plausibility`) are crossed out in the adversarial panel.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..atomic import save_figure_atomic
from ..errors import UserError
from ..preflight import check_writable_file

__all__ = ["show_sample", "parse_frames", "load_pair"]

TOP_JOINTS = 3
# What a picture reads from the record beyond the schema's required fields (record_schema.py).
SHOW_NEEDS = ("samples.id", "samples.clean_pred", "samples.adv_pred", "samples.success")
_CLEAN, _ADV, _HOT, _BROKEN = "#3b6ea8", "#c0392b", "#f39c12", "#8e24aa"


def parse_frames(text: str | None, num_frames: int) -> list[int]:
    """``0,12,24`` as frame indices within the clip, or a UserError naming the bad one."""
    if not text:
        return []
    try:
        frames = [int(f) for f in text.split(",") if f.strip()]
    except ValueError:
        raise UserError(f"--frames takes whole numbers like 0,12,24, got {text!r}") from None
    bad = [f for f in frames if not 0 <= f < num_frames]
    if bad or not frames:
        raise UserError(f"--frames must lie in 0..{num_frames - 1} (the clip's frames with a person), got {text!r}")
    return frames


def load_pair(record_path: str | Path, sample_id: str):
    """``(record, dataset, clean (3,T,V,M), adv (3,T,V,M), index in the record's samples)`` for one sample."""
    from ..run.adversarial_store import load_adversarial
    from ..run.record import read_record
    from ..run.config import config_from_record
    from ..run.runner import load_dataset, select_samples

    record = read_record(record_path, needs=SHOW_NEEDS)
    ids, delta = load_adversarial(record, record_path)
    if sample_id not in record["samples"]["id"]:
        raise UserError(f"sample {sample_id!r} is not among the record's {len(record['samples']['id'])} evaluated samples "
                        f"(e.g. {', '.join(ids[:3]) or record['samples']['id'][0]})")
    if sample_id not in ids:
        raise UserError(f"sample {sample_id!r} was not attacked (the victim misclassified it clean); "
                        f"attacked samples: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}")
    config = config_from_record(record)
    dataset = load_dataset(config.dataset, config.split, config.data_path, config.seed, config.unit)
    subset = dataset.subset(select_samples(dataset, config.n_samples))
    if subset.ids_sha256() != record["dataset"].get("sample_ids_sha256"):
        raise UserError("the dataset at hand is not the record's (its evaluated sample ids hash differs); "
                        "point the record's config at the recorded data")
    index = subset.sample_ids.index(sample_id)
    clean = subset.clips[index].astype(np.float32)
    adv = clean + delta[ids.index(sample_id)]
    return record, dataset, clean, adv, record["samples"]["id"].index(sample_id)


def _check_names(record: dict, dataset, index: int) -> None:
    """The predicted classes the title names must be classes of the dataset."""
    s = record["samples"]
    for key in ("clean_pred", "adv_pred"):
        value = s[key][index]
        if value is None or not 0 <= value < len(dataset.class_names):
            raise UserError(f"the record's samples.{key} for this sample is {value!r}, not a class of {dataset.name!r} "
                            f"(0..{len(dataset.class_names) - 1}); the record does not belong to this dataset")


def _present(clip: np.ndarray) -> np.ndarray:
    """``(T, M)``: where a person exists (any non-zero coordinate)."""
    return np.abs(clip).sum(axis=(0, 2)) > 0


def _top_joints(clean: np.ndarray, adv: np.ndarray, k: int = TOP_JOINTS) -> list[tuple[int, int]]:
    """The ``k`` (joint, person) pairs with the largest mean displacement over the frames they exist."""
    present = _present(clean)  # (T, M)
    disp = np.linalg.norm(adv - clean, axis=0)  # (T, V, M)
    mean = (disp * present[:, None, :]).sum(axis=0) / np.maximum(present.sum(axis=0), 1)[None, :]  # (V, M)
    order = np.argsort(mean, axis=None)[::-1][:k]
    return [tuple(int(i) for i in np.unravel_index(o, mean.shape)) for o in order]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class _Scene:
    """Two panels (clean, adversarial) drawn for any frame; the adversarial one shows the clean body faintly."""

    def __init__(self, record: dict, dataset, clean: np.ndarray, adv: np.ndarray, index: int) -> None:
        self.clean, self.adv, self.bones = clean, adv, dataset.layout.bones
        self.present = _present(clean)
        self.frames = np.flatnonzero(self.present.any(axis=1))
        self.top = _top_joints(clean, adv)
        self.broken = _violating(clean, adv, dataset)  # (T, V, M)
        disp = np.linalg.norm(adv - clean, axis=0)  # (T, V, M)
        typical = float(np.mean([disp[:, v, m][self.present[:, m]].mean() for v, m in self.top])) if self.frames.size else 0.0
        self.magnify = _nice(0.12 / typical) if typical > 0 else 1.0  # the top joints' arrows ~12 cm long
        names = dataset.class_names
        s = record["samples"]
        attack = record["attack"]
        eps = attack.get("eps")
        budget = "minimum-norm" if eps is None else f"eps {eps:g} m"
        self.title = (f"{record['victim']['name']} vs {attack['name']} ({attack.get('norm')}, {budget}), sample {s['id'][index]}\n"
                      f"clean: {names[s['clean_pred'][index]]}   adversarial: {names[s['adv_pred'][index]]}"
                      f"{'' if s['success'][index] else '  (attack failed)'}")
        pts = np.concatenate([clean[:2][:, self.present[:, None, :].repeat(clean.shape[2], 1)],
                              adv[:2][:, self.present[:, None, :].repeat(clean.shape[2], 1)]], axis=1)
        lo, hi = pts.min(axis=1), pts.max(axis=1)
        pad = 0.08 * float((hi - lo).max())
        self.limits = (lo - pad, hi + pad)

    def _skeleton(self, ax, clip, t, color, alpha=1.0, lw=2.0):
        artists = []
        for m in np.flatnonzero(self.present[t]):
            x, y = clip[0, t, :, m], clip[1, t, :, m]
            for a, b in self.bones:
                artists += ax.plot([x[a], x[b]], [y[a], y[b]], color=color, alpha=alpha, lw=lw, solid_capstyle="round")
            artists.append(ax.scatter(x, y, s=10, color=color, alpha=alpha, zorder=3))
        return artists

    def _hot(self, ax, t, clip, arrows: bool):
        for rank, (v, m) in enumerate(self.top):
            if not self.present[t, m]:
                continue
            x, y = clip[0, t, v, m], clip[1, t, v, m]
            ax.scatter([x], [y], s=110 - 25 * rank, facecolors="none", edgecolors=_HOT, linewidths=2, zorder=4)
            if arrows:
                d = (self.adv[:2, t, v, m] - self.clean[:2, t, v, m]) * self.magnify
                ax.annotate("", xy=(self.clean[0, t, v, m] + d[0], self.clean[1, t, v, m] + d[1]),
                            xytext=(self.clean[0, t, v, m], self.clean[1, t, v, m]),
                            arrowprops=dict(arrowstyle="->", color=_HOT, lw=1.5), zorder=5)

    def _broken(self, ax, t):
        for v, m in zip(*np.nonzero(self.broken[t])):
            ax.scatter([self.adv[0, t, v, m]], [self.adv[1, t, v, m]], marker="x", s=70, color=_BROKEN, linewidths=2, zorder=6)

    def draw(self, axes, t: int, show_title: bool = True) -> None:
        ax_c, ax_a = axes
        for ax, label in ((ax_c, "clean"), (ax_a, "adversarial")):
            ax.clear()
            ax.set_xlim(self.limits[0][0], self.limits[1][0])
            ax.set_ylim(self.limits[0][1], self.limits[1][1])
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label}, frame {t}", fontsize=9)
        self._skeleton(ax_c, self.clean, t, _CLEAN)
        self._hot(ax_c, t, self.clean, arrows=False)
        self._skeleton(ax_a, self.clean, t, "0.7", alpha=0.6, lw=1.2)
        self._skeleton(ax_a, self.adv, t, _ADV)
        self._hot(ax_a, t, self.adv, arrows=True)
        self._broken(ax_a, t)

    @property
    def caption(self) -> str:
        broken = (f"\npurple crosses: joints breaking a physical limit ({int(self.broken.any(axis=(1, 2)).sum())} frames)"
                  if self.broken.any() else "\nno joint breaks a physical limit")
        return (f"orange circles: the {len(self.top)} most displaced joints; arrows: their displacement x{self.magnify:g}; "
                f"grey: clean body{broken}")

    @property
    def aspect(self) -> float:
        (x0, y0), (x1, y1) = self.limits
        return float((x1 - x0) / max(y1 - y0, 1e-9))


def _violating(clean: np.ndarray, adv: np.ndarray, dataset) -> np.ndarray:
    """``(T, V, M)`` bool: the joints :func:`~robustbench_skel.plausibility.violating_joints` marks."""
    import torch

    from ..plausibility import violating_joints

    marked = violating_joints(torch.from_numpy(clean)[None], torch.from_numpy(adv)[None], dataset.layout, dataset.fps)
    return marked[0].numpy()


def _nice(x: float) -> float:
    """The largest of 1, 2, 5, 10, 20, 50, ... not above ``x`` (at least 1)."""
    if x <= 1:
        return 1.0
    decade = 10 ** np.floor(np.log10(x))
    return float(max(m * decade for m in (1, 2, 5) if m * decade <= x))


def _default_out(record_path: Path, sample_id: str, results_dir: str | Path | None = None) -> Path:
    results = Path(results_dir) if results_dir else record_path.resolve().parent.parent
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in sample_id)
    return results / "figures" / f"{record_path.stem}_{safe}.gif"


def show_sample(record_path: str | Path, sample_id: str, out: str | Path | None = None,
                frames: str | None = None, results_dir: str | Path | None = None) -> list[Path]:
    """Write the animation (GIF, or MP4 when ``out`` ends in .mp4 and ffmpeg is present) and, with
    ``frames``, a PNG of those frames; returns the paths written. Without ``out`` they go under
    ``results_dir``/figures/ (default: the results folder holding the record)."""
    from matplotlib import animation

    record_path = Path(record_path)
    out = Path(out) if out else _default_out(record_path, sample_id, results_dir)
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise UserError(f"--out must end in .gif or .mp4, got {str(out)!r}")
    if out.suffix.lower() == ".mp4" and not (shutil.which("ffmpeg") and animation.writers.is_available("ffmpeg")):
        raise UserError("writing .mp4 needs ffmpeg on PATH, which is not there; use --out FILE.gif")
    check_writable_file(out, "--out")
    if frames:
        check_writable_file(out.with_name(out.stem + "_frames.png"), "the --frames PNG")
    record, dataset, clean, adv, index = load_pair(record_path, sample_id)
    _check_names(record, dataset, index)
    scene = _Scene(record, dataset, clean, adv, index)
    stills = parse_frames(frames, clean.shape[1])
    plt = _pyplot()
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []

    panel = 4.2 * min(max(scene.aspect, 0.35), 1.5)
    fig, axes = plt.subplots(1, 2, figsize=(max(2 * panel + 0.6, 6.0), 5.4))
    fig.suptitle(scene.title, fontsize=9)
    fig.text(0.5, 0.015, scene.caption, ha="center", fontsize=7, color="0.3")
    fig.subplots_adjust(left=0.03, right=0.97, top=0.84, bottom=0.08, wspace=0.08)
    anim = animation.FuncAnimation(fig, lambda t: scene.draw(axes, int(t)), frames=scene.frames, interval=1000 / dataset.fps)
    fps = max(1, int(round(min(dataset.fps, 30))))
    writer = animation.FFMpegWriter(fps=fps) if out.suffix.lower() == ".mp4" else animation.PillowWriter(fps=fps)
    anim.save(str(out), writer=writer, dpi=80)
    plt.close(fig)
    written.append(out)

    if stills:
        fig, grid = plt.subplots(2, len(stills), figsize=(max(panel * 0.75 * len(stills) + 0.6, 6.0), 7.6), squeeze=False)
        fig.suptitle(scene.title, fontsize=9)
        for j, t in enumerate(stills):
            scene.draw((grid[0, j], grid[1, j]), t)
        fig.text(0.5, 0.01, scene.caption, ha="center", fontsize=7, color="0.3")
        fig.subplots_adjust(left=0.03, right=0.97, top=0.88, bottom=0.05, wspace=0.08, hspace=0.12)
        png = out.with_name(out.stem + "_frames.png")
        save_figure_atomic(fig, png, dpi=100)
        plt.close(fig)
        written.append(png)
    return written
