"""Create and validate CloudEvents (the `cloudevents` SDK's v1 event, not a fork).

`EventFactory` fills id, time and specversion from an injectable id factory and
clock, so simulated and test runs are reproducible; `new_event` uses a default
factory (uuid4 ids, the wall clock). `validate_attributes` reports every
problem in one `EventValidationError` naming attribute, value and rule; the
values it names are cut short (`brief`), so an error about a huge or deeply
nested value is itself small and cannot fail.
"""

from __future__ import annotations

import json
import re
import reprlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import EventValidationError, Problem
from polybus.core.filters.dialects import canonical_string

__all__ = [
    "AttributeView",
    "CloudEvent",
    "EventFactory",
    "attributes_of",
    "brief",
    "is_extension_name",
    "new_event",
    "validate_attributes",
    "validate_event",
]

SPECVERSION = "1.0"
REQUIRED = ("id", "source", "specversion", "type")
CONTEXT_STRINGS = ("datacontenttype", "dataschema", "subject")
EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
INT32 = (-(2**31), 2**31 - 1)
Data = Any  # dict, list, str, int, float, bool (JSON) or bytes (binary)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


def brief(value: Any) -> Any:
    """A value as an error may show it: scalars as they are, long text cut, containers a short repr."""
    if type(value) is int and value.bit_length() > 128:
        return f"<an integer of {value.bit_length()} bits>"
    if value is None or type(value) in (bool, int, float, datetime):
        return value
    if type(value) is str:
        return value if len(value) <= 200 else value[:200] + "..."
    return _REPR.repr(value)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _uuid4() -> str:
    return str(uuid.uuid4())


