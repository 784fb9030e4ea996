"""rlkit imports gymnax without seaborn (rlkit.core.gymnax_import): fresh processes, since the
test process has imported both long before."""

from __future__ import annotations

import subprocess
import sys

DEFERRED = """
import sys, types
import envs
from gymnax.environments.misc import pong
assert "seaborn" not in sys.modules and "scipy.stats" not in sys.modules
assert type(pong.sns).__name__ == "_Deferred"
palette = pong.sns.color_palette("cubehelix", 3)  # Pong's renderer imports it on first use
assert len(palette) == 3 and "seaborn" in sys.modules
import seaborn
assert type(seaborn) is types.ModuleType and seaborn.color_palette is pong.sns.color_palette
"""

ALREADY_IMPORTED = """
import seaborn
import envs
from gymnax.environments.misc import pong
assert pong.sns is seaborn
"""


def _run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)


def test_gymnax_loads_without_seaborn_and_pong_still_gets_it_on_first_use() -> None:
    proc = _run(DEFERRED)
    assert proc.returncode == 0, proc.stderr


def test_a_seaborn_imported_before_is_the_one_gymnax_gets() -> None:
    proc = _run(ALREADY_IMPORTED)
    assert proc.returncode == 0, proc.stderr
