"""Paired comparison of two runs on the same clips: exact McNemar test and a paired interval.

Two attacks evaluated on the same victim, clips and budget are paired samples: each clip is fooled by
both, by one only, or by neither. Whether one attack is stronger is decided by the clips on which
they disagree (the discordant pairs ``b``: A only, ``c``: B only). Under the null hypothesis of
equal success each discordant clip is a fair coin, so the exact McNemar test is a two-sided binomial
test of ``b`` out of ``b + c`` at 1/2 (``scipy.stats.binomtest``). Independent Wilson intervals, as
the tables show, ignore this pairing and are far too conservative for such comparisons.

The difference in success ``(b - c) / n`` comes with Newcombe's hybrid score interval for paired
proportions (Newcombe 1998, method 10: Wilson intervals of both margins combined with the
continuity-corrected phi correlation of the 2x2 table), which, unlike the Wald interval, stays inside [-1, 1] and behaves with
few discordant clips.

Records pair when they share the victim (name, weights and defense), the dataset and the evaluated
clips (sample ids, in order), the budget (norm, eps, targeted) and, for targeted runs, the targets.
The clips compared are those attacked in both (the victim's correctly classified clips).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from ..metrics import wilson_interval
from ..step_rule import step_label, step_summary

__all__ = ["PairedTable", "pairing_problem", "paired_table", "mcnemar_exact", "newcombe_interval", "compare_records",
           "differing_settings", "format_comparison", "versus_best", "SIGNIFICANCE"]

SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class PairedTable:
    """The paired 2x2 table of two runs: ``both``, ``a_only`` (b), ``b_only`` (c), ``neither``."""

    both: int
    a_only: int
    b_only: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.a_only + self.b_only + self.neither

    @property
    def difference(self) -> float:
        """Success of A minus success of B."""
        return (self.a_only - self.b_only) / self.n if self.n else math.nan


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: ``b`` of ``b + c`` discordant clips under Binomial(b + c, 1/2)."""
    from scipy.stats import binomtest

    discordant = a_only + b_only
    if discordant == 0:
        return 1.0
    return float(binomtest(a_only, discordant, 0.5, alternative="two-sided").pvalue)


