"""The one schema of a run record, checked by every reader (and by the writer) before a field is used.

A record is JSON a person can edit, copy or truncate, so a reader cannot trust its types. Every reader
(``leaderboard``, ``load_results``, ``show``, ``reproduce``, ``sweep``'s skip list) goes through
:func:`check_record`, which names the file and the dotted field that is wrong, e.g.
``runs/x.json: field 'metrics.attack_success_rate.value' must be a number or null, got str 'abc'``.

What it decides:

- **Required** in every record: ``schema_version`` (this tool's), ``run_id``, ``created``, ``victim.name``,
  ``dataset.name``, ``attack.name``, ``defense`` (an object with a ``name``, or null), ``seed``,
  ``environment``, ``timing`` and ``metrics``. A reader that needs more (the leaderboard needs the
  dataset split and the per-sample arrays) names those fields in ``needs``.
- **Typed when present**: the other fields the readers use (budgets, flags, threat block, per-sample
  arrays, the saved configuration, the adversarial-clips entry); ``null`` where a value may be absent.
  The per-sample arrays must all be as long as ``samples.id``.
- **Extra fields are accepted**: a record written by a later version, or annotated by hand, may carry
  fields this version does not know; they are ignored, never an error.

Every record committed under ``results/runs/`` passes (a test checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import UserError

__all__ = ["SCHEMA_VERSION", "check_record", "RECORD_FIELDS"]

SCHEMA_VERSION = 1


class _Type:
    """A JSON type (or a union of them) with the words a message uses for it."""

    def __init__(self, words: str, *checks) -> None:
        self.words, self.checks = words, checks

    def __call__(self, value: Any) -> bool:
        return any(check(value) for check in self.checks)

    def __or__(self, other: "_Type") -> "_Type":
        return _Type(f"{self.words} or {other.words}", *self.checks, *other.checks)


STR = _Type("a string", lambda v: isinstance(v, str))
INT = _Type("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool))
NUM = _Type("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
BOOL = _Type("true or false", lambda v: isinstance(v, bool))
OBJ = _Type("an object", lambda v: isinstance(v, Mapping))
LIST = _Type("a list", lambda v: isinstance(v, list))
PAIR = _Type("a list of two entries", lambda v: isinstance(v, list) and len(v) == 2)
NULL = _Type("null", lambda v: v is None)

# field -> (type, required, fields inside it); "*" applies to every entry of an object or list.
_METRIC_FIELDS = {"value": (NUM | NULL, False, None), "ci95": (PAIR | NULL, False, {"*": (NUM | NULL, False, None)}),
                  "n": (INT | NULL, False, None), "count": (INT | NULL, False, None), "max": (NUM | NULL, False, None),
                  "median": (NUM | NULL, False, None)}
RECORD_FIELDS: dict[str, tuple[_Type, bool, dict | None]] = {
    "schema_version": (INT, True, None),
    "run_id": (STR, True, None),
    "created": (STR, True, None),
    "victim": (OBJ, True, {"name": (STR, True, None), "checkpoint": (STR | NULL, False, None),
                           "checkpoint_sha256": (STR | NULL, False, None), "num_classes": (INT | NULL, False, None),
                           "pretrained_on": (STR | NULL, False, None)}),
    "dataset": (OBJ, True, {"name": (STR, True, None), "split": (STR, False, None), "version": (STR | NUM, False, None),
                            "synthetic": (BOOL, False, None), "num_evaluated": (INT, False, None),
                            "sample_ids_sha256": (STR | NULL, False, None), "layout": (STR, False, None),
                            "fps": (NUM, False, None), "num_classes": (INT, False, None)}),
    "attack": (OBJ, True, {"name": (STR, True, None), "eps": (NUM | NULL, False, None), "norm": (STR | NULL, False, None),
                           "targeted": (BOOL | NULL, False, None), "threat_model": (STR, False, None),
                           "hyperparameters": (OBJ, False, None)}),
    "defense": (OBJ | NULL, True, {"name": (STR, True, None), "kind": (STR, False, None), "randomized": (BOOL, False, None),
                                   "differentiable": (BOOL, False, None), "hyperparameters": (OBJ | NULL, False, None)}),
    "seed": (INT, True, None),
    "environment": (OBJ, True, None),
    "timing": (OBJ, True, None),
    "metrics": (OBJ, True, {"*": (OBJ | NUM | NULL, False, _METRIC_FIELDS)}),
    "flags": (OBJ | NULL, False, {"*": (BOOL | NULL, False, None)}),
    "threat": (OBJ | NULL, False, {"model": (STR, False, None), "early_stop": (STR | NULL, False, None),
                                   "max_queries": (INT | NULL, False, None), "pool": (OBJ | NULL, False, None),
                                   "adaptive": (OBJ | NULL, False, None), "artefacts": (LIST | NULL, False, None),
                                   "surrogates": (LIST | NULL, False, {"*": (OBJ, False, {"name": (STR, True, None)})})}),
    "samples": (OBJ, False, {"id": (LIST, False, {"*": (STR, False, None)}), "label": (LIST, False, {"*": (INT, False, None)}),
                             "clean_pred": (LIST, False, {"*": (INT, False, None)}),
                             "adv_pred": (LIST, False, {"*": (INT | NULL, False, None)}),
                             "attacked": (LIST, False, {"*": (BOOL, False, None)}),
                             "success": (LIST, False, {"*": (BOOL, False, None)})}),
    "config": (OBJ | NULL, False, None),
    "command": (STR | NULL, False, None),
    "sweep": (OBJ | NULL, False, None),
    "preset": (STR | NULL, False, None),
    "sanity": (OBJ | NULL, False, None),
    "batch_size": (INT | STR, False, None),
    "adversarial": (OBJ | NULL, False, {"file": (STR, True, None), "sha256": (STR, True, None)}),
}


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


def _check(value: Any, spec: tuple[_Type, bool, dict | None], where: str, fail) -> None:
    kind, _, inner = spec
    if not kind(value):
        fail(where, f"must be {kind.words}, got {_shown(value)}")
    if not inner or value is None:
        return
    if isinstance(value, list):
        if "*" in inner:
            for i, item in enumerate(value):
                _check(item, inner["*"], f"{where}[{i}]", fail)
        return
    if not isinstance(value, Mapping):
        return  # a bare number where a metric object may stand
    for key, sub in inner.items():
        if key == "*":
            for name, item in value.items():
                _check(item, sub, f"{where}.{name}", fail)
        elif key in value:
            _check(value[key], sub, f"{where}.{key}", fail)
        elif sub[1]:
            fail(f"{where}.{key}", "is missing")


def _lookup(record: Mapping, dotted: str) -> tuple[bool, Any]:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def check_record(record: Any, source: str = "record", needs: tuple[str, ...] = ()) -> dict:
    """``record`` if it follows the schema (and has every dotted field in ``needs``), else a UserError
    naming ``source`` and the first wrong field."""

    def fail(field: str, problem: str) -> None:
        raise UserError(f"{source}: field {field!r} {problem}; fix the record or move it out of the runs folder")

    if not isinstance(record, Mapping):
        raise UserError(f"{source} is not a run record (a JSON object), it holds {type(record).__name__}")
    missing = [k for k, (_, required, _) in RECORD_FIELDS.items() if required and k not in record]
    if missing:
        raise UserError(f"{source} is not a run record: field(s) {', '.join(map(repr, missing))} missing")
    version = record["schema_version"]
    if not INT(version) or version != SCHEMA_VERSION:
        raise UserError(f"{source}: field 'schema_version' is {version!r} (schema version {version!r}), but this tool "
                        f"reads schema version {SCHEMA_VERSION}; use the version of robustbench_skel that wrote it")
    for key, spec in RECORD_FIELDS.items():
        if key in record:
            _check(record[key], spec, key, fail)
    samples = record.get("samples") or {}
    if isinstance(samples.get("id"), list):
        n = len(samples["id"])
        for key, value in samples.items():
            if isinstance(value, list) and len(value) != n:
                fail(f"samples.{key}", f"has {len(value)} entries but 'samples.id' has {n}")
    for dotted in needs:
        present, value = _lookup(record, dotted)
        if not present or value is None:
            fail(dotted, "is missing, and this command needs it")
    return dict(record)
