"""The leaderboard's figures read as a paper figure must: fixed scales, one panel per budget, one line per
surrogate, marked cells, and labels that never cover each other. Tiny hand-made tables, no runs."""

from __future__ import annotations

import re
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from robustbench_skel.board.plot_labels import add_figure_note, label_or_number, place_labels  # noqa: E402
from robustbench_skel.board.plots import (HEATMAP_MIN_WIDTH_PX, budget_curve_figures, heatmap_figure,  # noqa: E402
                                          plot_budget_curves, plot_heatmap)
from robustbench_skel.board.plots_tradeoff import plot_tradeoff, tradeoff_figures  # noqa: E402


def _row(**fields) -> dict:
    base = {"dataset": "synth", "synthetic": True, "victim": "stgcn", "defense": "none", "attack": "pgd",
            "threat_model": "white-box", "surrogates": None, "norm": "linf", "eps": 0.01, "targeted": False,
            "protocol": "quick", "attack_config": "cfg", "created": "2026-01-01T00:00:00",
            "success_rate": 0.5, "acceleration_deviation": 10.0}
    base.update(fields)
    rate = base["success_rate"]
    base.setdefault("success_ci_low", max(rate - 0.12, 0.0))
    base.setdefault("success_ci_high", min(rate + 0.12, 1.0))
    return base


