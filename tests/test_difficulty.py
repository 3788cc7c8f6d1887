"""The benchmark's difficulty read from its records (issue 24's calibration): the leaderboard's table and the
design targets `describe synth` checks, on small hand-made records."""

from __future__ import annotations

from test_leaderboard import _transfer, make_record

from robustbench_skel.board.difficulty import pgd_budget_curves, victim_difficulty
from robustbench_skel.board.leaderboard import build_leaderboard, records_table
from robustbench_skel.commands.describe import difficulty_lines
from robustbench_skel.datasets import synth2
from robustbench_skel.run.record import write_record


def _v2(record: dict) -> dict:
    record["dataset"]["version"] = synth2.SYNTH_VERSION
    return record


def _records() -> list[dict]:
    """stgcn: 8/10 clean, PGD fools 7 of 8, APGD all 8, its own transfer I-FGSM 6 of 8; ctrgcn: 10/10 clean,
    PGD fools 1 of 10. Around them, records that must not count: a defended PGD, a preset's transfer run,
    and transfer onto another victim."""
    stgcn_wrong = {0, 1}
    return [_v2(r) for r in (
        make_record("stgcn", "pgd", wrong=stgcn_wrong, broken=set(range(2, 9))),
        make_record("stgcn", "apgd-ce", wrong=stgcn_wrong, broken=set(range(2, 10))),
        make_record("stgcn", "ifgsm", wrong=stgcn_wrong, broken=set(range(2, 8)), threat=_transfer(["stgcn"])),
        make_record("ctrgcn", "pgd", broken={3}),
        make_record("stgcn", "pgd", wrong=stgcn_wrong, broken=set(), defense={"name": "trades", "kind": "weights"}),
        make_record("stgcn", "ifgsm", wrong=stgcn_wrong, broken=set(), threat=_transfer(["stgcn"]), preset="tasar-paper"),
        make_record("ctrgcn", "ifgsm", broken=set(range(10)), threat=_transfer(["stgcn"])),
    )]


def test_each_victim_gets_its_clean_accuracy_pgd_strongest_attack_and_surrogate_self_success(tmp_path):
    for r in _records():
        write_record(r, tmp_path)
    rows = {r.victim: r for r in victim_difficulty(records_table(tmp_path))}
    assert sorted(rows) == ["ctrgcn", "stgcn"]
    stgcn, ctrgcn = rows["stgcn"], rows["ctrgcn"]
    assert stgcn.clean[0] == 0.8 and stgcn.pgd[0] == 7 / 8  # the undefended record, not the trades one
    assert stgcn.pgd[1] < stgcn.pgd[0] < stgcn.pgd[2]
    assert stgcn.strongest[0] == "apgd-ce" and stgcn.strongest[2][0] == 1.0
    assert stgcn.as_surrogate[2][0] == 6 / 8  # its own default I-FGSM, not the preset's run (0/8)
    assert ctrgcn.clean[0] == 1.0 and ctrgcn.pgd[0] == 0.1
    assert ctrgcn.as_surrogate is None  # transfer onto ctrgcn from stgcn is not ctrgcn fooling itself


def test_describe_checks_the_design_targets_against_the_records(tmp_path):
    for r in _records():
        write_record(r, tmp_path)
    lines = difficulty_lines(tmp_path)
    verdict = {line.split("  ", 2)[-1].strip().split(":")[0]: line.split()[0]
               for line in lines if line.startswith(("  met", "  NOT MET", "  not measured"))}
    assert verdict["clean accuracy of every victim 70%-95%"] == "NOT"  # ctrgcn is 100% accurate
    assert verdict["clean accuracy of stgcn <= 92%"] == "met"
    assert verdict["PGD-10 success on stgcn >= 80%"] == "met"  # 87.5%
    assert verdict["PGD-10 success on the median victim >= 50%"] == "NOT"  # median of 87.5% and 10%: 48.75%
    assert verdict["surrogates stgcn and ctrgcn fooled by their own transfer I-FGSM >= 80%"] == "NOT"  # 75%


def test_describe_without_records_says_how_to_measure(tmp_path):
    lines = difficulty_lines(tmp_path)
    assert "synth_1_pgd.toml" in lines[-1]
    write_record(make_record("stgcn", "pgd", broken={1}), tmp_path)  # synth 1.0: another version's data
    assert "synth_1_pgd.toml" in difficulty_lines(tmp_path)[-1]


def test_the_leaderboard_has_one_difficulty_table_at_the_benchmark_budget_with_a_median_row(tmp_path):
    curve = make_record("stgcn", "pgd", eps=0.005, hyper={"eps": 0.005, "steps": 10, "seed": 0})  # a budget curve point
    for r in [*_records(), _v2(curve)]:
        write_record(r, tmp_path)
    build_leaderboard(tmp_path, formats="md")
    text = (tmp_path / "leaderboard.md").read_text()
    assert text.count("## Benchmark difficulty") == 1 and "## Benchmark difficulty, synth (SYNTHETIC benchmark): L-inf eps=0.01 m" in text
    table = text[text.index("## Benchmark difficulty"):].split("\n\n")[2]
    lines = table.splitlines()
    assert lines[2].startswith("| ctrgcn | 10 | 100.0%") and lines[3].startswith("| stgcn | 10 | 80.0%")
    assert lines[-1].startswith("| median of 2 |  | 90.0% | 48.8% |")


def test_budget_curves_use_one_clip_set_per_victim(tmp_path):
    def pgd(victim, eps, broken, ids="ids-curve"):
        r = _v2(make_record(victim, "pgd", eps=eps, broken=broken, hyper={"eps": eps, "steps": 10, "seed": 0}))
        r["dataset"]["sample_ids_sha256"] = ids
        return r

    records = [pgd("stgcn", 0.005, {1}), pgd("stgcn", 0.01, {1, 2}), pgd("stgcn", 0.02, {1, 2, 3, 4}),
               pgd("stgcn", 0.01, set(range(10)), ids="ids-all"),  # another clip set: not a point of the curve
               pgd("ctrgcn", 0.01, {1})]  # one budget: no curve
    for r in records:
        write_record(r, tmp_path)
    curves = pgd_budget_curves(records_table(tmp_path))
    assert list(curves) == ["stgcn"]
    assert [(eps, rate[0]) for eps, rate, _ in curves["stgcn"]] == [(0.005, 0.1), (0.01, 0.2), (0.02, 0.4)]
    assert any("PGD success against the budget, stgcn (10 clips attacked): 0.5 cm 10.0%, 1 cm 20.0%, 2 cm 40.0%" in line
               for line in difficulty_lines(tmp_path))
