"""Named, pinned evaluations: ``--preset standard`` means one fixed protocol, so its numbers compare.

``standard`` (after RobustBench's standardised AutoAttack evaluation): the white-box worst case over
the pinned cascade ``skel-aa-v1`` (``autoattack``: APGD-CE, targeted APGD-DLR, SMART, CIASA, 100
iterations each), untargeted, on every clip of the test split, with the sanity checks on. The user
still picks the victim, dataset, budget, defense, device, batch size and seed; everything the preset
pins is refused when set otherwise. Its ``converged`` check doubles every component's iterations
(``skel-aa-v1`` becomes ``skel-aa-v1-x2``), so the record shows whether 100 iterations were enough.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from .attack import Attack
from .errors import UserError
from .sanity import MORE_ITERATIONS

__all__ = ["Preset", "PRESETS", "apply_preset", "doubled_cascade"]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    pinned: dict[str, Any] = field(default_factory=dict)  # RunConfig field -> value
    min_sanity_samples: int = 16


PRESETS: dict[str, Preset] = {
    "standard": Preset(
        name="standard",
        description="worst case over the pinned white-box cascade skel-aa-v1 (autoattack) on the full test split",
        pinned={"attack": "autoattack", "attack_options": {"version": "skel-aa-v1"}, "n_samples": "all",
                "split": None, "targeted": False, "steps": None, "step_size": None, "surrogates": None,
                "early_stop": None},
    ),
}


def _flag(name: str) -> str:
    return {"attack_options": "--attack-opt", "surrogates": "--surrogate"}.get(name, "--" + name.replace("_", "-"))


def apply_preset(config: Any) -> Any:
    """``config`` (a RunConfig) with its preset's pinned fields; a field set otherwise by the user is an error."""
    if not config.preset:
        return config
    if config.preset not in PRESETS:
        raise UserError(f"unknown --preset {config.preset!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS[config.preset]
    defaults = {f.name: (f.default_factory() if callable(f.default_factory) else f.default) for f in fields(config)}
    for name, value in preset.pinned.items():
        given = getattr(config, name)
        if given != value and given != defaults[name]:
            raise UserError(f"--preset {preset.name} pins {_flag(name)} to {value!r}; drop {_flag(name)} {given!r} "
                            "(or drop --preset to run your own settings)")
    if config.sanity_samples < preset.min_sanity_samples:
        raise UserError(f"--preset {preset.name} runs the sanity checks on at least {preset.min_sanity_samples} samples; "
                        f"drop --sanity-samples {config.sanity_samples}")
    return replace(config, **preset.pinned)


def doubled_cascade(attack: Attack) -> Attack:
    """The cascade ``attack`` runs, with every component's iterations doubled (registered as ``<version>-x2``)."""
    from robustbench_skel.attacks.autoattack import CASCADES

    version = attack.hyperparameters()["version"]
    name = f"{version}-x2"
    if name not in CASCADES:
        norm, components = CASCADES[version]
        CASCADES[name] = (norm, tuple(
            (component, {**params, **({"steps": 2 * params["steps"]} if isinstance(params.get("steps"), int) else {})}, top)
            for component, params, top in components
        ))
    return type(attack)(**{**attack.hyperparameters(), "version": name})


MORE_ITERATIONS["autoattack"] = doubled_cascade
