"""What the layers contract (import-linter, `make lint`) does not check: no module uses another's
private names, and every package under storypipe is listed for the wheel."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[3]
SOURCES = {"storypipe": PROJECT / "storypipe", "storypipe.tasks": PROJECT / "tasks", "storypipe.flows": PROJECT / "flows"}


def modules() -> dict[str, Path]:
    found = {}
    for prefix, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts])] = path
    return found


def private_uses(name: str, path: Path) -> list[str]:
    """`from storypipe.x import _y`, and `x._y` where x is a storypipe module imported here."""
    tree = ast.parse(path.read_text("utf-8"))
    uses, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("storypipe") and node.module != name:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    uses.append(f"{node.module}.{alias.name}")
                else:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("storypipe"):
                    aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in aliases):
            uses.append(f"{aliases[node.value.id]}.{node.attr}")
    return uses


def test_no_module_uses_another_modules_private_names():
    found = modules()
    assert "storypipe.tasks.transcribe.engines" in found and "storypipe.flows.inbox" in found
    offences = {name: uses for name, path in found.items() if (uses := private_uses(name, path))}
    assert offences == {}


def test_the_private_name_check_sees_an_offence(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from storypipe.tasks.ingest import _hidden\nfrom storypipe.tasks import audio\naudio._secret()\n")
    assert sorted(private_uses("bad", bad)) == ["storypipe.tasks.audio._secret", "storypipe.tasks.ingest._hidden"]


def test_every_package_is_listed_for_the_wheel():
    listed = set(tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name, path in modules().items() if path.name == "__init__.py"}
    packages.add("storypipe.config")  # settings files, with an __init__ of their own
    assert packages - listed == set()
