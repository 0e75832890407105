"""What the registry stores: one schema per event type and version, and how events name it.

An event names the schema its data follows in `dataschema`, as
``urn:polybus:schema:<event type>:<version>`` (a URN, so no server has to
exist). Versions are integers from 1, in registration order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from polybus.core.codecs.dataschema import URN_PREFIX, dataschema_uri, parse_dataschema
from polybus.core.errors import Problem
from polybus.core.schemas.errors import SchemaDefinitionError

SchemaKind = Literal["jsonschema", "avro"]
KINDS: tuple[SchemaKind, ...] = ("jsonschema", "avro")
EXTENSIONS: dict[SchemaKind, str] = {"jsonschema": ".json", "avro": ".avsc"}
MODES = (
    "none",
    "backward",
    "forward",
    "full",
    "backward_transitive",
    "forward_transitive",
    "full_transitive",
)
DEFAULT_MODE = "backward"
__all__ = [  # the URN helpers live in polybus.core.codecs.dataschema (below both packages)
    "DEFAULT_MODE",
    "EXTENSIONS",
    "KINDS",
    "MODES",
    "URN_PREFIX",
    "Schema",
    "SchemaKind",
    "TypeInfo",
    "check_definition",
    "dataschema_uri",
    "parse_dataschema",
]


@dataclass(frozen=True)
class Schema:
    """One version of an event type's data schema (JSON Schema or Avro)."""

    event_type: str
    version: int
    kind: SchemaKind
    definition: Any = field(compare=True)

    @property
    def uri(self) -> str:
        """The `dataschema` URI of this version."""
        return dataschema_uri(self.event_type, self.version)

    def text(self) -> str:
        """The definition as the file the directory backend writes."""
        return json.dumps(self.definition, indent=2, sort_keys=False) + "\n"


@dataclass(frozen=True)
class TypeInfo:
    """What the registry knows about an event type besides its schemas."""

    event_type: str
    compatibility: str = DEFAULT_MODE
    topics: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.compatibility not in MODES:
            raise SchemaDefinitionError(
                f"invalid settings for {self.event_type}",
                [
                    Problem(
                        "compatibility", self.compatibility, f"must be one of {', '.join(MODES)}"
                    )
                ],
            )


def check_definition(kind: str, definition: Any, where: str) -> None:
    """Raise SchemaDefinitionError when a definition is not a valid schema of its kind."""
    if kind not in KINDS:
        raise SchemaDefinitionError(
            "unknown schema kind", [Problem(where, kind, f"must be one of {', '.join(KINDS)}")]
        )
    try:
        if kind == "avro":
            import fastavro

            fastavro.parse_schema(definition)
        else:
            import jsonschema

            jsonschema.validators.validator_for(definition).check_schema(definition)
    except ImportError as exc:
        raise SchemaDefinitionError(
            "schema support is not installed",
            [Problem(where, kind, f"install polybus[schemas] ({exc.name} missing)")],
        ) from exc
    except Exception as exc:  # both libraries raise their own exception types
        raise SchemaDefinitionError(
            "invalid schema",
            [Problem(where, _preview(definition), f"not a valid {kind} schema: {exc}")],
        ) from exc


def _preview(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."
