"""google.pubsub.v1.SchemaService for the emulator: schemas with revisions, and validation.

Schemas live per project with every revision kept (newest first in listings);
commit adds a revision, rollback adds a copy of an older one, a revision can be
deleted unless it is the only one. Topics that name a schema in their
``schema_settings`` get every published message validated against the
revisions in their range (Pub/Sub accepts a message matching any of them) and
delivered with the ``googclient_schema*`` attributes Pub/Sub adds.

AVRO is validated with fastavro in Pub/Sub's two encodings (JSON: Avro's JSON
encoding; BINARY: Avro binary, schemaless); PROTOCOL_BUFFER definitions are
compiled with protoc from grpcio-tools (proto_schema.py) and messages parsed
as their one top-level type (BINARY: the wire format; JSON: protobuf's JSON
mapping). Both come with the `emulators` extra.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.pubsub_v1.types import pubsub as pubsub_types
from google.pubsub_v1.types import schema as types

from polybus.adapters.gcp.emulator.errors import RpcError
from polybus.adapters.gcp.emulator.proto_schema import ProtoSchemaError, Validator, compile_proto

Schema = types.Schema.pb()
SchemaSettings = pubsub_types.SchemaSettings.pb()
AVRO = types.Schema.Type.AVRO
PROTOCOL_BUFFER = types.Schema.Type.PROTOCOL_BUFFER
JSON = types.Encoding.JSON
BINARY = types.Encoding.BINARY
BASIC = types.SchemaView.BASIC
_SCHEMA_ID = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
_NAME = re.compile(r"(projects/[^/]+/schemas/[^@]+)(?:@(\w+))?")
_BAD = grpc.StatusCode.INVALID_ARGUMENT


@dataclass
class _Revision:
    message: Any  # a google.pubsub.v1.Schema protobuf
    validate: Validator  # raises unless the data conforms


@dataclass
class _Schema:
    revisions: list[_Revision] = field(default_factory=list)  # oldest first


class SchemaRegistry:
    """Every schema of one emulator, safe to call from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._schemas: dict[str, _Schema] = {}
        self._ticks = itertools.count()

    # -- administration -----------------------------------------------------------

    def create(self, request: Any) -> Any:
        """CreateSchema: the first revision; ALREADY_EXISTS when the id is taken."""
        if not _SCHEMA_ID.fullmatch(request.schema_id or ""):
            raise RpcError(_BAD, f"Invalid [schemas] name: ({request.schema_id})")
        name = f"{request.parent}/schemas/{request.schema_id}"
        with self._lock:
            if name in self._schemas:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Schema already exists")
            revision = self._revision(name, request.schema)
            self._schemas[name] = _Schema([revision])
        return revision.message

    def get(self, request: Any) -> Any:
        """GetSchema, by name or ``name@revision``; BASIC view omits the definition."""
        schema, revision = self._find(request.name)
        return _view(revision.message if revision else schema.revisions[-1].message, request.view)

    def list_schemas(self, parent: str, view: int) -> list[Any]:
        """The project's schemas (latest revision of each), sorted by name."""
        prefix = f"{parent}/schemas/"
        with self._lock:
            latest = [s.revisions[-1].message for n, s in self._schemas.items() if n.startswith(prefix)]
        return [_view(m, view) for m in sorted(latest, key=lambda m: m.name)]

    def list_revisions(self, name: str, view: int) -> list[Any]:
        """Every revision of a schema, newest first."""
        schema, _ = self._find(name)
        with self._lock:
            return [_view(r.message, view) for r in reversed(schema.revisions)]

    def commit(self, request: Any) -> Any:
        """CommitSchema: a new revision with a new definition (same type)."""
        schema, _ = self._find(request.name)
        with self._lock:
            if request.schema.type_ != schema.revisions[-1].message.type_:
                raise RpcError(_BAD, "A new revision must keep the schema's type")
            revision = self._revision(request.name, request.schema)
            schema.revisions.append(revision)
        return revision.message

    def rollback(self, request: Any) -> Any:
        """RollbackSchema: a new revision copying the definition of `revision_id`."""
        schema, _ = self._find(request.name)
        with self._lock:
            old = _by_id(schema, request.revision_id, request.name)
            revision = self._revision(request.name, old.message)
            schema.revisions.append(revision)
        return revision.message

    def delete_revision(self, request: Any) -> Any:
        """DeleteSchemaRevision: FAILED_PRECONDITION for the only revision."""
        name, revision_id = request.name, request.revision_id
        match = _NAME.fullmatch(name)
        if match and match.group(2):
            name, revision_id = match.group(1), match.group(2)
        schema, _ = self._find(name)
        with self._lock:
            target = _by_id(schema, revision_id, name)
            if len(schema.revisions) == 1:
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "Cannot delete the only revision of a schema; delete the schema instead",
                )
            schema.revisions.remove(target)
            return schema.revisions[-1].message

    def delete(self, name: str) -> None:
        """DeleteSchema: every revision. Topics that use it then refuse publishes."""
        self._find(name)
        with self._lock:
            self._schemas.pop(name, None)

    def exists(self, name: str) -> bool:
        """Whether `name` is a schema (for IAM)."""
        return name in self._schemas

    # -- validation -----------------------------------------------------------------

    def validate_schema(self, schema: Any) -> None:
        """ValidateSchema: INVALID_ARGUMENT naming the problem."""
        _parse(schema)

    def validate_message(self, request: Any) -> None:
        """ValidateMessage against a named schema (any revision ok) or an inline one."""
        encoding = request.encoding or JSON
        if request.name:
            schema, revision = self._find(request.name)
            candidates = [revision] if revision else list(reversed(schema.revisions))
            _check_any(candidates, request.message, encoding)
        else:
            _check_any([_Revision(request.schema, _parse(request.schema))], request.message, encoding)

    def check_settings(self, settings: Any) -> None:
        """A topic's schema_settings: the schema exists, the encoding and revisions are valid."""
        if not settings.schema:
            raise RpcError(_BAD, "schema_settings.schema is required")
        if settings.schema == "_deleted-schema_":
            return
        schema, _ = self._find(settings.schema)
        if settings.encoding not in (JSON, BINARY):
            raise RpcError(_BAD, "schema_settings.encoding must be JSON or BINARY")
        with self._lock:
            ids = [r.message.revision_id for r in schema.revisions]
        for rid in (settings.first_revision_id, settings.last_revision_id):
            if rid and rid not in ids:
                raise RpcError(_BAD, f"Revision {rid} of {settings.schema} does not exist")
        if (
            settings.first_revision_id
            and settings.last_revision_id
            and ids.index(settings.first_revision_id) > ids.index(settings.last_revision_id)
        ):
            raise RpcError(_BAD, "first_revision_id must not be newer than last_revision_id")

    def check_publish(self, settings: Any, data: bytes) -> dict[str, str]:
        """Validate one message for a topic's settings; the attributes Pub/Sub adds."""
        try:
            schema, _ = self._find(settings.schema)
        except RpcError as exc:
            raise RpcError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"The topic's schema {settings.schema} no longer exists",
            ) from exc
        with self._lock:
            revisions = list(schema.revisions)
        ids = [r.message.revision_id for r in revisions]
        first = ids.index(settings.first_revision_id) if settings.first_revision_id else 0
        last = ids.index(settings.last_revision_id) if settings.last_revision_id else len(ids) - 1
        matched = _check_any(list(reversed(revisions[first : last + 1])), data, settings.encoding)
        return {
            "googclient_schemaname": settings.schema,
            "googclient_schemaencoding": "JSON" if settings.encoding == JSON else "BINARY",
            "googclient_schemarevisionid": matched.message.revision_id,
        }

    # -- helpers --------------------------------------------------------------------

    def _revision(self, name: str, schema: Any) -> _Revision:
        parsed = _parse(schema)
        message = Schema()
        message.CopyFrom(schema)
        message.name = name
        message.revision_id = secrets.token_hex(4)
        now = time.time() + next(self._ticks) * 1e-6  # distinct, increasing create times
        message.revision_create_time.seconds = int(now)
        message.revision_create_time.nanos = int((now - int(now)) * 1e9)
        return _Revision(message, parsed)

    def _find(self, name: str) -> tuple[_Schema, _Revision | None]:
        match = _NAME.fullmatch(name or "")
        if match is None:
            raise RpcError(_BAD, f"Invalid [schemas] name: ({name})")
        with self._lock:
            schema = self._schemas.get(match.group(1))
            if schema is None:
                raise RpcError(grpc.StatusCode.NOT_FOUND, f"Schema {match.group(1)} not found")
            revision = _by_id(schema, match.group(2), name) if match.group(2) else None
        return schema, revision


