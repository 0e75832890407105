"""Run one topology of a scenario live, in real time, and measure it like a simulated replication.

Arrivals come from the same `ArrivalSource` and named stream as replication 0
of the simulation (same seed: the same arrival times and keys), scheduled
on the run clock; a flow's start is its scheduled arrival time, so a late
event loop shows up as latency, as it would for a real client. Backlog is
sampled every `sample_interval` and the warm-up is cut as in the
simulation; at `duration` the window closes and later completions are not
counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from polybus.core.bus import Bus
from polybus.core.errors import ConfigError, Problem
from polybus.core.tracing.records import SpanRecord
from polybus.sim.broker import BrokerProfile, load_profile
from polybus.sim.live.clock import RunClock
from polybus.sim.live.model import LiveModel
from polybus.sim.population import ArrivalSource, windows
from polybus.sim.results import Replication
from polybus.sim.topology import Scenario, Workload

TRANSPORTS = ("http", "local")
LEAD = 0.2  # seconds between setting up and the first arrival


@dataclass(frozen=True)
class LiveRun:
    """What one live run measured (one replication's measures) and how it ran."""

    topology: str
    provider: str
    transport: str  # "http" (calls over loopback HTTP) or "local" (in-process calls)
    measures: Replication
    arrivals: int
    wall_seconds: float
    sleep_bias: float  # the event loop's measured sleep overshoot, subtracted from every sleep
    spans: tuple[
        SpanRecord, ...
    ] = ()  # PRODUCER per publish, CONSUMER per delivery (calibrate's input)


def needs_bus(scenario: Scenario, topology: str) -> bool:
    """Whether the topology publishes (then the live run needs a Bus)."""
    top = scenario.topologies[topology]
    return bool(top.topics) or any(s.publishes for s in top.services.values())


def run_live(
    scenario: Scenario, topology: str, *, bus: Bus | None = None, seed: int | None = None,
    profile: BrokerProfile | None = None, transport: str = "http",
) -> LiveRun:  # fmt: skip
    """Run `topology` of `scenario` for its duration in real time; blocks (its own event loop).

    The loop uses `select` (microsecond timeouts) rather than epoll, whose
    timeouts round up to the next millisecond: a 0.3 ms sleep would last 1 ms.
    """
    with asyncio.Runner(loop_factory=precise_loop) as runner:
        return runner.run(
            run_live_async(
                scenario, topology, bus=bus, seed=seed, profile=profile, transport=transport
            )
        )


def precise_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers wake within microseconds, not at the next millisecond."""
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


async def run_live_async(
    scenario: Scenario, topology: str, *, bus: Bus | None = None, seed: int | None = None,
    profile: BrokerProfile | None = None, transport: str = "http",
) -> LiveRun:  # fmt: skip
    """`run_live` on the running loop."""
    _check(scenario, topology, bus, transport)
    started = time.perf_counter()
    clock = RunClock()
    model = LiveModel(scenario, scenario.topologies[topology], _seed(scenario, seed), clock)
    calls = any(s.calls for s in model.top.services.values())
    async with AsyncExitStack() as stack:
        if model.topics:
            assert bus is not None
            # redeliveries follow the simulated broker's profile (attempts, backoff)
            redelivery = profile or load_profile(scenario.provider)
            await stack.enter_async_context(_app(model, bus, redelivery))
        if calls and transport == "http":
            from polybus.sim.live.http import serve

            await stack.enter_async_context(serve(model))
        bias = await clock.calibrate()
        clock.restart(LEAD)
        arrivals = [0]
        sources = [model.spawn(_source(model, w, arrivals)) for w in scenario.workloads]
        background = [*sources, model.spawn(_sampler(model)), model.spawn(_warmup(model))]
        # every arrival before the end starts before the window closes, even on a late loop
        await asyncio.gather(*sources)
        await clock.sleep_until(scenario.duration)
        measures = model.finish()
        for task in background:
            task.cancel()
    await _cancel(model)
    return LiveRun(
        topology=topology,
        provider=bus.provider if bus is not None and model.topics else "none",
        transport=transport if calls else "none",
        measures=measures,
        arrivals=arrivals[0],
        wall_seconds=time.perf_counter() - started,
        sleep_bias=bias,
        spans=tuple(model.spans),
    )


def _seed(scenario: Scenario, seed: int | None) -> int:
    return scenario.seed if seed is None else seed


def _check(scenario: Scenario, topology: str, bus: Bus | None, transport: str) -> None:
    problems = []
    if topology not in scenario.topologies:
        problems.append(
            Problem("topology", topology, f"must be one of {', '.join(scenario.topologies)}")
        )
    elif needs_bus(scenario, topology) and bus is None:
        problems.append(Problem("bus", None, f"topology {topology!r} publishes: it needs a Bus"))
    else:  # a model of the traced machine, which a live run on this one cannot impose
        top = scenario.topologies[topology]
        rule = "models the traced system's machine; a live run uses this one: remove it to run live"
        if top.hosts:
            problems.append(Problem(f"topologies.{topology}.hosts", sorted(top.hosts), rule))
        if top.speed is not None:
            problems.append(Problem(f"topologies.{topology}.speed", top.speed.sigma, rule))
    if transport not in TRANSPORTS:
        problems.append(Problem("transport", transport, f"must be one of {', '.join(TRANSPORTS)}"))
    if problems:
        raise ConfigError(scenario.file, problems)


@asynccontextmanager
async def _app(model: LiveModel, bus: Bus, profile: BrokerProfile | None) -> AsyncIterator[None]:
    from polybus.sim.live.events import build_app

    app = build_app(model, profile)
    model.system = f"polybus.{bus.provider}"
    await app.start(bus=bus)
    try:
        yield
    finally:
        await app.stop()
        for spec in app.subscribers:  # the run's subscriptions go with it (the bus may be reused)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(bus.adapter.delete_subscription, spec.name)


async def _source(model: LiveModel, w: Workload, count: list[int]) -> None:
    sc, clock = model.sc, model.clock
    src = ArrivalSource(w, model.streams.rng(f"arrivals/{w.flow}"))
    for t0, t1 in windows(sc.duration, sc.chunk):
        times, keys = src.window(t0, t1)
        for t, key in zip(times.tolist(), keys.tolist(), strict=True):
            await clock.sleep_until(t)
            count[0] += 1
            model.start_flow(w.flow, t, key)


async def _sampler(model: LiveModel) -> None:
    sc, clock = model.sc, model.clock
    k = 0
    while k * sc.sample_interval < sc.duration:
        t = k * sc.sample_interval
        await clock.sleep_until(t)
        if model.done:
            return
        model.rec.sample(t)
        k += 1


async def _warmup(model: LiveModel) -> None:
    await model.clock.sleep_until(model.sc.warmup)
    model.mark_warmup()


async def _cancel(model: LiveModel) -> None:
    """Cancel what is still running after the window closed (it is no longer measured)."""
    tasks = list(model.tasks)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(Exception):
        await asyncio.gather(*tasks, return_exceptions=True)
