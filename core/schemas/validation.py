"""Check event data against a registered schema, reporting every problem at once.

JSON Schema through `jsonschema` (the dialect the schema's ``$schema`` names,
draft 2020-12 by default); Avro through `fastavro`. Data that travels
Avro-encoded (datacontenttype application/avro) is valid when it decodes with
the schema. Validators are built once per schema.
"""

from __future__ import annotations

from typing import Any

from core.errors import Problem
from core.schemas.errors import SchemaValidationError
from core.schemas.model import Schema

_VALIDATORS: dict[tuple[str, int, int], Any] = {}


def data_problems(schema: Schema, data: Any, datacontenttype: str | None = None) -> list[Problem]:
    """Every way `data` breaks `schema` (empty when valid)."""
    if isinstance(data, bytes | bytearray):
        from core.codecs.data import decode_data, is_binary_content_type

        if not is_binary_content_type(datacontenttype):
            return [
                Problem(
                    "data",
                    f"{len(data)} bytes",
                    f"binary data ({datacontenttype}) cannot be checked against a schema",
                )
            ]
        try:
            decode_data(schema, bytes(data), datacontenttype)
        except Exception as exc:  # fastavro and protobuf raise assorted types on corrupt input
            return [
                Problem(
                    "data",
                    f"{len(data)} bytes",
                    f"does not decode as {datacontenttype} with {schema.uri}: {exc}",
                )
            ]
        return []
    if schema.kind == "avro":
        return _avro_problems(schema, data)
    return _json_problems(schema, data)


def validate_data(
    schema: Schema, data: Any, datacontenttype: str | None = None, *, subject: str = ""
) -> None:
    """Raise SchemaValidationError listing every problem of `data` against `schema`."""
    problems = data_problems(schema, data, datacontenttype)
    if problems:
        raise SchemaValidationError(subject or f"data does not match {schema.uri}", problems)


def _validator(schema: Schema) -> Any:
    key = (schema.event_type, schema.version, id(schema.definition))
    found = _VALIDATORS.get(key)
    if found is None:
        if schema.kind == "avro":
            import fastavro

            found = fastavro.parse_schema(schema.definition)
        else:
            import jsonschema

            cls = jsonschema.validators.validator_for(
                schema.definition, default=jsonschema.Draft202012Validator
            )
            found = cls(schema.definition)
        _VALIDATORS[key] = found
    return found


def _json_problems(schema: Schema, data: Any) -> list[Problem]:
    validator = _validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        path = "data" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        problems.append(Problem(path, _short(error.instance), error.message))
    return problems


def _avro_problems(schema: Schema, data: Any) -> list[Problem]:
    from fastavro.validation import ValidationError as AvroValidationError
    from fastavro.validation import validate

    try:
        validate(data, _validator(schema), raise_errors=True)
    except AvroValidationError as exc:
        return [
            Problem(
                f"data.{e.field}" if e.field else "data",
                _short(e.datum),
                f"does not match Avro type {_short(e.schema)}",
            )
            for e in exc.errors
        ]
    return []


def _short(value: Any, limit: int = 60) -> Any:
    text = repr(value)
    return value if len(text) <= limit else text[:limit] + "..."
