"""Named, pinned evaluations: ``--preset standard`` means one fixed protocol, so its numbers compare.

``standard`` (after RobustBench's standardised AutoAttack evaluation): the white-box worst case over
the pinned cascade ``skel-aa-v1`` (``autoattack``: APGD-CE, targeted APGD-DLR, SMART, CIASA, 100
iterations each), untargeted, on every clip of the test split, with the sanity checks on. The user
still picks the victim, dataset, budget, defense, device, batch size and seed; everything the preset
pins is refused when set otherwise. Its ``converged`` check doubles every component's iterations
(``skel-aa-v1`` becomes ``skel-aa-v1-x2``), so the record shows whether 100 iterations were enough.

``tasar-paper``: the transfer protocol of the TASAR reference code (Diao et al., ICLR 2025; see
``attacks/tasar.py`` for where this suite otherwise departs from it), for reproducing its tables:
200 iterations; steps of the whole budget (``step_size = eps``) with the mean-abs rule
``eps * g / mean|g|`` for every gradient attack, except DIM, ENS and SVRE, which the reference steps
with ``eps * sign(g)``; the batch stops together once the surrogate(s) misclassify every clip of it
(``--early-stop batch``); TASAR with 3 heads x 20 samples, scale 1.5, weights 0.8 / 0.2 on the
Bayesian and temporal terms, and the Bayesian gradient summed over the iterations
(``accumulate=true``); BA averaging 3 weight samples per iteration (``n_models=3``). It needs a
transfer run (``--surrogate``). Records under it report, besides this suite's success (over the clips
the victim classifies correctly), the reference's: over every clip the reference would have crafted
(the clips the surrogate classifies correctly), a victim misclassification counting as success
(``metrics.reference_success_rate``). Left to the user, and recorded: the victim, surrogates, data,
budget, clips, batch size (the batch stop depends on it; the reference used 16, 8 for TASAR), seed,
and options the preset does not pin (``--attack-opt swag=reference`` for the reference's SWAG
bookkeeping). Not reproduced: the reference's MI-FGSM decay of 0.1 on raw gradients (MI-FGSM keeps
the paper's momentum) and its bugs (``attacks/tasar.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..attack import Attack
from ..errors import UserError
from .sanity import MORE_ITERATIONS

__all__ = ["Preset", "PRESETS", "apply_preset", "pinned_attack_options", "doubled_cascade"]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    pinned: dict[str, Any] = field(default_factory=dict)  # RunConfig field -> value
    min_sanity_samples: int = 16
    # Attack options pinned per attack name ("*": every attack that accepts the option), merged into the
    # user's --attack-opt values (options the preset does not pin stay the user's).
    attack_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    threat_model: str | None = None  # the threat model the preset is for (None: any)
    step_is_eps: bool = False  # every gradient attack steps the whole budget (step_size = eps)
    reference_success: bool = False  # also report the TASAR reference's success (over every crafted clip)


PRESETS: dict[str, Preset] = {
    "standard": Preset(
        name="standard",
        description="worst case over the pinned white-box cascade skel-aa-v1 (autoattack) on the full test split",
        pinned={"attack": "autoattack", "attack_options": {"version": "skel-aa-v1"}, "n_samples": "all",
                "split": None, "targeted": False, "steps": None, "step_size": None, "surrogates": None,
                "early_stop": None},
    ),
    "tasar-paper": Preset(
        name="tasar-paper",
        description="the TASAR reference code's transfer protocol: 200 iterations, mean-abs steps of eps (sign for "
                    "dim/ens/svre), batch early stop, TASAR 3 heads x 20 samples with accumulated Bayesian gradient",
        pinned={"steps": 200, "step_size": None, "early_stop": "batch"},
        min_sanity_samples=0,
        attack_options={
            "*": {"step_rule": "mean-abs"},
            "dim": {"step_rule": "sign"}, "ens": {"step_rule": "sign"}, "svre": {"step_rule": "sign"},
            "tasar": {"heads": 3, "samples": 20, "scale": 1.5, "bayes_weight": 0.8, "temporal": True, "accumulate": True},
            "ba": {"n_models": 3, "scale": 1.5},
        },
        threat_model="transfer",
        step_is_eps=True,
        reference_success=True,
    ),
}


def pinned_attack_options(preset: Preset, attack: str) -> dict[str, Any]:
    """The attack options ``preset`` pins for ``attack`` (those of ``*`` only where the attack accepts them)."""
    from ..hparams import accepted_arguments
    from ..registry import ATTACKS

    accepted = set(accepted_arguments(ATTACKS.get(attack)))
    options = {k: v for k, v in preset.attack_options.get("*", {}).items() if k in accepted}
    options.update(preset.attack_options.get(attack, {}))
    return options


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
    config = replace(config, **preset.pinned)
    if not preset.attack_options:
        return config
    options = dict(config.attack_options)
    for key, value in pinned_attack_options(preset, config.attack).items():
        if key in options and options[key] != value:
            raise UserError(f"--preset {preset.name} pins --attack-opt {key}={value!r} for {config.attack}; drop "
                            f"--attack-opt {key}={options[key]!r} (or drop --preset to run your own settings)")
        options[key] = value
    return replace(config, attack_options=options)


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
