"""Ranking rules and tables that fit (issue 27, items 1 and 2), on tiny hand-made records.

The ranked robust-accuracy table holds only entries evaluated with a strong protocol, each the worst case
over every record on the same clips; everything else is exploratory. Columns blank in a whole table are
dropped, LaTeX tables are longtables that lose no row or column, and the title says when data is synthetic.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from test_leaderboard import make_record

from robustbench_skel.board.fit import header_lines, layout, split_columns
from robustbench_skel.board.leaderboard import _dedup, _load, build_leaderboard
from robustbench_skel.board.model import Cell, Row, Section, drop_empty_columns, fmt_value, page_title
from robustbench_skel.board.robust import MIN_STRONG_CLIPS, robust_sections, strong_protocol
from robustbench_skel.metrics import wilson_interval
from robustbench_skel.run.record import write_record


def clip_record(victim: str, attack: str, n: int, *, broken=(), wrong=(), clips: str = "A", preset=None,
                targeted=False, threat=None, defense=None, metrics=None) -> dict:
    """A record on ``n`` clips of clip set ``clips`` (ids and their hash follow from it)."""
    record = make_record(victim, attack, targeted=targeted, threat=threat, defense=defense, preset=preset, metrics=metrics)
    label = [i % 3 for i in range(n)]
    record["samples"] = {
        "id": [f"{clips}{i:03d}" for i in range(n)], "label": label,
        "clean_pred": [(y + 1) % 3 if i in wrong else y for i, y in enumerate(label)],
        "attacked": [i not in wrong for i in range(n)],
        "success": [i not in wrong and i in broken for i in range(n)],
    }
    record["dataset"].update(num_evaluated=n, sample_ids_sha256=f"ids-{clips}-{n}",
                             sample_selection=f"first {n} of a fixed permutation (seed 0) of the split")
    if attack == "autoattack":
        record["attack"]["hyperparameters"] = {"eps": 0.01, "version": "skel-aa-v1", "seed": 0}
    return record


def _robust(tmp_path: Path, records: list[dict]) -> dict[str, Section]:
    for r in records:
        write_record(r, tmp_path)
    raw, loaded, _ = _load(tmp_path)
    sections = robust_sections(_dedup(raw), loaded)
    return {s.title.split(",")[1].strip() if s.kind == "robust" else s.kind: s for s in sections}


def _column(section: Section, name: str) -> list[str]:
    i = section.columns.index(name)
    return [row.cells[i].text for row in section.rows]


def test_strong_protocol_rules():
    n = MIN_STRONG_CLIPS
    assert strong_protocol(clip_record("stgcn", "autoattack", n)) == "autoattack skel-aa-v1"
    assert strong_protocol(clip_record("stgcn", "pgd", 8, preset="standard")) == "standard"
    assert strong_protocol(clip_record("stgcn", "autoattack", n - 1)) is None  # too few clips
    assert strong_protocol(clip_record("stgcn", "autoattack", n, targeted=True)) is None
    assert strong_protocol(clip_record("stgcn", "pgd", 4 * n)) is None  # a single attack is never strong
    assert strong_protocol(clip_record("stgcn", "autoattack", n, threat={"model": "transfer", "surrogates": []})) is None
    randomized = clip_record("stgcn", "autoattack", n)
    randomized["defense"] = {"name": "randomized-smoothing", "kind": "inference", "randomized": True}
    assert strong_protocol(randomized) is None  # one random draw per gradient overstates robustness
    randomized["attack"]["eot_samples"] = 8
    assert strong_protocol(randomized) == "autoattack skel-aa-v1"


def test_ranking_excludes_weak_protocol_entries(tmp_path):
    n = MIN_STRONG_CLIPS
    sections = _robust(tmp_path, [
        clip_record("stgcn", "autoattack", n, broken=set(range(40))),            # strong: 24/64 robust
        clip_record("ctrgcn", "pgd", n, broken=set(range(10))),                  # weak attack only: 54/64
        clip_record("sgn", "boundary", 8, broken=set(), clips="B",               # the case: 100% on 8 clips
                    threat={"model": "decision-based", "max_queries": 100}),
        clip_record("agcn", "autoattack", 16, broken={0}, clips="C"),            # the cascade on too few clips
        clip_record("msg3d", "pgd", 16, broken=set(range(8)), clips="C", preset="standard"),  # the preset: strong
    ])
    ranked, explore = sections["ranked (strong protocol)"], sections["exploratory (not ranked)"]
    assert _column(ranked, "victim") == ["msg3d", "stgcn"]  # 8/16 robust, then 24/64
    assert _column(ranked, "rank") == ["1", "2"] and _column(ranked, "protocol") == ["standard", "autoattack skel-aa-v1"]
    assert sorted(_column(explore, "victim")) == ["agcn", "ctrgcn", "sgn"]  # never in the ranking, however high
    why = dict(zip(_column(explore, "victim"), _column(explore, "why not ranked")))
    assert why["agcn"] == f"autoattack on 16 clips (< {MIN_STRONG_CLIPS})"
    assert why["ctrgcn"] == why["sgn"] == "no autoattack or standard-preset record"
    assert "rank" not in explore.columns
    assert ranked.rules and "strong protocol" in ranked.rules and explore.rules == ranked.rules


def test_ranked_rows_are_ordered_by_robust_accuracy_with_shared_ranks(tmp_path):
    n = MIN_STRONG_CLIPS
    sections = _robust(tmp_path, [clip_record("stgcn", "autoattack", n, broken=set(range(40))),
                                  clip_record("agcn", "autoattack", n, broken=set(range(10))),
                                  clip_record("sgn", "autoattack", n, broken=set(range(10)))])
    ranked = sections["ranked (strong protocol)"]
    assert _column(ranked, "victim") == ["agcn", "sgn", "stgcn"] and _column(ranked, "rank") == ["1", "1", "3"]


def test_worst_case_over_every_record_on_the_same_clips(tmp_path):
    n = MIN_STRONG_CLIPS
    sections = _robust(tmp_path, [
        clip_record("stgcn", "autoattack", n, broken=set(range(10)), wrong={63}),
        # a transfer attack on the same clips breaks others: the ranked figure drops to their union
        clip_record("stgcn", "mifgsm", n, broken=set(range(5, 20)), wrong={63},
                    threat={"model": "transfer", "surrogates": [{"name": "agcn"}], "early_stop": "none"}),
        # another clip set of the same victim, broken entirely by PGD: not mixed into the ranked row
        clip_record("stgcn", "pgd", n, broken=set(range(n)), clips="Z"),
    ])
    ranked, explore = sections["ranked (strong protocol)"], sections["exploratory (not ranked)"]
    assert len(ranked.rows) == 1
    row = dict(zip(ranked.columns, ranked.rows[0].cells))
    robust = n - 20 - 1  # clips 0-19 broken by one attack or the other, clip 63 misclassified clean
    assert row["robust acc. [95% CI]"].ci == pytest.approx((robust / n, *wilson_interval(robust, n)))
    assert row["clean acc. [95% CI]"].ci == pytest.approx(((n - 1) / n, *wilson_interval(n - 1, n)))
    assert row["attacks combined"].text == "2" and row["n"].text == str(n)
    assert row["clips"].text == f"synth 1.0 test: first {n} of a fixed permutation (seed 0) of the split; ids ids-A-64"
    assert [label for label, _ in row["records"].links] == ["mifgsm@agcn", "autoattack"]
    assert _column(explore, "clips") == [f"synth 1.0 test: first {n} of a fixed permutation (seed 0) of the split; ids ids-Z-64"]


def test_one_ranked_row_per_victim_the_standard_preset_first(tmp_path):
    n = MIN_STRONG_CLIPS
    sections = _robust(tmp_path, [
        clip_record("stgcn", "autoattack", 2 * n, broken=set(range(10))),
        clip_record("stgcn", "autoattack", n, broken=set(range(30)), clips="S", preset="standard"),
    ])
    ranked, explore = sections["ranked (strong protocol)"], sections["exploratory (not ranked)"]
    assert _column(ranked, "protocol") == ["standard"] and _column(ranked, "n") == [str(n)]
    assert _column(explore, "why not ranked") == ["another clip set of this model is ranked"]


def test_certified_radii_have_their_own_table(tmp_path):
    smoothing = {"name": "randomized-smoothing", "hyperparameters": {"sigma": 0.01}, "randomized": True}
    cert = {"certified_accuracy": {"radii": [0.0, 0.01], "values": [0.9, 0.5], "unit": "m"}}
    sections = _robust(tmp_path, [clip_record("stgcn", "autoattack", MIN_STRONG_CLIPS, defense=smoothing, metrics=cert),
                                  clip_record("agcn", "autoattack", MIN_STRONG_CLIPS)])
    assert not any("certified" in c for s in sections.values() if s.kind == "robust" for c in s.columns)
    certified = sections["certified"]
    assert certified.columns[-3:] == ["certified @ 0 m", "certified @ 0.01 m", "records"]
    assert [row.cells[0].text for row in certified.rows] == ["stgcn"]  # only the victim that carries a certificate


def test_empty_columns_are_dropped():
    section = Section("x", "t", "synth", True, "all", ["victim", "blank", "n/a only", "rate", "v1"],
                      column_victims=[None, None, None, None, "v1"])
    section.rows = [Row([Cell("a"), Cell(""), Cell("n/a"), Cell.proportion(0.5, 0.4, 0.6), Cell("x")], {}),
                    Row([Cell("b"), Cell("", sort=None), Cell("n/a"), Cell.proportion(None), Cell("")], {})]
    drop_empty_columns(section)
    assert section.columns == ["victim", "rate", "v1"] and section.column_victims == [None, None, "v1"]
    assert [len(r.cells) for r in section.rows] == [3, 3] and section.rows[0].cells[1].ci == (0.5, 0.4, 0.6)


def test_empty_columns_are_dropped_from_the_written_tables(tmp_path):
    blank = {key: {"value": None, "ci95": [None, None], "max": None, "n": 0}
             for key in ("mean_joint_displacement_cm", "jerk_deviation")}
    for victim in ("stgcn", "agcn"):
        write_record(make_record(victim, "pgd", broken={0}, metrics=blank), tmp_path)
    build_leaderboard(tmp_path, formats="md")
    md = (tmp_path / "leaderboard.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| victim | defense | attack |"))
    assert "max disp. (cm)" in header and "mean disp." not in header and "jerk" not in header
    assert "threat details" not in header  # plain white-box runs: nothing to say
    assert "certified" not in md


def test_numbers_are_plain_and_right_aligned(tmp_path):
    assert [fmt_value(x) for x in (1450.3, 333.33, 0.5, 0.0123456, 0)] == ["1450", "333", "0.500", "0.0123", "0"]
    assert fmt_value(0.0487, "%") == "4.87%" and fmt_value(None) == "n/a"
    # a value that rounds up to the next power of ten takes that power's decimals: one column, one precision
    assert [fmt_value(x) for x in (0.9999999776, 1.0, 0.0999996, 99.97, 1456.0)] == ["1.00", "1.00", "0.100", "100", "1456"]
    write_record(make_record("stgcn", "pgd", broken={0, 1}, wrong={9}), tmp_path)
    build_leaderboard(tmp_path, formats="md,html")
    md = (tmp_path / "leaderboard.md").read_text().splitlines()
    i = next(k for k, line in enumerate(md) if line.startswith("| victim | defense | attack |"))
    header, align = [c.strip() for c in md[i].split("|")[1:-1]], md[i + 1].split("|")[1:-1]
    right = {h for h, a in zip(header, align) if a.endswith(":")}
    assert {"n", "clean acc. [95% CI]", "success [95% CI]", "robust acc.", "mean disp. (cm)"} <= right
    assert not {"victim", "defense", "attack", "protocol"} & right
    lo, hi = wilson_interval(9, 10)  # clean accuracy with its interval
    assert f"| 90.0% [{100 * lo:.1f}%, {100 * hi:.1f}%] |" in md[i + 2]
    html = (tmp_path / "leaderboard.html").read_text()
    assert re.search(r'<td class="num" data-sort="0\.9">90\.0<span class="ci">\[', html)


def test_title_says_synthetic(tmp_path):
    synth = Section("x", "t", "synth", True, "all", [])
    real = Section("x", "t", "ntu60", False, "all", [])
    assert page_title([synth]) == "robustbench_skel leaderboard: synthetic data (synth)"
    assert "synthetic" not in page_title([real]) and "ntu60" in page_title([real])
    assert "ntu60 and synthetic data (synth)" in page_title([synth, real])
    write_record(make_record("stgcn", "pgd", broken={0}), tmp_path)
    build_leaderboard(tmp_path, formats="md,tex,html")
    title = "robustbench_skel leaderboard: synthetic data (synth)"
    assert (tmp_path / "leaderboard.md").read_text().splitlines()[0] == f"# {title}"
    html = (tmp_path / "leaderboard.html").read_text()
    assert f"<title>{title}</title>" in html and f"<h1>{title}</h1>" in html
    assert "\\section*{robustbench\\_skel leaderboard: synthetic data (synth)}" in (tmp_path / "leaderboard.tex").read_text()


def test_fit_arithmetic():
    assert header_lines("certified @ 0.0001 m RMS", 10) == ["certified", "@ 0.0001 m", "RMS"]
    assert header_lines("stgcn+randomized-smoothing", 12) == ["stgcn+", "randomized-", "smoothing"]
    assert split_columns([10, 10, 10], 1, 100) == [[0, 1, 2]]
    assert split_columns([30, 40, 40, 40], 1, 100) == [[0, 1], [0, 2], [0, 3]]  # the key column in every block
    [(block, widths)] = layout([50, 200, 30], [50, 60, 30], [False, True, False], 1, 150, 100)
    assert block == [0, 1, 2] and widths[1] == pytest.approx(70, abs=0.01) and sum(widths) <= 150 + 1e-6


@pytest.fixture(scope="module")
def long_board(tmp_path_factory):
    """More rows than a page holds (one setting table of 70 records) and a transfer matrix too wide for one
    page (16 victims)."""
    results = tmp_path_factory.mktemp("long")
    victims = [f"victim{i:02d}_long-name" for i in range(16)]
    for i in range(70):
        write_record(make_record("stgcn", f"atk{i:02d}", broken=set(range(i % 10))), results)
    for v in victims:
        write_record(make_record(v, "mifgsm", broken={0, 1},
                                 threat={"model": "transfer", "surrogates": [{"name": "agcn"}], "early_stop": "none"}),
                     results)
    build_leaderboard(results, formats="tex,html")
    return results, victims


def test_latex_uses_longtable_and_loses_no_row_or_column(long_board):
    results, victims = long_board
    tex = (results / "leaderboard.tex").read_text()
    assert r"\usepackage{longtable}" in tex and r"\usepackage{dcolumn}" in tex
    assert r"\begin{longtable}" in tex and r"\resizebox" not in tex
    for i in range(70):
        assert f"& atk{i:02d} &" in tex  # every row, in a table that breaks across pages
    matrix = tex[tex.index(r"\subsection*{Transfer matrix"):]
    matrix = matrix[:matrix.index(r"\subsection*", 10)] if r"\subsection*" in matrix[10:] else matrix
    assert "Columns, part 2 of" in matrix  # too wide for one page: cut into blocks, each repeating the row name
    for v in victims:
        assert v.replace("_", r"\_").split("-")[0] in matrix
    assert r"\includegraphics" in tex and "transfer_synth" in tex  # the figures are included


@pytest.mark.skipif(not shutil.which("pdflatex"), reason="pdflatex is not installed")
def test_latex_compiles_with_nothing_overfull(long_board, tmp_path):
    results, _ = long_board
    for path in results.iterdir():
        if path.suffix in (".tex", ".png"):
            shutil.copy(path, tmp_path / path.name)
    for _ in range(2):  # longtable settles its column widths on the second run
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "leaderboard.tex"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout[-2000:]
    log = (tmp_path / "leaderboard.log").read_text(errors="replace")
    overfull = [float(x) for x in re.findall(r"Overfull \\hbox \((\d+\.\d+)pt too wide\) in alignment", log)]
    assert not [x for x in overfull if x > 2], overfull  # no table runs off the page


def test_html_splits_a_wide_table_and_keeps_every_column(long_board):
    results, victims = long_board
    html = (results / "leaderboard.html").read_text()
    section = html[html.index("<h2>Transfer matrix"):]
    section = section[:section.index("</section>")]
    assert section.count('<table class="board">') >= 2 and "Columns, part 1 of" in section
    headers = [re.sub(r"<wbr>|<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", section)]
    for v in victims:
        assert headers.count(v) == 1  # every victim's column once, none clipped or dropped
    assert headers.count("attack@surrogate") == section.count('<table class="board">')  # the row name repeats


def test_the_linf_size_is_shown_in_cm_like_the_displacements(tmp_path):
    linf = {"linf_m": {"value": 0.0075, "ci95": [0.007, 0.008], "max": 0.01, "n": 2}}
    write_record(make_record("stgcn", "pgd", broken={0, 1}, metrics=linf), tmp_path)
    build_leaderboard(tmp_path, formats="md")
    md = (tmp_path / "leaderboard.md").read_text().splitlines()
    i = next(k for k, line in enumerate(md) if line.startswith("| victim | defense | attack |"))
    header = [c.strip() for c in md[i].split("|")[1:-1]]
    cells = [c.strip() for c in md[i + 2].split("|")[1:-1]]
    assert "L-inf (m)" not in header and cells[header.index("L-inf (cm)")] == "0.750"


def test_attack_label_names_surrogates_with_at_and_defenses_with_plus_everywhere():
    from robustbench_skel.board.model import attack_label

    assert attack_label("pgd") == "pgd"
    assert attack_label("ifgsm", "agcn+stgcn") == "ifgsm@agcn+stgcn"
    assert attack_label("pgd", float("nan"), "trades") == "pgd + trades"  # a missing cell of a pandas row
    assert attack_label("pgd", None, "none") == "pgd"


def test_two_records_of_one_transfer_attack_are_told_apart_by_the_options_they_set(tmp_path):
    from test_leaderboard import _transfer

    default = make_record("stgcn", "tasar", broken={0}, threat=_transfer(["ctrgcn"]),
                          hyper={"eps": 0.01, "steps": 10, "seed": 0, "swag": "paper"})
    reference = make_record("stgcn", "tasar", broken={0, 1}, threat=_transfer(["ctrgcn"]),
                            hyper={"eps": 0.01, "steps": 10, "seed": 0, "swag": "reference"},
                            metrics={"gradient_alignment": {"median_cosine": 0.0137, "quartiles": [-0.02, 0.05], "n": 9}})
    reference["config"] = {"attack_options": {"swag": "reference"}}
    for record in (default, reference):
        write_record(record, tmp_path)
    build_leaderboard(tmp_path, formats="md")
    md = (tmp_path / "leaderboard.md").read_text()
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| tasar@")]
    assert sorted(rows) == ["tasar@ctrgcn (defaults)", "tasar@ctrgcn (swag=reference)"]  # not two hashes
    assert "options swag=reference; surrogate ctrgcn; gradient cosine with the surrogate 0.01" in md  # threat details
    alignment = md.split("Gradient alignment, ")[1]  # the pair's own matrix: the newest record that measured it
    assert alignment.splitlines()[0].startswith("synth") and "| ctrgcn | [0.01](runs/" in alignment
