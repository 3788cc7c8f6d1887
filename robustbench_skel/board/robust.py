"""Robust accuracy, RobustBench style: ranked only on a strong protocol, per sample the worst case.

A test clip counts as robust for a victim (+ defense) only if it is classified correctly and no attack
of any threat model, in any record with the same victim, checkpoint, defense, dataset, sample set and
budget, broke it (the evaluator's per-sample ``success``). Two attacks that break different clips
together leave fewer robust clips than either alone; that is the point of the table.

Ranking rules (after RobustBench, which ranks only entries evaluated with its standard AutoAttack): an
entry is *ranked* only when one of its records was made with a strong protocol (:func:`strong_protocol`:
the ``standard`` preset, or the ``autoattack`` cascade, white-box and untargeted, on at least
:data:`MIN_STRONG_CLIPS` clips). Whatever else was run on the same clips (adaptive, transfer, no-box,
decision-based attacks) joins its worst case, since it can only lower the figure. Every other entry
goes to an *exploratory* table that is never ranked: a weak attack on a few clips says little about
robustness, and in a ranking it would read as the most robust model. Certified accuracy (randomized
smoothing's certificate) has a table of its own, as it does not depend on the attack budget.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .model import Cell, Row, Section, attack_label, budget_label, dataset_label, is_missing
from .sections import budget_groups
from ..metrics import wilson_interval

__all__ = ["worst_case", "robust_sections", "strong_protocol", "MIN_STRONG_CLIPS", "RANKING_RULES"]

_ROW_KEY = ["victim", "checkpoint_sha256", "defense", "defense_config", "split", "sample_ids_sha256"]
_MODEL_KEY = ["victim", "checkpoint_sha256", "defense", "defense_config"]
MIN_STRONG_CLIPS = 64  # the autoattack cascade on fewer clips is too noisy to rank (a 95% CI over 20 points wide)
STRONG_ATTACK = "autoattack"

RANKING_RULES = (
    "Ranking rules: a victim (its weights and defense) is ranked at a budget only if evaluated with a strong protocol: "
    f"the standard preset, or the {STRONG_ATTACK} cascade (white-box, untargeted, with EOT against a randomized "
    f"defense) on at least {MIN_STRONG_CLIPS} clips. Its robust accuracy is the per-clip worst case over every record on those clips (the strong one plus any "
    "adaptive, transfer, no-box or decision-based attack run there), with its 95% Wilson interval; one row per victim "
    "(the standard preset's clips, else the most clips). Everything else is exploratory and never ranked: weaker "
    "attacks or fewer clips can only overstate robustness."
)


def worst_case(records: list[dict]) -> dict:
    """Per-sample worst case over ``records`` (all on one sample set): clean and robust counts, and how
    many clips each record broke. Samples are matched by id, so record order does not matter."""
    ids = list(records[0]["samples"]["id"])
    clean = np.ones(len(ids), dtype=bool)
    broken = np.zeros(len(ids), dtype=bool)
    broke = []
    for record in records:
        s = record["samples"]
        index = {sid: i for i, sid in enumerate(s["id"])}
        order = [index[sid] for sid in ids]  # KeyError would mean a different sample set: excluded by the key
        label = np.array([s["label"][i] for i in order])
        clean &= np.array([s["clean_pred"][i] for i in order]) == label
        success = np.array([bool(s["success"][i]) for i in order])
        broken |= success
        broke.append(int(success.sum()))
    robust = clean & ~broken
    return {"n": len(ids), "clean": int(clean.sum()), "robust": int(robust.sum()), "broke": broke}


def _threat_model(record: dict) -> str:
    return (record.get("threat") or {}).get("model") or record["attack"].get("threat_model") or "white-box"


def _clips(record: dict) -> int:
    n = record["dataset"].get("num_evaluated")
    return int(n) if n is not None else len(record["samples"]["id"])


def strong_protocol(record: dict) -> str | None:
    """The strong protocol ``record`` was made with (``standard``, ``autoattack skel-aa-v1``), or ``None``."""
    if record.get("preset") == "standard":
        return "standard"
    attack = record["attack"]
    if (attack["name"] == STRONG_ATTACK and not attack.get("targeted") and _threat_model(record) == "white-box"
            and _clips(record) >= MIN_STRONG_CLIPS and not _single_draw_against_randomness(record)):
        version = (attack.get("hyperparameters") or {}).get("version")
        return f"{STRONG_ATTACK} {version}" if version else STRONG_ATTACK
    return None


def _single_draw_against_randomness(record: dict) -> bool:
    """A randomized defense attacked without EOT: each gradient from one random draw, which overstates robustness."""
    defense = record.get("defense") or {}
    return bool(defense.get("randomized")) and int(record["attack"].get("eot_samples") or 1) <= 1


def _why_not_ranked(records: list[dict]) -> str:
    """Why no record of an entry is strong, in a few words."""
    cascades = [r for r in records if r["attack"]["name"] == STRONG_ATTACK]
    if not cascades:
        return f"no {STRONG_ATTACK} or standard-preset record"
    if all(r["attack"].get("targeted") for r in cascades):
        return f"{STRONG_ATTACK} only targeted"
    if all(_threat_model(r) != "white-box" for r in cascades):
        return f"{STRONG_ATTACK} not white-box"
    if all(_single_draw_against_randomness(r) for r in cascades):
        return f"{STRONG_ATTACK} without EOT against a randomized defense"
    return f"{STRONG_ATTACK} on {max(_clips(r) for r in cascades)} clips (< {MIN_STRONG_CLIPS})"


def _provenance(record: dict) -> str:
    """Where the clips come from: ``synth 2.0 test: first 64 of a fixed permutation (seed 0) of the split; ids bb4d42df``."""
    ds = record["dataset"]
    version = "" if ds.get("version") is None else f" {ds['version']}"
    selection = ds.get("sample_selection") or "selection not recorded"
    ids = ds.get("sample_ids_sha256")
    return f"{ds['name']}{version} {ds.get('split', '?')}: {selection}" + (f"; ids {str(ids)[:8]}" if ids else "")


def _certified(records: list[dict]) -> dict[tuple[float, str], float]:
    """``{(radius, unit): certified accuracy}`` over the records that carry it (newest first wins)."""
    out: dict[tuple[float, str], float] = {}
    for record in records:
        cert = record["metrics"].get("certified_accuracy") or {}
        unit = cert.get("unit") or ""
        for radius, value in zip(cert.get("radii", []), cert.get("values", [])):
            out.setdefault((float(radius), unit), value)
        for radius, value in zip(cert.get("radii_rms", []), cert.get("values_rms", [])):  # RMS per coordinate
            out.setdefault((float(radius), f"{unit} RMS".strip()), value)
    return out


def _attack_label(r: pd.Series) -> str:
    """``pgd``, ``mifgsm@agcn`` (transfer), ``pgd (targeted)``, ``pgd (adaptive)``: enough to tell a row's records apart."""
    label = attack_label(r["attack"], r.get("surrogates"))
    adaptive = not (is_missing(r.get("adaptive_eot_samples")) and is_missing(r.get("adaptive_bpda")))
    return label + (" (targeted)" if r["targeted"] else "") + (" (adaptive)" if adaptive else "")


