"""Check event data against a registered schema, reporting every problem at once.

JSON Schema through `jsonschema` (the dialect the schema's ``$schema`` names,
draft 2020-12 by default); Avro by a checker of our own (fastavro's stops at the first problem). Data that travels
Avro-encoded (datacontenttype application/avro) is valid when it decodes with
the schema. Validators are built once per schema.
"""

from __future__ import annotations

from typing import Any

from polybus.core.errors import Problem
from polybus.core.schemas.errors import SchemaValidationError
from polybus.core.schemas.model import Schema

_VALIDATORS: dict[tuple[str, int, int], Any] = {}


def data_problems(schema: Schema, data: Any, datacontenttype: str | None = None) -> list[Problem]:
    """Every way `data` breaks `schema` (empty when valid)."""
    if isinstance(data, bytes | bytearray):
        from polybus.core.schemas.data import decode_data, is_binary_content_type

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


def _json_validator(schema: Schema) -> Any:
    key = (schema.event_type, schema.version, id(schema.definition))
    found = _VALIDATORS.get(key)
    if found is None:
        import jsonschema

        cls = jsonschema.validators.validator_for(
            schema.definition, default=jsonschema.Draft202012Validator
        )
        found = _VALIDATORS[key] = cls(schema.definition)
    return found


def _json_problems(schema: Schema, data: Any) -> list[Problem]:
    validator = _json_validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        path = "data" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        problems.append(Problem(path, _short(error.instance), error.message))
    return problems


def _avro_problems(schema: Schema, data: Any) -> list[Problem]:
    from polybus.core.schemas.compat_avro import _names

    problems: list[Problem] = []
    _avro_check(schema.definition, data, "data", _names(schema.definition), problems)
    return problems


_AVRO_RANGES = {"int": 2**31, "long": 2**63}
_AVRO_SIMPLE: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "string": (str,),
    "bytes": (bytes,),
}


def _avro_check(
    avro: Any, value: Any, path: str, names: dict[str, Any], out: list[Problem]
) -> None:
    """Collect every mismatch of `value` against an Avro type (fastavro stops at the first)."""
    if isinstance(avro, str) and avro in names:
        avro = names[avro]
    if isinstance(avro, list):
        for branch in avro:
            trial: list[Problem] = []
            _avro_check(branch, value, path, names, trial)
            if not trial:
                return
        out.append(Problem(path, _short(value), f"matches no branch of {_short(avro)}"))
        return
    kind = avro.get("type") if isinstance(avro, dict) else avro
    if isinstance(kind, dict | list):
        _avro_check(kind, value, path, names, out)
    elif kind in _AVRO_SIMPLE:
        if not isinstance(value, _AVRO_SIMPLE[kind]) or (kind != "boolean" and type(value) is bool):
            out.append(Problem(path, _short(value), f"must be Avro {kind}"))
    elif kind in _AVRO_RANGES:
        bound = _AVRO_RANGES[kind]
        if type(value) is not int or not -bound <= value < bound:
            out.append(Problem(path, _short(value), f"must be Avro {kind}"))
    elif kind in ("float", "double"):
        if type(value) not in (int, float):
            out.append(Problem(path, _short(value), f"must be Avro {kind} (a number)"))
    elif kind == "enum":
        if value not in avro["symbols"]:
            out.append(Problem(path, _short(value), f"must be one of {avro['symbols']}"))
    elif kind == "fixed":
        if not isinstance(value, bytes) or len(value) != avro["size"]:
            out.append(Problem(path, _short(value), f"must be {avro['size']} bytes"))
    elif kind == "array":
        if not isinstance(value, list | tuple):
            out.append(Problem(path, _short(value), "must be an array"))
            return
        for i, item in enumerate(value):
            _avro_check(avro["items"], item, f"{path}[{i}]", names, out)
    elif kind == "map":
        if not isinstance(value, dict):
            out.append(Problem(path, _short(value), "must be a map"))
            return
        for key, item in value.items():
            _avro_check(avro["values"], item, f"{path}.{key}", names, out)
    elif kind in ("record", "error"):
        if not isinstance(value, dict):
            out.append(Problem(path, _short(value), f"must be a {avro['name']} record (an object)"))
            return
        for field in avro["fields"]:
            where = f"{path}.{field['name']}"
            if field["name"] in value:
                _avro_check(field["type"], value[field["name"]], where, names, out)
            elif "default" not in field:
                out.append(Problem(where, None, "required field is missing"))
    else:
        out.append(Problem(path, _short(value), f"unknown Avro type {kind!r}"))


def _short(value: Any, limit: int = 60) -> Any:
    text = repr(value)
    return value if len(text) <= limit else text[:limit] + "..."
