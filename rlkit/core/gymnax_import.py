"""gymnax, imported without the plotting libraries it loads for its renderers.

`import gymnax` imports every environment module, and several import plotting libraries at
module level for their `render` only: Pong imports seaborn (which pulls in scipy.stats), about
2 s of every rlkit process's start on a 2-core CPU; Catch, Pong, Rooms, MetaMaze and PointRobot
import matplotlib.pyplot, about 0.3 s more (matplotlib's package itself still loads: the
import statement imports the parent package). No rlkit training path uses either. `import_gymnax()`
imports gymnax with a stand-in for each module in DEFERRED that imports the real module the
first time one of its attributes is read (so the renderers still work), and leaves
`sys.modules` as it found it: code that imports them afterwards gets the real modules (rlkit's
plots import matplotlib.pyplot themselves). A module already imported is not deferred.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["import_gymnax"]

DEFERRED = ("seaborn", "matplotlib.pyplot")


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
