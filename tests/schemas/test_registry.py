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


STRICT: dict[str, Any] = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
}


@pytest.fixture
def guarded(tmp_path: Path) -> tuple[Any, Path]:
    """A bus with schema validation over a directory registry, and a permissive schema outside its root."""
    from polybus.adapters import plugin_manager
    from polybus.adapters.local.memory import MemoryBus
    from polybus.core.bus import Bus
    from polybus.core.schemas.middleware import SchemaValidation

    registry = SchemaRegistry(tmp_path / "registry")
    registry.register("com.shop.order", STRICT)
    registry.register("com.shop.anything", {"type": "object"})
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/1.json").write_text(json.dumps({"type": "object"}))
    bus = Bus(MemoryBus(), hooks=plugin_manager([SchemaValidation(registry)]).hook)
    return bus, tmp_path


@pytest.mark.parametrize(
    ("case", "field", "rule"),
    [
        ("dataschema with ..", "dataschema", "only name a schema registered for its own type"),
        ("absolute dataschema", "dataschema", "only name a schema registered for its own type"),
        ("another type's URN", "dataschema", "only name a schema registered for its own type"),
        ("type with ..", "type", "names one folder"),
    ],
)
def test_lookups_stay_inside_the_root_and_the_type(
    guarded: tuple[Any, Path], case: str, field: str, rule: str
) -> None:
    """Invalid data never passes by naming a schema outside the root or of another type."""
    from polybus.core.schemas import SchemaValidationError

    bus, tmp_path = guarded
    event = {
        "dataschema with ..": new_event(
            "com.shop.order", "/s", {"bad": 1}, dataschema="urn:polybus:schema:../outside:1"
        ),
        "absolute dataschema": new_event(
            "com.shop.order",
            "/s",
            {"bad": 1},
            dataschema=f"urn:polybus:schema:{tmp_path}/outside:1",
        ),
        "another type's URN": new_event(
            "com.shop.order", "/s", {"bad": 1}, dataschema=dataschema_uri("com.shop.anything", 1)
        ),
        "type with ..": new_event("../outside", "/s", {"bad": 1}),
    }[case]
    with pytest.raises(SchemaValidationError) as info:
        bus.publish(event, topic="orders")
    [problem] = info.value.problems
    assert problem.field == field and rule in problem.rule
    bus.close()


def test_malformed_registry_urns_are_refused() -> None:
    """A dataschema with the registry's prefix must parse: non-ASCII or endless digits are named."""
    from polybus.core.schemas import SchemaValidationError

    registry = SchemaRegistry()
    registry.register("t", V1)
    for uri in (
        "urn:polybus:schema:t:²",
        "urn:polybus:schema:t:" + "9" * 5000,
        "urn:polybus:schema:t",
    ):
        with pytest.raises(SchemaValidationError) as info:
            registry.for_event(new_event("t", "/s", {"id": "a"}, dataschema=uri))
        assert info.value.problems[0].field == "dataschema"


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/abs/path", "a\\b", "nul\x00", "x" * 256])
def test_type_names_that_are_not_one_folder_cannot_be_registered(tmp_path: Path, name: str) -> None:
    """register and configure refuse a type that would resolve outside its own folder; nothing is written."""
    from polybus.core.schemas import SchemaValidationError

    registry = SchemaRegistry(tmp_path / "registry")
    with pytest.raises(SchemaValidationError, match="names one folder"):
        registry.register(name, V1)
    with pytest.raises(SchemaValidationError, match="names one folder"):
        registry.configure(name, compatibility="none")
    with pytest.raises(SchemaValidationError, match="names one folder"):
        DirectoryBackend(tmp_path / "registry").versions(name)
    assert [p.name for p in tmp_path.rglob("*")] == []
