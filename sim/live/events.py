"""The event side of a live run: one `polybus.app.App` on the caller's Bus.

Every (consuming station, topic) pair is a subscription whose concurrency is
the station's workers x partitions (the worker pool of the model); its
synthetic handler serves the visit through `LiveModel.deliver`. Publishes
carry what the measurements need in the event itself: the CloudEvent
``time`` is the write time (when the publisher started the publish, the
start of a consistency window), and the extensions name the flow
(``simflow``, ``simflowid``), its start (``simflowstart``, a timestamp) and
the partition key (``simkey``).
"""

from __future__ import annotations

import re
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus.app import App
from polybus.core.contract import DeliveryPolicy, RetryPolicy
from polybus.core.events import new_event
from polybus.core.runtime import Context, RuntimeSettings
from polybus.sim.broker import BrokerProfile
from polybus.sim.live.model import EVENT_TYPE, LiveCtx, LiveModel


def subscription_name(topology: str, station: str, topic: str) -> str:
    """The subscription of `station` consuming `topic` in a live run (letters, digits and dashes)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", f"sim-{topology}-{station}-{topic}")[:120]


def policy_of(profile: BrokerProfile) -> DeliveryPolicy:
    """The runtime's redelivery policy matching the simulated broker's (attempts and backoff)."""
    return DeliveryPolicy(
        max_delivery_attempts=max(1, profile.max_attempts),
        retry=RetryPolicy(
            initial_backoff=profile.retry_initial,
            multiplier=profile.retry_multiplier,
            max_backoff=profile.retry_max,
            jitter=0.0,
        ),
    )


def build_app(model: LiveModel, profile: BrokerProfile | None = None) -> App:
    """The App with one subscription per consuming station and topic; sets `model.sender`."""
    app = App(f"sim-live-{model.sc.name}", settings=RuntimeSettings(grace=1.0, close_timeout=2.0))
    policy = policy_of(profile) if profile is not None else DeliveryPolicy()
    for topic in model.topics:
        for station in model.top.subscribers(topic):
            st = model.stations[station]
            _subscribe(app, model, station, topic, st.workers * st.partitions, policy)

    async def send(topic: str, key: int, ctx: LiveCtx, write_time: float, span: str) -> None:
        await app.publish(event_for(model, topic, key, ctx, write_time, span), topic)

    model.sender = send
    return app


def event_for(
    model: LiveModel, topic: str, key: int, ctx: LiveCtx, write_time: float, span: str
) -> CloudEvent:
    """The CloudEvent of one publish: write time as ``time``, the flow and its trace in extensions."""
    clock = model.clock
    return new_event(
        EVENT_TYPE.format(topic=topic),
        f"/sim/{model.sc.name}",
        {"key": key},
        time=clock.stamp(write_time),
        extensions={
            "simflow": ctx.flow.name,
            "simflowid": ctx.id,
            "simflowstart": clock.stamp(ctx.t0),
            "simkey": str(key),
            "simspan": span,
        },
    )


def _subscribe(
    app: App, model: LiveModel, station: str, topic: str, concurrency: int, policy: DeliveryPolicy
) -> None:
    async def handler(event: CloudEvent, ctx: Context) -> None:
        attrs: dict[str, Any] = event.get_attributes()
        write_time = model.clock.since_start(attrs["time"])
        last = ctx.attempt >= policy.max_delivery_attempts
        ok = await model.deliver(
            station, topic, int(attrs.get("simkey", "0")), str(attrs.get("simflowid", "")),
            write_time, attrs.get("simspan"), last, ctx.subscription,
        )  # fmt: skip
        if not ok:
            ctx.nack(policy.retry.backoff(ctx.attempt))

    app.subscriber(
        subscription_name(model.top.name, station, topic),
        topic=topic,
        policy=policy,
        concurrency=concurrency,
    )(handler)
