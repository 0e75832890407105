"""Encode and decode CloudEvents: JSON structured mode and HTTP binary mode.

The JSON path is written for speed (it runs once per event on every adapter):
plain `json` without a custom encoder, `datetime.fromisoformat` instead of
dateutil. Its output is the CloudEvents JSON format exactly as the SDK's
`JSONFormat` writes it, and it reads what that format writes. HTTP binary mode
is written with the SDK's binding and read by our own reader, which reads what
the SDK's reads.

Every decoder raises only EventValidationError (a ValueError) naming the field
and the rule, whatever the input: invalid UTF-8, JSON nested deeper than the
interpreter can parse, wrong types, bad headers.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import datetime
from json.encoder import c_encode_basestring, c_make_encoder  # type: ignore[attr-defined]
from json.scanner import c_make_scanner  # type: ignore[attr-defined]
from typing import Any
from urllib.parse import unquote

from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import EventValidationError, Problem
from polybus.core.events import brief as _shown
from polybus.core.events import build_event, validate_attributes

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
_JSON_TYPE = re.compile(r"^(application|text)/([a-zA-Z0-9\-.]+\+)?json(;.*)?$")
_SDK_FORMAT = JSONFormat()
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
_DECODER = json.JSONDecoder()


def _unencodable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder, made once instead of once per call (CPython always has it).
_c_encode = (
    c_make_encoder(None, _unencodable, c_encode_basestring, None, ":", ",", False, False, True)
    if c_make_encoder is not None
    else None
)


def dumps_json(obj: Any) -> str:
    """Compact JSON text (no spaces, UTF-8 kept), through one reused C encoder."""
    if _c_encode is None:  # pragma: no cover - other Pythons
        return _ENCODER.encode(obj)
    return "".join(_c_encode(obj, 0))


_scan_once = c_make_scanner(_DECODER) if c_make_scanner is not None else None


class _NestedTooDeeply(ValueError):
    """JSON nested deeper than the interpreter's recursion limit lets the scanner read."""


def loads_json(payload: bytes | str) -> Any:
    """json.loads without its per-call wrappers: the C scanner, then a trailing-data check.

    Raises ValueError for anything that is not JSON, including invalid UTF-8
    and nesting deeper than the interpreter's recursion limit.
    """
    text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload
    if type(text) is not str:
        raise ValueError(f"JSON must be bytes or str, not {type(payload).__name__}")
    try:
        if _scan_once is None:  # pragma: no cover - other Pythons
            return _DECODER.decode(text)
        try:
            obj, end = _scan_once(text, 0)
        except StopIteration:
            return _DECODER.decode(text)  # raises the standard JSONDecodeError with its position
        if end != len(text) and text[end:].strip():
            return _DECODER.decode(text)  # "Extra data" error, as json.loads reports it
    except RecursionError:
        raise _NestedTooDeeply("JSON nested too deeply to read") from None
    return obj


def is_json_content_type(content_type: str | None) -> bool:
    """True for absent, application/json, text/json and any +json media type."""
    if content_type is None or content_type == "application/json":
        return True
    return _JSON_TYPE.match(content_type) is not None


def _time_string(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_PLAIN = frozenset((str, int, bool))


def to_dict(event: CloudEvent) -> dict[str, Any]:
    """The event as a JSON-format object (attributes, then data or data_base64)."""
    attrs = event.get_attributes()
    out = dict(attrs)
    time = out.get("time")
    if type(time) is datetime:
        out["time"] = _time_string(time)
    if not _PLAIN.issuperset(map(type, out.values())):  # rare: bytes, datetime or None values
        for name, value in list(out.items()):
            if value is None:
                del out[name]
            elif isinstance(value, datetime):
                out[name] = _time_string(value)
            elif isinstance(value, bytes):
                out[name] = base64.b64encode(value).decode("ascii")
    data = event.get_data()
    if data is None:
        return out
    if isinstance(data, bytes | bytearray):
        out["data_base64"] = base64.b64encode(data).decode("ascii")
    elif is_json_content_type(out.get("datacontenttype")):
        out["data"] = data
    else:
        out["data"] = data if isinstance(data, str) else str(data)
    return out


def from_dict(obj: Mapping[str, Any], *, where: str = "event", owned: bool = False) -> CloudEvent:
    """Read a JSON-format object back into a validated CloudEvent.

    `owned=True` lets it reuse `obj` (a dict fresh from json.loads) instead of copying.
    """
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise EventValidationError(
            "invalid CloudEvent", [Problem(where, _shown(obj), "must be a JSON object")]
        )
    attrs = obj if owned and type(obj) is dict else dict(obj)
    data = attrs.pop("data", None)
    encoded = attrs.pop("data_base64", None)
    if encoded is not None:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (ValueError, TypeError) as exc:
            raise EventValidationError(
                "invalid CloudEvent",
                [Problem("data_base64", _shown(encoded), f"must be base64 ({exc})")],
            ) from exc
    parse_time(attrs)
    validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)


