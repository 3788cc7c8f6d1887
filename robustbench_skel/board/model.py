"""A leaderboard section as plain data, so Markdown, LaTeX and HTML render the same numbers.

Section builders decide *what* a table says (columns, rows, the records behind each row, the values
the page filters on); renderers decide only *how* it is written. A proportion with its confidence
interval stays a number until a renderer formats it, so ``--ci-style`` is one switch for every format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Cell", "Row", "Section", "CI_STYLES", "fmt_ci", "dataset_label", "budget_label", "is_missing"]

CI_STYLES = ("brackets", "pm")
FILTER_KEYS = ("dataset", "threat", "victim", "attack")


def is_missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


@dataclass(frozen=True)
class Cell:
    """One table cell: plain text, or a proportion with its CI (``ci``) that each renderer formats.

    ``sort`` is what the page sorts on (a number where the column is numeric); ``links`` are
    ``(label, record file name)`` pairs, rendered as links to ``runs/<file>``; ``mark`` is a suffix
    such as ``*`` explained in the section's notes.
    """

    text: str = ""
    sort: float | str | None = None
    ci: tuple[float, float, float] | None = None
    links: tuple[tuple[str, str], ...] = ()
    mark: str = ""

    @classmethod
    def link(cls, text: str, record: str, sort: float | str | None = None) -> Cell:
        return cls(text=text, sort=text if sort is None else sort, links=((text, record),))

    @classmethod
    def proportion(cls, value: float | None, low: float | None = None, high: float | None = None,
                   record: str | None = None, mark: str = "") -> Cell:
        """A rate in [0, 1]; with ``low``/``high`` it is shown with its interval."""
        sort = None if is_missing(value) else float(value)
        ci = None if is_missing(value) else (float(value), _nan(low), _nan(high))
        links = (("", record),) if record else ()
        return cls(sort=sort, ci=ci, links=links, mark=mark)


def _nan(x: float | None) -> float:
    return math.nan if is_missing(x) else float(x)


@dataclass
class Row:
    cells: list[Cell]
    tags: dict[str, list[str]]  # FILTER_KEYS -> the values this row matches (a matrix row names several victims)
    records: list[str] = field(default_factory=list)


@dataclass
class Section:
    """One heading with (usually) one table. ``column_victims`` names the victim each column is about,
    where columns are victims (matrices), so the page's victim filter can hide columns too."""

    kind: str
    title: str
    dataset: str
    synthetic: bool
    threat: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    column_victims: list[str | None] | None = None

    @property
    def has_table(self) -> bool:
        return bool(self.columns and self.rows)


def fmt_ci(ci: tuple[float, float, float] | None, style: str = "brackets", percent_sign: bool = False) -> str:
    """``38.4 [27.6, 51.7]`` or ``38.4 ± 12.1`` (half the interval's width), in percent."""
    if ci is None or is_missing(ci[0]):
        return "n/a"
    pc = "%" if percent_sign else ""
    value, low, high = (100 * v for v in ci)
    if math.isnan(low) or math.isnan(high):
        return f"{value:.1f}{pc}"
    if style == "pm":
        return f"{value:.1f}{pc} ± {(high - low) / 2:.1f}"
    return f"{value:.1f}{pc} [{low:.1f}{pc}, {high:.1f}{pc}]"


def dataset_label(dataset: str, synthetic: bool) -> str:
    return f"{dataset} (SYNTHETIC benchmark)" if synthetic else dataset


def budget_label(norm: str | None, eps: float | None, targeted: bool | None = None) -> str:
    """``L-inf eps=0.01 m, untargeted``; a run without a fixed budget (minimum-norm) says so."""
    name = {"linf": "L-inf", "l2": "L2"}.get(norm, norm or "no norm")
    unit = " m" if norm in ("linf", "l2") else ""  # bone-scale: a relative length change
    text = f"{name} minimum-norm" if is_missing(eps) else f"{name} eps={eps:g}{unit}"
    if targeted is None:
        return text
    return text + (", targeted" if targeted else ", untargeted")
