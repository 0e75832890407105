"""The `rig` fixture: every fault test runs once per provider (see rigs.PROVIDERS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.rigs import AWS_ISOLATION, PROVIDERS, EmulatorPool, Rig, make_rig


@pytest.fixture(scope="session")
def reliability_emulators() -> Iterator[EmulatorPool]:
    """Emulators of this suite (its own: restarting them must not disturb other tests)."""
    pool = EmulatorPool()
    yield pool
    pool.stop()


@pytest.fixture(params=PROVIDERS)
def rig(
    request: pytest.FixtureRequest,
    reliability_emulators: EmulatorPool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Rig]:
    """A provider under test, with its emulator's environment set; closed at teardown."""
    made = make_rig(request.param, tmp_path, reliability_emulators)
    if request.param == "aws":
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        for key, value in {**made.environment(), **AWS_ISOLATION}.items():
            monkeypatch.setenv(key, value)
    yield made
    made.close()
