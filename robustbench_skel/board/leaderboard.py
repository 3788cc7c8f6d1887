"""The leaderboard: tables built from run records and nothing else.

One row per victim x attack x defense x dataset within each setting (threat model, norm, budget,
targeted or not); when several records share that key and the same sample set, the newest wins.
The threat model is read from the record (``record["threat"]["model"]``, else the attack's), so a
new kind of record gets its own tables without this module learning its name. Outputs, all in the
results folder: ``leaderboard.csv`` (every row, every column), ``leaderboard.md``, ``leaderboard.tex``
and ``leaderboard.html`` (one page, no external resources), plus the plots they show.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..atomic import write_text_atomic
from .model import CI_STYLES
from .plausibility import plausibility_columns
from .sections import IMPERCEPTIBILITY
from ..errors import UserError
from ..preflight import check_writable_dir, check_writable_file
from ..run.record import scan_records
from ..step_rule import step_label, step_summary

__all__ = ["records_table", "load_results", "build_leaderboard", "FORMATS", "RECORD_NEEDS"]

FORMATS = ("md", "csv", "tex", "html")
# What the tables read from every record beyond the schema's required fields (record_schema.py).
RECORD_NEEDS = ("dataset.split", "samples.id", "samples.label", "samples.clean_pred", "samples.success")
_KEY = ["dataset", "split", "victim", "checkpoint_sha256", "defense", "defense_config", "threat_model", "attack",
        "attack_config", "surrogates", "surrogates_sha256", "pool_sha256", "max_queries", "norm", "eps", "targeted",
        "protocol", "sample_ids_sha256"]


# Options whose default value records written before the option existed implied: left out of the setting's
# hash, so a new record of an unchanged setting still replaces the older one.
_IMPLIED = {("step_rule", "sign"), ("swag", "paper")}


def _options_text(record: dict) -> str | None:
    """``swag=reference``: the options the user set on the attack (``--attack-opt``; those the record's preset
    pins go without saying), which tell two records of one attack apart in words where a hash cannot."""
    from ..run.presets import PRESETS

    options = (record.get("config") or {}).get("attack_options")
    if not isinstance(options, dict) or not options:
        return None
    preset = PRESETS.get(record.get("preset") or "")
    pinned = {} if preset is None else {**preset.attack_options.get("*", {}),
                                        **preset.attack_options.get(record["attack"]["name"], {})}
    own = {k: v for k, v in options.items() if k not in pinned or pinned[k] != v}
    return ", ".join(f"{k}={v}" for k, v in sorted(own.items())) or None


def _short_hash(obj: object) -> str | None:
    """A stable 12-hex digest of a JSON-able setting, so equal settings group together."""
    if not obj:
        return None
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _value(metrics: dict, key: str, field: str = "value"):
    """``metrics[key][field]``, or ``None``; a metric stored as a bare number is its own value."""
    metric = metrics.get(key)
    if isinstance(metric, (int, float)) and not isinstance(metric, bool):
        return metric if field == "value" else None
    return (metric or {}).get(field)


def threat_of(record: dict) -> dict:
    """The record's threat model block; older records only name the model in ``attack.threat_model``."""
    threat = dict(record.get("threat") or {})
    threat.setdefault("model", record["attack"].get("threat_model") or "white-box")
    return threat


def _radius_pairs(certified: dict, suffix: str) -> str | None:
    """``radius:accuracy`` pairs of a certified-accuracy entry (``suffix`` "" for total L2, "_rms" per coordinate)."""
    pairs = zip(certified.get("radii" + suffix, []), certified.get("values" + suffix, []))
    return ";".join(f"{r:g}:{v:.4f}" for r, v in pairs) or None


