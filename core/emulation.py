"""One interface for every provider's emulator: start on host/port, report, stop.

An adapter plugin may register an `EmulatorSpec`. ``polybus emulate NAME``
and the test fixtures start any registered emulator the same way and print
what reaches it: its endpoint, the polybus.toml settings for the provider's
table, and any environment variables the provider's own SDK reads (e.g.
``PUBSUB_EMULATOR_HOST``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from polybus.core.extras import Requirement


class RunningEmulator(Protocol):
    """An emulator serving on loopback until `stop()`."""

    @property
    def endpoint(self) -> str:
        """Where it listens, e.g. ``http://127.0.0.1:8086`` or ``127.0.0.1:8085``."""
        ...

    def settings(self) -> Mapping[str, Any]:
        """The provider's polybus.toml table that points an adapter at this emulator."""
        ...

    def environment(self) -> Mapping[str, str]:
        """Environment variables the provider's SDK reads to find it (may be empty)."""
        ...

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        ...


@dataclass(frozen=True)
class EmulatorSpec:
    """How to start a provider's emulator: a description, a default port, a start function.

    `start(host, port)` returns a started emulator (port 0 picks a free one).
    `requires` names the modules it needs and the extra that installs them,
    checked before starting.
    """

    description: str
    default_port: int
    start: Callable[[str, int], RunningEmulator]
    requires: Requirement | None = None

    def launch(self, host: str = "127.0.0.1", port: int | None = None) -> RunningEmulator:
        """Check the requirement, then start on `host`/`port` (the default port when None)."""
        if self.requires is not None:
            self.requires.check()
        return self.start(host, self.default_port if port is None else port)
