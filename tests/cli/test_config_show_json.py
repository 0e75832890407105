"""`--json` beside `config show --json`: `polybus schema check --json` and `adapters --json`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from polybus.cli.main import cli
from polybus.cli.schema import schema_group
from polybus.core.schemas import SchemaRegistry

READING = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"deviceId": {"type": "string"}},
    "required": ["deviceId"],
}


def test_schema_check_json_reports_a_compatible_history(tmp_path: Path) -> None:
    """A compatible history is exit 0 and JSON naming each version, mode and predecessors."""
    registry = SchemaRegistry(tmp_path)
    registry.register("com.example.reading", READING)
    looser = {**READING, "properties": {**READING["properties"], "site": {"type": "string"}}}
    registry.register("com.example.reading", looser)
    result = CliRunner().invoke(schema_group, ["check", "--registry", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["compatible"] is True
    last = shown["reports"][-1]
    assert (last["event_type"], last["version"], last["against"]) == ("com.example.reading", 2, [1])
    assert last["breaks"] == []


def test_schema_check_json_exits_1_and_lists_breaks(tmp_path: Path) -> None:
    """A breaking version is exit 1 with each break's direction, versions, path and reason."""
    registry = SchemaRegistry(tmp_path)
    registry.register("com.example.reading", READING)
    broken = {
        **READING,
        "required": ["deviceId", "site"],
        "properties": {**READING["properties"], "site": {"type": "string"}},
    }
    (tmp_path / "com.example.reading" / "2.json").write_text(json.dumps(broken))
    result = CliRunner().invoke(schema_group, ["check", "--registry", str(tmp_path), "--json"])
    assert result.exit_code == 1
    shown = json.loads(result.output)
    assert shown["compatible"] is False
    [brk] = shown["reports"][-1]["breaks"]
    assert brk["path"] == "$.site" and brk["direction"] == "backward"


def test_adapters_json_lists_every_adapter() -> None:
    """`adapters --json` is a JSON list naming each registered adapter and its capabilities."""
    result = CliRunner().invoke(cli, ["adapters", "--json"])
    assert result.exit_code == 0, result.output
    names = {entry["name"] for entry in json.loads(result.output)}
    assert {"local", "aws", "azure", "gcp"} <= names