def _threat_columns(record: dict) -> dict:
    threat, m = threat_of(record), record["metrics"]
    surrogates = threat.get("surrogates") or []
    pool = threat.get("pool") or {}
    adaptive = threat.get("adaptive") or {}
    defense = record.get("defense") or {}
    certified = m.get("certified_accuracy") or {}
    surrogate_rate = m.get("surrogate_success_rate") or {}
    return {
        "threat_model": threat["model"],
        "surrogates": "+".join(s.get("name", "?") for s in surrogates) or None,
        "surrogates_sha256": "+".join(s.get("checkpoint_sha256") or "" for s in surrogates) or None,
        "surrogate_success_rate": surrogate_rate.get("value"),
        "gradient_cosine": (m.get("gradient_alignment") or {}).get("median_cosine"),
        "surrogate_success_ci_low": (surrogate_rate.get("ci95") or [None, None])[0],
        "surrogate_success_ci_high": (surrogate_rate.get("ci95") or [None, None])[1],
        "early_stop": threat.get("early_stop"),
        "pool_split": pool.get("split"),
        "pool_num_clips": pool.get("num_clips"),
        "pool_sha256": pool.get("sha256"),
        "max_queries": threat.get("max_queries"),
        "queries_mean": _value(m, "queries"),
        "queries_median": _value(m, "queries", "median"),
        "queries_max": _value(m, "queries", "max"),
        "median_l2_rms_m": _value(m, "median_l2_rms_m"),
        "adaptive_eot_samples": adaptive.get("eot_samples"),
        "adaptive_bpda": adaptive.get("bpda"),
        "defense_kind": defense.get("kind"),
        "defense_randomized": defense.get("randomized"),
        "defense_differentiable": defense.get("differentiable"),
        "defense_config": _short_hash(defense.get("hyperparameters")),
        "certified_accuracy": _radius_pairs(certified, ""),
        "certified_unit": certified.get("unit"),
        "certified_accuracy_rms": _radius_pairs(certified, "_rms"),
    }


def _row(path: Path, record: dict) -> dict:
    m, attack, ds = record["metrics"], record["attack"], record["dataset"]
    success = m.get("attack_success_rate") or {}
    ci = success.get("ci95") or [None, None]
    clean_ci = _clean_interval(m.get("clean_accuracy"), ds.get("num_evaluated"))
    hyper = {k: v for k, v in (attack.get("hyperparameters") or {}).items()
             if k not in ("seed", "eps", "targeted") and (k, v) not in _IMPLIED}
    row = {
        "dataset": ds["name"],
        "synthetic": bool(ds.get("synthetic")),
        "dataset_version": ds.get("version"),
        "split": ds["split"],
        "victim": record["victim"]["name"],
        "checkpoint_sha256": record["victim"].get("checkpoint_sha256"),
        "defense": (record.get("defense") or {}).get("name") or "none",
        "attack": attack["name"],
        "attack_config": _short_hash(hyper),
        "attack_options": _options_text(record),
        "norm": attack.get("norm"),
        "eps": attack.get("eps"),
        "targeted": bool(attack.get("targeted")),
        "protocol": record.get("preset") or "quick",
        "step": step_label(step_summary(attack)),
        "n": ds.get("num_evaluated"),
        "sample_ids_sha256": ds.get("sample_ids_sha256"),
        "seed": record["seed"],
        "clean_accuracy": _value(m, "clean_accuracy"),
        "clean_ci_low": clean_ci[0],
        "clean_ci_high": clean_ci[1],
        "n_attacked": success.get("n"),
        "success_rate": success.get("value"),
        "success_ci_low": ci[0],
        "success_ci_high": ci[1],
        "robust_accuracy": _value(m, "robust_accuracy"),
        "within_budget": _value(m, "within_budget"),
        "all_within_budget": record.get("flags", {}).get("all_within_budget"),
        "all_finite": record.get("flags", {}).get("all_finite"),
        "sanity": _sanity_summary(record),
        "sweep_id": (record.get("sweep") or {}).get("id"),
        "created": record["created"],
        "record": path.name,
    }
    row.update(_threat_columns(record))
    for key, _, _ in IMPERCEPTIBILITY:
        row[key] = _value(m, key)
    row["max_joint_displacement_cm_worst"] = _value(m, "max_joint_displacement_cm", "max")
    row.update(plausibility_columns(m))  # None throughout for records from before plausibility was measured
    return row


def _clean_interval(metric: object, n: int | None) -> tuple[float | None, float | None]:
    """Clean accuracy's 95% interval: the record's own, else Wilson's from the value and the clips evaluated."""
    if isinstance(metric, dict) and metric.get("ci95") and None not in metric["ci95"]:
        return tuple(metric["ci95"])
    value = metric.get("value") if isinstance(metric, dict) else metric
    if value is None or not n or isinstance(value, bool):
        return None, None
    from ..metrics import wilson_interval  # torch comes with it: only for records without their own interval

    return wilson_interval(round(float(value) * n), n)


