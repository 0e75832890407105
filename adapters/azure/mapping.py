"""Pure conversions between polybus and Event Grid: events, sizes, resource names, redelivery stamps.

Events: a polybus event is sent as the CloudEvents JSON format (extensions at
top level, binary data as ``data_base64``), encoded once by `encode`; those
bytes are what `event_size` measures and what the adapter posts, so the size
checked is the size sent. Received events are read from the raw response
bytes (`parse_receive`) or, pushed to the webhook, from the request body, never
through the SDK's own deserializer, which fails a whole batch on one bad event.

Names: Event Grid namespace topics and event subscriptions are 3-50 characters
of letters, digits and hyphens. A portable name that already fits is used as
is; any other name has its invalid characters replaced by ``-``, is cut to fit
and gets a short hash of the original, so distinct names stay distinct.

Decoding (`parse_receive`, `decode_event`, `event_from_wire`) raises only the
ValidationError family, whatever arrives: another publisher's event with a
bad attribute (``time: "not-a-time"``), bytes that are not UTF-8 (or JSON
escapes of lone surrogates), JSON nested deeper than `MAX_NESTING`, an
unexpected shape. A receive response is read with one JSON parse in the
common case; when that fails (a poison event inside it) it is split into its
items without recursion, so one poison never hides the other events of the
batch, and the poison's bytes are kept exactly as received.
`undecodable_event` wraps such bytes and the reason into a stand-in event for
dead-letter readers, which therefore never fail on, or drop, a poison.

Redelivery stamps (portable attempts above Event Grid's native 10, see
adapter.py): a copy republished to a subscription's private redelivery topic
carries ``polybusattempt`` (the portable attempts already made) and, after a
nack with a delay, ``polybusnotbefore`` (epoch milliseconds). `stamp_copy`
adds them, `take_copy_state` reads and removes them so handlers see the
original event.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.core.errors import EventValidationError, Problem, ValidationError
from polybus.core.events import build_event
from polybus.core.formats import dumps_json, from_dict, loads_json, to_dict
from polybus.core.sizing import MB, SizeLimit

_OPTIONAL = ("subject", "datacontenttype", "dataschema")
_VALID_NAME = re.compile(r"^[A-Za-z0-9-]{3,50}$")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9-]")
MAX_NAME = 50
ATTEMPT_EXTENSION = "polybusattempt"
NOT_BEFORE_EXTENSION = "polybusnotbefore"
REDELIVERY_SUBSCRIPTION = "redeliveries"
SIZE_LIMIT = SizeLimit(1 * MB, "UTF-8 bytes of the JSON event as sent")
MAX_NESTING = 100  # JSON levels an event may have; deeper ones are refused both ways
UNDECODABLE_TYPE = "polybus.undecodable"
REASON_EXTENSION = "polybusreason"


# -- events -------------------------------------------------------------------
def to_wire(event: CloudEvent) -> dict[str, Any]:
    """The CloudEvents JSON object Event Grid receives for `event` (a fresh dict)."""
    return to_dict(event)


def encode_wire(obj: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of one wire object (an element of the posted batch)."""
    return dumps_json(obj).encode("utf-8")


def encode(event: CloudEvent) -> bytes:
    """The bytes the adapter sends for `event`; EventValidationError when it cannot be read back.

    Events nested deeper than MAX_NESTING, or whose strings are not valid
    Unicode (lone surrogates), are refused before any network call: polybus
    never publishes what its own receivers would have to dead-letter.
    """
    try:
        raw = encode_wire(to_dict(event))
    except (RecursionError, UnicodeEncodeError, TypeError, ValueError) as exc:
        raise _invalid("data", event.get_id(), f"cannot be encoded as JSON: {exc}") from exc
    depth = nesting_depth(raw)
    if depth > MAX_NESTING:
        raise _invalid("data", event.get_id(), f"nested {depth} levels, over {MAX_NESTING}")
    return raw


