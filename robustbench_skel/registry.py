"""Name -> plugin registries for attacks, defenses, victims and datasets.

Built-in plugins register with a decorator when their collection package is imported
(``robustbench_skel.attacks`` and friends). Other packages register through the entry-point groups
``robustbench_skel.attacks``, ``robustbench_skel.defenses``, ``robustbench_skel.victims`` and
``robustbench_skel.datasets``: each entry point names a plugin object (a class, or a module whose
import registers plugins with the decorators).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import UserError, suggest

__all__ = ["Registry", "ATTACKS", "DEFENSES", "VICTIMS", "DATASETS", "load_builtin_plugins"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> plugin mapping that fills itself from built-ins and entry points on first use."""

    def __init__(self, kind: str, builtin_module: str | None) -> None:
        self.kind = kind
        self.group = f"robustbench_skel.{kind}s"
        self._builtin_module = builtin_module
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}  # old name -> current name: found by get(), not listed by names()
        self._loaded = False

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Class decorator: ``@ATTACKS.register("pgd")``; the name defaults to the class's ``name``."""

        def decorator(obj: T) -> T:
            key = name or getattr(obj, "name", None)
            if not key:
                raise ValueError(f"{self.kind} plugin {obj!r} has no name")
            existing = self._items.get(key)
            if existing is not None and existing is not obj:
                raise ValueError(f"{self.kind} name {key!r} is registered twice ({existing!r} and {obj!r})")
            self._items[key] = obj
            if getattr(obj, "name", None) != key:
                try:
                    obj.name = key  # type: ignore[attr-defined]
                except (AttributeError, TypeError):
                    pass
            return obj

        return decorator

    def alias(self, old: str, current: str) -> None:
        """Let ``old`` (a name that commands and records of an earlier version used) find ``current``."""
        self._aliases[old] = current

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._builtin_module:
            importlib.import_module(self._builtin_module)
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken third-party plugin must not take the tool down
                log.warning("could not load %s plugin %r from %s: %s", self.kind, ep.name, ep.value, exc)
                continue
            if isinstance(obj, type) and ep.name not in self._items:
                self.register(ep.name)(obj)  # type: ignore[arg-type]

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[self._aliases.get(name, name)]
        except KeyError:
            raise UserError(f"unknown {self.kind} {name!r}; {suggest(name, self._items)}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        self._load()
        return self._aliases.get(name, name) in self._items  # type: ignore[call-overload]


ATTACKS: Registry = Registry("attack", "robustbench_skel.attacks")
DEFENSES: Registry = Registry("defense", "robustbench_skel.defenses")
VICTIMS: Registry = Registry("victim", "robustbench_skel.victims")
DATASETS: Registry = Registry("dataset", "robustbench_skel.datasets")


def load_builtin_plugins() -> None:
    for registry in (ATTACKS, DEFENSES, VICTIMS, DATASETS):
        registry._load()