def _by_id(schema: _Schema, revision_id: str, name: str) -> _Revision:
    for revision in schema.revisions:
        if revision.message.revision_id == revision_id:
            return revision
    raise RpcError(grpc.StatusCode.NOT_FOUND, f"Revision {revision_id} of {name} not found")


def _view(message: Any, view: int) -> Any:
    if view != BASIC:
        return message
    basic = Schema()
    basic.CopyFrom(message)
    basic.ClearField("definition")
    return basic


def _parse(schema: Any) -> Validator:
    """A validator of messages for `schema` (INVALID_ARGUMENT naming what is wrong with it)."""
    if schema.type_ == PROTOCOL_BUFFER:
        try:
            return compile_proto(schema.definition)
        except ProtoSchemaError as exc:
            raise RpcError(_BAD, f"Invalid PROTOCOL_BUFFER schema definition: {exc}") from exc
    if schema.type_ != AVRO:
        raise RpcError(_BAD, "Schema type must be AVRO or PROTOCOL_BUFFER")
    try:
        import fastavro
    except ImportError as exc:  # the emulator runs without the schemas extra otherwise
        raise RpcError(
            grpc.StatusCode.FAILED_PRECONDITION,
            "AVRO schemas need fastavro: pip install 'polybus[emulators]'",
        ) from exc
    try:
        parsed = fastavro.parse_schema(json.loads(schema.definition))
    except Exception as exc:  # fastavro raises several unrelated types for bad schemas
        raise RpcError(_BAD, f"Invalid AVRO schema definition: {exc}") from exc
    return lambda data, binary: _decode_avro(parsed, data, binary)


def _check_any(candidates: list[_Revision], data: bytes, encoding: int) -> _Revision:
    """The first revision `data` conforms to; INVALID_ARGUMENT when none does."""
    problem = "no revision"
    for revision in candidates:
        try:
            revision.validate(data, encoding == BINARY)
            return revision
        except Exception as exc:  # fastavro and protobuf raise many types for malformed data
            problem = str(exc) or type(exc).__name__
    raise RpcError(_BAD, f"Invalid data in message: Message failed schema validation ({problem})")


def _decode_avro(parsed: Any, data: bytes, binary: bool) -> None:
    import fastavro

    if binary:
        stream = io.BytesIO(data)
        fastavro.schemaless_reader(stream, parsed, None)
        if stream.tell() != len(data):
            raise ValueError(f"{len(data) - stream.tell()} trailing bytes after the record")
        return
    records = list(fastavro.json_reader(io.StringIO(data.decode("utf-8")), parsed))
    if len(records) != 1:
        raise ValueError(f"expected one JSON-encoded record, got {len(records)}")