def _sanity_summary(record: dict) -> str:
    """``passed/applicable`` over every check in the record, naming the failures: ``3/4 (converged)``."""
    flags = record.get("flags", {})
    checks = {k: v for k, v in flags.items() if v is not None}
    if not checks:
        return "n/a"
    failed = [k.removeprefix("sanity_").removeprefix("all_").replace("_", " ") for k, v in checks.items() if not v]
    text = f"{len(checks) - len(failed)}/{len(checks)}"
    return text + (f" (failed: {', '.join(failed)})" if failed else "")


def _load(results_dir: str | Path, skip_invalid: bool = False) -> tuple[pd.DataFrame, dict[str, dict], list[tuple[Path, str]]]:
    """The records as rows, by file name, and the ones set aside (only with ``skip_invalid``; otherwise
    the first record that breaks the schema is a UserError naming its file and field)."""
    loaded, skipped = scan_records(results_dir, RECORD_NEEDS)
    if skipped and not skip_invalid:
        path, why = skipped[0]
        more = f" ({len(skipped) - 1} more record(s) are invalid too)" if len(skipped) > 1 else ""
        raise UserError(f"{why}{more}; or pass --skip-invalid to build the tables without the invalid records")
    rows = [_row(p, r) for p, r in loaded]
    df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=[*_KEY, "created", "record"])
    return df, {p.name: r for p, r in loaded}, skipped


def load_results(path: str | Path = "results") -> pd.DataFrame:
    """Every record under ``path/runs/`` as one DataFrame row, oldest first, for notebooks: the columns
    of ``leaderboard.csv`` plus the threat-model ones (surrogates, pool, queries, defense kind, ...).
    Unlike the leaderboard, nothing is de-duplicated; a record that breaks the schema is a UserError, and so
    is a path that holds no records (a mistyped path is not an empty benchmark)."""
    df, _, _ = _load(path)
    if df.empty:
        raise UserError(f"no run records in {str(Path(path) / 'runs')!r}; give the results folder that holds runs/*.json")
    return df.sort_values(["created", "record"]).reset_index(drop=True)


def _dedup(df: pd.DataFrame) -> pd.DataFrame:
    """Newest record per key; sorted as the tables read."""
    if df.empty:
        return df
    df = df.sort_values("created", ascending=False).drop_duplicates(subset=_KEY, keep="first")
    order = ["synthetic", "dataset", "threat_model", "norm", "eps", "targeted", "victim", "defense", "success_rate"]
    return df.sort_values(order, na_position="last").reset_index(drop=True)


def records_table(results_dir: str | Path) -> pd.DataFrame:
    """All records as rows, newest first within each key, duplicates removed."""
    return _dedup(_load(results_dir)[0])


def _refuse_mixed_versions(df: pd.DataFrame) -> None:
    """A generated benchmark's versions are different data: one table must never hold two of them."""
    for name, g in df[df["synthetic"]].groupby("dataset"):
        versions = sorted({str(v) for v in g["dataset_version"].dropna()})
        if len(versions) > 1:
            raise UserError(
                f"the records hold {name} versions {', '.join(versions)}: a leaderboard compares one version; "
                "move the other version's records to another --results-dir"
            )


