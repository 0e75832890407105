"""Every hook polybus calls, in one place.

Adapters and middleware are plugins: modules or objects with functions marked
``@hookimpl``. Built-in adapters are default plugins (adapters.DEFAULT_PLUGINS);
third-party ones are found through the ``polybus`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy
from cloudevents.core.v1.event import CloudEvent

from core.contract import Adapter

PROJECT = "polybus"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter plugin registers: a name, a factory and how the provider sizes events.

    `factory` receives the provider's section of the configuration (a mapping,
    possibly empty) and returns a ready adapter. `size_rule` names the rule in
    core.sizing used to reject oversized events before the network.
    """

    name: str
    factory: Callable[[Mapping[str, Any]], Adapter]
    description: str = ""
    size_rule: str = "none"
    secret_keys: tuple[str, ...] = ()


@hookspec
def polybus_register_adapters(register: Callable[[AdapterInfo], None]) -> None:
    """Register adapters by calling ``register(AdapterInfo(...))`` once per adapter."""


@hookspec
def polybus_register_schema_backends(register: Callable[[str, Callable[[str], Any]], None]) -> None:
    """Register schema-registry backends by calling ``register(scheme, factory)``.

    ``factory(rest)`` returns a core.schemas.backends.SchemaBackend for the
    location ``scheme:rest`` (e.g. ``--registry myreg:prod``).
    """


@hookspec
def polybus_before_publish(event: CloudEvent, topic: str) -> Mapping[str, Any] | None:
    """Inspect an event before it is published.

    Return a mapping of attributes to add (enrichment, e.g. a trace id), or
    None; raise a ValidationError to reject the event before the network.
    Every implementation sees the event as the caller built it.
    """


@hookspec
def polybus_after_publish(events: Sequence[CloudEvent], topic: str) -> None:
    """Observe a batch the provider accepted (tracing, metrics)."""


@hookspec
def polybus_before_handle(event: CloudEvent, subscription: str) -> None:
    """Inspect a delivered event before its handler runs.

    Raise a ValidationError to refuse it: the event is dead-lettered at once
    (retrying cannot fix invalid input) with the error as the reason.
    """


@hookspec
def polybus_after_handle(
    event: CloudEvent, subscription: str, outcome: str, error: BaseException | None
) -> None:
    """Observe a handler's outcome: 'acked', 'retried', 'dead-lettered' or 'filtered'."""