def newcombe_interval(table: PairedTable, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's (1998, method 10) interval for the paired difference of success rates, A minus B."""
    n = table.n
    if n == 0:
        return math.nan, math.nan
    a, b, c, d = table.both, table.a_only, table.b_only, table.neither
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c  # phi, continuity-corrected towards 0 when positive (Newcombe's definition)
    corrected = cross - n / 2 if cross > n / 2 else (0.0 if cross >= 0 else cross)
    phi = corrected / math.sqrt(denominator) if denominator > 0 else 0.0
    delta = p1 - p2
    lower = delta - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    upper = delta + math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return max(-1.0, lower), min(1.0, upper)


def _victim_key(record: dict) -> tuple:
    v = record["victim"]
    defense = record.get("defense")
    return v.get("name"), v.get("checkpoint_sha256"), json.dumps(defense, sort_keys=True, default=str)


def _budget(record: dict) -> tuple:
    a = record["attack"]
    return a.get("norm"), a.get("eps"), bool(a.get("targeted"))


def pairing_problem(a: dict, b: dict) -> str | None:
    """Why two records do not pair (one phrase), or None when they do."""
    if _victim_key(a) != _victim_key(b):
        return (f"different victims ({a['victim']['name']} vs {b['victim']['name']}, or other weights or defense)")
    da, db = a["dataset"], b["dataset"]
    if (da.get("name"), da.get("version"), da.get("split")) != (db.get("name"), db.get("version"), db.get("split")):
        return f"different data ({da.get('name')} {da.get('split')} vs {db.get('name')} {db.get('split')})"
    ids_a, ids_b = (a.get("samples") or {}).get("id"), (b.get("samples") or {}).get("id")
    if ids_a is None or ids_b is None:
        return "a record holds no per-sample outcomes (samples.id)"
    if ids_a != ids_b:
        return f"different clips ({len(ids_a)} vs {len(ids_b)} samples, or other sample ids)"
    if _budget(a) != _budget(b):
        return f"different budgets ({_budget_text(a)} vs {_budget_text(b)})"
    if a["attack"].get("targeted") and a["samples"].get("target") != b["samples"].get("target"):
        return "different targets"
    return None


def _budget_text(record: dict) -> str:
    norm, eps, targeted = _budget(record)
    return f"{norm} eps={eps:g}{' targeted' if targeted else ''}" if isinstance(eps, (int, float)) else f"{norm} {eps}"


def paired_table(a: dict, b: dict) -> PairedTable:
    """The 2x2 table over the clips attacked in both records (a UserError when they do not pair)."""
    problem = pairing_problem(a, b)
    if problem:
        raise UserError(f"these records do not pair: {problem}; compare runs on the same victim, clips and budget")
    sa, sb = a["samples"], b["samples"]
    counts = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
    for att_a, att_b, win_a, win_b in zip(sa["attacked"], sb["attacked"], sa["success"], sb["success"]):
        if att_a and att_b:
            counts[(bool(win_a), bool(win_b))] += 1
    return PairedTable(counts[(True, True)], counts[(True, False)], counts[(False, True)], counts[(False, False)])


def compare_records(a: dict, b: dict) -> dict[str, Any]:
    """Table, exact McNemar p-value and the difference A - B with its Newcombe 95% interval."""
    table = paired_table(a, b)
    low, high = newcombe_interval(table)
    p = mcnemar_exact(table.a_only, table.b_only)
    return {"table": table, "p_value": p, "difference": table.difference, "ci95": (low, high),
            "significant": p < SIGNIFICANCE}


def _label(record: dict) -> str:
    surrogates = "+".join(s.get("name", "?") for s in ((record.get("threat") or {}).get("surrogates") or []))
    parts = [record["attack"]["name"] + (f"@{surrogates}" if surrogates else ""), step_label(step_summary(record["attack"]))]
    if record.get("preset"):
        parts.append(f"preset {record['preset']}")
    return ", ".join(parts)


_STEP_KEYS = ("step_rule", "step_size", "steps")  # stated by the step note below


def differing_settings(a: dict, b: dict) -> list[str]:
    """``swag: paper (A), reference (B)``: the hyperparameters that differ between two records of one attack
    (their labels alone can be the same); the step rule has its own note, and paired records share a defense."""
    hyper_a, hyper_b = a["attack"].get("hyperparameters") or {}, b["attack"].get("hyperparameters") or {}
    out = []
    if a["attack"]["name"] == b["attack"]["name"]:
        for key in sorted(set(hyper_a) | set(hyper_b)):
            if key not in _STEP_KEYS and hyper_a.get(key, "not set") != hyper_b.get(key, "not set"):
                out.append(f"{key}: {hyper_a.get(key, 'not set')} (A), {hyper_b.get(key, 'not set')} (B)")
    return out


def format_comparison(a: dict, b: dict, name_a: str = "A", name_b: str = "B") -> str:
    """The printout of ``compare``: what is compared, the paired table, the test and the difference."""
    result = compare_records(a, b)
    t: PairedTable = result["table"]
    label_a, label_b = _label(a), _label(b)
    width = max(len(label_a), len(label_b), 10)
    low, high = result["ci95"]
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [
        f"A: {label_a}  ({name_a})",
        f"B: {label_b}  ({name_b})",
        *(f"   {line}" for line in differing_settings(a, b)),
        f"victim {a['victim']['name']}, {a['dataset']['name']} {a['dataset']['split']}, {_budget_text(a)}, "
        f"{t.n} clips attacked in both (the victim's correctly classified clips)",
        "",
        f"{'':<{width}}  {'B fooled':>9}  {'B not':>9}",
        f"{'A fooled':<{width}}  {t.both:>9}  {t.a_only:>9}",
        f"{'A not':<{width}}  {t.b_only:>9}  {t.neither:>9}",
        "",
        f"success: A {pct((t.both + t.a_only) / t.n) if t.n else 'n/a'}%, B {pct((t.both + t.b_only) / t.n) if t.n else 'n/a'}%",
        f"exact McNemar test on the {t.a_only + t.b_only} discordant clips ({t.a_only} A only, {t.b_only} B only): "
        f"p = {result['p_value']:.4g}" + (" (significant at 0.05)" if result["significant"] else " (not significant at 0.05)"),
        f"difference A - B: {pct(result['difference']) if t.n else 'n/a'} points, 95% CI "
        f"[{pct(low)}, {pct(high)}] (Newcombe's hybrid score interval for paired proportions)",
    ]
    step_a, step_b = step_summary(a["attack"]), step_summary(b["attack"])
    if step_a != step_b:
        lines.append(f"note: the two attacks step differently ({step_label(step_a)} vs {step_label(step_b)}); "
                     "part of the difference may be the step rule")
    return "\n".join(lines)


def versus_best(records: dict[str, dict]) -> dict[str, dict[str, Any]]:
    """For records of one table group (``{name: record}``), each one's standing against the best of them.

    Records are first split into classes that pair (same victim, clips and budget); in each class of
    two or more, the best is the record with the highest success, and every other record gets
    ``{"best": name, "p_value", "significant"}`` from :func:`compare_records`; the best gets
    ``{"is_best": True}``. A record that pairs with no other gets ``{"unpaired": reason}``.
    """
    def rate(r: dict) -> float:
        m = (r.get("metrics") or {}).get("attack_success_rate") or {}
        v = m.get("value")
        return -1.0 if v is None or v != v else float(v)

    if len(records) < 2:
        return {}
    classes: list[list[str]] = []
    for name in sorted(records):
        for members in classes:
            if pairing_problem(records[name], records[members[0]]) is None:
                members.append(name)
                break
        else:
            classes.append([name])
    out: dict[str, dict[str, Any]] = {}
    for members in classes:
        if len(members) == 1:
            other = next(n for n in records if n != members[0])
            out[members[0]] = {"unpaired": pairing_problem(records[members[0]], records[other]) or "no pair"}
            continue
        best = max(members, key=lambda k: (rate(records[k]), k))
        out[best] = {"is_best": True}
        for name in members:
            if name != best:
                result = compare_records(records[name], records[best])
                out[name] = {"best": best, "p_value": result["p_value"], "significant": result["significant"]}
    return out
