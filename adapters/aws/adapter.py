"""The AWS adapter: EventBridge in, SQS out.

publish -> PutEvents to the topic's custom bus (batching and per-entry
retries here, the entry and its size in mapping.py); provision -> bus + rule +
SQS queue + dead-letter queue (provisioning.py); receive -> SQS long polling
(delivery.py); replay -> archive + StartReplay (replay.py). See docs/aws.md
for the name mapping and moto's gaps.

Recovery: a subscription this adapter provisioned whose queue has vanished
(moto restarted, someone deleted it) is provisioned again from its spec on
the next receive, bus and rule included; publish recreates a vanished bus.
close() returns within CLOSE_TIMEOUT seconds even when the endpoint does not
answer.

Credentials come from boto3's standard chain only; nothing here reads, logs
or prints them.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from cloudevents.core.v1.event import CloudEvent

from polybus.adapters.aws.config import DEFAULT_REGION, AwsConfig
from polybus.adapters.aws.delivery import Consumer, SqsDelivery
from polybus.adapters.aws.errors import is_not_found, translate_errors
from polybus.adapters.aws.mapping import (
    MAX_ENTRIES,
    REQUEST_LIMIT,
    SIZE_LIMIT,
    Entry,
    bus_name,
    to_entry,
)
from polybus.adapters.aws.provisioning import Provisioner
from polybus.adapters.aws.replay import ReplayGate
from polybus.core.contract import BacklogStats, Delivery, SubscriptionSpec
from polybus.core.errors import AdapterError, PublishError
from polybus.core.filters.dialects import Filter

CLOSE_TIMEOUT = 5.0  # close() returns within this even against an unresponsive endpoint
log = logging.getLogger("polybus.aws")
RETRYABLE_CODES = frozenset({"ThrottlingException", "InternalFailure", "InternalException"})


@dataclass(frozen=True)
class Clients:
    """The EventBridge, SQS and CloudWatch clients an adapter talks through."""

    events: Any
    sqs: Any
    region: str
    cloudwatch: Any = None  # the oldest age of backlog_stats; None: not read

    def close(self) -> None:
        """Close the clients' connection pools."""
        self.events.close()
        self.sqs.close()
        if self.cloudwatch is not None:
            self.cloudwatch.close()