def _label_boxes(ax) -> list:
    """The words of every text label in ``ax`` (an annotation's leader line left out), in pixels."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = []
    for text in ax.texts:
        if hasattr(text, "update_positions"):
            text.update_positions(renderer)
        boxes.append((text.get_text(), Text.get_window_extent(text, renderer)))
    return boxes


def _assert_no_overlap(boxes) -> None:
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            (name_a, box_a), (name_b, box_b) = boxes[a], boxes[b]
            overlap = box_a.x0 < box_b.x1 and box_b.x0 < box_a.x1 and box_a.y0 < box_b.y1 and box_b.y0 < box_a.y1
            assert not overlap, f"labels {name_a!r} and {name_b!r} overlap: {box_a} / {box_b}"


# ---------------------------------------------------------------------------------------------- heatmap

@pytest.mark.parametrize("top", [0.25, 1.0])
def test_heatmap_scale_is_0_to_100_whatever_the_data(top):
    values = np.array([[0.0, top / 2], [top, top / 4]])
    fig = heatmap_figure(values, ["a@x", "b@y"], ["v1", "v2"], np.zeros((2, 2), bool), "t")
    image = fig.axes[0].images[0]
    assert (image.norm.vmin, image.norm.vmax) == (0, 100)
    plt.close(fig)


def test_heatmap_is_readable_size_and_grows_with_victims(tmp_path):
    from PIL import Image

    widths = []
    for n in (1, 4, 20):
        columns = [f"victim{i}" for i in range(n)]
        path = plot_heatmap(np.full((2, n), 0.3), ["ifgsm@stgcn", "ifgsm@ctrgcn"], columns, np.zeros((2, n), bool),
                            tmp_path / f"h{n}.png", "a title")
        with Image.open(path) as im:
            widths.append(im.size[0])
    assert min(widths) >= HEATMAP_MIN_WIDTH_PX
    assert widths[2] > widths[1]  # twenty victims get wider cells' worth of room, not squeezed ones


def test_heatmap_colour_bar_is_labelled_and_inside_the_image():
    fig = heatmap_figure(np.full((3, 3), 0.5), ["r1", "r2", "r3"], ["a", "b", "c"], np.zeros((3, 3), bool), "t")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    bar_axes = [ax for ax in fig.axes if ax is not fig.axes[0]]
    assert len(bar_axes) == 1
    label = bar_axes[0].yaxis.label
    assert label.get_text() == "transfer success (%)"
    box, page = label.get_window_extent(renderer), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
    plt.close(fig)


def test_heatmap_marks_self_transfer_and_missing_cells():
    values = np.array([[0.6, 0.1, np.nan], [0.2, 0.7, 0.3]])
    own = np.array([[True, False, False], [False, True, False]])
    fig = heatmap_figure(values, ["ifgsm@stgcn", "ifgsm@ctrgcn"], ["stgcn", "ctrgcn", "sgn"], own, "t")
    ax = fig.axes[0]
    cells = {gid: sorted((round(p.get_x() + 0.5), round(p.get_y() + 0.5)) for p in ax.patches if p.get_gid() == gid)
             for gid in ("self", "missing")}
    assert cells["self"] == [(0, 0), (1, 1)]  # (column, row) of the own-surrogate cells
    assert cells["missing"] == [(2, 0)]
    assert all(p.get_hatch() for p in ax.patches if p.get_gid() in ("self", "missing"))
    hatches = {p.get_hatch() for p in ax.patches if p.get_gid() == "self"} | {
        p.get_hatch() for p in ax.patches if p.get_gid() == "missing"}
    assert len(hatches) == 2  # two distinct marks
    texts = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in ax.texts}
    assert texts[(2, 0)] == "not run" and texts[(0, 0)].endswith("*") and texts[(1, 1)].endswith("*")
    assert not texts[(1, 0)].endswith("*")
    legend = " ".join(t.get_text() for lg in fig.legends for t in lg.get_texts())
    assert "not run" in legend and "surrogate" in legend
    plt.close(fig)


def test_heatmap_tells_a_run_without_a_value_from_a_cell_not_run():
    values = np.array([[np.nan, np.nan]])
    fig = heatmap_figure(values, ["r"], ["a", "b"], np.zeros((1, 2), bool), "t", missing=np.array([[True, False]]))
    texts = sorted((round(t.get_position()[0]), t.get_text()) for t in fig.axes[0].texts)
    assert texts == [(0, "not run"), (1, "n/a")]
    plt.close(fig)


def test_transfer_command_heatmap_uses_the_fixed_scale(tmp_path):
    from PIL import Image

    from robustbench_skel.commands.transfer_matrix import _heatmap

    def record(surrogate, victim, rate):
        return {"threat": {"surrogates": [{"name": surrogate}]}, "victim": {"name": victim},
                "metrics": {"attack_success_rate": {"value": rate}}, "attack": {"name": "ifgsm", "eps": 0.01},
                "dataset": {"name": "synth"}}

    records = [record("stgcn", "stgcn", 0.2), record("stgcn", "sgn", 0.05)]
    path = _heatmap(records, [["stgcn"]], ["stgcn", "sgn"], tmp_path / "m.png")
    with Image.open(path) as im:
        assert im.size[0] >= HEATMAP_MIN_WIDTH_PX


# ------------------------------------------------------------------------------------------ budget curve

def _budget_frame() -> pd.DataFrame:
    rows = []
    for surrogate, base in (("stgcn", 0.6), ("ctrgcn", 0.05)):  # one transfer attack from two surrogates
        for eps in (0.01, 0.02):
            rows.append(_row(victim="stgcn", attack="mifgsm", threat_model="transfer", surrogates=surrogate, eps=eps,
                             success_rate=base + eps))
    rows += [_row(eps=e, success_rate=10 * e) for e in (0.005, 0.01, 0.02)]
    rows.append(_row(victim="sgn", attack="mifgsm", threat_model="transfer", surrogates="ctrgcn", eps=0.02))  # one budget
    return pd.DataFrame(rows)


def test_budget_curve_one_line_per_surrogate(tmp_path):
    figures = list(budget_curve_figures(_budget_frame()))
    assert [stem for stem, _ in figures] == ["budget_curve_synth_linf_untargeted"]
    fig = figures[0][1]
    ax = fig.axes[0]
    labels = [c.get_label() for c in ax.containers]
    assert len(labels) == 3, labels  # stgcn pgd, mifgsm@stgcn, mifgsm@ctrgcn; sgn has one budget only
    assert sum("mifgsm@stgcn" in label for label in labels) == 1
    assert sum("mifgsm@ctrgcn" in label for label in labels) == 1
    assert any("own surrogate" in label for label in labels)  # stgcn attacked from itself is white-box
    for container in ax.containers:  # each series has its two or three points and their error bars
        line = container.lines[0]
        assert len(line.get_xdata()) in (2, 3)
        assert len(container.lines[2][0].get_segments()) == len(line.get_xdata())
    plt.close(fig)
    written = plot_budget_curves(_budget_frame(), tmp_path)
    assert sorted(p.name for p in written) == ["budget_curve_synth_linf_untargeted.png",
                                              "budget_curve_synth_linf_untargeted.svg"]
    (tmp_path / "again").mkdir()
    again = plot_budget_curves(_budget_frame(), tmp_path / "again")
    svg, svg_again = (next(p for p in paths if p.suffix == ".svg") for paths in (written, again))
    assert svg.read_bytes() == svg_again.read_bytes()  # same records, same bytes


# -------------------------------------------------------------------------------------------- trade-off

def _tradeoff_frame() -> pd.DataFrame:
    rows = []
    attacks = ["pgd", "fgsm", "ifgsm", "mifgsm", "nifgsm", "apgd-ce", "apgd-dlr", "autoattack", "mig", "smart",
               "ciasa", "cw"]
    for k, attack in enumerate(attacks):  # a crowded cluster: labels must find room without covering each other
        rows.append(_row(attack=attack, eps=0.01, success_rate=0.3 + 0.02 * (k % 5), acceleration_deviation=10 + 0.3 * k))
    rows.append(_row(attack="pgd", eps=0.01, targeted=True, success_rate=0.1, acceleration_deviation=12.0))
    for surrogate in ("stgcn", "ctrgcn"):
        rows.append(_row(attack="ifgsm", threat_model="transfer", surrogates=surrogate, eps=0.02, success_rate=0.4,
                         acceleration_deviation=20.0))
    rows.append(_row(attack="pgd", eps=0.02, success_rate=0.8, acceleration_deviation=30.0))
    rows.append(_row(attack="pgd-l2", norm="l2", eps=0.5, success_rate=0.9, acceleration_deviation=5.0))
    rows.append(_row(attack="pgd", victim="sgn", success_rate=0.2))  # sgn: one point, no figure
    return pd.DataFrame(rows)


def test_tradeoff_one_panel_per_norm_and_budget():
    figures = list(tradeoff_figures(_tradeoff_frame()))
    assert [stem for stem, _ in figures] == ["tradeoff_synth_stgcn"]
    fig = figures[0][1]
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["L-inf ε = 1 cm", "L-inf ε = 2 cm", "L2 ε = 50 cm"]
    counts = [len(ax.containers) for ax in panels]  # one error-bar point per record of that budget
    assert counts == [13, 3, 1]
    for ax in panels:
        assert ax.get_ylim()[0] <= 0 and ax.get_ylim()[1] >= 100  # the same success scale in every panel
    plt.close(fig)


def test_tradeoff_labels_never_overlap_and_none_is_lost():
    frame = _tradeoff_frame()
    (_, fig), = tradeoff_figures(frame)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    shown = []
    for ax in panels:
        boxes = _label_boxes(ax)
        _assert_no_overlap(boxes)
        frame_box = ax.get_window_extent()
        assert all(frame_box.x0 <= b.x0 and b.x1 <= frame_box.x1 and frame_box.y0 <= b.y0 and b.y1 <= frame_box.y1
                   for _, b in boxes)
        shown += [name for name, _ in boxes]
    note = " ".join(t.get_text() for t in fig.texts).replace("\n", " ")
    expected = ["ifgsm@stgcn", "ifgsm@ctrgcn", "pgd targeted", "pgd-l2",
                *frame[(frame["victim"] == "stgcn") & (frame["threat_model"] == "white-box")]["attack"]]
    for name in expected:  # every point is named: on the axes or, lacking room, in the note under the figure
        numbered = re.search(rf"\((\d+)\) [^;]*: {re.escape(name)}(;|$)", note)
        assert name in shown or numbered or re.search(rf": {re.escape(name)} \(", note), name
        if numbered:  # ... which its number on the axes points to
            assert numbered.group(1) in shown, name
    plt.close(fig)


def test_tradeoff_file_names_stay(tmp_path):
    frame = pd.concat([_tradeoff_frame(), pd.DataFrame([_row(defense="trades"), _row(defense="trades", attack="fgsm")])])
    written = plot_tradeoff(frame, tmp_path)
    assert [p.name for p in written] == ["tradeoff_synth_stgcn.png", "tradeoff_synth_stgcn_trades.png"]
    assert all(p.stat().st_size > 1000 for p in written)


# --------------------------------------------------------------------------------------- label placement

def test_place_labels_on_a_pile_of_points():
    fig, ax = plt.subplots(figsize=(3, 2), dpi=100)
    xs = [5 + 0.05 * k for k in range(30)]
    ys = [50 + (k % 3) for k in range(30)]
    ax.plot(xs, ys, "o")
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 100)
    labels = [f"attack-{k}" for k in range(30)]
    unplaced = place_labels(ax, xs, ys, labels)
    placed = [t.get_text() for t in ax.texts]
    assert sorted(placed + [labels[i] for i in unplaced]) == sorted(labels)  # each label drawn or reported
    assert len(placed) >= 5 and unplaced  # thirty labels cannot all fit in a 3x2 inch box
    _assert_no_overlap(_label_boxes(ax))
    plt.close(fig)


def test_label_or_number_names_every_point_once():
    fig, ax = plt.subplots(figsize=(3, 2), dpi=100)
    xs = [5 + 0.05 * k for k in range(30)]
    ys = [50 + (k % 3) for k in range(30)]
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 100)
    labels = [f"attack-{k}" for k in range(30)]
    notes = label_or_number(ax, xs, ys, labels, lambda x, y: f"{x:.2f}, {y:.0f}%", first_number=4, prefix="L-inf 1 cm")
    drawn = [t.get_text() for t in ax.texts]
    named = drawn + [re.sub(r"^\(\d+\) |^L-inf 1 cm: | \(.*\)$", "", n).removeprefix("L-inf 1 cm: ") for n in notes]
    assert sorted(n for n in named if n.startswith("attack-")) == sorted(labels)  # each name once: axes or note
    numbered = [int(m.group(1)) for n in notes if (m := re.match(r"\((\d+)\) L-inf 1 cm: attack-", n))]
    assert numbered == list(range(4, 4 + len(numbered))) and numbered  # from first_number, no gaps
    assert sorted(str(k) for k in numbered) == sorted(t for t in drawn if t.isdigit())  # and sit by their points
    add_figure_note(fig, notes)
    note = fig.texts[0].get_text() if fig.texts else ""
    assert note.startswith("Named here for lack of room on the axes: ") and re.search(r"\(4\)\s", note)
    plt.close(fig)


def test_place_labels_keeps_off_the_markers_it_is_told_to_avoid():
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    ax.set_xlim(0, 3)
    ax.set_ylim(0, 100)
    others = [(1.2, 50.0), (1.2, 54.0), (1.0, 54.0), (1.2, 46.0)]  # right and above: the usual places of a label
    assert place_labels(ax, [1.0], [50.0], ["a-long-label"], marker_px=8, avoid=others) == []
    (name, box), = _label_boxes(ax)
    for x, y in others:
        px, py = ax.transData.transform((x, y))
        assert not (box.x0 < px + 4 and px - 4 < box.x1 and box.y0 < py + 4 and py - 4 < box.y1), (x, y)
    plt.close(fig)


def test_place_labels_keeps_off_the_markers():
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    xs, ys = [1.0, 1.2, 1.4], [50.0, 50.0, 50.0]
    ax.set_xlim(0, 3)
    ax.set_ylim(0, 100)
    assert place_labels(ax, xs, ys, ["aaaa", "bbbb", "cccc"], marker_px=8) == []
    for name, box in _label_boxes(ax):
        for x, y in zip(xs, ys):
            px, py = ax.transData.transform((x, y))
            assert not (box.x0 < px + 4 and px - 4 < box.x1 and box.y0 < py + 4 and py - 4 < box.y1), name
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- plausibility

def test_plausibility_scatter_labels_never_overlap_and_none_is_lost(tmp_path, monkeypatch):
    import robustbench_skel.board.plausibility as board_plausibility

    attacks = ["pgd", "fgsm", "ifgsm", "mifgsm", "nifgsm", "apgd-ce", "apgd-dlr", "smart", "ciasa", "cw", "mig", "bone-length"]
    rows = [_row(attack=a, success_rate=0.40 + 0.01 * k, plausible_share=0.05 + 0.005 * k)  # a tight pile
            for k, a in enumerate(attacks)]
    saved = []
    monkeypatch.setattr(board_plausibility, "save_figure_atomic", lambda fig, path, **kw: saved.append(fig))
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: None)  # keep the figure open for inspection
    board_plausibility.plot_plausibility(pd.DataFrame(rows), tmp_path)
    (fig,) = saved
    ax = fig.axes[0]
    boxes = _label_boxes(ax)
    _assert_no_overlap(boxes)
    shown = [name for name, _ in boxes]
    note = " ".join(t.get_text() for t in fig.texts).replace("\n", " ")
    for a in attacks:
        name = f"{a} on stgcn"
        numbered = re.search(rf"\((\d+)\) {re.escape(name)}(;|$)", note)
        assert name in shown or numbered or f"{name} (" in note, name
        if numbered:
            assert numbered.group(1) in shown, name
    close(fig)


def test_plausibility_scatter_names_the_surrogate_and_tells_repeated_runs_apart(tmp_path, monkeypatch):
    import robustbench_skel.board.plausibility as board_plausibility

    rows = [_row(attack="pgd", success_rate=0.7, plausible_share=0.0, n_attacked=372),
            _row(attack="pgd", success_rate=0.6, plausible_share=0.1, n_attacked=94),
            _row(attack="ifgsm", victim="sgn", threat_model="transfer", surrogates="stgcn", success_rate=0.05,
                 plausible_share=0.9, n_attacked=109)]
    saved = []
    monkeypatch.setattr(board_plausibility, "save_figure_atomic", lambda fig, path, **kw: saved.append(fig))
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: None)
    board_plausibility.plot_plausibility(pd.DataFrame(rows), tmp_path)
    (fig,) = saved
    words = " ".join([t.get_text() for t in fig.axes[0].texts] + [t.get_text() for t in fig.texts])
    assert "pgd on stgcn (n=372)" in words and "pgd on stgcn (n=94)" in words
    assert "ifgsm@stgcn on sgn" in words and "(n=109)" not in words  # a label no other record shares keeps no n
    # "@" names the surrogate here as in every table and figure of the board
    close(fig)


def test_tradeoff_points_of_one_attack_are_told_apart_by_protocol_then_options_then_setting():
    from robustbench_skel.board.plots_tradeoff import _point_labels

    frame = pd.DataFrame([
        _row(attack="tasar", threat_model="transfer", surrogates="stgcn", attack_config="a1"),
        _row(attack="tasar", threat_model="transfer", surrogates="stgcn", attack_config="b2",
             attack_options="swag=reference"),
        _row(attack="tasar", threat_model="transfer", surrogates="stgcn", protocol="tasar-paper"),
        _row(attack="pgd", attack_config="c3"), _row(attack="pgd", attack_config="d4"),
    ])
    assert _point_labels(frame) == ["tasar@stgcn (defaults)", "tasar@stgcn (swag=reference)", "tasar@stgcn (tasar-paper)",
                                    "pgd [c3]", "pgd [d4]"]  # the last of a clashing pair is told apart too
