"""Errors of the schema registry, under the polybus tree (core.errors).

ValidationError (core.errors)
├── SchemaValidationError: event data does not match its schema (every problem listed)
├── IncompatibleSchemaError: a new version breaks the type's compatibility mode
├── SchemaDefinitionError: a schema file or definition is malformed
└── ReaderError: a tolerant reader cannot build its model (missing or mistyped fields)
SchemaNotFoundError (PolybusError, LookupError): no such event type or version
"""

from __future__ import annotations

from polybus.core.errors import PolybusError, ValidationError


class SchemaValidationError(ValidationError):
    """Event data does not follow the schema its event names (or its type's latest)."""


class IncompatibleSchemaError(ValidationError):
    """Registering a version would break the compatibility mode of its event type."""


class SchemaDefinitionError(ValidationError):
    """A schema definition (JSON Schema or Avro) is malformed."""


class ReaderError(ValidationError):
    """A tolerant reader could not build its model from the event data."""


class SchemaNotFoundError(PolybusError, LookupError):
    """The registry has no schema for that event type (or version)."""

    def __init__(self, event_type: str, version: int | None = None) -> None:
        self.event_type = event_type
        self.version = version
        what = event_type if version is None else f"{event_type} version {version}"
        super().__init__(f"no schema registered for {what}")
