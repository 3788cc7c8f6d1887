"""The one exception type the command line turns into a single clear line and a non-zero exit."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["UserError", "suggest"]


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and how to fix it.

    The CLI prints ``error: <message>`` and exits with status 2, without a traceback.
    """


def suggest(name: str, known: Iterable[str]) -> str:
    """A ``did you mean ...?`` hint naming the closest known names, or the full list."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)  # 0.5 paired "nonexistent" with "bone-length"
    if not close:  # prefix matches help with short names like "pgd" vs "pgd-l2"
        close = [k for k in known if k.startswith(name) or name.startswith(k)][:3]
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "known: " + ", ".join(known)
