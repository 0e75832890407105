"""`polybus provision`: plans (JSON, Terraform, CloudFormation, Bicep) checked structurally, and applied."""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
from click.testing import CliRunner, Result

from polybus.adapters.aws.emulator import AwsEmulator
from polybus.cli.main import cli

APP_MODULE = "polybus_plan_app"
APP = """
from polybus import App, DeliveryPolicy

app = App("shop")


@app.subscriber(
    "billing",
    topic="orders",
    filter="type = 'com.shop.order.placed' AND subject LIKE 'eu/%'",
    policy=DeliveryPolicy(max_delivery_attempts=12, ack_deadline=45),
)
def billing(event): ...


@app.subscriber("audit", topic="orders")
def audit(event): ...


app.publishes("payments", "com.shop.payment.done")
"""
CONFIG = """provider = "aws"
[aws]
region = "eu-west-1"
[gcp]
project = "my-proj"
[azure]
endpoint = "https://ns.westeurope-1.eventgrid.azure.net"
key = "a2V5"
arm_subscription = "0000"
arm_resource_group = "rg"
arm_namespace = "ns"
"""


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory with the shop app module and a polybus.toml for every provider."""
    (tmp_path / f"{APP_MODULE}.py").write_text(APP)
    (tmp_path / "polybus.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("POLYBUS_CONFIG", "POLYBUS_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    yield tmp_path
    sys.modules.pop(APP_MODULE, None)


def plan(provider: str, fmt: str = "json") -> Result:
    """`provision --dry-run` of the shop app for `provider` in `fmt`."""
    args = ["provision", "--app", f"{APP_MODULE}:app", "--dry-run", "--format", fmt]
    return CliRunner().invoke(cli, [*args, "--provider", provider])


def plan_json(provider: str) -> dict[str, Any]:
    """The JSON plan of the shop app for `provider`."""
    result = plan(provider)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def by_kind(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The plan's resources grouped by kind."""
    out: dict[str, list[dict[str, Any]]] = {}
    for resource in document["resources"]:
        out.setdefault(resource["kind"], []).append(resource)
    return out


def test_aws_plan_lists_buses_rules_queues_and_dead_letters(shop: Path) -> None:
    """Each topic gets a bus and archive; each subscription a rule with its pattern, queue and DLQ."""
    kinds = by_kind(plan_json("aws"))
    assert [r["name"] for r in kinds["event-bus"]] == ["polybus-orders", "polybus-payments"]
    assert len(kinds["archive"]) == 2
    assert {r["name"] for r in kinds["queue"]} == {"polybus-billing", "polybus-audit"}
    assert {r["name"] for r in kinds["dead-letter-queue"]} == {
        "polybus-billing-dlq",
        "polybus-audit-dlq",
    }
    [billing_rule] = [r for r in kinds["rule"] if r["name"] == "polybus-billing"]
    pattern = json.loads(billing_rule["properties"]["EventPattern"])
    assert pattern["detail-type"] == ["com.shop.order.placed"]
    assert pattern["detail"]["subject"] == [{"prefix": "eu/"}]
    [billing_queue] = [r for r in kinds["queue"] if r["name"] == "polybus-billing"]
    assert billing_queue["properties"]["Attributes"] == {
        "VisibilityTimeout": 45,
        "maxReceiveCount": 12,
    }


def test_gcp_plan_carries_native_filter_and_dead_letter_policy(shop: Path) -> None:
    """The Pub/Sub subscription has its filter, clamped attempts, and a dead-letter topic + subscription."""
    document = plan_json("gcp")
    kinds = by_kind(document)
    [billing] = [r for r in kinds["subscription"] if r["name"].endswith("/billing")]
    settings = billing["properties"]
    assert settings["filter"] == (
        'attributes.ce-type = "com.shop.order.placed" AND hasPrefix(attributes.ce-subject, "eu/")'
    )
    assert settings["dead_letter_policy"] == {
        "dead_letter_topic": "projects/my-proj/topics/billing-dlq",
        "max_delivery_attempts": 12,
    }
    assert "projects/my-proj/subscriptions/billing-dlq" in {
        r["name"] for r in kinds["dead-letter-subscription"]
    }
    assert document["residual_filters"] == {}


