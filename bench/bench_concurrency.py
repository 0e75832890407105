"""Does `concurrency=N` run N handlers at once on every provider? (issue 14)

8 events, each handled by a sync handler sleeping 0.5 s, consumed through
polybus.App and the runtime with concurrency 1 and with concurrency 4. The
ideal is 4.0 s and 1.0 s; the figure is the wall time from the publish to
the eighth ack, on local (memory and durable), aws (moto), gcp and azure (the
polybus emulators), all on loopback in this process.

    python -m bench.bench_concurrency [--events 8] [--work 0.5] [--providers local-memory,aws]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from polybus import App
from polybus.adapters import available_adapters
from polybus.core.bus import Bus
from polybus.core.contract import DeliveryPolicy
from polybus.core.emulation import RunningEmulator
from polybus.core.events import new_event
from polybus.core.runtime import RuntimeSettings

PROVIDERS = ("local-memory", "local-durable", "aws", "gcp", "azure")


def _bus(provider: str, tmp: Path, emulators: dict[str, RunningEmulator]) -> Bus:
    name = "local" if provider.startswith("local") else provider
    info = available_adapters()[name].info
    settings: dict[str, Any]
    if provider == "local-memory":
        settings = {}
    elif provider == "local-durable":
        settings = {"durable": True, "path": str(tmp / f"{uuid.uuid4().hex}.db")}
    else:
        if provider not in emulators:
            assert info.emulator is not None
            emulators[provider] = info.emulator.launch("127.0.0.1", 0)
            for key, value in emulators[provider].environment().items():
                if key != "AWS_ENDPOINT_URL":
                    os.environ[key] = value
        settings = dict(emulators[provider].settings())
    return Bus(info.factory(settings), capabilities=info.capabilities)


def measure(bus: Bus, events: int, work: float, concurrency: int) -> float:
    """Seconds from publishing `events` to the last ack, `concurrency` handlers at once."""
    suffix = uuid.uuid4().hex[:8]
    topic, sub = f"bench-{suffix}", f"bench-{suffix}-sub"
    done = threading.Event()
    handled: list[str] = []
    lock = threading.Lock()
    app = App("bench", settings=RuntimeSettings(poll_timeout=0.2, grace=5.0))
    ack_deadline = max(10.0, work * 4)

    @app.subscriber(sub, topic=topic, policy=DeliveryPolicy(ack_deadline=ack_deadline))
    def handle(event: CloudEvent) -> None:
        time.sleep(work)
        with lock:
            handled.append(event.get_id())
            if len(handled) == events:
                done.set()

    async def main() -> float:
        await app.start(concurrency=concurrency, bus=bus)
        await asyncio.sleep(0.5)  # let the receive loop settle into its first poll
        batch = [new_event("com.example.bench", "/bench", {"n": i}) for i in range(events)]
        started = time.perf_counter()
        await app.publish(batch, topic)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, done.wait, 60)
        elapsed = time.perf_counter() - started
        await app.stop()
        return elapsed

    return asyncio.run(main())


def main() -> None:
    """Print one row per provider: concurrency 1 and 4 side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=8)
    parser.add_argument("--work", type=float, default=0.5)
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    args = parser.parse_args()
    emulators: dict[str, RunningEmulator] = {}
    print(
        f"{args.events} sync handlers of {args.work:g} s, publish to last ack (ideal: "
        f"{args.events * args.work:g} s / {args.events * args.work / 4:g} s)"
    )
    print(f"{'provider':<15} {'concurrency 1':>14} {'concurrency 4':>14} {'speed-up':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for provider in args.providers.split(","):
                row = []
                for concurrency in (1, 4):
                    bus = _bus(provider, Path(tmp), emulators)
                    try:
                        row.append(measure(bus, args.events, args.work, concurrency))
                    finally:
                        bus.close()
                print(
                    f"{provider:<15} {row[0]:>12.2f} s {row[1]:>12.2f} s {row[0] / row[1]:>8.1f}x"
                )
        finally:
            for emulator in emulators.values():
                emulator.stop()


if __name__ == "__main__":
    main()
