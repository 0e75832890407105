"""`polybus schema check` and `polybus schema docs`, and the AsyncAPI document against the AsyncAPI schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from click.testing import CliRunner

from polybus.cli.schema import schema_group
from polybus.core.schemas import SchemaRegistry
from polybus.core.schemas.asyncapi import asyncapi_document
from tests.schemas.evolution import TYPE, V1, V2, V3

ASYNCAPI_SCHEMA = Path(__file__).parent / "asyncapi" / "asyncapi-3.0.0.schema.json"
READING = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"deviceId": {"type": "string"}, "temperature": {"type": "number"}},
    "required": ["deviceId"],
}


def make_registry(root: Path) -> SchemaRegistry:
    """Orders (Avro, three versions, on 'orders') and readings (JSON Schema, default topic)."""
    registry = SchemaRegistry(root)
    registry.configure(
        TYPE, compatibility="full", topics=["orders", "audit"], description="An order was placed"
    )
    for definition in (V1, V2, V3):
        registry.register(TYPE, definition, kind="avro")
    registry.register("com.example.reading", READING)
    return registry


def test_check_passes_on_a_compatible_history(tmp_path: Path) -> None:
    """Every stored version is checked against its predecessors; exit 0 and one line per version."""
    make_registry(tmp_path)
    result = CliRunner().invoke(schema_group, ["check", "--registry", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"{TYPE} v3 (full against v2): compatible" in result.output


def test_check_exits_non_zero_on_a_breaking_file_and_says_why(tmp_path: Path) -> None:
    """A hand-edited breaking version in the directory fails CI with the reason."""
    make_registry(tmp_path)
    broken = {
        **READING,
        "required": ["deviceId", "site"],
        "properties": {**READING["properties"], "site": {"type": "string"}},
    }
    (tmp_path / "com.example.reading" / "2.json").write_text(json.dumps(broken))
    result = CliRunner().invoke(schema_group, ["check", "--registry", str(tmp_path)])
    assert result.exit_code == 1
    assert "com.example.reading v2 (backward against v1): 1 break(s)" in result.output
    assert "$.site: required field without a default" in result.output


def test_check_a_candidate_file_before_adding_it(tmp_path: Path) -> None:
    """--candidate checks a proposed next version without storing it."""
    make_registry(tmp_path)
    candidate = tmp_path / "v4.avsc"
    candidate.write_text(
        json.dumps({**V3, "fields": [f for f in V3["fields"] if f["name"] != "orderId"]})
    )
    result = CliRunner().invoke(
        schema_group,
        ["check", "--registry", str(tmp_path), "--type", TYPE, "--candidate", str(candidate)],
    )
    assert result.exit_code == 1 and "forward: v3 reading v4 data at $.orderId" in result.output
    assert SchemaRegistry(tmp_path).versions(TYPE) == [1, 2, 3]


def test_asyncapi_document_validates_against_the_asyncapi_schema(tmp_path: Path) -> None:
    """The generated document satisfies the official AsyncAPI 3.0.0 JSON Schema (vendored)."""
    document = asyncapi_document(make_registry(tmp_path))
    schema = json.loads(ASYNCAPI_SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=str)
    assert errors == []
    assert set(document["channels"]) == {"orders", "audit", "events"}
    assert set(document["channels"]["orders"]["messages"]) == {
        f"{TYPE}.v1",
        f"{TYPE}.v2",
        f"{TYPE}.v3",
    }
    assert document["components"]["messages"][f"{TYPE}.v2"]["payload"]["schema"] == V2


def test_asyncapi_schema_rejects_a_broken_document(tmp_path: Path) -> None:
    """The validation has teeth: a document missing its info is refused."""
    document = asyncapi_document(make_registry(tmp_path))
    del document["info"]
    schema = json.loads(ASYNCAPI_SCHEMA.read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(document))


def test_docs_command_writes_yaml(tmp_path: Path) -> None:
    """`schema docs -o FILE` writes the same document as YAML."""
    make_registry(tmp_path / "reg")
    out = tmp_path / "asyncapi.yaml"
    result = CliRunner().invoke(
        schema_group, ["docs", "--registry", str(tmp_path / "reg"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text()) == asyncapi_document(SchemaRegistry(tmp_path / "reg"))
