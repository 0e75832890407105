"""Upcasters: registered functions that turn data of one schema version into the next.

    upcasters = Upcasters()

    @upcasters.register("com.example.order.placed", from_version=2)
    def add_status(data):                 # v2 data -> v3 data
        return {**data, "status": "paid" if data.get("paid") else "open"}

`upcast(type, data, 1, 3)` chains v1→v2→v3; a missing step is an error
naming it. Upcasters must not mutate their input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from polybus.core.errors import Problem
from polybus.core.schemas.errors import ReaderError

Upcaster = Callable[[Any], Any]


class Upcasters:
    """Upcasting functions by event type and the version they read."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: the function turns `from_version` data into `from_version + 1` data."""

        def decorate(fn: Upcaster) -> Upcaster:
            self.add(event_type, from_version, fn)
            return fn

        return decorate

    def add(self, event_type: str, from_version: int, fn: Upcaster) -> None:
        """Register `fn` for `event_type` data of `from_version`."""
        self._steps[(event_type, from_version)] = fn

    def has(self, event_type: str, from_version: int) -> bool:
        """Whether a step from `from_version` is registered."""
        return (event_type, from_version) in self._steps

    def upcast(self, event_type: str, data: Any, from_version: int, to_version: int) -> Any:
        """Apply the steps from `from_version` up to `to_version` (data of newer versions is left alone)."""
        version = from_version
        while version < to_version:
            step = self._steps.get((event_type, version))
            if step is None:
                raise ReaderError(
                    f"cannot upcast {event_type} data to v{to_version}",
                    [
                        Problem(
                            "dataschema", f"v{version}", f"no upcaster registered from v{version}"
                        )
                    ],
                )
            data = step(data)
            version += 1
        return data
