"""Tolerant readers: a consumer declares the fields it needs as a dataclass and reads any compatible version.

Unknown fields are ignored, missing fields take the dataclass defaults, and
every missing required or mistyped field is reported in one ReaderError.
Nested dataclasses, ``list[...]``, ``dict[str, ...]`` and ``X | None`` are
followed; ints are accepted where floats are declared (JSON does not tell
them apart) and integral floats where ints are (the Avro event format carries
JSON numbers as doubles).

`TolerantReader(Model, registry, upcasters, version=3)` reads events: it
decodes binary data (Avro/Protobuf, by the schema its dataschema names),
upcasts older versions to `version`, then builds the model.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import Problem
from polybus.core.schemas.errors import ReaderError
from polybus.core.schemas.model import parse_dataschema
from polybus.core.schemas.registry import SchemaRegistry
from polybus.core.schemas.upcasting import Upcasters

T = TypeVar("T")
_MISSING = dataclasses.MISSING


def read_data(model: type[T], data: Any, *, subject: str = "") -> T:
    """Build `model` (a dataclass) from plain data, tolerantly; ReaderError lists every problem."""
    problems: list[Problem] = []
    value = _build(model, data, "data", problems)
    if problems:
        raise ReaderError(subject or f"cannot read {model.__name__}", problems)
    return value  # type: ignore[no-any-return]


def _build(model: Any, data: Any, path: str, problems: list[Problem]) -> Any:
    if not isinstance(data, Mapping):
        problems.append(Problem(path, _short(data), f"must be an object for {model.__name__}"))
        return None
    hints = typing.get_type_hints(model)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(model):
        if not field.init:
            continue
        where = f"{path}.{field.name}"
        if field.name in data and data[field.name] is not None:
            kwargs[field.name] = _coerce(hints[field.name], data[field.name], where, problems)
        elif field.default is not _MISSING or field.default_factory is not _MISSING:
            continue  # the dataclass fills its default
        elif _optional(hints[field.name]):
            kwargs[field.name] = None
        else:
            problems.append(Problem(where, None, "required field is missing"))
    if any(p.field.startswith(path) for p in problems):
        return None
    return model(**kwargs)


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint) and _is_union(hint)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _coerce(hint: Any, value: Any, path: str, problems: list[Problem]) -> Any:
    if hint is Any:
        return value
    if _is_union(hint):
        options = [h for h in typing.get_args(hint) if h is not type(None)]
        for option in options:
            trial: list[Problem] = []
            result = _coerce(option, value, path, trial)
            if not trial:
                return result
        problems.append(
            Problem(path, _short(value), f"matches none of {[_name(o) for o in options]}")
        )
        return None
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path, problems)
    origin = typing.get_origin(hint)
    if origin in (list, tuple, typing.get_origin(typing.Sequence[int])):
        if not isinstance(value, list | tuple):
            problems.append(Problem(path, _short(value), "must be a list"))
            return None
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = [_coerce(item, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, typing.get_origin(typing.Mapping[str, int])):
        if not isinstance(value, Mapping):
            problems.append(Problem(path, _short(value), "must be an object"))
            return None
        vhint = typing.get_args(hint)[1] if typing.get_args(hint) else Any
        return {k: _coerce(vhint, v, f"{path}.{k}", problems) for k, v in value.items()}
    if hint is float and type(value) is int:
        return float(value)
    if hint is int and type(value) is float and value.is_integer():
        return int(value)
    if (
        isinstance(hint, type)
        and issubclass(hint, str)
        and hint is not str
        and isinstance(value, str)
    ):
        try:
            return hint(value)  # str-valued enums
        except ValueError:
            problems.append(Problem(path, value, f"not a {hint.__name__} value"))
            return None
    if (
        isinstance(hint, type)
        and (type(value) is bool) != (hint is bool)
        and hint in (int, float, bool)
    ):
        problems.append(Problem(path, _short(value), f"must be {hint.__name__}"))
        return None
    if isinstance(hint, type) and not isinstance(value, hint):
        problems.append(
            Problem(path, _short(value), f"must be {hint.__name__}, got {type(value).__name__}")
        )
        return None
    return value


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def _short(value: Any, limit: int = 60) -> Any:
    text = repr(value)
    return value if len(text) <= limit else text[:limit] + "..."


class TolerantReader(Generic[T]):
    """Reads events of one type into a dataclass, from any compatible (or upcastable) version."""

    def __init__(
        self,
        model: type[T],
        registry: SchemaRegistry | None = None,
        upcasters: Upcasters | None = None,
        *,
        version: int | None = None,
    ) -> None:
        self.model = model
        self.registry = registry
        self.upcasters = upcasters
        self.version = version

    def data_of(self, event: CloudEvent) -> Any:
        """The event's data as plain values at the reader's version (decoded and upcast)."""
        data = event.get_data()
        named = parse_dataschema(event.get_dataschema())
        if isinstance(data, bytes | bytearray):
            from polybus.core.schemas.data import decode_data, is_binary_content_type

            if (
                named is None
                or self.registry is None
                or not is_binary_content_type(event.get_datacontenttype())
            ):
                raise ReaderError(
                    f"cannot read {self.model.__name__}",
                    [
                        Problem(
                            "data",
                            f"{len(data)} bytes",
                            "binary data needs a registry and a dataschema naming its version",
                        )
                    ],
                )
            data = decode_data(self.registry.get(*named), bytes(data), event.get_datacontenttype())
        if self.upcasters is not None and self.version is not None and named is not None:
            data = self.upcasters.upcast(named[0], data, named[1], self.version)
        return data

    def read(self, event: CloudEvent) -> T:
        """The model built from the event; ReaderError lists every missing or mistyped field."""
        subject = (
            f"event {event.get_id()} ({event.get_type()}) cannot be read as {self.model.__name__}"
        )
        return read_data(self.model, self.data_of(event), subject=subject)