def _victim_names(entries: list[dict]) -> None:
    """Name each entry's victim; one name with several checkpoints gets the checkpoint's short hash."""
    shas: dict[str, set] = {}
    for e in entries:
        shas.setdefault(e["victim"], set()).add(str(e["checkpoint"]))
    for e in entries:
        e["label"] = e["victim"] if len(shas[e["victim"]]) <= 1 else f"{e['victim']} ({str(e['checkpoint'])[:6]})"


def _entries(g: pd.DataFrame, records: Mapping[str, dict]) -> list[dict]:
    """One entry per victim + weights + defense + clip set: the worst case over its records."""
    entries = []
    for _, rg in g.groupby(_ROW_KEY, sort=True, dropna=False):
        rg = rg.sort_values("created", ascending=False)
        recs = [records[name] for name in rg["record"]]
        wc = worst_case(recs)
        strong = [p for p in (strong_protocol(r) for r in recs) if p]
        first = rg.iloc[0]
        entries.append({
            "victim": first["victim"], "checkpoint": first["checkpoint_sha256"], "defense": first["defense"],
            "model": tuple(str(first[k]) for k in _MODEL_KEY), "rg": rg, "wc": wc, "created": first["created"],
            "protocol": "standard" if "standard" in strong else (strong[0] if strong else None),
            "why": None if strong else _why_not_ranked(recs), "clips": _provenance(recs[0]),
        })
    _victim_names(entries)
    return entries


