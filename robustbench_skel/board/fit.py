"""Making a table fit its page: how wide its columns are, where headers and long cells wrap, and how a
table too wide even then is cut into column blocks that each repeat the row's key columns.

Renderers measure in their own units (points in LaTeX, pixels in HTML); this module only does the
arithmetic, so both formats cut the same way and nothing is clipped or dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .model import Section, numeric_columns

__all__ = ["key_columns", "split_columns", "header_lines", "shrink_to_fit", "longest_token", "layout"]

_BREAK = re.compile(r"(?<=[ +/-])")  # a header or cell may break after a space, a plus, a slash or a hyphen


def key_columns(section: Section, most: int = 3) -> int:
    """How many leading columns name a row (a rank, then the text columns before the first number; at most
    ``most``): each column block repeats them."""
    numeric = numeric_columns(section)
    count = 0
    for i, is_number in enumerate(numeric[:most]):
        if is_number and i:  # a leading rank is part of the name
            break
        count += 1
    return max(1, count)


def longest_token(text: str) -> int:
    """The longest run of characters with no break: the least width a wrapped cell can have."""
    return max((len(t.strip()) for t in _BREAK.split(text)), default=0)


def header_lines(text: str, width: int) -> list[str]:
    """``text`` broken after spaces, pluses, slashes and hyphens into lines of at most ``width`` characters (a longer
    token gets a line of its own)."""
    lines: list[str] = []
    for token in _BREAK.split(text):
        if lines and len((lines[-1] + token).rstrip()) <= width:
            lines[-1] += token
        else:
            lines.append(token)
    return [line.strip() for line in lines if line.strip()]


def shrink_to_fit(natural: Sequence[float], least: Sequence[float], wrappable: Sequence[bool], budget: float) -> list[float]:
    """Column widths: the natural ones where they fit; else the wrappable columns capped at one common width
    (never below their least width), the cap as high as the budget allows."""
    widths = list(natural)
    if sum(widths) <= budget:
        return widths
    low, high = 0.0, max((w for w, ok in zip(natural, wrappable) if ok), default=0.0)
    for _ in range(40):  # bisect the cap
        cap = (low + high) / 2
        total = sum(max(min(w, cap), m) if ok else w for w, m, ok in zip(natural, least, wrappable))
        low, high = (cap, high) if total <= budget else (low, cap)
    return [max(min(w, low), m) if ok else w for w, m, ok in zip(natural, least, wrappable)]


def split_columns(widths: Sequence[float], keys: int, budget: float) -> list[list[int]]:
    """Column indices per block: the first ``keys`` columns in every block, then as many of the others, in
    order, as fit ``budget`` (at least one per block). One block when everything fits."""
    if sum(widths) <= budget:
        return [list(range(len(widths)))]
    head = list(range(min(keys, len(widths))))
    base = sum(widths[i] for i in head)
    blocks: list[list[int]] = []
    current: list[int] = []
    used = base
    for i in range(len(head), len(widths)):
        if current and used + widths[i] > budget:
            blocks.append(head + current)
            current, used = [], base
        current.append(i)
        used += widths[i]
    if current or not blocks:
        blocks.append(head + current)
    return blocks


def layout(natural: Sequence[float], least: Sequence[float], wrappable: Sequence[bool], keys: int, budget: float,
           readable: float) -> list[tuple[list[int], list[float]]]:
    """``[(column indices, their widths)]`` per block. One block when the table fits with its long text
    wrapped; else blocks cut at each wrapping column's ``readable`` width (so a part is not squeezed for the
    sake of columns it does not hold), each block's widths then fitted on their own."""
    if sum(least) <= budget:
        return [(list(range(len(natural))), shrink_to_fit(natural, least, wrappable, budget))]
    comfortable = [min(n, max(m, readable)) if ok else n for n, m, ok in zip(natural, least, wrappable)]
    out = []
    for block in split_columns(comfortable, keys, budget):
        widths = shrink_to_fit([natural[i] for i in block], [least[i] for i in block], [wrappable[i] for i in block], budget)
        out.append((block, widths))
    return out
