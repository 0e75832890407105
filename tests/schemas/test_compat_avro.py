"""Avro compatibility, case by case: the Avro spec's schema-resolution rules in each mode."""

from __future__ import annotations

from typing import Any

import pytest

from polybus.core.schemas import (
    IncompatibleSchemaError,
    Schema,
    SchemaRegistry,
    check_compatibility,
)
from polybus.core.schemas.compat_avro import reader_breaks


def record(*fields: dict[str, Any], name: str = "Order") -> dict[str, Any]:
    """An Avro record schema with the given fields."""
    return {"type": "record", "name": name, "fields": list(fields)}


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    """An Avro field."""
    return {"name": name, "type": type_, **extra}


BASE = record(f("id", "string"), f("qty", "int"))


def test_identical_schemas_are_compatible() -> None:
    """A schema reads its own data."""
    assert reader_breaks(BASE, BASE) == []


def test_added_field_with_default_is_backward_compatible() -> None:
    """New reader with a defaulted field reads old data: the default fills it."""
    new = record(f("id", "string"), f("qty", "int"), f("note", "string", default=""))
    assert reader_breaks(new, BASE) == []


def test_added_field_without_default_breaks_backward() -> None:
    """New reader with a field old data lacks and no default cannot read old data."""
    new = record(f("id", "string"), f("qty", "int"), f("note", "string"))
    assert reader_breaks(new, BASE) == [
        ("$.note", "field added without a default: data written without it cannot fill it")
    ]


def test_added_field_without_default_is_forward_compatible() -> None:
    """Old readers skip a field they do not know."""
    new = record(f("id", "string"), f("qty", "int"), f("note", "string"))
    assert reader_breaks(BASE, new) == []


def test_removed_field_without_default_breaks_forward() -> None:
    """Old readers need a field the new writer dropped, and have no default for it."""
    new = record(f("id", "string"))
    breaks = reader_breaks(BASE, new)
    assert [path for path, _ in breaks] == ["$.qty"]


def test_removed_field_with_default_is_forward_compatible() -> None:
    """Old readers fill a dropped field from their default."""
    old = record(f("id", "string"), f("qty", "int", default=1))
    assert reader_breaks(old, record(f("id", "string"))) == []


def test_type_promotion_int_to_long_is_backward_only() -> None:
    """int data reads as long, but long data does not read as int."""
    new = record(f("id", "string"), f("qty", "long"))
    assert reader_breaks(new, BASE) == []
    breaks = reader_breaks(BASE, new)
    assert breaks and "type changed: written as long, read as int" in breaks[0][1]


def test_changed_type_breaks_both_ways() -> None:
    """int to string is no promotion in either direction."""
    new = record(f("id", "string"), f("qty", "string"))
    assert reader_breaks(new, BASE) and reader_breaks(BASE, new)


def test_string_and_bytes_promote_both_ways() -> None:
    """Avro lets string and bytes read each other."""
    a, b = record(f("x", "string")), record(f("x", "bytes"))
    assert reader_breaks(a, b) == [] and reader_breaks(b, a) == []


def test_making_a_field_nullable_is_backward_not_forward() -> None:
    """A ['null', X] reader reads X data; an X reader cannot read null."""
    new = record(f("id", "string"), f("qty", ["null", "int"], default=None))
    assert reader_breaks(new, BASE) == []
    assert reader_breaks(BASE, new)[0][0] == "$.qty"


def test_enum_symbol_removed_needs_reader_default() -> None:
    """Writer symbols unknown to the reader break unless the reader's enum has a default."""
    old = record(f("s", {"type": "enum", "name": "S", "symbols": ["A", "B"]}))
    new = record(f("s", {"type": "enum", "name": "S", "symbols": ["A"]}))
    assert "enum symbols ['B']" in reader_breaks(new, old)[0][1]
    with_default = record(f("s", {"type": "enum", "name": "S", "symbols": ["A"], "default": "A"}))
    assert reader_breaks(with_default, old) == []


def test_nested_records_arrays_and_maps_are_checked_with_paths() -> None:
    """Breaks deep inside arrays and maps name the path."""
    line = lambda t: record(f("sku", "string"), f("price", t), name="Line")  # noqa: E731
    old = record(
        f("lines", {"type": "array", "items": line("double")}),
        f("m", {"type": "map", "values": "int"}),
    )
    new = record(
        f("lines", {"type": "array", "items": line("int")}),
        f("m", {"type": "map", "values": "string"}),
    )
    paths = [path for path, _ in reader_breaks(new, old)]
    assert paths == ["$.lines[].price", "$.m{}"]


