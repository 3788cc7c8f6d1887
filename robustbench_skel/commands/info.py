"""``info NAME``: what one attack, defense, victim or dataset is, before a user runs it.

An attack or a defense: its hyperparameters with their defaults (read from its constructor, the same
signature the record's ``hyperparameters`` come from) and how to set each, its paper (the first paragraph
of its module's docstring, where every built-in plugin cites it) and what it declares (threat model,
norm, randomized...). A victim: its model card (``victims/<name>.json``): paper, published accuracy,
checkpoint format, input convention and shipped weights. A dataset: ``describe``'s card, without its figure.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from ..errors import UserError, suggest
from ..hparams import accepted_arguments
from ..registry import ATTACKS, DATASETS, DEFENSES, VICTIMS

__all__ = ["describe_name", "describe_attack", "describe_defense", "describe_victim", "describe_dataset_info"]

# Hyperparameters that have their own flag on `run`; every other one is an --attack-opt.
_ATTACK_FLAGS = {"eps": "--eps", "steps": "--steps", "step_size": "--step-size", "targeted": "--targeted", "seed": "--seed"}


def _paper(obj: Any) -> str:
    """The first paragraph of the plugin's module docstring (built-in plugins cite their paper there)."""
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    doc = inspect.getdoc(module) if module is not None else None
    if not doc:
        return "(not stated by the plugin)"
    return " ".join(doc.split("\n\n")[0].split())


def _source(obj: Any) -> str:
    module = getattr(obj, "__module__", "") or ""
    return module.replace("robustbench_skel.", "", 1).replace(".", "/") + ".py" if module.startswith("robustbench_skel.") else module


def _defaults(cls: type) -> list[tuple[str, Any]]:
    """``(name, default)`` for every constructor argument; ``inspect.Parameter.empty`` when it is required."""
    parameters = inspect.signature(cls.__init__).parameters
    return [(name, parameters[name].default) for name in accepted_arguments(cls)]


def _resolved(cls: type) -> dict[str, Any]:
    """The hyperparameters of an instance built with every default (what a default run records), or {}."""
    try:
        return cls().hyperparameters()
    except Exception:  # a plugin that needs an argument, or builds something heavy: the signature still says enough
        return {}


