"""Checks of output paths and input files that run before any work, and write nothing.

A command must know that it can write its result before it spends minutes (or hours) computing it.
These checks look at the file system without changing it: a folder that does not exist yet is fine
when the nearest existing folder above it is writable (the command creates it, parents included, when
it writes), but a file standing where a folder must go, or a folder where a file must go, or a folder
without write permission, is refused with one line naming the option to fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError

__all__ = ["check_writable_dir", "check_writable_file", "check_input_file"]


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the current folder at the latest)."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def _check_parents(path: Path, folder: Path, what: str) -> None:
    """Refuse when a file stands where ``folder`` (``path``'s folder, or ``path`` itself) or one above it
    must be, or when it cannot be created."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise UserError(f"{what} {str(path)!r} cannot be created: {str(existing)!r} is a file, not a folder; "
                        "choose another path or move that file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{what} {str(path)!r} cannot be written: no write permission in {str(existing)!r}; "
                        "choose a folder you can write to")


def check_writable_dir(path: str | Path, what: str) -> Path:
    """``path`` as a folder the command can create (with its parents) or write into; nothing is created."""
    path = Path(path)
    if str(path) == "":
        raise UserError(f"{what} is empty; give a folder")
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {str(path)!r} is a file, not a folder; choose a folder (it is created if missing)")
    _check_parents(path, path, what)
    return path


def check_writable_file(path: str | Path, what: str) -> Path:
    """``path`` as a file the command can write (replacing an older one); its folders may be missing."""
    path = Path(path)
    if str(path) in ("", ".") or path.name == "":
        raise UserError(f"{what} is empty; give a file name")
    if path.is_dir():
        raise UserError(f"{what} {str(path)!r} is a folder; give a file name inside it")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{what} {str(path)!r} exists and is read-only; choose another file")
    _check_parents(path, path.parent, what)
    return path


def check_input_file(path: str | Path, what: str) -> Path:
    """``path`` as an existing, readable file (a checkpoint, a grid): refused before any work otherwise."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {str(path)!r} does not exist; check the path")
    if not path.is_file():
        raise UserError(f"{what} {str(path)!r} is a folder, not a file; give the file inside it")
    if not os.access(path, os.R_OK):
        raise UserError(f"{what} {str(path)!r} cannot be read (no permission)")
    return path
