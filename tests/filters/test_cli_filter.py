"""`polybus filter explain` through click's CliRunner, for every provider."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from polybus.cli.filter import filter_group

EXPRESSION = "type = 'com.shop.order.placed' AND subject LIKE 'eu-%'"


@pytest.mark.parametrize(
    ("provider", "verdict"),
    [
        ("aws", "fully native"),
        ("azure", "partly native"),
        ("gcp", "fully native"),
        ("local", "fully native"),
    ],
)
def test_explain_json_for_each_provider(provider: str, verdict: str) -> None:
    """--json prints the filter, native filter, residual and verdict for each provider."""
    result = CliRunner().invoke(
        filter_group, ["explain", "--provider", provider, "--json", EXPRESSION]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["provider"] == provider
    assert data["filter"] == {"sql": EXPRESSION}
    assert data["verdict"] == verdict
    assert data["native"] is not None


def test_explain_reads_subscriptions_api_json() -> None:
    """A JSON filter is read as the Subscriptions API form."""
    result = CliRunner().invoke(
        filter_group, ["explain", "--provider", "gcp", "--json", '{"suffix": {"subject": ".ca"}}']
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["native"] == "attributes:ce-subject"
    assert data["residual"] == {"suffix": {"subject": ".ca"}}
    assert data["verdict"] == "partly native"


def test_explain_rich_output_names_the_parts() -> None:
    """Without --json the table shows native, residual and verdict."""
    result = CliRunner().invoke(filter_group, ["explain", "--provider", "azure", EXPRESSION])
    assert result.exit_code == 0, result.output
    for word in ("native", "residual", "verdict", "partly native", "subjectBeginsWith"):
        assert word in result.output


def test_malformed_expression_reports_the_position() -> None:
    """A malformed CESQL filter fails with the position and the reason, not a traceback."""
    result = CliRunner().invoke(filter_group, ["explain", "--provider", "aws", "type = "])
    assert result.exit_code != 0
    assert "parse error at position 7" in result.output


def test_malformed_json_reports_the_position() -> None:
    """Broken JSON is reported with its position."""
    result = CliRunner().invoke(filter_group, ["explain", "--provider", "aws", '{"exact": '])
    assert result.exit_code != 0
    assert "invalid JSON at position" in result.output
