"""Human-readable summaries of run records (the table ``run`` prints)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["format_run_summary", "format_sweep_summary", "format_successful_samples", "fmt_pct", "fmt_num",
           "threat_setting"]

# (label, metric, its scale in the data's unit, the unit shown): displacements are shown in cm when the data
# is in metres ("m" below stands for the data's unit: the record's budget_unit, "frame units" for Kinetics).
_IMPERCEPTIBILITY_ROWS = (
    ("mean joint displacement", "mean_joint_displacement_cm", 0.01, "m"),
    ("max joint displacement", "max_joint_displacement_cm", 0.01, "m"),
    ("L-inf", "linf_m", 1.0, "m"),
    ("L2 (RMS per coordinate)", "l2_rms_m", 1.0, "m"),
    ("bone-length deviation", "bone_length_deviation", 1.0, "%"),
    ("acceleration deviation", "acceleration_deviation", 1.0, "m/s^2"),
    ("jerk deviation", "jerk_deviation", 1.0, "m/s^3"),
)
# Measures whose per-sample values are counts: their worst case is a whole number.
_COUNT_UNITS = ("pair-frames",)
# Sample ids printed after a run (the record holds them all).
_SHOWN_IDS = 8

_PLAUSIBILITY_ROWS = (
    ("joint-angle excess", "joint_angle_excess_deg", "deg"),
    ("frames over joint limits", "joint_angle_violation_frames", "%"),
    ("planted-foot skating", "foot_skating_cm_s", "cm/s"),
    ("ground penetration", "ground_penetration_cm", "cm"),
    ("new limb overlap depth", "self_intersection_depth_cm", "cm"),
    ("new limb overlaps", "self_intersection_count", "pair-frames"),
    ("frames over human speed", "speed_violation_frames", "%"),
)


def fmt_pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def fmt_num(x: float | None, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if unit == "%":
        return f"{100 * x:.2f}%"
    return f"{x:.3g} {unit}".strip()


def threat_setting(attack: dict[str, Any]) -> str:
    norm = {"linf": "L-inf", "l2": "L2"}.get(attack.get("norm"), attack.get("norm"))
    mode = "targeted" if attack.get("targeted") else "untargeted"
    # in the data's unit (metres, or e.g. Kinetics' frame units); bone-scale: a relative length change
    unit = f" {attack.get('budget_unit') or 'm'}" if attack.get("norm") in ("linf", "l2") else ""
    return f"{norm} eps={attack['eps']:g}{unit}, {mode}"


def _quantity(x: float | None, unit: str = "") -> str:
    """A measured value for people: three significant digits, whole numbers from 100 up (no 1.4e+03)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if unit == "%":
        return f"{100 * x:.2f}%"
    text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    return f"{text} {unit}".strip()


def _times(factor: float, value: float | None) -> float | None:
    return None if value is None else factor * value


def _display_unit(data_unit: str, unit: str, scale: float) -> tuple[str, float]:
    """The unit to show a measure in and the factor from its recorded value: cm for a displacement on data in
    metres, else the data's own unit (``m`` in ``unit`` stands for the data's unit)."""
    if not (unit == "m" or unit.startswith("m/")):
        return unit, 1.0
    if data_unit == "m":
        return (("cm", 100 * scale) if unit == "m" else (unit, scale))
    return unit.replace("m", data_unit, 1), scale


def _measure_line(label: str, m: dict[str, Any], unit: str, factor: float = 1.0, count: bool = False) -> str:
    """Mean [95% CI], worst; a measure equal on every example (as printed) is one value, not an interval."""
    value, lo, hi, worst = (_times(factor, v) for v in (m["value"], *m["ci95"], m["max"]))
    # constant at the printed precision (float32 coordinates of metres carry ~1e-7 m of rounding, which
    # is not a spread): one value, not "[1 cm, 1 cm]"
    if None not in (value, lo, hi, worst) and len({_quantity(v, unit) for v in (value, lo, hi, worst)}) == 1:
        return f"{label:<26}{_quantity(value, unit):>14}  (every example)"
    worst_text = f"{worst:.0f} {unit}" if count and worst is not None else _quantity(worst, unit)
    return f"{label:<26}{_quantity(value, unit):>14}  [{_quantity(lo, unit)}, {_quantity(hi, unit)}]  worst {worst_text}"


def _proportion_line(label: str, m: dict[str, Any]) -> str:
    lo, hi = m["ci95"]
    return f"  {label:<26}{fmt_pct(m['value']):>8}  [{fmt_pct(lo)}, {fmt_pct(hi)}]  ({m['count']}/{m['n']})"


