"""The fast Protobuf envelope path (direct reader and writer) against upb."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polybus.core.codecs import protobuf_read, protobuf_wire
from polybus.core.codecs.protobuf_format import (
    _read_with_upb,
    from_protobuf,
    message_classes,
    message_fields,
    read_event_any,
    read_protobuf_checked,
    to_message,
    to_protobuf,
)
from polybus.core.codecs.protobuf_read import read_event_checked
from polybus.core.codecs.protobuf_wire import write_protobuf
from polybus.core.codecs.wire import MEMO_LIMIT, read_varint
from polybus.core.errors import EventValidationError
from polybus.core.events import EventFactory, validate_attributes

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
FACTORY = EventFactory(id_factory=lambda: "id-1", clock=lambda: T0)
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
STANDARD = {"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject"}
# The strategies below never touch `random`; Hypothesis still warns when the global state moves
# during a draw, which a thread left running by an earlier test in a full run can do.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)
RUNS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(min_size=1, max_size=40) | st.text(min_size=100, max_size=300)
times = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.sampled_from(ZONES)
) | st.just(T0)
extension_names = st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True).filter(
    lambda n: n not in STANDARD and n not in ("time", "data")
)
extension_values = (
    st.booleans()
    | st.integers(-(2**31), 2**31 - 1)
    | st.text(max_size=30)
    | st.binary(max_size=30)
    | times
)


@st.composite
def events(draw: st.DrawFn) -> Any:
    """A valid event: any optional attributes, extensions of every type, any kind of data."""
    kind = draw(st.sampled_from(["none", "json", "text", "bytes", "proto"]))
    data: Any = {
        "none": None,
        "json": draw(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5))),
        "text": draw(st.text(max_size=50)),
        "bytes": draw(st.binary(max_size=50)),
        "proto": draw(st.binary(max_size=50)),
    }[kind]
    content_type = {"text": "text/plain", "bytes": "application/octet-stream"}.get(kind)
    if kind == "proto":
        content_type = "application/protobuf"
    optional = {
        name: draw(st.none() | texts) for name in ("subject", "dataschema") if draw(st.booleans())
    }
    return FACTORY.new(
        draw(texts),
        draw(texts),
        data,
        id=draw(texts),
        time=draw(times),
        datacontenttype=content_type,
        extensions=draw(st.dictionaries(extension_names, extension_values, max_size=4)),
        **{k: v for k, v in optional.items() if v is not None},
    )


def _fields(body: bytes) -> list[bytes]:
    """The raw top-level fields of a CloudEvent message (all length-delimited)."""
    fields, pos = [], 0
    while pos < len(body):
        size, start = read_varint(body, pos + 1)
        fields.append(body[pos : start + size])
        pos = start + size
    return fields


def _outcome(read: Callable[[bytes], Any], body: bytes) -> Any:
    try:
        return read(body)
    except EventValidationError:
        return "invalid"


@RUNS
@given(event=events())
def test_writer_writes_what_upb_writes(event: Any) -> None:
    """Field for field the bytes upb writes for the same event (map entries in any order)."""
    ours = to_protobuf(event)
    reference = to_message(event)
    assert message_classes()[0].FromString(ours) == reference
    assert sorted(_fields(ours)) == sorted(_fields(reference.SerializeToString(deterministic=True)))


@RUNS
@given(event=events())
def test_reader_reads_what_upb_writes(event: Any) -> None:
    """upb's bytes read back to the same event, directly (no upb), vouched for without validation."""
    body = to_message(event).SerializeToString()
    attrs, tag, data, type_url, suspect = read_event_checked(body)
    raw = data.encode() if isinstance(data, str) else data
    assert (attrs, tag, raw, type_url) == message_fields(message_classes()[0].FromString(body))
    assert not suspect
    back = from_protobuf(body)
    assert back.get_attributes() == event.get_attributes()
    assert back.get_data() == event.get_data()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """An event's bytes, cut, flipped, reordered or with fields added: often no longer plain."""
    body = to_protobuf(draw(events()))
    fields = _fields(body)
    how = draw(st.sampled_from(["cut", "flip", "unknown", "group", "twice", "reverse", "junk"]))
    if how == "cut":
        return body[: draw(st.integers(0, max(len(body) - 1, 0)))]
    if how == "flip":
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    at = draw(st.integers(0, len(fields)))
    if how == "unknown":
        number = draw(st.integers(9, 2000))
        wire = draw(st.sampled_from([0, 1, 2, 5]))
        value = {0: b"\x96\x01", 1: bytes(8), 2: b"\x02hi", 5: bytes(4)}[wire]
        fields.insert(at, protobuf_wire.varint(number << 3 | wire) + value)
    elif how == "group":
        fields.insert(at, b"\x4b" + b"\x50\x01" + b"\x4c")  # field 9 as a group
    elif how == "twice" and fields:
        fields.insert(at, fields[draw(st.integers(0, len(fields) - 1))])
    elif how == "reverse":
        fields.reverse()
    else:
        fields.insert(at, draw(st.binary(min_size=1, max_size=6)))
    return b"".join(fields)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=mutated())
