"""A run's attack and its threat model, built from its :class:`~robustbench_skel.run.config.RunConfig`.

Shared by the runner and by the checks that refuse a configuration before any work (``run_checks``).
"""

from __future__ import annotations

from dataclasses import replace

from ..attack import Attack, ThreatModel
from ..errors import UserError
from ..hparams import accepted_arguments
from ..registry import ATTACKS
from ..step_rule import transfer_step_size
from .config import RunConfig

__all__ = ["build_attack", "with_transfer_step", "effective_threat_model"]


def build_attack(config: RunConfig, layout: str | None = None) -> Attack:
    """The configured attack; an attack that takes a ``layout`` gets the dataset's unless told otherwise."""
    cls = ATTACKS.get(config.attack)
    accepted = set(accepted_arguments(cls))
    given = {
        "eps": config.eps,
        "steps": config.steps,
        "step_size": config.step_size,
        "targeted": config.targeted or None,
        "seed": config.seed,
        **config.attack_options,
    }
    kwargs = {}
    for key, value in given.items():
        if value is None:
            continue
        if key not in accepted:
            flag = f"--attack-opt {key}=..." if key in config.attack_options else "--" + key.replace("_", "-")
            raise UserError(f"attack {config.attack!r} has no {flag} option; its options: {', '.join(sorted(accepted))}")
        kwargs[key] = value
    if layout is not None and "layout" in accepted and "layout" not in kwargs:
        kwargs["layout"] = layout
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # e.g. a text --attack-opt value where a number belongs
        raise UserError(f"attack {config.attack!r}: bad option value ({exc})") from None


def with_transfer_step(attack: Attack, config: RunConfig, layout: str | None = None, whole_budget: bool = False) -> Attack:
    """A transfer run's gradient attack with the suite's shared step (:func:`transfer_step_size`: eps / T for
    ``sign``, eps for ``mean-abs``; ``whole_budget``: eps for both, the TASAR reference's), unless the user gave
    the step size; other attacks are returned as they are."""
    params = attack.hyperparameters()
    if "step_rule" not in params or not isinstance(params.get("steps"), int):
        return attack
    if config.step_size is not None or "step_size" in config.attack_options:
        return attack
    size = attack.eps if whole_budget else transfer_step_size(params["step_rule"], attack.eps, params["steps"])
    if size == params["step_size"]:
        return attack
    return build_attack(replace(config, step_size=size), layout)


def effective_threat_model(attack: Attack, surrogates: list[str] | None) -> ThreatModel:
    """The threat model a run uses: the attack's own, or transfer when it is handed surrogates."""
    declared = attack.threat_model
    if surrogates:
        if declared not in (ThreatModel.WHITE_BOX, ThreatModel.TRANSFER):
            raise UserError(f"attack {attack.name!r} is {declared.value}: it uses no surrogate; drop --surrogate")
        return ThreatModel.TRANSFER
    if declared is ThreatModel.TRANSFER:
        raise UserError(f"attack {attack.name!r} is a transfer attack: name its surrogate(s) with --surrogate stgcn[,ctrgcn,...]")
    return declared
