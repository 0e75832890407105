"""Throughput with OpenTelemetry tracing on against off, in one run, on the embedded memory bus.

Each round publishes N events (batches of 100) and consumes them with an App
(async handler, concurrency 16) whose handler publishes one follow-up event
to a topic nobody reads, so every event costs two publishes and one delivery:

- bare:    no middleware at all (a Bus with no plugins), the floor
- off:     the default plugins (correlation on; tracing installed but no
           TracerProvider configured: its hooks return at once)
- on:      an SDK TracerProvider, BatchSpanProcessor, exporter that drops the
           spans (three spans per event: the create span of its batch publish,
           process with its ack event, the follow-up send; plus one send span
           per batch of 100)
- settle:  `on` with settle spans opted in (`settle_spans=True`): a CLIENT ack
           span per delivery instead of the span event (four spans per event)
- on-10%:  `on` with ParentBased(TraceIdRatioBased(0.1)) sampling, as
           production tracing usually runs (context still travels on every event)

Two workloads: an empty handler (work 0: polybus's own per-event cost is all
there is, the worst case for relative overhead) and a handler that spends
`--work` ms of CPU per event (a handler doing something).
Throughput is events / (time from the first publish to the last handled);
CPU is the process's CPU time (every thread, user + system) per event over the
same span, which other processes on a shared machine disturb less than the
wall clock. Issue 16's target: `on` costs at most 15% against `off`.

    python -m bench.bench_tracing [--events N] [--rounds R] [--work MS]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from bench.common import iot_events, machine
from polybus import App
from polybus.adapters import plugin_manager
from polybus.adapters.local.memory import MemoryBus
from polybus.core.bus import Bus
from polybus.core.events import new_event
from polybus.core.plugins import make_plugin_manager
from polybus.core.tracing import Tracing, install

CONCURRENCY = 16


class DropExporter(SpanExporter):
    """Counts the spans it is given and keeps none (the cost of tracing, not of a backend)."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Count and drop."""
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def make_bus(mode: str) -> tuple[Bus, Any]:
    """A memory bus with no plugins ('bare'), the defaults ('off'), tracing ('on', 'settle', 'on-10%')."""
    if mode == "bare":
        return Bus(MemoryBus(retention=10), hooks=make_plugin_manager().hook), None
    pm = plugin_manager(load_entrypoints=False)
    if mode == "off":
        return Bus(MemoryBus(retention=10), hooks=pm.hook), None
    exporter = DropExporter()
    sampler = ParentBased(TraceIdRatioBased(0.1)) if mode == "on-10%" else None
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=65536))
    tracing: Tracing = install(pm)
    tracing.configure(tracer_provider=provider, provider="local", settle_spans=mode == "settle")
    return Bus(MemoryBus(retention=10), hooks=pm.hook), (provider, exporter)


def busy(seconds: float) -> None:
    """Spend `seconds` of CPU (a handler's own work)."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def cpu_seconds() -> float:
    """This process's CPU time so far, every thread, user + system."""
    times = os.times()
    return times.user + times.system


def run_once(mode: str, events: list[Any], work: float = 0.0) -> tuple[float, int, float]:
    """Events/s for one mode (handler spending `work` s of CPU), spans exported, CPU us per event."""
    bus, traced = make_bus(mode)
    app = App(f"bench-{mode}")
    done = 0
    finished = asyncio.Event()

    @app.subscriber("s", topic="t", concurrency=CONCURRENCY)
    async def handle(event: Any, ctx: Any) -> None:
        nonlocal done
        if work:
            busy(work)
        await ctx.publish(new_event("com.iot.seen", "/bench", {"of": event.get_id()}), topic="sink")
        done += 1
        if done == len(events):
            finished.set()

    async def main() -> tuple[float, float]:
        bus.subscribe("s", lambda e: None, topic="t")  # provision before publishing
        await app.start(bus=bus)
        started, cpu = time.perf_counter(), cpu_seconds()
        for i in range(0, len(events), 100):
            await app.publish(events[i : i + 100], "t")
        await finished.wait()
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        await app.stop()
        bus.close()
        return len(events) / elapsed, cpu / len(events) * 1e6

    rate, cpu = asyncio.run(main())
    spans = 0
    if traced is not None:
        provider, exporter = traced
        provider.shutdown()  # flushes the batch processor
        spans = exporter.count
    return rate, spans, cpu


