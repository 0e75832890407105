"""Event contracts: a schema registry with compatibility checks, validation middleware,
tolerant readers and upcasters.

JSON Schema and Avro support come from the ``polybus[schemas]`` extra
(jsonschema, fastavro, protobuf), imported on first use.
"""

from polybus.core.schemas.backends import (
    DirectoryBackend,
    MemoryBackend,
    SchemaBackend,
    open_backend,
    register_backend,
)
from polybus.core.schemas.compatibility import Break, CompatibilityReport, check_compatibility
from polybus.core.schemas.errors import (
    IncompatibleSchemaError,
    ReaderError,
    SchemaDefinitionError,
    SchemaNotFoundError,
    SchemaValidationError,
)
from polybus.core.schemas.model import Schema, TypeInfo, dataschema_uri, parse_dataschema
from polybus.core.schemas.registry import SchemaRegistry

__all__ = [
    "Break",
    "CompatibilityReport",
    "DirectoryBackend",
    "IncompatibleSchemaError",
    "MemoryBackend",
    "ReaderError",
    "Schema",
    "SchemaBackend",
    "SchemaDefinitionError",
    "SchemaNotFoundError",
    "SchemaRegistry",
    "SchemaValidationError",
    "TypeInfo",
    "check_compatibility",
    "dataschema_uri",
    "open_backend",
    "parse_dataschema",
    "register_backend",
]
