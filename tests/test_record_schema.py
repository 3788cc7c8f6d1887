"""One record schema for every reader: committed records pass, malformed ones fail with the file and field.

The schema (robustbench_skel/record_schema.py) decides that missing required fields and wrong types are
errors and that extra fields are accepted; the hypothesis test below states the same rules independently
(the table ``FIELDS``) and feeds mutated records to every reader: ``read_record``, ``load_results``,
``leaderboard``, ``show`` and ``reproduce``.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustbench_skel.commands.cli import main
from robustbench_skel.errors import UserError
from robustbench_skel.board.leaderboard import RECORD_NEEDS, load_results
from robustbench_skel.run.record import read_record, write_record

REPO = Path(__file__).resolve().parent.parent
IDS = ["S000", "S001", "S002"]


def valid_record() -> dict:
    return {
        "schema_version": 1, "run_id": "20260101T000000-abcdef", "created": "2026-01-01T00:00:00+00:00",
        "command": "python -m robustbench_skel run --victim sgn --attack fgsm --n-samples 3",
        "config": {"victim": "sgn", "attack": "fgsm", "dataset": "synth", "n_samples": 3, "device": "cpu"},
        "victim": {"name": "sgn", "checkpoint": "sgn:synth", "checkpoint_sha256": "0" * 64},
        "dataset": {"name": "synth", "version": "1", "split": "test", "synthetic": True, "num_evaluated": 3,
                    "sample_ids_sha256": "1" * 64},
        "attack": {"name": "fgsm", "threat_model": "white-box", "norm": "linf", "eps": 0.01, "targeted": False,
                   "hyperparameters": {"eps": 0.01}},
        "defense": None, "seed": 0, "environment": {"device": "cpu"}, "timing": {"wall_time_s": 1.0},
        "metrics": {"attack_success_rate": {"value": 0.5, "ci95": [0.1, 0.9], "count": 1, "n": 2},
                    "clean_accuracy": {"value": 2 / 3, "ci95": [0.2, 0.9], "count": 2, "n": 3}},
        "flags": {"all_finite": True, "all_within_budget": True},
        "samples": {"id": IDS, "label": [0, 1, 2], "clean_pred": [0, 1, 0], "adv_pred": [1, 1, 0],
                    "attacked": [True, True, False], "success": [True, False, False]},
    }


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _list_of(check, length=None):
    return lambda v: isinstance(v, list) and (length is None or len(v) == length) and all(check(x) for x in v)


def _or_none(check):
    return lambda v: v is None or check(v)


# dotted field -> (what a valid value is, required in every record). Stated here, independently of the schema.
FIELDS = {
    "schema_version": (lambda v: _int(v) and v == 1, True),
    "run_id": (lambda v: isinstance(v, str), True),
    "created": (lambda v: isinstance(v, str), True),
    "victim": (lambda v: isinstance(v, dict) and isinstance(v.get("name"), str), True),
    "victim.name": (lambda v: isinstance(v, str), True),
    "victim.checkpoint_sha256": (_or_none(lambda v: isinstance(v, str)), False),
    "dataset.name": (lambda v: isinstance(v, str), True),
    "dataset.split": (lambda v: isinstance(v, str), False),  # the leaderboard needs it: required there
    "dataset.num_evaluated": (_int, False),
    "attack.name": (lambda v: isinstance(v, str), True),
    "attack.eps": (_or_none(_num), False),
    "attack.targeted": (_or_none(lambda v: isinstance(v, bool)), False),
    "defense": (lambda v: v is None or (isinstance(v, dict) and isinstance(v.get("name"), str)), True),
    "seed": (_int, True),
    "environment": (lambda v: isinstance(v, dict), True),
    "timing": (lambda v: isinstance(v, dict), True),
    "metrics": (lambda v: isinstance(v, dict) and all(x is None or _num(x) or isinstance(x, dict) for x in v.values()), True),
    "metrics.attack_success_rate.value": (_or_none(_num), False),
    "metrics.attack_success_rate.n": (_or_none(_int), False),
    "metrics.attack_success_rate.ci95": (_or_none(_list_of(_or_none(_num), 2)), False),
    "flags.all_finite": (_or_none(lambda v: isinstance(v, bool)), False),
    "samples.id": (_list_of(lambda v: isinstance(v, str), 3), False),
    "samples.success": (_list_of(lambda v: isinstance(v, bool), 3), False),
    "samples.clean_pred": (_list_of(_int, 3), False),
}
LEADERBOARD_REQUIRED = {"dataset.split", "samples.id", "samples.success", "samples.clean_pred"}
JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(-2, 2, allow_nan=False), st.text(max_size=4),
    st.lists(st.one_of(st.integers(0, 2), st.booleans(), st.text(max_size=2)), max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=3), st.integers(), max_size=2),
)


def _set(record: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    target = record
    for part in parents:
        target = target[part]
    target[last] = value


def _delete(record: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    target = record
    for part in parents:
        target = target[part]
    del target[last]


@st.composite
def mutations(draw):
    """``(record, kind, field, valid for every reader, valid for the leaderboard)``."""
    record = valid_record()
    kind = draw(st.sampled_from(["wrong", "missing", "extra"]))
    if kind == "extra":
        where = draw(st.sampled_from(["", "victim", "dataset", "attack", "timing", "environment"]))
        name = "x_" + draw(st.text("abcdefgh", min_size=1, max_size=6))
        field = f"{where}.{name}" if where else name
        _set(record, field, draw(JSON_VALUES))
        return record, kind, field, True, True
    field = draw(st.sampled_from(sorted(FIELDS)))
    check, required = FIELDS[field]
    if kind == "missing":
        _delete(record, field)
        ok = not required
    else:
        value = draw(JSON_VALUES)
        _set(record, field, copy.deepcopy(value))
        ok = check(value)
    board_ok = ok and not (kind == "missing" and field in LEADERBOARD_REQUIRED)
    return record, kind, field, ok, board_ok


def _one_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    return lines[0]


def _named(message: str, path: Path, field: str) -> None:
    assert path.name in message, message
    top = field.split(".")[0]
    assert field in message or (f"'{top}'" in message), (field, message)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations())
def test_every_reader_refuses_a_malformed_record_naming_file_and_field(capsys, mutation):
    record, kind, field, ok, board_ok = mutation
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        path = results / "runs" / "mutated.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(record))

        if ok:
            assert read_record(path)["run_id"] == record["run_id"]
        else:
            with pytest.raises(UserError) as info:
                read_record(path)
            _named(str(info.value), path, field)

        if board_ok:
            assert len(load_results(results)) == 1
            assert main(["leaderboard", "--results-dir", str(results), "--formats", "csv"]) == 0, capsys.readouterr().err
            capsys.readouterr()
        else:
            with pytest.raises(UserError) as info:
                load_results(results)
            _named(str(info.value), path, field)
            assert main(["leaderboard", "--results-dir", str(results), "--formats", "csv"]) == 2
            _named(_one_line(capsys), path, field)
            assert not (results / "leaderboard.csv").exists()

        if not ok:  # show and reproduce stop at the schema, before loading data or models
            assert main(["show", str(path), "--sample", "S000", "--out", str(Path(tmp) / "x.gif")]) == 2
            _named(_one_line(capsys), path, field)
            assert main(["reproduce", str(path)]) == 2
            _named(_one_line(capsys), path, field)
            assert sorted(p.name for p in Path(tmp).rglob("*") if p.is_file()) == ["mutated.json"]


def test_every_committed_record_follows_the_schema():
    paths = sorted((REPO / "results" / "runs").glob("*.json"))
    assert paths, "the repository ships run records"
    for path in paths:
        read_record(path, needs=RECORD_NEEDS)  # a UserError names the first record and field that break it


def test_the_writer_refuses_what_the_readers_would(tmp_path):
    record = valid_record()
    record["metrics"]["attack_success_rate"]["value"] = "half"
    with pytest.raises(UserError, match="metrics.attack_success_rate.value"):
        write_record(record, tmp_path)
    assert not list(tmp_path.rglob("*.json"))
