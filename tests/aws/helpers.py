"""Small helpers for the AWS adapter's tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class AwsClients:
    """Plain boto3 clients on the moto server, to look at what the adapter created."""

    events: Any
    sqs: Any

    def queue_url(self, name: str) -> str:
        """The URL of the SQS queue `name`."""
        return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def queue_attributes(self, name: str) -> dict[str, str]:
        """All attributes of the SQS queue `name`."""
        url = self.queue_url(name)
        return dict(
            self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        )

    def queue_policy_sources(self, name: str) -> list[str]:
        """The rule ARNs the queue's policy lets EventBridge send from."""
        policy = json.loads(self.queue_attributes(name)["Policy"])
        [statement] = policy["Statement"]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        return list(statement["Condition"]["ArnEquals"]["aws:SourceArn"])

    def queue_names(self, prefix: str) -> list[str]:
        """Names of the queues whose name starts with `prefix`."""
        urls = self.sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
        return sorted(url.rsplit("/", 1)[-1] for url in urls)

    def rule_names(self, bus: str) -> list[str]:
        """Rule names on `bus`, without the archive's managed rule."""
        rules = self.events.list_rules(EventBusName=bus)["Rules"]
        return sorted(r["Name"] for r in rules if not r["Name"].startswith("Events-Archive-"))
