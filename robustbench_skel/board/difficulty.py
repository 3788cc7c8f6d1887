"""How hard a benchmark is, read from its records: a benchmark whose victims are near-perfect and unbreakable
cannot tell attacks apart, so the board says how accurate and how fragile the victims are before anyone reads
a ranking from it.

One table per dataset, at the L-inf budget with the most victims; one row per undefended victim with a PGD
record: clean accuracy and PGD success on the most clips recorded, the strongest white-box attack recorded on
the victim (where even it stays low, the data, not the attack's optimisation, keeps the victim robust), and how
often the I-FGSM crafted on the victim for transfer fools the victim itself (a surrogate that its own attack
cannot fool carries little over). The last row is the median over victims.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import pandas as pd

from .model import Cell, Row, Section, budget_label, dataset_label, is_missing
from .sections import budget_groups

__all__ = ["VictimDifficulty", "victim_difficulty", "pgd_budget_curves", "difficulty_sections"]


@dataclass(frozen=True)
class VictimDifficulty:
    """One victim's figures at one budget; a rate is ``(value, low, high)`` with its 95% interval, or None."""

    victim: str
    clips: int
    clean: tuple[float, float, float]
    pgd: tuple[float, float, float]
    pgd_record: str
    pgd_step: str
    strongest: tuple[str, int, tuple[float, float, float], str] | None  # (attack, clips, rate, record)
    as_surrogate: tuple[str, int, tuple[float, float, float], str] | None  # fooled by its own transfer attack


def _rate(r: pd.Series, key: str, low: str, high: str) -> tuple[float, float, float]:
    return (float(r[key]), float(r[low]) if not is_missing(r[low]) else math.nan,
            float(r[high]) if not is_missing(r[high]) else math.nan)


def _success(r: pd.Series) -> tuple[float, float, float]:
    return _rate(r, "success_rate", "success_ci_low", "success_ci_high")


def _undefended(g: pd.DataFrame) -> pd.DataFrame:
    """Untargeted records on a victim without a defense: what the difficulty is measured on."""
    return g[(g["defense"] == "none") & ~g["targeted"].astype(bool)]


def _default_setting(g: pd.DataFrame) -> pd.DataFrame:
    """Records of an attack's own defaults: no preset and no option set by the user."""
    return g[(g["protocol"] == "quick") & g["attack_options"].map(is_missing).astype(bool)]


def victim_difficulty(g: pd.DataFrame) -> list[VictimDifficulty]:
    """The difficulty rows of one dataset x budget group of the records table (see :mod:`.leaderboard`)."""
    undefended = _undefended(g)
    white = undefended[undefended["threat_model"] == "white-box"]
    pgd = _default_setting(white[white["attack"] == "pgd"])
    rows = []
    for victim, runs in pgd.groupby("victim", sort=True):
        best = runs.sort_values(["n", "created"], ascending=False).iloc[0]
        own = white[(white["victim"] == victim) & (white["checkpoint_sha256"] == best["checkpoint_sha256"])]
        own = own[own["success_rate"].notna()]
        strongest = None
        if not own.empty:
            top = own.sort_values(["success_rate", "n"], ascending=False).iloc[0]
            strongest = (top["attack"], int(top["n"]), _success(top),
                         top["record"])
        rows.append(VictimDifficulty(
            victim=victim, clips=int(best["n"]),
            clean=_rate(best, "clean_accuracy", "clean_ci_low", "clean_ci_high"),
            pgd=_success(best),
            pgd_record=best["record"], pgd_step=str(best["step"]),
            strongest=strongest, as_surrogate=_fooled_as_surrogate(undefended, victim, best["checkpoint_sha256"])))
    return rows


def pgd_budget_curves(df: pd.DataFrame) -> dict[str, list[tuple[float, tuple[float, float, float], int]]]:
    """``{victim: [(eps, success, clips attacked), ...]}``: PGD (its defaults, undefended, L-inf, untargeted) at
    every budget recorded on one set of clips, the set with the most budgets, for victims with two budgets or more.
    One clip set, so the points differ only by the budget."""
    g = _undefended(df)
    g = g[(g["norm"] == "linf") & (g["threat_model"] == "white-box") & (g["attack"] == "pgd") & g["success_rate"].notna()]
    curves = {}
    for victim, runs in _default_setting(g).groupby("victim", sort=True):
        sets = runs.groupby(["checkpoint_sha256", "sample_ids_sha256"], dropna=False)["eps"].nunique()
        if sets.max() < 2:
            continue
        sha, ids = sets.idxmax()
        chosen = runs[(runs["checkpoint_sha256"] == sha) & (runs["sample_ids_sha256"] == ids)]
        chosen = chosen.sort_values("created", ascending=False).drop_duplicates("eps").sort_values("eps")
        curves[victim] = [(float(r["eps"]), _success(r),
                           int(r["n_attacked"])) for _, r in chosen.iterrows()]
    return curves