def event_size(event: CloudEvent) -> int:
    """Event Grid's measure: the UTF-8 size of the JSON event as the adapter sends it."""
    return len(encode(event))


def batch_body(encoded: list[bytes]) -> bytes:
    """The request body: a JSON array of already encoded events."""
    return b"[" + b",".join(encoded) + b"]"


# -- decoding (only the ValidationError family leaves) -----------------------------
_BRACKETS = re.compile(rb'["\[\]{}]')
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")
_ID = re.compile(rb'"id"\s*:\s*"((?:[^"\\]|\\.){1,128})"')
_WHITESPACE = b" \t\r\n"


def _invalid(field_name: str, value: object, rule: str) -> EventValidationError:
    return EventValidationError("undecodable Event Grid event", [Problem(field_name, value, rule)])


def nesting_depth(raw: bytes) -> int:
    """How deeply the JSON text `raw` nests arrays and objects (strings ignored; no recursion)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_NESTING:  # cannot be deeper: skip the scan
        return 1
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    steps = (1 if b == 1 else -1 for b in brackets.translate(_DEPTH_STEP))
    return max(accumulate(steps), default=0)


def event_from_wire(obj: Any) -> CloudEvent:
    """A polybus event from one decoded CloudEvents JSON object; only ValidationError escapes."""
    if not isinstance(obj, Mapping):
        raise _invalid("event", type(obj).__name__, "must be a JSON object")
    try:
        return from_dict(obj)
    except ValidationError:
        raise
    except Exception as exc:  # defensive: whatever else a decoder trips on is the input's fault
        raise _invalid("event", _preview(obj), f"{type(exc).__name__}: {exc}") from exc


def decode_event(raw: bytes) -> CloudEvent:
    """A polybus event from one event's JSON bytes as received; only ValidationError escapes."""
    return event_from_wire(loads_event(raw))


def loads_event(raw: bytes) -> Any:
    """The JSON value of one event's bytes: UTF-8, nesting and surrogates checked."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(
            "event", _preview(raw), f"not UTF-8: {exc.reason} at byte {exc.start}"
        ) from exc
    depth = nesting_depth(raw)
    if depth > MAX_NESTING:
        raise _invalid("event", _preview(raw), f"nested {depth} levels, over {MAX_NESTING}")
    try:
        obj = loads_json(text)
    except (ValueError, RecursionError) as exc:
        raise _invalid("event", _preview(raw), f"not JSON: {exc}") from exc
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _invalid("event", _preview(raw), "holds a lone UTF-16 surrogate") from exc
    return obj


@dataclass(frozen=True)
class Received:
    """One item of a receive response: its lock, delivery count and the event as received.

    `event` is the decoded JSON value when the whole response parsed; `raw`
    the event's exact bytes when the response had to be split around a poison.
    """

    lock_token: str
    delivery_count: int
    event: Any = None
    raw: bytes | None = None
    dead_letter: Mapping[str, Any] | None = None

    def event_bytes(self) -> bytes:
        """The event's bytes: as received, or re-encoded (ASCII-escaped) from the parsed value."""
        if self.raw is not None:
            return self.raw
        try:
            return json.dumps(self.event, ensure_ascii=True).encode("ascii")
        except (RecursionError, TypeError, ValueError):
            return repr(self.event).encode("utf-8", "backslashreplace")

    def decode(self) -> tuple[CloudEvent, CopyState]:
        """The polybus event and its redelivery stamps; ValidationError when it is poison."""
        if self.raw is not None:
            obj = loads_event(self.raw)
        elif _has_lone_surrogate(self.event):
            raise _invalid("event", _preview(self.event), "holds a lone UTF-16 surrogate")
        else:
            obj = self.event
        obj, copy = take_copy_state(obj)
        return event_from_wire(obj), copy