def test_azure_plan_has_namespace_topics_and_filtered_queue_subscriptions(shop: Path) -> None:
    """Event Grid: namespace topics, queue subscriptions with filtersConfiguration, a redelivery topic."""
    kinds = by_kind(plan_json("azure"))
    assert {r["name"] for r in kinds["namespace-topic"]} == {
        "orders",
        "payments",
        "billing-redelivery",
    }
    [billing] = [r for r in kinds["event-subscription"] if r["name"] == "orders/billing"]
    properties = billing["properties"]["properties"]
    assert properties["filtersConfiguration"]["includedEventTypes"] == ["com.shop.order.placed"]
    assert properties["deliveryConfiguration"]["queue"]["maxDeliveryCount"] == 10


def test_local_plan_creates_nothing_and_says_so(shop: Path) -> None:
    """The local bus needs no resources: an empty plan with a note."""
    document = plan_json("local")
    assert document["resources"] == [] and "local bus" in document["notes"][0]


def _terraform_references(text: str, declared: set[str]) -> set[str]:
    """`type.key` references in Terraform text that name no declared resource."""
    refs = set(re.findall(r"= \[?((?:aws|google|azapi)_[a-z_]+\.[a-z0-9_]+)\.[a-z_]+", text))
    return {ref for ref in refs if ref not in declared}


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_terraform_plan_parses_as_hcl_and_references_resolve(shop: Path, provider: str) -> None:
    """The Terraform plan is valid HCL, one resource per planned one, every reference declared."""
    result = plan(provider, "terraform")
    assert result.exit_code == 0, result.output
    parsed = hcl2.loads(result.output)
    declared = {
        f"{rtype.strip(chr(34))}.{name.strip(chr(34))}"
        for block in parsed["resource"]
        for rtype, body in block.items()
        for name in body
    }
    planned = [
        r for r in plan_json(provider)["resources"] if not r["kind"].startswith("namespace (")
    ]
    assert len(declared) == len(planned)
    assert _terraform_references(result.output, declared) == set()


def test_cloudformation_plan_passes_cfn_lint(shop: Path) -> None:
    """The template has no cfn-lint error or warning, and every Ref / GetAtt names a resource."""
    from cfnlint.api import lint_all

    result = plan("aws", "cloudformation")
    assert result.exit_code == 0, result.output
    template = json.loads(result.output)
    assert [str(m) for m in lint_all(result.output) if m.rule.id[0] in "EW"] == []
    logical = set(template["Resources"])
    text = json.dumps(template)
    targets = set(re.findall(r'"Ref": "(\w+)"', text)) | set(
        re.findall(r'"Fn::GetAtt": \["(\w+)"', text)
    )
    assert targets and targets <= logical


def test_bicep_plan_is_well_formed(shop: Path) -> None:
    """The Bicep plan declares each resource once, parents exist, and braces balance."""
    result = plan("azure", "bicep")
    assert result.exit_code == 0, result.output
    text = result.output
    symbols = re.findall(r"^resource (\w+) '", text, re.M)
    assert len(symbols) == len(set(symbols)) and "namespace" in symbols
    assert set(re.findall(r"^  parent: (\w+)$", text, re.M)) <= set(symbols)
    assert text.count("{") == text.count("}") and text.count("[") == text.count("]")
    assert "existing = {" in text
    assert re.search(r"^  name: 'billing'$", text, re.M)  # a child's own name, not orders/billing


def test_a_format_the_provider_has_not_is_one_clear_error(shop: Path) -> None:
    """Bicep for aws names the formats aws plans in, exit 1, no traceback."""
    result = plan("aws", "bicep")
    assert result.exit_code == 1
    assert "json, terraform, cloudformation" in result.output and "Traceback" not in result.output


