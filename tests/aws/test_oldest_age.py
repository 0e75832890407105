"""The oldest age of the aws lag gauge: CloudWatch's ApproximateAgeOfOldestMessage, else None."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from polybus.adapters.aws.adapter import AwsAdapter
from polybus.adapters.aws.emulator import AwsEmulator
from polybus.core.contract import SubscriptionSpec
from polybus.core.events import new_event
from tests.contract.helpers import receive_n


def _provision(adapter: AwsAdapter) -> tuple[str, str]:
    name = f"age-{uuid.uuid4().hex[:8]}"
    adapter.provision(SubscriptionSpec(name, "orders"))
    queue_url = adapter._provisioner.lookup(name).queue_url
    return name, queue_url.rsplit("/", 1)[-1]


def _put_age(aws_env: AwsEmulator, queue: str, points: list[tuple[datetime, float]]) -> None:
    cloudwatch: Any = boto3.session.Session(region_name="us-east-1").client(
        "cloudwatch", endpoint_url=aws_env.endpoint
    )
    cloudwatch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": queue}],
                "Timestamp": at,
                "Value": value,
                "Unit": "Seconds",
            }
            for at, value in points
        ],
    )
    cloudwatch.close()


def test_oldest_age_is_the_newest_cloudwatch_datapoint(
    aws_adapter_factory: Callable[..., AwsAdapter], aws_env: AwsEmulator
) -> None:
    """With events waiting, oldest_age is the newest ApproximateAgeOfOldestMessage of the queue."""
    adapter = aws_adapter_factory()
    name, queue = _provision(adapter)
    adapter.publish("orders", [new_event("com.example.order", "/shop", {"n": 1})])
    now = datetime.now(UTC)
    _put_age(
        aws_env, queue, [(now - timedelta(minutes=3), 12.0), (now - timedelta(minutes=1), 42.0)]
    )
    stats = adapter.backlog_stats(name)
    assert stats.undelivered == 1
    assert stats.oldest_age == 42.0


def test_oldest_age_is_unavailable_without_a_datapoint(
    aws_adapter_factory: Callable[..., AwsAdapter],
) -> None:
    """No datapoint (moto has none of its own): None, the documented 'unavailable'; empty: None."""
    adapter = aws_adapter_factory()
    name, _ = _provision(adapter)
    assert adapter.backlog_stats(name).oldest_age is None  # nothing waiting: no oldest message
    adapter.publish("orders", [new_event("com.example.order", "/shop", {"n": 1})])
    stats = adapter.backlog_stats(name)
    assert stats.undelivered == 1 and stats.oldest_age is None
    [delivery] = receive_n(adapter, name, 1)
    delivery.ack()
