"""Make ``robustbench_skel.attacks`` (and defenses, victims) importable from a source checkout.

Installed, the top-level folders ``attacks/``, ``defenses/`` and ``victims/`` are mapped into the
package namespace by ``pyproject.toml``. When the package is instead imported straight from a
checkout (``python -m robustbench_skel`` in the repository root, say), this finder maps those three
names to the folders beside the package, and nothing else.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_PLUGIN_DIRS = {f"robustbench_skel.{name}": _ROOT / name for name in ("attacks", "defenses", "victims")}


class _CheckoutPluginFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        folder = _PLUGIN_DIRS.get(fullname)
        if folder is None or not (folder / "__init__.py").is_file():
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


if not any(isinstance(f, _CheckoutPluginFinder) for f in sys.meta_path):
    sys.meta_path.append(_CheckoutPluginFinder())