def test_apply_creates_what_the_plan_lists_and_subscriptions_list_delete(
    shop: Path, aws_env: AwsEmulator
) -> None:
    """Without --dry-run the plan's queues and rules exist on moto; list shows them, delete removes them."""
    import boto3

    settings = aws_env.settings()
    (shop / "polybus.toml").write_text(
        f'provider = "aws"\n[aws]\nregion = "{settings["region"]}"\n'
        f'endpoint_url = "{settings["endpoint_url"]}"\narchive = false\n'
    )
    runner = CliRunner()
    applied = runner.invoke(cli, ["provision", "--app", f"{APP_MODULE}:app"])
    assert applied.exit_code == 0, applied.output
    planned = by_kind(plan_json("aws"))
    sqs = boto3.client("sqs", region_name=settings["region"], endpoint_url=settings["endpoint_url"])
    queues = {url.rsplit("/", 1)[1] for url in sqs.list_queues().get("QueueUrls", [])}
    assert {r["name"] for r in planned["queue"] + planned["dead-letter-queue"]} <= queues
    events = boto3.client(
        "events", region_name=settings["region"], endpoint_url=settings["endpoint_url"]
    )
    for rule in planned["rule"]:
        found = events.describe_rule(
            Name=rule["name"], EventBusName=rule["properties"]["EventBusName"]
        )
        assert json.loads(found["EventPattern"]) == json.loads(rule["properties"]["EventPattern"])
    listed = runner.invoke(cli, ["subscriptions", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {(s["name"], s["topic"]) for s in json.loads(listed.output)} == {
        ("billing", "orders"),
        ("audit", "orders"),
    }
    deleted = runner.invoke(cli, ["subscriptions", "delete", "billing", "audit", "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert json.loads(runner.invoke(cli, ["subscriptions", "list", "--json"]).output) == []


def test_gcp_apply_matches_the_plan_and_lists_and_deletes(
    shop: Path, gcp_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the Pub/Sub emulator the applied subscriptions carry the planned filter and dead-letter policy."""
    from google.cloud import pubsub_v1

    project = f"plan-{uuid.uuid4().hex[:8]}"  # a project of its own: list sees only this app
    for name, value in gcp_emulator.environment().items():
        monkeypatch.setenv(name, value)
    host = gcp_emulator.settings()["emulator_host"]
    (shop / "polybus.toml").write_text(
        f'provider = "gcp"\n[gcp]\nproject = "{project}"\nemulator_host = "{host}"\n'
    )
    runner = CliRunner()
    applied = runner.invoke(cli, ["provision", "--app", f"{APP_MODULE}:app"])
    assert applied.exit_code == 0, applied.output
    planned = {r["name"]: r["properties"] for r in by_kind(plan_json("gcp"))["subscription"]}
    subscriber = pubsub_v1.SubscriberClient()
    try:
        for name, settings in planned.items():
            found = subscriber.get_subscription(subscription=name)
            assert found.filter == settings["filter"]
            assert (
                found.dead_letter_policy.dead_letter_topic
                == (settings["dead_letter_policy"]["dead_letter_topic"])
            )
            assert found.ack_deadline_seconds == settings["ack_deadline_seconds"]
    finally:
        subscriber.close()
    listed = json.loads(runner.invoke(cli, ["subscriptions", "list", "--json"]).output)
    assert {(s["name"], s["topic"]) for s in listed} == {("billing", "orders"), ("audit", "orders")}
    deleted = runner.invoke(cli, ["subscriptions", "delete", "billing", "audit", "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert json.loads(runner.invoke(cli, ["subscriptions", "list", "--json"]).output) == []


def test_delete_asks_before_deleting(shop: Path) -> None:
    """`subscriptions delete` without --yes asks, and a no leaves everything alone (exit 1)."""
    result = CliRunner().invoke(cli, ["subscriptions", "delete", "billing"], input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output


def test_tail_and_demo_remove_what_they_created(shop: Path) -> None:
    """On a durable local bus, nothing of `tail` or `demo` is left behind in the file."""
    (shop / "polybus.toml").write_text('provider = "local"\n[local]\ndurable = true\n')
    runner = CliRunner()
    tailed = runner.invoke(cli, ["tail", "--topic", "orders", "--timeout", "0.5"])
    assert tailed.exit_code == 0, tailed.output
    demo = runner.invoke(cli, ["demo", "--orders", "1"])
    assert demo.exit_code == 0, demo.output
    listed = runner.invoke(cli, ["subscriptions", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == []
