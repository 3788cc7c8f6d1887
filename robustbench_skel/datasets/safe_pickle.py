"""Load the ``.pkl`` files of skeleton datasets without letting them run code.

A pickle can name any importable callable and have it called while loading (``os.system`` included),
so the dataset readers never use :func:`pickle.load`. :class:`RestrictedUnpickler` resolves only the
handful of globals that the formats we read actually contain:

* numpy array and scalar reconstruction: ``numpy[._]core.multiarray._reconstruct``, ``numpy.ndarray``,
  ``numpy.dtype``, ``numpy[._]core.multiarray.scalar``, and ``numpy[._]core.numeric._frombuffer``
  (protocol 5);
* the two shims protocol-2 pickles written by Python 3 use for ``bytes`` (mmcv/PYSKL write protocol 2):
  ``_codecs.encode`` restricted to latin-1 text, and ``builtins.bytes`` (``__builtin__.bytes``) with no
  argument (empty bytes).

Plain containers, strings and numbers need no globals at all. Anything else is refused with a
:class:`~robustbench_skel.errors.UserError` before it is called. Python-2 pickles (ST-GCN era label
files) are retried with ``encoding='latin1'``, as the original feeders do.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

__all__ = ["RestrictedUnpickler", "UnsafePickle", "load_pickle", "ALLOWED_GLOBALS"]


class UnsafePickle(pickle.UnpicklingError):
    """The pickle asked for a global outside the allow-list."""


def _latin1_encode(obj: Any = "", encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: latin-1 text only."""
    if not isinstance(obj, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise UnsafePickle("_codecs.encode with anything but latin-1 text")
    return obj.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()`` as protocol-2 pickles write an empty bytes object."""
    if args:
        raise UnsafePickle("builtins.bytes with arguments")
    return b""


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2 (and 1.26's forward-compatibility alias)
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **_numpy_globals(),
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "bytes"): _empty_bytes,
    ("__builtin__", "bytes"): _empty_bytes,  # how Python 3 spells it in protocol-2 pickles
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (objects, not imports).

    ``find_class`` receives the names as written in the pickle (Python-2 spellings are not mapped
    first), so the allow-list spells out both where they differ.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickle(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickle("a persistent id")


def _load(path: Path, encoding: str) -> Any:
    with open(path, "rb") as f:
        return RestrictedUnpickler(f, encoding=encoding).load()


def load_pickle(path: str | Path, where: str | None = None) -> Any:
    """The object in ``path``, refusing any global outside the allow-list with a :class:`UserError`."""
    path = Path(path)
    where = where or str(path)
    try:
        try:
            return _load(path, "ASCII")
        except UnicodeDecodeError:  # a Python-2 pickle with 8-bit strings (numpy data included)
            return _load(path, "latin1")
    except UnsafePickle as exc:
        raise UserError(
            f"{where}: refusing to load this pickle: it asks for {exc}, which a dataset file never needs "
            "(pickles can run code; only numpy arrays, lists, tuples, dicts, strings and numbers are accepted)"
        ) from None
    except OSError as exc:
        raise UserError(f"{where}: cannot read the file ({exc.strerror or exc})") from None
    except MemoryError:
        raise UserError(f"{where}: the pickle does not fit in memory") from None
    except Exception as exc:  # truncated or not a pickle: UnpicklingError, EOFError, ValueError, ...
        raise UserError(f"{where}: not a readable pickle ({type(exc).__name__}: {exc})") from None
