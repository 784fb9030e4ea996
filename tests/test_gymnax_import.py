"""rlkit imports gymnax without seaborn and matplotlib.pyplot (rlkit.core.gymnax_import): fresh
processes, since the test process has imported them long before."""

from __future__ import annotations

import subprocess
import sys

DEFERRED = """
import sys, types
import envs
from gymnax.environments.misc import pong
from gymnax.environments.bsuite import catch
assert "seaborn" not in sys.modules and "scipy.stats" not in sys.modules
assert "matplotlib.pyplot" not in sys.modules
assert type(pong.sns).__name__ == "_Deferred" and type(catch.plt).__name__ == "_Deferred"
palette = pong.sns.color_palette("cubehelix", 3)  # Pong's renderer imports it on first use
assert len(palette) == 3 and "seaborn" in sys.modules
import seaborn
assert type(seaborn) is types.ModuleType and seaborn.color_palette is pong.sns.color_palette
assert catch.plt.subplots is sys.modules["matplotlib.pyplot"].subplots  # the real pyplot
import matplotlib.pyplot
assert type(matplotlib.pyplot) is types.ModuleType
"""

ALREADY_IMPORTED = """
import matplotlib.pyplot
import seaborn
import envs
from gymnax.environments.bsuite import catch
from gymnax.environments.misc import pong
assert pong.sns is seaborn and catch.plt is matplotlib.pyplot
"""


def _run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)


def test_gymnax_loads_without_its_plotting_modules_and_renderers_get_them_on_first_use() -> None:
    proc = _run(DEFERRED)
    assert proc.returncode == 0, proc.stderr


def test_plotting_modules_imported_before_are_the_ones_gymnax_gets() -> None:
    proc = _run(ALREADY_IMPORTED)
    assert proc.returncode == 0, proc.stderr
