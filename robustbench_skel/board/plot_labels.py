"""Point labels that never overlap: a greedy placement in display space, shared by the board's scatter plots.

Matplotlib puts an annotation where it is told, so a dense scatter ends with labels printed over each
other. Here each label tries a ring of positions around its point, nearest first, and takes the first
whose box stays inside the axes and clears every label already placed and every marker; a label placed
away from its point gets a thin leader line. A label that finds no room is left off the axes and
returned; :func:`label_or_number` numbers those by their points and :func:`add_figure_note` spells the
numbers out under the figure, so nothing is dropped silently.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any, Callable, Sequence

__all__ = ["THREAT_STYLE", "threat_style", "place_labels", "label_or_number", "add_figure_note"]

# One marker, colour and line style per threat model, the same in every figure of the board.
THREAT_STYLE: dict[str, dict[str, str]] = {
    "white-box": {"marker": "o", "color": "#1f77b4", "linestyle": "-"},
    "transfer": {"marker": "s", "color": "#d62728", "linestyle": "--"},
    "no-box": {"marker": "^", "color": "#2ca02c", "linestyle": ":"},
    "decision-based": {"marker": "D", "color": "#9467bd", "linestyle": "-."},
}


def threat_style(threat_model: object) -> dict[str, str]:
    """The marker, colour and line style of a threat model (grey crosses for one the board does not know)."""
    return THREAT_STYLE.get(str(threat_model), {"marker": "X", "color": "#7f7f7f", "linestyle": "-"})


# Offsets tried around a point, in points: right, left, above, below, then the diagonals, on growing rings.
_DIRECTIONS = [(1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1), (0, 1), (0, -1),
               (2, 1), (-2, 1), (2, -1), (-2, -1), (1, 2), (-1, 2), (1, -2), (-1, -2), (1, 4), (-1, 4), (1, -4), (-1, -4)]
_RINGS = (5, 12, 22, 34, 48, 64, 84, 110, 140)


def _alignment(dx: int, dy: int) -> tuple[str, str]:
    ha = "left" if dx > 0 else "right" if dx < 0 else "center"
    va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
    return ha, va


def place_labels(ax: Any, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], fontsize: float = 7,
                 marker_px: float = 9.0, spans: Sequence[tuple[float, float]] | None = None,
                 drawn: bool = False, avoid: Sequence[tuple[float, float]] = ()) -> list[int]:
    """Annotate point ``i`` at ``(xs[i], ys[i])`` with ``labels[i]`` where it overlaps no text already in the
    axes, no marker and no other label.

    ``spans[i]``, when given, is point ``i``'s vertical error bar ``(low, high)`` in data units: labels keep
    clear of it too. Call this after the axes' limits and the figure's layout are final (the placement is
    in pixels); ``drawn`` says the figure was drawn since its layout last changed (saves a draw). The
    markers of the points in ``avoid`` (data units, not labelled here) are kept clear of too.
    Returns the indices of the labels that found no room (not drawn)."""
    from matplotlib.text import Text

    fig = ax.figure
    if not drawn:
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    to_px = ax.transData.transform
    points = [to_px((x, y)) for x, y in zip(xs, ys)]
    half = marker_px / 2 + 1
    markers = [(px - half, py - half, px + half, py + half) for px, py in [*points, *map(to_px, avoid)]]
    bars = []
    for (px, _), (x, y), (low, high) in zip(points, zip(xs, ys), spans or []):
        bottom, top = to_px((x, low))[1], to_px((x, high))[1]
        bars.append((px - 3, min(bottom, top) - 1, px + 3, max(bottom, top) + 1))  # the bar and its caps
    scale = fig.dpi / 72.0
    placed_boxes: list[tuple[float, float, float, float]] = []  # the words already in the axes, first
    for text in ax.texts:
        if hasattr(text, "update_positions"):
            text.update_positions(renderer)
        box = Text.get_window_extent(text, renderer)
        placed_boxes.append((box.x0 - 1, box.y0 - 1, box.x1 + 1, box.y1 + 1))
    leader_points: list[tuple[float, float]] = []  # samples along the leader lines drawn so far
    leaders: list[tuple[tuple[float, float], tuple[float, float]]] = []  # and the lines themselves

    def crowding(i: int) -> float:  # crowded points first: they have the fewest free spots
        px, py = points[i]
        return -sum(1 for qx, qy in points if abs(qx - px) < 80 and abs(qy - py) < 30)

    def size(label: str) -> tuple[float, float]:
        probe = ax.text(0, 0, label, fontsize=fontsize)
        box = probe.get_window_extent(renderer)
        probe.remove()
        return box.width, box.height

    def fits(i: int, edges: tuple[float, float, float, float], leader: bool, obstacles: list, cross: bool) -> bool:
        inside = (edges[0] >= frame.x0 and edges[2] <= frame.x1 and edges[1] >= frame.y0 and edges[3] <= frame.y1)
        if not inside or any(_overlap(edges, other) for other in [*obstacles, *placed_boxes]):
            return False
        if any(_contains(edges, p) for p in leader_points):
            return False
        if not leader:
            return True
        line = _leader_samples(points[i], edges, half)
        if any(_contains(other, p) for other in [*markers, *placed_boxes] for p in line):
            return False
        return cross or not any(_crosses(_leader(points[i], edges), other) for other in leaders)

    def attempt(i: int, obstacles: list, cross: bool = False) -> bool:
        width, height = size(labels[i])
        px, py = points[i]
        for ring in _RINGS:
            for dx, dy in _DIRECTIONS:
                norm = math.hypot(dx, dy)
                ox, oy = ring * dx / norm, ring * dy / norm
                ha, va = _alignment(dx, dy)
                # where the words would land, computed: drawing every candidate would be slow
                x0 = px + ox * scale - {"left": 0, "right": width, "center": width / 2}[ha]
                y0 = py + oy * scale - {"bottom": 0, "top": height, "center": height / 2}[va]
                leader = ring > _RINGS[0]
                edges = (x0 - 2, y0 - 2, x0 + width + 2, y0 + height + 2)
                if not fits(i, edges, leader, obstacles, cross):
                    continue
                text = ax.annotate(labels[i], (xs[i], ys[i]), xytext=(ox, oy), textcoords="offset points",
                                   ha=ha, va=va, fontsize=fontsize, zorder=4,
                                   arrowprops={"arrowstyle": "-", "lw": 0.7, "color": "0.3",
                                               "shrinkA": 0, "shrinkB": half / scale} if leader else None)
                text.update_positions(renderer)
                box = Text.get_window_extent(text, renderer)  # the words only: an Annotation's own box holds its leader
                edges = (box.x0 - 1, box.y0 - 1, box.x1 + 1, box.y1 + 1)  # check where they did land
                if fits(i, edges, leader, obstacles, cross):
                    placed_boxes.append(edges)
                    if leader:
                        leader_points.extend(_leader_samples(points[i], edges, half))
                        leaders.append(_leader(points[i], edges))
                    return True
                text.remove()
        return False

    order = sorted(range(len(labels)), key=crowding)
    # first keep clear of every marker and error bar, and no leader crosses another; what finds no room then
    # may cross another point's bar, and last another leader
    pending = [i for i in order if not attempt(i, markers + bars)]
    own_bar = dict(zip(range(len(bars)), bars))
    pending = [i for i in pending if not attempt(i, markers + ([own_bar[i]] if i in own_bar else []))]
    unplaced = [i for i in pending if not attempt(i, markers + ([own_bar[i]] if i in own_bar else []), cross=True)]
    return sorted(unplaced)


def _leader_samples(point: Sequence[float], box: tuple[float, float, float, float], skip: float
                    ) -> list[tuple[float, float]]:
    """Points along the straight line from a marker to the nearest point of its label's box (ends left out)."""
    px, py = point
    qx, qy = min(max(px, box[0]), box[2]), min(max(py, box[1]), box[3])
    length = math.hypot(qx - px, qy - py)
    samples = []
    for k in range(1, 24):
        t = k / 24
        x, y = px + t * (qx - px), py + t * (qy - py)
        if t * length > skip and (1 - t) * length > 2:
            samples.append((x, y))
    return samples


def _leader(point: Sequence[float], box: tuple[float, float, float, float]
            ) -> tuple[tuple[float, float], tuple[float, float]]:
    """The leader line of a label: from its marker to the nearest point of its box."""
    px, py = point
    return (px, py), (min(max(px, box[0]), box[2]), min(max(py, box[1]), box[3]))


def _crosses(a: tuple, b: tuple) -> bool:
    """Whether two line segments cross (touching ends do not count)."""
    def side(p, q, r) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    (p1, p2), (q1, q2) = a, b
    return side(p1, p2, q1) * side(p1, p2, q2) < 0 and side(q1, q2, p1) * side(q1, q2, p2) < 0


def _contains(box: tuple[float, float, float, float], p: tuple[float, float]) -> bool:
    return box[0] < p[0] < box[2] and box[1] < p[1] < box[3]


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label_or_number(ax: Any, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str],
                    coordinates: Callable[[float, float], str], first_number: int = 1, prefix: str = "",
                    spans: Sequence[tuple[float, float]] | None = None, marker_px: float = 9.0,
                    drawn: bool = False) -> list[str]:
    """Name every point: its label where it fits (:func:`place_labels`), else a number by the point.

    Returns one note per point that did not get its label, for :func:`add_figure_note`: ``(n) label`` for
    a numbered point, or ``label (coordinates)`` when even the number found no room. Numbers run from
    ``first_number`` without gaps (continue them across the panels of one figure: add the numbered notes);
    ``prefix`` (a panel's title) goes before each label in the notes."""
    missed = place_labels(ax, xs, ys, labels, spans=spans, marker_px=marker_px, drawn=drawn)
    lead = f"{prefix}: " if prefix else ""
    notes, number = [], first_number
    for i in missed:  # one at a time, so that the numbers in the axes run without gaps
        others = [(x, y) for k, (x, y) in enumerate(zip(xs, ys)) if k != i]
        if place_labels(ax, [xs[i]], [ys[i]], [str(number)], spans=[spans[i]] if spans else None,
                        marker_px=marker_px, drawn=True, avoid=others):
            notes.append(f"{lead}{labels[i]} ({coordinates(xs[i], ys[i])})")
        else:
            notes.append(f"({number}) {lead}{labels[i]}")
            number += 1
    return notes


def add_figure_note(fig: Any, notes: Sequence[str]) -> None:
    """The notes of :func:`label_or_number` in 7-point text under the figure (save it with
    ``bbox_inches="tight"`` so that the image grows to hold them); nothing when every point was named."""
    if notes:
        width = int(fig.get_figwidth() * 72 / 4.2)  # characters of 7-point text across the figure
        fig.text(0.01, -0.005, textwrap.fill("Named here for lack of room on the axes: " + "; ".join(notes), width),
                 fontsize=7, va="top")
