"""JSON Schema compatibility, case by case: which changes break which direction, and why."""

from __future__ import annotations

from typing import Any

from polybus.core.schemas.compat_jsonschema import reader_breaks


def obj(props: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """An object schema."""
    return {"type": "object", "properties": props, "required": list(required), **extra}


BASE = obj({"id": {"type": "string"}, "qty": {"type": "integer"}}, ("id", "qty"))


def test_identical_schemas_are_compatible() -> None:
    """A schema accepts what it allows."""
    assert reader_breaks(BASE, BASE) == []


def test_new_required_field_without_default_breaks_backward() -> None:
    """Old data lacks the field the new reader requires."""
    new = obj({**BASE["properties"], "note": {"type": "string"}}, ("id", "qty", "note"))
    assert reader_breaks(new, BASE) == [
        (
            "$.note",
            "required field without a default, absent from the writer's schema: data written without it is rejected",
        )
    ]


def test_new_required_field_with_default_is_backward_compatible() -> None:
    """Tolerant readers fill the default in, so old data still reads."""
    new = obj(
        {**BASE["properties"], "note": {"type": "string", "default": ""}}, ("id", "qty", "note")
    )
    assert reader_breaks(new, BASE) == []


def test_new_optional_field_is_compatible_both_ways() -> None:
    """Adding an optional field breaks nobody while unknown fields are allowed."""
    new = obj({**BASE["properties"], "note": {"type": "string"}}, ("id", "qty"))
    assert reader_breaks(new, BASE) == [] and reader_breaks(BASE, new) == []


def test_removed_required_field_breaks_forward() -> None:
    """Old readers still require the field the new writer dropped."""
    new = obj({"id": {"type": "string"}}, ("id",))
    assert [p for p, _ in reader_breaks(BASE, new)] == ["$.qty"]
    assert reader_breaks(new, BASE) == []


def test_type_change_breaks_and_integer_widens_to_number() -> None:
    """integer data is a number; number data is not always an integer; string is neither."""
    widened = obj({"id": {"type": "string"}, "qty": {"type": "number"}}, ("id", "qty"))
    assert reader_breaks(widened, BASE) == []
    assert "type changed" in reader_breaks(BASE, widened)[0][1]
    text = obj({"id": {"type": "string"}, "qty": {"type": "string"}}, ("id", "qty"))
    assert reader_breaks(text, BASE)[0][0] == "$.qty"


def test_closed_reader_rejects_removed_fields() -> None:
    """With additionalProperties false, a field the reader dropped is an unknown field."""
    closed = obj({"id": {"type": "string"}}, ("id",), additionalProperties=False)
    reasons = [r for _, r in reader_breaks(closed, BASE)]
    assert any("forbids unknown fields" in r for r in reasons)
    assert len(reasons) == 2  # the removed field, and the open writer


def test_enum_values_removed_break_backward() -> None:
    """A reader that allows fewer values rejects old data using the removed ones."""
    old = obj({"s": {"type": "string", "enum": ["a", "b"]}})
    new = obj({"s": {"type": "string", "enum": ["a"]}})
    assert reader_breaks(new, old) == [("$.s", "values ['b'] removed from the allowed set")]
    assert reader_breaks(old, new) == []


def test_tightened_bounds_break() -> None:
    """Lower maxima and higher minima reject data the writer allowed."""
    old = obj({"n": {"type": "integer", "maximum": 10}, "s": {"type": "string"}})
    new = obj({"n": {"type": "integer", "maximum": 5}, "s": {"type": "string", "maxLength": 3}})
    assert [p for p, _ in reader_breaks(new, old)] == ["$.n", "$.s"]
    assert reader_breaks(old, new) == []


def test_nested_objects_and_arrays_report_paths() -> None:
    """Breaks inside array items and nested objects name the path."""
    line = lambda t: obj({"sku": {"type": "string"}, "price": {"type": t}}, ("sku",))  # noqa: E731
    old = obj({"lines": {"type": "array", "items": line("number")}})
    new = obj({"lines": {"type": "array", "items": line("integer")}})
    assert [p for p, _ in reader_breaks(new, old)] == ["$.lines[].price"]


def test_local_refs_are_followed() -> None:
    """$ref into $defs is resolved on both sides."""
    old = {"$defs": {"q": {"type": "integer"}}, **obj({"qty": {"$ref": "#/$defs/q"}})}
    new = {"$defs": {"q": {"type": "string"}}, **obj({"qty": {"$ref": "#/$defs/q"}})}
    assert reader_breaks(new, old)[0][0] == "$.qty"


def test_reader_restricting_an_untyped_value_breaks() -> None:
    """A writer that allowed any value cannot be read by a typed reader."""
    assert "allowed any type" in reader_breaks(obj({"v": {"type": "string"}}), obj({"v": {}}))[0][1]