def _threat_line(threat: dict[str, Any]) -> str:
    """One line naming what the attack was handed."""
    model = threat["model"]
    if model == "transfer":
        names = "+".join(s["name"] for s in threat.get("surrogates", []))
        return f"transfer from {names} (crafted without the victim; early stop: {threat.get('early_stop', 'none')})"
    if model == "no-box":
        pool = threat.get("pool", {})
        return f"no-box (an unlabelled pool of {pool.get('num_clips', '?')} {pool.get('split', '?')} clips; no model, label or query)"
    if model == "decision-based":
        return f"decision-based (top-1 labels only, at most {threat.get('max_queries')} queries per sample)"
    adaptive = threat.get("adaptive") or {}
    extras = [f"EOT over {adaptive['eot_samples']} draws" if adaptive.get("eot_samples") else "",
              f"BPDA ({adaptive['bpda']})" if adaptive.get("bpda") else ""]
    extras = [e for e in extras if e]
    return "white-box" + (f" (adaptive: {', '.join(extras)})" if extras else "")


def _plausibility_lines(metrics: dict[str, Any]) -> list[str]:
    """The plausibility block: each measure's change against the clean clip, then the plausible share."""
    share = metrics.get("plausible_share")
    if share is None:  # a record written before plausibility was measured
        return []
    lines = ["  physical plausibility of the successful examples: change vs clean, mean [95% CI], worst (tolerance)"]
    for label, key, unit in _PLAUSIBILITY_ROWS:
        m = metrics.get(f"plausibility_{key}")
        if m is None:
            continue
        tol = "" if m.get("tolerance") is None else f" (tol. {_quantity(m['tolerance'], unit)})"
        lines.append("    " + _measure_line(label, m, unit, count=unit in _COUNT_UNITS) + tol)
    for name, reason in (metrics.get("plausibility_skipped") or {}).items():
        lines.append(f"    {name}: not measured ({reason})")
    if share.get("not_measured"):
        lines.append(f"  plausible (all changes within tolerance): n/a ({share['not_measured']})")
    else:
        lines.append(_proportion_line("plausible", share) + "  every change within tolerance")
    return lines


def format_run_summary(record: dict[str, Any]) -> str:
    ds, attack, metrics = record["dataset"], record["attack"], record["metrics"]
    synthetic = " (SYNTHETIC benchmark)" if ds.get("synthetic") else ""
    defense = f" + defense {record['defense']['name']}" if record.get("defense") else ""
    threat = record.get("threat") or {"model": attack.get("threat_model", "white-box")}
    lines = [
        f"{record['victim']['name']}{defense} vs {attack['name']} on {ds['name']}{synthetic} {ds['split']} split, "
        f"{ds['num_evaluated']} samples, {threat_setting(attack)}, seed {record['seed']}, {record['environment']['device']}",
        f"  threat model: {_threat_line(threat)}",
        _proportion_line("clean accuracy", metrics["clean_accuracy"]),
        _proportion_line("transfer success rate" if threat["model"] == "transfer" else "attack success rate", metrics["attack_success_rate"]),
        _proportion_line("robust accuracy", metrics["robust_accuracy"]),
    ]
    if "surrogate_success_rate" in metrics:
        lines.append(_proportion_line("success on the surrogate", metrics["surrogate_success_rate"]))
    if "reference_success_rate" in metrics:
        lines.append(_proportion_line("reference success", metrics["reference_success_rate"]))
    data_unit = ds.get("coordinate_unit") or "m"
    step = attack.get("step")
    if step:
        distance = attack.get("norm") in ("linf", "l2")
        step_unit, step_factor = _display_unit(attack.get("budget_unit") or "m", "m", 1.0) if distance else ("", 1.0)
        lines.append(f"  step rule: {step['rule']}, step {_quantity(step_factor * step['size'], step_unit)}, "
                     f"{step['iterations']} iterations"
                     + (f" (preset {record['preset']})" if record.get("preset") else ""))
    if "bayesian_diagnostic" in metrics:
        d = metrics["bayesian_diagnostic"]
        lines.append(f"  Bayesian term: median cosine with the plain gradient {d['median_cosine']:.3f}, "
                     f"head spread {d['head_spread']:.3g} (n = {d['n']})")
    if "gradient_alignment" in metrics:
        a = metrics["gradient_alignment"]
        lines.append(f"  gradient alignment, surrogate vs victim: median cosine {a['median_cosine']:.3f} "
                     f"(n = {a['n']}; 1 = the same direction, 0 = unrelated)")
    if "queries" in metrics:
        q = metrics["queries"]
        lines.append(f"  queries per attacked sample: mean {q['value']:.0f}, median {q['median']:.0f}, max {q['max']:.0f}")
    lines.append("  imperceptibility of the successful examples: mean [95% CI], worst")
    for label, key, scale, unit in _IMPERCEPTIBILITY_ROWS:
        shown, factor = _display_unit(data_unit, unit, scale)
        lines.append("    " + _measure_line(label, metrics[key], shown, factor))
    lines += _plausibility_lines(metrics)
    wb, fin = metrics["within_budget"], metrics["finite"]
    lost = metrics.get("lost_successes", {}).get("value")
    lost_text = "" if lost is None else f", {lost} adversarial point(s) lost"
    lines.append(f"  budget check: {wb['count']}/{wb['n']} within budget, {fin['count']}/{fin['n']} finite{lost_text}")
    sanity = record.get("sanity")
    if sanity:
        parts = []
        for name, check in sanity["checks"].items():
            mark = {True: "ok", False: "FAILED", None: "n/a"}[check["passed"]]
            detail = f" {fmt_pct(check['success'])}" if "success" in check else ""
            ref = f" vs {fmt_pct(check['reference'])}" if "reference" in check else ""
            message = f" ({check['message']})" if check.get("message") else ""
            parts.append(f"{name.replace('_', ' ')} {mark}{detail}{ref}{message}")
        lines.append(f"  sanity checks on {sanity['subset_size']} attacked samples: " + "; ".join(parts))
    if "breakdown" in metrics:
        parts = [f"{name} {v['count']}" for name, v in metrics["breakdown"].items()]
        lines.append("  samples broken first by: " + ", ".join(parts))
    if "mean_iterations" in metrics:
        gradient = (record.get("threat") or {}).get("model") in ("white-box", "transfer")
        what = "gradient steps" if gradient else "iterations"  # a decision-based or no-box loop takes no gradient
        lines.append(f"  {what} per attacked sample: mean {metrics['mean_iterations']['value']:.2f}")
    lines.append(f"  wall time {record['timing']['wall_time_s']:.1f} s (attack {record['timing']['attack_time_s']:.1f} s)")
    return "\n".join(lines)