def test_renamed_field_with_alias_is_compatible() -> None:
    """A reader alias matches the writer's old field name."""
    new = record(f("id", "string"), f("quantity", "int", aliases=["qty"]))
    assert reader_breaks(new, BASE) == []


def test_renamed_record_without_alias_breaks() -> None:
    """Record names must match (or the reader aliases the old name)."""
    assert "renamed" in reader_breaks(record(f("id", "string"), name="Other"), BASE)[0][1]


def test_union_branch_removed_breaks_backward() -> None:
    """Writer union branches must each be readable by the reader."""
    old = record(f("v", ["null", "int", "string"]))
    new = record(f("v", ["null", "int"]))
    assert "string" in reader_breaks(new, old)[0][1]


def test_named_type_references_are_resolved() -> None:
    """A field typed by name resolves to the record defined earlier."""
    point = record(f("x", "double"), name="Point")
    old = record(f("a", point), f("b", "Point"), name="Shape")
    new_point = record(f("x", "double"), f("y", "double"), name="Point")
    new = record(f("a", new_point), f("b", "Point"), name="Shape")
    assert [p for p, _ in reader_breaks(new, old)] == ["$.a.y", "$.b.y"]


@pytest.mark.parametrize(
    ("mode", "breaks"),
    [
        ("backward", ["backward"]),
        ("forward", []),
        ("full", ["backward"]),
        ("none", []),
    ],
)
def test_modes_pick_directions(mode: str, breaks: list[str]) -> None:
    """backward = new reads old, forward = old reads new, full = both, none = nothing."""
    old = Schema("t", 1, "avro", BASE)
    new = Schema("t", 2, "avro", record(f("id", "string"), f("qty", "int"), f("n", "int")))
    report = check_compatibility(new, [old], mode)
    assert [b.direction for b in report.breaks] == breaks


def test_transitive_checks_every_earlier_version() -> None:
    """backward_transitive catches a break with v1 that v2 alone hides."""
    v1 = Schema("t", 1, "avro", record(f("id", "string")))
    v2 = Schema("t", 2, "avro", record(f("id", "string"), f("n", "int", default=0)))
    v3 = Schema("t", 3, "avro", record(f("id", "string"), f("n", "int")))
    assert check_compatibility(v3, [v1, v2], "backward").compatible
    transitive = check_compatibility(v3, [v1, v2], "backward_transitive")
    assert [(b.reader, b.writer, b.path) for b in transitive.breaks] == [(3, 1, "$.n")]
    v3ok = Schema(
        "t",
        3,
        "avro",
        record(f("id", "string"), f("n", "int", default=0), f("m", "int", default=0)),
    )
    assert check_compatibility(v3ok, [v1, v2], "backward_transitive").compatible
    v3b = Schema("t", 3, "avro", record(f("id", "string")))
    assert check_compatibility(v3b, [v1, v2], "forward").compatible
    assert check_compatibility(v3b, [v1, v2], "forward_transitive").against == (1, 2)


def test_registry_refuses_a_breaking_version_with_every_reason() -> None:
    """register raises IncompatibleSchemaError naming each break; nothing is stored."""
    registry = SchemaRegistry()
    registry.configure("t", compatibility="full")
    registry.register("t", BASE, kind="avro")
    bad = record(f("id", "long"), f("extra", "string"))
    with pytest.raises(IncompatibleSchemaError) as info:
        registry.register("t", bad, kind="avro")
    rules = [p.rule for p in info.value.problems]
    paths = [p.field for p in info.value.problems]
    assert paths == ["$.id", "$.extra", "$.id", "$.qty"] and len(rules) == 4
    assert registry.versions("t") == [1]


def test_changing_schema_kind_is_a_break() -> None:
    """JSON Schema and Avro versions of one type cannot be related."""
    report = check_compatibility(
        Schema("t", 2, "jsonschema", {"type": "object"}), [Schema("t", 1, "avro", BASE)], "backward"
    )
    assert "schema kind changed" in report.breaks[0].reason
