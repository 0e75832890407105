"""Every hook polybus calls, in one place.

Adapters and middleware are plugins: modules or objects with functions marked
``@hookimpl``. Built-in adapters are default plugins (adapters.DEFAULT_PLUGINS);
third-party ones are found through the ``polybus`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
from cloudevents.core.v1.event import CloudEvent

from polybus.core.capabilities import Capabilities
from polybus.core.config import SettingsSchema
from polybus.core.contract import Adapter
from polybus.core.emulation import EmulatorSpec
from polybus.core.extras import Requirement
from polybus.core.filters.dialects import Filter
from polybus.core.filters.native import Compiled
from polybus.core.provisioning_plan import ProvisioningSupport
from polybus.core.sizing import Sizing

PROJECT = "polybus"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class FilterSupport:
    """An adapter's native filter compiler and the name of what it produces.

    `compile(filter)` returns a `Compiled`: the native filter the provider
    evaluates (None: everything passes) and the residual the bus evaluates
    client-side (None: nothing left).
    """

    compile: Callable[[Filter | None], Compiled[Any]]
    native_name: str


@dataclass(frozen=True)
class AdapterInfo:
    """Everything an adapter plugin contributes: core and the CLI know providers only by this.

    - `factory` receives the provider's section of the configuration (a
      mapping, possibly empty) and returns a ready adapter.
    - `capabilities`: what the adapter supports; the bus refuses the rest.
    - `sizing`: the provider's limit and how an event is measured (None: no limit).
    - `filters`: the native filter compiler (None: filters are client-side only).
    - `emulator`: how to run a local stand-in (None: the adapter has none).
    - `requires`: the SDK modules and the extra that installs them, checked
      before the factory runs.
    - `secret_keys`: settings never printed.
    - `sim_profile`: a YAML file of the provider's latencies, quotas and prices
      for the simulator (None: not simulated).
    - `settings`: the parser of the provider's table and the environment
      variables it reads, for ``polybus config show`` (None: shown unchecked).
    - `provisioning`: the plan of what the adapter creates for given
      subscriptions and topics, and how to list what it created, for
      ``polybus provision`` and ``polybus subscriptions`` (None: it cannot say).
    """

    name: str
    factory: Callable[[Mapping[str, Any]], Adapter]
    description: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)
    sizing: Sizing | None = None
    filters: FilterSupport | None = None
    emulator: EmulatorSpec | None = None
    requires: Requirement | None = None
    secret_keys: tuple[str, ...] = ()
    sim_profile: Path | None = None
    settings: SettingsSchema | None = None
    provisioning: ProvisioningSupport | None = None


@hookspec
def polybus_register_adapters(register: Callable[[AdapterInfo], None]) -> None:
    """Register adapters by calling ``register(AdapterInfo(...))`` once per adapter."""


@hookspec
def polybus_register_schema_backends(register: Callable[[str, Callable[[str], Any]], None]) -> None:
    """Register schema-registry backends by calling ``register(scheme, factory)``.

    ``factory(rest)`` returns a polybus.core.schemas.backends.SchemaBackend for the
    location ``scheme:rest`` (e.g. ``--registry myreg:prod``).
    """


@hookspec
def polybus_before_publish(
    event: CloudEvent, topic: str, batch_size: int
) -> Mapping[str, Any] | None:
    """Inspect an event before it is published.

    Return a mapping of attributes to add (enrichment, e.g. a trace id), or
    None; raise a ValidationError to reject the event before the network.
    Every implementation sees the event as the caller built it. `batch_size`
    is how many events the publish carries (1: a single event); like every
    hook argument, an implementation may leave it out of its signature.
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
