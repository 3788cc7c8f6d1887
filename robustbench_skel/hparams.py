"""Reading a plugin's constructor arguments back, so every run records its exact configuration."""

from __future__ import annotations

import enum
import inspect
from typing import Any

__all__ = ["constructor_arguments", "accepted_arguments"]


def accepted_arguments(cls: type) -> list[str]:
    # *args / **kwargs are not hyperparameters (a plugin without its own __init__ inherits object's)
    return [n for n, p in inspect.signature(cls.__init__).parameters.items()
            if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def constructor_arguments(obj: Any) -> dict[str, Any]:
    """``{name: value}`` for every ``__init__`` parameter; each must be stored on ``obj`` under its name."""
    params = {}
    for name in accepted_arguments(type(obj)):
        value = getattr(obj, name)
        params[name] = value.value if isinstance(value, enum.Enum) else value
    return params