def format_successful_samples(record: dict[str, Any], path: Any = None) -> str:
    """The ids of the successful examples (the first few) and where to find all of them, for ``show``."""
    samples = record.get("samples") or {}
    ids = [i for i, ok in zip(samples.get("id", []), samples.get("success", [])) if ok]
    attacked = sum(1 for a in samples.get("attacked", []) if a)
    where = f"{path}" if path else "the record"
    if not ids:
        return f"  successful examples: none of the {attacked} attacked"
    shown = ", ".join(ids[:_SHOWN_IDS]) + (f", ... ({len(ids) - _SHOWN_IDS} more)" if len(ids) > _SHOWN_IDS else "")
    lines = [f"  successful examples ({len(ids)} of {attacked} attacked): {shown}",
             f"    all of them: samples.id where samples.success is true in {where}"]
    record_arg = path or "RECORD"
    if record.get("adversarial"):
        lines.append(f"    see one: python -m robustbench_skel show {record_arg} --sample {ids[0]}")
    else:
        lines.append("    to animate one with `python -m robustbench_skel show RECORD --sample ID`, run with --save-adversarial")
    return "\n".join(lines)


def format_sweep_summary(records: list[dict[str, Any]]) -> str:
    """Success against budget for the records of one sweep."""
    first = records[0]
    unit = first["attack"].get("budget_unit") or "m"
    disp_unit, disp_factor = _display_unit(unit, "m", 0.01)
    lines = [f"budget sweep: {first['victim']['name']} vs {first['attack']['name']} on {first['dataset']['name']}",
             f"  {'eps (' + unit + ')':>12}  {'success':>8}  95% CI            mean disp. ({disp_unit})"]
    previous = None
    for r in records:
        m = r["metrics"]["attack_success_rate"]
        lo, hi = m["ci95"]
        note = "  <- lower than at the smaller budget" if previous is not None and m["value"] < previous else ""
        lines.append(
            f"  {r['attack']['eps']:>12g}  {fmt_pct(m['value']):>8}  [{fmt_pct(lo)}, {fmt_pct(hi)}]"
            f"  {_quantity(_times(disp_factor, r['metrics']['mean_joint_displacement_cm']['value'])):>10}{note}"
        )
        previous = m["value"]
    return "\n".join(lines)