def test_direct_reader_never_disagrees_with_upb(body: bytes) -> None:
    """Whatever the direct reader returns, upb reads the same; what it leaves gets upb's answer."""
    reference = _outcome(_read_with_upb, body)
    try:
        attrs, tag, data, type_url, _ = read_event_checked(body)
    except (ValueError, IndexError):  # junk or unusual: read_event_any asks upb
        found = _outcome(read_event_any, body)
        assert found == (reference if reference == "invalid" else (*reference, True))
    else:
        assert reference != "invalid", "the direct reader took bytes upb rejects"
        raw = data.encode() if isinstance(data, str) else data
        assert (attrs, tag, raw, type_url) == reference


def _upb_event_bytes(attributes: dict[str, Any], **fields: str) -> bytes:
    """A CloudEvent written by upb: fields 1-4 and `attributes` as (member, value) pairs."""
    msg = message_classes()[0](**fields)
    for name, (member, value) in attributes.items():
        if member == "ce_timestamp":
            msg.attributes[name].ce_timestamp.seconds, msg.attributes[name].ce_timestamp.nanos = (
                value
            )
        else:
            setattr(msg.attributes[name], member, value)
    return msg.SerializeToString()


REQUIRED = {"id": "1", "source": "/s", "spec_version": "1.0", "type": "t"}


@pytest.mark.parametrize(
    ("attributes", "fields"),
    [
        ({"subject": ("ce_integer", 5)}, REQUIRED),
        ({"subject": ("ce_string", "")}, REQUIRED),
        ({"time": ("ce_string", "2024-01-01T00:00:00Z")}, REQUIRED),
        ({"Bad-Name": ("ce_string", "x")}, REQUIRED),
        ({"data": ("ce_boolean", True)}, REQUIRED),
        ({"dataschema": ("ce_bytes", b"x")}, REQUIRED),
        ({}, {**REQUIRED, "spec_version": "0.3"}),
        ({}, {k: v for k, v in REQUIRED.items() if k != "id"}),
        ({}, {**REQUIRED, "type": ""}),
        ({"id": ("ce_timestamp", (1_800_000_000, 300_000_000))}, REQUIRED),
        ({"subject": ("ce_timestamp", (1_800_000_000, 300_000_000))}, REQUIRED),
    ],
    ids=[
        "int-subject",
        "empty-subject",
        "text-time",
        "bad-name",
        "data-name",
        "bytes-dataschema",
        "old-specversion",
        "no-id",
        "empty-type",
        "time-id",
        "time-subject",
    ],
)
def test_invalid_events_are_rejected_with_validate_attributes_report(
    attributes: dict[str, Any], fields: dict[str, str]
) -> None:
    """Events the reader does not vouch for get validate_attributes' full report."""
    body = _upb_event_bytes(attributes, **fields)
    with pytest.raises(EventValidationError) as reference:
        validate_attributes(_read_with_upb(body)[0])
    for _ in range(2):  # the second time from whatever the first one memoised
        assert read_event_any(body)[4]  # suspect
        with pytest.raises(EventValidationError) as ours:
            from_protobuf(body)
        assert ours.value.problems == reference.value.problems