def _fooled_as_surrogate(g: pd.DataFrame, victim: str, sha: str) -> tuple | None:
    """The I-FGSM transfer record crafted on ``victim`` alone and evaluated on the same weights (the diagonal
    of the transfer matrix), at the attack's defaults: how often the surrogate fools itself."""
    own = _default_setting(g[(g["threat_model"] == "transfer") & (g["attack"] == "ifgsm")
                             & (g["surrogates"] == victim) & (g["victim"] == victim)
                             & (g["surrogates_sha256"] == sha) & g["success_rate"].notna()])
    if own.empty:
        return None
    r = own.sort_values(["n", "created"], ascending=False).iloc[0]
    return (r["attack"], int(r["n_attacked"]), _success(r), r["record"])


def _median(values: list[float]) -> float | None:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else None


def difficulty_sections(df: pd.DataFrame) -> list[Section]:
    """One "Benchmark difficulty" table per dataset, at the L-inf budget where PGD was recorded on the most
    undefended victims (the benchmark's budget; a budget curve on a few victims has its own plots)."""
    best: dict[tuple, tuple[tuple, list[VictimDifficulty]]] = {}
    linf = df[(df["norm"] == "linf")] if not df.empty else df
    for (synthetic, dataset, norm, eps), g in budget_groups(linf, targeted=False):
        rows = victim_difficulty(g)
        held = best.get((synthetic, dataset))
        if rows and (held is None or len(rows) > len(held[1])):  # ties: the smaller budget, seen first
            best[(synthetic, dataset)] = ((synthetic, dataset, norm, eps), rows)
    sections = []
    for (synthetic, dataset, norm, eps), rows in best.values():
        steps = sorted({r.pgd_step for r in rows})
        columns = ["victim", "n", "clean acc. [95% CI]", "PGD success [95% CI]", "strongest white-box (clips)",
                   "strongest success [95% CI]", "fooled as surrogate [95% CI]"]
        section = Section("difficulty", f"Benchmark difficulty, {dataset_label(dataset, bool(synthetic))}: "
                          f"{budget_label(norm, eps, False)}", dataset, bool(synthetic), "white-box", columns)
        section.rules = (
            "How accurate and how fragile the undefended victims are, so a ranking can be read against it: where "
            "victims are near-perfect and unbreakable, every attack looks alike. Clean accuracy and PGD success come "
            "from each victim's PGD record with the most clips (the attack's defaults: " + "; ".join(steps) + "). "
            "Strongest white-box: the most successful white-box attack recorded on the victim, often on fewer clips; "
            "where even it stays low, the victim's robustness comes from the data, not from a weak optimiser. "
            "Fooled as surrogate: I-FGSM crafted on the victim for transfer (its defaults), evaluated on the victim "
            "itself; a surrogate its own attack rarely fools has little to carry over. Last row: the median over victims.")
        for r in rows:
            cells = [Cell(r.victim), Cell(str(r.clips), sort=r.clips), Cell.proportion(*r.clean),
                     Cell.proportion(*r.pgd, record=r.pgd_record)]
            if r.strongest:
                attack, n, rate, record = r.strongest
                cells += [Cell.link(f"{attack} ({n})", record, sort=attack), Cell.proportion(*rate)]
            else:
                cells += [Cell(""), Cell("")]
            if r.as_surrogate:
                _, _, rate, record = r.as_surrogate
                cells.append(Cell.proportion(*rate, record=record))
            else:
                cells.append(Cell(""))
            tags = {"dataset": [dataset], "threat": ["white-box"], "victim": [r.victim], "attack": ["pgd"]}
            section.rows.append(Row(cells, tags, [r.pgd_record]))
        clean, pgd = _median([r.clean[0] for r in rows]), _median([r.pgd[0] for r in rows])
        surrogate = _median([r.as_surrogate[2][0] for r in rows if r.as_surrogate])
        median = [Cell(f"median of {len(rows)}"), Cell(""), Cell.proportion(clean), Cell.proportion(pgd), Cell(""),
                  Cell(""), Cell.proportion(surrogate)]  # the strongest attacks ran on different clips: no median
        section.rows.append(Row(median, {"dataset": [dataset], "threat": ["white-box"], "victim": [], "attack": []}))
        sections.append(section)
    return sections
