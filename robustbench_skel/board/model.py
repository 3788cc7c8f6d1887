"""A leaderboard section as plain data, so Markdown, LaTeX and HTML render the same numbers.

Section builders decide *what* a table says (columns, rows, the records behind each row, the values
the page filters on); renderers decide only *how* it is written. A proportion with its confidence
interval stays a number until a renderer formats it, so ``--ci-style`` is one switch for every format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Cell", "Row", "Section", "attack_label", "tell_apart", "CI_STYLES", "fmt_ci", "fmt_ci_parts", "fmt_value", "dataset_label",
           "budget_label", "is_missing", "is_numeric_cell", "numeric_columns", "drop_empty_columns", "page_title"]

CI_STYLES = ("brackets", "pm")
FILTER_KEYS = ("dataset", "threat", "victim", "attack")


def is_missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def attack_label(attack: object, surrogates: object = None, defense: object = None) -> str:
    """How every table and figure of the board names an attack: ``pgd``, ``ifgsm@stgcn`` (crafted on the
    surrogate stgcn), ``ifgsm@agcn+stgcn`` (an ensemble), ``pgd + trades`` (against a defense).

    ``@`` always names the surrogate; a figure that also names the victim says ``on VICTIM`` after it."""
    label = str(attack)
    if not is_missing(surrogates) and str(surrogates).strip():
        label += f"@{surrogates}"
    if not is_missing(defense) and str(defense) not in ("", "none"):
        label += f" + {defense}"
    return label


def tell_apart(labels: Sequence[str], stages: Sequence[Callable[[int, list[int]], str]]) -> list[str]:
    """Labels made distinct stage by stage: where two or more entries still share a label, each gets the
    suffix ``stage(index, group)`` names (``group``: the indices sharing that label), and the next stage
    sees the result. One rule for every table and figure: protocol, then options, then a short hash."""
    out = list(labels)
    for stage in stages:
        groups: dict[str, list[int]] = {}
        for i, label in enumerate(out):
            groups.setdefault(label, []).append(i)
        out = [label + (stage(i, groups[label]) if len(groups[label]) > 1 else "") for i, label in enumerate(out)]
    return out


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
    rules: str = ""  # a paragraph said right above this table every time (notes are said once per page)

    @property
    def has_table(self) -> bool:
        return bool(self.columns and self.rows)


def fmt_ci(ci: tuple[float, float, float] | None, style: str = "brackets", percent_sign: bool = False) -> str:
    """``38.4 [27.6, 51.7]`` or ``38.4 ± 12.1`` (half the interval's width), in percent."""
    return " ".join(p for p in fmt_ci_parts(ci, style, percent_sign) if p)


def fmt_ci_parts(ci: tuple[float, float, float] | None, style: str = "brackets",
                 percent_sign: bool = False) -> tuple[str, str]:
    """``("38.4", "[27.6, 51.7]")``: the value and its interval apart, so a renderer can align the
    value on its decimal point and set the interval beside or below it; ``("n/a", "")`` without a value."""
    if ci is None or is_missing(ci[0]):
        return "n/a", ""
    pc = "%" if percent_sign else ""
    value, low, high = (100 * v for v in ci)
    if math.isnan(low) or math.isnan(high):
        return f"{value:.1f}{pc}", ""
    if style == "pm":
        return f"{value:.1f}{pc}", f"± {(high - low) / 2:.1f}"
    return f"{value:.1f}{pc}", f"[{low:.1f}{pc}, {high:.1f}{pc}]"


def fmt_value(x: float | None, unit: str = "") -> str:
    """A table number: three significant digits in plain notation (``1450``, ``0.0123``, never ``1.4e+03``),
    so a column of them aligns on the decimal point; ``unit="%"`` for a fraction shown in percent."""
    if is_missing(x):
        return "n/a"
    x = float(x) * (100 if unit == "%" else 1)
    suffix = "%" if unit == "%" else ""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}{suffix}"
    rounded = float(f"{x:.3g}")  # decimals from the rounded value: 0.99999998 (float32 0.01 m in cm) reads 1.00, not 1.000
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{x:.{decimals}f}{suffix}"


_NUMBER = re.compile(r"^[-+]?\d+(\.\d+)?%?$")


def is_numeric_cell(cell: Cell) -> bool:
    """A proportion, or a number standing alone (a count, a measurement): right-aligned, decimal-aligned."""
    if cell.ci is not None:
        return True
    return not cell.links and isinstance(cell.sort, (int, float)) and bool(_NUMBER.match(cell.text))


def _is_empty(cell: Cell) -> bool:
    return cell.ci is None and not cell.links and cell.text.strip() in ("", "n/a") and not cell.mark


def numeric_columns(section: Section) -> list[bool]:
    """Per column: every cell holding something is a number (a column of only blanks is not numeric)."""
    out = []
    for i in range(len(section.columns)):
        cells = [row.cells[i] for row in section.rows if not _is_empty(row.cells[i])]
        out.append(bool(cells) and all(is_numeric_cell(c) for c in cells))
    return out


def drop_empty_columns(section: Section) -> Section:
    """Leave out the columns blank (or ``n/a``) in every row: a column that says nothing only widens the table."""
    if not section.rows:
        return section
    keep = [i for i in range(len(section.columns)) if not all(_is_empty(row.cells[i]) for row in section.rows)]
    if len(keep) == len(section.columns):
        return section
    section.columns = [section.columns[i] for i in keep]
    if section.column_victims is not None:
        section.column_victims = [section.column_victims[i] for i in keep]
    for row in section.rows:
        row.cells = [row.cells[i] for i in keep]
    return section


def page_title(sections: Sequence[Section]) -> str:
    """``robustbench_skel leaderboard: synthetic data (synth)``: the title says when the data is synthetic."""
    synthetic = sorted({s.dataset for s in sections if s.synthetic and s.dataset})
    real = sorted({s.dataset for s in sections if not s.synthetic and s.dataset})
    if synthetic and not real:
        return f"robustbench_skel leaderboard: synthetic data ({', '.join(synthetic)})"
    if synthetic:
        return f"robustbench_skel leaderboard: {', '.join(real)} and synthetic data ({', '.join(synthetic)})"
    return "robustbench_skel leaderboard" + (f": {', '.join(real)}" if real else "")


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