@RUNS
@given(
    seconds=st.integers(-(2**40), 2**40) | st.integers(2**28, 2**35),
    nanos=st.integers(-(2**31), 2**31 - 1) | st.integers(0, 999_999_999),
    number=st.integers(-(2**63), 2**63 - 1),
)
def test_timestamps_and_integers_read_as_upb_reads_them(
    seconds: int, nanos: int, number: int
) -> None:
    """Any Timestamp (negative nanos too) and ce_integer varints wider than int32 read as upb does."""
    body = _upb_event_bytes({"time": ("ce_timestamp", (seconds, nanos))}, **REQUIRED)
    wide = protobuf_wire.varint(number)  # ce_integer written by a sloppy writer: upb keeps 32 bits
    entry = b"\x0a\x01n\x12" + bytes([len(wide) + 1]) + b"\x10" + wide
    body += b"\x2a" + bytes([len(entry)]) + entry
    try:
        reference = _read_with_upb(body)
    except EventValidationError:  # an instant datetime cannot hold
        assert _outcome(read_event_any, body) == "invalid"
        return
    assert read_event_any(body)[:4] == reference
    read_event_any(body)  # again: now from the memoised seconds
    assert read_event_any(body)[:4] == reference


def test_overrides_replace_attributes_without_copying() -> None:
    """write_protobuf's datacontenttype/dataschema equal writing an updated copy of the attributes."""
    event = FACTORY.new("t", "/s", {"a": 1}, dataschema="urn:x", extensions={"e": 1})
    attrs = event.get_attributes()
    replaced = write_protobuf(attrs, 0x42, b"\x08\x01", "u", "application/protobuf", "urn:y")
    copied = {**attrs, "datacontenttype": "application/protobuf", "dataschema": "urn:y"}
    cls = message_classes()[0]
    assert cls.FromString(replaced) == cls.FromString(
        write_protobuf(copied, 0x42, b"\x08\x01", "u")
    )
    assert attrs["dataschema"] == "urn:x"
    parsed = read_protobuf_checked(replaced)
    assert parsed[0]["dataschema"] == "urn:y" and parsed[2:] == (b"\x08\x01", "u", False)


def test_memos_stay_bounded() -> None:
    """Thousands of distinct attribute values never grow a memo past its limit."""
    for i in range(2 * MEMO_LIMIT + 10):
        event = FACTORY.new("t", "/s", time=T0 + timedelta(seconds=i), extensions={"k": f"v{i}"})
        assert from_protobuf(to_protobuf(event)).get_extension("k") == f"v{i}"
    memos = (protobuf_read._ENTRIES, protobuf_read._SECOND_TIMES, protobuf_read._INSTANTS)
    for memo in (*memos, protobuf_wire._SECONDS):
        assert len(memo) <= MEMO_LIMIT


# --- generated data codec ---------------------------------------------------------------


def test_a_timestamp_beyond_year_9999_is_junk_not_a_crash() -> None:
    """A ce_timestamp whose seconds overflow datetime is a ValueError to the reader, an EventValidationError to callers."""
    body = (
        b'\n\x070\xc2\x80\xc2\x80\xc2\x80\x12\x050\xc2\x80\xc2\x80\x1a\x031.0"\x010*\x15\n\x04time'
        b"\x12\r:\x0b\x08\x80\x99\xfb\xf0\xff\xff\xff\xff\xff\x00"
    )
    with pytest.raises(ValueError, match="out of range"):
        read_event_checked(body)
    with pytest.raises(EventValidationError) as raised:
        from_protobuf(body)
    assert raised.value.problems[0].field == "body"
