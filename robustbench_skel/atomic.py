"""Writing a file atomically: a killed or failing writer leaves the whole new file or the old one, never a part.

Every writer of the package (records, progress batches, checkpoints, artefacts, adversarial clips,
leaderboard files, figures) goes through :func:`write_atomic`: the content goes to a temporary file in the
same folder, which then replaces the target in one ``os.replace``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["write_atomic", "write_text_atomic", "save_torch_atomic", "save_figure_atomic"]


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], Any], *, suffix: str = "", public: bool = False,
                 sync: bool = False) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then move it onto ``path``.

    ``suffix``: the temporary name's ending, for writers that read the format from it. ``public``: readable by
    everyone (``mkstemp`` makes files private; published files should not be). ``sync``: flush to disk first.
    The folder must exist; on any error the temporary file is removed and the error raised.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        if public:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str, *, public: bool = False, sync: bool = False) -> None:
    """``text`` (UTF-8) into ``path``, atomically."""
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")), public=public, sync=sync)


def save_torch_atomic(state: Any, path: str | Path) -> None:
    """``torch.save(state)`` into ``path`` atomically, creating its folder.

    Saving through a file object (not a path) keeps the archive's inner folder name fixed, so equal content
    gives byte-identical files and the same sha256 whatever the temporary name was.
    """
    import torch

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda handle: torch.save(state, handle), suffix=".pt")


def save_figure_atomic(fig: Any, path: str | Path, **savefig_options: Any) -> None:
    """A matplotlib figure into ``path`` atomically, in the format its suffix names (``.png``, ``.svg``, ...)."""
    suffix = Path(path).suffix
    write_atomic(path, lambda handle: fig.savefig(handle, format=suffix[1:], **savefig_options), suffix=suffix,
                 public=True)
