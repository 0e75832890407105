"""Bind a user's handler: sync or async, with or without a Context, with a typed payload.

A handler's first parameter receives the event, or its data parsed into the
annotated type: a dataclass (fields filled from the data object) or any class
with a pydantic-style ``model_validate``. A second parameter, or one annotated
``Context``, receives the context. Parse failures raise PayloadError, which the
runtime dead-letters at once with the message: retrying cannot fix the data.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import Problem, ValidationError
from polybus.core.runtime.context import Context


class PayloadError(ValidationError):
    """An event's data does not fit the handler's declared payload type."""


@dataclass(frozen=True)
class HandlerCall:
    """A bound handler: how to call it, and whether it must run in a thread."""

    name: str
    is_async: bool
    invoke: Callable[[CloudEvent, Context], Any]

    def __call__(self, event: CloudEvent, ctx: Context) -> Any | Awaitable[Any]:
        """Call the handler (an awaitable when it is async)."""
        return self.invoke(event, ctx)


def bind_handler(func: Callable[..., Any]) -> HandlerCall:
    """Inspect `func` once and return how to call it with (event, context)."""
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func)
    except (NameError, TypeError) as exc:  # never guess: an unresolved payload type is an error
        raise TypeError(
            f"handler {getattr(func, '__qualname__', func)!r}: cannot resolve its annotations "
            f"({exc}); define payload types at module level"
        ) from exc
    params = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not params:
        raise TypeError(f"handler {func.__qualname__} must take the event as its first parameter")
    payload = _payload_parser(hints.get(params[0].name))
    wants_context = len(params) > 1 or any(hints.get(p.name) is Context for p in params[1:])
    is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an async callable object
    )

    def invoke(event: CloudEvent, ctx: Context) -> Any:
        first = event if payload is None else payload(event)
        return func(first, ctx) if wants_context else func(first)

    return HandlerCall(getattr(func, "__qualname__", repr(func)), is_async, invoke)


def _payload_parser(annotation: Any) -> Callable[[CloudEvent], Any] | None:
    """A parser of the event's data into `annotation`, or None when the handler takes the event."""
    if annotation is None or annotation is CloudEvent or annotation is Any:
        return None
    if not isinstance(annotation, type):
        return None
    if dataclasses.is_dataclass(annotation):
        return lambda event: _to_dataclass(annotation, event)
    validate = getattr(annotation, "model_validate", None)
    if callable(validate):
        return lambda event: _to_model(annotation, validate, event)
    return None


def _data_object(cls: type, event: CloudEvent) -> dict[str, Any]:
    data = event.get_data()
    if not isinstance(data, dict):
        raise PayloadError(
            f"event {event.get_id()} does not fit {cls.__name__}",
            [Problem("data", type(data).__name__, f"must be a JSON object for {cls.__name__}")],
        )
    return data


def _to_dataclass(cls: type, event: CloudEvent) -> Any:
    data = _data_object(cls, event)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems = [
        Problem(f"data.{name}", None, "required field is missing")
        for name, f in fields.items()
        if name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.init
    ]
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        expected = hints.get(name)
        if name in fields and isinstance(expected, type) and not _fits(value, expected):
            problems.append(Problem(f"data.{name}", value, f"must be {expected.__name__}"))
    if problems:
        raise PayloadError(f"event {event.get_id()} does not fit {cls.__name__}", problems)
    return cls(**{k: v for k, v in data.items() if k in fields and fields[k].init})


def _fits(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _to_model(cls: type, validate: Callable[[Any], Any], event: CloudEvent) -> Any:
    data = _data_object(cls, event)
    try:
        return validate(data)
    except ValueError as exc:  # pydantic's ValidationError subclasses ValueError
        raise PayloadError(
            f"event {event.get_id()} does not fit {cls.__name__}",
            [Problem("data", "(see rule)", str(exc).replace("\n", "; "))],
        ) from exc
