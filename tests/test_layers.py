"""The layers of the tree and the direction of imports between them (DESIGN.md, "Layout").

rlkit's packages form layers; a module may import its own layer and the layers below it, never
one above. Only the command line (rlkit/cli/) imports agents/ and envs/. No agent imports
another agent; environments know nothing of agents. Every import statement counts, including
the ones inside functions (the CLI defers its imports so that `rlkit --help` stays fast).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: What each layer may import besides itself (third-party packages are not restricted).
ALLOWED: dict[str, set[str]] = {
    "rlkit.ops": set(),
    "rlkit.core": {"rlkit.ops"},
    "rlkit.nets": {"rlkit.ops", "rlkit.core"},
    "rlkit.data": {"rlkit.ops", "rlkit.core", "rlkit.nets"},
    "rlkit.training": {"rlkit.ops", "rlkit.core", "rlkit.nets", "rlkit.data"},
    "rlkit.planning": {"rlkit.ops", "rlkit.core", "rlkit.nets", "rlkit.data"},
    "rlkit.report": {"rlkit.ops", "rlkit.core", "rlkit.nets", "rlkit.data", "rlkit.training"},
    "rlkit.bridges": {"rlkit.ops", "rlkit.core"},
    "rlkit.cli": {"rlkit", "agents", "envs", "paper_configs"},
    "rlkit": {"rlkit"},  # the package's own __init__: lazy entry points into any layer
    "agents": {"rlkit", "paper_configs"},  # rlkit's layers and its presets; no other agent
    "paper_configs": {"rlkit.core"},  # YAML files and their reader
    "envs": {"rlkit.ops", "rlkit.core", "rlkit.bridges"},  # bridges: the gymnasium registry
}


def layer_of(module: str) -> str:
    """The layer a module belongs to: the longest key of ALLOWED that is a prefix of it."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in ALLOWED:
            return candidate
    raise KeyError(module)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, root: Path) -> set[str]:
    """Every absolute module an import statement anywhere in `source` loads: for
    `from package import name` the submodule package.name when `root` holds one (so that
    `from agents import ppo` names agents.ppo), else the package."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            folder = root.joinpath(*node.module.split("."))
            for alias in node.names:
                is_module = (folder / f"{alias.name}.py").exists() or (folder / alias.name).is_dir()
                names.add(f"{node.module}.{alias.name}" if is_module else node.module)
    return names


def is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


PACKAGES = ("rlkit", "agents", "envs", "paper_configs")


def violations(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """'importer -> imported' for every import against the layering, over the packages' files."""
    found = []
    ours = tuple(ALLOWED)
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            importer = module_name(path, root)
            layer = layer_of(importer)
            for imported in sorted(imported_modules(path.read_text(), root)):
                if not any(is_within(imported, p) for p in PACKAGES):
                    continue  # a third-party module
                if not any(is_within(imported, p) for p in ours):
                    continue
                target = layer_of(imported)
                if target == layer and layer not in ("agents",):
                    continue  # within one layer
                if layer == "agents" and target == "agents":
                    if imported in ("agents", importer):
                        continue
                    found.append(f"{importer} -> {imported} (an agent imports another agent)")
                    continue
                allowed = ALLOWED[layer]
                if is_within(imported, "rlkit.cli"):
                    found.append(f"{importer} -> {imported} (nothing imports the CLI)")
                elif not any(is_within(imported, a) for a in allowed):
                    found.append(f"{importer} -> {imported} ({layer} may not import {target})")
    return found


def test_every_import_of_rlkit_agents_and_envs_follows_the_layers():
    assert violations(ROOT) == []


def test_every_module_belongs_to_a_layer():
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            layer_of(module_name(path, ROOT))  # raises KeyError for a module outside the layers


@pytest.mark.parametrize(
    ("path", "source", "complaint"),
    [
        ("rlkit/ops/bad.py", "from rlkit.data.replay import UniformReplay\n", "rlkit.ops may not"),
        ("rlkit/core/bad.py", "import rlkit.training.runner\n", "rlkit.core may not"),
        ("rlkit/data/bad.py", "def f():\n    import agents.ppo\n", "rlkit.data may not"),
        ("rlkit/nets/bad.py", "from rlkit.training import runner\n", "rlkit.nets may not"),
        ("agents/bad.py", "from agents import ppo\n", "another agent"),
        ("envs/bad.py", "from agents.dqn import td_target\n", "envs may not"),
        ("rlkit/report/bad.py", "from rlkit.cli import main\n", "nothing imports the CLI"),
    ],
)
def test_a_deliberate_violation_is_reported(tmp_path, path, source, complaint):
    for package in ("rlkit", "agents", "envs"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "agents" / "ppo.py").write_text("")
    target = tmp_path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1 and complaint in found[0], found


def test_the_public_entry_points_resolve():
    import rlkit

    for name in rlkit.__all__:
        assert getattr(rlkit, name) is not None, name
    module = importlib.import_module("rlkit")
    with pytest.raises(AttributeError):
        module.no_such_entry_point  # noqa: B018
