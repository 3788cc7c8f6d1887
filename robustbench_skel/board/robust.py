"""Robust accuracy, RobustBench style: per sample, the worst case over every attack run.

A test clip counts as robust for a victim (+ defense) only if it is classified correctly and no attack
of any threat model, in any record with the same victim, checkpoint, defense, dataset, sample set and
budget, broke it (the evaluator's per-sample ``success``). Two attacks that break different clips
together leave fewer robust clips than either alone; that is the point of the table.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .model import Cell, Row, Section, budget_label, dataset_label, is_missing
from .sections import budget_groups
from ..metrics import wilson_interval

__all__ = ["worst_case", "robust_sections"]

_ROW_KEY = ["victim", "checkpoint_sha256", "defense", "defense_config", "split", "sample_ids_sha256"]


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
    label = r["attack"] + ("" if is_missing(r.get("surrogates")) else f"@{r['surrogates']}")
    adaptive = not (is_missing(r.get("adaptive_eot_samples")) and is_missing(r.get("adaptive_bpda")))
    return label + (" (targeted)" if r["targeted"] else "") + (" (adaptive)" if adaptive else "")


def robust_sections(df: pd.DataFrame, records: Mapping[str, dict]) -> list[Section]:
    """One table per dataset x budget: a row per victim + defense, sorted by robust accuracy."""
    sections = []
    for (synthetic, dataset, norm, eps), g in budget_groups(df, targeted=False):
        if is_missing(eps):  # minimum-norm runs have no budget to be robust within
            continue
        entries = []
        for _, rg in g.groupby(_ROW_KEY, sort=True, dropna=False):
            rg = rg.sort_values("created", ascending=False)
            recs = [records[name] for name in rg["record"]]
            wc = worst_case(recs)
            low, high = wilson_interval(wc["robust"], wc["n"])
            best = int(np.argmax(wc["broke"]))
            first = rg.iloc[0]
            # a standard evaluation stays standard when more attacks are added: they can only lower the figure
            protocol = "standard" if (rg["protocol"] == "standard").any() else "quick"
            entries.append((protocol, wc, (low, high), rg, best, _certified(recs), first))
        radii = sorted({k for e in entries for k in e[5]}, key=lambda k: (k[1], k[0]))  # by unit, then radius
        columns = ["victim", "defense", "protocol", "n", "clean acc.", "robust acc. [95% CI]", "broke most",
                   "attacks combined", *[f"certified @ {r:g}{(' ' + u) if u else ''}" for r, u in radii], "records"]
        section = Section("robust", f"Robust accuracy, {dataset_label(dataset, synthetic)}: {budget_label(norm, eps)}",
                          dataset, bool(synthetic), "all", columns)
        section.notes += [
            "Robust accuracy: the share of evaluated clips classified correctly and broken by no attack, of any threat "
            "model, at this budget (per-clip worst case over the records listed); its 95% Wilson interval.",
            "Clean-misclassified clips are never robust. Broke most: the attack that broke the most clips on its own.",
        ]
        entries.sort(key=lambda e: (e[0] != "standard", -e[1]["robust"] / max(e[1]["n"], 1), e[6]["victim"]))
        for protocol, wc, (low, high), rg, best, cert, first in entries:
            n = wc["n"]
            broke_most = rg.iloc[best]
            cells = [Cell(first["victim"]), Cell(first["defense"]), Cell(protocol), Cell(str(n), sort=n),
                     Cell.proportion(wc["clean"] / n if n else None),
                     Cell.proportion(wc["robust"] / n if n else None, low, high),
                     Cell.link(f"{broke_most['attack']} ({wc['broke'][best]})", broke_most["record"], sort=wc["broke"][best]),
                     Cell(str(len(rg)), sort=len(rg))]
            cells += [Cell.proportion(cert.get(k)) if k in cert else Cell("", sort=None) for k in radii]
            cells.append(Cell(sort=len(rg), links=tuple((_attack_label(r), r["record"]) for _, r in rg.iterrows())))
            tags = {"dataset": [dataset], "threat": sorted(set(rg["threat_model"])), "victim": [first["victim"]],
                    "attack": sorted(set(rg["attack"]))}
            section.rows.append(Row(cells, tags, list(rg["record"])))
        sections.append(section)
    return sections
