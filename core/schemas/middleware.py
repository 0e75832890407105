"""Schema validation as a middleware plugin: reject invalid events before the network, dead-letter on receive.

    pm = plugin_manager([SchemaValidation(registry)])
    bus = connect(pm=pm)

On publish, an event whose type is registered is checked against the schema
its `dataschema` names (else the type's latest, whose URN is then stamped
into `dataschema`); an invalid one raises SchemaValidationError before the
network. On receive, the same check runs before the handler; a failure
dead-letters the event at once with the report as the reason. With
`readers={subscription: TolerantReader}`, the reader must also succeed.
Unregistered types pass unless `require_schema=True`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import Problem
from polybus.core.hookspecs import hookimpl
from polybus.core.schemas.errors import ReaderError, SchemaNotFoundError, SchemaValidationError
from polybus.core.schemas.model import Schema
from polybus.core.schemas.reader import TolerantReader
from polybus.core.schemas.registry import SchemaRegistry
from polybus.core.schemas.validation import data_problems


class SchemaValidation:
    """Plugin object with polybus_before_publish / polybus_before_handle hookimpls."""

    def __init__(
        self,
        registry: SchemaRegistry,
        *,
        on_publish: bool = True,
        on_receive: bool = True,
        require_schema: bool = False,
        stamp_dataschema: bool = True,
        readers: Mapping[str, TolerantReader[Any]] | None = None,
    ) -> None:
        self.registry = registry
        self.on_publish = on_publish
        self.on_receive = on_receive
        self.require_schema = require_schema
        self.stamp_dataschema = stamp_dataschema
        self.readers = dict(readers or {})

    def check(self, event: CloudEvent, when: str) -> Schema | None:
        """The event's schema after validating its data; SchemaValidationError lists every problem."""
        subject = f"event {event.get_id()} ({event.get_type()}) {when}"
        try:
            schema = self.registry.for_event(event)
        except SchemaNotFoundError as exc:
            raise SchemaValidationError(
                subject, [Problem("dataschema", event.get_dataschema(), str(exc))]
            ) from exc
        if schema is None:
            if self.require_schema:
                raise SchemaValidationError(
                    subject,
                    [Problem("type", event.get_type(), "no schema is registered for this type")],
                )
            return None
        problems = data_problems(schema, event.get_data(), event.get_datacontenttype())
        if problems:
            raise SchemaValidationError(f"{subject}: data does not match {schema.uri}", problems)
        return schema

    @hookimpl
    def polybus_before_publish(self, event: CloudEvent, topic: str) -> Mapping[str, Any] | None:
        """Validate before the network; stamp the schema's URN when the event names none."""
        if not self.on_publish:
            return None
        schema = self.check(event, "rejected before publish")
        if schema is not None and self.stamp_dataschema and event.get_dataschema() is None:
            return {"dataschema": schema.uri}
        return None

    @hookimpl
    def polybus_before_handle(self, event: CloudEvent, subscription: str) -> None:
        """Validate (and try the subscription's reader) before the handler; failures dead-letter."""
        if not self.on_receive:
            return
        self.check(event, "dead-lettered on receive")
        reader = self.readers.get(subscription)
        if reader is not None:
            try:
                reader.read(event)
            except ReaderError as exc:
                raise SchemaValidationError(exc.subject, exc.problems) from exc
