"""Fuzz: the Azure wire mapping raises only the ValidationError family, whatever arrives."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polybus.adapters.azure.mapping import (
    decode_event,
    event_from_wire,
    parse_receive,
    stamp_copy,
    to_wire,
)
from polybus.core.errors import ValidationError
from polybus.core.events import new_event

_GOOD = [
    to_wire(new_event("com.example.fuzz", "/fuzz", {"n": 1, "tags": ["a", "b"]}, subject="s")),
    to_wire(new_event("com.example.bin", "/fuzz", b"\x00\x01", extensions={"vip": True})),
    stamp_copy(to_wire(new_event("com.example.copy", "/fuzz", "text")), 3, 10.0),
]
_RESPONSE = json.dumps(
    {
        "value": [
            {"brokerProperties": {"lockToken": f"t{i}", "deliveryCount": 1}, "event": event}
            for i, event in enumerate(_GOOD)
        ]
    }
).encode()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(st.characters(codec=None), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
ATTRIBUTES = (
    "id",
    "source",
    "type",
    "specversion",
    "time",
    "subject",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
    "polybusattempt",
    "polybusnotbefore",
    "ext",
)


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    """A receive response with bytes replaced, inserted, removed, or deep nesting spliced in."""
    raw = bytearray(_RESPONSE)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        kind = draw(
            st.sampled_from(["replace", "insert", "delete", "nest", "bad-utf8", "surrogate"])
        )
        if kind == "replace" and at < len(raw):
            raw[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del raw[at : at + draw(st.integers(1, 16))]
        elif kind == "nest":
            depth = draw(st.sampled_from([50, 101, 999, 1500, 5000]))
            raw[at:at] = b"[" * depth + b"]" * depth
        elif kind == "bad-utf8":
            raw[at:at] = b"\xff\xc3"
        else:
            raw[at:at] = b"\\udc80"
    return bytes(raw)


def _decode_all(raw: bytes) -> None:
    try:
        items = parse_receive(raw)
    except ValidationError:
        return
    for item in items:
        with contextlib.suppress(ValidationError):
            item.decode()
        item.event_bytes()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_bytes())
def test_mutated_receive_responses_raise_only_validation_errors(raw: bytes) -> None:
    """Byte-level mutations of a receive response: every item decodes or raises ValidationError."""
    _decode_all(raw)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_GOOD), st.sampled_from(ATTRIBUTES), json_values)
def test_mutated_attributes_raise_only_validation_errors(
    good: dict[str, Any], name: str, value: Any
) -> None:
    """One attribute replaced by any JSON value: decoded or a ValidationError, both ways in."""
    event = {**good, name: value}
    for attempt in (
        lambda: event_from_wire(event),
        lambda: decode_event(json.dumps(event).encode()),
    ):
        with contextlib.suppress(ValidationError):
            attempt()
    item = json.dumps(
        {"value": [{"brokerProperties": {"lockToken": "t", "deliveryCount": 1}, "event": event}]}
    )
    _decode_all(item.encode())


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_value_as_the_event_raises_only_validation_errors(value: Any) -> None:
    """Not even an object: decoding it is a ValidationError, never another exception."""
    with contextlib.suppress(ValidationError):
        event_from_wire(value)
