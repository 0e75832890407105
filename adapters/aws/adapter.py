"""The AWS adapter: EventBridge in, SQS out.

publish -> PutEvents to the topic's custom bus (publisher.py);
provision -> bus + rule + SQS queue + dead-letter queue (provisioning.py);
receive -> SQS long polling (consumer.py); replay -> archive + StartReplay
(replay.py). See docs/aws.md for the name mapping and moto's gaps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.aws.clients import Clients, is_not_found, make_clients
from polybus.adapters.aws.config import AwsConfig
from polybus.adapters.aws.consumer import Consumer, SqsDelivery
from polybus.adapters.aws.mapping import to_entry
from polybus.adapters.aws.provisioning import Provisioner
from polybus.adapters.aws.publisher import Publisher, check_entry_sizes
from polybus.adapters.aws.replay import ReplayGate
from polybus.core.contract import Delivery, SubscriptionSpec
from polybus.core.errors import AdapterError, PublishError
from polybus.core.filters.dialects import Filter


class AwsAdapter:
    """polybus over EventBridge (publish, rules) and SQS (delivery, dead letters)."""

    name = "aws"

    def __init__(
        self,
        config: AwsConfig,
        *,
        clients: Clients | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._clients = clients or make_clients(config)
        self._provisioner = Provisioner(self._clients, config)
        self._publisher = Publisher(self._clients.events, sleep=sleep)
        self._replays = ReplayGate(self._clients.events, self._provisioner)
        self._consumer = Consumer(self._clients.sqs, config, self._replays, sleep=sleep)
        self._closed = False

    def publish(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Publish in PutEvents batches; PublishError names every event AWS refused for good."""
        if not events:
            return
        bus = self._provisioner.bus(topic)
        entries = [to_entry(event, bus.name) for event in events]
        check_entry_sizes(entries)
        try:
            failures = self._publisher.put(entries)
        except AdapterError as exc:
            if exc.__cause__ is None or not is_not_found(exc.__cause__):
                raise
            # The bus was deleted behind our back: recreate it once and resend.
            self._provisioner.forget_bus(topic)
            self._provisioner.bus(topic)
            failures = self._publisher.put(entries)
        if failures:
            raise PublishError(failures)

    def provision(self, spec: SubscriptionSpec) -> Filter | None:
        """Create or update bus, rule, queues and target; return the client-side residual."""
        _, residual = self._provisioner.provision(spec)
        return residual

    def receive(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[Delivery]:
        """Long-poll the subscription's queue for up to `max_events` deliveries."""
        sub = self._provisioner.lookup(subscription)
        try:
            deliveries: list[SqsDelivery] = self._consumer.receive(sub, max_events, timeout)
        except AdapterError as exc:
            if exc.__cause__ is None or not is_not_found(exc.__cause__):
                raise
            # Deleted or re-created elsewhere: look it up afresh once.
            self._provisioner.forget(subscription)
            sub = self._provisioner.lookup(subscription)
            deliveries = self._consumer.receive(sub, max_events, timeout)
        return list(deliveries)

    def receive_dead_letters(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[Delivery]:
        """Deliveries from the subscription's dead-letter queue (`.reason` says why)."""
        sub = self._provisioner.lookup(subscription)
        return list(self._consumer.receive_dead_letters(sub, max_events, timeout))

    def delete_subscription(self, subscription: str) -> None:
        """Remove the rule, its target and the queues; a no-op when already gone."""
        self._provisioner.delete(subscription)

    def replay(self, subscription: str, since: datetime) -> None:
        """Redeliver to `subscription` the topic's archived events since `since`."""
        self._replays.start(self._provisioner.lookup(subscription), since)

    def close(self) -> None:
        """Release unsettled deliveries and close the connection pools."""
        if self._closed:
            return
        self._closed = True
        self._consumer.release_all()
        self._clients.close()