def parse_time(attrs: dict[str, Any]) -> None:
    """Turn an RFC 3339 `time` attribute read from the wire into a datetime, in place."""
    time = attrs.get("time")
    if type(time) is str:
        try:
            attrs["time"] = datetime.fromisoformat(time)
        except ValueError as exc:
            raise EventValidationError(
                "invalid CloudEvent", [Problem("time", time, "must be an RFC 3339 timestamp")]
            ) from exc


def to_json(event: CloudEvent) -> bytes:
    """Structured-mode JSON bytes (application/cloudevents+json)."""
    return dumps_json(to_dict(event)).encode("utf-8")


def from_json(payload: bytes | str) -> CloudEvent:
    """Read structured-mode JSON; malformed input raises EventValidationError."""
    try:
        obj = loads_json(payload)
    except ValueError as exc:
        raise EventValidationError(
            "invalid CloudEvent JSON", [Problem("body", _preview(payload), f"not JSON: {exc}")]
        ) from exc
    return from_dict(obj, owned=True)


def to_json_batch(events: list[CloudEvent]) -> bytes:
    """A JSON array of structured events (application/cloudevents-batch+json)."""
    return dumps_json([to_dict(e) for e in events]).encode("utf-8")


def from_json_batch(payload: bytes | str) -> list[CloudEvent]:
    """Read a JSON batch; each event is validated."""
    try:
        items = loads_json(payload)
    except ValueError as exc:
        raise EventValidationError(
            "invalid CloudEvents batch", [Problem("body", _preview(payload), f"not JSON: {exc}")]
        ) from exc
    if not isinstance(items, list):
        raise EventValidationError(
            "invalid CloudEvents batch",
            [Problem("body", _preview(payload), "must be a JSON array")],
        )
    return [from_dict(item, where=f"[{i}]", owned=True) for i, item in enumerate(items)]


def to_http_binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """HTTP binary mode: ce-* headers (Content-Type for datacontenttype) and the data as body."""
    message = sdk_http.to_binary(event, _SDK_FORMAT)
    return dict(message.headers), message.body


def from_http_binary(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Read HTTP binary mode (header names case-insensitive); EventValidationError when malformed.

    Reads what the SDK's `from_binary` reads: ce-* headers percent-decoded,
    Content-Type as datacontenttype, a JSON body parsed when the content type
    is JSON (else text, else bytes), an empty body as no data.
    """
    if not isinstance(headers, Mapping):
        raise EventValidationError(
            "invalid HTTP binary CloudEvent",
            [Problem("headers", type(headers).__name__, "must be a mapping of strings")],
        )
    if not isinstance(body, bytes | bytearray):
        raise EventValidationError(
            "invalid HTTP binary CloudEvent",
            [Problem("body", type(body).__name__, "must be bytes")],
        )
    attrs: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            problems.append(Problem(f"header {_shown(name)}", _shown(value), "must be a string"))
            continue
        lowered = name.lower()
        if lowered.startswith("ce-"):
            attrs[lowered[3:]] = unquote(value)
        elif lowered == "content-type":
            attrs["datacontenttype"] = value
    if problems:
        raise EventValidationError("invalid HTTP binary CloudEvent", problems)
    parse_time(attrs)
    data = _binary_data(bytes(body), attrs.get("datacontenttype"))
    validate_attributes(attrs, data, check_data=False)
    return build_event(attrs, data)


def _binary_data(body: bytes, content_type: str | None) -> Any:
    """The SDK's JSONFormat.read_data, with deep nesting an error instead of a RecursionError."""
    if not body:
        return None
    if is_json_content_type(content_type):
        try:
            return loads_json(body)
        except _NestedTooDeeply:
            raise EventValidationError(
                "invalid HTTP binary CloudEvent",
                [Problem("data", _preview(body), "JSON nested too deeply to read")],
            ) from None
        except ValueError:
            pass  # not JSON after all: read as text, as the SDK does
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body


def _preview(payload: bytes | str, limit: int = 60) -> str:
    if isinstance(payload, bytes | bytearray):
        text = bytes(payload[: limit * 4]).decode("utf-8", "replace")
    elif isinstance(payload, str):
        text = payload
    else:
        return type(payload).__name__
    return text if len(text) <= limit else text[:limit] + "..."
