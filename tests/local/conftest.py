"""Fixtures for the local adapter's own tests: both buses, and real child processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polybus.adapters.local.durable import DurableBus
from polybus.adapters.local.memory import MemoryBus

REPO = Path(__file__).resolve().parents[2]
PRELUDE = f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"

LocalBus = MemoryBus | DurableBus


@pytest.fixture(params=["memory", "durable"])
def local_bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalBus]:
    """A fresh memory bus or a fresh durable bus in a temporary file."""
    bus: LocalBus = MemoryBus() if request.param == "memory" else DurableBus(tmp_path / "b.db")
    yield bus
    bus.close()


def python(code: str) -> list[str]:
    """The argv running `code` (dedented, with the repository importable) in a new interpreter."""
    return [sys.executable, "-c", PRELUDE + textwrap.dedent(code)]


@pytest.fixture
def run_child() -> Callable[[str], str]:
    """Run Python code in a child process to completion; return its stdout (fails on errors)."""

    def run(code: str) -> str:
        done = subprocess.run(python(code), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run
