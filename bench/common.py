"""What every benchmark shares: the machine line and the IoT telemetry events."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybus.core.events import EventFactory


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (or the platform string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    """One line naming cores, CPU, Python and OS, printed above every table."""
    return (
        f"{os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, "
        f"{platform.system()}"
    )


def iot_events(
    n: int,
    *,
    extensions: Callable[[int], dict[str, Any]] | None = None,
    heartbeat_every: int = 0,
) -> list[Any]:
    """`n` telemetry readings from 1,000 devices with reproducible ids.

    Every `heartbeat_every`-th event (when > 0) is a heartbeat instead, so a
    type filter has something to drop.
    """
    ids = iter(range(n))
    factory = EventFactory(id_factory=lambda: f"e{next(ids)}")
    return [
        factory.new(
            "com.iot.heartbeat"
            if heartbeat_every and i % heartbeat_every == 0
            else "com.iot.telemetry",
            f"/devices/d{i % 1000}",
            {"i": i, "temp": 20.5, "hum": 41},
            subject=f"eu-{i % 7}",
            extensions=extensions(i) if extensions else None,
        )
        for i in range(n)
    ]


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    Reads VmHWM from /proc (Linux): unlike getrusage's ru_maxrss it starts
    afresh at exec, so a child does not inherit the high-water mark of the
    (large) benchmark process that forked it.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_child(code: str, cwd: Path) -> tuple[Any, str]:
    """Run `code` in a child Python (an emulator, say); return it and its first output line.

    The child is expected to serve until its stdin closes.
    """
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    return child, child.stdout.readline().strip()
