"""pytest fixtures for testing polybus services against emulators (shipped with polybus).

Enable them in a conftest.py: ``pytest_plugins = ["polybus.pytest_plugin"]``.

- ``polybus_emulator(name)`` starts the registered emulator of provider
  `name` once per session (moto for aws, polybus's own for azure and gcp) and
  returns it: ``.endpoint``, ``.settings()`` (the polybus.toml table),
  ``.environment()``.
- ``polybus_config(name)`` writes a polybus.toml in a temporary folder that
  points at that emulator (or at a durable local file for ``local``), and
  returns its path; the emulator's environment is set for the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from polybus.adapters import available_adapters
from polybus.core.emulation import RunningEmulator
from polybus.core.errors import Problem, UnsupportedError

EmulatorFactory = Callable[[str], RunningEmulator]


@pytest.fixture(scope="session")
def polybus_emulator() -> Iterator[EmulatorFactory]:
    """A function starting (once per session) and returning a provider's emulator."""
    running: dict[str, RunningEmulator] = {}

    def start(name: str) -> RunningEmulator:
        if name not in running:
            registered = available_adapters()
            spec = registered[name].info.emulator if name in registered else None
            if spec is None:
                raise UnsupportedError(
                    "no emulator", [Problem("provider", name, "has no registered emulator")]
                )
            running[name] = spec.launch("127.0.0.1", 0)
        return running[name]

    yield start
    for emulator in running.values():
        emulator.stop()


@pytest.fixture
def polybus_config(
    polybus_emulator: EmulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], Path]:
    """A function writing a polybus.toml that reaches provider `name`; returns its path."""

    def write(name: str) -> Path:
        settings: dict[str, Any]
        if name == "local":
            settings = {"durable": True, "path": str(tmp_path / "polybus.db")}
        else:
            emulator = polybus_emulator(name)
            settings = dict(emulator.settings())
            for key, value in emulator.environment().items():
                monkeypatch.setenv(key, value)
        lines = [f'provider = "{name}"', f"[{name}]"]
        lines += [f"{key} = {_toml(value)}" for key, value in settings.items()]
        path = tmp_path / "polybus.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