def sdk_floor(n: int = 20000) -> float:
    """CPU us the OpenTelemetry SDK alone spends on the three spans an event needs (no polybus).

    The same provider set-up as `on`; each span carries the eight attributes
    the conventions ask of polybus's spans. No instrumentation of this SDK
    can trace an event for less.
    """
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter(), max_queue_size=65536))
    tracer = provider.get_tracer("floor")
    attrs = {f"messaging.attribute{i}": f"value-{i}" for i in range(8)}
    started = time.thread_time()
    for _ in range(n):
        for _ in range(3):
            tracer.start_span("span", attributes=attrs).end()
    floor = (time.thread_time() - started) / n * 1e6
    provider.shutdown()
    return floor


def table(events: list[Any], rounds: int, work: float) -> None:
    """Run every mode `rounds` times, interleaved, and print one table."""
    modes = ("bare", "off", "on", "settle", "on-10%")
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    cpus: dict[str, list[float]] = {mode: [] for mode in modes}
    spans = 0
    for _ in range(rounds):  # interleaved, so machine load hits every mode alike
        for mode in modes:
            rate, exported, cpu = run_once(mode, events, work)
            rates[mode].append(rate)
            cpus[mode].append(cpu)
            if mode == "on":
                spans = max(spans, exported)
    print(
        f"\n{len(events)} events, async handler with {work * 1000:g} ms of CPU work publishing "
        f"one follow-up, concurrency {CONCURRENCY}; median of {rounds} rounds (min-max)"
    )
    print(
        f"{'mode':<8}{'events/s':>12}{'min-max':>20}{'vs off':>9}{'us/event':>10}"
        f"{'CPU us/event':>14}{'CPU vs off':>12}"
    )
    off = statistics.median(rates["off"])
    off_cpu = statistics.median(cpus["off"])
    for mode in modes:
        median = statistics.median(rates[mode])
        cpu = statistics.median(cpus[mode])
        span = f"{min(rates[mode]):,.0f}-{max(rates[mode]):,.0f}"
        print(
            f"{mode:<8}{median:>12,.0f}{span:>20}{(median / off - 1) * 100:>+8.1f}%"
            f"{1e6 / median:>10,.0f}{cpu:>14,.0f}{(cpu / off_cpu - 1) * 100:>+11.1f}%"
        )
    print(f"spans exported per traced round: {spans} ({spans / len(events):.1f} per event)")
    overhead = (1 - statistics.median(rates["on"]) / off) * 100
    cpu_overhead = (statistics.median(cpus["on"]) / off_cpu - 1) * 100
    print(
        f"tracing overhead: {overhead:.1f}% of throughput, {cpu_overhead:.1f}% more CPU per event "
        "(target <= 15%)"
    )
    floor = sdk_floor()
    print(
        f"SDK floor: the OpenTelemetry SDK alone spends {floor:.0f} us of CPU on 3 spans, "
        f"{floor / off_cpu * 100:.1f}% of `off`'s CPU per event; polybus adds "
        f"{statistics.median(cpus['on']) - off_cpu - floor:.0f} us on top"
    )


def main() -> None:
    """Print one table per workload: median events/s per mode and the overhead of tracing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=float, default=1.0, help="ms of CPU per event")
    args = parser.parse_args()
    events = iot_events(args.events)
    run_once("on", events[:500])  # warm-up: imports, first spans
    print(machine())
    table(events, args.rounds, 0.0)
    table(events[: max(100, args.events // 4)], args.rounds, args.work / 1000)


if __name__ == "__main__":
    main()