def _split_ranked(entries: list[dict]) -> tuple[list[dict], list[dict]]:
    """The ranked entries (one per victim + weights + defense: the standard preset, else the most clips, else the
    newest) and the rest, each of which says why it is not ranked."""
    best: dict[tuple, dict] = {}
    for e in entries:
        if e["protocol"] is None:
            continue
        key = (e["protocol"] == "standard", e["wc"]["n"], e["created"])
        held = best.get(e["model"])
        if held is None or key > (held["protocol"] == "standard", held["wc"]["n"], held["created"]):
            best[e["model"]] = e
    ranked = list(best.values())
    chosen = {id(e) for e in ranked}
    rest = [e for e in entries if id(e) not in chosen]
    for e in rest:
        if e["why"] is None:
            e["why"] = "another clip set of this model is ranked"
    return ranked, rest


def _common_cells(e: dict) -> tuple[list[Cell], list[Cell]]:
    """(clean and robust accuracy with their intervals) and (broke most, attacks combined, records) of an entry."""
    wc, rg = e["wc"], e["rg"]
    n = wc["n"]
    clean = Cell.proportion(wc["clean"] / n if n else None, *wilson_interval(wc["clean"], n))
    robust = Cell.proportion(wc["robust"] / n if n else None, *wilson_interval(wc["robust"], n))
    best = int(np.argmax(wc["broke"]))
    broke_most = rg.iloc[best]
    tail = [Cell.link(f"{broke_most['attack']} ({wc['broke'][best]})", broke_most["record"], sort=wc["broke"][best]),
            Cell(str(len(rg)), sort=len(rg)),
            Cell(sort=len(rg), links=tuple((_attack_label(r), r["record"]) for _, r in rg.iterrows()))]
    return [clean, robust], tail


def _row(e: dict, cells: list[Cell], dataset: str) -> Row:
    rg = e["rg"]
    tags = {"dataset": [dataset], "threat": sorted(set(rg["threat_model"])), "victim": [e["victim"]],
            "attack": sorted(set(rg["attack"]))}
    return Row(cells, tags, list(rg["record"]))


def _ranked_section(ranked: list[dict], dataset: str, synthetic: bool, norm, eps) -> Section:
    columns = ["rank", "victim", "defense", "protocol", "n", "clips", "clean acc. [95% CI]", "robust acc. [95% CI]",
               "broke most", "attacks combined", "records"]
    section = Section("robust", f"Robust accuracy, ranked (strong protocol), {dataset_label(dataset, synthetic)}: "
                      f"{budget_label(norm, eps)}", dataset, synthetic, "all", columns)
    section.rules = RANKING_RULES
    section.notes += ["Broke most: the attack that broke the most clips on its own; clean-misclassified clips are never robust."]
    ranked.sort(key=lambda e: (-e["wc"]["robust"] / max(e["wc"]["n"], 1), e["label"], str(e["defense"])))
    rank, previous = 0, None
    for i, e in enumerate(ranked, 1):
        share = e["wc"]["robust"] / max(e["wc"]["n"], 1)
        if share != previous:  # equal robust accuracy, equal rank ("1, 2, 2, 4")
            rank, previous = i, share
        rates, tail = _common_cells(e)
        cells = [Cell(str(rank), sort=rank), Cell(e["label"]), Cell(e["defense"]), Cell(e["protocol"]),
                 Cell(str(e["wc"]["n"]), sort=e["wc"]["n"]), Cell(e["clips"]), *rates, *tail]
        section.rows.append(_row(e, cells, dataset))
    return section


