"""Tolerant readers and upcasters on plain data: ignore unknowns, fill defaults, report every problem."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from polybus.core.events import new_event
from polybus.core.schemas import ReaderError, SchemaRegistry, SchemaValidationError
from polybus.core.schemas.middleware import SchemaValidation
from polybus.core.schemas.reader import TolerantReader, read_data
from polybus.core.schemas.upcasting import Upcasters


@dataclass(frozen=True)
class Point:
    """A nested model."""

    lat: float
    lon: float


@dataclass(frozen=True)
class Reading:
    """A consumer's view of a telemetry event."""

    deviceId: str
    temperature: float
    where: Point | None = None
    tags: list[str] = field(default_factory=list)
    count: int = 0


def test_unknown_fields_ignored_and_defaults_filled() -> None:
    """Extra fields do not matter; absent optional ones take the defaults; ints read as floats."""
    got = read_data(
        Reading,
        {
            "deviceId": "d",
            "temperature": 20,
            "humidity": 40,
            "where": {"lat": 1, "lon": 2.5, "alt": 9},
        },
    )
    assert got == Reading("d", 20.0, Point(1.0, 2.5))
    assert isinstance(got.temperature, float)


def test_every_missing_or_mistyped_field_is_reported_at_once() -> None:
    """One ReaderError names each problem with its path."""
    with pytest.raises(ReaderError) as info:
        read_data(
            Reading, {"temperature": "hot", "where": {"lat": 1}, "tags": ["a", 3], "count": 1.5}
        )
    assert [(p.field, p.rule) for p in info.value.problems] == [
        ("data.deviceId", "required field is missing"),
        ("data.temperature", "must be float, got str"),
        ("data.where", "matches none of ['Point']"),
        ("data.tags[1]", "must be str, got int"),
        ("data.count", "must be int, got float"),
    ]


def test_integral_doubles_read_as_ints_and_bools_are_not_numbers() -> None:
    """2.0 reads as int 2 (the Avro format's doubles); True is not a float."""
    assert read_data(Reading, {"deviceId": "d", "temperature": 1.0, "count": 2.0}).count == 2
    with pytest.raises(ReaderError, match="must be float"):
        read_data(Reading, {"deviceId": "d", "temperature": True})


def test_upcasters_chain_and_name_a_missing_step() -> None:
    """upcast applies each step in order; a gap is a ReaderError naming the version."""
    up = Upcasters()

    @up.register("t", from_version=1)
    def one(d: dict[str, int]) -> dict[str, int]:
        return {**d, "b": d["a"] * 2}

    up.add("t", 2, lambda d: {**d, "c": d["b"] + 1})
    assert up.upcast("t", {"a": 1}, 1, 3) == {"a": 1, "b": 2, "c": 3}
    assert up.upcast("t", {"a": 1}, 3, 3) == {"a": 1}
    with pytest.raises(ReaderError, match="no upcaster registered from v3"):
        up.upcast("t", {}, 3, 4)


def test_binary_data_without_a_registry_is_reported() -> None:
    """A reader cannot guess how to decode bytes."""
    event = new_event("t", "/s", b"\x01", datacontenttype="application/avro")
    with pytest.raises(ReaderError, match="binary data needs a registry"):
        TolerantReader(Reading).read(event)


def test_middleware_with_json_schema_stamps_dataschema_and_collects_problems() -> None:
    """Valid events get their schema URN; invalid ones list every JSON Schema violation."""
    registry = SchemaRegistry()
    registry.register(
        "com.example.reading",
        {
            "type": "object",
            "properties": {
                "deviceId": {"type": "string"},
                "temperature": {"type": "number", "maximum": 100},
            },
            "required": ["deviceId", "temperature"],
        },
    )
    plugin = SchemaValidation(registry, require_schema=True)
    ok = new_event("com.example.reading", "/d", {"deviceId": "d", "temperature": 20})
    assert plugin.polybus_before_publish(ok, "t") == {
        "dataschema": "urn:polybus:schema:com.example.reading:1"
    }
    with pytest.raises(SchemaValidationError) as info:
        plugin.polybus_before_publish(
            new_event("com.example.reading", "/d", {"temperature": 200}), "t"
        )
    assert [p.field for p in info.value.problems] == ["data", "data.temperature"]
    with pytest.raises(SchemaValidationError, match="no schema is registered"):
        plugin.polybus_before_handle(new_event("com.example.other", "/d"), "sub")
