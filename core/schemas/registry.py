"""The schema registry: register versions under a compatibility mode, look schemas up for events.

An event is only ever checked against a schema registered for its own type:
its `type` must be a name a schema can be registered under (see
`backends.type_name_problem`), and a `dataschema` registry URN must name that
same type. Anything else is a SchemaValidationError naming the field and the
rule, never a lookup elsewhere (another type's schema, or a path outside the
registry's root).
"""

from __future__ import annotations

import os
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import Problem
from polybus.core.schemas.backends import (
    SchemaBackend,
    check_type_name,
    open_backend,
    type_name_problem,
)
from polybus.core.schemas.compatibility import CompatibilityReport, check_compatibility
from polybus.core.schemas.errors import (
    IncompatibleSchemaError,
    SchemaNotFoundError,
    SchemaValidationError,
)
from polybus.core.schemas.model import (
    URN_PREFIX,
    Schema,
    SchemaKind,
    TypeInfo,
    check_definition,
    parse_dataschema,
)

URN_RULE = f"a registry URN is {URN_PREFIX}<event type>:<version in ASCII digits>"


class SchemaRegistry:
    """Versions of each event type's data schema, kept in a backend (a directory by default)."""

    def __init__(self, backend: SchemaBackend | str | os.PathLike[str] = "memory:") -> None:
        self.backend = backend if isinstance(backend, SchemaBackend) else open_backend(backend)
        self._latest: dict[str, Schema] = {}

    # writing -----------------------------------------------------------------

    def configure(
        self,
        event_type: str,
        *,
        compatibility: str | None = None,
        topics: tuple[str, ...] | list[str] | None = None,
        description: str | None = None,
    ) -> TypeInfo:
        """Set an event type's compatibility mode, topics or description."""
        check_type_name(event_type)
        info = self.backend.type_info(event_type)
        info = TypeInfo(
            event_type,
            compatibility=info.compatibility if compatibility is None else compatibility,
            topics=info.topics if topics is None else tuple(topics),
            description=info.description if description is None else description,
        )
        self.backend.save_type_info(info)
        return info

    def check(
        self, event_type: str, definition: Any, kind: SchemaKind = "jsonschema"
    ) -> CompatibilityReport:
        """What registering `definition` as the next version would break (nothing is stored)."""
        check_type_name(event_type)
        check_definition(kind, definition, event_type)
        versions = self.backend.versions(event_type)
        new = Schema(event_type, (versions[-1] if versions else 0) + 1, kind, definition)
        earlier = [self.backend.load(event_type, v) for v in versions]
        return check_compatibility(new, earlier, self.backend.type_info(event_type).compatibility)

    def register(self, event_type: str, definition: Any, kind: SchemaKind = "jsonschema") -> Schema:
        """Store the next version; IncompatibleSchemaError (listing every break) if it breaks the mode.

        Registering a definition equal to the latest returns the latest (idempotent).
        """
        latest = self.latest_or_none(event_type)
        if latest is not None and latest.kind == kind and latest.definition == definition:
            return latest
        report = self.check(event_type, definition, kind)
        if not report.compatible:
            raise IncompatibleSchemaError(
                f"{event_type} v{report.version} breaks {report.mode} compatibility",
                [b.problem() for b in report.breaks],
            )
        schema = Schema(event_type, report.version, kind, definition)
        self.backend.save(schema)
        self._latest[event_type] = schema
        return schema

    # reading -----------------------------------------------------------------

    def event_types(self) -> list[str]:
        """Every registered event type."""
        return self.backend.event_types()

    def versions(self, event_type: str) -> list[int]:
        """The type's versions, ascending."""
        return self.backend.versions(event_type)

    def get(self, event_type: str, version: int) -> Schema:
        """One version; SchemaNotFoundError when absent."""
        return self.backend.load(event_type, version)

    def latest_or_none(self, event_type: str) -> Schema | None:
        """The newest version, or None for an unknown type."""
        cached = self._latest.get(event_type)
        if cached is not None:
            return cached
        versions = self.backend.versions(event_type)
        if not versions:
            return None
        schema = self._latest[event_type] = self.backend.load(event_type, versions[-1])
        return schema

    def latest(self, event_type: str) -> Schema:
        """The newest version; SchemaNotFoundError for an unknown type."""
        schema = self.latest_or_none(event_type)
        if schema is None:
            raise SchemaNotFoundError(event_type)
        return schema

    def info(self, event_type: str) -> TypeInfo:
        """The type's settings."""
        return self.backend.type_info(event_type)

    def for_event(self, event: CloudEvent) -> Schema | None:
        """The schema an event's `dataschema` names, else its type's latest; None when unregistered.

        SchemaValidationError when the type cannot name a schema or the
        `dataschema` URN is malformed or names another type; SchemaNotFoundError
        when it names a version the registry lacks.
        """
        event_type = event.get_type()
        uri = event.get_dataschema()
        subject = f"event {event.get_id()} ({str(event_type)[:300]}): no schema may be looked up"
        problem = type_name_problem(event_type)
        if problem is not None:
            raise SchemaValidationError(subject, [problem])
        if uri is None or not uri.startswith(URN_PREFIX):
            return self.latest_or_none(event_type)
        named = None
        if uri.rpartition(":")[2].isascii():  # str.isdigit (in parse_dataschema) accepts '²'
            try:
                named = parse_dataschema(uri)
            except ValueError:  # more digits than int() reads
                named = None
        if named is None:
            raise SchemaValidationError(subject, [Problem("dataschema", uri[:300], URN_RULE)])
        named_type, version = named
        if named_type != event_type:
            raise SchemaValidationError(
                subject,
                [
                    Problem(
                        "dataschema",
                        uri[:300],
                        f"names a schema of type {named_type[:300]!r}; an event may only name "
                        f"a schema registered for its own type {event_type!r}",
                    )
                ],
            )
        return self.get(event_type, version)

    def history_reports(self, event_type: str) -> list[CompatibilityReport]:
        """Each stored version checked against the ones before it (for `polybus schema check`)."""
        mode = self.backend.type_info(event_type).compatibility
        schemas = [self.backend.load(event_type, v) for v in self.backend.versions(event_type)]
        return [check_compatibility(s, schemas[:i], mode) for i, s in enumerate(schemas) if i]
