"""Trace context in providers' native carriers: X-Ray TraceHeader, Pub/Sub attributes, Event Grid."""

from __future__ import annotations

from polybus.adapters.aws.mapping import to_entry
from polybus.adapters.gcp.mapping import from_message, to_message
from polybus.core.events import new_event
from polybus.core.tracing.carriers import from_xray, parse_traceparent, to_xray

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
XRAY = "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=1"


def test_traceparent_and_xray_convert_both_ways() -> None:
    """A W3C traceparent maps to an X-Ray TraceHeader and back; invalid values give None."""
    assert to_xray(TRACEPARENT) == XRAY
    assert from_xray(XRAY) == TRACEPARENT
    assert (
        from_xray("Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=0")[-2:]
        == "00"
    )
    assert to_xray("00-" + "0" * 32 + "-b7ad6b7169203331-01") is None
    assert from_xray("Root=1-abc;Parent=xyz") is None
    assert parse_traceparent("garbage") is None


def test_eventbridge_entry_carries_the_trace_header() -> None:
    """A traced event's PutEvents entry has a TraceHeader; its size is unchanged by it."""
    traced = new_event("a.b", "/x", {"n": 1}, id="1", extensions={"traceparent": TRACEPARENT})
    entry = to_entry(traced, "bus")
    assert entry.request["TraceHeader"] == XRAY
    assert "TraceHeader" not in to_entry(new_event("a.b", "/x", {"n": 1}), "bus").request


def test_pubsub_message_carries_traceparent_as_an_attribute() -> None:
    """Pub/Sub messages carry ce-traceparent in both modes; a google-traced publisher's is read."""
    traced = new_event("a.b", "/x", {"n": 1}, extensions={"traceparent": TRACEPARENT})
    data, attributes = to_message(traced)
    assert attributes["ce-traceparent"] == TRACEPARENT
    assert to_message(traced, mode="structured")[1]["ce-traceparent"] == TRACEPARENT
    foreign = {k: v for k, v in attributes.items() if k != "ce-traceparent"}
    foreign["googclient_traceparent"] = TRACEPARENT  # google-cloud-pubsub's own tracing
    assert from_message(data, foreign).get_extension("traceparent") == TRACEPARENT