def make_clients(config: AwsConfig, *, max_pool_connections: int = 20) -> Clients:
    """Clients for the configured region and endpoint, credentials from the standard chain."""
    session = boto3.session.Session(region_name=config.region)
    region = config.region or session.region_name or DEFAULT_REGION
    botocore_config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=max_pool_connections,
        # SQS long polls last up to 20 s: the read timeout must be longer.
        read_timeout=config.wait_time + 10,
    )
    with translate_errors("create clients"):
        events = session.client(
            "events", region_name=region, endpoint_url=config.endpoint_url, config=botocore_config
        )
        sqs = session.client(
            "sqs", region_name=region, endpoint_url=config.endpoint_url, config=botocore_config
        )
        cloudwatch = session.client(
            "cloudwatch",
            region_name=region,
            endpoint_url=config.endpoint_url,
            config=botocore_config,
        )
    return Clients(events=events, sqs=sqs, region=region, cloudwatch=cloudwatch)


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
        self._provisioner = Provisioner(
            self._clients.events, self._clients.sqs, config, self._clients.cloudwatch
        )
        self._publisher = Publisher(self._clients.events, sleep=sleep)
        self._replays = ReplayGate(self._clients.events, self._provisioner)
        self._consumer = Consumer(self._clients.sqs, config, self._replays, sleep=sleep)
        self._closed = False

    def publish(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Publish in PutEvents batches; PublishError names every event AWS refused for good.

        Each event is serialised once, into its entry; the entries' sizes are
        checked before any network call (EventTooLargeError names every
        oversized event, and nothing of the call is sent).
        """
        if not events:
            return
        bus = bus_name(self.config.bus_prefix, topic)
        entries = [to_entry(event, bus) for event in events]
        SIZE_LIMIT.check(((entry.event_id, entry.size) for entry in entries), self.name)
        self._provisioner.bus(topic)
        try:
            failures = self._publisher.put(entries)
        except AdapterError as exc:
            if not is_not_found(exc):
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
        try:
            return self._receive(subscription, max_events, timeout)
        except AdapterError as exc:
            if not is_not_found(exc):
                raise
        self._recover(subscription)
        return self._receive(subscription, max_events, timeout)

    def _receive(self, subscription: str, max_events: int, timeout: float) -> list[Delivery]:
        sub = self._provisioner.lookup(subscription)
        deliveries: list[SqsDelivery] = self._consumer.receive(sub, max_events, timeout)
        return list(deliveries)

    def _recover(self, subscription: str) -> None:
        """The queue vanished: provision it again when it is ours, else look it up afresh."""
        self._provisioner.forget(subscription)
        spec = self._provisioner.spec(subscription)
        if spec is None:
            return  # deleted or re-created elsewhere: the next lookup finds it, or says so
        log.warning("aws: subscription %s is gone (endpoint restarted?); re-creating it", spec.name)
        self._provisioner.forget_bus(spec.topic)
        self._provisioner.provision(spec)

    def receive_dead_letters(
        self, subscription: str, max_events: int = 10, timeout: float = 1.0
    ) -> list[Delivery]:
        """Deliveries from the subscription's dead-letter queue (`.reason` says why)."""
        sub = self._provisioner.lookup(subscription)
        return list(self._consumer.receive_dead_letters(sub, max_events, timeout))

    def backlog_stats(self, subscription: str) -> BacklogStats:
        """Waiting, in flight and dead letters from SQS attributes; oldest age from CloudWatch."""
        return self._provisioner.backlog(subscription)

    def delete_subscription(self, subscription: str) -> None:
        """Remove the rule, its target and the queues; a no-op when already gone."""
        self._provisioner.delete(subscription)

    def replay(self, subscription: str, since: datetime) -> None:
        """Redeliver to `subscription` the topic's archived events since `since`."""
        self._replays.start(self._provisioner.lookup(subscription), since)

    def close(self) -> None:
        """Release unsettled deliveries and close the connection pools, within CLOSE_TIMEOUT.

        The work runs on a daemon thread: an endpoint that does not answer
        cannot hold close() longer than the bound (unsettled messages then
        become visible when their visibility timeout ends).
        """
        if self._closed:
            return
        self._closed = True

        def shutdown() -> None:
            try:
                self._consumer.release_all()
            finally:
                self._clients.close()

        thread = threading.Thread(target=shutdown, name="polybus-aws-close", daemon=True)
        thread.start()
        thread.join(CLOSE_TIMEOUT)
        if thread.is_alive():
            log.warning("aws: close did not finish within %.0fs; abandoned", CLOSE_TIMEOUT)


# -- PutEvents batching and per-entry retries ----------------------------------
#
# A PutEvents request takes 1-10 entries whose sizes total less than 256 KB.
# PutEvents answers 200 even when some entries fail; each failed entry carries
# an ErrorCode. Throttling and internal failures are retried, only for the
# failed entries, with exponential backoff and full jitter; any other code
# (MalformedDetail, InvalidArgument, AccessDeniedException, ...) can never
# succeed and is reported at once.


def plan_batches(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Split entries, in order, into requests of at most 10 entries totalling < 256 KB."""
    batches: list[list[Entry]] = []
    current: list[Entry] = []
    size = 0
    for entry in entries:
        if current and (len(current) == MAX_ENTRIES or size + entry.size >= REQUEST_LIMIT):
            batches.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.size
    if current:
        batches.append(current)
    return batches


class Publisher:
    """Sends entries with PutEvents; returns the entries that failed for good."""

    def __init__(
        self,
        events_client: Any,
        *,
        sleep: Callable[[float], None],
        attempts: int = 6,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self._client = events_client
        self._sleep = sleep
        self._attempts = attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._rng = rng or random.Random()

    def backoff(self, retry: int) -> float:
        """Seconds before retry number `retry` (1-based): full jitter under an exponential cap."""
        cap = min(self._max_delay, self._base_delay * 2 ** (retry - 1))
        return self._rng.uniform(0, cap)

    def put(self, entries: Sequence[Entry]) -> dict[str, str]:
        """Publish entries in planned batches; map event id -> reason for each that failed."""
        failures: dict[str, str] = {}
        for batch in plan_batches(entries):
            failures.update(self._put_batch(batch))
        return failures

    def _put_batch(self, batch: list[Entry]) -> dict[str, str]:
        failures: dict[str, str] = {}
        pending = batch
        for attempt in range(1, self._attempts + 1):
            with translate_errors("PutEvents"):
                response = self._client.put_events(Entries=[e.request for e in pending])
            if not response.get("FailedEntryCount"):
                return failures
            retry: list[Entry] = []
            reasons: dict[str, str] = {}
            for entry, result in zip(pending, response["Entries"], strict=True):
                code = result.get("ErrorCode")
                if not code:
                    continue
                reason = f"{code}: {result.get('ErrorMessage', '')}".rstrip(": ")
                if code in RETRYABLE_CODES:
                    retry.append(entry)
                    reasons[entry.event_id] = reason
                else:
                    failures[entry.event_id] = reason
            if not retry:
                return failures
            if attempt == self._attempts:
                for entry in retry:
                    failures[entry.event_id] = (
                        f"{reasons[entry.event_id]} (still failing after {attempt} attempts)"
                    )
                return failures
            self._sleep(self.backoff(attempt))
            pending = retry
        return failures
