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


def _provide(
    name: str, pool: EmulatorPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Rig]:
    made = make_rig(name, tmp_path, pool)
    if name == "aws":
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        for key, value in {**made.environment(), **AWS_ISOLATION}.items():
            monkeypatch.setenv(key, value)
    yield made
    made.close()


@pytest.fixture(params=PROVIDERS)
def rig(
    request: pytest.FixtureRequest,
    reliability_emulators: EmulatorPool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Rig]:
    """A provider under test, with its emulator's environment set; closed at teardown."""
    yield from _provide(request.param, reliability_emulators, tmp_path, monkeypatch)


# Faults that only exist where there is something to fault: raw bytes from another
# publisher, a broker process to restart, a bus shared across processes. The memory
# bus has none of these (events are objects in one process), so it is not listed.
@pytest.fixture(params=[p for p in PROVIDERS if p != "local-memory"])
def raw_rig(
    request: pytest.FixtureRequest,
    reliability_emulators: EmulatorPool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Rig]:
    """A provider a foreign publisher can put undecodable bytes into."""
    yield from _provide(request.param, reliability_emulators, tmp_path, monkeypatch)


@pytest.fixture(params=[p for p in PROVIDERS if not p.startswith("local-")])
def restartable_rig(
    request: pytest.FixtureRequest,
    reliability_emulators: EmulatorPool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Rig]:
    """A provider behind an emulator process that can be killed and restarted."""
    yield from _provide(request.param, reliability_emulators, tmp_path, monkeypatch)


@pytest.fixture(params=[p for p in PROVIDERS if p != "local-memory"])
def shared_rig(
    request: pytest.FixtureRequest,
    reliability_emulators: EmulatorPool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Rig]:
    """A provider whose events outlive a consumer process (for SIGTERM hand-over)."""
    yield from _provide(request.param, reliability_emulators, tmp_path, monkeypatch)
