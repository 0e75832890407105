"""The registry: versions, directory layout, lookups by dataschema, pluggable backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polybus.core.events import new_event
from polybus.core.schemas import (
    DirectoryBackend,
    MemoryBackend,
    SchemaDefinitionError,
    SchemaNotFoundError,
    SchemaRegistry,
    dataschema_uri,
    open_backend,
    parse_dataschema,
    register_backend,
)

V1: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "string"}},
    "required": ["id"],
}
V2: dict[str, Any] = {**V1, "properties": {**V1["properties"], "n": {"type": "integer"}}}


def test_directory_layout_is_one_folder_per_type(tmp_path: Path) -> None:
    """register writes <type>/<version>.json and type.json; a new registry reads them back."""
    registry = SchemaRegistry(tmp_path)
    registry.configure("com.example.a", compatibility="full", topics=["orders"], description="An A")
    registry.register("com.example.a", V1)
    registry.register("com.example.a", V2)
    avro = {"type": "record", "name": "B", "fields": [{"name": "x", "type": "int"}]}
    registry.register("com.example.b", avro, kind="avro")
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == [
        "com.example.a/1.json",
        "com.example.a/2.json",
        "com.example.a/type.json",
        "com.example.b/1.avsc",
    ]
    again = SchemaRegistry(f"dir:{tmp_path}")
    assert again.event_types() == ["com.example.a", "com.example.b"]
    assert again.latest("com.example.a").definition == V2
    assert again.get("com.example.b", 1).kind == "avro"
    assert again.info("com.example.a").topics == ("orders",)
    assert json.loads((tmp_path / "com.example.a/type.json").read_text())["compatibility"] == "full"


def test_registering_the_latest_again_is_idempotent() -> None:
    """The same definition twice gives one version."""
    registry = SchemaRegistry()
    assert registry.register("t", V1).version == 1
    assert registry.register("t", V1).version == 1
    assert registry.versions("t") == [1]


def test_invalid_definitions_are_refused() -> None:
    """A definition that is no schema of its kind raises SchemaDefinitionError."""
    registry = SchemaRegistry()
    with pytest.raises(SchemaDefinitionError, match="not a valid avro schema"):
        registry.register(
            "t",
            {"type": "record", "name": "X", "fields": [{"name": "a", "type": "nosuchtype"}]},
            kind="avro",
        )
    with pytest.raises(SchemaDefinitionError, match="not a valid jsonschema schema"):
        registry.register("t", {"type": 12})


def test_events_name_their_schema_in_dataschema() -> None:
    """for_event follows a registry URN, else falls back to the type's latest version."""
    registry = SchemaRegistry()
    registry.register("t", V1)
    registry.register("t", V2)
    assert parse_dataschema(dataschema_uri("com.x.y", 12)) == ("com.x.y", 12)
    assert parse_dataschema("https://example.com/s.json") is None
    pinned = new_event("t", "/s", {"id": "a"}, dataschema=dataschema_uri("t", 1))
    found = registry.for_event(pinned)
    assert found is not None and found.version == 1
    latest = registry.for_event(new_event("t", "/s", {"id": "a"}))
    assert latest is not None and latest.version == 2
    assert registry.for_event(new_event("unknown", "/s")) is None
    with pytest.raises(SchemaNotFoundError):
        registry.for_event(new_event("t", "/s", dataschema=dataschema_uri("t", 9)))


def test_backends_are_pluggable_by_scheme() -> None:
    """register_backend makes open_backend build a custom backend from a location."""
    made: list[str] = []

    def factory(rest: str) -> MemoryBackend:
        made.append(rest)
        return MemoryBackend()

    register_backend("test-backend", factory)
    registry = SchemaRegistry("test-backend:some/where")
    registry.register("t", V1)
    assert made == ["some/where"] and registry.versions("t") == [1]
    assert isinstance(open_backend("memory:"), MemoryBackend)
    assert isinstance(open_backend("relative/dir"), DirectoryBackend)


def test_two_files_for_one_version_are_an_error(tmp_path: Path) -> None:
    """1.json beside 1.avsc is ambiguous and reported."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t/1.json").write_text(json.dumps(V1))
    (tmp_path / "t/1.avsc").write_text("{}")
    with pytest.raises(SchemaDefinitionError, match="two files for one version"):
        SchemaRegistry(tmp_path).versions("t")


def test_bad_type_settings_are_reported(tmp_path: Path) -> None:
    """An unknown key or compatibility mode in type.json is named."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t/type.json").write_text(json.dumps({"compatibility": "sideways"}))
    with pytest.raises(SchemaDefinitionError, match="compatibility"):
        SchemaRegistry(tmp_path).info("t")
