"""The leaderboard's sections, worst-case robust accuracy and its four output formats, on small fake records."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from robustbench_skel.board.robust import worst_case
from robustbench_skel.errors import UserError
from robustbench_skel.board.leaderboard import build_leaderboard, load_results, records_table
from robustbench_skel.metrics import wilson_interval
from robustbench_skel.run.record import write_record

N = 10
IDS = [f"S{i:03d}" for i in range(N)]
_clock = itertools.count()


def make_record(victim="stgcn", attack="pgd", *, broken=(), wrong=(), threat=None, eps=0.01, norm="linf",
                targeted=False, dataset="synth", synthetic=True, defense=None, preset=None, sha=None,
                metrics=None, hyper=None) -> dict:
    """A schema-valid record whose per-sample arrays say: samples ``wrong`` are misclassified clean,
    samples ``broken`` (among the rest) were fooled; every metric follows from those arrays."""
    tick = next(_clock)
    label = [i % 3 for i in range(N)]
    clean_pred = [(y + 1) % 3 if i in wrong else y for i, y in enumerate(label)]
    attacked = [i not in wrong for i in range(N)]
    success = [a and i in broken for i, a in enumerate(attacked)]
    n_att, n_succ, n_clean = sum(attacked), sum(success), sum(attacked)

    def prop(count, n):
        return {"value": count / n if n else None, "ci95": list(wilson_interval(count, n)), "count": count, "n": n}

    m = {"clean_accuracy": prop(n_clean, N), "attack_success_rate": prop(n_succ, n_att),
         "robust_accuracy": prop(n_clean - n_succ, N)}
    for key in ("mean_joint_displacement_cm", "max_joint_displacement_cm", "linf_m", "l2_rms_m", "bone_length_deviation",
                "acceleration_deviation", "jerk_deviation"):
        m[key] = {"value": 0.5, "ci95": [0.4, 0.6], "max": 0.9, "n": n_succ}
    m["within_budget"] = prop(n_att, n_att)
    m.update(metrics or {})
    record = {
        "schema_version": 1, "run_id": f"20260101T0000{tick:02d}-{tick:06x}", "created": f"2026-01-01T00:00:{tick:02d}+00:00",
        "victim": {"name": victim, "checkpoint": f"{victim}:{dataset}", "checkpoint_sha256": sha or f"sha-{victim}"},
        "dataset": {"name": dataset, "version": "1.0", "split": "test", "synthetic": synthetic, "num_evaluated": N,
                    "sample_ids_sha256": "ids-1"},
        "attack": {"name": attack, "threat_model": "white-box", "norm": norm, "eps": eps, "targeted": targeted,
                   "hyperparameters": hyper or {"eps": eps, "steps": 10, "seed": 0}},
        "defense": defense, "seed": 0, "environment": {"device": "cpu"}, "timing": {"wall_time_s": 1.0},
        "metrics": m, "flags": {"all_within_budget": True, "all_finite": True},
        "samples": {"id": IDS, "label": label, "clean_pred": clean_pred, "attacked": attacked, "success": success},
    }
    if threat is not None:
        record["threat"] = threat
        record["attack"]["threat_model"] = threat["model"]
    if preset:
        record["preset"] = preset
    return record


def _surrogate(name: str) -> dict:
    return {"name": name, "checkpoint": f"{name}:synth", "checkpoint_sha256": f"sha-{name}", "pretrained_on": "synth"}


def _transfer(surrogates: list[str], early_stop: str = "none") -> dict:
    return {"model": "transfer", "surrogates": [_surrogate(s) for s in surrogates], "early_stop": early_stop,
            "artefacts": [{"kind": "adv-clips", "sha256": "abc", "file": "x.pt", "command": "python -m robustbench_skel ..."}]}


def _surrogate_rate(count: int) -> dict:
    return {"surrogate_success_rate": {"value": count / 8, "ci95": list(wilson_interval(count, 8)), "count": count, "n": 8}}


def _decision(max_queries: int, l2: float) -> tuple[dict, dict]:
    return ({"model": "decision-based", "max_queries": max_queries},
            {"queries": {"value": max_queries / 2, "median": max_queries / 3, "max": max_queries, "n": 8},
             "median_l2_rms_m": l2})


def _write_all(results: Path) -> None:
    records = [
        # white-box on stgcn: two attacks breaking different samples; sample 9 misclassified clean
        make_record("stgcn", "pgd", broken={0, 1, 2}, wrong={9}),
        make_record("stgcn", "apgd-ce", broken={3, 4}, wrong={9}),
        # a transfer attack on stgcn also counts in the worst case (any threat model)
        make_record("stgcn", "mifgsm", broken={5}, wrong={9}, threat=_transfer(["agcn"]), metrics=_surrogate_rate(7)),
        make_record("ms_g3d", "pgd", broken={0}),
        # a defended victim (randomized smoothing) with certified accuracy, standard protocol
        make_record("stgcn", "pgd", broken={0}, wrong={8, 9}, preset="standard",
                    defense={"name": "smoothing", "hyperparameters": {"sigma": 0.01}, "kind": "inference",
                             "randomized": True, "differentiable": True},
                    metrics={"certified_accuracy": {"radii": [0.005, 0.01], "values": [0.6, 0.4], "unit": "m",
                                                   "radii_rms": [0.0001], "values_rms": [0.3]}}),
        make_record("stgcn", "pgd", broken={0, 1}, wrong={9},
                    threat={"model": "white-box", "adaptive": {"eot_samples": 8, "bpda": None}},
                    defense={"name": "smoothing", "hyperparameters": {"sigma": 0.01}, "kind": "inference",
                             "randomized": True, "differentiable": True}),
        # transfer: crafted on agcn, and on the agcn+stgcn ensemble
        make_record("agcn", "mifgsm", broken=set(range(8)), threat=_transfer(["agcn"]), metrics=_surrogate_rate(7)),
        make_record("ms_g3d", "mifgsm", broken={0, 1}, threat=_transfer(["agcn"]), metrics=_surrogate_rate(7)),
        make_record("agcn", "mifgsm", broken=set(range(6)), threat=_transfer(["agcn", "stgcn"]), metrics=_surrogate_rate(6)),
        make_record("ms_g3d", "mifgsm", broken={0, 1, 2}, threat=_transfer(["agcn", "stgcn"]), metrics=_surrogate_rate(6)),
        # no-box on two victims
        make_record("stgcn", "skeleton-noise", broken={0}, wrong={9},
                    threat={"model": "no-box", "pool": {"split": "train", "num_clips": 256, "sha256": "pool-sha"}}),
        make_record("ms_g3d", "skeleton-noise", broken={1, 2},
                    threat={"model": "no-box", "pool": {"split": "train", "num_clips": 256, "sha256": "pool-sha"}}),
    ]
    for q, l2 in ((100, 0.05), (1000, 0.02)):  # one decision-based attack at two query budgets
        threat, extra = _decision(q, l2)
        records.append(make_record("stgcn", "hsja", broken={0, 1}, wrong={9}, eps=None, norm="l2", threat=threat,
                                   metrics=extra, hyper={"max_queries": q}))
    for r in records:
        write_record(r, results)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    _write_all(results)
    written, rows = build_leaderboard(results)
    return results, written, rows


def _sections(md: str) -> dict[str, str]:
    parts = re.split(r"^## ", md, flags=re.M)[1:]
    return {p.splitlines()[0]: p for p in parts}


def test_every_section_is_written(board):
    results, written, rows = board
    assert rows == 14
    assert {p.name for p in written} >= {f"leaderboard.{f}" for f in ("md", "csv", "tex", "html")}
    titles = list(_sections((results / "leaderboard.md").read_text()))
    for start in ("synth (SYNTHETIC benchmark): white-box, L-inf eps=0.01 m", "synth (SYNTHETIC benchmark): transfer,",
                  "synth (SYNTHETIC benchmark): no-box,", "synth (SYNTHETIC benchmark): decision-based, L2 minimum-norm",
                  "Robust accuracy, ranked (strong protocol), synth", "Robust accuracy, exploratory (not ranked), synth",
                  "Certified accuracy, synth", "Transfer matrix, synth", "Decision-based attacks, synth", "No-box attacks, synth"):
        assert any(t.startswith(start) for t in titles), start
    assert not any(t.startswith("Robust accuracy") and "minimum-norm" in t for t in titles)  # no budget, no robustness


def test_worst_case_is_per_sample_over_every_attack():
    a = make_record("stgcn", "pgd", broken={0, 1, 2}, wrong={9})
    b = make_record("stgcn", "apgd-ce", broken={3, 4}, wrong={9})
    c = make_record("stgcn", "mifgsm", broken={0}, wrong={8})  # another record: sample 8 clean-wrong here
    assert worst_case([a])["robust"] == 6 and worst_case([b])["robust"] == 7
    both = worst_case([a, b])
    assert both == {"n": N, "clean": 9, "robust": 4, "broke": [3, 2]}  # lower than either alone
    assert worst_case([a, b, c])["robust"] == 3 and worst_case([a, b, c])["clean"] == 8
    shuffled = make_record("stgcn", "fgsm", broken={7})  # same ids in another order still line up
    for key in ("id", "label", "clean_pred", "success"):
        shuffled["samples"][key] = shuffled["samples"][key][::-1]
    assert worst_case([a, shuffled])["robust"] == 5


def _table_rows(section: str) -> tuple[str, list[str]]:
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    return lines[0], lines[1:]


def test_robust_accuracy_table(board):
    results, _, _ = board
    md = _sections((results / "leaderboard.md").read_text())
    ranked = next(v for k, v in md.items() if k.startswith("Robust accuracy, ranked") and "L-inf eps=0.01" in k)
    explore = next(v for k, v in md.items() if k.startswith("Robust accuracy, exploratory") and "L-inf eps=0.01" in k)
    assert "Ranking rules:" in ranked and "Ranking rules:" in explore  # said above each table
    header, rows = _table_rows(ranked)
    assert "certified" not in header and "protocol" in header and "clips" in header
    # only the standard-protocol entry is ranked: the worst case of both smoothing records on the same clips
    assert len(rows) == 1 and rows[0].startswith("| 1 | stgcn | smoothing | standard | 10 |")
    lo, hi = wilson_interval(6, N)
    assert f"| 60.0% [{100 * lo:.1f}%, {100 * hi:.1f}%] |" in rows[0]
    lo, hi = wilson_interval(8, N)  # clean accuracy with its interval: samples 8 and 9 misclassified
    assert f"| 80.0% [{100 * lo:.1f}%, {100 * hi:.1f}%] |" in rows[0]
    assert "synth 1.0 test: selection not recorded; ids ids-1" in rows[0]  # the clips' provenance
    _, rest = _table_rows(explore)
    stgcn = next(r for r in rest if r.startswith("| stgcn | none |"))
    lo, hi = wilson_interval(3, N)  # pgd breaks 0-2, apgd-ce 3-4, transfer 5, no-box 0; sample 9 clean-wrong
    assert f"30.0% [{100 * lo:.1f}%, {100 * hi:.1f}%]" in stgcn
    assert "| 4 |" in stgcn and "[pgd (3)]" in stgcn  # pgd, apgd-ce, the transfer and the no-box attack
    assert "no autoattack or standard-preset record" in stgcn
    assert [r.split("|")[1].strip() for r in rest] == sorted(r.split("|")[1].strip() for r in rest)  # not ranked
    certified = next(v for k, v in md.items() if k.startswith("Certified accuracy, synth"))
    header, rows = _table_rows(certified)
    assert "certified @ 0.005 m" in header and "certified @ 0.01 m" in header
    assert header.index("certified @ 0.01 m |") < header.index("certified @ 0.0001 m RMS")  # total L2, then RMS
    assert len(rows) == 1 and rows[0].startswith("| stgcn | smoothing |") and "| 60.0% | 40.0% | 30.0% |" in rows[0]


def test_transfer_matrix(board):
    results, written, _ = board
    md = _sections((results / "leaderboard.md").read_text())
    title, table = next((k, v) for k, v in md.items() if k.startswith("Transfer matrix"))
    assert "early stop none" in title
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| attack@surrogate | protocol | agcn | ms_g3d | stgcn | average (excl. own surrogate) |")
    single = next(line for line in lines if line.startswith("| mifgsm@agcn |"))
    ensemble = next(line for line in lines if line.startswith("| mifgsm@agcn+stgcn |"))
    cells = [c.strip() for c in single.split("|")[1:-1]]
    assert cells[2].startswith("[80.0% [") and "]*](runs/" in cells[2]  # victim agcn is the surrogate itself
    assert cells[5] == "15.6%"  # mean of ms_g3d (2/10) and stgcn (1/9), leaving agcn out
    assert cells[6].startswith("87.5% [")  # surrogate (white-box) success 7/8
    ecells = [c.strip() for c in ensemble.split("|")[1:-1]]
    assert "]*](runs/" in ecells[2] and ecells[4] == ""  # no record of the ensemble on stgcn
    assert ecells[5] == "30.0%"  # only ms_g3d counts: agcn is one of its surrogates
    heatmaps = [p for p in written if p.name.startswith("transfer_")]
    assert len(heatmaps) == 1 and heatmaps[0].stat().st_size > 1000
    assert f"]({heatmaps[0].name})" in table


def test_decision_and_nobox_sections(board):
    results, written, _ = board
    md = _sections((results / "leaderboard.md").read_text())
    decision = next(v for k, v in md.items() if k.startswith("Decision-based attacks"))
    rows = [line for line in decision.splitlines() if line.startswith("| stgcn |")]
    assert len(rows) == 2 and "| 100 |" in rows[0] and "| 1000 |" in rows[1]
    assert rows[1].endswith("| 500 | 333 |")  # mean and median queries
    assert any(p.name.startswith("queries_") for p in written) and "](queries_" in decision
    nobox = next(v for k, v in md.items() if k.startswith("No-box attacks"))
    row = next(line for line in nobox.splitlines() if line.startswith("| skeleton-noise |"))
    assert "train, 256 clips" in row and row.count("](runs/") == 2


def test_empty_sections_are_omitted(tmp_path):
    write_record(make_record("stgcn", "pgd", broken={0}), tmp_path)
    build_leaderboard(tmp_path, formats="md")
    md = (tmp_path / "leaderboard.md").read_text()
    for absent in ("Transfer matrix", "No-box", "Decision-based", "): transfer,"):
        assert absent not in md
    assert "Robust accuracy, exploratory (not ranked), synth" in md and "Robust accuracy, ranked" not in md
    assert "nothing here is ranked" in md
    assert not (tmp_path / "leaderboard.html").exists()


def _balanced(text: str) -> bool:
    depth, escaped = 0, False
    for c in text:
        if escaped:  # the character after a backslash (\{, \}, and the second backslash of \\)
            escaped = False
            continue
        escaped = c == "\\"
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth < 0:
            return False
    return depth == 0


def test_latex(board, tmp_path):
    results, _, _ = board
    tex = (results / "leaderboard.tex").read_text()
    tables = tex.count(r"\begin{longtable}")
    html_tables = (results / "leaderboard.html").read_text().count("<table")
    # every table a longtable (page breaks lose nothing), its header repeated on each page
    assert tables == html_tables == tex.count(r"\bottomrule") == tex.count(r"\endfirsthead") == tex.count(r"\endhead")
    assert tables == tex.count(r"\end{longtable}") >= 8 and r"\begin{tabular}{" not in tex.replace(r"\begin{tabular}[b]", "")
    assert tex.count(r"\toprule") == 2 * tables
    assert _balanced(tex)
    assert r"ms\_g3d" in tex and "ms_g3d" not in tex
    assert re.search(r"\d\.\d & \{\}\[\d+\.\d, \d+\.\d\]", tex)  # a rate, then its interval in a column of its own
    shutil.copytree(results / "runs", tmp_path / "runs")
    build_leaderboard(tmp_path, ci_style="pm", formats=["tex"])
    pm = (tmp_path / "leaderboard.tex").read_text()
    assert re.search(r"\d\.\d & \$\\pm\$ \d+\.\d", pm) and _balanced(pm)
    if shutil.which("pdflatex"):
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "leaderboard.tex"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.sections: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "section":
            self.sections.append({"tables": 0, **attrs})
        elif tag == "table" and self.sections:
            self.sections[-1]["tables"] += 1


def test_html_page(board):
    results, _, _ = board
    text = (results / "leaderboard.html").read_text()
    page = _Page()
    page.feed(text)
    tags = page.tags
    md_titles = list(_sections((results / "leaderboard.md").read_text()))
    assert len(page.sections) == len(md_titles)
    assert all(s["tables"] >= 1 for s in page.sections if s.get("data-kind") != "plots")
    for tag, attrs in tags:
        for key in ("src", "href"):
            assert not str(attrs.get(key, "")).lower().startswith(("http:", "https:", "//")), (tag, attrs)
    links = [a["href"] for t, a in tags if t == "a" and not a.get("href", "").startswith("#")]
    assert links and all(h.startswith("runs/") and (results / h).is_file() for h in links)
    record_names = {p.name for p in (results / "runs").glob("*.json")}
    assert {h.removeprefix("runs/") for h in links} == record_names  # every record is reachable
    rows = [a for t, a in tags if t == "tr" and "data-dataset" in a]
    assert rows and all(a["data-dataset"] == "|synth|" for a in rows)
    ids = {a.get("id") for t, a in tags}
    assert {"f-dataset", "f-threat", "f-victim", "f-attack", "f-text"} <= ids
    options = {a["value"] for t, a in tags if t == "option"}
    assert {"transfer", "no-box", "decision-based", "white-box", "ms_g3d", "hsja"} <= options
    images = [a["src"] for t, a in tags if t == "img"]
    # the transfer heatmap, the perturbation-vs-queries plot, and one success-vs-imperceptibility plot per victim
    tradeoffs = list(results.glob("tradeoff_*.png"))
    assert tradeoffs and len(images) == 2 + len(tradeoffs)
    assert all("/" not in s and (results / s).is_file() and s.endswith(".png") for s in images)  # beside the page
    assert "SYNTHETIC" in text and "<script>" in text and "<style>" in text


def test_html_embeds_its_plots_on_request(board, tmp_path):
    results, _, _ = board
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    build_leaderboard(copy, formats="html", embed_plots=True)
    text = (copy / "leaderboard.html").read_text()
    page = _Page()
    page.feed(text)
    images = [a["src"] for t, a in page.tags if t == "img"]
    assert images and all(s.startswith("data:image/png;base64,") for s in images)
    assert len(text) > sum(p.stat().st_size for p in copy.glob("*.png"))  # the figures travel inside the page


def test_load_results(board):
    results, _, _ = board
    rerun = write_record(make_record("stgcn", "pgd", broken={0, 1, 2}, wrong={9}), results)  # both rows kept
    try:
        df = load_results(results)
        assert len(df) == 15 and len(records_table(results)) == 14
        for column in ("threat_model", "surrogates", "early_stop", "pool_split", "max_queries", "queries_mean",
                       "median_l2_rms_m", "defense_kind", "defense_randomized", "adaptive_eot_samples",
                       "surrogate_success_rate", "certified_accuracy", "protocol", "success_rate", "record"):
            assert column in df.columns, column
        assert set(df["threat_model"]) == {"white-box", "transfer", "no-box", "decision-based"}
        assert df.loc[df["surrogates"] == "agcn+stgcn", "surrogate_success_rate"].tolist() == [0.75, 0.75]
        assert df.loc[df["defense"] == "smoothing", "protocol"].tolist() == ["standard", "quick"]
    finally:
        rerun.unlink()
    code = "import sys, robustbench_skel as r; assert 'pandas' not in sys.modules; print(len(r.load_results(sys.argv[1])))"
    out = subprocess.run([sys.executable, "-c", code, str(results)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "14"

    from robustbench_skel.errors import UserError

    with pytest.raises(UserError, match="no run records"):  # a mistyped path is not an empty benchmark
        load_results(results / "no-such-folder")


def test_cli_options(board, tmp_path, capsys):
    from robustbench_skel.commands.cli import main

    results, _, _ = board
    shutil.copytree(results / "runs", tmp_path / "runs")
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--formats", "csv,tex", "--ci-style", "pm"]) == 0
    out = capsys.readouterr().out
    assert "14 rows" in out and "leaderboard.tex" in out
    assert sorted(p.name for p in tmp_path.glob("leaderboard.*")) == ["leaderboard.csv", "leaderboard.tex"]
    assert main(["leaderboard", "--results-dir", str(tmp_path), "--formats", "pdf"]) == 2
    assert "unknown leaderboard format pdf" in capsys.readouterr().err
    with pytest.raises(UserError):
        build_leaderboard(tmp_path, ci_style="stars")