def _exploratory_section(rest: list[dict], dataset: str, synthetic: bool, norm, eps, any_ranked: bool) -> Section:
    columns = ["victim", "defense", "n", "clips", "why not ranked", "clean acc. [95% CI]", "robust acc. [95% CI]",
               "broke most", "attacks combined", "records"]
    section = Section("robust", f"Robust accuracy, exploratory (not ranked), {dataset_label(dataset, synthetic)}: "
                      f"{budget_label(norm, eps)}", dataset, synthetic, "all", columns)
    if not any_ranked:
        section.notes.append("No entry at this budget was evaluated with a strong protocol, so nothing here is ranked.")
    section.rules = RANKING_RULES
    section.notes.append("Exploratory rows are listed by victim, defense and clips, not by robustness.")
    rest.sort(key=lambda e: (e["label"], str(e["defense"]), -e["wc"]["n"]))
    for e in rest:
        rates, tail = _common_cells(e)
        cells = [Cell(e["label"]), Cell(e["defense"]), Cell(str(e["wc"]["n"]), sort=e["wc"]["n"]), Cell(e["clips"]),
                 Cell(e["why"]), *rates, *tail]
        section.rows.append(_row(e, cells, dataset))
    return section


def certified_sections(df: pd.DataFrame, records: Mapping[str, dict]) -> list[Section]:
    """Certified accuracy per dataset: a row per victim + weights + defense + clip set that carries a
    certificate, a column per radius (total L2, then RMS per coordinate). A certificate does not depend
    on the attack budget, so each is read once, from the newest record that holds it."""
    if "certified_accuracy" not in df.columns:
        return []
    cert = df[df["certified_accuracy"].notna() | df["certified_accuracy_rms"].notna()]
    sections = []
    for (synthetic, dataset), g in cert.groupby(["synthetic", "dataset"], sort=True):
        entries = []
        for _, rg in g.groupby(_ROW_KEY, sort=True, dropna=False):
            rg = rg.sort_values("created", ascending=False)
            recs = [records[name] for name in rg["record"]]
            first = rg.iloc[0]
            entries.append({"victim": first["victim"], "checkpoint": first["checkpoint_sha256"], "defense": first["defense"],
                            "rg": rg, "values": _certified(recs), "clips": _provenance(recs[0]), "n": _clips(recs[0])})
        _victim_names(entries)
        radii = sorted({k for e in entries for k in e["values"]}, key=lambda k: (k[1], k[0]))  # by unit, then radius
        columns = ["victim", "defense", "n", "clips", *[f"certified @ {r:g}{(' ' + u) if u else ''}" for r, u in radii],
                   "records"]
        section = Section("certified", f"Certified accuracy, {dataset_label(dataset, synthetic)}", dataset, bool(synthetic),
                          "all", columns)
        section.notes.append("Certified accuracy: the share of clean clips whose prediction the defense certifies as "
                             "constant within each radius (randomized smoothing's CERTIFY; total L2 radius in metres, "
                             "RMS: per coordinate), whatever the attack; it does not rank the robust-accuracy tables.")
        for e in sorted(entries, key=lambda e: (e["label"], str(e["defense"]))):
            cells = [Cell(e["label"]), Cell(e["defense"]), Cell(str(e["n"]), sort=e["n"]), Cell(e["clips"])]
            cells += [Cell.proportion(e["values"].get(k)) if k in e["values"] else Cell("", sort=None) for k in radii]
            rg = e["rg"]
            cells.append(Cell(sort=len(rg), links=tuple((_attack_label(r), r["record"]) for _, r in rg.iterrows())))
            tags = {"dataset": [dataset], "threat": sorted(set(rg["threat_model"])), "victim": [e["victim"]],
                    "attack": sorted(set(rg["attack"]))}
            section.rows.append(Row(cells, tags, list(rg["record"])))
        sections.append(section)
    return sections


def robust_sections(df: pd.DataFrame, records: Mapping[str, dict]) -> list[Section]:
    """Per dataset x budget: the ranked table (strong protocol only) and the exploratory one; then the
    certified-accuracy tables."""
    sections = []
    for (synthetic, dataset, norm, eps), g in budget_groups(df, targeted=False):
        if is_missing(eps):  # minimum-norm runs have no budget to be robust within
            continue
        ranked, rest = _split_ranked(_entries(g, records))
        if ranked:
            sections.append(_ranked_section(ranked, dataset, bool(synthetic), norm, eps))
        if rest:
            sections.append(_exploratory_section(rest, dataset, bool(synthetic), norm, eps, bool(ranked)))
    return sections + certified_sections(df, records)