def build_sections(df: pd.DataFrame, records: dict[str, dict], plots_dir: Path | None = None,
                   mix_step_rules: bool = False) -> list:
    """Every section, in reading order: per-setting tables, robust accuracy (ranked, exploratory,
    certified), transfer matrices, decision-based and no-box tables, physical plausibility, the benchmark's
    difficulty, budget curves.
    Plots are drawn only when ``plots_dir`` is given. Transfer matrices hold one step rule each unless
    ``mix_step_rules``. Columns blank in every row of a table are left out."""
    from .difficulty import difficulty_sections
    from .model import Section
    from .plausibility import plausibility_sections, plot_plausibility
    from .plots import plot_budget_curves
    from .robust import robust_sections
    from .sections import decision_sections, nobox_sections, setting_sections
    from .transfer import alignment_sections, transfer_sections

    sections = [*setting_sections(df, records), *robust_sections(df, records),
                *transfer_sections(df, plots_dir, records, mix_step_rules), *alignment_sections(df),
                *decision_sections(df, plots_dir), *nobox_sections(df), *plausibility_sections(df),
                *difficulty_sections(df)]
    curves = plot_budget_curves(df, plots_dir) if plots_dir is not None else []
    if curves:
        synthetic = bool(df["synthetic"].all())
        section = Section("plots", "Success rate against budget", ", ".join(sorted(df["dataset"].unique())), synthetic, "all", [])
        section.plots = [p for p in curves if p.suffix == ".png"]
        sections.append(section)
    from .plots_tradeoff import plot_tradeoff

    tradeoff = plot_tradeoff(df, plots_dir) if plots_dir is not None else []
    if tradeoff:
        section = Section("plots", "Success against imperceptibility (acceleration deviation), per victim",
                          ", ".join(sorted(df["dataset"].unique())), bool(df["synthetic"].all()), "all", [])
        section.plots = tradeoff
        sections.append(section)
    plausible = plot_plausibility(df, plots_dir) if plots_dir is not None else []
    if plausible:
        section = Section("plots", "Success against physical plausibility (plausible share of successful examples)",
                          ", ".join(sorted(df["dataset"].unique())), bool(df["synthetic"].all()), "all", [])
        section.plots = plausible
        sections.append(section)
    from .model import drop_empty_columns

    return [drop_empty_columns(s) for s in sections]


def _parse_formats(formats: str | Iterable[str] | None) -> list[str]:
    if formats is None:
        return list(FORMATS)
    items = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    unknown = [f for f in items if f not in FORMATS]
    if unknown or not items:
        raise UserError(f"unknown leaderboard format {', '.join(unknown) or '(none)'}; choose from {','.join(FORMATS)}")
    return items


def build_leaderboard(results_dir: str | Path, ci_style: str = "brackets",
                      formats: str | Iterable[str] | None = None, mix_step_rules: bool = False,
                      skip_invalid: bool = False, skipped: list[tuple[Path, str]] | None = None,
                      embed_plots: bool = False) -> tuple[list[Path], int]:
    """Write ``leaderboard.{md,csv,tex,html}`` (those in ``formats``, default all) and their plots in
    ``results_dir``; returns the files written and the number of records in the table. Each transfer
    matrix holds records of one step rule (rule, step, iterations) unless ``mix_step_rules``. The HTML page
    links its plots by file name (they are written beside it), or inlines them when ``embed_plots``.

    A record that breaks the schema stops the build with its file and field named, unless
    ``skip_invalid``: then it is left out and ``(path, reason)`` is appended to ``skipped``, for the caller
    to list; nothing is skipped silently."""
    from .html import render_html
    from .latex import render_latex
    from .markdown import render_markdown

    if ci_style not in CI_STYLES:
        raise UserError(f"unknown --ci-style {ci_style!r}; choose from {', '.join(CI_STYLES)}")
    wanted = _parse_formats(formats)
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"--results-dir {str(results_dir)!r} is not a folder of results; point it at the folder holding runs/")
    check_writable_dir(results_dir, "--results-dir")
    for fmt in wanted:
        check_writable_file(results_dir / f"leaderboard.{fmt}", "the leaderboard file")
    raw, records, invalid = _load(results_dir, skip_invalid)
    if skipped is not None:
        skipped.extend(invalid)
    if raw.empty:
        raise UserError(f"no valid run records in {str(results_dir / 'runs')!r}; run `python -m robustbench_skel run` first")
    _refuse_mixed_versions(raw)
    df = _dedup(raw)
    draw = bool({"md", "html", "tex"} & set(wanted))  # each of these shows the plots
    sections = build_sections(df, records, results_dir if draw else None, mix_step_rules)
    written = [p for s in sections for p in s.plots]
    renderers = {
        "md": lambda: render_markdown(sections, ci_style),
        "csv": lambda: df.to_csv(index=False),
        "tex": lambda: render_latex(sections, ci_style),
        "html": lambda: render_html(sections, ci_style, embed_plots),
    }
    for fmt in wanted:
        path = results_dir / f"leaderboard.{fmt}"
        write_text_atomic(path, renderers[fmt](), public=True)
        written.append(path)
    return written, len(df)