def _table(rows: list[tuple[str, str, str]], header: tuple[str, str, str]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(2)]
    return [f"    {a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in [header, *rows]]


def _value(default: Any, resolved: Any) -> str:
    if default is inspect.Parameter.empty:
        return "(required)"
    text = repr(default.value if hasattr(default, "value") and not isinstance(default, (int, float, str)) else default)
    if default is None and resolved is not None:
        text += f" -> {resolved!r}"
    return text


def describe_attack(name: str) -> str:
    cls = ATTACKS.get(name)
    resolved = _resolved(cls)
    rows = []
    for arg, default in _defaults(cls):
        how = _ATTACK_FLAGS.get(arg, "(the dataset's layout)" if arg == "layout" else f"--attack-opt {arg}=...")
        rows.append((arg, _value(default, resolved.get(arg)), how))
    declared = [f"threat model: {cls.threat_model.value}", f"budget: {cls.norm}"
                + (" in the data's unit (metres for the built-in datasets)" if cls.norm in ("linf", "l2") else f" ({cls.budget_unit})"),
                f"targeted mode: {'yes' if cls.supports_targeted else 'no'}"]
    if cls.threat_model.value == "white-box":
        declared.append(f"EOT against randomized defenses: {'yes' if cls.supports_eot else 'no'}")
    example = {"transfer": f"--attack {name} --surrogate stgcn --victim sgn"}.get(cls.threat_model.value,
                                                                                f"--attack {name} --victim stgcn")
    lines = [f"{name} (attack): {cls.description}", f"  paper: {_paper(cls)}", f"  {'; '.join(declared)}",
             "  hyperparameters (a None default is filled in from the others, -> shows it with every default):"]
    lines += _table(rows, ("name", "default", "set with")) if rows else ["    (none)"]
    lines.append(f"  source: {_source(cls)}; e.g. python -m robustbench_skel run {example}")
    return "\n".join(lines)


def describe_defense(name: str) -> str:
    cls = DEFENSES.get(name)
    resolved = _resolved(cls)
    how = (f"set them when training its weights: defend --defense {name} --defense-opt KEY=VALUE" if cls.kind == "training"
           else "`run --defense` uses these")
    rows = [(arg, _value(default, resolved.get(arg)), "") for arg, default in _defaults(cls)]
    declared = [f"kind: {cls.kind} ({'new weights for the victim' if cls.kind == 'training' else 'wraps the victim'})",
                "randomized (attacked with EOT)" if cls.randomized else "deterministic",
                "differentiable" if cls.differentiable else "not differentiable (attacked through BPDA)"]
    lines = [f"{name} (defense): {cls.description}", f"  paper: {_paper(cls)}", f"  {'; '.join(declared)}",
             f"  hyperparameters with their defaults ({how}):"]
    lines += [f"    {arg:<{max(len(r[0]) for r in rows)}}  {value}" for arg, value, _ in rows] if rows else ["    (none)"]
    lines.append(f"  source: {_source(cls)}; e.g. python -m robustbench_skel run --defense {name} --victim stgcn")
    return "\n".join(lines)


def describe_victim(name: str) -> str:
    from ..victim import model_card

    cls = VICTIMS.get(name)
    card = model_card(name)
    lines = [f"{name} (victim): {cls.description}"]
    if not card:
        lines.append("  (no model card: victims/<name>.json is missing)")
        return "\n".join(lines)
    paper = card.get("paper") or {}
    if paper:
        lines.append(f"  paper: {paper.get('authors', '?')}, \"{paper.get('title', '?')}\", {paper.get('venue', '?')}"
                     + (f", {paper['url']}" if paper.get("url") else ""))
    if card.get("architecture"):
        lines.append(f"  architecture: {card['architecture']}")
    published = card.get("published_accuracy") or []
    if published:
        lines.append("  published top-1 accuracy: " + "; ".join(
            f"{p['dataset']} {p['top1']:.1f}% ({p.get('source', '?')})" for p in published))
    if card.get("input_convention"):
        lines.append(f"  input convention: {card['input_convention']}")
    if card.get("preprocessing"):
        lines.append(f"  preprocessing (inside the model): {card['preprocessing']}")
    lines.append("  checkpoint format: --checkpoint takes a state_dict, {'state_dict': ...} or module.-prefixed keys"
                 + (f"; official checkpoints: {card['official_checkpoints']}" if card.get("official_checkpoints") else ""))
    shipped = card.get("pretrained") or {}
    for dataset, entry in shipped.items():
        accuracy = entry.get("clean_test_accuracy")
        n = entry.get("test_samples")
        lines.append(f"  shipped weights for {dataset}: " + (f"clean test accuracy {100 * accuracy:.1f}%" if accuracy is not None else "")
                     + (f" on {n} clips" if n else "") + (f"; rebuilt with: {entry['command']}" if entry.get("command") else ""))
    if not shipped:
        lines.append("  no shipped weights: pass --checkpoint")
    for defense, by_dataset in (card.get("defended") or {}).items():
        lines.append(f"  shipped {defense} weights for: {', '.join(sorted(by_dataset))}")
    if card.get("parameters"):
        lines.append("  parameters: " + ", ".join(f"{k} {v:,}" for k, v in card["parameters"].items()))
    return "\n".join(lines)


def describe_dataset_info(name: str) -> str:
    from .describe import describe_dataset

    source = DATASETS.get(name)
    text, _ = describe_dataset(name, figure=False)
    first, _, rest = text.partition("\n")
    first = f"{name} (dataset):{first[len(name) + 1:]}" if first.startswith(f"{name}:") else f"{name} (dataset): {first}"
    how = "generated, no download" if not source.needs_path else "read from your files: pass --data-path"
    lines = [first, *(f"  {line}" if line else "" for line in rest.splitlines()),
             f"  splits: {', '.join(source.splits)} (default {source.default_split}); {how}"]
    if source is DATASETS.get("synth"):
        lines.append(f"  the figure of every class: python -m robustbench_skel describe {name}")
    return "\n".join(lines)


def describe_name(name: str) -> str:
    """Every registered plugin called ``name`` (an attack and a victim may share a name), else a UserError."""
    parts = []
    for registry, describe in ((ATTACKS, describe_attack), (DEFENSES, describe_defense), (VICTIMS, describe_victim),
                               (DATASETS, describe_dataset_info)):
        if name in registry:
            parts.append(describe(name))
    if not parts:
        known = ATTACKS.names() + DEFENSES.names() + VICTIMS.names() + DATASETS.names()
        raise UserError(f"no attack, defense, victim or dataset is called {name!r}; {suggest(name, known)} "
                        "(`python -m robustbench_skel list` shows them all)")
    return "\n\n".join(parts)