class EventFactory:
    """Builds valid events with ids and times from injected sources."""

    def __init__(
        self,
        id_factory: Callable[[], str] = _uuid4,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.id_factory = id_factory
        self.clock = clock

    def new(
        self,
        type: str,
        source: str,
        data: Data = None,
        *,
        subject: str | None = None,
        datacontenttype: str | None = None,
        dataschema: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> CloudEvent:
        """A validated CloudEvent; JSON data defaults datacontenttype to application/json."""
        attrs: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": id if id is not None else self.id_factory(),
            "source": source,
            "type": type,
            "time": time if time is not None else self.clock(),
        }
        if subject is not None:
            attrs["subject"] = subject
        if datacontenttype is None and data is not None and not isinstance(data, bytes):
            datacontenttype = "application/json"
        if datacontenttype is not None:
            attrs["datacontenttype"] = datacontenttype
        if dataschema is not None:
            attrs["dataschema"] = dataschema
        if extensions:
            attrs.update(extensions)
        validate_attributes(attrs, data)
        return build_event(attrs, data)


_default_factory = EventFactory()


def new_event(type: str, source: str, data: Data = None, **kwargs: Any) -> CloudEvent:
    """A validated CloudEvent from the default factory (uuid4 ids, UTC wall clock).

    Keyword arguments: subject, datacontenttype, dataschema, id, time, extensions.
    """
    return _default_factory.new(type, source, data, **kwargs)


_KNOWN_GOOD_EXTENSIONS: set[str] = set()
_STANDARD = frozenset(REQUIRED + CONTEXT_STRINGS + ("time",))


_ALLOWED_TYPES = frozenset((str, int, bool, bytes, datetime))


def _looks_valid(attrs: Mapping[str, Any]) -> bool:
    """A fast check that accepts the common valid shapes; anything else gets the full report."""
    get = attrs.get
    if get("specversion") != SPECVERSION or not _ALLOWED_TYPES.issuperset(
        map(type, attrs.values())
    ):
        return False
    id_, source, type_ = get("id"), get("source"), get("type")
    if type(id_) is not str or type(source) is not str or type(type_) is not str:
        return False
    if not (id_ and source and type_):
        return False
    subject, content_type, schema = get("subject"), get("datacontenttype"), get("dataschema")
    if (subject is not None and (type(subject) is not str or not subject)) or (
        content_type is not None and (type(content_type) is not str or not content_type)
    ):
        return False
    if schema is not None and (type(schema) is not str or not schema):
        return False
    time = get("time")
    if time is not None and (type(time) is not datetime or time.tzinfo is None):
        return False
    extensions = attrs.keys() - _STANDARD
    if extensions:
        if not _KNOWN_GOOD_EXTENSIONS.issuperset(extensions):
            return False
        for name in extensions:
            value = attrs[name]
            if type(value) is int and not INT32[0] <= value <= INT32[1]:
                return False
    return True


def validate_attributes(
    attrs: Mapping[str, Any], data: Data = None, *, check_data: bool = True
) -> None:
    """Raise EventValidationError listing every attribute that breaks CloudEvents v1.0.

    `check_data=False` skips the JSON-serialisability check of data that was
    itself just decoded from JSON.
    """
    if _looks_valid(attrs) and (not check_data or data is None or type(data) in (str, bytes)):
        return
    problems: list[Problem] = []
    for name in REQUIRED:
        value = attrs.get(name)
        if value is None:
            problems.append(Problem(name, brief(value), "required attribute is missing"))
        elif not isinstance(value, str):
            problems.append(Problem(name, brief(value), "must be a string"))
        elif value == "":
            problems.append(Problem(name, brief(value), "must be a non-empty string"))
    if attrs.get("specversion") not in (None, SPECVERSION):
        problems.append(Problem("specversion", brief(attrs.get("specversion")), "must be '1.0'"))
    time = attrs.get("time")
    if time is not None:
        if not isinstance(time, datetime):
            problems.append(Problem("time", brief(time), "must be a datetime"))
        elif time.tzinfo is None:
            problems.append(Problem("time", brief(time), "must be timezone-aware (RFC 3339)"))
    for name in CONTEXT_STRINGS:
        value = attrs.get(name)
        if value is not None and (not isinstance(value, str) or value == ""):
            problems.append(Problem(name, brief(value), "must be a non-empty string"))
    for name, value in attrs.items():
        if name in REQUIRED or name in CONTEXT_STRINGS or name == "time":
            continue
        problems.extend(_extension_problems(name, value))
    if check_data:
        problems.extend(_data_problems(attrs.get("datacontenttype"), data))
    if problems:
        raise EventValidationError("invalid CloudEvent", problems)


def is_extension_name(name: str) -> bool:
    """True if `name` follows the extension naming rule ([a-z0-9]{1,20}, not 'data'); memoised."""
    if name in _KNOWN_GOOD_EXTENSIONS:
        return True
    if EXTENSION_NAME.fullmatch(name) and name != "data":
        _KNOWN_GOOD_EXTENSIONS.add(name)
        return True
    return False


def _extension_problems(name: str, value: Any) -> list[Problem]:
    if not isinstance(name, str) or not EXTENSION_NAME.fullmatch(name) or name == "data":
        return [
            Problem(brief(name), brief(value), "extension names are [a-z0-9]{1,20} and not 'data'")
        ]
    if isinstance(value, bool | str | bytes | datetime):
        _KNOWN_GOOD_EXTENSIONS.add(name)
        return []
    if isinstance(value, int):
        if INT32[0] <= value <= INT32[1]:
            _KNOWN_GOOD_EXTENSIONS.add(name)
            return []
        return [Problem(brief(name), brief(value), "integer extensions must fit in 32 bits")]
    return [
        Problem(brief(name), brief(value), "extension values are bool, int, str, bytes or datetime")
    ]


def _data_problems(datacontenttype: Any, data: Data) -> list[Problem]:
    if data is None or isinstance(data, bytes | str):
        return []
    try:
        json.dumps(data)
    except RecursionError:
        return [Problem("data", type(data).__name__, "must not nest too deeply to encode as JSON")]
    except (TypeError, ValueError) as exc:
        return [Problem("data", type(data).__name__, f"must be JSON-serialisable or bytes ({exc})")]
    return []


def build_event(attrs: dict[str, Any], data: Data) -> CloudEvent:
    """Wrap attributes that `validate_attributes` accepted in the SDK's CloudEvent.

    Our validation is a superset of the SDK's (which checks required
    attributes, types and extension names), so the SDK constructor's second
    pass is skipped: it cost half of a JSON round trip. The attributes the SDK
    would default (id, time, specversion) are always set by then.
    tests/core/test_events.py checks the result equals the SDK constructor's.
    """
    event = object.__new__(CloudEvent)
    event._attributes = attrs
    event._data = data
    setattr(event, _VALIDATED, True)
    return event


# Events built by build_event passed validation; publishing them again skips it. A flag
# attribute, not a WeakSet: adding to a WeakSet (and its clean-up when the event dies) cost
# a third of a microsecond per decoded event. Set as an attribute, never through __dict__:
# materialising the instance dict slows every later attribute read of the event.
_VALIDATED = "_polybus_validated"


def validate_event(event: CloudEvent) -> None:
    """Raise EventValidationError if an event breaks the rules (free for events we built)."""
    if getattr(event, _VALIDATED, False):
        return
    validate_attributes(event.get_attributes(), event.get_data())
    setattr(event, _VALIDATED, True)


class AttributeView(Mapping[str, Any]):
    """A read-only view of an event's attributes for filters, canonicalised on access.

    Same values as `attributes_of`, without copying the attributes or
    formatting the time unless a filter asks for it: the hot path of
    filtering on the local bus.
    """

    __slots__ = ("_raw",)

    def __init__(self, event: CloudEvent) -> None:
        self._raw = event.get_attributes()

    def get(self, key: str, default: Any = None) -> Any:
        value = self._raw.get(key)
        if value is None:
            return default
        kind = type(value)
        if kind is str or kind is int or kind is bool:
            return value
        return canonical_string(value)

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self._raw.get(key) is not None  # type: ignore[call-overload]

    def __iter__(self) -> Iterator[str]:
        return (k for k, v in self._raw.items() if v is not None)

    def __len__(self) -> int:
        return sum(1 for v in self._raw.values() if v is not None)


def attributes_of(event: CloudEvent) -> dict[str, Any]:
    """The event's attributes for filtering: time as RFC 3339, bytes as base64, data excluded."""
    out = dict(event.get_attributes())
    time = out.get("time")
    if time is not None and type(time) is not str:
        out["time"] = canonical_string(time)
    if not _STANDARD.issuperset(out):  # extensions may hold bytes, datetimes or None
        for name, value in list(out.items()):
            if value is None:
                del out[name]
            elif not isinstance(value, str | bool | int):
                out[name] = canonical_string(value)
    return out