def parse_receive(raw: bytes) -> list[Received]:
    """The items of a receive response body (``{"value": [...]}``); ValidationError if unreadable.

    Items whose broker properties cannot be read are skipped (their lock
    expires and Event Grid counts the delivery); every other item is returned,
    poison or not.
    """
    try:
        body = loads_json(raw)
    except (ValueError, RecursionError):
        return _split_receive(raw)
    items = body.get("value") if isinstance(body, Mapping) else None
    if not isinstance(items, list):
        raise _invalid("body", _preview(raw), 'must be {"value": [...]}')
    out = []
    for item in items:
        broker = item.get("brokerProperties") if isinstance(item, Mapping) else None
        received = _received(broker, event=item.get("event") if broker is not None else None)
        if received is not None:
            out.append(received)
    return out


def _received(broker: Any, *, event: Any = None, raw: bytes | None = None) -> Received | None:
    if not isinstance(broker, Mapping):
        return None
    token, count = broker.get("lockToken"), broker.get("deliveryCount")
    if not isinstance(token, str) or type(count) is not int:
        return None
    dead = broker.get("deadLetterProperties")
    return Received(token, count, event, raw, dead if isinstance(dead, Mapping) else None)


def _split_receive(raw: bytes) -> list[Received]:
    """Read a response that does not parse as a whole: split it into items, then parse each."""
    try:
        members = dict(_members(raw, _skip(raw, 0)))
        start, _ = members[b'"value"']
        out = []
        for _, (item_start, _) in _members(raw, start):
            fields = dict(_members(raw, item_start))
            broker_slice, event_slice = fields.get(b'"brokerProperties"'), fields.get(b'"event"')
            if broker_slice is None or event_slice is None:
                continue
            try:
                broker = loads_json(raw[slice(*broker_slice)])
            except (ValueError, RecursionError):
                continue
            received = _received(broker, raw=raw[slice(*event_slice)])
            if received is not None:
                out.append(received)
        return out
    except (ValueError, KeyError, IndexError) as exc:
        raise _invalid("body", _preview(raw), f"not a receive response: {exc}") from exc


def _skip(raw: bytes, i: int) -> int:
    while i < len(raw) and raw[i] in _WHITESPACE:
        i += 1
    return i


def _string_end(raw: bytes, i: int) -> int:
    """Index just past the JSON string opening at raw[i]."""
    j = i + 1
    while True:
        k = raw.index(b'"', j)
        backslashes = 0
        while raw[k - 1 - backslashes] == 0x5C:
            backslashes += 1
        if backslashes % 2 == 0:
            return k + 1
        j = k + 1


def _value_end(raw: bytes, i: int) -> int:
    """Index just past the JSON value starting at raw[i], without recursion."""
    first = raw[i]
    if first == 0x22:
        return _string_end(raw, i)
    if first not in b"[{":
        j = i
        while j < len(raw) and raw[j] not in b",]}" and raw[j] not in _WHITESPACE:
            j += 1
        if j == i:
            raise ValueError(f"no value at byte {i}")
        return j
    depth, j = 0, i
    while True:
        match = _BRACKETS.search(raw, j)
        if match is None:
            raise ValueError(f"unterminated value from byte {i}")
        k = match.start()
        if raw[k] == 0x22:
            j = _string_end(raw, k)
            continue
        depth += 1 if raw[k] in b"[{" else -1
        j = k + 1
        if depth == 0:
            return j


def _members(raw: bytes, i: int) -> list[tuple[bytes, tuple[int, int]]]:
    """The members of the object (key bytes, value span) or array (b"", span) opening at raw[i]."""
    opening = raw[i]
    if opening not in b"[{":
        raise ValueError(f"expected an array or object at byte {i}")
    closing = 0x5D if opening == 0x5B else 0x7D
    out: list[tuple[bytes, tuple[int, int]]] = []
    i = _skip(raw, i + 1)
    if raw[i] == closing:
        return out
    while True:
        key = b""
        if opening == 0x7B:
            key_end = _string_end(raw, i)
            key = raw[i:key_end]
            i = _skip(raw, key_end)
            if raw[i] != 0x3A:
                raise ValueError(f"expected ':' at byte {i}")
            i = _skip(raw, i + 1)
        end = _value_end(raw, i)
        out.append((key, (i, end)))
        i = _skip(raw, end)
        if raw[i] == closing:
            return out
        if raw[i] != 0x2C:
            raise ValueError(f"expected ',' at byte {i}")
        i = _skip(raw, i + 1)


