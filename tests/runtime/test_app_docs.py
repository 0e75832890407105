"""`polybus schema docs --app`: an App's subscriptions and publications as valid AsyncAPI 3.0."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from click.testing import CliRunner

from polybus.cli.main import cli
from polybus.core.schemas.registry import SchemaRegistry

ASYNCAPI_SCHEMA = Path(__file__).parents[1] / "schemas" / "asyncapi" / "asyncapi-3.0.0.schema.json"
ORDER = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "items": {"type": "array"}},
    "required": ["order_id", "items"],
}


def test_app_document_lists_subscriptions_filters_and_publications(tmp_path: Path) -> None:
    """The example app's document validates and names its filter, policy and both channels."""
    registry = SchemaRegistry(tmp_path / "reg")
    registry.configure("com.shop.order.placed", topics=["orders"])
    registry.register("com.shop.order.placed", ORDER)
    result = CliRunner().invoke(
        cli,
        ["schema", "docs", "--registry", str(tmp_path / "reg"), "--app",
         "examples.inventory_app:app", "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    schema = json.loads(ASYNCAPI_SCHEMA.read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(document)) == []
    receive = document["operations"]["receive.reserve-stock"]
    assert receive["x-polybus-filter"] == {"sql": "type = 'com.shop.order.placed'"}
    assert receive["x-polybus-concurrency"] == 4
    assert set(document["channels"]) == {"orders", "inventory"}
    placed = document["channels"]["orders"]["messages"]
    assert [m["$ref"] for m in placed.values()] == [
        "#/components/messages/com.shop.order.placed.v1"
    ]
    assert document["operations"]["send.inventory"]["action"] == "send"
