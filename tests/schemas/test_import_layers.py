"""The codecs sit below the schema registry: no import of polybus.core.schemas from polybus.core.codecs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import polybus

CORE = Path(polybus.__file__).resolve().parent / "core"
CODECS = sorted(p for p in (CORE / "codecs").glob("*.py"))


def _module(path: Path) -> str:
    """The dotted name of a module file under polybus/core."""
    parts = path.relative_to(CORE).with_suffix("").parts
    return ".".join(("polybus", "core", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_codecs_never_import_schemas() -> None:
    """No module of polybus.core.codecs imports polybus.core.schemas, even lazily: one direction only."""
    offenders = {
        _module(path): sorted(m for m in _imports(path) if m.startswith("polybus.core.schemas"))
        for path in CODECS
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_schemas_use_the_codecs() -> None:
    """The one allowed direction is used (schemas -> codecs), so the test above guards a real edge."""
    used = set().union(*(_imports(path) for path in (CORE / "schemas").glob("*.py")))
    assert any(m.startswith("polybus.core.codecs") for m in used)


@pytest.mark.parametrize("path", CODECS, ids=lambda p: p.stem)
def test_each_codec_module_imports_alone(path: Path) -> None:
    """Each codecs module imports in a fresh interpreter without loading polybus.core.schemas."""
    name = _module(path)
    code = (
        f"import sys, importlib; importlib.import_module({name!r}); "
        "loaded = [m for m in sys.modules if m.startswith('polybus.core.schemas')]; "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