def _has_lone_surrogate(obj: Any) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (RecursionError, TypeError, ValueError):
        return False
    return False


def undecodable_event(raw: bytes, reason: str, where: str) -> CloudEvent:
    """A stand-in for an event that cannot be decoded: its raw bytes as data, and why.

    Dead-letter readers get this instead of an error, so a poison is never
    dropped and never stops the reader: type ``polybus.undecodable``, the
    original id when one can be found, the bytes exactly as received as data
    (``application/octet-stream``) and the reason in the ``polybusreason``
    extension.
    """
    found = _ID.search(raw)
    event_id = found.group(1).decode("utf-8", "replace") if found else ""
    attrs: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or hashlib.sha256(raw).hexdigest()[:32],
        "source": f"polybus:azure/{where}",
        "type": UNDECODABLE_TYPE,
        "datacontenttype": "application/octet-stream",
        REASON_EXTENSION: reason[:2000],
    }
    return build_event(attrs, bytes(raw))


def _preview(value: object, limit: int = 60) -> str:
    if isinstance(value, bytes | bytearray):
        text = bytes(value[: limit * 4]).decode("utf-8", "backslashreplace")
    else:
        try:
            text = repr(value)
        except RecursionError:
            text = f"<deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


# -- names ----------------------------------------------------------------------
def native_name(name: str) -> str:
    """The Event Grid resource name for a portable topic or subscription name."""
    if _VALID_NAME.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    cleaned = _INVALID_CHARS.sub("-", name)[: MAX_NAME - len(digest) - 1]
    return f"{cleaned}-{digest}"


def redelivery_topic_name(subscription: str) -> str:
    """The portable name of a subscription's private redelivery topic."""
    return f"{subscription}-redelivery"


# -- redelivery stamps ------------------------------------------------------------
@dataclass(frozen=True)
class CopyState:
    """What a received event says about its earlier life (all zero for an original)."""

    attempts_before: int = 0
    not_before_ms: int | None = None

    def attempt(self, delivery_count: int) -> int:
        """The portable attempt number of this delivery."""
        hidden = 1 if self.not_before_ms is not None else 0
        return self.attempts_before + delivery_count - hidden

    def must_hide(self, delivery_count: int) -> bool:
        """A delayed copy's first delivery is released, not handed out."""
        return self.not_before_ms is not None and delivery_count == 1

    def wait_left(self, now: float | None = None) -> float:
        """Seconds until the copy may be handed out (0 when due)."""
        if self.not_before_ms is None:
            return 0.0
        return max(0.0, self.not_before_ms / 1000 - (time.time() if now is None else now))


def take_copy_state(obj: Any) -> tuple[Any, CopyState]:
    """`obj` without the redelivery extensions (a copy when it had them), and what they said."""
    if not isinstance(obj, Mapping) or ATTEMPT_EXTENSION not in obj:
        return obj, CopyState()
    stripped = dict(obj)
    attempts, not_before = stripped.pop(ATTEMPT_EXTENSION), stripped.pop(NOT_BEFORE_EXTENSION, None)
    if type(attempts) is not int or not (not_before is None or type(not_before) is int):
        raise _invalid(ATTEMPT_EXTENSION, attempts, "redelivery stamps must be integers")
    return stripped, CopyState(attempts, not_before)


def stamp_copy(wire: dict[str, Any], attempts: int, delay: float) -> dict[str, Any]:
    """`wire` (a fresh `to_wire` object, ours to change) stamped for the redelivery topic."""
    wire[ATTEMPT_EXTENSION] = attempts
    if delay > 0:
        wire[NOT_BEFORE_EXTENSION] = int((time.time() + delay) * 1000)
    return wire
