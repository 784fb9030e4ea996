"""gymnax, imported without the plotting library it loads for one renderer.

`import gymnax` imports every environment module, and gymnax's Pong module imports seaborn at
module level for its `render` only (seaborn pulls in scipy.stats): about 2 s of every rlkit
process's start on a 2-core CPU, for a package no rlkit code path uses. `import_gymnax()`
imports gymnax with a stand-in for seaborn that imports the real seaborn the first time one of
its attributes is read (so Pong's renderer still works), and leaves `sys.modules` as it found it:
code that imports seaborn afterwards gets the real module. When seaborn is already imported,
nothing is deferred.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["import_gymnax"]

DEFERRED = ("seaborn",)


class _Deferred(types.ModuleType):
    """A module whose attributes are those of the real module of its name, imported on first
    use (only attributes it does not hold itself reach `__getattr__`)."""

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attribute)


def import_gymnax() -> types.ModuleType:
    """`import gymnax`, deferring the modules in DEFERRED (module docstring)."""
    if "gymnax" in sys.modules:
        return sys.modules["gymnax"]
    stand_ins = {name: _Deferred(name) for name in DEFERRED if name not in sys.modules}
    for stand_in in stand_ins.values():
        stand_in.__spec__ = None  # what the import statement reads of a module it finds
    sys.modules.update(stand_ins)
    try:
        import gymnax
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
    return gymnax
