"""Schema-driven data codecs (polybus.core.schemas.data): Protobuf data built from an Avro record."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polybus.core.schemas.data import data_codec, decode_data, encode_data
from polybus.core.schemas.errors import SchemaDefinitionError
from polybus.core.schemas.model import Schema

SUB = {"type": "record", "name": "Sub", "fields": [{"name": "x", "type": "int"}]}
ALL: dict[str, Any] = {
    "type": "record",
    "name": "All",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "d", "type": "double"},
        {"name": "f", "type": "float"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "b", "type": "boolean"},
        {"name": "y", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "os", "type": ["null", "string"]},
        {"name": "oi", "type": ["null", "int"]},
        {"name": "od", "type": ["null", "double"]},
        {"name": "ob", "type": ["null", "boolean"]},
        {"name": "sub", "type": SUB},
        {
            "name": "osub",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Deep",
                    "fields": [
                        {"name": "t", "type": "string"},
                        {"name": "tags", "type": {"type": "map", "values": "string"}},
                    ],
                },
            ],
        },
        {"name": "li", "type": {"type": "array", "items": "int"}},
        {"name": "ll", "type": {"type": "array", "items": "long"}},  # 16 on: two-byte tags
        {"name": "ls", "type": {"type": "array", "items": "string"}},
        {"name": "ly", "type": {"type": "array", "items": "bytes"}},
        {"name": "ld", "type": {"type": "array", "items": "double"}},
        {"name": "lf", "type": {"type": "array", "items": "float"}},
        {"name": "lb", "type": {"type": "array", "items": "boolean"}},
        {
            "name": "lr",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [{"name": "q", "type": "long"}],
                },
            },
        },
        {"name": "ml", "type": {"type": "map", "values": "long"}},
        {"name": "md", "type": {"type": "map", "values": "double"}},
        {
            "name": "mr",
            "type": {
                "type": "map",
                "values": {
                    "type": "record",
                    "name": "V",
                    "fields": [{"name": "z", "type": "string"}],
                },
            },
        },
        {"name": "na", "type": ["null", {"type": "array", "items": "int"}]},
    ],
}
ALL_SCHEMA = Schema("com.example.all", 1, "avro", ALL)

short = st.text(max_size=20)
int32, int64 = st.integers(-(2**31), 2**31 - 1), st.integers(-(2**63), 2**63 - 1)
doubles = st.floats(allow_nan=False)
floats32 = st.floats(allow_nan=False, width=32)


def _all_data(strings: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Every field of ALL, with `strings` for the string values."""
    return st.fixed_dictionaries(
        {
            "s": strings,
            "d": doubles,
            "f": floats32,
            "i": int32,
            "l": int64,
            "b": st.booleans(),
            "y": st.binary(max_size=20),
            "e": st.sampled_from(["A", "B"]),
            "os": st.none() | strings,
            "oi": st.none() | int32,
            "od": st.none() | doubles,
            "ob": st.none() | st.booleans(),
            "sub": st.none() | st.fixed_dictionaries({"x": int32}),
            "osub": st.none()
            | st.fixed_dictionaries(
                {"t": strings, "tags": st.dictionaries(short, strings, max_size=3)}
            ),
            "li": st.lists(int32, max_size=5),
            "ll": st.lists(int64, max_size=5),
            "ls": st.lists(strings, max_size=3),
            "ly": st.lists(st.binary(max_size=5), max_size=3),
            "ld": st.lists(doubles, max_size=3),
            "lf": st.lists(floats32, max_size=3),
            "lb": st.lists(st.booleans(), max_size=4),
            "lr": st.lists(st.fixed_dictionaries({"q": int64}), max_size=3),
            "ml": st.dictionaries(short, int64, max_size=3),
            "md": st.dictionaries(short, doubles, max_size=3),
            "mr": st.dictionaries(short, st.fixed_dictionaries({"z": strings}), max_size=3),
            "na": st.none() | st.lists(int32, max_size=3),
        }
    )


FULL: dict[str, Any] = {
    "s": "héllo",
    "d": -0.0,
    "f": 1.5,
    "i": -70000,
    "l": 2**40,
    "b": True,
    "y": b"\x00\xff",
    "e": "B",
    "os": "",
    "oi": 0,
    "od": 0.0,
    "ob": False,
    "sub": {"x": 0},
    "osub": {"t": "", "tags": {"b": "2", "a": ""}},
    "li": [1, -1, 10000, -(2**31)],
    "ll": [2**63 - 1],
    "ls": ["a", ""],
    "ly": [b""],
    "ld": [0.0, 1e300],
    "lf": [0.5],
    "lb": [True, False],
    "lr": [{"q": 1}, {"q": 0}],
    "ml": {"k": -5, "": 0},
    "md": {"z": -0.0},
    "mr": {"v": {"z": "w"}},
    "na": None,
}


def test_every_covered_type_round_trips_through_protobuf() -> None:
    """A datum using every covered Avro shape (zeros, empties, negatives) comes back equal."""
    encode, decode = data_codec(ALL_SCHEMA, "protobuf")
    assert decode(encode(FULL)) == {**FULL, "na": []}  # proto3: an absent list reads as empty


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_all_data(st.text(max_size=200)))
def test_any_datum_round_trips_through_protobuf(data: dict[str, Any]) -> None:
    """Generated data of every covered type decodes back to itself (an absent list as [])."""
    body = encode_data(ALL_SCHEMA, data, "protobuf")
    expected = {**data, "na": data["na"] or []}
    assert decode_data(ALL_SCHEMA, body, "application/protobuf") == expected


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"i": True},
        {"i": 1.0},
        {"i": 2**31},
        {"l": -(2**63) - 1},
        {"d": "7"},
        {"y": "text"},
        {"sub": {"x": 1, "extra": 2}},
        {"ml": {"k": None}},
    ],
    ids=repr,
)
def test_misfits_are_value_errors(change: dict[str, Any]) -> None:
    """Values the message cannot hold are a ValueError naming the schema."""
    with pytest.raises(ValueError, match=re.escape(f"does not fit {ALL_SCHEMA.uri}")):
        encode_data(ALL_SCHEMA, FULL | change, "protobuf")


def test_junk_bytes_are_a_value_error() -> None:
    """Bytes that are not the message are a ValueError naming the schema."""
    with pytest.raises(ValueError, match="not Protobuf of"):
        decode_data(ALL_SCHEMA, b"\xff\xff\xff", "application/protobuf")


def test_protobuf_data_needs_an_avro_record() -> None:
    """A JSON Schema type, or an Avro schema that is not a record, cannot derive a message."""
    with pytest.raises(SchemaDefinitionError):
        data_codec(Schema("com.example.js", 1, "jsonschema", {"type": "object"}), "protobuf")
    with pytest.raises(SchemaDefinitionError):
        data_codec(Schema("com.example.str", 1, "avro", "string"), "protobuf")
